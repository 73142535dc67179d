#pragma once
/// @file space.h
/// @brief Search spaces: sample, parse and print architectures, count their cost, and (for
/// differentiable search) expose architecture parameters.

#include <cstdint>
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
  /// SMASH's). Default: not supported.
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
};

}  // namespace hypernas
