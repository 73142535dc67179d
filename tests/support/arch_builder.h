#pragma once
/// @file arch_builder.h
/// @brief A tiny graph builder for hand-made architectures in tests.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <hypernas/architecture.h>

namespace hypernas::test {

/// A tiny graph builder for hand-made architectures.
struct Builder {
  Architecture arch;
  std::size_t add(const std::string& op, const std::string& name, std::int64_t c_in,
                  std::int64_t c_out, std::vector<std::size_t> inputs, std::int64_t kernel = 0,
                  std::int64_t stride = 1, std::int64_t dilation = 1, std::int64_t groups = 1,
                  std::int64_t exit = -1, std::int64_t scale = 0) {
    OpNode n;
    n.op = op;
    n.name = name;
    n.c_in = c_in;
    n.c_out = c_out;
    n.kernel = kernel;
    n.stride = stride;
    n.dilation = dilation;
    n.groups = groups;
    n.exit = exit;
    n.scale = scale;
    const std::size_t v = boost::add_vertex(n, arch.graph);
    for (std::size_t u : inputs) boost::add_edge(u, v, arch.graph);
    return v;
  }
};

}  // namespace hypernas::test
