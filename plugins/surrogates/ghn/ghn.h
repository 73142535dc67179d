#pragma once
/// @file ghn.h
/// @brief The `ghn` surrogate: Graph HyperNetworks (Zhang, Ren, Urtasun, ICLR 2019), with the
/// GHN-2 improvements of Knyazev et al. (NeurIPS 2021) as switchable options.
///
/// A GHN reads an architecture's operator graph (Architecture::graph) and generates every
/// parameter of it:
/// 1. Initial node embedding: the one-hot of the node's type over node_types() (the primitive
///    ops of architecture.h, with `conv` refined by kernel size, depthwise and dilation),
///    zero-padded to `hidden` dimensions; options `shape_embed` and `scale_embed` add learned
///    embeddings of the node's shape, and of its spatial scale and exit role (multi-exit
///    networks: see exit_roles()).
/// 2. Graph propagation: message function M (2-layer MLP, ReLU after both layers, as
///    ppuda's `MLP`) and update U (one GRU cell), shared by all nodes. A node's message is the
///    sum of M over its in-neighbours (forward pass) or out-neighbours (backward pass).
///    Forward-backward (asynchronous) propagation updates the nodes in topological order, then
///    in reverse, `steps` times; synchronous propagation (the ablation) updates all nodes at
///    once per round (see propagation_order()).
/// 3. Stacked GHN (option `stacked`): the graph is cut into segments (one per repeated cell,
///    OpNode::module, plus the runs of nodes outside cells); propagation runs inside one
///    segment at a time, in order, with the same parameters. Every segment after the first
///    has an INPUT NODE, a virtual node of the GHN's own graph (not in the architecture the
///    executor runs) standing for whatever the segment reads from outside: every edge that
///    enters the segment from outside starts from it, so the GHN sees which nodes read the
///    module's input and through which op. The mean final embedding of segment i is the
///    initial state of segment i+1's input node (the paper: "the mean node embedding of
///    module i is passed into the input node of module i+1"); the input node then takes part
///    in propagation like any node. A node with no in-edges at all (an `add` whose edges are
///    all `none`) gets nothing from the previous module. (An untrained GRU contracts
///    strongly: at initialisation two cells of the same graph differ by ~4e-5 at the nodes
///    reading the input node, less with each hop; training decides how much is kept.)
/// 4. Hypernetwork H: one 2-layer MLP (hidden `hyper_hidden`), shared by all nodes, maps a
///    node's final embedding to a maximal tensor: a [max_channels, max_channels, max_kernel,
///    max_kernel] block (conv and linear weights) followed by a [2, max_channels] block (row
///    0: batch-norm weights; row 1: biases of batch norm and linear layers). A parameter of
///    another shape is sliced from it, or tiled (index modulo the maximal size) on any
///    dimension where it is larger, as ppuda's `_tile_params` does. H's last layer is only
///    evaluated on the outputs a shape needs, once per group of equally shaped parameters.
///
/// Everything the executor asks for (Executor::parameters()) is generated: conv weights, batch
/// norm weights and biases, linear weights and biases, those of every exit head of a multi-exit
/// network included. Nothing is learned per architecture.
///
/// Nodes of one level (same longest-path depth inside their segment) are updated in one
/// batched GRU call; this equals the paper's one-node-at-a-time schedule (see
/// segment_levels()). On the CPU the propagation runs as plain loops with a hand-written
/// backward (ghn_engine.cpp); elsewhere as ATen ops. Several architectures (meta-batches,
/// score() requests) are propagated together as one disjoint union. README.md beside this
/// file lists what is faithful to the paper and what deviates.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include <hypernas/architecture.h>
#include <hypernas/context.h>
#include <hypernas/options.h>
#include <hypernas/surrogate.h>

namespace hypernas::ghn {

/// @name Graph analysis (no Torch): node types, segments, the propagation schedule
/// @{

/// The node types of the one-hot initial embedding, in index order: `input`, `conv1x1`,
/// `conv3x3`, `conv5x5`, `conv` (any other kernel), `dw_conv3x3`, `dw_conv5x5`, `dw_conv`
/// (other depthwise or grouped kernels), `dil_conv` (any conv with dilation > 1), `bn`,
/// `relu`, `avg_pool`, `max_pool`, `add`, `concat`, `gap`, `linear`, `resample` (appended with
/// ABI 1.3, so the earlier indices and the states trained with them are unchanged). Every
/// primitive op of architecture.h (kPrimitiveOps) has at least one type; `conv` is refined.
const std::vector<std::string>& node_types();

/// The index of `node`'s type in node_types(). Throws Error naming the node and its op when
/// the op is not a primitive op.
int node_type(const OpNode& node);

/// How node embeddings are propagated.
enum class Propagation {
  ForwardBackward = 1,  ///< Asynchronous: topological order, then reverse, per phase.
  Synchronous,          ///< Every node at once: one round on in-, one on out-neighbours.
};

/// Parses "forward-backward" or "synchronous"; throws UsageError otherwise.
Propagation parse_propagation(const std::string& text);

/// A part of the graph the GHN propagates over on its own (the stacked GHN's module), as the
/// GHN sees it. GHN node ids: 0 .. V-1 are the architecture's vertices (V vertices); the
/// virtual input nodes follow, V + k for the k-th segment that has one.
struct Segment {
  std::int64_t module = -1;         ///< OpNode::module of its nodes (-1: outside cells).
  std::vector<std::int64_t> nodes;  ///< Its vertices, increasing (a topological order).
  /// Its input node (a GHN node id >= V), or -1 when it has none (not stacked, or the first
  /// segment with no edge from outside). Stacked: every segment after the first has one;
  /// its initial state is the previous segment's mean final embedding.
  std::int64_t input = -1;
  /// The edges the GHN propagates along inside the segment, as (from, to) GHN node ids:
  /// every edge of the architecture between two of its nodes, and, for every edge that
  /// enters the segment from a vertex outside it, an edge from `input` to that edge's target
  /// (a node reading two outside vertices gets two parallel edges). Grouped by target in
  /// `nodes` order, each target's in-edges in the graph's order.
  std::vector<std::pair<std::int64_t, std::int64_t>> edges;
  /// The nodes in propagation order: `input` first (when there is one), then `nodes`.
  std::vector<std::int64_t> ghn_nodes() const;
};

/// The segments of `graph`. Not stacked: one segment of all nodes, with every edge and no
/// input node (no edge enters it). Stacked: one segment per module index >= 0, and one per
/// maximal run of consecutive vertices with module -1 (stem, reduction blocks, head);
/// segments are ordered by their first vertex; each after the first has an input node (the
/// first one only when an edge enters it from outside, which a graph whose modules are
/// contiguous never has). Throws Error when an edge goes from a later to an earlier vertex
/// (the graph must be in topological order).
std::vector<Segment> split_segments(const ArchGraph& graph, bool stacked);

/// The number of nodes of the GHN's graph of `graph`: its vertices plus the input nodes of
/// `segments` (split_segments()).
std::int64_t ghn_node_count(const ArchGraph& graph, const std::vector<Segment>& segments);

/// The nodes of one segment grouped for batched updates.
struct SegmentLevels {
  /// forward[l]: nodes (GHN ids, the input node included) whose longest path from a node
  /// without in-neighbours (along the segment's edges) has l edges; updated in increasing l.
  std::vector<std::vector<std::int64_t>> forward;
  /// backward[l]: nodes whose longest path to a node without out-neighbours (along the
  /// segment's edges) has l edges; updated in increasing l.
  std::vector<std::vector<std::int64_t>> backward;
};

/// Level groups of `segment`. A forward group's nodes read only nodes of earlier groups (no
/// edge joins two nodes of one group), so updating a group at once equals updating its nodes
/// one at a time in vertex order: each reads exactly the same states either way. Likewise
/// backward. With `one_at_a_time`, every group is a single node: Segment::ghn_nodes() order
/// forward, its reverse backward (the literal schedule of the paper, for checking). `graph` is
/// the segment's architecture graph (the segment's edges are what is read).
SegmentLevels segment_levels(const ArchGraph& graph, const Segment& segment,
                             bool one_at_a_time = false);

/// One batched GRU update of the schedule.
struct UpdateStep {
  std::int64_t segment = 0;         ///< Index into split_segments().
  std::int64_t phase = 0;           ///< 0 .. steps-1.
  bool backward = false;            ///< Messages from out-neighbours (else in-neighbours).
  std::vector<std::int64_t> nodes;  ///< Updated together, from the same prior states.
};

/// The exact update schedule the surrogate runs on `graph`: for each segment in order, for
/// each of `steps` phases: forward-backward: the forward level groups then the backward level
/// groups; synchronous: one step of all the segment's nodes with in-neighbour messages, then
/// one with out-neighbour messages (so every node gets 2 * steps GRU updates in both modes).
/// Nodes are GHN ids (see Segment): input nodes are updated like the others.
std::vector<UpdateStep> propagation_order(const ArchGraph& graph, Propagation propagation,
                                          std::int64_t steps, bool stacked,
                                          bool one_at_a_time = false);

/// The graph the GHN propagates over when option `prune` is on, and where each vertex of the
/// architecture went. Two simplifications, neither of which changes what the network computes:
/// - Dead branches: a vertex with no directed path to an output (the last vertex, or any exit,
///   OpNode::exit >= 0, of a multi-exit network) cannot affect the logits (in NB201, the edges
///   into an intermediate node whose out-edges are all `none`). It stays in the graph as an
///   isolated vertex (its parameters still need weights; nothing reads them), with none of its
///   edges.
/// - Hops: a `relu` whose only out-edge goes to a `conv` that reads nothing else, and a `bn`
///   whose only in-edge comes from a `conv` that feeds nothing else, are folded into that conv:
///   one node per paper op (`nor_conv_3x3` = relu, conv, bn) instead of three. A folded bn's
///   parameters are generated from the conv's embedding (H's vector rows, which the conv's
///   weights never use).
/// Vertices keep their order (a folded relu or bn takes the place of its conv), so the result is
/// in topological order; OpNode fields are the kept vertex's.
struct GraphView {
  ArchGraph graph;                      ///< The simplified graph.
  std::vector<std::int64_t> vertex_of;  ///< For each vertex of the architecture, its vertex here.
};

/// The simplified graph of `graph` (see GraphView).
GraphView prune_graph(const ArchGraph& graph);

/// GHN-2's shape features of a node (option `shape_embed`), each an index into its own learned
/// embedding table: output and input channels as 1 + floor(log2(c)) (0 for none, at most 15),
/// kernel size (at most 11; 0 for none) and stride (at most 4).
std::array<std::int64_t, 4> shape_key(const OpNode& node);

/// Sizes of the four shape tables, in shape_key() order.
constexpr std::array<std::int64_t, 4> kShapeTableSizes = {16, 16, 12, 5};

/// The index of a node's spatial scale (OpNode::scale) in its learned table (option
/// `scale_embed`): the scale clamped to 0 .. kScaleTableSize - 1.
std::int64_t scale_key(const OpNode& node);

/// Size of the scale table (scales 0 .. 7; larger ones share the last row).
constexpr std::int64_t kScaleTableSize = 8;

/// The part a node plays in a multi-exit network (option `scale_embed`), the index into its
/// learned table.
enum class ExitRole : std::uint8_t {
  None = 0,    ///< A body node that no exit head hangs off.
  Source = 1,  ///< A body node an exit head hangs off (it feeds the head and more).
  Head = 2,    ///< A node of an exit head (bn -> relu -> gap -> linear in the `anytime` space).
};

/// Number of ExitRole values (the size of the exit-role table).
constexpr std::int64_t kExitRoleCount = 3;

/// The exit role of every vertex of `graph`, indexed by vertex. From each `linear` with
/// OpNode::exit >= 0 (marked Head), the walk goes back through in-neighbours: while the node
/// reached has exactly one in-edge and one out-edge, and the linear's OpNode::module, it is
/// part of the head (Head); the node where the walk stops is the exit's source (Source). For an
/// early exit hanging off the body that is the body node whose output also goes on into the
/// network (it has other out-edges). The walk also stops at a node with no or several in-edges
/// (an `add` of branches, the input) or of another module (the `anytime` space and nb201 build
/// their heads with module -1, outside the cells): a head whose source feeds nothing else stops
/// there. Only where neither tells (an exit-only node in a graph without modules, whose op is a
/// chain of single-input nodes) does the walk take that chain into the head. A node that is
/// Head for one exit and Source for another is Head. Every vertex of a graph without exits is
/// None. Throws Error when the vertex order is not topological.
std::vector<ExitRole> exit_roles(const ArchGraph& graph);

/// A virtual edge (GHN-2): `to` is reachable from `from` by a directed path of `distance`
/// (>= 1, shortest) edges of one segment (Segment::edges; GHN ids, input nodes included).
struct VirtualEdge {
  std::int64_t from = 0;      ///< Source vertex.
  std::int64_t to = 0;        ///< Target vertex.
  std::int64_t distance = 1;  ///< Shortest directed path length.
};

/// Every pair of `segment` joined by a directed path of at most `max_distance` edges, in
/// increasing (from, to) order. Real edges are included (distance 1).
std::vector<VirtualEdge> virtual_edges(const ArchGraph& graph, const Segment& segment,
                                       std::int64_t max_distance);
/// @}

/// Parses option `exit_weights`: "" (empty: the mean over the exits) or comma-separated
/// numbers >= 0 ("0.25,0.5,1"; spaces around them allowed), the weights of the exits'
/// cross-entropies by position. Throws UsageError naming the text and the item at fault.
std::vector<double> parse_exit_weights(const std::string& text);

/// The training loss of one architecture from the logits of its exits (Executor::forward()'s
/// outputs, in exit order): with `weights` empty, the mean of the exits' cross-entropies (for a
/// single-exit network, its cross-entropy); else sum_k w_k CE_k, w_k = weights[k], the last
/// weight repeating for exits beyond the list. A 0-dim tensor; throws Error when `logits` is
/// empty.
at::Tensor exit_loss(const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                     const std::vector<double>& weights);

/// One GRU update h' = GRUCell(m, h) with torch.nn.GRUCell's parameter layout (w_ih [3H, H],
/// w_hh [3H, H], gates r, z, n), computed as the surrogate computes it (one fused matrix
/// product); equal to at::gru_cell to rounding. For tests.
at::Tensor gru_update(const at::Tensor& m, const at::Tensor& h, const at::Tensor& w_ih,
                      const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh);

}  // namespace hypernas::ghn

namespace hypernas {

/// The `ghn` surrogate plugin. Options: see params(). Not thread-safe: one call at a time.
class GhnSurrogate final : public Surrogate {
 public:
  /// Declared options: hidden, hyper_hidden, steps, propagation, stacked, lr, weight_decay,
  /// meta_batch, fan_in_norm, layer_norm, virtual_edges, max_shortest_path, max_channels,
  /// max_kernel, init_seed, log_every, grad_clip, lr_schedule, handoff, score_metric,
  /// finetune_steps, finetune_lr, shape_embed, scale_embed, exit_weights, prune, preset. The
  /// declared defaults are the tuned setting (docs/benchmarks.md measures it); `preset=paper` gives
  /// every option left at its default the paper's value instead.
  static const ParamTable& params() noexcept;
  /// Builds and initialises the GHN from resolved options (on the CPU; it moves to the
  /// context's device at the first call). Initial weights come from `init_seed`.
  explicit GhnSurrogate(const Options& options);
  ~GhnSurrogate() override;
  GhnSurrogate(const GhnSurrogate&) = delete;
  GhnSurrogate& operator=(const GhnSurrogate&) = delete;

  /// kTrainable | kGeneratesWeights | kGraphConditioned | kMultiExit | kNeedsData |
  /// kReadsEvalBatch | kReadsEvalImages.
  std::uint32_t capabilities() const override;
  /// Trains the GHN with Adam: each step draws `meta_batch` architectures from the space
  /// (ctx.rng()), generates their weights, runs them on one training batch and backpropagates
  /// the mean over the architectures of each one's loss, ghn::exit_loss() (the mean of its
  /// exits' cross-entropies, or their `exit_weights` sum). Throws Error naming the step and the
  /// architecture on a non-finite loss; Cancelled between steps when asked to stop.
  void fit(Context& ctx, const FitRequest& request) override;
  /// Accuracy (score_metric=accuracy) or negative mean cross-entropy (score_metric=loss) of the
  /// final exit (the highest; a single-exit network's output) with generated weights on the
  /// valid split (first max_images images, no shuffling, batches of request.batch_size,
  /// batch-statistics batch norm), after finetune_steps SGD steps (on the mean of the exits'
  /// cross-entropies) from the generated weights when that is > 0. Score::exits: one entry per
  /// exit in exit order, from the same forward passes: its accuracy and exit_flops()
  /// (graph_stats.h) at the dataset's image height. Score::extra: "loss" (mean cross-entropy),
  /// "accuracy", both of the final exit.
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;
  /// Every parameter ctx.executor()->parameters(arch) lists, with exactly those shapes
  /// (without gradient history).
  WeightMap generate(Context& ctx, const Architecture& arch, const SearchSpace& space) override;
  /// A versioned, checksummed binary blob: options, GHN weights, Adam state, loss curve.
  std::string save_state() const override;
  /// Restores save_state()'s blob; throws Error saying what is wrong with a truncated,
  /// corrupted or foreign blob, or one saved with other model options. On error nothing
  /// changes.
  void load_state(const std::string& blob) override;

  /// @name Beyond the Surrogate interface (tests, benchmarks)
  /// @{
  /// The weights of each architecture for the given parameter lists (one list per
  /// architecture, as Executor::parameters() gives), generated in one batched propagation.
  /// With `with_grad`, the tensors carry gradient history into the GHN.
  std::vector<WeightMap> generate_batch(const std::vector<const Architecture*>& archs,
                                        const std::vector<std::vector<ParamShape>>& shapes,
                                        bool with_grad = false);
  /// Final node embeddings [vertices, hidden] of `arch`'s vertices (after layer norm, when on;
  /// with prune, a folded vertex has its conv's row and a dead one its isolated node's;
  /// the stacked GHN's virtual input nodes are left out), on the CPU.
  /// With `one_at_a_time`, forward-backward updates one node per GRU call (the literal
  /// schedule) instead of one level group per call: the results agree to rounding.
  at::Tensor node_embeddings(const Architecture& arch, bool one_at_a_time = false);
  /// Propagation on the CPU runs as plain loops with a hand-written backward pass (one
  /// autograd node for the whole propagation); with `on`, it runs as ATen ops instead, as it
  /// always does on other devices. Both compute the same function (tests compare them).
  void use_aten_propagation(bool on);
  /// The GHN's parameters with their names (the tensors themselves: gradients show there).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  /// Mean training loss of every fit step so far (also kept in the state blob).
  const std::vector<double>& loss_curve() const;
  /// Number of trainable GHN parameters.
  std::int64_t parameter_count() const;
  /// The resolved options.
  const Options& options() const;
  /// @}

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hypernas
