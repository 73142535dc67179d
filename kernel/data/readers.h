#pragma once
/// @file readers.h
/// @brief Readers of the on-disk formats: gzip-compressed IDX (Fashion-MNIST), the CIFAR-10
/// binary release, and image folders (JPEG/PNG) with a binary cache of the decoded pixels.
/// Every reader throws hypernas::Error naming the file and what was wrong.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/data/dataset.h"

namespace hypernas::data {

/// The ten Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_classes();
/// The ten CIFAR-10 class names, in label order.
const std::vector<std::string>& cifar10_classes();

/// Reads an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions), gzip-compressed
/// or plain, into uint8 [N, 1, H, W].
at::Tensor read_idx_images(const std::string& path);

/// Reads an IDX label file (magic 0x00000801: unsigned bytes, 1 dimension), gzip-compressed or
/// plain, into int64 [N].
at::Tensor read_idx_labels(const std::string& path);

/// Reads an image file and a label file in IDX format and checks that they hold as many
/// entries and that every label is below classes.size().
ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       const std::vector<std::string>& classes);

/// Reads Fashion-MNIST's training (60,000) or test (10,000) set from `root`, which holds
/// train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
/// t10k-labels-idx1-ubyte.gz (or the same names without .gz).
ImageSet read_fashion_mnist(const std::string& root, bool train);

/// Reads files in the CIFAR-10 binary format (records of 1 label byte and 3,072 pixel bytes,
/// 1,024 per channel, R then G then B, rows top to bottom) into one set, in file order.
ImageSet read_cifar_binary(const std::vector<std::string>& files,
                           const std::vector<std::string>& classes);

/// Reads the CIFAR-10 binary release from `root` (or root/cifar-10-batches-bin):
/// data_batch_1.bin ... data_batch_5.bin for training, test_batch.bin for test.
/// Class names come from batches.meta.txt when present.
ImageSet read_cifar10_binary(const std::string& root, bool train);

/// Options of read_image_folder().
struct FolderOptions {
  /// Fixed class list (a test folder takes its training folder's); empty: the sorted names of
  /// the sub-folders.
  std::vector<std::string> classes;
  /// Folder of the binary cache; empty: no cache.
  std::string cache_dir;
  /// Log a line and show progress when this many images or more must be decoded.
  std::int64_t report_threshold = 1000;
};

/// Reads dir/<class>/*.jpg|*.jpeg|*.png (extensions in any case; other files and hidden
/// files and folders, whose names start with a dot, are ignored),
/// classes and files sorted by name. All images must have the height and width of the first;
/// the channel count is the first image's (1 for grayscale, 3 for colour) and other images are
/// converted to it. When options.cache_dir is set, the decoded set is stored there as a binary
/// file keyed by the folder's path, its file count, total size and file list, and read back
/// from it while those are unchanged.
ImageSet read_image_folder(const std::string& dir, const FolderOptions& options = {});

/// One decoded image: pixels [C, H, W] row-major.
struct DecodedImage {
  std::int64_t channels = 0;         ///< 1 (gray) or 3 (RGB).
  std::int64_t height = 0;           ///< Rows.
  std::int64_t width = 0;            ///< Columns.
  std::vector<std::uint8_t> pixels;  ///< channels * height * width bytes, channel-major.
};

/// Decodes a JPEG or PNG held in memory (the format is told by its first bytes). `channels`
/// 0 keeps the image's own (1 or 3); 1 or 3 converts. `what` names the source in errors.
DecodedImage decode_image(const std::uint8_t* data, std::size_t size, int channels,
                          const std::string& what);

}  // namespace hypernas::data
