#pragma once
/// @file ghn_internal.h
/// @brief Internals shared by the GHN surrogate's source files (not part of its interface):
/// typed options, the propagation plan of a batch of graphs, and the CPU propagation engine.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "ghn.h"

namespace hypernas::ghn::detail {

/// The resolved options, typed (see GhnSurrogate::params() for their meaning and defaults:
/// the table is the one place that declares them).
struct Config {
  std::int64_t hidden;             ///< Embedding size.
  std::int64_t hyper_hidden;       ///< H's hidden width.
  std::int64_t steps;              ///< Propagation phases T.
  Propagation propagation;         ///< Scheme.
  bool stacked;                    ///< Stacked GHN.
  double lr;                       ///< Adam learning rate.
  double weight_decay;             ///< Adam L2 weight decay.
  std::int64_t meta_batch;         ///< Architectures per fit step.
  bool fan_in_norm;                ///< GHN-2 fan-in normalisation.
  bool layer_norm;                 ///< GHN-2 layer norm.
  bool virtual_edges;              ///< GHN-2 virtual edges.
  std::int64_t max_shortest_path;  ///< Virtual edges' reach.
  std::int64_t max_channels;       ///< C of the maximal tensor.
  std::int64_t max_kernel;         ///< K of the maximal tensor.
  std::int64_t init_seed;          ///< Seed of the initial weights.
  std::int64_t log_every;          ///< Fit log period in steps.
  double grad_clip;                ///< Max gradient norm (0: none).
  bool cosine;                     ///< Cosine lr schedule per fit.
  bool handoff_all;                ///< Stacked: the mean also enters every node of the next module.
  bool score_loss;                 ///< Score = -cross-entropy (else accuracy).
  std::int64_t finetune_steps;     ///< SGD steps before scoring.
  double finetune_lr;              ///< Their learning rate.
  bool shape_embed;                ///< GHN-2 shape embeddings added to the initial states.
  bool scale_embed;                ///< Scale and exit-role embeddings added to them.
  std::vector<double> exit_weights;  ///< fit: weights of the exits' losses (empty: the mean).
  bool prune;                        ///< Propagate over prune_graph()'s simplified graph.

  /// From options resolved by GhnSurrogate::params().
  explicit Config(const Options& o)
      : hidden(o.get_int("hidden")),
        hyper_hidden(o.get_int("hyper_hidden")),
        steps(o.get_int("steps")),
        propagation(parse_propagation(o.get_string("propagation"))),
        stacked(o.get_bool("stacked")),
        lr(o.get_real("lr")),
        weight_decay(o.get_real("weight_decay")),
        meta_batch(o.get_int("meta_batch")),
        fan_in_norm(o.get_bool("fan_in_norm")),
        layer_norm(o.get_bool("layer_norm")),
        virtual_edges(o.get_bool("virtual_edges")),
        max_shortest_path(o.get_int("max_shortest_path")),
        max_channels(o.get_int("max_channels")),
        max_kernel(o.get_int("max_kernel")),
        init_seed(o.get_int("init_seed")),
        log_every(o.get_int("log_every")),
        grad_clip(o.get_real("grad_clip")),
        cosine(o.get_string("lr_schedule") == "cosine"),
        handoff_all(o.get_string("handoff") == "all"),
        score_loss(o.get_string("score_metric") == "loss"),
        finetune_steps(o.get_int("finetune_steps")),
        finetune_lr(o.get_real("finetune_lr")),
        shape_embed(o.get_bool("shape_embed")),
        scale_embed(o.get_bool("scale_embed")),
        exit_weights(parse_exit_weights(o.get_string("exit_weights"))),
        prune(o.get_bool("prune")) {}

  /// Size of the maximal 4-D block [C, C, K, K] of H's output.
  std::int64_t block4() const { return max_channels * max_channels * max_kernel * max_kernel; }
  /// Size of H's whole output: the 4-D block and the [2, C] vector block.
  std::int64_t outputs() const { return block4() + 2 * max_channels; }
};

// ---------------------------------------------------------------------------------------------
// The propagation plan of a batch of graphs (their disjoint union), as plain vectors. Node ids
// are global: graph k's GHN node u (its vertex u, or for u >= its vertex count one of its
// segments' input nodes, see Segment) is base[k] + u.

/// Messages into one group of nodes, CPU side. Rows (dst, vdst) are positions in the
/// group; sources are global node ids (local positions in StepBuild::sync_forward/backward).
struct MessagesBuild {
  std::vector<std::int64_t> src, dst;    ///< 1-hop edges.
  std::vector<std::int64_t> vsrc, vdst;  ///< Virtual edges...
  std::vector<float> vw;                 ///< ...and their weights 1/distance.
};

/// One batched update on the CPU side of a plan (global ids; rows are positions in idx).
struct GroupBuild {
  std::vector<std::int64_t> idx;  ///< The nodes updated together.
  MessagesBuild msg;              ///< Their messages.
  bool feeds = false;             ///< Some later group of the same pass reads M of these nodes.
};

/// Segment s of every graph that has one, CPU side.
struct StepBuild {
  std::vector<std::int64_t> nodes;                  ///< The segment's nodes (input first).
  std::vector<std::int64_t> inputs, input_slot;     ///< Hand-off targets, their graph's slot.
  std::vector<std::int64_t> prev_nodes, prev_slot;  ///< Segment s-1's vertices, their slot.
  std::vector<float> prev_count;                    ///< Segment s-1's size per slot.
  std::vector<GroupBuild> forward, backward;        ///< Level groups of the two passes.
  MessagesBuild sync_forward, sync_backward;        ///< Sources local to `nodes`.
  GroupBuild sync[2];                               ///< The same with global sources (CPU engine).
};

/// The propagation plan of a batch of graphs (their disjoint union), as plain vectors.
struct PlanData {
  std::int64_t total = 0;           ///< GHN nodes in the batch (input nodes included).
  std::vector<std::int64_t> base;   ///< First global id of each graph.
  std::vector<std::int64_t> types;  ///< Node type of every node; -1: an input node.
  std::vector<StepBuild> steps;     ///< One per segment index.
};

/// The plan of `graphs` (propagated together as one disjoint union): segments, level groups
/// with their messages, the stacked GHN's hand-off (segment s-1's mean added to the initial
/// state of segment s's input node, which is otherwise zero; with Config::handoff_all, to
/// the one-hot initial state of each of its vertices too), and the synchronous rounds. With
/// `one_at_a_time`, every level group is a single node (see segment_levels()).
PlanData build_plan(const std::vector<const ArchGraph*>& graphs, const Config& cfg,
                    bool one_at_a_time);

/// Propagation of `plan` on the CPU as plain loops (ghn_engine.cpp): the final node
/// embeddings [total, hidden] (input nodes included), before layer norm. `params`: the message
/// MLP's w1 b1 w2 b2, the GRU's w_ih w_hh b_ih b_hh, then (virtual edges) the second MLP's w1 b1 w2
/// b2. `init_add` (undefined, or [total, hidden]) is added to the initial states (the shape,
/// scale and exit-role embeddings). When grad mode is on and a parameter or `init_add` requires
/// grad, the result carries one autograd node whose backward is hand-written; it computes what the
/// ATen propagation computes.
at::Tensor propagate_cpu(std::shared_ptr<const PlanData> plan, const Config& cfg,
                         const std::vector<at::Tensor>& params, const at::Tensor& init_add);

}  // namespace hypernas::ghn::detail
