#include "kernel/exec/executor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <hypernas/error.h>
#include <hypernas/space.h>

namespace hypernas::exec {

namespace {

/// The primitive ops (hypernas::kPrimitiveOps) as an enum.
enum class OpKind : std::uint8_t {
  Input,
  Conv,
  Bn,
  Relu,
  AvgPool,
  MaxPool,
  Add,
  Concat,
  Gap,
  Linear,
  Resample,
  Mix,
  Slice,
  Mul,
  Tanh,
  Sigmoid
};

bool parse_op(const std::string& op, OpKind* out) {
  static const std::pair<const char*, OpKind> kOps[] = {
      {"input", OpKind::Input},    {"conv", OpKind::Conv},         {"bn", OpKind::Bn},
      {"relu", OpKind::Relu},      {"avg_pool", OpKind::AvgPool},  {"max_pool", OpKind::MaxPool},
      {"add", OpKind::Add},        {"concat", OpKind::Concat},     {"gap", OpKind::Gap},
      {"linear", OpKind::Linear},  {"resample", OpKind::Resample}, {"mix", OpKind::Mix},
      {"slice", OpKind::Slice},    {"mul", OpKind::Mul},           {"tanh", OpKind::Tanh},
      {"sigmoid", OpKind::Sigmoid}};
  for (const auto& [name, kind] : kOps) {
    if (op == name) {
      *out = kind;
      return true;
    }
  }
  return false;
}

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

constexpr std::int32_t kNever = std::numeric_limits<std::int32_t>::max();

}  // namespace

/// One vertex of the graph, ready to run.
struct Step {
  OpKind op = OpKind::Add;
  std::int32_t in_begin = 0;  ///< Range of this step's inputs in Plan::inputs.
  std::int32_t in_end = 0;
  std::int32_t free_begin = 0;  ///< Range of the values to drop after this step in Plan::frees.
  std::int32_t free_end = 0;
  std::int32_t weight = -1;  ///< Index of the weight in Plan::params (-1: none).
  std::int32_t bias = -1;    ///< Index of the bias in Plan::params (-1: none).
  std::int64_t c_in = 0;
  std::int64_t c_out = 0;
  std::int64_t kernel = 0;
  std::int64_t stride = 1;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
  std::int64_t padding = 0;
  std::int64_t scale = 0;
};

struct Plan {
  std::string space;                  ///< For messages.
  std::string text;                   ///< For messages.
  std::vector<Step> steps;            ///< One per vertex, in vertex order.
  std::vector<std::int32_t> inputs;   ///< Input vertex ids of every step, sorted per step.
  std::vector<std::int32_t> frees;    ///< Values dropped after each step.
  std::vector<std::string> names;     ///< Node names, by vertex.
  std::vector<ParamShape> params;     ///< Parameters, in vertex order, with role and fans.
  std::vector<std::int32_t> outputs;  ///< Vertices returned by forward(), in exit order.

  /// "'<text>' (space <space>)" for messages.
  std::string where() const { return cat("'", abbreviate(text), "' (space ", space, ")"); }
};

std::shared_ptr<const Plan> GraphExecutor::compile(const Architecture& arch) const {
  const ArchGraph& g = arch.graph;
  const auto n = static_cast<std::int64_t>(boost::num_vertices(g));
  auto plan = std::make_shared<Plan>();
  plan->space = arch.space;
  plan->text = arch.text;
  HYPERNAS_CHECK(n > 0, "executor: architecture ", plan->where(), " has no nodes");
  HYPERNAS_CHECK(n < kNever, "executor: architecture ", plan->where(), " has too many nodes (", n,
                 ")");
  plan->steps.resize(static_cast<std::size_t>(n));
  plan->names.resize(static_cast<std::size_t>(n));
  std::vector<std::int32_t> last_use(static_cast<std::size_t>(n), -1);
  std::vector<std::pair<std::int64_t, std::int32_t>> exits;
  std::vector<std::int32_t> in;

  auto add_param = [&plan](const OpNode& node, const char* suffix, std::vector<std::int64_t> shape,
                           ParamRole role) {
    for (std::int64_t d : shape)
      HYPERNAS_CHECK(d > 0, "executor: node '", node.name, "' (", node.op,
                     ") would need a parameter of shape ", shape_text(shape),
                     "; check its c_in, c_out, kernel and groups");
    ParamShape p;
    p.name = node.name + suffix;
    p.node = node.name;
    p.role = role;
    switch (role) {
      case ParamRole::ConvWeight:  // [c_out, c_in/groups, k, k], fans as torch computes them
        p.fan_in = shape[1] * shape[2] * shape[3];
        p.fan_out = shape[0] * shape[2] * shape[3];
        break;
      case ParamRole::LinearWeight:  // [c_out, c_in]
        p.fan_in = shape[1];
        p.fan_out = shape[0];
        break;
      case ParamRole::LinearBias:  // the fan-in of the weight it belongs to
        p.fan_in = node.c_in;
        p.fan_out = 1;
        break;
      case ParamRole::BnWeight:
      case ParamRole::BnBias:
        p.fan_in = 1;
        p.fan_out = 1;
        break;
    }
    p.shape = std::move(shape);
    plan->params.push_back(std::move(p));
    return static_cast<std::int32_t>(plan->params.size() - 1);
  };

  for (std::int64_t v = 0; v < n; ++v) {
    const OpNode& node = g[static_cast<std::size_t>(v)];
    Step& s = plan->steps[static_cast<std::size_t>(v)];
    plan->names[static_cast<std::size_t>(v)] = node.name;
    auto fail = [&](const std::string& why) {
      return Error(cat("executor: node '", node.name, "' (", node.op, ", vertex ", v,
                       ") of architecture ", plan->where(), ": ", why));
    };
    if (!parse_op(node.op, &s.op)) {
      std::string known;
      for (const char* op : kPrimitiveOps) known += (known.empty() ? "" : ", ") + std::string(op);
      throw fail(cat("unknown op; the executor runs ", known));
    }

    in.clear();
    for (auto [it, last] = boost::in_edges(static_cast<std::size_t>(v), g); it != last; ++it) {
      const auto u = static_cast<std::int64_t>(boost::source(*it, g));
      if (u >= v)
        throw fail(cat("reads node '", g[static_cast<std::size_t>(u)].name, "' (vertex ", u,
                       "), which does not come before it: vertex order must be topological"));
      in.push_back(static_cast<std::int32_t>(u));
    }
    std::sort(in.begin(), in.end());
    s.in_begin = static_cast<std::int32_t>(plan->inputs.size());
    plan->inputs.insert(plan->inputs.end(), in.begin(), in.end());
    s.in_end = static_cast<std::int32_t>(plan->inputs.size());
    for (std::int32_t u : in) last_use[static_cast<std::size_t>(u)] = static_cast<std::int32_t>(v);

    if (s.op == OpKind::Input && !in.empty()) throw fail("an input node cannot have inputs");
    if (s.op != OpKind::Input && s.op != OpKind::Add && in.empty())
      throw fail("has no inputs (only `input` and `add` nodes may have none)");

    s.c_in = node.c_in;
    s.c_out = node.c_out;
    s.kernel = node.kernel;
    s.stride = node.stride;
    s.dilation = node.dilation;
    s.groups = node.groups;
    s.scale = node.scale;
    if (s.stride < 1 || s.dilation < 1 || s.groups < 1 || s.scale < 0 || s.scale > 62)
      throw fail(cat("needs stride, dilation, groups >= 1 and 0 <= scale <= 62, got stride ",
                     s.stride, ", dilation ", s.dilation, ", groups ", s.groups, ", scale ",
                     s.scale));
    switch (s.op) {
      case OpKind::Conv:
        if (s.kernel < 1) throw fail(cat("a conv needs kernel >= 1, got ", s.kernel));
        if (s.c_in < 1 || s.c_out < 1 || s.c_in % s.groups != 0 || s.c_out % s.groups != 0)
          throw fail(cat("a conv needs c_in and c_out >= 1 and divisible by groups, got c_in ",
                         s.c_in, ", c_out ", s.c_out, ", groups ", s.groups));
        s.padding = s.dilation * (s.kernel - 1) / 2;
        s.weight = add_param(node, ".weight", {s.c_out, s.c_in / s.groups, s.kernel, s.kernel},
                             ParamRole::ConvWeight);
        break;
      case OpKind::Bn:
        if (s.c_out < 1) throw fail(cat("a bn needs c_out >= 1, got ", s.c_out));
        s.weight = add_param(node, ".weight", {s.c_out}, ParamRole::BnWeight);
        s.bias = add_param(node, ".bias", {s.c_out}, ParamRole::BnBias);
        break;
      case OpKind::Linear:
        if (s.c_in < 1 || s.c_out < 1)
          throw fail(cat("a linear needs c_in and c_out >= 1, got ", s.c_in, " and ", s.c_out));
        s.weight = add_param(node, ".weight", {s.c_out, s.c_in}, ParamRole::LinearWeight);
        s.bias = add_param(node, ".bias", {s.c_out}, ParamRole::LinearBias);
        break;
      case OpKind::AvgPool:
      case OpKind::MaxPool:
        if (s.kernel < 1) throw fail(cat("a pool needs kernel >= 1, got ", s.kernel));
        s.padding = s.kernel % 2 == 1 ? s.kernel / 2 : 0;
        break;
      case OpKind::Resample:
        if (in.size() != 1)
          throw fail(cat("a resample reads exactly one node, got ", in.size(),
                         " (resample each input on its own, then add)"));
        break;
      case OpKind::Mix:
        if (in.size() != 1) throw fail(cat("a mix reads exactly one node, got ", in.size()));
        break;
      case OpKind::Slice:
        if (in.size() != 1) throw fail(cat("a slice reads exactly one node, got ", in.size()));
        if (s.c_out < 1 || s.kernel < 0 ||
            (s.c_in > 0 && s.kernel + s.stride * (s.c_out - 1) >= s.c_in))
          throw fail(
              cat("a slice takes c_out >= 1 channels from channel kernel >= 0 in steps of "
                  "stride, all below c_in; got c_out ",
                  s.c_out, ", kernel ", s.kernel, ", stride ", s.stride, ", c_in ", s.c_in));
        break;
      case OpKind::Add:
        if (in.empty() && s.c_out < 1)
          throw fail(
              cat("an add without inputs makes zeros of c_out channels; c_out is ", s.c_out));
        break;
      default: break;
    }
    if (node.exit >= 0) {
      for (const auto& [e, u] : exits)
        if (e == node.exit)
          throw fail(cat("exit ", node.exit, " is also node '",
                         plan->names[static_cast<std::size_t>(u)], "'"));
      exits.emplace_back(node.exit, static_cast<std::int32_t>(v));
    }
  }

  std::sort(exits.begin(), exits.end());
  for (const auto& e : exits) plan->outputs.push_back(e.second);
  if (plan->outputs.empty()) plan->outputs.push_back(static_cast<std::int32_t>(n - 1));
  for (std::int32_t o : plan->outputs) last_use[static_cast<std::size_t>(o)] = kNever;

  // Drop each value right after its last consumer (or right away when nothing reads it).
  std::vector<std::vector<std::int32_t>> frees(static_cast<std::size_t>(n));
  for (std::int64_t v = 0; v < n; ++v) {
    const std::int32_t last = last_use[static_cast<std::size_t>(v)];
    if (last == kNever) continue;
    frees[static_cast<std::size_t>(last < 0 ? v : last)].push_back(static_cast<std::int32_t>(v));
  }
  for (std::int64_t v = 0; v < n; ++v) {
    Step& s = plan->steps[static_cast<std::size_t>(v)];
    s.free_begin = static_cast<std::int32_t>(plan->frees.size());
    plan->frees.insert(plan->frees.end(), frees[static_cast<std::size_t>(v)].begin(),
                       frees[static_cast<std::size_t>(v)].end());
    s.free_end = static_cast<std::int32_t>(plan->frees.size());
  }
  return plan;
}

const std::vector<ParamShape>& GraphExecutor::parameters(const Plan& plan) { return plan.params; }

std::vector<ParamShape> GraphExecutor::parameters(const Architecture& arch) const {
  return compile(arch)->params;
}

std::vector<ParamShapeV1_0> GraphExecutor::parameters_v1_0(const Architecture& arch) const {
  const auto plan = compile(arch);  // NOTE: iterating compile(arch)->params would dangle
  std::vector<ParamShapeV1_0> out;
  out.reserve(plan->params.size());
  for (const ParamShape& p : plan->params) out.push_back({p.name, p.node, p.shape});
  return out;
}

std::vector<at::Tensor> GraphExecutor::forward(const Architecture& arch, const WeightMap& weights,
                                               const at::Tensor& images) const {
  return run(*compile(arch), weights, images, nullptr, nullptr);
}

std::vector<at::Tensor> GraphExecutor::forward(const Plan& plan, const WeightMap& weights,
                                               const at::Tensor& images) const {
  return run(plan, weights, images, nullptr, nullptr);
}

std::vector<at::Tensor> GraphExecutor::forward_relaxed(const Relaxation& relaxation,
                                                       const WeightMap& weights,
                                                       const std::vector<at::Tensor>& probs,
                                                       const at::Tensor& images) const {
  const auto plan = compile(relaxation.network);
  HYPERNAS_CHECK(probs.size() == relaxation.blocks.size(), "executor: relaxed network ",
                 plan->where(), " has ", relaxation.blocks.size(),
                 " architecture-parameter blocks, got ", probs.size(), " probability tensors");
  std::vector<at::Tensor> cpu(probs.size());
  for (std::size_t b = 0; b < probs.size(); ++b) {
    const ArchParamSpec& spec = relaxation.blocks[b];
    HYPERNAS_CHECK(probs[b].defined() && probs[b].sizes() == at::IntArrayRef(spec.shape),
                   "executor: probabilities of block '", spec.name, "' have shape ",
                   probs[b].defined() ? shape_text(probs[b].sizes()) : "undefined", ", expected ",
                   shape_text(spec.shape), " (relaxed network ", plan->where(), ")");
    HYPERNAS_CHECK(spec.shape.size() == 2, "executor: block '", spec.name,
                   "' must be 2-D [rows, candidates], got ", shape_text(spec.shape));
    cpu[b] = probs[b].detach().to(at::kCPU, at::kDouble).contiguous();
  }
  std::map<std::string, std::size_t> vertex;
  for (std::size_t v = 0; v < plan->names.size(); ++v) vertex.emplace(plan->names[v], v);
  Mixing mixing;
  mixing.coefficient.resize(plan->steps.size());
  mixing.dead.assign(plan->steps.size(), 0);
  std::vector<char> listed(plan->steps.size(), 0);
  for (const MixChoice& m : relaxation.mixes) {
    auto it = vertex.find(m.node);
    HYPERNAS_CHECK(it != vertex.end() && plan->steps[it->second].op == OpKind::Mix,
                   "executor: the relaxation lists mix node '", m.node, "', which relaxed network ",
                   plan->where(), " does not have as a `mix`");
    HYPERNAS_CHECK(m.block >= 0 && m.block < static_cast<std::int64_t>(probs.size()) &&
                       m.row >= 0 && m.row < probs[m.block].size(0) && m.col >= 0 &&
                       m.col < probs[m.block].size(1),
                   "executor: mix node '", m.node, "' takes entry [", m.row, "][", m.col,
                   "] of block ", m.block, ", which the probabilities do not have");
    const std::size_t v = it->second;
    listed[v] = 1;
    if (cpu[m.block][m.row][m.col].item<double>() == 0.0) {
      mixing.dead[v] = 1;
    } else {
      mixing.coefficient[v] = probs[m.block].select(0, m.row).select(0, m.col);
    }
  }
  for (std::size_t v = 0; v < plan->steps.size(); ++v)
    HYPERNAS_CHECK(plan->steps[v].op != OpKind::Mix || listed[v], "executor: mix node '",
                   plan->names[v], "' of relaxed network ", plan->where(),
                   " is not in the relaxation's list of mixes");
  return run(*plan, weights, images, nullptr, &mixing);
}

CaptureResult GraphExecutor::forward_capture(const Architecture& arch, const WeightMap& weights,
                                             const at::Tensor& images,
                                             const CaptureOptions& capture) const {
  auto plan = compile(arch);
  std::vector<char> keep(plan->steps.size(), 0);
  for (std::size_t v = 0; v < plan->steps.size(); ++v) {
    const OpNode& node = arch.graph[v];
    for (const auto& op : capture.ops) keep[v] |= node.op == op;
    for (const auto& name : capture.nodes) keep[v] |= node.name == name;
  }
  for (const auto& name : capture.nodes)
    HYPERNAS_CHECK(std::find(plan->names.begin(), plan->names.end(), name) != plan->names.end(),
                   "executor: forward_capture asks for node '", name, "', which architecture ",
                   plan->where(), " does not have");
  CaptureResult result;
  std::function<void(std::size_t, const at::Tensor&)> tap = [&](std::size_t v,
                                                                const at::Tensor& out) {
    const OpNode& node = arch.graph[v];
    if (capture.observer) capture.observer(node, out);
    if (keep[v]) result.captured.push_back({node.name, node.op, out});
  };
  result.exits = run(*plan, weights, images, &tap, nullptr);
  return result;
}

std::vector<at::Tensor> GraphExecutor::run(
    const Plan& plan, const WeightMap& weights, const at::Tensor& images,
    const std::function<void(std::size_t, const at::Tensor&)>* tap, const Mixing* mixing) const {
  HYPERNAS_CHECK(images.defined() && images.dim() == 4,
                 "executor: expected images [N, C, H, W] for architecture ", plan.where(), ", got ",
                 images.defined() ? shape_text(images.sizes()) : "an undefined tensor");

  // Which vertices to compute: all of them, except, in a relaxed network, the branches that
  // only feed mixes of probability 0 (walking back from the outputs).
  std::vector<char> needed(plan.steps.size(), mixing ? 0 : 1);
  if (mixing) {
    for (std::int32_t o : plan.outputs) needed[static_cast<std::size_t>(o)] = 1;
    for (std::size_t v = plan.steps.size(); v-- > 0;) {
      if (!needed[v] || mixing->dead[v]) continue;
      const Step& s = plan.steps[v];
      for (std::int32_t k = s.in_begin; k < s.in_end; ++k)
        needed[static_cast<std::size_t>(plan.inputs[static_cast<std::size_t>(k)])] = 1;
    }
  }
  std::vector<char> param_needed(plan.params.size(), mixing ? 0 : 1);
  if (mixing) {
    for (std::size_t v = 0; v < plan.steps.size(); ++v) {
      if (!needed[v] || mixing->dead[v]) continue;
      if (plan.steps[v].weight >= 0)
        param_needed[static_cast<std::size_t>(plan.steps[v].weight)] = 1;
      if (plan.steps[v].bias >= 0) param_needed[static_cast<std::size_t>(plan.steps[v].bias)] = 1;
    }
  }

  // Resolve every parameter once, checking its shape.
  std::vector<const at::Tensor*> w(plan.params.size(), nullptr);
  for (std::size_t i = 0; i < plan.params.size(); ++i) {
    if (!param_needed[i]) continue;
    const ParamShape& p = plan.params[i];
    auto it = weights.find(p.name);
    HYPERNAS_CHECK(it != weights.end() && it->second.defined(), "executor: missing weight '",
                   p.name, "' (expected shape ", shape_text(p.shape), ", got ",
                   it == weights.end() ? "no entry" : "an undefined tensor", ") for node '", p.node,
                   "' of architecture ", plan.where());
    HYPERNAS_CHECK(it->second.sizes() == at::IntArrayRef(p.shape), "executor: weight '", p.name,
                   "' has shape ", shape_text(it->second.sizes()), ", expected ",
                   shape_text(p.shape), " (node '", p.node, "' of architecture ", plan.where(),
                   ")");
    w[i] = &it->second;
  }

  bool channels_last = false;
  switch (options_.layout) {
    case Layout::Auto: channels_last = images.device().is_cpu() && at::hasMKLDNN(); break;
    case Layout::Contiguous: break;
    case Layout::ChannelsLast: channels_last = true; break;
  }
  const at::MemoryFormat format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;

  const std::int64_t batch = images.size(0);
  const std::int64_t height = images.size(2);
  const std::int64_t width = images.size(3);
  std::vector<at::Tensor> value(plan.steps.size());
  std::vector<at::Tensor> parts;

  for (std::size_t v = 0; v < plan.steps.size(); ++v) {
    const Step& s = plan.steps[v];
    auto fail = [&](const std::string& why) {
      return Error(
          cat("executor: node '", plan.names[v], "' of architecture ", plan.where(), ": ", why));
    };
    if (!needed[v] || (mixing && mixing->dead[v])) {
      // Not computed (its value stays undefined); drop what its last use frees all the same.
      for (std::int32_t k = s.free_begin; k < s.free_end; ++k)
        value[static_cast<std::size_t>(plan.frees[static_cast<std::size_t>(k)])].reset();
      continue;
    }
    if (s.op == OpKind::Mix && !mixing)
      throw fail("a `mix` node belongs to a relaxed network: run it with forward_relaxed()");
    // A relaxed network's cell node sums only the mixes that were computed.
    std::int32_t in_begin = s.in_begin;
    std::int32_t in_end = s.in_end;
    std::vector<std::int32_t> live_inputs;
    if (mixing) {
      for (std::int32_t k = s.in_begin; k < s.in_end; ++k) {
        const auto u = static_cast<std::size_t>(plan.inputs[static_cast<std::size_t>(k)]);
        if (mixing->dead[u]) {
          if (s.op != OpKind::Add)
            throw fail(cat("reads mix node '", plan.names[u],
                           "' of probability 0; only an `add` may read a mix"));
          continue;
        }
        live_inputs.push_back(plan.inputs[static_cast<std::size_t>(k)]);
      }
      in_begin = 0;
      in_end = static_cast<std::int32_t>(live_inputs.size());
    }
    auto input_at = [&](std::int32_t k) -> std::size_t {
      return static_cast<std::size_t>(mixing ? live_inputs[static_cast<std::size_t>(k)]
                                             : plan.inputs[static_cast<std::size_t>(k)]);
    };
    // The node's input: the sum (or concatenation) of its in-neighbours' outputs.
    at::Tensor x;
    if (s.op == OpKind::Input) {
      if (s.c_out > 0 && images.size(1) != s.c_out)
        throw fail(
            cat("expects images of ", s.c_out, " channels, got ", shape_text(images.sizes())));
      x = images.contiguous(format);
    } else if (s.op == OpKind::Concat) {
      parts.clear();
      for (std::int32_t k = in_begin; k < in_end; ++k) parts.push_back(value[input_at(k)]);
      x = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
    } else if (s.op == OpKind::Mul) {
      x = value[input_at(in_begin)];
      for (std::int32_t k = in_begin + 1; k < in_end; ++k) {
        const at::Tensor& y = value[input_at(k)];
        if (x.sizes() != y.sizes())
          throw fail(cat("cannot multiply its inputs of shapes ", shape_text(x.sizes()), " and ",
                         shape_text(y.sizes()), " (from node '", plan.names[input_at(k)], "')"));
        x = at::mul(x, y);  // NOTE: not in place: mul's backward needs both operands
      }
    } else if (in_begin == in_end) {
      if (s.c_out < 1)
        throw fail("every mix it reads has probability 0, and it has no c_out to make zeros of");
      const std::int64_t step = std::int64_t{1} << s.scale;
      x = at::zeros({batch, s.c_out, (height + step - 1) / step, (width + step - 1) / step},
                    images.options().memory_format(format));
    } else {
      x = value[input_at(in_begin)];
      for (std::int32_t k = in_begin + 1; k < in_end; ++k) {
        const at::Tensor& y = value[input_at(k)];
        if (x.sizes() != y.sizes())
          throw fail(cat("cannot add its inputs of shapes ", shape_text(x.sizes()), " and ",
                         shape_text(y.sizes()), " (from node '", plan.names[input_at(k)], "')"));
        // The first addition makes a fresh tensor; later ones add into it (add's backward
        // needs neither operand, so this is safe under autograd).
        x = k == in_begin + 1 ? at::add(x, y) : x.add_(y);
      }
    }

    at::Tensor out;
    switch (s.op) {
      case OpKind::Input:
      case OpKind::Add:
      case OpKind::Concat:
      case OpKind::Mul: out = std::move(x); break;
      case OpKind::Tanh: out = at::tanh(x); break;
      case OpKind::Sigmoid: out = at::sigmoid(x); break;
      case OpKind::Slice: {
        const std::int64_t last = s.kernel + s.stride * (s.c_out - 1);
        if (x.dim() < 2 || last >= x.size(1) || (s.c_in > 0 && x.size(1) != s.c_in))
          throw fail(cat("takes channels ", s.kernel, "..", last, " (step ", s.stride,
                         ") of an input of ", s.c_in, " channels, got ", shape_text(x.sizes())));
        out = x.slice(1, s.kernel, last + 1, s.stride);
        break;
      }
      case OpKind::Conv:
        if (x.dim() != 4 || x.size(1) != s.c_in)
          throw fail(cat("expects an input of ", s.c_in, " channels, got ", shape_text(x.sizes())));
        out = at::conv2d(x, *w[static_cast<std::size_t>(s.weight)], {}, {s.stride, s.stride},
                         {s.padding, s.padding}, {s.dilation, s.dilation}, s.groups);
        // NOTE: a 1-channel input is NCHW and channels-last at once, and then the convolution
        // keeps NCHW; put its output in the layout asked for (a no-op when it already is).
        if (channels_last) out = out.contiguous(format);
        break;
      case OpKind::Bn:
        if (x.dim() < 2 || x.size(1) != s.c_out)
          throw fail(
              cat("expects an input of ", s.c_out, " channels, got ", shape_text(x.sizes())));
        out = at::batch_norm(x, *w[static_cast<std::size_t>(s.weight)],
                             *w[static_cast<std::size_t>(s.bias)], {}, {}, /*training=*/true,
                             /*momentum=*/0.1, /*eps=*/1e-5, /*cudnn_enabled=*/true);
        break;
      case OpKind::Relu: out = at::relu(x); break;
      case OpKind::Mix: {
        at::Tensor p = mixing->coefficient[v];
        if (p.device() != x.device() || p.scalar_type() != x.scalar_type())
          p = p.to(x.device(), x.scalar_type());
        out = x * p;
        break;
      }
      case OpKind::Resample: {
        if (x.dim() != 4) throw fail(cat("expects a 4-D input, got ", shape_text(x.sizes())));
        const std::int64_t step = std::int64_t{1} << s.scale;
        const std::int64_t h = (height + step - 1) / step;
        const std::int64_t w = (width + step - 1) / step;
        if (x.size(2) == h && x.size(3) == w) out = std::move(x);
        else if (x.size(2) >= h && x.size(3) >= w) out = at::adaptive_avg_pool2d(x, {h, w});
        else if (x.size(2) <= h && x.size(3) <= w) out = at::upsample_nearest2d(x, {h, w});
        else
          throw fail(cat("cannot resample an input of shape ", shape_text(x.sizes()), " to ", h,
                         "x", w, " (scale ", s.scale, "): one side grows, the other shrinks"));
        if (channels_last) out = out.contiguous(format);
        break;
      }
      case OpKind::AvgPool:
        out = at::avg_pool2d(x, {s.kernel, s.kernel}, {s.stride, s.stride}, {s.padding, s.padding},
                             /*ceil_mode=*/false,
                             /*count_include_pad=*/false);
        break;
      case OpKind::MaxPool:
        out = at::max_pool2d(x, {s.kernel, s.kernel}, {s.stride, s.stride}, {s.padding, s.padding});
        break;
      case OpKind::Gap:
        if (x.dim() != 4) throw fail(cat("expects a 4-D input, got ", shape_text(x.sizes())));
        out = x.mean({2, 3});
        break;
      case OpKind::Linear:
        if (x.dim() > 2) x = x.flatten(1);
        if (x.dim() != 2 || x.size(1) != s.c_in)
          throw fail(cat("expects an input of ", s.c_in, " features, got ", shape_text(x.sizes())));
        out = at::linear(x, *w[static_cast<std::size_t>(s.weight)],
                         *w[static_cast<std::size_t>(s.bias)]);
        break;
    }
    if (tap) (*tap)(v, out);
    value[v] = std::move(out);
    for (std::int32_t k = s.free_begin; k < s.free_end; ++k)
      value[static_cast<std::size_t>(plan.frees[static_cast<std::size_t>(k)])].reset();
  }

  std::vector<at::Tensor> outputs;
  outputs.reserve(plan.outputs.size());
  for (std::int32_t o : plan.outputs) outputs.push_back(value[static_cast<std::size_t>(o)]);
  return outputs;
}

WeightMap GraphExecutor::init_weights(const Architecture& arch, std::uint64_t seed,
                                      c10::Device device) const {
  return init_weights(*compile(arch), seed, device);
}

WeightMap GraphExecutor::init_weights(const Plan& plan, std::uint64_t seed, c10::Device device) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  WeightMap out;
  for (std::size_t i = 0; i < plan.params.size(); ++i) {
    const ParamShape& p = plan.params[i];
    at::Tensor t = at::empty(p.shape, at::TensorOptions().dtype(at::kFloat));
    switch (p.role) {
      case ParamRole::ConvWeight: {
        // Kaiming normal, mode fan_out, ReLU gain: torch computes fan_out = size(0) * k * k.
        t.normal_(0.0, std::sqrt(2.0 / static_cast<double>(p.fan_out)), gen);
        break;
      }
      case ParamRole::BnWeight: t.fill_(1.0); break;
      case ParamRole::BnBias: t.zero_(); break;
      case ParamRole::LinearWeight:
      case ParamRole::LinearBias: {
        // torch::nn::Linear: kaiming_uniform(a = sqrt(5)) gives bound 1/sqrt(fan_in), and
        // the bias is uniform in the same bound (a bias's fan_in is its weight's).
        const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
        t.uniform_(-bound, bound, gen);
        break;
      }
    }
    if (device != t.device()) t = t.to(device);
    t.set_requires_grad(true);
    out.emplace(p.name, std::move(t));
  }
  return out;
}

}  // namespace hypernas::exec
