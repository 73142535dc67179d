// SMASH's search (Brock et al. 2018; the authors' evaluate.py and perturb_arch.py): score N
// random architectures, perturb the best of them (each perturbation a mutate() of the current
// best, kept when it scores better), then run a Markov chain of mutations from the best found,
// accepting a worse proposal with probability exp((new - old) / temperature). Everything is
// scored through the kernel's evaluation service, which records each candidate as soon as it
// is scored and reuses stored scores; every random draw comes from ctx.rng() in a fixed order
// and every decision depends only on those draws and on scores, so the same seed repeats the
// run and a rerun of a killed search scores only what is missing. See README.md.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include <hypernas/strategy.h>

#include "../common/pool.h"

namespace {

using namespace hypernas;

/// Phases of the search, as the `phase` of the "perturb" event and of a kept candidate.
enum Phase : int { kRandom = 0, kPerturbation = 1, kChain = 2 };

class PerturbStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("candidates", 500, "distinct random architectures to score first (SMASH: 500)", 1);
      t.add_int("perturbations", 100,
                "mutations of the best random architectures, each kept when it scores better", 0);
      t.add_int("chain", 100, "steps of the Markov chain of mutations that follows", 0);
      t.add_real("p", 0.05,
                 "probability that mutate() redraws each choice of an architecture (SMASH: 0.05)",
                 0, 1);
      t.add_real("temperature", 0.01,
                 "the chain accepts a worse proposal with probability exp((new - old) / "
                 "temperature), on the score's scale (accuracy in [0, 1] for most surrogates)",
                 0);
      t.add_int("keep", 10, "how many of the best distinct architectures to return", 1);
      t.add_int("starts", 1,
                "how many of the best random candidates are perturbed; the perturbations are "
                "split among them",
                1);
      t.add_int("batch", 1,
                "architectures per call to the surrogate while scoring the random candidates "
                "(the perturbations and the chain are sequential)",
                1);
      return t;
    }();
    return table;
  }
  explicit PerturbStrategy(const Options& o)
      : candidates_(o.get_int("candidates")),
        perturbations_(o.get_int("perturbations")),
        chain_(o.get_int("chain")),
        keep_(o.get_int("keep")),
        starts_(o.get_int("starts")),
        batch_(o.get_int("batch")),
        p_(o.get_real("p")),
        temperature_(o.get_real("temperature")) {
    // NOTE: the table's bounds are inclusive; a temperature of 0 would divide by zero.
    if (!(temperature_ > 0))
      throw UsageError(
          cat("perturb: option 'temperature' expects a real > 0, got '", temperature_, "'"));
  }

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    check_request(req);
    const SearchSpace& space = *req.space;
    all_.clear();
    by_hash_.clear();

    // Phase 0: random candidates, drawn before anything is scored (they depend on the seed only).
    const std::vector<Architecture> pool =
        strategies::draw_distinct(ctx, space, candidates_, strategies::Distinct::Text);
    const strategies::ScoredPool random =
        strategies::score_pool(ctx, *req.evaluations, pool, batch_, "perturb: random candidates",
                               [](const std::vector<Candidate>&) {});
    for (const Candidate& c : random.scored) remember(c, kRandom);
    const std::optional<std::size_t> random_best = best_index();
    if (!random_best) return kept();  // every candidate failed (score_pool warned)
    ctx.log().info(cat("random: ", random.scored.size(), " of ", pool.size(), " candidates scored",
                       failed_text(random.failed), "; best ", all_[*random_best].c.score.value,
                       ": ", abbreviate(all_[*random_best].c.arch.text)));
    if (req.evaluations->stopped()) return kept();

    // Phase 1: perturbations of the `starts` best random candidates (distinct by hash).
    std::vector<std::size_t> starts(all_.size());
    for (std::size_t i = 0; i < starts.size(); ++i) starts[i] = i;
    std::stable_sort(starts.begin(), starts.end(), [this](std::size_t a, std::size_t b) {
      return all_[a].c.score.value > all_[b].c.score.value;
    });
    starts.resize(std::min<std::size_t>(starts.size(), static_cast<std::size_t>(starts_)));
    const auto n_starts = static_cast<std::int64_t>(starts.size());
    std::int64_t step = 0, improved = 0;
    bool stop = false;
    if (perturbations_ > 0) {
      auto progress = ctx.progress("perturb: perturbations", perturbations_);
      for (std::int64_t s = 0; s < n_starts && !stop; ++s) {
        // The budget split evenly, the first starts taking one more each for the remainder.
        const std::int64_t budget =
            perturbations_ / n_starts + (s < perturbations_ % n_starts ? 1 : 0);
        Candidate best = all_[starts[static_cast<std::size_t>(s)]].c;
        for (std::int64_t i = 0; i < budget && !stop; ++i, ++step) {
          const Architecture proposal = space.mutate(best.arch, ctx.rng(), p_);
          std::optional<Candidate> scored = score(ctx, req, proposal, progress.get(), &stop);
          const bool accepted = scored && scored->score.value > best.score.value;
          if (scored) remember(*scored, kPerturbation);
          if (accepted) {
            best = std::move(*scored);
            ++improved;
          }
          stop = !notify(ctx, kPerturbation, step, scored, accepted) || stop;
        }
      }
      progress->finish();
      const Remembered& b = all_[*best_index()];
      ctx.log().info(cat("perturbation: ", step, " mutations (p = ", p_, ") of the best ", n_starts,
                         " random candidate", n_starts == 1 ? "" : "s", ", ", improved,
                         " accepted as better; best ", b.c.score.value, ": ",
                         abbreviate(b.c.arch.text)));
    }

    // Phase 2: the Markov chain (Metropolis), from the best architecture scored so far.
    if (chain_ > 0 && !stop) {
      auto progress = ctx.progress("perturb: chain", chain_);
      Candidate state = all_[*best_index()].c;
      const double before = state.score.value;
      std::int64_t accepted_steps = 0;
      for (std::int64_t i = 0; i < chain_ && !stop; ++i) {
        const Architecture proposal = space.mutate(state.arch, ctx.rng(), p_);
        std::optional<Candidate> scored = score(ctx, req, proposal, progress.get(), &stop);
        // Drawn on every step, scored or not, so the stream's order does not depend on scores.
        const double u = ctx.rng().uniform();
        bool accepted = false;
        if (scored) {
          remember(*scored, kChain);
          const double delta = scored->score.value - state.score.value;
          accepted = delta > 0 || u < std::exp(delta / temperature_);
        }
        if (accepted) {
          state = std::move(*scored);
          ++accepted_steps;
        }
        stop = !notify(ctx, kChain, i, scored, accepted) || stop;
      }
      progress->finish();
      const Remembered& b = all_[*best_index()];
      ctx.log().info(cat("chain: ", chain_, " steps (p = ", p_, ", temperature ", temperature_,
                         "), ", accepted_steps, " accepted; best ", b.c.score.value,
                         b.c.score.value > before ? " (improved by the chain)" : "", ": ",
                         abbreviate(b.c.arch.text)));
    }
    return kept();
  }

 private:
  /// A scored architecture and the phase that first scored it.
  struct Remembered {
    Candidate c;
    Phase phase;
  };

  void check_request(const SearchRequest& req) const {
    HYPERNAS_CHECK(req.surrogate && req.space, "perturb needs a surrogate and a space");
    HYPERNAS_CHECK(req.evaluations != nullptr,
                   "perturb needs the kernel's evaluation service (a host of ABI >= 1.1)");
    if (perturbations_ + chain_ == 0) return;  // random search alone calls no mutate()
    // NOTE: mutate() is a 1.5 virtual; on a space built with an older SDK its vtable slot does
    // not exist, and calling it would jump past the end of the table.
    if (req.space_abi_minor < 5)
      throw UsageError(
          cat("perturb needs a space that can mutate architectures (ABI 1.5), which "
              "space '",
              req.space->name(), "' (built with ABI 1.", req.space_abi_minor,
              ") does not have: rebuild the space against SDK 1.5 or later, or set "
              "perturbations = 0 and chain = 0"));
    // A space of ABI 1.5 may still not support mutate() (the default throws): find out before
    // scoring the random candidates, with draws of its own (ctx.rng() is left untouched).
    try {
      Rng probe(0);
      (void)req.space->mutate(req.space->sample(probe), probe, p_);
    } catch (const Cancelled&) {
      throw;
    } catch (const Error& e) {
      throw UsageError(cat("perturb: ", e.what(),
                           " (perturbations and the chain need SearchSpace::mutate(); set "
                           "perturbations = 0 and chain = 0 for random search alone)"));
    }
  }

  /// Scores one proposal through the evaluation service (reused when already stored). Sets
  /// *stop when the script's callback asked to stop.
  static std::optional<Candidate> score(Context& ctx, const SearchRequest& req,
                                        const Architecture& arch, Progress* progress, bool* stop) {
    Evaluated e = req.evaluations->evaluate(ctx, {arch}, progress);
    *stop = *stop || e.stop;
    if (e.scored.empty()) return std::nullopt;  // failed (recorded by the service)
    return std::move(e.scored.front());
  }

  /// Notifies the script of one step; false when it asks to stop.
  bool notify(Context& ctx, Phase phase, std::int64_t step, const std::optional<Candidate>& c,
              bool accepted) const {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const bool go = ctx.notify("perturb", {{"phase", static_cast<double>(phase)},
                                           {"step", static_cast<double>(step)},
                                           {"score", c ? c->score.value : nan},
                                           {"best", all_[*best_index()].c.score.value},
                                           {"accepted", accepted ? 1.0 : 0.0}});
    if (!go)
      ctx.log().info(cat("stopped by the script after ",
                         phase == kPerturbation ? "perturbation " : "chain step ", step + 1));
    return go;
  }

  /// Records a scored architecture the first time its hash is seen.
  void remember(const Candidate& c, Phase phase) {
    if (by_hash_.emplace(c.hash, all_.size()).second) all_.push_back({c, phase});
  }

  /// The best of everything scored (the first of equal scores), if anything was.
  std::optional<std::size_t> best_index() const {
    if (all_.empty()) return std::nullopt;
    std::size_t best = 0;
    for (std::size_t i = 1; i < all_.size(); ++i)
      if (all_[i].c.score.value > all_[best].c.score.value) best = i;
    return best;
  }

  static std::string failed_text(std::size_t failed) {
    return failed ? cat(" (", failed, " failed)") : std::string();
  }

  /// The `keep` best distinct architectures of everything scored, best first (ties: the first
  /// scored first), each with the phase that first scored it in score.extra["phase"].
  std::vector<Candidate> kept() const {
    std::vector<std::size_t> order(all_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
      return all_[a].c.score.value > all_[b].c.score.value;
    });
    if (order.size() > static_cast<std::size_t>(keep_))
      order.resize(static_cast<std::size_t>(keep_));
    std::vector<Candidate> out;
    for (std::size_t i : order) {
      out.push_back(all_[i].c);
      out.back().score.extra["phase"] = static_cast<double>(all_[i].phase);
    }
    return out;
  }

  std::int64_t candidates_, perturbations_, chain_, keep_, starts_, batch_;
  double p_, temperature_;
  std::vector<Remembered> all_;                           // everything scored, first seen first
  std::unordered_map<std::string, std::size_t> by_hash_;  // hash -> index into all_
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, PerturbStrategy, "perturb", "1.0.0",
                "SMASH's search: random candidates, perturbations of the best, then a Markov "
                "chain of mutations (needs a space with mutate(), ABI 1.5)")
