#pragma once
/// @file graph_builder.h
/// @brief The part of building an architecture graph every search space shares: appending
/// nodes in creation order, which is a topological order because a node is created after the
/// nodes it reads.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hypernas/architecture.h"

namespace hypernas {

/// Appends vertices and edges in creation order. Spaces derive their own builders from it and
/// add their compound operations (ReLU-conv-BN, cells, ...).
class GraphBuilder {
 public:
  /// A vertex of the graph being built.
  using Vertex = ArchGraph::vertex_descriptor;

  /// Adds `node` reading `inputs` (summed, or concatenated for `concat`, in this order).
  Vertex add(OpNode node, const std::vector<Vertex>& inputs) {
    const Vertex v = boost::add_vertex(std::move(node), graph_);
    for (Vertex u : inputs) boost::add_edge(u, v, graph_);
    return v;
  }

  /// One node with the attributes most nodes need; the rest keep OpNode's defaults.
  static OpNode node(const char* op, std::string name, std::int64_t c_in, std::int64_t c_out,
                     std::int64_t scale, std::int64_t module) {
    OpNode n;
    n.op = op;
    n.name = std::move(name);
    n.c_in = c_in;
    n.c_out = c_out;
    n.scale = scale;
    n.module = module;
    return n;
  }

  /// The graph built so far (the builder is empty afterwards).
  ArchGraph take() { return std::move(graph_); }

 private:
  ArchGraph graph_;
};

}  // namespace hypernas
