// GHN's anytime-prediction search (Zhang, Ren, Urtasun, ICLR 2019, §5.2): random search whose
// candidates are multi-exit networks, ranked by the area under their accuracy-vs-FLOPs curve.
//
// Options: `candidates` (100) distinct architectures are drawn, `keep` (5) of the best are
// returned, `batch` (1) architectures go to each call of the evaluation service, `flops_min` and
// `flops_max` (0: derive each) bound the budgets the area covers, `axis` ("linear" or "log")
// says whether the budget is integrated over FLOPs or over log FLOPs.
//
// run():
// - Draws as `random` does, before scoring anything, so the candidates depend only on the seed:
//   a finite space by index without replacement, an unbounded one by rejecting repeats. Two
//   draws are one candidate when the results store gives them one hash (ResultStore::hash).
// - Scores them through the kernel's evaluation service (`batch` at a time, one progress bar),
//   which records each as soon as it is scored and reuses what the store holds. A candidate the
//   surrogate fails on is skipped (the service records why). When the script's callback asks to
//   stop, what was scored is ranked. Ctrl-C or a time limit ends run() with Cancelled;
//   everything scored is already recorded, and a rerun with the same seed draws the same
//   candidates and scores only what is missing.
// - Every scored candidate must carry per-exit scores (Score::exits): otherwise run() throws an
//   Error naming the surrogate's key, since only a multi_exit surrogate (ghn) has them.
// - The FLOPs range [lo, hi]: flops_min and flops_max where given, each one that is 0 derived
//   from all exits of all scored candidates (the cheapest exit's FLOPs to the costliest's). It
//   must have lo < hi, and lo > 0 on a log axis.
// - Each candidate's anytime area is hypernas::anytime_auc(exits, lo, hi, axis) (anytime.h):
//   the mean over budgets in [lo, hi] of the accuracy of its best exit within the budget.
//   Its Score keeps the surrogate's exits and extra values, with value = the area, and extra
//   "auc" (the area), "final_accuracy" (the surrogate's own value), "kept" and "front" (1 or 0),
//   "flops_lo" and "flops_hi" (the range, so that a script can put trained curves on it).
// - The Pareto front is hypernas::pareto_front() of every (FLOPs, accuracy) exit point of every
//   scored candidate; a candidate owning at least one of its points has front = 1.
// - Returned: the `keep` best by area (kept = 1), best first, then every other front owner, by
//   area, so that the front of the returned exits is the front of everything scored. One log
//   line sums it up: the FLOPs range and where it came from, the best area, the front's size.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

#include <hypernas/anytime.h>
#include <hypernas/strategy.h>

#include "../common/pool.h"

namespace {

using namespace hypernas;

/// A FLOPs count as users read it: whole numbers in full, not in exponent notation.
std::string flops_text(double flops) {
  if (flops == std::floor(flops) && std::fabs(flops) < 1e18)
    return std::to_string(static_cast<std::int64_t>(flops));
  return cat(flops);
}

class AnytimeStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("candidates", 100, "distinct architectures to sample and score", 1);
      t.add_int("keep", 5, "how many of the best by anytime area to return (front owners follow)",
                1);
      t.add_int("batch", 1, "architectures per call to the surrogate (larger: faster GPU scoring)",
                1);
      t.add_real("flops_min", 0.0,
                 "lowest FLOPs budget of the anytime area (0: the cheapest exit scored)", 0.0);
      t.add_real("flops_max", 0.0,
                 "highest FLOPs budget of the anytime area (0: the costliest exit scored)", 0.0);
      t.add_string("axis", "linear",
                   "budget axis of the anytime area: FLOPs (linear) or log FLOPs (log)",
                   {"linear", "log"});
      return t;
    }();
    return table;
  }
  explicit AnytimeStrategy(const Options& o)
      : candidates_(o.get_int("candidates")),
        keep_(o.get_int("keep")),
        batch_(o.get_int("batch")),
        flops_min_(o.get_real("flops_min")),
        flops_max_(o.get_real("flops_max")),
        axis_(o.get_string("axis") == "log" ? FlopsAxis::Log : FlopsAxis::Linear) {
    HYPERNAS_CHECK(flops_min_ == 0 || flops_max_ == 0 || flops_min_ < flops_max_,
                   "anytime: flops_min (", flops_text(flops_min_), ") must be below flops_max (",
                   flops_text(flops_max_), ")");
  }

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    HYPERNAS_CHECK(req.surrogate && req.space, "anytime search needs a surrogate and a space");
    HYPERNAS_CHECK(req.evaluations != nullptr,
                   "anytime search needs the kernel's evaluation service (a host of ABI >= 1.1)");
    const std::string key = req.evaluations->key();
    // Draw first, so the candidates depend only on the seed, not on what is already scored.
    const std::vector<Architecture> pool =
        strategies::draw_distinct(ctx, *req.space, candidates_, strategies::Distinct::Hash);
    std::vector<Candidate> scored =
        strategies::score_pool(ctx, *req.evaluations, pool, batch_, "anytime search",
                               [&key](const std::vector<Candidate>& batch) {
                                 for (const Candidate& c : batch) check_exits(c, key);
                               })
            .scored;
    if (scored.empty()) return {};

    const auto [lo, hi, origin] = flops_range(scored);
    for (Candidate& c : scored) {
      const double area = anytime_auc(c.score.exits, lo, hi, axis_);
      c.score.extra["final_accuracy"] = c.score.value;
      c.score.extra["auc"] = area;
      c.score.extra["kept"] = 0;
      c.score.extra["front"] = 0;
      c.score.extra["flops_lo"] = lo;
      c.score.extra["flops_hi"] = hi;
      c.score.value = area;
    }

    std::vector<FrontPoint> points;
    for (std::size_t i = 0; i < scored.size(); ++i)
      for (std::size_t x = 0; x < scored[i].score.exits.size(); ++x)
        points.push_back({scored[i].score.exits[x].flops, scored[i].score.exits[x].accuracy, i, x});
    const std::vector<FrontPoint> front = pareto_front(std::move(points));
    for (const FrontPoint& p : front) scored[p.source].score.extra["front"] = 1;

    std::vector<std::size_t> order(scored.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&scored](std::size_t a, std::size_t b) {
      return scored[a].score.value > scored[b].score.value;
    });
    std::vector<Candidate> out;
    std::int64_t owners = 0;
    for (std::size_t rank = 0; rank < order.size(); ++rank) {
      Candidate& c = scored[order[rank]];
      const bool on_front = c.score.extra["front"] == 1;
      owners += on_front ? 1 : 0;
      if (static_cast<std::int64_t>(rank) < keep_) {
        c.score.extra["kept"] = 1;
        out.push_back(std::move(c));
      } else if (on_front) {
        out.push_back(std::move(c));
      }
    }
    ctx.log().info(cat(scored.size(), " candidates, FLOPs range [", flops_text(lo), ", ",
                       flops_text(hi), "] (", origin, ", ",
                       axis_ == FlopsAxis::Log ? "log" : "linear", " axis): best area ",
                       out.front().score.value, " (", abbreviate(out.front().arch.text, 80),
                       "); Pareto front of ", front.size(), " exits from ", owners,
                       " candidates; returning ", out.size()));
    return out;
  }

 private:
  /// Throws unless `c` has per-exit scores that are usable: finite accuracies, FLOPs >= 0.
  static void check_exits(const Candidate& c, const std::string& key) {
    HYPERNAS_CHECK(!c.score.exits.empty(), "anytime search: surrogate '", key,
                   "' gave no per-exit scores (Score::exits) for ", abbreviate(c.arch.text),
                   c.reused ? " (a score reused from the store)" : "",
                   ": the anytime strategy needs a multi_exit surrogate (ghn), one that scores "
                   "every exit of a multi-exit network");
    for (std::size_t x = 0; x < c.score.exits.size(); ++x) {
      const ExitScore& e = c.score.exits[x];
      HYPERNAS_CHECK(std::isfinite(e.accuracy) && e.flops >= 0, "anytime search: surrogate '", key,
                     "' scored exit ", x, " of ", abbreviate(c.arch.text), " with accuracy ",
                     e.accuracy, " at ", e.flops,
                     " FLOPs (expected a finite accuracy, FLOPs >= 0)");
    }
  }

  /// The budgets the area covers.
  struct FlopsRange {
    double lo, hi;
    std::string origin;  ///< Where they come from, for messages.
  };
  /// [lo, hi]: the options where given, else the span of every exit's FLOPs.
  FlopsRange flops_range(const std::vector<Candidate>& scored) const {
    std::int64_t cheapest = std::numeric_limits<std::int64_t>::max();
    std::int64_t costliest = std::numeric_limits<std::int64_t>::min();
    for (const Candidate& c : scored)
      for (const ExitScore& e : c.score.exits) {
        cheapest = std::min(cheapest, e.flops);
        costliest = std::max(costliest, e.flops);
      }
    const double lo = flops_min_ > 0 ? flops_min_ : static_cast<double>(cheapest);
    const double hi = flops_max_ > 0 ? flops_max_ : static_cast<double>(costliest);
    const std::string origin = cat(flops_min_ > 0 ? "flops_min" : "cheapest exit", " to ",
                                   flops_max_ > 0 ? "flops_max" : "costliest exit");
    HYPERNAS_CHECK(lo < hi, "anytime search: the FLOPs range [", flops_text(lo), ", ",
                   flops_text(hi), "] (", origin,
                   ") is empty; set flops_min and flops_max to budgets with flops_min < flops_max");
    HYPERNAS_CHECK(axis_ != FlopsAxis::Log || lo > 0, "anytime search: a log FLOPs axis needs a ",
                   "range above 0, got [", flops_text(lo), ", ", flops_text(hi), "] (", origin,
                   "); set flops_min > 0");
    return {lo, hi, origin};
  }

  std::int64_t candidates_, keep_, batch_;
  double flops_min_, flops_max_;
  FlopsAxis axis_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, AnytimeStrategy, "anytime", "1.0.0",
                "GHN's anytime search: random multi-exit candidates ranked by the area under "
                "their accuracy-vs-FLOPs curve")
