#pragma once
/// @file surrogate_handle.h
/// @brief A surrogate as the kernel holds it: the plugin object with its name, resolved options,
/// ABI and trained-state tag, and the evaluation key built from exactly what changes its scores.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <hypernas/surrogate.h>

namespace hypernas::plugin {
class Registry;
}

namespace hypernas::session {

/// The evaluation settings of one scoring request (strategy:run{}, surrogate:score{},
/// `hypernas score`): how the surrogate scores, and how the service reuses and gives up.
struct EvalSettings {
  std::int64_t batch_size = 256;  ///< Evaluation batch size (fixed: batch-statistics BN).
  std::int64_t max_images = 0;    ///< Validation images per architecture (0: all).
  bool reuse = true;              ///< Take scores already in the store instead of scoring again.
  bool retry_failed = false;      ///< Score again architectures whose evaluation failed before.
  /// Stop (Error) once more than this fraction of the evaluations tried so far failed, and at
  /// least `min_failures` did. NOTE: the default tolerates surrogates that fail on a good part
  /// of a space (an all-`none` cell is common) while stopping one that fails on everything after
  /// ten tries; a surrogate failing on 40 % of a space trips it with probability under 2 %.
  double max_failures = 0.75;
  std::int64_t min_failures = 10;  ///< See max_failures.
};

/// A surrogate plugin object and what keys its scores.
class SurrogateHandle {
 public:
  /// Creates surrogate `name` from `given` options (validated by the plugin's table).
  SurrogateHandle(const plugin::Registry& registry, const std::string& name, const Options& given);

  /// The plugin object.
  Surrogate& plugin() const { return *plugin_; }
  /// Shared ownership of the plugin object.
  const std::shared_ptr<Surrogate>& shared() const { return plugin_; }
  /// The plugin's name ("ghn").
  const std::string& name() const { return name_; }
  /// Every resolved option (defaults filled in).
  const Options& options() const { return options_; }
  /// The ABI minor the plugin was built with.
  std::uint32_t abi_minor() const { return abi_minor_; }
  /// What score() reads besides the architecture (kNeedsData, kUsesSeed, kReadsEvalBatch,
  /// kReadsEvalImages): declared by the plugin from ABI 1.1, assumed all for ABI 1.0 plugins
  /// (the seed always, data settings when it needs data).
  std::uint32_t reads() const;
  /// "name{options that affect scores}": score-neutral options (ABI 1.1) are left out.
  std::string options_key() const;
  /// "#<16 hex digits>" hash of the trained state, or "" when save_state() is empty.
  const std::string& state_tag() const { return state_tag_; }
  /// Recomputes the state tag (after fit() or load): scores of another state are not reused.
  void retag();
  /// The evaluation key for scoring on `data` (may be null) with `settings` under run seed
  /// `seed`: options_key() + state_tag() + "@" + data->identity() (when the surrogate needs
  /// data) + "[batch=..,images=..,seed=..]" (only the settings it reads).
  std::string evaluation_key(const Dataset* data, const EvalSettings& settings,
                             std::uint64_t seed) const;

  /// Restores a checkpoint written by save_checkpoint() (plugin name checked).
  void load_checkpoint(const std::filesystem::path& path);
  /// Writes the trained state as a versioned checkpoint, atomically.
  void save_checkpoint(const std::filesystem::path& path) const;

 private:
  std::shared_ptr<Surrogate> plugin_;
  std::string name_;
  Options options_;
  const ParamTable* table_ = nullptr;
  std::uint32_t abi_minor_ = 0;
  std::string state_tag_;
};

}  // namespace hypernas::session
