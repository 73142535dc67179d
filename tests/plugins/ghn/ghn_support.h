#pragma once
/// @file ghn_support.h
/// @brief What the GHN test files share: options, a gradient probe, and the check that the CPU
/// engine computes what the ATen propagation computes.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <hypernas/options.h>

#include "kernel/exec/executor.h"
#include "plugins/surrogates/ghn/ghn.h"

namespace hypernas::test {

/// The ghn plugin's options: its defaults with `given` set.
inline Options ghn_options(std::map<std::string, Value> given = {}) {
  Options o;
  for (auto& [k, v] : given) o.set(k, v);
  return GhnSurrogate::params().resolve(o, "ghn");
}

/// Gradients of all GHN parameters for a fixed function of the generated weights.
inline std::map<std::string, at::Tensor> ghn_gradients(
    GhnSurrogate& ghn, const std::vector<const Architecture*>& archs) {
  const exec::GraphExecutor exec;
  std::vector<std::vector<ParamShape>> shapes;
  for (const Architecture* a : archs) shapes.push_back(exec.parameters(*a));
  for (auto& [name, p] : ghn.named_parameters())
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  const auto weights = ghn.generate_batch(archs, shapes, true);
  at::Tensor loss = at::zeros({});
  double k = 1;
  for (const WeightMap& w : weights)
    for (const auto& [name, t] : w) loss = loss + (t * (k += 0.01)).sin().sum();
  loss.backward();
  std::map<std::string, at::Tensor> out;
  for (auto& [name, p] : ghn.named_parameters())
    out[name] = p.grad().defined() ? p.grad().clone() : at::zeros_like(p);
  return out;
}

/// For each option set of `variants` (with 2 propagation steps): the CPU engine (plain loops,
/// hand-written backward) gives `a`'s embeddings and every parameter's gradient on {a, b} as the
/// ATen propagation with autograd does. `also` (may be empty) sees each variant's description
/// and the CPU engine's gradients, for checks of its own.
inline void expect_cpu_engine_equals_aten(
    const std::vector<std::map<std::string, Value>>& variants, const Architecture& a,
    const Architecture& b,
    const std::function<void(const std::string&, const std::map<std::string, at::Tensor>&)>& also =
        {}) {
  for (const auto& given : variants) {
    auto o = given;
    o["steps"] = std::int64_t{2};
    GhnSurrogate ghn(ghn_options(o));
    std::string what;
    for (const auto& [k, v] : o) what += k + "=" + to_string(v) + " ";
    ghn.use_aten_propagation(true);
    const at::Tensor ref = ghn.node_embeddings(a);
    const auto ref_grad = ghn_gradients(ghn, {&a, &b});
    ghn.use_aten_propagation(false);
    const at::Tensor ours = ghn.node_embeddings(a);
    const auto our_grad = ghn_gradients(ghn, {&a, &b});
    EXPECT_TRUE(at::allclose(ours, ref, 1e-5, 1e-5))
        << what << (ours - ref).abs().max().item<double>();
    for (const auto& [name, g] : ref_grad) {
      const double scale = g.abs().max().item<double>();
      const double diff = (our_grad.at(name) - g).abs().max().item<double>();
      EXPECT_LE(diff, 1e-4 * std::max(scale, 1.0)) << what << name << ": max |grad| " << scale;
    }
    if (also) also(what, our_grad);
  }
}

}  // namespace hypernas::test
