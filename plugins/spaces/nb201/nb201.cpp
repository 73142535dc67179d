#include "nb201.h"

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>

#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <utility>

#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>

namespace hypernas::nb201 {

namespace {

/// The string form users are shown when the structure of a text is wrong.
constexpr const char* kFormHint = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|";

std::string known_ops() {
  std::string list;
  for (const char* op : kOpNames) list += (list.empty() ? "" : ", ") + std::string(op);
  return list;
}

/// Appends vertices and edges in creation order, which is a topological order because every
/// node is created after the nodes it reads. Keeps the names of the nodes it added, by vertex,
/// so that callers can tell which nodes a step created (relaxed_names(), MixChoice::nodes).
class GraphBuilder : public hypernas::GraphBuilder {
 public:
  /// The shared node(), plus a kernel size and stride.
  static OpNode node(const char* op, std::string name, std::int64_t c_in, std::int64_t c_out,
                     std::int64_t scale, std::int64_t module, std::int64_t kernel = 0,
                     std::int64_t stride = 1) {
    OpNode n = hypernas::GraphBuilder::node(op, std::move(name), c_in, c_out, scale, module);
    n.kernel = kernel;
    n.stride = stride;
    return n;
  }

  /// Adds `n` reading `inputs` and records its name.
  Vertex add(OpNode n, const std::vector<Vertex>& inputs) {
    names_.push_back(n.name);
    return hypernas::GraphBuilder::add(std::move(n), inputs);
  }

  /// Names of the vertices added so far, by vertex.
  const std::vector<std::string>& names() const { return names_; }

  /// NAS-Bench-201's ReLUConvBN: ReLU -> conv (no bias) -> BN (affine). Returns the BN.
  Vertex relu_conv_bn(Vertex in, const std::string& prefix, std::int64_t c_in, std::int64_t c_out,
                      std::int64_t kernel, std::int64_t stride, std::int64_t scale_in,
                      std::int64_t module) {
    const std::int64_t scale_out = scale_in + (stride == 2 ? 1 : 0);
    Vertex relu = add(node("relu", prefix + ".relu", c_in, c_in, scale_in, module), {in});
    Vertex conv =
        add(node("conv", prefix + ".conv", c_in, c_out, scale_out, module, kernel, stride), {relu});
    return add(node("bn", prefix + ".bn", c_out, c_out, scale_out, module), {conv});
  }

  /// The op `op` (not `none`) of an edge reading `in`, its nodes named `<prefix>.<part>`;
  /// returns its output (`in` itself for skip_connect).
  Vertex edge_op(int op, Vertex in, const std::string& prefix, std::int64_t channels,
                 std::int64_t scale, std::int64_t module) {
    switch (op) {
      case kSkip: return in;
      case kConv1x1:
      case kConv3x3:
        return relu_conv_bn(in, prefix, channels, channels, op == kConv1x1 ? 1 : 3, 1, scale,
                            module);
      case kAvgPool3x3:
        return add(node("avg_pool", prefix + ".pool", channels, channels, scale, module, 3, 1),
                   {in});
      default: throw Error(cat("nb201: invalid op id ", op, " in '", prefix, "'"));
    }
  }

  /// One cell of `cell`'s ops reading `in`; returns its output (cell node 3). With `renames`,
  /// records the relaxed name of every op node it creates (see relaxed_names()).
  Vertex cell(const Cell& cell, Vertex in, const std::string& prefix, std::int64_t channels,
              std::int64_t scale, std::int64_t module,
              std::map<std::string, std::string>* renames = nullptr) {
    std::array<Vertex, 4> nodes{};
    nodes[0] = in;
    int edge = 0;
    for (int j = 1; j < 4; ++j) {
      const std::string node_name = cat(prefix, ".n", j);
      std::vector<Vertex> inputs;
      for (int i = 0; i < j; ++i, ++edge) {
        const int op = cell.ops[edge];
        if (op == kNone) continue;
        if (op < 0 || op >= kOps) throw Error(cat("nb201: invalid op id ", op, " on edge ", edge));
        const std::string edge_name = cat(node_name, ".e", i);
        const std::size_t first = names_.size();
        inputs.push_back(edge_op(op, nodes[i], edge_name, channels, scale, module));
        if (renames) {
          const std::string relaxed = cat(edge_name, ".", kOpNames[op]);
          for (std::size_t v = first; v < names_.size(); ++v)
            (*renames)[names_[v]] = relaxed + names_[v].substr(edge_name.size());
        }
      }
      // NOTE: with no inputs this `add` yields zeros (every incoming edge is `none`).
      nodes[j] = add(node("add", node_name, channels, channels, scale, module), inputs);
    }
    return nodes[3];
  }

  /// One relaxed cell reading `in` (see build_relaxation()); appends its branches to `mixes`
  /// and returns its output (cell node 3).
  Vertex relaxed_cell(Vertex in, const std::string& prefix, std::int64_t channels,
                      std::int64_t scale, std::int64_t module, std::vector<MixChoice>& mixes) {
    std::array<Vertex, 4> nodes{};
    nodes[0] = in;
    int edge = 0;
    for (int j = 1; j < 4; ++j) {
      const std::string node_name = cat(prefix, ".n", j);
      std::vector<Vertex> inputs;
      for (int i = 0; i < j; ++i, ++edge) {
        for (int op = kNone + 1; op < kOps; ++op) {
          const std::string branch = cat(node_name, ".e", i, ".", kOpNames[op]);
          const std::size_t first = names_.size();
          const Vertex out = edge_op(op, nodes[i], branch, channels, scale, module);
          MixChoice m;
          m.nodes.assign(names_.begin() + static_cast<std::ptrdiff_t>(first), names_.end());
          m.node = branch + ".mix";
          m.block = 0;
          m.row = edge;
          m.col = op;
          m.label = cat(node_name, " <- ", i, ": ", kOpNames[op]);
          inputs.push_back(add(node("mix", m.node, channels, channels, scale, module), {out}));
          mixes.push_back(std::move(m));
        }
      }
      // NOTE: c_out is set, so a node all of whose mixes have probability 0 yields zeros.
      nodes[j] = add(node("add", node_name, channels, channels, scale, module), inputs);
    }
    return nodes[3];
  }

  /// NAS-Bench-201's ResNetBasicblock with stride 2 (c_in -> 2 c_in, scale -> scale + 1).
  Vertex reduction(Vertex in, const std::string& prefix, std::int64_t c_in, std::int64_t scale_in) {
    const std::int64_t c_out = 2 * c_in;
    const std::int64_t scale_out = scale_in + 1;
    Vertex a = relu_conv_bn(in, prefix + ".a", c_in, c_out, 3, 2, scale_in, -1);
    Vertex b = relu_conv_bn(a, prefix + ".b", c_out, c_out, 3, 1, scale_out, -1);
    Vertex pool =
        add(node("avg_pool", prefix + ".shortcut.pool", c_in, c_in, scale_out, -1, 2, 2), {in});
    Vertex conv =
        add(node("conv", prefix + ".shortcut.conv", c_in, c_out, scale_out, -1, 1, 1), {pool});
    return add(node("add", prefix + ".add", c_out, c_out, scale_out, -1), {b, conv});
  }

 private:
  std::vector<std::string> names_;
};

/// Builds a cell instance: (builder, input, name prefix, channels, scale, module) -> output.
using CellMaker =
    std::function<GraphBuilder::Vertex(GraphBuilder&, GraphBuilder::Vertex, const std::string&,
                                       std::int64_t, std::int64_t, std::int64_t)>;

/// The network around the cells (stem, stages, reductions, head), every cell made by `make`.
ArchGraph build_network(const MacroConfig& config, const CellMaker& make) {
  GraphBuilder b;
  const std::int64_t c = config.channels;
  auto in = b.add(GraphBuilder::node("input", "input", 0, config.input_channels, 0, -1), {});
  auto stem =
      b.add(GraphBuilder::node("conv", "stem.conv", config.input_channels, c, 0, -1, 3), {in});
  auto x = b.add(GraphBuilder::node("bn", "stem.bn", c, c, 0, -1), {stem});
  std::int64_t channels = c;
  std::int64_t module = 0;
  for (std::int64_t stage = 1; stage <= 3; ++stage) {
    const std::int64_t scale = stage - 1;
    if (stage > 1) {
      x = b.reduction(x, cat("r", stage - 1), channels, scale - 1);
      channels *= 2;
    }
    for (std::int64_t k = 0; k < config.cells_per_stage; ++k, ++module)
      x = make(b, x, cat("s", stage, ".c", k), channels, scale, module);
  }
  x = b.add(GraphBuilder::node("bn", "head.bn", channels, channels, 2, -1), {x});
  x = b.add(GraphBuilder::node("relu", "head.relu", channels, channels, 2, -1), {x});
  x = b.add(GraphBuilder::node("gap", "head.gap", channels, channels, 2, -1), {x});
  OpNode linear = GraphBuilder::node("linear", "head.linear", channels, config.classes, 2, -1);
  linear.exit = 0;
  b.add(std::move(linear), {x});
  return b.take();
}

}  // namespace

Cell Cell::uniform(int op) {
  Cell c;
  c.ops.fill(op);
  return c;
}

std::uint64_t cell_index(const Cell& cell) {
  std::uint64_t index = 0;
  for (int e = 0; e < kEdges; ++e) {
    HYPERNAS_CHECK(cell.ops[e] >= 0 && cell.ops[e] < kOps, "nb201: invalid op id ", cell.ops[e],
                   " on edge ", e, " (expected 0..", kOps - 1, ")");
    index = index * kOps + static_cast<std::uint64_t>(cell.ops[e]);
  }
  return index;
}

Cell cell_at(std::uint64_t index) {
  HYPERNAS_CHECK(index < kCells, "nb201: architecture index ", index, " is out of range [0, ",
                 kCells, ")");
  Cell cell;
  for (int e = kEdges - 1; e >= 0; --e) {
    cell.ops[e] = static_cast<int>(index % kOps);
    index /= kOps;
  }
  return cell;
}

std::string cell_to_string(const Cell& cell) {
  std::string out;
  int edge = 0;
  for (int j = 1; j < 4; ++j) {
    if (j > 1) out += '+';
    out += '|';
    for (int i = 0; i < j; ++i, ++edge) {
      const int op = cell.ops[edge];
      HYPERNAS_CHECK(op >= 0 && op < kOps, "nb201: invalid op id ", op, " on edge ", edge);
      out += cat(kOpNames[op], '~', i, '|');
    }
  }
  return out;
}

Cell parse_cell(const std::string& text) {
  // Quotes ~120 characters around the fault, not the whole text (which may be 100 kB).
  auto fail = [&text](std::size_t pos, const std::string& why) {
    return Error(cat("nb201: cannot parse architecture '", excerpt(text, pos), "'",
                     text.size() > 120 ? cat(" (", text.size(), " characters)") : std::string(),
                     ": at character ", pos, ": ", why));
  };
  // A piece of the text quoted inside a message: its start, enough to recognise it.
  auto q = [](const std::string& piece) { return excerpt(piece, 0, 32); };
  // " in edge 'op~0'", or nothing for an edge too long to quote whole (the excerpt of the text
  // shows it).
  auto in_edge = [](const std::string& token) {
    return token.size() <= 32 ? cat(" in edge '", token, "'") : std::string();
  };
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && is_space(text[begin])) ++begin;
  while (end > begin && is_space(text[end - 1])) --end;
  if (begin == end) throw fail(begin, cat("the text is empty; expected ", kFormHint));

  // Node groups: [first, second) ranges between '+' separators.
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  for (std::size_t p = begin, start = begin; p <= end; ++p) {
    if (p == end || text[p] == '+') {
      groups.emplace_back(start, p);
      start = p + 1;
    }
  }
  if (groups.size() != 3) {
    const std::size_t pos = groups.size() > 3 ? groups[3].first - 1 : end;
    throw fail(pos, cat("expected 3 node groups separated by '+', found ", groups.size(), " (form ",
                        kFormHint, ")"));
  }

  Cell cell;
  int edge = 0;
  for (int node = 1; node <= 3; ++node) {
    const auto [s, t] = groups[node - 1];
    const std::string group = text.substr(s, t - s);
    if (s == t)
      throw fail(s, cat("node ", node, "'s group is empty; expected ", node,
                        " edge(s) between pipes (form ", kFormHint, ")"));
    if (text[s] != '|')
      throw fail(s, cat("missing '|' at the start of node ", node, "'s group '", q(group), "'"));
    if (t - s < 2 || text[t - 1] != '|')
      throw fail(t, cat("missing '|' at the end of node ", node, "'s group '", q(group), "'"));

    // Edge tokens between the pipes of the group.
    std::vector<std::pair<std::size_t, std::size_t>> tokens;
    for (std::size_t p = s + 1, start = s + 1; p < t; ++p) {
      if (text[p] == '|') {
        tokens.emplace_back(start, p);
        start = p + 1;
      }
    }
    if (static_cast<int>(tokens.size()) != node)
      throw fail(s, cat("node ", node, " needs ", node, " edge(s) (op~0", node > 1 ? "..op~" : "",
                        node > 1 ? std::to_string(node - 1) : std::string(), "), but group '",
                        q(group), "' has ", tokens.size()));

    for (int i = 0; i < node; ++i, ++edge) {
      const auto [ps, pe] = tokens[i];
      const std::string token = text.substr(ps, pe - ps);
      if (token.empty())
        throw fail(ps, cat("empty edge ", i, " in node ", node, "'s group '", q(group), "'"));
      const std::size_t tilde = token.find('~');
      if (tilde == std::string::npos)
        throw fail(ps, cat("edge '", q(token), "' of node ", node,
                           " lacks '~<input>' (expected op~", i, ")"));
      const std::string op = token.substr(0, tilde);
      const std::string input = token.substr(tilde + 1);
      int op_id = -1;
      for (int k = 0; k < kOps; ++k)
        if (op == kOpNames[k]) op_id = k;
      if (op_id < 0)
        throw fail(ps,
                   cat("unknown op '", q(op), "'", in_edge(token), "; known ops: ", known_ops()));
      if (input != std::to_string(i))
        throw fail(ps + tilde + 1, cat("edge '", q(token), "' of node ", node, " reads input '",
                                       q(input), "', expected ", i, " (node ", node,
                                       " lists inputs 0..", node - 1, " in order)"));
      cell.ops[edge] = op_id;
    }
  }
  return cell;
}

ArchGraph build_graph(const Cell& cell, const MacroConfig& config) {
  return build_network(config,
                       [&cell](GraphBuilder& b, GraphBuilder::Vertex in, const std::string& prefix,
                               std::int64_t channels, std::int64_t scale, std::int64_t module) {
                         return b.cell(cell, in, prefix, channels, scale, module);
                       });
}

Relaxation build_relaxation(const MacroConfig& config) {
  Relaxation r;
  r.network.space = "nb201";
  r.network.text = cat("relaxed(nb201, N=", config.cells_per_stage, ", C=", config.channels, ")");
  r.network.graph = build_network(config, [&r](GraphBuilder& b, GraphBuilder::Vertex in,
                                               const std::string& prefix, std::int64_t channels,
                                               std::int64_t scale, std::int64_t module) {
    return b.relaxed_cell(in, prefix, channels, scale, module, r.mixes);
  });
  r.blocks = {{"alpha", {kEdges, kOps}}};
  return r;
}

std::map<std::string, std::string> relaxed_names(const Cell& cell, const MacroConfig& config) {
  std::map<std::string, std::string> renames;
  const ArchGraph graph =
      build_network(config, [&cell, &renames](GraphBuilder& b, GraphBuilder::Vertex in,
                                              const std::string& prefix, std::int64_t channels,
                                              std::int64_t scale, std::int64_t module) {
        return b.cell(cell, in, prefix, channels, scale, module, &renames);
      });
  std::map<std::string, std::string> names;
  for (std::size_t v = 0; v < boost::num_vertices(graph); ++v) {
    const std::string& name = graph[v].name;
    auto it = renames.find(name);
    names.emplace(name, it == renames.end() ? name : it->second);
  }
  return names;
}

ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size) {
  return count_graph(graph, input_size);
}

}  // namespace hypernas::nb201

namespace hypernas {

using nb201::Cell;

const ParamTable& Nb201Space::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("cells_per_stage", 5, "cells in each of the 3 stages (N)", 1);
    t.add_int("channels", 16, "channels of stage 1 (stages 2 and 3 have 2x and 4x)", 1);
    t.add_int("input_channels", 3, "channels of the input images", 1);
    t.add_int("input_size", 32, "height = width of the input images (a multiple of 4)", 4);
    t.add_int("classes", 10, "output classes", 1);
    return t;
  }();
  return table;
}

Nb201Space::Nb201Space(const Options& options) {
  auto positive = [&options](const char* key) {
    const std::int64_t v = options.get_int(key);
    HYPERNAS_CHECK(v >= 1, "nb201: option '", key, "' expects int >= 1, got '", v, "'");
    return v;
  };
  config_.cells_per_stage = positive("cells_per_stage");
  config_.channels = positive("channels");
  config_.input_channels = positive("input_channels");
  config_.input_size = positive("input_size");
  config_.classes = positive("classes");
  HYPERNAS_CHECK(config_.input_size % 4 == 0,
                 "nb201: option 'input_size' expects a multiple of 4 (two stride-2 reductions "
                 "whose branches must agree), got '",
                 config_.input_size, "'");
}

Architecture Nb201Space::make(const Cell& cell) const {
  Architecture arch;
  arch.space = name();
  arch.text = nb201::cell_to_string(cell);
  arch.graph = nb201::build_graph(cell, config_);
  return arch;
}

Cell Nb201Space::cell_of(const Architecture& arch) const {
  HYPERNAS_CHECK(arch.space == name(),
                 "nb201: expected an architecture of space 'nb201', got "
                 "one of space '",
                 arch.space, "' ('", abbreviate(arch.text), "')");
  return nb201::parse_cell(arch.text);
}

Architecture Nb201Space::sample(Rng& rng) const { return at(rng.uniform_int(nb201::kCells)); }

Architecture Nb201Space::parse(const std::string& text) const {
  return make(nb201::parse_cell(text));
}

Architecture Nb201Space::at(std::uint64_t index) const { return make(nb201::cell_at(index)); }

std::vector<std::string> Nb201Space::op_vocabulary() const {
  return {"input", "conv", "bn", "relu", "avg_pool", "add", "gap", "linear"};
}

ArchStats Nb201Space::stats(const Architecture& arch) const {
  // An architecture that carries only its text (its graph not rebuilt) is counted from it.
  if (boost::num_vertices(arch.graph) == 0 && arch.space == name())
    return nb201::graph_stats(make(cell_of(arch)).graph, config_.input_size);
  return nb201::graph_stats(arch.graph, config_.input_size);
}

at::Tensor Nb201Space::encode(const Architecture& arch) const {
  const Cell cell = cell_of(arch);
  at::Tensor out = at::full({nb201::kEdges, nb201::kOps}, -1.0, at::kFloat);
  auto a = out.accessor<float, 2>();
  for (int e = 0; e < nb201::kEdges; ++e) a[e][cell.ops[e]] = 1.0f;
  return out;
}

Architecture Nb201Space::mutate(const Architecture& arch, Rng& rng, double p) const {
  HYPERNAS_CHECK(p >= 0 && p <= 1, "nb201: mutate expects a probability p in [0, 1], got ", p);
  Cell cell = cell_of(arch);
  for (int e = 0; e < nb201::kEdges; ++e) {
    if (!(rng.uniform() < p)) continue;
    // One of the other kOps - 1 ops: skipping the current one keeps the draw uniform.
    int op = static_cast<int>(rng.uniform_int(nb201::kOps - 1));
    if (op >= cell.ops[e]) ++op;
    cell.ops[e] = op;
  }
  return make(cell);
}

std::vector<ArchParamSpec> Nb201Space::arch_params() const {
  return {{"alpha", {nb201::kEdges, nb201::kOps}}};
}

Architecture Nb201Space::discretize(const std::vector<at::Tensor>& alphas,
                                    std::int64_t keep) const {
  HYPERNAS_CHECK(keep >= 1, "nb201: discretize expects keep >= 1, got ", keep);
  HYPERNAS_CHECK(alphas.size() == 1, "nb201: discretize expects 1 alpha block [", nb201::kEdges,
                 ", ", nb201::kOps, "], got ", alphas.size(), " blocks");
  const at::Tensor& alpha = alphas[0];
  HYPERNAS_CHECK(alpha.defined(), "nb201: discretize got an undefined alpha tensor");
  HYPERNAS_CHECK(alpha.dim() == 2 && alpha.size(0) == nb201::kEdges && alpha.size(1) == nb201::kOps,
                 "nb201: discretize expects alpha of shape [", nb201::kEdges, ", ", nb201::kOps,
                 "], got ", alpha.sizes());
  const at::Tensor values = alpha.detach().to(at::Device(at::kCPU), at::kDouble).contiguous();
  auto a = values.accessor<double, 2>();
  Cell cell;
  for (int e = 0; e < nb201::kEdges; ++e) {
    int best = 0;
    for (int k = 0; k < nb201::kOps; ++k) {
      HYPERNAS_CHECK(std::isfinite(a[e][k]), "nb201: discretize got a non-finite alpha ", a[e][k],
                     " at edge ", e, ", op ", k, " (", nb201::kOpNames[k], ")");
      if (a[e][k] > a[e][best]) best = k;
    }
    cell.ops[e] = best;
  }
  return make(cell);
}

Relaxation Nb201Space::relaxed() const { return nb201::build_relaxation(config_); }

Selection Nb201Space::select(const Architecture& arch) const {
  const Cell cell = cell_of(arch);
  Selection s;
  at::Tensor probs = at::zeros({nb201::kEdges, nb201::kOps}, at::kFloat);
  auto p = probs.accessor<float, 2>();
  for (int e = 0; e < nb201::kEdges; ++e) p[e][cell.ops[e]] = 1.0f;
  s.probs.push_back(std::move(probs));
  s.names = nb201::relaxed_names(cell, config_);
  return s;
}

}  // namespace hypernas
