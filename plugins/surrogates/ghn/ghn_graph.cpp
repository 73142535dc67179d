/// @file ghn_graph.cpp
/// @brief Graph analysis for the GHN (no Torch): node types, segments, level groups, the
/// propagation schedule, pruning, shape, scale and exit-role keys, and virtual edges.

#include <algorithm>
#include <map>

#include "ghn_internal.h"

namespace hypernas::ghn {

namespace {

enum Type : int {
  kInput = 0,
  kConv1x1,
  kConv3x3,
  kConv5x5,
  kConvOther,
  kDwConv3x3,
  kDwConv5x5,
  kDwConvOther,
  kDilConv,
  kBn,
  kRelu,
  kAvgPool,
  kMaxPool,
  kAdd,
  kConcat,
  kGap,
  kLinear,
  kResample,  // appended (ABI 1.3): earlier indices, and states trained with them, unchanged
  kTypeCount
};

/// Checks that every edge goes forward in vertex order.
void check_topological(const ArchGraph& graph) {
  for (auto [it, end] = boost::edges(graph); it != end; ++it) {
    const auto u = boost::source(*it, graph);
    const auto v = boost::target(*it, graph);
    HYPERNAS_CHECK(u < v, "ghn: the architecture graph is not in topological order: node '",
                   graph[u].name, "' (", u, ") feeds node '", graph[v].name, "' (", v, ")");
  }
}

}  // namespace

const std::vector<std::string>& node_types() {
  static const std::vector<std::string> types = {"input",    "conv1x1",    "conv3x3",    "conv5x5",
                                                 "conv",     "dw_conv3x3", "dw_conv5x5", "dw_conv",
                                                 "dil_conv", "bn",         "relu",       "avg_pool",
                                                 "max_pool", "add",        "concat",     "gap",
                                                 "linear",   "resample"};
  return types;
}

int node_type(const OpNode& node) {
  const std::string& op = node.op;
  if (op == "conv") {
    if (node.dilation > 1) return kDilConv;
    if (node.groups > 1) {
      if (node.kernel == 3) return kDwConv3x3;
      if (node.kernel == 5) return kDwConv5x5;
      return kDwConvOther;
    }
    if (node.kernel == 1) return kConv1x1;
    if (node.kernel == 3) return kConv3x3;
    if (node.kernel == 5) return kConv5x5;
    return kConvOther;
  }
  if (op == "input") return kInput;
  if (op == "bn") return kBn;
  if (op == "relu") return kRelu;
  if (op == "avg_pool") return kAvgPool;
  if (op == "max_pool") return kMaxPool;
  if (op == "add") return kAdd;
  if (op == "concat") return kConcat;
  if (op == "gap") return kGap;
  if (op == "linear") return kLinear;
  if (op == "resample") return kResample;
  if (op == "mix")
    throw Error(cat("ghn: node '", node.name,
                    "' is a `mix`, the branch end of a relaxed network; the GHN generates "
                    "weights for discrete architectures only"));
  // NOTE: SMASH's primitives (ABI 1.5: slice, mul, tanh, sigmoid) have no GHN node type: adding
  // one would change the embedding's size, and with it every saved GHN.
  std::string known;
  for (const char* p : kPrimitiveOps) known += (known.empty() ? "" : ", ") + std::string(p);
  throw Error(cat("ghn: node '", node.name, "' has op '", op,
                  "', which the GHN has no node type for (it embeds input, conv, bn, relu, "
                  "avg_pool, max_pool, add, concat, gap, linear, resample; the executor's "
                  "primitives are ",
                  known, ")"));
}

static_assert(kTypeCount == 18, "node_types() lists 18 types");

Propagation parse_propagation(const std::string& text) {
  if (text == "forward-backward") return Propagation::ForwardBackward;
  if (text == "synchronous") return Propagation::Synchronous;
  throw UsageError(
      cat("ghn: option 'propagation' expects forward-backward or synchronous, got '", text, "'"));
}

std::vector<std::int64_t> Segment::ghn_nodes() const {
  std::vector<std::int64_t> out;
  out.reserve(nodes.size() + 1);
  if (input >= 0) out.push_back(input);
  out.insert(out.end(), nodes.begin(), nodes.end());
  return out;
}

std::vector<Segment> split_segments(const ArchGraph& graph, bool stacked) {
  check_topological(graph);
  const std::int64_t n = static_cast<std::int64_t>(boost::num_vertices(graph));
  std::vector<Segment> segments;
  std::vector<std::int64_t> seg_of(n, 0);
  if (!stacked) {
    if (n > 0) {
      segments.emplace_back();
      for (std::int64_t v = 0; v < n; ++v) segments[0].nodes.push_back(v);
    }
  } else {
    std::map<std::int64_t, std::int64_t> module_segment;
    for (std::int64_t v = 0; v < n; ++v) {
      const std::int64_t module = graph[v].module;
      std::int64_t s;
      if (module >= 0) {
        auto it = module_segment.find(module);
        if (it == module_segment.end()) {
          it = module_segment.emplace(module, static_cast<std::int64_t>(segments.size())).first;
          segments.emplace_back();
          segments.back().module = module;
        }
        s = it->second;
      } else if (v > 0 && graph[v - 1].module < 0) {
        s = seg_of[v - 1];  // the run of outside nodes goes on
      } else {
        s = static_cast<std::int64_t>(segments.size());
        segments.emplace_back();
      }
      seg_of[v] = s;
      segments[s].nodes.push_back(v);
    }
  }
  // Edges: inside the segment as they are; from outside, from the segment's input node.
  std::int64_t next_input = n;
  for (std::size_t s = 0; s < segments.size(); ++s) {
    Segment& seg = segments[s];
    bool outside = false;
    for (std::int64_t v : seg.nodes)
      for (auto [it, end] = boost::in_edges(v, graph); it != end && !outside; ++it)
        outside = seg_of[boost::source(*it, graph)] != static_cast<std::int64_t>(s);
    if (stacked && (s > 0 || outside)) seg.input = next_input++;
    for (std::int64_t v : seg.nodes) {
      for (auto [it, end] = boost::in_edges(v, graph); it != end; ++it) {
        const std::int64_t u = static_cast<std::int64_t>(boost::source(*it, graph));
        seg.edges.emplace_back(seg_of[u] == static_cast<std::int64_t>(s) ? u : seg.input, v);
      }
    }
  }
  return segments;
}

std::int64_t ghn_node_count(const ArchGraph& graph, const std::vector<Segment>& segments) {
  std::int64_t n = static_cast<std::int64_t>(boost::num_vertices(graph));
  for (const Segment& seg : segments) n += seg.input >= 0 ? 1 : 0;
  return n;
}

namespace {

/// A segment's nodes in propagation order (input node first) and its edges as local
/// positions in that order: in[i] / out[i] list the sources / targets of node i.
struct LocalGraph {
  std::vector<std::int64_t> nodes;
  std::vector<std::vector<std::int64_t>> in, out;

  explicit LocalGraph(const Segment& segment) : nodes(segment.ghn_nodes()) {
    const std::size_t n = nodes.size();
    in.resize(n);
    out.resize(n);
    for (const auto& [u, v] : segment.edges) {
      const std::int64_t i = local(segment, u), j = local(segment, v);
      HYPERNAS_CHECK(i >= 0 && j >= 0 && i < j, "ghn: internal error: edge ", u, " -> ", v,
                     " is not an edge between nodes of its segment in propagation order");
      out[i].push_back(j);
      in[j].push_back(i);
    }
  }

  /// Position of GHN node `v` in nodes, or -1 (nodes after the input are increasing).
  static std::int64_t local(const Segment& segment, std::int64_t v) {
    const std::int64_t offset = segment.input >= 0 ? 1 : 0;
    if (v == segment.input) return 0;
    auto it = std::lower_bound(segment.nodes.begin(), segment.nodes.end(), v);
    return (it != segment.nodes.end() && *it == v) ? offset + (it - segment.nodes.begin()) : -1;
  }
};

}  // namespace

SegmentLevels segment_levels(const ArchGraph& graph, const Segment& segment, bool one_at_a_time) {
  (void)graph;  // the segment carries its edges
  SegmentLevels out;
  if (one_at_a_time) {
    const std::vector<std::int64_t> nodes = segment.ghn_nodes();
    for (std::int64_t v : nodes) out.forward.push_back({v});
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) out.backward.push_back({*it});
    return out;
  }
  const LocalGraph lg(segment);
  const std::size_t n = lg.nodes.size();
  std::vector<std::int64_t> fwd(n, 0), bwd(n, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::int64_t j : lg.in[i]) fwd[i] = std::max(fwd[i], fwd[j] + 1);
  for (std::size_t k = n; k-- > 0;)
    for (std::int64_t j : lg.out[k]) bwd[k] = std::max(bwd[k], bwd[j] + 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (static_cast<std::size_t>(fwd[i]) >= out.forward.size()) out.forward.resize(fwd[i] + 1);
    if (static_cast<std::size_t>(bwd[i]) >= out.backward.size()) out.backward.resize(bwd[i] + 1);
    out.forward[fwd[i]].push_back(lg.nodes[i]);
    out.backward[bwd[i]].push_back(lg.nodes[i]);
  }
  return out;
}

std::vector<UpdateStep> propagation_order(const ArchGraph& graph, Propagation propagation,
                                          std::int64_t steps, bool stacked, bool one_at_a_time) {
  std::vector<UpdateStep> order;
  const std::vector<Segment> segments = split_segments(graph, stacked);
  for (std::size_t s = 0; s < segments.size(); ++s) {
    const SegmentLevels levels = segment_levels(graph, segments[s], one_at_a_time);
    const std::vector<std::int64_t> all = segments[s].ghn_nodes();
    for (std::int64_t t = 0; t < steps; ++t) {
      if (propagation == Propagation::Synchronous) {
        order.push_back({static_cast<std::int64_t>(s), t, false, all});
        order.push_back({static_cast<std::int64_t>(s), t, true, all});
        continue;
      }
      for (const auto& group : levels.forward)
        order.push_back({static_cast<std::int64_t>(s), t, false, group});
      for (const auto& group : levels.backward)
        order.push_back({static_cast<std::int64_t>(s), t, true, group});
    }
  }
  return order;
}

GraphView prune_graph(const ArchGraph& graph) {
  check_topological(graph);
  const std::int64_t n = static_cast<std::int64_t>(boost::num_vertices(graph));
  GraphView view;
  if (n == 0) return view;
  // Live: a directed path to an output (the last vertex, or an exit of a multi-exit network).
  std::vector<char> live(static_cast<std::size_t>(n), 0);
  for (std::int64_t v = 0; v < n; ++v) live[v] = graph[v].exit >= 0 ? 1 : 0;
  live[n - 1] = 1;
  for (std::int64_t v = n - 1; v-- > 0;)
    for (auto [it, end] = boost::out_edges(v, graph); it != end && !live[v]; ++it)
      live[v] = live[boost::target(*it, graph)];
  // Folds: rep[v] is the vertex v's node becomes (itself, or its conv).
  std::vector<std::int64_t> rep(static_cast<std::size_t>(n));
  for (std::int64_t v = 0; v < n; ++v) rep[v] = v;
  for (std::int64_t v = 0; v < n; ++v) {
    const std::string& op = graph[v].op;
    if (op == "relu" && boost::out_degree(v, graph) == 1) {
      const auto c =
          static_cast<std::int64_t>(boost::target(*boost::out_edges(v, graph).first, graph));
      if (graph[c].op == "conv" && boost::in_degree(c, graph) == 1) rep[v] = c;
    } else if (op == "bn" && boost::in_degree(v, graph) == 1) {
      const auto c =
          static_cast<std::int64_t>(boost::source(*boost::in_edges(v, graph).first, graph));
      if (graph[c].op == "conv" && boost::out_degree(c, graph) == 1) rep[v] = c;
    }
  }
  // Kept vertices in order; every vertex maps to its representative's new id.
  std::vector<std::int64_t> fresh(static_cast<std::size_t>(n), -1);
  for (std::int64_t v = 0; v < n; ++v)
    if (rep[v] == v) fresh[v] = static_cast<std::int64_t>(boost::add_vertex(graph[v], view.graph));
  view.vertex_of.resize(static_cast<std::size_t>(n));
  for (std::int64_t v = 0; v < n; ++v) view.vertex_of[v] = fresh[rep[v]];
  // Edges between live vertices, between different nodes, in the graph's order per target.
  for (std::int64_t v = 0; v < n; ++v)
    for (auto [it, end] = boost::in_edges(v, graph); it != end; ++it) {
      const auto u = static_cast<std::int64_t>(boost::source(*it, graph));
      if (!live[u] || !live[v]) continue;
      const std::int64_t a = view.vertex_of[u], b = view.vertex_of[v];
      if (a != b) boost::add_edge(a, b, view.graph);
    }
  return view;
}

std::array<std::int64_t, 4> shape_key(const OpNode& node) {
  auto channels = [](std::int64_t c) -> std::int64_t {
    if (c <= 0) return 0;
    std::int64_t bits = 0;
    while ((c >> (bits + 1)) > 0) ++bits;  // floor(log2(c))
    return std::min<std::int64_t>(1 + bits, kShapeTableSizes[0] - 1);
  };
  return {channels(node.c_out), channels(node.c_in),
          std::clamp<std::int64_t>(node.kernel, 0, kShapeTableSizes[2] - 1),
          std::clamp<std::int64_t>(node.stride, 0, kShapeTableSizes[3] - 1)};
}

std::int64_t scale_key(const OpNode& node) {
  return std::clamp<std::int64_t>(node.scale, 0, kScaleTableSize - 1);
}

std::vector<ExitRole> exit_roles(const ArchGraph& graph) {
  check_topological(graph);
  const std::size_t n = boost::num_vertices(graph);
  std::vector<ExitRole> roles(n, ExitRole::None);
  std::vector<char> source(n, 0);
  for (std::size_t v = 0; v < n; ++v) {
    if (graph[v].op != "linear" || graph[v].exit < 0) continue;
    roles[v] = ExitRole::Head;
    // Back through the chain of single-input, single-output nodes of the linear's module;
    // edges go to higher vertices, so the walk ends.
    const std::int64_t module = graph[v].module;
    std::size_t cur = v;
    while (boost::in_degree(cur, graph) == 1) {
      const std::size_t u = boost::source(*boost::in_edges(cur, graph).first, graph);
      if (boost::in_degree(u, graph) != 1 || boost::out_degree(u, graph) != 1 ||
          graph[u].module != module) {
        source[u] = 1;
        break;
      }
      roles[u] = ExitRole::Head;
      cur = u;
    }
  }
  for (std::size_t v = 0; v < n; ++v)
    if (source[v] && roles[v] == ExitRole::None) roles[v] = ExitRole::Source;
  return roles;
}

std::vector<VirtualEdge> virtual_edges(const ArchGraph& graph, const Segment& segment,
                                       std::int64_t max_distance) {
  (void)graph;  // the segment carries its edges
  std::vector<VirtualEdge> out;
  const LocalGraph lg(segment);
  const std::size_t n = lg.nodes.size();
  // Breadth-first search from every node, cut at max_distance.
  std::vector<std::int64_t> dist(n, -1);
  std::vector<std::int64_t> frontier, next, seen;
  for (std::size_t i = 0; i < n; ++i) {
    frontier.assign(1, static_cast<std::int64_t>(i));
    seen.assign(1, static_cast<std::int64_t>(i));
    dist[i] = 0;
    for (std::int64_t d = 1; d <= max_distance && !frontier.empty(); ++d) {
      next.clear();
      for (std::int64_t u : frontier)
        for (std::int64_t w : lg.out[u])
          if (dist[w] < 0) {
            dist[w] = d;
            next.push_back(w);
            seen.push_back(w);
          }
      frontier.swap(next);
    }
    for (std::int64_t w : seen)
      if (dist[w] > 0) out.push_back({lg.nodes[i], lg.nodes[w], dist[w]});
    for (std::int64_t w : seen) dist[w] = -1;
  }
  std::sort(out.begin(), out.end(), [](const VirtualEdge& a, const VirtualEdge& b) {
    return std::make_pair(a.from, a.to) < std::make_pair(b.from, b.to);
  });
  return out;
}

namespace detail {

PlanData build_plan(const std::vector<const ArchGraph*>& graphs, const Config& cfg,
                    bool one_at_a_time) {
  PlanData plan;
  std::vector<StepBuild>& steps = plan.steps;
  std::vector<std::int64_t>& types = plan.types;
  std::int64_t base = 0;
  for (const ArchGraph* graph : graphs) {
    const std::int64_t vertices = static_cast<std::int64_t>(boost::num_vertices(*graph));
    const std::vector<Segment> segments = split_segments(*graph, cfg.stacked);
    const std::int64_t n = ghn_node_count(*graph, segments);  // vertices, then input nodes
    plan.base.push_back(base);
    for (std::int64_t v = 0; v < vertices; ++v) types.push_back(node_type((*graph)[v]));
    for (std::int64_t v = vertices; v < n; ++v) types.push_back(-1);  // input nodes: zeros
    if (steps.size() < segments.size()) steps.resize(segments.size());
    // Per-GHN-node bookkeeping: level and row in the level group, position in the segment.
    std::vector<std::int64_t> flevel(n), frow(n), blevel(n), brow(n), pos(n);
    for (std::size_t s = 0; s < segments.size(); ++s) {
      const Segment& seg = segments[s];
      StepBuild& st = steps[s];
      // Stacked GHN: the mean of segment s-1 is the initial state of segment s's input node
      // (handoff=all: it is added to the initial states of the segment's vertices too).
      if (s > 0) {
        HYPERNAS_CHECK(seg.input >= 0, "ghn: internal error: stacked segment ", s,
                       " has no input node");
        const std::int64_t slot = static_cast<std::int64_t>(st.prev_count.size());
        for (std::int64_t u : segments[s - 1].nodes) {
          st.prev_nodes.push_back(base + u);
          st.prev_slot.push_back(slot);
        }
        st.prev_count.push_back(static_cast<float>(segments[s - 1].nodes.size()));
        st.inputs.push_back(base + seg.input);
        st.input_slot.push_back(slot);
        if (cfg.handoff_all)
          for (std::int64_t u : seg.nodes) {
            st.inputs.push_back(base + u);
            st.input_slot.push_back(slot);
          }
      }
      const std::vector<std::int64_t> members = seg.ghn_nodes();
      const std::int64_t offset = static_cast<std::int64_t>(st.nodes.size());
      for (std::size_t i = 0; i < members.size(); ++i) {
        pos[members[i]] = offset + static_cast<std::int64_t>(i);
        st.nodes.push_back(base + members[i]);
      }
      const SegmentLevels levels = segment_levels(*graph, seg, one_at_a_time);
      if (st.forward.size() < levels.forward.size()) st.forward.resize(levels.forward.size());
      if (st.backward.size() < levels.backward.size()) st.backward.resize(levels.backward.size());
      for (std::size_t l = 0; l < levels.forward.size(); ++l)
        for (std::int64_t v : levels.forward[l]) {
          flevel[v] = static_cast<std::int64_t>(l);
          frow[v] = static_cast<std::int64_t>(st.forward[l].idx.size());
          st.forward[l].idx.push_back(base + v);
        }
      for (std::size_t l = 0; l < levels.backward.size(); ++l)
        for (std::int64_t v : levels.backward[l]) {
          blevel[v] = static_cast<std::int64_t>(l);
          brow[v] = static_cast<std::int64_t>(st.backward[l].idx.size());
          st.backward[l].idx.push_back(base + v);
        }
      // The segment's edges (the input node's included), both directions.
      for (const auto& [u, v] : seg.edges) {
        MessagesBuild& f = st.forward[flevel[v]].msg;
        f.src.push_back(base + u);
        f.dst.push_back(frow[v]);
        MessagesBuild& b = st.backward[blevel[u]].msg;
        b.src.push_back(base + v);
        b.dst.push_back(brow[u]);
        st.sync_forward.src.push_back(pos[u]);
        st.sync_forward.dst.push_back(pos[v]);
        st.sync_backward.src.push_back(pos[v]);
        st.sync_backward.dst.push_back(pos[u]);
      }
      if (cfg.virtual_edges) {
        for (const VirtualEdge& e : virtual_edges(*graph, seg, cfg.max_shortest_path)) {
          const float w = 1.0f / static_cast<float>(e.distance);
          MessagesBuild& f = st.forward[flevel[e.to]].msg;
          f.vsrc.push_back(base + e.from);
          f.vdst.push_back(frow[e.to]);
          f.vw.push_back(w);
          MessagesBuild& b = st.backward[blevel[e.from]].msg;
          b.vsrc.push_back(base + e.to);
          b.vdst.push_back(brow[e.from]);
          b.vw.push_back(w);
          st.sync_forward.vsrc.push_back(pos[e.from]);
          st.sync_forward.vdst.push_back(pos[e.to]);
          st.sync_forward.vw.push_back(w);
          st.sync_backward.vsrc.push_back(pos[e.to]);
          st.sync_backward.vdst.push_back(pos[e.from]);
          st.sync_backward.vw.push_back(w);
        }
      }
    }
    base += n;
  }
  plan.total = base;
  // Which groups feed later groups of their pass; the synchronous rounds with global sources.
  std::vector<char> is_source(static_cast<std::size_t>(base), 0);
  auto mark_feeds = [&is_source](std::vector<GroupBuild>& groups) {
    std::fill(is_source.begin(), is_source.end(), 0);
    for (const GroupBuild& g : groups) {
      for (std::int64_t u : g.msg.src) is_source[u] = 1;
      for (std::int64_t u : g.msg.vsrc) is_source[u] = 1;
    }
    for (GroupBuild& g : groups)
      for (std::int64_t v : g.idx) g.feeds = g.feeds || is_source[v];
  };
  for (StepBuild& st : steps) {
    mark_feeds(st.forward);
    mark_feeds(st.backward);
    const MessagesBuild* rounds[2] = {&st.sync_forward, &st.sync_backward};
    for (int d = 0; d < 2; ++d) {
      GroupBuild& g = st.sync[d];
      g.idx = st.nodes;
      g.msg = *rounds[d];
      for (std::int64_t& u : g.msg.src) u = st.nodes[u];
      for (std::int64_t& u : g.msg.vsrc) u = st.nodes[u];
      g.feeds = true;
    }
  }
  return plan;
}

}  // namespace detail

}  // namespace hypernas::ghn
