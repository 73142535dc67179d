#include "anytime.h"

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <utility>

namespace hypernas::anytime {

namespace {

/// The form users are shown when the structure of a text is wrong.
constexpr const char* kFormHint = "op@scale:i,j[!];op@scale:i[!]/...";

/// Most cells a `nodes` list may name (cell k has C * 2^k channels), and most nodes per cell.
constexpr std::size_t kMaxCells = 16;
constexpr std::int64_t kMaxNodes = 1000;

std::string known_ops() {
  std::string list;
  for (const char* op : kOpNames) list += (list.empty() ? "" : ", ") + std::string(op);
  return list;
}

bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

/// "24,16,8", the form a `nodes` list is shown in.
std::string join(const std::vector<std::int64_t>& counts) {
  std::string out;
  for (std::int64_t n : counts) out += cat(out.empty() ? "" : ",", n);
  return out;
}

/// [begin, end) ranges of `text` between `sep` characters, within [begin, end).
std::vector<std::pair<std::size_t, std::size_t>> split(const std::string& text, std::size_t begin,
                                                       std::size_t end, char sep) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (std::size_t p = begin, start = begin; p <= end; ++p) {
    if (p == end || text[p] == sep) {
      out.emplace_back(start, p);
      start = p + 1;
    }
  }
  return out;
}

/// Appends vertices and edges in creation order, which is a topological order because every
/// node is created after the nodes it reads.
class GraphBuilder : public hypernas::GraphBuilder {
 public:
  /// A node of `c` channels in and out.
  Vertex unary(const char* op, const std::vector<Vertex>& in, std::string name, std::int64_t c,
               std::int64_t scale, std::int64_t module) {
    return add(node(op, std::move(name), c, c, scale, module), in);
  }

  /// A stride-1 convolution (no bias) with "same" padding.
  Vertex conv(Vertex in, std::string name, std::int64_t c_in, std::int64_t c_out,
              std::int64_t kernel, std::int64_t dilation, std::int64_t scale, std::int64_t module) {
    OpNode n = node("conv", std::move(name), c_in, c_out, scale, module);
    n.kernel = kernel;
    n.dilation = dilation;
    return add(std::move(n), {in});
  }

  /// ReLU -> conv -> BN reading `in`; returns the BN.
  Vertex relu_conv_bn(const std::vector<Vertex>& in, const std::string& prefix, std::int64_t c_in,
                      std::int64_t c_out, std::int64_t kernel, std::int64_t dilation,
                      std::int64_t scale, std::int64_t module) {
    Vertex x = unary("relu", in, prefix + ".relu", c_in, scale, module);
    x = conv(x, prefix + ".conv", c_in, c_out, kernel, dilation, scale, module);
    return unary("bn", {x}, prefix + ".bn", c_out, scale, module);
  }

  /// Cell node `prefix` applying `op` to `in` (one vertex) at c channels; returns its output.
  Vertex node_op(int op, Vertex in, const std::string& prefix, std::int64_t c, std::int64_t scale,
                 std::int64_t module) {
    switch (op) {
      case kConv1x1: return relu_conv_bn({in}, prefix, c, c, 1, 1, scale, module);
      case kConv3x3: return relu_conv_bn({in}, prefix, c, c, 3, 1, scale, module);
      case kConv5x5: return relu_conv_bn({in}, prefix, c, c, 5, 1, scale, module);
      case kDilConv3x3: return relu_conv_bn({in}, prefix, c, c, 3, 2, scale, module);
      case kDilConv5x5: return relu_conv_bn({in}, prefix, c, c, 5, 2, scale, module);
      case kMaxPool3x3:
      case kAvgPool3x3: {
        OpNode n = node(op == kMaxPool3x3 ? "max_pool" : "avg_pool", prefix + ".pool", c, c, scale,
                        module);
        n.kernel = 3;
        return add(std::move(n), {in});
      }
      default: throw Error(cat("anytime: invalid op id ", op, " in '", prefix, "'"));
    }
  }

  /// The exit head of node `prefix`: BN -> ReLU -> gap -> linear (exit index set later).
  Vertex exit_head(Vertex in, const std::string& prefix, std::int64_t c, std::int64_t classes,
                   std::int64_t scale) {
    Vertex x = unary("bn", {in}, prefix + ".exit.bn", c, scale, -1);
    x = unary("relu", {x}, prefix + ".exit.relu", c, scale, -1);
    x = unary("gap", {x}, prefix + ".exit.gap", c, scale, -1);
    OpNode linear = node("linear", prefix + ".exit.linear", c, classes, scale, -1);
    linear.exit = 0;  // a placeholder: build_graph() numbers the exits by cost
    return add(std::move(linear), {x});
  }
};

}  // namespace

std::vector<std::int64_t> parse_node_counts(const std::string& list) {
  auto bad = [&list](const std::string& why) {
    return UsageError(cat("anytime: option 'nodes' expects a comma-separated list of positive ",
                          "ints, one per cell (e.g. '24,16,8'), got '", abbreviate(list, 60),
                          "': ", why));
  };
  std::vector<std::int64_t> counts;
  const auto items = split(list, 0, list.size(), ',');
  if (items.size() > kMaxCells)
    throw bad(cat(items.size(), " cells, at most ", kMaxCells, " are allowed"));
  for (std::size_t k = 0; k < items.size(); ++k) {
    auto [s, t] = items[k];
    while (s < t && is_space(list[s])) ++s;
    while (t > s && is_space(list[t - 1])) --t;
    const std::string item = list.substr(s, t - s);
    if (item.empty()) throw bad(cat("item ", k + 1, " is empty"));
    if (!std::all_of(item.begin(), item.end(), is_digit) || item.size() > 9)
      throw bad(cat("item ", k + 1, " '", excerpt(item, 0, 32), "' is not a positive int"));
    const std::int64_t n = std::stoll(item);
    if (n < 1 || n > kMaxNodes)
      throw bad(cat("item ", k + 1, " is ", n, "; a cell has 1..", kMaxNodes, " nodes"));
    counts.push_back(n);
  }
  return counts;
}

void check_network(const Network& network, const SpaceConfig& config) {
  HYPERNAS_CHECK(network.cells.size() == config.nodes.size(), "anytime: the space has ",
                 config.nodes.size(), " cells (nodes '", join(config.nodes),
                 "'), got a network of ", network.cells.size());
  for (std::size_t k = 0; k < network.cells.size(); ++k) {
    const std::vector<Node>& nodes = network.cells[k].nodes;
    HYPERNAS_CHECK(static_cast<std::int64_t>(nodes.size()) == config.nodes[k], "anytime: cell ", k,
                   " has ", nodes.size(), " nodes, the space's cell ", k, " has ", config.nodes[k],
                   " (nodes '", join(config.nodes), "')");
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const Node& node = nodes[n];
      const int j = static_cast<int>(n) + 1;
      HYPERNAS_CHECK(node.op >= 0 && node.op < kOps, "anytime: cell ", k, " node ", j,
                     ": invalid op id ", node.op, " (expected 0..", kOps - 1, ")");
      HYPERNAS_CHECK(node.scale >= 0 && node.scale < config.scales, "anytime: cell ", k, " node ",
                     j, ": scale ", node.scale, " out of range [0, ", config.scales, ")");
      HYPERNAS_CHECK(!node.inputs.empty() &&
                         static_cast<std::int64_t>(node.inputs.size()) <= config.max_inputs,
                     "anytime: cell ", k, " node ", j, " reads ", node.inputs.size(),
                     " inputs (expected 1..", config.max_inputs, ")");
      for (std::size_t a = 0; a < node.inputs.size(); ++a) {
        HYPERNAS_CHECK(node.inputs[a] >= 0 && node.inputs[a] < j, "anytime: cell ", k, " node ", j,
                       " reads index ", node.inputs[a], " (expected 0..", j - 1, ")");
        HYPERNAS_CHECK(a == 0 || node.inputs[a] > node.inputs[a - 1], "anytime: cell ", k, " node ",
                       j, "'s inputs are not distinct and ascending (", node.inputs[a], " after ",
                       a == 0 ? 0 : node.inputs[a - 1], ")");
      }
    }
  }
  HYPERNAS_CHECK(!network.cells.empty() && !network.cells.back().nodes.empty() &&
                     network.cells.back().nodes.back().exit,
                 "anytime: the last node of the last cell needs an exit (it is the network's "
                 "output)");
}

std::string network_to_string(const Network& network) {
  std::string out;
  for (std::size_t k = 0; k < network.cells.size(); ++k) {
    if (k > 0) out += '/';
    const std::vector<Node>& nodes = network.cells[k].nodes;
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const Node& node = nodes[n];
      HYPERNAS_CHECK(node.op >= 0 && node.op < kOps, "anytime: invalid op id ", node.op,
                     " in cell ", k, " node ", n + 1);
      if (n > 0) out += ';';
      out += cat(kOpNames[node.op], '@', node.scale, ':');
      for (std::size_t a = 0; a < node.inputs.size(); ++a)
        out += cat(a > 0 ? "," : "", node.inputs[a]);
      if (node.exit) out += '!';
    }
  }
  return out;
}

Network parse_network(const std::string& text, const SpaceConfig& config) {
  // Quotes ~120 characters around the fault, not the whole text (which may be 100 kB).
  auto fail = [&text](std::size_t pos, const std::string& why) {
    return Error(cat("anytime: cannot parse architecture '", excerpt(text, pos), "'",
                     text.size() > 120 ? cat(" (", text.size(), " characters)") : std::string(),
                     ": at character ", pos, ": ", why));
  };
  // A piece of the text quoted inside a message: its start, enough to recognise it.
  auto q = [](const std::string& piece) { return excerpt(piece, 0, 32); };
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && is_space(text[begin])) ++begin;
  while (end > begin && is_space(text[end - 1])) --end;
  if (begin == end) throw fail(begin, cat("the text is empty; expected ", kFormHint));

  const auto cells = split(text, begin, end, '/');
  if (cells.size() != config.nodes.size()) {
    const std::size_t pos =
        cells.size() > config.nodes.size() ? cells[config.nodes.size()].first - 1 : end;
    throw fail(pos, cat("expected ", config.nodes.size(), " cell(s) separated by '/' (the ",
                        "space's 'nodes' option is '", join(config.nodes), "'), found ",
                        cells.size(), " (form ", kFormHint, ")"));
  }

  Network network;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    const auto [cs, ct] = cells[k];
    const auto tokens = split(text, cs, ct, ';');
    const auto expected = static_cast<std::size_t>(config.nodes[k]);
    if (tokens.size() != expected) {
      const std::size_t pos = tokens.size() > expected ? tokens[expected].first - 1 : ct;
      throw fail(pos, cat("cell ", k, " '", q(text.substr(cs, ct - cs)), "' has ", tokens.size(),
                          " node(s) separated by ';', expected ", expected, " (the space's ",
                          "'nodes' option is '", join(config.nodes), "')"));
    }
    Cell cell;
    for (std::size_t n = 0; n < tokens.size(); ++n) {
      const int j = static_cast<int>(n) + 1;
      const auto [s, t] = tokens[n];
      const std::string token = text.substr(s, t - s);
      // " in node token 'op@0:1'", or nothing for a token too long to quote whole (the
      // excerpt of the text shows it).
      const std::string in_token =
          token.size() <= 32 ? cat(" in node token '", token, "'") : std::string();
      const std::string where = cat(" (cell ", k, " node ", j, ")");
      if (token.empty())
        throw fail(s, cat("node ", j, " of cell ", k, " is empty; expected op@scale:inputs"));
      Node node;

      // op
      const std::size_t at = text.find('@', s);
      if (at == std::string::npos || at >= t)
        throw fail(s, cat("node token '", q(token), "'", where, " lacks '@<scale>' (form ",
                          "op@scale:inputs)"));
      const std::string op = text.substr(s, at - s);
      node.op = -1;
      for (int o = 0; o < kOps; ++o)
        if (op == kOpNames[o]) node.op = o;
      if (node.op < 0)
        throw fail(s,
                   cat("unknown op '", q(op), "'", in_token, where, "; known ops: ", known_ops()));

      // scale
      const std::size_t colon = text.find(':', at + 1);
      if (colon == std::string::npos || colon >= t)
        throw fail(at + 1, cat("node token '", q(token), "'", where, " lacks ':<inputs>' (form ",
                               "op@scale:inputs)"));
      const std::string scale = text.substr(at + 1, colon - at - 1);
      const bool canonical_number = !scale.empty() && scale.size() <= 9 &&
                                    std::all_of(scale.begin(), scale.end(), is_digit) &&
                                    (scale.size() == 1 || scale[0] != '0');
      if (!canonical_number)
        throw fail(at + 1, cat("scale '", q(scale), "'", in_token, where, " is not an integer ",
                               "in [0, ", config.scales, ") written without leading zeros"));
      node.scale = std::stoll(scale);
      if (node.scale >= config.scales)
        throw fail(at + 1, cat("scale ", node.scale, in_token, where, " is out of range [0, ",
                               config.scales, ") (the space's 'scales' option)"));

      // inputs
      std::size_t p = colon + 1;
      while (true) {
        std::size_t e = p;
        while (e < t && is_digit(text[e])) ++e;
        if (e == p)
          throw fail(p, cat("expected an input index at '", q(text.substr(p, t - p)), "'", in_token,
                            where));
        const std::string index = text.substr(p, e - p);
        if (index.size() > 1 && index[0] == '0')
          throw fail(p, cat("input '", q(index), "'", in_token, where, " has a leading zero"));
        const int i = index.size() > 9 ? j : std::stoi(index);
        if (i >= j)
          throw fail(p, cat("input ", q(index), in_token, where, " is not in [0, ", j, "): node ",
                            j, " reads the cell input (0) or nodes 1..", j - 1));
        if (std::find(node.inputs.begin(), node.inputs.end(), i) != node.inputs.end())
          throw fail(p, cat("input ", i, in_token, where, " is repeated"));
        if (!node.inputs.empty() && i < node.inputs.back())
          throw fail(p, cat("inputs", in_token, where, " are not ascending: ", i, " after ",
                            node.inputs.back()));
        if (static_cast<std::int64_t>(node.inputs.size()) >= config.max_inputs)
          throw fail(p, cat("input ", i, in_token, where, " is one more than max_inputs = ",
                            config.max_inputs, " (the space's 'max_inputs' option)"));
        node.inputs.push_back(i);
        p = e;
        if (p < t && text[p] == ',') {
          ++p;
          continue;
        }
        break;
      }

      // exit, then nothing
      if (p < t && text[p] == '!') {
        node.exit = true;
        ++p;
      }
      if (p < t)
        throw fail(p, cat("trailing characters '", q(text.substr(p, t - p)), "'", in_token, where,
                          " (a node ends with its inputs and an optional '!')"));
      cell.nodes.push_back(std::move(node));
    }
    network.cells.push_back(std::move(cell));
  }

  if (!network.cells.back().nodes.back().exit) {
    const std::size_t s = split(text, cells.back().first, cells.back().second, ';').back().first;
    throw fail(end, cat("the last node of the last cell ('", q(text.substr(s, end - s)), "') ",
                        "needs an exit '!': it is the network's output"));
  }
  check_network(network, config);  // every rule is checked above; this one never throws
  return network;
}

ArchGraph build_graph(const Network& network, const SpaceConfig& config) {
  check_network(network, config);
  GraphBuilder g;
  using Vertex = GraphBuilder::Vertex;
  struct State {
    Vertex vertex;
    std::int64_t scale;
  };

  Vertex x = g.add(GraphBuilder::node("input", "input", 0, config.input_channels, 0, -1), {});
  x = g.conv(x, "stem.conv", config.input_channels, config.channels, 3, 1, 0, -1);
  x = g.unary("bn", {x}, "stem.bn", config.channels, 0, -1);
  State previous{x, 0};  // the previous cell's last node (the stem for cell 0)
  std::int64_t c_previous = config.channels;
  for (std::size_t k = 0; k < network.cells.size(); ++k) {
    const auto module = static_cast<std::int64_t>(k);
    const std::int64_t c = config.channels << k;
    const std::string cell = cat("c", k);
    std::vector<State> states;
    if (k == 0) {
      states.push_back(previous);
    } else {
      states.push_back({g.relu_conv_bn({previous.vertex}, cell + ".in", c_previous, c, 1, 1,
                                       previous.scale, module),
                        previous.scale});
    }
    const std::vector<Node>& nodes = network.cells[k].nodes;
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const Node& node = nodes[n];
      const std::string prefix = cat(cell, ".n", n + 1);
      std::vector<Vertex> in;
      for (int i : node.inputs) {
        const State& from = states[static_cast<std::size_t>(i)];
        in.push_back(
            from.scale == node.scale
                ? from.vertex
                : g.unary("resample", {from.vertex}, cat(prefix, ".rs", i), c, node.scale, module));
      }
      const Vertex sum =
          in.size() == 1 ? in[0] : g.unary("add", in, prefix + ".sum", c, node.scale, module);
      states.push_back({g.node_op(node.op, sum, prefix, c, node.scale, module), node.scale});
    }
    for (std::size_t n = 0; n < nodes.size(); ++n)
      if (nodes[n].exit)
        g.exit_head(states[n + 1].vertex, cat(cell, ".n", n + 1), c, config.classes,
                    nodes[n].scale);
    previous = states.back();
    c_previous = c;
  }
  ArchGraph graph = g.take();

  // Number the exits by the FLOPs of their own ancestor sets, ties by vertex order.
  const std::vector<ArchStats> cost = count_nodes(graph, config.input_size);
  std::vector<std::pair<std::int64_t, std::size_t>> exits;  // (own FLOPs, vertex)
  for (std::size_t v = 0; v < cost.size(); ++v) {
    if (graph[v].exit < 0) continue;
    const std::vector<bool> need = ancestors(graph, v);
    std::int64_t flops = 0;
    for (std::size_t u = 0; u <= v; ++u)
      if (need[u]) flops += cost[u].flops;
    exits.emplace_back(flops, v);
  }
  std::sort(exits.begin(), exits.end());
  for (std::size_t e = 0; e < exits.size(); ++e)
    graph[exits[e].second].exit = static_cast<std::int64_t>(e);
  return graph;
}

}  // namespace hypernas::anytime

namespace hypernas {

using anytime::Network;

const ParamTable& AnytimeSpace::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_string("nodes", "24,16,8",
                 "operator nodes of each cell, comma-separated (the paper: 3 cells of 24, 16 and "
                 "8 nodes)");
    t.add_int("channels", 16, "C: channels of cell 0 (C * 2^k in cell k)", 1);
    t.add_int("scales", 3, "spatial scale levels 0..scales-1 (full, 1/2, 1/4, ... resolution)", 1,
              16);
    t.add_int("max_inputs", 2, "most distinct earlier inputs a node reads", 1, 1000);
    t.add_real("exit_prob", 0.1, "probability that sample() attaches an exit to a node", 0.0, 1.0);
    t.add_int("input_channels", 3, "channels of the input images", 1);
    t.add_int("input_size", 32, "height = width of the input images", 1);
    t.add_int("classes", 10, "output classes", 1);
    return t;
  }();
  return table;
}

AnytimeSpace::AnytimeSpace(const Options& options) {
  auto in_range = [&options](const char* key, std::int64_t min, std::int64_t max) {
    const std::int64_t v = options.get_int(key);
    HYPERNAS_CHECK(v >= min, "anytime: option '", key, "' expects int >= ", min, ", got '", v, "'");
    HYPERNAS_CHECK(v <= max, "anytime: option '", key, "' expects int <= ", max, ", got '", v, "'");
    return v;
  };
  constexpr std::int64_t kAny = std::int64_t{1} << 40;
  config_.nodes = anytime::parse_node_counts(options.get_string("nodes"));
  config_.channels = in_range("channels", 1, kAny);
  config_.scales = in_range("scales", 1, 16);
  config_.max_inputs = in_range("max_inputs", 1, 1000);
  config_.exit_prob = options.get_real("exit_prob");
  HYPERNAS_CHECK(config_.exit_prob >= 0.0 && config_.exit_prob <= 1.0,
                 "anytime: option 'exit_prob' expects real in [0, 1], got '", config_.exit_prob,
                 "'");
  config_.input_channels = in_range("input_channels", 1, kAny);
  config_.input_size = in_range("input_size", 1, kAny);
  config_.classes = in_range("classes", 1, kAny);
}

Architecture AnytimeSpace::make(const Network& network) const {
  Architecture arch;
  arch.space = name();
  arch.graph = anytime::build_graph(network, config_);  // checks the network first
  arch.text = anytime::network_to_string(network);
  return arch;
}

Network AnytimeSpace::network_of(const Architecture& arch) const {
  HYPERNAS_CHECK(arch.space == name(),
                 "anytime: expected an architecture of space 'anytime', got one of space '",
                 arch.space, "' ('", abbreviate(arch.text), "')");
  return anytime::parse_network(arch.text, config_);
}

Architecture AnytimeSpace::sample(Rng& rng) const {
  Network network;
  for (std::size_t k = 0; k < config_.nodes.size(); ++k) {
    anytime::Cell cell;
    for (std::int64_t j = 1; j <= config_.nodes[k]; ++j) {
      anytime::Node node;
      node.op = static_cast<int>(rng.uniform_int(anytime::kOps));
      node.scale =
          static_cast<std::int64_t>(rng.uniform_int(static_cast<std::uint64_t>(config_.scales)));
      const std::int64_t most = std::min(config_.max_inputs, j);
      const auto count =
          static_cast<std::int64_t>(rng.uniform_int(static_cast<std::uint64_t>(most))) + 1;
      // A partial Fisher-Yates shuffle of 0..j-1: the first `count` are drawn without
      // replacement.
      std::vector<int> pool(static_cast<std::size_t>(j));
      std::iota(pool.begin(), pool.end(), 0);
      for (std::int64_t a = 0; a < count; ++a) {
        const auto b =
            a + static_cast<std::int64_t>(rng.uniform_int(static_cast<std::uint64_t>(j - a)));
        std::swap(pool[static_cast<std::size_t>(a)], pool[static_cast<std::size_t>(b)]);
      }
      node.inputs.assign(pool.begin(), pool.begin() + count);
      std::sort(node.inputs.begin(), node.inputs.end());
      node.exit = rng.uniform() < config_.exit_prob;
      cell.nodes.push_back(std::move(node));
    }
    network.cells.push_back(std::move(cell));
  }
  network.cells.back().nodes.back().exit = true;  // the network's output
  return make(network);
}

Architecture AnytimeSpace::parse(const std::string& text) const {
  return make(anytime::parse_network(text, config_));
}

std::vector<std::string> AnytimeSpace::op_vocabulary() const {
  return {"input",    "conv", "bn",  "relu",   "avg_pool",
          "max_pool", "add",  "gap", "linear", "resample"};
}

ArchStats AnytimeSpace::stats(const Architecture& arch) const {
  // An architecture that carries only its text (its graph not rebuilt) is counted from it.
  if (boost::num_vertices(arch.graph) == 0 && arch.space == name())
    return count_graph(make(network_of(arch)).graph, config_.input_size);
  return count_graph(arch.graph, config_.input_size);
}

}  // namespace hypernas
