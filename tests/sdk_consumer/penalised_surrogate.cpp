// A third-party surrogate built from another one (ABI 1.2: SurrogateFactory, Surrogate::attach):
// the score of any surrogate named by option `inner`, minus `penalty` per log10 of the
// parameter count. The kernel creates the inner surrogate; this plugin never names a library.
#include <cmath>
#include <memory>
#include <vector>

#include <hypernas/surrogate.h>

namespace {

class PenalisedSurrogate final : public hypernas::Surrogate {
 public:
  static const hypernas::ParamTable& params() noexcept {
    static const hypernas::ParamTable table = [] {
      hypernas::ParamTable t;
      t.add_string("inner", "depth", "the surrogate whose score is penalised");
      t.add_real("penalty", 0.5, "subtracted per log10 of the parameter count", 0.0);
      return t;
    }();
    return table;
  }
  explicit PenalisedSurrogate(const hypernas::Options& o)
      : inner_name_(o.get_string("inner")), penalty_(o.get_real("penalty")) {}
  void attach(const hypernas::SurrogateFactory& factory) override {
    inner_ = factory.create(inner_name_, {});
  }
  std::uint32_t capabilities() const override { return inner_ ? inner_->capabilities() : 0; }
  void fit(hypernas::Context& ctx, const hypernas::FitRequest& r) override { inner_->fit(ctx, r); }
  std::vector<hypernas::Score> score(hypernas::Context& ctx,
                                     const hypernas::ScoreRequest& r) override {
    std::vector<hypernas::Score> out = inner_->score(ctx, r);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i].extra["inner"] = out[i].value;
      out[i].value -= penalty_ * std::log10(1.0 + r.space->stats(*r.archs[i]).params);
    }
    return out;
  }
  std::string save_state() const override { return inner_->save_state(); }
  void load_state(const std::string& blob) override { inner_->load_state(blob); }

 private:
  std::string inner_name_;
  double penalty_;
  std::shared_ptr<hypernas::Surrogate> inner_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, PenalisedSurrogate, "penalised_example", "1.0.0",
                "another surrogate's score minus a parameter-count penalty (built from it by name)")
