// A surrogate built against a frozen copy of the ABI 1.0 SDK headers (vendor/sdk_1_0/include), as a
// plugin author who has not rebuilt since 1.0 would have it. The host of ABI 1.1 must load it and
// every call it makes must land in the right place: Executor::parameters() and forward() (whose
// slots the 1.1 executor keeps), Context, ResultStore, ParamTable and ScoreRequest (which 1.1
// only grew at the end).
#include <cmath>

#include <ATen/ATen.h>

#include <hypernas/surrogate.h>

#if HYPERNAS_ABI_MINOR != 0
#error "this fixture must be built against the ABI 1.0 headers"
#endif

namespace {

using namespace hypernas;

class LegacySurrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_real("scale", 1.0, "multiplies the score", 0.0);
      return t;
    }();
    return table;
  }
  explicit LegacySurrogate(const Options& o) : scale_(o.get_real("scale")) {}
  std::uint32_t capabilities() const override { return 0; }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    const Executor* exec = ctx.executor();
    if (exec == nullptr) throw Error("legacy fixture: no executor");
    std::vector<Score> out;
    for (const Architecture* a : r.archs) {
      // The 1.0 layout of ParamShape: name, node, shape.
      std::int64_t total = 0;
      WeightMap weights;
      for (const ParamShape& p : exec->parameters(*a)) {
        std::int64_t n = 1;
        for (std::int64_t d : p.shape) n *= d;
        total += n;
        weights.emplace(p.name, at::full(p.shape, 0.01));
      }
      const std::int64_t channels = a->graph[0].c_out;
      const auto logits = exec->forward(*a, weights, at::ones({2, channels, 8, 8}));
      Score s;
      s.value = scale_ * std::log10(1.0 + static_cast<double>(total));
      s.extra["executor_params"] = static_cast<double>(total);
      s.extra["logits"] = logits.empty() ? 0.0 : static_cast<double>(logits.back().size(1));
      s.extra["hash_length"] = static_cast<double>(ctx.store().hash(*a).size());
      out.push_back(s);
    }
    ctx.log().debug("legacy fixture scored " + std::to_string(out.size()));
    return out;
  }

 private:
  double scale_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, LegacySurrogate, "legacy_1_0", "1.0.0",
                "fixture built against the ABI 1.0 SDK: parameter count through the executor")
