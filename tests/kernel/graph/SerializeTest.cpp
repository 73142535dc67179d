// Tests of kernel/graph/serialize: canonical JSON, hash, validation, DOT.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <hypernas/error.h>

#include "kernel/graph/serialize.h"
#include "tests/support/errors.h"

namespace hypernas::graph {
namespace {

OpNode node(const std::string& name, const std::string& op, std::int64_t c_in, std::int64_t c_out,
            std::int64_t kernel = 0) {
  OpNode n;
  n.name = name;
  n.op = op;
  n.c_in = c_in;
  n.c_out = c_out;
  n.kernel = kernel;
  return n;
}

/// in -> c1 (conv 3x3) -> b1 -> r1 -> sum <- c1 ; sum -> gap -> fc (exit 0).
/// Edges are added out of order on purpose: the canonical form sorts them.
Architecture small_arch(const std::vector<std::pair<int, int>>& edge_order = {
                            {4, 5}, {1, 4}, {0, 1}, {3, 4}, {1, 2}, {5, 6}, {2, 3}}) {
  Architecture a;
  a.space = "test";
  a.text = "conv-bn-relu+skip";
  auto& g = a.graph;
  boost::add_vertex(node("in", "input", 0, 3), g);
  boost::add_vertex(node("c1", "conv", 3, 8, 3), g);
  boost::add_vertex(node("b1", "bn", 8, 8), g);
  boost::add_vertex(node("r1", "relu", 8, 8), g);
  boost::add_vertex(node("sum", "add", 8, 8), g);
  boost::add_vertex(node("gap", "gap", 8, 8), g);
  OpNode fc = node("fc", "linear", 8, 10);
  fc.exit = 0;
  boost::add_vertex(fc, g);
  for (auto [u, v] : edge_order) boost::add_edge(u, v, g);
  return a;
}

const char* const kSmallJson =
    R"({"edges":[[0,1],[1,2],[1,4],[2,3],[3,4],[4,5],[5,6]],"nodes":[)"
    R"({"c_in":0,"c_out":3,"dilation":1,"exit":-1,"groups":1,"kernel":0,"module":-1,"name":"in","op":"input","scale":0,"stride":1},)"
    R"({"c_in":3,"c_out":8,"dilation":1,"exit":-1,"groups":1,"kernel":3,"module":-1,"name":"c1","op":"conv","scale":0,"stride":1},)"
    R"({"c_in":8,"c_out":8,"dilation":1,"exit":-1,"groups":1,"kernel":0,"module":-1,"name":"b1","op":"bn","scale":0,"stride":1},)"
    R"({"c_in":8,"c_out":8,"dilation":1,"exit":-1,"groups":1,"kernel":0,"module":-1,"name":"r1","op":"relu","scale":0,"stride":1},)"
    R"({"c_in":8,"c_out":8,"dilation":1,"exit":-1,"groups":1,"kernel":0,"module":-1,"name":"sum","op":"add","scale":0,"stride":1},)"
    R"({"c_in":8,"c_out":8,"dilation":1,"exit":-1,"groups":1,"kernel":0,"module":-1,"name":"gap","op":"gap","scale":0,"stride":1},)"
    R"({"c_in":8,"c_out":10,"dilation":1,"exit":0,"groups":1,"kernel":0,"module":-1,"name":"fc","op":"linear","scale":0,"stride":1}],)"
    R"("space":"test","text":"conv-bn-relu+skip"})";

// Pinned: FNV-1a 64 of kSmallJson. If this changes, every stored hash changes with it.
const char* const kSmallHash = "6a15fe927c0091df";

using hypernas::test::error_of;

#define EXPECT_ERROR_HAS(expr, ...)                                 \
  do {                                                              \
    const std::string msg_ = error_of([&] { (void)(expr); });       \
    for (const char* part : {__VA_ARGS__})                          \
      EXPECT_NE(msg_.find(part), std::string::npos)                 \
          << "message \"" << msg_ << "\" lacks \"" << part << "\""; \
  } while (false)

std::vector<std::pair<std::size_t, std::size_t>> edge_list(const Architecture& a) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (auto [it, end] = boost::edges(a.graph); it != end; ++it)
    out.emplace_back(boost::source(*it, a.graph), boost::target(*it, a.graph));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GraphSerialize, CanonicalJsonIsExact) { EXPECT_EQ(canonical_json(small_arch()), kSmallJson); }

TEST(GraphSerialize, Fnv1aKnownVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(GraphSerialize, HashIsPinned) {
  const std::string h = arch_hash(small_arch());
  EXPECT_EQ(h, kSmallHash);
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(GraphSerialize, EdgeInsertionOrderDoesNotMatter) {
  const Architecture a = small_arch();
  const Architecture b = small_arch({{0, 1}, {1, 2}, {2, 3}, {3, 4}, {1, 4}, {4, 5}, {5, 6}});
  EXPECT_EQ(canonical_json(a), canonical_json(b));
  EXPECT_EQ(arch_hash(a), arch_hash(b));
}

TEST(GraphSerialize, RoundTrip) {
  const Architecture a = small_arch();
  const Architecture b = from_json(canonical_json(a));
  EXPECT_EQ(b.space, a.space);
  EXPECT_EQ(b.text, a.text);
  ASSERT_EQ(boost::num_vertices(b.graph), boost::num_vertices(a.graph));
  for (std::size_t v = 0; v < boost::num_vertices(a.graph); ++v) {
    const OpNode& x = a.graph[v];
    const OpNode& y = b.graph[v];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.c_in, y.c_in);
    EXPECT_EQ(x.c_out, y.c_out);
    EXPECT_EQ(x.kernel, y.kernel);
    EXPECT_EQ(x.stride, y.stride);
    EXPECT_EQ(x.dilation, y.dilation);
    EXPECT_EQ(x.groups, y.groups);
    EXPECT_EQ(x.scale, y.scale);
    EXPECT_EQ(x.module, y.module);
    EXPECT_EQ(x.exit, y.exit);
  }
  EXPECT_EQ(edge_list(a), edge_list(b));
  EXPECT_EQ(canonical_json(b), kSmallJson);
  EXPECT_EQ(arch_hash(b), arch_hash(a));
}

TEST(GraphSerialize, RoundTripKeepsUnicodeAndEscapes) {
  Architecture a = small_arch();
  a.text = "|nor_conv_3x3~0|+|\"quoted\"\\ \xc3\xa9|";
  a.graph[1].name = "s0.c1.e2.conv";
  const Architecture b = from_json(canonical_json(a));
  EXPECT_EQ(b.text, a.text);
  EXPECT_EQ(b.graph[1].name, "s0.c1.e2.conv");
  EXPECT_EQ(arch_hash(b), arch_hash(a));
}

TEST(GraphSerialize, InvalidUtf8IsAnError) {
  Architecture a = small_arch();
  a.text = "bad \xff byte";
  EXPECT_ERROR_HAS(canonical_json(a), "UTF-8");
}

TEST(GraphSerialize, HashChangesWithEveryAttribute) {
  const std::string base = arch_hash(small_arch());
  const std::vector<void (*)(Architecture&)> changes = {
      [](Architecture& a) { a.space = "other"; },
      [](Architecture& a) { a.text = "other"; },
      [](Architecture& a) { a.graph[1].name = "c1x"; },
      [](Architecture& a) { a.graph[3].op = "max_pool"; },
      [](Architecture& a) { a.graph[1].c_in = 4; },
      [](Architecture& a) { a.graph[1].c_out = 9; },
      [](Architecture& a) { a.graph[1].kernel = 5; },
      [](Architecture& a) { a.graph[1].stride = 2; },
      [](Architecture& a) { a.graph[1].dilation = 2; },
      [](Architecture& a) { a.graph[1].groups = 3; },
      [](Architecture& a) { a.graph[1].scale = 1; },
      [](Architecture& a) { a.graph[1].module = 0; },
      [](Architecture& a) { a.graph[6].exit = 1; },
      [](Architecture& a) { boost::add_edge(0, 4, a.graph); },
      [](Architecture& a) { boost::remove_edge(1, 4, a.graph); },
  };
  for (std::size_t i = 0; i < changes.size(); ++i) {
    Architecture a = small_arch();
    changes[i](a);
    EXPECT_NE(arch_hash(a), base) << "change " << i;
  }
}

TEST(GraphValidate, AcceptsTheSmallArchitecture) { EXPECT_NO_THROW(validate(small_arch())); }

TEST(GraphValidate, AcceptsConstantZeroAddNodes) {
  // A cell node whose every incoming edge is `none`: an `add` with no in-neighbours, and a node
  // fed only through it.
  Architecture a = small_arch();
  auto z = boost::add_vertex(node("zero", "add", 0, 8), a.graph);
  auto c = boost::add_vertex(node("after_zero", "conv", 8, 8, 1), a.graph);
  boost::add_edge(z, c, a.graph);
  EXPECT_NO_THROW(validate(a));
}

TEST(GraphValidate, EmptyGraph) {
  Architecture a;
  EXPECT_ERROR_HAS(validate(a), "no nodes");
}

TEST(GraphValidate, EmptyName) {
  Architecture a = small_arch();
  a.graph[2].name = "";
  EXPECT_ERROR_HAS(validate(a), "node 2", "empty name");
}

TEST(GraphValidate, DuplicateName) {
  Architecture a = small_arch();
  a.graph[3].name = "b1";
  EXPECT_ERROR_HAS(validate(a), "node 3 ('b1'", "already used by node 2");
}

TEST(GraphValidate, UnknownOp) {
  Architecture a = small_arch();
  a.graph[3].op = "sep_conv";
  EXPECT_ERROR_HAS(validate(a), "'r1'", "unknown op 'sep_conv'", "linear");
}

TEST(GraphValidate, AttributeOutOfRange) {
  Architecture a = small_arch();
  a.graph[1].stride = 0;
  EXPECT_ERROR_HAS(validate(a), "'c1'", "stride = 0");
  a = small_arch();
  a.graph[1].c_out = -1;
  EXPECT_ERROR_HAS(validate(a), "'c1'", "c_out = -1");
  a = small_arch();
  a.graph[6].exit = -2;
  EXPECT_ERROR_HAS(validate(a), "'fc'", "exit = -2");
}

TEST(GraphValidate, BackwardEdge) {
  Architecture a = small_arch();
  boost::add_edge(5, 2, a.graph);
  EXPECT_ERROR_HAS(validate(a), "5 -> 2", "'gap'", "'b1'", "backwards");
}

TEST(GraphValidate, SelfLoop) {
  Architecture a = small_arch();
  boost::add_edge(3, 3, a.graph);
  EXPECT_ERROR_HAS(validate(a), "'r1'", "to itself");
}

TEST(GraphValidate, DuplicateEdge) {
  Architecture a = small_arch();
  boost::add_edge(1, 2, a.graph);
  EXPECT_ERROR_HAS(validate(a), "1 -> 2", "more than once");
}

TEST(GraphValidate, NoInput) {
  Architecture a = small_arch();
  a.graph[0].op = "add";
  EXPECT_ERROR_HAS(validate(a), "no node has op 'input'");
}

TEST(GraphValidate, TwoInputs) {
  Architecture a = small_arch();
  a.graph[2].op = "input";
  EXPECT_ERROR_HAS(validate(a), "'in' and 'b1'", "exactly one");
}

TEST(GraphValidate, InputWithInNeighbours) {
  Architecture a;
  boost::add_vertex(node("pre", "add", 0, 3), a.graph);
  boost::add_vertex(node("in", "input", 0, 3), a.graph);
  boost::add_edge(0, 1, a.graph);
  EXPECT_ERROR_HAS(validate(a), "'in'", "has in-neighbours");
}

TEST(GraphValidate, UnreachableNode) {
  Architecture a = small_arch();
  auto v = boost::add_vertex(node("orphan", "conv", 8, 8, 3), a.graph);
  auto w = boost::add_vertex(node("after_orphan", "relu", 8, 8), a.graph);
  boost::add_edge(v, w, a.graph);
  EXPECT_ERROR_HAS(validate(a), "node 7 ('orphan', conv)", "not reachable from the input");
}

// "At least one node without out-neighbours" cannot fail once edges run forward (the last
// vertex never has an out-edge), so it has no error test of its own.

TEST(GraphFromJson, NotJson) {
  EXPECT_ERROR_HAS(from_json("{\"space\": "), "architecture JSON", "not valid JSON");
  EXPECT_ERROR_HAS(from_json("[1, 2]"), "expected an object");
}

TEST(GraphFromJson, MissingTopLevelField) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j.erase("nodes");
  EXPECT_ERROR_HAS(from_json(j.dump()), "missing field 'nodes'");
  j = nlohmann::json::parse(kSmallJson);
  j.erase("space");
  EXPECT_ERROR_HAS(from_json(j.dump()), "missing field 'space'");
}

TEST(GraphFromJson, MissingNodeField) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j["nodes"][1].erase("op");
  EXPECT_ERROR_HAS(from_json(j.dump()), "node 1 ('c1')", "missing field 'op'");
  j = nlohmann::json::parse(kSmallJson);
  j["nodes"][4].erase("name");
  EXPECT_ERROR_HAS(from_json(j.dump()), "node 4", "missing field 'name'");
}

TEST(GraphFromJson, WrongFieldType) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j["nodes"][1]["kernel"] = "3";
  EXPECT_ERROR_HAS(from_json(j.dump()), "node 1 ('c1')", "'kernel'", "integer", "string");
  j = nlohmann::json::parse(kSmallJson);
  j["nodes"][2]["c_out"] = 8.5;
  EXPECT_ERROR_HAS(from_json(j.dump()), "node 2 ('b1')", "'c_out'", "integer");
  j = nlohmann::json::parse(kSmallJson);
  j["text"] = 7;
  EXPECT_ERROR_HAS(from_json(j.dump()), "'text'", "string");
}

TEST(GraphFromJson, UnknownField) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j["nodes"][3]["kernal"] = 3;
  EXPECT_ERROR_HAS(from_json(j.dump()), "node 3 ('r1')", "unknown field 'kernal'");
}

TEST(GraphFromJson, BadEdges) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j["edges"][2] = nlohmann::json::array({1, 99});
  EXPECT_ERROR_HAS(from_json(j.dump()), "edge 2", "target 99", "not a node index");
  j = nlohmann::json::parse(kSmallJson);
  j["edges"][0] = nlohmann::json::array({0});
  EXPECT_ERROR_HAS(from_json(j.dump()), "edge 0", "pair");
}

TEST(GraphFromJson, ValidatesTheGraph) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  j["edges"].push_back(nlohmann::json::array({6, 0}));
  EXPECT_ERROR_HAS(from_json(j.dump()), "backwards");
}

TEST(GraphFromJson, AcceptsAnyEdgeOrderAndWhitespace) {
  nlohmann::json j = nlohmann::json::parse(kSmallJson);
  std::reverse(j["edges"].begin(), j["edges"].end());
  const Architecture a = from_json(j.dump(2));
  EXPECT_EQ(canonical_json(a), kSmallJson);
}

TEST(GraphDot, LabelsAndEdges) {
  const std::string dot = to_dot(small_arch());
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  EXPECT_NE(dot.find(R"(n1 [label="c1\nconv 3x3 3->8"];)"), std::string::npos) << dot;
  EXPECT_NE(dot.find(R"(n2 [label="b1\nbn 8->8"];)"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n0 -> n1;"), std::string::npos);
  EXPECT_NE(dot.find("n1 -> n4;"), std::string::npos);
  EXPECT_EQ(dot.back(), '\n');
  EXPECT_NE(dot.find("}\n"), std::string::npos);
}

TEST(GraphDot, EscapesQuotes) {
  Architecture a = small_arch();
  a.graph[1].name = "c\"1";
  const std::string dot = to_dot(a);
  EXPECT_NE(dot.find(R"(label="c\"1\nconv)"), std::string::npos) << dot;
}

}  // namespace
}  // namespace hypernas::graph
