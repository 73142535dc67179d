#pragma once
/// @file adwp.h
/// @brief The `adwp` surrogate: ADWPNAS's HyperNetwork (Zhang, Chen, Gu; §3.2.1, §4.2), whose
/// convolution weights come from GeneratingBlocks fed with the architecture parameters.
///
/// The model is built for one search space, lazily, at the first call that names a space
/// (fit, generate, generate_relaxed, score): its backbone is the space's relaxed network
/// (SearchSpace::relaxed(), ABI 1.4), the supernet whose every candidate op of every edge is a
/// branch ending in a `mix` node.
/// - **Generated** (the paper's ConvBlocks): every `conv` node of a branch (listed in some
///   MixChoice::nodes: each conv of each candidate op of each cell) has its own
///   GeneratingBlock: its input is p_b = softmax(α_b, -1) of its mix's block b, flattened (all
///   rows of the block: "the probabilities of all the operations in the l-th cell"), then
///   FC(|α_b|, hidden) -> [ReLU with activation=relu] -> FC(hidden, c_out·c_in/groups·k·k),
///   reshaped to the conv weight [c_out, c_in/groups, k, k]. The paper names two FC layers and
///   no activation (the default, `activation=none`).
/// - **Learned freely**: every other parameter of the relaxed network (batch-norm gains and
///   shifts, the stem, the cells' preprocessing, the reduction blocks, the classifier), plain
///   tensors initialised by Executor::init_weights().
/// Initialisation: FC1 as torch.nn.Linear (uniform ±1/sqrt(fan_in)); FC2's weight N(0, (0.1
/// σ)^2) and its bias the executor's Kaiming-normal draw of the conv weight (σ = sqrt(2 /
/// fan_out)), so a generated weight starts as the weight the executor would have drawn plus a
/// small α-dependent part (the paper does not say how it initialises; README.md).
///
/// A discrete architecture (generate(), score()) is located in the relaxed network by
/// SearchSpace::select(): its GeneratingBlocks read the one-hot probabilities of the
/// selection (the limit of softmax(α) as α concentrates on the chosen ops), and its weights
/// are those of its own nodes (Selection::names). README.md beside this file lists what is
/// faithful to the paper and what is a choice.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include <hypernas/context.h>
#include <hypernas/options.h>
#include <hypernas/space.h>
#include <hypernas/surrogate.h>

namespace hypernas::adwp {

/// A conv weight of the relaxed network that a GeneratingBlock produces.
struct GeneratedParam {
  std::string name;                 ///< Parameter name ("<conv node>.weight").
  std::string node;                 ///< The conv node.
  std::vector<std::int64_t> shape;  ///< [c_out, c_in/groups, k, k].
  std::int64_t fan_out = 0;         ///< c_out·k·k (the Kaiming scale of its initial draw).
  std::int64_t block = 0;           ///< The arch-parameter block its GeneratingBlock reads.
  std::int64_t mix = 0;             ///< Index of its branch in Relaxation::mixes.
};

/// How the parameters of a relaxed network split into generated and freely learned ones.
struct ModelLayout {
  std::vector<GeneratedParam> generated;  ///< Conv weights of branches, in parameters() order.
  std::vector<ParamShape> learned;        ///< Everything else, in parameters() order.
  /// For each learned parameter, whether its node belongs to a branch (a candidate op's batch
  /// norm, say) rather than to the network around the cells.
  std::vector<bool> learned_in_branch;
  std::vector<std::int64_t> block_sizes;  ///< Elements of each arch-parameter block (GB inputs).
};

/// The layout of `relaxation`, whose executor parameters are `params`
/// (Executor::parameters(relaxation.network)). Throws Error when a mix names a block the
/// relaxation lacks, or a branch node is listed by two mixes of different blocks.
ModelLayout layout(const Relaxation& relaxation, const std::vector<ParamShape>& params);

/// Tensor and element counts of one part of the model.
struct Count {
  std::int64_t tensors = 0;  ///< Number of tensors.
  std::int64_t values = 0;   ///< Number of scalars.
};

/// What the model of a layout holds, by part (README.md's table).
struct ParameterCounts {
  Count generated;  ///< Conv weights the GeneratingBlocks produce (not parameters themselves).
  Count blocks;     ///< GeneratingBlock parameters (FC1, FC2 weights and biases); tensors: GBs.
  /// Learned parameters by part: "branch bn" (batch norm of candidate ops), "branch other"
  /// (any other parameter of a branch), "conv" (convolutions outside branches: stem,
  /// preprocessing, reduction blocks), "bn" (batch norm outside branches), "linear"
  /// (classifier), "other".
  std::map<std::string, Count> learned;
  /// Sum of `learned`.
  Count learned_total() const;
  /// Trainable scalars: blocks.values + learned_total().values.
  std::int64_t trainable() const { return blocks.values + learned_total().values; }
};

/// The counts of the model of `layout` with GeneratingBlocks of width `hidden` (nothing is
/// allocated).
ParameterCounts count_parameters(const ModelLayout& layout, std::int64_t hidden);

/// A stable hex fingerprint of a relaxation and its parameters: the network's text, every
/// parameter's name and shape, every mix's node, block, row and column, every block's name
/// and shape. A state trained on one relaxation applies only to relaxations of the same
/// fingerprint.
std::string fingerprint(const Relaxation& relaxation, const std::vector<ParamShape>& params);

}  // namespace hypernas::adwp

namespace hypernas {

/// The `adwp` surrogate plugin. Options: see params(). Not thread-safe: one call at a time.
class AdwpSurrogate final : public Surrogate {
 public:
  /// Declared options: hidden, activation, alpha_std, lr, momentum, weight_decay, cosine,
  /// onehot_prob, init_seed, dtype. The defaults are the paper's setting (onehot_prob = 0).
  static const ParamTable& params() noexcept;
  /// From resolved options. The model itself is built at the first call that names a space.
  explicit AdwpSurrogate(const Options& options);
  ~AdwpSurrogate() override;
  AdwpSurrogate(const AdwpSurrogate&) = delete;
  AdwpSurrogate& operator=(const AdwpSurrogate&) = delete;

  /// kTrainable | kGeneratesWeights | kArchGradient | kNeedsData | kReadsEvalBatch |
  /// kReadsEvalImages.
  std::uint32_t capabilities() const override;
  /// Stage 1 of Algorithm 1: each step draws α_b ~ N(0, alpha_std^2) for every block (with
  /// probability onehot_prob instead a random architecture of the space and its one-hot
  /// selection), generates the relaxed network's weights, runs it with those probabilities on
  /// a training batch and takes one SGD step (momentum, weight decay, cosine learning rate
  /// from lr to 0 over the call's steps) on the GeneratingBlocks and the learned weights.
  /// Calls ctx.notify("fit_step", {step, loss, lr}) after every step (false: stop), logs the
  /// mean loss of every epoch. Throws Error naming the step on a non-finite loss; Cancelled
  /// between steps when asked to stop.
  void fit(Context& ctx, const FitRequest& request) override;
  /// Accuracy of each architecture's discrete network with generate()'s weights on the valid
  /// split (the first max_images images in stored order, batches of batch_size, batch-statistic
  /// batch norm). Score::value = accuracy; Score::extra: "accuracy", "loss" (mean
  /// cross-entropy). Throws Error for an architecture the relaxation lacks (SearchSpace::select).
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;
  /// The weights of the discrete `arch`: exactly the parameters ctx.executor()->parameters(arch)
  /// lists, keyed by arch's own names; conv weights of its ops from their GeneratingBlocks fed
  /// with the one-hot probabilities of space.select(arch), the rest the learned weights of the
  /// same nodes (no gradient history).
  WeightMap generate(Context& ctx, const Architecture& arch, const SearchSpace& space) override;
  /// The relaxed network's weights (every parameter of Executor::parameters(relaxed().network)):
  /// generated from softmax(alphas[b], -1), differentiable in `alphas` and in
  /// relaxed_parameters(); the learned weights as constants (no gradient flows into them).
  /// Throws Error naming a block whose tensor is missing or has the wrong shape.
  WeightMap generate_relaxed(Context& ctx, const SearchSpace& space,
                             const std::vector<at::Tensor>& alphas) override;
  /// The GeneratingBlocks' parameters (requires_grad), four per block (FC1 weight and bias, FC2
  /// weight and bias) in the relaxed network's parameter order; empty before the model exists
  /// (no fit, generate, score or load_state yet).
  std::vector<at::Tensor> relaxed_parameters() override;
  /// A versioned, checksummed blob: the model options, the relaxation's fingerprint and
  /// parameter layout, every tensor, the loss curve.
  std::string save_state() const override;
  /// Restores save_state()'s blob. Throws Error (and changes nothing) on a truncated,
  /// corrupted or foreign blob, one saved with other model options, or one trained on another
  /// relaxation than the one this surrogate was built for. Loaded into a surrogate not built
  /// yet, the state is checked against the space at the first call that names one.
  void load_state(const std::string& blob) override;

  /// @name Beyond the Surrogate interface (tests, benchmarks)
  /// @{
  /// Builds the model for `space` (or checks that it was built, or loaded, for the same
  /// relaxation; Error otherwise) and moves it to ctx.device(). Returns the relaxation, valid
  /// until the next call.
  const Relaxation& prepare(Context& ctx, const SearchSpace& space);
  /// The relaxed network's weights with GeneratingBlock inputs `probs` (one tensor per block,
  /// shaped as the block: probabilities, not logits), differentiable in `probs` and in the
  /// GeneratingBlocks; learned weights as constants. With `skip_dead`, the conv weights of
  /// branches whose probability is exactly 0 are left out (the executor does not read them).
  WeightMap relaxed_weights(Context& ctx, const SearchSpace& space,
                            const std::vector<at::Tensor>& probs, bool skip_dead = false);
  /// True once a model exists (built for a space, or loaded).
  bool built() const;
  /// The model's layout (Error before it exists).
  const adwp::ModelLayout& model_layout() const;
  /// Every trainable tensor with its name: the GeneratingBlocks ("<param>.gb.fc1.weight", ...)
  /// then the learned weights (their parameter names). The tensors themselves.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  /// The loss of every fit step so far (kept in the state blob).
  const std::vector<double>& loss_curve() const;
  /// The resolved options.
  const Options& options() const;
  /// @}

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hypernas
