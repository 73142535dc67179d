// Tests of the built-in `ghn` search space (plugins/spaces/ghn).

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include <hypernas/plugin.h>

#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "plugins/spaces/ghn/ghn.h"
#include "tests/support/shapes.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in ghn_space.cpp
}

namespace {

using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::GhnSpace;
using hypernas::Options;
using hypernas::test::expect_consistent_shapes;
using namespace hypernas::ghn_space;

// Blocks of 3 nodes used by the hand counts below.
const std::string kExample = "n1=conv_3x3<0;n2=sep_conv_5x5<0,1;n3=max_pool_3x3<1";
const std::string kOther = "n1=conv_5x5<0;n2=dil_conv_3x3<1;n3=sep_conv_3x3<0,2";
const std::string kIdentity = "n1=identity<0;n2=identity<1;n3=identity<2";

GhnSpace default_space() { return GhnSpace(GhnSpace::params().resolve({}, "ghn")); }

/// nodes = 3, blocks = 2, C = 4, 3x8x8 inputs, 10 classes.
GhnSpace small_space() {
  Options o;
  o.set("nodes", std::int64_t{3})
      .set("blocks", std::int64_t{2})
      .set("channels", std::int64_t{4})
      .set("input_size", std::int64_t{8});
  return GhnSpace(GhnSpace::params().resolve(o, "ghn"));
}

/// The message of the hypernas::Error `text` raises in parse_block(), or "" if none.
std::string parse_error(const std::string& text, std::int64_t nodes = 3) {
  try {
    parse_block(text, nodes);
  } catch (const hypernas::Error& e) {
    return e.what();
  }
  return "";
}

/// Checks the conventions every graph of this space keeps.
void expect_valid_graph(const GhnSpace& space, const Architecture& arch) {
  SCOPED_TRACE(arch.text);
  ASSERT_NO_THROW(hypernas::graph::validate(arch));
  const ArchGraph& g = arch.graph;
  const std::size_t n = boost::num_vertices(g);
  ASSERT_GT(n, 0u);
  const std::vector<std::string> vocab = space.op_vocabulary();
  std::set<std::string> names;
  int exits = 0;
  for (std::size_t v = 0; v < n; ++v) {
    const hypernas::OpNode& node = g[v];
    EXPECT_TRUE(names.insert(node.name).second) << "duplicate name " << node.name;
    EXPECT_NE(std::find(vocab.begin(), vocab.end(), node.op), vocab.end()) << node.op;
    exits += node.exit >= 0;
    // Module: block index s for every node named b<s>.*, -1 elsewhere.
    if (node.name[0] == 'b') {
      EXPECT_EQ(node.name.substr(0, node.name.find('.')), "b" + std::to_string(node.module))
          << node.name;
      EXPECT_EQ(node.scale, node.module) << node.name;  // block s runs at scale s
    } else {
      EXPECT_EQ(node.module, -1) << node.name;
    }
  }
  for (auto [it, last] = boost::edges(g); it != last; ++it)
    EXPECT_LT(boost::source(*it, g), boost::target(*it, g));
  EXPECT_EQ(exits, 1);
  EXPECT_EQ(g[0].op, "input");
  EXPECT_EQ(g[n - 1].op, "linear");
  EXPECT_EQ(g[n - 1].exit, 0);
  // Exactly one sink: the classifier (the block output sums every loose end).
  int sinks = 0;
  for (std::size_t v = 0; v < n; ++v) sinks += boost::out_degree(v, g) == 0;
  EXPECT_EQ(sinks, 1);
  expect_consistent_shapes(g, space.config().input_size,
                           {/*sourceless_add=*/false, /*concat=*/false});
}

std::map<std::string, std::size_t> by_name(const ArchGraph& g) {
  std::map<std::string, std::size_t> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) out[g[v].name] = v;
  return out;
}

std::set<std::string> in_names(const ArchGraph& g, std::size_t v) {
  std::set<std::string> out;
  for (auto [it, last] = boost::in_edges(v, g); it != last; ++it)
    out.insert(g[boost::source(*it, g)].name);
  return out;
}

// ---------------------------------------------------------------------------------------------
// String form

TEST(Ghn, TextRoundTrips) {
  const GhnSpace space = small_space();
  for (const std::string& text : {kExample, kOther, kIdentity}) {
    const Architecture arch = space.parse(text);
    EXPECT_EQ(arch.space, "ghn");
    EXPECT_EQ(arch.text, text);
    EXPECT_EQ(block_to_string(parse_block(text, 3)), text);
  }
  const Block b = parse_block(kExample, 3);
  ASSERT_EQ(b.nodes.size(), 3u);
  EXPECT_EQ(b.nodes[0], (Node{kConv3x3, {0}}));
  EXPECT_EQ(b.nodes[1], (Node{kSepConv5x5, {0, 1}}));
  EXPECT_EQ(b.nodes[2], (Node{kMaxPool3x3, {1}}));
  // Sources in any order; surrounding whitespace ignored. The canonical text sorts them.
  EXPECT_EQ(space.parse(" n1=conv_3x3<0;n2=sep_conv_5x5<1,0;n3=max_pool_3x3<1\n").text, kExample);
  // Every op name round-trips.
  for (int op = 0; op < kOps; ++op) {
    const std::string text = std::string("n1=") + kOpNames[op] + "<0";
    EXPECT_EQ(block_to_string(parse_block(text, 1)), text);
  }
}

TEST(Ghn, LooseEndsFeedTheBlockOutput) {
  EXPECT_EQ(loose_ends(parse_block(kExample, 3)), (std::vector<int>{2, 3}));
  EXPECT_EQ(loose_ends(parse_block(kOther, 3)), (std::vector<int>{3}));
  EXPECT_EQ(loose_ends(parse_block("n1=identity<0;n2=identity<0;n3=identity<0", 3)),
            (std::vector<int>{1, 2, 3}));
}

TEST(Ghn, ParseErrorsOfAHugeTextQuoteOnlyAnExcerpt) {
  // 100 kB with the fault in the middle: the message quotes ~120 characters around it.
  const std::string pad(50000, ' ');
  const std::string text = pad + "n1=conv_3x3<0;n2=conv_7x7<1;n3=identity<2" + pad;
  std::string m = parse_error(text);
  EXPECT_LT(m.size(), 400u) << m;
  EXPECT_NE(m.find("unknown op 'conv_7x7' in node token 'n2=conv_7x7<1'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 50017"), std::string::npos) << m;
  EXPECT_NE(m.find("   n1=conv_3x3<0;n2=conv_7x7<1;n3=identity<2   "), std::string::npos) << m;
  EXPECT_NE(m.find(hypernas::cat("(", text.size(), " characters)")), std::string::npos) << m;
  // A 100 kB op name: the op and its node token are cut too.
  m = parse_error("n1=conv_3x3<0;n2=" + std::string(100000, 'x') + "<1;n3=identity<2");
  EXPECT_LT(m.size(), 400u) << m.substr(0, 1000);
  EXPECT_NE(m.find("unknown op 'xxxxxxxx"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 17"), std::string::npos) << m;
}

TEST(Ghn, ParseErrorsNameTokenAndPosition) {
  // Unknown op: quotes the op and its node token, points at the op, lists known ops.
  std::string m = parse_error("n1=conv_3x3<0;n2=conv_7x7<1;n3=identity<2");
  EXPECT_NE(m.find("unknown op 'conv_7x7' in node token 'n2=conv_7x7<1'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 17"), std::string::npos) << m;
  EXPECT_NE(m.find("sep_conv_5x5"), std::string::npos) << m;                   // known ops listed
  EXPECT_NE(m.find("'n1=conv_3x3<0;n2=conv_7x7<1;"), std::string::npos) << m;  // text quoted

  // Source out of range: node 2 reads 0..1.
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5<0,2;n3=identity<2");
  EXPECT_NE(m.find("node token 'n2=conv_5x5<0,2' reads node 2; node 2 reads 0..1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("at character 28"), std::string::npos) << m;

  // Same source twice; three sources.
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5<1,1;n3=identity<2");
  EXPECT_NE(m.find("reads node 1 twice"), std::string::npos) << m;
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5<0,1;n3=identity<0,1,2");
  EXPECT_NE(m.find("reads more than 2 sources"), std::string::npos) << m;
  EXPECT_NE(m.find("'n3=identity<0,1,2'"), std::string::npos) << m;

  // Not a number, empty source.
  m = parse_error("n1=conv_3x3<a;n2=conv_5x5<0;n3=identity<2");
  EXPECT_NE(m.find("source 'a' in node token 'n1=conv_3x3<a'"), std::string::npos) << m;
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5<0,;n3=identity<2");
  EXPECT_NE(m.find("source '' in node token 'n2=conv_5x5<0,'"), std::string::npos) << m;

  // Labels.
  m = parse_error("n1=conv_3x3<0;n3=conv_5x5<0;n2=identity<2");
  EXPECT_NE(m.find("node token 'n3=conv_5x5<0' should start with 'n2=', not 'n3='"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("at character 14"), std::string::npos) << m;
  m = parse_error("conv_3x3<0;n2=conv_5x5<0;n3=identity<2");
  EXPECT_NE(m.find("should start with 'n1=' (no '=')"), std::string::npos) << m;

  // Missing '<'.
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5;n3=identity<2");
  EXPECT_NE(m.find("node token 'n2=conv_5x5' lacks '<sources>'"), std::string::npos) << m;

  // Wrong node count.
  m = parse_error("n1=conv_3x3<0;n2=conv_5x5<0");
  EXPECT_NE(m.find("expected 3 nodes separated by ';'"), std::string::npos) << m;
  EXPECT_NE(m.find("found 2"), std::string::npos) << m;
  m = parse_error(kExample + ";n4=identity<3");
  EXPECT_NE(m.find("found 4"), std::string::npos) << m;
  EXPECT_NE(m.find("at character " + std::to_string(kExample.size())), std::string::npos) << m;

  // Empty node, empty text.
  m = parse_error("n1=conv_3x3<0;;n3=identity<2");
  EXPECT_NE(m.find("node 2 is empty"), std::string::npos) << m;
  EXPECT_NE(parse_error(" \t").find("the text is empty"), std::string::npos);

  // All are hypernas::Error and go through the space too.
  EXPECT_THROW(small_space().parse("n1=conv_3x3<0"), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Cost

// nodes = 3, blocks = 2, C = 4 (stage 0, 8x8) and 8 (stage 1, 4x4), 3x8x8 inputs, 10 classes.
// Counted as the other spaces do (conv weights, BN weight + bias, linear weight + bias):
//   stem       conv 3->4 3x3 = 108, BN 8                                       =   116
//   reduction  conv 4->8 3x3 stride 2 = 288, BN 16                             =   304
//   head       linear 8*10 + 10                                                =    90
//   fixed part (= the all-identity block; pooling has no parameters either)    =   510
// Ops at C channels: conv_k = C C k k + 2C; sep_conv_k and dil_conv_3x3 = C k k + C C + 2C.
//   kExample: conv_3x3 + sep_conv_5x5 + max_pool: C = 4: 152 + 124; C = 8: 592 + 280
//             -> 510 + 276 + 872 = 1,658
//   kOther:   conv_5x5 + dil_conv_3x3 + sep_conv_3x3: C = 4: 408 + 60 + 60;
//             C = 8: 1,616 + 152 + 152 -> 510 + 528 + 1,920 = 2,958
TEST(Ghn, ParameterCountsByHand) {
  const GhnSpace space = small_space();
  auto params = [&](const std::string& text) { return space.stats(space.parse(text)).params; };
  EXPECT_EQ(params(kIdentity), 510);
  EXPECT_EQ(params("n1=max_pool_3x3<0;n2=avg_pool_3x3<0,1;n3=identity<1,2"), 510);
  EXPECT_EQ(params(kExample), 1658);
  EXPECT_EQ(params(kOther), 2958);
  // An architecture carrying only its text is counted from the text.
  Architecture text_only;
  text_only.space = "ghn";
  text_only.text = kOther;
  EXPECT_EQ(space.stats(text_only).params, 2958);
}

// Multiply-accumulates (weights x output pixels): stem 108 * 64 = 6,912; reduction
// 288 * 16 = 4,608; linear 80 -> fixed 11,600. kExample: stage 0 conv_3x3 144 * 64 = 9,216,
// sep_conv_5x5 (100 + 16) * 64 = 7,424; stage 1 conv_3x3 576 * 16 = 9,216, sep_conv_5x5
// (200 + 64) * 16 = 4,224 -> 11,600 + 30,080 = 41,680.
TEST(Ghn, FlopsAreMultiplyAccumulates) {
  const GhnSpace space = small_space();
  auto flops = [&](const std::string& text) { return space.stats(space.parse(text)).flops; };
  EXPECT_EQ(flops(kIdentity), 11600);
  EXPECT_EQ(flops(kExample), 41680);
  EXPECT_GT(flops(kOther), flops(kIdentity));
  // Default space: a 5x5 conv everywhere costs more than a 3x3 conv everywhere.
  const GhnSpace d = default_space();
  std::string conv3, conv5;
  for (int i = 1; i <= 7; ++i) {
    conv3 += (i > 1 ? ";" : "") + std::string("n") + std::to_string(i) + "=conv_3x3<" +
             std::to_string(i - 1);
    conv5 += (i > 1 ? ";" : "") + std::string("n") + std::to_string(i) + "=conv_5x5<" +
             std::to_string(i - 1);
  }
  EXPECT_GT(d.stats(d.parse(conv5)).flops, d.stats(d.parse(conv3)).flops);
  EXPECT_GT(d.stats(d.parse(conv5)).params, d.stats(d.parse(conv3)).params);
}

// ---------------------------------------------------------------------------------------------
// Graph

TEST(Ghn, GraphOfABlock) {
  const GhnSpace space = small_space();
  const Architecture arch = space.parse(kExample);
  expect_valid_graph(space, arch);
  const ArchGraph& g = arch.graph;
  // input + stem 2; per block: conv 3 + sep 4 + pool 1 + out 1 = 9; reduction 3; head 3.
  EXPECT_EQ(boost::num_vertices(g), 3u + 9u + 3u + 9u + 3u);
  const auto names = by_name(g);
  for (const char* name : {"input",      "stem.conv",  "stem.bn",   "b0.n1.relu", "b0.n1.conv",
                           "b0.n1.bn",   "b0.n2.relu", "b0.n2.dw",  "b0.n2.pw",   "b0.n2.bn",
                           "b0.n3.pool", "b0.out",     "r1.relu",   "r1.conv",    "r1.bn",
                           "b1.n1.conv", "b1.out",     "head.relu", "head.gap",   "head.linear"})
    EXPECT_EQ(names.count(name), 1u) << name;
  // Node 2 sums the block input and node 1 in its first primitive.
  EXPECT_EQ(in_names(g, names.at("b0.n2.relu")), (std::set<std::string>{"stem.bn", "b0.n1.bn"}));
  EXPECT_EQ(in_names(g, names.at("b1.n2.relu")), (std::set<std::string>{"r1.bn", "b1.n1.bn"}));
  EXPECT_EQ(in_names(g, names.at("b0.n3.pool")), (std::set<std::string>{"b0.n1.bn"}));
  // The block output sums the loose ends (nodes 2 and 3).
  EXPECT_EQ(g[names.at("b0.out")].op, "add");
  EXPECT_EQ(in_names(g, names.at("b0.out")), (std::set<std::string>{"b0.n2.bn", "b0.n3.pool"}));
  EXPECT_EQ(in_names(g, names.at("r1.relu")), (std::set<std::string>{"b0.out"}));
  // Attributes.
  const hypernas::OpNode& dw = g[names.at("b1.n2.dw")];
  EXPECT_EQ(dw.kernel, 5);
  EXPECT_EQ(dw.groups, 8);
  EXPECT_EQ(dw.c_in, 8);
  EXPECT_EQ(dw.scale, 1);
  EXPECT_EQ(dw.module, 1);
  EXPECT_EQ(g[names.at("b0.n3.pool")].kernel, 3);
  EXPECT_EQ(g[names.at("b0.n3.pool")].stride, 1);
  const hypernas::OpNode& red = g[names.at("r1.conv")];
  EXPECT_EQ(red.stride, 2);
  EXPECT_EQ(red.c_in, 4);
  EXPECT_EQ(red.c_out, 8);
  EXPECT_EQ(red.module, -1);
  EXPECT_EQ(g[names.at("head.linear")].c_in, 8);
  EXPECT_EQ(g[names.at("head.linear")].c_out, 10);
  // Dilated and identity nodes.
  const Architecture other = space.parse("n1=dil_conv_3x3<0;n2=identity<0,1;n3=avg_pool_3x3<2");
  expect_valid_graph(space, other);
  const auto on = by_name(other.graph);
  EXPECT_EQ(other.graph[on.at("b0.n1.dw")].dilation, 2);
  EXPECT_EQ(other.graph[on.at("b0.n2.id")].op, "add");
  EXPECT_EQ(in_names(other.graph, on.at("b0.n2.id")),
            (std::set<std::string>{"stem.bn", "b0.n1.bn"}));
  EXPECT_EQ(in_names(other.graph, on.at("b1.out")), (std::set<std::string>{"b1.n3.pool"}));
}

TEST(Ghn, ModulesIndexTheBlocks) {
  const GhnSpace space = default_space();
  hypernas::Rng rng(1);
  const Architecture arch = space.sample(rng);
  std::map<std::int64_t, int> per_module;
  for (std::size_t v = 0; v < boost::num_vertices(arch.graph); ++v)
    ++per_module[arch.graph[v].module];
  // Modules -1 (stem, reductions, head), 0, 1, 2 with the same number of nodes in each block.
  ASSERT_EQ(per_module.size(), 4u);
  EXPECT_EQ(per_module[-1], 3 + 2 * 3 + 3);
  EXPECT_EQ(per_module[0], per_module[1]);
  EXPECT_EQ(per_module[1], per_module[2]);
  expect_valid_graph(space, arch);
}

TEST(Ghn, ManySamplesAreValidGraphs) {
  const GhnSpace space = default_space();
  hypernas::Rng rng(9);
  for (int i = 0; i < 200; ++i) expect_valid_graph(space, space.sample(rng));
  // Larger blocks (GHN evaluates on larger ones than it trains on), odd sizes, more stages.
  Options o;
  o.set("nodes", std::int64_t{17})
      .set("blocks", std::int64_t{4})
      .set("channels", std::int64_t{5})
      .set("input_size", std::int64_t{13});
  const GhnSpace big(GhnSpace::params().resolve(o, "ghn"));
  for (int i = 0; i < 50; ++i) expect_valid_graph(big, big.sample(rng));
  o.set("nodes", std::int64_t{1}).set("blocks", std::int64_t{1});
  const GhnSpace tiny(GhnSpace::params().resolve(o, "ghn"));
  for (int i = 0; i < 10; ++i) expect_valid_graph(tiny, tiny.sample(rng));
  // The canonical JSON round-trips (and validates) too.
  const Architecture a = space.sample(rng);
  EXPECT_EQ(hypernas::graph::canonical_json(
                hypernas::graph::from_json(hypernas::graph::canonical_json(a))),
            hypernas::graph::canonical_json(a));
}

// The kernel's executor runs the graphs: logits of the right shape, and exactly the parameters
// stats() counts.
TEST(Ghn, GraphsRunInTheExecutor) {
  const hypernas::exec::GraphExecutor executor;
  auto run = [&](const GhnSpace& space, const Architecture& arch) {
    SCOPED_TRACE(arch.text);
    std::int64_t count = 0;
    for (const hypernas::ParamShape& p : executor.parameters(arch)) {
      std::int64_t numel = 1;
      for (std::int64_t d : p.shape) numel *= d;
      count += numel;
    }
    EXPECT_EQ(count, space.stats(arch).params);
    const hypernas::WeightMap weights = executor.init_weights(arch, 1, at::Device(at::kCPU));
    const std::int64_t size = space.config().input_size;
    const at::Tensor images = at::randn({2, space.config().input_channels, size, size});
    const std::vector<at::Tensor> logits = executor.forward(arch, weights, images);
    ASSERT_EQ(logits.size(), 1u);
    EXPECT_EQ(logits[0].sizes(), (std::vector<std::int64_t>{2, space.config().classes}));
    EXPECT_TRUE(logits[0].isfinite().all().item<bool>());
  };
  const GhnSpace space = small_space();
  for (const std::string& text : {kExample, kOther, kIdentity}) run(space, space.parse(text));
  Options o;
  o.set("nodes", std::int64_t{7})
      .set("blocks", std::int64_t{3})
      .set("channels", std::int64_t{3})
      .set("input_size", std::int64_t{9})
      .set("classes", std::int64_t{5});
  const GhnSpace odd(GhnSpace::params().resolve(o, "ghn"));
  hypernas::Rng rng(8);
  for (int i = 0; i < 8; ++i) run(odd, odd.sample(rng));
}

// ---------------------------------------------------------------------------------------------
// Sampling and encoding

TEST(Ghn, SampleIsDeterministicForASeed) {
  const GhnSpace space = default_space();
  hypernas::Rng a(42), b(42), c(43);
  std::vector<std::string> sa, sb, sc;
  std::vector<int> op_count(kOps, 0);
  int one = 0, two = 0;
  for (int i = 0; i < 300; ++i) {
    sa.push_back(space.sample(a).text);
    sb.push_back(space.sample(b).text);
    sc.push_back(space.sample(c).text);
    const Block block = parse_block(sa.back(), 7);
    for (std::size_t k = 0; k < block.nodes.size(); ++k) {
      const Node& n = block.nodes[k];
      ++op_count[n.op];
      ASSERT_GE(n.inputs.size(), 1u);
      ASSERT_LE(n.inputs.size(), 2u);
      if (k == 0) {
        EXPECT_EQ(n.inputs, (std::vector<int>{0}));
      } else {
        (n.inputs.size() == 1 ? one : two) += 1;
      }
    }
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(std::set<std::string>(sa.begin(), sa.end()).size(), sa.size());
  for (const auto& s : sa) EXPECT_EQ(space.parse(s).text, s);
  // 300 x 7 nodes / 8 ops = 262 per op; nodes 2..7 read 1 or 2 sources with probability 1/2.
  for (int k = 0; k < kOps; ++k) {
    EXPECT_GT(op_count[k], 200) << kOpNames[k];
    EXPECT_LT(op_count[k], 330) << kOpNames[k];
  }
  EXPECT_GT(one, 800);
  EXPECT_GT(two, 800);
}

TEST(Ghn, EncodeIsOpOneHotAndSourceMask) {
  const GhnSpace space = small_space();
  const at::Tensor t = space.encode(space.parse(kExample));
  ASSERT_EQ(t.dim(), 2);
  EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{3, 11}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  const std::vector<std::vector<float>> expected = {{1, 0, 0, 0, 0, 0, 0, 0, /*sources*/ 1, 0, 0},
                                                    {0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0},
                                                    {0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0}};
  for (int i = 0; i < 3; ++i)  // ±1: +1 where the mask above has 1
    for (int j = 0; j < 11; ++j)
      EXPECT_EQ(t[i][j].item<float>(), 2 * expected[i][j] - 1) << i << "," << j;
  const GhnSpace d = default_space();
  hypernas::Rng rng(2);
  EXPECT_EQ(d.encode(d.sample(rng)).sizes(), (std::vector<std::int64_t>{7, 15}));
  Architecture other;
  other.space = "darts";
  other.text = kExample;
  EXPECT_THROW(space.encode(other), hypernas::Error);
  // No continuous relaxation.
  EXPECT_TRUE(space.arch_params().empty());
  EXPECT_THROW(space.discretize({}, 1), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Options and export

TEST(Ghn, OptionsAreValidated) {
  const hypernas::ParamTable& table = GhnSpace::params();
  const Options defaults = table.resolve({}, "ghn");
  EXPECT_EQ(defaults.get_int("nodes"), 7);
  EXPECT_EQ(defaults.get_int("blocks"), 3);
  EXPECT_EQ(defaults.get_int("channels"), 16);
  EXPECT_EQ(defaults.get_int("input_channels"), 3);
  EXPECT_EQ(defaults.get_int("input_size"), 32);
  EXPECT_EQ(defaults.get_int("classes"), 10);
  EXPECT_THROW(table.resolve(Options().set("nodes", std::int64_t{0}), "ghn"), hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("blocks", std::int64_t{17}), "ghn"),
               hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("depth", std::int64_t{3}), "ghn"), hypernas::UsageError);
  Options bad = defaults;
  bad.set("nodes", std::int64_t{0});
  EXPECT_THROW(GhnSpace{bad}, hypernas::Error);
  const std::vector<std::string> vocab = default_space().op_vocabulary();
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), "concat"), 0);
  EXPECT_EQ(vocab.size(), 9u);
  // A block of another size is refused, naming the expected count.
  try {
    default_space().parse(kExample);
    ADD_FAILURE() << "3-node block accepted by a 7-node space";
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 7 nodes"), std::string::npos) << e.what();
  }
}

TEST(Ghn, ExportedDescriptorCreatesTheSpace) {
  const hypernas::PluginDescriptor* d = hypernas_plugin_export::descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::string(d->name), "ghn");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Space));
  EXPECT_EQ(d->params, &GhnSpace::params);
  std::string error;
  std::unique_ptr<hypernas::Plugin> p(d->create(d->params().resolve({}, "ghn"), &error));
  ASSERT_NE(p, nullptr) << error;
  auto* space = dynamic_cast<hypernas::SearchSpace*>(p.get());
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->name(), "ghn");
  Options bad = d->params().resolve({}, "ghn");
  bad.set("classes", std::int64_t{0});
  EXPECT_EQ(d->create(bad, &error), nullptr);
  EXPECT_NE(error.find("classes"), std::string::npos) << error;
}

}  // namespace
