// Tests of the built-in `smash` search space (plugins/spaces/smash): geometry, sampling, the text
// form, the graph and its execution, the encoding and mutation.

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <hypernas/graph_stats.h>
#include <hypernas/plugin.h>

#include "kernel/exec/executor.h"
#include "plugins/spaces/smash/smash.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in smash_space.cpp
}

namespace {

using hypernas::Architecture;
using hypernas::Error;
using hypernas::Options;
using hypernas::Rng;
using hypernas::SmashSpace;
using namespace hypernas::smash;

std::int64_t I(std::int64_t v) { return v; }

/// Resolved options: the defaults with `given` on top.
Options resolved(const Options& given = {}) { return config_params().resolve(given, "smash"); }

/// Small networks that run fast: 4-channel banks, G up to 4, 1-2 layers per block.
Options small(bool gates = true, bool var_nl = true, std::int64_t blocks = 3) {
  Options o;
  o.set("N", I(4)).set("N_max", I(16)).set("width", I(1)).set("min_layers", I(1));
  o.set("max_layers", I(2)).set("depth_compression", I(2)).set("max_groups", I(4));
  o.set("blocks", blocks).set("gates", gates).set("var_nl", var_nl);
  o.set("input_channels", I(1)).set("input_size", I(28)).set("classes", I(10));
  return resolved(o);
}

/// A hand-written architecture of small(true, true, 2): block 0 has a layer with gate 0 (G 2, all
/// four convs) and a two-path layer (G 3, ops 1010); block 1 a single conv layer.
const std::string kHand =
    "0.1>0.2/g2/o1111/k3573/d2113/p2141/x10/nrtrs;1.2>0.3.4/g3/o1010/k5373/d2111/p1121/x00/ntrsr|"
    "0.1>2/g1/o1000/k3333/d1111/p1111/x00/nrrrr";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, hypernas::OpNode> nodes_by_name(const hypernas::ArchGraph& g) {
  std::map<std::string, hypernas::OpNode> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) out[g[v].name] = g[v];
  return out;
}

std::vector<std::string> in_names(const hypernas::ArchGraph& g, const std::string& name) {
  std::vector<std::string> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) {
    if (g[v].name != name) continue;
    for (auto [it, last] = boost::in_edges(v, g); it != last; ++it)
      out.push_back(g[boost::source(*it, g)].name);
    std::sort(out.begin(), out.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options and geometry

TEST(SmashConfig, DefaultGeometry) {
  const Config c = Config::from(resolved());
  EXPECT_EQ(c.N, 8);
  EXPECT_EQ(c.units_max(), 4);
  EXPECT_EQ(c.in_channels(0), 32);
  EXPECT_EQ(c.max_channels(0), 96);
  EXPECT_EQ(c.in_channels(1), 48);
  EXPECT_EQ(c.max_channels(1), 112);
  EXPECT_EQ(c.in_channels(2), 48);
  EXPECT_EQ(c.max_channels(2), 128);
  EXPECT_EQ(c.max_banks(2), 16);
  EXPECT_EQ(c.group_choices(), (std::vector<std::int64_t>{1, 2, 4, 8}));
  EXPECT_EQ(c.max_dilation(3), 3);
  EXPECT_EQ(c.max_dilation(5), 2);
  EXPECT_EQ(c.max_dilation(7), 1);
  // reads 16 + writes 16 + blocks 3 + G 4 + dilations 4x3 + kernels 4x3 + ops 4 + groups 4x4
  // + the layer-start channel.
  EXPECT_EQ(encoding_channels(c), 84);
  EXPECT_EQ(max_slices(c), 4 * (12 / 4 + 14 / 4 + 16 / 4));
}

TEST(SmashConfig, PaperGeometryMatchesTheAuthorsPrint) {
  // SMASH.py with N=8, N_max=64, width=4 prints "Input Channels to each block: 64, 96, 112,
  // Max Channels for each block: 192, 224, 256".
  const Config c =
      Config::from(resolved(Options().set("N", I(8)).set("N_max", I(64)).set("width", I(4))));
  EXPECT_EQ(c.units_max(), 8);
  EXPECT_EQ(c.in_channels(0), 64);
  EXPECT_EQ(c.in_channels(1), 96);
  EXPECT_EQ(c.in_channels(2), 112);
  EXPECT_EQ(c.max_channels(0), 192);
  EXPECT_EQ(c.max_channels(1), 224);
  EXPECT_EQ(c.max_channels(2), 256);
  EXPECT_EQ(c.max_banks(2), 32);
}

TEST(SmashConfig, BadOptionsNameTheOption) {
  const std::vector<std::pair<Options, std::string>> cases = {
      {Options().set("N_max", I(20)), "'N_max'"},
      {Options().set("min_layers", I(3)).set("max_layers", I(2)), "'max_layers'"},
      {Options().set("max_kernel", I(4)), "'max_kernel'"},
      {Options().set("max_groups", I(0)), "'max_groups'"},
      {Options().set("depth_compression", I(8)), "'depth_compression'"},
      {Options().set("N_max", I(256)), "'N_max'"},
      {Options().set("input_size", I(3)), "'input_size'"},
      {Options().set("stem_kernel", I(4)), "'stem_kernel'"},
  };
  for (const auto& [given, key] : cases) {
    const std::string e = error_of([&] { SmashSpace space(resolved(given)); });
    EXPECT_NE(e.find(key), std::string::npos) << key << ": " << e;
  }
  EXPECT_NO_THROW(SmashSpace space(small()));
  // Any max_groups: the factors of N up to it.
  EXPECT_EQ(Config::from(resolved(Options().set("N", I(4)).set("N_max", I(16)).set("width", I(2))))
                .group_choices(),
            (std::vector<std::int64_t>{1, 2, 4}));
  EXPECT_EQ(Config::from(resolved(Options().set("max_groups", I(3)))).group_choices(),
            (std::vector<std::int64_t>{1, 2}));
}

// ---------------------------------------------------------------------------------------------
// Sampling and the text form

TEST(SmashSpace, SampledArchitecturesValidateAndRoundTrip) {
  for (const Options& o : {resolved(), small(), small(false, false),
                           resolved(Options().set("gates", true).set("var_nl", true))}) {
    const Config c = Config::from(o);
    Rng rng(1);
    std::set<std::string> texts;
    for (int i = 0; i < 200; ++i) {
      const Arch a = sample(c, rng);
      ASSERT_NO_THROW(validate(c, a)) << print(a);
      const std::string text = print(a);
      EXPECT_EQ(parse(c, text), a) << text;
      EXPECT_EQ(print(parse(c, text)), text);
      texts.insert(text);
      for (std::size_t b = 0; b < a.blocks.size(); ++b) {
        EXPECT_GE(static_cast<std::int64_t>(a.blocks[b].size()), c.min_layers);
        EXPECT_LE(static_cast<std::int64_t>(a.blocks[b].size()), c.max_layers);
      }
    }
    EXPECT_GT(texts.size(), 190u);
  }
}

TEST(SmashSpace, SamplerUsesEveryChoice) {
  const Config c = Config::from(small());
  Rng rng(2);
  std::set<std::int64_t> units, kernels, dilations, groups;
  std::set<std::string> ops;
  std::set<char> nls;
  int gate0 = 0, gate1 = 0, layers = 0, units_at_reads = 0;
  for (int i = 0; i < 300; ++i) {
    for (const auto& block : sample(c, rng).blocks)
      for (const Layer& L : block) {
        units.insert(L.units);
        ++layers;
        units_at_reads += L.units == std::min<std::int64_t>(4, L.reads.size());
        ops.insert(std::string(L.ops.begin(), L.ops.end()));
        gate0 += L.gates[0];
        gate1 += L.gates[1];
        for (std::size_t j = 0; j < 4; ++j)
          if (L.ops[j]) {
            kernels.insert(L.kernel[j]);
            dilations.insert(L.dilation[j]);
            groups.insert(L.groups[j]);
            nls.insert(L.nl[j]);
          }
      }
  }
  // G favours the number of reads (2 or 4 here): 1/(0.01 + 10 |G - reads|) puts 99% there.
  EXPECT_TRUE(units.count(2) && units.count(4));
  EXPECT_GT(static_cast<double>(units_at_reads) / layers, 0.95);
  EXPECT_LE(*units.rbegin(), 4);
  EXPECT_GE(*units.begin(), 1);
  EXPECT_EQ(ops.size(), 5u);
  EXPECT_EQ(kernels, (std::set<std::int64_t>{3, 5, 7}));
  EXPECT_EQ(dilations, (std::set<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(groups, (std::set<std::int64_t>{1, 2, 4}));
  EXPECT_EQ(nls, (std::set<char>{'r', 't', 's'}));
  EXPECT_GT(gate0, 0);
  EXPECT_GT(gate1, 0);
}

TEST(SmashSpace, ParseAcceptsDottedFieldsAndPrintsCanonically) {
  const SmashSpace space(small(true, true, 2));
  const std::string dotted =
      "  0.1>0.2/g2/o1111/k3.5.7.3/d2113/p2141/x10/nrtrs;1.2>0.3.4/g3/o1010/k5373/d2111/p1121/"
      "x00/ntrsr|0.1>2/g1/o1000/k3333/d1.1.1.1/p1111/x00/nrrrr\n";
  EXPECT_EQ(space.parse(dotted).text, kHand);
  EXPECT_EQ(space.parse(kHand).space, "smash");
}

TEST(SmashSpace, MalformedTextsNameTheField) {
  const Config c = Config::from(small(true, true, 2));
  ASSERT_NO_THROW(parse(c, kHand));
  const std::string l0 = "0.1>0.2/g2/o1111/k3573/d2113/p2141/x10/nrtrs";
  const std::string l1 = "1.2>0.3.4/g3/o1010/k5373/d2111/p1121/x00/ntrsr";
  const std::string b1 = "0.1>2/g1/o1000/k3333/d1111/p1111/x00/nrrrr";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty architecture text"},
      {"   ", "empty architecture text"},
      {"0.1>0.2/g2:o1111/k3573/d2113/p2141/x10/nrtrs;" + l1 + "|" + b1, "expected 8 fields"},
      {l0 + "," + l1 + "|" + b1, "expected 8 fields"},
      {l0 + ";" + l1 + "|0.5>2/g1/o1000/k3333/d1111/p1111/x00/nrrrr",
       "block 1, layer 0: read of bank 5, which is not written yet"},
      {l0 + ";2.1>0.3.4/g3/o1010/k5373/d2111/p1121/x00/ntrsr|" + b1,
       "block 0, layer 1: reads '2.1' are not sorted"},
      {l0 + ";0.1.2>0.3.4/g3/o1010/k5373/d2111/p1121/x00/ntrsr|" + b1,
       "not a positive multiple of depth_compression"},
      {l0 + ";1.2>0.3.4/g5/o1010/k5373/d2111/p1121/x00/ntrsr|" + b1, "G 5 is not in 1..4"},
      {"0.1>0.2/g2/o1111/k9573/d2113/p2141/x10/nrtrs;" + l1 + "|" + b1,
       "block 0, layer 0: kernel 9 of conv 0 is not one of 3, 5, 7"},
      {"0.1>0.2/g2/o1100/k3533/d2111/p2111/x10/nrtrr;" + l1 + "|" + b1,
       "gate 0 needs convs 0 and 2"},
      {l0 + ";1.2>0.3.4/g3/o1010/k5573/d2111/p1121/x00/ntrsr|" + b1,
       "conv 1 is inactive but not canonical"},
      {l0 + ";" + l1 + "|" + b1 + "|" + b1, "expected 2 blocks"},
      {l0 + ";" + l1, "expected 2 blocks"},
      {kHand + " x", "nonlinearities 'rrrr x'"},
      {kHand + ";", "block 1, layer 1: empty layer"},
      {kHand + "/", "expected 8 fields"},
      {l0 + ";1.2>0.3.5/g3/o1010/k5373/d2111/p1121/x00/ntrsr|" + b1, "skips empty bank 4"},
      {l0 + ";1.2>0.3/g3/o1010/k5373/d2111/p1121/x00/ntrsr|" + b1, "fewer than the 3 chunks"},
      {"0.1>0.2/g2/o0100/k3333/d1111/p1111/x00/nrrrr;" + l1 + "|" + b1, "op configuration 0100"},
      {"0.1>0.2/g2/o1111/k3573/d2313/p2141/x10/nrtrs;" + l1 + "|" + b1,
       "dilation 3 of conv 1 is not in 1..2"},
      {"0.1>0.2/g2/o1111/k3573/d2113/p3141/x10/nrtrs;" + l1 + "|" + b1, "groups 3 of conv 0"},
      {"0.1>0.2/g2/o1111/k3573/d2113/p2141/x10/ntttt;" + l1 + "|" + b1,
       "nonlinearity 't' of conv 0 is not r (the conv is gated"},
      {"0.1>a/g2/o1111/k3573/d2113/p2141/x10/nrtrs;" + l1 + "|" + b1, "writes 'a'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string e = error_of([&] { parse(c, text); });
    EXPECT_NE(e.find(expected), std::string::npos) << "text: " << text << "\nerror: " << e;
    if (text.find_first_not_of(' ') != std::string::npos) {
      EXPECT_NE(e.find(text.substr(0, 20)), std::string::npos) << "names the text: " << e;
    }
  }
  // Options that forbid what the text uses.
  const Config no_gates = Config::from(small(false, true, 2));
  EXPECT_NE(error_of([&] { parse(no_gates, kHand); }).find("option gates is off"),
            std::string::npos);
  const Config no_nl = Config::from(small(true, false, 2));
  EXPECT_NE(error_of([&] { parse(no_nl, kHand); }).find("var_nl is off"), std::string::npos);
  // A long text is abbreviated.
  std::string long_text = kHand;
  for (int i = 0; i < 50; ++i) long_text += ";" + b1;
  const std::string e = error_of([&] { parse(c, long_text); });
  EXPECT_LT(e.size(), 400u) << e;
  EXPECT_NE(e.find("characters)"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// Graph

TEST(SmashGraph, HandWrittenArchitectureHasTheExpectedNodes) {
  const SmashSpace space(small(true, true, 2));
  const Architecture arch = space.parse(kHand);
  const auto& g = arch.graph;
  std::vector<std::string> names;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) names.push_back(g[v].name);
  const std::vector<std::string> expected = {
      "input", "stem.conv", "stem.relu", "b0.in0", "b0.in1",
      // b0.l0: gate 0 over conv0 + conv2, then conv1 + conv3 summed.
      "b0.l0.r0", "b0.l0.r1", "b0.l0.cat", "b0.l0.bottleneck", "b0.l0.bottleneck.relu",
      "b0.l0.c0.act", "b0.l0.c0", "b0.l0.c2.act", "b0.l0.c2", "b0.l0.g0.pre", "b0.l0.g0.even",
      "b0.l0.g0.odd", "b0.l0.g0.tanh", "b0.l0.g0.sigmoid", "b0.l0.g0", "b0.l0.c1.act", "b0.l0.c1",
      "b0.l0.c3.act", "b0.l0.c3", "b0.l0.s1", "b0.l0.w0", "b0.m0.0", "b0.l0.w1", "b0.m2.0",
      // b0.l1: two paths joined.
      "b0.l1.r0", "b0.l1.r1", "b0.l1.cat", "b0.l1.bottleneck", "b0.l1.bottleneck.relu",
      "b0.l1.c0.act", "b0.l1.c0", "b0.l1.c2.act", "b0.l1.c2", "b0.l1.s0", "b0.l1.w0", "b0.m0.1",
      "b0.l1.w1", "b0.m3.0", "b0.l1.w2", "b0.m4.0", "b0.bank0", "b0.bank1", "b0.bank2", "b0.bank3",
      "b0.bank4", "b0.out", "t0.bn", "t0.relu", "t0.conv", "t0.pool", "b1.in0", "b1.in1",
      "b1.l0.r0", "b1.l0.r1", "b1.l0.cat", "b1.l0.bottleneck", "b1.l0.bottleneck.relu",
      "b1.l0.c0.act", "b1.l0.c0", "b1.l0.w0", "b1.m2.0", "b1.bank0", "b1.bank1", "b1.bank2",
      "b1.out", "head.bn", "head.relu", "head.gap", "head.fc"};
  EXPECT_EQ(names, expected);

  const auto n = nodes_by_name(g);
  auto check = [&](const std::string& name, const char* op, std::int64_t c_in, std::int64_t c_out,
                   std::int64_t kernel = 0, std::int64_t stride = 1) {
    ASSERT_TRUE(n.count(name)) << name;
    const hypernas::OpNode& x = n.at(name);
    EXPECT_EQ(x.op, op) << name;
    EXPECT_EQ(x.c_in, c_in) << name;
    EXPECT_EQ(x.c_out, c_out) << name;
    EXPECT_EQ(x.kernel, kernel) << name;
    EXPECT_EQ(x.stride, stride) << name;
  };
  check("stem.conv", "conv", 1, 8, 7);
  check("b0.in1", "slice", 8, 4, 4, 1);
  check("b0.l0.cat", "concat", 8, 8);
  check("b0.l0.bottleneck", "conv", 8, 8, 1);  // min(min(max(8/8,1),4)*8, 8, 16)
  check("b0.l0.c0", "conv", 8, 8, 3);
  EXPECT_EQ(n.at("b0.l0.c0").dilation, 2);
  EXPECT_EQ(n.at("b0.l0.c0").groups, 2);
  check("b0.l0.c2", "conv", 8, 8, 7);
  EXPECT_EQ(n.at("b0.l0.c2").groups, 4);
  check("b0.l0.g0.even", "slice", 8, 4, 0, 2);
  check("b0.l0.g0.odd", "slice", 8, 4, 1, 2);
  check("b0.l0.g0.tanh", "tanh", 4, 4);
  check("b0.l0.g0.sigmoid", "sigmoid", 4, 4);
  check("b0.l0.g0", "mul", 4, 4);
  check("b0.l0.c1", "conv", 4, 4, 5);  // after the gate: half the width
  check("b0.l0.c1.act", "tanh", 4, 4);
  check("b0.l0.c3.act", "sigmoid", 4, 4);
  EXPECT_EQ(n.at("b0.l0.c3").dilation, 3);
  EXPECT_EQ(n.at("b0.l0.c0.act").op, "relu");
  check("b0.l0.w1", "slice", 4, 4, 0, 1);      // one chunk: every write takes it
  check("b0.l1.bottleneck", "conv", 8, 8, 1);  // min(min(max(8/12,1),4)*12, 8, 16)
  check("b0.l1.c0", "conv", 8, 12, 5);
  EXPECT_EQ(n.at("b0.l1.c0.act").op, "tanh");
  EXPECT_EQ(n.at("b0.l1.c2.act").op, "sigmoid");
  check("b0.l1.w2", "slice", 12, 4, 8, 1);  // chunk 2 of 3
  check("b0.m0.1", "add", 4, 4);
  check("b0.out", "concat", 20, 20);
  check("t0.conv", "conv", 20, 8, 1);
  check("t0.pool", "avg_pool", 8, 8, 2, 2);
  check("b1.l0.bottleneck", "conv", 8, 8, 1);  // min(min(max(8/4,1),4)*4, 8, 16)
  check("b1.out", "concat", 12, 12);
  check("head.fc", "linear", 12, 10);
  EXPECT_EQ(n.at("head.fc").exit, 0);
  EXPECT_EQ(n.at("t0.pool").scale, 1);
  EXPECT_EQ(n.at("t0.conv").scale, 0);
  EXPECT_EQ(n.at("b1.l0.c0").scale, 1);
  EXPECT_EQ(n.at("b1.l0.c0").module, 1);
  EXPECT_EQ(n.at("b0.l1.c0").module, 0);
  EXPECT_EQ(n.at("head.fc").module, -1);
  EXPECT_EQ(n.at("stem.conv").module, -1);

  // Bank states: the first write into an initial bank adds to its slice, the first into an
  // empty one is the chunk alone, later ones add to the previous state.
  EXPECT_EQ(in_names(g, "b0.m0.0"), (std::vector<std::string>{"b0.in0", "b0.l0.w0"}));
  EXPECT_EQ(in_names(g, "b0.m2.0"), (std::vector<std::string>{"b0.l0.w1"}));
  EXPECT_EQ(in_names(g, "b0.m0.1"), (std::vector<std::string>{"b0.l1.w0", "b0.m0.0"}));
  EXPECT_EQ(in_names(g, "b0.l1.r0"), (std::vector<std::string>{"b0.in1"}));
  EXPECT_EQ(in_names(g, "b0.l1.r1"), (std::vector<std::string>{"b0.m2.0"}));
  EXPECT_EQ(in_names(g, "b0.bank0"), (std::vector<std::string>{"b0.m0.1"}));
  EXPECT_EQ(in_names(g, "b0.bank1"), (std::vector<std::string>{"b0.in1"}));
  EXPECT_EQ(in_names(g, "b0.l0.g0.pre"), (std::vector<std::string>{"b0.l0.c0", "b0.l0.c2"}));
  EXPECT_EQ(in_names(g, "b0.l0.c1.act"), (std::vector<std::string>{"b0.l0.g0"}));
  EXPECT_EQ(in_names(g, "b0.l0.c3.act"), (std::vector<std::string>{"b0.l0.g0"}));
  EXPECT_EQ(in_names(g, "b0.l0.s1"), (std::vector<std::string>{"b0.l0.c1", "b0.l0.c3"}));
  EXPECT_EQ(in_names(g, "b0.l1.s0"), (std::vector<std::string>{"b0.l1.c0", "b0.l1.c2"}));
  EXPECT_EQ(in_names(g, "b0.l1.w2"), (std::vector<std::string>{"b0.l1.s0"}));

  // Geometry agrees with the graph.
  const Config c = space.config();
  const auto geo = geometry(c, parse(c, kHand));
  ASSERT_EQ(geo.size(), 2u);
  ASSERT_EQ(geo[0].size(), 2u);
  EXPECT_EQ(geo[0][0].in, 8);
  EXPECT_EQ(geo[0][0].bottleneck, 8);
  EXPECT_EQ(geo[0][0].out, 4);
  EXPECT_EQ(geo[0][0].chunks, 1);
  EXPECT_EQ(geo[0][1].out, 12);
  EXPECT_EQ(geo[0][1].chunks, 3);
  EXPECT_EQ(geo[0][1].row, 8);
  EXPECT_EQ(geo[0][1].slice, 1);
  EXPECT_EQ(geo[1][0].row, 16);
  EXPECT_EQ(geo[1][0].slice, 2);
}

TEST(SmashGraph, HandWrittenArchitectureRunsAndEveryWeightGetsAGradient) {
  const SmashSpace space(small(true, true, 2));
  const Architecture arch = space.parse(kHand);
  const hypernas::exec::GraphExecutor executor;
  const hypernas::WeightMap weights = executor.init_weights(arch, 3, at::Device(at::kCPU));
  at::manual_seed(0);
  const at::Tensor images = at::randn({2, 1, 28, 28});
  const std::vector<at::Tensor> out = executor.forward(arch, weights, images);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{2, 10}));
  (out[0] * at::randn({2, 10})).sum().backward();
  EXPECT_GT(weights.count("b0.l0.bottleneck.weight"), 0u);
  for (const auto& [name, w] : weights) {
    ASSERT_TRUE(w.grad().defined()) << name;
    EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0) << name;
  }
  // stats() counts what the executor allocates.
  std::int64_t params = 0;
  for (const auto& p : executor.parameters(arch)) {
    std::int64_t size = 1;
    for (std::int64_t d : p.shape) size *= d;
    params += size;
  }
  EXPECT_EQ(space.stats(arch).params, params);
  Architecture text_only;
  text_only.space = "smash";
  text_only.text = arch.text;
  EXPECT_EQ(space.stats(text_only).params, params);
}

TEST(SmashGraph, SampledGraphsRunWithFiniteLogits) {
  const hypernas::exec::GraphExecutor executor;
  at::manual_seed(1);
  const at::Tensor images = at::randn({2, 1, 28, 28});
  for (const Options& o : {small(true, true), small(false, false)}) {
    const SmashSpace space(o);
    const std::vector<std::string> vocabulary = space.op_vocabulary();
    const std::set<std::string> vocab(vocabulary.begin(), vocabulary.end());
    Rng rng(5);
    for (int i = 0; i < 100; ++i) {
      const Architecture arch = space.sample(rng);
      for (std::size_t v = 0; v < boost::num_vertices(arch.graph); ++v)
        ASSERT_TRUE(vocab.count(arch.graph[v].op)) << arch.graph[v].op;
      const hypernas::WeightMap weights =
          executor.init_weights(arch, static_cast<std::uint64_t>(i), at::Device(at::kCPU));
      std::vector<at::Tensor> out;
      ASSERT_NO_THROW(out = executor.forward(arch, weights, images)) << arch.text;
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{2, 10})) << arch.text;
      EXPECT_TRUE(at::isfinite(out[0]).all().item<bool>()) << arch.text;
      std::int64_t params = 0;
      for (const auto& p : executor.parameters(arch)) {
        std::int64_t size = 1;
        for (std::int64_t d : p.shape) size *= d;
        params += size;
      }
      EXPECT_EQ(space.stats(arch).params, params) << arch.text;
      EXPECT_GT(space.stats(arch).flops, 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

TEST(SmashEncoding, FixedShapePlusMinusOneAndDecodeInverts) {
  const std::vector<Options> configs = {
      resolved(), small(), small(false, false),
      resolved(Options().set("var_op", false).set("var_ks", false).set("var_group", false)),
      resolved(Options().set("gates", true).set("var_nl", true))};
  for (const Options& o : configs) {
    const SmashSpace space(o);
    const Config& c = space.config();
    Rng rng(7);
    for (int i = 0; i < 200; ++i) {
      const Architecture arch = space.sample(rng);
      const at::Tensor code = space.encode(arch);
      ASSERT_EQ(code.sizes(),
                (std::vector<std::int64_t>{encoding_channels(c), c.units_max(), max_slices(c)}));
      EXPECT_EQ(code.scalar_type(), at::kFloat);
      EXPECT_TRUE((code.abs() == 1).all().item<bool>());
      const Arch a = space.arch_of(arch);
      ASSERT_EQ(decode(c, code), a) << arch.text;
    }
  }
}

TEST(SmashEncoding, HandWrittenArchitectureEntries) {
  const SmashSpace space(small(true, true, 2));
  const Config& c = space.config();
  const at::Tensor code = space.encode(space.parse(kHand));
  auto t = code.accessor<float, 3>();
  const std::int64_t MB = 8;  // max_banks of block 1 (32 channels / 4)
  const std::int64_t start = encoding_channels(c) - 1;
  // Layer b0.l0: slice 0, G = 2 rows, reads 0 and 1, writes 0 and 2, block 0, G one-hot 1.
  for (std::int64_t row = 0; row < 2; ++row) {
    EXPECT_EQ(t[0][row][0], 1);
    EXPECT_EQ(t[1][row][0], 1);
    EXPECT_EQ(t[2][row][0], -1);
    EXPECT_EQ(t[MB + 0][row][0], 1);
    EXPECT_EQ(t[MB + 2][row][0], 1);
    EXPECT_EQ(t[MB + 1][row][0], -1);
    EXPECT_EQ(t[2 * MB + 0][row][0], 1);
    EXPECT_EQ(t[2 * MB + 2 + 1][row][0], 1);  // after 2 block channels: G = 2
    EXPECT_EQ(t[start][row][0], 1);
  }
  for (std::int64_t k = 0; k < encoding_channels(c); ++k) EXPECT_EQ(t[k][2][0], -1);
  // Layer b0.l1 starts in slice 1 (rows 0..2), b1.l0 in slice 2; nothing after.
  EXPECT_EQ(t[start][2][1], 1);
  EXPECT_EQ(t[2 * MB + 1][0][2], 1);
  EXPECT_EQ(t[start][0][2], 1);
  EXPECT_TRUE((code.select(2, 3) == -1).all().item<bool>());
}

TEST(SmashEncoding, DecodeRejectsTensorsEncodeCannotMake) {
  const SmashSpace space(small(true, true, 2));
  const Config& c = space.config();
  const at::Tensor code = space.encode(space.parse(kHand));
  const std::int64_t start = encoding_channels(c) - 1;
  EXPECT_NE(error_of([&] { decode(c, code.narrow(0, 0, start)); }).find("shape"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode(c, at::Tensor()); }).find("shape"), std::string::npos);
  at::Tensor zero = code.clone();
  zero[3][0][0] = 0;
  EXPECT_NE(error_of([&] { decode(c, zero); }).find("not +1 or -1"), std::string::npos);
  at::Tensor no_start = code.clone();
  no_start[start][0][1] = -1;
  no_start[start][1][1] = -1;
  no_start[start][2][1] = -1;
  EXPECT_NE(error_of([&] { decode(c, no_start); }).find("smash: decode"), std::string::npos);
  at::Tensor stray = code.clone();
  stray[5][1][2] = 1;  // a +1 in a row beyond G of layer b1.l0
  EXPECT_NE(error_of([&] { decode(c, stray); }).find("not the encoding"), std::string::npos);
  at::Tensor late = code.clone();
  late[0][0][5] = 1;  // a used slice after the last layer
  EXPECT_NE(error_of([&] { decode(c, late); }).find("smash: decode"), std::string::npos);
  at::Tensor two_g = code.clone();
  two_g[2 * 8 + 1][0][0] = 1;  // a second block channel
  EXPECT_NE(error_of([&] { decode(c, two_g); }).find("smash: decode"), std::string::npos);
  EXPECT_EQ(decode(c, code), parse(c, kHand));
}

// ---------------------------------------------------------------------------------------------
// Mutation

TEST(SmashMutate, ZeroKeepsOneChangesAndChainsStayValid) {
  for (const Options& o : {resolved(), small()}) {
    const SmashSpace space(o);
    Rng rng(11);
    int changed = 0;
    for (int i = 0; i < 100; ++i) {
      const Architecture a = space.sample(rng);
      EXPECT_EQ(space.mutate(a, rng, 0.0).text, a.text);
      changed += space.mutate(a, rng, 1.0).text != a.text;
    }
    EXPECT_GE(changed, 97);
    Architecture a = space.sample(rng);
    for (int i = 0; i < 500; ++i) {
      a = space.mutate(a, rng, 0.2);
      ASSERT_NO_THROW(validate(space.config(), space.arch_of(a))) << a.text;
      ASSERT_EQ(decode(space.config(), space.encode(a)), space.arch_of(a));
    }
  }
  const SmashSpace space(resolved());
  Rng rng(1);
  EXPECT_NE(error_of([&] { space.mutate(space.sample(rng), rng, 1.5); }).find("probability"),
            std::string::npos);
}

TEST(SmashMutate, RedrawsEachChoiceWithTheGivenProbability) {
  // A kernel of a conv active before and after is redrawn with probability p from {3, 5, 7}:
  // it changes with probability p * 2/3.
  const Config c = Config::from(resolved());
  Rng rng(13);
  const double p = 0.3;
  std::int64_t total = 0, kernel_changed = 0, layers = 0, units_changed = 0, blocks = 0,
               length_changed = 0;
  for (int i = 0; i < 300; ++i) {
    const Arch a = sample(c, rng);
    const Arch m = mutate(c, a, rng, p);
    for (std::size_t b = 0; b < a.blocks.size(); ++b) {
      ++blocks;
      length_changed += a.blocks[b].size() != m.blocks[b].size();
      const std::size_t n = std::min(a.blocks[b].size(), m.blocks[b].size());
      for (std::size_t l = 0; l < n; ++l) {
        const Layer &x = a.blocks[b][l], &y = m.blocks[b][l];
        ++layers;
        units_changed += x.units != y.units;
        for (std::size_t j = 0; j < 4; ++j)
          if (x.ops[j] && y.ops[j]) {
            ++total;
            kernel_changed += x.kernel[j] != y.kernel[j];
          }
      }
    }
  }
  ASSERT_GT(total, 2000);
  EXPECT_NEAR(static_cast<double>(kernel_changed) / total, p * 2 / 3, 0.03);
  // G is redrawn with probability p, and the redraw often keeps it (it favours G = reads).
  const double units = static_cast<double>(units_changed) / layers;
  EXPECT_GT(units, 0.0);
  EXPECT_LT(units, p);
  // A layer is added or removed at the end of a block with probability p (at max_layers only
  // removed, at min_layers only added: always a change).
  EXPECT_NEAR(static_cast<double>(length_changed) / blocks, p, 0.06);
}

// ---------------------------------------------------------------------------------------------
// The plugin

TEST(SmashSpace, ExportedDescriptorCreatesTheSpace) {
  const hypernas::PluginDescriptor* d = hypernas_plugin_export::descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::string(d->name), "smash");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Space));
  EXPECT_EQ(d->params, &SmashSpace::params);
  std::string error;
  std::unique_ptr<hypernas::Plugin> p(d->create(d->params().resolve({}, "smash"), &error));
  ASSERT_NE(p, nullptr) << error;
  auto* space = dynamic_cast<hypernas::SearchSpace*>(p.get());
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->name(), "smash");
  EXPECT_FALSE(space->size().has_value());
  EXPECT_TRUE(space->arch_params().empty());
  // The surrogate reads the Config through a cross-cast.
  const auto* source = dynamic_cast<const ConfigSource*>(space);
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->smash_config().N_max, 32);
  EXPECT_EQ(source->smash_config().in_channels(1), 48);
  Rng rng(3);
  const Architecture a = space->sample(rng);
  EXPECT_EQ(space->parse(a.text).text, a.text);
  EXPECT_EQ(space->encode(a).dim(), 3);
  Options bad = d->params().resolve(Options().set("N_max", I(20)), "smash");
  EXPECT_EQ(d->create(bad, &error), nullptr);
  EXPECT_NE(error.find("N_max"), std::string::npos) << error;
  Architecture other;
  other.space = "nb201";
  other.text = a.text;
  EXPECT_NE(error_of([&] { space->encode(other); }).find("space 'nb201'"), std::string::npos);
}

}  // namespace
