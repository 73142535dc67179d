// Tests of the `smash` surrogate (plugins/surrogates/smash): the weight-normalised convs, the
// index mapping of the hypernetwork's output against a literal re-implementation of the
// authors' view/index_select sequence, slicing of the learned maximal tensors, generated weights
// against the executor's parameter lists on the smash, nb201 and darts spaces, gradients into
// the hypernetwork, a short fit, kernel annealing, scoring with seeds, and the state blob.
// Everything runs on tiny networks (smash: N = 4, N_max = 16, width 1, 1..2 layers per block,
// 8x8 inputs; a hypernetwork of 1,1,1 dense layers of growth 4) with fixed seeds.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
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
#include "plugins/spaces/smash/smash.h"
#include "plugins/surrogates/smash/smash_hypernet.h"
#include "tests/plugins/ghn/brightness_data.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in smash_plugin.cpp
}

namespace {

using namespace hypernas;
using namespace hypernas::smash_hypernet;
using test::BrightnessData;
using test::error_of;
using test::TestContext;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The smash surrogate's options: a tiny hypernetwork, with `given` set.
Options smash_options(std::map<std::string, Value> given = {}) {
  Options o;
  o.set("hidden_layers", std::string("1,1,1")).set("hidden_growth", std::int64_t{4});
  for (auto& [k, v] : given) o.set(k, v);
  return SmashSurrogate::params().resolve(o, "smash");
}

/// A tiny smash space on 1-channel 8x8 images of 2 classes, with `given` set.
std::unique_ptr<SmashSpace> smash_space(std::map<std::string, Value> given = {}) {
  Options o;
  o.set("N", std::int64_t{4}).set("N_max", std::int64_t{16}).set("width", std::int64_t{1});
  o.set("min_layers", std::int64_t{1}).set("max_layers", std::int64_t{2});
  o.set("input_size", std::int64_t{8}).set("input_channels", std::int64_t{1});
  o.set("classes", std::int64_t{2}).set("max_groups", std::int64_t{2});
  o.set("stem_kernel", std::int64_t{3}).set("depth_compression", std::int64_t{2});
  for (auto& [k, v] : given) o.set(k, v);
  return std::make_unique<SmashSpace>(SmashSpace::params().resolve(o, "smash"));
}

Nb201Space nb201_space(std::int64_t channels = 4) {
  Options o;
  o.set("cells_per_stage", std::int64_t{1}).set("channels", channels);
  o.set("input_size", std::int64_t{8}).set("input_channels", std::int64_t{1});
  o.set("classes", std::int64_t{2});
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

DartsSpace darts_space() {
  Options o;
  o.set("layers", std::int64_t{3}).set("channels", std::int64_t{4});
  o.set("input_size", std::int64_t{8}).set("input_channels", std::int64_t{1});
  o.set("classes", std::int64_t{2});
  return DartsSpace(DartsSpace::params().resolve(o, "darts"));
}

const exec::GraphExecutor& graph_executor() {
  static const exec::GraphExecutor exec;
  return exec;
}

std::unique_ptr<TestContext> context(std::uint64_t seed = 1) {
  return std::make_unique<TestContext>(seed, &graph_executor());
}

at::Tensor images(std::int64_t n, std::uint64_t seed = 5) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn({n, 1, 8, 8}, gen, at::kFloat);
}

/// `weights` holds exactly the parameters `shapes` lists, with their shapes, finite.
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

ScoreRequest score_request(const SearchSpace& space, const Dataset& data,
                           const std::vector<const Architecture*>& archs,
                           std::vector<std::uint64_t> seeds) {
  ScoreRequest r;
  r.space = &space;
  r.data = &data;
  r.archs = archs;
  r.batch_size = 16;
  r.seeds = std::move(seeds);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Pieces

TEST(SmashHypernetTest, WeightNormIsScaleInvariantAndUnitNorm) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor w = at::randn({5, 3, 3, 3}, gen, at::kFloat);
  const at::Tensor x = at::randn({2, 3, 6, 6}, gen, at::kFloat);
  EXPECT_NEAR(wn2d(w).norm().item<double>(), 1.0, 1e-5);
  const at::Tensor a = at::conv2d(x, wn2d(w), {}, 1, 1);
  const at::Tensor b = at::conv2d(x, wn2d(w * 7.5), {}, 1, 1);
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(at::conv2d(x, w, {}, 1, 1), at::conv2d(x, w * 7.5, {}, 1, 1)));
}

TEST(SmashHypernetTest, IndexMappingEqualsTheAuthorsViewAndIndexSelect) {
  const std::vector<std::array<std::int64_t, 4>> cases = {{4, 4, 4, 3}, {2, 3, 5, 4}, {8, 4, 8, 1}};
  for (const auto& [N, dc, k, S] : cases) {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(N * 100 + S));
    const at::Tensor out = at::randn({1, N * N * dc, k, S}, gen, at::kFloat);
    const std::int64_t N_max = k * N, rows = S * dc * N;
    // SMASH.sample_weights(): squeeze(0).transpose(0, 1).contiguous().view(N_max, (slice_index
    // + 1) * dc * N).index_select(1, [i for q in range(S) for i in range(q, S*dc*N, S)])
    // .transpose(0, 1): [input rows, units].
    std::vector<std::int64_t> idx;
    for (std::int64_t q = 0; q < S; ++q)
      for (std::int64_t i = q; i < rows; i += S) idx.push_back(i);
    const at::Tensor theirs = out.squeeze(0)
                                  .transpose(0, 1)
                                  .contiguous()
                                  .view({N_max, rows})
                                  .index_select(1, at::tensor(idx, at::kLong))
                                  .transpose(0, 1);
    const at::Tensor ours = hypernet_matrix(out, N, dc);
    ASSERT_EQ(ours.sizes().vec(), (std::vector<std::int64_t>{N_max, rows}));
    EXPECT_TRUE(at::equal(ours.t().contiguous(), theirs.contiguous()));
    // The formula of the header: channel ch at (kk, s) feeds row s·dc·N + ch % (dc·N) of unit
    // kk·N + ch / (dc·N).
    auto o = out.accessor<float, 4>();
    const at::Tensor oc = ours.contiguous();
    auto m = oc.accessor<float, 2>();
    for (std::int64_t ch = 0; ch < N * N * dc; ch += 3)
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t s = 0; s < S; ++s)
          ASSERT_EQ(m[kk * N + ch / (dc * N)][s * dc * N + ch % (dc * N)], o[0][ch][kk][s]);
  }
  EXPECT_NE(error_of([] {
              hypernet_matrix(at::zeros({1, 10, 2, 2}), 4, 4);
            }).find("expected [1, 64 (N·N·depth_compression), k, S]"),
            std::string::npos);
}

TEST(SmashHypernetTest, SliceMaxTakesFirstRowsAndTheCentre) {
  const at::Tensor full = at::arange(4 * 6 * 7 * 7, at::kFloat).view({4, 6, 7, 7});
  for (std::int64_t k : {1, 3, 5, 7}) {
    const at::Tensor s = slice_max(full, {3, 2, k, k}, "w");
    const std::int64_t o = (7 - k) / 2;
    EXPECT_TRUE(at::equal(s, full.narrow(0, 0, 3).narrow(1, 0, 2).narrow(2, o, k).narrow(3, o, k)));
  }
  EXPECT_TRUE(
      at::equal(slice_max(at::arange(10, at::kFloat), {4}, "b"), at::arange(4, at::kFloat)));
  EXPECT_NE(error_of([&] {
              slice_max(full, {5, 2, 3, 3}, "conv 'x'");
            }).find("conv 'x' has shape [5, 2, 3, 3], larger than its learned maximal tensor"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              slice_max(full, {3, 2, 4, 4}, "conv 'x'");
            }).find("odd sizes only"),
            std::string::npos);
}

TEST(SmashHypernetTest, KernelAnnealingFollowsTheAuthorsSchedule) {
  // m = 3 + int(2·2·min(j / (0.5 J), 1)); their sampler draws range(3, m + 2, 2).
  EXPECT_EQ(annealed_kernel_cap(7, 0, 100), 3);
  EXPECT_EQ(annealed_kernel_cap(7, 12, 100), 3);  // m = 3
  EXPECT_EQ(annealed_kernel_cap(7, 13, 100), 5);  // m = 4: kernels 3, 5
  EXPECT_EQ(annealed_kernel_cap(7, 30, 100), 5);  // m = 5
  EXPECT_EQ(annealed_kernel_cap(7, 38, 100), 7);  // m = 6: kernels 3, 5, 7
  EXPECT_EQ(annealed_kernel_cap(7, 50, 100), 7);
  EXPECT_EQ(annealed_kernel_cap(7, 99, 100), 7);
  EXPECT_EQ(annealed_kernel_cap(3, 0, 100), 3);
  EXPECT_EQ(annealed_kernel_cap(9, 0, 0), 9);
}

TEST(SmashHypernetTest, CapKernelsLowersActiveKernelsOnly) {
  const auto space = smash_space();
  const smash::Config& c = space->smash_config();
  Rng rng(5);
  int lowered = 0;
  for (int i = 0; i < 30; ++i) {
    const smash::Arch a = smash::sample(c, rng);
    const smash::Arch capped = cap_kernels(c, a, 3);
    smash::validate(c, capped);
    for (std::size_t b = 0; b < a.blocks.size(); ++b)
      for (std::size_t l = 0; l < a.blocks[b].size(); ++l)
        for (std::size_t j = 0; j < 4; ++j) {
          const smash::Layer &x = a.blocks[b][l], &y = capped.blocks[b][l];
          EXPECT_EQ(y.kernel[j], x.ops[j] ? std::min<std::int64_t>(x.kernel[j], 3) : x.kernel[j]);
          EXPECT_GE(y.dilation[j], x.dilation[j]);  // a smaller kernel allows as much or more
          EXPECT_EQ(y.dilation[j], x.dilation[j]);  // ... and nothing needed to change
          lowered += x.ops[j] && x.kernel[j] > 3;
        }
  }
  EXPECT_GT(lowered, 0);
}

TEST(SmashHypernetTest, HyperLayoutIsTheAuthorsDenseNet) {
  // The authors' widths for C = 10, growth 10, layers 8,10,4, output N·N·dc = 256.
  const HyperLayout h = hyper_layout(11, 10, {8, 10, 4}, 256);
  ASSERT_EQ(h.convs.size(), 1u + 8 + 1 + 10 + 1 + 4 + 1);
  EXPECT_EQ(h.convs[0].in, 11);
  EXPECT_EQ(h.convs[0].out, 7);
  EXPECT_TRUE(h.convs[0].concat);
  EXPECT_FALSE(h.convs[0].leaky);
  EXPECT_EQ(h.convs[1].in, 18);  // c.size(1) + 8
  EXPECT_EQ(h.convs[9].in, 18 + 80);
  EXPECT_EQ(h.convs[9].out, 49);  // (C + 8 + 8·10) // 2
  EXPECT_FALSE(h.convs[9].concat);
  EXPECT_EQ(h.convs[20].in, 49 + 100);
  EXPECT_EQ(h.convs[20].out, 74);
  EXPECT_EQ(h.convs.back().in, 74 + 40);
  EXPECT_EQ(h.convs.back().out, 256);
  EXPECT_EQ(h.convs.back().kernel, 1);
  EXPECT_EQ(parse_layers(" 8, 10,4"), (std::vector<std::int64_t>{8, 10, 4}));
  EXPECT_NE(error_of([] { parse_layers("8,,4"); }).find("item 2"), std::string::npos);
  EXPECT_NE(error_of([] { parse_layers("8,0"); }).find("'8,0'"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Generation on the smash space

TEST(SmashSurrogateTest, DescriptorAndCapabilities) {
  const PluginDescriptor* d = hypernas_plugin_export::descriptor();
  EXPECT_STREQ(d->name, "smash");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(PluginKind::Surrogate));
  SmashSurrogate s(smash_options());
  EXPECT_EQ(s.capabilities(), kTrainable | kGeneratesWeights | kEncodingConditioned | kNeedsData |
                                  kUsesSeed | kReadsEvalBatch | kReadsEvalImages);
  EXPECT_FALSE(s.built());
}

TEST(SmashSurrogateTest, GeneratedShapesMatchTheExecutorOn50SmashArchitectures) {
  const auto space = smash_space();
  SmashSurrogate s(smash_options());
  auto ctx = context();
  Rng rng(17);
  for (int i = 0; i < 50; ++i) {
    const Architecture a = space->sample(rng);
    const auto shapes = graph_executor().parameters(a);
    const WeightMap w = s.generate(*ctx, a, *space);
    expect_matches(w, shapes, a.text);
    if (i < 5) {
      const auto logits = graph_executor().forward(a, w, images(4));
      EXPECT_EQ(logits.back().sizes().vec(), (std::vector<std::int64_t>{4, 2})) << a.text;
    }
  }
}

TEST(SmashSurrogateTest, BottlenecksComeFromTheirRowsAndHaveUnitNorm) {
  const auto space = smash_space();
  const smash::Config& c = space->smash_config();
  SmashSurrogate s(smash_options());
  auto ctx = context();
  Rng rng(23);
  for (int i = 0; i < 10; ++i) {
    const Architecture a = space->sample(rng);
    const auto [x, W] = s.hyper_io(*ctx, a, *space, 99);
    const WeightMap w = s.generate_with(*ctx, a, *space, 99, false);
    const auto geo = smash::geometry(c, smash::parse(c, a.text));
    std::int64_t rows = 0;
    for (std::size_t b = 0; b < geo.size(); ++b)
      for (std::size_t l = 0; l < geo[b].size(); ++l) {
        const smash::LayerGeometry& g = geo[b][l];
        const at::Tensor t = w.at(cat("b", b, ".l", l, ".bottleneck.weight"));
        EXPECT_NEAR(t.norm().item<double>(), 1.0, 1e-4);
        const at::Tensor slice = W.narrow(0, 0, g.bottleneck).narrow(1, g.row, g.in);
        EXPECT_TRUE(at::allclose(t.view({g.bottleneck, g.in}), slice / slice.norm(), 1e-5, 1e-6));
        rows = g.row + g.in;
      }
    // Input: z and c cropped to the slices used plus one.
    const std::int64_t S = rows / (c.depth_compression * c.N) + 1;
    EXPECT_EQ(x.sizes().vec(),
              (std::vector<std::int64_t>{1, 1 + smash::encoding_channels(c), c.N_max / c.N, S}));
    const at::Tensor code = space->encode(a);
    const std::int64_t keep = std::min(S, code.size(2));
    EXPECT_TRUE(
        at::equal(x[0].narrow(0, 1, code.size(0)).narrow(2, 0, keep), code.narrow(2, 0, keep)));
  }
}

TEST(SmashSurrogateTest, OpConvsAreSlicesOfTheBlocksMaximalKernels) {
  const auto space = smash_space();
  SmashSurrogate s(smash_options());
  auto ctx = context();
  Rng rng(29);
  std::set<std::int64_t> kernels, groups;
  for (int i = 0; i < 40; ++i) {
    const Architecture a = space->sample(rng);
    const WeightMap w = s.generate(*ctx, a, *space);
    for (const ParamShape& p : graph_executor().parameters(a)) {
      const at::Tensor& t = w.at(p.name);
      if (p.node.find(".c") != std::string::npos && p.node.rfind("b", 0) == 0) {
        const std::int64_t b = p.node[1] - '0';
        const char j = p.node.back();
        const at::Tensor full = s.learned(cat("W.b", b, ".c", j));
        const std::int64_t k = p.shape[2], o = (full.size(2) - k) / 2;
        EXPECT_TRUE(at::equal(
            t,
            full.narrow(0, 0, p.shape[0]).narrow(1, 0, p.shape[1]).narrow(2, o, k).narrow(3, o, k)))
            << p.name;
        kernels.insert(k);
        for (auto [v, end] = boost::vertices(a.graph); v != end; ++v)
          if (a.graph[*v].name == p.node) groups.insert(a.graph[*v].groups);
      } else if (p.node.rfind("t", 0) == 0 || p.node.rfind("head.", 0) == 0) {
        const at::Tensor full = s.learned(p.name);
        at::Tensor expect = full;
        for (std::size_t d = 0; d < p.shape.size(); ++d)
          expect = expect.narrow(static_cast<std::int64_t>(d), 0, p.shape[d]);
        EXPECT_TRUE(at::equal(t, expect)) << p.name;
      }
    }
  }
  EXPECT_EQ(kernels, (std::set<std::int64_t>{3, 5, 7}));
  EXPECT_EQ(groups, (std::set<std::int64_t>{1, 2}));
}

TEST(SmashSurrogateTest, GradientsReachTheHypernetworkAndTheLearnedKernels) {
  const auto space = smash_space();
  SmashSurrogate s(smash_options());
  auto ctx = context();
  Rng rng(31);
  const Architecture a = space->sample(rng);
  const WeightMap w = s.generate_with(*ctx, a, *space, 7, true);
  const auto logits = graph_executor().forward(a, w, images(8));
  at::cross_entropy_loss(logits.back(),
                         at::tensor(std::vector<std::int64_t>{0, 1, 0, 1, 1, 0, 0, 1}))
      .backward();
  std::int64_t hyper = 0;
  for (const auto& [name, p] : s.named_parameters())
    if (name.rfind("hyper.", 0) == 0) {
      ++hyper;
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_GT(p.grad().abs().sum().item<double>(), 0) << name;
    }
  EXPECT_EQ(hyper, 1 + 1 + 1 + 1 + 1 + 1 + 1);  // first CL, 3 dense layers, 2 halvings, 1x1
  for (int b = 0; b < 3; ++b) {
    const at::Tensor g = s.learned(cat("W.b", b, ".c0")).grad();
    ASSERT_TRUE(g.defined()) << b;
    EXPECT_GT(g.abs().sum().item<double>(), 0);
  }
  EXPECT_GT(s.learned("head.fc.weight").grad().abs().sum().item<double>(), 0);
}

TEST(SmashSurrogateTest, WithoutZTheInputIsTheEncodingAlone) {
  const auto space = smash_space();
  SmashSurrogate s(smash_options({{"z", false}}));
  auto ctx = context();
  Rng rng(37);
  const Architecture a = space->sample(rng);
  const auto [x, W] = s.hyper_io(*ctx, a, *space, 1);
  EXPECT_EQ(x.size(1), smash::encoding_channels(space->smash_config()));
  const WeightMap w1 = s.generate_with(*ctx, a, *space, 1, false);
  const WeightMap w2 = s.generate_with(*ctx, a, *space, 2, false);
  for (const auto& [name, t] : w1) EXPECT_TRUE(at::equal(t, w2.at(name))) << name;
}

// ---------------------------------------------------------------------------------------------
// Other spaces

TEST(SmashSurrogateTest, GeneratesEveryConvOfNb201AndDartsArchitectures) {
  const Nb201Space nb = nb201_space();
  const DartsSpace darts = darts_space();
  for (const SearchSpace* space :
       {static_cast<const SearchSpace*>(&nb), static_cast<const SearchSpace*>(&darts)}) {
    SmashSurrogate s(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{16}}}));
    auto ctx = context();
    Rng rng(41);
    for (int i = 0; i < 8; ++i) {
      const Architecture a = space->sample(rng);
      const auto shapes = graph_executor().parameters(a);
      const WeightMap w = s.generate(*ctx, a, *space);
      expect_matches(w, shapes, space->name() + ": " + a.text);
      const auto [x, W] = s.hyper_io(*ctx, a, *space, 3);
      std::int64_t row = 0;
      for (const ParamShape& p : shapes) {
        if (p.role != ParamRole::ConvWeight) continue;
        const std::int64_t fan = w.at(p.name).numel() / p.shape[0];
        const at::Tensor slice = W.narrow(0, 0, p.shape[0]).narrow(1, row, fan);
        // generate() drew another z; the layout is checked with the same one.
        const WeightMap same = s.generate_with(*ctx, a, *space, 3, false);
        EXPECT_TRUE(
            at::allclose(same.at(p.name), (slice / slice.norm()).reshape(p.shape), 1e-5, 1e-6))
            << p.name;
        row += fan;
        if (row > 200) break;  // the first few are enough
      }
      EXPECT_EQ(x.size(1), 1 + space->encode(a).numel());
      EXPECT_EQ(x.size(2), 4);  // k = n_max / n
      if (i == 0) {
        const auto logits = graph_executor().forward(a, w, images(4));
        EXPECT_EQ(logits.back().size(1), 2);
      }
    }
    // Batch norm and linear parameters are learned per name.
    EXPECT_NO_THROW(s.learned("head.linear.weight")) << space->name();
  }
}

TEST(SmashSurrogateTest, ConvWiderThanNMaxIsAnError) {
  const Nb201Space nb = nb201_space(16);
  SmashSurrogate s(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{8}}}));
  auto ctx = context();
  Rng rng(43);
  const std::string e = error_of([&] { s.generate(*ctx, nb.sample(rng), nb); });
  EXPECT_NE(e.find("smash: conv '"), std::string::npos) << e;
  EXPECT_NE(e.find("output channels, more than N_max = 8"), std::string::npos) << e;
}

TEST(SmashSurrogateTest, AModelBuiltForOneSpaceRefusesAnother) {
  const Nb201Space nb = nb201_space();
  const auto smash = smash_space();
  SmashSurrogate s(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{16}}}));
  auto ctx = context();
  Rng rng(47);
  s.generate(*ctx, nb.sample(rng), nb);
  const std::string e = error_of([&] { s.generate(*ctx, smash->sample(rng), *smash); });
  EXPECT_NE(e.find("built for space 'nb201'"), std::string::npos) << e;
  EXPECT_NE(e.find("space 'smash' gives"), std::string::npos) << e;
}

/// A space named "smash" that does not expose its configuration.
class AnonymousSmash final : public SearchSpace {
 public:
  std::string name() const override { return "smash"; }
  Architecture sample(Rng&) const override { return {}; }
  Architecture parse(const std::string&) const override { return {}; }
  std::vector<std::string> op_vocabulary() const override { return {}; }
  ArchStats stats(const Architecture&) const override { return {}; }
};

TEST(SmashSurrogateTest, ASmashSpaceWithoutItsConfigurationIsAnError) {
  const AnonymousSmash space;
  SmashSurrogate s(smash_options());
  auto ctx = context();
  Architecture a;
  a.space = "smash";
  a.text = "x";
  a.graph = smash_space()->sample(*std::make_unique<Rng>(1)).graph;
  const std::string e = error_of([&] { s.generate(*ctx, a, space); });
  EXPECT_NE(e.find("space 'smash' does not expose its configuration (smash::ConfigSource"),
            std::string::npos)
      << e;
}

// ---------------------------------------------------------------------------------------------
// Fit, score, state

struct Trained {
  explicit Trained(std::map<std::string, Value> given = {}) : s(smash_options(with_lr(given))) {}
  static std::map<std::string, Value> with_lr(std::map<std::string, Value> given) {
    given.emplace("lr", 3e-3);
    return given;
  }
  std::unique_ptr<SmashSpace> space = smash_space();
  BrightnessData data{64, 32, 8, 2};
  SmashSurrogate s;
  std::unique_ptr<TestContext> ctx = context(3);
  void fit(std::int64_t steps) {
    FitRequest r;
    r.space = space.get();
    r.data = &data;
    r.epochs = 100;
    r.batch_size = 16;
    r.max_steps = steps;
    s.fit(*ctx, r);
  }
};

TEST(SmashSurrogateTest, FitReducesTheLossAndReportsEverySteps) {
  Trained t;
  t.fit(60);
  const auto& curve = t.s.loss_curve();
  ASSERT_EQ(curve.size(), 60u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += curve[static_cast<std::size_t>(i)] / 10;
    last += curve[curve.size() - 1 - static_cast<std::size_t>(i)] / 10;
  }
  EXPECT_LT(last, first * 0.9) << "first " << first << ", last " << last;
  ASSERT_EQ(t.ctx->events.size(), 60u);
  EXPECT_EQ(t.ctx->events[0].first, "fit_step");
  EXPECT_EQ(t.ctx->events.back().second.at("step"), 60);
  EXPECT_EQ(t.ctx->events.back().second.at("loss"), curve.back());
  EXPECT_NEAR(t.ctx->events[0].second.at("lr"), 3e-3, 1e-12);
  EXPECT_LT(t.ctx->events.back().second.at("lr"), 1e-4);  // cosine
  EXPECT_EQ(t.ctx->advanced, 60);
  EXPECT_EQ(t.ctx->labels, std::vector<std::string>{"smash fit"});
  EXPECT_FALSE(t.ctx->lines.empty());
}

TEST(SmashSurrogateTest, FitAnnealsKernelsAndStopsWhenAsked) {
  Trained t;
  t.fit(40);
  const auto& k = t.s.kernel_curve();
  ASSERT_EQ(k.size(), 40u);
  for (std::size_t j = 0; j < 5; ++j) EXPECT_EQ(k[j], 3) << j;  // cap 3 for j < 0.125 J
  EXPECT_EQ(*std::max_element(k.begin() + 20, k.end()), 7);     // from half-way: up to 7
  for (std::size_t j = 0; j < k.size(); ++j)
    EXPECT_LE(k[j], annealed_kernel_cap(7, static_cast<std::int64_t>(j), 40)) << j;

  Trained off({{"anneal_kernels", false}});
  off.fit(10);
  EXPECT_GT(*std::max_element(off.s.kernel_curve().begin(), off.s.kernel_curve().end()), 3);

  Trained stop;
  stop.ctx->stop_after = 3;
  stop.fit(10);
  EXPECT_EQ(stop.s.loss_curve().size(), 3u);
  Trained cancel;
  cancel.ctx->cancel_after = 2;
  EXPECT_THROW(cancel.fit(10), Cancelled);
  EXPECT_EQ(cancel.s.loss_curve().size(), 2u);
}

TEST(SmashSurrogateTest, ScoreDependsOnTheSeedOnly) {
  Trained t;
  t.fit(5);
  Rng rng(53);
  const Architecture a = t.space->sample(rng), b = t.space->sample(rng);
  auto ctx = context(99);
  const auto s1 = t.s.score(*ctx, score_request(*t.space, t.data, {&a, &b}, {11, 12}));
  const auto s2 = t.s.score(*context(5), score_request(*t.space, t.data, {&b, &a}, {12, 11}));
  ASSERT_EQ(s1.size(), 2u);
  EXPECT_EQ(s1[0].value, s2[1].value);
  EXPECT_EQ(s1[0].extra.at("loss"), s2[1].extra.at("loss"));
  EXPECT_EQ(s1[1].extra.at("loss"), s2[0].extra.at("loss"));
  EXPECT_GE(s1[0].value, 0.0);
  EXPECT_LE(s1[0].value, 1.0);
  EXPECT_EQ(s1[0].value, s1[0].extra.at("accuracy"));
  const auto other = t.s.score(*ctx, score_request(*t.space, t.data, {&a}, {13}));
  EXPECT_NE(other[0].extra.at("loss"), s1[0].extra.at("loss"));  // another z
  EXPECT_NE(error_of([&] {
              t.s.score(*ctx, score_request(*t.space, t.data, {&a}, {}));
            }).find("got 0 seeds for 1 architectures"),
            std::string::npos);
}

TEST(SmashSurrogateTest, StateRoundTripGivesIdenticalScores) {
  Trained t;
  t.fit(6);
  Rng rng(59);
  const Architecture a = t.space->sample(rng);
  const std::string blob = t.s.save_state();
  SmashSurrogate copy(smash_options({{"lr", 3e-3}}));
  copy.load_state(blob);
  EXPECT_TRUE(copy.built());
  EXPECT_EQ(copy.loss_curve(), t.s.loss_curve());
  EXPECT_EQ(copy.kernel_curve(), t.s.kernel_curve());
  auto ctx = context();
  const auto x = t.s.score(*ctx, score_request(*t.space, t.data, {&a}, {21}));
  const auto y = copy.score(*ctx, score_request(*t.space, t.data, {&a}, {21}));
  EXPECT_EQ(x[0].extra.at("loss"), y[0].extra.at("loss"));
  EXPECT_EQ(copy.save_state(), blob);
  // Training goes on from the same optimiser state: two steps from the loaded state equal two
  // steps of the original (same context seed, so the same batches, architectures and z).
  Trained u;
  u.s.load_state(blob);
  t.ctx = context(8);
  u.ctx = context(8);
  t.fit(2);
  u.fit(2);
  EXPECT_EQ(u.s.loss_curve(), t.s.loss_curve());
  EXPECT_EQ(u.s.save_state(), t.s.save_state());
}

TEST(SmashSurrogateTest, DamagedOrForeignStatesAreErrors) {
  Trained t;
  t.fit(2);
  const std::string blob = t.s.save_state();
  SmashSurrogate fresh(smash_options({{"lr", 3e-3}}));
  std::string e = error_of([&] { fresh.load_state(blob.substr(0, blob.size() / 2)); });
  EXPECT_NE(e.find("smash: state blob is truncated"), std::string::npos) << e;
  std::string bad = blob;
  bad[bad.size() - 5] ^= 0x5A;
  e = error_of([&] { fresh.load_state(bad); });
  EXPECT_NE(e.find("corrupted"), std::string::npos) << e;
  e = error_of([&] { fresh.load_state("not a blob at all, really"); });
  EXPECT_NE(e.find("not a SMASH state blob"), std::string::npos) << e;
  EXPECT_FALSE(fresh.built());  // nothing changed
  SmashSurrogate other(smash_options({{"hidden_growth", std::int64_t{5}}}));
  e = error_of([&] { other.load_state(blob); });
  EXPECT_NE(e.find("model options"), std::string::npos) << e;
  EXPECT_NE(e.find("hidden_growth=4"), std::string::npos) << e;
  // A model built for nb201 refuses the smash state, naming both.
  SmashSurrogate nb(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{16}}}));
  const Nb201Space nbs = nb201_space();
  Rng rng(61);
  auto ctx = context();
  nb.generate(*ctx, nbs.sample(rng), nbs);
  SmashSurrogate s2(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{16}}}));
  s2.generate(*ctx, t.space->sample(rng), *t.space);
  e = error_of([&] { nb.load_state(s2.save_state()); });
  EXPECT_NE(e.find("built for space 'smash'"), std::string::npos) << e;
  EXPECT_NE(e.find("belongs to space 'nb201'"), std::string::npos) << e;
  // A state loaded before any call is checked at the first call that names a space.
  SmashSurrogate later(smash_options({{"n", std::int64_t{4}}, {"n_max", std::int64_t{16}}}));
  later.load_state(s2.save_state());
  e = error_of([&] { later.generate(*ctx, nbs.sample(rng), nbs); });
  EXPECT_NE(e.find("built for space 'smash'"), std::string::npos) << e;
}

TEST(SmashSurrogateTest, ParameterCountsOfTheDefaultSpace) {
  // README.md's table: the smash space's defaults (smash_arch.h Config) and this surrogate's.
  const smash::Config c;
  Options none;
  const Options o = SmashSurrogate::params().resolve(none, "smash");
  const ParameterCounts p = count_parameters(c, o);
  const auto space = std::make_unique<SmashSpace>(SmashSpace::params().resolve(none, "smash"));
  Rng rng(67);
  double generated = 0, biggest = 0;
  for (int i = 0; i < 200; ++i) {
    const auto geo = smash::geometry(c, smash::parse(c, space->sample(rng).text));
    double n = 0;
    for (const auto& block : geo)
      for (const auto& g : block) n += static_cast<double>(g.bottleneck * g.in);
    generated += n / 200;
    biggest = std::max(biggest, n);
  }
  std::cout << "smash defaults: encoding channels " << smash::encoding_channels(c) << ", H input "
            << p.input_channels << ", H parameters " << p.hypernet << ", learned kernels "
            << p.learned_kernels << ", learned other " << p.learned_other
            << ", generated 1x1 weights per architecture: mean " << generated << ", max " << biggest
            << "\n";
  EXPECT_GT(p.hypernet, 0);
  EXPECT_EQ(p.learned_kernels, c.blocks * 4 * c.N_max * c.N_max * c.max_kernel * c.max_kernel);
}

}  // namespace
