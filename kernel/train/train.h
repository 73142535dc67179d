#pragma once
/// @file train.h
/// @brief Training an architecture from scratch with the graph executor and ordinary trainable
/// parameters (GraphExecutor::init_weights()), and evaluating weights on a split.
///
/// The recipe is NAS-Bench-201's: SGD with Nesterov momentum 0.9, weight decay 5e-4 on every
/// parameter, a cosine learning-rate schedule decayed to 0 (stepped every batch here),
/// optional label smoothing and gradient-norm clipping. Batch norm always uses batch
/// statistics, in training and in evaluation, with a fixed evaluation batch size (see
/// design.md: generated weights have no running statistics, and trained networks are
/// evaluated the same way so that both are comparable).

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <hypernas/context.h>
#include <hypernas/data.h>
#include <hypernas/options.h>
#include <hypernas/surrogate.h>

#include "kernel/exec/executor.h"

namespace hypernas::train {

/// The training recipe. Declared once in params(), so Lua tables and `--set` are checked the
/// same way and the resolved options make the recipe text stored with each training.
struct TrainOptions {
  std::int64_t epochs = 10;         ///< Passes over the train split.
  std::int64_t batch = 64;          ///< Images per step.
  double lr = 0.05;                 ///< Initial learning rate.
  double momentum = 0.9;            ///< SGD momentum (0: none).
  bool nesterov = true;             ///< Nesterov momentum.
  double weight_decay = 5e-4;       ///< L2 penalty on every parameter (BN affine included).
  double label_smoothing = 0.0;     ///< Label smoothing epsilon, in [0, 1).
  std::string schedule = "cosine";  ///< "cosine" (to 0 over all steps) or "constant".
  std::int64_t eval_batch = 256;    ///< Evaluation batch size (fixed: batch-statistics BN).
  std::int64_t max_steps = 0;       ///< Stop after this many steps in all (0: epochs decide).
  bool augment = true;              ///< The dataset's training augmentation.
  double grad_clip = 5.0;           ///< Clip the gradients' global L2 norm to this (0: off).
  std::int64_t valid_images = 0;    ///< Validation images per epoch (0: the whole split).
  std::int64_t test_images = 0;     ///< Test images for the final accuracy (0: the whole split).
  /// Multi-exit networks: the weight of each exit's loss, comma-separated in exit order, the
  /// last one repeating for further exits ("": every exit 1). Left out of recipe() when empty.
  std::string exit_weights;
  /// Steps per epoch, the unit of the per-epoch curves and validations (0: one pass over the
  /// train split). Left out of recipe() when 0.
  std::int64_t epoch_steps = 0;

  /// The declared parameters, with the defaults above.
  static const ParamTable& params() noexcept;
  /// Options checked against params() and completed with defaults; throws UsageError naming
  /// the key on an unknown key, a wrong type or a value out of range.
  static TrainOptions from_options(const Options& given);
  /// These values as resolved Options.
  Options to_options() const;
  /// Canonical text of the recipe (`key=value,...` sorted by key), stored with each training.
  std::string recipe() const { return to_options().canonical(); }
};

/// What train() returns.
struct TrainResult {
  TrainingRecord record;     ///< As recorded in the store (curves, test accuracy, time).
  WeightMap weights;         ///< The trained parameters (on ctx.device()).
  std::int64_t steps = 0;    ///< Optimiser steps taken.
  std::int64_t images = 0;   ///< Training images processed.
  double train_seconds = 0;  ///< Time spent in training steps (evaluation excluded).
  /// Multi-exit networks only (empty otherwise): test accuracy and FLOPs (exit_flops(),
  /// graph_stats.h) of every exit, in exit order; the last one's accuracy is
  /// record.test_accuracy. Recorded in the store with the training.
  std::vector<ExitScore> exits;
};

/// Trains `arch` from scratch on `data` (train split) with `exec` and fresh parameters from
/// exec.init_weights(), seeded from ctx.rng(), on ctx.device(). After every epoch it logs the
/// mean training loss and the validation accuracy (when the dataset has a validation split);
/// at the end it evaluates the test split. Shows progress with ctx.progress(), calls
/// ctx.check_cancelled() before every step, records the architecture in ctx.store() first and
/// the TrainingRecord (and, for a multi-exit network, every exit's test accuracy and FLOPs)
/// when done. The loss is the cross-entropy of the network's output; for a multi-exit network
/// the sum of every exit's cross-entropy, weighted by `exit_weights` (MSDNet's loss; see
/// exit_loss()). Throws hypernas::Error "training diverged: loss is NaN
/// at epoch E step S (lr ...)" (or inf) on a non-finite loss.
TrainResult train(Context& ctx, const Architecture& arch, const Dataset& data,
                  const TrainOptions& options, const exec::GraphExecutor& exec);

/// Accuracy in [0, 1] of the network's output (its last exit) with `weights` on `split`,
/// without gradients, in batches of `batch_size` (the last one may be smaller), over the first
/// `limit` images of the split in its stored order (0: all). Throws hypernas::Error when the
/// split has no images.
double evaluate(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                const Dataset& data, Split split, std::int64_t batch_size = 256,
                std::int64_t limit = 0);

/// Parses TrainOptions::exit_weights ("" gives an empty list: every exit 1). Throws UsageError
/// naming the list and the bad item.
std::vector<double> parse_exit_weights(const std::string& text);

/// The training loss of a network's exits `logits` (exit order): sum over exits e of w_e times
/// the cross-entropy of exit e, w_e = weights[min(e, size - 1)] (1 when `weights` is empty).
/// A single-exit network's loss is its cross-entropy.
at::Tensor exit_loss(const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                     const std::vector<double>& weights, double smoothing = 0.0);

/// Mean cross-entropy of `logits` [N, K] against `labels` [N] with label smoothing
/// `smoothing` (PyTorch's definition: (1 - eps) * NLL + eps * mean over classes of -log p).
at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                         double smoothing = 0.0);

/// Scales the gradients of `params` in place so that their global L2 norm is at most
/// `max_norm` (as torch.nn.utils.clip_grad_norm_, without a device synchronisation). Returns
/// the norm before clipping (a 0-d tensor; undefined when no parameter has a gradient).
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

/// Stochastic gradient descent with momentum, Nesterov momentum and weight decay, exactly as
/// torch.optim.SGD (dampening 0), written with ATen so that it is the same in every LibTorch.
class Sgd {
 public:
  /// The hyper-parameters.
  struct Config {
    double lr = 0.05;            ///< Learning rate.
    double momentum = 0.9;       ///< Momentum (0: none).
    double weight_decay = 5e-4;  ///< L2 penalty added to the gradient.
    bool nesterov = true;        ///< Nesterov momentum (needs momentum > 0).
  };
  /// An optimiser over `params` (leaf tensors with requires_grad).
  Sgd(std::vector<at::Tensor> params, const Config& config);
  /// Changes the learning rate (for schedules).
  void set_lr(double lr) { config_.lr = lr; }
  /// The current learning rate.
  double lr() const { return config_.lr; }
  /// One update from the parameters' current gradients; parameters without one are skipped.
  void step();
  /// Drops every parameter's gradient (the next backward() allocates fresh ones).
  void zero_grad();
  /// The parameters.
  const std::vector<at::Tensor>& params() const { return params_; }

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> momentum_;
  Config config_;
};

}  // namespace hypernas::train
