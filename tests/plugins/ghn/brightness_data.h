#pragma once
/// @file brightness_data.h
/// @brief A tiny dataset for the GHN tests: images whose class is their brightness.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <hypernas/data.h>
#include <hypernas/error.h>

namespace hypernas::test {

/// Tiny images whose class is their brightness: class k of K has pixels around (k + 0.5) / K,
/// plus Gaussian noise of std `noise`. Train and valid splits are fixed by the seed; batches in
/// order or shuffled with the caller's Rng.
class BrightnessData final : public Dataset {
 public:
  BrightnessData(std::int64_t train, std::int64_t valid, std::int64_t size = 4,
                 std::int64_t classes = 2, bool poison = false, std::int64_t channels = 1,
                 std::uint64_t seed = 7, double noise = 0.15)
      : size_(size), classes_(classes), channels_(channels) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    for (auto [split, n] : {std::pair{Split::Train, train}, std::pair{Split::Valid, valid}}) {
      at::Tensor labels = at::randint(classes, {n}, gen, at::kLong);
      at::Tensor images = (labels.to(at::kFloat).view({n, 1, 1, 1}) + 0.5) / classes +
                          noise * at::randn({n, channels, size, size}, gen);
      if (poison) images.fill_(std::nan(""));
      images_[split] = (images - 0.5) * 2.0;
      labels_[split] = labels;
    }
  }
  std::string name() const override { return "brightness"; }
  std::string identity() const override { return cat("brightness{size=", size_, "}"); }
  using Dataset::batches;
  ProblemSpec spec() const override { return {channels_, size_, size_, classes_}; }
  std::int64_t size(Split s) const override {
    auto it = labels_.find(s);
    return it == labels_.end() ? 0 : it->second.size(0);
  }
  std::unique_ptr<BatchStream> batches(Split s, const BatchOptions& o, Rng& rng) const override {
    struct Stream final : BatchStream {
      at::Tensor images, labels;
      std::vector<std::int64_t> order;
      std::int64_t pos = 0, batch = 1;
      bool drop_last = false;
      std::optional<Batch> next() override {
        const std::int64_t n = static_cast<std::int64_t>(order.size());
        if (pos >= n || (drop_last && pos + batch > n)) return std::nullopt;
        const std::int64_t end = std::min(n, pos + batch);
        std::vector<std::int64_t> ids(order.begin() + pos, order.begin() + end);
        pos = end;
        at::Tensor idx = at::tensor(ids, at::kLong);
        return Batch{images.index_select(0, idx), labels.index_select(0, idx)};
      }
    };
    auto st = std::make_unique<Stream>();
    st->images = images_.at(s);
    st->labels = labels_.at(s);
    std::int64_t n = st->labels.size(0);
    if (o.limit > 0) n = std::min(n, o.limit);
    st->order.resize(static_cast<std::size_t>(st->labels.size(0)));
    std::iota(st->order.begin(), st->order.end(), 0);
    if (o.shuffle) std::shuffle(st->order.begin(), st->order.end(), rng.engine());
    st->order.resize(static_cast<std::size_t>(n));
    st->batch = o.batch_size;
    st->drop_last = o.drop_last;
    return st;
  }

 private:
  std::int64_t size_, classes_, channels_;
  std::map<Split, at::Tensor> images_, labels_;
};

}  // namespace hypernas::test
