#include "ghn.h"

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>

namespace hypernas::ghn_space {

namespace {

/// The form users are shown when the structure of a text is wrong.
constexpr const char* kFormHint = "n1=op<0;n2=op<0,1;...";

std::string known_ops() {
  std::string list;
  for (const char* op : kOpNames) list += (list.empty() ? "" : ", ") + std::string(op);
  return list;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

/// Appends vertices and edges in creation order, which is a topological order because every
/// node is created after the nodes it reads.
class GraphBuilder : public hypernas::GraphBuilder {
 public:
  /// A convolution node (no bias); its output is at `scale_in` (+1 at stride 2).
  Vertex conv(const std::vector<Vertex>& in, std::string name, std::int64_t c_in,
              std::int64_t c_out, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
              std::int64_t groups, std::int64_t scale_in, std::int64_t module) {
    OpNode n = node("conv", std::move(name), c_in, c_out, scale_in + (stride == 2 ? 1 : 0), module);
    n.kernel = kernel;
    n.stride = stride;
    n.dilation = dilation;
    n.groups = groups;
    return add(std::move(n), in);
  }

  Vertex unary(const char* op, const std::vector<Vertex>& in, std::string name, std::int64_t c,
               std::int64_t scale, std::int64_t module) {
    return add(node(op, std::move(name), c, c, scale, module), in);
  }

  /// Block node `prefix` applying `op` to the sum of `in` at c channels; returns its output.
  Vertex block_op(int op, const std::vector<Vertex>& in, const std::string& prefix, std::int64_t c,
                  std::int64_t scale, std::int64_t module) {
    switch (op) {
      case kConv3x3:
      case kConv5x5: {
        Vertex x = unary("relu", in, prefix + ".relu", c, scale, module);
        x = conv({x}, prefix + ".conv", c, c, op == kConv3x3 ? 3 : 5, 1, 1, 1, scale, module);
        return unary("bn", {x}, prefix + ".bn", c, scale, module);
      }
      case kSepConv3x3:
      case kSepConv5x5:
      case kDilConv3x3: {
        const std::int64_t k = op == kSepConv5x5 ? 5 : 3;
        const std::int64_t d = op == kDilConv3x3 ? 2 : 1;
        Vertex x = unary("relu", in, prefix + ".relu", c, scale, module);
        x = conv({x}, prefix + ".dw", c, c, k, 1, d, c, scale, module);
        x = conv({x}, prefix + ".pw", c, c, 1, 1, 1, 1, scale, module);
        return unary("bn", {x}, prefix + ".bn", c, scale, module);
      }
      case kMaxPool3x3:
      case kAvgPool3x3: {
        OpNode n = node(op == kMaxPool3x3 ? "max_pool" : "avg_pool", prefix + ".pool", c, c, scale,
                        module);
        n.kernel = 3;
        return add(std::move(n), in);
      }
      case kIdentity: return unary("add", in, prefix + ".id", c, scale, module);
      default: throw Error(cat("ghn: invalid op id ", op, " in '", prefix, "'"));
    }
  }
};

}  // namespace

void make_canonical(Block& block) {
  HYPERNAS_CHECK(!block.nodes.empty(), "ghn: a block needs at least one node");
  for (std::size_t k = 0; k < block.nodes.size(); ++k) {
    Node& n = block.nodes[k];
    const int index = static_cast<int>(k) + 1;
    HYPERNAS_CHECK(n.op >= 0 && n.op < kOps, "ghn: invalid op id ", n.op, " on node ", index);
    HYPERNAS_CHECK(!n.inputs.empty() && n.inputs.size() <= kMaxInputs, "ghn: node ", index,
                   " reads ", n.inputs.size(), " sources (expected 1 or 2)");
    std::sort(n.inputs.begin(), n.inputs.end());
    for (std::size_t a = 0; a < n.inputs.size(); ++a) {
      HYPERNAS_CHECK(n.inputs[a] >= 0 && n.inputs[a] < index, "ghn: node ", index, " reads node ",
                     n.inputs[a], " (expected 0..", index - 1, ")");
      HYPERNAS_CHECK(a == 0 || n.inputs[a] != n.inputs[a - 1], "ghn: node ", index, " reads node ",
                     n.inputs[a], " twice");
    }
  }
}

std::vector<int> loose_ends(const Block& block) {
  const int n = static_cast<int>(block.nodes.size());
  std::vector<bool> read(static_cast<std::size_t>(n) + 1, false);
  for (const Node& node : block.nodes)
    for (int j : node.inputs)
      if (j >= 0 && j <= n) read[static_cast<std::size_t>(j)] = true;
  std::vector<int> out;
  for (int i = 1; i <= n; ++i)
    if (!read[static_cast<std::size_t>(i)]) out.push_back(i);
  return out;
}

std::string block_to_string(const Block& block) {
  Block b = block;
  make_canonical(b);
  std::string out;
  for (std::size_t k = 0; k < b.nodes.size(); ++k) {
    if (k > 0) out += ';';
    out += cat('n', k + 1, '=', kOpNames[b.nodes[k].op], '<');
    for (std::size_t a = 0; a < b.nodes[k].inputs.size(); ++a)
      out += cat(a > 0 ? "," : "", b.nodes[k].inputs[a]);
  }
  return out;
}

Block parse_block(const std::string& text, std::int64_t nodes) {
  // Quotes ~120 characters around the fault, not the whole text (which may be 100 kB).
  auto fail = [&text](std::size_t pos, const std::string& why) {
    return Error(cat("ghn: cannot parse architecture '", excerpt(text, pos), "'",
                     text.size() > 120 ? cat(" (", text.size(), " characters)") : std::string(),
                     ": at character ", pos, ": ", why));
  };
  // A piece of the text quoted inside a message: its start, enough to recognise it.
  auto q = [](const std::string& piece) { return excerpt(piece, 0, 32); };
  // " in node token 'n2=op<1'", or nothing for a token too long to quote whole (the excerpt
  // of the text shows it).
  auto in_token = [](const std::string& token) {
    return token.size() <= 32 ? cat(" in node token '", token, "'") : std::string();
  };
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  HYPERNAS_CHECK(nodes >= 1, "ghn: parse_block expects nodes >= 1, got ", nodes);
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && is_space(text[begin])) ++begin;
  while (end > begin && is_space(text[end - 1])) --end;
  if (begin == end) throw fail(begin, cat("the text is empty; expected ", kFormHint));

  // Node tokens: [first, second) ranges between ';' separators.
  std::vector<std::pair<std::size_t, std::size_t>> tokens;
  for (std::size_t p = begin, start = begin; p <= end; ++p) {
    if (p == end || text[p] == ';') {
      tokens.emplace_back(start, p);
      start = p + 1;
    }
  }
  if (static_cast<std::int64_t>(tokens.size()) != nodes) {
    const std::size_t pos = static_cast<std::int64_t>(tokens.size()) > nodes
                                ? tokens[static_cast<std::size_t>(nodes)].first - 1
                                : end;
    throw fail(pos, cat("expected ", nodes, " nodes separated by ';' (the space's 'nodes' ",
                        "option), found ", tokens.size(), " (form ", kFormHint, ")"));
  }

  Block block;
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    const int index = static_cast<int>(k) + 1;
    const auto [s, t] = tokens[k];
    const std::string token = text.substr(s, t - s);
    if (token.empty()) throw fail(s, cat("node ", index, " is empty; expected n", index, "=op<j"));
    const std::string label = cat('n', index, '=');
    if (token.compare(0, label.size(), label) != 0) {
      const std::size_t eq = token.find('=');
      throw fail(s, cat("node token '", q(token), "' should start with '", label, "'",
                        eq == std::string::npos
                            ? std::string(" (no '=')")
                            : cat(", not '", q(token.substr(0, eq + 1)), "' (nodes are listed ",
                                  "in order n1, n2, ...)")));
    }
    const std::size_t lt = token.find('<');
    if (lt == std::string::npos)
      throw fail(s, cat("node token '", q(token), "' lacks '<sources>' (expected n", index,
                        "=op<j or n", index, "=op<j,k)"));
    const std::string op = token.substr(label.size(), lt - label.size());
    Node node;
    node.op = -1;
    for (int o = 0; o < kOps; ++o)
      if (op == kOpNames[o]) node.op = o;
    if (node.op < 0)
      throw fail(s + label.size(),
                 cat("unknown op '", q(op), "'", in_token(token), "; known ops: ", known_ops()));
    // Sources between '<' and the end of the token, split by ','.
    std::size_t p = s + lt + 1;
    while (true) {
      std::size_t comma = p;
      while (comma < t && text[comma] != ',') ++comma;
      const std::string src = text.substr(p, comma - p);
      if (!all_digits(src))
        throw fail(p, cat("source '", q(src), "'", in_token(token), " is not a node index"));
      const int j = std::stoi(src);
      if (j >= index)
        throw fail(p, cat("node token '", q(token), "' reads node ", j, "; node ", index,
                          " reads 0..", index - 1));
      if (std::find(node.inputs.begin(), node.inputs.end(), j) != node.inputs.end())
        throw fail(p, cat("node token '", q(token), "' reads node ", j, " twice"));
      if (static_cast<int>(node.inputs.size()) == kMaxInputs)
        throw fail(p, cat("node token '", q(token), "' reads more than ", kMaxInputs, " sources"));
      node.inputs.push_back(j);
      if (comma == t) break;
      p = comma + 1;
    }
    block.nodes.push_back(std::move(node));
  }
  make_canonical(block);
  return block;
}

ArchGraph build_graph(const Block& block, const MacroConfig& config) {
  Block b = block;
  make_canonical(b);
  GraphBuilder g;
  using Vertex = GraphBuilder::Vertex;
  const std::vector<int> ends = loose_ends(b);

  Vertex x = g.add(GraphBuilder::node("input", "input", 0, config.input_channels, 0, -1), {});
  x = g.conv({x}, "stem.conv", config.input_channels, config.channels, 3, 1, 1, 1, 0, -1);
  x = g.unary("bn", {x}, "stem.bn", config.channels, 0, -1);
  std::int64_t c = config.channels;
  for (std::int64_t s = 0; s < config.blocks; ++s) {
    if (s > 0) {
      const std::string r = cat("r", s);
      x = g.unary("relu", {x}, r + ".relu", c, s - 1, -1);
      x = g.conv({x}, r + ".conv", c, 2 * c, 3, 2, 1, 1, s - 1, -1);
      c *= 2;
      x = g.unary("bn", {x}, r + ".bn", c, s, -1);
    }
    std::vector<Vertex> states{x};
    for (std::size_t k = 0; k < b.nodes.size(); ++k) {
      std::vector<Vertex> in;
      for (int j : b.nodes[k].inputs) in.push_back(states[static_cast<std::size_t>(j)]);
      states.push_back(g.block_op(b.nodes[k].op, in, cat("b", s, ".n", k + 1), c, s, s));
    }
    std::vector<Vertex> out;
    for (int i : ends) out.push_back(states[static_cast<std::size_t>(i)]);
    x = g.unary("add", out, cat("b", s, ".out"), c, s, s);
  }
  const std::int64_t scale = config.blocks - 1;
  x = g.unary("relu", {x}, "head.relu", c, scale, -1);
  x = g.unary("gap", {x}, "head.gap", c, scale, -1);
  OpNode linear = GraphBuilder::node("linear", "head.linear", c, config.classes, scale, -1);
  linear.exit = 0;
  g.add(std::move(linear), {x});
  return g.take();
}

ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size) {
  return count_graph(graph, input_size);
}

}  // namespace hypernas::ghn_space

namespace hypernas {

using ghn_space::Block;

const ParamTable& GhnSpace::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("nodes", 7, "N: operator nodes per block (the GHN paper trains on 7)", 1, 1000);
    t.add_int("blocks", 3,
              "stages of one block each; stride-2 reduction and channel doubling "
              "between them",
              1, 16);
    t.add_int("channels", 16, "C: channels of the first stage (C*2^s in stage s)", 1);
    t.add_int("input_channels", 3, "channels of the input images", 1);
    t.add_int("input_size", 32, "height = width of the input images", 1);
    t.add_int("classes", 10, "output classes", 1);
    return t;
  }();
  return table;
}

GhnSpace::GhnSpace(const Options& options) {
  auto in_range = [&options](const char* key, std::int64_t min, std::int64_t max) {
    const std::int64_t v = options.get_int(key);
    HYPERNAS_CHECK(v >= min, "ghn: option '", key, "' expects int >= ", min, ", got '", v, "'");
    HYPERNAS_CHECK(v <= max, "ghn: option '", key, "' expects int <= ", max, ", got '", v, "'");
    return v;
  };
  constexpr std::int64_t kAny = std::int64_t{1} << 40;
  config_.nodes = in_range("nodes", 1, 1000);
  config_.blocks = in_range("blocks", 1, 16);
  config_.channels = in_range("channels", 1, kAny);
  config_.input_channels = in_range("input_channels", 1, kAny);
  config_.input_size = in_range("input_size", 1, kAny);
  config_.classes = in_range("classes", 1, kAny);
}

Architecture GhnSpace::make(Block block) const {
  ghn_space::make_canonical(block);
  HYPERNAS_CHECK(static_cast<std::int64_t>(block.nodes.size()) == config_.nodes, "ghn: the ",
                 "space has blocks of ", config_.nodes, " nodes, got one of ", block.nodes.size());
  Architecture arch;
  arch.space = name();
  arch.text = ghn_space::block_to_string(block);
  arch.graph = ghn_space::build_graph(block, config_);
  return arch;
}

Block GhnSpace::block_of(const Architecture& arch) const {
  HYPERNAS_CHECK(arch.space == name(),
                 "ghn: expected an architecture of space 'ghn', got one "
                 "of space '",
                 arch.space, "' ('", abbreviate(arch.text), "')");
  return ghn_space::parse_block(arch.text, config_.nodes);
}

Architecture GhnSpace::sample(Rng& rng) const {
  Block block;
  for (std::int64_t i = 1; i <= config_.nodes; ++i) {
    ghn_space::Node node;
    const auto choices = static_cast<std::uint64_t>(i);  // sources 0..i-1
    const int a = static_cast<int>(rng.uniform_int(choices));
    node.inputs.push_back(a);
    if (i > 1 && rng.uniform_int(2) == 1) {
      int b = static_cast<int>(rng.uniform_int(choices - 1));
      if (b >= a) ++b;
      node.inputs.push_back(b);
    }
    node.op = static_cast<int>(rng.uniform_int(ghn_space::kOps));
    block.nodes.push_back(std::move(node));
  }
  return make(std::move(block));
}

Architecture GhnSpace::parse(const std::string& text) const {
  return make(ghn_space::parse_block(text, config_.nodes));
}

std::vector<std::string> GhnSpace::op_vocabulary() const {
  return {"input", "conv", "bn", "relu", "avg_pool", "max_pool", "add", "gap", "linear"};
}

ArchStats GhnSpace::stats(const Architecture& arch) const {
  // An architecture that carries only its text (its graph not rebuilt) is counted from it.
  if (boost::num_vertices(arch.graph) == 0 && arch.space == name())
    return ghn_space::graph_stats(make(block_of(arch)).graph, config_.input_size);
  return ghn_space::graph_stats(arch.graph, config_.input_size);
}

at::Tensor GhnSpace::encode(const Architecture& arch) const {
  const Block block = block_of(arch);
  const std::int64_t n = config_.nodes;
  // SMASH's convention, as nb201's and darts's encodings: +1 where set, -1 elsewhere.
  at::Tensor out = at::full({n, ghn_space::kOps + n}, -1.0, at::kFloat);
  auto a = out.accessor<float, 2>();
  for (std::size_t k = 0; k < block.nodes.size(); ++k) {
    const auto row = static_cast<std::int64_t>(k);
    a[row][block.nodes[k].op] = 1.0f;
    for (int j : block.nodes[k].inputs) a[row][ghn_space::kOps + j] = 1.0f;
  }
  return out;
}

Architecture GhnSpace::mutate(const Architecture& arch, Rng& rng, double p) const {
  HYPERNAS_CHECK(p >= 0 && p <= 1, "ghn: mutate expects a probability p in [0, 1], got ", p);
  Block block = block_of(arch);
  // A node < `index` that `node` does not read, uniformly; -1 when there is none.
  auto unread = [&rng](const ghn_space::Node& node, int index) {
    std::vector<int> free;
    for (int j = 0; j < index; ++j)
      if (std::find(node.inputs.begin(), node.inputs.end(), j) == node.inputs.end())
        free.push_back(j);
    return free.empty() ? -1 : free[static_cast<std::size_t>(rng.uniform_int(free.size()))];
  };
  for (std::size_t k = 0; k < block.nodes.size(); ++k) {
    ghn_space::Node& node = block.nodes[k];
    const int index = static_cast<int>(k) + 1;
    if (rng.uniform() < p) {
      int op = static_cast<int>(rng.uniform_int(ghn_space::kOps - 1));
      if (op >= node.op) ++op;  // one of the other ops
      node.op = op;
    }
    if (index >= 2 && rng.uniform() < p) {
      if (node.inputs.size() == 1) {
        node.inputs.push_back(unread(node, index));  // node i >= 2 has i >= 2 sources to read
      } else {
        node.inputs.erase(node.inputs.begin() + static_cast<std::ptrdiff_t>(rng.uniform_int(2)));
      }
      std::sort(node.inputs.begin(), node.inputs.end());
    }
    for (std::size_t a = 0; a < node.inputs.size(); ++a) {
      if (!(rng.uniform() < p)) continue;
      const int j = unread(node, index);
      if (j >= 0) node.inputs[a] = j;
    }
  }
  return make(std::move(block));
}

}  // namespace hypernas
