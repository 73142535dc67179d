// Tests of the training-free proxies (plugins/surrogates/zero_cost): every proxy on a tiny
// hand-made network against the same definition written out with ATen autograd (or by hand),
// the pieces (jacob_cov's spectrum score, NASWOT's kernel, removing batch norms), defined
// scores on degenerate NB201 cells, and the eight plugins loaded by the kernel's registry.

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernel/exec/executor.h"
#include "kernel/plugin/registry.h"
#include "plugins/surrogates/zero_cost/zero_cost.h"
#include "tests/kernel/train/FakeDataset.h"
#include "tests/support/arch_builder.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace {

namespace fs = std::filesystem;
using namespace hypernas;
using namespace hypernas::zero_cost;
using at::Tensor;

/// in (3 channels) -> conv 3x3 "c" (3 -> 4) -> bn "b" -> relu "r" -> gap -> linear "fc" (4 -> 3),
/// and a second conv branch "d" (1x1) added to the bn's output before the relu.
Architecture tiny() {
  test::Builder b;
  b.arch.space = "hand";
  b.arch.text = "tiny";
  const auto in = b.add("input", "in", 0, 3, {});
  const auto c = b.add("conv", "c", 3, 4, {in}, 3);
  const auto bn = b.add("bn", "b", 4, 4, {c});
  const auto d = b.add("conv", "d", 3, 4, {in}, 1);
  const auto r = b.add("relu", "r", 4, 4, {bn, d});
  const auto g = b.add("gap", "g", 4, 4, {r});
  b.add("linear", "fc", 4, 3, {g});
  return b.arch;
}

/// The tiny network written out with ATen ops; `z` receives the conv and linear outputs.
Tensor reference_forward(const WeightMap& w, const Tensor& x, std::vector<Tensor>* z = nullptr,
                         Tensor* relu = nullptr) {
  const Tensor c = at::conv2d(x, w.at("c.weight"), {}, 1, 1);
  const Tensor b =
      at::batch_norm(c, w.at("b.weight"), w.at("b.bias"), {}, {}, true, 0.1, 1e-5, false);
  const Tensor d = at::conv2d(x, w.at("d.weight"));
  const Tensor r = at::relu(b + d);
  const Tensor out = at::linear(r.mean({2, 3}), w.at("fc.weight"), w.at("fc.bias"));
  if (z) *z = {c, d, out};
  if (relu) *relu = r;
  return out;
}

struct Tiny : ::testing::Test {
  exec::GraphExecutor exec;
  Architecture arch = tiny();
  WeightMap w = exec.init_weights(arch, 7, c10::kCPU);
  Tensor x, y;
  void SetUp() override {
    at::Generator gen = at::detail::createCPUGenerator(3);
    x = at::randn({6, 3, 5, 5}, gen);
    y = at::randint(3, {6}, gen, at::kLong);
  }
  std::vector<Tensor> layers() const {
    return {w.at("c.weight"), w.at("d.weight"), w.at("fc.weight")};
  }
  Tensor loss(const Tensor& logits) const { return at::nll_loss(at::log_softmax(logits, 1), y); }
};

TEST_F(Tiny, ReferenceIsTheExecutorsNetwork) {
  c10::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(reference_forward(w, x), exec.forward(arch, w, x).back(), 1e-5, 1e-6));
}

TEST_F(Tiny, GradNormSnipAndGraspMatchAutograd) {
  const std::vector<Tensor> ws = layers();
  const std::vector<Tensor> g =
      torch::autograd::grad({loss(reference_forward(w, x))}, ws, {}, true, true);
  double norm = 0, sens = 0, z = 0;
  Tensor dot;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    norm += g[i].norm().item<double>();
    sens += (ws[i] * g[i]).abs().sum().item<double>();
    const Tensor t = (g[i].detach() * g[i]).sum();
    dot = dot.defined() ? dot + t : t;
  }
  const std::vector<Tensor> hg = torch::autograd::grad({dot}, ws);
  for (std::size_t i = 0; i < ws.size(); ++i) z += (-ws[i] * hg[i]).sum().item<double>();
  EXPECT_NEAR(grad_norm(exec, arch, w, x, y), norm, 1e-5 * std::abs(norm));
  EXPECT_NEAR(snip(exec, arch, w, x, y), sens, 1e-5 * std::abs(sens));
  EXPECT_NEAR(grasp(exec, arch, w, x, y), z, 1e-4 * std::abs(z) + 1e-8);
  EXPECT_NE(z, 0.0);
  // The weights are left as they were: no gradient accumulated on them.
  for (const Tensor& t : ws) EXPECT_FALSE(t.grad().defined());
}

TEST_F(Tiny, FisherMatchesAutogradOnTheLayerOutputs) {
  std::vector<Tensor> zs;
  const Tensor l = loss(reference_forward(w, x, &zs));
  const std::vector<Tensor> g = torch::autograd::grad({l}, zs);
  double want = 0;
  for (std::size_t i = 0; i < zs.size(); ++i) {
    Tensor p = zs[i].detach() * g[i];
    if (p.dim() == 4) p = p.sum({2, 3});
    want += (0.5 * p.pow(2).mean(0)).sum().item<double>();
  }
  EXPECT_NEAR(fisher(exec, arch, w, x, y), want, 1e-5 * want);
  EXPECT_GT(want, 0.0);
}

TEST_F(Tiny, JacobCovMatchesTheInputJacobians) {
  const Tensor xi = x.clone().requires_grad_(true);
  const Tensor out = reference_forward(w, xi);
  const Tensor j = torch::autograd::grad({out.sum()}, {xi})[0];
  EXPECT_NEAR(jacob_cov(exec, arch, w, x), jacob_cov_score(j), 1e-6);
}

TEST(JacobCovScore, ByHandAndDegenerate) {
  // Rows (1, 0, 0) and (0, 1, 0): centred, their correlation is -1/2, eigenvalues 1/2 and 3/2.
  const double k = 1e-5;
  auto term = [&](double v) { return std::log(v + k) + 1 / (v + k); };
  const Tensor j = at::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 0.0}, at::kDouble).view({2, 3});
  EXPECT_NEAR(jacob_cov_score(j), -(term(0.5) + term(1.5)), 1e-9);
  // Uncorrelated is best, correlated worst; an image the network ignores gets the worst.
  const double worst = -(term(4) + 3 * term(0));
  EXPECT_NEAR(jacob_cov_score(at::zeros({4, 10})), worst, 1e-6 * std::abs(worst));
  Tensor one_flat = at::randn({4, 10}, at::kDouble);
  one_flat[2].fill_(3.0);
  EXPECT_NEAR(jacob_cov_score(one_flat), worst, 1e-6 * std::abs(worst));
  EXPECT_GT(jacob_cov_score(at::randn({4, 10}, at::kDouble)), worst);
}

TEST(Naswot, KernelOfKnownCodesAndRidge) {
  // Codes (1, 0, 1) and (1, 1, 0) agree on one unit of three: K = [[3, 1], [1, 3]], det 8.
  const Tensor c = at::tensor({1.0, 0.0, 1.0, 1.0, 1.0, 0.0}, at::kDouble).view({2, 3});
  const Tensor kmat = c.mm(c.t()) + (1 - c).mm((1 - c).t());
  EXPECT_NEAR(kmat[0][1].item<double>(), 1.0, 0);
  EXPECT_NEAR(naswot_logdet(kmat), std::log(8.0), 1e-12);
  // Equal codes: singular; one unit of ridge: [[4, 3], [3, 4]], det 7.
  const Tensor same = at::full({2, 2}, 3.0, at::kDouble);
  EXPECT_NEAR(naswot_logdet(same), std::log(7.0), 1e-12);
}

TEST_F(Tiny, NaswotReadsTheReluCodes) {
  c10::NoGradGuard no_grad;
  Tensor r;
  reference_forward(w, x, nullptr, &r);
  const Tensor codes = (r.reshape({x.size(0), -1}) > 0).to(at::kDouble);
  const Tensor kmat = codes.mm(codes.t()) + (1 - codes).mm((1 - codes).t());
  EXPECT_NEAR(naswot(exec, arch, w, x), naswot_logdet(kmat), 1e-9);
}

TEST_F(Tiny, SynflowTakesAbsoluteWeightsAndDropsBatchNorm) {
  // Without bn: R(1) = sum_k |W_k| . relu(|c| * 1 + |d| * 1) averaged + |b_k|, all positive.
  WeightMap neg = w;
  for (auto& [name, t] : neg)
    t = -t.detach().abs();  // every weight negative: signs must not matter
  const Architecture plain = without_bn(arch);
  EXPECT_EQ(boost::num_vertices(plain.graph), boost::num_vertices(arch.graph) - 1);
  for (auto [it, end] = boost::vertices(plain.graph); it != end; ++it)
    EXPECT_NE(plain.graph[*it].op, "bn");
  WeightMap a;
  std::vector<Tensor> ws;
  for (const char* n : {"c.weight", "d.weight", "fc.weight", "fc.bias"})
    a[n] = w.at(n).detach().abs().to(at::kDouble).requires_grad_(true);
  const Tensor ones = at::ones({1, 3, 5, 5}, at::kDouble);
  const Tensor h =
      at::relu(at::conv2d(ones, a.at("c.weight"), {}, 1, 1) + at::conv2d(ones, a.at("d.weight")));
  const Tensor out = at::linear(h.mean({2, 3}), a.at("fc.weight"), a.at("fc.bias"));
  const std::vector<Tensor> layers = {a.at("c.weight"), a.at("d.weight"), a.at("fc.weight")};
  const std::vector<Tensor> g = torch::autograd::grad({out.sum()}, layers);
  double want = 0;
  for (std::size_t i = 0; i < layers.size(); ++i)
    want += (layers[i] * g[i]).abs().sum().item<double>();
  EXPECT_NEAR(synflow(exec, arch, w, 3, 5, 5), want, 1e-9 * want);
  EXPECT_NEAR(synflow(exec, arch, neg, 3, 5, 5), want, 1e-9 * want);
  // By hand on a 1x1 chain: in -> conv 1x1 (w) -> gap -> linear (W, b): 2 |w| sum_k |W_k|.
  test::Builder chain_builder;
  chain_builder.arch.text = "chain";
  chain_builder.add("input", "in", 0, 1, {});
  chain_builder.add("conv", "c", 1, 1, {0}, 1);
  chain_builder.add("bn", "b", 1, 1, {1});
  chain_builder.add("gap", "g", 1, 1, {2});
  chain_builder.add("linear", "fc", 1, 2, {3});
  const Architecture& chain = chain_builder.arch;
  WeightMap cw = exec.init_weights(chain, 1, c10::kCPU);
  cw["c.weight"] = at::full({1, 1, 1, 1}, -0.5);
  cw["fc.weight"] = at::tensor({2.0f, -3.0f}).view({2, 1});
  EXPECT_NEAR(synflow(exec, chain, cw, 1, 4, 4), 2 * 0.5 * 5.0, 1e-12);
}

TEST_F(Tiny, ZenMatchesItsDefinition) {
  c10::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(11);
  const Tensor xa = at::randn({8, 3, 5, 5}, gen), e = at::randn({8, 3, 5, 5}, gen);
  const WeightMap gw = gaussian_weights(exec, arch, 5, c10::kCPU);
  EXPECT_EQ(gw.at("b.weight").sum().item<double>(), 4.0);
  EXPECT_EQ(gw.at("fc.bias").abs().sum().item<double>(), 0.0);
  auto pass = [&](const Tensor& in, Tensor& var) {
    Tensor r;
    reference_forward(gw, in, nullptr, &r);
    const Tensor c = at::conv2d(in, gw.at("c.weight"), {}, 1, 1);
    var = c.transpose(0, 1).reshape({4, -1}).to(at::kDouble).var(1, true);
    return r;
  };
  Tensor v1, v2;
  const Tensor f1 = pass(xa, v1), f2 = pass(xa + 0.01 * e, v2);
  const double want =
      std::log((f1 - f2).abs().to(at::kDouble).sum({1, 2, 3}).mean().item<double>()) +
      std::log(std::sqrt((0.81 + 0.09 * v1 + 0.1 * v2).mean().item<double>()));
  // (float32 features of N(0, 1) weights: their small differences carry ~1e-6 of rounding)
  EXPECT_NEAR(zen(exec, arch, gw, xa, e, 0.01), want, 1e-5 * std::abs(want));
}

// ---------------------------------------------------------------------------------------------
// The plugins, loaded at run time

class Plugins : public ::testing::Test {
 protected:
  void SetUp() override {
    registry.scan({fs::path(HYPERNAS_BINARY_DIR) / "plugins"});
    ASSERT_TRUE(registry.refusals().empty()) << registry.refusals().front().reason;
    Options o;
    o.set("cells_per_stage", std::int64_t{1}).set("channels", std::int64_t{4});
    o.set("input_channels", std::int64_t{3}).set("input_size", std::int64_t{8});
    o.set("classes", std::int64_t{3});
    space = registry.create_space("nb201", o);
  }
  std::vector<Score> score(Surrogate& s, const std::vector<Architecture>& archs,
                           std::uint64_t seed = 1) {
    ScoreRequest r;
    r.space = space.get();
    r.data = &data;
    for (const Architecture& a : archs) r.archs.push_back(&a);
    r.seeds.assign(archs.size(), seed);
    return s.score(ctx, r);
  }
  plugin::Registry registry;
  std::shared_ptr<SearchSpace> space;
  exec::GraphExecutor exec;
  test::TestContext ctx{1, &exec};
  test::FakeDataset data{160, 16, 16, 8};
};

const char* const kProxies[] = {"synflow",   "naswot", "jacob_cov", "snip",
                                "grad_norm", "grasp",  "fisher",    "zen"};

TEST_F(Plugins, EveryProxyScoresEveryCellIncludingDegenerateOnes) {
  const std::vector<Architecture> archs = {
      space->parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),  // zero cells
      space->parse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
      space->parse("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
      space->parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|"
                   "nor_conv_3x3~1|avg_pool_3x3~2|"),
      space->parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
                   "nor_conv_3x3~1|nor_conv_3x3~2|")};
  for (const char* name : kProxies) {
    Options o;
    if (std::string(name) == "aznas") o.set("reference", std::int64_t{8});
    auto s = registry.create_surrogate(name, o);
    EXPECT_EQ(s->capabilities(), static_cast<std::uint32_t>(kNeedsData | kUsesSeed)) << name;
    const std::vector<Score> a = score(*s, archs), b = score(*s, archs);
    ASSERT_EQ(a.size(), archs.size()) << name;
    for (std::size_t i = 0; i < archs.size(); ++i) {
      EXPECT_TRUE(std::isfinite(a[i].value)) << name << " " << archs[i].text;
      EXPECT_EQ(a[i].value, b[i].value) << name << ": the same seed gives the same score";
    }
    // The all-conv cell and the mixed one differ (the proxy reads the architecture).
    EXPECT_NE(a[3].value, a[4].value) << name;
  }
}

TEST_F(Plugins, OptionsAndErrors) {
  Options o;
  o.set("batch", std::int64_t{1000});
  auto s = registry.create_surrogate("snip", o);
  const std::vector<Architecture> one = {space->sample(ctx.rng())};
  const std::string e = test::error_of([&] { score(*s, one); });
  EXPECT_NE(e.find("fewer than 1000 images"), std::string::npos) << e;
  EXPECT_NE(e.find("fake"), std::string::npos) << e;
  ScoreRequest no_data;
  no_data.archs = {&one[0]};
  no_data.seeds = {1};
  const std::string d = test::error_of([&] { s->score(ctx, no_data); });
  EXPECT_NE(d.find("needs a dataset"), std::string::npos) << d;
  // Zen's init option: the paper's Gaussian weights or the kernel's initialiser.
  Options z;
  z.set("init", std::string("sdk"));
  auto zs = registry.create_surrogate("zen", z);
  auto zg = registry.create_surrogate("zen", Options{});
  EXPECT_NE(score(*zs, one)[0].value, score(*zg, one)[0].value);
  EXPECT_THROW(registry.create_surrogate("zen", Options{}.set("init", std::string("xavier"))),
               UsageError);
  // Another seed, other initial weights.
  auto g = registry.create_surrogate("grad_norm", Options{});
  EXPECT_NE(score(*g, one, 1)[0].value, score(*g, one, 2)[0].value);
}

TEST(Aznas, AggregationIsTheSumOfLogRanks) {
  std::vector<AzMetrics> ref(3);
  for (int i = 0; i < 3; ++i) ref[i] = {1.0 + i, 1.0 + i, 1.0 + i, 1.0 + i};
  // 2 against {1, 2, 3}: one below, one tie: rank 1 + 1 + 1/2 of 4.
  EXPECT_NEAR(aznas_aggregate(ref, {2, 2, 2, 2}), 4 * std::log(2.5 / 4), 1e-12);
  // Above everything: log(4/4) = 0, the best; below everything: log(1/4) per metric.
  EXPECT_NEAR(aznas_aggregate(ref, {9, 9, 9, 9}), 0.0, 1e-12);
  EXPECT_NEAR(aznas_aggregate(ref, {0, 9, 9, 9}), std::log(0.25), 1e-12);
}

TEST_F(Plugins, AznasFeaturesMetricsAndScores) {
  // NB201 (N = 1): the stem, three cells and two reduction blocks; not the head.
  const Architecture a = space->parse(
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|"
      "avg_pool_3x3~2|");
  const std::vector<std::string> f = aznas_features(a.graph);
  ASSERT_EQ(f.size(), 6u);
  for (const std::string& name : f) {
    std::int64_t v = -1;
    for (std::int64_t u = 0; u < static_cast<std::int64_t>(boost::num_vertices(a.graph)); ++u)
      if (a.graph[u].name == name) v = u;
    ASSERT_GE(v, 0) << name;
    EXPECT_NE(a.graph[v].op, "linear") << name;
    EXPECT_NE(a.graph[v].op, "gap") << name;
  }
  // Expressivity: the entropies of the features' covariance spectra, computed here directly.
  const WeightMap w = kaiming_fan_in_weights(exec, a, 3, c10::kCPU);
  const Batch b = *data.batches(Split::Train, BatchOptions{}).get()->next();
  const AzMetrics m = aznas_metrics(exec, a, w, b.images, 5, 123.0);
  CaptureOptions capture;
  capture.nodes = f;
  double e = 0;
  std::vector<double> each;
  for (const NodeOutput& o : exec.forward_capture(a, w, b.images, capture).captured) {
    Tensor x =
        o.value.detach().to(at::kDouble).permute({0, 2, 3, 1}).reshape({-1, o.value.size(1)});
    x = x - x.mean(0, true);
    const Tensor sv =
        at::linalg_eigvalsh(x.t().mm(x) / static_cast<double>(x.size(0))).clamp_min(0);
    const Tensor p = sv / sv.sum();
    each.push_back((-p * at::log(p + 1e-8)).sum().item<double>());
    e += each.back();
  }
  EXPECT_NEAR(m.expressivity, e, 1e-9 * e);
  double prog = 1e300;
  for (std::size_t i = 1; i < each.size(); ++i) prog = std::min(prog, each[i] - each[i - 1]);
  EXPECT_NEAR(m.progressivity, prog, 1e-9);
  EXPECT_LE(m.trainability, 0.0);  // 2 - s - 1/s is at most 0 (at s = 1)
  EXPECT_TRUE(std::isfinite(m.trainability));
  EXPECT_EQ(m.complexity, 123.0);
  // The plugin: raw metrics in extra, and a score independent of the request.
  Options o;
  o.set("reference", std::int64_t{6});
  auto s = registry.create_surrogate("aznas", o);
  std::vector<Architecture> pool;
  Rng rng(9);
  for (int i = 0; i < 4; ++i) pool.push_back(space->sample(rng));
  const std::vector<Score> all = score(*s, pool);
  for (const char* k : {"expressivity", "progressivity", "trainability", "complexity"})
    EXPECT_TRUE(all[2].extra.count(k)) << k;
  EXPECT_EQ(score(*s, {pool[2]})[0].value, all[2].value);
  EXPECT_LE(all[2].value, 0.0);
}

}  // namespace
