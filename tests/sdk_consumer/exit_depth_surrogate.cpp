// A third-party multi-exit surrogate (ABI 1.3: exit_flops(), graph_stats.h), for the built-in
// `anytime` strategy. Exit k of a network (OpNode::exit = k; a network without exit heads has
// one exit, its last node) costs exit_flops(graph, input_size)[k], the FLOPs of everything exits
// 0..k need, and scores accuracy 1 - 1 / (1 + d_k), where d_k is the depth of exit k's head: the
// longest path, in edges, from the input to it. The score's value is the last exit's accuracy.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <hypernas/graph_stats.h>
#include <hypernas/surrogate.h>

namespace {

class ExitDepthSurrogate final : public hypernas::Surrogate {
 public:
  static const hypernas::ParamTable& params() noexcept {
    static const hypernas::ParamTable table = [] {
      hypernas::ParamTable t;
      t.add_int("input_size", 32, "height = width of the input images the FLOPs are counted on", 1);
      return t;
    }();
    return table;
  }
  explicit ExitDepthSurrogate(const hypernas::Options& o) : input_size_(o.get_int("input_size")) {}
  std::uint32_t capabilities() const override { return hypernas::kMultiExit; }
  void fit(hypernas::Context&, const hypernas::FitRequest&) override {}
  std::vector<hypernas::Score> score(hypernas::Context& ctx,
                                     const hypernas::ScoreRequest& r) override {
    std::vector<hypernas::Score> out;
    for (const auto* a : r.archs) {
      const auto& g = a->graph;
      const std::size_t n = boost::num_vertices(g);
      HYPERNAS_CHECK(n > 0, "exit_depth: architecture '", a->text, "' has an empty graph");
      // Vertex order is topological, so one forward pass gives every longest path.
      std::vector<std::int64_t> depth(n, 0);
      std::vector<std::pair<std::int64_t, std::size_t>> heads;  // (exit, vertex), exit order
      for (std::size_t v = 0; v < n; ++v) {
        for (auto [e, end] = boost::in_edges(v, g); e != end; ++e)
          depth[v] = std::max(depth[v], depth[boost::source(*e, g)] + 1);
        if (g[v].exit >= 0) heads.emplace_back(g[v].exit, v);
      }
      std::sort(heads.begin(), heads.end());
      if (heads.empty()) heads.emplace_back(0, n - 1);  // as exit_flops() counts such a graph
      const std::vector<std::int64_t> flops = hypernas::exit_flops(g, input_size_);
      HYPERNAS_CHECK(flops.size() == heads.size(), "exit_depth: '", a->text, "' has ", heads.size(),
                     " exits, exit_flops() counted ", flops.size());
      hypernas::Score s;
      for (std::size_t k = 0; k < heads.size(); ++k)
        s.exits.push_back(
            {1.0 - 1.0 / (1.0 + static_cast<double>(depth[heads[k].second])), flops[k]});
      s.value = s.exits.back().accuracy;
      s.extra["exit_count"] = static_cast<double>(s.exits.size());
      out.push_back(std::move(s));
    }
    ctx.log().debug("scored the exits of " + std::to_string(out.size()) + " architectures");
    return out;
  }

 private:
  std::int64_t input_size_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, ExitDepthSurrogate, "exit_depth", "1.3.0",
                "third-party example: per-exit accuracy from the depth of each exit head")
