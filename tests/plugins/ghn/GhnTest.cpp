// Tests of the `ghn` surrogate (plugins/surrogates/ghn): node types, segments and the
// propagation schedule, the CPU engine against the ATen propagation, weight shapes against the
// kernel's graph executor (nb201, darts and ghn spaces), state blobs, and a short fit on tiny
// synthetic data. Timings are in bench/ghn_timing.cpp.

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <hypernas/plugin.h>

#include "kernel/core/context.h"
#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "plugins/spaces/darts/darts.h"
#include "plugins/spaces/ghn/ghn.h"
#include "plugins/spaces/nb201/nb201.h"
#include "plugins/surrogates/ghn/ghn.h"
#include "tests/plugins/ghn/brightness_data.h"
#include "tests/plugins/ghn/ghn_support.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in ghn_plugin.cpp
}

namespace {

using namespace hypernas;
using ghn::Propagation;

// ---------------------------------------------------------------------------------------------
// Fixtures: spaces, a context, a tiny synthetic dataset

Nb201Space nb201_space(std::int64_t n = 5, std::int64_t c = 16, std::int64_t input_channels = 3,
                       std::int64_t input_size = 32, std::int64_t classes = 10) {
  Options o;
  o.set("cells_per_stage", n).set("channels", c).set("input_channels", input_channels);
  o.set("input_size", input_size).set("classes", classes);
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

DartsSpace darts_space(bool macro) {
  Options o;
  o.set("layers", std::int64_t{5}).set("channels", std::int64_t{16}).set("macro", macro);
  return DartsSpace(DartsSpace::params().resolve(o, "darts"));
}

using test::BrightnessData;
using test::ghn_gradients;
using test::ghn_options;
using test::TestContext;

/// The kernel's graph executor, for the contexts of these tests.
const Executor* graph_executor() {
  static const exec::GraphExecutor exec;
  return &exec;
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
    EXPECT_EQ(it->second.scalar_type(), at::kFloat) << p.name;
  }
}

using hypernas::test::error_of;

const char* kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

// ---------------------------------------------------------------------------------------------
// Plugin surface

TEST(Ghn, DescriptorAndOptions) {
  const PluginDescriptor* d = hypernas_plugin_export::descriptor();
  EXPECT_EQ(std::string(d->name), "ghn");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(PluginKind::Surrogate));
  const Options o = ghn_options();
  EXPECT_EQ(o.get_int("hidden"), 32);
  EXPECT_EQ(o.get_int("hyper_hidden"), 64);
  EXPECT_EQ(o.get_int("steps"), 5);
  EXPECT_EQ(o.get_string("propagation"), "forward-backward");
  EXPECT_TRUE(o.get_bool("stacked"));
  EXPECT_DOUBLE_EQ(o.get_real("lr"), 1e-3);
  EXPECT_EQ(o.get_int("meta_batch"), 1);
  // The tuned defaults (docs/benchmarks.md): fan-in normalisation and ppuda's recipe.
  EXPECT_TRUE(o.get_bool("fan_in_norm"));
  EXPECT_EQ(o.get_real("grad_clip"), 5.0);
  EXPECT_EQ(o.get_real("weight_decay"), 1e-5);
  EXPECT_EQ(o.get_string("lr_schedule"), "cosine");
  EXPECT_EQ(o.get_string("handoff"), "input");
  EXPECT_EQ(o.get_int("finetune_steps"), 0);
  EXPECT_FALSE(o.get_bool("layer_norm"));
  EXPECT_FALSE(o.get_bool("virtual_edges"));
  EXPECT_EQ(o.get_int("max_shortest_path"), 50);
  EXPECT_EQ(o.get_int("max_channels"), 64);
  EXPECT_EQ(o.get_int("max_kernel"), 3);
  EXPECT_THROW(ghn_options({{"propagation", std::string("sideways")}}), UsageError);

  std::string error;
  std::unique_ptr<Plugin> p(d->create(o, &error));
  ASSERT_NE(p, nullptr) << error;
  auto* s = dynamic_cast<Surrogate*>(p.get());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->capabilities(),
            std::uint32_t{kTrainable | kGeneratesWeights | kGraphConditioned | kMultiExit |
                          kNeedsData | kReadsEvalBatch | kReadsEvalImages});
  EXPECT_EQ(std::string(d->version), "1.4.0");
  EXPECT_FALSE(o.get_bool("scale_embed"));
  EXPECT_EQ(o.get_string("exit_weights"), "");
  // hidden must hold the one-hot node type (18 types since `resample`)
  EXPECT_THROW(ghn_options({{"hidden", std::int64_t{8}}}), UsageError);
  EXPECT_THROW(ghn_options({{"hidden", std::int64_t{17}}}), UsageError);
  EXPECT_NO_THROW(ghn_options({{"hidden", std::int64_t{18}}}));
}

// ---------------------------------------------------------------------------------------------
// Graph analysis

TEST(Ghn, NodeTypes) {
  const auto& types = ghn::node_types();
  EXPECT_EQ(types.size(), 18u);
  // `resample` was appended: the earlier indices (and states trained with them) are unchanged.
  EXPECT_EQ(types[16], "linear");
  EXPECT_EQ(types[17], "resample");
  std::set<std::string> distinct(types.begin(), types.end());
  EXPECT_EQ(distinct.size(), types.size());
  for (const char* op : kPrimitiveOps) {
    OpNode n;
    n.op = op;
    n.kernel = 3;
    n.name = op;
    if (std::string(op) == "mix") {  // relaxed networks only (ABI 1.4): refused by name
      EXPECT_THROW(
          {
            try {
              ghn::node_type(n);
            } catch (const Error& e) {
              EXPECT_NE(std::string(e.what()).find("relaxed network"), std::string::npos);
              throw;
            }
          },
          Error);
      continue;
    }
    const std::string name = op;
    if (name == "slice" || name == "mul" || name == "tanh" || name == "sigmoid") {
      // SMASH's primitives (ABI 1.5) have no GHN node type: refused, naming the node, the op
      // and what the GHN embeds.
      try {
        ghn::node_type(n);
        ADD_FAILURE() << op << " was given a node type";
      } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(cat("node '", op, "' has op '", op, "'")), std::string::npos) << msg;
        EXPECT_NE(msg.find("which the GHN has no node type for"), std::string::npos) << msg;
      }
      continue;
    }
    const int t = ghn::node_type(n);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, static_cast<int>(types.size()));
    if (std::string(op) != "conv") {
      EXPECT_EQ(types[t], op);
    }
  }
  OpNode conv;
  conv.op = "conv";
  conv.kernel = 1;
  EXPECT_EQ(types[ghn::node_type(conv)], "conv1x1");
  conv.kernel = 5;
  EXPECT_EQ(types[ghn::node_type(conv)], "conv5x5");
  conv.kernel = 7;
  EXPECT_EQ(types[ghn::node_type(conv)], "conv");
  conv.kernel = 3;
  conv.groups = 16;
  EXPECT_EQ(types[ghn::node_type(conv)], "dw_conv3x3");
  conv.dilation = 2;
  EXPECT_EQ(types[ghn::node_type(conv)], "dil_conv");
  OpNode odd;
  odd.op = "sep_conv_3x3";
  odd.name = "s0.c1.odd";
  const std::string e = error_of([&] { ghn::node_type(odd); });
  EXPECT_NE(e.find("s0.c1.odd"), std::string::npos) << e;
  EXPECT_NE(e.find("sep_conv_3x3"), std::string::npos) << e;
}

/// The architecture's edges (u, v) with u outside `seg` and v inside, and those with both
/// inside, each sorted.
std::pair<std::vector<std::pair<std::int64_t, std::int64_t>>,
          std::vector<std::pair<std::int64_t, std::int64_t>>>
split_edges(const ArchGraph& g, const ghn::Segment& seg) {
  std::vector<std::pair<std::int64_t, std::int64_t>> outside, inside;
  for (std::int64_t v : seg.nodes)
    for (auto [it, end] = boost::in_edges(v, g); it != end; ++it) {
      const auto u = static_cast<std::int64_t>(boost::source(*it, g));
      const bool in = std::binary_search(seg.nodes.begin(), seg.nodes.end(), u);
      (in ? inside : outside).emplace_back(u, v);
    }
  std::sort(outside.begin(), outside.end());
  std::sort(inside.begin(), inside.end());
  return {outside, inside};
}

TEST(Ghn, SegmentsFollowModules) {
  const Nb201Space space = nb201_space(2);
  const Architecture a = space.parse(kExample);
  const auto& g = a.graph;
  const auto nv = static_cast<std::int64_t>(boost::num_vertices(g));
  const auto flat = ghn::split_segments(g, false);
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0].nodes.size(), boost::num_vertices(g));
  EXPECT_EQ(flat[0].input, -1);  // not stacked: no input node, every edge as it is
  EXPECT_EQ(flat[0].edges.size(), boost::num_edges(g));
  EXPECT_EQ(ghn::ghn_node_count(g, flat), nv);

  const auto segs = ghn::split_segments(g, true);
  // stem, 2 cells, r1, 2 cells, r2, 2 cells, head
  ASSERT_EQ(segs.size(), 10u);
  EXPECT_EQ(ghn::ghn_node_count(g, segs), nv + 9);  // an input node for every segment but the stem
  std::vector<std::int64_t> modules;
  for (const auto& s : segs) modules.push_back(s.module);
  EXPECT_EQ(modules, (std::vector<std::int64_t>{-1, 0, 1, -1, 2, 3, -1, 4, 5, -1}));
  std::set<std::int64_t> all;
  std::size_t edges = 0;
  for (std::size_t s = 0; s < segs.size(); ++s) {
    const ghn::Segment& seg = segs[s];
    for (std::int64_t v : seg.nodes) {
      EXPECT_TRUE(all.insert(v).second);
      EXPECT_EQ(g[v].module, seg.module);
    }
    // Input nodes are numbered after the vertices, in segment order.
    EXPECT_EQ(seg.input, s == 0 ? -1 : nv + static_cast<std::int64_t>(s) - 1);
    EXPECT_EQ(seg.ghn_nodes().size(), seg.nodes.size() + (s == 0 ? 0 : 1));
    // Both directions: every edge entering the segment from outside appears as an edge from
    // its input node to the same target, and every edge from the input node stands for one
    // entering edge; the edges inside are the architecture's.
    const auto [outside, inside] = split_edges(g, seg);
    std::vector<std::int64_t> want_targets, got_targets;
    for (const auto& [u, v] : outside) want_targets.push_back(v);
    std::vector<std::pair<std::int64_t, std::int64_t>> got_inside;
    for (const auto& [u, v] : seg.edges) {
      if (u == seg.input) got_targets.push_back(v);
      else got_inside.emplace_back(u, v);
      EXPECT_TRUE(std::binary_search(seg.nodes.begin(), seg.nodes.end(), v)) << v;
    }
    std::sort(got_targets.begin(), got_targets.end());
    std::sort(got_inside.begin(), got_inside.end());
    EXPECT_EQ(got_targets, want_targets) << "segment " << s;
    EXPECT_EQ(got_inside, inside) << "segment " << s;
    EXPECT_EQ(s == 0, outside.empty()) << "segment " << s;
    edges += seg.edges.size();
  }
  EXPECT_EQ(all.size(), boost::num_vertices(g));
  EXPECT_EQ(edges, boost::num_edges(g));  // every edge kept, the entering ones re-rooted
  // Cell s1.c1 reads cell s1.c0's output (its node 0, vertex s1.c0.n3) through the relus of
  // the two convs on edges 0->1 and 0->2 and through the skip 0->3 (node n3 itself, which also
  // has in-neighbours inside the cell). Its input node feeds exactly those three nodes.
  std::set<std::string> reads_input, reads_previous;
  for (const auto& [u, v] : segs[2].edges)
    if (u == segs[2].input) reads_input.insert(g[v].name);
  for (std::int64_t v : segs[2].nodes)
    for (auto [it, end] = boost::in_edges(v, g); it != end; ++it)
      if (g[boost::source(*it, g)].name == "s1.c0.n3") reads_previous.insert(g[v].name);
  const std::set<std::string> want = {"s1.c1.n1.e0.relu", "s1.c1.n2.e0.relu", "s1.c1.n3"};
  EXPECT_EQ(reads_input, want);
  EXPECT_EQ(reads_previous, want);
}

/// Checks the schedule of one graph: per segment and phase, each node once per direction, and
/// every edge of the segment respected (forward: source before target; backward: reverse).
void check_schedule(const ArchGraph& g, bool stacked, std::int64_t steps) {
  const auto segs = ghn::split_segments(g, stacked);
  const auto order = ghn::propagation_order(g, Propagation::ForwardBackward, steps, stacked);
  // Steps must come segment by segment, phase by phase, forward before backward.
  for (std::size_t i = 1; i < order.size(); ++i) {
    const auto& a = order[i - 1];
    const auto& b = order[i];
    EXPECT_TRUE(std::make_tuple(a.segment, a.phase, a.backward) <=
                std::make_tuple(b.segment, b.phase, b.backward));
  }
  for (std::size_t s = 0; s < segs.size(); ++s) {
    for (std::int64_t t = 0; t < steps; ++t) {
      for (bool backward : {false, true}) {
        std::map<std::int64_t, std::size_t> when;  // node -> position of its update
        for (std::size_t i = 0; i < order.size(); ++i) {
          const auto& st = order[i];
          if (st.segment != static_cast<std::int64_t>(s) || st.phase != t ||
              st.backward != backward)
            continue;
          for (std::int64_t v : st.nodes) ASSERT_TRUE(when.emplace(v, i).second) << v;
        }
        ASSERT_EQ(when.size(), segs[s].ghn_nodes().size());  // the input node too
        for (const auto& [u, v] : segs[s].edges) {
          if (!backward) {
            EXPECT_LT(when[u], when[v]) << u << " -> " << v;
          } else {
            EXPECT_LT(when[v], when[u]) << u << " -> " << v;
          }
        }
      }
    }
  }
}

TEST(Ghn, ForwardBackwardOrderRespectsEdges) {
  const Nb201Space space = nb201_space(2);
  Rng rng(3);
  for (int i = 0; i < 5; ++i) {
    const Architecture a = i == 0 ? space.parse(kExample) : space.sample(rng);
    check_schedule(a.graph, true, 2);
    check_schedule(a.graph, false, 2);
  }
  const DartsSpace darts = darts_space(false);
  const Architecture d = darts.sample(rng);
  check_schedule(d.graph, true, 1);
  check_schedule(d.graph, false, 1);
}

TEST(Ghn, LevelGroupsOnAChain) {
  // input -> conv -> bn -> relu, and input -> pool -> add <- relu: levels by longest path.
  ArchGraph g;
  auto node = [&g](const char* op, const char* name) {
    OpNode n;
    n.op = op;
    n.name = name;
    n.kernel = 3;
    return boost::add_vertex(n, g);
  };
  auto in = node("input", "in"), conv = node("conv", "conv"), bn = node("bn", "bn");
  auto relu = node("relu", "relu"), pool = node("avg_pool", "pool"), add = node("add", "add");
  boost::add_edge(in, conv, g);
  boost::add_edge(conv, bn, g);
  boost::add_edge(bn, relu, g);
  boost::add_edge(in, pool, g);
  boost::add_edge(pool, add, g);
  boost::add_edge(relu, add, g);
  const auto segs = ghn::split_segments(g, true);
  ASSERT_EQ(segs.size(), 1u);
  const auto lv = ghn::segment_levels(g, segs[0]);
  using V = std::vector<std::vector<std::int64_t>>;
  EXPECT_EQ(lv.forward, (V{{0}, {1, 4}, {2}, {3}, {5}}));
  EXPECT_EQ(lv.backward, (V{{5}, {3, 4}, {2}, {1}, {0}}));
  const auto one = ghn::segment_levels(g, segs[0], true);
  EXPECT_EQ(one.forward, (V{{0}, {1}, {2}, {3}, {4}, {5}}));
  EXPECT_EQ(one.backward, (V{{5}, {4}, {3}, {2}, {1}, {0}}));

  const auto fb = ghn::propagation_order(g, Propagation::ForwardBackward, 2, true);
  ASSERT_EQ(fb.size(), 2u * (5 + 5));
  EXPECT_EQ(fb[0].nodes, (std::vector<std::int64_t>{0}));
  EXPECT_FALSE(fb[4].backward);
  EXPECT_TRUE(fb[5].backward);
  EXPECT_EQ(fb[10].phase, 1);
  const auto sync = ghn::propagation_order(g, Propagation::Synchronous, 2, true);
  ASSERT_EQ(sync.size(), 4u);
  for (std::size_t i = 0; i < sync.size(); ++i) {
    EXPECT_EQ(sync[i].nodes.size(), 6u);
    EXPECT_EQ(sync[i].backward, i % 2 == 1);
    EXPECT_EQ(sync[i].phase, static_cast<std::int64_t>(i / 2));
  }

  const auto ve = ghn::virtual_edges(g, segs[0], 50);
  // in reaches conv(1) bn(2) relu(3) pool(1) add(2); conv reaches bn relu add; ...
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> d;
  for (const auto& e : ve) d[{e.from, e.to}] = e.distance;
  EXPECT_EQ(d.size(), 5u + 3u + 2u + 1u + 1u);
  EXPECT_EQ((d[{0, 5}]), 2);
  EXPECT_EQ((d[{1, 5}]), 3);
  EXPECT_EQ((d[{0, 3}]), 3);
  EXPECT_EQ(ghn::virtual_edges(g, segs[0], 1).size(), 6u);  // the real edges
}

// ---------------------------------------------------------------------------------------------
// The model

TEST(Ghn, FusedGruEqualsGruCell) {
  at::manual_seed(3);
  const std::int64_t h = 32;
  const at::Tensor m = at::randn({7, h}), hx = at::randn({7, h}).tanh();
  const at::Tensor w_ih = at::randn({3 * h, h}) * 0.2, w_hh = at::randn({3 * h, h}) * 0.2;
  const at::Tensor b_ih = at::randn({3 * h}) * 0.2, b_hh = at::randn({3 * h}) * 0.2;
  const at::Tensor ours = ghn::gru_update(m, hx, w_ih, w_hh, b_ih, b_hh);
  const at::Tensor ref = at::gru_cell(m, hx, w_ih, w_hh, b_ih, b_hh);
  EXPECT_TRUE(at::allclose(ours, ref, 1e-5, 1e-6)) << (ours - ref).abs().max().item<double>();
}

TEST(Ghn, LevelBatchingEqualsOneNodeAtATime) {
  const Nb201Space space = nb201_space(2);
  const Architecture a = space.parse(kExample);
  for (bool stacked : {true, false}) {
    for (bool extras : {false, true}) {
      GhnSurrogate ghn(ghn_options({{"stacked", stacked},
                                    {"steps", std::int64_t{2}},
                                    {"virtual_edges", extras},
                                    {"layer_norm", extras}}));
      for (bool aten : {false, true}) {
        ghn.use_aten_propagation(aten);
        const at::Tensor batched = ghn.node_embeddings(a, false);
        const at::Tensor single = ghn.node_embeddings(a, true);
        ASSERT_EQ(batched.sizes().vec(),
                  (std::vector<std::int64_t>{
                      static_cast<std::int64_t>(boost::num_vertices(a.graph)), 32}));
        EXPECT_TRUE(at::allclose(batched, single, 1e-5, 1e-6))
            << "stacked " << stacked << " extras " << extras << " aten " << aten << ": max diff "
            << (batched - single).abs().max().item<double>();
      }
    }
  }
}

TEST(Ghn, CpuEngineEqualsAtenPropagation) {
  // The CPU engine (plain loops, hand-written backward) against the same propagation as
  // ATen ops with autograd: embeddings and every parameter's gradient, for each scheme.
  const Nb201Space space = nb201_space(2);
  const Architecture a = space.parse(kExample), b = space.at(4321);
  const std::vector<std::map<std::string, Value>> variants = {
      {},
      {{"stacked", false}},
      {{"propagation", std::string("synchronous")}},
      {{"virtual_edges", true}, {"layer_norm", true}, {"max_shortest_path", std::int64_t{3}}},
      {{"propagation", std::string("synchronous")}, {"virtual_edges", true}, {"stacked", false}},
      {{"handoff", std::string("all")}},
      {{"handoff", std::string("all")}, {"propagation", std::string("synchronous")}},
      {{"shape_embed", true}},
      {{"prune", true}},
      {{"shape_embed", true}, {"prune", true}, {"propagation", std::string("synchronous")}},
      {{"shape_embed", true}, {"handoff", std::string("all")}, {"virtual_edges", true}},
      {{"scale_embed", true}},
      {{"scale_embed", true}, {"shape_embed", true}, {"prune", true}},
  };
  test::expect_cpu_engine_equals_aten(variants, a, b);
}

TEST(Ghn, ShapeEmbeddingsAreLearnedAndTellStagesApart) {
  // shape_key: channels as 1 + floor(log2 c), kernel and stride as they are (clamped).
  OpNode conv;
  conv.op = "conv";
  conv.c_out = 16;
  conv.c_in = 8;
  conv.kernel = 3;
  conv.stride = 2;
  EXPECT_EQ(ghn::shape_key(conv), (std::array<std::int64_t, 4>{5, 4, 3, 2}));
  OpNode add;
  add.op = "add";
  add.c_out = 100000;
  EXPECT_EQ(ghn::shape_key(add), (std::array<std::int64_t, 4>{15, 0, 0, 1}));
  // Unstacked, the same op in cells of different stages (8, 16, 32 channels) gets the same
  // embedding without shape embeddings, different ones with them.
  const Nb201Space space = nb201_space(1, 8);
  const Architecture a = space.parse(kExample);
  std::map<std::string, std::int64_t> id;
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(a.graph)); ++v)
    id[a.graph[v].name] = v;
  auto stage_gap = [&](bool shape_embed) {
    GhnSurrogate ghn(ghn_options(
        {{"stacked", false}, {"shape_embed", shape_embed}, {"steps", std::int64_t{0}}}));
    const at::Tensor e = ghn.node_embeddings(a);
    return (e[id.at("s1.c0.n1.e0.conv")] - e[id.at("s3.c0.n1.e0.conv")]).abs().max().item<double>();
  };
  EXPECT_EQ(stage_gap(false), 0.0);
  EXPECT_GT(stage_gap(true), 1e-3);
  // The tables are parameters, they get gradients, and they are part of the model's options
  // (a state saved with them does not load into a GHN without them).
  GhnSurrogate with(ghn_options({{"shape_embed", true}}));
  const auto grads = ghn_gradients(with, {&a});
  for (const char* table : {"shape.c_out", "shape.c_in", "shape.kernel", "shape.stride"}) {
    ASSERT_TRUE(grads.count(table)) << table;
    EXPECT_GT(grads.at(table).abs().sum().item<double>(), 0.0) << table;
  }
  GhnSurrogate without(ghn_options());
  const std::string e = error_of([&] { without.load_state(with.save_state()); });
  EXPECT_NE(e.find("shape_embed"), std::string::npos) << e;
}

TEST(Ghn, PruneFoldsHopsAndDropsDeadBranches) {
  const Nb201Space space = nb201_space(1, 8);
  // Cell node 1 reads a conv from node 0 but feeds nothing (edges 1->2 and 1->3 are none):
  // that conv branch is dead. Node 2 has no inputs but feeds node 3 by a skip: live.
  const Architecture a =
      space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|skip_connect~2|");
  const ArchGraph& g = a.graph;
  const ghn::GraphView view = ghn::prune_graph(g);
  const std::int64_t n = static_cast<std::int64_t>(boost::num_vertices(g));
  ASSERT_EQ(static_cast<std::int64_t>(view.vertex_of.size()), n);
  std::map<std::string, std::int64_t> id;
  for (std::int64_t v = 0; v < n; ++v) id[g[v].name] = v;
  auto node = [&](const std::string& name) { return view.vertex_of.at(id.at(name)); };
  // relu -> conv -> bn of one op is one node, the conv's.
  for (const char* cell : {"s1.c0", "s2.c0", "s3.c0"}) {
    const std::string e = cat(cell, ".n1.e0.");
    EXPECT_EQ(node(e + "relu"), node(e + "conv")) << e;
    EXPECT_EQ(node(e + "bn"), node(e + "conv")) << e;
    EXPECT_EQ(view.graph[node(e + "conv")].op, "conv") << e;
    // Dead: the branch into node 1, and node 1 itself, keep no edge.
    for (const std::string& v : {e + "conv", cat(cell, ".n1")}) {
      EXPECT_EQ(boost::in_degree(node(v), view.graph), 0u) << v;
      EXPECT_EQ(boost::out_degree(node(v), view.graph), 0u) << v;
    }
    // Live: node 2 (no inputs) feeds node 3, which reads the pool from the cell input too.
    EXPECT_EQ(boost::in_degree(node(cat(cell, ".n3")), view.graph), 2u) << cell;
  }
  // Every vertex maps to a vertex of the same module; the simplified graph is topological and
  // every node of it is a kept vertex; no edge joins a node to itself.
  for (std::int64_t v = 0; v < n; ++v) {
    ASSERT_GE(view.vertex_of[v], 0);
    ASSERT_LT(view.vertex_of[v], static_cast<std::int64_t>(boost::num_vertices(view.graph)));
    EXPECT_EQ(view.graph[view.vertex_of[v]].module, g[v].module) << g[v].name;
  }
  for (auto [it, end] = boost::edges(view.graph); it != end; ++it)
    EXPECT_LT(boost::source(*it, view.graph), boost::target(*it, view.graph));
  // On whole spaces: the simplified graphs propagate (stacked segments need topological order)
  // and every parameter is generated with the executor's shapes.
  TestContext ctx(1, graph_executor());
  const exec::GraphExecutor exec;
  GhnSurrogate ghn(ghn_options({{"prune", true}, {"shape_embed", true}}));
  Rng rng(3);
  for (int i = 0; i < 5; ++i) {
    const Architecture s = space.sample(rng);
    expect_matches(ghn.generate(ctx, s, space), exec.parameters(s), s.text);
  }
  for (bool macro : {false, true}) {
    const DartsSpace darts = darts_space(macro);
    const Architecture d = darts.sample(rng);
    const ghn::GraphView dv = ghn::prune_graph(d.graph);
    EXPECT_LT(boost::num_vertices(dv.graph), boost::num_vertices(d.graph)) << d.text;
    expect_matches(ghn.generate(ctx, d, darts), exec.parameters(d), d.text);
  }
  // The dead branch no longer reaches the live nodes: the cell with the dead conv and the one
  // with a dead pool in its place give node 3 the same embedding (unstacked, so that the
  // modules' means, which count dead nodes, do not enter).
  const Architecture b =
      space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|skip_connect~2|");
  GhnSurrogate flat(ghn_options({{"prune", true}, {"stacked", false}}));
  const at::Tensor ea = flat.node_embeddings(a), eb = flat.node_embeddings(b);
  std::map<std::string, std::int64_t> idb;
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(b.graph)); ++v)
    idb[b.graph[v].name] = v;
  for (const char* v : {"s1.c0.n3", "s2.c0.n3", "s3.c0.n3", "s3.c0.n2"})
    EXPECT_TRUE(at::allclose(ea[id.at(v)], eb[idb.at(v)], 1e-6, 1e-7)) << v;
  GhnSurrogate unpruned(ghn_options({{"stacked", false}}));
  EXPECT_FALSE(at::allclose(unpruned.node_embeddings(a)[id.at("s2.c0.n3")],
                            unpruned.node_embeddings(b)[idb.at("s2.c0.n3")], 1e-6, 1e-7));
}

TEST(Ghn, PropagationSchemesAndStackingChangeEmbeddings) {
  const Nb201Space space = nb201_space(2);
  const Architecture a = space.parse(kExample);
  auto emb = [&](std::map<std::string, Value> o) {
    return GhnSurrogate(ghn_options(o)).node_embeddings(a);
  };
  const at::Tensor fb = emb({});
  const at::Tensor sync = emb({{"propagation", std::string("synchronous")}});
  const at::Tensor flat = emb({{"stacked", false}});
  EXPECT_FALSE(at::allclose(fb, sync));
  EXPECT_FALSE(at::allclose(fb, flat));
  // Stacked: two cells of a stage have the same graph but different embeddings, because each
  // cell's input node starts from the previous segment's mean embedding. (An untrained GRU
  // forgets quickly: the difference is ~4e-5 at the nodes reading the input node and fades
  // with each hop inside the cell; without the hand-off the two would be bit-identical.)
  std::map<std::string, std::int64_t> id;
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(a.graph)); ++v)
    id[a.graph[v].name] = v;
  const at::Tensor c0 = fb[id.at("s1.c0.n1.e0.relu")], c1 = fb[id.at("s1.c1.n1.e0.relu")];
  EXPECT_GT((c0 - c1).abs().max().item<double>(), 1e-5);
  // Same architecture, same options: same embeddings (no hidden randomness).
  EXPECT_TRUE(at::equal(fb, emb({})));
  // steps = 0: the one-hot itself.
  const at::Tensor none = emb({{"steps", std::int64_t{0}}, {"stacked", false}});
  EXPECT_EQ(none.sum().item<double>(), static_cast<double>(boost::num_vertices(a.graph)));
}

TEST(Ghn, HandoffAllReachesEveryNodeOfTheNextModule) {
  // handoff=input (the paper): a module's mean enters the next module only through its input
  // node, so a node that reads nothing from outside (an `add` whose edges are all `none`) is
  // the same in every cell. handoff=all adds the mean to every node's initial state as well.
  const Nb201Space space = nb201_space(2);
  const Architecture a =
      space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|");
  std::map<std::string, std::int64_t> id;
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(a.graph)); ++v)
    id[a.graph[v].name] = v;
  auto spread = [&](const std::string& handoff) {
    const at::Tensor e = GhnSurrogate(ghn_options({{"handoff", handoff}})).node_embeddings(a);
    // n2 reads only `none` edges; compare it in the two cells of stage 1.
    return (e[id.at("s1.c0.n2")] - e[id.at("s1.c1.n2")]).abs().max().item<double>();
  };
  EXPECT_EQ(spread("input"), 0.0);
  EXPECT_GT(spread("all"), 1e-4);
  EXPECT_THROW(ghn_options({{"handoff", std::string("everywhere")}}), UsageError);
}

// ---------------------------------------------------------------------------------------------
// What the stacked GHN sees: every module reads its input through an input node

/// A canonical serialisation of exactly what the GHN consumes of `g` (build_plan() reads
/// split_segments() and node types; generate() routes weights by node name): per segment in
/// order, its module, whether it has an input node (whose initial state is the previous
/// segment's mean), its nodes' types and names, and its edges as positions in propagation
/// order (Segment::ghn_nodes()). Equal serialisations give equal embeddings and weights.
std::string ghn_input(const ArchGraph& g, bool stacked = true) {
  std::string out;
  for (const ghn::Segment& seg : ghn::split_segments(g, stacked)) {
    out += "S" + std::to_string(seg.module) + (seg.input >= 0 ? "I" : "") + "[";
    for (std::int64_t v : seg.nodes)
      out += std::to_string(ghn::node_type(g[v])) + ":" + g[v].name + ",";
    out += "]";
    const std::int64_t offset = seg.input >= 0 ? 1 : 0;
    auto local = [&](std::int64_t v) {
      if (v == seg.input) return std::int64_t{0};
      return offset + (std::lower_bound(seg.nodes.begin(), seg.nodes.end(), v) - seg.nodes.begin());
    };
    std::vector<std::pair<std::int64_t, std::int64_t>> edges;
    for (const auto& [u, v] : seg.edges) edges.emplace_back(local(u), local(v));
    std::sort(edges.begin(), edges.end());
    for (const auto& [u, v] : edges) out += std::to_string(u) + ">" + std::to_string(v) + ",";
    out += ";";
  }
  return out;
}

/// What a stacked GHN without input nodes consumed (the flaw fixed in format 2 of the state):
/// the edges inside each segment, and as hand-off targets the nodes without an in-neighbour
/// inside it; the edges entering a segment were dropped.
std::string dropped_input(const ArchGraph& g) {
  std::string out;
  for (const ghn::Segment& seg : ghn::split_segments(g, true)) {
    out += "S" + std::to_string(seg.module) + "[";
    for (std::int64_t v : seg.nodes)
      out += std::to_string(ghn::node_type(g[v])) + ":" + g[v].name + ",";
    out += "]";
    std::set<std::int64_t> inner_target;
    for (const auto& [u, v] : seg.edges)
      if (u != seg.input) {
        out += std::to_string(u) + ">" + std::to_string(v) + ",";
        inner_target.insert(v);
      }
    out += "X";
    for (std::int64_t v : seg.nodes)
      if (!inner_target.count(v)) out += std::to_string(v) + ",";
    out += ";";
  }
  return out;
}

/// The identity of the graph the executor runs: the canonical JSON without the text (which
/// only names the architecture), hashed.
std::uint64_t executor_graph(Architecture a) {
  a.text.clear();
  return fnv1a64(graph::canonical_json(a));
}

TEST(Ghn, StackedGhnTellsNoneFromSkipOnTheCellInput) {
  // Edges out of cell node 0 (0->1, 0->2, 0->3, the cell's input, which is the previous
  // module's output): `skip_connect` adds an edge from the input node, `none` none.
  TestContext ctx(1, graph_executor());
  const Nb201Space space = nb201_space(2);
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
       "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
      {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
       "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|"},
      {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
       "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"},
      {"|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
       "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|"},
      {"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
       "|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"},
      {"|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
       "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"},
  };
  for (const char* propagation : {"forward-backward", "synchronous"}) {
    // (Without fan-in normalisation, which scales the raw differences below down ~4x.)
    GhnSurrogate ghn(
        ghn_options({{"propagation", std::string(propagation)}, {"fan_in_norm", false}}));
    for (const auto& [none_text, skip_text] : pairs) {
      const std::string what = cat(propagation, ": ", none_text, " vs ", skip_text);
      const Architecture none = space.parse(none_text), skip = space.parse(skip_text);
      EXPECT_NE(ghn_input(none.graph), ghn_input(skip.graph)) << what;
      // The same vertices (a skip is an edge, not a node): compare node by node.
      ASSERT_EQ(boost::num_vertices(none.graph), boost::num_vertices(skip.graph)) << what;
      const at::Tensor en = ghn.node_embeddings(none), es = ghn.node_embeddings(skip);
      // The node the skip feeds, in the first cell: it reads the stem through the input node.
      const int edge = static_cast<int>(
          std::mismatch(none_text.begin(), none_text.end(), skip_text.begin()).first -
          none_text.begin());
      const int target =
          1 + static_cast<int>(std::count(none_text.begin(), none_text.begin() + edge, '+'));
      std::int64_t v = -1;
      for (std::int64_t u = 0; u < static_cast<std::int64_t>(boost::num_vertices(none.graph)); ++u)
        if (none.graph[u].name == cat("s1.c0.n", target)) v = u;
      ASSERT_GE(v, 0) << what;
      EXPECT_GT((en[v] - es[v]).abs().max().item<double>(), 1e-3) << what;
      // And different generated weights (the same names: the skip adds no parameter). Equal
      // GHN inputs give bit-identical weights; with all-none cells the only weights are outside
      // the cells, which the difference reaches through the hand-off alone (>= 2.6e-6 here).
      const WeightMap wn = ghn.generate(ctx, none, space), ws = ghn.generate(ctx, skip, space);
      ASSERT_EQ(wn.size(), ws.size()) << what;
      double diff = 0;
      for (const auto& [name, t] : wn)
        diff = std::max(diff, (t - ws.at(name)).abs().max().item<double>());
      EXPECT_GT(diff, 1e-6) << what;
    }
  }
}

TEST(Ghn, ANodeWithoutInputsGetsNoHandOff) {
  // In the all-none cell, cell nodes 1..3 are `add`s without inputs (constant zeros): they
  // read nothing, so nothing of the previous modules reaches them: their embeddings are the
  // same in every cell and every architecture where they have no edges at all.
  const Nb201Space space = nb201_space(2);
  GhnSurrogate ghn(ghn_options());
  const Architecture a = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  const Architecture b =
      space.parse("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|");
  auto id = [](const Architecture& arch, const std::string& name) {
    for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(arch.graph)); ++v)
      if (arch.graph[v].name == name) return v;
    ADD_FAILURE() << name;
    return std::int64_t{0};
  };
  const at::Tensor ea = ghn.node_embeddings(a), eb = ghn.node_embeddings(b);
  const at::Tensor ref = ea[id(a, "s1.c0.n1")];
  for (const char* cell : {"s1.c0", "s1.c1", "s2.c0", "s3.c1"}) {
    for (const char* node : {".n1", ".n2", ".n3"})
      EXPECT_TRUE(at::allclose(ea[id(a, cat(cell, node))], ref, 1e-6, 1e-7)) << cell << node;
    EXPECT_TRUE(at::allclose(eb[id(b, cat(cell, ".n1"))], ref, 1e-6, 1e-7)) << cell;
  }
  // A node that reads the cell's input does get the previous module: the first cell's and
  // the second's differ (the stem's mean, the first cell's mean; 8e-6 at initialisation).
  EXPECT_GT(
      (eb[id(b, "s1.c0.n3.e0.relu")] - eb[id(b, "s1.c1.n3.e0.relu")]).abs().max().item<double>(),
      1e-6);
}

/// Distinct executor graphs, GHN inputs and GHN inputs without module input nodes (the old
/// view) over the architectures added.
struct DistinctInputs {
  std::set<std::uint64_t> executor, inputs, dropped;
  void add(const Architecture& a) {
    inputs.insert(fnv1a64(ghn_input(a.graph)));
    dropped.insert(fnv1a64(dropped_input(a.graph)));
    executor.insert(executor_graph(a));
  }
  /// As many GHN inputs as executor graphs, and fewer in the old view: the test sees the flaw
  /// it guards against.
  void expect_all_apart() const {
    ::testing::Test::RecordProperty("executor_graphs", static_cast<int>(executor.size()));
    ::testing::Test::RecordProperty("ghn_inputs", static_cast<int>(inputs.size()));
    ::testing::Test::RecordProperty("ghn_inputs_without_input_nodes",
                                    static_cast<int>(dropped.size()));
    EXPECT_EQ(inputs.size(), executor.size());
    EXPECT_LT(dropped.size(), executor.size());
  }
};

TEST(Ghn, StackedInputsTellEveryNb201CellApart) {
  // Over all 15,625 cells: as many distinct GHN inputs as distinct graphs the executor runs
  // (15,625 of each; a GHN that dropped the edges entering a module saw 8,000). Only the
  // GHN's graph structures are built, no propagation.
  const Nb201Space space = nb201_space(1);
  DistinctInputs distinct;
  for (std::uint64_t i = 0; i < nb201::kCells; ++i) distinct.add(space.at(i));
  distinct.expect_all_apart();
}

TEST(Ghn, StackedInputsTellGhnSpaceBlocksApart) {
  // A seeded sample of the GHN paper's random blocks, each with the blocks that differ from it
  // only in whether one node also reads the block input (node 0): a GHN that dropped the
  // edges entering a module could not tell those apart.
  Options o;
  o.set("nodes", std::int64_t{7});
  const GhnSpace space(GhnSpace::params().resolve(o, "ghn space"));
  Rng rng(2019);
  std::vector<ghn_space::Block> blocks;
  for (int i = 0; i < 500; ++i) {
    const ghn_space::Block block = space.block_of(space.sample(rng));
    blocks.push_back(block);
    for (std::size_t k = 0; k < block.nodes.size(); ++k) {
      ghn_space::Block variant = block;
      std::vector<int>& in = variant.nodes[k].inputs;
      if (in.size() == 2 && in[0] == 0) in.erase(in.begin());
      else if (in.size() == 1 && in[0] != 0) in.insert(in.begin(), 0);
      else continue;
      blocks.push_back(variant);
    }
  }
  ASSERT_GT(blocks.size(), 2000u);
  RecordProperty("architectures", static_cast<int>(blocks.size()));
  DistinctInputs distinct;
  for (const ghn_space::Block& block : blocks) distinct.add(space.make(block));
  distinct.expect_all_apart();
}

TEST(Ghn, GeneratesEveryParameterOfNb201) {
  TestContext ctx(1, graph_executor());
  const exec::GraphExecutor exec;
  const Nb201Space space = nb201_space(5, 16);
  GhnSurrogate ghn(ghn_options());
  Rng rng(11);
  std::vector<Architecture> archs = {space.parse(kExample), space.at(0), space.at(15624)};
  for (int i = 0; i < 3; ++i) archs.push_back(space.sample(rng));
  for (const Architecture& a : archs) {
    const std::vector<ParamShape> shapes = exec.parameters(a);
    const WeightMap w = ghn.generate(ctx, a, space);
    expect_matches(w, shapes, a.text);
    for (const auto& [name, t] : w) EXPECT_FALSE(t.requires_grad()) << name;
  }
  // The network runs with them: finite logits of the right shape.
  const WeightMap w = ghn.generate(ctx, archs[0], space);
  const auto logits = exec.forward(archs[0], w, at::randn({4, 3, 32, 32}));
  ASSERT_EQ(logits.size(), 1u);
  EXPECT_EQ(logits[0].sizes().vec(), (std::vector<std::int64_t>{4, 10}));
  EXPECT_TRUE(at::isfinite(logits[0]).all().item<bool>());
  // Batched generation gives the same weights as one at a time.
  std::vector<const Architecture*> ptrs;
  std::vector<std::vector<ParamShape>> shapes;
  for (const Architecture& a : archs) {
    ptrs.push_back(&a);
    shapes.push_back(exec.parameters(a));
  }
  const auto batch = ghn.generate_batch(ptrs, shapes);
  for (std::size_t k = 0; k < archs.size(); ++k) {
    const WeightMap one = ghn.generate(ctx, archs[k], space);
    for (const auto& [name, t] : one)
      EXPECT_TRUE(at::allclose(t, batch[k].at(name), 1e-5, 1e-6)) << archs[k].text << " " << name;
  }
}

TEST(Ghn, GeneratesEveryParameterOfDarts) {
  TestContext ctx(1, graph_executor());
  const exec::GraphExecutor exec;
  Rng rng(5);
  for (bool macro : {false, true}) {
    const DartsSpace space = darts_space(macro);
    // GHN-2 options on: virtual edges, layer norm, fan-in normalisation; tiling (C = 16 gives
    // 64 to 256 channels in the last cells, beyond max_channels = 64).
    GhnSurrogate ghn(ghn_options({{"virtual_edges", true},
                                  {"layer_norm", true},
                                  {"fan_in_norm", true},
                                  {"steps", std::int64_t{1}}}));
    for (int i = 0; i < 2; ++i) {
      const Architecture a = space.sample(rng);
      const std::vector<ParamShape> shapes = exec.parameters(a);
      const WeightMap w = ghn.generate(ctx, a, space);
      expect_matches(w, shapes, a.text);
      for (const ParamShape& p : shapes) {
        const at::Tensor& t = w.at(p.name);
        if (p.shape.size() == 1 && p.name.find(".weight") != std::string::npos) {
          EXPECT_GT(t.min().item<double>(), 0.0) << p.name;  // 2 sigmoid(x / 2)
          EXPECT_LT(t.max().item<double>(), 2.0) << p.name;
        } else if (p.shape.size() == 1) {
          EXPECT_LT(t.abs().max().item<double>(), 1.0) << p.name;  // tanh(x / 5)
        }
      }
      const auto logits = exec.forward(a, w, at::randn({2, 3, 32, 32}));
      EXPECT_TRUE(at::isfinite(logits.back()).all().item<bool>()) << a.text;
    }
  }
}

TEST(Ghn, GeneratesEveryParameterOfGhnSpace) {
  // The GHN paper's random blocks: trained on 7 nodes, evaluated on larger blocks.
  TestContext ctx(1, graph_executor());
  const exec::GraphExecutor exec;
  Rng rng(9);
  GhnSurrogate ghn(ghn_options({{"steps", std::int64_t{2}}}));
  for (std::int64_t nodes : {7, 17}) {
    Options o;
    o.set("nodes", nodes).set("channels", std::int64_t{32});
    const GhnSpace space(GhnSpace::params().resolve(o, "ghn space"));
    for (int i = 0; i < 3; ++i) {
      const Architecture a = space.sample(rng);
      const std::vector<ParamShape> shapes = exec.parameters(a);
      expect_matches(ghn.generate(ctx, a, space), shapes, a.text);
      // Stacked: one segment per block (module), plus stem, reductions and head.
      std::set<std::int64_t> modules;
      for (const auto& seg : ghn::split_segments(a.graph, true)) modules.insert(seg.module);
      EXPECT_EQ(modules.size(), 4u) << a.text;  // -1 and the 3 blocks
    }
  }
}

TEST(Ghn, TilesParametersLargerThanTheMaximalTensor) {
  // max_channels 4, max_kernel 1: a [16, 16, 3, 3] conv is the 4x4x1x1 block tiled.
  TestContext ctx(1, graph_executor());
  const exec::GraphExecutor exec;
  const Nb201Space space = nb201_space(1, 16);
  GhnSurrogate ghn(
      ghn_options({{"max_channels", std::int64_t{4}}, {"max_kernel", std::int64_t{1}}}));
  const Architecture a = space.parse(kExample);
  const WeightMap w = ghn.generate(ctx, a, space);
  expect_matches(w, exec.parameters(a), a.text);
  const at::Tensor conv = w.at("s1.c0.n1.e0.conv.weight");  // [16, 16, 3, 3]
  ASSERT_EQ(conv.sizes().vec(), (std::vector<std::int64_t>{16, 16, 3, 3}));
  const at::Tensor block = conv.index({at::indexing::Slice(0, 4), at::indexing::Slice(0, 4), 0, 0});
  for (int o = 0; o < 16; o += 4)
    for (int i = 0; i < 16; i += 4)
      for (int y = 0; y < 3; ++y)
        EXPECT_TRUE(at::equal(conv.index({at::indexing::Slice(o, o + 4),
                                          at::indexing::Slice(i, i + 4), y, 2 - y}),
                              block));
  const at::Tensor bn = w.at("s1.c0.n1.e0.bn.weight");  // [16]: 4 values tiled
  EXPECT_TRUE(at::equal(bn.narrow(0, 0, 4), bn.narrow(0, 12, 4)));
  EXPECT_FALSE(at::equal(bn, w.at("s1.c0.n1.e0.bn.bias")));
}

// ---------------------------------------------------------------------------------------------
// State

TEST(Ghn, StateRoundTripGivesIdenticalWeightsAndScores) {
  TestContext ctx(2, graph_executor());
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(64, 40);
  GhnSurrogate a(ghn_options({{"lr", 1e-2}}));
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.max_steps = 3;
  a.fit(ctx, fr);  // Adam state and loss curve too
  const std::string blob = a.save_state();

  GhnSurrogate b(ghn_options({{"lr", 1e-2}, {"init_seed", std::int64_t{99}}}));
  const Architecture arch = space.parse(kExample);
  EXPECT_FALSE(at::equal(a.node_embeddings(arch), b.node_embeddings(arch)));
  b.load_state(blob);
  EXPECT_EQ(b.loss_curve(), a.loss_curve());
  // (byte equality would print megabytes on failure: compare as a boolean)
  GhnSurrogate c(ghn_options({{"lr", 1e-2}}));
  c.load_state(blob);
  EXPECT_TRUE(c.save_state() == blob);
  const WeightMap wa = a.generate(ctx, arch, space), wb = b.generate(ctx, arch, space);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(at::equal(t, wb.at(name))) << name;
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.archs = {&arch};
  sr.batch_size = 20;
  const auto sa = a.score(ctx, sr), sb = b.score(ctx, sr);
  EXPECT_EQ(sa[0].value, sb[0].value);
  EXPECT_EQ(sa[0].extra.at("loss"), sb[0].extra.at("loss"));
  // Training goes on identically from the restored state.
  TestContext c1(5, graph_executor()), c2(5, graph_executor());
  a.fit(c1, fr);
  b.fit(c2, fr);
  EXPECT_EQ(a.loss_curve(), b.loss_curve());
  const WeightMap ta = a.generate(ctx, arch, space), tb = b.generate(ctx, arch, space);
  for (const auto& [name, t] : ta) EXPECT_TRUE(at::equal(t, tb.at(name))) << name;
}

TEST(Ghn, BadBlobsSayWhatIsWrong) {
  GhnSurrogate ghn(ghn_options());
  const std::string blob = ghn.save_state();
  const std::string before = blob;
  auto load = [&](const std::string& b) { return error_of([&] { ghn.load_state(b); }); };
  EXPECT_NE(load("").find("empty"), std::string::npos);
  EXPECT_NE(load("PK\x03\x04 something else entirely").find("not a GHN state"), std::string::npos);
  for (std::size_t keep : {std::size_t{10}, std::size_t{40}, blob.size() / 2, blob.size() - 1}) {
    const std::string e = load(blob.substr(0, keep));
    EXPECT_NE(e.find("truncated"), std::string::npos) << keep << ": " << e;
  }
  std::string flipped = blob;
  flipped[flipped.size() / 2] ^= 0x20;
  EXPECT_NE(load(flipped).find("corrupted"), std::string::npos);
  EXPECT_NE(load(blob + "xx").find("unexpected bytes"), std::string::npos);
  std::string future = blob;
  future[8] = 9;  // format version
  EXPECT_NE(load(future).find("version"), std::string::npos);
  // Another model shape: names the option.
  GhnSurrogate wide(ghn_options({{"hidden", std::int64_t{48}}}));
  const std::string e = error_of([&] { wide.load_state(blob); });
  EXPECT_NE(e.find("hidden=32"), std::string::npos) << e;
  // Nothing changed by the failed loads.
  EXPECT_TRUE(ghn.save_state() == before);
}

TEST(Ghn, Version1StatesOfStackedGhnsAreRefused) {
  // Format 2 came with the stacked GHN's module input nodes: a stacked GHN saved in format 1
  // was trained on graphs whose modules dropped their entering edges, and is refused; an
  // unstacked one (whose propagation did not change) still loads.
  GhnSurrogate stacked(ghn_options());
  std::string old = stacked.save_state();
  ASSERT_EQ(old[8], 2);  // the format version (little-endian uint32 after the magic)
  old[8] = 1;            // (the checksum covers the payload only)
  const std::string before = stacked.save_state();
  const std::string e = error_of([&] { stacked.load_state(old); });
  EXPECT_NE(e.find("format version 1"), std::string::npos) << e;
  EXPECT_NE(e.find("input node"), std::string::npos) << e;
  EXPECT_NE(e.find("train the GHN again"), std::string::npos) << e;
  EXPECT_TRUE(stacked.save_state() == before);

  GhnSurrogate flat(ghn_options({{"stacked", false}}));
  std::string flat_old = flat.save_state();
  flat_old[8] = 1;
  GhnSurrogate other(ghn_options({{"stacked", false}, {"init_seed", std::int64_t{5}}}));
  const Architecture arch = nb201_space(1).parse(kExample);
  EXPECT_FALSE(at::equal(other.node_embeddings(arch), flat.node_embeddings(arch)));
  EXPECT_NO_THROW(other.load_state(flat_old));
  EXPECT_TRUE(at::equal(other.node_embeddings(arch), flat.node_embeddings(arch)));
}

// ---------------------------------------------------------------------------------------------
// Training and scoring

TEST(Ghn, ShortFitReducesTheLoss) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(256, 64);
  TestContext ctx(4, graph_executor());
  GhnSurrogate ghn(ghn_options({{"lr", 3e-3}, {"steps", std::int64_t{2}}}));
  std::vector<Architecture> archs;
  Rng rng(8);
  for (int i = 0; i < 4; ++i) archs.push_back(space.sample(rng));
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.batch_size = 32;
  for (const Architecture& a : archs) sr.archs.push_back(&a);
  auto mean_loss = [&] {
    double l = 0;
    for (const Score& s : ghn.score(ctx, sr)) l += s.extra.at("loss");
    return l / static_cast<double>(archs.size());
  };
  const double before = mean_loss();
  EXPECT_EQ(mean_loss(), before);  // deterministic scoring

  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 32;
  fr.epochs = 5;  // 8 steps per epoch
  ghn.fit(ctx, fr);
  ASSERT_EQ(ghn.loss_curve().size(), 40u);
  const double after = mean_loss();
  EXPECT_LT(after, before * 0.9) << "before " << before << ", after " << after;
  // (The training curve itself is noisy: every step draws another architecture.)
  const auto& c = ghn.loss_curve();
  // One notification per step, numbered from 1.
  ASSERT_EQ(ctx.events.size(), 40u);
  EXPECT_EQ(ctx.events[0].first, "fit_step");
  EXPECT_EQ(ctx.events[0].second.at("step"), 1.0);
  EXPECT_EQ(ctx.events[39].second.at("loss"), c.back());
  EXPECT_FALSE(ctx.lines.empty());  // periodic mean-loss lines
}

TEST(Ghn, MetaBatchMaxStepsAndCallbackStop) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(64, 16);
  TestContext ctx(1, graph_executor());
  GhnSurrogate ghn(ghn_options({{"meta_batch", std::int64_t{3}}, {"steps", std::int64_t{1}}}));
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.epochs = 10;
  fr.max_steps = 5;
  ghn.fit(ctx, fr);
  EXPECT_EQ(ghn.loss_curve().size(), 5u);
  ctx.stop_after = 2;
  ctx.events.clear();
  ghn.fit(ctx, fr);
  EXPECT_EQ(ghn.loss_curve().size(), 7u);
  EXPECT_EQ(ctx.events.back().second.at("step"), 7.0);
}

TEST(Ghn, NonFiniteLossNamesStepAndArchitecture) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(32, 8, 4, 2, /*poison=*/true);
  TestContext ctx(1, graph_executor());
  GhnSurrogate ghn(ghn_options({{"steps", std::int64_t{1}}}));
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  const std::string e = error_of([&] { ghn.fit(ctx, fr); });
  EXPECT_NE(e.find("step 1"), std::string::npos) << e;
  EXPECT_NE(e.find("|"), std::string::npos) << e;  // the nb201 text
  EXPECT_NE(e.find("nan"), std::string::npos) << e;
}

TEST(Ghn, CancelledBetweenSteps) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(32, 8);
  TestContext ctx(1, graph_executor());
  ctx.cancel = true;
  GhnSurrogate ghn(ghn_options({{"steps", std::int64_t{1}}}));
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  EXPECT_THROW(ghn.fit(ctx, fr), Cancelled);
  EXPECT_TRUE(ghn.loss_curve().empty());
}

TEST(Ghn, PresetPaperSetsWhatIsLeftAtItsDefault) {
  GhnSurrogate tuned(ghn_options());
  GhnSurrogate paper(ghn_options({{"preset", std::string("paper")}}));
  const Options& p = paper.options();
  EXPECT_EQ(p.get_int("hidden"), 32);
  EXPECT_EQ(p.get_int("steps"), 5);
  EXPECT_EQ(p.get_string("propagation"), "forward-backward");
  EXPECT_TRUE(p.get_bool("stacked"));
  EXPECT_EQ(p.get_string("handoff"), "input");
  EXPECT_FALSE(p.get_bool("fan_in_norm"));
  EXPECT_FALSE(p.get_bool("layer_norm"));
  EXPECT_FALSE(p.get_bool("virtual_edges"));
  EXPECT_EQ(p.get_int("meta_batch"), 1);
  EXPECT_EQ(p.get_real("grad_clip"), 0.0);
  EXPECT_EQ(p.get_real("weight_decay"), 0.0);
  EXPECT_EQ(p.get_string("lr_schedule"), "constant");
  EXPECT_EQ(p.get_string("score_metric"), "accuracy");
  EXPECT_EQ(p.get_int("finetune_steps"), 0);
  // An option given another value than its default keeps it under the preset.
  GhnSurrogate mixed(ghn_options({{"preset", std::string("paper")}, {"steps", std::int64_t{2}}}));
  EXPECT_EQ(mixed.options().get_int("steps"), 2);
  // The tuned preset is the declared defaults.
  EXPECT_EQ(tuned.options().canonical(), ghn_options().canonical());
  // A state saved under one preset loads into a GHN created with the same effective options.
  GhnSurrogate again(ghn_options({{"preset", std::string("paper")}}));
  EXPECT_NO_THROW(again.load_state(paper.save_state()));
}

TEST(Ghn, ScoreMetricLossFinetuneAndClipping) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(128, 40);
  TestContext ctx(2, graph_executor());
  const Architecture arch = space.parse(kExample);
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.archs = {&arch};
  sr.batch_size = 20;
  auto score = [&](std::map<std::string, Value> o) {
    o["steps"] = std::int64_t{1};
    return GhnSurrogate(ghn_options(o)).score(ctx, sr).at(0);
  };
  const Score acc = score({});
  const Score loss = score({{"score_metric", std::string("loss")}});
  EXPECT_EQ(acc.value, acc.extra.at("accuracy"));
  EXPECT_EQ(loss.value, -loss.extra.at("loss"));
  EXPECT_EQ(loss.extra.at("loss"), acc.extra.at("loss"));
  // A few SGD steps from the generated weights fit the (easy) data better; deterministic.
  const Score tuned = score({{"finetune_steps", std::int64_t{20}}, {"finetune_lr", 0.2}});
  EXPECT_LT(tuned.extra.at("loss"), acc.extra.at("loss") * 0.9);
  EXPECT_EQ(score({{"finetune_steps", std::int64_t{20}}, {"finetune_lr", 0.2}}).value, tuned.value);

  // grad_clip: with a tiny bound, Adam's steps shrink to almost nothing (its update
  // is g / (|g| + eps), and the clipped |g| is far below eps).
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.max_steps = 2;
  auto moved = [&](std::map<std::string, Value> o) {
    o["steps"] = std::int64_t{1};
    o["lr"] = 1e-2;
    o["weight_decay"] = 0.0;  // (added after clipping, as in torch: it would move them)
    GhnSurrogate ghn(ghn_options(o));
    std::map<std::string, at::Tensor> before;
    for (const auto& [name, t] : ghn.named_parameters()) before[name] = t.detach().clone();
    TestContext c(7, graph_executor());
    ghn.fit(c, fr);
    double most = 0;
    for (const auto& [name, t] : ghn.named_parameters())
      most = std::max(most, (t.detach() - before.at(name)).abs().max().item<double>());
    return most;
  };
  EXPECT_GT(moved({}), 1e-3);
  EXPECT_LT(moved({{"grad_clip", 1e-12}}), 1e-4);
  // The cosine schedule starts at lr: a one-step fit equals the constant one's.
  fr.max_steps = 1;
  EXPECT_EQ(moved({{"lr_schedule", std::string("cosine")}}),
            moved({{"lr_schedule", std::string("constant")}}));
}

TEST(Ghn, ScoresWithMaxImagesAndKernelContext) {
  const Nb201Space space = nb201_space(1, 4, 1, 4, 2);
  const BrightnessData data(16, 50);
  const exec::GraphExecutor exec;
  core::RunServices services;
  services.executor = &exec;
  services.seed = 3;
  core::KernelContext ctx(services, "ghn");
  GhnSurrogate ghn(ghn_options({{"steps", std::int64_t{1}}}));
  const Architecture a = space.parse(kExample), b = space.at(7);
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.archs = {&a, &b};
  sr.batch_size = 8;
  sr.max_images = 20;
  const auto scores = ghn.score(ctx, sr);
  ASSERT_EQ(scores.size(), 2u);
  for (const Score& s : scores) {
    EXPECT_GE(s.value, 0.0);
    EXPECT_LE(s.value, 1.0);
    // 20 images: accuracy is a multiple of 1/20
    EXPECT_NEAR(s.value * 20, std::round(s.value * 20), 1e-9);
    EXPECT_TRUE(std::isfinite(s.extra.at("loss")));
  }
  // An architecture read back without its graph is rebuilt from its text.
  Architecture text_only;
  text_only.space = "nb201";
  text_only.text = kExample;
  sr.archs = {&text_only};
  EXPECT_EQ(ghn.score(ctx, sr)[0].value, scores[0].value);
}

}  // namespace
