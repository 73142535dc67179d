// Tests of the graph executor (kernel/exec): parameters, forward conventions, equality with a
// network built by hand from torch::nn modules, both weight modes, gradients, errors.

#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <hypernas/graph_stats.h>
#include <hypernas/space.h>

#include "kernel/exec/executor.h"
#include "plugins/spaces/nb201/nb201.h"
#include "tests/kernel/exec/Nb201Reference.h"
#include "tests/support/arch_builder.h"
#include "tests/support/errors.h"

namespace {

using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::OpNode;
using hypernas::WeightMap;
using hypernas::exec::GraphExecutor;
namespace nb201 = hypernas::nb201;

const std::string kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";
const std::string kSparse =
    "|nor_conv_1x1~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|";
const std::string kAllNone = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";

nb201::MacroConfig small_config(std::int64_t n = 1, std::int64_t c = 4,
                                std::int64_t in_channels = 3, std::int64_t size = 8) {
  nb201::MacroConfig m;
  m.cells_per_stage = n;
  m.channels = c;
  m.input_channels = in_channels;
  m.input_size = size;
  m.classes = 5;
  return m;
}

Architecture nb201_arch(const std::string& text, const nb201::MacroConfig& m) {
  Architecture a;
  a.space = "nb201";
  a.text = text;
  a.graph = nb201::build_graph(nb201::parse_cell(text), m);
  return a;
}

torch::Tensor images(const nb201::MacroConfig& m, std::int64_t n = 6, std::uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randn({n, m.input_channels, m.input_size, m.input_size}, gen);
}

using hypernas::test::error_of;

using hypernas::test::Builder;

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(Executor, ParametersOfNb201InVertexOrderWithShapes) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  const auto params = exec.parameters(a);
  ASSERT_FALSE(params.empty());
  EXPECT_EQ(params[0].name, "stem.conv.weight");
  EXPECT_EQ(params[0].node, "stem.conv");
  EXPECT_EQ(params[0].shape, (std::vector<std::int64_t>{4, 3, 3, 3}));
  EXPECT_EQ(params[1].name, "stem.bn.weight");
  EXPECT_EQ(params[1].shape, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(params[2].name, "stem.bn.bias");
  EXPECT_EQ(params.back().name, "head.linear.bias");
  EXPECT_EQ(params.back().shape, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(params[params.size() - 2].shape, (std::vector<std::int64_t>{5, 16}));

  std::int64_t count = 0;
  std::set<std::string> names;
  for (const auto& p : params) {
    std::int64_t k = 1;
    for (auto d : p.shape) k *= d;
    count += k;
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
  }
  EXPECT_EQ(count, nb201::graph_stats(a.graph, m.input_size).params);

  // The same names as the hand-built network, with the same shapes.
  hypernas::test::Nb201Reference ref(nb201::parse_cell(kExample), m);
  ASSERT_EQ(ref.by_name().size(), params.size());
  for (const auto& p : params) {
    auto it = ref.by_name().find(p.name);
    ASSERT_NE(it, ref.by_name().end()) << p.name;
    EXPECT_EQ(it->second.sizes().vec(), p.shape) << p.name;
  }
}

// ---------------------------------------------------------------------------------------------
// Equality with torch::nn

class Nb201VsTorchNn
    : public ::testing::TestWithParam<std::tuple<std::string, hypernas::exec::Layout>> {};

TEST_P(Nb201VsTorchNn, SameLogitsAndGradients) {
  const std::string text = std::get<0>(GetParam());
  const auto m = small_config(/*n=*/2, /*c=*/4, /*in=*/3, /*size=*/8);
  const Architecture a = nb201_arch(text, m);
  GraphExecutor exec(hypernas::exec::ExecutorOptions{std::get<1>(GetParam())});
  WeightMap w = exec.init_weights(a, 7, torch::kCPU);
  // Non-trivial BN affine parameters, so that mixing weight and bias up would show.
  {
    torch::NoGradGuard g;
    auto gen = at::detail::createCPUGenerator(3);
    for (auto& [name, t] : w)
      if (name.find(".bn.") != std::string::npos || name.rfind("head.bn", 0) == 0)
        t.add_(at::randn(t.sizes(), gen) * 0.1);
  }
  hypernas::test::Nb201Reference ref(nb201::parse_cell(text), m);
  ref.train();
  ref.load(w);

  const torch::Tensor x = images(m);
  const torch::Tensor labels = torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong);
  auto out = exec.forward(a, w, x);
  ASSERT_EQ(out.size(), 1u);
  const torch::Tensor expected = ref.forward(x);
  ASSERT_EQ(out[0].sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(out[0], expected, 1e-5, 1e-5))
      << (out[0] - expected).abs().max().item<double>();

  torch::nn::functional::cross_entropy(out[0], labels).backward();
  torch::nn::functional::cross_entropy(expected, labels).backward();
  int with_grad = 0;
  for (const auto& [name, p] : ref.by_name()) {
    // A branch that feeds only an all-none node gets no gradient in either network.
    ASSERT_EQ(w.at(name).grad().defined(), p.grad().defined()) << name;
    if (!p.grad().defined()) continue;
    ++with_grad;
    EXPECT_TRUE(torch::allclose(w.at(name).grad(), p.grad(), 1e-4, 1e-5)) << name;
  }
  EXPECT_GT(with_grad, 0);
}

INSTANTIATE_TEST_SUITE_P(Cells, Nb201VsTorchNn,
                         ::testing::Combine(::testing::Values(kExample, kSparse, kAllNone),
                                            ::testing::Values(hypernas::exec::Layout::Contiguous,
                                                              hypernas::exec::Layout::ChannelsLast,
                                                              hypernas::exec::Layout::Auto)));

TEST(Executor, LayoutsAgree) {
  const auto m = small_config(1, 8, 3, 12);
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor nchw(hypernas::exec::ExecutorOptions{hypernas::exec::Layout::Contiguous});
  GraphExecutor nhwc(hypernas::exec::ExecutorOptions{hypernas::exec::Layout::ChannelsLast});
  EXPECT_EQ(GraphExecutor().options().layout, hypernas::exec::Layout::Auto);
  const WeightMap w = nchw.init_weights(a, 4, torch::kCPU);
  const torch::Tensor x = images(m, 4);
  const auto y1 = nchw.forward(a, w, x)[0];
  const auto y2 = nhwc.forward(a, w, x)[0];
  EXPECT_TRUE(torch::allclose(y1, y2, 1e-5, 1e-5));
  y1.sum().backward();
  const auto g1 = w.at("s1.c0.n1.e0.conv.weight").grad().clone();
  w.at("s1.c0.n1.e0.conv.weight").mutable_grad().reset();
  y2.sum().backward();
  EXPECT_TRUE(torch::allclose(g1, w.at("s1.c0.n1.e0.conv.weight").grad(), 1e-4, 1e-5));

  // A 1-channel input is both layouts at once; the convolutions still run channels-last.
  Builder b;
  b.add("input", "in", 0, 1, {});
  b.add("conv", "conv", 1, 4, {0}, 3);
  const WeightMap wb = nhwc.init_weights(b.arch, 1, torch::kCPU);
  const auto gray = torch::randn({2, 1, 6, 6});
  const auto out = nhwc.forward(b.arch, wb, gray)[0];
  EXPECT_TRUE(out.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(nchw.forward(b.arch, wb, gray)[0].is_contiguous());
  EXPECT_TRUE(torch::allclose(out, nchw.forward(b.arch, wb, gray)[0], 1e-5, 1e-6));
}

TEST(Executor, Nb201OneChannelInput) {
  const auto m = small_config(1, 4, 1, 12);
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  WeightMap w = exec.init_weights(a, 1, torch::kCPU);
  hypernas::test::Nb201Reference ref(nb201::parse_cell(kExample), m);
  ref.load(w);
  const torch::Tensor x = images(m, 4);
  EXPECT_TRUE(torch::allclose(exec.forward(a, w, x)[0], ref.forward(x), 1e-5, 1e-5));
}

// ---------------------------------------------------------------------------------------------
// The two weight modes

TEST(Executor, GeneratedAndTrainableWeightsGiveIdenticalOutputs) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  const WeightMap trainable = exec.init_weights(a, 11, torch::kCPU);
  for (const auto& [name, t] : trainable) {
    EXPECT_TRUE(t.requires_grad()) << name;
    EXPECT_TRUE(t.is_leaf()) << name;
  }

  // "Generated" weights: a differentiable function of a hypernetwork's parameters (a scalar
  // gain and, for one conv, a linear map of an embedding) whose values equal the trainable ones.
  const torch::Tensor gain = torch::ones({}, torch::requires_grad());
  const std::string conv = "s1.c0.n1.e0.conv.weight";
  const torch::Tensor target = trainable.at(conv).detach().flatten();
  const torch::Tensor embedding = torch::ones({1});
  const torch::Tensor hyper = target.unsqueeze(1).clone().requires_grad_(true);  // [numel, 1]
  WeightMap generated;
  for (const auto& [name, t] : trainable) generated[name] = t.detach() * gain;
  generated[conv] = torch::matmul(hyper, embedding).view(trainable.at(conv).sizes());
  EXPECT_FALSE(generated.at(conv).is_leaf());

  const torch::Tensor x = images(m);
  const auto out_trainable = exec.forward(a, trainable, x);
  const auto out_generated = exec.forward(a, generated, x);
  EXPECT_TRUE(torch::equal(out_trainable[0], out_generated[0]));

  // Gradients reach the generator's parameters...
  out_generated[0].pow(2).mean().backward();
  ASSERT_TRUE(gain.grad().defined());
  EXPECT_GT(gain.grad().abs().item<double>(), 0.0);
  ASSERT_TRUE(hyper.grad().defined());
  EXPECT_GT(hyper.grad().abs().sum().item<double>(), 0.0);
  // ...and the trainable weights get the same gradient as the generated one.
  out_trainable[0].pow(2).mean().backward();
  EXPECT_TRUE(
      torch::allclose(trainable.at(conv).grad().flatten(), hyper.grad().flatten(), 1e-6, 1e-7));
}

TEST(Executor, InitWeightsIsSeededAndFollowsTheScheme) {
  const auto m = small_config(1, 16);
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  const WeightMap w1 = exec.init_weights(a, 5, torch::kCPU);
  const WeightMap w2 = exec.init_weights(a, 5, torch::kCPU);
  const WeightMap w3 = exec.init_weights(a, 6, torch::kCPU);
  ASSERT_EQ(w1.size(), exec.parameters(a).size());
  for (const auto& [name, t] : w1) {
    EXPECT_TRUE(torch::equal(t, w2.at(name))) << name;
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
  }
  EXPECT_FALSE(torch::equal(w1.at("stem.conv.weight"), w3.at("stem.conv.weight")));
  EXPECT_TRUE(torch::equal(w1.at("stem.bn.weight"), torch::ones({16})));
  EXPECT_TRUE(torch::equal(w1.at("stem.bn.bias"), torch::zeros({16})));
  // With C = 16, r2.a.conv is [64, 32, 3, 3]: fan_out 64 * 9.
  const torch::Tensor big = w1.at("r2.a.conv.weight");
  EXPECT_NEAR(big.std().item<double>(), std::sqrt(2.0 / (64 * 9)), 0.1 * std::sqrt(2.0 / (64 * 9)));
  EXPECT_NEAR(big.mean().item<double>(), 0.0, 0.01);
  const double bound = 1.0 / std::sqrt(64.0);
  EXPECT_LE(w1.at("head.linear.weight").abs().max().item<double>(), bound);
  EXPECT_LE(w1.at("head.linear.bias").abs().max().item<double>(), bound);
  EXPECT_GT(w1.at("head.linear.weight").abs().max().item<double>(), 0.8 * bound);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Executor, MissingWeightIsNamed) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  WeightMap w = exec.init_weights(a, 1, torch::kCPU);
  w.erase("s1.c0.n2.e1.pool.weight");  // not a parameter: harmless
  w.erase("s1.c0.n1.e0.conv.weight");
  const std::string msg = error_of([&] { exec.forward(a, w, images(m)); });
  EXPECT_NE(msg.find("missing weight 's1.c0.n1.e0.conv.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 4, 3, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node 's1.c0.n1.e0.conv'"), std::string::npos) << msg;
}

TEST(Executor, IllShapedWeightNamesBothShapes) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  WeightMap w = exec.init_weights(a, 1, torch::kCPU);
  w["head.linear.weight"] = torch::zeros({5, 15});
  const std::string msg = error_of([&] { exec.forward(a, w, images(m)); });
  EXPECT_NE(msg.find("'head.linear.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5, 15]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5, 16]"), std::string::npos) << msg;
}

TEST(Executor, WrongImageChannelsAndBadGraphsAreReported) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  WeightMap w = exec.init_weights(a, 1, torch::kCPU);
  std::string msg = error_of([&] { exec.forward(a, w, torch::zeros({2, 1, 8, 8})); });
  EXPECT_NE(msg.find("node 'input'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 channels"), std::string::npos) << msg;

  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("softmax", "odd", 3, 3, {0});
  msg = error_of([&] { exec.parameters(b.arch); });
  EXPECT_NE(msg.find("node 'odd' (softmax"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown op"), std::string::npos) << msg;

  Builder c;
  c.add("input", "in", 0, 3, {});
  c.add("relu", "r", 3, 3, {});
  msg = error_of([&] { exec.parameters(c.arch); });
  EXPECT_NE(msg.find("node 'r'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("has no inputs"), std::string::npos) << msg;

  Builder d;
  d.add("input", "in", 0, 3, {});
  d.add("relu", "r1", 3, 3, {0});
  d.add("relu", "r2", 3, 3, {0});
  boost::add_edge(2, 1, d.arch.graph);
  msg = error_of([&] { exec.parameters(d.arch); });
  EXPECT_NE(msg.find("topological"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Conventions on small hand-made graphs

TEST(Executor, AddWithoutInputsIsZerosAtItsScale) {
  Builder b;
  b.add("input", "in", 0, 3, {});
  const auto z = b.add("add", "zero", 2, 2, {}, 0, 1, 1, 1, -1, /*scale=*/1);
  b.add("relu", "out", 2, 2, {z});
  GraphExecutor exec;
  EXPECT_TRUE(exec.parameters(b.arch).empty());
  const auto out = exec.forward(b.arch, {}, torch::ones({3, 3, 9, 8}));
  ASSERT_EQ(out.size(), 1u);  // no exits: the last vertex
  EXPECT_EQ(out[0].sizes(), (torch::IntArrayRef{3, 2, 5, 4}));
  EXPECT_EQ(out[0].abs().sum().item<double>(), 0.0);

  // The all-none NB201 cell runs and gives logits that do not depend on the images.
  const auto m = small_config();
  const Architecture a = nb201_arch(kAllNone, m);
  const WeightMap w = exec.init_weights(a, 3, torch::kCPU);
  const auto l1 = exec.forward(a, w, images(m, 4, 1))[0];
  const auto l2 = exec.forward(a, w, images(m, 4, 2))[0];
  EXPECT_TRUE(torch::allclose(l1, l2));
}

TEST(Executor, ConcatGroupedDilatedConvMaxPoolAndExits) {
  namespace F = torch::nn::functional;
  Builder b;
  const auto in = b.add("input", "in", 0, 3, {});
  const auto d = b.add("conv", "dil", 3, 4, {in}, 3, 1, /*dilation=*/2);
  const auto g = b.add("conv", "grp", 3, 6, {in}, 3, 1, 1, /*groups=*/3);
  const auto r = b.add("relu", "relu", 3, 3, {in});
  // Edges added in another order: concatenated in vertex order all the same (dil, grp, relu).
  const auto cc = b.add("concat", "cat", 13, 13, {r, g, d});
  const auto mp = b.add("max_pool", "mp", 13, 13, {cc}, 3, 2);
  const auto mp2 = b.add("max_pool", "mp2", 13, 13, {mp}, 2, 2);
  const auto ap = b.add("avg_pool", "ap", 13, 13, {mp}, 3, 1);
  const auto s = b.add("add", "sum", 13, 13, {ap, mp});
  const auto gp = b.add("gap", "gap", 13, 13, {s});
  b.add("linear", "head0", 13, 2, {gp}, 0, 1, 1, 1, /*exit=*/1);
  const auto gp2 = b.add("gap", "gap2", 13, 13, {mp2});
  b.add("linear", "head1", 13, 3, {gp2}, 0, 1, 1, 1, /*exit=*/0);
  const auto gc = b.add("conv", "g2", 13, 4, {mp2}, 1, 1, 1, 1);
  (void)gc;  // a dangling branch: computed and dropped

  GraphExecutor exec;
  const auto params = exec.parameters(b.arch);
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"dil.weight", "grp.weight", "head0.weight", "head0.bias",
                                      "head1.weight", "head1.bias", "g2.weight"}));
  EXPECT_EQ(params[1].shape, (std::vector<std::int64_t>{6, 1, 3, 3}));

  const WeightMap w = exec.init_weights(b.arch, 9, torch::kCPU);
  const torch::Tensor x = images(small_config(1, 4, 3, 11), 2);
  const auto out = exec.forward(b.arch, w, x);
  ASSERT_EQ(out.size(), 2u);

  // The same computation written out with torch.
  const auto xd = F::conv2d(x, w.at("dil.weight"), F::Conv2dFuncOptions().padding(2).dilation(2));
  const auto xg = F::conv2d(x, w.at("grp.weight"), F::Conv2dFuncOptions().padding(1).groups(3));
  const auto xc = torch::cat({xd, xg, torch::relu(x)}, 1);
  const auto xm = F::max_pool2d(xc, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  const auto xm2 = F::max_pool2d(xm, F::MaxPool2dFuncOptions(2).stride(2));
  const auto xa =
      F::avg_pool2d(xm, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
  const auto h0 = F::linear((xa + xm).mean({2, 3}), w.at("head0.weight"), w.at("head0.bias"));
  const auto h1 = F::linear(xm2.mean({2, 3}), w.at("head1.weight"), w.at("head1.bias"));
  EXPECT_EQ(out[0].sizes(), (torch::IntArrayRef{2, 3}));  // exit 0 first
  EXPECT_TRUE(torch::allclose(out[0], h1, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(out[1], h0, 1e-5, 1e-6));
  EXPECT_EQ(xm.size(2), 6);
  EXPECT_EQ(xm2.size(2), 3);

  // Gradients reach the weights of every branch that feeds an exit.
  (out[0].sum() + out[1].sum()).backward();
  for (const char* n : {"dil.weight", "grp.weight", "head0.weight", "head1.weight"})
    EXPECT_TRUE(w.at(n).grad().defined()) << n;
  EXPECT_FALSE(w.at("g2.weight").grad().defined());
}

TEST(Executor, PlanCanBeReused) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  GraphExecutor exec;
  const auto plan = exec.compile(a);
  EXPECT_EQ(GraphExecutor::parameters(*plan).size(), exec.parameters(a).size());
  const WeightMap w = GraphExecutor::init_weights(*plan, 2, torch::kCPU);
  const torch::Tensor x = images(m);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(exec.forward(*plan, w, x)[0], exec.forward(a, w, x)[0]));
  EXPECT_TRUE(torch::equal(exec.forward(*plan, w, x)[0], exec.forward(*plan, w, x)[0]));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ABI 1.1: what plugins reach through hypernas::Executor

TEST(Executor, ParametersCarryRoleAndFans) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  const GraphExecutor exec;
  const hypernas::Executor& sdk = exec;  // the interface a plugin holds
  for (const hypernas::ParamShape& p : sdk.parameters(a)) {
    switch (p.role) {
      case hypernas::ParamRole::ConvWeight:
        ASSERT_EQ(p.shape.size(), 4u) << p.name;
        EXPECT_EQ(p.fan_in, p.shape[1] * p.shape[2] * p.shape[3]) << p.name;
        EXPECT_EQ(p.fan_out, p.shape[0] * p.shape[2] * p.shape[3]) << p.name;
        break;
      case hypernas::ParamRole::BnWeight:
      case hypernas::ParamRole::BnBias:
        EXPECT_EQ(p.shape.size(), 1u) << p.name;
        EXPECT_EQ(p.fan_in, 1) << p.name;
        break;
      case hypernas::ParamRole::LinearWeight:
        EXPECT_EQ(p.fan_in, p.shape[1]) << p.name;
        EXPECT_EQ(p.fan_out, p.shape[0]) << p.name;
        break;
      case hypernas::ParamRole::LinearBias:
        EXPECT_EQ(p.fan_in, 4 * 4) << p.name;  // the head reads 4C = 16 features
        break;
    }
  }
  const auto params = sdk.parameters(a);
  EXPECT_EQ(params.front().role, hypernas::ParamRole::ConvWeight);
  EXPECT_EQ(params[1].role, hypernas::ParamRole::BnWeight);
  EXPECT_EQ(params[2].role, hypernas::ParamRole::BnBias);
  EXPECT_EQ(params[params.size() - 2].role, hypernas::ParamRole::LinearWeight);
  EXPECT_EQ(params.back().role, hypernas::ParamRole::LinearBias);
  EXPECT_STREQ(hypernas::role_name(params.back().role), "linear_bias");
}

TEST(Executor, TheAbi10SlotListsTheSameParameters) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kSparse, m);
  const GraphExecutor exec;
  const auto now = exec.parameters(a);
  const auto old = exec.parameters_v1_0(a);
  ASSERT_EQ(now.size(), old.size());
  for (std::size_t i = 0; i < now.size(); ++i) {
    EXPECT_EQ(now[i].name, old[i].name);
    EXPECT_EQ(now[i].node, old[i].node);
    EXPECT_EQ(now[i].shape, old[i].shape);
  }
}

TEST(Executor, InitWeightsThroughTheInterfaceIsTheTrainersScheme) {
  const auto m = small_config(1, 8);
  const Architecture a = nb201_arch(kExample, m);
  const GraphExecutor exec;
  const hypernas::Executor& sdk = exec;
  const WeightMap w1 = sdk.init_weights(a, 42, at::kCPU);
  const WeightMap w2 = exec.init_weights(*exec.compile(a), 42, at::kCPU);
  const WeightMap w3 = sdk.init_weights(a, 43, at::kCPU);
  ASSERT_EQ(w1.size(), sdk.parameters(a).size());
  for (const auto& p : sdk.parameters(a)) {
    const at::Tensor& t = w1.at(p.name);
    EXPECT_TRUE(t.requires_grad()) << p.name;
    EXPECT_TRUE(at::equal(t, w2.at(p.name))) << p.name;
    if (p.role == hypernas::ParamRole::ConvWeight) {
      EXPECT_FALSE(at::equal(t, w3.at(p.name))) << p.name;  // another seed, other weights
      EXPECT_NEAR(t.std().item<double>(), std::sqrt(2.0 / static_cast<double>(p.fan_out)),
                  0.5 * std::sqrt(2.0 / static_cast<double>(p.fan_out)))
          << p.name;
    }
    if (p.role == hypernas::ParamRole::BnWeight) {
      EXPECT_TRUE(at::all(t == 1).item<bool>());
    } else if (p.role == hypernas::ParamRole::BnBias) {
      EXPECT_TRUE(at::all(t == 0).item<bool>());
    } else if (p.role == hypernas::ParamRole::LinearWeight) {
      EXPECT_LE(t.abs().max().item<double>(), 1.0 / std::sqrt(static_cast<double>(p.fan_in)));
    }
  }
}

TEST(Executor, ForwardCaptureKeepsWhatWasAskedAndObservesEveryNode) {
  const auto m = small_config();
  const Architecture a = nb201_arch(kExample, m);
  const GraphExecutor exec;
  const hypernas::Executor& sdk = exec;
  const WeightMap w = sdk.init_weights(a, 3, at::kCPU);
  const at::Tensor x = images(m);
  std::size_t relus = 0;
  for (std::size_t v = 0; v < boost::num_vertices(a.graph); ++v) relus += a.graph[v].op == "relu";
  ASSERT_GT(relus, 0u);

  hypernas::CaptureOptions capture;
  capture.ops = {"relu"};
  capture.nodes = {"stem.conv"};
  std::vector<std::string> seen;
  capture.observer = [&](const OpNode& node, const at::Tensor& out) {
    seen.push_back(node.name);
    EXPECT_TRUE(out.defined()) << node.name;
  };
  const hypernas::CaptureResult r = sdk.forward_capture(a, w, x, capture);
  EXPECT_EQ(seen.size(), boost::num_vertices(a.graph));  // every node, in vertex order
  EXPECT_EQ(seen.front(), a.graph[0].name);
  ASSERT_EQ(r.captured.size(), relus + 1);
  EXPECT_EQ(r.captured.front().node, "stem.conv");
  for (std::size_t i = 1; i < r.captured.size(); ++i) {
    EXPECT_EQ(r.captured[i].op, "relu");
    EXPECT_GE(r.captured[i].value.min().item<double>(), 0.0);
  }
  // The exits are exactly forward()'s.
  const auto plain = sdk.forward(a, w, x);
  ASSERT_EQ(r.exits.size(), plain.size());
  EXPECT_TRUE(at::allclose(r.exits.back(), plain.back()));
  // Captured outputs are part of the autograd graph of the weights.
  at::Tensor relu_sum = r.captured.back().value.sum();
  relu_sum.backward();
  EXPECT_TRUE(w.at("stem.conv.weight").grad().defined());

  hypernas::CaptureOptions unknown;
  unknown.nodes = {"no.such.node"};
  EXPECT_NE(error_of([&] { sdk.forward_capture(a, w, x, unknown); }).find("'no.such.node'"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// ABI 1.3: `resample` (multi-scale networks), against ATen and hand-computed references

namespace {

/// input (3 channels) -> resample to `scale`: returns the architecture.
Architecture resample_of_input(std::int64_t scale) {
  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("resample", "rs", 3, 3, {0}, 0, 1, 1, 1, -1, scale);
  return b.arch;
}

const hypernas::exec::Layout kLayouts[] = {hypernas::exec::Layout::Contiguous,
                                           hypernas::exec::Layout::ChannelsLast};

TEST(Executor, ResampleDownIsAveragePoolingOverExactBlocks) {
  const torch::Tensor x = at::randn({2, 3, 16, 16}, at::detail::createCPUGenerator(21));
  for (const auto layout : kLayouts) {
    const GraphExecutor exec(hypernas::exec::ExecutorOptions{layout});
    for (std::int64_t scale = 1; scale <= 3; ++scale) {
      SCOPED_TRACE(scale);
      const std::int64_t k = std::int64_t{1} << scale;  // 2, 4, 8
      const auto out = exec.forward(resample_of_input(scale), {}, x);
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].sizes(), (torch::IntArrayRef{2, 3, 16 / k, 16 / k}));
      EXPECT_TRUE(torch::allclose(out[0], at::avg_pool2d(x, {k, k}, {k, k}), 1e-6, 1e-6));
      // The mean of each k x k block, written out with a reshape.
      const auto blocks = x.reshape({2, 3, 16 / k, k, 16 / k, k}).mean({3, 5});
      EXPECT_TRUE(torch::allclose(out[0], blocks, 1e-6, 1e-6));
    }
  }
}

TEST(Executor, ResampleUpIsNearestNeighbour) {
  // in -> avg_pool 4x4 stride 4 (scale 2, 4x4) -> resample to scale 1 (8x8) and 0 (16x16).
  const torch::Tensor x = at::randn({2, 3, 16, 16}, at::detail::createCPUGenerator(22));
  const torch::Tensor low = at::avg_pool2d(x, {4, 4}, {4, 4});
  for (const auto layout : kLayouts) {
    const GraphExecutor exec(hypernas::exec::ExecutorOptions{layout});
    for (std::int64_t scale = 0; scale <= 1; ++scale) {
      SCOPED_TRACE(scale);
      Builder b;
      b.add("input", "in", 0, 3, {});
      b.add("avg_pool", "pool", 3, 3, {0}, 4, 4, 1, 1, -1, 2);
      b.add("resample", "rs", 3, 3, {1}, 0, 1, 1, 1, -1, scale);
      const auto out = exec.forward(b.arch, {}, x);
      ASSERT_EQ(out.size(), 1u);
      const std::int64_t size = 16 >> scale;
      const std::int64_t k = 4 >> scale;  // each low-resolution pixel becomes k x k
      EXPECT_EQ(out[0].sizes(), (torch::IntArrayRef{2, 3, size, size}));
      EXPECT_TRUE(torch::allclose(out[0], at::upsample_nearest2d(low, {size, size}), 1e-6, 1e-6));
      EXPECT_TRUE(
          torch::allclose(out[0], low.repeat_interleave(k, 2).repeat_interleave(k, 3), 1e-6, 1e-6));
    }
  }
}

TEST(Executor, ResampleOfANonDividingSize) {
  // 30x30 at scale 2 is ceil(30/4) = 8: adaptive average pooling, whose windows overlap.
  const GraphExecutor exec;
  const torch::Tensor x = at::randn({2, 3, 30, 30}, at::detail::createCPUGenerator(23));
  const auto out = exec.forward(resample_of_input(2), {}, x)[0];
  EXPECT_EQ(out.sizes(), (torch::IntArrayRef{2, 3, 8, 8}));
  EXPECT_TRUE(torch::allclose(out, at::adaptive_avg_pool2d(x, {8, 8}), 1e-6, 1e-6));
  // Window of output i: [floor(30 i / 8), ceil(30 (i + 1) / 8)): [0, 4) for i = 0, [3, 8) for
  // i = 1, [26, 30) for i = 7.
  using torch::indexing::Slice;
  EXPECT_NEAR(out[1][2][1][0].item<double>(),
              x[1][2].index({Slice(3, 8), Slice(0, 4)}).mean().item<double>(), 1e-6);
  EXPECT_NEAR(out[0][0][7][1].item<double>(),
              x[0][0].index({Slice(26, 30), Slice(3, 8)}).mean().item<double>(), 1e-6);
  // Scale 1 of 30 is 15: exact 2x2 blocks again.
  EXPECT_TRUE(torch::allclose(exec.forward(resample_of_input(1), {}, x)[0],
                              at::avg_pool2d(x, {2, 2}, {2, 2}), 1e-6, 1e-6));
  // Non-square 30x20 at scale 2: 8x5.
  const torch::Tensor wide = at::randn({1, 3, 30, 20}, at::detail::createCPUGenerator(24));
  const auto w2 = exec.forward(resample_of_input(2), {}, wide)[0];
  EXPECT_EQ(w2.sizes(), (torch::IntArrayRef{1, 3, 8, 5}));
  EXPECT_TRUE(torch::allclose(w2, at::adaptive_avg_pool2d(wide, {8, 5}), 1e-6, 1e-6));
  // Back up from 8x8 to 30x30: nearest neighbour.
  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("resample", "down", 3, 3, {0}, 0, 1, 1, 1, -1, 2);
  b.add("resample", "up", 3, 3, {1}, 0, 1, 1, 1, -1, 0);
  const auto up = exec.forward(b.arch, {}, x)[0];
  EXPECT_EQ(up.sizes(), (torch::IntArrayRef{2, 3, 30, 30}));
  EXPECT_TRUE(torch::allclose(up,
                              at::upsample_nearest2d(at::adaptive_avg_pool2d(x, {8, 8}), {30, 30}),
                              1e-6, 1e-6));
}

TEST(Executor, ResampleGradientMatchesTheReference) {
  // in -> conv 3x3 (3 -> 4) -> resample down to scale 2 (30 -> 8) -> resample up to scale 0
  // (8 -> 30); the same with ATen, and the gradients of the conv weight and of the images.
  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("conv", "c", 3, 4, {0}, 3);
  b.add("resample", "down", 4, 4, {1}, 0, 1, 1, 1, -1, 2);
  b.add("resample", "up", 4, 4, {2}, 0, 1, 1, 1, -1, 0);
  const torch::Tensor g = at::randn({2, 4, 30, 30}, at::detail::createCPUGenerator(25));
  for (const auto layout : kLayouts) {
    const GraphExecutor exec(hypernas::exec::ExecutorOptions{layout});
    const WeightMap w = exec.init_weights(b.arch, 5, torch::kCPU);
    const torch::Tensor x =
        at::randn({2, 3, 30, 30}, at::detail::createCPUGenerator(26)).requires_grad_(true);
    const auto out = exec.forward(b.arch, w, x)[0];

    const torch::Tensor w_ref = w.at("c.weight").detach().clone().requires_grad_(true);
    const torch::Tensor x_ref = x.detach().clone().requires_grad_(true);
    const auto y = at::conv2d(x_ref, w_ref, {}, {1, 1}, {1, 1});
    const auto expected = at::upsample_nearest2d(at::adaptive_avg_pool2d(y, {8, 8}), {30, 30});
    ASSERT_EQ(out.sizes(), expected.sizes());
    EXPECT_TRUE(torch::allclose(out, expected, 1e-5, 1e-5));

    (out * g).sum().backward();
    (expected * g).sum().backward();
    ASSERT_TRUE(w.at("c.weight").grad().defined());
    ASSERT_TRUE(x.grad().defined());
    EXPECT_TRUE(torch::allclose(w.at("c.weight").grad(), w_ref.grad(), 1e-4, 1e-5));
    EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-4, 1e-5));
    // Average pooling spreads the gradient: every image pixel gets some.
    EXPECT_GT(x.grad().abs().min().item<double>(), 0.0);
  }
}

TEST(Executor, ResampleAtTheSameScaleIsTheIdentity) {
  const GraphExecutor exec;
  const torch::Tensor x = at::randn({2, 3, 15, 15}, at::detail::createCPUGenerator(27));
  EXPECT_TRUE(torch::equal(exec.forward(resample_of_input(0), {}, x)[0], x));
  // A stride-2 conv gives ceil(15 / 2) = 8 = the size of scale 1: resampling to scale 1 keeps it.
  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("conv", "c", 3, 4, {0}, 3, /*stride=*/2, 1, 1, -1, /*scale=*/1);
  b.add("resample", "rs", 4, 4, {1}, 0, 1, 1, 1, -1, 1);
  const WeightMap w = exec.init_weights(b.arch, 2, torch::kCPU);
  hypernas::CaptureOptions capture;
  capture.nodes = {"c", "rs"};
  const auto r = exec.forward_capture(b.arch, w, x, capture);
  ASSERT_EQ(r.captured.size(), 2u);
  EXPECT_EQ(r.captured[1].value.sizes(), (torch::IntArrayRef{2, 4, 8, 8}));
  EXPECT_TRUE(torch::equal(r.captured[1].value, r.captured[0].value));
}

TEST(Executor, ResampleReadsExactlyOneNode) {
  Builder b;
  b.add("input", "in", 0, 3, {});
  b.add("relu", "r1", 3, 3, {0});
  b.add("relu", "r2", 3, 3, {0});
  b.add("resample", "rs", 3, 3, {1, 2}, 0, 1, 1, 1, -1, 1);
  const GraphExecutor exec;
  const std::string msg = error_of([&] { exec.parameters(b.arch); });
  EXPECT_NE(msg.find("'rs'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a resample reads exactly one node, got 2"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] {
              exec.forward(b.arch, {}, torch::zeros({1, 3, 8, 8}));
            }).find("exactly one node"),
            std::string::npos);
}

}  // namespace

// ---- relaxed networks: `mix` and forward_relaxed() (ABI 1.4) ----------------------------------

namespace {

/// A one-node relaxed cell on 3-channel images: node = p0 * conv3x3(x) + p1 * avg_pool(x) +
/// p2 * x (an identity branch), then gap and a linear head; block "alpha" [1, 4] (column 3 is a
/// `none` candidate without a branch).
hypernas::Relaxation tiny_relaxation() {
  Builder b;
  b.add("input", "in", 0, 3, {});                              // 0
  b.add("conv", "e.conv", 3, 3, {0}, 3);                       // 1
  b.add("mix", "e.conv.mix", 3, 3, {1});                       // 2
  b.add("avg_pool", "e.pool", 3, 3, {0}, 3);                   // 3
  b.add("mix", "e.pool.mix", 3, 3, {3});                       // 4
  b.add("mix", "e.skip.mix", 3, 3, {0});                       // 5
  b.add("add", "node", 3, 3, {2, 4, 5});                       // 6
  b.add("gap", "gap", 3, 3, {6});                              // 7
  b.add("linear", "head", 3, 2, {7}, 0, 1, 1, 1, /*exit=*/0);  // 8
  b.arch.space = "test";
  b.arch.text = "tiny relaxed cell";
  hypernas::Relaxation r;
  r.network = b.arch;
  r.blocks = {{"alpha", {1, 4}}};
  r.mixes = {{"e.conv.mix", 0, 0, 0, {"e.conv"}, "conv"},
             {"e.pool.mix", 0, 0, 1, {"e.pool"}, "pool"},
             {"e.skip.mix", 0, 0, 2, {}, "skip"}};
  return r;
}

torch::Tensor tiny_reference(const torch::Tensor& x, const WeightMap& w, const torch::Tensor& p) {
  const torch::Tensor node = p[0][0] * at::conv2d(x, w.at("e.conv.weight"), {}, 1, 1) +
                             p[0][1] * at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, false, false) +
                             p[0][2] * x;
  return at::linear(node.mean({2, 3}), w.at("head.weight"), w.at("head.bias"));
}

}  // namespace

TEST(Executor, RelaxedNetworkIsTheProbabilityWeightedSumOfItsBranches) {
  const GraphExecutor exec;
  const hypernas::Relaxation r = tiny_relaxation();
  const torch::Tensor x = at::randn({4, 3, 6, 6}, at::detail::createCPUGenerator(31));
  WeightMap w = exec.init_weights(r.network, 5, torch::kCPU);
  const torch::Tensor alpha =
      at::randn({1, 4}, at::detail::createCPUGenerator(32)).set_requires_grad(true);
  const torch::Tensor p = at::softmax(alpha, -1);
  const auto out = exec.forward_relaxed(r, w, {p}, x);
  ASSERT_EQ(out.size(), 1u);
  const torch::Tensor ref = tiny_reference(x, w, p);
  EXPECT_TRUE(torch::allclose(out[0], ref, 1e-5, 1e-6));
  // Differentiable in α (through the probabilities) and in the weights, as the reference.
  // NOTE: both graphs share softmax(α): keep it for the second pass.
  const auto g = torch::autograd::grad({out[0].pow(2).sum()}, {alpha, w.at("e.conv.weight")}, {},
                                       /*retain_graph=*/true);
  const auto g_ref = torch::autograd::grad({ref.pow(2).sum()}, {alpha, w.at("e.conv.weight")});
  EXPECT_GT(g[0].abs().sum().item<double>(), 0);
  EXPECT_TRUE(torch::allclose(g[0], g_ref[0], 1e-4, 1e-6));
  EXPECT_TRUE(torch::allclose(g[1], g_ref[1], 1e-4, 1e-6));
}

TEST(Executor, ABranchOfProbabilityZeroIsNotComputedAndNeedsNoWeights) {
  const GraphExecutor exec;
  const hypernas::Relaxation r = tiny_relaxation();
  const torch::Tensor x = at::randn({2, 3, 6, 6}, at::detail::createCPUGenerator(33));
  WeightMap w = exec.init_weights(r.network, 6, torch::kCPU);
  WeightMap without_conv = w;
  without_conv.erase("e.conv.weight");
  // One-hot on the pool: the discrete network input -> pool -> gap -> head.
  const torch::Tensor pool_only = torch::tensor({{0.f, 1.f, 0.f, 0.f}});
  const auto out = exec.forward_relaxed(r, without_conv, {pool_only}, x);
  const torch::Tensor discrete =
      at::linear(at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, false, false).mean({2, 3}),
                 w.at("head.weight"), w.at("head.bias"));
  EXPECT_TRUE(torch::allclose(out[0], discrete, 1e-6, 1e-6));
  // The conv is needed as soon as its probability is not 0, and then its weight is named.
  const torch::Tensor with_conv = torch::tensor({{0.5f, 0.5f, 0.f, 0.f}});
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(r, without_conv, {with_conv}, x);
            }).find("missing weight 'e.conv.weight'"),
            std::string::npos);
  // Every branch at 0 (the `none` candidate chosen): the node is zeros of its c_out channels.
  const torch::Tensor none = torch::tensor({{0.f, 0.f, 0.f, 1.f}});
  const auto zeros = exec.forward_relaxed(r, without_conv, {none}, x);
  EXPECT_TRUE(torch::allclose(zeros[0], w.at("head.bias").expand({2, 2}), 1e-6, 1e-6));
}

TEST(Executor, RelaxedNetworkErrorsNameWhatIsWrong) {
  const GraphExecutor exec;
  hypernas::Relaxation r = tiny_relaxation();
  const torch::Tensor x = at::randn({2, 3, 6, 6}, at::detail::createCPUGenerator(34));
  const WeightMap w = exec.init_weights(r.network, 7, torch::kCPU);
  const torch::Tensor p = at::full({1, 4}, 0.25);
  // A mix node belongs to forward_relaxed().
  EXPECT_NE(error_of([&] { exec.forward(r.network, w, x); }).find("run it with forward_relaxed()"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(r, w, {}, x);
            }).find("has 1 architecture-parameter blocks, got 0 probability tensors"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(r, w, {at::full({4}, 0.25)}, x);
            }).find("probabilities of block 'alpha' have shape [4], expected [1, 4]"),
            std::string::npos);
  hypernas::Relaxation wrong = r;
  wrong.mixes[0].node = "e.conv";
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(wrong, w, {p}, x);
            }).find("lists mix node 'e.conv', which relaxed network"),
            std::string::npos);
  hypernas::Relaxation unlisted = r;
  unlisted.mixes.pop_back();
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(unlisted, w, {p}, x);
            }).find("mix node 'e.skip.mix' of relaxed network"),
            std::string::npos);
  hypernas::Relaxation out_of_range = r;
  out_of_range.mixes[1].col = 4;
  EXPECT_NE(error_of([&] {
              exec.forward_relaxed(out_of_range, w, {p}, x);
            }).find("takes entry [0][4] of block 0"),
            std::string::npos);
}

// ---- SMASH's primitives: `slice`, `mul`, `tanh`, `sigmoid` (ABI 1.5) --------------------------

namespace {

/// One SMASH layer on two memory banks of 4 channels, written with the new primitives: read
/// both banks (bank 1 first), 1×1 bottleneck, ReLU, two 3×3 convs added, a tanh-sigmoid gate
/// over the even and odd channels of the sum (8 -> 4), and the gate's output added into bank 0
/// (its first two channels, a step-1 slice) and written to a new bank (all four).
struct SmashLayerGraph {
  hypernas::test::Builder b;
  SmashLayerGraph() {
    b.add("input", "in", 0, 8, {});                    // 0
    b.add("slice", "bank0", 8, 4, {0}, 0, 1);          // 1: channels 0..3
    b.add("slice", "bank1", 8, 4, {0}, 4, 1);          // 2: channels 4..7
    b.add("add", "read1", 4, 4, {2});                  // 3: identity, so the concat reads
    b.add("add", "read0", 4, 4, {1});                  // 4: bank 1 before bank 0
    b.add("concat", "cat", 8, 8, {3, 4});              // 5
    b.add("conv", "bottleneck", 8, 6, {5}, 1);         // 6
    b.add("relu", "bottleneck.relu", 6, 6, {6});       // 7
    b.add("conv", "c0", 6, 8, {7}, 3, 1, 2);           // 8: dilation 2
    b.add("conv", "c2", 6, 8, {7}, 3, 1, 1, 2);        // 9: groups 2
    b.add("add", "pre", 8, 8, {8, 9});                 // 10
    b.add("slice", "even", 8, 4, {10}, 0, 2);          // 11
    b.add("slice", "odd", 8, 4, {10}, 1, 2);           // 12
    b.add("tanh", "even.tanh", 4, 4, {11});            // 13
    b.add("sigmoid", "odd.sigmoid", 4, 4, {12});       // 14
    b.add("mul", "gate", 4, 4, {13, 14});              // 15
    b.add("slice", "chunk", 4, 2, {15}, 0, 1);         // 16: the gate's channels 0, 1
    b.add("slice", "bank0.head", 4, 2, {1}, 0, 1);     // 17: bank 0's channels 0, 1
    b.add("add", "bank0.1", 2, 2, {17, 16});           // 18
    b.add("concat", "out", 6, 6, {18, 15});            // 19: [gate (4), bank0.1 (2)]
    b.add("gap", "gap", 6, 6, {19});                   // 20
    b.add("linear", "fc", 6, 3, {20}, 0, 1, 1, 1, 0);  // 21
    b.arch.space = "test";
    b.arch.text = "smash layer";
  }
};

torch::Tensor smash_layer_reference(const torch::Tensor& x, const WeightMap& w) {
  namespace F = torch::nn::functional;
  const torch::Tensor bank0 = x.narrow(1, 0, 4), bank1 = x.narrow(1, 4, 4);
  torch::nn::Conv2d bottleneck(torch::nn::Conv2dOptions(8, 6, 1).bias(false));
  torch::nn::Conv2d c0(torch::nn::Conv2dOptions(6, 8, 3).padding(2).dilation(2).bias(false));
  torch::nn::Conv2d c2(torch::nn::Conv2dOptions(6, 8, 3).padding(1).groups(2).bias(false));
  torch::nn::Linear fc(6, 3);
  bottleneck->weight = w.at("bottleneck.weight");
  c0->weight = w.at("c0.weight");
  c2->weight = w.at("c2.weight");
  fc->weight = w.at("fc.weight");
  fc->bias = w.at("fc.bias");
  const torch::Tensor h = torch::relu(bottleneck(torch::cat({bank1, bank0}, 1)));
  const torch::Tensor pre = c0(h) + c2(h);
  using torch::indexing::None;
  using torch::indexing::Slice;
  const torch::Tensor gate = torch::tanh(pre.index({Slice(), Slice(None, None, 2)})) *
                             torch::sigmoid(pre.index({Slice(), Slice(1, None, 2)}));
  const torch::Tensor bank0_new = bank0.narrow(1, 0, 2) + gate.narrow(1, 0, 2);
  // A concat takes its inputs in vertex order: the gate (vertex 15) before bank 0 (vertex 18).
  return fc(torch::cat({gate, bank0_new}, 1).mean({2, 3}));
}

}  // namespace

TEST(Executor, SmashPrimitivesMatchTorchNnInValueAndGradient) {
  const SmashLayerGraph g;
  const torch::Tensor x = at::randn({3, 8, 9, 9}, at::detail::createCPUGenerator(31));
  for (const auto layout : kLayouts) {
    SCOPED_TRACE(static_cast<int>(layout));
    const GraphExecutor exec(hypernas::exec::ExecutorOptions{layout});
    const WeightMap w = exec.init_weights(g.b.arch, 5, torch::kCPU);
    ASSERT_EQ(w.size(), 5u);  // the new primitives have no weights
    const auto out = exec.forward(g.b.arch, w, x);
    ASSERT_EQ(out.size(), 1u);
    const torch::Tensor ref = smash_layer_reference(x, w);
    EXPECT_TRUE(torch::allclose(out[0], ref, 1e-5, 1e-6));

    std::vector<torch::Tensor> params;
    for (const auto& [name, t] : w) params.push_back(t);
    const auto ours = torch::autograd::grad({out[0].pow(2).sum()}, params);
    const auto theirs = torch::autograd::grad({ref.pow(2).sum()}, params);
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_GT(ours[i].abs().sum().item<double>(), 0.0) << i;  // every weight is reached
      EXPECT_TRUE(torch::allclose(ours[i], theirs[i], 1e-4, 1e-6)) << i;
    }
  }
}

TEST(Executor, SmashPrimitivesCountNoParametersOrFlops) {
  const SmashLayerGraph g;
  const auto nodes = hypernas::count_nodes(g.b.arch.graph, 9);
  for (std::size_t v = 0; v < nodes.size(); ++v) {
    const std::string& op = g.b.arch.graph[v].op;
    if (op == "slice" || op == "mul" || op == "tanh" || op == "sigmoid") {
      EXPECT_EQ(nodes[v].params, 0) << v;
      EXPECT_EQ(nodes[v].flops, 0) << v;
    }
  }
}

TEST(Executor, SliceAndMulErrorsNameTheNode) {
  const GraphExecutor exec;
  {
    Builder b;  // channels 3, 5, 7 of a 6-channel input: 7 is out of range
    b.add("input", "in", 0, 6, {});
    b.add("slice", "odd", 6, 3, {0}, 3, 2);
    const std::string msg = error_of([&] { exec.parameters(b.arch); });
    EXPECT_NE(msg.find("'odd'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("all below c_in"), std::string::npos) << msg;
    EXPECT_NE(msg.find("kernel 3, stride 2, c_in 6"), std::string::npos) << msg;
  }
  {
    Builder b;  // c_in left 0: only the runtime check can tell
    b.add("input", "in", 0, 4, {});
    b.add("slice", "s", 0, 2, {0}, 3, 1);
    const std::string msg = error_of([&] { exec.forward(b.arch, {}, torch::zeros({1, 4, 2, 2})); });
    EXPECT_NE(msg.find("'s'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes channels 3..4"), std::string::npos) << msg;
  }
  {
    Builder b;
    b.add("input", "in", 0, 4, {});
    b.add("relu", "r", 4, 4, {0});
    b.add("slice", "two", 4, 2, {0, 1}, 0, 1);
    EXPECT_NE(error_of([&] {
                exec.parameters(b.arch);
              }).find("a slice reads exactly one node, got 2"),
              std::string::npos);
  }
  {
    Builder b;  // a mul of a 4-channel and a 2-channel tensor
    b.add("input", "in", 0, 4, {});
    b.add("slice", "half", 4, 2, {0}, 0, 1);
    b.add("mul", "gate", 4, 4, {0, 1});
    const std::string msg = error_of([&] { exec.forward(b.arch, {}, torch::zeros({1, 4, 2, 2})); });
    EXPECT_NE(msg.find("'gate'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot multiply its inputs of shapes [1, 4, 2, 2] and [1, 2, 2, 2]"),
              std::string::npos)
        << msg;
  }
}
