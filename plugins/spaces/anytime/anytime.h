#pragma once
/// @file anytime.h
/// @brief The multi-scale, multi-exit search space of GHN's anytime prediction experiments
/// (Zhang, Ren, Urtasun, ICLR 2019, §5.2) as a HyperNAS search space.
///
/// **Network.** A stem (conv 3x3 from the image channels to C, BN; scale 0), then a sequence
/// of cells; cell k has `nodes[k]` operator nodes, all at C_k = C * 2^k channels. Index 0
/// inside a cell is the cell input: for cell 0 the stem, for cell k > 0 the previous cell's
/// LAST node followed by ReLU, conv 1x1 (C_{k-1} -> C_k), BN at that node's scale. Node j
/// (j = 1, 2, ...) of a cell has an op, a spatial scale s (the resolution of the images divided
/// by 2^s, s in [0, scales)) and reads 1..max_inputs distinct earlier indices of its cell (0 =
/// the cell input, i = node i). An input at another scale than node j's goes through its own
/// `resample` node (average pooling down, nearest upsampling up; see architecture.h); several
/// inputs are summed by an `add` node; then comes the op. Nodes that neither lead to an exit
/// nor to the next cell are computed and unused (stats() counts them, exit_flops() does not).
///
/// **Ops** (fixed order; op ids index it): conv1x1, conv3x3, conv5x5, dil_conv3x3,
/// dil_conv5x5 (dilation 2), max_pool3x3, avg_pool3x3. A conv op is ReLU, conv (C_k -> C_k,
/// stride 1, "same" padding), BN; a pool op is the pool alone (stride 1, padding 1).
///
/// **Exits.** A node may carry an early-exit classifier: BN, ReLU, global average pooling,
/// linear (C_k -> classes). The last node of the last cell always has one (the network's
/// final output). Exit indices (OpNode::exit of the linear nodes) follow cost: the exits are
/// sorted by the FLOPs of their own ancestor set (each exit alone, count_nodes() over
/// ancestors(), graph_stats.h), ties by vertex order, and numbered 0, 1, ... in that order. So
/// Executor::forward() returns the logits cheapest exit first and exit_flops() is the
/// cumulative cost of going on from one exit to the next. NOTE: the final output's exit is
/// then not necessarily the highest index: an expensive side node with an exit may cost more
/// than the last node.
///
/// **String form** (canonical, no spaces; see network_to_string() and parse_network()): cells
/// joined by '/', nodes by ';', a node is `<op>@<scale>:<inputs>` with its inputs ascending and
/// comma-separated, and a trailing `!` when it has an exit, e.g.
/// `conv3x3@0:0;max_pool3x3@1:0,1!;conv5x5@1:2!/conv1x1@2:0;avg_pool3x3@2:0,1!`.

#include <cstdint>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/space.h>

namespace hypernas::anytime {

/// Number of candidate ops per node.
inline constexpr int kOps = 7;

/// The candidate ops, in the fixed order op ids index.
inline constexpr const char* kOpNames[kOps] = {"conv1x1",     "conv3x3",     "conv5x5",
                                               "dil_conv3x3", "dil_conv5x5", "max_pool3x3",
                                               "avg_pool3x3"};

/// Candidate op ids (positions in kOpNames).
enum NodeOp : int {
  kConv1x1 = 0,
  kConv3x3 = 1,
  kConv5x5 = 2,
  kDilConv3x3 = 3,
  kDilConv5x5 = 4,
  kMaxPool3x3 = 5,
  kAvgPool3x3 = 6
};

/// One operator node of a cell.
struct Node {
  int op = kConv1x1;        ///< A NodeOp.
  std::int64_t scale = 0;   ///< Spatial scale level, in [0, scales).
  std::vector<int> inputs;  ///< Distinct indices < the node's own (0: the cell input), ascending.
  bool exit = false;        ///< Whether an exit classifier is attached.
  /// Equality of every field.
  bool operator==(const Node& other) const {
    return op == other.op && scale == other.scale && inputs == other.inputs && exit == other.exit;
  }
};

/// One cell: nodes[j - 1] is node j (index 0 is the cell input).
struct Cell {
  std::vector<Node> nodes;  ///< The cell's operator nodes.
  /// Equality of all nodes.
  bool operator==(const Cell& other) const { return nodes == other.nodes; }
};

/// An architecture of the space: its cells in order.
struct Network {
  std::vector<Cell> cells;  ///< The cells, first to last.
  /// Equality of all cells.
  bool operator==(const Network& other) const { return cells == other.cells; }
};

/// The space's options (see AnytimeSpace::params()).
struct SpaceConfig {
  std::vector<std::int64_t> nodes = {24, 16, 8};  ///< Operator nodes of each cell.
  std::int64_t channels = 16;                     ///< C: channels of cell 0 (C * 2^k in cell k).
  std::int64_t scales = 3;                        ///< Scale levels 0 .. scales-1.
  std::int64_t max_inputs = 2;                    ///< Most inputs a node reads.
  double exit_prob = 0.1;           ///< Probability that sample() attaches an exit to a node.
  std::int64_t input_channels = 3;  ///< Channels of the input images.
  std::int64_t input_size = 32;     ///< Height = width of the input images.
  std::int64_t classes = 10;        ///< Output classes.
};

/// The cell sizes of the `nodes` option: a comma-separated list of positive integers, one per
/// cell ("24,16,8"; surrounding whitespace around each number is ignored). Throws UsageError
/// naming the option, the list and the item at fault.
std::vector<std::int64_t> parse_node_counts(const std::string& list);

/// Throws Error naming the cell, the node and the problem unless `network` fits `config`: as
/// many cells as config.nodes, each with its number of nodes; op ids in range; scales in
/// [0, scales); 1..max_inputs inputs per node, ascending, distinct, below the node's index; an
/// exit on the last node of the last cell.
void check_network(const Network& network, const SpaceConfig& config);

/// The canonical text (see the file comment); throws Error for an op id out of range.
std::string network_to_string(const Network& network);

/// Parses the string form for a space with `config` (its `nodes`, `scales` and `max_inputs`).
/// Surrounding whitespace is ignored; nothing else is lenient. Throws Error quoting the text
/// (an excerpt of a long one) and naming the 0-based character position and the token at
/// fault: an unknown op, a scale out of range, an input not in [0, j), repeated or unsorted
/// inputs, more than max_inputs inputs, a wrong number of cells or of nodes in a cell, a
/// missing exit on the last node of the last cell, trailing characters after a node.
Network parse_network(const std::string& text, const SpaceConfig& config);

/// The operator graph of `network` (checked with check_network() first); see architecture.h
/// for the conventions. Vertex order: `input`, `stem.conv`, `stem.bn`; then per cell k its
/// input block `c<k>.in.{relu,conv,bn}` (k >= 1), then per node j `c<k>.n<j>.rs<i>` (the
/// resample of input i, where needed), `c<k>.n<j>.sum` (an `add`, with several inputs) and the
/// op (`c<k>.n<j>.{relu,conv,bn}` or `c<k>.n<j>.pool`); after the cell's nodes the exit heads
/// of its nodes, `c<k>.n<j>.exit.{bn,relu,gap,linear}`. Nodes of a cell (its input block
/// included) have module k; the stem and the exit heads module -1. Every node's `scale` is
/// that of its output. Exit indices as the file comment says.
ArchGraph build_graph(const Network& network, const SpaceConfig& config);

}  // namespace hypernas::anytime

namespace hypernas {

/// The anytime multi-exit space as a plugin (`anytime`).
class AnytimeSpace : public SearchSpace {
 public:
  /// Declared options: nodes, channels, scales, max_inputs, exit_prob, input_channels,
  /// input_size, classes.
  static const ParamTable& params() noexcept;
  /// Builds the space from resolved options (every key of params() present). Throws
  /// UsageError for a bad `nodes` list and Error for values out of range.
  explicit AnytimeSpace(const Options& options);

  /// "anytime".
  std::string name() const override { return "anytime"; }
  /// A random network: for node j of each cell, in order, draws its op (uniform), its scale
  /// (uniform in [0, scales)), its number of inputs (uniform in [1, min(max_inputs, j)]), the
  /// inputs (uniform without replacement from [0, j)) and an exit (probability exit_prob;
  /// always on the last node of the last cell).
  Architecture sample(Rng& rng) const override;
  /// Parses the string form (see anytime::parse_network()).
  Architecture parse(const std::string& text) const override;
  /// The primitive ops the graphs use: input, conv, bn, relu, avg_pool, max_pool, add, gap,
  /// linear, resample.
  std::vector<std::string> op_vocabulary() const override;
  /// count_graph() with this space's input_size: parameters (conv weights, BN weight and bias,
  /// linear weight and bias) and multiply-accumulates (convolutions: weights x output pixels;
  /// linear: c_in * c_out) of every node, unused ones included; BN, ReLU, pooling, resampling
  /// and additions cost no FLOPs. exit_flops() (graph_stats.h) gives the per-exit costs.
  ArchStats stats(const Architecture& arch) const override;

  /// The network of an architecture of this space (parsed from arch.text); throws Error when
  /// arch.space is not "anytime" or the text does not parse.
  anytime::Network network_of(const Architecture& arch) const;
  /// The architecture of `network` (checked against this space's options).
  Architecture make(const anytime::Network& network) const;
  /// The options this space builds with.
  const anytime::SpaceConfig& config() const { return config_; }

 private:
  anytime::SpaceConfig config_;
};

}  // namespace hypernas
