#pragma once
/// @file darts.h
/// @brief The DARTS cell search space (Liu et al., ICLR 2019), also ADWPNAS's original space,
/// as a HyperNAS search space, with ADWP's per-cell macro search as an option.
///
/// **Cell.** A cell has 2 input nodes (0: the output of the cell before the previous one,
/// 1: the output of the previous one, each preprocessed to C channels) and 4 intermediate
/// nodes 2..5. Intermediate node k reads a few distinct earlier nodes i < k through one
/// candidate op each and sums the results; the cell's output is the channel concatenation of
/// nodes 2, 3, 4, 5 (4C channels). The 8 candidate ops, in the fixed order of indices,
/// encodings and architecture parameters (DARTS's `PRIMITIVES`): none, max_pool_3x3,
/// avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5.
/// The continuous relaxation has one edge per pair (i, k), i < k: 2 + 3 + 4 + 5 = 14 edges,
/// ordered by target node, then by source (edge_index()).
///
/// **Network** (DARTS's `NetworkCIFAR`, auxiliary head left out): stem conv 3x3 (3C) + BN;
/// `layers` cells, the cells with index layers/3 and 2*layers/3 being reduction cells, which
/// double C and apply their ops on the input nodes with stride 2; then global average pooling
/// and a linear classifier. Without `macro`, every normal cell uses one genotype and every
/// reduction cell another (DARTS); with `macro`, every cell has its own (ADWP's macro search).
/// A cell first preprocesses its inputs to C channels: node 0 by FactorizedReduce when the
/// previous cell reduced (its input is then at twice the resolution), otherwise by ReLU, conv
/// 1x1, BN; node 1 by ReLU, conv 1x1, BN. ADWP's "7 nodes per cell" are these 2 inputs, the 4
/// intermediate nodes and the output. With fewer than 3 layers every cell is a reduction cell
/// (as in DARTS's code), and the normal genotype is listed in the text but unused. Any input
/// size works: every stride-2 op of the space gives ceil(H/2) pixels, so branches agree.
///
/// **Ops as primitive graphs** (see build_graph()): sep_conv_k = (ReLU, depthwise conv k,
/// pointwise conv 1x1, BN) twice, the first depthwise conv carrying the stride;
/// dil_conv_k = ReLU, depthwise conv k dilation 2, pointwise conv, BN; pooling: one pool node
/// (kernel 3, padding 1, average excluding padding), nothing after it; skip_connect: a plain
/// graph edge, or FactorizedReduce at stride 2; none: nothing (a node whose every input is
/// `none` is an `add` without in-neighbours, i.e. zeros).
///
/// DEVIATION from DARTS: FactorizedReduce is ReLU, then two 1x1 stride-2 convs with C_out/2
/// outputs each, concatenated, then BN — but both convs read the same pixels. DARTS's second
/// conv reads the input shifted by one pixel (x[:, :, 1:, 1:]), which the primitive vocabulary
/// cannot express (a conv's padding is fixed at dilation*(kernel-1)/2). The parameter and
/// multiply-accumulate counts are exactly DARTS's; the function class is that of one 1x1
/// stride-2 conv with C_out outputs (the two halves see the same even-indexed pixels).
///
/// **String form** (canonical: no whitespace; see genotype_to_string() and parse_genotype()):
/// @code
/// normal=[(sep_conv_3x3,0),(sep_conv_3x3,1),(skip_connect,0),...,(skip_connect,2)];reduce=[...]
/// @endcode
/// With `macro`, `cell0=[...];cell1=[...];...;cell<layers-1>=[...]`, one list per cell.
///
/// **Continuous relaxation** (ABI 1.4; build_relaxation(), DartsSpace::relaxed()): the network
/// of build_graph() with every node's inputs relaxed into `mix`-ended branches, one per
/// candidate. Without the `intensive` option it is DARTS's supernet: every edge (i, k) of every
/// cell has one branch per op other than `none` (`none` has no branch, its output being zeros,
/// but keeps its place in the softmax over the edge's 8 logits). With `intensive`, it is ADWP's
/// relaxed intensive space (ADWPNAS §3.1.2, Eq. 4): node k has one branch per candidate
/// (op, source) of the intensive space, and the softmax runs over those K candidates of the
/// node. See plugins/spaces/darts/README.md for the file format and what follows the paper.
///
/// **Intensive space** (ADWPNAS §3.1.2; parse_intensive(), DartsSpace::intensive()): for each
/// cell type (normal, reduce) and intermediate node, the K most likely (op, source) pairs other
/// than `none`. All normal cells share the normal list, all reduction cells the reduce list, in
/// macro mode too (each cell still has its own architecture parameters).

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/space.h>

namespace hypernas::darts {

/// Input nodes of a cell (0 and 1).
inline constexpr int kInputNodes = 2;
/// Intermediate nodes of a cell (2, 3, 4, 5).
inline constexpr int kSteps = 4;
/// Nodes of a cell (inputs and intermediate nodes), i.e. one past the last node index.
inline constexpr int kNodes = kInputNodes + kSteps;
/// Edges of the continuous relaxation: 2 + 3 + 4 + 5.
inline constexpr int kEdges = 14;
/// Candidate ops per edge.
inline constexpr int kOps = 8;

/// Input slots per node in DartsSpace::encode(): a DARTS node reads 2 inputs.
inline constexpr int kEncodedInputs = 2;
/// Sources a node may read, at most: node 5 reads one of 0..4.
inline constexpr int kSources = kNodes - 1;
/// Entries of one input slot of DartsSpace::encode(): the op's one-hot, then the source's.
inline constexpr int kEncodedSlot = 8 + kSources;

/// The candidate ops, in DARTS's order (`PRIMITIVES`), used by indices, encodings and
/// architecture parameters.
inline constexpr const char* kOpNames[kOps] = {"none",         "max_pool_3x3", "avg_pool_3x3",
                                               "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                                               "dil_conv_3x3", "dil_conv_5x5"};

/// Candidate op ids (positions in kOpNames).
enum CellOp : int {
  kNone = 0,
  kMaxPool3x3 = 1,
  kAvgPool3x3 = 2,
  kSkip = 3,
  kSepConv3x3 = 4,
  kSepConv5x5 = 5,
  kDilConv3x3 = 6,
  kDilConv5x5 = 7
};

/// The DARTS paper's first-order cell (DARTS_V1 of its genotypes.py), in canonical form.
inline constexpr const char* kDartsV1 =
    "normal=[(sep_conv_3x3,0),(sep_conv_3x3,1),(skip_connect,0),(sep_conv_3x3,1),"
    "(skip_connect,0),(sep_conv_3x3,1),(sep_conv_3x3,0),(skip_connect,2)];"
    "reduce=[(max_pool_3x3,0),(max_pool_3x3,1),(max_pool_3x3,0),(skip_connect,2),"
    "(max_pool_3x3,0),(skip_connect,2),(avg_pool_3x3,0),(skip_connect,2)]";
/// The DARTS paper's second-order cell (DARTS_V2, the published "DARTS" architecture), in
/// canonical form (DARTS lists some pairs in another order; see parse_genotype()).
inline constexpr const char* kDartsV2 =
    "normal=[(sep_conv_3x3,0),(sep_conv_3x3,1),(sep_conv_3x3,0),(sep_conv_3x3,1),"
    "(skip_connect,0),(sep_conv_3x3,1),(skip_connect,0),(dil_conv_3x3,2)];"
    "reduce=[(max_pool_3x3,0),(max_pool_3x3,1),(max_pool_3x3,1),(skip_connect,2),"
    "(max_pool_3x3,0),(skip_connect,2),(max_pool_3x3,1),(skip_connect,2)]";

/// Index in [0, 14) of the edge from node `from` to intermediate node `node` (2 <= node <= 5,
/// 0 <= from < node): edges are ordered by target node, then by source, as DARTS's alphas.
int edge_index(int node, int from);

/// One chosen input of an intermediate node: which earlier node it reads and through what op.
struct Input {
  int op = kNone;  ///< A CellOp.
  int from = 0;    ///< The node read, in [0, node).
  /// Equality of op and source.
  bool operator==(const Input& other) const { return op == other.op && from == other.from; }
};

/// One cell's genotype: the inputs of each intermediate node.
struct Cell {
  /// nodes[k - 2]: the inputs of node k, with distinct sources, sorted by source (the canonical
  /// order; make_canonical() restores it). DARTS cells have exactly 2 inputs per node;
  /// discretize() with keep != 2 and the grouped string form allow 1..k.
  std::array<std::vector<Input>, kSteps> nodes;
  /// Equality of all nodes.
  bool operator==(const Cell& other) const { return nodes == other.nodes; }
};

/// A whole architecture: without `macro`, cells = {normal, reduce}; with `macro`, one cell per
/// network cell, in order.
struct Genotype {
  std::vector<Cell> cells;  ///< See above.
  /// Equality of all cells.
  bool operator==(const Genotype& other) const { return cells == other.cells; }
};

/// Sorts each node's inputs by source. Throws Error when an op id is out of range, a source is
/// out of range, a node has no inputs or reads a node twice.
void make_canonical(Cell& cell);

/// The canonical text of one cell, `[(op,i),(op,j),...]`: no whitespace, each node's inputs
/// sorted by source. When every node has exactly 2 inputs (every DARTS genotype), the flat
/// DARTS form lists the 8 pairs of nodes 2, 3, 4, 5 in order; otherwise the grouped form
/// separates the nodes' lists with '|': `[(op,0)|(op,0),(op,2)|...]` (4 groups).
std::string cell_to_string(const Cell& cell);

/// The canonical text of a genotype: `normal=<cell>;reduce=<cell>` (macro = false, 2 cells) or
/// `cell0=<cell>;cell1=<cell>;...` (macro = true, one per cell).
std::string genotype_to_string(const Genotype& genotype, bool macro);

/// Parses the text of a genotype with `cells` cells (2 without macro, `layers` with macro).
/// Grammar (whitespace is allowed between tokens; op names may be quoted with ' or ", so
/// DARTS's Python lists paste as they are):
/// @code
///   text  := label '=' cell (';' label '=' cell)*     labels: normal, reduce | cell0, cell1, ...
///   cell  := '[' pair (',' pair){7} ']'                flat: 8 pairs, 2 per node in node order
///          | '[' group ('|' group){3} ']'              grouped: one group per node 2..5
///   group := pair (',' pair)*                          1..k pairs for node k
///   pair  := '(' op ',' source ')'                     op in kOpNames, 0 <= source < node
/// @endcode
/// A node's sources must be distinct; they may come in any order (the canonical text sorts
/// them). Throws Error quoting the text and naming the 0-based character position and the
/// token at fault: an unknown op, a source out of range or read twice, a wrong label, a wrong
/// number of pairs, groups or cells, a missing bracket, parenthesis, comma or '='.
Genotype parse_genotype(const std::string& text, bool macro, std::int64_t cells);

/// Network shape around the cells.
struct MacroConfig {
  std::int64_t layers = 8;          ///< Cells; reduction cells at layers/3 and 2*layers/3.
  std::int64_t channels = 16;       ///< C: channels of the first cells' nodes (stem: 3C).
  std::int64_t input_channels = 3;  ///< Channels of the input images.
  std::int64_t input_size = 32;     ///< Height = width of the input images.
  std::int64_t classes = 10;        ///< Output classes.
  bool macro = false;               ///< One genotype per cell instead of normal + reduce.
};

/// True when cell `index` of a network of `layers` cells is a reduction cell (DARTS:
/// index == layers/3 or index == 2*layers/3).
bool is_reduction(std::int64_t index, std::int64_t layers);

/// The operator graph of the network (see architecture.h for the conventions). Names:
/// `input`; `stem.conv`, `stem.bn`; per cell i: preprocessing `c<i>.pre0.*`, `c<i>.pre1.*`
/// (`relu`, `conv`, `bn`; FactorizedReduce: `relu`, `conv1`, `conv2`, `cat`, `bn`),
/// intermediate nodes `c<i>.n<k>` (`add`, k = 2..5), their ops `c<i>.n<k>.i<from>.<part>`
/// (sep_conv: relu1 dw1 pw1 bn1 relu2 dw2 pw2 bn2; dil_conv: relu dw pw bn; pooling: pool;
/// skip_connect at stride 2: relu conv1 conv2 cat bn) and the output `c<i>.out` (`concat`);
/// head `head.gap`, `head.linear` (exit 0). Every node of cell i has module i (stem and head:
/// -1); `scale` is that of the node's output. Throws Error when the genotype has the wrong
/// number of cells for config.macro / config.layers or is not canonical.
ArchGraph build_graph(const Genotype& genotype, const MacroConfig& config);

/// Parameters and multiply-accumulates of any architecture graph for square inputs of
/// `input_size` pixels (see DartsSpace::stats() for what is counted).
ArchStats graph_stats(const ArchGraph& graph, std::int64_t input_size);

/// The `format` tag of an intensive-space file.
inline constexpr const char* kIntensiveFormat = "hypernas-intensive-1";
/// The largest K of an intensive space: node 2 has 2 sources x 7 ops other than `none`.
inline constexpr std::int64_t kMaxIntensiveK = 14;
/// The smallest K: a DARTS node reads 2 inputs.
inline constexpr std::int64_t kMinIntensiveK = 2;

/// ADWP's intensive space O* = {O*_normal, O*_reduce} (ADWPNAS §3.1.2): the K candidate
/// inputs of every intermediate node of each cell type.
struct Intensive {
  std::int64_t k = 0;  ///< K: candidates per node, in [kMinIntensiveK, kMaxIntensiveK].
  /// candidates[g][k - 2]: the K candidates (op other than `none`, source < k, no pair twice)
  /// of node k of cell type g (0: normal, 1: reduce), in the file's order (strongest first in
  /// what DartsSpace::intensive() writes). Column c of the node's arch-parameter row is
  /// candidate c.
  std::array<std::array<std::vector<Input>, kSteps>, 2> candidates;
  std::string source;  ///< The file's free-text "source" (empty when absent).
};

/// The label of a candidate input, "sep_conv_3x3~1" (op~source, as in the intensive file).
std::string input_label(const Input& input);

/// Parses the JSON text of an intensive space; `file` names it in messages. The format:
/// @code
/// {"format": "hypernas-intensive-1", "k": 6,
///  "normal": [[ "sep_conv_3x3~0", "skip_connect~1", ... 6 entries ],   <- node 2
///             [...node 3...], [...node 4...], [...node 5...]],
///  "reduce": [...the same for reduction cells...],
///  "source": "free text, optional"}
/// @endcode
/// Each entry is "op~source": op one of the 7 ops other than `none`, 0 <= source < node, no
/// entry twice in a node, exactly k entries per node, kMinIntensiveK <= k <= kMaxIntensiveK.
/// Keys other than these five, or a key given twice, are errors. Throws Error naming `file`,
/// the JSON location (`normal[1][3]` is entry 3 of node 3 of the normal cell) and the value at
/// fault, or, for text that is not JSON, the line and column the JSON parser stopped at.
Intensive parse_intensive(const std::string& text, const std::string& file);

/// Reads and parses (parse_intensive()) the intensive-space file at `path`. Throws Error
/// naming the path when it does not exist, is not a regular file or cannot be read.
Intensive load_intensive(const std::string& path);

/// The JSON text of `space` in the format parse_intensive() reads, one node per line.
std::string intensive_to_json(const Intensive& space);

/// The continuous relaxation of the network of `config` (see the file comment); `intensive`
/// (may be null) restricts every node to its cell type's candidates. Names: the branch of
/// candidate (op, source) of node k of cell i is `c<i>.n<k>.i<source>.<opname>.<part>`, its
/// parts those of build_graph() (sep_conv: relu1 dw1 pw1 bn1 relu2 dw2 pw2 bn2; dil_conv: relu
/// dw pw bn; pooling: pool; skip_connect at stride 2: relu conv1 conv2 cat bn; skip_connect at
/// stride 1: no node, the mix reads the source), ending in `c<i>.n<k>.i<source>.<opname>.mix`.
/// Stem, preprocessing, cell nodes `c<i>.n<k>` (`add`, c_out set: all mixes at probability 0
/// give zeros), `c<i>.out` and the head keep build_graph()'s names, modules and scales; vertex
/// order is topological. Cell i uses block i with `macro`, otherwise block 1 (reduce) when
/// is_reduction(i), else block 0 (normal). Without `intensive`: row = edge_index(k, source),
/// col = op id, blocks {14, 8}; with it: row = k - 2, col = the candidate's index in its
/// node's list (normal list in normal cells, reduce list in reduction cells), blocks {4, K}.
/// Labels read `c3.n2: sep_conv_3x3~1`.
Relaxation build_relaxation(const MacroConfig& config, const Intensive* intensive);

/// For every node of build_graph(genotype, config), its name in build_relaxation()'s network:
/// the nodes of an input's op gain the op's name (`c0.n2.i1.dw1` of a sep_conv_3x3 input is
/// `c0.n2.i1.sep_conv_3x3.dw1`); every other node keeps its name.
std::map<std::string, std::string> relaxed_names(const Genotype& genotype,
                                                 const MacroConfig& config);

}  // namespace hypernas::darts

namespace hypernas {

/// The DARTS / ADWP cell space as a plugin (`darts`).
class DartsSpace : public SearchSpace {
 public:
  /// Declared options: layers, channels, input_channels, input_size, classes, macro,
  /// intensive (path of an intensive-space file, see darts::parse_intensive(); "" for none).
  static const ParamTable& params() noexcept;
  /// Builds the space from resolved options (every key of params() present). Throws Error on
  /// values out of range and on an intensive-space file that cannot be read or parsed.
  explicit DartsSpace(const Options& options);

  /// "darts".
  std::string name() const override { return "darts"; }
  /// A uniformly random genotype: each intermediate node k of each cell picks 2 distinct
  /// sources in [0, k) (each unordered pair equally likely) and, independently for each, one
  /// of the 7 ops other than `none` (DARTS genotypes never contain `none`). With `intensive`,
  /// sampling stays inside the relaxation: each node picks 2 of its candidates with distinct
  /// sources, every such unordered pair equally likely (1 candidate when all of the node's
  /// candidates read the same node).
  Architecture sample(Rng& rng) const override;
  /// Parses the string form (see darts::parse_genotype()); any genotype parses, also with
  /// `intensive` (select() is what refuses one outside the intensive space).
  Architecture parse(const std::string& text) const override;
  /// The primitive ops the graphs use: input, conv, bn, relu, avg_pool, max_pool, add,
  /// concat, gap, linear.
  std::vector<std::string> op_vocabulary() const override;
  /// Counted from the graph with this space's input_size. Parameters: conv weights
  /// (c_out * c_in/groups * k * k), BN weight and bias (2 * c_out), linear weight and bias;
  /// every node counts, including a preprocessing whose output no op reads (DARTS's model has
  /// it too). FLOPs: multiply-accumulates of convolutions (weights x output pixels) and of
  /// the linear layer (c_in * c_out) for one image; BN, ReLU, pooling, additions,
  /// concatenation and biases are not counted.
  ArchStats stats(const Architecture& arch) const override;
  /// SMASH-style ±1 one-hot of the genotype's choices: a float tensor
  /// [blocks, 4, 2, 13] (blocks = 2: normal, reduce, or `layers` with macro; 208 values without
  /// macro), the same shape for every architecture of the space instance. Entry [b][k - 2][s]
  /// describes input slot s of node k of genotype block b, its inputs taken in canonical order
  /// (ascending source): columns 0..7 the one-hot of its op (kOpNames order, `none` included,
  /// since parse() accepts it), columns 8..12 the one-hot of its source (0..4); +1 for the
  /// choice, -1 elsewhere. A node with a single input (possible in an intensive space whose
  /// candidates all read one node) has slot 1 all -1. Throws Error for a genotype with more
  /// than 2 inputs in a node (discretize() with keep > 2 makes those): the encoding has room
  /// for DARTS's 2, and SMASH-style surrogates need one fixed shape.
  at::Tensor encode(const Architecture& arch) const override;
  /// One block {14, 8} per distinct genotype: `normal.alpha`, `reduce.alpha`; with macro
  /// `cell<i>.alpha` for i = 0..layers-1. Row e holds the logits of edge e's 8 ops. With
  /// `intensive`, the same names with shape {4, K}: row k - 2 holds the logits of node k's K
  /// candidates (Eq. 4's α).
  std::vector<ArchParamSpec> arch_params() const override;
  /// DARTS's rule on each block: softmax over each edge's ops; for each intermediate node k,
  /// rank its k incoming edges by their strongest op other than `none` and keep the `keep`
  /// strongest (all k when keep >= k), each with that op. Ties go to the lower op id and the
  /// lower source. keep must be >= 1 (DARTS: 2).
  /// With `intensive` (ADWP's top-T, T = keep): softmax over each node's K candidates; keep the
  /// `keep` strongest candidates with DISTINCT sources, strongest first, skipping a weaker
  /// candidate whose source is already kept (a genotype reads a node at most once); ties go to
  /// the lower column. A node whose candidates have fewer distinct sources keeps fewer.
  Architecture discretize(const std::vector<at::Tensor>& alphas, std::int64_t keep) const override;
  /// ABI 1.4: the relaxed network of this space (see darts::build_relaxation()), with the
  /// intensive space of the `intensive` option when it is set.
  Relaxation relaxed() const override;
  /// ABI 1.4: `arch` inside relaxed(). probs: per block (float CPU, shaped as arch_params()),
  /// 1 at the entry of every (source, op) input the genotype uses, 0 elsewhere (without
  /// `intensive`, a `none` input puts its 1 in column 0, which has no branch); names: see
  /// darts::relaxed_names(). Throws Error when arch is not of this space, or, with
  /// `intensive`, when an input is not among its node's candidates (naming the cell, the node,
  /// the input and the candidates).
  Selection select(const Architecture& arch) const override;
  /// ABI 1.4: ADWP's intensive-space deriving (§3.1.2) from the α of a space WITHOUT the
  /// `intensive` option (blocks {14, 8}; Error otherwise). Per cell type (normal, reduce):
  /// the per-edge softmax of its block (in macro mode, the mean of the per-edge softmax
  /// probabilities over the cells of that type; a type no cell has, as normal cells with
  /// fewer than 3 layers, ranks all pairs as ties); for node k, every (source, op other than
  /// `none`) pair ranked by that probability (ties: lower edge, then lower op), the top `k`
  /// kept as labels "op~source", strongest first. choices = {normal nodes 2..5, reduce nodes
  /// 2..5}; json = the file the `intensive` option reads. k in [2, 14].
  IntensiveSpace intensive(const std::vector<at::Tensor>& alphas, std::int64_t k) const override;
  /// ABI 1.5: a random neighbour of `arch`. For every genotype block, node and input, in that
  /// order (inputs in canonical order), two independent redraws, each with probability `p`:
  /// - the op, uniformly among the OTHER ops sample() could choose there: the 6 other ops
  ///   than the current one among the 7 other than `none` (all 7 when the input is `none`);
  ///   with `intensive`, among the node's candidates with the same source and another op;
  /// - the source, uniformly among the sources in [0, k) that no input of the node reads yet
  ///   (the node's sources stay distinct; node 2 reading both 0 and 1 has none left); with
  ///   `intensive`, among such sources some candidate of the node reads, keeping the op when
  ///   (op, new source) is a candidate and otherwise taking one of that source's candidates
  ///   uniformly.
  /// A redraw with nothing to choose from is skipped. The number of inputs of each node never
  /// changes, so p = 0 returns `arch`, and the result stays inside the intensive space (every
  /// input remains a candidate). Draws per input: uniform() for the op, uniform_int() when it
  /// changes, uniform() for the source, uniform_int() (and, in an intensive space, one more
  /// when the op cannot be kept) when it changes. Throws Error when p is not in [0, 1], arch
  /// is not of this space, or, with `intensive`, an input of arch is not among its node's
  /// candidates (as select() does).
  Architecture mutate(const Architecture& arch, Rng& rng, double p) const override;

  /// The genotype of an architecture of this space (parsed from arch.text); throws Error when
  /// arch.space is not "darts" or the text does not parse.
  darts::Genotype genotype_of(const Architecture& arch) const;
  /// The architecture of `genotype` (its cells are made canonical first).
  Architecture make(darts::Genotype genotype) const;
  /// Number of genotype blocks: 2, or `layers` with macro.
  std::int64_t blocks() const { return config_.macro ? config_.layers : 2; }
  /// The network shape this space builds.
  const darts::MacroConfig& config() const { return config_; }
  /// The intensive space of the `intensive` option, or null without it.
  const darts::Intensive* intensive_space() const { return intensive_ ? &*intensive_ : nullptr; }

 private:
  /// The candidates of node j + 2 for genotype block b (its cell type's list).
  const std::vector<darts::Input>& candidates(std::int64_t b, int j) const;
  /// The cell type (0: normal, 1: reduce) of genotype block b.
  int cell_type(std::int64_t b) const;
  /// Checks `alphas` against arch_params() for `what` ("discretize", "intensive") and returns
  /// each block's softmax over its rows, as doubles [block][row][col].
  std::vector<std::vector<std::vector<double>>> softmax_blocks(
      const std::vector<at::Tensor>& alphas, const char* what) const;

  darts::MacroConfig config_;
  std::string intensive_path_;                 // The `intensive` option ("": none).
  std::optional<darts::Intensive> intensive_;  // The parsed file, if any.
};

}  // namespace hypernas
