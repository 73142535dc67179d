// Tests of the continuous relaxation of the built-in `nb201` search space (ABI 1.4:
// Nb201Space::relaxed() / select(), run by the kernel's GraphExecutor::forward_relaxed()).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "plugins/spaces/nb201/nb201.h"
#include "tests/support/same_node.h"
#include "tests/support/shapes.h"

namespace {

using hypernas::ArchGraph;
using hypernas::Architecture;
using hypernas::MixChoice;
using hypernas::Nb201Space;
using hypernas::Options;
using hypernas::Relaxation;
using hypernas::Selection;
using hypernas::WeightMap;
using namespace hypernas::nb201;

const std::string kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

/// 1 cell per stage, 4 channels, 8x8 inputs: 3 cell instances, fast to run.
Nb201Space small_space() {
  Options o;
  o.set("cells_per_stage", std::int64_t{1})
      .set("channels", std::int64_t{4})
      .set("input_size", std::int64_t{8});
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

/// The name of node j of the cell instance `cell` ("s1.c0").
std::string cell_node(const std::string& cell, int j) { return cell + ".n" + std::to_string(j); }

std::map<std::string, std::size_t> by_name(const ArchGraph& g) {
  std::map<std::string, std::size_t> out;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) out[g[v].name] = v;
  return out;
}

std::vector<std::string> in_names(const ArchGraph& g, std::size_t v) {
  std::vector<std::string> out;
  for (auto [it, last] = boost::in_edges(v, g); it != last; ++it)
    out.push_back(g[boost::source(*it, g)].name);
  return out;
}

/// The discrete architecture's weights: the relaxed network's tensors under the discrete
/// names (select().names), for every parameter the executor asks for.
WeightMap discrete_weights(const hypernas::exec::GraphExecutor& executor, const Architecture& arch,
                           const Selection& sel, const WeightMap& relaxed) {
  WeightMap out;
  for (const hypernas::ParamShape& p : executor.parameters(arch)) {
    const auto it = sel.names.find(p.node);
    EXPECT_NE(it, sel.names.end()) << p.node;
    if (it == sel.names.end()) continue;
    const std::string name = it->second + p.name.substr(p.node.size());
    const auto w = relaxed.find(name);
    EXPECT_NE(w, relaxed.end()) << name;
    if (w != relaxed.end()) out[p.name] = w->second;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The relaxed network

TEST(Nb201Relaxation, NetworkHasOneMixPerEdgeAndOp) {
  const Nb201Space space = small_space();
  const Relaxation r = space.relaxed();
  const ArchGraph& g = r.network.graph;
  EXPECT_EQ(r.network.space, "nb201");
  EXPECT_EQ(r.network.text, "relaxed(nb201, N=1, C=4)");
  ASSERT_NO_THROW(hypernas::graph::validate(r.network));
  hypernas::test::expect_consistent_shapes(g, 8);
  ASSERT_EQ(r.blocks.size(), 1u);
  EXPECT_EQ(r.blocks[0].name, space.arch_params()[0].name);
  EXPECT_EQ(r.blocks[0].shape, space.arch_params()[0].shape);

  // 3 cell instances x 6 edges x 4 ops other than none.
  ASSERT_EQ(r.mixes.size(), 3u * kEdges * (kOps - 1));
  const auto index = by_name(g);
  EXPECT_EQ(index.size(), boost::num_vertices(g));  // names are unique
  for (auto [it, last] = boost::edges(g); it != last; ++it)
    EXPECT_LT(boost::source(*it, g), boost::target(*it, g));

  // The mixes the relaxation lists are exactly the graph's mix nodes, in vertex order.
  std::vector<std::string> graph_mixes;
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v)
    if (g[v].op == "mix") graph_mixes.push_back(g[v].name);
  std::vector<std::string> listed;
  for (const MixChoice& m : r.mixes) listed.push_back(m.node);
  EXPECT_EQ(listed, graph_mixes);

  std::set<std::string> branch_nodes;
  for (const MixChoice& m : r.mixes) {
    SCOPED_TRACE(m.node);
    ASSERT_EQ(index.count(m.node), 1u);
    const std::size_t v = index.at(m.node);
    EXPECT_EQ(m.block, 0);
    ASSERT_GE(m.row, 0);
    ASSERT_LT(m.row, kEdges);
    ASSERT_GE(m.col, 1);  // `none` has no branch
    ASSERT_LT(m.col, kOps);
    // s<stage>.c<cell>.n<j>.e<i>.<opname>.mix, j and i those of edge `row`.
    const std::string cell = m.node.substr(0, m.node.find(".n"));
    const std::string node = cell_node(cell, kEdgeTo[m.row]);
    const std::string branch =
        node + ".e" + std::to_string(kEdgeFrom[m.row]) + "." + kOpNames[m.col];
    EXPECT_EQ(m.node, branch + ".mix");
    EXPECT_EQ(m.label, node + " <- " + std::to_string(kEdgeFrom[m.row]) + ": " + kOpNames[m.col]);
    // The mix feeds its cell node, and reads the branch's last node (the source for skip).
    ASSERT_EQ(boost::out_degree(v, g), 1u);
    EXPECT_EQ(g[boost::target(*boost::out_edges(v, g).first, g)].name, node);
    EXPECT_EQ(g[index.at(node)].op, "add");
    EXPECT_EQ(g[index.at(node)].c_out, g[v].c_out);
    const std::vector<std::string> in = in_names(g, v);
    ASSERT_EQ(in.size(), 1u);
    std::vector<std::string> parts;
    for (const std::string& n : m.nodes) parts.push_back(n.substr(branch.size()));
    switch (m.col) {
      case kSkip:
        // No nodes: the mix reads cell node i itself (node 0: the cell's input, outside it).
        EXPECT_TRUE(parts.empty());
        if (kEdgeFrom[m.row] > 0) {
          EXPECT_EQ(in[0], cell_node(cell, kEdgeFrom[m.row]));
        } else {
          EXPECT_NE(in[0].rfind(cell + ".", 0), 0u) << in[0];
        }
        break;
      case kConv1x1:
      case kConv3x3:
        EXPECT_EQ(parts, (std::vector<std::string>{".relu", ".conv", ".bn"}));
        EXPECT_EQ(g[index.at(branch + ".conv")].kernel, m.col == kConv1x1 ? 1 : 3);
        break;
      case kAvgPool3x3:
        EXPECT_EQ(parts, (std::vector<std::string>{".pool"}));
        EXPECT_EQ(g[index.at(branch + ".pool")].op, "avg_pool");
        break;
    }
    if (!m.nodes.empty()) {
      EXPECT_EQ(in[0], m.nodes.back());
    }
    for (std::size_t k = 0; k < m.nodes.size(); ++k) {
      ASSERT_EQ(index.count(m.nodes[k]), 1u) << m.nodes[k];
      EXPECT_LT(index.at(m.nodes[k]), v);
      if (k > 0) {
        EXPECT_LT(index.at(m.nodes[k - 1]), index.at(m.nodes[k]));
      }
      EXPECT_TRUE(branch_nodes.insert(m.nodes[k]).second) << "in two branches: " << m.nodes[k];
    }
  }
  // A label users read.
  EXPECT_EQ(r.mixes[4 * 2 + 2].label, "s1.c0.n2 <- 1: nor_conv_3x3");
}

// Every node of a discrete graph is in the relaxed network under its select() name, with the
// same op and attributes; the nodes around the cells keep their names.
TEST(Nb201Relaxation, SelectNamesEveryNodeOfTheDiscreteGraph) {
  const Nb201Space space = small_space();
  const Relaxation r = space.relaxed();
  const auto relaxed = by_name(r.network.graph);
  hypernas::Rng rng(5);
  std::vector<Architecture> archs = {space.parse(kExample), space.at(0), space.at(kCells - 1)};
  for (int i = 0; i < 4; ++i) archs.push_back(space.sample(rng));
  for (const Architecture& arch : archs) {
    SCOPED_TRACE(arch.text);
    const Selection sel = space.select(arch);
    const ArchGraph& g = arch.graph;
    ASSERT_EQ(sel.names.size(), boost::num_vertices(g));
    std::set<std::string> targets;
    for (std::size_t v = 0; v < boost::num_vertices(g); ++v) {
      const hypernas::OpNode& d = g[v];
      ASSERT_EQ(sel.names.count(d.name), 1u) << d.name;
      const std::string& name = sel.names.at(d.name);
      EXPECT_TRUE(targets.insert(name).second) << name;
      ASSERT_EQ(relaxed.count(name), 1u) << d.name << " -> " << name;
      const hypernas::OpNode& n = r.network.graph[relaxed.at(name)];
      hypernas::test::expect_same_node(n, d, name);
      // Op nodes of an edge gain the op's name; everything else maps to itself.
      if (d.name.find(".e") == std::string::npos) {
        EXPECT_EQ(name, d.name);
      } else {
        EXPECT_NE(name, d.name);
      }
    }
  }
  const Selection ex = space.select(space.parse(kExample));
  EXPECT_EQ(ex.names.at("s1.c0.n2.e1.pool"), "s1.c0.n2.e1.avg_pool_3x3.pool");
  EXPECT_EQ(ex.names.at("s2.c0.n3.e1.conv"), "s2.c0.n3.e1.nor_conv_3x3.conv");
  EXPECT_EQ(ex.names.at("r1.shortcut.conv"), "r1.shortcut.conv");
  EXPECT_EQ(ex.names.at("s3.c0.n3"), "s3.c0.n3");
  EXPECT_EQ(ex.names.at("head.linear"), "head.linear");
}

TEST(Nb201Relaxation, SelectProbsAreOneHotPerEdge) {
  const Nb201Space space = small_space();
  hypernas::Rng rng(9);
  for (int i = 0; i < 5; ++i) {
    const Architecture arch = space.sample(rng);
    const Selection sel = space.select(arch);
    ASSERT_EQ(sel.probs.size(), 1u);
    const at::Tensor& p = sel.probs[0];
    EXPECT_EQ(p.scalar_type(), at::kFloat);
    EXPECT_TRUE(p.device().is_cpu());
    EXPECT_EQ(p.sizes(), (std::vector<std::int64_t>{kEdges, kOps}));
    EXPECT_TRUE(p.sum(1).eq(1).all().item<bool>());
    const Cell cell = parse_cell(arch.text);
    for (int e = 0; e < kEdges; ++e) EXPECT_EQ(p[e][cell.ops[e]].item<float>(), 1.0f);
  }
  // A `none` edge has its 1 in column 0.
  const Selection none = space.select(space.at(0));
  EXPECT_TRUE(none.probs[0].select(1, 0).eq(1).all().item<bool>());
}

TEST(Nb201Relaxation, SelectRefusesAnotherSpacesArchitecture) {
  const Nb201Space space = small_space();
  Architecture other = space.parse(kExample);
  other.space = "darts";
  try {
    space.select(other);
    ADD_FAILURE() << "an architecture of another space was accepted";
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("darts"), std::string::npos) << e.what();
  }
  // No intensive space for nb201 (the SDK's default refuses).
  EXPECT_THROW(space.intensive({at::zeros({kEdges, kOps})}, 2), hypernas::Error);
}

// ---------------------------------------------------------------------------------------------
// Running it

// One-hot probabilities make the relaxed network the discrete one: same logits with the same
// weight tensors (renamed through select().names).
TEST(Nb201Relaxation, OneHotRelaxedForwardEqualsTheDiscreteNetwork) {
  const Nb201Space space = small_space();
  const Relaxation r = space.relaxed();
  const hypernas::exec::GraphExecutor executor;
  const WeightMap relaxed = executor.init_weights(r.network, 3, at::Device(at::kCPU));
  at::manual_seed(0);
  const at::Tensor images = at::randn({4, 3, 8, 8});
  hypernas::Rng rng(17);
  std::vector<Architecture> archs = {space.parse(kExample), space.at(0), space.at(kCells - 1),
                                     space.parse(cell_to_string(Cell::uniform(kSkip)))};
  for (int i = 0; i < 4; ++i) archs.push_back(space.sample(rng));
  for (const Architecture& arch : archs) {
    SCOPED_TRACE(arch.text);
    const Selection sel = space.select(arch);
    const WeightMap weights = discrete_weights(executor, arch, sel, relaxed);
    const std::vector<at::Tensor> want = executor.forward(arch, weights, images);
    const std::vector<at::Tensor> got = executor.forward_relaxed(r, relaxed, sel.probs, images);
    ASSERT_EQ(got.size(), want.size());
    ASSERT_EQ(got[0].sizes(), want[0].sizes());
    EXPECT_TRUE(at::allclose(got[0], want[0], /*rtol=*/1e-5, /*atol=*/1e-6))
        << "max |diff| " << got[0].sub(want[0]).abs().max().item<double>();
  }
}

// With softmax probabilities every branch runs and the logits are differentiable in α (the
// `none` column too: it takes part in the softmax).
TEST(Nb201Relaxation, SoftmaxRelaxedForwardIsDifferentiableInAlpha) {
  const Nb201Space space = small_space();
  const Relaxation r = space.relaxed();
  const hypernas::exec::GraphExecutor executor;
  const WeightMap weights = executor.init_weights(r.network, 4, at::Device(at::kCPU));
  at::manual_seed(1);
  const at::Tensor images = at::randn({4, 3, 8, 8});
  const at::Tensor alpha = at::randn({kEdges, kOps}).mul_(0.5).requires_grad_(true);
  const std::vector<at::Tensor> logits =
      executor.forward_relaxed(r, weights, {at::softmax(alpha, -1)}, images);
  ASSERT_EQ(logits.size(), 1u);
  EXPECT_EQ(logits[0].sizes(), (std::vector<std::int64_t>{4, 10}));
  const at::Tensor project = at::randn({4, 10});
  logits[0].mul(project).sum().backward();
  ASSERT_TRUE(alpha.grad().defined());
  EXPECT_TRUE(alpha.grad().isfinite().all().item<bool>());
  for (int e = 0; e < kEdges; ++e)
    for (int k = 0; k < kOps; ++k)
      EXPECT_NE(alpha.grad()[e][k].item<float>(), 0.0f) << "edge " << e << ", op " << k;
  // And it is not any one of the discrete networks: it differs from the argmax cell's logits.
  const Selection sel = space.select(space.discretize({alpha.detach()}, 1));
  const at::Tensor argmax = executor.forward_relaxed(r, weights, sel.probs, images)[0];
  EXPECT_FALSE(at::allclose(argmax, logits[0].detach()));
}

}  // namespace
