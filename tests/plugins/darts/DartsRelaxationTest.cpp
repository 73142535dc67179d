// Tests of the continuous relaxation of the built-in `darts` search space (ABI 1.4:
// DartsSpace::relaxed() / select() / intensive(), the `intensive` option and its file format),
// run by the kernel's GraphExecutor::forward_relaxed().

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "plugins/spaces/darts/darts.h"
#include "tests/support/same_node.h"
#include "tests/support/shapes.h"

namespace {

namespace fs = std::filesystem;

using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::DartsSpace;
using hypernas::IntensiveSpace;
using hypernas::MixChoice;
using hypernas::Options;
using hypernas::Relaxation;
using hypernas::Selection;
using hypernas::WeightMap;
using namespace hypernas::darts;

using NodeLists = std::vector<std::vector<std::string>>;

/// An intensive space with K = 4, covering every kind of branch: convolutions, pooling, skip on
/// an input of a reduction cell (FactorizedReduce) and on an intermediate node (identity).
const NodeLists kNormal = {{"sep_conv_3x3~0", "skip_connect~1", "max_pool_3x3~0", "dil_conv_3x3~1"},
                           {"sep_conv_5x5~2", "skip_connect~0", "avg_pool_3x3~1", "sep_conv_3x3~2"},
                           {"dil_conv_5x5~3", "skip_connect~2", "max_pool_3x3~0", "sep_conv_3x3~1"},
                           {"skip_connect~4", "sep_conv_3x3~0", "dil_conv_3x3~3",
                            "avg_pool_3x3~2"}};
const NodeLists kReduce = {{"max_pool_3x3~0", "max_pool_3x3~1", "skip_connect~0", "sep_conv_3x3~1"},
                           {"skip_connect~2", "max_pool_3x3~1", "avg_pool_3x3~0", "dil_conv_5x5~2"},
                           {"skip_connect~2", "max_pool_3x3~0", "sep_conv_5x5~3", "skip_connect~1"},
                           {"skip_connect~2", "max_pool_3x3~1", "avg_pool_3x3~4",
                            "dil_conv_3x3~0"}};

std::string json_list(const NodeLists& nodes) {
  std::string out = "[";
  for (std::size_t j = 0; j < nodes.size(); ++j) {
    out += j ? ", [" : "[";
    for (std::size_t e = 0; e < nodes[j].size(); ++e)
      out += (e ? ", \"" : "\"") + nodes[j][e] + "\"";
    out += "]";
  }
  return out + "]";
}

/// The text of an intensive-space file; `extra` is spliced in before the closing brace.
std::string intensive_text(std::int64_t k, const NodeLists& normal, const NodeLists& reduce,
                           const std::string& extra = "") {
  return "{\"format\": \"hypernas-intensive-1\", \"k\": " + std::to_string(k) +
         ",\n \"normal\": " + json_list(normal) + ",\n \"reduce\": " + json_list(reduce) +
         ",\n \"source\": \"hand-made for the tests\"" + extra + "}\n";
}

class DartsRelaxation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hypernas_darts_relax_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Writes `text` to a file `name` of the test's folder; returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  /// The file of kNormal / kReduce (K = 4).
  std::string standard_file() const {
    return write("standard.json", intensive_text(4, kNormal, kReduce));
  }

  /// A small space: 3 layers (cell 0 normal, cells 1 and 2 reduction), 4 channels, 8x8 inputs.
  static Options options(std::int64_t layers, bool macro, const std::string& intensive) {
    Options o;
    o.set("layers", layers)
        .set("channels", std::int64_t{4})
        .set("input_size", std::int64_t{8})
        .set("macro", macro)
        .set("intensive", intensive);
    return DartsSpace::params().resolve(o, "darts");
  }
  static DartsSpace space(std::int64_t layers = 3, bool macro = false,
                          const std::string& intensive = "") {
    return DartsSpace(options(layers, macro, intensive));
  }

  /// The message of the Error that making a space with intensive file text `text` throws.
  std::string file_error(const std::string& text) const {
    const std::string path = write("bad.json", text);
    try {
      space(3, false, path);
    } catch (const hypernas::Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

std::map<std::string, std::size_t> by_name(const ArchGraph& g) {
  std::map<std::string, std::size_t> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) out[g[v].name] = v;
  return out;
}

/// The parts a branch of `op` has (build_graph()'s names), at stride 2 or 1.
std::vector<std::string> branch_parts(int op, bool stride2) {
  switch (op) {
    case kMaxPool3x3:
    case kAvgPool3x3: return {"pool"};
    case kSkip:
      if (stride2) return {"relu", "conv1", "conv2", "cat", "bn"};
      return {};
    case kSepConv3x3:
    case kSepConv5x5: return {"relu1", "dw1", "pw1", "bn1", "relu2", "dw2", "pw2", "bn2"};
    default: return {"relu", "dw", "pw", "bn"};
  }
}

/// Checks `r` against `space`: the network's conventions, and every MixChoice against the mix
/// node it names (block, row, column, label, branch nodes, what it reads and feeds).
void expect_valid_relaxation(const DartsSpace& space, const Relaxation& r) {
  const ArchGraph& g = r.network.graph;
  const MacroConfig& config = space.config();
  const Intensive* intensive = space.intensive_space();
  ASSERT_NO_THROW(hypernas::graph::validate(r.network));
  hypernas::test::expect_consistent_shapes(g, config.input_size);
  EXPECT_EQ(r.network.space, "darts");
  const auto specs = space.arch_params();
  ASSERT_EQ(r.blocks.size(), specs.size());
  for (std::size_t b = 0; b < specs.size(); ++b) {
    EXPECT_EQ(r.blocks[b].name, specs[b].name);
    EXPECT_EQ(r.blocks[b].shape, specs[b].shape);
  }
  const auto index = by_name(g);
  ASSERT_EQ(index.size(), boost::num_vertices(g));  // unique names
  for (auto [it, last] = boost::edges(g); it != last; ++it)
    EXPECT_LT(boost::source(*it, g), boost::target(*it, g));

  std::vector<std::string> graph_mixes;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v)
    if (g[v].op == "mix") graph_mixes.push_back(g[v].name);
  std::vector<std::string> listed;
  for (const MixChoice& m : r.mixes) listed.push_back(m.node);
  EXPECT_EQ(listed, graph_mixes);  // every mix node, in vertex order
  const std::size_t per_node = intensive ? static_cast<std::size_t>(intensive->k) : 0;
  const std::size_t per_cell = intensive ? kSteps * per_node : kEdges * (kOps - 1);
  EXPECT_EQ(r.mixes.size(), static_cast<std::size_t>(config.layers) * per_cell);

  std::set<std::string> branch_nodes;
  for (const MixChoice& m : r.mixes) {
    SCOPED_TRACE(m.node);
    int cell = -1, node = -1, from = -1;
    char op_name[32] = {0};
    ASSERT_EQ(std::sscanf(m.node.c_str(), "c%d.n%d.i%d.%31[a-z0-9_].mix", &cell, &node, &from,
                          op_name),
              4);
    int op = -1;
    for (int k = 0; k < kOps; ++k)
      if (std::string(op_name) == kOpNames[k]) op = k;
    ASSERT_GT(op, kNone);
    const bool reduction = is_reduction(cell, config.layers);
    EXPECT_EQ(m.block, config.macro ? cell : (reduction ? 1 : 0));
    const Input input{op, from};
    if (intensive) {
      EXPECT_EQ(m.row, node - kInputNodes);
      const auto& c = intensive->candidates[reduction ? 1 : 0][node - kInputNodes];
      ASSERT_LT(m.col, static_cast<std::int64_t>(c.size()));
      EXPECT_EQ(c[m.col], input);
    } else {
      EXPECT_EQ(m.row, edge_index(node, from));
      EXPECT_EQ(m.col, op);
    }
    EXPECT_EQ(m.label,
              "c" + std::to_string(cell) + ".n" + std::to_string(node) + ": " + input_label(input));
    const std::string branch = m.node.substr(0, m.node.size() - 4);
    std::vector<std::string> want;
    for (const std::string& part : branch_parts(op, reduction && from < kInputNodes))
      want.push_back(branch + "." + part);
    EXPECT_EQ(m.nodes, want);
    const std::size_t v = index.at(m.node);
    EXPECT_EQ(g[v].module, cell);
    ASSERT_EQ(boost::in_degree(v, g), 1u);
    ASSERT_EQ(boost::out_degree(v, g), 1u);
    const std::string cell_node = "c" + std::to_string(cell) + ".n" + std::to_string(node);
    EXPECT_EQ(g[boost::target(*boost::out_edges(v, g).first, g)].name, cell_node);
    EXPECT_EQ(g[index.at(cell_node)].op, "add");
    EXPECT_EQ(g[index.at(cell_node)].c_out, g[v].c_out);
    const std::string read = g[boost::source(*boost::in_edges(v, g).first, g)].name;
    if (!want.empty()) {
      EXPECT_EQ(read, want.back());
    } else {  // skip_connect at stride 1 reads the source node itself
      const std::string prefix = "c" + std::to_string(cell) + ".";
      EXPECT_EQ(read, from == 0   ? prefix + "pre0.bn"
                      : from == 1 ? prefix + "pre1.bn"
                                  : prefix + "n" + std::to_string(from));
    }
    for (const std::string& n : m.nodes) {
      ASSERT_EQ(index.count(n), 1u) << n;
      EXPECT_LT(index.at(n), v);
      EXPECT_TRUE(branch_nodes.insert(n).second) << "in two branches: " << n;
    }
  }
}

/// The discrete architecture's weights: the relaxed network's tensors under the discrete
/// names (select().names).
WeightMap discrete_weights(const hypernas::exec::GraphExecutor& executor, const Architecture& arch,
                           const Selection& sel, const WeightMap& relaxed) {
  WeightMap out;
  for (const hypernas::ParamShape& p : executor.parameters(arch)) {
    const auto it = sel.names.find(p.node);
    EXPECT_NE(it, sel.names.end()) << p.node;
    if (it == sel.names.end()) continue;
    const auto w = relaxed.find(it->second + p.name.substr(p.node.size()));
    EXPECT_NE(w, relaxed.end()) << p.name << " as " << it->second;
    if (w != relaxed.end()) out[p.name] = w->second;
  }
  return out;
}

/// The relaxed network with select(arch).probs computes arch's logits, for every arch.
void expect_one_hot_equals_discrete(const DartsSpace& space,
                                    const std::vector<Architecture>& archs) {
  const Relaxation r = space.relaxed();
  const hypernas::exec::GraphExecutor executor;
  const WeightMap relaxed = executor.init_weights(r.network, 7, at::Device(at::kCPU));
  at::manual_seed(3);
  const at::Tensor images = at::randn({3, 3, 8, 8});
  for (const Architecture& arch : archs) {
    SCOPED_TRACE(arch.text);
    const Selection sel = space.select(arch);
    const std::vector<at::Tensor> want =
        executor.forward(arch, discrete_weights(executor, arch, sel, relaxed), images);
    const std::vector<at::Tensor> got = executor.forward_relaxed(r, relaxed, sel.probs, images);
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].sizes(), want[0].sizes());
    EXPECT_TRUE(at::allclose(got[0], want[0], /*rtol=*/1e-5, /*atol=*/1e-6))
        << "max |diff| " << got[0].sub(want[0]).abs().max().item<double>();
  }
}

/// Softmax probabilities of random α: the logits are differentiable in every row of every
/// block.
void expect_differentiable(const DartsSpace& space) {
  const Relaxation r = space.relaxed();
  const hypernas::exec::GraphExecutor executor;
  const WeightMap weights = executor.init_weights(r.network, 8, at::Device(at::kCPU));
  at::manual_seed(4);
  const at::Tensor images = at::randn({3, 3, 8, 8});
  std::vector<at::Tensor> alphas, probs;
  for (const hypernas::ArchParamSpec& spec : r.blocks) {
    alphas.push_back(at::randn(spec.shape).mul_(0.5).requires_grad_(true));
    probs.push_back(at::softmax(alphas.back(), -1));
  }
  const at::Tensor logits = executor.forward_relaxed(r, weights, probs, images)[0];
  logits.mul(at::randn(logits.sizes())).sum().backward();
  for (std::size_t b = 0; b < alphas.size(); ++b) {
    SCOPED_TRACE(r.blocks[b].name);
    ASSERT_TRUE(alphas[b].grad().defined());
    EXPECT_TRUE(alphas[b].grad().isfinite().all().item<bool>());
    // Every row (edge or node) gets a gradient.
    EXPECT_TRUE(alphas[b].grad().abs().amax(1).gt(0).all().item<bool>()) << alphas[b].grad();
  }
  // A mixture is none of the discrete networks: not the argmax genotype's logits.
  std::vector<at::Tensor> detached;
  for (const at::Tensor& a : alphas) detached.push_back(a.detach());
  const Selection sel = space.select(space.discretize(detached, 2));
  EXPECT_FALSE(
      at::allclose(executor.forward_relaxed(r, weights, sel.probs, images)[0], logits.detach()));
}

// ---------------------------------------------------------------------------------------------
// The relaxed networks

TEST_F(DartsRelaxation, SupernetHasOneMixPerEdgeAndOp) {
  const DartsSpace s = space();
  const Relaxation r = s.relaxed();
  EXPECT_EQ(r.network.text, "relaxed(darts, layers=3, C=4)");
  EXPECT_EQ(r.blocks[0].shape, (std::vector<std::int64_t>{14, 8}));
  expect_valid_relaxation(s, r);
  const DartsSpace macro = space(4, true);
  const Relaxation rm = macro.relaxed();
  EXPECT_EQ(rm.network.text, "relaxed(darts, layers=4, C=4, macro)");
  EXPECT_EQ(rm.blocks.size(), 4u);
  expect_valid_relaxation(macro, rm);
}

TEST_F(DartsRelaxation, IntensiveRelaxationHasOneMixPerCandidate) {
  const std::string file = standard_file();
  for (bool macro : {false, true}) {
    SCOPED_TRACE(macro ? "macro" : "normal + reduce");
    const DartsSpace s = space(4, macro, file);
    ASSERT_NE(s.intensive_space(), nullptr);
    const auto specs = s.arch_params();
    ASSERT_EQ(specs.size(), macro ? 4u : 2u);
    EXPECT_EQ(specs[0].name, macro ? "cell0.alpha" : "normal.alpha");
    EXPECT_EQ(specs[1].name, macro ? "cell1.alpha" : "reduce.alpha");
    for (const auto& spec : specs) EXPECT_EQ(spec.shape, (std::vector<std::int64_t>{4, 4}));
    const Relaxation r = s.relaxed();
    EXPECT_NE(r.network.text.find("intensive K=4"), std::string::npos) << r.network.text;
    expect_valid_relaxation(s, r);
    // A label users read: the first candidate of node 2 of the normal cell 0.
    EXPECT_EQ(r.mixes[0].label, "c0.n2: sep_conv_3x3~0");
    EXPECT_EQ(r.mixes[0].node, "c0.n2.i0.sep_conv_3x3.mix");
  }
}

// Every node of a discrete graph is in the relaxed network under its select() name, with the
// same op and attributes; only the nodes of the inputs' ops are renamed.
TEST_F(DartsRelaxation, SelectNamesEveryNodeOfTheDiscreteGraph) {
  const DartsSpace s = space();
  const Relaxation r = s.relaxed();
  const auto relaxed = by_name(r.network.graph);
  hypernas::Rng rng(31);
  std::vector<Architecture> archs = {s.parse(kDartsV2)};
  for (int i = 0; i < 3; ++i) archs.push_back(s.sample(rng));
  for (const Architecture& arch : archs) {
    SCOPED_TRACE(arch.text);
    const Selection sel = s.select(arch);
    const ArchGraph& g = arch.graph;
    ASSERT_EQ(sel.names.size(), boost::num_vertices(g));
    for (std::size_t v = 0; v < boost::num_vertices(g); ++v) {
      const hypernas::OpNode& d = g[v];
      ASSERT_EQ(sel.names.count(d.name), 1u) << d.name;
      const std::string& name = sel.names.at(d.name);
      ASSERT_EQ(relaxed.count(name), 1u) << d.name << " -> " << name;
      const hypernas::OpNode& n = r.network.graph[relaxed.at(name)];
      hypernas::test::expect_same_node(n, d, name);
      if (d.name.find(".i") == std::string::npos) {
        EXPECT_EQ(name, d.name);
      } else {
        EXPECT_NE(name, d.name);
      }
    }
  }
  const Selection v2 = s.select(s.parse(kDartsV2));
  EXPECT_EQ(v2.names.at("c0.n2.i1.dw1"), "c0.n2.i1.sep_conv_3x3.dw1");
  EXPECT_EQ(v2.names.at("c1.n3.i1.pool"), "c1.n3.i1.max_pool_3x3.pool");  // reduce: max~1, skip~2
  EXPECT_EQ(v2.names.at("c1.n2.i0.pool"), "c1.n2.i0.max_pool_3x3.pool");
  EXPECT_EQ(v2.names.at("c2.pre0.conv1"), "c2.pre0.conv1");
  EXPECT_EQ(v2.names.at("c0.out"), "c0.out");
}

TEST_F(DartsRelaxation, SelectProbsAreOneHotOfTheInputsUsed) {
  const DartsSpace s = space();
  const Architecture v2 = s.parse(kDartsV2);
  const Selection sel = s.select(v2);
  ASSERT_EQ(sel.probs.size(), 2u);
  const Genotype g = s.genotype_of(v2);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(sel.probs[b].scalar_type(), at::kFloat);
    EXPECT_TRUE(sel.probs[b].device().is_cpu());
    // A 1 at (edge, op) of every input the genotype uses; with the sum, 0 everywhere else.
    for (int j = 0; j < kSteps; ++j)
      for (const Input& in : g.cells[b].nodes[j])
        EXPECT_EQ(sel.probs[b][edge_index(j + kInputNodes, in.from)][in.op].item<float>(), 1.0f);
    EXPECT_EQ(sel.probs[b].sum().item<float>(), 8.0f);  // 2 inputs x 4 nodes
  }
  // With an intensive space: row = node, column = candidate.
  const DartsSpace in = space(3, false, standard_file());
  const Architecture a = in.parse(
      "normal=[(sep_conv_3x3,0),(skip_connect,1),(skip_connect,0),(sep_conv_3x3,2),"
      "(max_pool_3x3,0),(skip_connect,2),(sep_conv_3x3,0),(skip_connect,4)];"
      "reduce=[(max_pool_3x3,0),(sep_conv_3x3,1),(avg_pool_3x3,0),(skip_connect,2),"
      "(skip_connect,1),(sep_conv_5x5,3),(dil_conv_3x3,0),(avg_pool_3x3,4)]");
  const Selection si = in.select(a);
  ASSERT_EQ(si.probs.size(), 2u);
  const at::Tensor normal = at::tensor({1.f, 1.f, 0.f, 0.f, 0.f, 1.f, 0.f, 1.f,  //
                                        0.f, 1.f, 1.f, 0.f, 1.f, 1.f, 0.f, 0.f})
                                .view({4, 4});
  const at::Tensor reduce = at::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f, 0.f,  //
                                        0.f, 0.f, 1.f, 1.f, 0.f, 0.f, 1.f, 1.f})
                                .view({4, 4});
  EXPECT_TRUE(at::equal(si.probs[0], normal)) << si.probs[0];
  EXPECT_TRUE(at::equal(si.probs[1], reduce)) << si.probs[1];
}

// ---------------------------------------------------------------------------------------------
// Running them

TEST_F(DartsRelaxation, OneHotRelaxedForwardEqualsTheDiscreteNetwork) {
  hypernas::Rng rng(41);
  {
    SCOPED_TRACE("darts");
    const DartsSpace s = space();
    std::vector<Architecture> archs = {
        s.parse(kDartsV2),
        // `none` inputs and a zero node (both inputs of node 2 are none).
        s.parse("normal=[(none,0),(none,1),(max_pool_3x3,0),(avg_pool_3x3,2),(skip_connect,0),"
                "(skip_connect,3),(dil_conv_5x5,1),(sep_conv_5x5,4)];reduce=[(none,0),"
                "(skip_connect,1),(skip_connect,0),(none,2),(dil_conv_3x3,2),(sep_conv_3x3,3),"
                "(skip_connect,0),(max_pool_3x3,4)]")};
    for (int i = 0; i < 3; ++i) archs.push_back(s.sample(rng));
    expect_one_hot_equals_discrete(s, archs);
  }
  {
    SCOPED_TRACE("darts macro");
    const DartsSpace s = space(4, true);
    std::vector<Architecture> archs;
    for (int i = 0; i < 3; ++i) archs.push_back(s.sample(rng));
    expect_one_hot_equals_discrete(s, archs);
  }
  for (bool macro : {false, true}) {
    SCOPED_TRACE(macro ? "darts macro, intensive" : "darts, intensive");
    const DartsSpace s = space(4, macro, standard_file());
    std::vector<Architecture> archs;
    for (int i = 0; i < 3; ++i) archs.push_back(s.sample(rng));
    expect_one_hot_equals_discrete(s, archs);
  }
}

TEST_F(DartsRelaxation, SoftmaxRelaxedForwardIsDifferentiable) {
  {
    SCOPED_TRACE("supernet");
    expect_differentiable(space());
  }
  {
    SCOPED_TRACE("intensive, macro");
    expect_differentiable(space(3, true, standard_file()));
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling, discretizing and selecting inside an intensive space

TEST_F(DartsRelaxation, SampleStaysInsideTheIntensiveSpace) {
  const DartsSpace s = space(3, false, standard_file());
  hypernas::Rng rng(51);
  // Node 2 of the normal cell: candidates sep~0, skip~1, max~0, dil~1, so 4 pairs of distinct
  // sources, each drawn about 1 time in 4.
  std::map<std::string, int> pairs;
  const int n = 400;
  for (int i = 0; i < n; ++i) {
    const Architecture a = s.sample(rng);
    ASSERT_NO_THROW(s.select(a)) << a.text;
    const Genotype g = s.genotype_of(a);
    for (const Cell& cell : g.cells)
      for (const auto& node : cell.nodes) {
        ASSERT_EQ(node.size(), 2u) << a.text;
        EXPECT_NE(node[0].from, node[1].from) << a.text;
      }
    ++pairs[input_label(g.cells[0].nodes[0][0]) + "," + input_label(g.cells[0].nodes[0][1])];
  }
  EXPECT_EQ(pairs.size(), 4u);
  for (const auto& [pair, count] : pairs) {
    EXPECT_GT(count, n / 4 - 40) << pair;
    EXPECT_LT(count, n / 4 + 40) << pair;
  }
  EXPECT_EQ(pairs.count("sep_conv_3x3~0,skip_connect~1"), 1u);
  EXPECT_EQ(pairs.count("max_pool_3x3~0,dil_conv_3x3~1"), 1u);

  // A node all of whose candidates read one node gets one input.
  NodeLists normal = {{"sep_conv_3x3~0", "skip_connect~0"},
                      {"sep_conv_3x3~0", "skip_connect~1"},
                      {"sep_conv_3x3~0", "skip_connect~1"},
                      {"sep_conv_3x3~0", "skip_connect~1"}};
  const DartsSpace one(options(3, false, write("one.json", intensive_text(2, normal, normal))));
  const Genotype g = one.genotype_of(one.sample(rng));
  EXPECT_EQ(g.cells[0].nodes[0].size(), 1u);
  EXPECT_EQ(g.cells[0].nodes[1].size(), 2u);
}

TEST_F(DartsRelaxation, DiscretizeKeepsTheStrongestCandidatesWithDistinctSources) {
  const DartsSpace s = space(3, false, standard_file());
  // Normal node 2: sep~0, skip~1, max~0, dil~1. Node 3: sep5~2, skip~0, avg~1, sep3~2.
  // Node 4: dil5~3, skip~2, max~0, sep3~1. Node 5: skip~4, sep3~0, dil3~3, avg~2.
  at::Tensor normal = at::zeros({4, 4});
  normal[0] = at::tensor({3.f, 1.f, 2.5f, 0.f});  // max~0 is second but reads 0 again: skipped
  normal[1] = at::tensor({0.f, 0.f, 0.f, 5.f});   // sep3~2, then sep5~2 skipped, skip~0 (tie)
  normal[2] = at::tensor({-1.f, 2.f, 1.f, 0.5f});
  normal[3] = at::tensor({0.f, 0.f, 0.f, 0.f});  // all tied: skip~4 and sep3~0
  const at::Tensor reduce = at::zeros({4, 4});
  const Genotype t2 = s.genotype_of(s.discretize({normal, reduce}, 2));
  EXPECT_EQ(t2.cells[0].nodes[0], (std::vector<Input>{{kSepConv3x3, 0}, {kSkip, 1}}));
  EXPECT_EQ(t2.cells[0].nodes[1], (std::vector<Input>{{kSkip, 0}, {kSepConv3x3, 2}}));
  EXPECT_EQ(t2.cells[0].nodes[2], (std::vector<Input>{{kMaxPool3x3, 0}, {kSkip, 2}}));
  EXPECT_EQ(t2.cells[0].nodes[3], (std::vector<Input>{{kSepConv3x3, 0}, {kSkip, 4}}));
  // Reduce, all tied: the first candidate, then the first with another source.
  EXPECT_EQ(t2.cells[1].nodes[0], (std::vector<Input>{{kMaxPool3x3, 0}, {kMaxPool3x3, 1}}));
  EXPECT_EQ(t2.cells[1].nodes[2], (std::vector<Input>{{kMaxPool3x3, 0}, {kSkip, 2}}));

  const Genotype t1 = s.genotype_of(s.discretize({normal, reduce}, 1));
  EXPECT_EQ(t1.cells[0].nodes[0], (std::vector<Input>{{kSepConv3x3, 0}}));
  EXPECT_EQ(t1.cells[0].nodes[1], (std::vector<Input>{{kSepConv3x3, 2}}));
  // T = 3: node 2 has only 2 distinct sources among its candidates.
  const Genotype t3 = s.genotype_of(s.discretize({normal, reduce}, 3));
  EXPECT_EQ(t3.cells[0].nodes[0].size(), 2u);
  EXPECT_EQ(t3.cells[0].nodes[2],
            (std::vector<Input>{{kMaxPool3x3, 0}, {kSepConv3x3, 1}, {kSkip, 2}}));

  // Random α: T strongest (by softmax over the node's K), distinct sources, and every
  // candidate left out is weaker than the weakest kept, or reads a kept source.
  at::manual_seed(61);
  for (int i = 0; i < 20; ++i) {
    const std::vector<at::Tensor> alphas = {at::randn({4, 4}), at::randn({4, 4})};
    const Architecture a = s.discretize(alphas, 2);
    ASSERT_NO_THROW(s.select(a));
    const Genotype g = s.genotype_of(a);
    for (int b = 0; b < 2; ++b) {
      for (int j = 0; j < kSteps; ++j) {
        const auto& kept = g.cells[b].nodes[j];
        ASSERT_EQ(kept.size(), 2u);
        EXPECT_NE(kept[0].from, kept[1].from);
        const auto& c = s.intensive_space()->candidates[b][j];
        const at::Tensor p = at::softmax(alphas[b][j], 0);
        auto prob = [&](const Input& in) {
          return p[std::find(c.begin(), c.end(), in) - c.begin()].item<float>();
        };
        const float weakest = std::min(prob(kept[0]), prob(kept[1]));
        for (const Input& x : c) {
          if (std::find(kept.begin(), kept.end(), x) != kept.end()) continue;
          // Left out: weaker than the kept input of its source, or than every kept input.
          const auto same = std::find_if(kept.begin(), kept.end(),
                                         [&x](const Input& k) { return k.from == x.from; });
          if (same != kept.end()) {
            EXPECT_GE(prob(*same), prob(x)) << input_label(x);
          } else {
            EXPECT_LE(prob(x), weakest) << input_label(x);
          }
        }
      }
    }
  }
  // Shapes are those of arch_params().
  EXPECT_THROW(s.discretize({at::zeros({14, 8}), at::zeros({14, 8})}, 2), hypernas::Error);
  EXPECT_THROW(s.discretize({normal}, 2), hypernas::Error);
}

TEST_F(DartsRelaxation, SelectRefusesAnArchitectureOutsideTheIntensiveSpace) {
  const std::string file = standard_file();
  const DartsSpace s = space(3, false, file);
  // parse() accepts any genotype ...
  const Architecture v2 = s.parse(kDartsV2);
  // ... select() names what lies outside: normal node 2 reads (sep_conv_3x3, 1).
  try {
    s.select(v2);
    ADD_FAILURE() << "an architecture outside the intensive space was accepted";
  } catch (const hypernas::Error& e) {
    const std::string what = e.what();
    for (const std::string& part :
         {std::string("normal"), std::string("node 2"), std::string("sep_conv_3x3~1"), file,
          std::string("sep_conv_3x3~0, skip_connect~1, max_pool_3x3~0, dil_conv_3x3~1")})
      EXPECT_NE(what.find(part), std::string::npos) << part << " not in: " << what;
  }
  // A `none` input is never a candidate; in macro mode the message names the cell.
  const DartsSpace macro = space(3, true, file);
  hypernas::Rng rng(71);
  Genotype g = macro.genotype_of(macro.sample(rng));
  g.cells[2].nodes[3] = {{kNone, 0}, {kSkip, 4}};
  try {
    macro.select(macro.make(g));
    ADD_FAILURE() << "a none input was accepted";
  } catch (const hypernas::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cell2"), std::string::npos) << what;
    EXPECT_NE(what.find("node 5"), std::string::npos) << what;
    EXPECT_NE(what.find("none~0"), std::string::npos) << what;
  }
}

// ---------------------------------------------------------------------------------------------
// Deriving an intensive space

TEST_F(DartsRelaxation, IntensiveKeepsTheTopKPairsPerNode) {
  const DartsSpace s = space();
  // Normal: edge (0 -> 2) favours sep_conv_3x3, then skip_connect; on edge (1 -> 2) `none`
  // dominates, so its max_pool_3x3 (logit 3.5) ends below edge (0 -> 2)'s other ops. Node 3
  // is all ties: lower edge, then lower op.
  at::Tensor normal = at::zeros({14, 8});
  normal[edge_index(2, 0)][kSepConv3x3] = 4;
  normal[edge_index(2, 0)][kSkip] = 3;
  normal[edge_index(2, 1)][kNone] = 10;
  normal[edge_index(2, 1)][kMaxPool3x3] = 3.5;
  at::Tensor reduce = at::zeros({14, 8});
  reduce[edge_index(5, 4)][kDilConv5x5] = 2;
  const IntensiveSpace out = s.intensive({normal, reduce}, 3);
  ASSERT_EQ(out.choices.size(), 2u);
  ASSERT_EQ(out.choices[0].size(), 4u);
  ASSERT_EQ(out.choices[1].size(), 4u);
  using Labels = std::vector<std::string>;
  EXPECT_EQ(out.choices[0][0], (Labels{"sep_conv_3x3~0", "skip_connect~0", "max_pool_3x3~0"}));
  EXPECT_EQ(out.choices[0][1], (Labels{"max_pool_3x3~0", "avg_pool_3x3~0", "skip_connect~0"}));
  EXPECT_EQ(out.choices[1][3], (Labels{"dil_conv_5x5~4", "max_pool_3x3~0", "avg_pool_3x3~0"}));
  // k = 14 lists all of node 2's pairs.
  EXPECT_EQ(s.intensive({normal, reduce}, 14).choices[0][0].size(), 14u);

  // The JSON it writes is what the `intensive` option reads, with the same choices.
  const std::string path = write("derived.json", out.json);
  const DartsSpace back = space(3, false, path);
  ASSERT_NE(back.intensive_space(), nullptr);
  EXPECT_EQ(back.intensive_space()->k, 3);
  EXPECT_FALSE(back.intensive_space()->source.empty());
  for (int g = 0; g < 2; ++g)
    for (int j = 0; j < kSteps; ++j) {
      Labels labels;
      for (const Input& in : back.intensive_space()->candidates[g][j])
        labels.push_back(input_label(in));
      EXPECT_EQ(labels, out.choices[g][j]) << g << ", " << j;
    }
  EXPECT_EQ(intensive_to_json(*back.intensive_space()), out.json);
  EXPECT_EQ(back.arch_params()[0].shape, (std::vector<std::int64_t>{4, 3}));

  // Errors: an intensive space cannot derive another; k in [2, 14]; shapes of arch_params().
  EXPECT_THROW(back.intensive({normal, reduce}, 3), hypernas::Error);
  EXPECT_THROW(s.intensive({normal, reduce}, 1), hypernas::Error);
  EXPECT_THROW(s.intensive({normal, reduce}, 15), hypernas::Error);
  EXPECT_THROW(s.intensive({normal}, 3), hypernas::Error);
  EXPECT_THROW(s.intensive({normal, at::zeros({4, 6})}, 3), hypernas::Error);
}

// In macro mode the per-edge probabilities are averaged over the cells of each type.
TEST_F(DartsRelaxation, IntensiveAveragesTheCellsOfATypeInMacroMode) {
  const DartsSpace s = space(4, true);  // cells 0, 3 normal; 1, 2 reduction
  std::vector<at::Tensor> alphas;
  for (int i = 0; i < 4; ++i) alphas.push_back(at::zeros({14, 8}));
  alphas[0][edge_index(2, 0)][kSepConv3x3] = 5;
  alphas[3][edge_index(2, 1)][kDilConv3x3] = 4;
  alphas[1][edge_index(3, 2)][kSkip] = 1;
  const IntensiveSpace out = s.intensive(alphas, 3);
  using Labels = std::vector<std::string>;
  // Mean of cells 0 and 3: sep~0 (0.5 * 0.955 + 0.5 / 8), dil3~1 (0.5 * 0.886 + 0.5 / 8), then
  // the other ops of edge (1 -> 2) (0.5 * 0.016 + 0.5 / 8) above those of (0 -> 2)
  // (0.5 * 0.006 + 0.5 / 8). Cell 0 alone would give sep~0, max~1, avg~1; cell 3 alone
  // dil3~1, max~0, avg~0.
  EXPECT_EQ(out.choices[0][0], (Labels{"sep_conv_3x3~0", "dil_conv_3x3~1", "max_pool_3x3~1"}));
  EXPECT_EQ(out.choices[1][1][0], "skip_connect~2");
  EXPECT_NE(out.json.find("averaged"), std::string::npos);
  // Read back by a macro space with the same layers.
  const DartsSpace back = space(4, true, write("macro.json", out.json));
  EXPECT_EQ(input_label(back.intensive_space()->candidates[0][0][1]), "dil_conv_3x3~1");
}

// ---------------------------------------------------------------------------------------------
// The intensive-space file

TEST_F(DartsRelaxation, IntensiveFileIsParsed) {
  const DartsSpace s = space(3, false, standard_file());
  const Intensive* in = s.intensive_space();
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->k, 4);
  EXPECT_EQ(in->source, "hand-made for the tests");
  EXPECT_EQ(in->candidates[0][0][0], (Input{kSepConv3x3, 0}));
  EXPECT_EQ(in->candidates[1][3][3], (Input{kDilConv3x3, 0}));
  // Without "source", with whitespace anywhere; k = 14 with all of node 2's pairs.
  NodeLists all(4);
  for (int j = 0; j < kSteps; ++j)
    for (int from = 0; from < 2; ++from)
      for (int op = 1; op < kOps; ++op)
        all[j].push_back(std::string(kOpNames[op]) + "~" + std::to_string(from));
  const std::string text = "  {\n\"k\" :14 , \"reduce\": " + json_list(all) +
                           ", \"normal\":" + json_list(all) +
                           ", \"format\":\"hypernas-intensive-1\"}  \n";
  const Intensive big = parse_intensive(text, "inline");
  EXPECT_EQ(big.k, 14);
  EXPECT_TRUE(big.source.empty());
  EXPECT_EQ(parse_intensive(intensive_to_json(big), "again").candidates, big.candidates);
  // No option, no intensive space.
  EXPECT_EQ(space().intensive_space(), nullptr);
}

TEST_F(DartsRelaxation, MalformedIntensiveFilesNameTheFileAndTheLocation) {
  auto expect_error = [](const std::string& what, const std::vector<std::string>& parts) {
    for (const std::string& part : parts)
      EXPECT_NE(what.find(part), std::string::npos) << "'" << part << "' not in: " << what;
  };
  const std::string bad = (dir_ / "bad.json").string();
  {
    SCOPED_TRACE("missing file");
    const std::string missing = (dir_ / "missing.json").string();
    try {
      space(3, false, missing);
      ADD_FAILURE() << "no error";
    } catch (const hypernas::Error& e) {
      expect_error(e.what(), {missing, "does not exist", "option 'intensive'"});
    }
  }
  {
    SCOPED_TRACE("directory");
    try {
      space(3, false, dir_.string());
      ADD_FAILURE() << "no error";
    } catch (const hypernas::Error& e) {
      expect_error(e.what(), {dir_.string(), "directory"});
    }
  }
  NodeLists normal = kNormal;
  NodeLists reduce = kReduce;
  expect_error(file_error("{\"format\": \"hypernas-intensive-1\",\n \"k\": 4,"),
               {bad, "not valid JSON", "line 2"});
  expect_error(file_error("[1, 2]"), {bad, "expected a JSON object", "[1,2]"});
  expect_error(file_error(intensive_text(4, normal, reduce, ", \"extra\": 1")),
               {bad, "unknown key \"extra\""});
  expect_error(file_error(intensive_text(4, normal, reduce, ", \"k\": 4")),
               {bad, "\"k\" is given twice"});
  expect_error(file_error("{\"format\": \"hypernas-intensive-1\", \"k\": 4, \"normal\": " +
                          json_list(normal) + "}"),
               {bad, "missing key \"reduce\""});
  {
    std::string text = intensive_text(4, normal, reduce);
    text.replace(text.find("intensive-1"), 11, "intensive-9");
    expect_error(file_error(text), {bad, "format", "\"hypernas-intensive-9\""});
  }
  expect_error(file_error(intensive_text(
                   1,
                   {{"sep_conv_3x3~0"}, {"sep_conv_3x3~0"}, {"sep_conv_3x3~0"}, {"sep_conv_3x3~0"}},
                   reduce)),
               {bad, "k: expected an integer in [2, 14]", "found 1"});
  {
    std::string text = intensive_text(4, normal, reduce);
    text.replace(text.find("\"k\": 4"), 6, "\"k\": 4.5");
    expect_error(file_error(text), {bad, "k: ", "4.5"});
  }
  {
    NodeLists three = normal;
    three.pop_back();
    expect_error(file_error(intensive_text(4, three, reduce)),
                 {bad, "normal: expected a list of 4 lists", "a list of 3"});
  }
  {
    SCOPED_TRACE("wrong k count");
    NodeLists n = normal;
    n[1].pop_back();
    expect_error(file_error(intensive_text(4, n, reduce)),
                 {bad, "normal[1]: node 3 lists 3 candidate(s); expected k = 4"});
  }
  {
    SCOPED_TRACE("unknown op");
    NodeLists n = normal;
    n[1][2] = "conv_9x9~1";
    expect_error(file_error(intensive_text(4, n, reduce)),
                 {bad, "normal[1][2]", "\"conv_9x9~1\"", "unknown op 'conv_9x9'"});
  }
  {
    SCOPED_TRACE("none");
    NodeLists r = reduce;
    r[3][0] = "none~4";
    expect_error(file_error(intensive_text(4, normal, r)),
                 {bad, "reduce[3][0]", "\"none~4\"", "'none' is not a candidate"});
  }
  {
    SCOPED_TRACE("source out of range");
    NodeLists n = normal;
    n[0][1] = "skip_connect~2";
    expect_error(file_error(intensive_text(4, n, reduce)),
                 {bad, "normal[0][1]", "\"skip_connect~2\"", "node 2 reads nodes 0..1, not 2"});
  }
  {
    SCOPED_TRACE("no source");
    NodeLists n = normal;
    n[2][3] = "sep_conv_3x3";
    expect_error(file_error(intensive_text(4, n, reduce)),
                 {bad, "normal[2][3]", "\"sep_conv_3x3\"", "op~source"});
    n[2][3] = "sep_conv_3x3~x";
    expect_error(file_error(intensive_text(4, n, reduce)),
                 {bad, "normal[2][3]", "source 'x' is not a node index"});
  }
  {
    SCOPED_TRACE("duplicate");
    NodeLists r = reduce;
    r[2][3] = r[2][0];
    expect_error(file_error(intensive_text(4, normal, r)),
                 {bad, "reduce[2][3]", "\"skip_connect~2\"", "listed twice for node 4",
                  "reduce[2][0]"});
  }
  {
    SCOPED_TRACE("not a string");
    std::string text = intensive_text(4, normal, reduce);
    text.replace(text.find("\"sep_conv_5x5~2\""), 16, "17");
    expect_error(file_error(text), {bad, "normal[1][0]", "expected a string", "found 17"});
  }
}

}  // namespace
