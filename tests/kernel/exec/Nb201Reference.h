#pragma once
/// @file Nb201Reference.h
/// @brief NAS-Bench-201's TinyNetwork written by hand from torch::nn modules, independently of
/// the operator graph: the reference the executor is checked against (tests) and compared
/// with for speed (bench/). Follows AutoDL-Projects' `TinyNetwork`, `InferCell`,
/// `ReLUConvBN`, `ResNetBasicblock` and `POOLING`.
///
/// Every parameter is also listed under the name the graph gives it (nb201.h), so weights can
/// be copied between a WeightMap and the modules.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "plugins/spaces/nb201/nb201.h"

namespace hypernas::test {

/// ReLU -> Conv2d (no bias) -> BatchNorm2d (affine, eps 1e-5).
struct RefReluConvBn {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::Tensor forward(const torch::Tensor& x) { return bn(conv(torch::relu(x))); }
};

/// One edge op of an InferCell: conv (ReLUConvBN), avg pool or identity; none has no module.
struct RefEdge {
  int op = nb201::kNone;
  RefReluConvBn conv;
  torch::nn::AvgPool2d pool{nullptr};
  torch::Tensor forward(const torch::Tensor& x) {
    switch (op) {
      case nb201::kSkip: return x;
      case nb201::kConv1x1:
      case nb201::kConv3x3: return conv.forward(x);
      case nb201::kAvgPool3x3: return pool(x);
      default: return {};
    }
  }
};

/// NAS-Bench-201's network for one cell, built from torch::nn modules.
class Nb201Reference : public torch::nn::Module {
 public:
  /// Builds the network of `cell` with the shape of `config`.
  Nb201Reference(const nb201::Cell& cell, const nb201::MacroConfig& config) {
    const std::int64_t c = config.channels;
    stem_conv_ = conv("stem.conv", config.input_channels, c, 3, 1);
    stem_bn_ = bn("stem.bn", c);
    std::int64_t channels = c;
    for (int stage = 1; stage <= 3; ++stage) {
      if (stage > 1) {
        const std::string p = "r" + std::to_string(stage - 1);
        Reduction r;
        r.a = relu_conv_bn(p + ".a", channels, 2 * channels, 3, 2);
        r.b = relu_conv_bn(p + ".b", 2 * channels, 2 * channels, 3, 1);
        r.pool = torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2).stride(2).padding(0));
        r.shortcut = conv(p + ".shortcut.conv", channels, 2 * channels, 1, 1);
        reductions_.push_back(std::move(r));
        channels *= 2;
      }
      for (std::int64_t k = 0; k < config.cells_per_stage; ++k) {
        std::vector<RefEdge> edges(nb201::kEdges);
        for (int e = 0; e < nb201::kEdges; ++e) {
          const std::string name = "s" + std::to_string(stage) + ".c" + std::to_string(k) + ".n" +
                                   std::to_string(nb201::kEdgeTo[e]) + ".e" +
                                   std::to_string(nb201::kEdgeFrom[e]);
          edges[e].op = cell.ops[e];
          if (cell.ops[e] == nb201::kConv1x1 || cell.ops[e] == nb201::kConv3x3)
            edges[e].conv =
                relu_conv_bn(name, channels, channels, cell.ops[e] == nb201::kConv1x1 ? 1 : 3, 1);
          if (cell.ops[e] == nb201::kAvgPool3x3)
            edges[e].pool = torch::nn::AvgPool2d(
                torch::nn::AvgPool2dOptions(3).stride(1).padding(1).count_include_pad(false));
        }
        cells_.push_back(std::move(edges));
      }
      stage_ends_.push_back(cells_.size());
    }
    head_bn_ = bn("head.bn", channels);
    classifier_ = register_module("classifier", torch::nn::Linear(channels, config.classes));
    by_name_["head.linear.weight"] = classifier_->weight;
    by_name_["head.linear.bias"] = classifier_->bias;
  }

  /// Logits [N, classes] (batch norm in whatever mode the module is in: train() for batch
  /// statistics, as the executor).
  torch::Tensor forward(const torch::Tensor& images) {
    torch::Tensor x = stem_bn_(stem_conv_(images));
    // A 1-channel input is NCHW and channels-last at once, and the stem keeps NCHW then.
    if (channels_last_) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    std::size_t cell = 0;
    for (std::size_t stage = 0; stage < 3; ++stage) {
      if (stage > 0) {
        Reduction& r = reductions_[stage - 1];
        x = r.b.forward(r.a.forward(x)) + r.shortcut(r.pool(x));
      }
      for (; cell < stage_ends_[stage]; ++cell) x = cell_forward(cells_[cell], x);
    }
    x = torch::relu(head_bn_(x));
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return classifier_(x);
  }

  /// Runs the activations channels-last after the stem, as the executor does (default: off).
  void set_channels_last(bool on) { channels_last_ = on; }

  /// Parameters under the names the operator graph gives them.
  const std::map<std::string, torch::Tensor>& by_name() const { return by_name_; }

  /// Copies `weights` (graph names) into the modules' parameters.
  template <typename Map>
  void load(const Map& weights) {
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : by_name_) p.copy_(weights.at(name));
  }

 private:
  struct Reduction {
    RefReluConvBn a, b;
    torch::nn::AvgPool2d pool{nullptr};
    torch::nn::Conv2d shortcut{nullptr};
  };

  static torch::Tensor cell_forward(std::vector<RefEdge>& edges, const torch::Tensor& in) {
    std::vector<torch::Tensor> nodes{in};
    int e = 0;
    for (int j = 1; j < 4; ++j) {
      torch::Tensor sum;
      for (int i = 0; i < j; ++i, ++e) {
        if (edges[e].op == nb201::kNone) continue;
        torch::Tensor y = edges[e].forward(nodes[i]);
        sum = sum.defined() ? sum + y : y;
      }
      if (!sum.defined()) sum = torch::zeros_like(in);  // every edge is none
      nodes.push_back(sum);
    }
    return nodes[3];
  }

  std::string module_name(const std::string& graph_name) {
    std::string s = graph_name;
    for (char& ch : s)
      if (ch == '.') ch = '_';
    return s;
  }
  torch::nn::Conv2d conv(const std::string& name, std::int64_t in, std::int64_t out, std::int64_t k,
                         std::int64_t stride) {
    auto m = register_module(
        module_name(name),
        torch::nn::Conv2d(
            torch::nn::Conv2dOptions(in, out, k).stride(stride).padding((k - 1) / 2).bias(false)));
    by_name_[name + ".weight"] = m->weight;
    return m;
  }
  torch::nn::BatchNorm2d bn(const std::string& name, std::int64_t c) {
    auto m = register_module(module_name(name), torch::nn::BatchNorm2d(c));
    by_name_[name + ".weight"] = m->weight;
    by_name_[name + ".bias"] = m->bias;
    return m;
  }
  RefReluConvBn relu_conv_bn(const std::string& prefix, std::int64_t in, std::int64_t out,
                             std::int64_t k, std::int64_t stride) {
    RefReluConvBn r;
    r.conv = conv(prefix + ".conv", in, out, k, stride);
    r.bn = bn(prefix + ".bn", out);
    return r;
  }

  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Reduction> reductions_;
  std::vector<std::vector<RefEdge>> cells_;
  std::vector<std::size_t> stage_ends_;
  torch::nn::BatchNorm2d head_bn_{nullptr};
  torch::nn::Linear classifier_{nullptr};
  std::map<std::string, torch::Tensor> by_name_;
  bool channels_last_ = false;
};

}  // namespace hypernas::test
