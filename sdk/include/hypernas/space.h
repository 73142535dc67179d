#pragma once
/// @file space.h
/// @brief Search spaces: sample, parse and print architectures, count their cost, and (for
/// differentiable search) expose architecture parameters.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "hypernas/architecture.h"
#include "hypernas/context.h"
#include "hypernas/plugin.h"

namespace hypernas {

/// Cost of an architecture, counted from its graph without running it.
struct ArchStats {
  std::int64_t params = 0;  ///< Trainable parameters (weights, biases, BN affine).
  std::int64_t flops = 0;   ///< Multiply-accumulates of one forward pass on one input.
};

/// One block of architecture parameters (ADWP's α_l of one cell, say): real logits whose
/// softmax over the last dimension weighs the candidate ops.
struct ArchParamSpec {
  std::string name;                 ///< Stable name ("cell3.alpha").
  std::vector<std::int64_t> shape;  ///< Shape, e.g. {edges, ops}.
};

/// ABI 1.4: one weighted branch of a relaxed (mixed-op) network: a candidate op on one edge.
/// Its output is the output of the `mix` node `node`, scaled by the probability at [row][col]
/// of arch-parameter block `block` (see Relaxation).
struct MixChoice {
  std::string node;                ///< Name of the branch's `mix` node in Relaxation::network.
  std::int64_t block = 0;          ///< Index into arch_params().
  std::int64_t row = 0;            ///< Row of that block (the softmax runs over a row).
  std::int64_t col = 0;            ///< Column: which candidate of the row.
  std::vector<std::string> nodes;  ///< The branch's own nodes (the op), in vertex order; empty
                                   ///< for an identity branch (the mix reads the source itself).
  std::string label;               ///< What users read ("c3.n2: sep_conv_3x3~1").
};

/// ABI 1.4: the continuous relaxation of a space as one network (DARTS's supernet, ADWP's
/// HyperNetwork backbone). Every candidate op of every edge is a branch ending in a `mix` node;
/// a cell node sums its mixes. Executor::forward_relaxed() runs it with the probabilities of
/// the arch-parameter blocks (softmax over each row of each block); a branch whose probability
/// is exactly 0 is not computed at all, so the relaxed network with one-hot probabilities is
/// the discrete network of the selected ops. Candidates without a branch (`none`) only take
/// part in the softmax. The nodes around the cells (stem, preprocessing, head) carry the same
/// names as in the space's discrete networks.
struct Relaxation {
  Architecture network;               ///< The supernet; its text names the relaxation.
  std::vector<MixChoice> mixes;       ///< Every branch, in vertex order of its mix node.
  std::vector<ArchParamSpec> blocks;  ///< Equal to arch_params().
};

/// ABI 1.4: an architecture of the space located inside its relaxation.
struct Selection {
  /// One-hot probabilities, one tensor per arch-parameter block (float, CPU): 1 for every
  /// candidate the architecture uses. With them, the relaxed network is `arch`.
  std::vector<at::Tensor> probs;
  /// Node name in `arch`'s graph -> the same node's name in Relaxation::network, for every node
  /// of the architecture (nodes around the cells map to themselves).
  std::map<std::string, std::string> names;
};

/// ABI 1.4: the K strongest candidates of each node, ADWP's intensive space O* (§3.1.2).
struct IntensiveSpace {
  /// choices[g][m]: the labels ("sep_conv_3x3~1") of node m of cell type g (normal, reduce):
  /// the K candidates with the largest probability other than `none`, strongest first.
  std::vector<std::vector<std::vector<std::string>>> choices;
  std::string json;  ///< The form the space's `intensive` option reads (a file's contents).
};

/// A search space. Options every space accepts: `input_channels`, `input_size`, `classes`
/// (the kernel fills them from the dataset a space is made for).
class SearchSpace : public Plugin {
 public:
  /// Always PluginKind::Space.
  PluginKind kind() const final { return PluginKind::Space; }
  /// The space's name ("nb201").
  virtual std::string name() const = 0;
  /// A uniformly random architecture.
  virtual Architecture sample(Rng& rng) const = 0;
  /// Parses the space's string form; throws Error naming the text and the position at fault.
  virtual Architecture parse(const std::string& text) const = 0;
  /// Number of distinct architectures, for finite spaces.
  virtual std::optional<std::uint64_t> size() const { return std::nullopt; }
  /// The architecture with `index` in [0, size()); throws for infinite spaces.
  virtual Architecture at(std::uint64_t index) const {
    (void)index;
    throw Error(cat("space '", name(), "' is not enumerable"));
  }
  /// The operator vocabulary, in a fixed order (GHN's one-hot embedding indexes it).
  virtual std::vector<std::string> op_vocabulary() const = 0;
  /// Parameter count and FLOPs of `arch`.
  virtual ArchStats stats(const Architecture& arch) const = 0;
  /// A fixed-size numeric encoding of `arch` (for encoding-conditioned surrogates such as
  /// SMASH's): a float tensor whose shape is the same for every architecture of the space
  /// instance. Default: not supported.
  virtual at::Tensor encode(const Architecture& arch) const {
    (void)arch;
    throw Error(cat("space '", name(), "' has no fixed-size architecture encoding"));
  }
  /// The architecture-parameter blocks of the continuous relaxation (empty: the space has
  /// none, and gradient search cannot run on it).
  virtual std::vector<ArchParamSpec> arch_params() const { return {}; }
  /// The architecture chosen by `alphas` (one tensor per arch_params() block), keeping the
  /// `keep` strongest ops per node. Default: not supported.
  virtual Architecture discretize(const std::vector<at::Tensor>& alphas, std::int64_t keep) const {
    (void)alphas;
    (void)keep;
    throw Error(cat("space '", name(), "' has no continuous relaxation"));
  }
  // NOTE: virtual functions below were appended in later minors. A plugin calls one only on a
  // space built with that minor or a later one (SearchRequest::space_abi_minor says which).
  /// ABI 1.4: the relaxed network of arch_params() (see Relaxation). Default: not supported.
  virtual Relaxation relaxed() const {
    throw Error(cat("space '", name(), "' has no relaxed network"));
  }
  /// ABI 1.4: `arch` inside relaxed(). Throws Error when arch uses a candidate the relaxation
  /// lacks (an op outside an intensive space, say). Default: not supported.
  virtual Selection select(const Architecture& arch) const {
    (void)arch;
    throw Error(cat("space '", name(), "' has no relaxed network"));
  }
  /// ABI 1.4: the intensive space of the `k` most likely non-`none` candidates per node under
  /// `alphas` (softmax per row), for ADWP's intensive-space deriving. Default: not supported.
  virtual IntensiveSpace intensive(const std::vector<at::Tensor>& alphas, std::int64_t k) const {
    (void)alphas;
    (void)k;
    throw Error(cat("space '", name(), "' cannot derive an intensive space"));
  }
  /// ABI 1.5: a random neighbour of `arch` in this space, for local search (SMASH's
  /// perturbations, the `perturb` strategy): every choice the architecture makes (an edge's op,
  /// a layer's kernel size, ...) is redrawn with probability `p`, independently, from the values
  /// the space allows there; the result always validates (a redraw that would not is drawn
  /// again or skipped). It may equal `arch` (with small p, often). Draws from `rng` only.
  /// Default: not supported.
  virtual Architecture mutate(const Architecture& arch, Rng& rng, double p) const {
    (void)arch;
    (void)rng;
    (void)p;
    throw Error(cat("space '", name(), "' cannot mutate an architecture"));
  }
};

}  // namespace hypernas
