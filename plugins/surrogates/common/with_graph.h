#pragma once
/// @file with_graph.h
/// @brief An architecture with its graph, for surrogates that read it: architectures read back
/// from a results store carry only their text.

#include <hypernas/error.h>
#include <hypernas/space.h>

namespace hypernas::plugins {

/// `arch` itself, or, when it carries only its text, `space`'s parse of it into `storage`.
/// Throws Error (prefixed with `who`) when it has no graph and no space was given.
inline const Architecture& with_graph(const Architecture& arch, const SearchSpace* space,
                                      Architecture& storage, const char* who) {
  if (boost::num_vertices(arch.graph) > 0) return arch;
  HYPERNAS_CHECK(space != nullptr, who, ": architecture '", abbreviate(arch.text),
                 "' has no graph and no search space was given to rebuild it");
  storage = space->parse(arch.text);
  return storage;
}

}  // namespace hypernas::plugins
