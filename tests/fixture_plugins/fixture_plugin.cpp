// One source, built several times with a different FIXTURE_* definition, gives the plugins the
// registry tests load: a good one and one for each reason a plugin is refused.
#include <hypernas/surrogate.h>

namespace {

/// Scores an architecture by its number of graph nodes: a real, data-free surrogate.
class NodeCountSurrogate final : public hypernas::Surrogate {
 public:
  static const hypernas::ParamTable& params() noexcept {
    static const hypernas::ParamTable table = [] {
      hypernas::ParamTable t;
      t.add_real("weight", 1.0, "multiplies the node count", 0.0);
      t.add_bool("fail", false, "make the constructor throw (tests the factory's error path)");
      return t;
    }();
    return table;
  }
  explicit NodeCountSurrogate(const hypernas::Options& o) : weight_(o.get_real("weight")) {
    if (o.get_bool("fail")) throw hypernas::Error("fixture asked to fail in its constructor");
  }
  std::uint32_t capabilities() const override { return 0; }
  void fit(hypernas::Context&, const hypernas::FitRequest&) override {}
  std::vector<hypernas::Score> score(hypernas::Context&, const hypernas::ScoreRequest& r) override {
    std::vector<hypernas::Score> out;
    for (const auto* a : r.archs) {
      hypernas::Score s;
      s.value = weight_ * static_cast<double>(boost::num_vertices(a->graph));
      out.push_back(s);
    }
    return out;
  }

 private:
  double weight_;
};

}  // namespace

#if defined(FIXTURE_GOOD)
HYPERNAS_PLUGIN(Surrogate, NodeCountSurrogate, FIXTURE_NAME, "0.1.0",
                "fixture: scores by node count")
#elif defined(FIXTURE_NO_DESCRIPTOR)
extern "C" __attribute__((visibility("default"))) int hypernas_fixture_something() { return 1; }
#else
// A hand-made descriptor with one field wrong.
namespace {
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR HYPERNAS_ABI_MAJOR
#endif
#ifndef FIXTURE_ABI_MINOR
#define FIXTURE_ABI_MINOR HYPERNAS_ABI_MINOR
#endif
#ifdef FIXTURE_FOREIGN_BUILD
#define FIXTURE_BUILD_ID "gcc-0.0;libstdc++-0;cxx11abi-0;torch-0.1"
#elif defined(FIXTURE_SPACED_BUILD)
// This host's build id with a space after the compiler version, as ABI 1.0's clang ids had it.
// clang-format off
#define FIXTURE_BUILD_ID                                                      \
  HYPERNAS_COMPILER_ID " ;" HYPERNAS_STDLIB_ID ";" HYPERNAS_CXX11_ABI_ID ";torch-" \
      HYPERNAS_STR(TORCH_VERSION_MAJOR) "." HYPERNAS_STR(TORCH_VERSION_MINOR)
// clang-format on
#else
#define FIXTURE_BUILD_ID HYPERNAS_BUILD_ID
#endif
#ifndef FIXTURE_KIND
#define FIXTURE_KIND 1
#endif
const hypernas::PluginDescriptor kDescriptor = {
    sizeof(hypernas::PluginDescriptor),
    FIXTURE_ABI_MAJOR,
    FIXTURE_ABI_MINOR,
    FIXTURE_KIND,
    FIXTURE_NAME,
    "0.1.0",
    FIXTURE_BUILD_ID,
    "fixture with a bad descriptor",
    &NodeCountSurrogate::params,
    &hypernas::detail::create_plugin<NodeCountSurrogate>};
const hypernas::PluginDescriptor* descriptor() { return &kDescriptor; }
}  // namespace
BOOST_DLL_ALIAS(descriptor, hypernas_plugin_descriptor)
#endif
