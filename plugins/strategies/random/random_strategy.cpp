// Random search (GHN's and SMASH's): sample N distinct architectures, score each with the
// surrogate, keep the top k. Every candidate is recorded as soon as it is scored; on a rerun
// of the same experiment the same seed draws the same candidates and reuses their scores.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unordered_set>

#include <hypernas/strategy.h>

namespace {

using namespace hypernas;

class RandomStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("candidates", 1000, "distinct architectures to sample and score", 1);
      t.add_int("keep", 10, "how many of the best to return", 1);
      t.add_int("batch", 1, "architectures per call to the surrogate (larger: faster GPU scoring)", 1);
      t.add_bool("reuse", true, "reuse scores already in the experiment's store");
      return t;
    }();
    return table;
  }
  explicit RandomStrategy(const Options& o)
      : candidates_(o.get_int("candidates")), keep_(o.get_int("keep")),
        batch_(o.get_int("batch")), reuse_(o.get_bool("reuse")) {}

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    HYPERNAS_CHECK(req.surrogate && req.space, "random search needs a surrogate and a space");
    const SearchSpace& space = *req.space;
    std::int64_t n = candidates_;
    if (auto size = space.size()) n = std::min<std::int64_t>(n, static_cast<std::int64_t>(*size));

    // Draw first, so the candidates depend only on the seed, not on what is already scored.
    std::vector<Candidate> pool = draw(ctx, space, n);

    ResultStore& store = ctx.store();
    std::vector<char> done(pool.size(), 0);
    std::int64_t reused = 0;
    auto progress = ctx.progress("random search", static_cast<std::int64_t>(pool.size()));
    double best = -std::numeric_limits<double>::infinity();
    bool stopped = false;
    for (std::size_t next = 0; next < pool.size() && !stopped;) {
      ctx.check_cancelled();
      // The next batch of candidates without a recorded score; recorded ones are reused.
      std::vector<std::size_t> batch;
      while (next < pool.size() && static_cast<std::int64_t>(batch.size()) < batch_) {
        Candidate& c = pool[next];
        c.stats = space.stats(c.arch);
        c.hash = store.hash(c.arch);
        auto prior = reuse_ ? store.find_evaluation(c.hash, req.surrogate_key) : std::nullopt;
        if (prior) {
          c.score.value = prior->score;
          c.score.extra = prior->extra;
          c.reused = true;
          done[next] = 1;
          ++reused;
          best = std::max(best, c.score.value);
          progress->advance(1);
        } else {
          batch.push_back(next);
        }
        ++next;
      }
      if (batch.empty()) continue;
      ScoreRequest sr;
      sr.space = &space;
      sr.data = req.data;
      sr.batch_size = req.eval_batch_size;
      sr.max_images = req.eval_images;
      for (std::size_t i : batch) sr.archs.push_back(&pool[i].arch);
      auto t0 = std::chrono::steady_clock::now();
      std::vector<Score> scores = req.surrogate->score(ctx, sr);
      double each = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                    static_cast<double>(batch.size());
      HYPERNAS_CHECK(scores.size() == batch.size(), "surrogate returned ", scores.size(),
                     " scores for ", batch.size(), " architectures");
      for (std::size_t j = 0; j < batch.size(); ++j) {
        Candidate& c = pool[batch[j]];
        c.score = std::move(scores[j]);
        c.seconds = each;
        done[batch[j]] = 1;
        HYPERNAS_CHECK(std::isfinite(c.score.value), "surrogate scored ", c.arch.text, " as ",
                       c.score.value, " (not finite)");
        store.record_architecture(c.arch);
        Evaluation e;
        e.arch_hash = c.hash;
        e.surrogate = req.surrogate_key;
        e.score = c.score.value;
        e.seconds = each;
        e.extra = c.score.extra;
        e.extra["params"] = static_cast<double>(c.stats.params);
        e.extra["flops"] = static_cast<double>(c.stats.flops);
        store.record_evaluation(e);
        best = std::max(best, c.score.value);
        progress->advance(1, cat("best ", best));
        if (!stopped && !ctx.notify("candidate", {{"index", double(batch[j] + 1)},
                                                  {"score", c.score.value},
                                                  {"params", double(c.stats.params)},
                                                  {"flops", double(c.stats.flops)},
                                                  {"best", best}})) {
          ctx.log().info("stopped by the script's on_candidate callback");
          stopped = true;
        }
      }
    }
    progress->finish();
    if (reused > 0)
      ctx.log().info(cat("reused ", reused, " of ", pool.size(),
                         " scores recorded by an earlier run of this experiment"));

    // Rank what was scored (all of the pool unless the callback stopped early).
    std::vector<Candidate> scored;
    for (std::size_t i = 0; i < pool.size(); ++i)
      if (done[i]) scored.push_back(std::move(pool[i]));
    std::stable_sort(scored.begin(), scored.end(), [](const Candidate& a, const Candidate& b) {
      return a.score.value > b.score.value;
    });
    if (static_cast<std::int64_t>(scored.size()) > keep_) scored.resize(keep_);
    return scored;
  }

 private:
  /// n distinct architectures. A finite space is sampled by index without replacement
  /// (Floyd's algorithm, then shuffled), which stays fast when n is close to its size; an
  /// unbounded one by rejection of repeats.
  static std::vector<Candidate> draw(Context& ctx, const SearchSpace& space, std::int64_t n) {
    std::vector<Candidate> pool;
    pool.reserve(static_cast<std::size_t>(n));
    if (auto size = space.size()) {
      std::unordered_set<std::uint64_t> chosen;
      std::vector<std::uint64_t> order;
      for (std::uint64_t j = *size - static_cast<std::uint64_t>(n); j < *size; ++j) {
        std::uint64_t t = ctx.rng().uniform_int(j + 1);
        if (!chosen.insert(t).second) t = j, chosen.insert(j);
        order.push_back(t);
      }
      std::shuffle(order.begin(), order.end(), ctx.rng().engine());
      for (std::uint64_t index : order) {
        ctx.check_cancelled();
        Candidate c;
        c.arch = space.at(index);
        pool.push_back(std::move(c));
      }
      return pool;
    }
    std::unordered_set<std::string> seen;
    std::int64_t draws = 0;
    while (static_cast<std::int64_t>(pool.size()) < n) {
      ctx.check_cancelled();
      HYPERNAS_CHECK(++draws <= 100 * n + 1000, "space '", space.name(), "' yielded only ",
                     pool.size(), " distinct architectures in ", draws - 1, " draws");
      Candidate c;
      c.arch = space.sample(ctx.rng());
      if (seen.insert(c.arch.text).second) pool.push_back(std::move(c));
    }
    return pool;
  }

  std::int64_t candidates_, keep_, batch_;
  bool reuse_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, RandomStrategy, "random", "1.0.0",
                "sample N distinct architectures, score each, keep the top k")
