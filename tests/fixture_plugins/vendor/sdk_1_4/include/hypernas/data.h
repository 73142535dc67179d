#pragma once
/// @file data.h
/// @brief Datasets as plugins see them: splits, batches on the device, the problem's shape.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

namespace hypernas {

class Rng;

/// The part of a dataset a batch comes from. Valid is held out from the training set.
enum class Split { Train = 1, Valid, Test };

/// Name of a split ("train", "valid", "test").
inline const char* split_name(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Valid: return "valid";
    case Split::Test: return "test";
  }
  return "?";
}

/// Shape of one input and the number of classes: what a search space needs to size a network.
struct ProblemSpec {
  std::int64_t channels = 0;  ///< Image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
  std::int64_t height = 0;    ///< Image height in pixels.
  std::int64_t width = 0;     ///< Image width in pixels.
  std::int64_t classes = 0;   ///< Number of classes.
};

/// A batch of normalised images [N, C, H, W] (float) and labels [N] (int64), on the device.
struct Batch {
  at::Tensor images;  ///< Inputs.
  at::Tensor labels;  ///< Class indices.
};

/// Iterates over one pass of a split. next() returns std::nullopt at the end.
class BatchStream {
 public:
  virtual ~BatchStream() = default;
  /// The next batch, or std::nullopt after the last one.
  virtual std::optional<Batch> next() = 0;
};

/// How to draw batches from a split.
struct BatchOptions {
  std::int64_t batch_size = 64;  ///< Images per batch (the last batch may be smaller).
  bool shuffle = false;          ///< Visit the split in a random order drawn from the Rng.
  bool augment = false;          ///< Apply the dataset's configured augmentation (train only).
  bool drop_last = false;        ///< Skip a final batch smaller than batch_size.
  std::int64_t limit = 0;        ///< Stop after this many images (0: the whole split).
};

/// A dataset loaded, decoded and cached by the kernel. Plugins never open data files.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Name as given in the script ("fashion-mnist", "cifar10", ...).
  virtual std::string name() const = 0;
  /// Input shape and class count.
  virtual ProblemSpec spec() const = 0;
  /// Number of examples in `split`.
  virtual std::int64_t size(Split split) const = 0;
  /// One pass over `split`; with shuffle, the order comes from `rng` (and so does
  /// augmentation).
  virtual std::unique_ptr<BatchStream> batches(Split split, const BatchOptions& options,
                                               Rng& rng) const = 0;
  /// What identifies the data a score was computed on: the name and every option that changes
  /// the examples of a split or their values (split size and seed, normalisation, ...), as
  /// stable text. Part of the evaluation key (ABI 1.1).
  virtual std::string identity() const = 0;

  /// One pass over `split` in its stored order, without augmentation: the batches a score
  /// reads (ABI 1.1). Throws UsageError when `options` asks for shuffling or augmentation,
  /// which need an Rng.
  std::unique_ptr<BatchStream> batches(Split split, const BatchOptions& options) const;
};

}  // namespace hypernas

#include "hypernas/context.h"  // Rng, for the inline definition below

namespace hypernas {

inline std::unique_ptr<BatchStream> Dataset::batches(Split split,
                                                     const BatchOptions& options) const {
  if (options.shuffle || options.augment)
    throw UsageError(cat("Dataset::batches(", split_name(split),
                         ") without an Rng reads the split in order: shuffle and augment must "
                         "be off (pass an Rng to shuffle or augment)"));
  Rng unused(0);
  return batches(split, options, unused);
}

}  // namespace hypernas
