// A test-local multi-exit surrogate for the `anytime` strategy's tests: deterministic per-exit
// scores, a function of the architecture alone. Exit k costs exit_flops(graph, input_size)[k]
// (graph_stats.h) and scores accuracy 1 - 64 / (64 + S_k) + j_k, where S_k sums c_out * kernel^2
// over the conv nodes exits 0..k depend on, and j_k in [0, 0.001) is a jitter (in steps of 1e-9)
// taken from the FNV-1a hash of "<text>#<k>" (so that no two candidates tie). The score's value is
// the last exit's accuracy. With multi_exit = false it reports that value alone, without exits (a
// single-exit surrogate, which the strategy must refuse).
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <hypernas/graph_stats.h>
#include <hypernas/hash.h>
#include <hypernas/surrogate.h>

namespace {

using namespace hypernas;

class ExitOracle final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_bool("multi_exit", true, "report per-exit scores (false: the final value alone)");
      t.add_int("input_size", 32, "height = width of the input images the FLOPs are counted on", 1);
      return t;
    }();
    return table;
  }
  explicit ExitOracle(const Options& o)
      : multi_exit_(o.get_bool("multi_exit")), input_size_(o.get_int("input_size")) {}
  std::uint32_t capabilities() const override { return multi_exit_ ? kMultiExit : 0u; }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context&, const ScoreRequest& r) override {
    std::vector<Score> out;
    for (const Architecture* a : r.archs) {
      const ArchGraph& g = a->graph;
      const std::vector<std::int64_t> flops = exit_flops(g, input_size_);
      std::vector<std::pair<std::int64_t, std::size_t>> heads;  // (exit, vertex)
      for (std::size_t v = 0; v < boost::num_vertices(g); ++v)
        if (g[v].exit >= 0) heads.emplace_back(g[v].exit, v);
      std::sort(heads.begin(), heads.end());
      HYPERNAS_CHECK(heads.size() == flops.size(), "exit_oracle: '", a->text, "' has ",
                     heads.size(), " exits, exit_flops() counted ", flops.size());
      std::vector<bool> needed(boost::num_vertices(g), false);
      Score s;
      for (std::size_t k = 0; k < heads.size(); ++k) {
        const std::vector<bool> mask = ancestors(g, heads[k].second);
        for (std::size_t v = 0; v < mask.size(); ++v) needed[v] = needed[v] || mask[v];
        double sum = 0;
        for (std::size_t v = 0; v < needed.size(); ++v)
          if (needed[v] && g[v].op == "conv")
            sum += static_cast<double>(g[v].c_out * g[v].kernel * g[v].kernel);
        const double jitter = static_cast<double>(fnv1a64(cat(a->text, "#", k)) % 1000000) / 1e9;
        s.exits.push_back({1 - 64 / (64 + sum) + jitter, flops[k]});
      }
      s.value = s.exits.back().accuracy;
      s.extra["accuracy"] = s.value;
      if (!multi_exit_) s.exits.clear();
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  bool multi_exit_;
  std::int64_t input_size_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, ExitOracle, "exit_oracle", "1.0.0",
                "test-local: deterministic per-exit accuracies and exit_flops() costs")
