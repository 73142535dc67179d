#pragma once
/// @file graph_stats.h
/// @brief Parameter and FLOPs counts of an architecture graph, from its node attributes alone.

#include <cstdint>
#include <vector>

#include "hypernas/architecture.h"
#include "hypernas/error.h"
#include "hypernas/space.h"

namespace hypernas {

/// Parameters (conv weights, BN weight and bias, linear weight and bias) and FLOPs
/// (multiply-accumulates of convolutions and linear layers; BN, ReLU, pooling and additions
/// are not counted) of `graph` on square inputs of `input_size` pixels, following the
/// conventions of architecture.h: conv padding dilation*(kernel-1)/2, odd pooling windows
/// padded by kernel/2, an `add` without inputs sized by halving `input_size` `scale` times
/// (rounding up, as a padded stride-2 conv does). Throws Error when the vertex order is not
/// topological. Search spaces use it for SearchSpace::stats().
inline ArchStats count_graph(const ArchGraph& graph, std::int64_t input_size) {
  ArchStats stats;
  const std::size_t n = boost::num_vertices(graph);
  std::vector<std::int64_t> size(n, input_size);  // output height = width of each node
  for (std::size_t v = 0; v < n; ++v) {
    const OpNode& node = graph[v];
    std::int64_t in_size = -1;
    for (auto [it, last] = boost::in_edges(v, graph); it != last; ++it) {
      const std::size_t u = boost::source(*it, graph);
      HYPERNAS_CHECK(u < v, "graph of ", n, " nodes is not in topological order: node '",
                     graph[u].name, "' (", u, ") feeds node '", node.name, "' (", v, ")");
      if (in_size < 0) in_size = size[u];
    }
    if (in_size < 0) {
      // input, or an `add` of zeros at its own scale (each halving rounds up, as a stride-2
      // conv with padding does)
      in_size = input_size;
      if (node.op != "input")
        for (std::int64_t s = 0; s < node.scale; ++s) in_size = (in_size + 1) / 2;
    }
    std::int64_t out_size = in_size;
    if (node.op == "conv") {
      const std::int64_t pad = node.dilation * (node.kernel - 1) / 2;
      out_size = (in_size + 2 * pad - node.dilation * (node.kernel - 1) - 1) / node.stride + 1;
      const std::int64_t weights =
          node.c_out * (node.c_in / node.groups) * node.kernel * node.kernel;
      stats.params += weights;
      stats.flops += weights * out_size * out_size;
    } else if (node.op == "avg_pool" || node.op == "max_pool") {
      const std::int64_t pad = node.kernel % 2 == 1 ? node.kernel / 2 : 0;
      out_size = (in_size + 2 * pad - node.kernel) / node.stride + 1;
    } else if (node.op == "bn") {
      stats.params += 2 * node.c_out;
    } else if (node.op == "gap") {
      out_size = 1;
    } else if (node.op == "linear") {
      out_size = 1;
      stats.params += node.c_out * node.c_in + node.c_out;
      stats.flops += node.c_out * node.c_in;
    }
    size[v] = out_size;
  }
  return stats;
}

}  // namespace hypernas
