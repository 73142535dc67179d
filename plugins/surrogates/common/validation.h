#pragma once
/// @file validation.h
/// @brief What the weight-generating surrogates that score by validation accuracy (`adwp`,
/// `smash`) share: the validation batches of a ScoreRequest, held in memory when they are small
/// (so that every architecture of the request sees the same tensors without reading them
/// again), and the accuracy and mean cross-entropy of a network's final logits over them.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <hypernas/data.h>
#include <hypernas/error.h>
#include <hypernas/surrogate.h>

namespace hypernas::plugins {

/// The valid split of a ScoreRequest, in batches of its batch_size, up to its max_images.
class ValidationBatches {
 public:
  /// Validation images kept in memory at most (as floats): 256 MiB.
  static constexpr std::int64_t kCacheFloats = std::int64_t{64} << 20;

  /// `who` names the plugin in messages; `prepare` (may be empty) converts each batch, e.g. to
  /// the model's dtype. Throws Error when the request has no data or an empty valid split.
  ValidationBatches(const ScoreRequest& req, std::string who,
                    std::function<Batch(Batch)> prepare = {})
      : data_(req.data), who_(std::move(who)), prepare_(std::move(prepare)) {
    HYPERNAS_CHECK(data_ != nullptr, who_, ": score needs a dataset (its valid split)");
    HYPERNAS_CHECK(req.batch_size >= 1, who_, ": score expects batch_size >= 1, got ",
                   req.batch_size);
    options_.batch_size = req.batch_size;
    options_.limit = req.max_images;
    const std::int64_t valid = data_->size(Split::Valid);
    HYPERNAS_CHECK(valid > 0, who_, ": dataset '", data_->name(), "' has an empty valid split");
    const ProblemSpec spec = data_->spec();
    const std::int64_t images = req.max_images > 0 ? std::min(req.max_images, valid) : valid;
    cached_ = images * spec.channels * spec.height * spec.width <= kCacheFloats;
    if (cached_) {
      auto stream = data_->batches(Split::Valid, options_);
      while (auto b = stream->next()) batches_.push_back(prepared(std::move(*b)));
    }
  }

  /// Calls f(batch) for every batch, in order (from memory, or read again from the dataset).
  void for_each(const std::function<void(const Batch&)>& f) const {
    if (cached_) {
      for (const Batch& b : batches_) f(b);
      return;
    }
    auto stream = data_->batches(Split::Valid, options_);
    while (auto b = stream->next()) f(prepared(std::move(*b)));
  }

  /// The score of the network `forward` runs (images -> the executor's logits, the last being
  /// the final output): value and extra["accuracy"] its accuracy over the batches,
  /// extra["loss"] its mean cross-entropy. `what` names the network in messages.
  Score accuracy(const std::function<std::vector<at::Tensor>(const at::Tensor&)>& forward,
                 const std::string& what) const {
    double loss = 0;
    std::int64_t correct = 0, count = 0;
    for_each([&](const Batch& b) {
      const std::vector<at::Tensor> logits = forward(b.images);
      HYPERNAS_CHECK(!logits.empty(), who_, ": the executor returned no output for '", what, "'");
      const at::Tensor& y = logits.back();
      loss += at::cross_entropy_loss(y, b.labels, {}, at::Reduction::Sum).item<double>();
      correct += y.argmax(1).eq(b.labels).sum().item<std::int64_t>();
      count += b.labels.size(0);
    });
    HYPERNAS_CHECK(count > 0, who_, ": no validation images were scored");
    Score s;
    s.extra["accuracy"] = static_cast<double>(correct) / static_cast<double>(count);
    s.extra["loss"] = loss / static_cast<double>(count);
    s.value = s.extra["accuracy"];
    return s;
  }

 private:
  Batch prepared(Batch b) const { return prepare_ ? prepare_(std::move(b)) : std::move(b); }

  const Dataset* data_;
  std::string who_;
  std::function<Batch(Batch)> prepare_;
  BatchOptions options_;
  bool cached_ = false;
  std::vector<Batch> batches_;
};

}  // namespace hypernas::plugins
