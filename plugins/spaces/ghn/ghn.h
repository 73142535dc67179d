#pragma once
/// @file ghn.h
/// @brief The random block space of Graph HyperNetworks for NAS (Zhang, Ren, Urtasun, ICLR
/// 2019) as a HyperNAS search space.
///
/// **Block.** A block is a random DAG of N operator nodes over a block input (node 0). Node i
/// (i = 1..N) reads 1 or 2 distinct earlier nodes among {0, ..., i-1}, sums them, and applies
/// one op; the block's output is the SUM of the nodes that no other node reads (the
/// "loose ends"; parameter-free, as all nodes of a block have the same channels — the
/// alternative, concatenation + 1x1 conv, was not chosen).
///
/// **Ops.** The GHN summaries HyperNAS holds (shared/papers) do not list the op set, so
/// this space uses the one of the paper's CIFAR experiments as given in its brief, in this
/// fixed order (used by indices and encodings): conv_3x3, conv_5x5, sep_conv_3x3,
/// sep_conv_5x5, dil_conv_3x3, max_pool_3x3, avg_pool_3x3, identity. As primitive graphs:
/// conv_k = ReLU, conv k, BN; sep_conv_k = ReLU, depthwise conv k, pointwise conv 1x1, BN
/// (one separable unit, not DARTS's doubled one); dil_conv_3x3 = ReLU, depthwise conv 3x3
/// dilation 2, pointwise conv, BN; pooling: one 3x3 pool node (stride 1, padding 1);
/// identity: an `add` node. A node's first primitive reads its 1-2 predecessors directly (a
/// primitive's input is the sum of its in-neighbours), so no separate sum node is made.
///
/// **Network.** Stem conv 3x3 (C) + BN; `blocks` stages, each one block of the same structure
/// (the GHN paper samples one block and repeats it), stage s at C*2^s channels and spatial
/// scale s; between stages a reduction ReLU, conv 3x3 stride 2 (channels doubled), BN; head
/// ReLU, global average pooling, linear. Every node inside block s has module s (the stacked
/// GHN propagates segment by segment, block s, then the reduction after it, then block s+1,
/// each segment's mean embedding passed into the next one's input node).
///
/// **String form** (canonical; see block_to_string() and parse_block()):
/// `n1=conv_3x3<0;n2=sep_conv_5x5<0,1;n3=identity<2;...`: node i's op, then its sources in
/// ascending order.
///
/// The namespace is hypernas::ghn_space (not hypernas::ghn, which the `ghn` surrogate uses), so
/// the two never clash when one binary compiles both.

#include <cstdint>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/space.h>

namespace hypernas::ghn_space {

/// Candidate ops per node.
inline constexpr int kOps = 8;

/// The candidate ops, in the fixed order used by indices and encodings.
inline constexpr const char* kOpNames[kOps] = {"conv_3x3",     "conv_5x5",     "sep_conv_3x3",
                                               "sep_conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                                               "avg_pool_3x3", "identity"};

/// Candidate op ids (positions in kOpNames).
enum BlockOp : int {
  kConv3x3 = 0,
  kConv5x5 = 1,
  kSepConv3x3 = 2,
  kSepConv5x5 = 3,
  kDilConv3x3 = 4,
  kMaxPool3x3 = 5,
  kAvgPool3x3 = 6,
  kIdentity = 7
};

/// Most predecessors a node may read.
inline constexpr int kMaxInputs = 2;

/// One operator node of a block.
struct Node {
  int op = kIdentity;       ///< A BlockOp.
  std::vector<int> inputs;  ///< 1-2 distinct sources < the node's index, ascending.
  /// Equality of op and sources.
  bool operator==(const Node& other) const { return op == other.op && inputs == other.inputs; }
};

/// A block: nodes[i - 1] is node i (node 0 is the block input).
struct Block {
  std::vector<Node> nodes;  ///< N nodes.
  /// Equality of all nodes.
  bool operator==(const Block& other) const { return nodes == other.nodes; }
};

/// Sorts each node's sources. Throws Error when the block is empty or a node has an op id out
/// of range, no source, more than 2, a source out of range or the same source twice.
void make_canonical(Block& block);

/// The nodes of `block` (1..N) that no other node reads, ascending: the block output sums them.
std::vector<int> loose_ends(const Block& block);

/// The canonical text: `n1=<op><<sources>;n2=...`, sources ascending and comma-separated, no
/// whitespace.
std::string block_to_string(const Block& block);

/// Parses the string form of a block of exactly `nodes` nodes. Grammar (surrounding
/// whitespace is ignored, nothing else is lenient):
/// @code
///   text    := node (';' node){nodes-1}
///   node    := 'n' <i> '=' op '<' sources          i = 1, 2, ... in order
///   sources := <j> (',' <j>)?                      1 or 2 distinct sources, 0 <= j < i
/// @endcode
/// Sources may come in any order (the canonical text sorts them). Throws Error quoting the
/// text and naming the 0-based character position and the token at fault.
Block parse_block(const std::string& text, std::int64_t nodes);

/// Network shape around the block.
struct MacroConfig {
  std::int64_t nodes = 7;           ///< N: operator nodes per block (sampling and parsing).
  std::int64_t blocks = 3;          ///< Stages, one block each; a reduction between stages.
  std::int64_t channels = 16;       ///< C: channels of the first stage (C*2^s in stage s).
  std::int64_t input_channels = 3;  ///< Channels of the input images.
  std::int64_t input_size = 32;     ///< Height = width of the input images.
  std::int64_t classes = 10;        ///< Output classes.
};

/// The operator graph of the network (see architecture.h for the conventions). Names:
/// `input`; `stem.conv`, `stem.bn`; per stage s: the reduction `r<s>.{relu,conv,bn}` (s >= 1,
/// module -1), the block's nodes `b<s>.n<i>.<part>` (conv: relu conv bn; sep/dil: relu dw pw
/// bn; pooling: pool; identity: id) and its output `b<s>.out` (`add`), all with module s;
/// head `head.relu`, `head.gap`, `head.linear` (exit 0). `scale` is that of the node's
/// output. Throws Error when the block is not valid (see make_canonical()).
ArchGraph build_graph(const Block& block, const MacroConfig& config);

/// Parameters and multiply-accumulates of any architecture graph for square inputs of
/// `input_size` pixels (see GhnSpace::stats() for what is counted).
ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size);

}  // namespace hypernas::ghn_space

namespace hypernas {

/// The GHN random block space as a plugin (`ghn`).
class GhnSpace : public SearchSpace {
 public:
  /// Declared options: nodes, blocks, channels, input_channels, input_size, classes.
  static const ParamTable& params() noexcept;
  /// Builds the space from resolved options (every key of params() present). Throws Error on
  /// values out of range.
  explicit GhnSpace(const Options& options);

  /// "ghn".
  std::string name() const override { return "ghn"; }
  /// A random block: node i reads 1 or 2 sources (each with probability 1/2; node 1 has only
  /// node 0 to read), distinct and uniform among {0, ..., i-1}, through a uniformly chosen op.
  Architecture sample(Rng& rng) const override;
  /// Parses the string form (see ghn_space::parse_block()) of a block of `nodes` nodes.
  Architecture parse(const std::string& text) const override;
  /// The primitive ops the graphs use: input, conv, bn, relu, avg_pool, max_pool, add, gap,
  /// linear.
  std::vector<std::string> op_vocabulary() const override;
  /// Counted from the graph with this space's input_size. Parameters: conv weights
  /// (c_out * c_in/groups * k * k), BN weight and bias (2 * c_out), linear weight and bias.
  /// FLOPs: multiply-accumulates of convolutions (weights x output pixels) and of the linear
  /// layer (c_in * c_out) for one image; BN, ReLU, pooling, additions and biases are not
  /// counted.
  ArchStats stats(const Architecture& arch) const override;
  /// A float tensor [N, 8 + N] of ±1 (SMASH's convention): row i-1 describes node i: columns
  /// 0..7 one-hot of its op, column 8 + j is +1 when it reads node j (j = 0..N-1), -1 elsewhere.
  at::Tensor encode(const Architecture& arch) const override;
  /// ABI 1.5: a random neighbour of `arch`. sample()'s choices for node i (i = 1..N, in order)
  /// are its op, whether it reads 1 or 2 sources, and which; each is redrawn independently with
  /// probability `p`, in this order:
  /// - the op, uniformly among the 7 OTHER ops;
  /// - the number of sources (nodes i >= 2 only): a node reading 1 source gains a second one,
  ///   drawn uniformly among the other nodes < i; one reading 2 drops one of them, each with
  ///   probability 1/2;
  /// - each source, in ascending order: uniformly among the nodes < i the node does not read
  ///   yet (so its sources stay distinct; skipped when there are none, as for node 1).
  /// The result always parses (parse(print(result)) is result) and has the same N. p = 0
  /// returns `arch`. Draws per node: uniform() for the op, uniform_int() when it changes, then
  /// (i >= 2) uniform() for the count and uniform_int() when it changes, then per source
  /// uniform() and uniform_int() when it changes. Throws Error when p is not in [0, 1] or arch
  /// is not an architecture of this space.
  Architecture mutate(const Architecture& arch, Rng& rng, double p) const override;

  /// The block of an architecture of this space (parsed from arch.text); throws Error when
  /// arch.space is not "ghn" or the text does not parse.
  ghn_space::Block block_of(const Architecture& arch) const;
  /// The architecture of `block` (made canonical first); it must have `nodes` nodes.
  Architecture make(ghn_space::Block block) const;
  /// The network shape this space builds.
  const ghn_space::MacroConfig& config() const { return config_; }

 private:
  ghn_space::MacroConfig config_;
};

}  // namespace hypernas
