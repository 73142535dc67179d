// Tests of the `adwp` surrogate (plugins/surrogates/adwp): which parameters are generated and
// which learned, generated weights against the kernel's graph executor (discrete and relaxed
// networks of nb201 and of darts with an intensive space), d(loss)/d(alpha) through the
// GeneratingBlocks against finite differences, a short fit on tiny synthetic data, scoring and
// state blobs. Everything runs on tiny networks (nb201: 1 cell per stage, 4 channels, 8x8
// inputs; darts: 3 cells, 4 channels) with fixed seeds; the parameter counts of README.md are
// computed (without building the model) at the spaces' full sizes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <hypernas/plugin.h>

#include "kernel/exec/executor.h"
#include "plugins/spaces/darts/darts.h"
#include "plugins/spaces/nb201/nb201.h"
#include "plugins/surrogates/adwp/adwp.h"
#include "tests/plugins/ghn/brightness_data.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in adwp_plugin.cpp
}

namespace {

using namespace hypernas;
using test::BrightnessData;
using test::error_of;
using test::TestContext;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The adwp plugin's options: its defaults with `given` set.
Options adwp_options(std::map<std::string, Value> given = {}) {
  Options o;
  for (auto& [k, v] : given) o.set(k, v);
  return AdwpSurrogate::params().resolve(o, "adwp");
}

/// nb201 with N cells per stage and C channels on 1-channel 8x8 images of 2 classes.
Nb201Space nb201_space(std::int64_t n = 1, std::int64_t c = 4, std::int64_t input_size = 8,
                       std::int64_t input_channels = 1, std::int64_t classes = 2) {
  Options o;
  o.set("cells_per_stage", n).set("channels", c).set("input_size", input_size);
  o.set("input_channels", input_channels).set("classes", classes);
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

const exec::GraphExecutor& graph_executor() {
  static const exec::GraphExecutor exec;
  return exec;
}

/// A context over the kernel's executor.
std::unique_ptr<TestContext> context(std::uint64_t seed = 1) {
  return std::make_unique<TestContext>(seed, &graph_executor());
}

const char* kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";
/// Node 1 gets nothing (its only edge is none), and node 2 reads it through a conv.
const char* kDeadNode =
    "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|";

/// A few architectures of `space`: two fixed ones and `sampled` seeded draws.
std::vector<Architecture> some_archs(const Nb201Space& space, int sampled = 4) {
  std::vector<Architecture> out = {space.parse(kExample), space.parse(kDeadNode)};
  Rng rng(11);
  for (int i = 0; i < sampled; ++i) out.push_back(space.sample(rng));
  return out;
}

/// Seeded random images [n, 1, 8, 8] of `dtype`.
at::Tensor images(std::int64_t n, at::ScalarType dtype = at::kFloat, std::uint64_t seed = 5) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn({n, 1, 8, 8}, gen, at::kFloat).to(dtype);
}

/// Checks that `weights` holds exactly the parameters `shapes` lists, with their shapes, finite.
void expect_matches(const WeightMap& weights, const std::vector<ParamShape>& shapes,
                    const std::string& what) {
  EXPECT_EQ(weights.size(), shapes.size()) << what;
  for (const ParamShape& p : shapes) {
    auto it = weights.find(p.name);
    ASSERT_NE(it, weights.end()) << what << ": missing " << p.name;
    EXPECT_EQ(it->second.sizes().vec(), p.shape) << what << ": " << p.name;
    EXPECT_TRUE(at::isfinite(it->second).all().item<bool>()) << what << ": " << p.name;
  }
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

double max_change(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, (a[i].detach() - b[i].detach()).abs().max().item<double>());
  return m;
}

// ---------------------------------------------------------------------------------------------
// Plugin surface

TEST(Adwp, DescriptorAndOptions) {
  const PluginDescriptor* d = hypernas_plugin_export::descriptor();
  EXPECT_EQ(std::string(d->name), "adwp");
  EXPECT_EQ(std::string(d->version), "1.0.0");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(PluginKind::Surrogate));
  const Options o = adwp_options();
  EXPECT_EQ(o.get_int("hidden"), 64);
  EXPECT_EQ(o.get_string("activation"), "none");
  EXPECT_DOUBLE_EQ(o.get_real("alpha_std"), 1.0);
  EXPECT_DOUBLE_EQ(o.get_real("lr"), 0.025);
  EXPECT_DOUBLE_EQ(o.get_real("momentum"), 0.9);
  EXPECT_DOUBLE_EQ(o.get_real("weight_decay"), 3e-4);
  EXPECT_TRUE(o.get_bool("cosine"));
  EXPECT_DOUBLE_EQ(o.get_real("onehot_prob"), 0.0);
  EXPECT_EQ(o.get_int("init_seed"), 0);
  EXPECT_EQ(o.get_string("dtype"), "float");
  EXPECT_THROW(adwp_options({{"activation", std::string("tanh")}}), UsageError);
  EXPECT_THROW(adwp_options({{"onehot_prob", 1.5}}), UsageError);

  std::string error;
  std::unique_ptr<Plugin> p(d->create(o, &error));
  ASSERT_NE(p, nullptr) << error;
  auto* s = dynamic_cast<Surrogate*>(p.get());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->capabilities(), std::uint32_t{kTrainable | kGeneratesWeights | kArchGradient |
                                             kNeedsData | kReadsEvalBatch | kReadsEvalImages});
  EXPECT_TRUE(s->relaxed_parameters().empty());  // built lazily, at the first call with a space
}

// ---------------------------------------------------------------------------------------------
// What is generated, what is learned

TEST(Adwp, LayoutGeneratesEveryBranchConvAndLearnsTheRest) {
  const Nb201Space space = nb201_space();
  const Relaxation relax = space.relaxed();
  const auto params = graph_executor().parameters(relax.network);
  const adwp::ModelLayout lay = adwp::layout(relax, params);
  std::set<std::string> branch_nodes;
  for (const MixChoice& m : relax.mixes) branch_nodes.insert(m.nodes.begin(), m.nodes.end());
  // 3 cell instances x 6 edges x 2 conv ops (nor_conv_1x1, nor_conv_3x3), one conv each.
  EXPECT_EQ(lay.generated.size(), 3u * 6u * 2u);
  for (const adwp::GeneratedParam& g : lay.generated) {
    EXPECT_TRUE(branch_nodes.count(g.node)) << g.name;
    EXPECT_EQ(g.block, 0) << g.name;
    EXPECT_EQ(g.shape.size(), 4u) << g.name;
  }
  EXPECT_EQ(lay.block_sizes, std::vector<std::int64_t>{30});
  std::set<std::string> learned;
  for (std::size_t i = 0; i < lay.learned.size(); ++i) {
    const ParamShape& p = lay.learned[i];
    learned.insert(p.name);
    EXPECT_EQ(lay.learned_in_branch[i], branch_nodes.count(p.node) == 1) << p.name;
    if (p.role == ParamRole::ConvWeight) {
      EXPECT_FALSE(lay.learned_in_branch[i]) << p.name;
    }
  }
  EXPECT_EQ(lay.generated.size() + lay.learned.size(), params.size());
  for (const char* name :
       {"stem.conv.weight", "stem.bn.weight", "r1.a.conv.weight", "r1.shortcut.conv.weight",
        "head.linear.weight", "head.linear.bias", "s1.c0.n1.e0.nor_conv_3x3.bn.weight"})
    EXPECT_TRUE(learned.count(name)) << name;

  // The counts of a built model are what count_parameters() says, without building.
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  adwp.prepare(*ctx, space);
  const adwp::ParameterCounts c = adwp::count_parameters(lay, 64);
  std::int64_t gb = 0, free = 0;
  for (const auto& [name, t] : adwp.named_parameters())
    (name.find(".gb.") != std::string::npos ? gb : free) += t.numel();
  EXPECT_EQ(gb, c.blocks.values);
  EXPECT_EQ(free, c.learned_total().values);
  EXPECT_EQ(static_cast<std::int64_t>(adwp.relaxed_parameters().size()), 4 * c.blocks.tensors);
}

// The README's table: counts of the model at nb201's defaults (N = 5, C = 16, CIFAR-10 shape),
// computed from the layout without allocating the model.
TEST(Adwp, ParameterCountsAtNb201Defaults) {
  const Nb201Space space = nb201_space(5, 16, 32, 3, 10);
  const Relaxation relax = space.relaxed();
  const adwp::ModelLayout lay = adwp::layout(relax, graph_executor().parameters(relax.network));
  const adwp::ParameterCounts c = adwp::count_parameters(lay, 64);
  std::cout << "nb201 N=5 C=16: generated conv weights " << c.generated.tensors << " ("
            << c.generated.values << " values), GeneratingBlock parameters " << c.blocks.values;
  for (const auto& [part, n] : c.learned)
    std::cout << ", learned " << part << " " << n.tensors << " tensors / " << n.values;
  std::cout << ", trainable " << c.trainable() << "\n";
  EXPECT_EQ(c.generated.tensors, 15 * 6 * 2);
  // Per cell at C channels: 6 edges x (C*C + 9*C*C) generated values.
  const std::int64_t per_stage = 5 * 6 * 10;
  EXPECT_EQ(c.generated.values, per_stage * (16 * 16 + 32 * 32 + 64 * 64));
  // A GeneratingBlock of a conv with w values: 64*30 + 64 + 64*w + w parameters.
  EXPECT_EQ(c.blocks.values, c.generated.tensors * (64 * 30 + 64) + 65 * c.generated.values);
  EXPECT_EQ(c.learned.at("branch bn").tensors, 15 * 6 * 2 * 2);
  EXPECT_EQ(c.learned.at("linear").values, 64 * 10 + 10);
}

// ---------------------------------------------------------------------------------------------
// Generated weights against the executor

TEST(Adwp, GenerateGivesExactlyTheExecutorsParameters) {
  const Nb201Space space = nb201_space();
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  for (const Architecture& a : some_archs(space)) {
    const WeightMap w = adwp.generate(*ctx, a, space);
    expect_matches(w, graph_executor().parameters(a), a.text);
    for (const auto& [name, t] : w) EXPECT_FALSE(t.requires_grad()) << name;
    // An architecture read back from a store carries only its text.
    Architecture text_only;
    text_only.space = a.space;
    text_only.text = a.text;
    const WeightMap again = adwp.generate(*ctx, text_only, space);
    for (const auto& [name, t] : w) EXPECT_TRUE(at::equal(t, again.at(name))) << name;
  }
  const Relaxation relax = space.relaxed();
  std::vector<at::Tensor> alphas = {at::randn({6, 5})};
  const WeightMap relaxed = adwp.generate_relaxed(*ctx, space, alphas);
  expect_matches(relaxed, graph_executor().parameters(relax.network), "relaxed");
}

TEST(Adwp, GeneratedWeightsStartAtTheExecutorsKaimingScale) {
  const Nb201Space space = nb201_space(1, 16, 8);
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  const Relaxation relax = space.relaxed();
  const WeightMap a = adwp.generate_relaxed(*ctx, space, {at::randn({6, 5})});
  const WeightMap b = adwp.generate_relaxed(*ctx, space, {3 * at::randn({6, 5})});
  const WeightMap init = graph_executor().init_weights(relax.network, 0, at::kCPU);
  double worst_scale = 0, min_spread = 1e9, max_spread = 0;
  for (const adwp::GeneratedParam& g : adwp.model_layout().generated) {
    const double sigma = std::sqrt(2.0 / static_cast<double>(g.fan_out));
    const double std_a = a.at(g.name).std().item<double>();
    worst_scale = std::max(worst_scale, std::abs(std_a / sigma - 1));
    // The part that depends on alpha: present, and small next to the Kaiming draw.
    const double spread = (a.at(g.name) - b.at(g.name)).std().item<double>() / sigma;
    min_spread = std::min(min_spread, spread);
    max_spread = std::max(max_spread, spread);
    // FC2's bias is the executor's own draw of this weight.
    EXPECT_LT((a.at(g.name) - init.at(g.name)).abs().max().item<double>(), sigma) << g.name;
  }
  std::cout << "initial generated weights: std within " << worst_scale * 100
            << "% of sqrt(2/fan_out); alpha-dependent spread " << min_spread << " .. " << max_spread
            << " sigma\n";
  EXPECT_LT(worst_scale, 0.3);
  EXPECT_GT(min_spread, 0.005);
  EXPECT_LT(max_spread, 0.3);
  // Learned weights are the executor's initialisation itself.
  for (const ParamShape& p : adwp.model_layout().learned)
    EXPECT_TRUE(at::equal(a.at(p.name), init.at(p.name))) << p.name;
}

TEST(Adwp, RelaxedNetworkWithOneHotProbabilitiesIsTheDiscreteNetwork) {
  const Nb201Space space = nb201_space();
  const Relaxation relax = space.relaxed();
  for (const char* activation : {"none", "relu"}) {
    AdwpSurrogate adwp(adwp_options({{"activation", std::string(activation)}}));
    auto ctx = context();
    const at::Tensor x = images(6);
    for (const Architecture& a : some_archs(space)) {
      const Selection sel = space.select(a);
      const at::Tensor discrete =
          graph_executor().forward(a, adwp.generate(*ctx, a, space), x).back();
      for (bool skip_dead : {true, false}) {
        const WeightMap w = adwp.relaxed_weights(*ctx, space, sel.probs, skip_dead);
        const at::Tensor relaxed = graph_executor().forward_relaxed(relax, w, sel.probs, x).back();
        EXPECT_TRUE(at::allclose(relaxed, discrete, 1e-5, 1e-5))
            << activation << " " << a.text << ": "
            << (relaxed - discrete).abs().max().item<double>();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gradients

/// Cross-entropy of the relaxed network for `alpha` [6, 5] (double): weights from
/// generate_relaxed(alpha); mixing probabilities softmax(alpha), or `fixed_probs` when defined.
at::Tensor relaxed_loss(AdwpSurrogate& adwp, Context& ctx, const Nb201Space& space,
                        const Relaxation& relax, const at::Tensor& alpha, const at::Tensor& x,
                        const at::Tensor& labels, const at::Tensor& fixed_probs) {
  const WeightMap w = adwp.generate_relaxed(ctx, space, {alpha});
  const at::Tensor probs = fixed_probs.defined() ? fixed_probs : at::softmax(alpha, -1);
  const at::Tensor logits = graph_executor().forward_relaxed(relax, w, {probs}, x).back();
  return at::nll_loss(at::log_softmax(logits, 1), labels);
}

TEST(Adwp, AlphaGradientMatchesFiniteDifferences) {
  const Nb201Space space = nb201_space();
  const Relaxation relax = space.relaxed();
  const at::Tensor x = images(8, at::kDouble);
  const at::Tensor labels = at::arange(8, at::kLong).remainder(2);
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor alpha0 = at::randn({6, 5}, gen, at::kDouble);
  const std::vector<std::pair<int, int>> entries = {{0, 1}, {0, 3}, {2, 2}, {3, 4}, {5, 0}, {5, 3}};
  for (const char* activation : {"none", "relu"}) {
    AdwpSurrogate adwp(
        adwp_options({{"dtype", std::string("double")}, {"activation", std::string(activation)}}));
    auto ctx = context();
    // (a) through the generated weights only (mixing probabilities held fixed); (b) both paths.
    for (bool weights_only : {true, false}) {
      const at::Tensor fixed = weights_only ? at::softmax(alpha0, -1) : at::Tensor();
      at::Tensor alpha = alpha0.clone().requires_grad_(true);
      relaxed_loss(adwp, *ctx, space, relax, alpha, x, labels, fixed).backward();
      const at::Tensor grad = alpha.grad().clone();
      const double scale = grad.abs().max().item<double>();
      EXPECT_GT(scale, 1e-6) << activation << weights_only;
      c10::NoGradGuard no_grad;
      // NOTE: the loss has kinks (ReLUs). With activation=relu, one lies 3.5e-6 from this alpha
      // along alpha[0][1] (the slope jumps by 4% there; a scan of L along the line shows it),
      // so eps = 1e-5 misses by ~1% while 1e-6 and 1e-7 agree with autograd. In double
      // precision the rounding error of eps = 1e-7 is ~1e-9.
      constexpr double eps = 1e-7;
      for (auto [r, c] : entries) {
        at::Tensor plus = alpha0.clone(), minus = alpha0.clone();
        plus[r][c] += eps;
        minus[r][c] -= eps;
        const double fd =
            (relaxed_loss(adwp, *ctx, space, relax, plus, x, labels, fixed).item<double>() -
             relaxed_loss(adwp, *ctx, space, relax, minus, x, labels, fixed).item<double>()) /
            (2 * eps);
        const double ag = grad[r][c].item<double>();
        EXPECT_NEAR(ag, fd, 1e-4 * std::abs(fd) + 1e-9 * scale)
            << activation << (weights_only ? " weights only" : " both paths") << " alpha[" << r
            << "][" << c << "]";
      }
    }
  }
}

TEST(Adwp, RelaxedParametersGetGradients) {
  const Nb201Space space = nb201_space();
  const Relaxation relax = space.relaxed();
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  at::Tensor alpha = at::randn({6, 5}).requires_grad_(true);
  const WeightMap w = adwp.generate_relaxed(*ctx, space, {alpha});
  const std::vector<at::Tensor> gb = adwp.relaxed_parameters();
  ASSERT_EQ(gb.size(), 4 * adwp.model_layout().generated.size());
  for (const auto& t : gb) EXPECT_TRUE(t.requires_grad());
  const at::Tensor logits =
      graph_executor().forward_relaxed(relax, w, {at::softmax(alpha, -1)}, images(6)).back();
  at::nll_loss(at::log_softmax(logits, 1), at::arange(6, at::kLong).remainder(2)).backward();
  EXPECT_TRUE(alpha.grad().defined());
  for (std::size_t i = 0; i < gb.size(); ++i) {
    ASSERT_TRUE(gb[i].grad().defined()) << i;
    EXPECT_GT(gb[i].grad().abs().sum().item<double>(), 0) << i;
  }
  // The learned weights are constants in generate_relaxed(): no gradient reaches them.
  for (const auto& [name, t] : adwp.named_parameters())
    if (name.find(".gb.") == std::string::npos) {
      EXPECT_FALSE(t.grad().defined()) << name;
    }
}

TEST(Adwp, GenerateRelaxedChecksTheAlphas) {
  const Nb201Space space = nb201_space();
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  EXPECT_NE(error_of([&] { adwp.generate_relaxed(*ctx, space, {}); }).find("1 arch-parameter"),
            std::string::npos);
  const std::string shape = error_of([&] {
    adwp.generate_relaxed(*ctx, space, {at::zeros({5, 6})});
  });
  EXPECT_NE(shape.find("'alpha'"), std::string::npos) << shape;
  EXPECT_NE(shape.find("[5, 6]"), std::string::npos) << shape;
  EXPECT_NE(shape.find("expected [6, 5]"), std::string::npos) << shape;
  const std::string undefined =
      error_of([&] { adwp.generate_relaxed(*ctx, space, {at::Tensor()}); });
  EXPECT_NE(undefined.find("undefined"), std::string::npos) << undefined;
}

// ---------------------------------------------------------------------------------------------
// Training

TEST(Adwp, FitReducesTheLossAndTrainsTheGeneratingBlocks) {
  const Nb201Space space = nb201_space();
  const BrightnessData data(256, 64, 8, 2);
  AdwpSurrogate adwp(adwp_options({{"lr", 0.05}}));
  auto ctx = context(3);
  adwp.prepare(*ctx, space);
  const auto gb0 = clones(adwp.relaxed_parameters());
  std::vector<at::Tensor> learned0;
  for (const auto& [name, t] : adwp.named_parameters())
    if (name.find(".gb.") == std::string::npos) learned0.push_back(t.detach().clone());
  FitRequest req;
  req.space = &space;
  req.data = &data;
  req.epochs = 3;
  req.batch_size = 16;  // 16 steps per epoch
  adwp.fit(*ctx, req);
  const std::vector<double>& curve = adwp.loss_curve();
  ASSERT_EQ(curve.size(), 48u);
  double first = 0, last = 0;
  for (int i = 0; i < 8; ++i) {
    first += curve[static_cast<std::size_t>(i)] / 8;
    last += curve[curve.size() - 1 - static_cast<std::size_t>(i)] / 8;
  }
  std::cout << "fit: mean loss of the first 8 steps " << first << ", of the last 8 " << last
            << "\n";
  EXPECT_LT(last, 0.7 * first);
  EXPECT_GT(max_change(adwp.relaxed_parameters(), gb0), 1e-4);
  std::vector<at::Tensor> learned1;
  for (const auto& [name, t] : adwp.named_parameters())
    if (name.find(".gb.") == std::string::npos) learned1.push_back(t.detach());
  EXPECT_GT(max_change(learned1, learned0), 1e-4);
  // One notification per step, with the step's loss and learning rate (cosine to 0).
  ASSERT_EQ(ctx->events.size(), 48u);
  EXPECT_EQ(ctx->events[0].first, "fit_step");
  EXPECT_DOUBLE_EQ(ctx->events[0].second.at("step"), 1);
  EXPECT_DOUBLE_EQ(ctx->events[5].second.at("loss"), curve[5]);
  EXPECT_DOUBLE_EQ(ctx->events[0].second.at("lr"), 0.05);
  EXPECT_LT(ctx->events.back().second.at("lr"), 0.05 * 0.01);
  EXPECT_EQ(ctx->advanced, 48);
  int epoch_lines = 0;
  for (const auto& l : ctx->lines)
    epoch_lines += l.rfind("epoch ", 0) == 0 && l.find("mean loss") != std::string::npos;
  EXPECT_EQ(epoch_lines, 3);
  // A second fit continues the step count.
  req.max_steps = 2;
  adwp.fit(*ctx, req);
  EXPECT_EQ(adwp.loss_curve().size(), 50u);
  EXPECT_DOUBLE_EQ(ctx->events.back().second.at("step"), 50);
}

TEST(Adwp, FitIsSeededAndMixesOneHotSteps) {
  const Nb201Space space = nb201_space();
  const BrightnessData data(64, 16, 8, 2);
  FitRequest req;
  req.space = &space;
  req.data = &data;
  req.epochs = 1;
  req.batch_size = 8;
  auto run = [&](double onehot) {
    AdwpSurrogate adwp(adwp_options({{"onehot_prob", onehot}}));
    auto ctx = context(9);
    adwp.fit(*ctx, req);
    int onehot_steps = 0;
    for (const auto& e : ctx->events) onehot_steps += e.second.at("onehot") == 1.0;
    return std::make_pair(adwp.loss_curve(), onehot_steps);
  };
  const auto a = run(0.0), b = run(0.0), c = run(0.5);
  EXPECT_EQ(a.first, b.first);  // same seed, same losses
  EXPECT_EQ(a.second, 0);
  EXPECT_GT(c.second, 0);
  EXPECT_LT(c.second, 8);
  EXPECT_NE(a.first, c.first);
  for (double v : c.first) EXPECT_TRUE(std::isfinite(v));
}

TEST(Adwp, FitStopsOnRequestAndRefusesANonFiniteLoss) {
  const Nb201Space space = nb201_space();
  const BrightnessData data(64, 16, 8, 2);
  FitRequest req;
  req.space = &space;
  req.data = &data;
  req.epochs = 1;
  req.batch_size = 8;
  {
    AdwpSurrogate adwp(adwp_options());
    auto ctx = context();
    ctx->stop_after = 3;
    adwp.fit(*ctx, req);
    EXPECT_EQ(adwp.loss_curve().size(), 3u);
  }
  {
    AdwpSurrogate adwp(adwp_options());
    auto ctx = context();
    ctx->cancel = true;
    EXPECT_THROW(adwp.fit(*ctx, req), Cancelled);
  }
  {
    const BrightnessData poison(64, 16, 8, 2, /*poison=*/true);
    req.data = &poison;
    AdwpSurrogate adwp(adwp_options());
    auto ctx = context();
    const std::string e = error_of([&] { adwp.fit(*ctx, req); });
    EXPECT_NE(e.find("fit step 1"), std::string::npos) << e;
    EXPECT_NE(e.find("nan"), std::string::npos) << e;
  }
}

// ---------------------------------------------------------------------------------------------
// Scores and state

/// Scores of `archs` on `data`'s valid split (the first 48 images, batches of 16).
std::vector<Score> scores(AdwpSurrogate& adwp, Context& ctx, const Nb201Space& space,
                          const Dataset& data, const std::vector<Architecture>& archs) {
  ScoreRequest req;
  req.space = &space;
  req.data = &data;
  for (const auto& a : archs) req.archs.push_back(&a);
  req.batch_size = 16;
  req.max_images = 48;
  return adwp.score(ctx, req);
}

TEST(Adwp, ScoresAreAccuraciesIndependentOfCallOrder) {
  const Nb201Space space = nb201_space();
  const BrightnessData data(128, 64, 8, 2);
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.epochs = 2;
  adwp.fit(*ctx, fr);
  std::vector<Architecture> archs = some_archs(space);
  const std::vector<Score> s = scores(adwp, *ctx, space, data, archs);
  ASSERT_EQ(s.size(), archs.size());
  std::reverse(archs.begin(), archs.end());
  const std::vector<Score> r = scores(adwp, *ctx, space, data, archs);
  for (std::size_t i = 0; i < s.size(); ++i) {
    EXPECT_GE(s[i].value, 0);
    EXPECT_LE(s[i].value, 1);
    EXPECT_EQ(s[i].value, s[i].extra.at("accuracy"));
    EXPECT_DOUBLE_EQ(std::round(s[i].value * 48), s[i].value * 48);  // 48 images scored
    EXPECT_TRUE(std::isfinite(s[i].extra.at("loss")));
    EXPECT_EQ(s[i].value, r[s.size() - 1 - i].value);
    EXPECT_EQ(s[i].extra.at("loss"), r[s.size() - 1 - i].extra.at("loss"));
  }
}

TEST(Adwp, StateRoundTripsAndRefusesForeignStates) {
  const Nb201Space space = nb201_space();
  const BrightnessData data(64, 48, 8, 2);
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.epochs = 2;
  adwp.fit(*ctx, fr);
  const std::vector<Architecture> archs = some_archs(space, 2);
  const std::vector<Score> before = scores(adwp, *ctx, space, data, archs);
  const std::string blob = adwp.save_state();

  // Into a fresh surrogate (no space yet): the same model, the same scores.
  AdwpSurrogate fresh(adwp_options({{"init_seed", std::int64_t{5}}}));
  fresh.load_state(blob);
  EXPECT_TRUE(fresh.built());
  EXPECT_EQ(fresh.relaxed_parameters().size(), adwp.relaxed_parameters().size());
  EXPECT_EQ(fresh.loss_curve(), adwp.loss_curve());
  const std::vector<Score> after = scores(fresh, *ctx, space, data, archs);
  for (std::size_t i = 0; i < archs.size(); ++i) {
    EXPECT_EQ(after[i].value, before[i].value) << i;
    EXPECT_EQ(after[i].extra.at("loss"), before[i].extra.at("loss")) << i;
  }
  // Into a surrogate already built for the space: copied into the tensors it hands out.
  AdwpSurrogate built(adwp_options());
  built.prepare(*ctx, space);
  const std::vector<at::Tensor> held = built.relaxed_parameters();
  built.load_state(blob);
  EXPECT_TRUE(at::equal(held[0], adwp.relaxed_parameters()[0]));
  EXPECT_EQ(scores(built, *ctx, space, data, archs)[0].value, before[0].value);

  // Truncated, corrupted, foreign blobs.
  EXPECT_NE(error_of([&] { fresh.load_state(blob.substr(0, blob.size() / 2)); }).find("truncated"),
            std::string::npos);
  EXPECT_NE(error_of([&] { fresh.load_state(blob.substr(0, 12)); }).find("truncated"),
            std::string::npos);
  std::string corrupt = blob;
  corrupt[blob.size() - 3] ^= 0x55;
  EXPECT_NE(error_of([&] { fresh.load_state(corrupt); }).find("checksum"), std::string::npos);
  EXPECT_NE(error_of([&] {
              fresh.load_state("HNAS.GHN and more bytes than a header");
            }).find("not an ADWP state blob"),
            std::string::npos);
  AdwpSurrogate wider(adwp_options({{"hidden", std::int64_t{32}}}));
  const std::string model = error_of([&] { wider.load_state(blob); });
  EXPECT_NE(model.find("hidden=64"), std::string::npos) << model;
  // A failed load changes nothing.
  EXPECT_EQ(scores(fresh, *ctx, space, data, archs)[0].value, before[0].value);

  // A state trained on another network size: refused by a surrogate built for this one ...
  const Nb201Space other = nb201_space(1, 8);
  AdwpSurrogate big(adwp_options());
  big.prepare(*ctx, other);
  const std::string big_blob = big.save_state();
  const std::string e = error_of([&] { fresh.load_state(big_blob); });
  EXPECT_NE(e.find("another space, network size"), std::string::npos) << e;
  EXPECT_NE(e.find("relaxed(nb201, N=1, C=8)"), std::string::npos) << e;
  EXPECT_NE(e.find("is [32] there, [16] here"), std::string::npos) << e;
  // ... and, loaded into a surrogate not built yet, at its first call with this space.
  AdwpSurrogate lazy(adwp_options());
  lazy.load_state(big_blob);
  const std::string l = error_of([&] { lazy.generate(*ctx, archs[0], space); });
  EXPECT_NE(l.find("does not apply"), std::string::npos) << l;
  EXPECT_NE(l.find("relaxed(nb201, N=1, C=8)"), std::string::npos) << l;
  // A state saved before any fit holds no model, and loads as such.
  AdwpSurrogate empty(adwp_options());
  AdwpSurrogate target(adwp_options());
  target.load_state(empty.save_state());
  EXPECT_FALSE(target.built());
}

TEST(Adwp, StateOfADoubleModelLoadsIntoAFloatOne) {
  const Nb201Space space = nb201_space();
  AdwpSurrogate d(adwp_options({{"dtype", std::string("double")}}));
  auto ctx = context();
  d.prepare(*ctx, space);
  AdwpSurrogate f(adwp_options());
  f.load_state(d.save_state());
  for (const auto& t : f.relaxed_parameters()) EXPECT_EQ(t.scalar_type(), at::kFloat);
  const Architecture a = space.parse(kExample);
  const WeightMap wd = d.generate(*ctx, a, space), wf = f.generate(*ctx, a, space);
  for (const auto& [name, t] : wd)
    EXPECT_TRUE(at::allclose(t.to(at::kFloat), wf.at(name), 1e-5, 1e-6)) << name;
}

TEST(Adwp, ABuiltModelRefusesAnotherSpace) {
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  const Nb201Space small = nb201_space(), wide = nb201_space(1, 8);
  adwp.prepare(*ctx, small);
  const std::string e = error_of([&] { adwp.generate(*ctx, wide.parse(kExample), wide); });
  EXPECT_NE(e.find("relaxed(nb201, N=1, C=4)"), std::string::npos) << e;
  EXPECT_NE(e.find("relaxed(nb201, N=1, C=8)"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// darts with ADWP's intensive space (macro: every cell its own alphas)

/// darts with `layers` cells of C channels (macro), restricted to a K-candidate intensive space
/// derived from seeded random alphas of the full space (DartsSpace::intensive()), whose file is
/// written to a temporary folder. `k` = 0: the full DARTS supernet.
DartsSpace darts_space(std::int64_t layers, std::int64_t c, std::int64_t k,
                       std::int64_t input_size = 8, std::int64_t input_channels = 1,
                       std::int64_t classes = 2) {
  Options o;
  o.set("layers", layers).set("channels", c).set("input_size", input_size);
  o.set("input_channels", input_channels).set("classes", classes).set("macro", true);
  const DartsSpace full(DartsSpace::params().resolve(o, "darts"));
  if (k == 0) return full;
  at::Generator gen = at::detail::createCPUGenerator(17);
  std::vector<at::Tensor> alphas;
  for (const ArchParamSpec& b : full.arch_params())
    alphas.push_back(at::randn(b.shape, gen, at::kFloat));
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("hypernas_adwp_intensive_" + std::to_string(layers) + "_" + std::to_string(c) + "_" +
       std::to_string(k) + "_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       ".json");
  std::ofstream(path, std::ios::binary) << full.intensive(alphas, k).json;
  o.set("intensive", path.string());
  DartsSpace space(DartsSpace::params().resolve(o, "darts"));
  std::filesystem::remove(path);
  return space;
}

TEST(Adwp, DartsIntensiveWeightsMatchTheExecutor) {
  const DartsSpace space = darts_space(3, 4, 6);
  const Relaxation relax = space.relaxed();
  ASSERT_EQ(relax.blocks.size(), 3u);  // macro: one block per cell
  AdwpSurrogate adwp(adwp_options());
  auto ctx = context();
  const adwp::ModelLayout& lay = (adwp.prepare(*ctx, space), adwp.model_layout());
  EXPECT_EQ(lay.block_sizes, (std::vector<std::int64_t>{24, 24, 24}));  // {4 nodes, K = 6}
  std::set<std::int64_t> blocks;
  for (const auto& g : lay.generated) {
    blocks.insert(g.block);
    // Cell i's convs read cell i's block.
    EXPECT_EQ(g.node.rfind("c" + std::to_string(g.block) + ".", 0), 0u) << g.name;
  }
  EXPECT_EQ(blocks.size(), 3u);
  const WeightMap relaxed =
      adwp.generate_relaxed(*ctx, space, {at::randn({4, 6}), at::randn({4, 6}), at::randn({4, 6})});
  expect_matches(relaxed, graph_executor().parameters(relax.network), "darts relaxed");
  const at::Tensor x = images(4);
  Rng rng(2);
  for (int i = 0; i < 3; ++i) {
    const Architecture a = space.sample(rng);
    const WeightMap w = adwp.generate(*ctx, a, space);
    expect_matches(w, graph_executor().parameters(a), a.text);
    const Selection sel = space.select(a);
    const at::Tensor discrete = graph_executor().forward(a, w, x).back();
    const at::Tensor one_hot =
        graph_executor()
            .forward_relaxed(relax, adwp.relaxed_weights(*ctx, space, sel.probs, true), sel.probs,
                             x)
            .back();
    EXPECT_TRUE(at::allclose(one_hot, discrete, 1e-5, 1e-5))
        << a.text << ": " << (one_hot - discrete).abs().max().item<double>();
  }
  // An architecture outside the intensive space has no weights here.
  const DartsSpace full = darts_space(3, 4, 0);
  Architecture outside;
  for (int i = 0; i < 50 && outside.text.empty(); ++i) {
    Architecture a = full.sample(rng);
    try {
      space.select(a);
    } catch (const Error&) {
      outside = std::move(a);
    }
  }
  ASSERT_FALSE(outside.text.empty());
  EXPECT_THROW(adwp.generate(*ctx, space.parse(outside.text), space), Error);
  // A model of the full supernet does not apply to the intensive space.
  AdwpSurrogate supernet(adwp_options());
  supernet.prepare(*ctx, full);
  const std::string e = error_of([&] { adwp.load_state(supernet.save_state()); });
  EXPECT_NE(e.find("intensive space does not apply"), std::string::npos) << e;
  EXPECT_NE(e.find(abbreviate(full.relaxed().network.text, 160)), std::string::npos) << e;
  EXPECT_NE(e.find(abbreviate(relax.network.text, 160)), std::string::npos) << e;
}

// The README's table for darts (8 cells, C = 16, CIFAR-10 shape, macro) with a 6-candidate
// intensive space (derived from seeded random alphas: the counts depend on which candidates it
// keeps), and for the full DARTS supernet (14 edges x 7 ops per cell).
TEST(Adwp, ParameterCountsAtDartsSize) {
  for (std::int64_t k : {6, 0}) {
    const DartsSpace space = darts_space(8, 16, k, 32, 3, 10);
    const Relaxation relax = space.relaxed();
    const adwp::ModelLayout lay = adwp::layout(relax, graph_executor().parameters(relax.network));
    const adwp::ParameterCounts c = adwp::count_parameters(lay, 64);
    std::map<std::string, std::int64_t> by_op;
    for (const auto& g : lay.generated)
      for (const char* op : darts::kOpNames)
        if (g.node.find(std::string(".") + op + ".") != std::string::npos) ++by_op[op];
    std::cout << "darts 8 cells C=16 " << (k ? "intensive K=6" : "full supernet")
              << ": generated conv weights " << c.generated.tensors << " (" << c.generated.values
              << " values), GeneratingBlock parameters " << c.blocks.values;
    for (const auto& [part, n] : c.learned)
      std::cout << ", learned " << part << " " << n.tensors << " tensors / " << n.values;
    std::cout << ", trainable " << c.trainable() << "; generated convs by op:";
    for (const auto& [op, n] : by_op) std::cout << " " << op << " " << n;
    std::cout << "\n";
    std::int64_t total = 0;
    for (const auto& [op, n] : by_op) total += n;
    EXPECT_EQ(total, c.generated.tensors);
    EXPECT_EQ(lay.block_sizes.size(), 8u);
    for (std::int64_t b : lay.block_sizes) EXPECT_EQ(b, k ? 4 * k : 14 * 8);
    if (k == 0) {
      // Per cell: 14 edges x (sep 3x3, sep 5x5: 4 convs each; dil 3x3, 5x5: 2 each), plus the
      // FactorizedReduce (2 convs) of skip_connect on the 2 input edges of each reduction node
      // source (8 edges from inputs 0 and 1 per reduction cell).
      EXPECT_EQ(c.generated.tensors, 8 * 14 * 12 + 2 * 8 * 2);
    }
  }
}

}  // namespace
