// A strategy built against the frozen ABI 1.0 headers, as a third party wrote them then: it
// scores the first `count` architectures of a finite space by calling the surrogate itself,
// with a ScoreRequest of the 1.0 layout, and records each result through Context::store(). The
// 1.1 host must run it, and a 1.1 surrogate it calls must still get its per-evaluation seeds.
#include <hypernas/strategy.h>

#if HYPERNAS_ABI_MINOR != 0
#error "this fixture must be built against the ABI 1.0 headers"
#endif

namespace {

using namespace hypernas;

class LegacyStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("count", 8, "architectures to score, from index 0", 1);
      return t;
    }();
    return table;
  }
  explicit LegacyStrategy(const Options& o) : count_(o.get_int("count")) {}

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    std::vector<Candidate> out;
    for (std::int64_t i = 0; i < count_; ++i) {
      ctx.check_cancelled();
      Candidate c;
      c.arch = req.space->at(static_cast<std::uint64_t>(i));
      c.hash = ctx.store().hash(c.arch);
      c.stats = req.space->stats(c.arch);
      if (auto prior = ctx.store().find_evaluation(c.hash, req.surrogate_key)) {
        c.score.value = prior->score;
        c.score.extra = prior->extra;
        c.reused = true;
      } else {
        ScoreRequest sr;  // the 1.0 layout: no seeds
        sr.space = req.space;
        sr.data = req.data;
        sr.archs = {&c.arch};
        sr.batch_size = req.eval_batch_size;
        sr.max_images = req.eval_images;
        c.score = req.surrogate->score(ctx, sr).at(0);
        ctx.store().record_architecture(c.arch);
        Evaluation e;
        e.arch_hash = c.hash;
        e.surrogate = req.surrogate_key;
        e.score = c.score.value;
        e.extra = c.score.extra;
        ctx.store().record_evaluation(e);
      }
      out.push_back(std::move(c));
    }
    return out;
  }

 private:
  std::int64_t count_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, LegacyStrategy, "legacy_strategy_1_0", "1.0.0",
                "fixture built against the ABI 1.0 SDK: scores index 0..count-1 by itself")
