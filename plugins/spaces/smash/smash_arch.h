#pragma once
/// @file smash_arch.h
/// @brief SMASH's memory-bank networks (Brock et al. 2018; the authors' SMASH.py): the
/// architecture as data, its text form, its graph, its ±1 encoding and its geometry. Shared by
/// the `smash` search space and the `smash` surrogate (which must agree on every node name and
/// on which rows of the hypernetwork's output feed which 1×1 conv).
///
/// A network: stem conv (stem_kernel, relu) -> blocks[0] -> transition -> blocks[1] -> ...
/// -> blocks[B-1] -> BN, ReLU, global average pool, linear. Block b starts with
/// in_channels(b) / N memory banks of N channels holding its input; each layer reads a sorted
/// set of banks (concatenated in that order), applies a 1×1 bottleneck conv and ReLU, then its
/// op (up to four pre-activation convs in a 2×2 pattern, optional tanh-sigmoid gates), and adds
/// chunk j % chunks of its output (chunks of N channels) into its j-th write bank (writes are
/// sorted; a write to an empty bank fills the next empty one). The block's output is all its
/// banks concatenated in bank order; a transition (BN, ReLU, 1×1 conv, 2×2 average pool) maps
/// it to in_channels(b+1) channels.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <hypernas/architecture.h>
#include <hypernas/context.h>
#include <hypernas/options.h>

namespace hypernas::smash {

/// The space's options (see README.md for their defaults and the paper's values).
struct Config {
  std::int64_t input_channels = 1;
  std::int64_t input_size = 28;
  std::int64_t classes = 10;
  std::int64_t N = 8;           ///< Channels of one memory bank (the paper: 8).
  std::int64_t N_max = 32;      ///< Largest layer width in channels, a multiple of N (paper: 64).
  std::int64_t width = 2;       ///< Widening factor: the stem makes 2·N·width channels.
  std::int64_t blocks = 3;      ///< Blocks, joined by downsampling transitions.
  std::int64_t min_layers = 2;  ///< Layers per block, sampled uniformly in [min, max].
  std::int64_t max_layers = 4;
  std::int64_t depth_compression = 4;  ///< Reads per slice of the encoding; a layer reads a
                                       ///< multiple of it.
  std::int64_t bottleneck = 4;         ///< The 1×1 conv's width is at most bottleneck·G·N.
  std::int64_t max_kernel = 7;         ///< Kernel sizes 3, 5, ..., max_kernel.
  std::int64_t max_dilate = 3;         ///< Dilations 1 .. max_dilate (at most 4 - (k-1)/2).
  std::int64_t max_groups = 8;         ///< Conv groups: the factors of N up to this.
  std::int64_t stem_kernel = 7;        ///< The stem conv's kernel (the authors': 7).
  bool var_op = true;                  ///< Op configurations other than one conv.
  bool gates = false;                  ///< Tanh-sigmoid gates (the authors' default: off).
  bool var_nl = false;    ///< Per-conv nonlinearity relu / tanh / sigmoid (default off).
  bool var_ks = true;     ///< Variable kernel sizes (else always 3).
  bool var_group = true;  ///< Variable groups (else always 1).

  /// From the space's resolved options (names as above); throws Error on inconsistent values.
  static Config from(const Options& options);
  std::int64_t units_max() const { return N_max / N; }  ///< k: largest G.
  std::int64_t in_channels(std::int64_t block) const;   ///< Channels entering block b.
  std::int64_t max_channels(std::int64_t block) const;  ///< Widest output of block b.
  std::int64_t max_banks(std::int64_t block) const { return max_channels(block) / N; }
  std::vector<std::int64_t> group_choices() const;  ///< Factors of N up to max_groups.
  /// Largest dilation of a conv with `kernel`: min(max_dilate, 4 - (kernel-1)/2), at least 1.
  std::int64_t max_dilation(std::int64_t kernel) const;
};

/// The space's parameter table: every Config option with its default and help text (the
/// `smash` space declares it; the surrogate may declare the same options).
const ParamTable& config_params() noexcept;

/// Implemented by the `smash` search space (and by test doubles) beside SearchSpace: its Config.
/// The `smash` surrogate finds it with dynamic_cast<const ConfigSource*>(&space) (a cross-cast;
/// both plugins compile this header, and type identity across libraries is by mangled name), to
/// read N, N_max, depth_compression and the sizes of the tensors it slices from.
class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  /// The space's resolved configuration.
  virtual const Config& smash_config() const = 0;
};

/// One layer of a block.
struct Layer {
  std::vector<std::int64_t> reads;   ///< Sorted, distinct bank indices; a multiple of
                                     ///< depth_compression of them.
  std::vector<std::int64_t> writes;  ///< Sorted, distinct bank indices; write j receives
                                     ///< output chunk j % chunks.
  std::int64_t units = 1;            ///< G: the op's width is G·N channels, 1 <= G <= k.
  std::array<bool, 4> ops{true, false, false, false};  ///< Active convs (see op_configs()).
  std::array<bool, 2> gates{false, false};             ///< Gate after stage 0 / stage 1.
  std::array<std::int64_t, 4> kernel{3, 3, 3, 3};
  std::array<std::int64_t, 4> dilation{1, 1, 1, 1};
  std::array<std::int64_t, 4> groups{1, 1, 1, 1};
  std::array<char, 4> nl{'r', 'r', 'r', 'r'};  ///< 'r' relu, 't' tanh, 's' sigmoid.
  bool operator==(const Layer& o) const;
};

/// An architecture: blocks of layers.
struct Arch {
  std::vector<std::vector<Layer>> blocks;
  bool operator==(const Arch& o) const { return blocks == o.blocks; }
};

/// The authors' op configurations [conv0, conv1, conv2, conv3] and their probabilities:
/// conv0 then conv1 is one path, conv2 then conv3 the other.
const std::vector<std::array<bool, 4>>& op_configs();
const std::vector<double>& op_config_probabilities();

/// Sizes that follow from a layer (and the surrogate needs).
struct LayerGeometry {
  std::int64_t in = 0;          ///< reads·N: the bottleneck's input channels.
  std::int64_t bottleneck = 0;  ///< The 1×1 conv's output channels.
  std::int64_t out = 0;         ///< The op's output channels (G·N, halved by a gate).
  std::int64_t chunks = 0;      ///< out / N.
  std::int64_t row = 0;         ///< First row of this layer's 1×1 weights in the hypernetwork's
                                ///< output matrix (rows: input channels of all layers in order).
  std::int64_t slice = 0;       ///< First slice (row / (depth_compression·N)).
};
std::vector<std::vector<LayerGeometry>> geometry(const Config& c, const Arch& a);

Arch sample(const Config& c, Rng& rng);
/// Every choice redrawn with probability p (see SearchSpace::mutate); the result validates.
Arch mutate(const Config& c, const Arch& a, Rng& rng, double p);
/// Throws Error naming the block, layer and field at fault.
void validate(const Config& c, const Arch& a);
/// Text form: blocks separated by '|', layers by ';', a layer
/// "<reads>><writes>/g<G>/o<ops>/k<kernels>/d<dilations>/p<groups>/x<gates>/n<nls>" with
/// dot-separated bank lists ("0.1.2.3>4.5/g2/o1111/k3537/d1211/p1214/x00/nrrrr"); inactive convs
/// print as k3 d1 p1 n r. parse() throws Error naming the text and the position at fault.
std::string print(const Arch& a);
Arch parse(const Config& c, const std::string& text);
/// The architecture's graph (node names: see README.md, "Graph").
ArchGraph build_graph(const Config& c, const Arch& a);
/// SMASH's architecture tensor c: float [channels(), k, max_slices()], -1 everywhere except the
/// rows [0, G) of each slice a layer's reads occupy.
std::int64_t encoding_channels(const Config& c);
std::int64_t max_slices(const Config& c);
at::Tensor encode(const Config& c, const Arch& a);
/// The inverse of encode() (throws Error on a tensor encode() cannot have made).
Arch decode(const Config& c, const at::Tensor& code);

}  // namespace hypernas::smash
