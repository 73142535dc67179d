// Tests of the built-in `anytime` search space (plugins/spaces/anytime).

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include <hypernas/graph_stats.h>
#include <hypernas/plugin.h>

#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "plugins/spaces/anytime/anytime.h"
#include "tests/support/errors.h"
#include "tests/support/shapes.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in anytime_space.cpp
}

namespace {

using hypernas::AnytimeSpace;
using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::Options;
using hypernas::test::error_of;
using namespace hypernas::anytime;

// The brief's example: 2 cells of 3 and 2 nodes.
const std::string kExample =
    "conv3x3@0:0;max_pool3x3@1:0,1!;conv5x5@1:2!/conv1x1@2:0;avg_pool3x3@2:0,1!";
// 2 cells of 2 nodes, costed by hand below.
const std::string kTwoCell = "conv3x3@0:0!;conv1x1@1:0,1/conv5x5@1:0!;max_pool3x3@2:0!";

/// The space with `nodes`, C = 8, 1x28x28 inputs, 10 classes (the other options as given).
AnytimeSpace make_space(const std::string& nodes, Options extra = {}) {
  extra.set("nodes", nodes)
      .set("channels", std::int64_t{8})
      .set("input_channels", std::int64_t{1})
      .set("input_size", std::int64_t{28})
      .set("classes", std::int64_t{10});
  return AnytimeSpace(AnytimeSpace::params().resolve(extra, "anytime"));
}

/// The message of the hypernas::Error `text` raises in `space.parse()`, or "" if none.
std::string parse_error(const AnytimeSpace& space, const std::string& text) {
  try {
    space.parse(text);
  } catch (const hypernas::Error& e) {
    return e.what();
  }
  return "";
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

/// The linear vertices with exit >= 0, ordered by exit index.
std::vector<std::size_t> exit_vertices(const ArchGraph& g) {
  std::vector<std::size_t> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v)
    if (g[v].exit >= 0) out.push_back(v);
  std::sort(out.begin(), out.end(),
            [&g](std::size_t a, std::size_t b) { return g[a].exit < g[b].exit; });
  return out;
}

/// ceil(size / 2^scale), computed by repeated halving.
std::int64_t at_scale(std::int64_t size, std::int64_t scale) {
  for (std::int64_t s = 0; s < scale; ++s) size = (size + 1) / 2;
  return size;
}

/// The conventions every graph of the space keeps (without running it).
void expect_valid_graph(const AnytimeSpace& space, const Architecture& arch) {
  SCOPED_TRACE(arch.text);
  // Shapes as the executor runs them (every input at its node's scale and channels).
  hypernas::test::expect_consistent_shapes(arch.graph, 28,
                                           {/*sourceless_add=*/false,
                                            /*concat=*/false});
  ASSERT_NO_THROW(hypernas::graph::validate(arch));
  const ArchGraph& g = arch.graph;
  const std::size_t n = boost::num_vertices(g);
  ASSERT_GT(n, 3u);
  const std::vector<std::string> vocab = space.op_vocabulary();
  std::set<std::string> names;
  for (std::size_t v = 0; v < n; ++v) {
    const hypernas::OpNode& node = g[v];
    EXPECT_TRUE(names.insert(node.name).second) << "duplicate name " << node.name;
    EXPECT_NE(std::find(vocab.begin(), vocab.end(), node.op), vocab.end()) << node.op;
    EXPECT_GE(node.scale, 0) << node.name;
    EXPECT_LT(node.scale, space.config().scales) << node.name;
    // Module: the cell index for c<k>.* outside exit heads, -1 for the stem and the heads.
    const bool head = node.name.find(".exit.") != std::string::npos;
    if (node.name[0] == 'c' && !head) {
      EXPECT_EQ(node.name.substr(0, node.name.find('.')), "c" + std::to_string(node.module))
          << node.name;
      // (the ReLU of a cell's input block still has the previous cell's channels)
      const std::int64_t k =
          node.name.find(".in.relu") != std::string::npos ? node.module - 1 : node.module;
      EXPECT_EQ(node.c_out, space.config().channels << k) << node.name;
    } else {
      EXPECT_EQ(node.module, -1) << node.name;
    }
    EXPECT_EQ(node.exit >= 0, node.op == "linear") << node.name;
    if (node.op == "resample") {
      EXPECT_EQ(boost::in_degree(v, g), 1u) << node.name;
    }
  }
  for (auto [it, last] = boost::edges(g); it != last; ++it) {
    const std::size_t u = boost::source(*it, g);
    const std::size_t v = boost::target(*it, g);
    EXPECT_LT(u, v) << g[u].name << " -> " << g[v].name;
    EXPECT_EQ(g[u].c_out, g[v].c_in) << g[u].name << " -> " << g[v].name;
    // Scales change only through a resample.
    if (g[v].op != "resample") {
      EXPECT_EQ(g[u].scale, g[v].scale) << g[u].name << " -> " << g[v].name;
    } else {
      EXPECT_NE(g[u].scale, g[v].scale) << g[u].name << " -> " << g[v].name;
    }
  }
  EXPECT_EQ(g[0].op, "input");
  // Exit indices are 0..E-1, one per '!' of the text, numbered by own cost (ties by vertex).
  const std::vector<std::size_t> exits = exit_vertices(g);
  ASSERT_EQ(exits.size(),
            static_cast<std::size_t>(std::count(arch.text.begin(), arch.text.end(), '!')));
  const std::vector<hypernas::ArchStats> cost = hypernas::count_nodes(g, space.config().input_size);
  std::int64_t previous_cost = -1;
  std::size_t previous_vertex = 0;
  for (std::size_t e = 0; e < exits.size(); ++e) {
    EXPECT_EQ(g[exits[e]].exit, static_cast<std::int64_t>(e));
    EXPECT_EQ(g[exits[e]].c_out, space.config().classes);
    const std::vector<bool> mask = hypernas::ancestors(g, exits[e]);
    std::int64_t own = 0;
    for (std::size_t v = 0; v < n; ++v) own += mask[v] ? cost[v].flops : 0;
    EXPECT_TRUE(own > previous_cost || (own == previous_cost && exits[e] > previous_vertex))
        << "exit " << e << " costs " << own << " after " << previous_cost;
    previous_cost = own;
    previous_vertex = exits[e];
  }
}

// ---------------------------------------------------------------------------------------------
// String form

TEST(Anytime, HandWrittenStringsRoundTrip) {
  const AnytimeSpace space = make_space("3,2");
  const Architecture arch = space.parse(kExample);
  EXPECT_EQ(arch.space, "anytime");
  EXPECT_EQ(arch.text, kExample);
  EXPECT_EQ(space.parse("  \t" + kExample + "\n").text, kExample);

  const Network net = parse_network(kExample, space.config());
  ASSERT_EQ(net.cells.size(), 2u);
  ASSERT_EQ(net.cells[0].nodes.size(), 3u);
  ASSERT_EQ(net.cells[1].nodes.size(), 2u);
  const Node& n2 = net.cells[0].nodes[1];
  EXPECT_EQ(n2.op, kMaxPool3x3);
  EXPECT_EQ(n2.scale, 1);
  EXPECT_EQ(n2.inputs, (std::vector<int>{0, 1}));
  EXPECT_TRUE(n2.exit);
  EXPECT_FALSE(net.cells[0].nodes[0].exit);
  EXPECT_EQ(net.cells[1].nodes[0].op, kConv1x1);
  EXPECT_EQ(net.cells[1].nodes[1].op, kAvgPool3x3);
  EXPECT_EQ(network_to_string(net), kExample);
  EXPECT_EQ(space.network_of(arch), net);

  // Every op name round-trips.
  const AnytimeSpace seven = make_space("7");
  std::string all;
  for (int op = 0; op < kOps; ++op)
    all += (op > 0 ? ";" : "") + std::string(kOpNames[op]) + "@" + std::to_string(op % 3) + ":" +
           std::to_string(op / 2) + (op % 2 == 0 ? "!" : "");
  EXPECT_EQ(seven.parse(all).text, all);
  const AnytimeSpace two = make_space("2,2");
  EXPECT_EQ(two.parse(kTwoCell).text, kTwoCell);
}

TEST(Anytime, SampledStringsRoundTripWithTheSameGraph) {
  const AnytimeSpace space = make_space("24,16,8");
  hypernas::Rng rng(7);
  std::set<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    const Architecture a = space.sample(rng);
    const Architecture b = space.parse(a.text);
    ASSERT_EQ(b.text, a.text);
    ASSERT_EQ(hypernas::graph::canonical_json(b), hypernas::graph::canonical_json(a)) << a.text;
    ASSERT_EQ(network_to_string(parse_network(a.text, space.config())), a.text);
    texts.insert(a.text);
  }
  EXPECT_EQ(texts.size(), 200u);
  // The kernel's canonical JSON round-trips a sampled graph (and validates it).
  const Architecture a = space.sample(rng);
  const std::string json = hypernas::graph::canonical_json(a);
  const Architecture back = hypernas::graph::from_json(json);
  EXPECT_EQ(hypernas::graph::canonical_json(back), json);
  EXPECT_EQ(boost::num_vertices(back.graph), boost::num_vertices(a.graph));
  EXPECT_EQ(back.text, a.text);
}

TEST(Anytime, ParseErrorsNamePositionAndToken) {
  const AnytimeSpace one = make_space("1");
  const AnytimeSpace two = make_space("2");
  const AnytimeSpace three = make_space("3");
  std::string m;
  auto has = [&m](const std::string& piece) {
    EXPECT_NE(m.find(piece), std::string::npos) << "'" << piece << "' not in: " << m;
  };

  // Unknown op (position 12 = the second node's first character).
  m = parse_error(two, "conv3x3@0:0;conv7x7@0:0!");
  has("'conv3x3@0:0;conv7x7@0:0!'");  // the text is quoted
  has("at character 12");
  has("unknown op 'conv7x7'");
  has("node token 'conv7x7@0:0!'");
  has("cell 0 node 2");
  has("dil_conv5x5");  // the known ops are listed

  // Scale out of range (scales = 3), and not a number.
  m = parse_error(one, "conv3x3@3:0!");
  has("at character 8");
  has("scale 3");
  has("[0, 3)");
  m = parse_error(one, "conv3x3@-1:0!");
  has("at character 8");
  has("scale '-1'");
  m = parse_error(one, "conv3x3@01:0!");
  has("scale '01'");
  has("leading zeros");

  // Input not in [0, j): node 2 reads index 2.
  m = parse_error(two, "conv3x3@0:0;conv3x3@0:2!");
  has("at character 22");
  has("input 2");
  has("node token 'conv3x3@0:2!'");
  has("not in [0, 2)");

  // Repeated and unsorted inputs.
  m = parse_error(two, "conv3x3@0:0;conv3x3@0:1,1!");
  has("at character 24");
  has("input 1");
  has("repeated");
  m = parse_error(two, "conv3x3@0:0;conv3x3@0:1,0!");
  has("at character 24");
  has("not ascending: 0 after 1");

  // More than max_inputs (2): the third input of node 3 is at character 40.
  m = parse_error(three, "conv3x3@0:0;conv3x3@0:0,1;conv3x3@0:0,1,2!");
  has("at character 40");
  has("max_inputs = 2");
  has("node token 'conv3x3@0:0,1,2!'");
  // ... which another space allows.
  EXPECT_NO_THROW(make_space("3", Options().set("max_inputs", std::int64_t{3}))
                      .parse("conv3x3@0:0;conv3x3@0:0,1;conv3x3@0:0,1,2!"));

  // Wrong number of cells, and of nodes in a cell.
  m = parse_error(one, "conv3x3@0:0!/conv3x3@0:0!");
  has("at character 12");
  has("expected 1 cell(s)");
  has("found 2");
  has("'nodes' option is '1'");
  m = parse_error(make_space("1,1"), "conv3x3@0:0!");
  has("expected 2 cell(s)");
  has("found 1");
  m = parse_error(one, "conv3x3@0:0;conv3x3@0:0!");
  has("at character 11");
  has("cell 0 'conv3x3@0:0;conv3x3@0:0!' has 2 node(s)");
  has("expected 1");
  m = parse_error(make_space("1,2"), "conv3x3@0:0/conv3x3@0:0!");
  has("cell 1 'conv3x3@0:0!' has 1 node(s)");
  has("expected 2");
  has("at character 24");

  // Missing exit on the last node of the last cell (where the '!' belongs).
  m = parse_error(two, "conv3x3@0:0!;conv3x3@0:0,1");
  has("at character 26");
  has("'conv3x3@0:0,1'");
  has("needs an exit");

  // Trailing garbage after a node.
  m = parse_error(one, "conv3x3@0:0!x");
  has("at character 12");
  has("trailing characters 'x'");
  m = parse_error(one, "conv3x3@0:0!!");
  has("at character 12");
  has("trailing characters '!'");
  m = parse_error(one, "conv3x3@0:0 !");
  has("at character 11");
  has("trailing characters ' !'");

  // Structure: no '@', no ':', no input, an empty node, empty text.
  m = parse_error(one, "conv3x3:0!");
  has("lacks '@<scale>'");
  has("at character 0");
  m = parse_error(one, "conv3x3@0!");
  has("lacks ':<inputs>'");
  m = parse_error(one, "conv3x3@0:!");
  has("at character 10");
  has("expected an input index at '!'");
  m = parse_error(one, "conv3x3@0:00!");
  has("leading zero");
  m = parse_error(two, "conv3x3@0:0;;");
  has("has 3 node(s)");
  m = parse_error(two, "conv3x3@0:0;!");
  has("at character 12");
  has("lacks '@<scale>'");
  m = parse_error(make_space("2,1"), ";conv3x3@0:0/conv3x3@0:0!");
  has("at character 0");
  has("node 1 of cell 0 is empty");
  EXPECT_NE(parse_error(one, "   ").find("empty"), std::string::npos);

  // A long text is quoted as an excerpt with its length.
  const AnytimeSpace big = make_space("200");
  std::string text;
  for (int j = 1; j <= 200; ++j) text += (j > 1 ? ";" : "") + std::string("conv3x3@0:0");
  m = parse_error(big, text + "!?");
  has(std::to_string(text.size() + 2) + " characters)");
  has("at character " + std::to_string(text.size() + 1));
  has("trailing characters '?'");
  EXPECT_LT(m.size(), 400u);

  // All are hypernas::Error.
  EXPECT_THROW(one.parse("conv3x3@0:0"), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Graph

TEST(Anytime, GraphOfTheExample) {
  const AnytimeSpace space = make_space("3,2");
  const Architecture arch = space.parse(kExample);
  expect_valid_graph(space, arch);
  const ArchGraph& g = arch.graph;
  const auto v = by_name(g);
  // input 1 + stem 2; cell 0: n1 conv3x3@0 (relu conv bn) = 3, n2 max_pool@1 reading 0, 1
  // (both at scale 0: rs0 rs1 sum pool) = 4, n3 conv5x5@1 reading n2 (scale 1) = 3; heads of
  // n2 and n3 (bn relu gap linear) = 8; cell 1: input block 3, n1 conv1x1@2 reading 0
  // (scale 1: rs0 relu conv bn) = 4, n2 avg_pool@2 reading 0 (rs0) and n1 (sum pool) = 3;
  // head of n2 = 4. Total 3 + 10 + 8 + 3 + 7 + 4 = 35.
  EXPECT_EQ(boost::num_vertices(g), 35u);
  for (const char* name : {"input",
                           "stem.conv",
                           "stem.bn",
                           "c0.n1.relu",
                           "c0.n1.conv",
                           "c0.n1.bn",
                           "c0.n2.rs0",
                           "c0.n2.rs1",
                           "c0.n2.sum",
                           "c0.n2.pool",
                           "c0.n3.conv",
                           "c0.n2.exit.bn",
                           "c0.n2.exit.relu",
                           "c0.n2.exit.gap",
                           "c0.n2.exit.linear",
                           "c0.n3.exit.linear",
                           "c1.in.relu",
                           "c1.in.conv",
                           "c1.in.bn",
                           "c1.n1.rs0",
                           "c1.n1.conv",
                           "c1.n2.rs0",
                           "c1.n2.sum",
                           "c1.n2.pool",
                           "c1.n2.exit.linear"})
    EXPECT_EQ(v.count(name), 1u) << name;
  EXPECT_EQ(v.count("c0.n3.rs2"), 0u);  // same scale: no resample
  EXPECT_EQ(v.count("c1.n2.rs1"), 0u);
  EXPECT_EQ(v.count("c0.n1.exit.linear"), 0u);  // no '!'
  EXPECT_EQ(g[v.at("c0.n2.pool")].op, "max_pool");
  EXPECT_EQ(g[v.at("c0.n2.pool")].kernel, 3);
  EXPECT_EQ(g[v.at("c0.n2.pool")].stride, 1);
  EXPECT_EQ(g[v.at("c1.n2.pool")].op, "avg_pool");
  EXPECT_EQ(in_names(g, v.at("c0.n2.rs0")), (std::set<std::string>{"stem.bn"}));
  EXPECT_EQ(in_names(g, v.at("c0.n2.rs1")), (std::set<std::string>{"c0.n1.bn"}));
  EXPECT_EQ(g[v.at("c0.n2.rs1")].scale, 1);
  EXPECT_EQ(in_names(g, v.at("c0.n2.sum")), (std::set<std::string>{"c0.n2.rs0", "c0.n2.rs1"}));
  EXPECT_EQ(in_names(g, v.at("c0.n3.relu")), (std::set<std::string>{"c0.n2.pool"}));
  EXPECT_EQ(g[v.at("c0.n3.conv")].kernel, 5);
  EXPECT_EQ(g[v.at("c0.n3.conv")].dilation, 1);
  // Cell 1's input: the last node of cell 0 (n3, scale 1) through ReLU, conv 1x1 8 -> 16, BN.
  EXPECT_EQ(in_names(g, v.at("c1.in.relu")), (std::set<std::string>{"c0.n3.bn"}));
  const hypernas::OpNode& in_conv = g[v.at("c1.in.conv")];
  EXPECT_EQ(in_conv.kernel, 1);
  EXPECT_EQ(in_conv.c_in, 8);
  EXPECT_EQ(in_conv.c_out, 16);
  EXPECT_EQ(in_conv.scale, 1);
  EXPECT_EQ(in_conv.module, 1);
  EXPECT_EQ(g[v.at("c1.n1.rs0")].scale, 2);
  EXPECT_EQ(in_names(g, v.at("c1.n2.sum")), (std::set<std::string>{"c1.n2.rs0", "c1.n1.bn"}));
  // Exit heads: BN -> ReLU -> gap -> linear (C_k -> classes), at the node's scale, module -1.
  EXPECT_EQ(in_names(g, v.at("c0.n2.exit.bn")), (std::set<std::string>{"c0.n2.pool"}));
  EXPECT_EQ(in_names(g, v.at("c0.n2.exit.linear")), (std::set<std::string>{"c0.n2.exit.gap"}));
  const hypernas::OpNode& head = g[v.at("c1.n2.exit.linear")];
  EXPECT_EQ(head.c_in, 16);
  EXPECT_EQ(head.c_out, 10);
  EXPECT_EQ(head.scale, 2);
  EXPECT_EQ(head.module, -1);
  // Own costs rise from c0.n2 to c0.n3 to c1.n2 (every conv on the way is an ancestor).
  EXPECT_EQ(g[v.at("c0.n2.exit.linear")].exit, 0);
  EXPECT_EQ(g[v.at("c0.n3.exit.linear")].exit, 1);
  EXPECT_EQ(g[v.at("c1.n2.exit.linear")].exit, 2);
  // Dilated ops have dilation 2.
  const Architecture dil = make_space("2").parse("dil_conv3x3@0:0;dil_conv5x5@0:1!");
  const auto d = by_name(dil.graph);
  EXPECT_EQ(dil.graph[d.at("c0.n1.conv")].kernel, 3);
  EXPECT_EQ(dil.graph[d.at("c0.n1.conv")].dilation, 2);
  EXPECT_EQ(dil.graph[d.at("c0.n2.conv")].kernel, 5);
  EXPECT_EQ(dil.graph[d.at("c0.n2.conv")].dilation, 2);
}

// Multiply-accumulates of kTwoCell with C = 8 (cell 1: 16), 1x28x28 inputs, 10 classes; a conv
// costs c_out * c_in * k * k * H * W; scale 0 is 28x28, scale 1 14x14, scale 2 7x7:
//   stem       conv3x3 1 -> 8 at 28x28:              8 * 1 * 9 * 784   =    56,448
//   c0.n1      conv3x3@0 reads 0: conv 8 -> 8:       8 * 8 * 9 * 784   =   451,584
//              its exit: linear 8 -> 10                                 =        80
//   c0.n2      conv1x1@1 reads 0 and 1 (both resampled to 14x14):
//              conv 8 -> 8 1x1 at 14x14:             8 * 8 * 1 * 196   =    12,544
//   c1.in      conv1x1 8 -> 16 at c0.n2's scale 1:   16 * 8 * 1 * 196  =    25,088
//   c1.n1      conv5x5@1 reads 0 (scale 1, no resample):
//              conv 16 -> 16 5x5 at 14x14:           16 * 16 * 25 * 196 = 1,254,400
//              its exit: linear 16 -> 10                                =       160
//   c1.n2      max_pool3x3@2 reads 0 (resampled to 7x7): no FLOPs; its exit: 160
// Own cost of each exit (its ancestors):
//   c0.n1: 56,448 + 451,584 + 80                                        =   508,112
//   c1.n2: 56,448 + 451,584 + 12,544 + 25,088 + 160                     =   545,824
//   c1.n1: 56,448 + 451,584 + 12,544 + 25,088 + 1,254,400 + 160         = 1,800,224
// so exit 0 = c0.n1, exit 1 = c1.n2 (the network's output), exit 2 = c1.n1. Cumulative:
//   508,112; + 12,544 + 25,088 + 160 = 545,904; + 1,254,400 + 160 = 1,800,464 (= every node).
TEST(Anytime, ExitFlopsCountedByHand) {
  const AnytimeSpace space = make_space("2,2");
  const Architecture arch = space.parse(kTwoCell);
  expect_valid_graph(space, arch);
  const auto v = by_name(arch.graph);
  EXPECT_EQ(arch.graph[v.at("c0.n1.exit.linear")].exit, 0);
  EXPECT_EQ(arch.graph[v.at("c1.n2.exit.linear")].exit, 1);
  EXPECT_EQ(arch.graph[v.at("c1.n1.exit.linear")].exit, 2);
  EXPECT_EQ(hypernas::exit_flops(arch.graph, 28),
            (std::vector<std::int64_t>{508112, 545904, 1800464}));
  EXPECT_EQ(space.stats(arch).flops, 1800464);

  // forward() returns the logits in that order: exit 1 is the c1.n2 head.
  const hypernas::exec::GraphExecutor executor;
  const hypernas::WeightMap w = executor.init_weights(arch, 3, at::Device(at::kCPU));
  const at::Tensor images = at::randn({2, 1, 28, 28}, at::detail::createCPUGenerator(5));
  hypernas::CaptureOptions capture;
  capture.nodes = {"c0.n1.exit.linear", "c1.n1.exit.linear", "c1.n2.exit.linear"};
  const hypernas::CaptureResult r = executor.forward_capture(arch, w, images, capture);
  ASSERT_EQ(r.exits.size(), 3u);
  ASSERT_EQ(r.captured.size(), 3u);  // in vertex order: c0.n1, c1.n1, c1.n2
  EXPECT_EQ(r.captured[1].node, "c1.n1.exit.linear");
  EXPECT_TRUE(at::equal(r.exits[0], r.captured[0].value));
  EXPECT_TRUE(at::equal(r.exits[1], r.captured[2].value));
  EXPECT_TRUE(at::equal(r.exits[2], r.captured[1].value));
}

TEST(Anytime, EqualCostExitsGoByVertexOrder) {
  // Two pools after the stem: both exits cost the stem and an 8 -> 10 linear.
  const AnytimeSpace space = make_space("2");
  for (const std::string& text : {std::string("max_pool3x3@0:0!;avg_pool3x3@0:0!"),
                                  std::string("avg_pool3x3@1:0!;max_pool3x3@2:0!")}) {
    const Architecture arch = space.parse(text);
    expect_valid_graph(space, arch);
    const auto v = by_name(arch.graph);
    EXPECT_EQ(arch.graph[v.at("c0.n1.exit.linear")].exit, 0) << text;
    EXPECT_EQ(arch.graph[v.at("c0.n2.exit.linear")].exit, 1) << text;
    EXPECT_EQ(hypernas::exit_flops(arch.graph, 28),
              (std::vector<std::int64_t>{56448 + 80, 56448 + 80 + 80}));
  }
}

TEST(Anytime, ResamplingShapes) {
  // n1 at scale 2 reads the stem (scale 0); n2 at scale 0 reads n1 (scale 2); n3 at scale 1
  // reads both.
  const AnytimeSpace space = make_space("3");
  const Architecture arch = space.parse("max_pool3x3@2:0;conv1x1@0:1;avg_pool3x3@1:1,2!");
  expect_valid_graph(space, arch);
  const hypernas::exec::GraphExecutor executor;
  hypernas::CaptureOptions capture;
  capture.nodes = {"c0.n1.rs0", "c0.n1.pool", "c0.n2.rs1", "c0.n2.bn",
                   "c0.n3.rs1", "c0.n3.rs2",  "c0.n3.pool"};
  const hypernas::CaptureResult r =
      executor.forward_capture(arch, executor.init_weights(arch, 1, at::Device(at::kCPU)),
                               at::randn({3, 1, 28, 28}), capture);
  ASSERT_EQ(r.captured.size(), capture.nodes.size());
  const std::vector<std::int64_t> sizes = {7, 7, 28, 28, 14, 14, 14};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(r.captured[i].node, capture.nodes[i]);
    EXPECT_EQ(r.captured[i].value.sizes(), (std::vector<std::int64_t>{3, 8, sizes[i], sizes[i]}))
        << r.captured[i].node;
  }
  ASSERT_EQ(r.exits.size(), 1u);
  EXPECT_EQ(r.exits[0].sizes(), (std::vector<std::int64_t>{3, 10}));
}

// ---------------------------------------------------------------------------------------------
// Sampling, running

/// Checks `arch` in the executor: it compiles, has the parameters stats() counts, and runs
/// with init_weights() on 2 images, one [2, classes] logits tensor per exit, every node's
/// output at its declared channels and scale; exit_flops() is non-decreasing up to stats().
void expect_runs(const AnytimeSpace& space, const Architecture& arch, bool forward) {
  SCOPED_TRACE(arch.text);
  const hypernas::exec::GraphExecutor executor;
  ASSERT_NO_THROW(executor.compile(arch));
  std::int64_t params = 0;
  for (const hypernas::ParamShape& p : executor.parameters(arch)) {
    std::int64_t numel = 1;
    for (std::int64_t d : p.shape) numel *= d;
    params += numel;
  }
  const hypernas::ArchStats stats = space.stats(arch);
  EXPECT_EQ(params, stats.params);
  const std::size_t exits = exit_vertices(arch.graph).size();
  const std::vector<std::int64_t> flops = hypernas::exit_flops(arch.graph, 28);
  ASSERT_EQ(flops.size(), exits);
  EXPECT_TRUE(std::is_sorted(flops.begin(), flops.end()));
  EXPECT_GT(flops.front(), 0);
  EXPECT_LE(flops.back(), stats.flops);
  if (!forward) return;
  const hypernas::WeightMap w = executor.init_weights(arch, 11, at::Device(at::kCPU));
  hypernas::CaptureOptions capture;
  capture.observer = [](const hypernas::OpNode& node, const at::Tensor& out) {
    ASSERT_GE(out.dim(), 2) << node.name;
    EXPECT_EQ(out.size(1), node.c_out) << node.name;
    if (out.dim() == 4) {
      EXPECT_EQ(out.size(2), at_scale(28, node.scale)) << node.name;
      EXPECT_EQ(out.size(3), at_scale(28, node.scale)) << node.name;
    }
  };
  const hypernas::CaptureResult r =
      executor.forward_capture(arch, w, at::randn({2, 1, 28, 28}), capture);
  ASSERT_EQ(r.exits.size(), exits);
  for (const at::Tensor& logits : r.exits) {
    EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{2, 10}));
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
  }
}

TEST(Anytime, SampledArchitecturesValidateAndRun) {
  const AnytimeSpace full = make_space("24,16,8");
  const AnytimeSpace small = make_space("4,3,2");
  hypernas::Rng rng(2019);
  for (int i = 0; i < 100; ++i) {
    const Architecture a = full.sample(rng);
    expect_valid_graph(full, a);
    expect_runs(full, a, /*forward=*/i < 8);
    const Architecture b = small.sample(rng);
    expect_valid_graph(small, b);
    expect_runs(small, b, /*forward=*/i < 40);
  }
}

TEST(Anytime, SampleFollowsItsDistribution) {
  // exit_prob 0.5, max_inputs 3: count what 300 sampled nodes drew.
  const AnytimeSpace space =
      make_space("100,100,100", Options().set("exit_prob", 0.5).set("max_inputs", std::int64_t{3}));
  hypernas::Rng rng(5);
  const Network net = space.network_of(space.sample(rng));
  std::map<int, int> ops, inputs;
  std::map<std::int64_t, int> scales;
  int exits = 0;
  for (const Cell& cell : net.cells)
    for (std::size_t n = 0; n < cell.nodes.size(); ++n) {
      const Node& node = cell.nodes[n];
      ++ops[node.op];
      ++scales[node.scale];
      ++inputs[static_cast<int>(node.inputs.size())];
      exits += node.exit;
      EXPECT_LE(node.inputs.size(), std::min<std::size_t>(3, n + 1));
    }
  EXPECT_EQ(ops.size(), 7u);
  EXPECT_EQ(scales.size(), 3u);
  EXPECT_EQ(inputs.size(), 3u);
  for (const auto& [op, count] : ops) EXPECT_GT(count, 20) << kOpNames[op];     // ~43 each
  for (const auto& [s, count] : scales) EXPECT_GT(count, 70) << "scale " << s;  // ~100 each
  EXPECT_GT(exits, 120);                                                        // ~150
  EXPECT_LT(exits, 180);
  // Node 1 of a cell can only read the cell input.
  for (const Cell& cell : net.cells) EXPECT_EQ(cell.nodes[0].inputs, (std::vector<int>{0}));

  // exit_prob 0: the one forced exit; exit_prob 1: every node.
  auto exits_of = [](double p) {
    hypernas::Rng r(1);
    const std::string text = make_space("5,5", Options().set("exit_prob", p)).sample(r).text;
    return std::count(text.begin(), text.end(), '!');
  };
  EXPECT_EQ(exits_of(0.0), 1);
  EXPECT_EQ(exits_of(1.0), 10);
}

TEST(Anytime, SampleIsDeterministicForASeed) {
  const AnytimeSpace space = make_space("4,3,2");
  hypernas::Rng a(42), b(42), c(43);
  std::vector<std::string> sa, sb, sc;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(space.sample(a).text);
    sb.push_back(space.sample(b).text);
    sc.push_back(space.sample(c).text);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(std::set<std::string>(sa.begin(), sa.end()).size(), 50u);
}

// ---------------------------------------------------------------------------------------------
// Options, stats, export

TEST(Anytime, OptionsAreValidated) {
  const hypernas::ParamTable& table = AnytimeSpace::params();
  const Options defaults = table.resolve({}, "anytime");
  EXPECT_EQ(defaults.get_string("nodes"), "24,16,8");
  EXPECT_EQ(defaults.get_int("channels"), 16);
  EXPECT_EQ(defaults.get_int("scales"), 3);
  EXPECT_EQ(defaults.get_int("max_inputs"), 2);
  EXPECT_EQ(defaults.get_real("exit_prob"), 0.1);
  EXPECT_EQ(defaults.get_int("input_channels"), 3);
  EXPECT_EQ(defaults.get_int("input_size"), 32);
  EXPECT_EQ(defaults.get_int("classes"), 10);
  const AnytimeSpace space(defaults);
  EXPECT_EQ(space.config().nodes, (std::vector<std::int64_t>{24, 16, 8}));

  // Bad `nodes` lists are UsageErrors naming the option and the list.
  for (const char* list : {"", "24,,8", "24,x", "0,3", "24;16", "-1", "24,16,", "1001"}) {
    const std::string bad = list;  // (a const char* would make a bool Value)
    try {
      AnytimeSpace s(table.resolve(Options().set("nodes", bad), "anytime"));
      ADD_FAILURE() << "nodes='" << bad << "' accepted";
    } catch (const hypernas::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("option 'nodes'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_node_counts(" 4, 3 ,2"), (std::vector<std::int64_t>{4, 3, 2}));
  // The table checks the numbers.
  EXPECT_THROW(table.resolve(Options().set("exit_prob", 1.5), "anytime"), hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("scales", std::int64_t{0}), "anytime"),
               hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("max_inputs", std::int64_t{0}), "anytime"),
               hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("depth", std::int64_t{3}), "anytime"),
               hypernas::UsageError);
  // Unresolved options with a bad value are refused by the constructor too.
  Options bad = defaults;
  bad.set("exit_prob", -0.5);
  EXPECT_NE(error_of([&] { AnytimeSpace s(bad); }).find("exit_prob"), std::string::npos);
}

TEST(Anytime, MakeChecksTheNetwork) {
  const AnytimeSpace space = make_space("2");
  Network net = parse_network("conv3x3@0:0;conv3x3@1:0,1!", space.config());
  EXPECT_EQ(space.make(net).text, "conv3x3@0:0;conv3x3@1:0,1!");
  Network no_exit = net;
  no_exit.cells[0].nodes[1].exit = false;
  EXPECT_NE(error_of([&] { space.make(no_exit); }).find("needs an exit"), std::string::npos);
  Network unsorted = net;
  unsorted.cells[0].nodes[1].inputs = {1, 0};
  EXPECT_NE(error_of([&] { space.make(unsorted); }).find("node 2"), std::string::npos);
  Network scale = net;
  scale.cells[0].nodes[0].scale = 3;
  EXPECT_NE(error_of([&] { space.make(scale); }).find("scale 3"), std::string::npos);
  Network op = net;
  op.cells[0].nodes[0].op = kOps;
  EXPECT_NE(error_of([&] { space.make(op); }).find("invalid op id 7"), std::string::npos);
  Network cells = net;
  cells.cells.push_back(net.cells[0]);
  EXPECT_NE(error_of([&] { space.make(cells); }).find("got a network of 2"), std::string::npos)
      << error_of([&] { space.make(cells); });
  // Another space's architecture is refused by network_of().
  Architecture other;
  other.space = "ghn";
  other.text = "conv3x3@0:0;conv3x3@1:0,1!";
  EXPECT_NE(error_of([&] { space.network_of(other); }).find("space 'ghn'"), std::string::npos);
}

TEST(Anytime, StatsOfATextOnlyArchitecture) {
  const AnytimeSpace space = make_space("2,2");
  Architecture text_only;
  text_only.space = "anytime";
  text_only.text = kTwoCell;
  EXPECT_EQ(space.stats(text_only).flops, 1800464);
  EXPECT_EQ(space.stats(text_only).params, space.stats(space.parse(kTwoCell)).params);
}

TEST(Anytime, ExportedDescriptorCreatesTheSpace) {
  const hypernas::PluginDescriptor* d = hypernas_plugin_export::descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::string(d->name), "anytime");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Space));
  EXPECT_EQ(d->params, &AnytimeSpace::params);
  std::string error;
  std::unique_ptr<hypernas::Plugin> p(d->create(d->params().resolve({}, "anytime"), &error));
  ASSERT_NE(p, nullptr) << error;
  auto* space = dynamic_cast<hypernas::SearchSpace*>(p.get());
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->name(), "anytime");
  EXPECT_EQ(space->size(), std::nullopt);
  EXPECT_EQ(space->op_vocabulary(),
            (std::vector<std::string>{"input", "conv", "bn", "relu", "avg_pool", "max_pool", "add",
                                      "gap", "linear", "resample"}));
  hypernas::Rng rng(3);
  const Architecture a = space->sample(rng);
  EXPECT_EQ(space->parse(a.text).text, a.text);
  const Options bad = d->params().resolve(Options().set("nodes", std::string("3,x")), "anytime");
  EXPECT_EQ(d->create(bad, &error), nullptr);
  EXPECT_NE(error.find("nodes"), std::string::npos) << error;
}

}  // namespace
