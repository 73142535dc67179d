#pragma once
/// @file graph_stats.h
/// @brief Parameter and FLOPs counts of an architecture graph, from its node attributes alone.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "hypernas/architecture.h"
#include "hypernas/error.h"
#include "hypernas/space.h"

namespace hypernas {

/// Parameters and FLOPs of every vertex of `graph` (indexed by vertex) on square inputs of
/// `input_size` pixels: parameters are conv weights, BN weight and bias, linear weight and
/// bias; FLOPs are the multiply-accumulates of convolutions and linear layers (BN, ReLU,
/// pooling, resampling and additions are not counted). Follows the conventions of
/// architecture.h: conv padding dilation*(kernel-1)/2, odd pooling windows padded by kernel/2,
/// an `add` without inputs and a `resample` sized by halving `input_size` `scale` times
/// (rounding up, as a padded stride-2 conv does). Throws Error when the vertex order is not
/// topological.
inline std::vector<ArchStats> count_nodes(const ArchGraph& graph, std::int64_t input_size) {
  const std::size_t n = boost::num_vertices(graph);
  std::vector<ArchStats> out(n);
  std::vector<std::int64_t> size(n, input_size);  // output height = width of each node
  auto at_scale = [input_size](std::int64_t scale) {
    std::int64_t s = input_size;
    for (std::int64_t k = 0; k < scale; ++k) s = (s + 1) / 2;
    return s;
  };
  for (std::size_t v = 0; v < n; ++v) {
    const OpNode& node = graph[v];
    std::int64_t in_size = -1;
    for (auto [it, last] = boost::in_edges(v, graph); it != last; ++it) {
      const std::size_t u = boost::source(*it, graph);
      HYPERNAS_CHECK(u < v, "graph of ", n, " nodes is not in topological order: node '",
                     graph[u].name, "' (", u, ") feeds node '", node.name, "' (", v, ")");
      if (in_size < 0) in_size = size[u];
    }
    // input, or an `add` of zeros at its own scale
    if (in_size < 0) in_size = node.op == "input" ? input_size : at_scale(node.scale);
    std::int64_t out_size = in_size;
    ArchStats& c = out[v];
    if (node.op == "conv") {
      const std::int64_t pad = node.dilation * (node.kernel - 1) / 2;
      out_size = (in_size + 2 * pad - node.dilation * (node.kernel - 1) - 1) / node.stride + 1;
      const std::int64_t weights =
          node.c_out * (node.c_in / node.groups) * node.kernel * node.kernel;
      c.params = weights;
      c.flops = weights * out_size * out_size;
    } else if (node.op == "avg_pool" || node.op == "max_pool") {
      const std::int64_t pad = node.kernel % 2 == 1 ? node.kernel / 2 : 0;
      out_size = (in_size + 2 * pad - node.kernel) / node.stride + 1;
    } else if (node.op == "resample") {
      out_size = at_scale(node.scale);
    } else if (node.op == "bn") {
      c.params = 2 * node.c_out;
    } else if (node.op == "gap") {
      out_size = 1;
    } else if (node.op == "linear") {
      out_size = 1;
      c.params = node.c_out * node.c_in + node.c_out;
      c.flops = node.c_out * node.c_in;
    }
    size[v] = out_size;
  }
  return out;
}

/// Parameters and FLOPs of `graph` in all: the sum of count_nodes(). Search spaces use it for
/// SearchSpace::stats().
inline ArchStats count_graph(const ArchGraph& graph, std::int64_t input_size) {
  ArchStats stats;
  for (const ArchStats& c : count_nodes(graph, input_size)) {
    stats.params += c.params;
    stats.flops += c.flops;
  }
  return stats;
}

/// The vertices `exit`'s output depends on (the exit's vertex and all its ancestors), as a
/// mask indexed by vertex. The vertex order must be topological.
inline std::vector<bool> ancestors(const ArchGraph& graph, std::size_t vertex) {
  std::vector<bool> mask(boost::num_vertices(graph), false);
  HYPERNAS_CHECK(vertex < mask.size(), "vertex ", vertex, " is not in a graph of ", mask.size(),
                 " vertices");
  mask[vertex] = true;
  for (std::size_t v = vertex + 1; v-- > 0;) {
    if (!mask[v]) continue;
    for (auto [it, last] = boost::in_edges(v, graph); it != last; ++it)
      mask[boost::source(*it, graph)] = true;
  }
  return mask;
}

/// ABI 1.3: the FLOPs of an anytime network up to each of its exits, in exit order (OpNode::exit,
/// ascending; the order Executor::forward() returns their logits in): entry k is the cost of
/// computing everything exits 0..k need, each vertex counted once however many exits share
/// it, i.e. what inference spends when it goes on from one exit to the next and stops after
/// exit k. Non-decreasing. A graph without exits has one entry: the cost of its last vertex and its
/// ancestors. Counts as count_nodes() does.
inline std::vector<std::int64_t> exit_flops(const ArchGraph& graph, std::int64_t input_size) {
  const std::vector<ArchStats> cost = count_nodes(graph, input_size);
  std::vector<std::pair<std::int64_t, std::size_t>> exits;  // (exit index, vertex)
  for (std::size_t v = 0; v < cost.size(); ++v)
    if (graph[v].exit >= 0) exits.emplace_back(graph[v].exit, v);
  std::sort(exits.begin(), exits.end());
  if (exits.empty() && !cost.empty()) exits.emplace_back(0, cost.size() - 1);
  std::vector<bool> counted(cost.size(), false);
  std::vector<std::int64_t> out;
  std::int64_t total = 0;
  for (const auto& e : exits) {
    const std::vector<bool> need = ancestors(graph, e.second);
    for (std::size_t v = 0; v < cost.size(); ++v)
      if (need[v] && !counted[v]) {
        counted[v] = true;
        total += cost[v].flops;
      }
    out.push_back(total);
  }
  return out;
}

}  // namespace hypernas
