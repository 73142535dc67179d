/// @file idx.cpp
/// @brief IDX files (MNIST, Fashion-MNIST), gzip-compressed or plain, read with zlib.

#include <ATen/ATen.h>
#include <hypernas/error.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "kernel/data/readers.h"

namespace hypernas::data {
namespace {

namespace fs = std::filesystem;

/// A gzip (or plain) file opened with zlib, closed on scope exit.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(cat(path, ": missing file"));
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      throw Error(cat(path, ": cannot open (", std::strerror(errno ? errno : EIO), ")"));
    gzbuffer(file_, 1 << 18);
  }
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  /// Reads up to `n` bytes; returns how many were read (fewer only at the end of the data).
  std::uint64_t read(void* out, std::uint64_t n) {
    auto* p = static_cast<unsigned char*>(out);
    std::uint64_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(n - done, 1u << 30));
      const int got = gzread(file_, p + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        throw Error(cat(path_, ": corrupt gzip data (zlib: ", zlib_message(msg), ") after ", done,
                        " bytes"));
      }
      if (got == 0) break;
      done += static_cast<std::uint64_t>(got);
    }
    if (done < n) {
      int code = Z_OK;
      const char* msg = gzerror(file_, &code);
      if (code != Z_OK)  // the compressed stream itself ends early or is damaged
        throw Error(cat(path_, ": truncated or corrupt gzip data (zlib: ", zlib_message(msg), ")"));
    }
    return done;
  }

 private:
  /// zlib's message without the "path: " it puts in front.
  std::string zlib_message(const char* msg) const {
    std::string m = msg ? msg : "unknown error";
    if (m.rfind(path_ + ": ", 0) == 0) m.erase(0, path_.size() + 2);
    return m;
  }
  std::string path_;
  gzFile file_ = nullptr;
};

std::uint32_t big_endian(const unsigned char* b) {
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
         std::uint32_t(b[3]);
}

/// Reads the header of an IDX file with the expected magic; returns its dimensions.
std::vector<std::int64_t> read_header(GzFile& file, const std::string& path, std::uint32_t magic,
                                      const char* what) {
  unsigned char head[4];
  if (file.read(head, 4) != 4) throw Error(cat(path, ": truncated file (no IDX header)"));
  const std::uint32_t found = big_endian(head);
  if (found != magic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad IDX magic number 0x%08x, expected 0x%08x",
                  static_cast<unsigned>(found), static_cast<unsigned>(magic));
    throw Error(cat(path, ": ", buf, " (", what, ")"));
  }
  const int ndims = head[3];
  std::vector<unsigned char> raw(4 * static_cast<std::size_t>(ndims));
  if (file.read(raw.data(), raw.size()) != raw.size())
    throw Error(cat(path, ": truncated file (IDX header promises ", ndims,
                    " dimensions but ends before them)"));
  std::vector<std::int64_t> dims;
  for (int i = 0; i < ndims; ++i) dims.push_back(big_endian(raw.data() + 4 * i));
  return dims;
}

/// Reads exactly `bytes` bytes into `out` (resized), in chunks, so that a header promising far
/// more than the file holds fails as truncated before anything that large is allocated.
void read_payload(GzFile& file, const std::string& path, std::vector<std::uint8_t>& out,
                  std::uint64_t bytes, const std::string& promise) {
  constexpr std::uint64_t chunk = 64ull << 20;
  out.clear();
  std::uint64_t got = 0;
  while (got < bytes) {
    const std::uint64_t want = std::min(chunk, bytes - got);
    out.resize(static_cast<std::size_t>(got + want));
    const std::uint64_t n = file.read(out.data() + got, want);
    got += n;
    if (n < want) break;
  }
  if (got != bytes)
    throw Error(cat(path, ": truncated file: the header promises ", promise, " (", bytes,
                    " bytes) but only ", got, " bytes follow"));
}

}  // namespace

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

at::Tensor read_idx_images(const std::string& path) {
  GzFile file(path);
  const auto dims = read_header(file, path, 0x00000803u, "unsigned-byte images of 3 dimensions");
  const std::int64_t n = dims[0], h = dims[1], w = dims[2];
  if (h == 0 || w == 0) throw Error(cat(path, ": IDX images of size ", h, "x", w));
  if (static_cast<double>(n) * static_cast<double>(h) * static_cast<double>(w) > 1e13)
    throw Error(cat(path, ": implausible IDX header (", n, " images of ", h, "x", w, ")"));
  std::vector<std::uint8_t> raw;
  read_payload(file, path, raw, static_cast<std::uint64_t>(n * h * w),
               cat(n, " images of ", h, "x", w));
  at::Tensor images = at::empty({n, 1, h, w}, at::kByte);
  if (!raw.empty()) std::memcpy(images.data_ptr<std::uint8_t>(), raw.data(), raw.size());
  return images;
}

at::Tensor read_idx_labels(const std::string& path) {
  GzFile file(path);
  const auto dims = read_header(file, path, 0x00000801u, "unsigned-byte labels of 1 dimension");
  const std::int64_t n = dims[0];
  std::vector<std::uint8_t> raw;
  read_payload(file, path, raw, static_cast<std::uint64_t>(n), cat(n, " labels"));
  at::Tensor labels = at::empty({n}, at::kLong);
  auto* out = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) out[i] = raw[static_cast<std::size_t>(i)];
  return labels;
}

ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       const std::vector<std::string>& classes) {
  ImageSet set;
  set.images = read_idx_images(images_path);
  set.labels = read_idx_labels(labels_path);
  set.classes = classes;
  if (set.labels.size(0) != set.images.size(0))
    throw Error(cat(labels_path, ": holds ", set.labels.size(0), " labels but ", images_path,
                    " holds ", set.images.size(0), " images"));
  const auto* l = set.labels.data_ptr<std::int64_t>();
  const auto k = static_cast<std::int64_t>(classes.size());
  for (std::int64_t i = 0; i < set.labels.size(0); ++i)
    if (l[i] >= k)
      throw Error(
          cat(labels_path, ": label ", l[i], " of example ", i, " is out of range [0, ", k, ")"));
  return set;
}

ImageSet read_fashion_mnist(const std::string& root, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  auto locate = [&](const std::string& name) {
    const fs::path gz = fs::path(root) / (name + ".gz");
    const fs::path plain = fs::path(root) / name;
    std::error_code ec;
    if (fs::exists(gz, ec)) return gz.string();
    if (fs::exists(plain, ec)) return plain.string();
    throw Error(cat(gz.string(),
                    ": missing file (Fashion-MNIST: install Debian's "
                    "dataset-fashion-mnist package, or set root to a folder "
                    "holding the four IDX files)"));
  };
  const std::string images = locate(prefix + "-images-idx3-ubyte");
  const std::string labels = locate(prefix + "-labels-idx1-ubyte");
  return read_idx_pair(images, labels, fashion_mnist_classes());
}

}  // namespace hypernas::data
