// ABI 1.4, out of tree: a surrogate that is differentiable in the architecture parameters, for
// the built-in `gradient` strategy. Its weights are the executor's initial weights of the
// space's relaxed network (SearchSpace::relaxed()), each conv weight scaled by (1 + the mean
// probability of its cell's block), so the loss reaches α through the generated weights as
// well as through the mixes. The base weights are its relaxed_parameters(): cross-search trains
// them. It scores a discrete architecture by the accuracy of the relaxed network run with the
// architecture's one-hot probabilities (SearchSpace::select()), which Executor::forward_relaxed()
// makes the discrete network itself.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <hypernas/surrogate.h>

namespace {

using namespace hypernas;

class RelaxedScale final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("seed", 0, "seed of the base weights", 0);
      return t;
    }();
    return table;
  }
  explicit RelaxedScale(const Options& o) : seed_(static_cast<std::uint64_t>(o.get_int("seed"))) {}
  std::uint32_t capabilities() const override {
    return kGeneratesWeights | kArchGradient | kNeedsData | kReadsEvalBatch | kReadsEvalImages;
  }
  void fit(Context&, const FitRequest&) override {}

  WeightMap generate_relaxed(Context& ctx, const SearchSpace& space,
                             const std::vector<at::Tensor>& alphas) override {
    build(ctx, space);
    std::vector<at::Tensor> mean;
    for (const auto& a : alphas) mean.push_back(at::softmax(a, -1).mean());
    WeightMap w = base_;
    for (const auto& [node, block] : conv_block_) {
      const std::string key = node + ".weight";
      w[key] = base_.at(key) * (1 + mean[static_cast<std::size_t>(block)]);
    }
    return w;
  }
  std::vector<at::Tensor> relaxed_parameters() override {
    std::vector<at::Tensor> out;
    for (auto& [name, t] : base_) out.push_back(t);
    return out;
  }
  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    std::vector<Score> out;
    for (const Architecture* arch : r.archs) {
      const Selection sel = r.space->select(*arch);
      const WeightMap w = generate_relaxed(ctx, *r.space, sel.probs);
      BatchOptions bo;
      bo.batch_size = r.batch_size;
      bo.limit = r.max_images;
      auto stream = r.data->batches(Split::Valid, bo);
      double correct = 0, seen = 0;
      at::NoGradGuard no_grad;
      while (auto b = stream->next()) {
        const at::Tensor logits =
            ctx.executor()->forward_relaxed(relax_, w, sel.probs, b->images).back();
        correct += logits.argmax(1).eq(b->labels).sum().item<double>();
        seen += static_cast<double>(b->labels.size(0));
      }
      Score s;
      s.value = seen > 0 ? correct / seen : 0;
      out.push_back(s);
    }
    return out;
  }

 private:
  void build(Context& ctx, const SearchSpace& space) {
    if (!base_.empty()) return;
    relax_ = space.relaxed();
    base_ = ctx.executor()->init_weights(relax_.network, seed_, ctx.device());
    for (const MixChoice& m : relax_.mixes)
      for (const std::string& node : m.nodes)
        if (base_.count(node + ".weight") && node.find("conv") != std::string::npos)
          conv_block_[node] = m.block;
  }
  std::uint64_t seed_;
  Relaxation relax_;
  WeightMap base_;
  std::map<std::string, std::int64_t> conv_block_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, RelaxedScale, "relaxed_scale", "1.4.0",
                "out-of-tree example: relaxed-network weights differentiable in the architecture "
                "parameters, for the gradient strategy")
