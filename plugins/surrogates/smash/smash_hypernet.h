#pragma once
/// @file smash_hypernet.h
/// @brief The `smash` surrogate: SMASH's hypernetwork (Brock, Lim, Ritchie, Weston, ICLR 2018;
/// the authors' SMASH.py and layers.py), which generates the 1×1 bottleneck convs of a
/// memory-bank network from the architecture's ±1 encoding tensor.
///
/// The hypernetwork H is a DenseNet without downsampling of weight-normalised convs (wn2d():
/// the weight divided by its Frobenius norm, no bias), LeakyReLU(0.02) and no batch norm. Its
/// input is [1, 1 + C, k, S]: a noise channel z ~ N(0, 1) (option `z`) and the encoding c, C
/// channels over a k × S grid (k = N_max / N); its output [1, N·N·dc, k, S] is read as the
/// matrix W [N_max units, S·dc·N input rows] of hypernet_matrix(). What it generates depends on
/// the space:
/// - **`smash`** (plugins/spaces/smash, smash_arch.h): c = smash::encode() cropped to the slices
///   the architecture uses plus one (the authors' [:slice_index + 1]); layer l's bottleneck
///   `P.bottleneck` [bottleneck, reads·N, 1, 1] is wn2d(W[:bottleneck, row : row + reads·N])
///   with row from smash::geometry(). Everything else is learned freely and sliced from maximal
///   tensors: per block b and op conv j one kernel [N_max, N_max, max_kernel, max_kernel]
///   (conv j of a layer takes [:c_out, :c_in/groups] and the centre k×k), the stem conv at its
///   shape, the transitions' and the head's batch norm and linear layers at the widest block
///   output. N, N_max and depth_compression are the space's (smash::ConfigSource).
/// - **any other space with encode()** (nb201, darts, ...): c is E = encode(arch) (±1 one-hot per
///   edge and op in nb201 and darts), flattened, broadcast over a k × S_g grid as E
///   channels. Every conv weight of the architecture is generated: the convs of
///   Executor::parameters() in order take consecutive row ranges of W (conv [co, ci/g, kh, kw]:
///   wn2d(W[:co, r : r + ci/g·kh·kw]) reshaped), S_g = ceil(rows / (dc·N)). Batch norm and
///   linear parameters are learned per parameter name, created when first seen. N, N_max and
///   depth_compression are the surrogate's options `n`, `n_max`, `depth_compression`.
/// H is built lazily, at the first call that names a space, for that space's input shape; the
/// state records the space and its shape, and refuses another. README.md beside this file has
/// the parameter counts, the options with the authors' values, and every deviation.

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

#include "../../spaces/smash/smash_arch.h"

namespace hypernas::smash_hypernet {

/// SMASH's simplified weight norm (layers.py wn2d): `w` divided by the Frobenius norm of the
/// whole tensor.
at::Tensor wn2d(const at::Tensor& w);

/// The hypernetwork's output `out` [1, N·N·dc, k, S] as the matrix [N_max = k·N units,
/// S·dc·N input rows]: out.view(N, dc·N, k, S).permute(2, 0, 3, 1).reshape(N_max, S·dc·N).
/// Output channel ch at grid position (kk, s) is the weight from input row s·dc·N + ch % (dc·N)
/// to unit kk·N + ch / (dc·N): the authors' squeeze / transpose / view / index_select /
/// transpose sequence in sample_weights(), without the final transpose. Throws Error naming the
/// shape when it is not [1, N·N·dc, k, S].
at::Tensor hypernet_matrix(const at::Tensor& out, std::int64_t N, std::int64_t depth_compression);

/// The part of a maximal tensor `full` a parameter of `shape` takes (SMASHC2D, SMASHBN2D,
/// SMASHFC): the first shape[d] entries of every dimension, except the spatial dimensions 2 and
/// 3 of a rank-4 tensor, which take the centre ((K − k) / 2 .. (K − k) / 2 + k). Throws Error,
/// naming `what`, when the shape has another rank or is larger anywhere (or an even difference
/// would make the centre ambiguous).
at::Tensor slice_max(const at::Tensor& full, const std::vector<std::int64_t>& shape,
                     const std::string& what);

/// The kernel-size cap of step `j` of `total` in the authors' annealing (SMASH.update_lr):
/// m = 3 + int(2·((K − 3) / 2)·min(j / (0.5·total), 1)), and the sampler then draws kernels
/// from range(3, m + 2, 2), so the largest allowed kernel is m when m is odd and m + 1 when it
/// is even. Returns that largest odd kernel (3 at the start, K from half-way on); K itself when
/// `total` <= 0.
std::int64_t annealed_kernel_cap(std::int64_t max_kernel, std::int64_t j, std::int64_t total);

/// `arch` with every active conv's kernel above `cap` lowered to `cap`, and its dilation
/// clamped to what the space allows for the new kernel (at most max_dilate and 4 − (k − 1)/2;
/// never lower than before, since a smaller kernel allows more). Inactive convs are unchanged.
smash::Arch cap_kernels(const smash::Config& config, const smash::Arch& arch, std::int64_t cap);

/// Sizes of the hypernetwork: the channel count entering each of its convs and the count each
/// produces, in order (the first CL conv, the dense layers, the halving convs, the final 1×1).
struct HyperLayout {
  struct Conv {
    std::int64_t in = 0;      ///< Input channels.
    std::int64_t out = 0;     ///< Output channels.
    std::int64_t kernel = 3;  ///< 3, or 1 for the last.
    bool concat = false;      ///< CL: the output is concatenated to the input.
    bool leaky = false;       ///< LeakyReLU(0.02) before the conv.
  };
  std::vector<Conv> convs;
  std::int64_t parameters() const;  ///< Scalars of all conv weights.
};

/// The DenseNet of SMASH.__init__ for `in_channels` input channels: CL(WN3x3(in -> 7)); for
/// every entry d_i of `layers`: d_i × CL(LReLU, WN3x3(-> growth)), then LReLU, WN3x3(-> half)
/// between blocks, and after the last one LReLU, WN1x1(-> `out_channels`).
HyperLayout hyper_layout(std::int64_t in_channels, std::int64_t growth,
                         const std::vector<std::int64_t>& layers, std::int64_t out_channels);

/// Parses option `hidden_layers` ("8,10,4": dense layers per hypernet block, each >= 1; at
/// least one block). Throws UsageError naming the text and the item at fault.
std::vector<std::int64_t> parse_layers(const std::string& text);

/// What the model of a smash configuration holds (README.md's table); nothing is allocated.
struct ParameterCounts {
  std::int64_t hypernet = 0;         ///< Scalars of H.
  std::int64_t learned_kernels = 0;  ///< The blocks' maximal op kernels W[b][j].
  std::int64_t learned_other = 0;    ///< Stem, transitions, head (maximal sizes).
  std::int64_t input_channels = 0;   ///< H's input channels (1 + C with z).
};
ParameterCounts count_parameters(const smash::Config& config, const Options& options);

}  // namespace hypernas::smash_hypernet

namespace hypernas {

/// The `smash` surrogate plugin. Options: see params(). Not thread-safe: one call at a time.
class SmashSurrogate final : public Surrogate {
 public:
  /// Declared options: hidden_growth, hidden_layers, z, lr, beta1, beta2, eps, weight_decay,
  /// cosine, anneal_kernels, init_seed, n, n_max, depth_compression, log_every.
  static const ParamTable& params() noexcept;
  /// From resolved options; the model is built at the first call that names a space.
  explicit SmashSurrogate(const Options& options);
  ~SmashSurrogate() override;
  SmashSurrogate(const SmashSurrogate&) = delete;
  SmashSurrogate& operator=(const SmashSurrogate&) = delete;

  /// kTrainable | kGeneratesWeights | kEncodingConditioned | kNeedsData | kUsesSeed |
  /// kReadsEvalBatch | kReadsEvalImages.
  std::uint32_t capabilities() const override;
  /// SMASH's training: every step a new random architecture of the space (ctx.rng(); with
  /// anneal_kernels on a smash space its kernels capped by annealed_kernel_cap()), fresh z,
  /// generated weights, cross-entropy of its logits on one training batch, one Adam step
  /// (two groups: the learned weights with weight_decay, H without), learning rate
  /// lr·0.5·(1 + cos(π·j/J)) over the call's J steps. Calls ctx.notify("fit_step", {step, loss,
  /// lr, max_kernel}) after every step (false: stop), logs the mean loss every log_every steps.
  /// Throws Error naming the step and architecture on a non-finite loss; Cancelled between
  /// steps when asked to stop.
  void fit(Context& ctx, const FitRequest& request) override;
  /// Validation accuracy with generated weights (z drawn from a generator seeded with
  /// request.seeds[i]): the first max_images images of the valid split in order, batches of
  /// batch_size, batch-statistics batch norm. Score::value = accuracy (SMASH reports the error;
  /// higher is better here); Score::extra: "accuracy", "loss".
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;
  /// Every parameter ctx.executor()->parameters(arch) lists (no gradient history), with z drawn
  /// from ctx.rng().
  WeightMap generate(Context& ctx, const Architecture& arch, const SearchSpace& space) override;
  /// A versioned, checksummed blob: the model options, the space it was built for and its input
  /// shape, every tensor (H, learned) with its Adam moments, the step counter, the loss curve.
  std::string save_state() const override;
  /// Restores save_state()'s blob. Throws Error (and changes nothing) on a truncated, corrupted
  /// or foreign blob, one saved with other model options, or one built for another space or
  /// input shape than this surrogate's model.
  void load_state(const std::string& blob) override;

  /// @name Beyond the Surrogate interface (tests, benchmarks)
  /// @{
  /// The weights of `arch` with z drawn from a generator seeded with `z_seed` (what score()
  /// does with ScoreRequest::seeds), with gradient history into H and the learned tensors when
  /// `with_grad` (else detached).
  WeightMap generate_with(Context& ctx, const Architecture& arch, const SearchSpace& space,
                          std::uint64_t z_seed, bool with_grad);
  /// The hypernetwork's input [1, channels, k, S] for `arch` (z drawn from `z_seed`) and its
  /// output matrix [N_max, S·dc·N] (hypernet_matrix()).
  std::pair<at::Tensor, at::Tensor> hyper_io(Context& ctx, const Architecture& arch,
                                             const SearchSpace& space, std::uint64_t z_seed);
  /// True once a model exists.
  bool built() const;
  /// Every tensor with its name: H's ("hyper.<i>.weight") and the learned ones.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  /// The learned maximal tensor or per-name tensor `name` (Error when absent).
  at::Tensor learned(const std::string& name) const;
  /// The loss of every fit step so far.
  const std::vector<double>& loss_curve() const;
  /// The largest active kernel of the architectures of every fit step so far (smash spaces; 0
  /// for others), kept in the state.
  const std::vector<std::int64_t>& kernel_curve() const;
  /// The resolved options.
  const Options& options() const;
  /// @}

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hypernas
