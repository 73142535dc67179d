/// @file ghn_engine.cpp
/// @brief Propagation on the CPU with plain loops and a hand-written backward pass.
///
/// The propagation is a chain of about a thousand tiny updates (a few nodes x 32 features
/// each): run as ATen ops, nearly all of its time goes to per-op and autograd overhead. This
/// engine runs the same arithmetic as the ATen propagation in ghn.cpp (the reference, used on
/// other devices and compared with this one in the tests) over plain arrays, records what its
/// backward needs on a tape, and attaches one autograd node that backpropagates through the
/// whole propagation.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/autograd/function.h>

#include "ghn_internal.h"

namespace hypernas::ghn::detail {

namespace {

using at::Tensor;

/// y[r, o] = b[o] + sum_i W[o, i] x[r, i] for W [out, in], x [rows, in], y [rows, out].
void linear_rows(const float* x, std::int64_t rows, std::int64_t in, const float* W, const float* b,
                 std::int64_t out, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * in;
    float* yr = y + r * out;
    for (std::int64_t o = 0; o < out; ++o) {
      const float* w = W + o * in;
      float acc = 0;
      for (std::int64_t i = 0; i < in; ++i) acc += w[i] * xr[i];
      yr[o] = acc + b[o];
    }
  }
}

/// Backward of linear_rows for output gradients gy: gW += gy^T x, gb += sum of gy rows, and
/// gx += gy W (gx may be null).
void linear_rows_backward(const float* x, const float* gy, std::int64_t rows, std::int64_t in,
                          std::int64_t out, const float* W, float* gW, float* gb, float* gx) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * in;
    const float* gr = gy + r * out;
    float* gxr = gx ? gx + r * in : nullptr;
    for (std::int64_t o = 0; o < out; ++o) {
      const float g = gr[o];
      if (g == 0.0f) continue;
      gb[o] += g;
      float* gw = gW + o * in;
      for (std::int64_t i = 0; i < in; ++i) gw[i] += g * xr[i];
      if (gxr) {
        const float* w = W + o * in;
        for (std::int64_t i = 0; i < in; ++i) gxr[i] += g * w[i];
      }
    }
  }
}

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

/// Forward and backward of the propagation of one plan on the CPU.
class CpuPropagation {
 public:
  /// `params`: message MLP w1 b1 w2 b2, GRU w_ih w_hh b_ih b_hh, then (virtual edges) the
  /// second MLP w1 b1 w2 b2; `init_add`: undefined, or added to the initial states. With
  /// `record`, the forward keeps what backward() needs.
  CpuPropagation(std::shared_ptr<const PlanData> plan, const Config& cfg,
                 const std::vector<Tensor>& params, const Tensor& init_add, bool record)
      : plan_(std::move(plan)), cfg_(cfg), h_(cfg.hidden), record_(record) {
    for (const Tensor& p : params) w_.push_back(p.detach().to(at::kCPU, at::kFloat).contiguous());
    if (init_add.defined()) {
      HYPERNAS_CHECK(init_add.dim() == 2 && init_add.size(0) == plan_->total &&
                         init_add.size(1) == h_,
                     "ghn: internal error: initial-state term of shape ", init_add.sizes(), " for ",
                     plan_->total, " nodes");
      init_add_ = init_add.detach().to(at::kCPU, at::kFloat).contiguous();
    }
  }

  /// Final embeddings [total, hidden] (a new CPU tensor without history).
  Tensor forward() {
    const std::int64_t n = plan_->total;
    H_.assign(static_cast<std::size_t>(n * h_), 0.0f);
    for (std::int64_t v = 0; v < n; ++v)
      if (plan_->types[v] >= 0) H_[v * h_ + plan_->types[v]] = 1.0f;  // input nodes: zeros
    if (init_add_.defined()) {
      const float* a = init_add_.data_ptr<float>();
      for (std::size_t i = 0; i < H_.size(); ++i) H_[i] += a[i];
    }
    buf_.assign(H_.size(), 0.0f);
    if (cfg_.virtual_edges) vbuf_.assign(H_.size(), 0.0f);
    for (std::size_t s = 0; s < plan_->steps.size(); ++s) {
      const StepBuild& st = plan_->steps[s];
      if (!st.prev_count.empty()) handoff(s);
      for (std::int64_t t = 0; t < cfg_.steps; ++t) {
        if (cfg_.propagation == Propagation::Synchronous) {
          for (const GroupBuild& g : st.sync) {
            if (!g.msg.src.empty() || !g.msg.vsrc.empty()) message(st.nodes);
            update(g);
          }
          continue;
        }
        for (const std::vector<GroupBuild>* pass : {&st.forward, &st.backward})
          for (const GroupBuild& g : *pass) {
            update(g);
            if (g.feeds) message(g.idx);
          }
      }
    }
    Tensor out = at::empty({n, h_}, at::kFloat);
    std::memcpy(out.data_ptr<float>(), H_.data(), H_.size() * sizeof(float));
    return out;
  }

  /// Gradients of the parameters (in the constructor's order), then of `init_add` when it is
  /// defined, for output gradient `grad`.
  std::vector<Tensor> backward(const Tensor& grad) {
    HYPERNAS_CHECK(record_, "ghn: internal error: backward through an unrecorded propagation");
    const Tensor g = grad.to(at::kCPU, at::kFloat).contiguous();
    dH_.assign(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
    dbuf_.assign(dH_.size(), 0.0f);
    if (cfg_.virtual_edges) dvbuf_.assign(dH_.size(), 0.0f);
    gw_.clear();
    for (const Tensor& w : w_) gw_.emplace_back(static_cast<std::size_t>(w.numel()), 0.0f);
    for (auto it = tape_.rbegin(); it != tape_.rend(); ++it) {
      switch (it->kind) {
        case Entry::Update: update_backward(*it); break;
        case Entry::Message: message_backward(*it); break;
        case Entry::Handoff: handoff_backward(*it); break;
      }
    }
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < w_.size(); ++i) {
      Tensor t = at::empty(w_[i].sizes(), at::kFloat);
      std::memcpy(t.data_ptr<float>(), gw_[i].data(), gw_[i].size() * sizeof(float));
      out.push_back(grad.device().is_cpu() ? t : t.to(grad.device()));
    }
    if (init_add_.defined()) {  // what is left in dH_ is the gradient of the initial states
      Tensor t = at::empty({plan_->total, h_}, at::kFloat);
      std::memcpy(t.data_ptr<float>(), dH_.data(), dH_.size() * sizeof(float));
      out.push_back(grad.device().is_cpu() ? t : t.to(grad.device()));
    }
    return out;
  }

 private:
  enum Param { kW1 = 0, kB1, kW2, kB2, kWih, kWhh, kBih, kBhh, kVW1, kVB1, kVW2, kVB2 };
  struct Entry {
    enum Kind { Update, Message, Handoff } kind;
    const GroupBuild* group;                 ///< Update
    const std::vector<std::int64_t>* nodes;  ///< Message
    std::size_t step;                        ///< Handoff
    std::size_t offset;                      ///< Into data_.
  };

  const float* W(int i) const { return w_[static_cast<std::size_t>(i)].data_ptr<float>(); }
  float* G(int i) { return gw_[static_cast<std::size_t>(i)].data(); }
  float* row(std::vector<float>& a, std::int64_t v) { return a.data() + v * h_; }

  /// Appends `n` floats to the tape and returns where they start.
  std::size_t reserve(std::size_t n) {
    const std::size_t at = data_.size();
    data_.resize(at + n);
    return at;
  }

  /// Two-layer ReLU MLP on `rows` rows of x; writes the hidden and output activations.
  void mlp(int first, const float* x, std::int64_t rows, float* a1, float* out) const {
    linear_rows(x, rows, h_, W(first), W(first + 1), h_, a1);
    for (std::int64_t i = 0; i < rows * h_; ++i) a1[i] = std::max(a1[i], 0.0f);
    linear_rows(a1, rows, h_, W(first + 2), W(first + 3), h_, out);
    for (std::int64_t i = 0; i < rows * h_; ++i) out[i] = std::max(out[i], 0.0f);
  }

  /// Backward of mlp(): output gradients gout (overwritten); accumulates into gx.
  void mlp_backward(int first, const float* x, const float* a1, const float* out, float* gout,
                    std::int64_t rows, float* gx) {
    const std::int64_t n = rows * h_;
    for (std::int64_t i = 0; i < n; ++i)
      if (out[i] <= 0.0f) gout[i] = 0.0f;
    std::vector<float> ga1(static_cast<std::size_t>(n), 0.0f);
    linear_rows_backward(a1, gout, rows, h_, h_, W(first + 2), G(first + 2), G(first + 3),
                         ga1.data());
    for (std::int64_t i = 0; i < n; ++i)
      if (a1[i] <= 0.0f) ga1[i] = 0.0f;
    linear_rows_backward(x, ga1.data(), rows, h_, h_, W(first), G(first), G(first + 1), gx);
  }

  /// buf[nodes] = M(H[nodes]) (and vbuf with the virtual-edge MLP).
  void message(const std::vector<std::int64_t>& nodes) {
    const std::int64_t n = static_cast<std::int64_t>(nodes.size());
    const std::size_t block = static_cast<std::size_t>(n * h_);
    const bool ve = cfg_.virtual_edges;
    const std::size_t off = reserve(block * (ve ? 5 : 3));
    float* x = &data_[off];
    float* a1 = x + block;
    float* out = a1 + block;
    for (std::int64_t r = 0; r < n; ++r)
      std::memcpy(x + r * h_, row(H_, nodes[r]), h_ * sizeof(float));
    mlp(kW1, x, n, a1, out);
    for (std::int64_t r = 0; r < n; ++r)
      std::memcpy(row(buf_, nodes[r]), out + r * h_, h_ * sizeof(float));
    if (ve) {
      float* va1 = out + block;
      float* vout = va1 + block;
      mlp(kVW1, x, n, va1, vout);
      for (std::int64_t r = 0; r < n; ++r)
        std::memcpy(row(vbuf_, nodes[r]), vout + r * h_, h_ * sizeof(float));
    }
    finish(Entry{Entry::Message, nullptr, &nodes, 0, off});
  }

  void message_backward(const Entry& e) {
    const std::vector<std::int64_t>& nodes = *e.nodes;
    const std::int64_t n = static_cast<std::int64_t>(nodes.size());
    const std::size_t block = static_cast<std::size_t>(n * h_);
    const float* x = &data_[e.offset];
    const float* a1 = x + block;
    const float* out = a1 + block;
    std::vector<float> gout(block), gx(block, 0.0f);
    for (std::int64_t r = 0; r < n; ++r) {
      float* d = row(dbuf_, nodes[r]);
      std::memcpy(&gout[r * h_], d, h_ * sizeof(float));
      std::fill(d, d + h_, 0.0f);
    }
    mlp_backward(kW1, x, a1, out, gout.data(), n, gx.data());
    if (cfg_.virtual_edges) {
      for (std::int64_t r = 0; r < n; ++r) {
        float* d = row(dvbuf_, nodes[r]);
        std::memcpy(&gout[r * h_], d, h_ * sizeof(float));
        std::fill(d, d + h_, 0.0f);
      }
      mlp_backward(kVW1, x, out + block, out + 2 * block, gout.data(), n, gx.data());
    }
    for (std::int64_t r = 0; r < n; ++r) {
      float* d = row(dH_, nodes[r]);
      for (std::int64_t k = 0; k < h_; ++k) d[k] += gx[r * h_ + k];
    }
  }

  /// H[idx] = GRU(messages, H[idx]).
  void update(const GroupBuild& g) {
    const std::int64_t n = static_cast<std::int64_t>(g.idx.size());
    const std::size_t block = static_cast<std::size_t>(n * h_);
    const std::size_t off = reserve(block * 6);  // m, h, r, z, n, gh_n
    float* m = &data_[off];
    float* hold = m + block;
    float* r = hold + block;
    float* z = r + block;
    float* nn = z + block;
    float* ghn = nn + block;
    std::fill(m, m + block, 0.0f);
    const MessagesBuild& msg = g.msg;
    for (std::size_t k = 0; k < msg.src.size(); ++k) {
      const float* src = row(buf_, msg.src[k]);
      float* dst = m + msg.dst[k] * h_;
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += src[i];
    }
    for (std::size_t k = 0; k < msg.vsrc.size(); ++k) {
      const float* src = row(vbuf_, msg.vsrc[k]);
      float* dst = m + msg.vdst[k] * h_;
      const float w = msg.vw[k];
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += w * src[i];
    }
    for (std::int64_t q = 0; q < n; ++q)
      std::memcpy(hold + q * h_, row(H_, g.idx[q]), h_ * sizeof(float));
    std::vector<float> gi(static_cast<std::size_t>(3 * n * h_)), gh(gi.size());
    linear_rows(m, n, h_, W(kWih), W(kBih), 3 * h_, gi.data());
    linear_rows(hold, n, h_, W(kWhh), W(kBhh), 3 * h_, gh.data());
    for (std::int64_t q = 0; q < n; ++q) {
      const float* a = &gi[q * 3 * h_];
      const float* b = &gh[q * 3 * h_];
      float* out = row(H_, g.idx[q]);
      for (std::int64_t k = 0; k < h_; ++k) {
        const std::int64_t j = q * h_ + k;
        r[j] = sigmoidf(a[k] + b[k]);
        z[j] = sigmoidf(a[h_ + k] + b[h_ + k]);
        ghn[j] = b[2 * h_ + k];
        nn[j] = std::tanh(a[2 * h_ + k] + r[j] * ghn[j]);
        out[k] = nn[j] + z[j] * (hold[j] - nn[j]);
      }
    }
    finish(Entry{Entry::Update, &g, nullptr, 0, off});
  }

  void update_backward(const Entry& e) {
    const GroupBuild& g = *e.group;
    const std::int64_t n = static_cast<std::int64_t>(g.idx.size());
    const std::size_t block = static_cast<std::size_t>(n * h_);
    const float* m = &data_[e.offset];
    const float* hold = m + block;
    const float* r = hold + block;
    const float* z = r + block;
    const float* nn = z + block;
    const float* ghn = nn + block;
    std::vector<float> dgi(3 * block), dgh(3 * block), dm(block, 0.0f), dhold(block);
    for (std::int64_t q = 0; q < n; ++q) {
      float* d = row(dH_, g.idx[q]);
      for (std::int64_t k = 0; k < h_; ++k) {
        const std::int64_t j = q * h_ + k;
        const float dh = d[k];
        const float dz = dh * (hold[j] - nn[j]);
        const float dn = dh * (1.0f - z[j]);
        dhold[j] = dh * z[j];
        const float dnp = dn * (1.0f - nn[j] * nn[j]);
        const float drp = dnp * ghn[j] * r[j] * (1.0f - r[j]);
        const float dzp = dz * z[j] * (1.0f - z[j]);
        float* a = &dgi[q * 3 * h_];
        float* b = &dgh[q * 3 * h_];
        a[k] = b[k] = drp;
        a[h_ + k] = b[h_ + k] = dzp;
        a[2 * h_ + k] = dnp;
        b[2 * h_ + k] = dnp * r[j];
      }
      std::fill(d, d + h_, 0.0f);  // H[idx] was overwritten by this update
    }
    linear_rows_backward(m, dgi.data(), n, h_, 3 * h_, W(kWih), G(kWih), G(kBih), dm.data());
    linear_rows_backward(hold, dgh.data(), n, h_, 3 * h_, W(kWhh), G(kWhh), G(kBhh), dhold.data());
    for (std::int64_t q = 0; q < n; ++q) {
      float* d = row(dH_, g.idx[q]);
      for (std::int64_t k = 0; k < h_; ++k) d[k] += dhold[q * h_ + k];
    }
    const MessagesBuild& msg = g.msg;
    for (std::size_t k = 0; k < msg.src.size(); ++k) {
      float* d = row(dbuf_, msg.src[k]);
      const float* s = &dm[msg.dst[k] * h_];
      for (std::int64_t i = 0; i < h_; ++i) d[i] += s[i];
    }
    for (std::size_t k = 0; k < msg.vsrc.size(); ++k) {
      float* d = row(dvbuf_, msg.vsrc[k]);
      const float* s = &dm[msg.vdst[k] * h_];
      const float w = msg.vw[k];
      for (std::int64_t i = 0; i < h_; ++i) d[i] += w * s[i];
    }
  }

  /// Stacked GHN: the means of segment s-1 are added to the initial states of segment s's
  /// hand-off targets (its input nodes; with handoff=all its vertices too). Nothing before
  /// this step reads those states, so their gradient needs no clearing in the backward pass.
  void handoff(std::size_t s) {
    const StepBuild& st = plan_->steps[s];
    const std::int64_t slots = static_cast<std::int64_t>(st.prev_count.size());
    const std::size_t block = static_cast<std::size_t>(slots * h_);
    std::vector<float> means(block, 0.0f);
    for (std::size_t k = 0; k < st.prev_nodes.size(); ++k) {
      const float* src = row(H_, st.prev_nodes[k]);
      float* dst = means.data() + st.prev_slot[k] * h_;
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += src[i];
    }
    for (std::int64_t j = 0; j < slots; ++j)
      for (std::int64_t i = 0; i < h_; ++i) means[j * h_ + i] /= st.prev_count[j];
    for (std::size_t k = 0; k < st.inputs.size(); ++k) {
      // Added to the initial state: zero for an input node, the one-hot type for a vertex.
      const float* src = means.data() + st.input_slot[k] * h_;
      float* dst = row(H_, st.inputs[k]);
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += src[i];
    }
    finish(Entry{Entry::Handoff, nullptr, nullptr, s, 0});
  }

  void handoff_backward(const Entry& e) {
    const StepBuild& st = plan_->steps[e.step];
    const std::int64_t slots = static_cast<std::int64_t>(st.prev_count.size());
    std::vector<float> dmeans(static_cast<std::size_t>(slots * h_), 0.0f);
    for (std::size_t k = 0; k < st.inputs.size(); ++k) {
      float* src = row(dH_, st.inputs[k]);
      float* dst = &dmeans[st.input_slot[k] * h_];
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += src[i];
    }
    for (std::size_t k = 0; k < st.prev_nodes.size(); ++k) {
      const float scale = 1.0f / st.prev_count[st.prev_slot[k]];
      const float* src = &dmeans[st.prev_slot[k] * h_];
      float* dst = row(dH_, st.prev_nodes[k]);
      for (std::int64_t i = 0; i < h_; ++i) dst[i] += scale * src[i];
    }
  }

  /// Keeps the entry (with its tape data) when recording, else drops the data again.
  void finish(const Entry& e) {
    if (record_) tape_.push_back(e);
    else data_.clear();
  }

  std::shared_ptr<const PlanData> plan_;
  Config cfg_;
  std::int64_t h_;
  bool record_;
  std::vector<Tensor> w_;
  Tensor init_add_;
  std::vector<float> H_, buf_, vbuf_;
  std::vector<Entry> tape_;
  std::vector<float> data_;
  std::vector<float> dH_, dbuf_, dvbuf_;
  std::vector<std::vector<float>> gw_;
};

/// The autograd node of a recorded CpuPropagation: one backward for the whole propagation.
struct CpuPropagationBackward final : torch::autograd::Node {
  std::shared_ptr<CpuPropagation> engine;
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    if (grads.empty() || !grads[0].defined()) return torch::autograd::variable_list(num_outputs());
    return engine->backward(grads[0]);
  }
  std::string name() const override { return "GhnCpuPropagationBackward"; }
};

// NOTE: LibTorch 1.13 owns autograd nodes by std::shared_ptr, recent 2.x releases by
// c10::intrusive_ptr (Edge::function tells which); make_node() hides the difference.
using NodePtr = decltype(std::declval<torch::autograd::Edge>().function);

template <typename T>
std::shared_ptr<T> make_node(std::shared_ptr<torch::autograd::Node>*) {
  return std::make_shared<T>();
}

template <typename T>
c10::intrusive_ptr<T> make_node(c10::intrusive_ptr<torch::autograd::Node>*) {
  return c10::make_intrusive<T>();
}

}  // namespace

at::Tensor propagate_cpu(std::shared_ptr<const PlanData> plan, const Config& cfg,
                         const std::vector<at::Tensor>& params, const at::Tensor& init_add) {
  std::vector<Tensor> inputs = params;
  if (init_add.defined()) inputs.push_back(init_add);
  bool grad = false;
  for (const Tensor& p : inputs) grad = grad || p.requires_grad();
  grad = grad && c10::GradMode::is_enabled();
  auto engine = std::make_shared<CpuPropagation>(std::move(plan), cfg, params, init_add, grad);
  Tensor H = engine->forward();
  if (grad) {
    auto node = make_node<CpuPropagationBackward>(static_cast<NodePtr*>(nullptr));
    node->engine = std::move(engine);
    node->set_next_edges(torch::autograd::collect_next_edges(at::ArrayRef<Tensor>(inputs)));
    torch::autograd::create_gradient_edge(H, node);
  }
  return H;
}

}  // namespace hypernas::ghn::detail
