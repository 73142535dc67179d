#pragma once
/// @file optim.h
/// @brief Optimiser pieces shared by the built-in surrogates (a plugin cannot link the kernel's
/// trainer): global gradient-norm clipping as torch.nn.utils.clip_grad_norm_, one step of
/// torch.optim.SGD (dampening 0) and one torch.optim.Adam update of a tensor. Used by `sgd` (its
/// training), `ghn` (clipping and Adam; the SGD steps of `finetune_steps`) and `smash` (Adam).
/// Written out, so that the same code builds against LibTorch 1.13 and 2.x.

#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace hypernas::plugins {

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`: the
/// coefficient max_norm / (norm + 1e-6), capped at 1, as torch.nn.utils.clip_grad_norm_,
/// computed on the parameters' device without reading the norm back. Parameters without a
/// gradient are left out; `max_norm` <= 0 does nothing.
inline void clip_grad_norm(std::vector<at::Tensor>& params, double max_norm) {
  if (max_norm <= 0) return;
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm().reshape({1}));
  if (norms.empty()) return;
  const at::Tensor coef = (max_norm / (at::cat(norms).norm() + 1e-6)).clamp_max(1.0);
  for (at::Tensor& p : params)
    if (p.grad().defined()) p.mutable_grad().mul_(coef);
}

/// The settings of torch.optim.SGD that sgd_step() follows.
struct SgdSettings {
  double lr = 0.01;         ///< Learning rate.
  double momentum = 0;      ///< Momentum (0: none).
  bool nesterov = false;    ///< Nesterov momentum (needs momentum > 0).
  double weight_decay = 0;  ///< L2 weight decay, added to the gradient.
};

/// One torch.optim.SGD step (dampening 0) on every parameter with a gradient, which is then
/// cleared. `momentum` holds one buffer per parameter (undefined until its first step).
inline void sgd_step(std::vector<at::Tensor>& params, std::vector<at::Tensor>& momentum,
                     const SgdSettings& s) {
  c10::NoGradGuard no_grad;
  momentum.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor& p = params[i];
    if (!p.grad().defined()) continue;
    at::Tensor d = p.grad();
    if (s.weight_decay != 0) d = d.add(p, s.weight_decay);
    if (s.momentum != 0) {
      if (!momentum[i].defined()) momentum[i] = d.clone();
      else momentum[i].mul_(s.momentum).add_(d);
      d = s.nesterov ? d.add(momentum[i], s.momentum) : momentum[i];
    }
    p.add_(d, -s.lr);
    p.mutable_grad() = at::Tensor();
  }
}

/// The settings of torch.optim.Adam that adam_step() follows (no amsgrad).
struct AdamSettings {
  double lr = 1e-3;         ///< Learning rate.
  double beta1 = 0.9;       ///< First-moment decay.
  double beta2 = 0.999;     ///< Second-moment decay.
  double eps = 1e-8;        ///< Added to the denominator.
  double weight_decay = 0;  ///< L2 weight decay, added to the gradient.
};

/// One torch.optim.Adam update of `p` from `grad` (defined) at step `t` (1 for the first), with
/// its moments `m` and `v` (created at zero when undefined). The gradient is left as it is.
inline void adam_step(at::Tensor& p, at::Tensor grad, at::Tensor& m, at::Tensor& v, std::int64_t t,
                      const AdamSettings& s) {
  c10::NoGradGuard no_grad;
  if (s.weight_decay > 0) grad = grad.add(p, s.weight_decay);
  if (!m.defined()) {
    m = at::zeros_like(p);
    v = at::zeros_like(p);
  }
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(t));
  m.mul_(s.beta1).add_(grad, 1.0 - s.beta1);
  v.mul_(s.beta2).addcmul_(grad, grad, 1.0 - s.beta2);
  const at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(s.eps);
  p.addcdiv_(m, denom, -s.lr / bc1);
}

}  // namespace hypernas::plugins
