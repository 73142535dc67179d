#pragma once
/// @file smash.h
/// @brief SMASH's memory-bank networks (smash_arch.h) as a HyperNAS search space (`smash`).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/space.h>

#include "smash_arch.h"

namespace hypernas {

/// The SMASH space as a plugin (`smash`). Infinite (size() is nullopt), no architecture
/// parameters; encode() is SMASH's architecture tensor c. Also a smash::ConfigSource, so that
/// the `smash` surrogate reads its Config (a cross-cast from SearchSpace).
class SmashSpace : public SearchSpace, public smash::ConfigSource {
 public:
  /// Every smash::Config option (smash::config_params()).
  static const ParamTable& params() noexcept;
  /// Builds the space from resolved options; throws Error naming the option at fault
  /// (smash::Config::from()).
  explicit SmashSpace(const Options& options);

  /// "smash".
  std::string name() const override { return "smash"; }
  /// smash::sample().
  Architecture sample(Rng& rng) const override;
  /// smash::parse(); the text of the result is the canonical smash::print().
  Architecture parse(const std::string& text) const override;
  /// input, conv, bn, relu, avg_pool, add, concat, gap, linear, slice, mul, tanh, sigmoid.
  std::vector<std::string> op_vocabulary() const override;
  /// count_graph() of the architecture's graph with this space's input_size (rebuilt from the
  /// text when the graph is empty).
  ArchStats stats(const Architecture& arch) const override;
  /// smash::encode(): float [encoding_channels, N_max / N, max_slices], values ±1.
  at::Tensor encode(const Architecture& arch) const override;
  /// smash::mutate().
  Architecture mutate(const Architecture& arch, Rng& rng, double p) const override;

  /// The smash::Arch of an architecture of this space (parsed from arch.text); throws Error
  /// when arch.space is not "smash" or the text does not parse.
  smash::Arch arch_of(const Architecture& arch) const;
  /// The architecture of `a` (validated).
  Architecture make(const smash::Arch& a) const;
  /// The options this space was built with.
  const smash::Config& config() const { return config_; }
  /// smash::ConfigSource: config().
  const smash::Config& smash_config() const override { return config_; }

 private:
  smash::Config config_;
};

}  // namespace hypernas
