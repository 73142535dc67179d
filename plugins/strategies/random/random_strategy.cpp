// Random search (GHN's and SMASH's): sample N distinct architectures, score each through the
// kernel's evaluation service, keep the top k. The service records every candidate as soon as
// it is scored and reuses what an earlier run stored; the same seed draws the same candidates,
// so a rerun of a killed search scores only what is missing.
#include <algorithm>

#include <hypernas/strategy.h>

#include "../common/pool.h"

namespace {

using namespace hypernas;

class RandomStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("candidates", 1000, "distinct architectures to sample and score", 1);
      t.add_int("keep", 10, "how many of the best to return", 1);
      t.add_int("batch", 1, "architectures per call to the surrogate (larger: faster GPU scoring)",
                1);
      return t;
    }();
    return table;
  }
  explicit RandomStrategy(const Options& o)
      : candidates_(o.get_int("candidates")),
        keep_(o.get_int("keep")),
        batch_(o.get_int("batch")) {}

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    HYPERNAS_CHECK(req.surrogate && req.space, "random search needs a surrogate and a space");
    HYPERNAS_CHECK(req.evaluations != nullptr,
                   "random search needs the kernel's evaluation service (a host of ABI >= 1.1)");
    // Draw first, so the candidates depend only on the seed, not on what is already scored.
    const std::vector<Architecture> pool =
        strategies::draw_distinct(ctx, *req.space, candidates_, strategies::Distinct::Text);
    std::vector<Candidate> scored =
        strategies::score_pool(ctx, *req.evaluations, pool, batch_, "random search",
                               [](const std::vector<Candidate>&) {})
            .scored;

    std::stable_sort(scored.begin(), scored.end(), [](const Candidate& a, const Candidate& b) {
      return a.score.value > b.score.value;
    });
    if (static_cast<std::int64_t>(scored.size()) > keep_) scored.resize(keep_);
    return scored;
  }

 private:
  std::int64_t candidates_, keep_, batch_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, RandomStrategy, "random", "1.1.0",
                "sample N distinct architectures, score each, keep the top k")
