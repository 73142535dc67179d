/// @file open.cpp
/// @brief Opening a dataset by name: defaults, readers, and the in-memory dataset.

#include <hypernas/error.h>

#include <cstdlib>
#include <filesystem>

#include <ATen/ATen.h>

#include "kernel/data/dataset.h"
#include "kernel/data/readers.h"

namespace hypernas::data {
namespace {

namespace fs = std::filesystem;

bool is_cifar(const std::string& name) { return name == "cifar10" || name == "cifar10-bin"; }

std::string known_names() {
  std::string s;
  for (const auto& n : dataset_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"fashion-mnist", "cifar10", "cifar10-bin", "folder"};
}

std::string default_cache_root() {
  if (const char* env = std::getenv("HYPERNAS_DATA_CACHE"); env != nullptr && *env != '\0')
    return env;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return (fs::path(home) / ".cache" / "hypernas").string();
  return (fs::temp_directory_path() / "hypernas-cache").string();
}

std::string default_root(const std::string& name) {
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "cifar10") return (fs::path(default_cache_root()) / "cifar10").string();
  if (name == "cifar10-bin")
    return (fs::path(default_cache_root()) / "cifar-10-batches-bin").string();
  if (name == "folder") return "";
  throw UsageError(cat("unknown dataset \"", name, "\"; known: ", known_names()));
}

DatasetOptions resolve_options(const DatasetOptions& options) {
  DatasetOptions o = options;
  if (o.root.empty()) o.root = default_root(o.name);  // also rejects an unknown name
  else default_root(o.name);
  if (o.root.empty())
    throw UsageError(cat("dataset \"", o.name,
                         "\" needs a root: a folder holding train/<class>/*.jpg|png "
                         "and test/<class>/*.jpg|png"));
  if (o.cache_dir.empty()) o.cache_dir = (fs::path(default_cache_root()) / "decoded").string();
  if (!o.crop_padding) o.crop_padding = is_cifar(o.name) ? 4 : 0;
  if (!o.flip) o.flip = is_cifar(o.name);
  if (o.valid < 0) throw UsageError(cat("dataset ", o.name, ": valid must be >= 0, got ", o.valid));
  if (*o.crop_padding < 0)
    throw UsageError(cat("dataset ", o.name, ": crop_padding must be >= 0, got ", *o.crop_padding));
  if (o.cutout < 0)
    throw UsageError(cat("dataset ", o.name, ": cutout must be >= 0, got ", o.cutout));
  return o;
}

namespace {

// NOTE: an image folder lists its images class by class. Evaluation reads a split in stored
// order with batch-statistics batch norm, so class-sorted batches would each hold one class and
// wreck the statistics (accuracy at or below chance). A fixed permutation, the same on every
// machine, mixes the classes the way the binary datasets' own order does.
void mix_classes(ImageSet& set) {
  const std::int64_t n = set.size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  std::uint64_t state = 0;
  for (std::int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates driven by splitmix64
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::swap(order[static_cast<std::size_t>(i)],
              order[static_cast<std::size_t>(z % static_cast<std::uint64_t>(i + 1))]);
  }
  const at::Tensor index = at::tensor(order, at::kLong);
  set.images = set.images.index_select(0, index).contiguous();
  set.labels = set.labels.index_select(0, index).contiguous();
}

}  // namespace

std::shared_ptr<ImageDataset> load_image_dataset(const DatasetOptions& options,
                                                 c10::Device device) {
  const DatasetOptions o = resolve_options(options);
  ImageSet train, test;
  if (o.name == "fashion-mnist") {
    train = read_fashion_mnist(o.root, true);
    test = read_fashion_mnist(o.root, false);
  } else if (o.name == "cifar10-bin") {
    train = read_cifar10_binary(o.root, true);
    test = read_cifar10_binary(o.root, false);
  } else {  // cifar10, folder: image folders
    const fs::path root(o.root);
    std::error_code ec;
    if (o.name == "cifar10" && !fs::is_directory(root / "train", ec))
      throw Error(cat("CIFAR-10 images not found: ", (root / "train").string(),
                      " is missing. Unpack the JPEG archive there, from the project root:\n"
                      "  mkdir -p ",
                      o.root, " && tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C ", o.root,
                      "\n(the archive holds train/<class>/*.jpg and test/<class>/*.jpg; "
                      "no --strip-components needed), or point root= or $HYPERNAS_DATA_CACHE "
                      "elsewhere"));
    FolderOptions folder;
    folder.cache_dir = o.cache ? o.cache_dir : std::string();
    train = read_image_folder((root / "train").string(), folder);
    folder.classes = train.classes;
    test = read_image_folder((root / "test").string(), folder);
    mix_classes(train);
    mix_classes(test);
  }
  return std::make_shared<ImageDataset>(std::move(train), std::move(test), o, device);
}

std::shared_ptr<hypernas::Dataset> open_dataset(const DatasetOptions& options, c10::Device device) {
  return load_image_dataset(options, device);
}

}  // namespace hypernas::data
