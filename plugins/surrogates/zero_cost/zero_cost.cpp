/// @file zero_cost.cpp
/// @brief The training-free proxies (see zero_cost.h and README.md beside this file).

#include "zero_cost.h"

#include "../common/with_graph.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <hypernas/hash.h>
#include <torch/csrc/autograd/autograd.h>

namespace hypernas::zero_cost {

namespace {

using at::Tensor;

/// Mean cross-entropy of the network's final logits.
Tensor loss_of(const Executor& exec, const Architecture& arch, const WeightMap& weights,
               const Tensor& images, const Tensor& labels) {
  const Tensor logits = exec.forward(arch, weights, images).back();
  return at::nll_loss(at::log_softmax(logits, 1), labels);
}

/// The conv and linear weights of `arch` (the layers the proxies sum over), in
/// parameters() order.
std::vector<Tensor> layer_weights(const Executor& exec, const Architecture& arch,
                                  const WeightMap& weights) {
  std::vector<Tensor> out;
  for (const ParamShape& p : exec.parameters(arch)) {
    if (p.role != ParamRole::ConvWeight && p.role != ParamRole::LinearWeight) continue;
    auto it = weights.find(p.name);
    HYPERNAS_CHECK(it != weights.end(), "zero-cost proxy: no weight '", p.name,
                   "' for architecture '", abbreviate(arch.text), "'");
    out.push_back(it->second);
  }
  return out;
}

/// d(output)/d(inputs), undefined where an input does not reach the output.
std::vector<Tensor> grads(const Tensor& output, const std::vector<Tensor>& inputs,
                          bool create_graph = false) {
  return torch::autograd::grad({output}, inputs, {}, /*retain_graph=*/create_graph, create_graph,
                               /*allow_unused=*/true);
}

}  // namespace

double grad_norm(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                 const Tensor& images, const Tensor& labels) {
  c10::AutoGradMode on(true);
  const std::vector<Tensor> ws = layer_weights(exec, arch, weights);
  const std::vector<Tensor> gs = grads(loss_of(exec, arch, weights, images, labels), ws);
  double sum = 0;
  for (const Tensor& g : gs)
    if (g.defined()) sum += g.norm().item<double>();
  return sum;
}

double snip(const Executor& exec, const Architecture& arch, const WeightMap& weights,
            const Tensor& images, const Tensor& labels) {
  c10::AutoGradMode on(true);
  const std::vector<Tensor> ws = layer_weights(exec, arch, weights);
  const std::vector<Tensor> gs = grads(loss_of(exec, arch, weights, images, labels), ws);
  double sum = 0;
  for (std::size_t i = 0; i < ws.size(); ++i)
    if (gs[i].defined()) sum += (ws[i].detach() * gs[i]).abs().sum().item<double>();
  return sum;
}

double grasp(const Executor& exec, const Architecture& arch, const WeightMap& weights,
             const Tensor& images, const Tensor& labels) {
  c10::AutoGradMode on(true);
  const std::vector<Tensor> ws = layer_weights(exec, arch, weights);
  // g with its graph, then z = g_detached . g, whose gradient is H g.
  const std::vector<Tensor> g = grads(loss_of(exec, arch, weights, images, labels), ws, true);
  Tensor z;
  std::vector<Tensor> used;
  std::vector<std::size_t> at_index;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    if (!g[i].defined()) continue;
    const Tensor term = (g[i].detach() * g[i]).sum();
    z = z.defined() ? z + term : term;
    used.push_back(ws[i]);
    at_index.push_back(i);
  }
  if (!z.defined() || !z.requires_grad()) return 0.0;  // no weight reaches the loss
  const std::vector<Tensor> hg = grads(z, used);
  double sum = 0;
  for (std::size_t k = 0; k < used.size(); ++k)
    if (hg[k].defined()) sum += (-used[k].detach() * hg[k]).sum().item<double>();
  return sum;
}

double fisher(const Executor& exec, const Architecture& arch, const WeightMap& weights,
              const Tensor& images, const Tensor& labels) {
  c10::AutoGradMode on(true);
  CaptureOptions capture;
  capture.ops = {"conv", "linear"};
  const CaptureResult r = exec.forward_capture(arch, weights, images, capture);
  const Tensor loss = at::nll_loss(at::log_softmax(r.exits.back(), 1), labels);
  std::vector<Tensor> acts;
  for (const NodeOutput& o : r.captured) acts.push_back(o.value);
  if (acts.empty()) return 0.0;
  const std::vector<Tensor> gs = grads(loss, acts);
  double sum = 0;
  for (std::size_t i = 0; i < acts.size(); ++i) {
    if (!gs[i].defined()) continue;  // a dead branch: its activations do not reach the loss
    Tensor prod = acts[i].detach() * gs[i];
    if (prod.dim() > 2) {
      std::vector<std::int64_t> dims;
      for (std::int64_t d = 2; d < prod.dim(); ++d) dims.push_back(d);
      prod = prod.sum(dims);
    }
    sum += (prod.pow(2).mean(0) * 0.5).sum().item<double>();
  }
  return sum;
}

double jacob_cov_score(const Tensor& jacobians) {
  const Tensor j = jacobians.reshape({jacobians.size(0), -1}).to(at::kDouble);
  const std::int64_t n = j.size(0);
  constexpr double k = 1e-5;
  auto term = [](double v) { return std::log(v + k) + 1.0 / (v + k); };
  const Tensor centred = j - j.mean(1, /*keepdim=*/true);
  const Tensor norms = centred.norm(2, 1, /*keepdim=*/true);
  const double scale = std::max(j.abs().max().item<double>(), DBL_MIN);
  if ((norms <= 1e-12 * scale * std::sqrt(static_cast<double>(j.size(1)))).any().item<bool>() ||
      scale <= DBL_MIN)
    return -(term(static_cast<double>(n)) + static_cast<double>(n - 1) * term(0.0));
  const Tensor unit = centred / norms;
  const Tensor corr = unit.mm(unit.t());
  const Tensor v = at::linalg_eigvalsh(corr).clamp_min(0.0);
  double sum = 0;
  const double* p = v.contiguous().data_ptr<double>();
  for (std::int64_t i = 0; i < n; ++i) sum += term(p[i]);
  return -sum;
}

double jacob_cov(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                 const Tensor& images) {
  c10::AutoGradMode on(true);
  WeightMap fixed;  // the weights need no gradient
  for (const auto& [name, w] : weights) fixed[name] = w.detach();
  const Tensor x = images.detach().clone().requires_grad_(true);
  const Tensor logits = exec.forward(arch, fixed, x).back();
  if (!logits.requires_grad()) return jacob_cov_score(at::zeros_like(images));
  const std::vector<Tensor> g =
      torch::autograd::grad({logits}, {x}, {at::ones_like(logits)}, false, false, true);
  return jacob_cov_score(g[0].defined() ? g[0] : at::zeros_like(images));
}

double naswot_logdet(const Tensor& kernel) {
  Tensor k = kernel.to(at::kDouble);
  auto [sign, logdet] = at::slogdet(k);
  if (sign.item<double>() == 0.0 || !std::isfinite(logdet.item<double>())) {
    k = k + at::eye(k.size(0), k.options());
    std::tie(sign, logdet) = at::slogdet(k);
  }
  return logdet.item<double>();
}

double naswot(const Executor& exec, const Architecture& arch, const WeightMap& weights,
              const Tensor& images) {
  c10::NoGradGuard no_grad;
  const std::int64_t n = images.size(0);
  Tensor k = at::zeros({n, n}, images.options().dtype(at::kDouble));
  std::int64_t units = 0;
  CaptureOptions capture;
  capture.observer = [&](const OpNode& node, const Tensor& y) {
    if (node.op != "relu") return;
    // With b = 2c - 1 (codes as +-1), b b^T = (agreements) - (disagreements) = 2 K - units:
    // one product instead of c c^T + (1 - c)(1 - c)^T, exact in float up to 2^24 units.
    const Tensor b = (y.reshape({n, -1}) > 0).to(at::kFloat).mul_(2.0).sub_(1.0);
    HYPERNAS_CHECK(b.size(1) < (std::int64_t{1} << 24), "naswot: relu node '", node.name,
                   "' has more units than float counts exactly");
    k += b.mm(b.t()).to(at::kDouble);
    units += b.size(1);
  };
  exec.forward_capture(arch, weights, images, capture);
  HYPERNAS_CHECK(units > 0, "naswot: architecture '", abbreviate(arch.text),
                 "' has no relu node to read binary codes from");
  return naswot_logdet((k + static_cast<double>(units)) * 0.5);
}

Architecture without_bn(const Architecture& arch) {
  const ArchGraph& g = arch.graph;
  const auto n = static_cast<std::int64_t>(boost::num_vertices(g));
  Architecture out;
  out.space = arch.space;
  out.text = arch.text + " (without batch norm)";
  std::vector<std::int64_t> fresh(static_cast<std::size_t>(n), -1);
  std::vector<std::vector<std::int64_t>> sources(static_cast<std::size_t>(n));
  for (std::int64_t v = 0; v < n; ++v) {
    if (g[v].op == "bn") {
      // Its outputs come from what it read (bn nodes in a row collapse too).
      for (auto [it, end] = boost::in_edges(v, g); it != end; ++it) {
        const auto u = static_cast<std::int64_t>(boost::source(*it, g));
        sources[v].insert(sources[v].end(), sources[u].begin(), sources[u].end());
      }
      continue;
    }
    fresh[v] = static_cast<std::int64_t>(boost::add_vertex(g[v], out.graph));
    sources[v] = {fresh[v]};
    for (auto [it, end] = boost::in_edges(v, g); it != end; ++it)
      for (std::int64_t s : sources[boost::source(*it, g)]) boost::add_edge(s, fresh[v], out.graph);
  }
  return out;
}

namespace {

/// Weights of `arch` with conv and linear weights N(0, std(p)^2), biases 0, bn gain 1 and
/// shift 0, drawn from one generator seeded with `seed` in parameters() order on the CPU.
template <typename Std>
WeightMap normal_weights(const Executor& exec, const Architecture& arch, std::uint64_t seed,
                         c10::Device device, Std std_of) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  WeightMap out;
  for (const ParamShape& p : exec.parameters(arch)) {
    Tensor t = at::empty(p.shape, at::kFloat);
    switch (p.role) {
      case ParamRole::ConvWeight:
      case ParamRole::LinearWeight: t.normal_(0.0, std_of(p), gen); break;
      case ParamRole::BnWeight: t.fill_(1.0); break;
      case ParamRole::BnBias:
      case ParamRole::LinearBias: t.zero_(); break;
    }
    out[p.name] = t.to(device).requires_grad_(true);
  }
  return out;
}

}  // namespace

WeightMap gaussian_weights(const Executor& exec, const Architecture& arch, std::uint64_t seed,
                           c10::Device device) {
  return normal_weights(exec, arch, seed, device, [](const ParamShape&) { return 1.0; });
}

double synflow(const Executor& exec, const Architecture& arch, const WeightMap& weights,
               std::int64_t channels, std::int64_t height, std::int64_t width) {
  c10::AutoGradMode on(true);
  const Architecture plain = without_bn(arch);
  WeightMap abs;
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  for (const ParamShape& p : exec.parameters(plain)) {
    auto it = weights.find(p.name);
    HYPERNAS_CHECK(it != weights.end(), "synflow: no weight '", p.name, "' for architecture '",
                   abbreviate(arch.text), "'");
    device = it->second.device();
    abs[p.name] = it->second.detach().to(at::kDouble).abs().requires_grad_(true);
  }
  const Tensor ones =
      at::ones({1, channels, height, width}, at::TensorOptions().dtype(at::kDouble).device(device));
  const Tensor r = exec.forward(plain, abs, ones).back().sum();
  const std::vector<Tensor> ws = layer_weights(exec, plain, abs);
  if (!r.requires_grad()) return 0.0;
  const std::vector<Tensor> gs = grads(r, ws);
  double sum = 0;
  for (std::size_t i = 0; i < ws.size(); ++i)
    if (gs[i].defined()) sum += (ws[i].detach() * gs[i]).abs().sum().item<double>();
  return sum;
}

double zen(const Executor& exec, const Architecture& arch, const WeightMap& weights,
           const Tensor& x, const Tensor& e, double gamma) {
  c10::NoGradGuard no_grad;
  const ArchGraph& g = arch.graph;
  const auto n = static_cast<std::int64_t>(boost::num_vertices(g));
  // The feature map: what enters the last global average pooling (or the last node's input
  // when there is none).
  std::int64_t gap = -1;
  for (std::int64_t v = 0; v < n; ++v)
    if (g[v].op == "gap") gap = v;
  std::set<std::string> feature_nodes;
  for (auto [it, end] = boost::in_edges(gap >= 0 ? gap : n - 1, g); it != end; ++it)
    feature_nodes.insert(g[boost::source(*it, g)].name);
  // Every bn's inputs, by the name of the node that feeds it.
  std::map<std::string, std::vector<std::int64_t>> feeds_bn;
  std::vector<std::int64_t> bns;
  for (std::int64_t v = 0; v < n; ++v) {
    if (g[v].op != "bn") continue;
    for (auto [it, end] = boost::in_edges(v, g); it != end; ++it)
      feeds_bn[g[boost::source(*it, g)].name].push_back(static_cast<std::int64_t>(bns.size()));
    bns.push_back(v);
  }
  auto pass = [&](const Tensor& images, std::vector<Tensor>& bn_var) {
    std::vector<Tensor> bn_in(bns.size());
    Tensor feature;
    CaptureOptions capture;
    capture.observer = [&](const OpNode& node, const Tensor& y) {
      if (feature_nodes.count(node.name)) feature = feature.defined() ? feature + y : y;
      auto it = feeds_bn.find(node.name);
      if (it == feeds_bn.end()) return;
      for (std::int64_t b : it->second) bn_in[b] = bn_in[b].defined() ? bn_in[b] + y : y;
    };
    exec.forward_capture(arch, weights, images, capture);
    bn_var.resize(bns.size());
    for (std::size_t b = 0; b < bns.size(); ++b) {
      const Tensor& t = bn_in[b];
      // Per-channel unbiased variance over batch and positions, as BatchNorm2d's running_var.
      const Tensor flat = t.transpose(0, 1).reshape({t.size(1), -1}).to(at::kDouble);
      bn_var[b] = flat.var(1, /*unbiased=*/true);
    }
    return feature;
  };
  std::vector<Tensor> v1, v2;
  const Tensor f1 = pass(x, v1);
  const Tensor f2 = pass(x + gamma * e, v2);
  HYPERNAS_CHECK(f1.defined(), "zen: architecture '", abbreviate(arch.text),
                 "' has no feature map before its output");
  const Tensor diff = (f1 - f2).abs().to(at::kDouble).reshape({f1.size(0), -1}).sum(1).mean();
  double score = std::log(std::max(diff.item<double>(), DBL_MIN));
  for (std::size_t b = 0; b < bns.size(); ++b) {
    // running_var after two training-mode passes, momentum 0.1, starting from ones.
    const Tensor running = 0.81 + 0.09 * v1[b] + 0.1 * v2[b];
    score += std::log(std::sqrt(running.mean().item<double>()));
  }
  return score;
}

std::vector<std::string> aznas_features(const ArchGraph& graph) {
  const auto n = static_cast<std::int64_t>(boost::num_vertices(graph));
  std::vector<std::string> out;
  std::int64_t start = 0;
  for (std::int64_t v = 0; v < n; ++v) {
    if (v + 1 < n && graph[v + 1].module == graph[v].module) continue;
    bool head = false;  // the run [start, v]
    for (std::int64_t u = start; u <= v; ++u) head = head || graph[u].op == "gap";
    if (!head && graph[v].op != "input") out.push_back(graph[v].name);
    start = v + 1;
  }
  return out;
}

namespace {

/// Entropy of the normalised eigenvalues of the channel covariance of a feature [B, C, H, W].
double covariance_entropy(const Tensor& feature) {
  const std::int64_t c = feature.size(1);
  Tensor f = feature.detach().to(at::kDouble).permute({0, 2, 3, 1}).reshape({-1, c});
  f = f - f.mean(0, /*keepdim=*/true);
  const Tensor sigma = f.t().mm(f) / static_cast<double>(f.size(0));
  const Tensor s = at::linalg_eigvalsh(sigma).clamp_min(0.0);
  const double total = s.sum().item<double>();
  if (!(total > 0)) return 0.0;  // a constant feature (a cell of `none` edges): no spread at all
  const Tensor p = s / total;
  return (-p * at::log(p + 1e-8)).sum().item<double>();
}

}  // namespace

AzMetrics aznas_metrics(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                        const Tensor& images, std::uint64_t seed, double flops) {
  c10::AutoGradMode on(true);
  CaptureOptions capture;
  capture.nodes = aznas_features(arch.graph);
  HYPERNAS_CHECK(capture.nodes.size() >= 2, "aznas: architecture '", abbreviate(arch.text),
                 "' has ", capture.nodes.size(),
                 " layer features (cells or blocks outside the head); AZ-NAS needs two");
  const CaptureResult r = exec.forward_capture(arch, weights, images, capture);
  std::vector<Tensor> feats;
  for (const NodeOutput& o : r.captured) feats.push_back(o.value);
  AzMetrics m;
  m.complexity = flops;
  std::vector<double> e;
  for (const Tensor& f : feats) e.push_back(covariance_entropy(f));
  m.progressivity = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < e.size(); ++i) {
    m.expressivity += e[i];
    if (i > 0) m.progressivity = std::min(m.progressivity, e[i] - e[i - 1]);
  }
  // Trainability, from the last pair of features to the first, as AZ-NAS walks them.
  at::Generator gen = at::detail::createCPUGenerator(seed);
  constexpr double kIdentity = -1e12;  // the paper's -inf for a pair the network copies
  double sum = 0;
  for (std::size_t i = feats.size() - 1; i >= 1; --i) {
    const Tensor& out = feats[i];
    const Tensor& in = feats[i - 1];
    const Tensor g_out =
        (at::bernoulli(at::full(out.sizes(), 0.5, at::TensorOptions().dtype(at::kFloat)), gen) -
         0.5)
            .mul_(2.0)
            .to(out.device());
    Tensor g_in;
    if (out.requires_grad() && in.requires_grad())
      g_in = torch::autograd::grad({out}, {in}, {g_out}, /*retain_graph=*/true, false, true)[0];
    double s_max = 0;  // the later feature does not depend on the earlier one: s = 0
    if (g_in.defined()) {
      if (g_in.sizes() == g_out.sizes() && at::equal(g_in, g_out)) {
        sum += kIdentity;
        continue;
      }
      Tensor gi = g_in.detach();
      if (gi.size(2) != g_out.size(2) || gi.size(3) != g_out.size(3))
        gi = at::pixel_unshuffle(gi, gi.size(2) / g_out.size(2));
      const std::int64_t rows = g_out.size(0) * g_out.size(2) * g_out.size(3);
      const Tensor a = gi.permute({0, 2, 3, 1}).reshape({rows, -1}).to(at::kDouble);
      const Tensor b = g_out.permute({0, 2, 3, 1}).reshape({rows, -1}).to(at::kDouble);
      Tensor mat = a.t().mm(b) / static_cast<double>(rows);
      if (mat.size(0) < mat.size(1)) mat = mat.t();
      s_max = at::linalg_svdvals(mat).max().item<double>();
    }
    sum += -s_max - 1.0 / (s_max + 1e-6) + 2.0;
  }
  m.trainability = sum / static_cast<double>(feats.size() - 1);
  return m;
}

double aznas_aggregate(const std::vector<AzMetrics>& reference, const AzMetrics& m) {
  auto log_rank = [&](double AzMetrics::*field) {
    double below = 0;
    for (const AzMetrics& r : reference) {
      const double x = r.*field;
      below += x < m.*field ? 1.0 : (x == m.*field ? 0.5 : 0.0);
    }
    return std::log((1.0 + below) / (static_cast<double>(reference.size()) + 1.0));
  };
  return log_rank(&AzMetrics::expressivity) + log_rank(&AzMetrics::progressivity) +
         log_rank(&AzMetrics::trainability) + log_rank(&AzMetrics::complexity);
}

WeightMap kaiming_fan_in_weights(const Executor& exec, const Architecture& arch, std::uint64_t seed,
                                 c10::Device device) {
  return normal_weights(exec, arch, seed, device, [](const ParamShape& p) {
    return std::sqrt(2.0 / static_cast<double>(std::max<std::int64_t>(p.fan_in, 1)));
  });
}

// ---------------------------------------------------------------------------------------------
// The plugins

namespace {

struct Info {
  const char* name;
  std::int64_t batch;  ///< Default mini-batch (0: the proxy reads no images).
};

template <Proxy P>
constexpr Info info() {
  switch (P) {
    case Proxy::Synflow: return {"synflow", 0};
    case Proxy::Naswot: return {"naswot", 128};
    case Proxy::JacobCov: return {"jacob_cov", 64};
    case Proxy::Snip: return {"snip", 64};
    case Proxy::GradNorm: return {"grad_norm", 64};
    case Proxy::Grasp: return {"grasp", 64};
    case Proxy::Fisher: return {"fisher", 64};
    case Proxy::Zen: return {"zen", 64};
  }
  return {"?", 0};
}

/// The first `n` images (and labels) of the train split, in order, without augmentation.
Batch first_batch(const Dataset& data, std::int64_t n, const char* proxy) {
  BatchOptions bo;
  bo.batch_size = n;
  auto stream = data.batches(Split::Train, bo);
  std::optional<Batch> b = stream->next();
  HYPERNAS_CHECK(b && b->images.size(0) == n, proxy, ": the train split of '", data.name(),
                 "' has fewer than ", n, " images (option batch)");
  return std::move(*b);
}

}  // namespace

template <Proxy P>
const char* ProxySurrogate<P>::name() noexcept {
  return info<P>().name;
}

template <Proxy P>
const ParamTable& ProxySurrogate<P>::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    constexpr Info i = info<P>();
    if (i.batch > 0)
      t.add_int("batch", i.batch,
                P == Proxy::Zen ? "Gaussian images per forward pass"
                                : "images in the mini-batch (the first of the train split)",
                2, 4096);
    if (P == Proxy::Zen) {
      t.add_real("mixup_gamma", 1e-2, "size of the perturbation of the input (Zen-NAS: 0.01)", 1e-8,
                 1.0);
      t.add_string("init", "gaussian",
                   "initial weights: gaussian (Zen-NAS: conv and linear weights N(0, 1)) or sdk "
                   "(the kernel's initialiser, as nas.train)",
                   {"gaussian", "sdk"});
    }
    return t;
  }();
  return table;
}

template <Proxy P>
ProxySurrogate<P>::ProxySurrogate(const Options& o)
    : batch_(info<P>().batch > 0 ? o.get_int("batch") : 1),
      gamma_(P == Proxy::Zen ? o.get_real("mixup_gamma") : 0.0),
      gaussian_(P == Proxy::Zen && o.get_string("init") == "gaussian") {}

template <Proxy P>
std::uint32_t ProxySurrogate<P>::capabilities() const {
  return kNeedsData | kUsesSeed;
}

template <Proxy P>
void ProxySurrogate<P>::fit(Context&, const FitRequest&) {}

template <Proxy P>
std::vector<Score> ProxySurrogate<P>::score(Context& ctx, const ScoreRequest& r) {
  const char* proxy = name();
  const Executor* exec = ctx.executor();
  HYPERNAS_CHECK(exec != nullptr, proxy, ": this kernel has no graph executor");
  HYPERNAS_CHECK(r.data != nullptr, proxy, ": needs a dataset (its ",
                 info<P>().batch > 0 && P != Proxy::Zen ? "first images" : "image shape", ")");
  HYPERNAS_CHECK(r.seeds.size() == r.archs.size(), proxy, ": needs one seed per architecture");
  const ProblemSpec spec = r.data->spec();
  Batch batch;
  if (info<P>().batch > 0 && P != Proxy::Zen) batch = first_batch(*r.data, batch_, proxy);
  std::vector<Score> out;
  out.reserve(r.archs.size());
  for (std::size_t i = 0; i < r.archs.size(); ++i) {
    ctx.check_cancelled();
    Architecture storage;
    const Architecture* arch = &plugins::with_graph(*r.archs[i], r.space, storage, proxy);
    const std::uint64_t seed = r.seeds[i];
    const WeightMap w = gaussian_ ? gaussian_weights(*exec, *arch, seed, ctx.device())
                                  : exec->init_weights(*arch, seed, ctx.device());
    double value = 0;
    switch (P) {
      case Proxy::Synflow:
        value = synflow(*exec, *arch, w, spec.channels, spec.height, spec.width);
        break;
      case Proxy::Naswot: value = naswot(*exec, *arch, w, batch.images); break;
      case Proxy::JacobCov: value = jacob_cov(*exec, *arch, w, batch.images); break;
      case Proxy::Snip: value = snip(*exec, *arch, w, batch.images, batch.labels); break;
      case Proxy::GradNorm: value = grad_norm(*exec, *arch, w, batch.images, batch.labels); break;
      case Proxy::Grasp: value = grasp(*exec, *arch, w, batch.images, batch.labels); break;
      case Proxy::Fisher: value = fisher(*exec, *arch, w, batch.images, batch.labels); break;
      case Proxy::Zen: {
        at::Generator gen = at::detail::createCPUGenerator(seed ^ 0x5a656e4e4153ull);
        const auto opts = at::TensorOptions().dtype(at::kFloat);
        const Tensor x = at::randn({batch_, spec.channels, spec.height, spec.width}, gen, opts);
        const Tensor e = at::randn({batch_, spec.channels, spec.height, spec.width}, gen, opts);
        value = zen(*exec, *arch, w, x.to(ctx.device()), e.to(ctx.device()), gamma_);
        break;
      }
    }
    HYPERNAS_CHECK(std::isfinite(value), proxy, ": architecture '", abbreviate(arch->text),
                   "' got the non-finite score ", value);
    Score s;
    s.value = value;
    out.push_back(std::move(s));
  }
  return out;
}

template class ProxySurrogate<Proxy::Synflow>;
template class ProxySurrogate<Proxy::Naswot>;
template class ProxySurrogate<Proxy::JacobCov>;
template class ProxySurrogate<Proxy::Snip>;
template class ProxySurrogate<Proxy::GradNorm>;
template class ProxySurrogate<Proxy::Grasp>;
template class ProxySurrogate<Proxy::Fisher>;
template class ProxySurrogate<Proxy::Zen>;

// ---------------------------------------------------------------------------------------------
// aznas

const ParamTable& AznasSurrogate::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("batch", 64, "images in the mini-batch (the first of the train split)", 2, 4096);
    t.add_int("reference", 128,
              "architectures of the reference sample the four metrics are ranked against", 1,
              100000);
    t.add_int("reference_seed", 0, "seed of the reference sample", 0);
    t.add_string("init", "fan_in",
                 "initial weights: fan_in (AZ-NAS: Kaiming normal with fan-in) or sdk (the "
                 "kernel's initialiser, as nas.train)",
                 {"fan_in", "sdk"});
    return t;
  }();
  return table;
}

AznasSurrogate::AznasSurrogate(const Options& o)
    : batch_(o.get_int("batch")),
      reference_(o.get_int("reference")),
      reference_seed_(static_cast<std::uint64_t>(o.get_int("reference_seed"))),
      fan_in_(o.get_string("init") == "fan_in") {}

std::uint32_t AznasSurrogate::capabilities() const { return kNeedsData | kUsesSeed; }

void AznasSurrogate::fit(Context&, const FitRequest&) {}

AzMetrics AznasSurrogate::metrics(Context& ctx, const Executor& exec, const SearchSpace& space,
                                  const Architecture& arch, const Tensor& images,
                                  std::uint64_t seed) const {
  const WeightMap w = fan_in_ ? kaiming_fan_in_weights(exec, arch, seed, ctx.device())
                              : exec.init_weights(arch, seed, ctx.device());
  const AzMetrics m = aznas_metrics(exec, arch, w, images, seed ^ 0x415a4e4153ull,
                                    static_cast<double>(space.stats(arch).flops));
  for (double v : {m.expressivity, m.progressivity, m.trainability})
    HYPERNAS_CHECK(std::isfinite(v), "aznas: architecture '", abbreviate(arch.text),
                   "' got a non-finite metric ", v);
  return m;
}

std::vector<Score> AznasSurrogate::score(Context& ctx, const ScoreRequest& r) {
  const Executor* exec = ctx.executor();
  HYPERNAS_CHECK(exec != nullptr, "aznas: this kernel has no graph executor");
  HYPERNAS_CHECK(r.data != nullptr, "aznas: needs a dataset (its first images)");
  HYPERNAS_CHECK(r.space != nullptr, "aznas: needs the search space (reference sample, FLOPs)");
  HYPERNAS_CHECK(r.seeds.size() == r.archs.size(), "aznas: needs one seed per architecture");
  const Batch batch = first_batch(*r.data, batch_, "aznas");
  // The reference sample: drawn and scored once (recognised by its first draw and the counts).
  Rng rng(reference_seed_);
  const Architecture first = r.space->sample(rng);
  const std::string key = cat(first.text, "|", reference_, "|", batch_);
  if (key != reference_key_) {
    reference_metrics_.clear();
    ctx.log().info(cat("scoring the reference sample of ", reference_, " architectures"));
    auto progress = ctx.progress("aznas reference sample", reference_);
    Rng again(reference_seed_);
    for (std::int64_t k = 0; k < reference_; ++k) {
      ctx.check_cancelled();
      const Architecture a = r.space->sample(again);
      reference_metrics_.push_back(
          metrics(ctx, *exec, *r.space, a, batch.images, fnv1a64(a.text) ^ reference_seed_));
      progress->advance();
    }
    progress->finish();
    reference_key_ = key;
  }
  std::vector<Score> out;
  for (std::size_t i = 0; i < r.archs.size(); ++i) {
    ctx.check_cancelled();
    Architecture storage;
    const Architecture* arch = &plugins::with_graph(*r.archs[i], r.space, storage, "aznas");
    const AzMetrics m = metrics(ctx, *exec, *r.space, *arch, batch.images, r.seeds[i]);
    Score s;
    s.value = aznas_aggregate(reference_metrics_, m);
    s.extra["expressivity"] = m.expressivity;
    s.extra["progressivity"] = m.progressivity;
    s.extra["trainability"] = m.trainability;
    s.extra["complexity"] = m.complexity;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace hypernas::zero_cost
