// A third-party strategy, written against the installed SDK only: scores the first `count`
// architectures of a finite space, in index order, through the kernel's evaluation service
// (ABI 1.1), which records, reuses, times and reports each; returns the best `keep`.
#include <algorithm>

#include <hypernas/strategy.h>

namespace {

using namespace hypernas;

class ExhaustiveStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("count", 20, "architectures to score, from index 0", 1);
      t.add_int("keep", 3, "how many of the best to return", 1);
      return t;
    }();
    return table;
  }
  explicit ExhaustiveStrategy(const Options& o)
      : count_(o.get_int("count")), keep_(o.get_int("keep")) {}

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    HYPERNAS_CHECK(req.space->size(), "exhaustive: space '", req.space->name(), "' is not finite");
    HYPERNAS_CHECK(req.evaluations, "exhaustive: needs a host of ABI >= 1.1");
    const auto n = std::min<std::uint64_t>(static_cast<std::uint64_t>(count_), *req.space->size());
    std::vector<Architecture> archs;
    for (std::uint64_t i = 0; i < n; ++i) archs.push_back(req.space->at(i));
    auto progress = ctx.progress("exhaustive", static_cast<std::int64_t>(n));
    Evaluated e = req.evaluations->evaluate(ctx, archs, progress.get());
    ctx.log().info(cat("scored ", e.scored.size(), ", failed ", e.failed.size(), ", key ",
                       req.evaluations->key()));
    std::vector<Candidate> top = std::move(e.scored);
    std::stable_sort(top.begin(), top.end(), [](const Candidate& a, const Candidate& b) {
      return a.score.value > b.score.value;
    });
    if (static_cast<std::int64_t>(top.size()) > keep_) top.resize(static_cast<std::size_t>(keep_));
    return top;
  }

 private:
  std::int64_t count_, keep_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, ExhaustiveStrategy, "exhaustive_example", "1.0.0",
                "third-party example: the first N architectures of a finite space")
