// Tests of the built-in `nb201` search space (plugins/spaces/nb201).

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include <hypernas/plugin.h>

#include "plugins/spaces/nb201/nb201.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in nb201_space.cpp
}

namespace {

using hypernas::Architecture;
using hypernas::Nb201Space;
using hypernas::Options;
using namespace hypernas::nb201;

const std::string kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

Nb201Space default_space() { return Nb201Space(Nb201Space::params().resolve({}, "nb201")); }

/// The message of the hypernas::Error `text` raises in parse_cell(), or "" if none.
std::string parse_error(const std::string& text) {
  try {
    parse_cell(text);
  } catch (const hypernas::Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// String form and enumeration

TEST(Nb201, ExampleRoundTrips) {
  const Nb201Space space = default_space();
  const Architecture arch = space.parse(kExample);
  EXPECT_EQ(arch.space, "nb201");
  EXPECT_EQ(arch.text, kExample);
  const Cell cell = parse_cell(kExample);
  const std::array<int, 6> expected = {kConv3x3, kConv3x3, kAvgPool3x3, kSkip, kConv3x3, kSkip};
  EXPECT_EQ(cell.ops, expected);
  // Base 5, edge (1<-0) most significant: 3,3,4,1,3,1.
  const std::uint64_t index = ((((3 * 5 + 3) * 5 + 4) * 5 + 1) * 5 + 3) * 5 + 1;
  EXPECT_EQ(cell_index(cell), index);
  EXPECT_EQ(space.at(index).text, kExample);
  // Surrounding whitespace is ignored; the canonical text has none.
  EXPECT_EQ(space.parse("  " + kExample + "\n").text, kExample);
}

TEST(Nb201, AllIndicesDistinctAndRoundTrip) {
  std::set<std::string> texts;
  for (std::uint64_t i = 0; i < kCells; ++i) {
    const Cell cell = cell_at(i);
    const std::string text = cell_to_string(cell);
    texts.insert(text);
    const Cell back = parse_cell(text);
    ASSERT_EQ(back, cell) << text;
    ASSERT_EQ(cell_index(back), i) << text;
  }
  EXPECT_EQ(texts.size(), kCells);
  EXPECT_EQ(cell_at(0), Cell::uniform(kNone));
  EXPECT_EQ(cell_at(kCells - 1), Cell::uniform(kAvgPool3x3));
  EXPECT_EQ(cell_at(1).ops[5], kSkip);     // the last edge (3<-2) is the least significant digit
  EXPECT_EQ(cell_at(3125).ops[0], kSkip);  // 5^5: the first edge (1<-0) is the most significant

  const Nb201Space space = default_space();
  EXPECT_EQ(space.size(), std::optional<std::uint64_t>(15625));
  for (std::uint64_t i : {0ull, 1ull, 777ull, 15624ull}) {
    const Architecture a = space.at(i);
    EXPECT_EQ(space.parse(a.text).text, a.text);
    EXPECT_EQ(cell_index(space.cell_of(a)), i);
  }
  EXPECT_THROW(space.at(15625), hypernas::Error);
}

TEST(Nb201, ParseErrorsOfAHugeTextQuoteOnlyAnExcerpt) {
  // 100 kB with the fault in the middle: the message quotes ~120 characters around it.
  const std::string pad(50000, ' ');
  const std::string text = pad + "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|" + pad;
  std::string m = parse_error(text);
  EXPECT_LT(m.size(), 400u) << m;
  EXPECT_NE(m.find("unknown op 'conv_9x9'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 50001"), std::string::npos) << m;
  EXPECT_NE(m.find("   |conv_9x9~0|+|none~0|none~1|+"), std::string::npos) << m;
  EXPECT_NE(m.find(hypernas::cat("(", text.size(), " characters)")), std::string::npos) << m;
  // A 100 kB op name: the op and its edge are cut too.
  m = parse_error("|" + std::string(100000, 'x') + "~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_LT(m.size(), 400u) << m.substr(0, 1000);
  EXPECT_NE(m.find("unknown op 'xxxxxxxx"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 1"), std::string::npos) << m;
  // The fault at the very end (trailing garbage).
  m = parse_error(kExample + std::string(100000, 'y'));
  EXPECT_LT(m.size(), 400u) << m.substr(0, 1000);
  EXPECT_NE(m.find("missing '|' at the end of node 3's group"), std::string::npos) << m;
  EXPECT_NE(m.find(hypernas::cat("at character ", kExample.size() + 100000)), std::string::npos)
      << m;
}

TEST(Nb201, ParseErrorsNameTokenAndPosition) {
  // Unknown op: quotes the op, its edge and the position of the edge.
  std::string m = parse_error("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("unknown op 'conv_3x3'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 1"), std::string::npos) << m;
  EXPECT_NE(m.find("'|conv_3x3~0|+"), std::string::npos) << m;  // the text is quoted
  EXPECT_NE(m.find("nor_conv_3x3"), std::string::npos) << m;    // known ops listed

  // Wrong input index: names the token and points at the index.
  m = parse_error("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("'none~2'"), std::string::npos) << m;
  EXPECT_NE(m.find("expected 1"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 22"), std::string::npos) << m;

  // Non-numeric input index.
  m = parse_error("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("'none~x'"), std::string::npos) << m;

  // Wrong number of groups.
  m = parse_error("|none~0|+|none~0|none~1|");
  EXPECT_NE(m.find("expected 3 node groups"), std::string::npos) << m;
  EXPECT_NE(m.find("found 2"), std::string::npos) << m;
  m = parse_error(kExample + "+|none~0|");
  EXPECT_NE(m.find("found 4"), std::string::npos) << m;
  EXPECT_NE(m.find("at character " + std::to_string(kExample.size())), std::string::npos) << m;

  // Wrong number of edges in a group: quotes the group.
  m = parse_error("|none~0|+|none~0|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("node 2 needs 2 edge(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("'|none~0|'"), std::string::npos) << m;
  EXPECT_NE(m.find("has 1"), std::string::npos) << m;

  // Missing pipes.
  m = parse_error("none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("missing '|' at the start of node 1's group 'none~0|'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 0"), std::string::npos) << m;
  m = parse_error("|none~0|+|none~0|none~1+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("missing '|' at the end of node 2's group '|none~0|none~1'"), std::string::npos)
      << m;

  // Missing '~'.
  m = parse_error("|none|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("'none'"), std::string::npos) << m;
  EXPECT_NE(m.find("lacks '~"), std::string::npos) << m;

  // Empty text and empty edge.
  EXPECT_NE(parse_error("   ").find("empty"), std::string::npos);
  m = parse_error("|none~0|+||none~1|+|none~0|none~1|none~2|");
  EXPECT_NE(m.find("empty edge 0 in node 2"), std::string::npos) << m;

  // All are hypernas::Error and go through the space too.
  EXPECT_THROW(default_space().parse("|none~0|"), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Cost

// Parameters with C = 16, N = 5, 3x32x32 inputs, 10 classes, counted as NAS-Bench-201 does
// (conv weights, BN weight + bias, linear weight + bias):
//   stem        conv 3->16 3x3: 3*16*9 = 432;  BN: 2*16 = 32                       =       464
//   reduction 1 a: conv 16->32 3x3 = 4608 + BN 64; b: conv 32->32 3x3 = 9216 + BN 64;
//               shortcut conv 1x1 16->32 = 512 (no BN)                              =    14,464
//   reduction 2 a: 32*64*9 = 18432 + 128; b: 64*64*9 = 36864 + 128; shortcut 2048    =    57,600
//   head        BN 2*64 = 128; linear 64*10 + 10 = 650                              =       778
//   fixed part (= all none / skip / avg_pool cells, which have no parameters)       =    73,306
// A nor_conv_kxk edge at C channels has C*C*k*k + 2C parameters; 6 edges x 5 cells per stage:
//   3x3: 30 * (2304 + 32) + 30 * (9216 + 64) + 30 * (36864 + 128)
//        = 70,080 + 278,400 + 1,109,760 = 1,458,240   ->  1,531,546 (NB201: 1.531546 MB)
//   1x1: 30 * (256 + 32) + 30 * (1024 + 64) + 30 * (4096 + 128)
//        = 8,640 + 32,640 + 126,720 = 168,000          ->    241,306
//   example (3 nor_conv_3x3 edges per cell): 1,458,240 / 2 = 729,120 -> 802,426
constexpr std::int64_t kParamsFixed = 73306;
constexpr std::int64_t kParamsAll3x3 = 1531546;
constexpr std::int64_t kParamsAll1x1 = 241306;
constexpr std::int64_t kParamsExample = 802426;

TEST(Nb201, ParameterCountsMatchNasBench201) {
  const Nb201Space space = default_space();
  auto params = [&](const Cell& c) { return space.stats(space.make(c)).params; };
  EXPECT_EQ(params(Cell::uniform(kConv3x3)), kParamsAll3x3);
  EXPECT_EQ(params(Cell::uniform(kNone)), kParamsFixed);
  EXPECT_EQ(params(Cell::uniform(kSkip)), kParamsFixed);
  EXPECT_EQ(params(Cell::uniform(kAvgPool3x3)), kParamsFixed);
  EXPECT_EQ(params(Cell::uniform(kConv1x1)), kParamsAll1x1);
  EXPECT_EQ(space.stats(space.parse(kExample)).params, kParamsExample);
  // Dead ops still count: a 3x3 conv on edge (1<-0) while node 3 reads only none edges.
  Cell dead = Cell::uniform(kNone);
  dead.ops[0] = kConv3x3;
  EXPECT_EQ(params(dead), kParamsFixed + 5 * (2304 + 32) + 5 * (9216 + 64) + 5 * (36864 + 128));
}

// Multiply-accumulates (convolutions: weights x output pixels; linear: 64 x 10):
//   stem 432 * 32*32 = 442,368; reduction 1: (4608 + 9216 + 512) * 16*16 = 3,670,016;
//   reduction 2: (18432 + 36864 + 2048) * 8*8 = 3,670,016; linear 640   -> fixed 7,783,040
//   one 3x3 edge costs 2304*1024 = 9216*256 = 36864*64 = 2,359,296 in every stage, 90 edges
//   -> 212,336,640 + 7,783,040 = 220,119,680 (NB201: ~220.11 MFLOPs); one 1x1 edge costs
//   262,144 -> 23,592,960 + 7,783,040 = 31,376,000.
TEST(Nb201, FlopsAreMultiplyAccumulates) {
  const Nb201Space space = default_space();
  auto flops = [&](const Cell& c) { return space.stats(space.make(c)).flops; };
  const std::int64_t none = flops(Cell::uniform(kNone));
  const std::int64_t conv1 = flops(Cell::uniform(kConv1x1));
  const std::int64_t conv3 = flops(Cell::uniform(kConv3x3));
  EXPECT_GT(none, 0);
  EXPECT_GT(conv1, none);
  EXPECT_GT(conv3, conv1);
  EXPECT_EQ(none, 7783040);
  EXPECT_EQ(conv1, 31376000);
  EXPECT_EQ(conv3, 220119680);
  EXPECT_EQ(flops(Cell::uniform(kSkip)), none);
  EXPECT_EQ(flops(Cell::uniform(kAvgPool3x3)), none);  // pooling is not counted
}

TEST(Nb201, StatsOfOtherShapes) {
  // N = 1, C = 8, 1x16x16 inputs, 100 classes, all nor_conv_3x3:
  //   stem 1*8*9 + 16 = 88; one cell per stage, 6 edges each:
  //   6*(8*8*9 + 16) + 6*(16*16*9 + 32) + 6*(32*32*9 + 64) = 3,552 + 14,016 + 55,680 = 73,248;
  //   reduction 1: 8*16*9 + 32 + 16*16*9 + 32 + 8*16 = 3,648;
  //   reduction 2: 16*32*9 + 64 + 32*32*9 + 64 + 16*32 = 14,464; head 64 + 32*100 + 100 = 3,364
  //   total 88 + 73,248 + 3,648 + 14,464 + 3,364 = 94,812.
  Options o;
  o.set("cells_per_stage", std::int64_t{1})
      .set("channels", std::int64_t{8})
      .set("input_channels", std::int64_t{1})
      .set("input_size", std::int64_t{16})
      .set("classes", std::int64_t{100});
  const Nb201Space space(Nb201Space::params().resolve(o, "nb201"));
  const Architecture arch = space.make(Cell::uniform(kConv3x3));
  EXPECT_EQ(space.stats(arch).params, 94812);
  // An architecture carrying only its text is counted from the text.
  Architecture text_only;
  text_only.space = "nb201";
  text_only.text = arch.text;
  EXPECT_EQ(space.stats(text_only).params, 94812);
  EXPECT_EQ(space.stats(text_only).flops, space.stats(arch).flops);
}

// ---------------------------------------------------------------------------------------------
// Graph

TEST(Nb201, GraphFollowsConventions) {
  const Nb201Space space = default_space();
  for (const std::string& text :
       {kExample, cell_to_string(Cell::uniform(kNone)), cell_to_string(Cell::uniform(kConv3x3)),
        cell_to_string(cell_at(4321))}) {
    SCOPED_TRACE(text);
    const hypernas::ArchGraph& g = space.parse(text).graph;
    const std::size_t n = boost::num_vertices(g);
    ASSERT_GT(n, 0u);
    int inputs = 0;
    int exits = 0;
    std::set<std::string> names;
    const std::vector<std::string> vocab = space.op_vocabulary();
    for (std::size_t v = 0; v < n; ++v) {
      const hypernas::OpNode& node = g[v];
      inputs += node.op == "input";
      exits += node.exit >= 0;
      EXPECT_TRUE(names.insert(node.name).second) << "duplicate name " << node.name;
      EXPECT_NE(std::find(vocab.begin(), vocab.end(), node.op), vocab.end()) << node.op;
      if (node.op == "input") {
        EXPECT_EQ(boost::in_degree(v, g), 0u);
      } else if (node.op != "add") {
        EXPECT_EQ(boost::in_degree(v, g), 1u);
      }
    }
    EXPECT_EQ(inputs, 1);
    EXPECT_EQ(exits, 1);
    EXPECT_EQ(g[0].op, "input");
    EXPECT_EQ(g[n - 1].op, "linear");
    EXPECT_EQ(g[n - 1].exit, 0);
    EXPECT_EQ(g[n - 1].c_out, 10);
    for (auto [it, last] = boost::edges(g); it != last; ++it) {
      const std::size_t u = boost::source(*it, g);
      const std::size_t v = boost::target(*it, g);
      EXPECT_LT(u, v) << g[u].name << " -> " << g[v].name;
      // Channels and scales agree along every edge.
      EXPECT_EQ(g[u].c_out, g[v].c_in) << g[u].name << " -> " << g[v].name;
      const std::int64_t step = g[v].stride == 2 ? 1 : 0;
      EXPECT_EQ(g[u].scale + step, g[v].scale) << g[u].name << " -> " << g[v].name;
    }
  }
}

TEST(Nb201, GraphOfExampleCell) {
  const Nb201Space space = default_space();
  const hypernas::ArchGraph& g = space.parse(kExample).graph;
  // Fixed: input 1 + stem 2 + 2 reductions x 9 (a: relu conv bn, b: relu conv bn,
  // shortcut: pool conv, add) + head 4 (bn relu gap linear) = 25. Per cell: 3 add nodes +
  // 3 nodes per nor_conv_3x3 edge (3 of them) + 1 per avg_pool edge (1) + 0 per skip = 13;
  // 15 cells -> 195. Total 220.
  EXPECT_EQ(boost::num_vertices(g), 220u);
  std::map<std::string, std::size_t> by_name;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) by_name[g[v].name] = v;
  for (const char* name :
       {"input", "stem.conv", "stem.bn", "s1.c0.n1", "s1.c0.n1.e0.conv", "s1.c0.n2.e1.pool",
        "r1.a.conv", "r1.shortcut.pool", "r1.shortcut.conv", "r1.add", "s3.c4.n3", "head.linear"})
    EXPECT_EQ(by_name.count(name), 1u) << name;
  const hypernas::OpNode& conv = g[by_name["s2.c1.n3.e1.conv"]];
  EXPECT_EQ(conv.kernel, 3);
  EXPECT_EQ(conv.c_in, 32);
  EXPECT_EQ(conv.c_out, 32);
  EXPECT_EQ(conv.scale, 1);
  EXPECT_EQ(conv.module, 6);  // global cell index: stage 2, cell 1 -> 5 + 1
  EXPECT_EQ(g[by_name["r2.a.conv"]].stride, 2);
  EXPECT_EQ(g[by_name["r2.a.conv"]].module, -1);
  EXPECT_EQ(g[by_name["r1.shortcut.pool"]].kernel, 2);
  EXPECT_EQ(g[by_name["stem.conv"]].c_in, 3);
  // Node 3 of a cell sums skip(node 0), conv3x3(node 1), skip(node 2).
  const std::size_t n3 = by_name["s1.c2.n3"];
  EXPECT_EQ(boost::in_degree(n3, g), 3u);
  std::set<std::string> in;
  for (auto [it, last] = boost::in_edges(n3, g); it != last; ++it)
    in.insert(g[boost::source(*it, g)].name);
  EXPECT_EQ(in, (std::set<std::string>{"s1.c1.n3", "s1.c2.n3.e1.bn", "s1.c2.n2"}));
}

TEST(Nb201, AllNoneCellHasZeroAddNodes) {
  const Nb201Space space = default_space();
  const hypernas::ArchGraph& g = space.make(Cell::uniform(kNone)).graph;
  // 25 fixed nodes + 15 cells x 3 add nodes, each without inputs (zeros).
  EXPECT_EQ(boost::num_vertices(g), 25u + 45u);
  int zero_adds = 0;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v)
    if (g[v].op == "add" && g[v].module >= 0) {
      EXPECT_EQ(boost::in_degree(v, g), 0u) << g[v].name;
      ++zero_adds;
    }
  EXPECT_EQ(zero_adds, 45);
}

// ---------------------------------------------------------------------------------------------
// Encoding, sampling, relaxation

TEST(Nb201, EncodeIsPlusMinusOneHotPerEdge) {
  const Nb201Space space = default_space();
  const at::Tensor t = space.encode(space.parse(kExample));
  ASSERT_EQ(t.dim(), 2);
  EXPECT_EQ(t.size(0), 6);
  EXPECT_EQ(t.size(1), 5);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  const std::array<int, 6> ops = {3, 3, 4, 1, 3, 1};
  for (int e = 0; e < 6; ++e)
    for (int k = 0; k < 5; ++k)
      EXPECT_EQ(t[e][k].item<float>(), k == ops[e] ? 1.0f : -1.0f) << e << "," << k;
  Architecture other;
  other.space = "darts";
  other.text = kExample;
  EXPECT_THROW(space.encode(other), hypernas::Error);
}

TEST(Nb201, SampleIsDeterministicForASeed) {
  const Nb201Space space = default_space();
  hypernas::Rng a(42), b(42), c(43);
  std::vector<std::string> sa, sb, sc;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(space.sample(a).text);
    sb.push_back(space.sample(b).text);
    sc.push_back(space.sample(c).text);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  for (const auto& s : sa) EXPECT_EQ(space.parse(s).text, s);
  EXPECT_GT(std::set<std::string>(sa.begin(), sa.end()).size(), 45u);
  // The same draws as at(uniform_int(15625)).
  hypernas::Rng d(42);
  EXPECT_EQ(space.at(d.uniform_int(15625)).text, sa[0]);
}

TEST(Nb201, DiscretizeTakesArgmaxPerEdge) {
  const Nb201Space space = default_space();
  const auto specs = space.arch_params();
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].name, "alpha");
  EXPECT_EQ(specs[0].shape, (std::vector<std::int64_t>{6, 5}));

  at::Tensor alpha = at::zeros({6, 5}, at::kFloat);
  const std::array<int, 6> ops = {3, 3, 4, 1, 3, 1};
  for (int e = 0; e < 6; ++e) alpha[e][ops[e]] = 2.0 + e;
  alpha[0][0] = 1.5;  // below the maximum
  EXPECT_EQ(space.discretize({alpha}, 1).text, kExample);
  EXPECT_EQ(space.discretize({alpha}, 2).text, kExample);  // keep is ignored
  // Ties go to the first op.
  EXPECT_EQ(space.discretize({at::zeros({6, 5}, at::kFloat)}, 1).text,
            cell_to_string(Cell::uniform(kNone)));
  // The encoding is its own argmax.
  EXPECT_EQ(space.discretize({space.encode(space.at(9876))}, 1).text, space.at(9876).text);

  EXPECT_THROW(space.discretize({alpha}, 0), hypernas::Error);
  EXPECT_THROW(space.discretize({}, 1), hypernas::Error);
  EXPECT_THROW(space.discretize({alpha, alpha}, 1), hypernas::Error);
  try {
    space.discretize({at::zeros({5, 6}, at::kFloat)}, 1);
    ADD_FAILURE() << "wrong shape accepted";
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[5, 6]"), std::string::npos) << e.what();
  }
  at::Tensor nan = at::zeros({6, 5}, at::kFloat);
  nan[2][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(space.discretize({nan}, 1), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Options and export

TEST(Nb201, OptionsAreValidated) {
  const hypernas::ParamTable& table = Nb201Space::params();
  const Options defaults = table.resolve({}, "nb201");
  EXPECT_EQ(defaults.get_int("cells_per_stage"), 5);
  EXPECT_EQ(defaults.get_int("channels"), 16);
  EXPECT_EQ(defaults.get_int("input_channels"), 3);
  EXPECT_EQ(defaults.get_int("input_size"), 32);
  EXPECT_EQ(defaults.get_int("classes"), 10);
  try {
    table.resolve(Options().set("cells_per_stage", std::int64_t{0}), "nb201");
    ADD_FAILURE() << "cells_per_stage=0 accepted";
  } catch (const hypernas::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("cells_per_stage"), std::string::npos) << e.what();
  }
  EXPECT_THROW(table.resolve(Options().set("depth", std::int64_t{3}), "nb201"),
               hypernas::UsageError);
  // What the table cannot check alone: input_size must be a multiple of 4.
  Options odd = table.resolve(Options().set("input_size", std::int64_t{30}), "nb201");
  try {
    Nb201Space space(odd);
    ADD_FAILURE() << "input_size=30 accepted";
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("input_size"), std::string::npos) << e.what();
  }
  // Unresolved options with a bad value are refused by the constructor too.
  Options bad = defaults;
  bad.set("cells_per_stage", std::int64_t{0});
  EXPECT_THROW(Nb201Space{bad}, hypernas::Error);
}

TEST(Nb201, ExportedDescriptorCreatesTheSpace) {
  const hypernas::PluginDescriptor* d = hypernas_plugin_export::descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::string(d->name), "nb201");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Space));
  EXPECT_EQ(d->params, &Nb201Space::params);
  std::string error;
  std::unique_ptr<hypernas::Plugin> p(d->create(d->params().resolve({}, "nb201"), &error));
  ASSERT_NE(p, nullptr) << error;
  auto* space = dynamic_cast<hypernas::SearchSpace*>(p.get());
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->name(), "nb201");
  EXPECT_EQ(space->size(), std::optional<std::uint64_t>(15625));
  Options odd = d->params().resolve(Options().set("input_size", std::int64_t{30}), "nb201");
  EXPECT_EQ(d->create(odd, &error), nullptr);
  EXPECT_NE(error.find("input_size"), std::string::npos) << error;
}

}  // namespace
