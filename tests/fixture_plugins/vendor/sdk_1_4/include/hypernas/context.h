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
  std::string arch_hash;                ///< Hash of the architecture's canonical JSON.
  std::string surrogate;                ///< Surrogate key: plugin name plus its resolved options.
  double score = 0;                     ///< Higher is better.
  double seconds = 0;                   ///< Wall-clock cost of scoring this one architecture.
  std::map<std::string, double> extra;  ///< Named side values (accuracy per exit, flops, ...).
};

/// One architecture trained from scratch, as recorded in the results store.
struct TrainingRecord {
  std::string arch_hash;               ///< Hash of the architecture.
  std::string recipe;                  ///< Resolved trainer options, canonical text.
  std::vector<double> train_loss;      ///< Mean training loss per epoch.
  std::vector<double> valid_accuracy;  ///< Validation accuracy per epoch.
  double test_accuracy = 0;            ///< Final test accuracy.
  double seconds = 0;                  ///< Wall-clock training time.
};

/// ABI 1.4: one epoch of a gradient search as recorded in the results store: enough to plot
/// its course (α per epoch, losses, accuracies, the architecture α derives) and to resume it.
struct SearchEpoch {
  std::string run;            ///< Key of the search run (strategy, options, surrogate key, seed).
  std::string strategy;       ///< Strategy plugin ("gradient").
  std::int64_t epoch = 0;     ///< 0-based epoch index within the run.
  std::string phase;          ///< "basic" or "cross".
  double train_loss = 0;      ///< Mean training loss over the epoch's steps.
  double train_accuracy = 0;  ///< Mean training accuracy over them.
  double valid_loss = 0;      ///< Validation loss of the relaxed network.
  double valid_accuracy = 0;  ///< Validation accuracy of the relaxed network.
  std::vector<std::vector<float>> alphas;  ///< α after the epoch, per block, row-major.
  std::vector<std::vector<std::int64_t>> alpha_shapes;  ///< Shape of each block.
  std::string arch_hash;                ///< discretize(α) of this epoch (recorded too).
  std::string arch_text;                ///< Its text.
  std::string note;                     ///< Free text (the epoch's intensive space, JSON).
  std::map<std::string, double> extra;  ///< Named side values (superiority, ...).
  double seconds = 0;                   ///< Wall-clock time of the epoch.
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
  // NOTE: the kernel implements this class; virtual functions below were appended in later
  // minors (a plugin built with minor m runs only on a host of minor >= m, so it may call them).
  /// ABI 1.4: records one epoch of a search run, replacing an earlier record of the same
  /// (run, epoch). Commits at once.
  virtual void record_search_epoch(const SearchEpoch& epoch) {
    (void)epoch;
    throw Error("this results store does not record search epochs");
  }
  /// ABI 1.4: the recorded epochs of `run` in this experiment, by epoch.
  virtual std::vector<SearchEpoch> search_epochs(const std::string& run) const {
    (void)run;
    return {};
  }
};

struct Relaxation;  // space.h

/// Weights for one architecture, keyed by parameter name ("<node name>.weight", ...).
using WeightMap = std::map<std::string, at::Tensor>;

/// What a parameter is to its node. Zero is not a valid role.
enum class ParamRole : std::uint32_t {
  ConvWeight = 1,  ///< conv weight [c_out, c_in/groups, k, k]
  BnWeight,        ///< batch-norm gain [c_out]
  BnBias,          ///< batch-norm shift [c_out]
  LinearWeight,    ///< linear weight [c_out, c_in]
  LinearBias,      ///< linear bias [c_out]
};

/// Name of a role as users see it ("conv_weight", "bn_weight", ...).
inline const char* role_name(ParamRole r) {
  switch (r) {
    case ParamRole::ConvWeight: return "conv_weight";
    case ParamRole::BnWeight: return "bn_weight";
    case ParamRole::BnBias: return "bn_bias";
    case ParamRole::LinearWeight: return "linear_weight";
    case ParamRole::LinearBias: return "linear_bias";
  }
  return "?";
}

/// Shape and role of one parameter the executor needs for an architecture.
struct ParamShape {
  std::string name;                        ///< Key in the WeightMap.
  std::string node;                        ///< Name of the node that owns it.
  std::vector<std::int64_t> shape;         ///< Tensor shape.
  ParamRole role = ParamRole::ConvWeight;  ///< What it is (ABI 1.1).
  /// Inputs feeding one output unit: c_in/groups·k·k for a conv weight, c_in for a linear
  /// weight and bias (the fan-in of its weight), 1 for batch-norm parameters (ABI 1.1).
  std::int64_t fan_in = 0;
  /// Outputs one input unit feeds: c_out·k·k for a conv weight (torch's fan_out), c_out for
  /// a linear weight, 1 otherwise (ABI 1.1).
  std::int64_t fan_out = 0;
};

/// @cond ABI_1_0
/// ParamShape as ABI 1.0 laid it out; only the executor's 1.0 slot returns it.
struct ParamShapeV1_0 {
  std::string name;
  std::string node;
  std::vector<std::int64_t> shape;
};
/// @endcond

/// Which intermediate results Executor::forward_capture() hands back (ABI 1.1).
struct CaptureOptions {
  /// Keep the output of every node whose op is one of these ("relu", "conv", ...).
  std::vector<std::string> ops;
  /// Keep the output of these nodes, by name.
  std::vector<std::string> nodes;
  /// Called with every node and its output as soon as it is computed, in vertex order (for a
  /// score that reduces each activation at once instead of keeping them all). May be empty.
  std::function<void(const OpNode& node, const at::Tensor& output)> observer;
};

/// One kept intermediate result.
struct NodeOutput {
  std::string node;  ///< Node name.
  std::string op;    ///< Its op.
  at::Tensor value;  ///< Its output (part of the autograd graph when the weights require grad).
};

/// What Executor::forward_capture() returns.
struct CaptureResult {
  std::vector<at::Tensor> exits;     ///< What forward() returns.
  std::vector<NodeOutput> captured;  ///< The kept outputs, in vertex order.
};

/// Runs any architecture on a batch with weights given from outside. The same code serves
/// generated weights (differentiable: gradients flow back into whatever produced them) and
/// ordinary trained parameters, so an architecture is the same network everywhere.
///
/// NOTE: the kernel implements this class; its virtual functions are only ever appended, in
/// declaration order, so a plugin built with an older minor ABI calls the slots it knows.
class Executor {
 public:
  virtual ~Executor() = default;
  /// @cond ABI_1_0
  /// The ABI 1.0 slot of parameters(), kept for plugins built with ABI 1.0. Use parameters().
  virtual std::vector<ParamShapeV1_0> parameters_v1_0(const Architecture& arch) const = 0;
  /// @endcond
  /// Logits of every exit for `images` (the last entry is the network's final output).
  /// Batch norm always uses batch statistics (generated weights have no running statistics).
  virtual std::vector<at::Tensor> forward(const Architecture& arch, const WeightMap& weights,
                                          const at::Tensor& images) const = 0;
  /// The parameters `arch` needs, in a stable order (vertex order), with role and fans
  /// (ABI 1.1).
  virtual std::vector<ParamShape> parameters(const Architecture& arch) const = 0;
  /// forward(), also returning the intermediate outputs `capture` asks for and calling its
  /// observer (ABI 1.1). Activation-based scores (NASWOT's ReLU codes, jacob_cov) read them
  /// here instead of re-implementing the executor.
  virtual CaptureResult forward_capture(const Architecture& arch, const WeightMap& weights,
                                        const at::Tensor& images,
                                        const CaptureOptions& capture) const = 0;
  /// Fresh trainable weights for `arch` on `device` (requires_grad set), exactly as
  /// `nas.train` and the `sgd` surrogate initialise a network (ABI 1.1). Drawn on the CPU
  /// from one generator seeded with `seed`, parameter by parameter in parameters() order, so
  /// a seed gives the same weights on any device: conv weights Kaiming-normal with fan_out and
  /// the ReLU gain (std = sqrt(2 / fan_out), as torchvision initialises its networks); bn gain
  /// 1, shift 0; linear weight and bias uniform in ±1/sqrt(fan_in) (torch::nn::Linear).
  virtual WeightMap init_weights(const Architecture& arch, std::uint64_t seed,
                                 c10::Device device) const = 0;
  /// ABI 1.4: logits of the relaxed network `relaxation.network` (see space.h): every `mix`
  /// node's output is its input times probs[block][row][col] of its MixChoice. `probs` holds
  /// one tensor per arch-parameter block, shaped as the block, usually softmax(α, -1); the
  /// result is differentiable in `probs` and in `weights`. A branch whose probability is
  /// exactly 0 is skipped, so one-hot probabilities give the discrete network. Throws Error
  /// naming a block whose shape is wrong or a mix node the relaxation does not list.
  virtual std::vector<at::Tensor> forward_relaxed(const Relaxation& relaxation,
                                                  const WeightMap& weights,
                                                  const std::vector<at::Tensor>& probs,
                                                  const at::Tensor& images) const = 0;
};

/// Everything the kernel lends a plugin for one call.
class Context {
 public:
  virtual ~Context() = default;
  /// The device to compute on (the kernel picked it; plugins never choose).
  virtual c10::Device device() const = 0;
  /// This call's seeded random stream, derived from the run's seed, the plugin's name and how
  /// many calls into that plugin came before. For the draws of fit() and of a search. A
  /// score() must not use it (its value would depend on call order, and stored scores are
  /// reused by key): it uses ScoreRequest::seeds instead.
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
