// A search space built against a frozen copy of the ABI 1.4 SDK headers (vendor/sdk_1_4/include),
// as a plugin author who has not rebuilt since 1.4 would have it. It samples, parses and has a
// relaxed network (1.4), but its vtable ends before SearchSpace::mutate() (1.5): the host of ABI
// 1.5 must load it, let it sample and relax, tell strategies its minor
// (SearchRequest::space_abi_minor), and the `perturb` strategy must refuse it by name rather than
// call the missing slot.
#include <hypernas/graph_builder.h>
#include <hypernas/space.h>

#if HYPERNAS_ABI_MINOR != 4
#error "this fixture must be built against the ABI 1.4 headers"
#endif

namespace {

using namespace hypernas;

class Legacy14Space final : public SearchSpace {
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
  explicit Legacy14Space(const Options& o)
      : channels_(o.get_int("input_channels")), classes_(o.get_int("classes")) {}
  std::string name() const override { return "legacy_space_1_4"; }
  Architecture sample(Rng& rng) const override {
    return make(1 + 2 * static_cast<int>(rng.uniform_int(2)));
  }
  Architecture parse(const std::string& text) const override {
    if (text == "k1") return make(1);
    if (text == "k3") return make(3);
    throw Error(cat("legacy_space_1_4: unknown architecture '", text, "' (k1 or k3)"));
  }
  std::vector<std::string> op_vocabulary() const override {
    return {"input", "conv", "bn", "relu", "gap", "linear"};
  }
  ArchStats stats(const Architecture& arch) const override {
    return {arch.text == "k3" ? 9 : 1, 0};
  }
  std::vector<ArchParamSpec> arch_params() const override { return {{"alpha", {1, 2}}}; }
  Architecture discretize(const std::vector<at::Tensor>&, std::int64_t) const override {
    return make(3);
  }
  // 1.4: a relaxed network (a token one: the k3 network, no mixes), so that a test can call a
  // 1.4 slot of this vtable and see it answer.
  Relaxation relaxed() const override {
    Relaxation r;
    r.network = make(3);
    r.network.text = "relaxed(legacy_space_1_4)";
    r.blocks = arch_params();
    return r;
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
    return {"legacy_space_1_4", cat("k", k), b.take()};
  }
  std::int64_t channels_, classes_;
};

}  // namespace

HYPERNAS_PLUGIN(Space, Legacy14Space, "legacy_space_1_4", "1.4.0",
                "fixture built against the ABI 1.4 SDK: a space with a relaxed network but no "
                "mutate()")
