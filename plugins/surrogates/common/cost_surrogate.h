#pragma once
/// @file cost_surrogate.h
/// @brief The trivial baselines every ranking is compared with: score = a cost of the
/// architecture counted by its search space (parameters or FLOPs), no data, no training.

#include <cmath>

#include <hypernas/surrogate.h>

namespace hypernas::plugins {

/// Which count a CostSurrogate scores by.
enum class CostMetric { Params = 1, Flops };

/// Scores an architecture by log10 of its parameter count or FLOPs (with prefer = "smaller",
/// the negated value, so the smallest ranks first). The raw count is in Score::extra.
template <CostMetric Metric>
class CostSurrogate final : public Surrogate {
 public:
  /// Parameters: `prefer` ("larger" scores larger networks higher, "smaller" the reverse).
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_string("prefer", "larger", "which networks score higher", {"larger", "smaller"});
      return t;
    }();
    return table;
  }
  /// From resolved options.
  explicit CostSurrogate(const Options& o)
      : sign_(o.get_string("prefer") == "larger" ? 1.0 : -1.0) {}
  std::uint32_t capabilities() const override { return 0; }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context&, const ScoreRequest& r) override {
    HYPERNAS_CHECK(r.space != nullptr, "the ", kName, " surrogate needs the search space");
    std::vector<Score> out;
    out.reserve(r.archs.size());
    for (const Architecture* a : r.archs) {
      ArchStats st = r.space->stats(*a);
      double count = static_cast<double>(Metric == CostMetric::Params ? st.params : st.flops);
      Score s;
      s.value = sign_ * std::log10(std::max(1.0, count));
      s.extra[kName] = count;
      out.push_back(std::move(s));
    }
    return out;
  }
  /// "params" or "flops".
  static constexpr const char* kName = Metric == CostMetric::Params ? "params" : "flops";

 private:
  double sign_;
};

}  // namespace hypernas::plugins
