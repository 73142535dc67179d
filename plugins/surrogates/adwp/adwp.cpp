/// @file adwp.cpp
/// @brief The ADWP HyperNetwork: the split of a relaxed network's parameters into generated and
/// learned ones, the GeneratingBlocks, Stage-1 training, scoring, and the state blob. ATen only
/// (no <torch/torch.h>): parameters are plain tensors and SGD is ../common/optim.h's, so the
/// same code builds against LibTorch 1.13 and 2.x.

#include <algorithm>
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
#include "adwp.h"

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

}  // namespace

// =============================================================================================
// Layout, counts, fingerprint

namespace adwp {

ModelLayout layout(const Relaxation& relaxation, const std::vector<ParamShape>& params) {
  ModelLayout out;
  for (const ArchParamSpec& b : relaxation.blocks) out.block_sizes.push_back(numel(b.shape));
  // Branch node -> its mix (index into relaxation.mixes).
  std::map<std::string, std::int64_t> branch_of;
  for (std::size_t m = 0; m < relaxation.mixes.size(); ++m) {
    const MixChoice& mix = relaxation.mixes[m];
    HYPERNAS_CHECK(mix.block >= 0 && mix.block < static_cast<std::int64_t>(out.block_sizes.size()),
                   "adwp: mix node '", mix.node, "' reads arch-parameter block ", mix.block,
                   ", but the relaxation has ", out.block_sizes.size(), " blocks");
    for (const std::string& node : mix.nodes) {
      auto [it, fresh] = branch_of.emplace(node, static_cast<std::int64_t>(m));
      HYPERNAS_CHECK(fresh ||
                         relaxation.mixes[static_cast<std::size_t>(it->second)].block == mix.block,
                     "adwp: node '", node, "' belongs to the branches of mix nodes '",
                     relaxation.mixes[static_cast<std::size_t>(it->second)].node, "' and '",
                     mix.node, "', which read different arch-parameter blocks");
    }
  }
  for (const ParamShape& p : params) {
    auto it = branch_of.find(p.node);
    if (it != branch_of.end() && p.role == ParamRole::ConvWeight) {
      HYPERNAS_CHECK(p.shape.size() == 4, "adwp: conv weight '", p.name, "' has shape ",
                     shape_text(p.shape), ", expected [c_out, c_in/groups, k, k]");
      GeneratedParam g;
      g.name = p.name;
      g.node = p.node;
      g.shape = p.shape;
      g.fan_out = p.fan_out > 0 ? p.fan_out : p.shape[0] * p.shape[2] * p.shape[3];
      g.mix = it->second;
      g.block = relaxation.mixes[static_cast<std::size_t>(it->second)].block;
      out.generated.push_back(std::move(g));
    } else {
      out.learned.push_back(p);
      out.learned_in_branch.push_back(it != branch_of.end());
    }
  }
  return out;
}

Count ParameterCounts::learned_total() const {
  Count c;
  for (const auto& [part, n] : learned) {
    c.tensors += n.tensors;
    c.values += n.values;
  }
  return c;
}

ParameterCounts count_parameters(const ModelLayout& layout, std::int64_t hidden) {
  ParameterCounts c;
  for (const GeneratedParam& g : layout.generated) {
    const std::int64_t in = layout.block_sizes.at(static_cast<std::size_t>(g.block));
    const std::int64_t out = numel(g.shape);
    c.generated.tensors += 1;
    c.generated.values += out;
    c.blocks.tensors += 1;
    c.blocks.values += hidden * in + hidden + out * hidden + out;
  }
  for (std::size_t i = 0; i < layout.learned.size(); ++i) {
    const ParamShape& p = layout.learned[i];
    const bool bn = p.role == ParamRole::BnWeight || p.role == ParamRole::BnBias;
    std::string part;
    if (layout.learned_in_branch[i]) part = bn ? "branch bn" : "branch other";
    else if (p.role == ParamRole::ConvWeight) part = "conv";
    else if (bn) part = "bn";
    else if (p.role == ParamRole::LinearWeight || p.role == ParamRole::LinearBias) part = "linear";
    else part = "other";
    c.learned[part].tensors += 1;
    c.learned[part].values += numel(p.shape);
  }
  return c;
}

std::string fingerprint(const Relaxation& relaxation, const std::vector<ParamShape>& params) {
  std::uint64_t h = fnv1a64(relaxation.network.text);
  auto add = [&h](const std::string& s) { h = fnv1a64(s + "\n", h); };
  for (const ParamShape& p : params) add(cat("p ", p.name, " ", shape_text(p.shape)));
  for (const MixChoice& m : relaxation.mixes)
    add(cat("m ", m.node, " ", m.block, " ", m.row, " ", m.col, " ", m.nodes.size()));
  for (const ArchParamSpec& b : relaxation.blocks) add(cat("b ", b.name, " ", shape_text(b.shape)));
  return hex64(h);
}

}  // namespace adwp

namespace {

// =============================================================================================
// Options

/// The resolved options, typed (AdwpSurrogate::params() declares them).
struct Config {
  std::int64_t hidden;
  bool relu;
  double alpha_std;
  double lr;
  double momentum;
  double weight_decay;
  bool cosine;
  double onehot_prob;
  std::int64_t init_seed;
  at::ScalarType dtype;

  explicit Config(const Options& o)
      : hidden(o.get_int("hidden")),
        relu(o.get_string("activation") == "relu"),
        alpha_std(o.get_real("alpha_std")),
        lr(o.get_real("lr")),
        momentum(o.get_real("momentum")),
        weight_decay(o.get_real("weight_decay")),
        cosine(o.get_bool("cosine")),
        onehot_prob(o.get_real("onehot_prob")),
        init_seed(o.get_int("init_seed")),
        dtype(o.get_string("dtype") == "double" ? at::kDouble : at::kFloat) {}
};

/// Options that define the model: a state saved with other values cannot be loaded.
const char* const kModelKeys[] = {"hidden", "activation"};

std::string model_signature(const Options& o) {
  std::string out;
  for (const char* key : kModelKeys)
    out += cat(out.empty() ? "" : ",", key, "=", to_string(o.at(key)));
  return out;
}

const Executor& need_executor(Context& ctx) {
  const Executor* e = ctx.executor();
  HYPERNAS_CHECK(e != nullptr,
                 "adwp: this kernel has no graph executor; the adwp surrogate needs one to run "
                 "the relaxed network with generated weights");
  return *e;
}

/// Mean cross-entropy of `logits` [N, K] against `labels` [N].
Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  return at::nll_loss(at::log_softmax(logits, 1), labels);
}

// =============================================================================================
// The state blob

/// The format version of ADWP states (open_blob() reads 1..kFormatVersion).
constexpr std::uint32_t kFormatVersion = 1;
/// The envelope of ADWP states (../../common/state_blob.h), checksummed from FNV's offset basis.
/// The payload: the model signature, the options, and, when there is a model, the relaxation it
/// belongs to, its layout and its tensors (each in its own precision), then the loss curve.
constexpr plugins::BlobFormat kBlobFormat{"adwp", "an ADWP state blob", "HNAS.ADW", kFormatVersion};

/// The next tensor of `r`, which must have the shape `expected` (the layout's for `name`).
Tensor read_tensor(plugins::BlobReader& r, const std::string& name,
                   const std::vector<std::int64_t>& expected) {
  Tensor t = r.tagged_tensor(name);
  r.check(t.sizes() == at::IntArrayRef(expected), "tensor '", name, "' has shape ",
          shape_text(t.sizes()), ", its layout says ", shape_text(expected));
  return t;
}

// ---------------------------------------------------------------------------------------------

/// (name, shape) of every parameter of a layout, by name.
std::map<std::string, std::vector<std::int64_t>> shapes_of(const adwp::ModelLayout& l) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& g : l.generated) out[g.name] = g.shape;
  for (const auto& p : l.learned) out[p.name] = p.shape;
  return out;
}

/// What differs between the parameters of two layouts, in words ("" when nothing does).
std::string describe_difference(const adwp::ModelLayout& there, const adwp::ModelLayout& here) {
  const auto a = shapes_of(there);
  const auto b = shapes_of(here);
  std::int64_t only_there = 0, only_here = 0, reshaped = 0;
  std::string first;
  for (const auto& [name, shape] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ++only_there;
      if (first.empty()) first = cat("'", name, "' exists only there");
    } else if (it->second != shape) {
      ++reshaped;
      if (first.empty())
        first =
            cat("'", name, "' is ", shape_text(shape), " there, ", shape_text(it->second), " here");
    }
  }
  for (const auto& [name, shape] : b)
    if (!a.count(name)) {
      ++only_here;
      if (first.empty()) first = cat("'", name, "' exists only here");
    }
  if (!only_there && !only_here && !reshaped) {
    if (there.generated.size() != here.generated.size())
      return cat(there.generated.size(), " generated conv weights there, ", here.generated.size(),
                 " here");
    return "the parameters agree, but the networks' texts or mixes differ";
  }
  return cat(a.size(), " parameters there, ", b.size(), " here; ", reshaped, " differ in shape, ",
             only_there, " exist only there, ", only_here, " only here (first: ", first, ")");
}

}  // namespace

// =============================================================================================

struct AdwpSurrogate::Impl {
  Options options;
  Config cfg;
  at::Device device{at::kCPU};

  /// One GeneratingBlock: FC1 [hidden, in] + [hidden], FC2 [out, hidden] + [out].
  struct Block {
    Tensor w1, b1, w2, b2;
  };

  // ----- the model (exists once built for a space or loaded) --------------------------------
  bool has_model = false;
  std::string fp;           ///< adwp::fingerprint() of the relaxation it belongs to.
  std::string space_name;   ///< The space it was built for.
  std::string net_excerpt;  ///< The start of that relaxed network's text (for messages).
  adwp::ModelLayout lay;
  std::vector<Block> blocks;    ///< Parallel to lay.generated.
  std::vector<Tensor> learned;  ///< Parallel to lay.learned.
  std::vector<double> curve;    ///< Loss of every fit step.

  /// The relaxation of the last prepare() (its fingerprint is fp).
  std::unique_ptr<Relaxation> relax;

  explicit Impl(const Options& o) : options(o), cfg(o) {}

  // ----- building -----------------------------------------------------------------------

  void build(const Relaxation& r, const std::vector<ParamShape>& params, const Executor& exec,
             const std::string& fingerprint, const std::string& space) {
    adwp::ModelLayout l = adwp::layout(r, params);
    const WeightMap init =
        exec.init_weights(r.network, static_cast<std::uint64_t>(cfg.init_seed), at::kCPU);
    at::Generator gen =
        at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.init_seed) ^ 0xAD3F0C0DEull);
    c10::NoGradGuard no_grad;
    std::vector<Block> bs;
    for (const adwp::GeneratedParam& g : l.generated) {
      const std::int64_t in = l.block_sizes.at(static_cast<std::size_t>(g.block));
      const std::int64_t out = numel(g.shape);
      HYPERNAS_CHECK(in > 0, "adwp: arch-parameter block ", g.block, " read by '", g.name,
                     "' is empty");
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      const double sigma =
          std::sqrt(2.0 / static_cast<double>(std::max<std::int64_t>(1, g.fan_out)));
      Block b;
      b.w1 = at::empty({cfg.hidden, in}, at::kFloat).uniform_(-bound, bound, gen);
      b.b1 = at::empty({cfg.hidden}, at::kFloat).uniform_(-bound, bound, gen);
      b.w2 = at::empty({out, cfg.hidden}, at::kFloat).normal_(0.0, 0.1 * sigma, gen);
      auto it = init.find(g.name);
      HYPERNAS_INTERNAL_ASSERT(it != init.end(), "init_weights() lacks '", g.name, "'");
      b.b2 = it->second.detach().reshape({out}).clone();
      bs.push_back(std::move(b));
    }
    std::vector<Tensor> ls;
    for (const ParamShape& p : l.learned) {
      auto it = init.find(p.name);
      HYPERNAS_INTERNAL_ASSERT(it != init.end(), "init_weights() lacks '", p.name, "'");
      ls.push_back(it->second.detach().clone());
    }
    lay = std::move(l);
    blocks = std::move(bs);
    learned = std::move(ls);
    fp = fingerprint;
    space_name = space;
    net_excerpt = abbreviate(r.network.text, 160);
    curve.clear();
    has_model = true;
    device = at::kCPU;
    settle(cfg.dtype, at::kCPU);
  }

  /// Every tensor as a leaf of `dtype` on `d`, requiring grad.
  void settle(at::ScalarType dtype, const at::Device& d) {
    auto fix = [&](Tensor& t) { t = t.detach().to(d, dtype).requires_grad_(true); };
    for (Block& b : blocks) {
      fix(b.w1);
      fix(b.b1);
      fix(b.w2);
      fix(b.b2);
    }
    for (Tensor& t : learned) fix(t);
    device = d;
  }

  void to_device(const at::Device& d) {
    if (d != device) settle(cfg.dtype, d);
  }

  std::vector<Tensor*> all_tensors() {
    std::vector<Tensor*> out;
    for (Block& b : blocks)
      for (Tensor* t : {&b.w1, &b.b1, &b.w2, &b.b2}) out.push_back(t);
    for (Tensor& t : learned) out.push_back(&t);
    return out;
  }

  std::string where() const {
    return cat("space '", space_name, "' (relaxed network \"", net_excerpt, "\", fingerprint ", fp,
               ")");
  }

  // ----- generation ---------------------------------------------------------------------

  /// GeneratingBlock k on the flattened probabilities of its block.
  Tensor generate_one(std::size_t k, const Tensor& p_flat) const {
    const Block& b = blocks[k];
    Tensor h = at::addmv(b.b1, b.w1, p_flat);
    if (cfg.relu) h = at::relu(h);
    return at::addmv(b.b2, b.w2, h).view(lay.generated[k].shape);
  }

  /// `probs` (one per block) on the model's device and precision, checked against the blocks.
  std::vector<Tensor> model_probs(const std::vector<Tensor>& probs, const char* what) const {
    HYPERNAS_CHECK(probs.size() == relax->blocks.size(), "adwp: ", what, ": got ", probs.size(),
                   " tensors, but ", where(), " has ", relax->blocks.size(),
                   " arch-parameter blocks");
    std::vector<Tensor> out;
    for (std::size_t b = 0; b < probs.size(); ++b) {
      const ArchParamSpec& spec = relax->blocks[b];
      HYPERNAS_CHECK(probs[b].defined(), "adwp: ", what, ": the tensor of block ", b, " ('",
                     spec.name, "') is undefined");
      HYPERNAS_CHECK(probs[b].sizes() == at::IntArrayRef(spec.shape), "adwp: ", what,
                     ": the tensor of block ", b, " ('", spec.name, "') has shape ",
                     shape_text(probs[b].sizes()), ", expected ", shape_text(spec.shape));
      out.push_back(probs[b].to(device, cfg.dtype));
    }
    return out;
  }

  /// The relaxed network's weights for probabilities `probs` (model_probs()); learned weights
  /// as the leaves themselves (`leaves`, for training) or as constants.
  WeightMap relaxed(const std::vector<Tensor>& probs, bool skip_dead, bool leaves) const {
    std::vector<Tensor> flat, cpu;
    for (const Tensor& p : probs) {
      flat.push_back(p.reshape({-1}));
      if (skip_dead) cpu.push_back(p.detach().to(at::kCPU, at::kDouble).contiguous());
    }
    WeightMap out;
    for (std::size_t k = 0; k < lay.generated.size(); ++k) {
      const adwp::GeneratedParam& g = lay.generated[k];
      if (skip_dead) {
        const MixChoice& m = relax->mixes[static_cast<std::size_t>(g.mix)];
        if (cpu[static_cast<std::size_t>(m.block)][m.row][m.col].item<double>() == 0.0) continue;
      }
      out.emplace(g.name, generate_one(k, flat[static_cast<std::size_t>(g.block)]));
    }
    for (std::size_t i = 0; i < lay.learned.size(); ++i)
      out.emplace(lay.learned[i].name, leaves ? learned[i] : learned[i].detach());
    return out;
  }

  /// The weights of the discrete `arch` located by `sel` (see AdwpSurrogate::generate()).
  WeightMap discrete(const Executor& exec, const Architecture& arch, const Selection& sel) const {
    const std::vector<Tensor> probs = model_probs(sel.probs, "select()'s probabilities");
    std::vector<Tensor> flat;
    for (const Tensor& p : probs) flat.push_back(p.reshape({-1}));
    std::map<std::string, std::size_t> gen_index, learned_index;
    for (std::size_t k = 0; k < lay.generated.size(); ++k) gen_index[lay.generated[k].name] = k;
    for (std::size_t i = 0; i < lay.learned.size(); ++i) learned_index[lay.learned[i].name] = i;
    WeightMap out;
    for (const ParamShape& p : exec.parameters(arch)) {
      auto node = sel.names.find(p.node);
      HYPERNAS_CHECK(node != sel.names.end(), "adwp: space '", space_name,
                     "' located architecture '", abbreviate(arch.text),
                     "' in its relaxed network without naming node '", p.node, "'");
      HYPERNAS_INTERNAL_ASSERT(p.name.compare(0, p.node.size(), p.node) == 0, "parameter '", p.name,
                               "' is not named after its node '", p.node, "'");
      const std::string name = node->second + p.name.substr(p.node.size());
      Tensor t;
      if (auto g = gen_index.find(name); g != gen_index.end()) {
        const std::size_t k = g->second;
        t = generate_one(k, flat[static_cast<std::size_t>(lay.generated[k].block)]);
      } else if (auto l = learned_index.find(name); l != learned_index.end()) {
        t = learned[l->second].detach();
      } else {
        throw Error(cat("adwp: parameter '", p.name, "' of architecture '", abbreviate(arch.text),
                        "' maps to '", name, "', which the relaxed network of ", where(),
                        " does not have"));
      }
      HYPERNAS_CHECK(t.sizes() == at::IntArrayRef(p.shape), "adwp: parameter '", p.name,
                     "' of architecture '", abbreviate(arch.text), "' has shape ",
                     shape_text(p.shape), ", but its relaxed counterpart '", name, "' has ",
                     shape_text(t.sizes()));
      out.emplace(p.name, t);
    }
    return out;
  }
};

// =============================================================================================

const ParamTable& AdwpSurrogate::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("hidden", 64, "width of each GeneratingBlock's first FC layer (the paper: 64)", 1,
              4096);
    t.add_string("activation", "none",
                 "between a GeneratingBlock's two FC layers: none (the paper names none) or relu",
                 {"none", "relu"});
    t.add_real("alpha_std", 1.0,
               "fit: the random architecture parameters of each step are N(0, alpha_std^2)", 0.0,
               100.0);
    t.add_real("lr", 0.025, "fit: SGD learning rate of the GeneratingBlocks and learned weights",
               0.0, 10.0);
    t.add_real("momentum", 0.9, "fit: SGD momentum", 0.0, 1.0);
    t.add_real("weight_decay", 3e-4, "fit: L2 weight decay on every trainable tensor", 0.0, 1.0);
    t.add_bool("cosine", true, "fit: anneal the learning rate to 0 over each fit call's steps");
    t.add_real("onehot_prob", 0.0,
               "fit: fraction of steps that train a random discrete architecture of the space "
               "(its one-hot probabilities) instead of random alphas (0: the paper)",
               0.0, 1.0);
    t.add_int("init_seed", 0, "seed of the initial weights", 0);
    t.add_string("dtype", "float",
                 "precision of the GeneratingBlocks and learned weights (double: gradient checks; "
                 "images are converted)",
                 {"float", "double"});
    return t;
  }();
  return table;
}

AdwpSurrogate::AdwpSurrogate(const Options& options) : impl_(std::make_unique<Impl>(options)) {}

AdwpSurrogate::~AdwpSurrogate() = default;

std::uint32_t AdwpSurrogate::capabilities() const {
  return kTrainable | kGeneratesWeights | kArchGradient | kNeedsData | kReadsEvalBatch |
         kReadsEvalImages;
}

bool AdwpSurrogate::built() const { return impl_->has_model; }

const adwp::ModelLayout& AdwpSurrogate::model_layout() const {
  HYPERNAS_CHECK(impl_->has_model,
                 "adwp: the model is not built yet (no fit, generate, score or load_state so far)");
  return impl_->lay;
}

const std::vector<double>& AdwpSurrogate::loss_curve() const { return impl_->curve; }

const Options& AdwpSurrogate::options() const { return impl_->options; }

std::vector<std::pair<std::string, at::Tensor>> AdwpSurrogate::named_parameters() const {
  const Impl& m = *impl_;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t k = 0; k < m.blocks.size(); ++k) {
    const std::string& n = m.lay.generated[k].name;
    out.emplace_back(n + ".gb.fc1.weight", m.blocks[k].w1);
    out.emplace_back(n + ".gb.fc1.bias", m.blocks[k].b1);
    out.emplace_back(n + ".gb.fc2.weight", m.blocks[k].w2);
    out.emplace_back(n + ".gb.fc2.bias", m.blocks[k].b2);
  }
  for (std::size_t i = 0; i < m.learned.size(); ++i)
    out.emplace_back(m.lay.learned[i].name, m.learned[i]);
  return out;
}

std::vector<at::Tensor> AdwpSurrogate::relaxed_parameters() {
  std::vector<at::Tensor> out;
  for (const Impl::Block& b : impl_->blocks)
    for (const Tensor& t : {b.w1, b.b1, b.w2, b.b2}) out.push_back(t);
  return out;
}

const Relaxation& AdwpSurrogate::prepare(Context& ctx, const SearchSpace& space) {
  Impl& m = *impl_;
  const Executor& exec = need_executor(ctx);
  auto r = std::make_unique<Relaxation>(space.relaxed());
  const std::vector<ParamShape> params = exec.parameters(r->network);
  const std::string fp = adwp::fingerprint(*r, params);
  if (!m.has_model) {
    m.build(*r, params, exec, fp, space.name());
  } else if (fp != m.fp) {
    throw Error(cat("adwp: this surrogate's model belongs to the relaxed network of ", m.where(),
                    ", but space '", space.name(), "' gives \"", abbreviate(r->network.text, 160),
                    "\" (fingerprint ", fp,
                    "): ", describe_difference(m.lay, adwp::layout(*r, params)),
                    ". A model trained on one space, network size or intensive space does not "
                    "apply to another: use the space it was trained on, or a new adwp surrogate"));
  }
  m.to_device(ctx.device());
  m.relax = std::move(r);
  return *m.relax;
}

WeightMap AdwpSurrogate::relaxed_weights(Context& ctx, const SearchSpace& space,
                                         const std::vector<at::Tensor>& probs, bool skip_dead) {
  prepare(ctx, space);
  return impl_->relaxed(impl_->model_probs(probs, "relaxed_weights()"), skip_dead, false);
}

WeightMap AdwpSurrogate::generate_relaxed(Context& ctx, const SearchSpace& space,
                                          const std::vector<at::Tensor>& alphas) {
  prepare(ctx, space);
  Impl& m = *impl_;
  std::vector<Tensor> probs;
  for (const Tensor& a : m.model_probs(alphas, "generate_relaxed()'s alphas"))
    probs.push_back(at::softmax(a, -1));
  return m.relaxed(probs, false, false);
}

WeightMap AdwpSurrogate::generate(Context& ctx, const Architecture& arch,
                                  const SearchSpace& space) {
  const Executor& exec = need_executor(ctx);
  prepare(ctx, space);
  Architecture storage;
  const Architecture& a = plugins::with_graph(arch, &space, storage, "adwp");
  const Selection sel = space.select(a);
  c10::NoGradGuard no_grad;
  return impl_->discrete(exec, a, sel);
}

void AdwpSurrogate::fit(Context& ctx, const FitRequest& req) {
  HYPERNAS_CHECK(req.space != nullptr, "adwp: fit needs the search space (its relaxed network)");
  HYPERNAS_CHECK(req.data != nullptr, "adwp: fit needs a dataset");
  HYPERNAS_CHECK(req.batch_size >= 1, "adwp: fit expects batch_size >= 1, got ", req.batch_size);
  HYPERNAS_CHECK(req.epochs >= 0, "adwp: fit expects epochs >= 0, got ", req.epochs);
  const Executor& exec = need_executor(ctx);
  const Relaxation& relax = prepare(ctx, *req.space);
  Impl& m = *impl_;
  const std::int64_t n = req.data->size(Split::Train);
  HYPERNAS_CHECK(n > 0, "adwp: dataset '", req.data->name(), "' has an empty train split");
  BatchOptions bo;
  bo.batch_size = req.batch_size;
  bo.shuffle = true;
  bo.augment = true;
  bo.drop_last = n >= req.batch_size;  // equal batches for batch-statistics BN
  const std::int64_t per_epoch = bo.drop_last ? n / req.batch_size : 1;
  std::int64_t total = per_epoch * req.epochs;
  if (req.max_steps > 0) total = std::min(total, req.max_steps);
  if (total <= 0) return;

  at::AutoGradMode grad_mode(true);
  std::vector<Tensor> params;
  for (Tensor* t : m.all_tensors()) {
    if (t->grad().defined()) t->mutable_grad() = Tensor();  // left by a gradient strategy
    params.push_back(*t);  // the same tensors: SGD updates them in place
  }
  std::vector<Tensor> velocity;

  Rng& rng = ctx.rng();
  at::Generator alpha_gen = at::detail::createCPUGenerator(rng.next_u64());
  Rng arch_rng = rng.fork(0xAD3);
  // The learning rate of step `t` (0-based) of this fit's `total`: cosine from lr to 0.
  auto lr_at = [&](std::int64_t t) {
    if (!m.cfg.cosine) return m.cfg.lr;
    return m.cfg.lr * 0.5 *
           (1.0 + std::cos(M_PI * static_cast<double>(t) / static_cast<double>(total)));
  };
  auto progress = ctx.progress("adwp fit", total);
  std::int64_t step = 0;
  bool stop = false;
  for (std::int64_t epoch = 0; epoch < req.epochs && step < total && !stop; ++epoch) {
    auto stream = req.data->batches(Split::Train, bo, rng);
    double epoch_loss = 0;
    std::int64_t epoch_steps = 0, epoch_onehot = 0;
    while (step < total && !stop) {
      ctx.check_cancelled();
      std::optional<Batch> batch = stream->next();
      if (!batch) break;
      const std::int64_t global_step = static_cast<std::int64_t>(m.curve.size()) + 1;
      // The step's probabilities: softmax of random alphas, or a random architecture's one-hot.
      const bool onehot = m.cfg.onehot_prob > 0 && arch_rng.uniform() < m.cfg.onehot_prob;
      std::vector<Tensor> probs;
      std::string arch_text;
      if (onehot) {
        const Architecture arch = req.space->sample(arch_rng);
        arch_text = arch.text;
        probs = m.model_probs(req.space->select(arch).probs, "select()'s probabilities");
        ++epoch_onehot;
      } else {
        for (const ArchParamSpec& b : relax.blocks) {
          const Tensor alpha = at::randn(b.shape, alpha_gen, at::kFloat) * m.cfg.alpha_std;
          probs.push_back(at::softmax(alpha.to(m.device, m.cfg.dtype), -1));
        }
      }
      const WeightMap weights = m.relaxed(probs, onehot, /*leaves=*/true);
      Tensor images = batch->images;
      if (images.scalar_type() != m.cfg.dtype) images = images.to(m.cfg.dtype);
      const std::vector<Tensor> logits = exec.forward_relaxed(relax, weights, probs, images);
      HYPERNAS_CHECK(!logits.empty(),
                     "adwp: the executor returned no output for the relaxed network of ",
                     m.where());
      const Tensor loss = cross_entropy(logits.back(), batch->labels);
      const double value = loss.item<double>();
      HYPERNAS_CHECK(std::isfinite(value), "adwp: fit step ", global_step, " (epoch ", epoch + 1,
                     ", step ", step + 1, " of this fit): the loss is ", value,
                     onehot ? cat(" on architecture '", abbreviate(arch_text), "'")
                            : std::string(" with random alphas"),
                     " (try a smaller lr, or check the data)");
      loss.backward();
      const double lr = lr_at(step);
      plugins::sgd_step(params, velocity, {lr, m.cfg.momentum, false, m.cfg.weight_decay});
      m.curve.push_back(value);
      ++step;
      epoch_loss += value;
      ++epoch_steps;
      progress->advance(1, cat("loss ", value));
      if (!ctx.notify("fit_step", {{"step", static_cast<double>(global_step)},
                                   {"loss", value},
                                   {"lr", lr},
                                   {"epoch", static_cast<double>(epoch + 1)},
                                   {"onehot", onehot ? 1.0 : 0.0}})) {
        ctx.log().info(cat("fit stopped by the script's callback after step ", step));
        stop = true;
      }
    }
    if (epoch_steps > 0)
      ctx.log().info(cat("epoch ", epoch + 1, ": mean loss ", epoch_loss / epoch_steps, " over ",
                         epoch_steps, " steps",
                         epoch_onehot ? cat(" (", epoch_onehot, " of them one-hot)") : "",
                         ", learning rate now ", lr_at(step)));
  }
  progress->finish();
}

std::vector<Score> AdwpSurrogate::score(Context& ctx, const ScoreRequest& req) {
  HYPERNAS_CHECK(
      req.space != nullptr,
      "adwp: score needs the search space (to locate each architecture in its relaxed network)");
  HYPERNAS_CHECK(req.data != nullptr, "adwp: score needs a dataset (its valid split)");
  const Executor& exec = need_executor(ctx);
  prepare(ctx, *req.space);
  Impl& m = *impl_;
  c10::NoGradGuard no_grad;

  const plugins::ValidationBatches valid(req, "adwp", [&m](Batch b) {
    if (b.images.scalar_type() != m.cfg.dtype) b.images = b.images.to(m.cfg.dtype);
    return b;
  });
  std::vector<Score> out;
  for (const Architecture* given : req.archs) {
    ctx.check_cancelled();
    HYPERNAS_CHECK(given != nullptr, "adwp: score got a null architecture");
    Architecture storage;
    const Architecture& arch = plugins::with_graph(*given, req.space, storage, "adwp");
    const WeightMap weights = m.discrete(exec, arch, req.space->select(arch));
    out.push_back(
        valid.accuracy([&](const Tensor& images) { return exec.forward(arch, weights, images); },
                       abbreviate(arch.text)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// State

std::string AdwpSurrogate::save_state() const {
  const Impl& m = *impl_;
  plugins::BlobWriter w;
  w.str(model_signature(m.options));
  w.str(m.options.canonical());
  w.pod<std::uint8_t>(m.has_model ? 1 : 0);
  if (m.has_model) {
    w.str(m.fp);
    w.str(m.space_name);
    w.str(m.net_excerpt);
    w.pod<std::uint64_t>(m.lay.block_sizes.size());
    for (std::int64_t s : m.lay.block_sizes) w.pod<std::int64_t>(s);
    w.pod<std::uint64_t>(m.lay.generated.size());
    for (const adwp::GeneratedParam& g : m.lay.generated) {
      w.str(g.name);
      w.str(g.node);
      w.shape(g.shape);
      w.pod<std::int64_t>(g.fan_out);
      w.pod<std::int64_t>(g.block);
      w.pod<std::int64_t>(g.mix);
    }
    w.pod<std::uint64_t>(m.lay.learned.size());
    for (std::size_t i = 0; i < m.lay.learned.size(); ++i) {
      const ParamShape& p = m.lay.learned[i];
      w.str(p.name);
      w.str(p.node);
      w.shape(p.shape);
      w.pod<std::uint32_t>(static_cast<std::uint32_t>(p.role));
      w.pod<std::int64_t>(p.fan_in);
      w.pod<std::int64_t>(p.fan_out);
      w.pod<std::uint8_t>(m.lay.learned_in_branch[i] ? 1 : 0);
    }
    for (const Impl::Block& b : m.blocks)
      for (const Tensor& t : {b.w1, b.b1, b.w2, b.b2}) w.tagged_tensor(t);
    for (const Tensor& t : m.learned) w.tagged_tensor(t);
  }
  w.pod<std::uint64_t>(m.curve.size());
  for (double v : m.curve) w.pod<double>(v);
  return plugins::seal_blob(kBlobFormat, w.data());
}

void AdwpSurrogate::load_state(const std::string& blob) {
  Impl& m = *impl_;
  plugins::BlobReader r(plugins::open_blob(kBlobFormat, blob).payload, "adwp");
  const std::string signature = r.str("the model options");
  (void)r.str("the options");
  const std::string mine = model_signature(m.options);
  HYPERNAS_CHECK(signature == mine,
                 "adwp: the state was saved by an adwp surrogate with model options ", signature,
                 ", this one has ", mine, "; create the surrogate with the saved options");
  const bool has_model = r.pod<std::uint8_t>("the model flag") != 0;
  std::string fp, space_name, net_excerpt;
  adwp::ModelLayout lay;
  std::vector<Impl::Block> blocks;
  std::vector<Tensor> learned;
  if (has_model) {
    fp = r.str("the relaxation fingerprint");
    space_name = r.str("the space name");
    net_excerpt = r.str("the relaxed network's text");
    const std::uint64_t nblocks = r.pod<std::uint64_t>("the block count");
    r.check(nblocks <= r.size(), nblocks, " blocks");
    for (std::uint64_t i = 0; i < nblocks; ++i)
      lay.block_sizes.push_back(r.pod<std::int64_t>("a block size"));
    const std::uint64_t ngen = r.pod<std::uint64_t>("the generated-parameter count");
    r.check(ngen <= r.size(), ngen, " generated parameters");
    for (std::uint64_t i = 0; i < ngen; ++i) {
      adwp::GeneratedParam g;
      g.name = r.str("a parameter name");
      g.node = r.str("a node name");
      g.shape = r.shape("a parameter shape");
      g.fan_out = r.pod<std::int64_t>("a fan-out");
      g.block = r.pod<std::int64_t>("a block index");
      g.mix = r.pod<std::int64_t>("a mix index");
      r.check(g.block >= 0 && g.block < static_cast<std::int64_t>(nblocks) && g.shape.size() == 4,
              "generated parameter '", g.name, "'");
      lay.generated.push_back(std::move(g));
    }
    const std::uint64_t nlearned = r.pod<std::uint64_t>("the learned-parameter count");
    r.check(nlearned <= r.size(), nlearned, " learned parameters");
    for (std::uint64_t i = 0; i < nlearned; ++i) {
      ParamShape p;
      p.name = r.str("a parameter name");
      p.node = r.str("a node name");
      p.shape = r.shape("a parameter shape");
      p.role = static_cast<ParamRole>(r.pod<std::uint32_t>("a parameter role"));
      p.fan_in = r.pod<std::int64_t>("a fan-in");
      p.fan_out = r.pod<std::int64_t>("a fan-out");
      lay.learned_in_branch.push_back(r.pod<std::uint8_t>("a branch flag") != 0);
      lay.learned.push_back(std::move(p));
    }
    for (const adwp::GeneratedParam& g : lay.generated) {
      const std::int64_t in = lay.block_sizes[static_cast<std::size_t>(g.block)];
      const std::int64_t out = numel(g.shape);
      Impl::Block b;
      b.w1 = read_tensor(r, g.name + ".gb.fc1.weight", {m.cfg.hidden, in});
      b.b1 = read_tensor(r, g.name + ".gb.fc1.bias", {m.cfg.hidden});
      b.w2 = read_tensor(r, g.name + ".gb.fc2.weight", {out, m.cfg.hidden});
      b.b2 = read_tensor(r, g.name + ".gb.fc2.bias", {out});
      blocks.push_back(std::move(b));
    }
    for (const ParamShape& p : lay.learned) learned.push_back(read_tensor(r, p.name, p.shape));
  }
  const std::uint64_t curve_n = r.pod<std::uint64_t>("the loss curve length");
  r.check(curve_n <= r.size() / sizeof(double), "loss curve of ", curve_n, " values");
  std::vector<double> curve;
  for (std::uint64_t i = 0; i < curve_n; ++i) curve.push_back(r.pod<double>("the loss curve"));
  r.finish("the loss curve");

  if (m.has_model && has_model && fp != m.fp) {
    throw Error(cat("adwp: the state was trained on the relaxed network of space '", space_name,
                    "' (\"", net_excerpt, "\", fingerprint ", fp,
                    "), but this surrogate's model belongs to ", m.where(), ": ",
                    describe_difference(lay, m.lay),
                    ". A state trained on another space, network size or intensive space does "
                    "not apply: load it into a surrogate used with the space it was trained on"));
  }
  // Everything checked: commit.
  if (!has_model) {
    m.has_model = false;
    m.blocks.clear();
    m.learned.clear();
    m.lay = {};
    m.fp.clear();
    m.relax.reset();
  } else if (m.has_model) {
    // The same relaxation: copy into the existing tensors (callers may hold them).
    c10::NoGradGuard no_grad;
    std::size_t i = 0;
    std::vector<Tensor*> targets = m.all_tensors();
    std::vector<Tensor> sources;
    for (const Impl::Block& b : blocks)
      for (const Tensor& t : {b.w1, b.b1, b.w2, b.b2}) sources.push_back(t);
    for (const Tensor& t : learned) sources.push_back(t);
    HYPERNAS_INTERNAL_ASSERT(sources.size() == targets.size(), "tensor counts differ");
    for (Tensor* t : targets) {
      t->copy_(sources[i++]);
      if (t->grad().defined()) t->mutable_grad() = Tensor();
    }
  } else {
    m.lay = std::move(lay);
    m.blocks = std::move(blocks);
    m.learned = std::move(learned);
    m.fp = fp;
    m.space_name = space_name;
    m.net_excerpt = net_excerpt;
    m.has_model = true;
    m.relax.reset();
    m.settle(m.cfg.dtype, m.device);
  }
  m.curve = std::move(curve);
}

}  // namespace hypernas
