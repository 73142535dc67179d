// Tests of the built-in `darts` search space (plugins/spaces/darts).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
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
#include "plugins/spaces/darts/darts.h"
#include "tests/support/shapes.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in darts_space.cpp
}

namespace {

using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::DartsSpace;
using hypernas::Options;
using hypernas::test::expect_consistent_shapes;
using namespace hypernas::darts;

/// The DARTS V2 genotype exactly as DARTS's genotypes.py prints it (Python syntax, unsorted).
const std::string kDartsV2Python =
    "normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)]; reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "
    "('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), "
    "('skip_connect', 2), ('max_pool_3x3', 1)]";

/// The example of the HyperNAS brief (DARTS V1's normal cell) with a pooling reduce cell.
const std::string kExample =
    "normal=[(sep_conv_3x3,0),(sep_conv_3x3,1),(skip_connect,0),(sep_conv_3x3,1),"
    "(skip_connect,0),(sep_conv_3x3,1),(sep_conv_3x3,0),(skip_connect,2)];"
    "reduce=[(max_pool_3x3,0),(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1),"
    "(max_pool_3x3,0),(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1)]";

// Cells used by the hand counts below (see ParameterCountsByHand).
const std::string kPoolCell =
    "[(max_pool_3x3,0),(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1),(max_pool_3x3,0),"
    "(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1)]";
const std::string kSkipCell =
    "[(skip_connect,0),(skip_connect,1),(skip_connect,0),(skip_connect,1),(skip_connect,0),"
    "(skip_connect,1),(skip_connect,0),(skip_connect,1)]";
const std::string kConvNormal =
    "[(sep_conv_3x3,0),(sep_conv_5x5,1),(dil_conv_3x3,0),(dil_conv_5x5,2),(skip_connect,1),"
    "(sep_conv_3x3,3),(max_pool_3x3,2),(avg_pool_3x3,4)]";
const std::string kConvReduce =
    "[(sep_conv_3x3,0),(dil_conv_5x5,1),(max_pool_3x3,1),(sep_conv_5x5,2),(skip_connect,0),"
    "(dil_conv_3x3,3),(skip_connect,2),(avg_pool_3x3,4)]";

Options small_options(bool macro = false) {
  Options o;
  o.set("layers", std::int64_t{3})
      .set("channels", std::int64_t{4})
      .set("input_size", std::int64_t{8})
      .set("macro", macro);
  return DartsSpace::params().resolve(o, "darts");
}

DartsSpace default_space() { return DartsSpace(DartsSpace::params().resolve({}, "darts")); }
DartsSpace small_space(bool macro = false) { return DartsSpace(small_options(macro)); }

/// The message of the hypernas::Error `text` raises in parse_genotype(), or "" if none.
std::string parse_error(const std::string& text, bool macro = false, std::int64_t cells = 2) {
  try {
    parse_genotype(text, macro, cells);
  } catch (const hypernas::Error& e) {
    return e.what();
  }
  return "";
}

/// Checks the conventions every graph of this space keeps.
void expect_valid_graph(const DartsSpace& space, const Architecture& arch) {
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
    // Module: cell index for nodes named c<i>.*, -1 for the stem and the head.
    if (node.name[0] == 'c') {
      EXPECT_EQ(node.name.substr(0, node.name.find('.')), "c" + std::to_string(node.module))
          << node.name;
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
  expect_consistent_shapes(g, space.config().input_size);
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

TEST(Darts, EdgeIndexAndReductionCells) {
  EXPECT_EQ(edge_index(2, 0), 0);
  EXPECT_EQ(edge_index(2, 1), 1);
  EXPECT_EQ(edge_index(3, 0), 2);
  EXPECT_EQ(edge_index(4, 0), 5);
  EXPECT_EQ(edge_index(5, 0), 9);
  EXPECT_EQ(edge_index(5, 4), 13);
  EXPECT_THROW(edge_index(5, 5), hypernas::Error);
  EXPECT_THROW(edge_index(1, 0), hypernas::Error);
  // DARTS: cells layers/3 and 2*layers/3 reduce.
  std::vector<int> reductions;
  for (int i = 0; i < 20; ++i)
    if (is_reduction(i, 20)) reductions.push_back(i);
  EXPECT_EQ(reductions, (std::vector<int>{6, 13}));
  reductions.clear();
  for (int i = 0; i < 8; ++i)
    if (is_reduction(i, 8)) reductions.push_back(i);
  EXPECT_EQ(reductions, (std::vector<int>{2, 5}));
  EXPECT_TRUE(is_reduction(0, 1));  // one cell: it is the (only) reduction
}

TEST(Darts, CanonicalTextsRoundTrip) {
  const DartsSpace space = default_space();
  for (const std::string& text : {std::string(kDartsV1), std::string(kDartsV2), kExample}) {
    const Architecture arch = space.parse(text);
    EXPECT_EQ(arch.space, "darts");
    EXPECT_EQ(arch.text, text);
    EXPECT_EQ(genotype_to_string(parse_genotype(text, false, 2), false), text);
  }
  // DARTS's own Python text parses (whitespace, quotes) to the canonical, sorted form.
  EXPECT_EQ(space.parse(kDartsV2Python).text, kDartsV2);
  EXPECT_EQ(space.parse("  " + std::string(kDartsV2) + "\n").text, kDartsV2);
  // Pairs in any order within a node: the same genotype.
  const Genotype g = parse_genotype(kDartsV2Python, false, 2);
  EXPECT_EQ(g, parse_genotype(kDartsV2, false, 2));
  ASSERT_EQ(g.cells.size(), 2u);
  EXPECT_EQ(g.cells[0].nodes[2], (std::vector<Input>{{kSkip, 0}, {kSepConv3x3, 1}}));
  EXPECT_EQ(g.cells[0].nodes[3], (std::vector<Input>{{kSkip, 0}, {kDilConv3x3, 2}}));
  EXPECT_EQ(g.cells[1].nodes[1], (std::vector<Input>{{kMaxPool3x3, 1}, {kSkip, 2}}));
  // A trailing comma (Python) is accepted in the flat form.
  EXPECT_EQ(parse_genotype("normal=" + kPoolCell.substr(0, kPoolCell.size() - 1) +
                               ",];reduce=" + kPoolCell,
                           false, 2),
            parse_genotype("normal=" + kPoolCell + ";reduce=" + kPoolCell, false, 2));
}

TEST(Darts, GroupedFormForOtherInputCounts) {
  Cell cell;
  cell.nodes[0] = {{kSepConv3x3, 1}};
  cell.nodes[1] = {{kSkip, 0}, {kMaxPool3x3, 1}, {kDilConv5x5, 2}};
  cell.nodes[2] = {{kAvgPool3x3, 3}, {kSepConv5x5, 0}};  // unsorted: printed sorted
  cell.nodes[3] = {{kNone, 0}, {kSkip, 1}, {kSepConv3x3, 2}, {kDilConv3x3, 3}, {kSkip, 4}};
  const std::string text = cell_to_string(cell);
  EXPECT_EQ(text,
            "[(sep_conv_3x3,1)|(skip_connect,0),(max_pool_3x3,1),(dil_conv_5x5,2)|"
            "(sep_conv_5x5,0),(avg_pool_3x3,3)|(none,0),(skip_connect,1),(sep_conv_3x3,2),"
            "(dil_conv_3x3,3),(skip_connect,4)]");
  Genotype g{{cell, cell}};
  const std::string full = genotype_to_string(g, false);
  EXPECT_EQ(full, "normal=" + text + ";reduce=" + text);
  const Genotype back = parse_genotype(full, false, 2);
  EXPECT_EQ(genotype_to_string(back, false), full);
  EXPECT_EQ(back.cells[0].nodes[2], (std::vector<Input>{{kSepConv5x5, 0}, {kAvgPool3x3, 3}}));
  // A grouped text with 2 pairs per node is printed in the flat form.
  const std::string grouped =
      "normal=[(max_pool_3x3,0),(avg_pool_3x3,1)|(max_pool_3x3,0),(avg_pool_3x3,1)|"
      "(max_pool_3x3,0),(avg_pool_3x3,1)|(max_pool_3x3,0),(avg_pool_3x3,1)];reduce=" +
      kPoolCell;
  EXPECT_EQ(default_space().parse(grouped).text, "normal=" + kPoolCell + ";reduce=" + kPoolCell);
  // The space builds and validates graphs of such genotypes too.
  const DartsSpace space = small_space();
  expect_valid_graph(space, space.parse(full));
}

TEST(Darts, MacroTextListsOneCellPerLayer) {
  const DartsSpace space = small_space(true);
  const std::string text = "cell0=" + kConvNormal + ";cell1=" + kConvReduce + ";cell2=" + kPoolCell;
  const Architecture arch = space.parse(text);
  EXPECT_EQ(arch.text, text);
  EXPECT_EQ(space.genotype_of(arch).cells.size(), 3u);
  expect_valid_graph(space, arch);
  // The non-macro form is refused by a macro space, and the other way round.
  EXPECT_THROW(space.parse(kExample), hypernas::Error);
  EXPECT_THROW(small_space(false).parse(text), hypernas::Error);
  // Macro with 1 layer.
  EXPECT_EQ(genotype_to_string(parse_genotype("cell0=" + kPoolCell, true, 1), true),
            "cell0=" + kPoolCell);
}

TEST(Darts, ParseErrorsOfAHugeTextQuoteOnlyAnExcerpt) {
  // 100 kB with the fault in the middle: the message quotes ~120 characters around it.
  const std::string pad(50000, ' ');
  const std::string text = "normal=[(max_pool_3x3,0)," + pad + "(sep_conv_7x7,1)" +
                           kPoolCell.substr(34) + ";reduce=" + kPoolCell + pad;
  std::string m = parse_error(text);
  EXPECT_LT(m.size(), 400u) << m;
  EXPECT_NE(m.find("unknown op 'sep_conv_7x7'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 50026"), std::string::npos) << m;
  EXPECT_NE(m.find("   (sep_conv_7x7,1)" + kPoolCell.substr(34, 20)), std::string::npos) << m;
  EXPECT_NE(m.find(hypernas::cat("(", text.size(), " characters)")), std::string::npos) << m;
  // A 100 kB op name: the op and its pair are cut too.
  m = parse_error("normal=[(" + std::string(100000, 'x') + ",0)" + kPoolCell.substr(17) +
                  ";reduce=" + kPoolCell);
  EXPECT_LT(m.size(), 400u) << m.substr(0, 1000);
  EXPECT_NE(m.find("unknown op 'xxxxxxxx"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 9"), std::string::npos) << m;
}

TEST(Darts, ParseErrorsNameTokenAndPosition) {
  const std::string reduce = ";reduce=" + kPoolCell;
  // Unknown op: quotes the op and its pair, points at the op, lists known ops.
  std::string m =
      parse_error("normal=[(sep_conv_7x7,0),(sep_conv_3x3,1)" + kPoolCell.substr(34) + reduce);
  EXPECT_NE(m.find("unknown op 'sep_conv_7x7'"), std::string::npos) << m;
  EXPECT_NE(m.find("pair '(sep_conv_7x7,0)'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 9"), std::string::npos) << m;
  EXPECT_NE(m.find("dil_conv_5x5"), std::string::npos) << m;               // known ops listed
  EXPECT_NE(m.find("'normal=[(sep_conv_7x7,0)"), std::string::npos) << m;  // the text is quoted

  // Source out of range for its node: node 2 reads 0..1.
  m = parse_error("normal=[(max_pool_3x3,0),(avg_pool_3x3,2)" + kPoolCell.substr(34) + reduce);
  EXPECT_NE(m.find("pair '(avg_pool_3x3,2)' of node 2"), std::string::npos) << m;
  EXPECT_NE(m.find("reads 0..1"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 25"), std::string::npos) << m;

  // The same source twice.
  m = parse_error("normal=[(max_pool_3x3,1),(avg_pool_3x3,1)" + kPoolCell.substr(34) + reduce);
  EXPECT_NE(m.find("reads node 1 a second time"), std::string::npos) << m;
  EXPECT_NE(m.find("'(avg_pool_3x3,1)'"), std::string::npos) << m;

  // Non-numeric source.
  m = parse_error("normal=[(max_pool_3x3,x)" + kPoolCell.substr(17) + reduce);
  EXPECT_NE(m.find("source 'x'"), std::string::npos) << m;
  EXPECT_NE(m.find("not a node index"), std::string::npos) << m;

  // Wrong labels.
  m = parse_error("normal=" + kPoolCell + ";reduction=" + kPoolCell);
  EXPECT_NE(m.find("unexpected label 'reduction'; expected 'reduce'"), std::string::npos) << m;
  EXPECT_NE(m.find("at character " + std::to_string(8 + kPoolCell.size())), std::string::npos) << m;
  m = parse_error("reduce=" + kPoolCell + ";normal=" + kPoolCell);
  EXPECT_NE(m.find("unexpected label 'reduce'; expected 'normal'"), std::string::npos) << m;
  m = parse_error("cell0=" + kPoolCell + ";cell2=" + kPoolCell, true, 3);
  EXPECT_NE(m.find("unexpected label 'cell2'; expected 'cell1'"), std::string::npos) << m;

  // Wrong number of cells.
  m = parse_error("normal=" + kPoolCell);
  EXPECT_NE(m.find("ends after 1 cell(s); expected 2"), std::string::npos) << m;
  m = parse_error("normal=" + kPoolCell + reduce + ";normal=" + kPoolCell);
  EXPECT_NE(m.find("expected the end of the text after cell 'reduce'"), std::string::npos) << m;
  m = parse_error("cell0=" + kPoolCell + ";cell1=" + kPoolCell, true, 3);
  EXPECT_NE(m.find("expected 3"), std::string::npos) << m;

  // Wrong number of pairs (flat) or groups (grouped).
  m = parse_error("normal=[(max_pool_3x3,0),(avg_pool_3x3,1)]" + reduce);
  EXPECT_NE(m.find("lists 2 pair(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("needs 8"), std::string::npos) << m;
  EXPECT_NE(m.find("at character 7"), std::string::npos) << m;
  m = parse_error("normal=[(max_pool_3x3,0)|(avg_pool_3x3,1)]" + reduce);
  EXPECT_NE(m.find("has 2 node groups"), std::string::npos) << m;
  m = parse_error(
      "normal=[(max_pool_3x3,0)|(avg_pool_3x3,1)|(avg_pool_3x3,1)|(avg_pool_3x3,1)|"
      "(avg_pool_3x3,1)]" +
      reduce);
  EXPECT_NE(m.find("more than 4 node groups"), std::string::npos) << m;
  m = parse_error(
      "normal=[(max_pool_3x3,0),(avg_pool_3x3,1),(skip_connect,1)|(avg_pool_3x3,1)|"
      "(avg_pool_3x3,1)|(avg_pool_3x3,1)]" +
      reduce);
  EXPECT_NE(m.find("node 2 of cell 'normal' has 3 pairs"), std::string::npos) << m;

  // Punctuation.
  m = parse_error("normal" + kPoolCell + reduce);
  EXPECT_NE(m.find("expected '=' after label 'normal', found '['"), std::string::npos) << m;
  m = parse_error("normal=(max_pool_3x3,0)" + reduce);
  EXPECT_NE(m.find("expected '[' opening the list of cell 'normal'"), std::string::npos) << m;
  m = parse_error("normal=[(max_pool_3x3 0)" + kPoolCell.substr(17) + reduce);
  EXPECT_NE(m.find("expected ',' between op 'max_pool_3x3' and its source, found '0'"),
            std::string::npos)
      << m;
  m = parse_error("normal=[(max_pool_3x3,0" + kPoolCell.substr(17) + reduce);
  EXPECT_NE(m.find("expected ')' closing the pair of op 'max_pool_3x3'"), std::string::npos) << m;
  m = parse_error("normal=" + kPoolCell.substr(0, kPoolCell.size() - 1) + reduce);
  EXPECT_NE(m.find("expected ',', '|' or ']' in the list of cell 'normal', found ';'"),
            std::string::npos)
      << m;
  m = parse_error("normal=" + kPoolCell + "," + reduce.substr(1));
  EXPECT_NE(m.find("expected ';' or the end of the text after cell 'normal', found ','"),
            std::string::npos)
      << m;
  m = parse_error("normal=[]" + reduce);
  EXPECT_NE(m.find("cell 'normal' has no pairs"), std::string::npos) << m;
  m = parse_error("normal=[('max_pool_3x3,0)" + kPoolCell.substr(17) + reduce);
  EXPECT_NE(m.find("closing ' of op 'max_pool_3x3'"), std::string::npos) << m;
  EXPECT_NE(parse_error("   ").find("the text is empty"), std::string::npos);

  // All are hypernas::Error and go through the space too.
  EXPECT_THROW(default_space().parse("normal=[]"), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Cost

// Known numbers: DARTS's train.py (C = 36, 20 layers) counts parameters without the auxiliary
// head (utils.count_parameters_in_MB skips "auxiliary") and gives 3.349342 M for DARTS_V2,
// which the paper rounds to 3.3M. FactorizedReduce's missing pixel shift changes no count
// (see darts.h), so the graph gives exactly 3,349,342. Multiply-accumulates: 528,359,040
// (~528M; the DARTS paper itself states no CIFAR-10 figure). DARTS_V1 (first order):
// 3,169,414.
TEST(Darts, DartsV2MatchesThePublishedParameterCount) {
  Options o;
  o.set("channels", std::int64_t{36}).set("layers", std::int64_t{20});
  const DartsSpace space(DartsSpace::params().resolve(o, "darts"));
  const hypernas::ArchStats v2 = space.stats(space.parse(kDartsV2));
  EXPECT_EQ(v2.params, 3349342);
  EXPECT_EQ(v2.flops, 528359040);
  EXPECT_EQ(space.stats(space.parse(kDartsV1)).params, 3169414);
  // The executor asks for exactly these parameters.
  std::int64_t count = 0;
  for (const hypernas::ParamShape& p :
       hypernas::exec::GraphExecutor().parameters(space.parse(kDartsV2))) {
    std::int64_t numel = 1;
    for (std::int64_t d : p.shape) numel *= d;
    count += numel;
  }
  EXPECT_EQ(count, 3349342);
}

// Small network: C = 4, 3 layers (cell 0 normal at C = 4; cells 1, 2 reduction at C = 8, 16),
// 3x8x8 inputs, 10 classes. Counted as DARTS does (conv weights, BN weight + bias, linear).
//   stem            conv 3->12 3x3 = 324, BN 24                                  =   348
//   cell 0 (normal) pre0 ReLUConvBN 12->4 = 48 + 8, pre1 12->4 = 56              =   112
//   cell 1 (reduce) pre0 ReLUConvBN 12->8 = 96 + 16, pre1 16->8 = 128 + 16       =   256
//   cell 2 (reduce) pre0 FactorizedReduce 16->16 = 2 x 16*8 + 32 = 288 (the previous cell
//                   reduced), pre1 ReLUConvBN 32->16 = 512 + 32 = 544            =   832
//   head            linear 64*10 + 10                                            =   650
//   fixed part (pooling-only cells)                                              = 2,198
// Ops at C channels: sep_conv_k = 2 (C k k + C C + 2C); dil_conv_k = C k k + C C + 2C;
// skip_connect at stride 2 (reduction cell, input node) = FactorizedReduce = C C + 2C.
//   kSkipCell as reduce: 8 FactorizedReduce per cell: 8 (64 + 16) + 8 (256 + 32) = 2,944
//   kConvNormal at C = 4: sep3 120 + sep5 248 + dil3 60 + dil5 124 + sep3 120    =   672
//     (skip_connect from node 1 and the pools: no parameters)
//   kConvReduce at C = 8: sep3 304 + dil5 280 + sep5 560 + FR(skip on node 0) 80
//     + dil3 152 = 1,376 (skip_connect from node 2 has stride 1: free);
//               at C = 16: 864 + 688 + 1,376 + 288 + 432 = 3,648
TEST(Darts, ParameterCountsByHand) {
  const DartsSpace space = small_space();
  auto params = [&](const std::string& normal, const std::string& reduce) {
    return space.stats(space.parse("normal=" + normal + ";reduce=" + reduce)).params;
  };
  EXPECT_EQ(params(kPoolCell, kPoolCell), 2198);
  EXPECT_EQ(params(kSkipCell, kPoolCell), 2198);  // skip_connect at stride 1 is an edge
  EXPECT_EQ(params(kPoolCell, kSkipCell), 2198 + 2944);
  EXPECT_EQ(params(kConvNormal, kPoolCell), 2198 + 672);
  EXPECT_EQ(params(kConvNormal, kConvReduce), 2198 + 672 + 1376 + 3648);

  // Macro: cell 0 normal ops, cell 1 reduce ops, cell 2 pooling only.
  const DartsSpace macro = small_space(true);
  EXPECT_EQ(macro
                .stats(macro.parse("cell0=" + kConvNormal + ";cell1=" + kConvReduce +
                                   ";cell2=" + kPoolCell))
                .params,
            2198 + 672 + 1376);

  // An architecture carrying only its text is counted from the text.
  Architecture text_only;
  text_only.space = "darts";
  text_only.text = "normal=" + kConvNormal + ";reduce=" + kConvReduce;
  EXPECT_EQ(space.stats(text_only).params, 2198 + 672 + 1376 + 3648);
}

// Multiply-accumulates of the pooling-only network above (8x8 input; reductions halve it):
//   stem 324 * 64 = 20,736; cell 0 pre0 + pre1: 2 * 48 * 64 = 6,144;
//   cell 1 pre0 96 * 64 + pre1 128 * 64 = 14,336 (the preprocessing runs before the stride);
//   cell 2 pre0 FR 2 * 128 * 16 = 4,096 + pre1 512 * 16 = 8,192; linear 640  -> 54,144.
// kConvNormal adds, at 8x8 (64 pixels), C = 4: sep3 2 (36 + 16) 64 = 6,656;
//   sep5 2 (100 + 16) 64 = 14,848; dil3 (36 + 16) 64 = 3,328; dil5 (100 + 16) 64 = 7,424;
//   sep3 6,656 -> 38,912.
TEST(Darts, FlopsAreMultiplyAccumulates) {
  const DartsSpace space = small_space();
  auto flops = [&](const std::string& normal, const std::string& reduce) {
    return space.stats(space.parse("normal=" + normal + ";reduce=" + reduce)).flops;
  };
  EXPECT_EQ(flops(kPoolCell, kPoolCell), 54144);
  EXPECT_EQ(flops(kSkipCell, kPoolCell), 54144);
  EXPECT_EQ(flops(kConvNormal, kPoolCell), 54144 + 38912);
  EXPECT_GT(flops(kPoolCell, kSkipCell), 54144);
  EXPECT_GT(flops(kConvNormal, kConvReduce), flops(kConvNormal, kPoolCell));
  // Stride 2 quarters a reduction cell's op cost relative to the same op at stride 1: the
  // first depthwise conv of sep_conv_3x3 on node 0 in cell 1 (C = 8) runs on 4x4 outputs.
  const Architecture arch = space.parse("normal=" + kPoolCell + ";reduce=" + kConvReduce);
  const auto names = by_name(arch.graph);
  const hypernas::OpNode& dw = arch.graph[names.at("c1.n2.i0.dw1")];
  EXPECT_EQ(dw.stride, 2);
  EXPECT_EQ(dw.scale, 1);
  EXPECT_EQ(arch.graph[names.at("c1.n2.i0.dw2")].stride, 1);
  // Default space sanity: more parameters and MACs for convolutions than for pooling.
  const DartsSpace d = default_space();
  EXPECT_LT(d.stats(d.parse("normal=" + kPoolCell + ";reduce=" + kPoolCell)).flops,
            d.stats(d.parse(kDartsV2)).flops);
}

// ---------------------------------------------------------------------------------------------
// Graph

TEST(Darts, GraphOfAGenotype) {
  const DartsSpace space = small_space();
  const Architecture arch = space.parse("normal=" + kConvNormal + ";reduce=" + kConvReduce);
  expect_valid_graph(space, arch);
  const ArchGraph& g = arch.graph;
  const auto names = by_name(g);
  // Fixed: input, stem 2, gap, linear = 5. Cell 0: pre 3 + 3, ops sep3 8 + sep5 8 + dil3 4 +
  // dil5 4 + sep3 8 + skip 0 + pools 2 = 34, nodes 4, out 1 -> 45. Cells 1, 2: pre0 3 (cell 1)
  // or FactorizedReduce 5 (cell 2), pre1 3; ops sep3 8 + dil5 4 + pool 1 + sep5 8 + FR 5 +
  // dil3 4 + skip 0 + pool 1 = 31; nodes 4; out 1 -> 42 and 44. Total 5 + 45 + 42 + 44 = 136.
  EXPECT_EQ(boost::num_vertices(g), 136u);
  for (const char* name :
       {"input",         "stem.conv",      "stem.bn",        "c0.pre0.conv", "c0.pre1.bn",
        "c0.n2",         "c0.n2.i0.dw1",   "c0.n2.i1.pw2",   "c0.n3.i0.dw",  "c0.n5.i2.pool",
        "c0.out",        "c1.n4.i0.conv1", "c1.n4.i0.conv2", "c1.n4.i0.cat", "c2.pre0.conv1",
        "c2.pre0.conv2", "c2.pre0.cat",    "c2.pre0.bn",     "head.gap",     "head.linear"})
    EXPECT_EQ(names.count(name), 1u) << name;
  EXPECT_EQ(names.count("c0.n4.i1.relu"), 0u);  // skip_connect at stride 1: a plain edge

  // Cell output: concat of nodes 2..5 in vertex order, 4C channels.
  const std::size_t out = names.at("c1.out");
  EXPECT_EQ(g[out].op, "concat");
  EXPECT_EQ(g[out].c_out, 32);
  std::vector<std::string> order;
  for (auto [it, last] = boost::in_edges(out, g); it != last; ++it)
    order.push_back(g[boost::source(*it, g)].name);
  std::sort(order.begin(), order.end(),
            [&](const std::string& a, const std::string& b) { return names.at(a) < names.at(b); });
  EXPECT_EQ(order, (std::vector<std::string>{"c1.n2", "c1.n3", "c1.n4", "c1.n5"}));

  // Node 4 of cell 0 sums skip_connect(node 1: a plain edge) and sep_conv_3x3(node 3).
  EXPECT_EQ(in_names(g, names.at("c0.n4")), (std::set<std::string>{"c0.pre1.bn", "c0.n4.i3.bn2"}));
  EXPECT_EQ(in_names(g, names.at("c0.n5")),
            (std::set<std::string>{"c0.n5.i2.pool", "c0.n5.i4.pool"}));
  // Reduction cell 1: ops on input nodes have stride 2, the others stride 1.
  EXPECT_EQ(g[names.at("c1.n2.i1.dw")].stride, 2);
  EXPECT_EQ(g[names.at("c1.n2.i1.dw")].dilation, 2);
  EXPECT_EQ(g[names.at("c1.n2.i1.dw")].groups, 8);
  EXPECT_EQ(g[names.at("c1.n2.i1.dw")].kernel, 5);
  EXPECT_EQ(g[names.at("c1.n3.i1.pool")].stride, 2);
  EXPECT_EQ(g[names.at("c1.n3.i2.dw1")].stride, 1);
  EXPECT_EQ(g[names.at("c1.n3.i2.dw1")].kernel, 5);
  EXPECT_EQ(g[names.at("c1.n4.i0.conv1")].stride, 2);
  EXPECT_EQ(g[names.at("c1.n4.i0.conv1")].c_out, 4);  // half of C = 8
  EXPECT_EQ(in_names(g, names.at("c1.n5")), (std::set<std::string>{"c1.n2", "c1.n5.i4.pool"}));
  // Preprocessing: cell 2 follows a reduction, so its pre0 is a FactorizedReduce from cell 0.
  EXPECT_EQ(in_names(g, names.at("c2.pre0.relu")), (std::set<std::string>{"c0.out"}));
  EXPECT_EQ(in_names(g, names.at("c2.pre1.relu")), (std::set<std::string>{"c1.out"}));
  EXPECT_EQ(in_names(g, names.at("c0.pre0.relu")), (std::set<std::string>{"stem.bn"}));
  EXPECT_EQ(in_names(g, names.at("c0.pre1.relu")), (std::set<std::string>{"stem.bn"}));
  EXPECT_EQ(g[names.at("c2.pre0.bn")].scale, 1);  // cell 0's output, reduced to cell 1's
  EXPECT_EQ(g[names.at("c2.pre0.relu")].scale, 0);
  EXPECT_EQ(g[names.at("c2.n3")].scale, 2);
  EXPECT_EQ(g[names.at("stem.conv")].c_out, 12);
  EXPECT_EQ(g[names.at("head.linear")].c_in, 64);
  EXPECT_EQ(g[names.at("c2.out")].module, 2);
  EXPECT_EQ(g[names.at("c1.pre0.conv")].module, 1);
}

TEST(Darts, NoneEdgesAndZeroNodes) {
  // Node 2 reads only `none`: an `add` without inputs (zeros), allowed by validate().
  const DartsSpace space = small_space();
  const std::string cell =
      "[(none,0),(none,1),(max_pool_3x3,0),(avg_pool_3x3,2),(max_pool_3x3,0),"
      "(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1)]";
  const Architecture arch = space.parse("normal=" + cell + ";reduce=" + cell);
  expect_valid_graph(space, arch);
  const auto names = by_name(arch.graph);
  EXPECT_EQ(boost::in_degree(names.at("c0.n2"), arch.graph), 0u);
  EXPECT_EQ(arch.graph[names.at("c1.n2")].scale, 1);  // zeros at the reduced scale
  EXPECT_EQ(arch.graph[names.at("c2.n2")].scale, 2);
  EXPECT_EQ(space.stats(arch).params, 2198);
}

TEST(Darts, ManySamplesAreValidGraphs) {
  const DartsSpace space = default_space();
  hypernas::Rng rng(7);
  for (int i = 0; i < 100; ++i) expect_valid_graph(space, space.sample(rng));
  const DartsSpace macro = small_space(true);
  for (int i = 0; i < 100; ++i) expect_valid_graph(macro, macro.sample(rng));
  Options o;
  o.set("layers", std::int64_t{2})
      .set("channels", std::int64_t{3})
      .set("input_size", std::int64_t{7});
  const DartsSpace odd(DartsSpace::params().resolve(o, "darts"));  // two reductions in a row
  for (int i = 0; i < 50; ++i) expect_valid_graph(odd, odd.sample(rng));
  o.set("layers", std::int64_t{1});
  const DartsSpace one(DartsSpace::params().resolve(o, "darts"));
  for (int i = 0; i < 20; ++i) expect_valid_graph(one, one.sample(rng));
  // The canonical JSON round-trips (and validates) too.
  const Architecture a = space.sample(rng);
  EXPECT_EQ(hypernas::graph::canonical_json(
                hypernas::graph::from_json(hypernas::graph::canonical_json(a))),
            hypernas::graph::canonical_json(a));
}

// The kernel's executor runs the graphs: logits of the right shape, and exactly the parameters
// stats() counts (normal cells, reduction cells, FactorizedReduce, zero nodes, macro cells).
TEST(Darts, GraphsRunInTheExecutor) {
  const hypernas::exec::GraphExecutor executor;
  auto run = [&](const DartsSpace& space, const Architecture& arch) {
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
  const DartsSpace space = small_space();
  hypernas::Rng rng(21);
  for (int i = 0; i < 5; ++i) run(space, space.sample(rng));
  run(space, space.parse("normal=" + kConvNormal + ";reduce=" + kConvReduce));
  run(space,
      space.parse("normal=[(none,0),(none,1),(max_pool_3x3,0),(avg_pool_3x3,2),(max_pool_3x3,0),"
                  "(avg_pool_3x3,1),(max_pool_3x3,0),(avg_pool_3x3,1)];reduce=" +
                  kSkipCell));
  const DartsSpace macro = small_space(true);
  for (int i = 0; i < 3; ++i) run(macro, macro.sample(rng));
  Options o;
  o.set("layers", std::int64_t{2})
      .set("channels", std::int64_t{3})
      .set("input_size", std::int64_t{7})
      .set("classes", std::int64_t{5});
  const DartsSpace odd(DartsSpace::params().resolve(o, "darts"));  // odd sizes, 2 reductions
  for (int i = 0; i < 3; ++i) run(odd, odd.sample(rng));
}

// ---------------------------------------------------------------------------------------------
// Sampling, encoding, relaxation

TEST(Darts, SampleIsDeterministicAndUniformOverNonNoneOps) {
  const DartsSpace space = default_space();
  hypernas::Rng a(42), b(42), c(43);
  std::vector<std::string> sa, sb, sc;
  std::vector<int> op_count(kOps, 0);
  std::map<std::pair<int, int>, int> pair_count;  // node 5's source pairs
  for (int i = 0; i < 400; ++i) {
    sa.push_back(space.sample(a).text);
    sb.push_back(space.sample(b).text);
    sc.push_back(space.sample(c).text);
    const Genotype g = parse_genotype(sa.back(), false, 2);
    for (const Cell& cell : g.cells)
      for (int j = 0; j < kSteps; ++j) {
        ASSERT_EQ(cell.nodes[j].size(), 2u);
        EXPECT_LT(cell.nodes[j][0].from, cell.nodes[j][1].from);
        for (const Input& in : cell.nodes[j]) ++op_count[in.op];
      }
    ++pair_count[{g.cells[0].nodes[3][0].from, g.cells[0].nodes[3][1].from}];
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(std::set<std::string>(sa.begin(), sa.end()).size(), sa.size());
  for (const auto& s : sa) EXPECT_EQ(space.parse(s).text, s);
  EXPECT_EQ(op_count[kNone], 0);
  for (int k = 1; k < kOps; ++k) {
    // 400 samples x 16 inputs / 7 ops = 914 expected per op.
    EXPECT_GT(op_count[k], 800) << kOpNames[k];
    EXPECT_LT(op_count[k], 1030) << kOpNames[k];
  }
  EXPECT_EQ(pair_count.size(), 10u);  // all C(5, 2) source pairs of node 5 occur
  for (const auto& [p, n] : pair_count) EXPECT_GT(n, 15) << p.first << "," << p.second;

  // Macro: one independent genotype per cell.
  const DartsSpace macro = small_space(true);
  hypernas::Rng m(5);
  const Genotype g = macro.genotype_of(macro.sample(m));
  EXPECT_EQ(g.cells.size(), 3u);
}

TEST(Darts, EncodeIsPlusMinusOneHotPerNodeAndInputSlot) {
  const DartsSpace space = default_space();
  const at::Tensor t = space.encode(space.parse(kDartsV2));
  ASSERT_EQ(t.dim(), 4);
  EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{2, 4, 2, 13}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  // Every slot: one +1 among the 8 ops, one among the 5 sources, -1 elsewhere.
  EXPECT_TRUE(at::equal(t.sum(-1), at::full({2, 4, 2}, -9.0, at::kFloat)));
  EXPECT_EQ(t[0][0][0][kSepConv3x3].item<float>(), 1.0f);  // normal node 2: (sep_conv_3x3, 0)
  EXPECT_EQ(t[0][0][0][kOps + 0].item<float>(), 1.0f);
  EXPECT_EQ(t[0][3][1][kDilConv3x3].item<float>(), 1.0f);  // normal node 5: (dil_conv_3x3, 2)
  EXPECT_EQ(t[0][3][1][kOps + 2].item<float>(), 1.0f);
  EXPECT_EQ(t[1][1][1][kSkip].item<float>(), 1.0f);        // reduce node 3: (skip_connect, 2)
  EXPECT_EQ(t[1][3][0][kMaxPool3x3].item<float>(), 1.0f);  // reduce node 5: (max_pool_3x3, 1)
  EXPECT_EQ(t[1][3][0][kOps + 1].item<float>(), 1.0f);
  // Macro: one block per cell.
  const DartsSpace macro = small_space(true);
  hypernas::Rng rng(3);
  EXPECT_EQ(macro.encode(macro.sample(rng)).sizes(), (std::vector<std::int64_t>{3, 4, 2, 13}));
  Architecture other;
  other.space = "nb201";
  other.text = kDartsV2;
  EXPECT_THROW(space.encode(other), hypernas::Error);
}

TEST(Darts, ArchParamsNameOneBlockPerGenotype) {
  const auto specs = default_space().arch_params();
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "normal.alpha");
  EXPECT_EQ(specs[1].name, "reduce.alpha");
  EXPECT_EQ(specs[0].shape, (std::vector<std::int64_t>{14, 8}));
  const auto macro = small_space(true).arch_params();
  ASSERT_EQ(macro.size(), 3u);
  EXPECT_EQ(macro[0].name, "cell0.alpha");
  EXPECT_EQ(macro[2].name, "cell2.alpha");
  EXPECT_EQ(macro[2].shape, (std::vector<std::int64_t>{14, 8}));
}

TEST(Darts, DiscretizeFollowsTheDartsRule) {
  const DartsSpace space = default_space();
  // The one-hot selection of a genotype without `none` is its own discretization (as logits).
  hypernas::Rng rng(11);
  for (int i = 0; i < 20; ++i) {
    const Architecture a = space.sample(rng);
    const std::vector<at::Tensor> probs = space.select(a).probs;
    EXPECT_EQ(space.discretize({probs[0].mul(3), probs[1].mul(3)}, 2).text, a.text);
  }
  const DartsSpace macro = small_space(true);
  const Architecture m = macro.sample(rng);
  const std::vector<at::Tensor> probs = macro.select(m).probs;
  EXPECT_EQ(macro.discretize({probs[0], probs[1], probs[2]}, 2).text, m.text);

  // Edges are ranked by softmax weight, not by raw logit, and `none` never counts: on node 2,
  // edge (0 -> 2) has all non-none logits 5 (softmax weight e^5 / (1 + 7 e^5) = 0.143 each);
  // edge (1 -> 2) has max_pool_3x3 at 1 and the rest 0 (e / (e + 7) = 0.280). Node 3: edge
  // (0 -> 3) is dominated by `none` (10), so its best real op is weak; (1 -> 3) and (2 -> 3)
  // are all zeros (1/8 each, ties to the first non-none op and the lower source).
  at::Tensor alpha = at::zeros({14, 8}, at::kFloat);
  for (int k = 1; k < kOps; ++k) alpha[edge_index(2, 0)][k] = 5.0;
  alpha[edge_index(2, 0)][kSepConv5x5] = 5.5;
  alpha[edge_index(2, 1)][kMaxPool3x3] = 1.0;
  alpha[edge_index(3, 0)][kNone] = 10.0;
  alpha[edge_index(3, 0)][kDilConv3x3] = 2.0;
  const Architecture one = space.discretize({alpha, alpha}, 1);
  const Genotype g1 = space.genotype_of(one);
  EXPECT_EQ(g1.cells[0].nodes[0], (std::vector<Input>{{kMaxPool3x3, 1}}));
  EXPECT_EQ(g1.cells[0].nodes[1], (std::vector<Input>{{kMaxPool3x3, 1}}));
  EXPECT_EQ(g1.cells[0].nodes[2], (std::vector<Input>{{kMaxPool3x3, 0}}));
  EXPECT_NE(one.text.find('|'), std::string::npos);  // grouped form: 1 input per node
  expect_valid_graph(space, one);

  const Genotype g2 = space.genotype_of(space.discretize({alpha, alpha}, 2));
  EXPECT_EQ(g2.cells[0].nodes[0],
            (std::vector<Input>{{kSepConv5x5, 0}, {kMaxPool3x3, 1}}));  // sorted by source
  EXPECT_EQ(g2.cells[0].nodes[1], (std::vector<Input>{{kMaxPool3x3, 1}, {kMaxPool3x3, 2}}));

  const Genotype g3 = space.genotype_of(space.discretize({alpha, alpha}, 3));
  EXPECT_EQ(g3.cells[0].nodes[0].size(), 2u);  // node 2 has only 2 sources
  EXPECT_EQ(g3.cells[0].nodes[1].size(), 3u);
  EXPECT_EQ(g3.cells[0].nodes[1][0], (Input{kDilConv3x3, 0}));
  const Genotype all = space.genotype_of(space.discretize({alpha, alpha}, 100));
  EXPECT_EQ(all.cells[1].nodes[3].size(), 5u);

  // Errors.
  EXPECT_THROW(space.discretize({alpha, alpha}, 0), hypernas::Error);
  EXPECT_THROW(space.discretize({alpha}, 2), hypernas::Error);
  EXPECT_THROW(space.discretize({alpha, alpha, alpha}, 2), hypernas::Error);
  EXPECT_THROW(space.discretize({alpha, at::Tensor()}, 2), hypernas::Error);
  try {
    space.discretize({alpha, at::zeros({8, 14}, at::kFloat)}, 2);
    ADD_FAILURE() << "wrong shape accepted";
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("reduce.alpha"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[8, 14]"), std::string::npos) << e.what();
  }
  at::Tensor nan = at::zeros({14, 8}, at::kFloat);
  nan[3][2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(space.discretize({alpha, nan}, 2), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Options and export

TEST(Darts, OptionsAreValidated) {
  const hypernas::ParamTable& table = DartsSpace::params();
  const Options defaults = table.resolve({}, "darts");
  EXPECT_EQ(defaults.get_int("layers"), 8);
  EXPECT_EQ(defaults.get_int("channels"), 16);
  EXPECT_EQ(defaults.get_int("input_channels"), 3);
  EXPECT_EQ(defaults.get_int("input_size"), 32);
  EXPECT_EQ(defaults.get_int("classes"), 10);
  EXPECT_FALSE(defaults.get_bool("macro"));
  EXPECT_EQ(defaults.get_string("intensive"), "");  // no intensive space
  EXPECT_THROW(table.resolve(Options().set("layers", std::int64_t{0}), "darts"),
               hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("macro", std::int64_t{1}), "darts"),
               hypernas::UsageError);
  EXPECT_THROW(table.resolve(Options().set("cells", std::int64_t{3}), "darts"),
               hypernas::UsageError);
  Options bad = defaults;
  bad.set("channels", std::int64_t{0});
  EXPECT_THROW(DartsSpace{bad}, hypernas::Error);
  const DartsSpace space = default_space();
  EXPECT_EQ(space.op_vocabulary().size(), 10u);  // every primitive
  EXPECT_EQ(space.size(), std::nullopt);
}

TEST(Darts, ExportedDescriptorCreatesTheSpace) {
  const hypernas::PluginDescriptor* d = hypernas_plugin_export::descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::string(d->name), "darts");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Space));
  EXPECT_EQ(d->params, &DartsSpace::params);
  std::string error;
  std::unique_ptr<hypernas::Plugin> p(
      d->create(d->params().resolve(Options().set("macro", true), "darts"), &error));
  ASSERT_NE(p, nullptr) << error;
  auto* space = dynamic_cast<hypernas::SearchSpace*>(p.get());
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->name(), "darts");
  EXPECT_EQ(space->arch_params().size(), 8u);
  Options bad = d->params().resolve({}, "darts");
  bad.set("classes", std::int64_t{0});
  EXPECT_EQ(d->create(bad, &error), nullptr);
  EXPECT_NE(error.find("classes"), std::string::npos) << error;
}

}  // namespace
