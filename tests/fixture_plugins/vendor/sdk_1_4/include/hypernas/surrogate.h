#pragma once
/// @file surrogate.h
/// @brief Surrogates: models that score architectures cheaply, most of them by generating the
/// architecture's weights.
///
/// The interface carries three families:
/// - graph-conditioned (GHN): generate() reads the architecture's graph;
/// - encoding-conditioned (SMASH): generate() reads SearchSpace::encode();
/// - differentiable in architecture parameters (ADWP): generate_relaxed() is a differentiable
///   function of the α tensors, so a gradient strategy can optimise them.
/// Multi-exit scoring (GHN's anytime search) reports one accuracy and one FLOPs count per exit.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "hypernas/architecture.h"
#include "hypernas/context.h"
#include "hypernas/data.h"
#include "hypernas/plugin.h"
#include "hypernas/space.h"

namespace hypernas {

/// Capability flags a surrogate reports (a bit set).
enum Capability : std::uint32_t {
  kTrainable = 1u << 0,            ///< fit() trains something; otherwise it is a no-op.
  kGeneratesWeights = 1u << 1,     ///< generate() returns the architecture's weights.
  kGraphConditioned = 1u << 2,     ///< Generation reads the architecture graph (GHN).
  kEncodingConditioned = 1u << 3,  ///< Generation reads SearchSpace::encode() (SMASH).
  kArchGradient = 1u << 4,         ///< generate_relaxed() is differentiable in α (ADWP).
  kMultiExit = 1u << 5,            ///< score() fills per-exit accuracies (anytime search).
  kNeedsData = 1u << 6,            ///< score() reads the dataset.
  // ABI 1.1: what score() reads besides the architecture, its options and its trained state.
  // The evaluation key holds exactly these, so a stored score is reused only when none of
  // them changed. A plugin built with ABI 1.0 is taken to read all three when it needs data,
  // and the seed always.
  kUsesSeed = 1u << 7,         ///< score() reads ScoreRequest::seeds.
  kReadsEvalBatch = 1u << 8,   ///< score() reads ScoreRequest::batch_size.
  kReadsEvalImages = 1u << 9,  ///< score() reads ScoreRequest::max_images.
};

/// What fit() trains on and for how long.
struct FitRequest {
  const SearchSpace* space = nullptr;  ///< Space to sample training architectures from.
  const Dataset* data = nullptr;       ///< Data (train split).
  std::int64_t epochs = 1;             ///< Passes over the train split.
  std::int64_t batch_size = 64;        ///< Images per step.
  std::int64_t max_steps = 0;          ///< Stop after this many steps (0: no limit).
};

/// What score() is asked to score.
struct ScoreRequest {
  const SearchSpace* space = nullptr;      ///< Space the architectures come from.
  const Dataset* data = nullptr;           ///< Data (valid split), when needed.
  std::vector<const Architecture*> archs;  ///< Architectures to score.
  std::int64_t batch_size = 256;           ///< Evaluation batch size (fixed: batch-stat BN).
  std::int64_t max_images = 0;             ///< Validation images per architecture (0: all).
  /// ABI 1.1: one seed per architecture, derived by the kernel from the run's seed and the
  /// architecture's hash. The only randomness a score may use (initial weights, which
  /// mini-batch): a score then depends on nothing but its key, whatever the call order.
  /// The kernel always fills it, also when a strategy built with ABI 1.0 (whose requests end
  /// before this field) calls the surrogate: such a strategy gets an adapter that adds them.
  std::vector<std::uint64_t> seeds;
};

/// Accuracy and cost of one exit of a multi-exit network.
struct ExitScore {
  double accuracy = 0;     ///< Accuracy in [0, 1] with generated weights.
  std::int64_t flops = 0;  ///< FLOPs up to and including this exit.
};

/// The score of one architecture. Higher is better.
struct Score {
  double value = 0;                     ///< The ranking value.
  std::vector<ExitScore> exits;         ///< Per-exit results (multi-exit surrogates only).
  std::map<std::string, double> extra;  ///< Named side values (loss, accuracy, ...).
};

class Surrogate;

/// ABI 1.2: makes other surrogates, for a surrogate built from others (the `ensemble`). The
/// kernel implements it and hands it to Surrogate::attach().
/// NOTE: the kernel implements this class; its virtual functions are only ever appended.
class SurrogateFactory {
 public:
  virtual ~SurrogateFactory() = default;
  /// Surrogate `name` created with `options` (checked against its declared options: a
  /// UsageError names an unknown name or a bad option), attached in turn when it is built with
  /// ABI >= 1.2. Its library stays loaded while the object lives.
  virtual std::shared_ptr<Surrogate> create(const std::string& name,
                                            const Options& options) const = 0;
  /// Loads a checkpoint file (written by `surrogate:save()` or `hypernas fit`) into
  /// `surrogate`, which was created as `name`. Throws Error naming the file when it cannot be
  /// read, was written by another plugin, or the surrogate refuses its state.
  virtual void load_checkpoint(Surrogate& surrogate, const std::string& name,
                               const std::string& path) const = 0;
};

/// A surrogate plugin.
class Surrogate : public Plugin {
 public:
  /// Always PluginKind::Surrogate.
  PluginKind kind() const final { return PluginKind::Surrogate; }
  /// A bit set of Capability values.
  virtual std::uint32_t capabilities() const = 0;
  /// Trains the surrogate (a no-op for untrained ones).
  virtual void fit(Context& ctx, const FitRequest& request) = 0;
  /// Scores every architecture of the request, in order.
  virtual std::vector<Score> score(Context& ctx, const ScoreRequest& request) = 0;
  /// The weights of `arch` (kGeneratesWeights). Default: not supported.
  virtual WeightMap generate(Context& ctx, const Architecture& arch, const SearchSpace& space) {
    (void)ctx;
    (void)arch;
    (void)space;
    throw Error("this surrogate does not generate weights");
  }
  /// Weights of the relaxed (mixed-op) network as a differentiable function of `alphas`
  /// (kArchGradient). Default: not supported.
  virtual WeightMap generate_relaxed(Context& ctx, const SearchSpace& space,
                                     const std::vector<at::Tensor>& alphas) {
    (void)ctx;
    (void)space;
    (void)alphas;
    throw Error("this surrogate is not differentiable in architecture parameters");
  }
  /// Serialises the trained state (checkpoints, plugin state blobs). Default: nothing to save.
  virtual std::string save_state() const { return {}; }
  /// Restores a state written by save_state(); throws Error on a malformed blob.
  virtual void load_state(const std::string& blob) { (void)blob; }
  // NOTE: virtual functions below were appended in later minors; the kernel calls each only
  // on plugins built with that minor or a later one.
  /// ABI 1.2: called once by the kernel right after the factory made this object, before any
  /// other call, with a factory for other surrogates. `factory` is valid only during the call:
  /// create what is needed here. Throw Error (or UsageError) to refuse the options; the
  /// creation then fails with that message. Default: nothing to attach.
  virtual void attach(const SurrogateFactory& factory) { (void)factory; }
  /// ABI 1.4: the trainable tensors (requires_grad set) that generate_relaxed() computes the
  /// weights from, ADWP's GeneratingBlocks, for a strategy that trains them together with α
  /// (cross-search). Training them changes the surrogate's state, so such a strategy takes
  /// save_state() first and gives it back with load_state() when it is done (or interrupted).
  /// Default: none.
  virtual std::vector<at::Tensor> relaxed_parameters() { return {}; }
};

}  // namespace hypernas
