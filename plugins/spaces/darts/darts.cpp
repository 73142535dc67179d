#include "darts.h"

#include <hypernas/graph_builder.h>
#include <hypernas/graph_stats.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

namespace hypernas::darts {

namespace {

/// The form users are shown when the structure of a text is wrong.
constexpr const char* kCellHint = "[(op,0),(op,1),...] with 8 pairs, or 4 groups split by '|'";

std::string known_ops() {
  std::string list;
  for (const char* op : kOpNames) list += (list.empty() ? "" : ", ") + std::string(op);
  return list;
}

int op_id(const std::string& name) {
  for (int k = 0; k < kOps; ++k)
    if (name == kOpNames[k]) return k;
  return -1;
}

/// The label of genotype block `b`: normal / reduce, or cell<b> with macro.
std::string block_label(std::int64_t b, bool macro) {
  if (macro) return cat("cell", b);
  return b == 0 ? "normal" : "reduce";
}

/// Appends vertices and edges in creation order, which is a topological order because every
/// node is created after the nodes it reads. Keeps the names of the nodes it added, by vertex,
/// so that callers can tell which nodes a step created (relaxed_names(), MixChoice::nodes).
class GraphBuilder : public hypernas::GraphBuilder {
 public:
  /// Adds `n` reading `inputs` and records its name.
  Vertex add(OpNode n, const std::vector<Vertex>& inputs) {
    names_.push_back(n.name);
    return hypernas::GraphBuilder::add(std::move(n), inputs);
  }

  /// Names of the vertices added so far, by vertex.
  const std::vector<std::string>& names() const { return names_; }

  /// A convolution node (no bias); its output is at `scale_in` (+1 at stride 2).
  Vertex conv(Vertex in, std::string name, std::int64_t c_in, std::int64_t c_out,
              std::int64_t kernel, std::int64_t stride, std::int64_t dilation, std::int64_t groups,
              std::int64_t scale_in, std::int64_t module) {
    OpNode n = node("conv", std::move(name), c_in, c_out, scale_in + (stride == 2 ? 1 : 0), module);
    n.kernel = kernel;
    n.stride = stride;
    n.dilation = dilation;
    n.groups = groups;
    return add(std::move(n), {in});
  }

  Vertex relu(Vertex in, std::string name, std::int64_t c, std::int64_t scale,
              std::int64_t module) {
    return add(node("relu", std::move(name), c, c, scale, module), {in});
  }

  Vertex bn(Vertex in, std::string name, std::int64_t c, std::int64_t scale, std::int64_t module) {
    return add(node("bn", std::move(name), c, c, scale, module), {in});
  }

  /// DARTS's ReLUConvBN with a 1x1 kernel and stride 1 (the preprocessing). Returns the BN.
  Vertex relu_conv_bn(Vertex in, const std::string& prefix, std::int64_t c_in, std::int64_t c_out,
                      std::int64_t scale, std::int64_t module) {
    Vertex r = relu(in, prefix + ".relu", c_in, scale, module);
    Vertex c = conv(r, prefix + ".conv", c_in, c_out, 1, 1, 1, 1, scale, module);
    return bn(c, prefix + ".bn", c_out, scale, module);
  }

  /// DARTS's FactorizedReduce (c_in -> c_out, stride 2). DEVIATION (see darts.h): both 1x1
  /// convs read the same pixels; DARTS shifts the second one's input by one pixel.
  Vertex factorized_reduce(Vertex in, const std::string& prefix, std::int64_t c_in,
                           std::int64_t c_out, std::int64_t scale_in, std::int64_t module) {
    HYPERNAS_CHECK(c_out % 2 == 0, "darts: FactorizedReduce '", prefix,
                   "' needs an even number of output channels, got ", c_out);
    const std::int64_t scale_out = scale_in + 1;
    Vertex r = relu(in, prefix + ".relu", c_in, scale_in, module);
    Vertex c1 = conv(r, prefix + ".conv1", c_in, c_out / 2, 1, 2, 1, 1, scale_in, module);
    Vertex c2 = conv(r, prefix + ".conv2", c_in, c_out / 2, 1, 2, 1, 1, scale_in, module);
    Vertex cat_node =
        add(node("concat", prefix + ".cat", c_out, c_out, scale_out, module), {c1, c2});
    return bn(cat_node, prefix + ".bn", c_out, scale_out, module);
  }

  /// DARTS's SepConv: (ReLU, depthwise k, pointwise 1x1, BN) twice; the stride is on the
  /// first depthwise conv.
  Vertex sep_conv(Vertex in, const std::string& prefix, std::int64_t c, std::int64_t kernel,
                  std::int64_t stride, std::int64_t scale_in, std::int64_t module) {
    const std::int64_t scale_out = scale_in + (stride == 2 ? 1 : 0);
    Vertex x = relu(in, prefix + ".relu1", c, scale_in, module);
    x = conv(x, prefix + ".dw1", c, c, kernel, stride, 1, c, scale_in, module);
    x = conv(x, prefix + ".pw1", c, c, 1, 1, 1, 1, scale_out, module);
    x = bn(x, prefix + ".bn1", c, scale_out, module);
    x = relu(x, prefix + ".relu2", c, scale_out, module);
    x = conv(x, prefix + ".dw2", c, c, kernel, 1, 1, c, scale_out, module);
    x = conv(x, prefix + ".pw2", c, c, 1, 1, 1, 1, scale_out, module);
    return bn(x, prefix + ".bn2", c, scale_out, module);
  }

  /// DARTS's DilConv: ReLU, depthwise k with dilation 2, pointwise 1x1, BN.
  Vertex dil_conv(Vertex in, const std::string& prefix, std::int64_t c, std::int64_t kernel,
                  std::int64_t stride, std::int64_t scale_in, std::int64_t module) {
    const std::int64_t scale_out = scale_in + (stride == 2 ? 1 : 0);
    Vertex x = relu(in, prefix + ".relu", c, scale_in, module);
    x = conv(x, prefix + ".dw", c, c, kernel, stride, 2, c, scale_in, module);
    x = conv(x, prefix + ".pw", c, c, 1, 1, 1, 1, scale_out, module);
    return bn(x, prefix + ".bn", c, scale_out, module);
  }

  /// A 3x3 pooling node (padding 1).
  Vertex pool(Vertex in, const char* op, std::string name, std::int64_t c, std::int64_t stride,
              std::int64_t scale_in, std::int64_t module) {
    OpNode n = node(op, std::move(name), c, c, scale_in + (stride == 2 ? 1 : 0), module);
    n.kernel = 3;
    n.stride = stride;
    return add(std::move(n), {in});
  }

  /// The op `op` (not `none`) on node `in`, its nodes named `<prefix>.<part>`; returns its
  /// output (`in` itself for skip_connect at stride 1).
  Vertex op_output(int op, Vertex in, const std::string& prefix, std::int64_t c,
                   std::int64_t stride, std::int64_t scale_in, std::int64_t module) {
    switch (op) {
      case kMaxPool3x3: return pool(in, "max_pool", prefix + ".pool", c, stride, scale_in, module);
      case kAvgPool3x3: return pool(in, "avg_pool", prefix + ".pool", c, stride, scale_in, module);
      case kSkip: return stride == 1 ? in : factorized_reduce(in, prefix, c, c, scale_in, module);
      case kSepConv3x3:
      case kSepConv5x5:
        return sep_conv(in, prefix, c, op == kSepConv3x3 ? 3 : 5, stride, scale_in, module);
      case kDilConv3x3:
      case kDilConv5x5:
        return dil_conv(in, prefix, c, op == kDilConv3x3 ? 3 : 5, stride, scale_in, module);
      default: throw Error(cat("darts: invalid op id ", op, " in '", prefix, "'"));
    }
  }

 private:
  std::vector<std::string> names_;
};

/// Where build_network() builds a cell: what the maker of a node's inputs needs to know.
struct CellSite {
  std::int64_t index = 0;      ///< Cell index i (also the nodes' module).
  bool reduction = false;      ///< A reduction cell (stride 2 on the input nodes).
  std::int64_t channels = 0;   ///< C of the cell's nodes.
  std::int64_t scale_in = 0;   ///< Scale of the input nodes 0 and 1.
  std::int64_t scale_out = 0;  ///< Scale of the intermediate nodes.
  std::string prefix;          ///< "c<i>".
};

/// Makes the inputs of intermediate node `node` of a cell (what its `add` sums), given the
/// cell's nodes built so far.
using NodeMaker = std::function<
    std::vector<GraphBuilder::Vertex>(GraphBuilder& b, const CellSite& site, int node,
                                      const std::array<GraphBuilder::Vertex, kNodes>& states)>;

/// The network of `config` (stem, cells, head) with the inputs of every intermediate node
/// made by `inputs_of`.
ArchGraph build_network(const MacroConfig& config, const NodeMaker& inputs_of) {
  GraphBuilder b;
  using Vertex = GraphBuilder::Vertex;
  const std::int64_t c = config.channels;

  Vertex in = b.add(GraphBuilder::node("input", "input", 0, config.input_channels, 0, -1), {});
  Vertex stem = b.conv(in, "stem.conv", config.input_channels, 3 * c, 3, 1, 1, 1, 0, -1);
  stem = b.bn(stem, "stem.bn", 3 * c, 0, -1);

  Vertex prev_prev = stem, prev = stem;
  std::int64_t c_prev_prev = 3 * c, c_prev = 3 * c, c_curr = c;
  std::int64_t scale_prev_prev = 0, scale_prev = 0;
  bool reduction_prev = false;
  for (std::int64_t i = 0; i < config.layers; ++i) {
    CellSite site;
    site.index = i;
    site.reduction = is_reduction(i, config.layers);
    if (site.reduction) c_curr *= 2;
    site.channels = c_curr;
    site.prefix = cat("c", i);
    site.scale_in = scale_prev;
    site.scale_out = site.scale_in + (site.reduction ? 1 : 0);

    std::array<Vertex, kNodes> states{};
    states[0] = reduction_prev ? b.factorized_reduce(prev_prev, site.prefix + ".pre0", c_prev_prev,
                                                     c_curr, scale_prev_prev, i)
                               : b.relu_conv_bn(prev_prev, site.prefix + ".pre0", c_prev_prev,
                                                c_curr, scale_prev_prev, i);
    states[1] = b.relu_conv_bn(prev, site.prefix + ".pre1", c_prev, c_curr, site.scale_in, i);
    for (int node = kInputNodes; node < kNodes; ++node) {
      const std::vector<Vertex> inputs = inputs_of(b, site, node, states);
      // NOTE: with no inputs (every op `none`) this `add` yields zeros; c_out is set for that.
      states[node] = b.add(GraphBuilder::node("add", cat(site.prefix, ".n", node), c_curr, c_curr,
                                              site.scale_out, i),
                           inputs);
    }
    const Vertex out = b.add(GraphBuilder::node("concat", site.prefix + ".out", kSteps * c_curr,
                                                kSteps * c_curr, site.scale_out, i),
                             {states.begin() + kInputNodes, states.end()});

    prev_prev = prev;
    prev = out;
    c_prev_prev = c_prev;
    c_prev = kSteps * c_curr;
    scale_prev_prev = scale_prev;
    scale_prev = site.scale_out;
    reduction_prev = site.reduction;
  }
  Vertex gap = b.add(GraphBuilder::node("gap", "head.gap", c_prev, c_prev, scale_prev, -1), {prev});
  OpNode linear =
      GraphBuilder::node("linear", "head.linear", c_prev, config.classes, scale_prev, -1);
  linear.exit = 0;
  b.add(std::move(linear), {gap});
  return b.take();
}

/// The graph of `genotype`; with `renames`, records the relaxed name of every op node (see
/// relaxed_names()).
ArchGraph build_genotype(const Genotype& genotype, const MacroConfig& config,
                         std::map<std::string, std::string>* renames) {
  const std::int64_t blocks = config.macro ? config.layers : 2;
  HYPERNAS_CHECK(static_cast<std::int64_t>(genotype.cells.size()) == blocks, "darts: expected ",
                 blocks, " genotype cell(s) (",
                 config.macro ? "macro: one per layer" : "normal, reduce", "), got ",
                 genotype.cells.size());
  std::vector<Cell> cells = genotype.cells;
  for (Cell& cell : cells) make_canonical(cell);
  return build_network(config, [&](GraphBuilder& b, const CellSite& site, int node,
                                   const std::array<GraphBuilder::Vertex, kNodes>& states) {
    const Cell& cell =
        cells[static_cast<std::size_t>(config.macro ? site.index : (site.reduction ? 1 : 0))];
    std::vector<GraphBuilder::Vertex> inputs;
    for (const Input& input : cell.nodes[node - kInputNodes]) {
      if (input.op == kNone) continue;
      const bool on_input = input.from < kInputNodes;
      const std::string prefix = cat(site.prefix, ".n", node, ".i", input.from);
      const std::size_t first = b.names().size();
      inputs.push_back(b.op_output(input.op, states[input.from], prefix, site.channels,
                                   site.reduction && on_input ? 2 : 1,
                                   on_input ? site.scale_in : site.scale_out, site.index));
      if (renames) {
        const std::string relaxed = cat(prefix, ".", kOpNames[input.op]);
        for (std::size_t v = first; v < b.names().size(); ++v)
          (*renames)[b.names()[v]] = relaxed + b.names()[v].substr(prefix.size());
      }
    }
    return inputs;
  });
}

/// The arch-parameter blocks of a space of `config`, with or without an intensive space.
std::vector<ArchParamSpec> param_blocks(const MacroConfig& config, const Intensive* intensive) {
  std::vector<ArchParamSpec> out;
  const std::int64_t blocks = config.macro ? config.layers : 2;
  for (std::int64_t b = 0; b < blocks; ++b) {
    std::vector<std::int64_t> shape = {kEdges, kOps};
    if (intensive) shape = {kSteps, intensive->k};
    out.push_back({block_label(b, config.macro) + ".alpha", std::move(shape)});
  }
  return out;
}

/// Recursive-descent parser of the genotype text; every failure names the character position.
class Parser {
 public:
  Parser(const std::string& text, bool macro, std::int64_t cells)
      : text_(text), macro_(macro), cells_(cells) {}

  Genotype parse() {
    skip_space();
    if (pos_ == text_.size())
      throw fail(pos_, cat("the text is empty; expected ", expected_labels()));
    Genotype g;
    for (std::int64_t b = 0;; ++b) {
      const std::size_t at = pos_;
      const std::string label = word();
      const std::string want = block_label(b, macro_);
      if (label.empty())
        throw fail(at, cat("expected the label '", want, "' of cell ", b, ", found ", found()));
      if (label != want)
        throw fail(at, cat("unexpected label '", q(label), "'; expected '", want, "' (",
                           expected_labels(), ")"));
      skip_space();
      expect('=', cat("'=' after label '", q(label), "'"));
      g.cells.push_back(cell(label));
      skip_space();
      if (pos_ == text_.size()) break;
      if (b + 1 == cells_)
        throw fail(pos_,
                   cat("expected the end of the text after cell '", q(label), "', the last of ",
                       cells_, " (", expected_labels(), "), found ", found()));
      expect(';', cat("';' or the end of the text after cell '", q(label), "'"));
      skip_space();
    }
    if (static_cast<std::int64_t>(g.cells.size()) != cells_)
      throw fail(pos_, cat("the text ends after ", g.cells.size(), " cell(s); expected ", cells_,
                           " (", expected_labels(), ")"));
    return g;
  }

 private:
  // Quotes ~120 characters around the fault, not the whole text (which may be 100 kB).
  Error fail(std::size_t pos, const std::string& why) const {
    return Error(cat("darts: cannot parse architecture '", excerpt(text_, pos), "'",
                     text_.size() > 120 ? cat(" (", text_.size(), " characters)") : std::string(),
                     ": at character ", pos, ": ", why));
  }

  /// A piece of the text quoted inside a message: its start, enough to recognise it.
  static std::string q(const std::string& piece) { return excerpt(piece, 0, 32); }
  /// " in pair '(op,0)'", or nothing for a pair too long to quote whole (the excerpt of the
  /// text shows it).
  static std::string in_pair(const std::string& token) {
    return token.size() <= 32 ? cat(" in pair '", token, "'") : std::string();
  }

  std::string expected_labels() const {
    if (!macro_) return "normal=[...];reduce=[...]";
    if (cells_ == 1) return "cell0=[...]";
    return cat("cell0=[...];...;cell", cells_ - 1, "=[...]");
  }

  /// What is at the current position, for messages.
  std::string found() const {
    if (pos_ >= text_.size()) return "the end of the text";
    return cat("'", text_[pos_], "'");
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  void expect(char c, const std::string& what) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return;
    }
    throw fail(pos_, cat("expected ", what, ", found ", found()));
  }

  /// [A-Za-z0-9_]* at the current position.
  std::string word() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }

  struct Pair {
    Input input;
    std::size_t pos;    // where '(' is
    std::string token;  // the pair's text, '(' to ')'
  };

  Pair pair(const std::string& label) {
    Pair p;
    p.pos = pos_;
    expect('(', cat("'(' starting a pair (op,source) in cell '", q(label), "'"));
    skip_space();
    char quote = 0;
    if (pos_ < text_.size() && (text_[pos_] == '\'' || text_[pos_] == '"')) quote = text_[pos_++];
    const std::size_t op_pos = pos_;
    const std::string op = word();
    if (quote) expect(quote, cat("the closing ", quote, " of op '", q(op), "'"));
    skip_space();
    if (op.empty()) throw fail(op_pos, cat("expected an op name, found ", found()));
    expect(',', cat("',' between op '", q(op), "' and its source"));
    skip_space();
    const std::size_t src_pos = pos_;
    const std::string src = word();
    skip_space();
    expect(')', cat("')' closing the pair of op '", q(op), "'"));
    p.token = text_.substr(p.pos, pos_ - p.pos);
    p.input.op = op_id(op);
    if (p.input.op < 0)
      throw fail(op_pos, cat("unknown op '", q(op), "'", in_pair(p.token), " of cell '", q(label),
                             "'; known ops: ", known_ops()));
    const bool digits =
        !src.empty() && src.size() <= 3 && std::all_of(src.begin(), src.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        });
    if (!digits)
      throw fail(src_pos, cat("source '", q(src), "'", in_pair(p.token), " of cell '", q(label),
                              "' is not a node index"));
    p.input.from = std::stoi(src);
    return p;
  }

  Cell cell(const std::string& label) {
    const std::size_t open = pos_;
    expect('[', cat("'[' opening the list of cell '", q(label), "' (", kCellHint, ")"));
    std::vector<std::vector<Pair>> groups(1);
    bool grouped = false;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']')
      throw fail(pos_, cat("cell '", q(label), "' has no pairs (", kCellHint, ")"));
    while (true) {
      skip_space();
      groups.back().push_back(pair(label));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        skip_space();
        // Python lists may end with a trailing comma; the flat form allows it.
        if (!grouped && pos_ < text_.size() && text_[pos_] == ']') break;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '|') {
        grouped = true;
        if (groups.size() == kSteps)
          throw fail(pos_, cat("cell '", q(label), "' has more than ", kSteps,
                               " node groups (one per node 2..5)"));
        groups.emplace_back();
        ++pos_;
        continue;
      }
      break;
    }
    expect(']', cat("',', '|' or ']' in the list of cell '", q(label), "'"));
    const std::string list = text_.substr(open, pos_ - open);

    // Distribute the pairs over the nodes.
    std::array<std::vector<Pair>, kSteps> nodes;
    if (grouped) {
      if (groups.size() != kSteps)
        throw fail(open, cat("cell '", q(label), "' has ", groups.size(), " node groups in '",
                             q(list), "'; expected ", kSteps, " (nodes 2..5) separated by '|'"));
      for (int j = 0; j < kSteps; ++j) nodes[j] = std::move(groups[j]);
    } else {
      const auto& all = groups[0];
      if (all.size() != 2 * kSteps)
        throw fail(open, cat("cell '", q(label), "' lists ", all.size(), " pair(s) in '", q(list),
                             "'; the flat form needs ", 2 * kSteps,
                             " (2 per node 2..5; use '|' between nodes for other counts)"));
      for (int j = 0; j < kSteps; ++j) nodes[j] = {all[2 * j], all[2 * j + 1]};
    }

    Cell out;
    for (int j = 0; j < kSteps; ++j) {
      const int node = j + kInputNodes;
      if (static_cast<int>(nodes[j].size()) > node)
        throw fail(nodes[j][node].pos,
                   cat("node ", node, " of cell '", q(label), "' has ", nodes[j].size(),
                       " pairs, but only ", node, " sources (0..", node - 1, ") exist"));
      for (std::size_t a = 0; a < nodes[j].size(); ++a) {
        const Pair& p = nodes[j][a];
        if (p.input.from >= node)
          throw fail(p.pos,
                     cat("pair '", q(p.token), "' of node ", node, " in cell '", q(label),
                         "' reads node ", p.input.from, "; node ", node, " reads 0..", node - 1));
        for (std::size_t b = 0; b < a; ++b)
          if (nodes[j][b].input.from == p.input.from)
            throw fail(p.pos, cat("pair '", q(p.token), "' of node ", node, " in cell '", q(label),
                                  "' reads node ", p.input.from, " a second time (after '",
                                  q(nodes[j][b].token), "'); a node's sources must be distinct"));
        out.nodes[j].push_back(p.input);
      }
    }
    make_canonical(out);
    return out;
  }

  const std::string& text_;
  bool macro_;
  std::int64_t cells_;
  std::size_t pos_ = 0;
};

}  // namespace

int edge_index(int node, int from) {
  HYPERNAS_CHECK(node >= kInputNodes && node < kNodes && from >= 0 && from < node,
                 "darts: no edge from node ", from, " to node ", node);
  // Node k's edges start after those of nodes 2..k-1: sum_{m=2}^{k-1} m = k(k-1)/2 - 1.
  return node * (node - 1) / 2 - 1 + from;
}

bool is_reduction(std::int64_t index, std::int64_t layers) {
  return index == layers / 3 || index == 2 * layers / 3;
}

void make_canonical(Cell& cell) {
  for (int j = 0; j < kSteps; ++j) {
    const int node = j + kInputNodes;
    auto& inputs = cell.nodes[j];
    HYPERNAS_CHECK(!inputs.empty(), "darts: node ", node, " has no inputs");
    for (const Input& in : inputs) {
      HYPERNAS_CHECK(in.op >= 0 && in.op < kOps, "darts: invalid op id ", in.op, " on node ", node);
      HYPERNAS_CHECK(in.from >= 0 && in.from < node, "darts: node ", node, " reads node ", in.from,
                     " (expected 0..", node - 1, ")");
    }
    std::sort(inputs.begin(), inputs.end(),
              [](const Input& a, const Input& b) { return a.from < b.from; });
    for (std::size_t a = 1; a < inputs.size(); ++a)
      HYPERNAS_CHECK(inputs[a].from != inputs[a - 1].from, "darts: node ", node, " reads node ",
                     inputs[a].from, " twice");
  }
}

std::string cell_to_string(const Cell& cell) {
  Cell c = cell;
  make_canonical(c);
  const bool flat = std::all_of(c.nodes.begin(), c.nodes.end(),
                                [](const std::vector<Input>& n) { return n.size() == 2; });
  std::string out = "[";
  for (int j = 0; j < kSteps; ++j) {
    if (j > 0) out += flat ? ',' : '|';
    for (std::size_t a = 0; a < c.nodes[j].size(); ++a) {
      if (a > 0) out += ',';
      out += cat('(', kOpNames[c.nodes[j][a].op], ',', c.nodes[j][a].from, ')');
    }
  }
  return out + "]";
}

std::string genotype_to_string(const Genotype& genotype, bool macro) {
  HYPERNAS_CHECK(macro || genotype.cells.size() == 2,
                 "darts: a genotype without macro has 2 cells (normal, reduce), got ",
                 genotype.cells.size());
  std::string out;
  for (std::size_t b = 0; b < genotype.cells.size(); ++b) {
    if (b > 0) out += ';';
    out +=
        block_label(static_cast<std::int64_t>(b), macro) + "=" + cell_to_string(genotype.cells[b]);
  }
  return out;
}

Genotype parse_genotype(const std::string& text, bool macro, std::int64_t cells) {
  HYPERNAS_CHECK(cells >= 1, "darts: parse_genotype expects cells >= 1, got ", cells);
  return Parser(text, macro, cells).parse();
}

ArchGraph build_graph(const Genotype& genotype, const MacroConfig& config) {
  return build_genotype(genotype, config, nullptr);
}

std::map<std::string, std::string> relaxed_names(const Genotype& genotype,
                                                 const MacroConfig& config) {
  std::map<std::string, std::string> renames;
  const ArchGraph graph = build_genotype(genotype, config, &renames);
  std::map<std::string, std::string> names;
  for (std::size_t v = 0; v < boost::num_vertices(graph); ++v) {
    const std::string& name = graph[v].name;
    auto it = renames.find(name);
    names.emplace(name, it == renames.end() ? name : it->second);
  }
  return names;
}

Relaxation build_relaxation(const MacroConfig& config, const Intensive* intensive) {
  Relaxation r;
  r.blocks = param_blocks(config, intensive);
  r.network.space = "darts";
  r.network.text = cat("relaxed(darts, layers=", config.layers, ", C=", config.channels,
                       config.macro ? ", macro" : "",
                       intensive ? cat(", intensive K=", intensive->k) : std::string(), ")");
  // Without an intensive space, every (source, op != none) pair of a node is a candidate.
  std::array<std::vector<Input>, kSteps> all;
  for (int node = kInputNodes; node < kNodes; ++node)
    for (int from = 0; from < node; ++from)
      for (int op = kNone + 1; op < kOps; ++op) all[node - kInputNodes].push_back({op, from});
  r.network.graph =
      build_network(config, [&](GraphBuilder& b, const CellSite& site, int node,
                                const std::array<GraphBuilder::Vertex, kNodes>& states) {
        const int j = node - kInputNodes;
        const std::int64_t block = config.macro ? site.index : (site.reduction ? 1 : 0);
        const std::vector<Input>& candidates =
            intensive ? intensive->candidates[site.reduction ? 1 : 0][static_cast<std::size_t>(j)]
                      : all[static_cast<std::size_t>(j)];
        std::vector<GraphBuilder::Vertex> inputs;
        for (std::size_t c = 0; c < candidates.size(); ++c) {
          const Input& input = candidates[c];
          const bool on_input = input.from < kInputNodes;
          const std::string branch =
              cat(site.prefix, ".n", node, ".i", input.from, ".", kOpNames[input.op]);
          const std::size_t first = b.names().size();
          const GraphBuilder::Vertex out =
              b.op_output(input.op, states[input.from], branch, site.channels,
                          site.reduction && on_input ? 2 : 1,
                          on_input ? site.scale_in : site.scale_out, site.index);
          MixChoice m;
          m.nodes.assign(b.names().begin() + static_cast<std::ptrdiff_t>(first), b.names().end());
          m.node = branch + ".mix";
          m.block = block;
          m.row = intensive ? j : edge_index(node, input.from);
          m.col = intensive ? static_cast<std::int64_t>(c) : input.op;
          m.label = cat(site.prefix, ".n", node, ": ", input_label(input));
          inputs.push_back(b.add(GraphBuilder::node("mix", m.node, site.channels, site.channels,
                                                    site.scale_out, site.index),
                                 {out}));
          r.mixes.push_back(std::move(m));
        }
        return inputs;
      });
  return r;
}

ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size) {
  return count_graph(graph, input_size);
}

std::string input_label(const Input& input) {
  HYPERNAS_CHECK(input.op >= 0 && input.op < kOps, "darts: invalid op id ", input.op);
  return cat(kOpNames[input.op], '~', input.from);
}

namespace {

/// The names of the cell types of an intensive space, as its file's keys.
constexpr const char* kCellTypes[2] = {"normal", "reduce"};

/// The ops an intensive space may list (all but `none`).
std::string candidate_ops() {
  std::string list;
  for (int k = kNone + 1; k < kOps; ++k)
    list += (list.empty() ? "" : ", ") + std::string(kOpNames[k]);
  return list;
}

/// A JSON value quoted in a message (at most about 60 characters).
std::string quoted(const nlohmann::json& value) {
  return abbreviate(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 60);
}

}  // namespace

Intensive parse_intensive(const std::string& text, const std::string& file) {
  auto fail = [&file](const std::string& where, const std::string& why) {
    return Error(cat("darts: intensive-space file '", file, "': ", where.empty() ? "" : where,
                     where.empty() ? "" : ": ", why));
  };
  // NOTE: nlohmann keeps the last of two equal keys; the callback sees every key, so a key
  // given twice is found here (only the top-level object has keys in a valid file).
  std::vector<std::set<std::string>> open_objects;
  std::string twice;
  auto watch = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == nlohmann::json::parse_event_t::object_end && !open_objects.empty())
      open_objects.pop_back();
    if (event == nlohmann::json::parse_event_t::key && !open_objects.empty() && twice.empty() &&
        !open_objects.back().insert(parsed.get<std::string>()).second)
      twice = parsed.get<std::string>();
    return true;
  };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text, watch);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 3, column 7: ...".
    std::string why = e.what();
    const std::size_t bracket = why.find("] ");
    if (why.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos)
      why = why.substr(bracket + 2);
    throw fail("", cat("not valid JSON: ", why));
  }
  if (!twice.empty()) throw fail("", cat("key \"", twice, "\" is given twice"));
  if (!doc.is_object())
    throw fail("",
               cat("expected a JSON object {\"format\": \"", kIntensiveFormat,
                   "\", \"k\": ..., \"normal\": [...], \"reduce\": [...]}, found ", quoted(doc)));
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    if (key != "format" && key != "k" && key != "normal" && key != "reduce" && key != "source")
      throw fail("", cat("unknown key \"", key,
                         "\" (expected format, k, normal, reduce and optionally source)"));
  }
  for (const char* key : {"format", "k", "normal", "reduce"})
    if (!doc.contains(key)) throw fail("", cat("missing key \"", key, "\""));

  const nlohmann::json& format = doc["format"];
  if (!format.is_string() || format.get<std::string>() != kIntensiveFormat)
    throw fail("format", cat("expected \"", kIntensiveFormat, "\", found ", quoted(format)));

  Intensive out;
  const nlohmann::json& k = doc["k"];
  if (!k.is_number_integer() || k.get<std::int64_t>() < kMinIntensiveK ||
      k.get<std::int64_t>() > kMaxIntensiveK)
    throw fail("k",
               cat("expected an integer in [", kMinIntensiveK, ", ", kMaxIntensiveK,
                   "] (node 2 has ", kMaxIntensiveK, " (source, op) pairs), found ", quoted(k)));
  out.k = k.get<std::int64_t>();
  if (doc.contains("source")) {
    if (!doc["source"].is_string())
      throw fail("source", cat("expected a string, found ", quoted(doc["source"])));
    out.source = doc["source"].get<std::string>();
  }

  for (int g = 0; g < 2; ++g) {
    const std::string type = kCellTypes[g];
    const nlohmann::json& nodes = doc[type];
    if (!nodes.is_array() || nodes.size() != kSteps)
      throw fail(type, cat("expected a list of ", kSteps, " lists (nodes 2..5), found ",
                           nodes.is_array() ? cat("a list of ", nodes.size()) : quoted(nodes)));
    for (int j = 0; j < kSteps; ++j) {
      const int node = j + kInputNodes;
      const std::string where_node = cat(type, "[", j, "]");
      const nlohmann::json& list = nodes[static_cast<std::size_t>(j)];
      if (!list.is_array())
        throw fail(where_node, cat("expected the list of node ", node, "'s ", out.k,
                                   " candidates \"op~source\", found ", quoted(list)));
      if (static_cast<std::int64_t>(list.size()) != out.k)
        throw fail(where_node, cat("node ", node, " lists ", list.size(),
                                   " candidate(s); expected k = ", out.k));
      std::vector<Input>& candidates = out.candidates[g][static_cast<std::size_t>(j)];
      for (std::size_t e = 0; e < list.size(); ++e) {
        const std::string where = cat(where_node, "[", e, "]");
        const nlohmann::json& entry = list[e];
        if (!entry.is_string())
          throw fail(where, cat("expected a string \"op~source\" (node ", node, "), found ",
                                quoted(entry)));
        const std::string label = entry.get<std::string>();
        const std::size_t tilde = label.find('~');
        if (tilde == std::string::npos || label.find('~', tilde + 1) != std::string::npos)
          throw fail(where, cat(quoted(entry), " is not of the form op~source (node ", node,
                                ", e.g. \"sep_conv_3x3~", node - 1, "\")"));
        const std::string op = label.substr(0, tilde);
        const std::string from = label.substr(tilde + 1);
        Input input;
        input.op = op_id(op);
        if (input.op == kNone)
          throw fail(where, cat(quoted(entry),
                                ": 'none' is not a candidate (an intensive space "
                                "keeps the ops other than none: ",
                                candidate_ops(), ")"));
        if (input.op < 0)
          throw fail(where, cat(quoted(entry), ": unknown op '", excerpt(op, 0, 32),
                                "'; candidates are ", candidate_ops()));
        const bool digits =
            !from.empty() && from.size() <= 3 && std::all_of(from.begin(), from.end(), [](char c) {
              return std::isdigit(static_cast<unsigned char>(c)) != 0;
            });
        if (!digits)
          throw fail(where, cat(quoted(entry), ": source '", excerpt(from, 0, 32),
                                "' is not a node index (node ", node, " reads 0..", node - 1, ")"));
        input.from = std::stoi(from);
        if (input.from >= node)
          throw fail(where, cat(quoted(entry), ": node ", node, " reads nodes 0..", node - 1,
                                ", not ", input.from));
        for (std::size_t before = 0; before < candidates.size(); ++before)
          if (candidates[before] == input)
            throw fail(where, cat(quoted(entry), " is listed twice for node ", node, " (also at ",
                                  where_node, "[", before, "])"));
        candidates.push_back(input);
      }
    }
  }
  return out;
}

Intensive load_intensive(const std::string& path) {
  namespace fs = std::filesystem;
  HYPERNAS_CHECK(!path.empty(), "darts: no intensive-space file named (empty path)");
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  HYPERNAS_CHECK(fs::exists(status), "darts: intensive-space file '", path, "' does not exist",
                 ec && ec != std::errc::no_such_file_or_directory ? cat(" (", ec.message(), ")")
                                                                  : std::string());
  HYPERNAS_CHECK(!fs::is_directory(status), "darts: intensive-space file '", path,
                 "' is a directory, not a JSON file");
  std::ifstream in(path, std::ios::binary);
  HYPERNAS_CHECK(in.is_open(), "darts: intensive-space file '", path,
                 "' cannot be opened for reading: ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  HYPERNAS_CHECK(!in.bad(), "darts: intensive-space file '", path, "' could not be read");
  return parse_intensive(text.str(), path);
}

std::string intensive_to_json(const Intensive& space) {
  std::string out = cat("{\n  \"format\": \"", kIntensiveFormat, "\",\n  \"k\": ", space.k, ",\n");
  for (int g = 0; g < 2; ++g) {
    out += cat("  \"", kCellTypes[g], "\": [\n");
    for (int j = 0; j < kSteps; ++j) {
      out += "    [";
      const auto& candidates = space.candidates[g][static_cast<std::size_t>(j)];
      for (std::size_t c = 0; c < candidates.size(); ++c)
        out += cat(c > 0 ? ", " : "", '"', input_label(candidates[c]), '"');
      out += j + 1 < kSteps ? "],\n" : "]\n";
    }
    out += g == 0 || !space.source.empty() ? "  ],\n" : "  ]\n";
  }
  if (!space.source.empty())
    out += cat(
        "  \"source\": ",
        nlohmann::json(space.source).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
        "\n");
  return out + "}\n";
}

}  // namespace hypernas::darts

namespace hypernas {

using darts::Cell;
using darts::Genotype;

const ParamTable& DartsSpace::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("layers", 8, "cells; reduction cells at layers/3 and 2*layers/3", 1, 1000);
    t.add_int("channels", 16, "C: channels of the first cells (the stem has 3C)", 1);
    t.add_int("input_channels", 3, "channels of the input images", 1);
    t.add_int("input_size", 32, "height = width of the input images", 1);
    t.add_int("classes", 10, "output classes", 1);
    t.add_bool("macro", false,
               "one genotype per cell (ADWP's macro search) instead of one normal and one "
               "reduction genotype");
    t.add_string("intensive", "",
                 "path of an intensive-space JSON file (ADWP's O*: K candidates per node of the "
                 "normal and reduction cells; see plugins/spaces/darts/README.md); empty: the "
                 "full DARTS space");
    return t;
  }();
  return table;
}

DartsSpace::DartsSpace(const Options& options) {
  auto at_least = [&options](const char* key, std::int64_t min) {
    const std::int64_t v = options.get_int(key);
    HYPERNAS_CHECK(v >= min, "darts: option '", key, "' expects int >= ", min, ", got '", v, "'");
    return v;
  };
  config_.layers = at_least("layers", 1);
  HYPERNAS_CHECK(config_.layers <= 1000, "darts: option 'layers' expects int <= 1000, got '",
                 config_.layers, "'");
  config_.channels = at_least("channels", 1);
  config_.input_channels = at_least("input_channels", 1);
  config_.input_size = at_least("input_size", 1);
  config_.classes = at_least("classes", 1);
  config_.macro = options.get_bool("macro");
  intensive_path_ = options.get_string("intensive");
  if (!intensive_path_.empty()) {
    try {
      intensive_ = darts::load_intensive(intensive_path_);
    } catch (const Error& e) {
      throw Error(cat(e.what(), " (option 'intensive')"));
    }
  }
}

int DartsSpace::cell_type(std::int64_t b) const {
  if (config_.macro) return darts::is_reduction(b, config_.layers) ? 1 : 0;
  return b == 0 ? 0 : 1;
}

const std::vector<darts::Input>& DartsSpace::candidates(std::int64_t b, int j) const {
  HYPERNAS_INTERNAL_ASSERT(intensive_.has_value(), "candidates() without an intensive space");
  return intensive_
      ->candidates[static_cast<std::size_t>(cell_type(b))][static_cast<std::size_t>(j)];
}

Architecture DartsSpace::make(Genotype genotype) const {
  for (Cell& c : genotype.cells) darts::make_canonical(c);
  Architecture arch;
  arch.space = name();
  arch.text = darts::genotype_to_string(genotype, config_.macro);
  arch.graph = darts::build_graph(genotype, config_);
  return arch;
}

Genotype DartsSpace::genotype_of(const Architecture& arch) const {
  HYPERNAS_CHECK(arch.space == name(),
                 "darts: expected an architecture of space 'darts', got "
                 "one of space '",
                 arch.space, "' ('", abbreviate(arch.text), "')");
  return darts::parse_genotype(arch.text, config_.macro, blocks());
}

Architecture DartsSpace::sample(Rng& rng) const {
  Genotype g;
  g.cells.resize(static_cast<std::size_t>(blocks()));
  if (intensive_) {
    for (std::int64_t b = 0; b < blocks(); ++b) {
      for (int j = 0; j < darts::kSteps; ++j) {
        // Every unordered pair of candidates with distinct sources, equally likely.
        const std::vector<darts::Input>& c = candidates(b, j);
        std::vector<std::pair<std::size_t, std::size_t>> pairs;
        for (std::size_t x = 0; x < c.size(); ++x)
          for (std::size_t y = x + 1; y < c.size(); ++y)
            if (c[x].from != c[y].from) pairs.emplace_back(x, y);
        auto& node = g.cells[static_cast<std::size_t>(b)].nodes[static_cast<std::size_t>(j)];
        if (pairs.empty()) {
          node = {c[rng.uniform_int(c.size())]};  // every candidate reads the same node
        } else {
          const auto [x, y] = pairs[rng.uniform_int(pairs.size())];
          node = {c[x], c[y]};
        }
      }
    }
    return make(std::move(g));
  }
  for (Cell& cell : g.cells) {
    for (int j = 0; j < darts::kSteps; ++j) {
      const int node = j + darts::kInputNodes;
      // Two distinct sources, every unordered pair equally likely.
      const int a = static_cast<int>(rng.uniform_int(static_cast<std::uint64_t>(node)));
      int b = static_cast<int>(rng.uniform_int(static_cast<std::uint64_t>(node - 1)));
      if (b >= a) ++b;
      // Ops other than none (ids 1..7).
      const int op_a = 1 + static_cast<int>(rng.uniform_int(darts::kOps - 1));
      const int op_b = 1 + static_cast<int>(rng.uniform_int(darts::kOps - 1));
      cell.nodes[j] = {{op_a, a}, {op_b, b}};
    }
  }
  return make(std::move(g));
}

Architecture DartsSpace::parse(const std::string& text) const {
  return make(darts::parse_genotype(text, config_.macro, blocks()));
}

std::vector<std::string> DartsSpace::op_vocabulary() const {
  return {"input", "conv", "bn", "relu", "avg_pool", "max_pool", "add", "concat", "gap", "linear"};
}

ArchStats DartsSpace::stats(const Architecture& arch) const {
  // An architecture that carries only its text (its graph not rebuilt) is counted from it.
  if (boost::num_vertices(arch.graph) == 0 && arch.space == name())
    return darts::graph_stats(make(genotype_of(arch)).graph, config_.input_size);
  return darts::graph_stats(arch.graph, config_.input_size);
}

at::Tensor DartsSpace::encode(const Architecture& arch) const {
  const Genotype g = genotype_of(arch);
  static_assert(darts::kEncodedSlot == darts::kOps + darts::kSources, "slot layout");
  at::Tensor out = at::full({blocks(), darts::kSteps, darts::kEncodedInputs, darts::kEncodedSlot},
                            -1.0, at::kFloat);
  auto a = out.accessor<float, 4>();
  for (std::size_t b = 0; b < g.cells.size(); ++b) {
    for (int j = 0; j < darts::kSteps; ++j) {
      const std::vector<darts::Input>& inputs = g.cells[b].nodes[static_cast<std::size_t>(j)];
      HYPERNAS_CHECK(inputs.size() <= static_cast<std::size_t>(darts::kEncodedInputs),
                     "darts: encode covers genotypes of at most ", darts::kEncodedInputs,
                     " inputs per node (DARTS's), but cell '",
                     darts::block_label(static_cast<std::int64_t>(b), config_.macro), "', node ",
                     j + darts::kInputNodes, " of '", abbreviate(arch.text), "' reads ",
                     inputs.size());
      for (std::size_t s = 0; s < inputs.size(); ++s) {
        a[b][j][s][inputs[s].op] = 1.0f;
        a[b][j][s][darts::kOps + inputs[s].from] = 1.0f;
      }
    }
  }
  return out;
}

Architecture DartsSpace::mutate(const Architecture& arch, Rng& rng, double p) const {
  HYPERNAS_CHECK(p >= 0 && p <= 1, "darts: mutate expects a probability p in [0, 1], got ", p);
  Genotype g = genotype_of(arch);
  // One of `n` alternatives, drawn uniformly.
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng.uniform_int(n)); };
  for (std::size_t b = 0; b < g.cells.size(); ++b) {
    for (int j = 0; j < darts::kSteps; ++j) {
      const int node = j + darts::kInputNodes;
      std::vector<darts::Input>& inputs = g.cells[b].nodes[static_cast<std::size_t>(j)];
      const std::vector<darts::Input>* cand =
          intensive_ ? &candidates(static_cast<std::int64_t>(b), j) : nullptr;
      if (cand) {
        for (const darts::Input& in : inputs) {
          if (std::find(cand->begin(), cand->end(), in) != cand->end()) continue;
          std::string list;
          for (const darts::Input& x : *cand)
            list += (list.empty() ? "" : ", ") + darts::input_label(x);
          throw Error(cat("darts: cannot mutate '", abbreviate(arch.text),
                          "': it is outside the intensive space of '", intensive_path_, "': cell '",
                          darts::block_label(static_cast<std::int64_t>(b), config_.macro),
                          "', node ", node, " reads ", darts::input_label(in),
                          ", which is not among the node's candidates: ", list));
        }
      }
      auto read = [&inputs](int from) {
        return std::any_of(inputs.begin(), inputs.end(),
                           [from](const darts::Input& x) { return x.from == from; });
      };
      for (darts::Input& in : inputs) {
        if (rng.uniform() < p) {
          std::vector<int> ops;
          if (cand) {
            for (const darts::Input& c : *cand)
              if (c.from == in.from && c.op != in.op) ops.push_back(c.op);
          } else {
            for (int op = darts::kNone + 1; op < darts::kOps; ++op)
              if (op != in.op) ops.push_back(op);
          }
          if (!ops.empty()) in.op = ops[pick(ops.size())];
        }
        if (rng.uniform() < p) {
          // Sources no input of the node reads (in.from included, so the draw changes it).
          std::vector<int> sources;
          for (int from = 0; from < node; ++from) {
            if (read(from)) continue;
            if (cand && std::none_of(cand->begin(), cand->end(),
                                     [from](const darts::Input& c) { return c.from == from; }))
              continue;
            sources.push_back(from);
          }
          if (sources.empty()) continue;
          const int from = sources[pick(sources.size())];
          if (cand &&
              std::find(cand->begin(), cand->end(), darts::Input{in.op, from}) == cand->end()) {
            std::vector<int> ops;
            for (const darts::Input& c : *cand)
              if (c.from == from) ops.push_back(c.op);
            in.op = ops[pick(ops.size())];
          }
          in.from = from;
        }
      }
    }
  }
  return make(std::move(g));
}

std::vector<ArchParamSpec> DartsSpace::arch_params() const {
  return darts::param_blocks(config_, intensive_space());
}

std::vector<std::vector<std::vector<double>>> DartsSpace::softmax_blocks(
    const std::vector<at::Tensor>& alphas, const char* what) const {
  const std::vector<ArchParamSpec> specs = arch_params();
  const std::int64_t rows = specs.front().shape[0];
  const std::int64_t cols = specs.front().shape[1];
  HYPERNAS_CHECK(alphas.size() == specs.size(), "darts: ", what, " expects ", specs.size(),
                 " alpha block(s) [", rows, ", ", cols, "] (", specs.front().name,
                 specs.size() > 1 ? ", ..." : "", "), got ", alphas.size());
  std::vector<std::vector<std::vector<double>>> out(alphas.size());
  for (std::size_t b = 0; b < alphas.size(); ++b) {
    const at::Tensor& alpha = alphas[b];
    const std::string& name = specs[b].name;
    HYPERNAS_CHECK(alpha.defined(), "darts: ", what, " got an undefined tensor for ", name);
    HYPERNAS_CHECK(alpha.dim() == 2 && alpha.size(0) == rows && alpha.size(1) == cols,
                   "darts: ", what, " expects ", name, " of shape [", rows, ", ", cols, "], got ",
                   alpha.sizes());
    const at::Tensor values = alpha.detach().to(at::Device(at::kCPU), at::kDouble).contiguous();
    auto a = values.accessor<double, 2>();
    out[b].assign(static_cast<std::size_t>(rows),
                  std::vector<double>(static_cast<std::size_t>(cols)));
    for (std::int64_t r = 0; r < rows; ++r) {
      double max = a[r][0];
      for (std::int64_t k = 0; k < cols; ++k) {
        HYPERNAS_CHECK(std::isfinite(a[r][k]), "darts: ", what, " got a non-finite value ", a[r][k],
                       " in ", name, " at row ", r, ", column ", k);
        max = std::max(max, a[r][k]);
      }
      auto& w = out[b][static_cast<std::size_t>(r)];
      double sum = 0;
      for (std::int64_t k = 0; k < cols; ++k)
        sum += (w[static_cast<std::size_t>(k)] = std::exp(a[r][k] - max));
      for (double& x : w) x /= sum;
    }
  }
  return out;
}

Architecture DartsSpace::discretize(const std::vector<at::Tensor>& alphas,
                                    std::int64_t keep) const {
  HYPERNAS_CHECK(keep >= 1, "darts: discretize expects keep >= 1, got ", keep);
  if (intensive_) {
    // ADWP's top-T over each node's K candidates, with distinct sources (see darts.h).
    const auto probs = softmax_blocks(alphas, "discretize");
    Genotype g;
    g.cells.resize(probs.size());
    for (std::size_t b = 0; b < probs.size(); ++b) {
      for (int j = 0; j < darts::kSteps; ++j) {
        const std::vector<double>& p = probs[b][static_cast<std::size_t>(j)];
        const std::vector<darts::Input>& c = candidates(static_cast<std::int64_t>(b), j);
        std::vector<std::size_t> order(c.size());
        for (std::size_t x = 0; x < order.size(); ++x) order[x] = x;
        std::stable_sort(order.begin(), order.end(),
                         [&p](std::size_t x, std::size_t y) { return p[x] > p[y]; });
        auto& node = g.cells[b].nodes[static_cast<std::size_t>(j)];
        std::set<int> sources;
        for (std::size_t x : order) {
          if (static_cast<std::int64_t>(node.size()) == keep) break;
          if (!sources.insert(c[x].from).second) continue;  // source already kept
          node.push_back(c[x]);
        }
      }
    }
    return make(std::move(g));
  }
  const std::vector<ArchParamSpec> specs = arch_params();
  HYPERNAS_CHECK(alphas.size() == specs.size(), "darts: discretize expects ", specs.size(),
                 " alpha block(s) [", darts::kEdges, ", ", darts::kOps, "] (", specs.front().name,
                 specs.size() > 1 ? ", ..." : "", "), got ", alphas.size());
  Genotype g;
  for (std::size_t b = 0; b < alphas.size(); ++b) {
    const at::Tensor& alpha = alphas[b];
    const std::string& what = specs[b].name;
    HYPERNAS_CHECK(alpha.defined(), "darts: discretize got an undefined tensor for ", what);
    HYPERNAS_CHECK(alpha.dim() == 2 && alpha.size(0) == darts::kEdges &&
                       alpha.size(1) == darts::kOps,
                   "darts: discretize expects ", what, " of shape [", darts::kEdges, ", ",
                   darts::kOps, "], got ", alpha.sizes());
    const at::Tensor values = alpha.detach().to(at::Device(at::kCPU), at::kDouble).contiguous();
    auto a = values.accessor<double, 2>();
    // Softmax over each edge's ops (the weights DARTS compares across edges).
    std::array<std::array<double, darts::kOps>, darts::kEdges> w{};
    for (int e = 0; e < darts::kEdges; ++e) {
      double max = a[e][0];
      for (int k = 0; k < darts::kOps; ++k) {
        HYPERNAS_CHECK(std::isfinite(a[e][k]), "darts: discretize got a non-finite value ", a[e][k],
                       " in ", what, " at edge ", e, ", op ", k, " (", darts::kOpNames[k], ")");
        max = std::max(max, a[e][k]);
      }
      double sum = 0;
      for (int k = 0; k < darts::kOps; ++k) sum += (w[e][k] = std::exp(a[e][k] - max));
      for (int k = 0; k < darts::kOps; ++k) w[e][k] /= sum;
    }
    Cell cell;
    for (int j = 0; j < darts::kSteps; ++j) {
      const int node = j + darts::kInputNodes;
      std::vector<darts::Input> best(static_cast<std::size_t>(node));
      std::vector<double> strength(static_cast<std::size_t>(node));
      for (int from = 0; from < node; ++from) {
        const int e = darts::edge_index(node, from);
        int op = darts::kNone + 1;
        for (int k = op + 1; k < darts::kOps; ++k)
          if (w[e][k] > w[e][op]) op = k;
        best[from] = {op, from};
        strength[from] = w[e][op];
      }
      std::vector<int> order(static_cast<std::size_t>(node));
      for (int from = 0; from < node; ++from) order[from] = from;
      std::stable_sort(order.begin(), order.end(),
                       [&](int x, int y) { return strength[x] > strength[y]; });
      const std::int64_t kept = std::min<std::int64_t>(keep, node);
      for (std::int64_t r = 0; r < kept; ++r) cell.nodes[j].push_back(best[order[r]]);
    }
    g.cells.push_back(std::move(cell));
  }
  return make(std::move(g));
}

Relaxation DartsSpace::relaxed() const {
  return darts::build_relaxation(config_, intensive_space());
}

Selection DartsSpace::select(const Architecture& arch) const {
  const Genotype g = genotype_of(arch);
  Selection s;
  for (const ArchParamSpec& spec : arch_params())
    s.probs.push_back(at::zeros(spec.shape, at::kFloat));
  for (std::size_t b = 0; b < g.cells.size(); ++b) {
    auto p = s.probs[b].accessor<float, 2>();
    for (int j = 0; j < darts::kSteps; ++j) {
      const int node = j + darts::kInputNodes;
      for (const darts::Input& in : g.cells[b].nodes[static_cast<std::size_t>(j)]) {
        if (!intensive_) {
          p[darts::edge_index(node, in.from)][in.op] = 1.0f;
          continue;
        }
        const std::vector<darts::Input>& c = candidates(static_cast<std::int64_t>(b), j);
        const auto it = std::find(c.begin(), c.end(), in);
        if (it == c.end()) {
          std::string list;
          for (const darts::Input& x : c)
            list += (list.empty() ? "" : ", ") + darts::input_label(x);
          throw Error(cat("darts: architecture '", abbreviate(arch.text),
                          "' is outside the intensive space of '", intensive_path_, "': cell '",
                          darts::block_label(static_cast<std::int64_t>(b), config_.macro), "' (",
                          cell_type(static_cast<std::int64_t>(b)) == 0 ? "normal" : "reduce",
                          " candidates), node ", node, " reads ", darts::input_label(in),
                          ", which is not among the node's candidates: ", list));
        }
        p[j][it - c.begin()] = 1.0f;
      }
    }
  }
  s.names = darts::relaxed_names(g, config_);
  return s;
}

IntensiveSpace DartsSpace::intensive(const std::vector<at::Tensor>& alphas, std::int64_t k) const {
  HYPERNAS_CHECK(!intensive_,
                 "darts: intensive() derives an intensive space from the alphas of the full DARTS "
                 "space ({14, 8} per block), but this space already is one (option 'intensive' = '",
                 intensive_path_, "')");
  HYPERNAS_CHECK(k >= darts::kMinIntensiveK && k <= darts::kMaxIntensiveK,
                 "darts: intensive() expects k in [", darts::kMinIntensiveK, ", ",
                 darts::kMaxIntensiveK, "] (node 2 has ", darts::kMaxIntensiveK,
                 " (source, op) pairs), got ", k);
  const auto probs = softmax_blocks(alphas, "intensive");
  darts::Intensive space;
  space.k = k;
  space.source = cat("darts intensive(): the ", k,
                     " most likely (op, source) pairs other than none per node, by softmax(alpha) "
                     "per edge",
                     config_.macro ? ", averaged over the cells of each type" : "");
  IntensiveSpace out;
  out.choices.resize(2);
  for (int type = 0; type < 2; ++type) {
    // The per-edge probabilities of this cell type (their mean over its cells in macro mode).
    std::vector<std::vector<double>> mean(darts::kEdges, std::vector<double>(darts::kOps, 0.0));
    std::int64_t cells = 0;
    for (std::int64_t b = 0; b < blocks(); ++b) {
      if (cell_type(b) != type) continue;
      ++cells;
      for (int e = 0; e < darts::kEdges; ++e)
        for (int op = 0; op < darts::kOps; ++op)
          mean[e][op] += probs[static_cast<std::size_t>(b)][e][op];
    }
    if (cells > 1)
      for (auto& row : mean)
        for (double& x : row) x /= static_cast<double>(cells);
    out.choices[type].resize(darts::kSteps);
    for (int j = 0; j < darts::kSteps; ++j) {
      const int node = j + darts::kInputNodes;
      std::vector<darts::Input> pairs;  // by edge (source), then op: the order of ties
      for (int from = 0; from < node; ++from)
        for (int op = darts::kNone + 1; op < darts::kOps; ++op) pairs.push_back({op, from});
      auto weight = [&](const darts::Input& x) {
        return mean[darts::edge_index(node, x.from)][x.op];
      };
      std::stable_sort(pairs.begin(), pairs.end(),
                       [&](const darts::Input& x, const darts::Input& y) {
                         return weight(x) > weight(y);
                       });
      pairs.resize(static_cast<std::size_t>(k));
      for (const darts::Input& x : pairs) out.choices[type][j].push_back(darts::input_label(x));
      space.candidates[type][static_cast<std::size_t>(j)] = std::move(pairs);
    }
  }
  out.json = darts::intensive_to_json(space);
  return out;
}

}  // namespace hypernas
