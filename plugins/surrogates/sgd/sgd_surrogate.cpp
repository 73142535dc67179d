// Surrogate `sgd`: the early-stopping baseline of the GHN paper (Zhang et al., ICLR 2019,
// section 5: "SGD" rows). Each architecture is trained from scratch for k SGD steps and scored
// by its validation accuracy. No hypernetwork, nothing to fit; the cost per candidate is k
// training steps plus one evaluation.
//
// A plugin cannot link the kernel, so everything here uses only the SDK (the kernel's graph
// executor comes through Context::executor(), with the initialisation nas.train uses:
// Executor::init_weights) and ATen: the loss and the SGD update (torch.optim.SGD's rule).
//
// Randomness: architecture i is trained from ScoreRequest::seeds[i], the per-evaluation seed
// the kernel derives from the run's seed and the architecture: one draw for its initial
// weights, then the batch order. A score depends on nothing else, so stored scores can be
// reused whatever order the candidates come in.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <hypernas/surrogate.h>

#include "../common/optim.h"

namespace {

using namespace hypernas;

/// Mean cross-entropy of `logits` [N, K] against `labels` [N].
at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  return -at::log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).mean();
}

class SgdSurrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("steps", 50, "SGD steps from scratch per architecture (k)", 1);
      t.add_int("batch", 64, "training images per step", 1);
      t.add_real("lr", 0.05, "learning rate (constant over the k steps)", 0.0);
      t.add_real("momentum", 0.9, "SGD momentum (0: none)", 0.0, 1.0);
      t.add_bool("nesterov", true, "Nesterov momentum");
      t.add_real("weight_decay", 5e-4, "L2 penalty on every parameter", 0.0);
      t.add_real("grad_clip", 5.0, "clip the global gradient norm to this (0: off)", 0.0);
      t.add_bool("augment", false, "apply the dataset's training augmentation");
      t.add_int("eval_images", 1000,
                "validation images scored per architecture (ScoreRequest::max_images overrides)",
                1);
      return t;
    }();
    return table;
  }

  explicit SgdSurrogate(const Options& o)
      : steps_(o.get_int("steps")),
        batch_(o.get_int("batch")),
        lr_(o.get_real("lr")),
        momentum_(o.get_real("momentum")),
        nesterov_(o.get_bool("nesterov")),
        weight_decay_(o.get_real("weight_decay")),
        grad_clip_(o.get_real("grad_clip")),
        augment_(o.get_bool("augment")),
        eval_images_(o.get_int("eval_images")) {
    if (nesterov_ && momentum_ <= 0)
      throw UsageError("sgd: option 'nesterov' needs momentum > 0, got momentum 0");
  }

  std::uint32_t capabilities() const override {
    return kNeedsData | kUsesSeed | kReadsEvalBatch | kReadsEvalImages;
  }

  void fit(Context&, const FitRequest&) override {}

  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    const Executor* exec = ctx.executor();
    HYPERNAS_CHECK(exec != nullptr,
                   "sgd: this kernel lends no graph executor (Context::executor() is null), "
                   "so architectures cannot be trained");
    HYPERNAS_CHECK(r.data != nullptr, "sgd: scoring needs a dataset (ScoreRequest::data)");
    const Dataset& data = *r.data;
    HYPERNAS_CHECK(data.size(Split::Train) > 0, "sgd: dataset '", data.name(),
                   "' has no training images");
    HYPERNAS_CHECK(data.size(Split::Valid) > 0, "sgd: dataset '", data.name(),
                   "' has no validation split; open it with valid > 0");
    HYPERNAS_CHECK(r.batch_size >= 1, "sgd: evaluation batch size must be >= 1, got ",
                   r.batch_size);
    HYPERNAS_CHECK(r.seeds.size() == r.archs.size(),
                   "sgd: expected one seed per architecture "
                   "(ScoreRequest::seeds), got ",
                   r.seeds.size(), " for ", r.archs.size());

    std::vector<Score> out;
    out.reserve(r.archs.size());
    for (std::size_t i = 0; i < r.archs.size(); ++i) {
      HYPERNAS_CHECK(r.archs[i] != nullptr, "sgd: got a null architecture");
      out.push_back(score_one(ctx, *exec, *r.archs[i], data, r, r.seeds[i]));
    }
    return out;
  }

 private:
  Score score_one(Context& ctx, const Executor& exec, const Architecture& arch, const Dataset& data,
                  const ScoreRequest& r, std::uint64_t seed) {
    const auto start = std::chrono::steady_clock::now();
    const c10::Device device = ctx.device();
    Rng rng(seed);
    const std::vector<ParamShape> shapes = exec.parameters(arch);
    WeightMap weights = exec.init_weights(arch, rng.next_u64(), device);
    std::vector<at::Tensor> params;
    params.reserve(shapes.size());
    for (const auto& p : shapes) params.push_back(weights.at(p.name));
    std::vector<at::Tensor> momentum(params.size());

    BatchOptions bo;
    bo.batch_size = batch_;
    bo.shuffle = true;
    bo.augment = augment_;
    bo.drop_last = data.size(Split::Train) >= batch_;
    std::unique_ptr<BatchStream> stream;
    std::vector<double> losses;
    bool diverged = false;
    for (std::int64_t step = 0; step < steps_; ++step) {
      ctx.check_cancelled();
      std::optional<Batch> batch = stream ? stream->next() : std::nullopt;
      if (!batch) {  // a new pass over the train split
        stream = data.batches(Split::Train, bo, rng);
        batch = stream->next();
        HYPERNAS_CHECK(batch.has_value(), "sgd: dataset '", data.name(),
                       "' gave no training batch");
      }
      at::Tensor images = batch->images.to(device);
      at::Tensor labels = batch->labels.to(device);
      const std::vector<at::Tensor> logits = exec.forward(arch, weights, images);
      HYPERNAS_CHECK(!logits.empty(), "sgd: the executor returned no output");
      at::Tensor loss = cross_entropy(logits.back(), labels);
      for (std::size_t e = 0; e + 1 < logits.size(); ++e)
        loss = loss + cross_entropy(logits[e], labels);
      if (logits.size() > 1) loss = loss / static_cast<double>(logits.size());
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        diverged = true;
        ctx.log().warn(cat("sgd: loss of '", abbreviate(arch.text), "' is ", value, " at step ",
                           step + 1, "; scored 0"));
        break;
      }
      losses.push_back(value);
      loss.backward();
      update(params, momentum);
    }

    Score s;
    s.extra["steps"] = static_cast<double>(losses.size());
    s.extra["diverged"] = diverged ? 1.0 : 0.0;
    if (!losses.empty()) {
      const std::size_t tail = std::min<std::size_t>(10, losses.size());
      double sum = 0;
      for (std::size_t i = losses.size() - tail; i < losses.size(); ++i) sum += losses[i];
      s.extra["train_loss"] = sum / static_cast<double>(tail);
    }
    const std::int64_t limit = r.max_images > 0 ? r.max_images : eval_images_;
    if (!diverged) {
      const auto [accuracy, images] =
          evaluate(exec, arch, weights, data, r.batch_size, limit, device);
      s.value = accuracy;
      s.extra["accuracy"] = accuracy;
      s.extra["images"] = static_cast<double>(images);
    }
    s.extra["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }

  /// One torch.optim.SGD step (dampening 0) after clipping the global gradient norm.
  void update(std::vector<at::Tensor>& params, std::vector<at::Tensor>& momentum) const {
    plugins::clip_grad_norm(params, grad_clip_);
    plugins::sgd_step(params, momentum, {lr_, momentum_, nesterov_, weight_decay_});
  }

  /// Accuracy of the last exit on the first `limit` validation images, and how many were read.
  static std::pair<double, std::int64_t> evaluate(const Executor& exec, const Architecture& arch,
                                                  const WeightMap& weights, const Dataset& data,
                                                  std::int64_t batch_size, std::int64_t limit,
                                                  c10::Device device) {
    c10::NoGradGuard no_grad;
    BatchOptions bo;
    bo.batch_size = batch_size;
    bo.limit = limit;
    Rng unused(0);
    auto stream = data.batches(Split::Valid, bo, unused);
    at::Tensor correct;
    std::int64_t seen = 0;
    while (auto batch = stream->next()) {
      const at::Tensor logits = exec.forward(arch, weights, batch->images.to(device)).back();
      at::Tensor hits = logits.argmax(1).eq(batch->labels.to(device)).sum();
      correct = correct.defined() ? correct + hits : hits;
      seen += batch->labels.size(0);
    }
    HYPERNAS_CHECK(seen > 0, "sgd: no validation images were read from '", data.name(), "'");
    return {correct.item<double>() / static_cast<double>(seen), seen};
  }

  std::int64_t steps_;
  std::int64_t batch_;
  double lr_;
  double momentum_;
  bool nesterov_;
  double weight_decay_;
  double grad_clip_;
  bool augment_;
  std::int64_t eval_images_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, SgdSurrogate, "sgd", "1.0.0",
                "baseline: train k SGD steps from scratch, score = validation accuracy")
