/// @file image_folder.cpp
/// @brief Image folders (dir/<class>/*.jpg|png): listing, parallel decoding, and a binary cache
/// of the decoded pixels.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <hypernas/error.h>
#include <hypernas/hash.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>

#include "kernel/core/log.h"
#include "kernel/core/progress.h"
#include "kernel/data/image_codec.h"
#include "kernel/data/readers.h"

namespace hypernas::data {
namespace {

namespace fs = std::filesystem;

struct Entry {
  std::string path;
  std::int64_t label = 0;
  std::uint64_t bytes = 0;
};

bool is_image_name(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

/// Reads a whole file into `buf` with POSIX calls (much cheaper than a stream per small file).
void read_file(const std::string& path, std::vector<std::uint8_t>& buf) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(cat(path, ": cannot open (", std::strerror(errno), ")"));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat (", std::strerror(e), ")"));
  }
  buf.resize(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t got = ::read(fd, buf.data() + done, buf.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int e = errno;
      ::close(fd);
      throw Error(cat(path, ": cannot read (", got == 0 ? "file shrank" : std::strerror(e), ")"));
    }
    done += static_cast<std::size_t>(got);
  }
  ::close(fd);
}

// ---- cache file -------------------------------------------------------------------------------
// Layout (native byte order; it is a local cache): magic "HNASIMG1", u32 key length, key,
// i64 N C H W, u32 class count, (u32 length, bytes) per class, N int64 labels, N*C*H*W pixel
// bytes, end marker "HNASEND1".

constexpr char kMagic[8] = {'H', 'N', 'A', 'S', 'I', 'M', 'G', '1'};
constexpr char kEnd[8] = {'H', 'N', 'A', 'S', 'E', 'N', 'D', '1'};

template <typename T>
void put(std::ostream& out, const T& v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
bool get(std::istream& in, T& v) {
  return static_cast<bool>(in.read(reinterpret_cast<char*>(&v), sizeof v));
}

std::optional<ImageSet> load_cache(const std::string& file, const std::string& key,
                                   std::int64_t expected_n) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  char magic[8];
  std::uint32_t key_len = 0;
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0 || !get(in, key_len) ||
      key_len != key.size())
    return std::nullopt;
  std::string stored(key_len, '\0');
  if (!in.read(stored.data(), key_len) || stored != key) return std::nullopt;
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::uint32_t k = 0;
  if (!get(in, n) || !get(in, c) || !get(in, h) || !get(in, w) || !get(in, k)) return std::nullopt;
  if (n != expected_n || c < 1 || c > 4 || h < 1 || w < 1 || h * w > (1 << 26) || k > (1u << 20))
    return std::nullopt;
  ImageSet set;
  for (std::uint32_t i = 0; i < k; ++i) {
    std::uint32_t len = 0;
    if (!get(in, len) || len > 4096) return std::nullopt;
    std::string name(len, '\0');
    if (!in.read(name.data(), len)) return std::nullopt;
    set.classes.push_back(std::move(name));
  }
  set.labels = at::empty({n}, at::kLong);
  set.images = at::empty({n, c, h, w}, at::kByte);
  if (!in.read(reinterpret_cast<char*>(set.labels.data_ptr<std::int64_t>()),
               static_cast<std::streamsize>(n * sizeof(std::int64_t))) ||
      !in.read(reinterpret_cast<char*>(set.images.data_ptr<std::uint8_t>()),
               static_cast<std::streamsize>(n * c * h * w)) ||
      !in.read(magic, 8) || std::memcmp(magic, kEnd, 8) != 0)
    return std::nullopt;
  return set;
}

void save_cache(const std::string& file, const std::string& key, const ImageSet& set) {
  std::error_code ec;
  fs::create_directories(fs::path(file).parent_path(), ec);
  const std::string tmp = cat(file, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(kMagic, 8);
    put(out, static_cast<std::uint32_t>(key.size()));
    out.write(key.data(), static_cast<std::streamsize>(key.size()));
    for (std::int64_t d : set.images.sizes()) put(out, d);
    put(out, static_cast<std::uint32_t>(set.classes.size()));
    for (const auto& name : set.classes) {
      put(out, static_cast<std::uint32_t>(name.size()));
      out.write(name.data(), static_cast<std::streamsize>(name.size()));
    }
    out.write(reinterpret_cast<const char*>(set.labels.data_ptr<std::int64_t>()),
              static_cast<std::streamsize>(set.labels.numel() * sizeof(std::int64_t)));
    out.write(reinterpret_cast<const char*>(set.images.data_ptr<std::uint8_t>()),
              static_cast<std::streamsize>(set.images.numel()));
    out.write(kEnd, 8);
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      core::write_log(LogLevel::Warn, "data", cat("could not write the image cache ", file));
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    core::write_log(LogLevel::Warn, "data", cat("could not write the image cache ", file));
  }
}

}  // namespace

ImageSet read_image_folder(const std::string& dir, const FolderOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(cat(dir, ": missing folder (expected ", dir, "/<class>/*.jpg|png)"));

  // Classes: sorted sub-folder names, or the list given.
  std::vector<std::string> subdirs;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().rfind('.', 0) != 0)  // not hidden
      subdirs.push_back(e.path().filename().string());
  if (ec) throw Error(cat(dir, ": cannot list (", ec.message(), ")"));
  std::sort(subdirs.begin(), subdirs.end());
  const std::vector<std::string> classes = options.classes.empty() ? subdirs : options.classes;
  if (classes.empty())
    throw Error(cat(dir, ": no class folders (expected ", dir, "/<class>/*.jpg|png)"));

  // Listing: files sorted by name within each class.
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  std::uint64_t listing_hash = fnv1a64("");
  for (const auto& sub : subdirs) {
    const auto it = std::find(classes.begin(), classes.end(), sub);
    if (it == classes.end())
      throw Error(cat((fs::path(dir) / sub).string(), ": class folder \"", sub,
                      "\" is not among the training set's classes"));
    const auto label = static_cast<std::int64_t>(it - classes.begin());
    std::vector<std::pair<std::string, std::uint64_t>> files;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / sub, ec)) {
      const std::string name = e.path().filename().string();
      // Hidden files (macOS "._x.jpg" resource forks among them) are not images.
      if (name.rfind('.', 0) == 0 || !is_image_name(name) || !e.is_regular_file()) continue;
      files.emplace_back(name, e.file_size());
    }
    if (ec) throw Error(cat((fs::path(dir) / sub).string(), ": cannot list (", ec.message(), ")"));
    std::sort(files.begin(), files.end());
    for (auto& [name, bytes] : files) {
      listing_hash = fnv1a64(cat(sub, '/', name, ' ', bytes, '\n'), listing_hash);
      total += bytes;
      entries.push_back({(fs::path(dir) / sub / name).string(), label, bytes});
    }
  }
  const auto n = static_cast<std::int64_t>(entries.size());
  if (n == 0) throw Error(cat(dir, ": no images (expected ", dir, "/<class>/*.jpg|png)"));

  // Cache key: the folder, its file count, total size and file list, and the class list.
  std::string cache_file;
  std::string key;
  if (!options.cache_dir.empty()) {
    const fs::path canonical = fs::weakly_canonical(dir, ec);
    key = cat("folder=", canonical.string(), "\nfiles=", n, "\nbytes=", total,
              "\nlisting=", hex64(listing_hash), "\nclasses=");
    for (const auto& c : classes) key += c + "\t";
    cache_file =
        (fs::path(options.cache_dir) / ("images-" + hex64(fnv1a64(key)) + ".bin")).string();
    if (auto cached = load_cache(cache_file, key, n)) {
      core::write_log(LogLevel::Debug, "data",
                      cat("read ", n, " decoded images of ", dir, " from ", cache_file));
      return std::move(*cached);
    }
  }

  const bool report = n >= options.report_threshold;
  const auto start = std::chrono::steady_clock::now();
  if (report)
    core::write_log(LogLevel::Info, "data",
                    cat("decoding ", n, " images in ", dir,
                        cache_file.empty() ? std::string()
                                           : cat(" (cached afterwards in ", cache_file, ")")));

  // The first image fixes the shape; the others must match (channels are converted).
  std::vector<std::uint8_t> file, pixels;
  std::int64_t c = 0, h = 0, w = 0;
  {
    ImageDecoder decoder;
    read_file(entries[0].path, file);
    decoder.decode(file.data(), file.size(), 0, entries[0].path, pixels, c, h, w);
  }
  ImageSet set;
  set.classes = classes;
  set.images = at::empty({n, c, h, w}, at::kByte);
  set.labels = at::empty({n}, at::kLong);
  auto* out = set.images.data_ptr<std::uint8_t>();
  auto* labels = set.labels.data_ptr<std::int64_t>();
  const std::int64_t image_bytes = c * h * w;
  for (std::int64_t i = 0; i < n; ++i) labels[i] = entries[static_cast<std::size_t>(i)].label;

  // Decode in chunks (progress between them), each chunk in parallel. The error reported is
  // the one of the first bad file in listing order, whatever the threads' timing.
  std::mutex mutex;
  std::atomic<std::int64_t> first_bad{n};
  std::string bad_message;
  std::unique_ptr<core::ConsoleProgress> progress;
  if (report) progress = std::make_unique<core::ConsoleProgress>("decoding images", n);
  const std::int64_t chunk = 4096;
  for (std::int64_t lo = 0; lo < n && first_bad.load() == n; lo += chunk) {
    const std::int64_t hi = std::min(n, lo + chunk);
    at::parallel_for(lo, hi, 64, [&](std::int64_t begin, std::int64_t end) {
      ImageDecoder decoder;
      std::vector<std::uint8_t> bytes, planar;
      for (std::int64_t i = begin; i < end && i < first_bad.load(); ++i) {
        const Entry& e = entries[static_cast<std::size_t>(i)];
        try {
          std::int64_t ic = 0, ih = 0, iw = 0;
          read_file(e.path, bytes);
          decoder.decode(bytes.data(), bytes.size(), static_cast<int>(c), e.path, planar, ic, ih,
                         iw);
          if (ih != h || iw != w)
            throw Error(cat(e.path, ": image of wrong size: ", iw, "x", ih, " pixels, but ",
                            entries[0].path, " (the first image) is ", w, "x", h));
          std::memcpy(out + i * image_bytes, planar.data(), static_cast<std::size_t>(image_bytes));
        } catch (const std::exception& ex) {
          std::lock_guard<std::mutex> lock(mutex);
          if (i < first_bad.load()) {
            first_bad.store(i);
            bad_message = ex.what();
          }
          return;
        }
      }
    });
    if (progress) progress->advance(hi - lo);
  }
  if (progress) progress->finish();
  if (first_bad.load() < n) throw Error(bad_message);

  if (report) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    core::write_log(LogLevel::Info, "data", cat("decoded ", n, " images in ", secs, " s"));
  }
  if (!cache_file.empty()) save_cache(cache_file, key, set);
  return set;
}

}  // namespace hypernas::data
