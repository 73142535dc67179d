#pragma once
/// @file serialize.h
/// @brief Canonical JSON form, stable hash, validation and Graphviz output of an Architecture.
///
/// The canonical JSON is the identity of an architecture: the results store keys every
/// architecture by arch_hash(), the FNV-1a hash of canonical_json(). Any change to the format
/// below changes every hash, so it is pinned by a test.
///
/// Format (compact, keys sorted, no whitespace):
/// @code
/// {"edges":[[u,v],...],                      // sorted by (u, v)
///  "nodes":[{"c_in":..,"c_out":..,"dilation":..,"exit":..,"groups":..,"kernel":..,
///            "module":..,"name":"..","op":"..","scale":..,"stride":..}, ...],  // vertex order
///  "space":"..","text":".."}
/// @endcode

#include <cstdint>
#include <string>

#include <hypernas/architecture.h>
#include <hypernas/hash.h>

namespace hypernas::graph {

/// The deterministic compact JSON of `arch` (see the file comment for the format): the same
/// architecture always gives the same bytes, whatever order its edges were added in.
/// Throws hypernas::Error when a string (space, text, a node name or op) is not valid UTF-8.
std::string canonical_json(const Architecture& arch);

/// Parses canonical JSON back into an Architecture, and validates it (see validate()).
/// Every field of the format is required and unknown keys are refused; the message of the
/// hypernas::Error thrown names the offending field (and the node or edge index).
Architecture from_json(const std::string& json);

/// The stable hash of `arch`: 64-bit FNV-1a of canonical_json(arch), as 16 lower-case hex digits.
std::string arch_hash(const Architecture& arch);

/// 64-bit FNV-1a of arbitrary bytes, and a value as 16 lower-case hex digits (the form hashes are
/// shown and stored in): the SDK's hypernas::fnv1a64 and hypernas::hex64 (<hypernas/hash.h>),
/// also reachable as graph::fnv1a64 and graph::hex64.
using ::hypernas::fnv1a64;
using ::hypernas::hex64;

/// Checks that `arch` is a graph the executor can run, and throws hypernas::Error naming the
/// node and the problem otherwise:
/// - at least one node; node names non-empty and unique; ops from hypernas::kPrimitiveOps;
/// - attributes in range (c_in, c_out, kernel, scale >= 0; stride, dilation, groups >= 1;
///   module, exit >= -1);
/// - every edge goes from a lower to a higher vertex id (so vertex order is topological and
///   the graph is acyclic), no edge appears twice;
/// - exactly one `input` node, with no in-neighbours;
/// - every node other than the input is reachable from the input, except that an `add` node
///   with no in-neighbours is allowed (the SDK's constant-zero node, "a cell node whose every
///   incoming edge is none") and so are the nodes fed through it;
/// - at least one node without out-neighbours (the output).
void validate(const Architecture& arch);

/// Graphviz DOT text of `arch`: one box per node labelled "name\nop kxk c_in->c_out" (the
/// "kxk" part left out for nodes with kernel 0), one arrow per edge.
std::string to_dot(const Architecture& arch);

}  // namespace hypernas::graph
