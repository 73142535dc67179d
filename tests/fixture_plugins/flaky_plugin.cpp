// A surrogate that fails on purpose, for the evaluation service's tests: on NB201 cells it
// scores NaN when the first edge is `none`, throws hypernas::Error when the first edge is
// `avg_pool_3x3`, runs out of memory (std::bad_alloc) when it is `nor_conv_1x1` and `oom` is
// set, and otherwise scores the cell's number of graph nodes. With `always` it throws on every
// architecture; with `usage` it throws a UsageError (a caller's mistake, which stops the run).
#include <cmath>
#include <limits>
#include <new>

#include <hypernas/surrogate.h>

namespace {

using namespace hypernas;

class FlakySurrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_bool("always", false, "throw on every architecture");
      t.add_bool("oom", false, "throw std::bad_alloc when the first edge is nor_conv_1x1");
      t.add_bool("usage", false, "throw a UsageError on every architecture");
      t.add_int("verbosity", 0, "changes no score", 0).score_neutral();
      t.add_int("exits", 0,
                "per-exit scores: exit k has accuracy (k+1)/(exits+1)/seed and FLOPs "
                "1000 (k+1) + nodes",
                0);
      return t;
    }();
    return table;
  }
  explicit FlakySurrogate(const Options& o)
      : always_(o.get_bool("always")),
        oom_(o.get_bool("oom")),
        usage_(o.get_bool("usage")),
        exits_(o.get_int("exits")) {}
  std::uint32_t capabilities() const override { return kUsesSeed; }
  void fit(Context&, const FitRequest&) override {}
  std::vector<Score> score(Context&, const ScoreRequest& r) override {
    std::vector<Score> out;
    for (std::size_t i = 0; i < r.archs.size(); ++i) {
      const std::string& text = r.archs[i]->text;
      if (usage_) throw UsageError("flaky: asked to throw a usage error");
      if (always_) throw Error(cat("flaky: asked to fail on ", text));
      const std::string first = text.substr(0, text.find('~'));
      if (first == "|avg_pool_3x3")
        throw Error("flaky: cannot score a cell that starts with a pool");
      if (oom_ && first == "|nor_conv_1x1") throw std::bad_alloc();
      Score s;
      s.value = first == "|none" ? std::numeric_limits<double>::quiet_NaN()
                                 : static_cast<double>(boost::num_vertices(r.archs[i]->graph));
      s.extra["seed_low_bits"] = r.seeds.empty() ? -1.0 : static_cast<double>(r.seeds[i] % 1000);
      const auto nodes = static_cast<std::int64_t>(boost::num_vertices(r.archs[i]->graph));
      for (std::int64_t k = 0; k < exits_; ++k)
        s.exits.push_back({static_cast<double>(k + 1) / static_cast<double>(exits_ + 1) /
                               static_cast<double>(1 + r.seeds[i] % 7),
                           1000 * (k + 1) + nodes});
      out.push_back(s);
    }
    return out;
  }

 private:
  bool always_, oom_, usage_;
  std::int64_t exits_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, FlakySurrogate, "flaky", "1.0.0",
                "fixture: NaN, Error or bad_alloc on some NB201 cells")
