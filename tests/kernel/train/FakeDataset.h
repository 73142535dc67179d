#pragma once
/// @file FakeDataset.h
/// @brief A test double shared by the trainer's and the `sgd` surrogate's tests: a tiny
/// synthetic dataset that a network with convolutions can learn and a network that ignores its
/// input cannot. (The in-memory results store and the context are in tests/support/context.h.)
///
/// The task: 3 classes, images [3, S, S] of Gaussian noise plus `signal` added to the channel
/// whose index is the label. The mean of each channel gives the class away.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <hypernas/context.h>
#include <hypernas/data.h>

#include "tests/support/context.h"

namespace hypernas::test {

/// An in-memory dataset of the synthetic task above.
class FakeDataset final : public Dataset {
 public:
  /// Splits of `train`, `valid` and `test` images of `size` x `size` pixels from `seed`.
  /// With `poison`, the first training image is NaN.
  FakeDataset(std::int64_t train, std::int64_t valid, std::int64_t test, std::int64_t size = 8,
              std::uint64_t seed = 1, double signal = 1.0, bool poison = false)
      : size_(size) {
    auto gen = at::detail::createCPUGenerator(seed);
    const std::int64_t n[3] = {train, valid, test};
    for (int s = 0; s < 3; ++s) {
      at::Tensor labels = at::arange(n[s], at::kLong).remainder(kClasses);
      labels = labels.index_select(0, at::randperm(n[s], gen, at::kLong));
      at::Tensor images = at::randn({n[s], kClasses, size, size}, gen);
      images += at::one_hot(labels, kClasses).to(at::kFloat).view({n[s], kClasses, 1, 1}) * signal;
      images_[s] = images;
      labels_[s] = labels;
    }
    if (poison && train > 0) images_[0][0].fill_(std::numeric_limits<float>::quiet_NaN());
  }
  static constexpr std::int64_t kClasses = 3;  ///< Number of classes (and image channels).

  std::string name() const override { return "fake"; }
  std::string identity() const override { return cat("fake{size=", size_, "}"); }
  using Dataset::batches;
  ProblemSpec spec() const override { return {kClasses, size_, size_, kClasses}; }
  std::int64_t size(Split split) const override { return labels_[index(split)].size(0); }
  std::unique_ptr<BatchStream> batches(Split split, const BatchOptions& o,
                                       Rng& rng) const override {
    const int s = index(split);
    std::vector<std::int64_t> order(static_cast<std::size_t>(labels_[s].size(0)));
    std::iota(order.begin(), order.end(), 0);
    if (o.shuffle) std::shuffle(order.begin(), order.end(), rng.engine());
    if (o.limit > 0 && static_cast<std::int64_t>(order.size()) > o.limit)
      order.resize(static_cast<std::size_t>(o.limit));
    ++streams_;
    return std::make_unique<Stream>(images_[s], labels_[s], std::move(order), o);
  }
  /// Number of streams opened so far.
  int streams() const { return streams_; }

 private:
  class Stream final : public BatchStream {
   public:
    Stream(at::Tensor images, at::Tensor labels, std::vector<std::int64_t> order,
           const BatchOptions& o)
        : images_(std::move(images)), labels_(std::move(labels)), order_(std::move(order)), o_(o) {}
    std::optional<Batch> next() override {
      const auto n = static_cast<std::int64_t>(order_.size());
      if (pos_ >= n) return std::nullopt;
      const std::int64_t take = std::min(o_.batch_size, n - pos_);
      if (o_.drop_last && take < o_.batch_size) return std::nullopt;
      at::Tensor idx =
          at::tensor(std::vector<std::int64_t>(order_.begin() + pos_, order_.begin() + pos_ + take),
                     at::kLong);
      pos_ += take;
      return Batch{images_.index_select(0, idx), labels_.index_select(0, idx)};
    }

   private:
    at::Tensor images_, labels_;
    std::vector<std::int64_t> order_;
    BatchOptions o_;
    std::int64_t pos_ = 0;
  };
  static int index(Split s) { return s == Split::Train ? 0 : s == Split::Valid ? 1 : 2; }

  std::int64_t size_;
  at::Tensor images_[3], labels_[3];
  mutable int streams_ = 0;
};

}  // namespace hypernas::test
