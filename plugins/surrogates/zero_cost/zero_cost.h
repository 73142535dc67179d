#pragma once
/// @file zero_cost.h
/// @brief Training-free ("zero-cost") proxies: each scores an architecture from one mini-batch
/// at its initial weights, without training. One implementation (zero_cost.cpp), one run-time
/// plugin per proxy (the *_plugin.cpp files): `synflow`, `naswot`, `jacob_cov`, `snip`,
/// `grad_norm`, `grasp`, `fisher`, `zen`, and `aznas` (AZ-NAS's four metrics and their rank
/// aggregation).
///
/// The definitions follow the papers' public code (README.md beside this file names each
/// source and every deviation). Weights come from Executor::init_weights() (the initialiser
/// nas.train uses) seeded with ScoreRequest::seeds, except zen, whose paper draws every conv
/// and linear weight from N(0, 1) (option `init`). The mini-batch is the first `batch`
/// images of the dataset's train split, in order and without augmentation: the same batch for
/// every architecture.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <hypernas/surrogate.h>

namespace hypernas::zero_cost {

/// The proxies.
enum class Proxy { Synflow = 1, Naswot, JacobCov, Snip, GradNorm, Grasp, Fisher, Zen };

/// @name The proxies as functions (the plugins call these; tests call them on hand-made
/// networks). `weights`: the network's weights, trainable (requires_grad) as init_weights
/// gives them; no function changes them. `images` [N, C, H, W], `labels` [N].
/// @{

/// Sum over conv and linear layers of ||dL/dW||_2 (L: mean cross-entropy on the batch).
double grad_norm(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                 const at::Tensor& images, const at::Tensor& labels);
/// SNIP's connection sensitivity: sum over conv and linear weights of |W * dL/dW|.
double snip(const Executor& exec, const Architecture& arch, const WeightMap& weights,
            const at::Tensor& images, const at::Tensor& labels);
/// GraSP: sum over conv and linear weights of -W * (H g), g = dL/dW, H the Hessian of L.
double grasp(const Executor& exec, const Architecture& arch, const WeightMap& weights,
             const at::Tensor& images, const at::Tensor& labels);
/// Fisher: for every conv and linear output z (the activation of each channel k),
/// 0.5 * mean over images n of (sum over positions of z * dL/dz)^2, summed over k and layers.
double fisher(const Executor& exec, const Architecture& arch, const WeightMap& weights,
              const at::Tensor& images, const at::Tensor& labels);
/// Jacobian covariance (NASWOT v1): the score jacob_cov_score() of the Jacobians of the
/// summed logits with respect to each image.
double jacob_cov(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                 const at::Tensor& images);
/// NASWOT: log|det K_H| where K_H[i][j] counts the ReLU units on which images i and j have the
/// same binary code (active or not), over every relu node.
double naswot(const Executor& exec, const Architecture& arch, const WeightMap& weights,
              const at::Tensor& images);
/// SynFlow: sum over conv and linear weights of |W * dR/dW|, R the sum of the logits of an
/// all-ones image [1, C, H, W], computed in double on the network without its batch norms
/// (without_bn()) with every weight replaced by its absolute value.
double synflow(const Executor& exec, const Architecture& arch, const WeightMap& weights,
               std::int64_t channels, std::int64_t height, std::int64_t width);
/// Zen-score: log E_n ||f(x) - f(x + gamma * e)||_1 (f: the feature map that enters the
/// last global average pooling; x, e: `x`, `e`, Gaussian images) plus, for every batch norm,
/// log sqrt(mean over channels of its running variance after the two forward passes
/// (momentum 0.1 from 1, as torch's BatchNorm2d in training mode)).
double zen(const Executor& exec, const Architecture& arch, const WeightMap& weights,
           const at::Tensor& x, const at::Tensor& e, double gamma);
/// @}

/// AZ-NAS's four metrics of one network (Lee and Ham, CVPR 2024), on its layer features
/// (aznas_features(): the outputs of the stem and of every cell and reduction block).
struct AzMetrics {
  /// Sum over features of the entropy of the normalised eigenvalues of the feature's channel
  /// covariance (over images and positions).
  double expressivity = 0;
  /// The smallest increase of that entropy from one feature to the next.
  double progressivity = 0;
  /// Mean over consecutive features of 2 - s - 1/s, s the largest singular value of the
  /// channel-wise mean of g_in g_out^T, g_out a Rademacher gradient on the later feature and
  /// g_in its backpropagation to the earlier one (pixel-unshuffled where the resolution halves).
  double trainability = 0;
  /// FLOPs (the space's count).
  double complexity = 0;
};

/// The names of the nodes whose outputs are AZ-NAS's layer features: for every maximal run of
/// vertices with the same OpNode::module (a cell, or a stretch outside cells: stem, reduction
/// block), its last vertex; the run holding the global pooling (the head) is left out.
std::vector<std::string> aznas_features(const ArchGraph& graph);

/// The metrics of `arch` with `weights` on `images`; `seed` draws the Rademacher gradients,
/// `flops` is the complexity. Degenerate cases are defined (README.md).
AzMetrics aznas_metrics(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                        const at::Tensor& images, std::uint64_t seed, double flops);

/// AZ-NAS's non-linear rank aggregation against a reference sample: the sum over the four
/// metrics of log(rank / (R + 1)), rank = 1 + (reference values below) + half the ties.
/// Over a pool that is its own reference this is the paper's sum of log(rank / N).
double aznas_aggregate(const std::vector<AzMetrics>& reference, const AzMetrics& m);

/// Kaiming-normal initialisation with fan-in (AZ-NAS's `kaiming_norm_fanin`): conv and linear
/// weights N(0, 2 / fan_in), biases 0, bn 1/0.
WeightMap kaiming_fan_in_weights(const Executor& exec, const Architecture& arch, std::uint64_t seed,
                                 c10::Device device);

/// The `aznas` surrogate: AZ-NAS's four metrics of each architecture, aggregated by ranks
/// against a fixed reference sample of the space (`reference` architectures drawn with
/// `reference_seed`, scored once per instance), so that a score never depends on which other
/// architectures are scored with it. Score::extra: "expressivity", "progressivity",
/// "trainability", "complexity".
class AznasSurrogate final : public Surrogate {
 public:
  /// Options: batch (64), reference (128), reference_seed (0), init (fan_in | sdk).
  static const ParamTable& params() noexcept;
  /// From resolved options.
  explicit AznasSurrogate(const Options& options);
  /// kNeedsData | kUsesSeed.
  std::uint32_t capabilities() const override;
  /// Nothing to train.
  void fit(Context& ctx, const FitRequest& request) override;
  /// The aggregated score (higher is better) and the raw metrics.
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;

 private:
  AzMetrics metrics(Context& ctx, const Executor& exec, const SearchSpace& space,
                    const Architecture& arch, const at::Tensor& images, std::uint64_t seed) const;
  std::int64_t batch_, reference_;
  std::uint64_t reference_seed_;
  bool fan_in_;
  std::string reference_key_;  ///< First reference architecture and the counts.
  std::vector<AzMetrics> reference_metrics_;
};

/// @name Pieces, for tests
/// @{
/// jacob_cov's score of Jacobians [N, D]: -sum over the eigenvalues v of their correlation
/// matrix of log(v + k) + 1 / (v + k), k = 1e-5. An image whose Jacobian is constant (the
/// network ignores it: a cell of `none` edges) has no correlation; the score is then that of
/// perfectly correlated Jacobians (eigenvalues N, 0, ..., 0), the lowest there is.
double jacob_cov_score(const at::Tensor& jacobians);
/// log|det K| of a NASWOT kernel (double); a singular K (two images with the same codes) gets
/// one unit of ridge on the diagonal first, so the score stays finite and low.
double naswot_logdet(const at::Tensor& kernel);
/// `arch` without its `bn` nodes: every edge out of a bn starts from the bn's inputs instead.
/// The other nodes keep their names (and so their weights' names).
Architecture without_bn(const Architecture& arch);
/// Zen-NAS's initialisation: conv and linear weights N(0, 1), linear biases 0, bn gain 1 and
/// shift 0; drawn from one generator seeded with `seed`, in parameters() order, on the CPU.
WeightMap gaussian_weights(const Executor& exec, const Architecture& arch, std::uint64_t seed,
                           c10::Device device);
/// @}

/// The surrogate plugin of proxy P. Options: see params(). Capabilities: kNeedsData (the
/// batch, or for synflow and zen only the image shape) and kUsesSeed (initial weights; zen's
/// Gaussian images).
template <Proxy P>
class ProxySurrogate final : public Surrogate {
 public:
  /// Options: `batch` (images in the mini-batch; not synflow), and for zen `mixup_gamma` and
  /// `init` (gaussian | sdk).
  static const ParamTable& params() noexcept;
  /// From resolved options.
  explicit ProxySurrogate(const Options& options);
  std::uint32_t capabilities() const override;
  /// Nothing to train.
  void fit(Context& ctx, const FitRequest& request) override;
  /// The proxy of each architecture (higher is better); throws Error naming the
  /// architecture when a value is not finite.
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;
  /// The plugin's name ("synflow", ...).
  static const char* name() noexcept;

 private:
  std::int64_t batch_;
  double gamma_;
  bool gaussian_;
};

extern template class ProxySurrogate<Proxy::Synflow>;
extern template class ProxySurrogate<Proxy::Naswot>;
extern template class ProxySurrogate<Proxy::JacobCov>;
extern template class ProxySurrogate<Proxy::Snip>;
extern template class ProxySurrogate<Proxy::GradNorm>;
extern template class ProxySurrogate<Proxy::Grasp>;
extern template class ProxySurrogate<Proxy::Fisher>;
extern template class ProxySurrogate<Proxy::Zen>;

}  // namespace hypernas::zero_cost
