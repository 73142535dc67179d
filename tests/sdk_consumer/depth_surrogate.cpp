// A third-party surrogate: scores an architecture by the length of the longest path through
// its graph (its depth in operator nodes), optionally penalised by parameter count.
#include <algorithm>
#include <cmath>
#include <vector>

#include <hypernas/surrogate.h>

namespace {

class DepthSurrogate final : public hypernas::Surrogate {
 public:
  static const hypernas::ParamTable& params() noexcept {
    static const hypernas::ParamTable table = [] {
      hypernas::ParamTable t;
      t.add_real("param_penalty", 0.0, "subtracted per log10 of the parameter count", 0.0);
      return t;
    }();
    return table;
  }
  explicit DepthSurrogate(const hypernas::Options& o) : penalty_(o.get_real("param_penalty")) {}
  std::uint32_t capabilities() const override { return 0; }
  void fit(hypernas::Context&, const hypernas::FitRequest&) override {}
  std::vector<hypernas::Score> score(hypernas::Context& ctx,
                                     const hypernas::ScoreRequest& r) override {
    std::vector<hypernas::Score> out;
    for (const auto* a : r.archs) {
      // Vertex order is topological, so one forward pass gives every longest path.
      const auto& g = a->graph;
      std::vector<double> depth(boost::num_vertices(g), 0.0);
      double longest = 0;
      for (std::size_t v = 0; v < depth.size(); ++v) {
        for (auto [e, end] = boost::in_edges(v, g); e != end; ++e)
          depth[v] = std::max(depth[v], depth[boost::source(*e, g)] + 1);
        longest = std::max(longest, depth[v]);
      }
      hypernas::Score s;
      s.value = longest - penalty_ * std::log10(1.0 + r.space->stats(*a).params);
      s.extra["depth"] = longest;
      out.push_back(s);
    }
    ctx.log().debug("scored " + std::to_string(out.size()) + " architectures");
    return out;
  }

 private:
  double penalty_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, DepthSurrogate, "depth", "1.2.0",
                "third-party example: scores by longest path through the graph")
