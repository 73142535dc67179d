// Random search (GHN's and SMASH's): sample N distinct architectures, score each through the
// kernel's evaluation service, keep the top k. The service records every candidate as soon as
// it is scored and reuses what an earlier run stored; the same seed draws the same candidates,
// so a rerun of a killed search scores only what is missing.
#include <algorithm>
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
    std::int64_t n = candidates_;
    if (auto size = req.space->size())
      n = std::min<std::int64_t>(n, static_cast<std::int64_t>(*size));

    // Draw first, so the candidates depend only on the seed, not on what is already scored.
    const std::vector<Architecture> pool = draw(ctx, *req.space, n);

    std::vector<Candidate> scored;
    std::size_t failed = 0;
    auto progress = ctx.progress("random search", static_cast<std::int64_t>(pool.size()));
    for (std::size_t next = 0; next < pool.size();) {
      const std::size_t end = std::min(pool.size(), next + static_cast<std::size_t>(batch_));
      Evaluated e = req.evaluations->evaluate(
          ctx,
          std::vector<Architecture>(pool.begin() + static_cast<std::ptrdiff_t>(next),
                                    pool.begin() + static_cast<std::ptrdiff_t>(end)),
          progress.get());
      next = end;
      failed += e.failed.size();
      for (auto& c : e.scored) scored.push_back(std::move(c));
      if (e.stop) break;
    }
    progress->finish();
    if (scored.empty() && failed > 0)
      ctx.log().warn(cat("every one of the ", failed, " candidates failed; nothing to rank"));

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
  static std::vector<Architecture> draw(Context& ctx, const SearchSpace& space, std::int64_t n) {
    std::vector<Architecture> pool;
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
        pool.push_back(space.at(index));
      }
      return pool;
    }
    std::unordered_set<std::string> seen;
    std::int64_t draws = 0;
    while (static_cast<std::int64_t>(pool.size()) < n) {
      ctx.check_cancelled();
      HYPERNAS_CHECK(++draws <= 100 * n + 1000, "space '", space.name(), "' yielded only ",
                     pool.size(), " distinct architectures in ", draws - 1, " draws");
      Architecture a = space.sample(ctx.rng());
      if (seen.insert(a.text).second) pool.push_back(std::move(a));
    }
    return pool;
  }

  std::int64_t candidates_, keep_, batch_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, RandomStrategy, "random", "1.1.0",
                "sample N distinct architectures, score each, keep the top k")
