#pragma once
/// @file nb201.h
/// @brief The NAS-Bench-201 cell search space (15,625 cells) as a HyperNAS search space.
///
/// A cell has 4 nodes; node j (j = 1..3) is the sum over i < j of op_ij(node i), where node 0
/// is the cell's input and op_ij is one of {none, skip_connect, nor_conv_1x1, nor_conv_3x3,
/// avg_pool_3x3}. The 6 edges are ordered (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2), the
/// order in which the string form lists them. The network around the cell is NAS-Bench-201's
/// (AutoDL-Projects `TinyNetwork`): stem conv 3x3 + BN, N cells at C channels, a ResNet basic
/// block with stride 2, N cells at 2C, another basic block, N cells at 4C, then BN, ReLU,
/// global average pooling and a linear classifier. The same cell is used everywhere.
///
/// **Continuous relaxation** (ABI 1.4, build_relaxation()): the network of build_graph() in
/// which every edge of every cell instance carries one branch per op other than `none`, each
/// ending in a `mix` node that scales it by that op's probability (softmax over the edge's 5
/// logits, `none` included: it has no branch, since its output is zeros, so it only takes part
/// in the softmax, as the zero op of a DARTS mixed op does). Cell node j sums the mixes of its
/// edges. One
/// arch-parameter block {"alpha", {6, 5}}: row = edge, column = op id. With the one-hot
/// probabilities of select() it computes exactly the discrete network of the selected cell.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/space.h>

namespace hypernas::nb201 {

/// Number of edges of a cell.
inline constexpr int kEdges = 6;
/// Number of candidate ops per edge.
inline constexpr int kOps = 5;
/// Number of distinct cells: kOps^kEdges.
inline constexpr std::uint64_t kCells = 15625;

/// The candidate ops, in the fixed order used by indices, encodings and architecture
/// parameters: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3.
inline constexpr const char* kOpNames[kOps] = {"none", "skip_connect", "nor_conv_1x1",
                                               "nor_conv_3x3", "avg_pool_3x3"};

/// Candidate op ids (positions in kOpNames).
enum CellOp : int { kNone = 0, kSkip = 1, kConv1x1 = 2, kConv3x3 = 3, kAvgPool3x3 = 4 };

/// Target node of edge e (edge order (1<-0),(2<-0),(2<-1),(3<-0),(3<-1),(3<-2)).
inline constexpr int kEdgeTo[kEdges] = {1, 2, 2, 3, 3, 3};
/// Source node of edge e.
inline constexpr int kEdgeFrom[kEdges] = {0, 0, 1, 0, 1, 2};

/// One cell: the op id (a CellOp) of each edge, in edge order.
struct Cell {
  std::array<int, kEdges> ops{};  ///< ops[e] in [0, kOps).

  /// The cell with every edge set to `op`.
  static Cell uniform(int op);
  /// Equality of all edges.
  bool operator==(const Cell& other) const { return ops == other.ops; }
};

/// The index of `cell` in [0, 15625): the base-5 number whose digits are the op ids of the
/// edges in edge order, edge (1<-0) the most significant digit. Index 0 is the all-none cell,
/// 15624 the all-avg_pool_3x3 cell. NOTE: this is not the index of NAS-Bench-201's own API
/// (the order of its meta file); it is a plain enumeration of the same 15,625 cells.
std::uint64_t cell_index(const Cell& cell);
/// The cell with `index`; throws Error unless index < 15625.
Cell cell_at(std::uint64_t index);
/// The canonical string form, e.g.
/// `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`.
std::string cell_to_string(const Cell& cell);
/// Parses the string form (surrounding whitespace is ignored, nothing else is lenient). Throws
/// Error quoting the text and naming the 0-based character position and the token at fault:
/// an unknown op, a wrong input index, a wrong number of node groups or edges, a missing pipe.
Cell parse_cell(const std::string& text);

/// Network shape around the cell.
struct MacroConfig {
  std::int64_t cells_per_stage = 5;  ///< N: cells in each of the 3 stages.
  std::int64_t channels = 16;        ///< C: channels of stage 1 (2C, 4C in stages 2, 3).
  std::int64_t input_channels = 3;   ///< Channels of the input images.
  std::int64_t input_size = 32;      ///< Height = width of the input images.
  std::int64_t classes = 10;         ///< Output classes.
};

/// The operator graph of the network built from `cell` (see architecture.h for the
/// conventions). Cell node 0 is the previous node's output itself; cell nodes 1..3 are `add`
/// nodes named `s<stage>.c<cell>.n<j>`; an edge's ops are named `s<stage>.c<cell>.n<j>.e<i>.<op>`
/// (nor_conv: relu, conv, bn; avg_pool_3x3: pool; skip_connect: a plain graph edge; none:
/// nothing). Stem: `stem.conv`, `stem.bn`; reductions: `r<k>.a.{relu,conv,bn}`,
/// `r<k>.b.{relu,conv,bn}`, `r<k>.shortcut.{pool,conv}`, `r<k>.add`; head: `head.bn`,
/// `head.relu`, `head.gap`, `head.linear` (exit 0). `scale` is that of the node's output.
ArchGraph build_graph(const Cell& cell, const MacroConfig& config);

/// The continuous relaxation of the space (the supernet of DARTS-style search on NAS-Bench-201).
/// Its network is build_graph()'s with every edge e of every cell instance relaxed: one branch
/// per op other than `none`, each ending in a `mix` node, and cell node j (`add`, c_out set, so
/// that a node all of whose mixes have probability 0 yields zeros) summing the mixes of its
/// edges. Branch names add the op's name to the edge's: nor_conv_1x1 / nor_conv_3x3:
/// `s<stage>.c<cell>.n<j>.e<i>.<opname>.{relu,conv,bn}`; avg_pool_3x3:
/// `...e<i>.avg_pool_3x3.pool`; skip_connect: no node (its mix reads the edge's source). Every
/// branch ends in `...e<i>.<opname>.mix`. Stem, reductions, cell nodes and head carry the names
/// of the discrete graph; vertex order is topological and module / scale are set as there.
/// MixChoice: block 0, row = edge e (edge order above), col = op id, nodes = the branch's nodes
/// in vertex order (empty for skip_connect), label `s1.c0.n2 <- 1: nor_conv_3x3`. `blocks` is
/// {"alpha", {6, 5}}; network.space is "nb201", network.text `relaxed(nb201, N=.., C=..)`.
Relaxation build_relaxation(const MacroConfig& config);

/// For every node of build_graph(cell, config), its name in build_relaxation(config).network:
/// the nodes of an edge's op gain the op's name (`s1.c0.n2.e1.conv` of a nor_conv_3x3 edge is
/// `s1.c0.n2.e1.nor_conv_3x3.conv`); every other node keeps its name.
std::map<std::string, std::string> relaxed_names(const Cell& cell, const MacroConfig& config);

/// Parameters and multiply-accumulates of any architecture graph for square inputs of
/// `input_size` pixels (see Nb201Space::stats() for what is counted).
ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size);

}  // namespace hypernas::nb201

namespace hypernas {

/// The NAS-Bench-201 cell space as a plugin (`nb201`).
class Nb201Space : public SearchSpace {
 public:
  /// Declared options: cells_per_stage, channels, input_channels, input_size, classes.
  static const ParamTable& params() noexcept;
  /// Builds the space from resolved options (every key of params() present). Throws Error on
  /// values params() cannot check alone (input_size must be a multiple of 4, so that both
  /// branches of each stride-2 reduction block agree).
  explicit Nb201Space(const Options& options);

  /// "nb201".
  std::string name() const override { return "nb201"; }
  /// A uniformly random cell: at(rng.uniform_int(15625)).
  Architecture sample(Rng& rng) const override;
  /// Parses the string form (see nb201::parse_cell()).
  Architecture parse(const std::string& text) const override;
  /// 15625.
  std::optional<std::uint64_t> size() const override { return nb201::kCells; }
  /// The cell with `index` (see nb201::cell_index() for the encoding).
  Architecture at(std::uint64_t index) const override;
  /// input, conv, bn, relu, avg_pool, add, gap, linear.
  std::vector<std::string> op_vocabulary() const override;
  /// Counted from the graph with this space's input_size. Parameters: conv weights
  /// (c_out * c_in/groups * k * k), BN weight and bias (2 * c_out), linear weight and bias
  /// (c_out * c_in + c_out); every op of the graph counts, including ops whose output only
  /// feeds a zero cell node (as NAS-Bench-201 counts them). FLOPs: multiply-accumulates of the
  /// convolutions (weights x output pixels) and of the linear layer (c_in * c_out), for one
  /// image; BN, ReLU, pooling, additions and the bias are not counted.
  ArchStats stats(const Architecture& arch) const override;
  /// SMASH-style ±1 one-hot: a float tensor [6, 5] (30 values, the same shape for every cell),
  /// entry [e][k] +1 when edge e's op is op k and -1 otherwise (edge and op order as nb201.h).
  /// NOTE: ±1 rather than 0/1, as SMASH encodes its architectures, so that an encoding-
  /// conditioned hypernetwork sees every entry with the same magnitude; the encoding is still
  /// its own argmax (discretize({encode(a)}, 1) is a).
  at::Tensor encode(const Architecture& arch) const override;
  /// One block {"alpha", {6, 5}}: logits over the 5 ops of each of the 6 edges.
  std::vector<ArchParamSpec> arch_params() const override;
  /// The cell whose edge e takes the argmax op of alphas[0][e] (the first of equal maxima).
  /// NAS-Bench-201 cells keep every edge, so `keep` only has to be >= 1.
  Architecture discretize(const std::vector<at::Tensor>& alphas, std::int64_t keep) const override;
  /// ABI 1.4: the relaxed network of this space's shape (see nb201::build_relaxation()).
  Relaxation relaxed() const override;
  /// ABI 1.4: `arch` inside relaxed(). probs: one float CPU tensor [6, 5], row e one-hot of
  /// edge e's op (a `none` edge has its 1 in column 0, which has no branch: the node's other
  /// edges decide); names: see nb201::relaxed_names(). Every cell of the space is inside the
  /// relaxation. Throws Error when arch is not an architecture of this space.
  Selection select(const Architecture& arch) const override;
  // intensive(): not offered (the default throws); NAS-Bench-201 keeps one op per edge.
  /// ABI 1.5: a random neighbour of `arch`: each of the 6 edges, independently, with
  /// probability `p`, takes an op drawn uniformly among the 4 OTHER ops, so that `p` is exactly
  /// the probability that an edge changes (p = 1 changes every edge, p = 0 returns `arch`).
  /// Draws, edge by edge: one rng.uniform(), then, for a changed edge, one uniform_int(4).
  /// Throws Error when p is not in [0, 1] or arch is not an architecture of this space.
  Architecture mutate(const Architecture& arch, Rng& rng, double p) const override;

  /// The cell of an architecture of this space (parsed from arch.text); throws Error when
  /// arch.space is not "nb201" or the text does not parse.
  nb201::Cell cell_of(const Architecture& arch) const;
  /// The architecture of `cell`.
  Architecture make(const nb201::Cell& cell) const;
  /// The network shape this space builds.
  const nb201::MacroConfig& config() const { return config_; }

 private:
  nb201::MacroConfig config_;
};

}  // namespace hypernas
