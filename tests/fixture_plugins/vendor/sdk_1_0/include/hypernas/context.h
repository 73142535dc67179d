#pragma once
/// @file context.h
/// @brief The services the kernel hands a plugin: device, seeded randomness, logging, progress,
/// cancellation, the results store and the graph executor.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "hypernas/architecture.h"
#include "hypernas/error.h"

namespace hypernas {

/// A seeded random stream. Every draw a plugin makes goes through one, so a run is repeatable
/// from its seed.
class Rng {
 public:
  /// A stream seeded with `seed`.
  explicit Rng(std::uint64_t seed) : seed_(seed), engine_(seed) {}
  /// The seed this stream started from.
  std::uint64_t seed() const { return seed_; }
  /// Uniform integer in [0, n); n must be positive.
  std::uint64_t uniform_int(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(engine_);
  }
  /// Uniform real in [0, 1).
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }
  /// A raw 64-bit draw (to seed Torch generators, for instance).
  std::uint64_t next_u64() { return engine_(); }
  /// An independent stream derived from this one and `salt`, for a sub-task.
  Rng fork(std::uint64_t salt) { return Rng(next_u64() ^ (salt * 0x9E3779B97F4A7C15ull)); }
  /// The underlying engine, for <random> distributions and std::shuffle.
  std::mt19937_64& engine() { return engine_; }

 private:
  std::uint64_t seed_;
  std::mt19937_64 engine_;
};

/// Severity of a log line.
enum class LogLevel { Debug = 1, Info, Warn, Error };

/// Where plugins write messages; the kernel prefixes the plugin's name.
class Logger {
 public:
  virtual ~Logger() = default;
  /// Writes one line at `level`.
  virtual void log(LogLevel level, const std::string& message) = 0;
  /// Writes one informational line.
  void info(const std::string& m) { log(LogLevel::Info, m); }
  /// Writes one warning.
  void warn(const std::string& m) { log(LogLevel::Warn, m); }
  /// Writes one debug line (shown with --verbose).
  void debug(const std::string& m) { log(LogLevel::Debug, m); }
};

/// Progress of one long task: a bar on a terminal, periodic lines otherwise.
class Progress {
 public:
  virtual ~Progress() = default;
  /// Moves the count forward by `n` steps; `status` (optional) is shown beside the bar.
  virtual void advance(std::int64_t n = 1, const std::string& status = "") = 0;
  /// Marks the task finished (also done by the destructor).
  virtual void finish() = 0;
};

/// One scored architecture as recorded in the results store.
struct Evaluation {
  std::string arch_hash;   ///< Hash of the architecture's canonical JSON.
  std::string surrogate;   ///< Surrogate key: plugin name plus its resolved options.
  double score = 0;        ///< Higher is better.
  double seconds = 0;      ///< Wall-clock cost of scoring this one architecture.
  std::map<std::string, double> extra;  ///< Named side values (accuracy per exit, flops, ...).
};

/// One architecture trained from scratch, as recorded in the results store.
struct TrainingRecord {
  std::string arch_hash;                ///< Hash of the architecture.
  std::string recipe;                   ///< Resolved trainer options, canonical text.
  std::vector<double> train_loss;       ///< Mean training loss per epoch.
  std::vector<double> valid_accuracy;   ///< Validation accuracy per epoch.
  double test_accuracy = 0;             ///< Final test accuracy.
  double seconds = 0;                   ///< Wall-clock training time.
};

/// The experiment's results database, as plugins see it. Every call commits at once, so a
/// killed run keeps what was recorded.
class ResultStore {
 public:
  virtual ~ResultStore() = default;
  /// Records an architecture (idempotent) and returns its stable hash.
  virtual std::string record_architecture(const Architecture& arch) = 0;
  /// The stable hash of an architecture, without recording it.
  virtual std::string hash(const Architecture& arch) const = 0;
  /// Records one evaluation.
  virtual void record_evaluation(const Evaluation& e) = 0;
  /// A previous evaluation of (arch_hash, surrogate) in this experiment, if any: lets a rerun
  /// skip what is already scored.
  virtual std::optional<Evaluation> find_evaluation(const std::string& arch_hash,
                                                    const std::string& surrogate) const = 0;
  /// Records one training from scratch.
  virtual void record_training(const TrainingRecord& t) = 0;
  /// Stores an opaque state blob for (plugin, key), replacing an older one.
  virtual void save_state(const std::string& plugin, const std::string& key,
                          const std::string& blob) = 0;
  /// The blob stored for (plugin, key), if any.
  virtual std::optional<std::string> load_state(const std::string& plugin,
                                                const std::string& key) const = 0;
};

/// Weights for one architecture, keyed by parameter name ("<node name>.weight", ...).
using WeightMap = std::map<std::string, at::Tensor>;

/// Shape and role of one parameter the executor needs for an architecture.
struct ParamShape {
  std::string name;                 ///< Key in the WeightMap.
  std::string node;                 ///< Name of the node that owns it.
  std::vector<std::int64_t> shape;  ///< Tensor shape.
};

/// Runs any architecture on a batch with weights given from outside. The same code serves
/// generated weights (differentiable: gradients flow back into whatever produced them) and
/// ordinary trained parameters, so an architecture is the same network everywhere.
class Executor {
 public:
  virtual ~Executor() = default;
  /// The parameters `arch` needs, in a stable order.
  virtual std::vector<ParamShape> parameters(const Architecture& arch) const = 0;
  /// Logits of every exit for `images` (the last entry is the network's final output).
  /// Batch norm always uses batch statistics (generated weights have no running statistics).
  virtual std::vector<at::Tensor> forward(const Architecture& arch, const WeightMap& weights,
                                          const at::Tensor& images) const = 0;
};

/// Everything the kernel lends a plugin for one call.
class Context {
 public:
  virtual ~Context() = default;
  /// The device to compute on (the kernel picked it; plugins never choose).
  virtual c10::Device device() const = 0;
  /// This plugin's seeded random stream.
  virtual Rng& rng() = 0;
  /// Logger, prefixed with the plugin's name.
  virtual Logger& log() = 0;
  /// Starts a progress display for a task of `total` steps (0: unknown).
  virtual std::unique_ptr<Progress> progress(const std::string& label, std::int64_t total) = 0;
  /// True once the user asked to stop (Ctrl-C) or a time limit passed.
  virtual bool cancelled() const = 0;
  /// Throws Cancelled if cancelled(): call between two units of work.
  void check_cancelled() const {
    if (cancelled()) throw Cancelled("interrupted; everything recorded so far is kept");
  }
  /// The experiment's results store.
  virtual ResultStore& store() = 0;
  /// The graph executor, or nullptr when this build of the kernel has none.
  virtual const Executor* executor() const = 0;
  /// Number of CPU threads the run may use.
  virtual int threads() const = 0;
  /// Calls the script's per-candidate callback, if any; returns false when it asks to stop.
  virtual bool notify(const std::string& event, const std::map<std::string, double>& values) = 0;
};

}  // namespace hypernas
