#pragma once
/// @file shapes.h
/// @brief expect_consistent_shapes(): runs channel counts and spatial sizes through an
/// architecture's graph as the executor would, for the tests of search spaces.

#include <algorithm>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <hypernas/architecture.h>

namespace hypernas::test {

/// `size` halved (rounding up) `scale` times: the spatial size at scale `scale`.
inline std::int64_t ceil_div_pow2(std::int64_t size, std::int64_t scale) {
  for (std::int64_t s = 0; s < scale; ++s) size = (size + 1) / 2;
  return size;
}

/// What a space's graphs may contain beyond plain chains of ops.
struct ShapeRules {
  /// `add` nodes without in-neighbours (the SDK's constant-zero node) are allowed.
  bool sourceless_add = true;
  /// `concat` nodes are allowed.
  bool concat = true;
};

/// Runs the shapes through the graph as the executor would (architecture.h conventions) on
/// `input_size` x `input_size` inputs and fails on any disagreement with the declared
/// attributes, or on a node `rules` do not allow.
inline void expect_consistent_shapes(const ArchGraph& g, std::int64_t input_size,
                                     ShapeRules rules = {}) {
  const std::size_t n = boost::num_vertices(g);
  std::vector<std::int64_t> channels(n), size(n);
  for (std::size_t v = 0; v < n; ++v) {
    const OpNode& node = g[v];
    SCOPED_TRACE(node.name);
    std::vector<std::size_t> in;
    for (auto [it, last] = boost::in_edges(v, g); it != last; ++it)
      in.push_back(boost::source(*it, g));
    std::sort(in.begin(), in.end());
    if (!rules.concat) {
      ASSERT_NE(node.op, "concat");
    }
    std::int64_t c = 0, s = input_size;
    if (node.op == "input") {
      ASSERT_TRUE(in.empty());
      c = node.c_out;
    } else if (in.empty()) {
      ASSERT_TRUE(rules.sourceless_add) << "only the input has no in-neighbours in this space";
      ASSERT_EQ(node.op, "add");
      c = node.c_out;
      s = ceil_div_pow2(input_size, node.scale);
    } else {
      s = size[in[0]];
      std::int64_t sum = 0;
      for (std::size_t u : in) {
        ASSERT_EQ(size[u], s) << "input '" << g[u].name << "' has another spatial size";
        if (node.op != "concat") {
          ASSERT_EQ(channels[u], node.c_in) << "input '" << g[u].name << "'";
        }
        sum += channels[u];
      }
      c = node.op == "concat" ? sum : node.c_in;
    }
    if (node.op == "conv") {
      ASSERT_EQ(c % node.groups, 0);
      ASSERT_EQ(node.c_out % node.groups, 0);
      const std::int64_t pad = node.dilation * (node.kernel - 1) / 2;
      s = (s + 2 * pad - node.dilation * (node.kernel - 1) - 1) / node.stride + 1;
      c = node.c_out;
    } else if (node.op == "avg_pool" || node.op == "max_pool") {
      const std::int64_t pad = node.kernel % 2 == 1 ? node.kernel / 2 : 0;
      s = (s + 2 * pad - node.kernel) / node.stride + 1;
    } else if (node.op == "resample") {
      ASSERT_EQ(in.size(), 1u) << "a resample reads one node";
      s = ceil_div_pow2(input_size, node.scale);
    } else if (node.op == "gap" || node.op == "linear") {
      s = 1;
      if (node.op == "linear") c = node.c_out;
    }
    ASSERT_EQ(c, node.c_out) << node.op;
    if (node.op != "gap" && node.op != "linear" && node.op != "input") {
      ASSERT_EQ(s, ceil_div_pow2(input_size, node.scale)) << "scale " << node.scale;
    }
    channels[v] = c;
    size[v] = s;
  }
}

}  // namespace hypernas::test
