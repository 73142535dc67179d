#include "kernel/train/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <hypernas/anytime.h>
#include <hypernas/error.h>
#include <hypernas/graph_stats.h>

#include "kernel/store/store.h"

namespace hypernas::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Accuracy of every exit of `forward` (images -> logits of every exit) on `split`, in exit
/// order.
template <typename Forward>
std::vector<double> exit_accuracies(Forward&& forward, const Dataset& data, Split split,
                                    std::int64_t batch_size, std::int64_t limit,
                                    c10::Device device) {
  HYPERNAS_CHECK(batch_size >= 1, "evaluate: batch size must be >= 1, got ", batch_size);
  HYPERNAS_CHECK(limit >= 0, "evaluate: image limit must be >= 0, got ", limit);
  HYPERNAS_CHECK(data.size(split) > 0, "evaluate: dataset '", data.name(), "' has no ",
                 split_name(split), " images");
  c10::NoGradGuard no_grad;
  BatchOptions bo;
  bo.batch_size = batch_size;
  bo.limit = limit;
  Rng unused(0);  // no shuffle, no augmentation: nothing is drawn
  auto stream = data.batches(split, bo, unused);
  std::vector<at::Tensor> correct;
  std::int64_t seen = 0;
  while (auto batch = stream->next()) {
    at::Tensor images = batch->images;
    if (images.device() != device) images = images.to(device);
    const std::vector<at::Tensor> logits = forward(images);
    HYPERNAS_CHECK(!logits.empty(), "evaluate: the executor returned no output");
    HYPERNAS_CHECK(correct.empty() || correct.size() == logits.size(),
                   "evaluate: the executor returned ", logits.size(), " exits, then ",
                   correct.size());
    const at::Tensor labels = batch->labels.to(logits.back().device());
    correct.resize(logits.size());
    for (std::size_t e = 0; e < logits.size(); ++e) {
      at::Tensor hits = logits[e].argmax(1).eq(labels).sum();
      correct[e] = correct[e].defined() ? correct[e] + hits : hits;
    }
    seen += batch->labels.size(0);
  }
  HYPERNAS_CHECK(seen > 0, "evaluate: no ", split_name(split), " images were read from '",
                 data.name(), "'");
  std::vector<double> out;
  for (const at::Tensor& c : correct) out.push_back(c.item<double>() / static_cast<double>(seen));
  return out;
}

/// Accuracy of the network's output (its last exit) on `split`.
template <typename Forward>
double accuracy_of(Forward&& forward, const Dataset& data, Split split, std::int64_t batch_size,
                   std::int64_t limit, c10::Device device) {
  return exit_accuracies(std::forward<Forward>(forward), data, split, batch_size, limit, device)
      .back();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Options

const ParamTable& TrainOptions::params() noexcept {
  static const ParamTable table = [] {
    const TrainOptions d;
    ParamTable t;
    t.add_int("epochs", d.epochs, "passes over the train split", 1);
    t.add_int("batch", d.batch, "images per step", 1);
    t.add_real("lr", d.lr, "initial learning rate", 0.0);
    t.add_real("momentum", d.momentum, "SGD momentum (0: none)", 0.0, 1.0);
    t.add_bool("nesterov", d.nesterov, "Nesterov momentum");
    t.add_real("weight_decay", d.weight_decay, "L2 penalty on every parameter", 0.0);
    t.add_real("label_smoothing", d.label_smoothing, "label smoothing epsilon", 0.0, 0.999);
    t.add_string("schedule", d.schedule, "learning-rate schedule, stepped every batch",
                 {"cosine", "constant"});
    t.add_int("eval_batch", d.eval_batch, "evaluation batch size (batch-statistics BN)", 1);
    t.add_int("max_steps", d.max_steps, "stop after this many steps in all (0: no limit)", 0);
    t.add_bool("augment", d.augment, "apply the dataset's training augmentation");
    t.add_real("grad_clip", d.grad_clip, "clip the global gradient norm to this (0: off)", 0.0);
    t.add_int("valid_images", d.valid_images,
              "validation images evaluated after each epoch (0: the whole split)", 0);
    t.add_int("test_images", d.test_images, "test images for the final accuracy (0: all)", 0);
    t.add_string("exit_weights", d.exit_weights,
                 "multi-exit networks: weights of the exits' losses, comma-separated, by exit "
                 "order, the last repeating (empty: every exit 1)");
    t.add_int("epoch_steps", d.epoch_steps,
              "steps per epoch, i.e. per point of the curves (0: one pass over the train split)",
              0);
    return t;
  }();
  return table;
}

TrainOptions TrainOptions::from_options(const Options& given) {
  const Options o = params().resolve(given, "train");
  TrainOptions t;
  t.epochs = o.get_int("epochs");
  t.batch = o.get_int("batch");
  t.lr = o.get_real("lr");
  t.momentum = o.get_real("momentum");
  t.nesterov = o.get_bool("nesterov");
  t.weight_decay = o.get_real("weight_decay");
  t.label_smoothing = o.get_real("label_smoothing");
  t.schedule = o.get_string("schedule");
  t.eval_batch = o.get_int("eval_batch");
  t.max_steps = o.get_int("max_steps");
  t.augment = o.get_bool("augment");
  t.grad_clip = o.get_real("grad_clip");
  t.valid_images = o.get_int("valid_images");
  t.test_images = o.get_int("test_images");
  t.exit_weights = o.get_string("exit_weights");
  t.epoch_steps = o.get_int("epoch_steps");
  parse_exit_weights(t.exit_weights);  // a malformed list fails here, not at the first step
  return t;
}

Options TrainOptions::to_options() const {
  Options o;
  o.set("epochs", epochs)
      .set("batch", batch)
      .set("lr", lr)
      .set("momentum", momentum)
      .set("nesterov", nesterov)
      .set("weight_decay", weight_decay)
      .set("label_smoothing", label_smoothing)
      .set("schedule", schedule)
      .set("eval_batch", eval_batch)
      .set("max_steps", max_steps)
      .set("augment", augment)
      .set("grad_clip", grad_clip)
      .set("valid_images", valid_images)
      .set("test_images", test_images);
  // NOTE: left out at its default so that the recipes of single-exit trainings recorded before
  // the option existed stay equal (a rerun reuses them).
  if (!exit_weights.empty()) o.set("exit_weights", exit_weights);
  if (epoch_steps > 0) o.set("epoch_steps", epoch_steps);
  return o;
}

std::vector<double> parse_exit_weights(const std::string& text) {
  return hypernas::parse_exit_weights(text, "train: option 'exit_weights'");
}

at::Tensor exit_loss(const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                     const std::vector<double>& weights, double smoothing) {
  HYPERNAS_CHECK(!logits.empty(), "exit_loss: the network returned no exit");
  at::Tensor loss;
  for (std::size_t e = 0; e < logits.size(); ++e) {
    const double w = weights.empty() ? 1.0 : weights[std::min(e, weights.size() - 1)];
    if (w == 0) continue;
    at::Tensor l = cross_entropy(logits[e], labels, smoothing);
    if (w != 1) l = l * w;
    loss = loss.defined() ? loss + l : l;
  }
  // every weight 0: a zero that still reaches the weights (their gradients are 0)
  return loss.defined() ? loss : logits.back().sum() * 0;
}

// ---------------------------------------------------------------------------------------------
// Loss, clipping, optimiser

at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& labels, double smoothing) {
  HYPERNAS_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
                 "cross_entropy: expected logits [N, K] and labels [N], got ", logits.sizes(),
                 " and ", labels.sizes());
  const at::Tensor logp = at::log_softmax(logits, 1);
  at::Tensor loss = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (smoothing > 0) loss = loss * (1.0 - smoothing) - logp.mean(1) * smoothing;
  return loss.mean();
}

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> norms;
  norms.reserve(params.size());
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm().reshape({1}));
  if (norms.empty()) return {};
  c10::NoGradGuard no_grad;
  const at::Tensor total = at::cat(norms).norm();
  if (max_norm > 0) {
    const at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& p : params)
      if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return total;
}

Sgd::Sgd(std::vector<at::Tensor> params, const Config& config)
    : params_(std::move(params)), momentum_(params_.size()), config_(config) {
  HYPERNAS_CHECK(config.momentum > 0 || !config.nesterov,
                 "SGD: Nesterov momentum needs momentum > 0, got ", config.momentum,
                 " (set nesterov = false)");
}

void Sgd::step() {
  c10::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    at::Tensor d = p.grad();
    if (config_.weight_decay != 0) d = d.add(p, config_.weight_decay);
    if (config_.momentum != 0) {
      at::Tensor& buf = momentum_[i];
      if (!buf.defined()) buf = d.clone();
      else buf.mul_(config_.momentum).add_(d);
      d = config_.nesterov ? d.add(buf, config_.momentum) : buf;
    }
    p.add_(d, -config_.lr);
  }
}

void Sgd::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

// ---------------------------------------------------------------------------------------------
// Evaluation and training

double evaluate(const Executor& exec, const Architecture& arch, const WeightMap& weights,
                const Dataset& data, Split split, std::int64_t batch_size, std::int64_t limit) {
  c10::Device device = weights.empty() ? c10::Device(c10::kCPU) : weights.begin()->second.device();
  if (const auto* graph_exec = dynamic_cast<const exec::GraphExecutor*>(&exec)) {
    const auto plan = graph_exec->compile(arch);
    return accuracy_of([&](const at::Tensor& x) { return graph_exec->forward(*plan, weights, x); },
                       data, split, batch_size, limit, device);
  }
  return accuracy_of([&](const at::Tensor& x) { return exec.forward(arch, weights, x); }, data,
                     split, batch_size, limit, device);
}

TrainResult train(Context& ctx, const Architecture& arch, const Dataset& data,
                  const TrainOptions& o, const exec::GraphExecutor& exec) {
  // Check the options here too: callers may fill the struct by hand.
  TrainOptions::from_options(o.to_options());
  const auto start = Clock::now();
  const c10::Device device = ctx.device();
  const std::int64_t n_train = data.size(Split::Train);
  HYPERNAS_CHECK(n_train > 0, "train: dataset '", data.name(), "' has no training images");

  TrainResult result;
  TrainingRecord& rec = result.record;
  rec.arch_hash = ctx.store().record_architecture(arch);
  rec.recipe = o.recipe();

  const auto plan = exec.compile(arch);
  Rng rng = ctx.rng().fork(0x747261696eull);  // "train"
  result.weights = exec::GraphExecutor::init_weights(*plan, rng.next_u64(), device);
  std::vector<at::Tensor> params;
  params.reserve(result.weights.size());
  for (const auto& p : exec::GraphExecutor::parameters(*plan))
    params.push_back(result.weights.at(p.name));
  Sgd sgd(params, Sgd::Config{o.lr, o.momentum, o.weight_decay, o.nesterov});
  const std::vector<double> exit_weights = parse_exit_weights(o.exit_weights);

  // A full batch every step when the split allows it (batch-statistics BN dislikes tiny ones).
  const bool drop_last = n_train >= o.batch;
  const std::int64_t per_epoch =
      o.epoch_steps > 0 ? o.epoch_steps : (drop_last ? n_train / o.batch : 1);
  std::int64_t total = o.epochs * per_epoch;
  if (o.max_steps > 0) total = std::min(total, o.max_steps);
  const std::int64_t epochs = (total + per_epoch - 1) / per_epoch;
  const bool has_valid = data.size(Split::Valid) > 0;
  if (!has_valid)
    ctx.log().info(cat("dataset '", data.name(),
                       "' has no validation split: no validation accuracy per epoch"));

  auto progress = ctx.progress(cat("train ", abbreviate(arch.text, 60)), total);
  const double pi = std::acos(-1.0);
  std::int64_t step = 0;
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    BatchOptions bo;
    bo.batch_size = o.batch;
    bo.shuffle = true;
    bo.augment = o.augment;
    bo.drop_last = drop_last;
    auto stream = data.batches(Split::Train, bo, rng);
    double loss_sum = 0;
    std::int64_t in_epoch = 0;
    while (step < total) {
      ctx.check_cancelled();
      if (o.epoch_steps > 0 && in_epoch == o.epoch_steps) break;
      auto batch = stream->next();
      if (!batch && o.epoch_steps > 0) {  // an epoch of more steps than one pass: go on
        stream = data.batches(Split::Train, bo, rng);
        batch = stream->next();
      }
      if (!batch) break;
      const double lr =
          o.schedule == "cosine"
              ? o.lr * 0.5 *
                    (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total)))
              : o.lr;
      sgd.set_lr(lr);
      at::Tensor images = batch->images;
      at::Tensor labels = batch->labels;
      if (images.device() != device) images = images.to(device);
      if (labels.device() != device) labels = labels.to(device);

      const std::vector<at::Tensor> logits = exec.forward(*plan, result.weights, images);
      at::Tensor loss = exit_loss(logits, labels, exit_weights, o.label_smoothing);
      const double value = loss.item<double>();
      ++in_epoch;
      if (!std::isfinite(value))
        throw Error(cat("training diverged: loss is ", std::isnan(value) ? "NaN" : "inf",
                        " at epoch ", epoch, " step ", in_epoch, " (lr ", lr, ") of architecture '",
                        abbreviate(arch.text), "'; try a lower lr or a smaller grad_clip"));
      loss.backward();
      if (o.grad_clip > 0) clip_grad_norm(params, o.grad_clip);
      sgd.step();
      sgd.zero_grad();
      loss_sum += value;
      ++step;
      result.images += labels.size(0);
      progress->advance(1, cat("epoch ", epoch, "/", epochs, " loss ", value));
    }
    result.train_seconds += seconds_since(epoch_start);
    HYPERNAS_CHECK(in_epoch > 0, "train: epoch ", epoch, " read no batch from dataset '",
                   data.name(), "'");
    rec.train_loss.push_back(loss_sum / static_cast<double>(in_epoch));
    std::string line = cat("epoch ", epoch, "/", epochs, ": train loss ", rec.train_loss.back());
    if (has_valid) {
      rec.valid_accuracy.push_back(
          accuracy_of([&](const at::Tensor& x) { return exec.forward(*plan, result.weights, x); },
                      data, Split::Valid, o.eval_batch, o.valid_images, device));
      line += cat(", valid accuracy ", rec.valid_accuracy.back());
    }
    ctx.log().info(line + cat(", lr ", sgd.lr()));
  }
  progress->finish();
  result.steps = step;

  rec.test_accuracy = std::numeric_limits<double>::quiet_NaN();
  if (data.size(Split::Test) > 0) {
    const std::vector<double> acc =
        exit_accuracies([&](const at::Tensor& x) { return exec.forward(*plan, result.weights, x); },
                        data, Split::Test, o.eval_batch, o.test_images, device);
    rec.test_accuracy = acc.back();
    if (acc.size() > 1) {
      const std::vector<std::int64_t> flops = exit_flops(arch.graph, data.spec().height);
      HYPERNAS_INTERNAL_ASSERT(flops.size() == acc.size(), "exit_flops counts ", flops.size(),
                               " exits, the executor ran ", acc.size());
      for (std::size_t e = 0; e < acc.size(); ++e) result.exits.push_back({acc[e], flops[e]});
      std::string line = "test accuracy per exit (FLOPs):";
      for (const ExitScore& e : result.exits) line += cat(" ", e.accuracy, " (", e.flops, ")");
      ctx.log().info(line);
    }
  }
  rec.seconds = seconds_since(start);
  ctx.log().info(cat("trained '", abbreviate(arch.text), "' in ", step, " steps, ", rec.seconds,
                     " s: test accuracy ", rec.test_accuracy));
  if (auto* sqlite = dynamic_cast<store::SqliteStore*>(&ctx.store()))
    sqlite->record_training(rec, result.exits);
  else ctx.store().record_training(rec);
  return result;
}

}  // namespace hypernas::train
