#include "kernel/graph/serialize.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <hypernas/error.h>

namespace hypernas::graph {
namespace {

using Json = nlohmann::json;
using Vertex = ArchGraph::vertex_descriptor;

/// The integer attributes of a node, in the order they are read and checked.
struct IntField {
  const char* key;
  std::int64_t OpNode::*member;
};
constexpr IntField kIntFields[] = {{"c_in", &OpNode::c_in},         {"c_out", &OpNode::c_out},
                                   {"kernel", &OpNode::kernel},     {"stride", &OpNode::stride},
                                   {"dilation", &OpNode::dilation}, {"groups", &OpNode::groups},
                                   {"scale", &OpNode::scale},       {"module", &OpNode::module},
                                   {"exit", &OpNode::exit}};

/// Smallest value allowed for each integer attribute (see validate()).
std::int64_t min_value(const char* key) {
  const std::string k = key;
  if (k == "stride" || k == "dilation" || k == "groups") return 1;
  if (k == "module" || k == "exit") return -1;
  return 0;
}

std::vector<std::pair<std::size_t, std::size_t>> sorted_edges(const ArchGraph& g) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  out.reserve(boost::num_edges(g));
  for (auto [it, end] = boost::edges(g); it != end; ++it)
    out.emplace_back(boost::source(*it, g), boost::target(*it, g));
  std::sort(out.begin(), out.end());
  return out;
}

std::string node_ref(const ArchGraph& g, std::size_t v) {
  return cat("node ", v, " ('", g[v].name, "', ", g[v].op, ")");
}

bool is_primitive(const std::string& op) {
  for (const char* p : kPrimitiveOps)
    if (op == p) return true;
  return false;
}

std::string primitive_list() {
  std::string out;
  for (const char* p : kPrimitiveOps) out += (out.empty() ? "" : ", ") + std::string(p);
  return out;
}

const char* json_type(const Json& j) { return j.type_name(); }

std::string dot_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

/// Where a JSON error is, for messages: "node 3 ('s0.conv')" or "edge 2".
std::string node_where(std::size_t i, const Json& node) {
  auto it = node.find("name");
  if (it != node.end() && it->is_string())
    return cat("node ", i, " ('", it->get<std::string>(), "')");
  return cat("node ", i);
}

[[noreturn]] void fail(const std::string& what) { throw Error(cat("architecture JSON: ", what)); }

void check_keys(const Json& obj, const std::set<std::string>& allowed, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
      fail(cat(where, "unknown field '", it.key(), "' (expected ", list, ")"));
    }
  }
}

const Json& require(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(cat(where, "missing field '", key, "'"));
  return *it;
}

std::string require_string(const Json& obj, const char* key, const std::string& where) {
  const Json& v = require(obj, key, where);
  if (!v.is_string()) fail(cat(where, "field '", key, "' must be a string, got ", json_type(v)));
  return v.get<std::string>();
}

std::int64_t as_int64(const Json& v, const std::string& what) {
  if (!v.is_number_integer()) fail(cat(what, " must be an integer, got ", json_type(v)));
  if (v.is_number_unsigned() &&
      v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    fail(cat(what, " is out of range: ", v.dump()));
  return v.get<std::int64_t>();
}

}  // namespace

std::string canonical_json(const Architecture& arch) {
  const ArchGraph& g = arch.graph;
  Json nodes = Json::array();
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) {
    const OpNode& n = g[v];
    Json node = Json::object();
    node["name"] = n.name;
    node["op"] = n.op;
    for (const IntField& f : kIntFields) node[f.key] = n.*(f.member);
    nodes.push_back(std::move(node));
  }
  Json edges = Json::array();
  for (const auto& [u, v] : sorted_edges(g)) edges.push_back(Json::array({u, v}));
  Json doc = Json::object();  // std::map-backed: keys come out sorted
  doc["space"] = arch.space;
  doc["text"] = arch.text;
  doc["nodes"] = std::move(nodes);
  doc["edges"] = std::move(edges);
  try {
    return doc.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    throw Error(cat("architecture '", abbreviate(arch.text), "' of space '", arch.space,
                    "' cannot be serialised (a string is not valid UTF-8): ", e.what()));
  }
}

Architecture from_json(const std::string& text) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail(cat("not valid JSON: ", e.what()));
  }
  if (!doc.is_object()) fail(cat("expected an object at top level, got ", json_type(doc)));
  check_keys(doc, {"edges", "nodes", "space", "text"}, "");

  Architecture arch;
  arch.space = require_string(doc, "space", "");
  arch.text = require_string(doc, "text", "");

  const Json& nodes = require(doc, "nodes", "");
  if (!nodes.is_array()) fail(cat("field 'nodes' must be an array, got ", json_type(nodes)));
  std::set<std::string> node_keys = {"name", "op"};
  for (const IntField& f : kIntFields) node_keys.insert(f.key);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const Json& jn = nodes[i];
    const std::string where = node_where(i, jn) + ": ";
    if (!jn.is_object()) fail(cat(where, "expected an object, got ", json_type(jn)));
    check_keys(jn, node_keys, where);
    OpNode n;
    n.name = require_string(jn, "name", where);
    n.op = require_string(jn, "op", where);
    for (const IntField& f : kIntFields)
      n.*(f.member) = as_int64(require(jn, f.key, where), cat(where, "field '", f.key, "'"));
    boost::add_vertex(std::move(n), arch.graph);
  }

  const Json& edges = require(doc, "edges", "");
  if (!edges.is_array()) fail(cat("field 'edges' must be an array, got ", json_type(edges)));
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  pairs.reserve(edges.size());
  const auto n = static_cast<std::int64_t>(nodes.size());
  for (std::size_t i = 0; i < edges.size(); ++i) {
    const Json& je = edges[i];
    const std::string where = cat("edge ", i, " (field 'edges'): ");
    if (!je.is_array() || je.size() != 2)
      fail(cat(where, "expected a pair [from, to], got ", je.dump()));
    std::int64_t ends[2];
    for (int k = 0; k < 2; ++k) {
      ends[k] = as_int64(je[k], cat(where, k == 0 ? "source" : "target"));
      if (ends[k] < 0 || ends[k] >= n)
        fail(cat(where, k == 0 ? "source " : "target ", ends[k], " is not a node index (", n,
                 " nodes)"));
    }
    pairs.emplace_back(static_cast<std::size_t>(ends[0]), static_cast<std::size_t>(ends[1]));
  }
  // Added in sorted order, so every graph read back has the same adjacency order.
  std::sort(pairs.begin(), pairs.end());
  for (const auto& [u, v] : pairs) boost::add_edge(u, v, arch.graph);

  validate(arch);
  return arch;
}

std::string arch_hash(const Architecture& arch) { return hex64(fnv1a64(canonical_json(arch))); }

void validate(const Architecture& arch) {
  const ArchGraph& g = arch.graph;
  const std::size_t n = boost::num_vertices(g);
  const std::string what =
      cat("architecture '", abbreviate(arch.text), "' (space '", arch.space, "'): ");
  HYPERNAS_CHECK(n > 0, what, "the graph has no nodes");

  std::map<std::string, std::size_t> names;
  for (std::size_t v = 0; v < n; ++v) {
    const OpNode& node = g[v];
    HYPERNAS_CHECK(!node.name.empty(), what, "node ", v, " (", node.op, ") has an empty name");
    auto [it, fresh] = names.emplace(node.name, v);
    HYPERNAS_CHECK(fresh, what, node_ref(g, v), ": name already used by node ", it->second);
    HYPERNAS_CHECK(is_primitive(node.op), what, node_ref(g, v), ": unknown op '", node.op,
                   "' (expected one of ", primitive_list(), ")");
    for (const IntField& f : kIntFields) {
      const std::int64_t value = node.*(f.member);
      HYPERNAS_CHECK(value >= min_value(f.key), what, node_ref(g, v), ": ", f.key, " = ", value,
                     " is out of range (must be >= ", min_value(f.key), ")");
    }
  }

  std::set<std::pair<std::size_t, std::size_t>> seen;
  for (const auto& [u, v] : sorted_edges(g)) {
    HYPERNAS_CHECK(u != v, what, node_ref(g, u), " has an edge to itself");
    HYPERNAS_CHECK(u < v, what, "edge ", u, " -> ", v, " (from '", g[u].name, "' to '", g[v].name,
                   "') goes backwards: edges must run from a lower to a higher vertex id, "
                   "vertex order being a topological order");
    HYPERNAS_CHECK(seen.emplace(u, v).second, what, "edge ", u, " -> ", v, " (from '", g[u].name,
                   "' to '", g[v].name, "') appears more than once");
  }

  std::size_t input = n;
  for (std::size_t v = 0; v < n; ++v) {
    if (g[v].op != "input") continue;
    HYPERNAS_CHECK(input == n, what, "nodes '", g[input].name, "' and '", g[v].name,
                   "' are both 'input' nodes: exactly one is allowed");
    input = v;
  }
  HYPERNAS_CHECK(input < n, what, "no node has op 'input': exactly one is required");
  HYPERNAS_CHECK(boost::in_degree(input, g) == 0, what, "input ", node_ref(g, input),
                 " has in-neighbours: the input reads nothing");

  // Edges run forward, so a node with an in-neighbour is reached from some source; only the
  // sources need a look. The input and constant-zero `add` nodes are the only allowed sources.
  for (std::size_t v = 0; v < n; ++v) {
    if (v == input || boost::in_degree(v, g) > 0) continue;
    HYPERNAS_CHECK(g[v].op == "add", what, node_ref(g, v),
                   " is not reachable from the input: it has no in-neighbours (only the input and "
                   "a constant-zero 'add' node may have none)");
  }

  bool has_output = false;
  for (std::size_t v = 0; v < n && !has_output; ++v) has_output = boost::out_degree(v, g) == 0;
  HYPERNAS_CHECK(has_output, what, "every node has out-neighbours: there is no output node");
}

std::string to_dot(const Architecture& arch) {
  const ArchGraph& g = arch.graph;
  std::string out = "digraph architecture {\n";
  out += cat("  graph [label=\"", dot_escape(arch.space), ": ", dot_escape(arch.text),
             "\", labelloc=t];\n");
  out += "  node [shape=box];\n";
  for (std::size_t v = 0; v < boost::num_vertices(g); ++v) {
    const OpNode& n = g[v];
    std::string label = dot_escape(n.name) + "\\n" + dot_escape(n.op);
    if (n.kernel > 0) label += cat(" ", n.kernel, "x", n.kernel);
    label += cat(" ", n.c_in, "->", n.c_out);
    out += cat("  n", v, " [label=\"", label, "\"];\n");
  }
  for (const auto& [u, v] : sorted_edges(g)) out += cat("  n", u, " -> n", v, ";\n");
  out += "}\n";
  return out;
}

}  // namespace hypernas::graph
