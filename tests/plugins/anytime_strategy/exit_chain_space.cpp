// A test-local search space of small multi-exit networks, for the `anytime` strategy's tests
// (until the `anytime` space lands): a chain of `stages` stages, stage s a conv (kernel 1 or 3,
// 4, 8 or 16 channels, stride 2 from stage 1 on) -> bn -> relu, each followed by an exit head
// gap -> linear with OpNode::exit = s. The text names the stages in order, "k3w8-k1w16-k3w4";
// the 6^stages architectures are indexed base 6, stage 0 the most significant digit, digit
// 3 * kernel choice + width choice.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>
#include <hypernas/space.h>

namespace {

using namespace hypernas;

constexpr std::int64_t kKernels[] = {1, 3};
constexpr std::int64_t kWidths[] = {4, 8, 16};
constexpr std::uint64_t kChoices = 6;  // kernels x widths

class ExitChainSpace final : public SearchSpace {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("stages", 3, "stages, each with its exit head", 1, 6);
      t.add_int("input_channels", 3, "channels of the input images", 1);
      t.add_int("input_size", 32, "height = width of the input images", 1);
      t.add_int("classes", 10, "output classes", 1);
      return t;
    }();
    return table;
  }
  explicit ExitChainSpace(const Options& o)
      : stages_(o.get_int("stages")),
        input_channels_(o.get_int("input_channels")),
        input_size_(o.get_int("input_size")),
        classes_(o.get_int("classes")) {}

  std::string name() const override { return "exit_chain"; }
  std::optional<std::uint64_t> size() const override {
    std::uint64_t n = 1;
    for (std::int64_t s = 0; s < stages_; ++s) n *= kChoices;
    return n;
  }
  Architecture sample(Rng& rng) const override { return at(rng.uniform_int(*size())); }
  Architecture at(std::uint64_t index) const override {
    HYPERNAS_CHECK(index < *size(), "exit_chain: index ", index, " is not below ", *size());
    std::vector<std::uint64_t> digits(static_cast<std::size_t>(stages_));
    for (std::size_t s = digits.size(); s-- > 0; index /= kChoices) digits[s] = index % kChoices;
    std::string text;
    for (std::uint64_t d : digits)
      text += cat(text.empty() ? "" : "-", "k", kKernels[d / 3], "w", kWidths[d % 3]);
    return parse(text);
  }
  Architecture parse(const std::string& text) const override {
    std::vector<std::pair<std::int64_t, std::int64_t>> stages;  // (kernel, width)
    std::size_t pos = 0;
    while (pos <= text.size()) {
      const std::size_t end = std::min(text.find('-', pos), text.size());
      const std::string token = text.substr(pos, end - pos);
      std::int64_t kernel = 0, width = 0;
      for (std::int64_t k : kKernels)
        for (std::int64_t w : kWidths)
          if (token == cat("k", k, "w", w)) kernel = k, width = w;
      HYPERNAS_CHECK(kernel > 0, "exit_chain: '", text, "': stage '", token, "' at position ", pos,
                     " is not k<1|3>w<4|8|16>");
      stages.emplace_back(kernel, width);
      pos = end + 1;
    }
    HYPERNAS_CHECK(static_cast<std::int64_t>(stages.size()) == stages_, "exit_chain: '", text,
                   "' has ", stages.size(), " stages, expected ", stages_);
    GraphBuilder b;
    auto x = b.add(GraphBuilder::node("input", "input", 0, input_channels_, 0, -1), {});
    std::int64_t c = input_channels_;
    for (std::size_t s = 0; s < stages.size(); ++s) {
      const auto [kernel, width] = stages[s];
      const std::string p = cat("s", s);
      const auto scale = static_cast<std::int64_t>(s);
      OpNode conv = GraphBuilder::node("conv", p + ".conv", c, width, scale, scale);
      conv.kernel = kernel;
      conv.stride = s == 0 ? 1 : 2;
      x = b.add(std::move(conv), {x});
      x = b.add(GraphBuilder::node("bn", p + ".bn", width, width, scale, scale), {x});
      x = b.add(GraphBuilder::node("relu", p + ".relu", width, width, scale, scale), {x});
      auto gap = b.add(GraphBuilder::node("gap", p + ".exit.gap", width, width, scale, scale), {x});
      OpNode linear =
          GraphBuilder::node("linear", p + ".exit.linear", width, classes_, scale, scale);
      linear.exit = scale;
      b.add(std::move(linear), {gap});
      c = width;
    }
    Architecture arch;
    arch.space = name();
    arch.text = text;
    arch.graph = b.take();
    return arch;
  }
  std::vector<std::string> op_vocabulary() const override {
    return {"input", "conv", "bn", "relu", "gap", "linear"};
  }
  ArchStats stats(const Architecture& arch) const override {
    return count_graph(arch.graph, input_size_);
  }

 private:
  std::int64_t stages_, input_channels_, input_size_, classes_;
};

}  // namespace

HYPERNAS_PLUGIN(Space, ExitChainSpace, "exit_chain", "1.0.0",
                "test-local: chains of conv stages, each with an exit head")
