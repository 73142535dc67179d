// A surrogate built against a frozen copy of the ABI 1.1 SDK headers (vendor/sdk_1_1/include), as
// a plugin author who has not rebuilt since 1.1 would have it. The host of ABI 1.2 must load it,
// must not call Surrogate::attach() on it (its vtable ends before that slot), and every call it
// makes must land in the right place: Executor::parameters() with roles and fan-in,
// ScoreRequest::seeds, ParamTable::score_neutral().
#include <cmath>

#include <hypernas/surrogate.h>

#if HYPERNAS_ABI_MINOR != 1
#error "this fixture must be built against the ABI 1.1 headers"
#endif

namespace {

using namespace hypernas;

class Legacy11Surrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_real("scale", 1.0, "multiplies the score", 0.0);
      t.add_bool("verbose", false, "logs each score").score_neutral();
      return t;
    }();
    return table;
  }
  explicit Legacy11Surrogate(const Options& o)
      : scale_(o.get_real("scale")), verbose_(o.get_bool("verbose")) {}
  std::uint32_t capabilities() const override { return kUsesSeed; }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    const Executor* exec = ctx.executor();
    if (exec == nullptr) throw Error("legacy 1.1 fixture: no executor");
    if (r.seeds.size() != r.archs.size()) throw Error("legacy 1.1 fixture: no seeds");
    std::vector<Score> out;
    for (std::size_t i = 0; i < r.archs.size(); ++i) {
      // Weights only (ParamRole, 1.1), counted with their fan-in.
      double weights = 0, fan_in = 0;
      for (const ParamShape& p : exec->parameters(*r.archs[i])) {
        if (p.role != ParamRole::ConvWeight && p.role != ParamRole::LinearWeight) continue;
        std::int64_t n = 1;
        for (std::int64_t d : p.shape) n *= d;
        weights += static_cast<double>(n);
        fan_in += static_cast<double>(p.fan_in);
      }
      Score s;
      s.value = scale_ * std::log10(1.0 + weights);
      s.extra["weights"] = weights;
      s.extra["fan_in"] = fan_in;
      s.extra["seed_low_bits"] = static_cast<double>(r.seeds[i] & 0xffff);
      if (verbose_) ctx.log().info("legacy 1.1 fixture: " + std::to_string(s.value));
      out.push_back(s);
    }
    return out;
  }

 private:
  double scale_;
  bool verbose_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, Legacy11Surrogate, "legacy_1_1", "1.1.0",
                "fixture built against the ABI 1.1 SDK: weight count through the executor")
