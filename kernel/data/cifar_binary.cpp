/// @file cifar_binary.cpp
/// @brief The CIFAR-10 binary release: records of 1 label byte and 3,072 pixel bytes.

#include <ATen/ATen.h>
#include <hypernas/error.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernel/data/readers.h"

namespace hypernas::data {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kPixels = 3 * 32 * 32;
constexpr std::int64_t kRecord = 1 + kPixels;

/// Class names from batches.meta.txt (one a line), or the standard ones when it is absent.
std::vector<std::string> meta_classes(const fs::path& dir) {
  std::ifstream in(dir / "batches.meta.txt");
  if (!in) return cifar10_classes();
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names.size() == 10 ? names : cifar10_classes();
}

}  // namespace

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird", "cat",
                                                 "deer",     "dog",        "frog", "horse",
                                                 "ship",     "truck"};
  return names;
}

ImageSet read_cifar_binary(const std::vector<std::string>& files,
                           const std::vector<std::string>& classes) {
  std::vector<std::int64_t> counts;
  std::int64_t total = 0;
  for (const auto& file : files) {
    std::error_code ec;
    if (!fs::exists(file, ec)) throw Error(cat(file, ": missing file"));
    const auto bytes = static_cast<std::int64_t>(fs::file_size(file, ec));
    if (ec) throw Error(cat(file, ": cannot read its size (", ec.message(), ")"));
    if (bytes == 0 || bytes % kRecord != 0)
      throw Error(cat(file, ": size ", bytes, " bytes is not a positive multiple of ", kRecord,
                      " (CIFAR-10 binary records are 1 label byte + ", kPixels,
                      " pixel bytes); the file is truncated or not in this format"));
    counts.push_back(bytes / kRecord);
    total += bytes / kRecord;
  }
  ImageSet set;
  set.classes = classes;
  set.images = at::empty({total, 3, 32, 32}, at::kByte);
  set.labels = at::empty({total}, at::kLong);
  auto* pixels = set.images.data_ptr<std::uint8_t>();
  auto* labels = set.labels.data_ptr<std::int64_t>();
  const auto k = static_cast<std::int64_t>(classes.size());
  std::vector<char> buf;
  std::int64_t at = 0;
  for (std::size_t f = 0; f < files.size(); ++f) {
    std::ifstream in(files[f], std::ios::binary);
    buf.resize(static_cast<std::size_t>(counts[f] * kRecord));
    if (!in || !in.read(buf.data(), static_cast<std::streamsize>(buf.size())))
      throw Error(cat(files[f], ": cannot read ", buf.size(), " bytes"));
    for (std::int64_t r = 0; r < counts[f]; ++r, ++at) {
      const auto* rec = reinterpret_cast<const std::uint8_t*>(buf.data()) + r * kRecord;
      if (rec[0] >= k)
        throw Error(cat(files[f], ": label ", int(rec[0]), " of record ", r,
                        " is out of range [0, ", k, ")"));
      labels[at] = rec[0];
      std::memcpy(pixels + at * kPixels, rec + 1, kPixels);
    }
  }
  return set;
}

ImageSet read_cifar10_binary(const std::string& root, bool train) {
  fs::path dir(root);
  std::error_code ec;
  if (!fs::exists(dir / "test_batch.bin", ec) && !fs::exists(dir / "data_batch_1.bin", ec) &&
      fs::is_directory(dir / "cifar-10-batches-bin", ec))
    dir /= "cifar-10-batches-bin";
  std::vector<std::string> files;
  if (train) {
    for (int i = 1; i <= 5; ++i)
      files.push_back((dir / ("data_batch_" + std::to_string(i) + ".bin")).string());
  } else {
    files.push_back((dir / "test_batch.bin").string());
  }
  for (const auto& file : files)
    if (!fs::exists(file, ec))
      throw Error(cat(file,
                      ": missing file (cifar10-bin reads the official CIFAR-10 binary "
                      "release: data_batch_1.bin ... data_batch_5.bin and test_batch.bin; "
                      "set root to the folder holding them)"));
  return read_cifar_binary(files, meta_classes(dir));
}

}  // namespace hypernas::data
