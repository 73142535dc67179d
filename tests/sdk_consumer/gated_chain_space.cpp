// ABI 1.5, out of tree: a search space whose networks use SMASH's primitives (`slice`, `mul`,
// `tanh`, `sigmoid`) and that can mutate its architectures (SearchSpace::mutate), for the
// built-in `perturb` strategy. An architecture is a chain of 1 to 4 layers, each a plain conv
// (ReLU after it) or a tanh-sigmoid gated conv (the conv makes 2C channels; the even ones go
// through tanh, the odd ones through sigmoid, and their product is the layer's output), of
// kernel 1, 3 or 5: "c3-g5-c1". Then global average pooling and a linear head.
#include <string>
#include <vector>

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>
#include <hypernas/space.h>

namespace {

using namespace hypernas;

constexpr std::int64_t kChannels = 8;
constexpr std::int64_t kKernels[] = {1, 3, 5};

struct Layer {
  bool gated = false;
  std::int64_t kernel = 3;
};

class GatedChainSpace final : public SearchSpace {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("input_channels", 1, "image channels", 1);
      t.add_int("input_size", 28, "image size", 1);
      t.add_int("classes", 10, "classes", 1);
      return t;
    }();
    return table;
  }
  explicit GatedChainSpace(const Options& o)
      : channels_(o.get_int("input_channels")),
        size_(o.get_int("input_size")),
        classes_(o.get_int("classes")) {}

  std::string name() const override { return "gated_chain"; }
  Architecture sample(Rng& rng) const override {
    std::vector<Layer> layers(1 + rng.uniform_int(4));
    for (Layer& l : layers) l = draw(rng);
    return make(layers);
  }
  Architecture parse(const std::string& text) const override {
    std::vector<Layer> layers;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t end = std::min(text.find('-', pos), text.size());
      const std::string token = text.substr(pos, end - pos);
      const bool ok = token.size() == 2 && (token[0] == 'c' || token[0] == 'g') &&
                      (token[1] == '1' || token[1] == '3' || token[1] == '5');
      if (!ok)
        throw Error(cat("gated_chain: layer '", token, "' at position ", pos, " of '", text,
                        "' is not c1, c3, c5, g1, g3 or g5"));
      layers.push_back({token[0] == 'g', token[1] - '0'});
      pos = end + 1;
    }
    if (layers.empty() || layers.size() > 4)
      throw Error(cat("gated_chain: '", text, "' needs 1 to 4 layers"));
    return make(layers);
  }
  std::vector<std::string> op_vocabulary() const override {
    return {"input", "conv", "relu", "slice", "tanh", "sigmoid", "mul", "gap", "linear"};
  }
  ArchStats stats(const Architecture& arch) const override {
    return count_graph(arch.graph, size_);
  }
  /// Each layer's kind and kernel redrawn with probability p (among the other values, so that
  /// p is the chance it changes).
  Architecture mutate(const Architecture& arch, Rng& rng, double p) const override {
    std::vector<Layer> layers = layers_of(arch.text);
    for (Layer& l : layers) {
      if (rng.uniform() < p) l.gated = !l.gated;
      if (rng.uniform() < p) {
        std::int64_t k = l.kernel;
        while (k == l.kernel) k = kKernels[rng.uniform_int(3)];
        l.kernel = k;
      }
    }
    return make(layers);
  }

 private:
  static Layer draw(Rng& rng) { return {rng.uniform_int(2) == 1, kKernels[rng.uniform_int(3)]}; }
  std::vector<Layer> layers_of(const std::string& text) const {
    std::vector<Layer> layers;
    for (std::size_t pos = 0; pos < text.size(); pos += 3)
      layers.push_back({text[pos] == 'g', text[pos + 1] - '0'});
    return layers;
  }
  Architecture make(const std::vector<Layer>& layers) const {
    GraphBuilder b;
    std::string text;
    auto x = b.add(GraphBuilder::node("input", "input", 0, channels_, 0, -1), {});
    std::int64_t c_in = channels_;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      const std::string p = cat("l", i);
      text += cat(i ? "-" : "", l.gated ? "g" : "c", l.kernel);
      OpNode conv = GraphBuilder::node("conv", p + ".conv", c_in, (l.gated ? 2 : 1) * kChannels, 0,
                                       static_cast<std::int64_t>(i));
      conv.kernel = l.kernel;
      x = b.add(conv, {x});
      if (l.gated) {
        OpNode even = GraphBuilder::node("slice", p + ".even", 2 * kChannels, kChannels, 0, -1);
        even.kernel = 0;  // first channel
        even.stride = 2;  // every second one
        OpNode odd = even;
        odd.name = p + ".odd";
        odd.kernel = 1;
        const auto t = b.add(GraphBuilder::node("tanh", p + ".tanh", kChannels, kChannels, 0, -1),
                             {b.add(even, {x})});
        const auto s =
            b.add(GraphBuilder::node("sigmoid", p + ".sigmoid", kChannels, kChannels, 0, -1),
                  {b.add(odd, {x})});
        x = b.add(GraphBuilder::node("mul", p + ".gate", kChannels, kChannels, 0, -1), {t, s});
      } else {
        x = b.add(GraphBuilder::node("relu", p + ".relu", kChannels, kChannels, 0, -1), {x});
      }
      c_in = kChannels;
    }
    x = b.add(GraphBuilder::node("gap", "gap", kChannels, kChannels, 0, -1), {x});
    OpNode head = GraphBuilder::node("linear", "head", kChannels, classes_, 0, -1);
    head.exit = 0;
    b.add(head, {x});
    return {"gated_chain", text, b.take()};
  }
  std::int64_t channels_, size_, classes_;
};

}  // namespace

HYPERNAS_PLUGIN(Space, GatedChainSpace, "gated_chain", "1.5.0",
                "out-of-tree example (ABI 1.5): gated conv chains that can mutate")
