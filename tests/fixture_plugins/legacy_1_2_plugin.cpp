// A surrogate built against a frozen copy of the ABI 1.2 SDK headers (vendor/sdk_1_2/include), as
// a plugin author who has not rebuilt since 1.2 would have it. The host of ABI 1.3 must load it,
// call Surrogate::attach() on it (1.2) with a working factory, and let it run architectures whose
// graphs use primitives added after it was built (`resample`) through the kernel's executor.
#include <cmath>
#include <memory>

#include <ATen/ATen.h>

#include <hypernas/surrogate.h>

#if HYPERNAS_ABI_MINOR != 2
#error "this fixture must be built against the ABI 1.2 headers"
#endif

namespace {

using namespace hypernas;

class Legacy12Surrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_real("scale", 1.0, "multiplies the score", 0.0);
      return t;
    }();
    return table;
  }
  explicit Legacy12Surrogate(const Options& o) : scale_(o.get_real("scale")) {}
  std::uint32_t capabilities() const override { return kUsesSeed; }
  void attach(const SurrogateFactory& factory) override { params_ = factory.create("params", {}); }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    if (!params_) throw Error("legacy 1.2 fixture: attach() was not called");
    const Executor* exec = ctx.executor();
    if (exec == nullptr) throw Error("legacy 1.2 fixture: no executor");
    std::vector<Score> inner = params_->score(ctx, r);
    for (std::size_t i = 0; i < r.archs.size(); ++i) {
      // Run the network once at its initial weights: every op must be the executor's.
      const WeightMap w = exec->init_weights(*r.archs[i], r.seeds[i], ctx.device());
      const std::vector<at::Tensor> exits =
          exec->forward(*r.archs[i], w, at::zeros({2, 3, 32, 32}, at::device(ctx.device())));
      inner[i].value *= scale_;
      inner[i].extra["exits_run"] = static_cast<double>(exits.size());
    }
    return inner;
  }

 private:
  double scale_;
  std::shared_ptr<Surrogate> params_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, Legacy12Surrogate, "legacy_1_2", "1.2.0",
                "fixture built against the ABI 1.2 SDK: parameter count through an attached member")
