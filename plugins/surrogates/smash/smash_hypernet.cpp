/// @file smash_hypernet.cpp
/// @brief SMASH's hypernetwork: its layout and forward pass, the index mapping of its output,
/// the learned maximal tensors and their slices, training (Adam with two groups, kernel-size
/// annealing), scoring and the state blob. ATen only (no <torch/torch.h>): parameters are plain
/// tensors and Adam is written out (../common/optim.h), so that the same code builds against
/// LibTorch 1.13 and 2.x and the optimiser state is ours to save.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <hypernas/hash.h>

#include "../../common/state_blob.h"
#include "../common/optim.h"
#include "../common/validation.h"
#include "../common/with_graph.h"
#include "smash_hypernet.h"

namespace hypernas {

namespace {

using at::Tensor;

std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
  return out + "]";
}

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

/// torch.nn.init.orthogonal_ (gain 1): a random matrix [shape[0], rest] with orthonormal rows
/// or columns, whichever are fewer, from `gen`.
Tensor orthogonal(const std::vector<std::int64_t>& shape, at::Generator& gen) {
  const std::int64_t rows = shape.at(0);
  const std::int64_t cols = numel(shape) / std::max<std::int64_t>(rows, 1);
  Tensor flat = at::randn({rows, cols}, gen, at::kFloat);
  const bool wide = rows < cols;
  if (wide) flat = flat.t().contiguous();
  auto qr = at::linalg_qr(flat);
  Tensor q = std::get<0>(qr);
  q = q * std::get<1>(qr).diagonal().sign();
  if (wide) q = q.t();
  return q.contiguous().view(shape).clone();
}

/// "b<b>.l<l>.<rest>" -> (b, l, rest); nullopt for any other name.
struct LayerName {
  std::int64_t block = 0, layer = 0;
  std::string rest;
};
std::optional<LayerName> parse_layer_name(const std::string& node) {
  auto number = [&](std::size_t& pos, std::int64_t& out) {
    const std::size_t start = pos;
    out = 0;
    while (pos < node.size() && node[pos] >= '0' && node[pos] <= '9')
      out = out * 10 + (node[pos++] - '0');
    return pos > start;
  };
  std::size_t pos = 0;
  LayerName n;
  if (node.compare(0, 1, "b") != 0) return std::nullopt;
  pos = 1;
  if (!number(pos, n.block) || node.compare(pos, 2, ".l") != 0) return std::nullopt;
  pos += 2;
  if (!number(pos, n.layer) || pos >= node.size() || node[pos] != '.') return std::nullopt;
  n.rest = node.substr(pos + 1);
  return n;
}

}  // namespace

// =============================================================================================
// Pieces (smash_hypernet.h)

namespace smash_hypernet {

at::Tensor wn2d(const at::Tensor& w) { return w / w.norm(); }

at::Tensor hypernet_matrix(const at::Tensor& out, std::int64_t N, std::int64_t dc) {
  HYPERNAS_CHECK(out.dim() == 4 && out.size(0) == 1 && out.size(1) == N * N * dc, "smash: the ",
                 "hypernetwork's output has shape ", shape_text(out.sizes()), ", expected [1, ",
                 N * N * dc, " (N·N·depth_compression), k, S]");
  const std::int64_t k = out.size(2), S = out.size(3);
  return out.reshape({N, dc * N, k, S}).permute({2, 0, 3, 1}).reshape({k * N, S * dc * N});
}

at::Tensor slice_max(const at::Tensor& full, const std::vector<std::int64_t>& shape,
                     const std::string& what) {
  HYPERNAS_CHECK(full.dim() == static_cast<std::int64_t>(shape.size()), "smash: ", what,
                 " has shape ", shape_text(shape), ", but its learned maximal tensor is ",
                 shape_text(full.sizes()));
  Tensor t = full;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const std::int64_t K = full.size(static_cast<std::int64_t>(d)), k = shape[d];
    HYPERNAS_CHECK(k <= K, "smash: ", what, " has shape ", shape_text(shape),
                   ", larger than its learned maximal tensor ", shape_text(full.sizes()),
                   " in dimension ", d);
    const bool spatial = shape.size() == 4 && d >= 2;
    HYPERNAS_CHECK(!spatial || (K - k) % 2 == 0, "smash: ", what, " has kernel ", k,
                   ", whose centre in the maximal kernel ", K, " is not defined (odd sizes only)");
    t = t.narrow(static_cast<std::int64_t>(d), spatial ? (K - k) / 2 : 0, k);
  }
  return t;
}

std::int64_t annealed_kernel_cap(std::int64_t max_kernel, std::int64_t j, std::int64_t total) {
  if (total <= 0 || max_kernel <= 3) return max_kernel;
  const double frac = std::min(static_cast<double>(j) / (0.5 * static_cast<double>(total)), 1.0);
  const std::int64_t m =
      3 + static_cast<std::int64_t>(static_cast<double>((max_kernel - 3) / 2) * frac * 2.0);
  return std::min(max_kernel, m % 2 ? m : m + 1);
}

smash::Arch cap_kernels(const smash::Config& config, const smash::Arch& arch, std::int64_t cap) {
  smash::Arch out = arch;
  for (auto& block : out.blocks)
    for (smash::Layer& l : block)
      for (std::size_t j = 0; j < 4; ++j) {
        if (!l.ops[j] || l.kernel[j] <= cap) continue;
        l.kernel[j] = cap;
        const std::int64_t dmax = std::min(config.max_dilate, 4 - (cap - 1) / 2);
        l.dilation[j] = std::max<std::int64_t>(1, std::min(l.dilation[j], dmax));
      }
  return out;
}

std::int64_t HyperLayout::parameters() const {
  std::int64_t n = 0;
  for (const Conv& c : convs) n += c.out * c.in * c.kernel * c.kernel;
  return n;
}

HyperLayout hyper_layout(std::int64_t in_channels, std::int64_t growth,
                         const std::vector<std::int64_t>& layers, std::int64_t out_channels) {
  HyperLayout h;
  // The authors' first conv makes 7 channels, so that with z and c it is 8 more than c.
  h.convs.push_back({in_channels, 7, 3, true, false});
  std::int64_t ch = in_channels + 7;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (std::int64_t d = 0; d < layers[i]; ++d) {
      h.convs.push_back({ch, growth, 3, true, true});
      ch += growth;
    }
    if (i + 1 < layers.size()) {
      h.convs.push_back({ch, ch / 2, 3, false, true});
      ch /= 2;
    }
  }
  h.convs.push_back({ch, out_channels, 1, false, true});
  return h;
}

std::vector<std::int64_t> parse_layers(const std::string& text) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    std::string item = text.substr(pos, end - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    std::int64_t v = 0;
    bool ok = !item.empty() && item.size() <= 4;
    for (char ch : item) ok = ok && ch >= '0' && ch <= '9';
    if (ok) v = std::stoll(item);
    if (!ok || v < 1)
      throw UsageError(cat("smash: option 'hidden_layers' expects comma-separated layer counts >= ",
                           "1 (\"8,10,4\"), got '", text, "' (item ", out.size() + 1, ": '", item,
                           "')"));
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

ParameterCounts count_parameters(const smash::Config& c, const Options& o) {
  ParameterCounts p;
  p.input_channels = smash::encoding_channels(c) + (o.get_bool("z") ? 1 : 0);
  p.hypernet =
      hyper_layout(p.input_channels, o.get_int("hidden_growth"),
                   parse_layers(o.get_string("hidden_layers")), c.N * c.N * c.depth_compression)
          .parameters();
  p.learned_kernels = c.blocks * 4 * c.N_max * c.N_max * c.max_kernel * c.max_kernel;
  p.learned_other =
      2 * c.N * c.width * c.input_channels * c.stem_kernel * c.stem_kernel;  // the stem conv
  for (std::int64_t b = 0; b + 1 < c.blocks; ++b)
    p.learned_other += 2 * c.max_channels(b) + c.in_channels(b + 1) * c.max_channels(b);
  const std::int64_t last = c.max_channels(c.blocks - 1);
  p.learned_other += 2 * last + c.classes * last + c.classes;
  return p;
}

}  // namespace smash_hypernet

namespace {

using namespace smash_hypernet;

// =============================================================================================
// Options

struct Cfg {
  std::int64_t growth;
  std::vector<std::int64_t> layers;
  bool z;
  double lr, beta1, beta2, eps, weight_decay;
  bool cosine, anneal;
  std::int64_t init_seed, n, n_max, dc, log_every;

  explicit Cfg(const Options& o)
      : growth(o.get_int("hidden_growth")),
        layers(parse_layers(o.get_string("hidden_layers"))),
        z(o.get_bool("z")),
        lr(o.get_real("lr")),
        beta1(o.get_real("beta1")),
        beta2(o.get_real("beta2")),
        eps(o.get_real("eps")),
        weight_decay(o.get_real("weight_decay")),
        cosine(o.get_bool("cosine")),
        anneal(o.get_bool("anneal_kernels")),
        init_seed(o.get_int("init_seed")),
        n(o.get_int("n")),
        n_max(o.get_int("n_max")),
        dc(o.get_int("depth_compression")),
        log_every(o.get_int("log_every")) {
    HYPERNAS_CHECK(n_max % n == 0, "smash: option 'n_max' (", n_max,
                   ") must be a multiple of option 'n' (", n, ")");
  }
};

/// Options that define the model: a state saved with other values cannot be loaded.
const char* const kModelKeys[] = {"hidden_growth", "hidden_layers",    "z", "n",
                                  "n_max",         "depth_compression"};

std::string model_signature(const Options& o) {
  std::string out;
  for (const char* key : kModelKeys)
    out += cat(out.empty() ? "" : ",", key, "=", to_string(o.at(key)));
  return out;
}

const Executor& need_executor(Context& ctx) {
  const Executor* e = ctx.executor();
  HYPERNAS_CHECK(e != nullptr,
                 "smash: this kernel has no graph executor; the smash surrogate needs one to run "
                 "architectures with generated weights");
  return *e;
}

/// The smash configuration of `space`, or nullptr for a space of another kind.
const smash::Config* smash_config_of(const SearchSpace& space) {
  if (const auto* src = dynamic_cast<const smash::ConfigSource*>(&space))
    return &src->smash_config();
  HYPERNAS_CHECK(space.name() != "smash",
                 "smash: space 'smash' does not expose its configuration (smash::ConfigSource, "
                 "plugins/spaces/smash/smash_arch.h); this surrogate needs its N, N_max, "
                 "depth_compression and block widths");
  return nullptr;
}

/// What identifies the model a smash configuration needs (the encoding's shape and every size
/// the learned maximal tensors take).
std::string smash_fingerprint(const smash::Config& c) {
  std::string widths;
  for (std::int64_t b = 0; b < c.blocks; ++b)
    widths += cat(b ? "," : "", c.in_channels(b), "/", c.max_channels(b));
  return cat("encoding [", smash::encoding_channels(c), ", ", c.units_max(), ", ",
             smash::max_slices(c), "], N=", c.N, ", N_max=", c.N_max,
             ", depth_compression=", c.depth_compression, ", max_kernel=", c.max_kernel,
             ", blocks=", c.blocks, " (in/max channels ", widths, "), classes=", c.classes);
}

/// The largest kernel of an active conv of `a` (0 for none).
std::int64_t largest_kernel(const smash::Arch& a) {
  std::int64_t k = 0;
  for (const auto& block : a.blocks)
    for (const smash::Layer& l : block)
      for (std::size_t j = 0; j < 4; ++j)
        if (l.ops[j]) k = std::max(k, l.kernel[j]);
  return k;
}

constexpr std::uint32_t kFormatVersion = 1;
/// The envelope of SMASH states (../../common/state_blob.h). The payload: the model signature,
/// the options, whether there is a model, then its space, fingerprint and geometry, every
/// tensor (name, group, values, Adam step and moments), the step counter and the curves.
constexpr plugins::BlobFormat kBlobFormat{"smash", "a SMASH state blob", "HNAS.SMH",
                                          kFormatVersion};

/// Kinds of tensors (SmashSurrogate::Impl::kind), as the state blob stores them.
constexpr std::uint8_t kHyper = 0, kMaximal = 1, kPerName = 2;

}  // namespace

// =============================================================================================

struct SmashSurrogate::Impl {
  Options options;
  Cfg cfg;
  at::Device device{at::kCPU};

  // ----- the model (exists once built for a space, or loaded) -------------------------------
  bool has_model = false;
  bool smash_mode = false;
  std::string space_name;  ///< The space it was built for.
  std::string space_fp;    ///< Its fingerprint (smash_fingerprint(), or the encoding's shape).
  std::int64_t in_ch = 0, N = 0, N_max = 0, dc = 0;
  std::int64_t enc_numel = 0;  ///< Other spaces: elements of encode().
  HyperLayout hl;
  /// Every tensor, in creation order: H's convs first, then the learned ones.
  std::vector<std::string> names;
  std::vector<Tensor> params;
  /// What params[i] is: kHyper (H: the Adam group without decay), kMaximal (a learned maximal
  /// tensor that parameters are sliced from), kPerName (a learned tensor of one parameter name).
  std::vector<std::uint8_t> kind;
  std::map<std::string, std::size_t> index;
  std::vector<Tensor> adam_m, adam_v;
  std::vector<std::int64_t> adam_t;  ///< Adam's step per tensor (torch keeps it per parameter).
  std::int64_t steps = 0;
  std::vector<double> curve;
  std::vector<std::int64_t> kcurve;

  /// The smash configuration of the space of the last prepare() (smash mode).
  std::optional<smash::Config> sc;

  explicit Impl(const Options& o) : options(o), cfg(o) {}

  std::size_t add(const std::string& name, Tensor t, std::uint8_t k) {
    HYPERNAS_INTERNAL_ASSERT(!index.count(name), "tensor '", name, "' added twice");
    index[name] = params.size();
    names.push_back(name);
    params.push_back(t.to(device).requires_grad_(true));
    kind.push_back(k);
    adam_m.emplace_back();
    adam_v.emplace_back();
    adam_t.push_back(0);
    return params.size() - 1;
  }

  const Tensor& P(const std::string& name) const { return params.at(index.at(name)); }

  std::string where() const { return cat("space '", space_name, "' (", space_fp, ")"); }

  // ----- building -----------------------------------------------------------------------

  /// H for `in_channels` inputs and, in smash mode, the maximal learned tensors of `c`.
  void build(const std::string& space, const std::string& fp, std::int64_t in_channels,
             const smash::Config* c, std::int64_t encoding_numel) {
    names.clear();
    params.clear();
    kind.clear();
    index.clear();
    adam_m.clear();
    adam_v.clear();
    adam_t.clear();
    device = at::kCPU;
    smash_mode = c != nullptr;
    N = c ? c->N : cfg.n;
    N_max = c ? c->N_max : cfg.n_max;
    dc = c ? c->depth_compression : cfg.dc;
    in_ch = in_channels;
    enc_numel = encoding_numel;
    space_name = space;
    space_fp = fp;
    hl = hyper_layout(in_ch, cfg.growth, cfg.layers, N * N * dc);
    at::Generator gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.init_seed));
    c10::NoGradGuard no_grad;
    // Orthogonal initialisation of every conv, as SMASH.__init__.
    for (std::size_t i = 0; i < hl.convs.size(); ++i) {
      const HyperLayout::Conv& k = hl.convs[i];
      add(cat("hyper.", i, ".weight"), orthogonal({k.out, k.in, k.kernel, k.kernel}, gen), kHyper);
    }
    if (c) {
      const std::int64_t K = c->max_kernel;
      for (std::int64_t b = 0; b < c->blocks; ++b)
        for (int j = 0; j < 4; ++j)
          add(cat("W.b", b, ".c", j), orthogonal({N_max, N_max, K, K}, gen), kMaximal);
      for (std::int64_t b = 0; b + 1 < c->blocks; ++b) {
        const std::int64_t w = c->max_channels(b);
        add(cat("t", b, ".bn.weight"), at::ones({w}), kMaximal);
        add(cat("t", b, ".bn.bias"), at::zeros({w}), kMaximal);
        add(cat("t", b, ".conv.weight"), orthogonal({c->in_channels(b + 1), w, 1, 1}, gen),
            kMaximal);
      }
      const std::int64_t w = c->max_channels(c->blocks - 1);
      add("head.bn.weight", at::ones({w}), kMaximal);
      add("head.bn.bias", at::zeros({w}), kMaximal);
      const double bound = 1.0 / std::sqrt(static_cast<double>(w));
      add("head.fc.weight", at::empty({c->classes, w}).uniform_(-bound, bound, gen), kMaximal);
      add("head.fc.bias", at::zeros({c->classes}), kMaximal);  // the authors zero linear biases
    }
    steps = 0;
    curve.clear();
    kcurve.clear();
    has_model = true;
  }

  void to_device(const at::Device& d) {
    if (d == device) return;
    for (Tensor& p : params) p = p.detach().to(d).requires_grad_(true);
    for (auto* moments : {&adam_m, &adam_v})
      for (Tensor& t : *moments)
        if (t.defined()) t = t.to(d);
    device = d;
  }

  /// Builds the model for `space` (whose architecture `arch` is at hand), or checks that the
  /// model was built (or loaded) for the same space and shape.
  void prepare(Context& ctx, const SearchSpace& space, const Architecture& arch) {
    const smash::Config* c = smash_config_of(space);
    std::string fp;
    std::int64_t in = 0, enc = 0;
    if (c) {
      fp = smash_fingerprint(*c);
      in = smash::encoding_channels(*c) + (cfg.z ? 1 : 0);
    } else {
      const Tensor e = space.encode(arch);
      enc = e.numel();
      HYPERNAS_CHECK(enc > 0, "smash: space '", space.name(), "' gives an empty encoding");
      fp = cat("encoding ", shape_text(e.sizes()));
      in = enc + (cfg.z ? 1 : 0);
    }
    if (!has_model) {
      build(space.name(), fp, in, c, enc);
    } else if (space.name() != space_name || fp != space_fp || in != in_ch ||
               (c != nullptr) != smash_mode) {
      throw Error(cat("smash: this surrogate's model was built for ", where(), ", with ", in_ch,
                      " input channels, but space '", space.name(), "' gives ", fp, ", ", in,
                      " input channels. A model trained for one space or shape does not apply "
                      "to another: use the space it was built for, or a new smash surrogate"));
    }
    if (c) sc = *c;
    to_device(ctx.device());
  }

  // ----- learned tensors created when first seen --------------------------------------------

  /// The per-name learned tensor of `p`, created when first seen: drawn as
  /// Executor::init_weights() documents for its role (bn gain 1 and shift 0; linear weight and
  /// bias uniform in ±1/sqrt(fan_in)), convs orthogonal as the authors' (only smash spaces have
  /// learned convs that are not sliced), from a generator seeded with init_seed and the name,
  /// so that its value does not depend on which architecture showed it first.
  const Tensor& per_name(const ParamShape& p) {
    auto it = index.find(p.name);
    if (it == index.end()) {
      c10::NoGradGuard no_grad;
      at::Generator gen =
          at::detail::createCPUGenerator(fnv1a64(p.name, fnv1a64(cat(cfg.init_seed, "/learned"))));
      Tensor t;
      const double bound =
          1.0 / std::sqrt(static_cast<double>(
                    std::max<std::int64_t>(p.fan_in > 0 ? p.fan_in : p.shape.back(), 1)));
      switch (p.role) {
        case ParamRole::ConvWeight: t = orthogonal(p.shape, gen); break;
        case ParamRole::BnWeight: t = at::ones(p.shape); break;
        case ParamRole::BnBias: t = at::zeros(p.shape); break;
        default: t = at::empty(p.shape).uniform_(-bound, bound, gen); break;
      }
      return params[add(p.name, t, kPerName)];
    }
    const Tensor& t = params[it->second];
    HYPERNAS_CHECK(t.sizes() == at::IntArrayRef(p.shape), "smash: parameter '", p.name,
                   "' has shape ", shape_text(p.shape), ", but the learned tensor of that name is ",
                   shape_text(t.sizes()), " (another space's or size's network?)");
    return t;
  }

  // ----- the hypernetwork ---------------------------------------------------------------

  Tensor hyper_forward(Tensor x) const {
    for (std::size_t i = 0; i < hl.convs.size(); ++i) {
      const HyperLayout::Conv& c = hl.convs[i];
      Tensor y = c.leaky ? at::leaky_relu(x, 0.02) : x;
      y = at::conv2d(y, wn2d(params[i]), {}, 1, c.kernel / 2);
      x = c.concat ? at::cat({x, y}, 1) : y;
    }
    return x;
  }

  /// H's input for `arch` and the generated rows it needs; in smash mode also the parsed
  /// architecture's geometry.
  struct Input {
    Tensor x;                                            ///< [1, in_ch, k, S].
    std::int64_t rows = 0;                               ///< Generated rows the architecture uses.
    std::vector<std::vector<smash::LayerGeometry>> geo;  ///< smash mode.
    std::int64_t max_kernel = 0;                         ///< smash mode.
  };

  Input input(const Architecture& arch, const SearchSpace& space,
              const std::vector<ParamShape>& shapes, std::uint64_t z_seed) const {
    Input in;
    const std::int64_t k = N_max / N, per_slice = dc * N;
    Tensor c;
    std::int64_t S = 0;
    if (smash_mode) {
      HYPERNAS_INTERNAL_ASSERT(sc.has_value(), "smash mode without a configuration");
      const smash::Arch a = smash::parse(*sc, arch.text);
      in.geo = smash::geometry(*sc, a);
      in.max_kernel = largest_kernel(a);
      for (const auto& block : in.geo)
        for (const smash::LayerGeometry& g : block) {
          HYPERNAS_CHECK(g.row == in.rows, "smash: smash::geometry() puts a layer of '",
                         abbreviate(arch.text), "' at row ", g.row,
                         ", but the layers before it "
                         "read ",
                         in.rows, " rows");
          in.rows += g.in;
        }
      HYPERNAS_CHECK(in.rows % per_slice == 0, "smash: the layers of '", abbreviate(arch.text),
                     "' read ", in.rows,
                     " channels, not a multiple of depth_compression·N = ", per_slice);
      // The authors' c[:, :, :, :slice_index + 1]: the slices used and one more.
      S = in.rows / per_slice + 1;
      const Tensor code = space.encode(arch).to(at::kFloat);
      const std::int64_t C = smash::encoding_channels(*sc);
      HYPERNAS_CHECK(code.dim() == 3 && code.size(0) == C && code.size(1) == k, "smash: space '",
                     space.name(), "' encodes '", abbreviate(arch.text), "' as ",
                     shape_text(code.sizes()), ", expected [", C, ", ", k, ", slices]");
      c = code.narrow(2, 0, std::min(S, code.size(2)));
      if (c.size(2) < S) c = at::cat({c, at::full({C, k, S - c.size(2)}, -1.0)}, 2);
      c = c.unsqueeze(0);
    } else {
      for (const ParamShape& p : shapes)
        if (p.role == ParamRole::ConvWeight) in.rows += numel(p.shape) / p.shape.at(0);
      S = std::max<std::int64_t>(1, (in.rows + per_slice - 1) / per_slice);
      const Tensor e = space.encode(arch).to(at::kFloat).reshape({-1});
      HYPERNAS_CHECK(e.numel() == enc_numel, "smash: space '", space.name(), "' encodes '",
                     abbreviate(arch.text), "' with ", e.numel(), " values, the model expects ",
                     enc_numel);
      // nb201 and darts encode SMASH-style already: +1 for the chosen op, -1 elsewhere.
      c = e.view({1, enc_numel, 1, 1}).expand({1, enc_numel, k, S});
    }
    if (cfg.z) {
      at::Generator gen = at::detail::createCPUGenerator(z_seed);
      c = at::cat({at::randn({1, 1, k, S}, gen, at::kFloat), c}, 1);
    }
    in.x = c.contiguous().to(device);
    return in;
  }

  /// The weights of `arch` (with gradient history into the tensors when grad mode is on).
  WeightMap weights(const Architecture& arch, const SearchSpace& space,
                    const std::vector<ParamShape>& shapes, std::uint64_t z_seed,
                    Input* keep = nullptr, Tensor* matrix = nullptr) {
    for (const ParamShape& p : shapes) needs_per_name(p);
    Input in = input(arch, space, shapes, z_seed);
    const Tensor W = hypernet_matrix(hyper_forward(in.x), N, dc);
    WeightMap out;
    std::int64_t row = 0;
    for (const ParamShape& p : shapes) {
      Tensor t;
      if (smash_mode) {
        const auto ln = parse_layer_name(p.node);
        if (ln && ln->rest == "bottleneck" && p.role == ParamRole::ConvWeight) {
          HYPERNAS_CHECK(ln->block < static_cast<std::int64_t>(in.geo.size()) &&
                             ln->layer < static_cast<std::int64_t>(
                                             in.geo[static_cast<std::size_t>(ln->block)].size()),
                         "smash: node '", p.node, "' of '", abbreviate(arch.text),
                         "' names a layer the architecture does not have");
          const smash::LayerGeometry& g =
              in.geo[static_cast<std::size_t>(ln->block)][static_cast<std::size_t>(ln->layer)];
          HYPERNAS_CHECK(p.shape.size() == 4 && p.shape[1] == g.in && p.shape[2] == 1 &&
                             p.shape[3] == 1,
                         "smash: bottleneck '", p.node, "' has weight ", shape_text(p.shape),
                         ", expected [c_out, ", g.in, ", 1, 1]");
          t = generated(W, p, g.row);
        } else if (ln && p.role == ParamRole::ConvWeight && ln->rest.size() == 2 &&
                   ln->rest[0] == 'c' && ln->rest[1] >= '0' && ln->rest[1] <= '3') {
          t = slice_max(P(cat("W.b", ln->block, ".c", ln->rest[1])), p.shape,
                        cat("conv '", p.node, "'"));
        } else if (maximal(p.name)) {
          t = slice_max(P(p.name), p.shape, cat("parameter '", p.name, "'"));
        } else {
          t = per_name(p);
        }
      } else if (p.role == ParamRole::ConvWeight) {
        t = generated(W, p, row);
        row += numel(p.shape) / p.shape[0];
      } else {
        t = per_name(p);
      }
      out.emplace(p.name, t);
    }
    if (keep) *keep = std::move(in);
    if (matrix) *matrix = W;
    return out;
  }

  /// wn2d(W[:c_out, row : row + fan]) as the conv weight `p`.
  Tensor generated(const Tensor& W, const ParamShape& p, std::int64_t row) const {
    const std::int64_t co = p.shape.at(0), fan = numel(p.shape) / co;
    HYPERNAS_CHECK(co <= N_max, "smash: conv '", p.node, "' has ", co,
                   " output channels, more than N_max = ", N_max,
                   " (the hypernetwork's units; raise ", smash_mode ? "the space's N_max" : "n_max",
                   ")");
    HYPERNAS_INTERNAL_ASSERT(row + fan <= W.size(1), "rows ", row, "..", row + fan,
                             " beyond the generated ", W.size(1));
    return wn2d(W.narrow(0, 0, co).narrow(1, row, fan)).reshape(p.shape);
  }

  /// Whether parameter `name` is sliced from a maximal tensor of the same name (build() made
  /// those of the transitions and the head).
  bool maximal(const std::string& name) const {
    auto it = index.find(name);
    return it != index.end() && kind[it->second] == kMaximal;
  }

  /// Creates the per-name tensor of `p` if the assembly will need one.
  void needs_per_name(const ParamShape& p) {
    if (!smash_mode) {
      if (p.role != ParamRole::ConvWeight) per_name(p);
      return;
    }
    const auto ln = parse_layer_name(p.node);
    if (ln && p.role == ParamRole::ConvWeight &&
        (ln->rest == "bottleneck" ||
         (ln->rest.size() == 2 && ln->rest[0] == 'c' && ln->rest[1] >= '0' && ln->rest[1] <= '3')))
      return;
    if (!maximal(p.name)) per_name(p);
  }

  // ----- optimiser -----------------------------------------------------------------------

  /// One step of torch.optim.Adam (L2 weight decay added to the gradient) with two groups: the
  /// learned tensors decay by cfg.weight_decay, H's by nothing; learning rate cfg.lr·factor.
  void adam_update(double factor) {
    c10::NoGradGuard no_grad;
    plugins::AdamSettings adam;
    adam.lr = cfg.lr * factor;
    adam.beta1 = cfg.beta1;
    adam.beta2 = cfg.beta2;
    adam.eps = cfg.eps;
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor& p = params[i];
      if (!p.grad().defined()) continue;
      adam.weight_decay = kind[i] == kHyper ? 0.0 : cfg.weight_decay;
      plugins::adam_step(p, p.grad(), adam_m[i], adam_v[i], ++adam_t[i], adam);
      p.mutable_grad() = Tensor();
    }
  }
};

// =============================================================================================

const ParamTable& SmashSurrogate::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("hidden_growth", 10, "growth rate of the hypernetwork's dense layers (authors: 10)",
              1, 1024);
    t.add_string("hidden_layers", "8,10,4",
                 "dense layers per hypernetwork block, comma-separated (authors: 8,10,4)");
    t.add_bool("z", true,
               "feed the noise channel z ~ N(0, 1) to the hypernetwork (false: only the "
               "architecture's encoding)");
    t.add_real("lr", 1e-3, "fit: Adam learning rate of both groups (authors: 1e-3)", 0.0, 10.0);
    t.add_real("beta1", 0.5, "fit: Adam beta1 (authors: 0.5, from DCGAN)", 0.0, 1.0);
    t.add_real("beta2", 0.999, "fit: Adam beta2 (authors: 0.999)", 0.0, 1.0);
    t.add_real("eps", 1e-4, "fit: Adam epsilon (authors: 1e-4)", 0.0, 1.0);
    t.add_real("weight_decay", 1e-4,
               "fit: L2 weight decay of the learned main-network weights; the hypernetwork has "
               "none (authors: 1e-4)",
               0.0, 1.0);
    t.add_bool("cosine", true, "fit: cosine learning rate from lr to 0 over each fit call's steps");
    t.add_bool("anneal_kernels", true,
               "fit: on a smash space, cap the kernel sizes of the sampled architectures, from 3 "
               "to the space's max_kernel at half of the steps (the authors')");
    t.add_int("init_seed", 0, "seed of the initial weights", 0);
    t.add_int("n", 8, "spaces other than smash: N, the rows of one unit group", 1, 1024);
    t.add_int("n_max", 64,
              "spaces other than smash: N_max, the hypernetwork's units (largest conv c_out)", 1,
              4096);
    t.add_int("depth_compression", 4,
              "spaces other than smash: generated rows per grid column, in units of n", 1, 64);
    t.add_int("log_every", 50, "fit: log the mean loss every this many steps", 1).score_neutral();
    return t;
  }();
  return table;
}

SmashSurrogate::SmashSurrogate(const Options& options) : impl_(std::make_unique<Impl>(options)) {}

SmashSurrogate::~SmashSurrogate() = default;

std::uint32_t SmashSurrogate::capabilities() const {
  return kTrainable | kGeneratesWeights | kEncodingConditioned | kNeedsData | kUsesSeed |
         kReadsEvalBatch | kReadsEvalImages;
}

bool SmashSurrogate::built() const { return impl_->has_model; }

const std::vector<double>& SmashSurrogate::loss_curve() const { return impl_->curve; }

const std::vector<std::int64_t>& SmashSurrogate::kernel_curve() const { return impl_->kcurve; }

const Options& SmashSurrogate::options() const { return impl_->options; }

std::vector<std::pair<std::string, at::Tensor>> SmashSurrogate::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t i = 0; i < impl_->params.size(); ++i)
    out.emplace_back(impl_->names[i], impl_->params[i]);
  return out;
}

at::Tensor SmashSurrogate::learned(const std::string& name) const {
  auto it = impl_->index.find(name);
  HYPERNAS_CHECK(it != impl_->index.end(), "smash: the model has no tensor '", name, "'");
  return impl_->params[it->second];
}

WeightMap SmashSurrogate::generate_with(Context& ctx, const Architecture& arch,
                                        const SearchSpace& space, std::uint64_t z_seed,
                                        bool with_grad) {
  const Executor& exec = need_executor(ctx);
  Architecture storage;
  const Architecture& a = plugins::with_graph(arch, &space, storage, "smash");
  impl_->prepare(ctx, space, a);
  const std::vector<ParamShape> shapes = exec.parameters(a);
  if (with_grad) {
    at::AutoGradMode grad(true);
    return impl_->weights(a, space, shapes, z_seed);
  }
  WeightMap w;
  {
    c10::NoGradGuard no_grad;
    w = impl_->weights(a, space, shapes, z_seed);
  }
  for (auto& [name, t] : w) t = t.detach();
  return w;
}

std::pair<at::Tensor, at::Tensor> SmashSurrogate::hyper_io(Context& ctx, const Architecture& arch,
                                                           const SearchSpace& space,
                                                           std::uint64_t z_seed) {
  const Executor& exec = need_executor(ctx);
  Architecture storage;
  const Architecture& a = plugins::with_graph(arch, &space, storage, "smash");
  impl_->prepare(ctx, space, a);
  c10::NoGradGuard no_grad;
  Impl::Input in;
  Tensor W;
  impl_->weights(a, space, exec.parameters(a), z_seed, &in, &W);
  return {in.x, W};
}

WeightMap SmashSurrogate::generate(Context& ctx, const Architecture& arch,
                                   const SearchSpace& space) {
  return generate_with(ctx, arch, space, ctx.rng().next_u64(), false);
}

void SmashSurrogate::fit(Context& ctx, const FitRequest& req) {
  HYPERNAS_CHECK(req.space != nullptr, "smash: fit needs a search space to sample from");
  HYPERNAS_CHECK(req.data != nullptr, "smash: fit needs a dataset");
  HYPERNAS_CHECK(req.batch_size >= 1, "smash: fit expects batch_size >= 1, got ", req.batch_size);
  HYPERNAS_CHECK(req.epochs >= 0, "smash: fit expects epochs >= 0, got ", req.epochs);
  const Executor& exec = need_executor(ctx);
  Impl& m = *impl_;
  const std::int64_t n = req.data->size(Split::Train);
  HYPERNAS_CHECK(n > 0, "smash: dataset '", req.data->name(), "' has an empty train split");
  BatchOptions bo;
  bo.batch_size = req.batch_size;
  bo.shuffle = true;
  bo.augment = true;
  bo.drop_last = n >= req.batch_size;  // equal batches for batch-statistics BN
  const std::int64_t per_epoch = bo.drop_last ? n / req.batch_size : 1;
  std::int64_t total = per_epoch * req.epochs;
  if (req.max_steps > 0) total = std::min(total, req.max_steps);
  if (total <= 0) return;

  const smash::Config* sc = smash_config_of(*req.space);
  Rng& rng = ctx.rng();
  at::AutoGradMode grad_mode(true);
  for (Tensor& p : m.params)
    if (p.grad().defined()) p.mutable_grad() = Tensor();
  auto lr_factor = [&](std::int64_t j) {
    if (!m.cfg.cosine) return 1.0;
    return 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(j) / static_cast<double>(total)));
  };
  auto progress = ctx.progress("smash fit", total);
  std::int64_t step = 0, window_n = 0;
  double window = 0;
  auto t_window = std::chrono::steady_clock::now();
  bool stop = false;
  for (std::int64_t epoch = 0; epoch < req.epochs && step < total && !stop; ++epoch) {
    auto stream = req.data->batches(Split::Train, bo, rng);
    while (step < total && !stop) {
      ctx.check_cancelled();
      std::optional<Batch> batch = stream->next();
      if (!batch) break;
      // A new random architecture every batch; on a smash space its kernels capped as the
      // authors anneal them (their sampler draws kernels up to the current cap; we lower the
      // sampled ones above it instead, which keeps the space's own sampler).
      Architecture arch = req.space->sample(rng);
      std::int64_t cap = 0;
      if (sc && m.cfg.anneal) {
        cap = annealed_kernel_cap(sc->max_kernel, step, total);
        const smash::Arch a = smash::parse(*sc, arch.text);
        const smash::Arch capped = cap_kernels(*sc, a, cap);
        if (!(capped == a)) arch = req.space->parse(smash::print(capped));
      }
      m.prepare(ctx, *req.space, arch);
      const std::int64_t global_step = m.steps + 1;
      const std::vector<ParamShape> shapes = exec.parameters(arch);
      Impl::Input in;
      const WeightMap weights = m.weights(arch, *req.space, shapes, rng.next_u64(), &in);
      const std::vector<Tensor> logits = exec.forward(arch, weights, batch->images);
      HYPERNAS_CHECK(!logits.empty(), "smash: the executor returned no output for '",
                     abbreviate(arch.text), "'");
      const Tensor loss = at::cross_entropy_loss(logits.back(), batch->labels);
      const double value = loss.item<double>();
      HYPERNAS_CHECK(std::isfinite(value), "smash: fit step ", global_step, " (epoch ", epoch + 1,
                     "): the loss is ", value, " on architecture '", abbreviate(arch.text),
                     "' of space '", arch.space, "' (try a smaller lr, or check the data)");
      loss.backward();
      const double factor = lr_factor(step);
      m.adam_update(factor);
      ++m.steps;
      m.curve.push_back(value);
      m.kcurve.push_back(in.max_kernel);
      ++step;
      window += value;
      ++window_n;
      progress->advance(1, cat("loss ", value));
      if (step % m.cfg.log_every == 0 || step == total) {
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
        ctx.log().info(cat("step ", step, "/", total, ": mean loss ", window / window_n,
                           " over the last ", window_n, " steps (", secs / window_n, " s/step)",
                           cap ? cat(", kernels up to ", cap) : std::string()));
        window = 0;
        window_n = 0;
        t_window = std::chrono::steady_clock::now();
      }
      if (!ctx.notify("fit_step", {{"step", static_cast<double>(global_step)},
                                   {"loss", value},
                                   {"lr", m.cfg.lr * factor},
                                   {"max_kernel", static_cast<double>(in.max_kernel)}})) {
        ctx.log().info(cat("fit stopped by the script's callback after step ", step));
        stop = true;
      }
    }
  }
  progress->finish();
}

std::vector<Score> SmashSurrogate::score(Context& ctx, const ScoreRequest& req) {
  HYPERNAS_CHECK(req.space != nullptr,
                 "smash: score needs the search space (its encoding of each architecture)");
  HYPERNAS_CHECK(req.data != nullptr, "smash: score needs a dataset (its valid split)");
  HYPERNAS_CHECK(req.seeds.size() == req.archs.size(), "smash: score got ", req.seeds.size(),
                 " seeds for ", req.archs.size(), " architectures (one each: z is drawn from it)");
  const Executor& exec = need_executor(ctx);
  Impl& m = *impl_;
  c10::NoGradGuard no_grad;

  const plugins::ValidationBatches valid(req, "smash");
  std::vector<Score> out;
  for (std::size_t i = 0; i < req.archs.size(); ++i) {
    ctx.check_cancelled();
    HYPERNAS_CHECK(req.archs[i] != nullptr, "smash: score got a null architecture");
    Architecture storage;
    const Architecture& arch = plugins::with_graph(*req.archs[i], req.space, storage, "smash");
    m.prepare(ctx, *req.space, arch);
    const WeightMap weights = m.weights(arch, *req.space, exec.parameters(arch), req.seeds[i]);
    out.push_back(
        valid.accuracy([&](const Tensor& images) { return exec.forward(arch, weights, images); },
                       abbreviate(arch.text)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// State

std::string SmashSurrogate::save_state() const {
  const Impl& m = *impl_;
  plugins::BlobWriter w;
  w.str(model_signature(m.options));
  w.str(m.options.canonical());
  w.pod<std::uint8_t>(m.has_model ? 1 : 0);
  if (m.has_model) {
    w.pod<std::uint8_t>(m.smash_mode ? 1 : 0);
    w.str(m.space_name);
    w.str(m.space_fp);
    for (std::int64_t v : {m.in_ch, m.N, m.N_max, m.dc, m.enc_numel}) w.pod<std::int64_t>(v);
    w.pod<std::uint64_t>(m.params.size());
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      w.str(m.names[i]);
      w.pod<std::uint8_t>(m.kind[i]);
      w.float_tensor(m.params[i]);
      w.pod<std::int64_t>(m.adam_t[i]);
      w.pod<std::uint8_t>(m.adam_m[i].defined() ? 1 : 0);
      if (m.adam_m[i].defined()) {
        w.float_tensor(m.adam_m[i]);
        w.float_tensor(m.adam_v[i]);
      }
    }
  }
  w.pod<std::int64_t>(m.steps);
  w.pod<std::uint64_t>(m.curve.size());
  for (std::size_t i = 0; i < m.curve.size(); ++i) {
    w.pod<double>(m.curve[i]);
    w.pod<std::int64_t>(i < m.kcurve.size() ? m.kcurve[i] : 0);
  }
  return plugins::seal_blob(kBlobFormat, w.data());
}

void SmashSurrogate::load_state(const std::string& blob) {
  Impl& m = *impl_;
  plugins::BlobReader r(plugins::open_blob(kBlobFormat, blob).payload, "smash");
  const std::string signature = r.str("the model options");
  (void)r.str("the options");
  const std::string mine = model_signature(m.options);
  HYPERNAS_CHECK(signature == mine,
                 "smash: the state was saved by a smash surrogate with model options ", signature,
                 ", this one has ", mine, "; create the surrogate with the saved options");
  const bool has_model = r.pod<std::uint8_t>("the model flag") != 0;
  bool smash_mode = false;
  std::string space_name, space_fp;
  std::int64_t geo[5] = {0, 0, 0, 0, 0};
  std::vector<std::string> names;
  std::vector<std::uint8_t> kinds;
  std::vector<Tensor> params, am, av;
  std::vector<std::int64_t> at_;
  if (has_model) {
    smash_mode = r.pod<std::uint8_t>("the space kind") != 0;
    space_name = r.str("the space name");
    space_fp = r.str("the space fingerprint");
    for (std::int64_t& v : geo) v = r.pod<std::int64_t>("the model geometry");
    const std::uint64_t count = r.pod<std::uint64_t>("the tensor count");
    r.check(count <= r.size(), count, " tensors");
    for (std::uint64_t i = 0; i < count; ++i) {
      names.push_back(r.str("a tensor name"));
      kinds.push_back(r.pod<std::uint8_t>("a tensor kind"));
      r.check(kinds.back() <= kPerName, "tensor '", names.back(), "' has kind ",
              static_cast<int>(kinds.back()));
      params.push_back(r.float_tensor(names.back()));
      at_.push_back(r.pod<std::int64_t>("an Adam step"));
      if (r.pod<std::uint8_t>("the Adam flag")) {
        am.push_back(r.float_tensor("adam.m." + names.back()));
        av.push_back(r.float_tensor("adam.v." + names.back()));
        r.check(am.back().sizes() == params.back().sizes() &&
                    av.back().sizes() == params.back().sizes(),
                "the Adam moments of '", names.back(), "' have the wrong shape");
      } else {
        am.emplace_back();
        av.emplace_back();
      }
    }
  }
  const std::int64_t steps = r.pod<std::int64_t>("the step counter");
  const std::uint64_t curve_n = r.pod<std::uint64_t>("the loss curve length");
  r.check(curve_n <= r.size() / (sizeof(double) + 8), "loss curve of ", curve_n, " values");
  std::vector<double> curve;
  std::vector<std::int64_t> kcurve;
  for (std::uint64_t i = 0; i < curve_n; ++i) {
    curve.push_back(r.pod<double>("the loss curve"));
    kcurve.push_back(r.pod<std::int64_t>("the kernel curve"));
  }
  r.finish("the loss curve");

  if (has_model) {
    // H must be what these options build for the saved input channels.
    const HyperLayout hl =
        hyper_layout(geo[0], m.cfg.growth, m.cfg.layers, geo[1] * geo[1] * geo[3]);
    r.check(names.size() >= hl.convs.size(), names.size(), " tensors, fewer than H's ",
            hl.convs.size(), " convs");
    for (std::size_t i = 0; i < hl.convs.size(); ++i) {
      const auto& c = hl.convs[i];
      r.check(names[i] == cat("hyper.", i, ".weight") && kinds[i] == kHyper &&
                  params[i].sizes() == at::IntArrayRef({c.out, c.in, c.kernel, c.kernel}),
              "tensor ", i, " ('", names[i], "', ", shape_text(params[i].sizes()),
              ") is not H's conv ", i, " [", c.out, ", ", c.in, ", ", c.kernel, ", ", c.kernel,
              "]");
    }
  }
  if (m.has_model && has_model &&
      (space_name != m.space_name || space_fp != m.space_fp || geo[0] != m.in_ch)) {
    throw Error(cat("smash: the state was built for space '", space_name, "' (", space_fp, ", ",
                    geo[0], " input channels), but this surrogate's model belongs to ", m.where(),
                    ", ", m.in_ch,
                    " input channels; load it into a surrogate used with the "
                    "space it was trained on"));
  }
  // Everything checked: commit.
  m.has_model = has_model;
  m.names.clear();
  m.params.clear();
  m.kind.clear();
  m.index.clear();
  m.adam_m.clear();
  m.adam_v.clear();
  m.adam_t.clear();
  if (has_model) {
    m.smash_mode = smash_mode;
    m.space_name = space_name;
    m.space_fp = space_fp;
    m.in_ch = geo[0];
    m.N = geo[1];
    m.N_max = geo[2];
    m.dc = geo[3];
    m.enc_numel = geo[4];
    m.hl = hyper_layout(m.in_ch, m.cfg.growth, m.cfg.layers, m.N * m.N * m.dc);
    const at::Device d = m.device;
    m.device = at::kCPU;
    for (std::size_t i = 0; i < names.size(); ++i) {
      m.add(names[i], params[i], kinds[i]);
      m.adam_m[i] = am[i];
      m.adam_v[i] = av[i];
      m.adam_t[i] = at_[i];
    }
    m.to_device(d);
  }
  m.steps = steps;
  m.curve = std::move(curve);
  m.kcurve = std::move(kcurve);
}

}  // namespace hypernas
