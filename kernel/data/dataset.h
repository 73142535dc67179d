#pragma once
/// @file dataset.h
/// @brief The kernel's datasets: options, opening a dataset by name, and the in-memory image
/// dataset behind every one of them (seeded train/valid split, normalisation, augmentation,
/// batches on the device).

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <hypernas/data.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hypernas::data {

/// How to open a dataset. Fields left unset take the dataset's literature defaults
/// (see resolve_options()).
struct DatasetOptions {
  /// "fashion-mnist", "cifar10" (JPEG image folder), "cifar10-bin" (official binary release)
  /// or "folder" (any root/{train,test}/<class>/*.jpg|png).
  std::string name;
  /// Where the files are; empty: the dataset's default (see default_root()).
  std::string root;
  /// Training examples held out as the Valid split (0: no Valid split).
  std::int64_t valid = 5000;
  /// Seed of the train/valid split; the split depends on nothing else (not on the run's seed).
  std::uint64_t split_seed = 0;
  /// Subtract a per-channel mean and divide by a per-channel standard deviation.
  bool normalize = true;
  /// Per-channel means in [0, 1]; empty: computed on the Train split (valid part excluded).
  std::vector<double> mean;
  /// Per-channel standard deviations in [0, 1]; empty: computed like `mean`.
  std::vector<double> stddev;
  /// Random crop back to the original size after zero-padding each side by this many pixels
  /// (0: no crop). Unset: 4 for CIFAR-10 ("cifar10", "cifar10-bin"), 0 otherwise.
  std::optional<std::int64_t> crop_padding;
  /// Random horizontal flip with probability 1/2. Unset: on for CIFAR-10, off otherwise.
  std::optional<bool> flip;
  /// Side of the square zeroed by cutout (DeVries & Taylor 2017), applied after
  /// normalisation; 0: none.
  std::int64_t cutout = 0;
  /// Folder for decoded image folders (binary cache files); empty: default_cache_root() +
  /// "/decoded".
  std::string cache_dir;
  /// Read and write that cache. Off: decode the images every time.
  bool cache = true;
};

/// Decoded images of one split, as read from disk: everything stays uint8 until a batch is made.
struct ImageSet {
  at::Tensor images;                 ///< uint8 [N, C, H, W], contiguous, on the CPU.
  at::Tensor labels;                 ///< int64 [N], on the CPU.
  std::vector<std::string> classes;  ///< Class names; a label indexes this list.
  /// Number of examples.
  std::int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

/// A dataset held in memory: training and test sets as uint8 tensors on the device, a
/// deterministic train/valid split of the training set, and batches made on the device
/// (gather, augment, convert to float, normalise).
///
/// Augmentation (only for Split::Train and BatchOptions::augment): random crop with zero
/// padding (in pixel space, before normalisation), horizontal flip, then cutout (zeros after
/// normalisation, i.e. the mean colour). The random draws come from a stream seeded from the
/// Rng given to batches(), and are made on the CPU, so a seed gives the same batches on any
/// device.
class ImageDataset final : public Dataset {
 public:
  /// Builds the dataset from decoded sets. `options` must be resolved (resolve_options());
  /// throws UsageError for bad options and Error when the sets disagree in shape or classes.
  ImageDataset(ImageSet train, ImageSet test, const DatasetOptions& options, c10::Device device);
  ~ImageDataset() override;

  std::string name() const override;
  ProblemSpec spec() const override;
  std::int64_t size(Split split) const override;
  /// One pass over `split`. Draws from `rng`: the shuffle (when options.shuffle), then one
  /// 64-bit seed for augmentation (when augmentation applies). Throws UsageError for a
  /// batch_size below 1 or a negative limit.
  std::unique_ptr<BatchStream> batches(Split split, const BatchOptions& options,
                                       Rng& rng) const override;
  using Dataset::batches;  // the in-order overload without an Rng
  /// "name{valid=,split_seed=,normalize=,mean=,std=,crop=,flip=,cutout=,train=,test=}", plus
  /// the root for "folder" datasets: everything that changes a split's examples or values.
  std::string identity() const override;

  /// Class names; label i is classes()[i].
  const std::vector<std::string>& classes() const;
  /// Per-channel means used for normalisation (pixel values scaled to [0, 1]).
  const std::vector<double>& mean() const;
  /// Per-channel standard deviations used for normalisation.
  const std::vector<double>& stddev() const;
  /// The resolved options the dataset was built with (mean and stddev filled in).
  const DatasetOptions& options() const;
  /// The device batches are made on.
  c10::Device device() const;
  /// Example indices of `split` in ascending order (int64, CPU): positions in the training
  /// set for Train and Valid, positions in the test set for Test.
  at::Tensor indices(Split split) const;

 private:
  struct State;
  class Stream;
  std::shared_ptr<const State> state_;
};

/// Names open_dataset() accepts.
std::vector<std::string> dataset_names();

/// The data cache root: $HYPERNAS_DATA_CACHE when set and not empty, else ~/.cache/hypernas.
std::string default_cache_root();

/// Default root of a dataset: /usr/share/datasets/fashion-mnist for "fashion-mnist",
/// default_cache_root() + "/cifar10" for "cifar10", default_cache_root() + "/cifar-10-batches-bin"
/// for "cifar10-bin"; "folder" has none (empty string). Throws UsageError for an unknown name.
std::string default_root(const std::string& name);

/// `options` with every default filled in: root, cache_dir, crop_padding and flip.
/// Throws UsageError for an unknown name or an option out of range.
DatasetOptions resolve_options(const DatasetOptions& options);

/// Opens the dataset named by options.name, decoded (or read from the cache), split and placed
/// on `device`. Throws UsageError for bad options and Error for missing or malformed files;
/// messages name the file and what was wrong.
std::shared_ptr<ImageDataset> load_image_dataset(const DatasetOptions& options, c10::Device device);

/// The same as load_image_dataset(), as the SDK's interface.
std::shared_ptr<hypernas::Dataset> open_dataset(const DatasetOptions& options, c10::Device device);

}  // namespace hypernas::data
