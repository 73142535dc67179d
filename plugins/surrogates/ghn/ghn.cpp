/// @file ghn.cpp
/// @brief The GHN model (parameters, ATen propagation, hypernetwork), its training and
/// scoring, and its state blob. ATen only (no <torch/torch.h>): parameters are plain tensors
/// and Adam is written out, so that the same code builds against LibTorch 1.13 and 2.x and the
/// optimiser state is ours to save. The CPU propagation engine is in ghn_engine.cpp, graph
/// analysis and the propagation plan in ghn_graph.cpp.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <hypernas/anytime.h>
#include <hypernas/graph_stats.h>

#include "../../common/state_blob.h"
#include "../common/optim.h"
#include "../common/with_graph.h"
#include "ghn_internal.h"

namespace hypernas {

namespace {

using at::Tensor;
using ghn::Propagation;
using ghn::detail::Config;
using ghn::detail::GroupBuild;
using ghn::detail::MessagesBuild;
using ghn::detail::PlanData;
using ghn::detail::StepBuild;

// ---------------------------------------------------------------------------------------------
// Options

/// Options that define the model (a state saved with others cannot be loaded).
const char* const kModelKeys[] = {"hidden",       "hyper_hidden",  "steps",
                                  "propagation",  "stacked",       "fan_in_norm",
                                  "layer_norm",   "virtual_edges", "max_shortest_path",
                                  "max_channels", "max_kernel",    "handoff",
                                  "shape_embed",  "prune",         "scale_embed"};

/// Model keys added after states were first written, with the value that reproduces what
/// those older states were trained with (a signature without the key means that value).
const std::map<std::string, std::string>& legacy_model_values() {
  static const std::map<std::string, std::string> values = {{"handoff", "input"},
                                                            {"shape_embed", "false"},
                                                            {"prune", "false"},
                                                            {"scale_embed", "false"}};
  return values;
}

/// preset=paper: the setting of Zhang et al. (2019) as design.md states it. Each option
/// left at its declared default takes the value here; an option given another value keeps it.
const std::vector<std::pair<std::string, Value>>& paper_values() {
  static const std::vector<std::pair<std::string, Value>> values = {
      {"hidden", std::int64_t{32}},
      {"hyper_hidden", std::int64_t{64}},
      {"steps", std::int64_t{5}},
      {"propagation", std::string("forward-backward")},
      {"stacked", true},
      {"handoff", std::string("input")},
      {"lr", 1e-3},
      {"weight_decay", 0.0},
      {"grad_clip", 0.0},
      {"lr_schedule", std::string("constant")},
      {"meta_batch", std::int64_t{1}},
      {"fan_in_norm", false},
      {"layer_norm", false},
      {"virtual_edges", false},
      {"score_metric", std::string("accuracy")},
      {"finetune_steps", std::int64_t{0}},
      {"shape_embed", false},
      {"scale_embed", false},
      {"prune", false},
  };
  return values;
}

/// `o` with the preset applied (see paper_values()); `preset=tuned` changes nothing (the
/// declared defaults are the tuned setting).
Options apply_preset(const Options& o) {
  if (o.get_string("preset") != "paper") return o;
  Options out = o;
  const ParamTable& table = GhnSurrogate::params();
  for (const auto& [key, value] : paper_values()) {
    const ParamSpec* spec = table.find(key);
    HYPERNAS_INTERNAL_ASSERT(spec != nullptr, "ghn: preset names unknown option ", key);
    if (o.at(key) == spec->default_value) out.set(key, value);
  }
  return out;
}

std::string model_signature(const Options& o) {
  std::string out;
  for (const char* key : kModelKeys)
    out += cat(out.empty() ? "" : ",", key, "=", to_string(o.at(key)));
  return out;
}

std::map<std::string, std::string> split_signature(const std::string& s) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    const std::size_t eq = item.find('=');
    if (eq != std::string::npos) out[item.substr(0, eq)] = item.substr(eq + 1);
    start = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small tensor helpers

Tensor index_tensor(const std::vector<std::int64_t>& v, const at::Device& device) {
  Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::kLong);
  if (!v.empty())
    std::memcpy(t.data_ptr<std::int64_t>(), v.data(), v.size() * sizeof(std::int64_t));
  return device.is_cpu() ? t : t.to(device);
}

Tensor float_tensor(const std::vector<float>& v, const at::Device& device) {
  Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::kFloat);
  if (!v.empty()) std::memcpy(t.data_ptr<float>(), v.data(), v.size() * sizeof(float));
  return device.is_cpu() ? t : t.to(device);
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
  return out + "]";
}

// ---------------------------------------------------------------------------------------------
// The plan of the ATen propagation: PlanData (ghn_internal.h) as index tensors on the device

/// Messages into one group of nodes: 1-hop edges (src: global node, dst: row of the group)
/// and, with virtual edges, weighted edges of distance <= max_shortest_path.
struct Messages {
  Tensor src, dst;        ///< 1-hop edges.
  Tensor vsrc, vdst, vw;  ///< Virtual edges and their weights 1/distance.
  bool any = false;       ///< Any 1-hop edge.
  bool vany = false;      ///< Any virtual edge.
};

/// One batched GRU update.
struct Group {
  Tensor idx;             ///< Global node ids.
  std::int64_t size = 0;  ///< Number of nodes.
  Messages msg;           ///< Messages into them.
  bool feeds = false;     ///< Some later group of the same pass reads their messages.
};

/// Segment s of every graph that has one.
struct SegmentStep {
  Tensor nodes;                          ///< Global ids of the segment's nodes (input first).
  std::int64_t count = 0;                ///< Their number.
  Tensor inputs, input_slot;             ///< Input nodes and the graph slot of each (stacked).
  Tensor prev_nodes, prev_slot;          ///< Vertices of segment s-1 and their graph slot.
  Tensor prev_count;                     ///< [slots, 1] sizes of segment s-1 per slot.
  std::int64_t slots = 0;                ///< Graphs having this segment (0 for s = 0).
  std::vector<Group> forward, backward;  ///< Level groups (forward-backward).
  Messages sync_forward, sync_backward;  ///< Synchronous rounds; ids local to `nodes`.
};

/// Everything propagation needs, as tensors on the model's device.
struct Plan {
  std::int64_t total = 0;          ///< GHN nodes in the batch (input nodes included).
  std::vector<std::int64_t> base;  ///< First global id of each graph.
  Tensor init;                     ///< [total, hidden] padded one-hot types (input nodes: 0).
  std::vector<SegmentStep> steps;
};

/// Tensors of the messages into one group.
Messages finish(const MessagesBuild& b, const at::Device& d) {
  Messages m;
  m.any = !b.src.empty();
  m.vany = !b.vsrc.empty();
  if (m.any) {
    m.src = index_tensor(b.src, d);
    m.dst = index_tensor(b.dst, d);
  }
  if (m.vany) {
    m.vsrc = index_tensor(b.vsrc, d);
    m.vdst = index_tensor(b.vdst, d);
    m.vw = float_tensor(b.vw, d).unsqueeze(1);
  }
  return m;
}

/// The tensors the ATen propagation uses, on `device`.
Plan to_plan(const PlanData& data, const Config& cfg, const at::Device& device) {
  Plan plan;
  plan.total = data.total;
  plan.base = data.base;
  // Initial embeddings: one-hot of the type, zero-padded to `hidden`; zeros for input nodes
  // (their state is set by the stacked hand-off).
  Tensor init = at::zeros({data.total, cfg.hidden}, at::kFloat);
  {
    float* p = init.data_ptr<float>();
    for (std::int64_t v = 0; v < data.total; ++v)
      if (data.types[v] >= 0) p[v * cfg.hidden + data.types[v]] = 1.0f;
  }
  plan.init = device.is_cpu() ? init : init.to(device);
  auto finish_pass = [&](const std::vector<GroupBuild>& groups) {
    std::vector<Group> out;
    for (const GroupBuild& g : groups) {
      Group o;
      o.idx = index_tensor(g.idx, device);
      o.size = static_cast<std::int64_t>(g.idx.size());
      o.msg = finish(g.msg, device);
      o.feeds = g.feeds;
      out.push_back(std::move(o));
    }
    return out;
  };
  for (const StepBuild& sb : data.steps) {
    SegmentStep st;
    st.nodes = index_tensor(sb.nodes, device);
    st.count = static_cast<std::int64_t>(sb.nodes.size());
    st.slots = static_cast<std::int64_t>(sb.prev_count.size());
    if (st.slots > 0) {
      st.inputs = index_tensor(sb.inputs, device);
      st.input_slot = index_tensor(sb.input_slot, device);
      st.prev_nodes = index_tensor(sb.prev_nodes, device);
      st.prev_slot = index_tensor(sb.prev_slot, device);
      st.prev_count = float_tensor(sb.prev_count, device).unsqueeze(1);
    }
    st.forward = finish_pass(sb.forward);
    st.backward = finish_pass(sb.backward);
    st.sync_forward = finish(sb.sync_forward, device);
    st.sync_backward = finish(sb.sync_backward, device);
    plan.steps.push_back(std::move(st));
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Message MLP and GRU cell with few autograd nodes per call (the propagation makes about a
// thousand calls per architecture, so per-op overhead is most of its cost)

/// Two linear layers, ReLU after each (ppuda's `MLP`), with pre-transposed weights.
struct Mlp {
  Tensor w1t, b1, w2t, b2;
  static Mlp make(const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
    return {w1.t(), b1, w2.t(), b2};
  }
  Tensor operator()(const Tensor& x) const {
    return at::relu(at::addmm(b2, at::relu(at::addmm(b1, x, w1t)), w2t));
  }
};

}  // namespace

namespace ghn {

/// The GRU cell, as torch.nn.GRUCell (gates r, z, n; h' = (1 - z) n + z h), with the input
/// and hidden matrices fused into one [2H, 4H] matrix: columns r and z read [m, h], column
/// i_n reads m, column h_n reads h (see gru_update()).
struct Gru {
  Tensor wt, b;  ///< [2H, 4H] and [4H]
  std::int64_t h = 0;
  static Gru make(const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
    const std::int64_t h = w_hh.size(1);
    const Tensor zero = at::zeros({h, h}, w_ih.options().requires_grad(false));
    const Tensor w = at::cat({at::cat({w_ih.narrow(0, 0, 2 * h), w_hh.narrow(0, 0, 2 * h)}, 1),
                              at::cat({w_ih.narrow(0, 2 * h, h), zero}, 1),
                              at::cat({zero, w_hh.narrow(0, 2 * h, h)}, 1)},
                             0);
    const Tensor b = at::cat({b_ih.narrow(0, 0, 2 * h) + b_hh.narrow(0, 0, 2 * h),
                              b_ih.narrow(0, 2 * h, h), b_hh.narrow(0, 2 * h, h)});
    return {w.t(), b, h};
  }
  Tensor operator()(const Tensor& m, const Tensor& hx) const {
    const Tensor g = at::addmm(b, at::cat({m, hx}, 1), wt);  // [n, 4H]: r z | i_n | h_n
    const Tensor rz = at::sigmoid(g.narrow(1, 0, 2 * h));
    const Tensor n =
        at::tanh(at::addcmul(g.narrow(1, 2 * h, h), rz.narrow(1, 0, h), g.narrow(1, 3 * h, h)));
    return at::lerp(n, hx, rz.narrow(1, h, h));  // n + z (h - n)
  }
};

std::vector<double> parse_exit_weights(const std::string& text) {
  return hypernas::parse_exit_weights(text, "ghn: option 'exit_weights'");
}

at::Tensor exit_loss(const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                     const std::vector<double>& weights) {
  HYPERNAS_CHECK(!logits.empty(), "ghn: exit_loss() got no exits");
  if (logits.size() == 1 && weights.empty()) return at::cross_entropy_loss(logits[0], labels);
  Tensor sum;
  for (std::size_t k = 0; k < logits.size(); ++k) {
    const double w = weights.empty() ? 1.0 / static_cast<double>(logits.size())
                                     : weights[std::min(k, weights.size() - 1)];
    const Tensor l = at::cross_entropy_loss(logits[k], labels) * w;
    sum = sum.defined() ? sum + l : l;
  }
  return sum;
}

at::Tensor gru_update(const at::Tensor& m, const at::Tensor& h, const at::Tensor& w_ih,
                      const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh) {
  return Gru::make(w_ih, w_hh, b_ih, b_hh)(m, h);
}

}  // namespace ghn

namespace {

using ghn::Gru;

// ---------------------------------------------------------------------------------------------
// The state blob

// Version 2: stacked GHNs propagate through module input nodes (ghn.h); the weights of a
// stacked GHN saved in version 1 (whose modules dropped the edges entering them) do not
// apply, and are refused. Version-1 states of unstacked GHNs (unchanged) still load.
constexpr std::uint32_t kFormatVersion = 2;
// The checksum is FNV-1a from this basis. NOTE: not FNV's offset basis (14695981039346656037)
// but that number without its last digit, as every saved blob has it.
constexpr std::uint64_t kChecksumBasis = 1469598103934665603ull;
/// The envelope of GHN states (../../common/state_blob.h). The payload: the model signature,
/// the options, the Adam step, the loss curve, then the tensors, each a name and a float tensor.
constexpr plugins::BlobFormat kBlobFormat{"ghn", "a GHN state blob", "HNAS.GHN", kFormatVersion,
                                          kChecksumBasis};

// ---------------------------------------------------------------------------------------------
// Valid batches, loaded once per score() call when they fit in memory

constexpr std::int64_t kCacheFloats = std::int64_t{64} << 20;  // 256 MiB of images

}  // namespace

// =============================================================================================

struct GhnSurrogate::Impl {
  Options options;
  Config cfg;
  at::Device device{at::kCPU};

  /// GHN parameters (leaves requiring grad), in a fixed order, with their names.
  std::vector<std::string> names;
  std::vector<Tensor> params;
  /// Indices into params.
  int msg_w1 = -1, msg_b1, msg_w2, msg_b2;
  int ve_w1 = -1, ve_b1, ve_w2, ve_b2;
  int gru_w_ih = -1, gru_w_hh, gru_b_ih, gru_b_hh;
  int ln_w = -1, ln_b;
  int hyp_w1 = -1, hyp_b1, hyp_w2, hyp_b2;
  int shape_tab[4] = {-1, -1, -1, -1};
  int scale_tab = -1, role_tab = -1;

  /// Propagate with ATen ops even on the CPU (tests; other devices always do).
  bool aten_propagation = false;

  /// Adam moments (same order as params; undefined until the first step) and step count.
  std::vector<Tensor> adam_m, adam_v;
  std::int64_t adam_step = 0;
  std::vector<double> curve;

  /// H's output indices of each parameter slot and shape.
  std::map<std::pair<int, std::vector<std::int64_t>>, std::vector<std::int64_t>> index_cache;

  explicit Impl(const Options& o) : options(apply_preset(o)), cfg(options) {
    HYPERNAS_CHECK(cfg.hidden >= static_cast<std::int64_t>(ghn::node_types().size()),
                   "ghn: option 'hidden' expects int >= ", ghn::node_types().size(),
                   " (the one-hot node type is padded to it), got '", cfg.hidden, "'");
    at::Generator gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.init_seed));
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape, double bound) {
      Tensor t = at::empty(shape, at::kFloat);
      if (bound > 0) t.uniform_(-bound, bound, gen);
      else t.fill_(bound == 0 ? 0.0 : 1.0);
      names.push_back(name);
      params.push_back(t.requires_grad_(true));
      return static_cast<int>(params.size() - 1);
    };
    const std::int64_t h = cfg.hidden, hh = cfg.hyper_hidden;
    // nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    auto linear = [&](const std::string& name, std::int64_t in, std::int64_t out, int& w, int& b) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      w = add(name + ".weight", {out, in}, bound);
      b = add(name + ".bias", {out}, bound);
    };
    linear("message.fc1", h, h, msg_w1, msg_b1);
    linear("message.fc2", h, h, msg_w2, msg_b2);
    if (cfg.virtual_edges) {
      linear("message_ve.fc1", h, h, ve_w1, ve_b1);
      linear("message_ve.fc2", h, h, ve_w2, ve_b2);
    }
    // nn.GRUCell's default initialisation: U(-1/sqrt(hidden), 1/sqrt(hidden)) everywhere.
    const double gb = 1.0 / std::sqrt(static_cast<double>(h));
    gru_w_ih = add("gru.weight_ih", {3 * h, h}, gb);
    gru_w_hh = add("gru.weight_hh", {3 * h, h}, gb);
    gru_b_ih = add("gru.bias_ih", {3 * h}, gb);
    gru_b_hh = add("gru.bias_hh", {3 * h}, gb);
    if (cfg.layer_norm) {
      ln_w = add("layer_norm.weight", {h}, -1);  // ones
      ln_b = add("layer_norm.bias", {h}, 0);     // zeros
    }
    if (cfg.shape_embed) {
      // Embedding tables, N(0, 0.1^2) (the one-hot type has norm 1; four rows of norm ~0.1
      // sqrt(hidden) each start as a perturbation of it, not in place of it).
      const char* const tables[] = {"shape.c_out", "shape.c_in", "shape.kernel", "shape.stride"};
      for (std::size_t k = 0; k < 4; ++k) {
        Tensor t = at::empty({ghn::kShapeTableSizes[k], h}, at::kFloat).normal_(0.0, 0.1, gen);
        names.push_back(tables[k]);
        params.push_back(t.requires_grad_(true));
        shape_tab[k] = static_cast<int>(params.size() - 1);
      }
    }
    if (cfg.scale_embed) {
      // Scale and exit-role tables, initialised as the shape tables (after them, so that a
      // GHN without them draws the same initial weights as before they existed).
      auto table = [&](const char* name, std::int64_t rows) {
        Tensor t = at::empty({rows, h}, at::kFloat).normal_(0.0, 0.1, gen);
        names.push_back(name);
        params.push_back(t.requires_grad_(true));
        return static_cast<int>(params.size() - 1);
      };
      scale_tab = table("scale.level", ghn::kScaleTableSize);
      role_tab = table("scale.exit_role", ghn::kExitRoleCount);
    }
    linear("hyper.fc1", h, hh, hyp_w1, hyp_b1);
    linear("hyper.fc2", hh, cfg.outputs(), hyp_w2, hyp_b2);
    adam_m.resize(params.size());
    adam_v.resize(params.size());
  }

  const Tensor& P(int i) const { return params[static_cast<std::size_t>(i)]; }

  void to_device(const at::Device& d) {
    if (d == device) return;
    for (Tensor& p : params) {
      const bool g = p.requires_grad();
      p = p.detach().to(d).requires_grad_(g);
    }
    for (auto* moments : {&adam_m, &adam_v})
      for (Tensor& t : *moments)
        if (t.defined()) t = t.to(d);
    device = d;
  }

  // ----- propagation ---------------------------------------------------------------------

  /// The propagation weights in the layout the step functions use, made once per propagate()
  /// call (gradients flow back to the parameters through these few ops).
  struct Prepared {
    Mlp msg, ve;  ///< M, and M for virtual edges.
    Gru gru;      ///< U.
  };

  Prepared prepare() const {
    Prepared w;
    w.msg = Mlp::make(P(msg_w1), P(msg_b1), P(msg_w2), P(msg_b2));
    if (cfg.virtual_edges) w.ve = Mlp::make(P(ve_w1), P(ve_b1), P(ve_w2), P(ve_b2));
    w.gru = Gru::make(P(gru_w_ih), P(gru_w_hh), P(gru_b_ih), P(gru_b_hh));
    return w;
  }

  /// Sum of messages into `rows` nodes: 1-hop from `buf`, virtual edges from `vbuf`.
  Tensor gather(const Messages& m, std::int64_t rows, const Tensor& buf, const Tensor& vbuf) const {
    Tensor out =
        at::zeros({rows, cfg.hidden}, at::TensorOptions().dtype(at::kFloat).device(device));
    if (m.any) out.index_add_(0, m.dst, buf.index_select(0, m.src));
    if (m.vany) out.index_add_(0, m.vdst, vbuf.index_select(0, m.vsrc) * m.vw);
    return out;
  }

  /// Final embeddings of a batch of graphs and where each architecture vertex is in them.
  struct Embedded {
    Tensor H;  ///< [total, hidden]: the GHN nodes (input nodes included; after layer norm).
    std::shared_ptr<const PlanData> plan;
    std::vector<std::vector<std::int64_t>> vertex_of;  ///< Per graph (empty: the identity).

    /// Row of H of graph k's vertex v.
    std::int64_t row(std::size_t k, std::int64_t v) const {
      return plan->base[k] + (vertex_of[k].empty() ? v : vertex_of[k][static_cast<std::size_t>(v)]);
    }
  };

  /// The shape embeddings of every GHN node of `data` (zero for input nodes), [total, hidden].
  Tensor shape_embedding(const std::vector<const ArchGraph*>& graphs, const PlanData& data) const {
    std::vector<std::int64_t> idx[4];
    std::vector<float> mask(static_cast<std::size_t>(data.total), 0.0f);
    for (auto& v : idx) v.assign(static_cast<std::size_t>(data.total), 0);
    for (std::size_t k = 0; k < graphs.size(); ++k) {
      const ArchGraph& g = *graphs[k];
      for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(g)); ++v) {
        const std::size_t row = static_cast<std::size_t>(data.base[k] + v);
        const std::array<std::int64_t, 4> key = ghn::shape_key(g[v]);
        for (std::size_t t = 0; t < 4; ++t) idx[t][row] = key[t];
        mask[row] = 1.0f;
      }
    }
    Tensor sum;
    for (std::size_t t = 0; t < 4; ++t) {
      Tensor e = P(shape_tab[t]).index_select(0, index_tensor(idx[t], device));
      sum = sum.defined() ? sum + e : e;
    }
    return sum * float_tensor(mask, device).unsqueeze(1);
  }

  /// The scale and exit-role embeddings of every GHN node of `data` (zero for input nodes),
  /// [total, hidden]; roles[k][v] is the exit role of vertex v of graphs[k].
  Tensor scale_embedding(const std::vector<const ArchGraph*>& graphs,
                         const std::vector<std::vector<ghn::ExitRole>>& roles,
                         const PlanData& data) const {
    std::vector<std::int64_t> scale(static_cast<std::size_t>(data.total), 0),
        role(static_cast<std::size_t>(data.total), 0);
    std::vector<float> mask(static_cast<std::size_t>(data.total), 0.0f);
    for (std::size_t k = 0; k < graphs.size(); ++k) {
      const ArchGraph& g = *graphs[k];
      for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(g)); ++v) {
        const std::size_t row = static_cast<std::size_t>(data.base[k] + v);
        scale[row] = ghn::scale_key(g[v]);
        role[row] = static_cast<std::int64_t>(roles[k][static_cast<std::size_t>(v)]);
        mask[row] = 1.0f;
      }
    }
    const Tensor sum = P(scale_tab).index_select(0, index_tensor(scale, device)) +
                       P(role_tab).index_select(0, index_tensor(role, device));
    return sum * float_tensor(mask, device).unsqueeze(1);
  }

  /// Final embeddings of the GHN nodes of a batch of architecture graphs (prune: of their
  /// simplified graphs, see ghn::prune_graph()).
  Embedded embed(const std::vector<const ArchGraph*>& arch_graphs, bool one_at_a_time) const {
    Embedded out;
    std::vector<ghn::GraphView> views;
    std::vector<const ArchGraph*> graphs = arch_graphs;
    out.vertex_of.resize(graphs.size());
    if (cfg.prune) {
      views.reserve(graphs.size());
      for (std::size_t k = 0; k < graphs.size(); ++k) {
        views.push_back(ghn::prune_graph(*graphs[k]));
        graphs[k] = &views.back().graph;
        out.vertex_of[k] = views.back().vertex_of;
      }
    }
    auto data =
        std::make_shared<const PlanData>(ghn::detail::build_plan(graphs, cfg, one_at_a_time));
    Tensor init_add = cfg.shape_embed ? shape_embedding(graphs, *data) : Tensor();
    if (cfg.scale_embed) {
      // Exit roles come from the architecture's graph (pruning changes degrees); a node of the
      // simplified graph takes the strongest role of the vertices folded into it.
      std::vector<std::vector<ghn::ExitRole>> roles(graphs.size());
      for (std::size_t k = 0; k < graphs.size(); ++k) {
        const std::vector<ghn::ExitRole> own = ghn::exit_roles(*arch_graphs[k]);
        if (out.vertex_of[k].empty()) {
          roles[k] = own;
          continue;
        }
        roles[k].assign(boost::num_vertices(*graphs[k]), ghn::ExitRole::None);
        for (std::size_t v = 0; v < own.size(); ++v) {
          ghn::ExitRole& r = roles[k][static_cast<std::size_t>(out.vertex_of[k][v])];
          r = std::max(r, own[v]);
        }
      }
      const Tensor e = scale_embedding(graphs, roles, *data);
      init_add = init_add.defined() ? init_add + e : e;
    }
    Tensor H;
    if (device.is_cpu() && !aten_propagation) {
      std::vector<Tensor> ps = {P(msg_w1),   P(msg_b1),   P(msg_w2),   P(msg_b2),
                                P(gru_w_ih), P(gru_w_hh), P(gru_b_ih), P(gru_b_hh)};
      if (cfg.virtual_edges)
        for (int i : {ve_w1, ve_b1, ve_w2, ve_b2}) ps.push_back(P(i));
      H = ghn::detail::propagate_cpu(data, cfg, ps, init_add);
    } else {
      H = propagate_aten(to_plan(*data, cfg, device), init_add);
    }
    if (cfg.layer_norm) H = at::layer_norm(H, {cfg.hidden}, P(ln_w), P(ln_b), 1e-5);
    out.H = H;
    out.plan = std::move(data);
    return out;
  }

  /// The propagation as ATen ops (other devices than the CPU; the CPU engine's reference).
  /// `init_add`: undefined, or added to the initial states.
  Tensor propagate_aten(const Plan& plan, const Tensor& init_add) const {
    Tensor H = init_add.defined() ? plan.init + init_add : plan.init.clone();
    const auto opts = H.options();
    const Prepared w = prepare();
    Tensor buf = at::zeros({plan.total, cfg.hidden}, opts);
    Tensor vbuf = cfg.virtual_edges ? at::zeros({plan.total, cfg.hidden}, opts) : Tensor();
    for (const SegmentStep& st : plan.steps) {
      if (st.slots > 0) {
        // Stacked GHN: the mean final embedding of segment s-1 is the initial state of
        // segment s's input node (which stands for everything outside the segment).
        Tensor sums = at::zeros({st.slots, cfg.hidden}, opts)
                          .index_add_(0, st.prev_slot, H.index_select(0, st.prev_nodes));
        Tensor means = sums / st.prev_count;
        H.index_add_(0, st.inputs, means.index_select(0, st.input_slot));
      }
      for (std::int64_t t = 0; t < cfg.steps; ++t) {
        if (cfg.propagation == Propagation::Synchronous) {
          for (const Messages* m : {&st.sync_forward, &st.sync_backward}) {
            Tensor hs = H.index_select(0, st.nodes);
            Tensor ms = m->any ? w.msg(hs) : Tensor();
            Tensor vs = m->vany ? w.ve(hs) : Tensor();
            H.index_copy_(0, st.nodes, w.gru(gather(*m, st.count, ms, vs), hs));
          }
          continue;
        }
        for (const std::vector<Group>* pass : {&st.forward, &st.backward}) {
          for (const Group& g : *pass) {
            Tensor h = w.gru(gather(g.msg, g.size, buf, vbuf), H.index_select(0, g.idx));
            H.index_copy_(0, g.idx, h);
            if (g.feeds) {
              buf.index_copy_(0, g.idx, w.msg(h));
              if (cfg.virtual_edges) vbuf.index_copy_(0, g.idx, w.ve(h));
            }
          }
        }
      }
    }
    return H;
  }

  // ----- hypernetwork --------------------------------------------------------------------

  /// Slot of a parameter in H's output: 0 the 4-D block, 1 vector row 0, 2 vector row 1.
  static int slot_of(const ParamShape& p) {
    if (p.shape.size() == 4 || p.shape.size() == 2) return 0;
    if (p.shape.size() == 1) {
      const std::string suffix = ".bias";
      const bool bias = p.name.size() >= suffix.size() &&
                        p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0;
      return bias ? 2 : 1;
    }
    throw Error(cat("ghn: cannot generate parameter '", p.name, "' of shape ", shape_text(p.shape),
                    " (only 1-D, 2-D and 4-D parameters are supported)"));
  }

  /// Indices of H's outputs forming a parameter of `shape` in `slot` (sliced, or tiled where
  /// the target is larger), in the parameter's row-major order.
  const std::vector<std::int64_t>& output_index(int slot, const std::vector<std::int64_t>& shape) {
    auto key = std::make_pair(slot, shape);
    auto it = index_cache.find(key);
    if (it != index_cache.end()) return it->second;
    const std::int64_t C = cfg.max_channels, K = cfg.max_kernel;
    std::vector<std::int64_t> idx;
    if (slot == 0) {
      const std::int64_t o = shape[0], i = shape[1];
      const std::int64_t kh = shape.size() == 4 ? shape[2] : 1,
                         kw = shape.size() == 4 ? shape[3] : 1;
      idx.reserve(static_cast<std::size_t>(o * i * kh * kw));
      for (std::int64_t a = 0; a < o; ++a)
        for (std::int64_t b = 0; b < i; ++b)
          for (std::int64_t y = 0; y < kh; ++y)
            for (std::int64_t x = 0; x < kw; ++x)
              idx.push_back(((a % C) * C + (b % C)) * K * K + (y % K) * K + (x % K));
    } else {
      for (std::int64_t c = 0; c < shape[0]; ++c)
        idx.push_back(cfg.block4() + (slot - 1) * C + (c % C));
    }
    return index_cache.emplace(key, std::move(idx)).first->second;
  }

  /// GHN-2's normalisation of predicted parameters (ppuda `_normalize`): fan-in scaling of
  /// weight tensors (beta 1 for depthwise convs, 2 otherwise), 2*sigmoid(x/2) for norm
  /// weights, tanh(x/5) for biases.
  static Tensor normalize(const Tensor& w, int slot, const std::vector<std::int64_t>& shape) {
    if (slot == 1) return 2.0 * at::sigmoid(0.5 * w);
    if (slot == 2) return at::tanh(0.2 * w);
    std::int64_t fan_in = 1;
    for (std::size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
    const double beta = (shape.size() == 4 && shape[1] == 1) ? 1.0 : 2.0;
    return w * std::sqrt(beta / static_cast<double>(std::max<std::int64_t>(fan_in, 1)));
  }

  std::vector<WeightMap> generate(const std::vector<const Architecture*>& archs,
                                  const std::vector<std::vector<ParamShape>>& shapes,
                                  bool one_at_a_time = false) {
    HYPERNAS_CHECK(archs.size() == shapes.size(), "ghn: ", archs.size(), " architectures but ",
                   shapes.size(), " parameter lists");
    std::vector<const ArchGraph*> graphs;
    for (const Architecture* a : archs) {
      HYPERNAS_CHECK(boost::num_vertices(a->graph) > 0, "ghn: architecture '", a->text,
                     "' of space '", a->space, "' has an empty graph");
      graphs.push_back(&a->graph);
    }
    const Embedded embedded = embed(graphs, one_at_a_time);
    const Tensor& H = embedded.H;

    // Which node each parameter belongs to, grouped by (slot, shape).
    struct Target {
      std::size_t arch;
      const std::string* name;
      std::int64_t row;  // row in the parameterised-node list
    };
    std::map<std::pair<int, std::vector<std::int64_t>>, std::vector<Target>> groups;
    std::vector<std::int64_t> pnodes;
    std::unordered_map<std::int64_t, std::int64_t> prow;
    for (std::size_t a = 0; a < archs.size(); ++a) {
      const ArchGraph& g = archs[a]->graph;
      std::unordered_map<std::string, std::int64_t> by_name;
      for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(g)); ++v)
        by_name.emplace(g[v].name, v);
      for (const ParamShape& p : shapes[a]) {
        auto it = by_name.find(p.node);
        HYPERNAS_CHECK(it != by_name.end(), "ghn: parameter '", p.name, "' belongs to node '",
                       p.node, "', which architecture '", archs[a]->text, "' does not have");
        for (std::int64_t d : p.shape)
          HYPERNAS_CHECK(d > 0, "ghn: parameter '", p.name, "' has shape ", shape_text(p.shape));
        const std::int64_t global = embedded.row(a, it->second);
        auto [r, fresh] = prow.emplace(global, static_cast<std::int64_t>(pnodes.size()));
        if (fresh) pnodes.push_back(global);
        groups[{slot_of(p), p.shape}].push_back({a, &p.name, r->second});
      }
    }
    std::vector<WeightMap> out(archs.size());
    if (pnodes.empty()) return out;
    const Tensor hidden =
        at::relu(at::linear(H.index_select(0, index_tensor(pnodes, device)), P(hyp_w1), P(hyp_b1)));
    // The rows of H's last layer every group needs, fetched in one gather (its backward is
    // one scatter-add; index_select's would add row by row, once per group).
    std::vector<std::int64_t> all, sizes;
    for (const auto& [key, targets] : groups) {
      const std::vector<std::int64_t>& idx = output_index(key.first, key.second);
      all.insert(all.end(), idx.begin(), idx.end());
      sizes.push_back(static_cast<std::int64_t>(idx.size()));
    }
    const Tensor rows_all = index_tensor(all, device);
    const std::vector<Tensor> w2 =
        at::gather(P(hyp_w2), 0, rows_all.unsqueeze(1).expand({rows_all.size(0), cfg.hyper_hidden}))
            .split_with_sizes(sizes);
    const std::vector<Tensor> b2 = at::gather(P(hyp_b2), 0, rows_all).split_with_sizes(sizes);
    std::size_t gi = 0;
    for (const auto& [key, targets] : groups) {
      const auto& [slot, shape] = key;
      std::vector<std::int64_t> rows;
      for (const Target& t : targets) rows.push_back(t.row);
      Tensor x = rows.size() == pnodes.size() && std::is_sorted(rows.begin(), rows.end()) &&
                         rows.front() == 0
                     ? hidden
                     : hidden.index_select(0, index_tensor(rows, device));
      Tensor w = at::linear(x, w2[gi], b2[gi]);
      ++gi;
      if (cfg.fan_in_norm) w = normalize(w, slot, shape);
      std::vector<std::int64_t> full = {static_cast<std::int64_t>(targets.size())};
      full.insert(full.end(), shape.begin(), shape.end());
      std::vector<Tensor> parts = w.view(full).unbind(0);
      for (std::size_t k = 0; k < targets.size(); ++k)
        out[targets[k].arch][*targets[k].name] = parts[k];
    }
    return out;
  }

  // ----- optimiser -----------------------------------------------------------------------

  /// One Adam step at learning rate cfg.lr * lr_factor, after clipping the gradients' global
  /// norm to cfg.grad_clip (when > 0, as torch.nn.utils.clip_grad_norm_).
  void adam_update(double lr_factor = 1.0) {
    plugins::clip_grad_norm(params, cfg.grad_clip);
    plugins::AdamSettings adam;  // betas (0.9, 0.999), eps 1e-8: torch's defaults
    adam.lr = cfg.lr * lr_factor;
    adam.weight_decay = cfg.weight_decay;
    ++adam_step;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].grad().defined())
        plugins::adam_step(params[i], params[i].grad(), adam_m[i], adam_v[i], adam_step, adam);
    for (Tensor& p : params)
      if (p.grad().defined()) p.mutable_grad() = Tensor();
  }
};

// =============================================================================================

const ParamTable& GhnSurrogate::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_int("hidden", 32,
              "node embedding size (GRU state, message MLP width); >= 18, the node types", 18,
              1024);
    t.add_int("hyper_hidden", 64, "hidden width of the hypernetwork MLP H", 1, 4096);
    t.add_int("steps", 5, "propagation phases T (each: a forward and a backward pass)", 0, 100);
    t.add_string("propagation", "forward-backward",
                 "forward-backward (asynchronous, the paper's) or synchronous (the ablation)",
                 {"forward-backward", "synchronous"});
    t.add_bool("stacked", true,
               "stacked GHN: propagate per cell (OpNode::module), passing each cell's mean "
               "embedding to the next");
    t.add_real("lr", 1e-3, "Adam learning rate", 0.0, 10.0);
    t.add_real("weight_decay", 1e-5, "Adam L2 weight decay (ppuda: 1e-5)", 0.0, 1.0);
    t.add_int("meta_batch", 1, "architectures per image batch in fit (GHN-2 meta-batch)", 1, 64);
    t.add_bool("fan_in_norm", true, "GHN-2: scale predicted weights by fan-in (ppuda)");
    t.add_bool("layer_norm", false, "GHN-2: layer norm on the final node embeddings");
    t.add_bool("virtual_edges", false,
               "GHN-2: extra messages from nodes up to max_shortest_path edges away, "
               "weighted by 1/distance");
    t.add_int("max_shortest_path", 50, "virtual edges: largest path length", 1, 1000);
    t.add_int("max_channels", 64,
              "channels of the maximal predicted tensor (larger parameters tile it)", 1, 512);
    t.add_int("max_kernel", 3, "kernel size of the maximal predicted tensor", 1, 11);
    t.add_int("init_seed", 0, "seed of the GHN's initial weights", 0);
    t.add_int("log_every", 50, "fit: log the mean loss every this many steps", 1).score_neutral();
    t.add_real("grad_clip", 5.0,
               "fit: clip the gradients' global norm to this before each Adam step (0: off; "
               "ppuda: 5)",
               0.0, 1e6);
    t.add_string("lr_schedule", "cosine",
                 "fit: constant, or cosine (from lr to 0 over the steps of each fit call)",
                 {"constant", "cosine"});
    t.add_string("handoff", "input",
                 "stacked: where a module's mean embedding enters the next module: its input "
                 "node (the paper), or all (also added to the initial state of every node)",
                 {"input", "all"});
    t.add_string("score_metric", "accuracy",
                 "score: validation accuracy, or loss (the negative mean cross-entropy)",
                 {"accuracy", "loss"});
    t.add_int("finetune_steps", 0,
              "score: SGD steps (momentum 0.9, batch 64, the train split in order) from the "
              "generated weights before scoring (GHN-3's fine-tuning; 0: score them as they are)",
              0, 100000);
    t.add_real("finetune_lr", 0.02, "score: learning rate of the fine-tuning steps", 0.0, 10.0);
    t.add_bool("shape_embed", false,
               "GHN-2: add learned embeddings of each node's output and input channels, kernel "
               "size and stride to its initial state");
    t.add_bool("scale_embed", false,
               "add learned embeddings of each node's spatial scale (OpNode::scale) and exit "
               "role (none, exit source, exit head) to its initial state (multi-exit, "
               "multi-scale networks)");
    t.add_string("exit_weights", "",
                 "fit: weights of the exits' cross-entropies in an architecture's loss, "
                 "comma-separated by exit position, the last repeating (\"\": their mean)");
    t.add_bool("prune", false,
               "propagate over a simplified graph: no dead branches (nodes that cannot reach "
               "an output: the last node or an exit), relu and bn folded into their conv (one node "
               "per paper op)");
    t.add_string("preset", "tuned",
                 "tuned (the declared defaults), or paper (Zhang et al. 2019: no GHN-2 options, "
                 "no clipping or schedule; options left at their default take the paper's value)",
                 {"tuned", "paper"});
    return t;
  }();
  return table;
}

GhnSurrogate::GhnSurrogate(const Options& options) : impl_(std::make_unique<Impl>(options)) {}

GhnSurrogate::~GhnSurrogate() = default;

std::uint32_t GhnSurrogate::capabilities() const {
  return kTrainable | kGeneratesWeights | kGraphConditioned | kMultiExit | kNeedsData |
         kReadsEvalBatch | kReadsEvalImages;
}

const std::vector<double>& GhnSurrogate::loss_curve() const { return impl_->curve; }

const Options& GhnSurrogate::options() const { return impl_->options; }

std::int64_t GhnSurrogate::parameter_count() const {
  std::int64_t n = 0;
  for (const Tensor& p : impl_->params) n += p.numel();
  return n;
}

namespace {

const Executor& need_executor(Context& ctx) {
  const Executor* e = ctx.executor();
  HYPERNAS_CHECK(e != nullptr,
                 "ghn: this kernel has no graph executor; the ghn surrogate needs "
                 "one to run architectures with generated weights");
  return *e;
}

}  // namespace

std::vector<WeightMap> GhnSurrogate::generate_batch(
    const std::vector<const Architecture*>& archs,
    const std::vector<std::vector<ParamShape>>& shapes, bool with_grad) {
  if (with_grad) return impl_->generate(archs, shapes);
  c10::NoGradGuard no_grad;
  return impl_->generate(archs, shapes);
}

at::Tensor GhnSurrogate::node_embeddings(const Architecture& arch, bool one_at_a_time) {
  c10::NoGradGuard no_grad;
  const std::int64_t vertices = static_cast<std::int64_t>(boost::num_vertices(arch.graph));
  const auto embedded = impl_->embed({&arch.graph}, one_at_a_time);
  std::vector<std::int64_t> rows;
  for (std::int64_t v = 0; v < vertices; ++v) rows.push_back(embedded.row(0, v));
  return embedded.H.index_select(0, index_tensor(rows, embedded.H.device())).to(at::kCPU);
}

void GhnSurrogate::use_aten_propagation(bool on) { impl_->aten_propagation = on; }

std::vector<std::pair<std::string, at::Tensor>> GhnSurrogate::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t i = 0; i < impl_->params.size(); ++i)
    out.emplace_back(impl_->names[i], impl_->params[i]);
  return out;
}

WeightMap GhnSurrogate::generate(Context& ctx, const Architecture& arch, const SearchSpace& space) {
  const Executor& exec = need_executor(ctx);
  impl_->to_device(ctx.device());
  Architecture storage;
  const Architecture& a = plugins::with_graph(arch, &space, storage, "ghn");
  return generate_batch({&a}, {exec.parameters(a)}, false)[0];
}

void GhnSurrogate::fit(Context& ctx, const FitRequest& req) {
  HYPERNAS_CHECK(req.space != nullptr, "ghn: fit needs a search space to sample from");
  HYPERNAS_CHECK(req.data != nullptr, "ghn: fit needs a dataset");
  HYPERNAS_CHECK(req.batch_size >= 1, "ghn: fit expects batch_size >= 1, got ", req.batch_size);
  HYPERNAS_CHECK(req.epochs >= 0, "ghn: fit expects epochs >= 0, got ", req.epochs);
  const Executor& exec = need_executor(ctx);
  Impl& m = *impl_;
  m.to_device(ctx.device());
  const std::int64_t n = req.data->size(Split::Train);
  HYPERNAS_CHECK(n > 0, "ghn: dataset '", req.data->name(), "' has an empty train split");
  BatchOptions bo;
  bo.batch_size = req.batch_size;
  bo.shuffle = true;
  bo.augment = true;
  bo.drop_last = n >= req.batch_size;  // equal batches for batch-statistics BN
  const std::int64_t per_epoch = bo.drop_last ? n / req.batch_size : 1;
  std::int64_t total = per_epoch * req.epochs;
  if (req.max_steps > 0) total = std::min(total, req.max_steps);
  if (total <= 0) return;

  Rng& rng = ctx.rng();
  auto progress = ctx.progress("ghn fit", total);
  std::int64_t step = 0;
  double window = 0;
  std::int64_t window_n = 0;
  auto t_window = std::chrono::steady_clock::now();
  bool stop = false;
  for (std::int64_t epoch = 0; epoch < req.epochs && step < total && !stop; ++epoch) {
    auto stream = req.data->batches(Split::Train, bo, rng);
    while (step < total && !stop) {
      ctx.check_cancelled();
      std::optional<Batch> batch = stream->next();
      if (!batch) break;
      // Sample the meta-batch, generate all weights in one batched propagation.
      std::vector<Architecture> archs;
      for (std::int64_t k = 0; k < m.cfg.meta_batch; ++k) archs.push_back(req.space->sample(rng));
      std::vector<const Architecture*> ptrs;
      std::vector<std::vector<ParamShape>> shapes;
      for (const Architecture& a : archs) {
        ptrs.push_back(&a);
        shapes.push_back(exec.parameters(a));
      }
      const std::int64_t global_step = static_cast<std::int64_t>(m.curve.size()) + 1;
      std::vector<WeightMap> weights = m.generate(ptrs, shapes);
      Tensor loss;
      for (std::size_t k = 0; k < archs.size(); ++k) {
        const std::vector<Tensor> logits = exec.forward(archs[k], weights[k], batch->images);
        HYPERNAS_CHECK(!logits.empty(), "ghn: the executor returned no output for '",
                       abbreviate(archs[k].text), "'");
        Tensor l = ghn::exit_loss(logits, batch->labels, m.cfg.exit_weights);
        const double value = l.item<double>();
        HYPERNAS_CHECK(std::isfinite(value), "ghn: fit step ", global_step, " (epoch ", epoch + 1,
                       "): the loss is ", value, " on architecture '", abbreviate(archs[k].text),
                       "' of space '", archs[k].space, "'");
        loss = loss.defined() ? loss + l : l;
      }
      loss = loss / static_cast<double>(archs.size());
      loss.backward();
      const double lr_factor =
          m.cfg.cosine
              ? 0.5 *
                    (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total)))
              : 1.0;
      m.adam_update(lr_factor);
      const double value = loss.item<double>();
      m.curve.push_back(value);
      ++step;
      window += value;
      ++window_n;
      progress->advance(1, cat("loss ", value));
      if (step % m.cfg.log_every == 0 || step == total) {
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
        ctx.log().info(cat("step ", step, "/", total, ": mean loss ", window / window_n,
                           " over the last ", window_n, " steps (", secs / window_n, " s/step)"));
        window = 0;
        window_n = 0;
        t_window = std::chrono::steady_clock::now();
      }
      if (!ctx.notify("fit_step", {{"step", static_cast<double>(global_step)}, {"loss", value}})) {
        ctx.log().info(cat("fit stopped by the script's callback after step ", step));
        stop = true;
      }
    }
  }
  progress->finish();
}

namespace {

/// finetune_steps SGD steps (momentum 0.9, batch 64, batch-statistics batch norm; the mean of the
/// exits' cross-entropies) on the train split in its stored order (the same images for every
/// architecture: no seed), starting from `weights`, which are replaced by the result.
void finetune(Context& ctx, const Executor& exec, const Architecture& arch, WeightMap& weights,
              const Dataset& data, std::int64_t steps, double lr) {
  at::AutoGradMode grad(true);
  std::vector<Tensor> params, velocity;
  for (auto& [name, w] : weights) {
    w = w.detach().clone().requires_grad_(true);
    params.push_back(w);  // the same tensor: the steps update the map's entries in place
  }
  BatchOptions bo;
  bo.batch_size = 64;
  std::int64_t done = 0;
  while (done < steps) {
    auto stream = data.batches(Split::Train, bo);
    bool any = false;
    while (done < steps) {
      ctx.check_cancelled();
      std::optional<Batch> b = stream->next();
      if (!b) break;
      any = true;
      const std::vector<Tensor> logits = exec.forward(arch, weights, b->images);
      HYPERNAS_CHECK(!logits.empty(), "ghn: the executor returned no output for '",
                     abbreviate(arch.text), "'");
      Tensor loss = ghn::exit_loss(logits, b->labels, {});  // the mean over the exits
      const double value = loss.item<double>();
      HYPERNAS_CHECK(std::isfinite(value), "ghn: fine-tuning step ", done + 1, " of '",
                     abbreviate(arch.text), "': the loss is ", value);
      loss.backward();
      plugins::sgd_step(params, velocity, {lr, 0.9, false, 0.0});
      ++done;
    }
    HYPERNAS_CHECK(any, "ghn: dataset '", data.name(), "' has an empty train split");
  }
  for (auto& [name, w] : weights) w = w.detach();
}

}  // namespace

std::vector<Score> GhnSurrogate::score(Context& ctx, const ScoreRequest& req) {
  HYPERNAS_CHECK(req.data != nullptr, "ghn: score needs a dataset (its valid split)");
  HYPERNAS_CHECK(req.batch_size >= 1, "ghn: score expects batch_size >= 1, got ", req.batch_size);
  const Executor& exec = need_executor(ctx);
  Impl& m = *impl_;
  m.to_device(ctx.device());
  c10::NoGradGuard no_grad;

  BatchOptions bo;
  bo.batch_size = req.batch_size;
  bo.shuffle = false;
  bo.limit = req.max_images;
  Rng unused(0);  // no shuffling: the stream draws nothing
  const std::int64_t valid = req.data->size(Split::Valid);
  HYPERNAS_CHECK(valid > 0, "ghn: dataset '", req.data->name(), "' has an empty valid split");
  const ProblemSpec spec = req.data->spec();
  const std::int64_t images = req.max_images > 0 ? std::min(req.max_images, valid) : valid;
  const bool cache = images * spec.channels * spec.height * spec.width <= kCacheFloats;
  std::vector<Batch> cached;
  if (cache) {
    auto stream = req.data->batches(Split::Valid, bo, unused);
    while (auto b = stream->next()) cached.push_back(std::move(*b));
  }

  std::vector<Score> out;
  constexpr std::size_t kChunk = 8;  // architectures generated per batched propagation
  for (std::size_t start = 0; start < req.archs.size(); start += kChunk) {
    ctx.check_cancelled();
    const std::size_t end = std::min(req.archs.size(), start + kChunk);
    std::vector<Architecture> storage(end - start);
    std::vector<const Architecture*> archs;
    std::vector<std::vector<ParamShape>> shapes;
    for (std::size_t i = start; i < end; ++i) {
      HYPERNAS_CHECK(req.archs[i] != nullptr, "ghn: score got a null architecture");
      archs.push_back(&plugins::with_graph(*req.archs[i], req.space, storage[i - start], "ghn"));
      shapes.push_back(exec.parameters(*archs.back()));
    }
    std::vector<WeightMap> weights = m.generate(archs, shapes);
    for (std::size_t k = 0; k < archs.size(); ++k) {
      if (m.cfg.finetune_steps > 0)
        finetune(ctx, exec, *archs[k], weights[k], *req.data, m.cfg.finetune_steps,
                 m.cfg.finetune_lr);
      // One forward per batch gives every exit (the last is the final output).
      const std::vector<std::int64_t> flops = exit_flops(archs[k]->graph, spec.height);
      double loss = 0;
      std::vector<std::int64_t> correct(flops.size(), 0);
      std::int64_t count = 0;
      auto run = [&](const Batch& b) {
        const std::vector<Tensor> logits = exec.forward(*archs[k], weights[k], b.images);
        HYPERNAS_CHECK(logits.size() == flops.size(), "ghn: the executor returned ", logits.size(),
                       " outputs for '", abbreviate(archs[k]->text), "', whose graph has ",
                       flops.size(), " exits");
        const Tensor& y = logits.back();
        loss += at::cross_entropy_loss(y, b.labels, {}, at::Reduction::Sum).item<double>();
        for (std::size_t e = 0; e < logits.size(); ++e)
          correct[e] += logits[e].argmax(1).eq(b.labels).sum().item<std::int64_t>();
        count += b.labels.size(0);
      };
      if (cache) {
        for (const Batch& b : cached) run(b);
      } else {
        auto stream = req.data->batches(Split::Valid, bo, unused);
        while (auto b = stream->next()) run(*b);
      }
      HYPERNAS_CHECK(count > 0, "ghn: no validation images were scored");
      Score s;
      for (std::size_t e = 0; e < flops.size(); ++e)
        s.exits.push_back({static_cast<double>(correct[e]) / static_cast<double>(count), flops[e]});
      const double accuracy = s.exits.back().accuracy;
      s.extra["accuracy"] = accuracy;
      s.extra["loss"] = loss / static_cast<double>(count);
      s.value = m.cfg.score_loss ? -s.extra["loss"] : accuracy;
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::string GhnSurrogate::save_state() const {
  const Impl& m = *impl_;
  plugins::BlobWriter w;
  w.str(model_signature(m.options));
  w.str(m.options.canonical());
  w.pod<std::int64_t>(m.adam_step);
  w.pod<std::uint64_t>(m.curve.size());
  for (double v : m.curve) w.pod<double>(v);
  std::uint32_t count = static_cast<std::uint32_t>(m.params.size());
  for (std::size_t i = 0; i < m.params.size(); ++i) count += m.adam_m[i].defined() ? 2 : 0;
  w.pod<std::uint32_t>(count);
  auto tensor = [&w](const std::string& name, const Tensor& t) {
    w.str(name);
    w.float_tensor(t);
  };
  for (std::size_t i = 0; i < m.params.size(); ++i) tensor(m.names[i], m.params[i]);
  for (std::size_t i = 0; i < m.params.size(); ++i)
    if (m.adam_m[i].defined()) {
      tensor("adam.m." + m.names[i], m.adam_m[i]);
      tensor("adam.v." + m.names[i], m.adam_v[i]);
    }
  return plugins::seal_blob(kBlobFormat, w.data());
}

void GhnSurrogate::load_state(const std::string& blob) {
  Impl& m = *impl_;
  const plugins::OpenedBlob opened = plugins::open_blob(kBlobFormat, blob);
  const std::uint32_t version = opened.version;
  plugins::BlobReader r(opened.payload, "ghn");
  const std::string signature = r.str("the option signature");
  const std::string all_options = r.str("the options");
  const std::string mine = model_signature(m.options);
  if (version == 1) {
    const auto theirs = split_signature(signature);
    auto it = theirs.find("stacked");
    HYPERNAS_CHECK(it == theirs.end() || it->second != "true",
                   "ghn: state blob has format version 1 and was saved by a stacked GHN: in "
                   "that version a module had no input node (the edges entering it were "
                   "dropped), so its trained weights do not fit this build's stacked GHN "
                   "(format ",
                   kFormatVersion, "); train the GHN again");
  }
  auto theirs = split_signature(signature);
  for (const auto& [key, value] : legacy_model_values()) theirs.emplace(key, value);
  if (theirs != split_signature(mine)) {
    const auto ours = split_signature(mine);
    std::string diff;
    for (const auto& [k, v] : ours) {
      auto it = theirs.find(k);
      const std::string other = it == theirs.end() ? "(unset)" : it->second;
      if (other != v) diff += cat(diff.empty() ? "" : ", ", k, "=", other, " (here ", v, ")");
    }
    throw Error(cat("ghn: the state was saved by a GHN with other model options: ", diff,
                    "; create the surrogate with the saved options (", signature, ")"));
  }
  const std::int64_t adam_step = r.pod<std::int64_t>("the optimiser step");
  const std::uint64_t curve_n = r.pod<std::uint64_t>("the loss curve length");
  r.check(curve_n <= r.size() / sizeof(double), "loss curve of ", curve_n, " values");
  std::vector<double> curve;
  for (std::uint64_t i = 0; i < curve_n; ++i) curve.push_back(r.pod<double>("the loss curve"));
  const std::uint32_t count = r.pod<std::uint32_t>("the tensor count");
  std::map<std::string, Tensor> tensors;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string name = r.str("a tensor name");
    tensors[name] = r.float_tensor(name);
  }
  r.finish("the last tensor");
  std::vector<Tensor> values(m.params.size()), moments_m(m.params.size()),
      moments_v(m.params.size());
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    auto it = tensors.find(m.names[i]);
    HYPERNAS_CHECK(it != tensors.end(), "ghn: state blob lacks tensor '", m.names[i], "'");
    HYPERNAS_CHECK(it->second.sizes() == m.params[i].sizes(), "ghn: state tensor '", m.names[i],
                   "' has shape ", it->second.sizes(), ", expected ", m.params[i].sizes());
    values[i] = it->second;
    auto mi = tensors.find("adam.m." + m.names[i]);
    auto vi = tensors.find("adam.v." + m.names[i]);
    if (mi != tensors.end() && vi != tensors.end()) {
      HYPERNAS_CHECK(mi->second.sizes() == m.params[i].sizes() &&
                         vi->second.sizes() == m.params[i].sizes(),
                     "ghn: state blob's Adam moments of '", m.names[i], "' have the wrong shape");
      moments_m[i] = mi->second.to(m.device);
      moments_v[i] = vi->second.to(m.device);
    }
  }
  // Everything checked: commit.
  {
    c10::NoGradGuard no_grad;
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      m.params[i].copy_(values[i]);
      if (m.params[i].grad().defined()) m.params[i].mutable_grad() = Tensor();
    }
  }
  m.adam_m = std::move(moments_m);
  m.adam_v = std::move(moments_v);
  m.adam_step = adam_step;
  m.curve = std::move(curve);
  (void)all_options;
}

}  // namespace hypernas
