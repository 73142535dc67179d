// A search space built against a frozen copy of the ABI 1.3 SDK headers (vendor/sdk_1_3/include),
// as a plugin author who has not rebuilt since 1.3 would have it. It declares architecture
// parameters (1.0) but its vtable ends before SearchSpace::relaxed() (1.4): the host of ABI 1.4
// must load it and let it sample, tell strategies its minor (SearchRequest::space_abi_minor), and
// the `gradient` strategy must refuse it by name rather than call the missing slot.
#include <hypernas/graph_builder.h>
#include <hypernas/space.h>

#if HYPERNAS_ABI_MINOR != 3
#error "this fixture must be built against the ABI 1.3 headers"
#endif

namespace {

using namespace hypernas;

class Legacy13Space final : public SearchSpace {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("input_channels", 1, "image channels", 1);
      t.add_int("input_size", 8, "image size", 1);
      t.add_int("classes", 2, "classes", 1);
      return t;
    }();
    return table;
  }
  explicit Legacy13Space(const Options& o)
      : channels_(o.get_int("input_channels")), classes_(o.get_int("classes")) {}
  std::string name() const override { return "legacy_space_1_3"; }
  Architecture sample(Rng& rng) const override {
    return make(1 + 2 * static_cast<int>(rng.uniform_int(2)));
  }
  Architecture parse(const std::string& text) const override {
    if (text == "k1") return make(1);
    if (text == "k3") return make(3);
    throw Error(cat("legacy_space_1_3: unknown architecture '", text, "' (k1 or k3)"));
  }
  std::vector<std::string> op_vocabulary() const override {
    return {"input", "conv", "bn", "relu", "gap", "linear"};
  }
  ArchStats stats(const Architecture&) const override { return {}; }
  std::vector<ArchParamSpec> arch_params() const override { return {{"alpha", {1, 2}}}; }
  Architecture discretize(const std::vector<at::Tensor>&, std::int64_t) const override {
    return make(3);
  }

 private:
  Architecture make(int k) const {
    GraphBuilder b;
    auto in = b.add(GraphBuilder::node("input", "input", 0, channels_, 0, -1), {});
    OpNode conv = GraphBuilder::node("conv", "conv", channels_, 4, 0, -1);
    conv.kernel = k;
    auto c = b.add(conv, {in});
    auto bn = b.add(GraphBuilder::node("bn", "bn", 4, 4, 0, -1), {c});
    auto r = b.add(GraphBuilder::node("relu", "relu", 4, 4, 0, -1), {bn});
    auto g = b.add(GraphBuilder::node("gap", "gap", 4, 4, 0, -1), {r});
    OpNode head = GraphBuilder::node("linear", "head", 4, classes_, 0, -1);
    head.exit = 0;
    b.add(head, {g});
    return {"legacy_space_1_3", cat("k", k), b.take()};
  }
  std::int64_t channels_, classes_;
};

}  // namespace

HYPERNAS_PLUGIN(Space, Legacy13Space, "legacy_space_1_3", "1.3.0",
                "fixture built against the ABI 1.3 SDK: a space with architecture parameters but "
                "no relaxed network")
