#pragma once
/// @file state_blob.h
/// @brief The state blobs of the built-in plugins (`ghn`, `adwp`, `gradient`): one envelope and
/// one binary writer and reader for what it carries.
///
/// A blob is an 8-byte magic, the u32 format version, the u64 payload size, the u64 FNV-1a
/// checksum of the payload (from a basis each format fixes), then the payload: seal_blob()
/// writes it, open_blob() checks it and hands back the version and the payload. The payload is
/// written by BlobWriter and read by BlobReader: plain values as their bytes in memory (the
/// machine's byte order), strings as a u64 length and the bytes, shapes as a u32 rank and i64
/// dimensions, tensors as a shape and their data. Every check names the plugin (the reader's
/// `owner`) and what it was reading (`what`), so a damaged blob says where it went wrong.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <hypernas/error.h>
#include <hypernas/hash.h>

namespace hypernas::plugins {

/// The envelope's header: magic, format version, payload size, checksum.
inline constexpr std::size_t kBlobHeaderSize = 8 + 4 + 8 + 8;

/// What identifies one plugin's state blobs: seal_blob() writes them, open_blob() checks them.
struct BlobFormat {
  std::string_view owner;  ///< The plugin, which every error message starts with ("ghn").
  std::string_view
      title;  ///< A blob of this format in words, with its article ("a GHN state blob").
  std::string_view magic;  ///< The 8 bytes every blob starts with ("HNAS.GHN").
  std::uint32_t version;   ///< The format version written; open_blob() reads 1..version.
  /// Where the payload's FNV-1a checksum starts. NOTE: a format's basis is part of its bytes:
  /// changing it makes every saved blob fail the checksum.
  std::uint64_t checksum_basis = kFnvOffset;
};

/// A blob that passed open_blob()'s checks.
struct OpenedBlob {
  std::uint32_t version = 0;  ///< Its format version, in 1..BlobFormat::version.
  std::string_view payload;   ///< Its payload: a view into the blob given to open_blob().
};

/// Appends the values of a payload to a byte string.
class BlobWriter {
 public:
  /// The bytes of `v` as they are in memory (a trivially copyable type: an integer, a double).
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "BlobWriter::pod() writes plain values");
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  /// `s` as its u64 length and its bytes.
  void str(std::string_view s) {
    pod<std::uint64_t>(s.size());
    out_.append(s);
  }
  /// `s` as its u32 rank and its i64 dimensions.
  void shape(at::IntArrayRef s) {
    pod<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    for (std::int64_t d : s) pod<std::int64_t>(d);
  }
  /// `t` as shape() and its values as float (on the CPU, contiguous, whatever its own device and
  /// type); BlobReader::float_tensor() reads it.
  void float_tensor(const at::Tensor& t) {
    const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    shape(c.sizes());
    values(c);
  }
  /// `t` in its own precision: a u8 tag (1: double, 0: float, which any other type is written
  /// as), shape() and its values in that precision; BlobReader::tagged_tensor() reads it.
  void tagged_tensor(const at::Tensor& t) {
    const bool dbl = t.scalar_type() == at::kDouble;
    const at::Tensor c = t.detach().to(at::kCPU, dbl ? at::kDouble : at::kFloat).contiguous();
    pod<std::uint8_t>(dbl ? 1 : 0);
    shape(c.sizes());
    values(c);
  }
  /// The bytes written so far.
  const std::string& data() const { return out_; }

 private:
  /// The values of a contiguous CPU tensor.
  void values(const at::Tensor& c) {
    const std::size_t bytes = static_cast<std::size_t>(c.numel()) * c.element_size();
    if (bytes) out_.append(static_cast<const char*>(c.data_ptr()), bytes);
  }

  std::string out_;
};

/// Reads what BlobWriter wrote from a payload, checking every length against the bytes left.
/// Its errors are hypernas::Error, "<owner>: state blob is malformed: " and what is wrong.
class BlobReader {
 public:
  /// A reader of `payload` (which must outlive it), whose errors start with `owner` ("ghn").
  BlobReader(std::string_view payload, std::string owner)
      : data_(payload), owner_(std::move(owner)) {}

  /// A value written by BlobWriter::pod(); `what` names it in the error if the payload ends.
  template <typename T>
  T pod(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>, "BlobReader::pod() reads plain values");
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  /// A string written by BlobWriter::str().
  std::string str(std::string_view what) {
    const std::uint64_t n = pod<std::uint64_t>(what);
    const char* p = take(n, what);
    return std::string(p, static_cast<std::size_t>(n));
  }
  /// A shape written by BlobWriter::shape(): at most 8 dimensions, each in [0, 2^32), with no
  /// more elements in all than the payload has bytes (so that no damaged length allocates
  /// gigabytes). `what` names it in the errors ("tensor 'w'", "a parameter shape").
  std::vector<std::int64_t> shape(std::string_view what) {
    const std::uint32_t rank = pod<std::uint32_t>(what);
    check(rank <= 8, what, " has rank ", rank);
    std::vector<std::int64_t> s;
    std::uint64_t numel = 1;
    for (std::uint32_t i = 0; i < rank; ++i) {
      s.push_back(pod<std::int64_t>(what));
      check(s.back() >= 0 && s.back() < (std::int64_t{1} << 32), what, " has dimension ", s.back());
      numel *= static_cast<std::uint64_t>(s.back());
      check(numel <= data_.size(), what, " is larger than the blob");
    }
    return s;
  }
  /// A tensor written by BlobWriter::float_tensor(): a float CPU tensor. `name` names it in the
  /// errors as "tensor '<name>'".
  at::Tensor float_tensor(std::string_view name) {
    return values(shape(cat("tensor '", name, "'")), at::kFloat);
  }
  /// A tensor written by BlobWriter::tagged_tensor(): a float or double CPU tensor, as written.
  at::Tensor tagged_tensor(std::string_view name) {
    const std::uint8_t dbl = pod<std::uint8_t>("a tensor's precision");
    check(dbl <= 1, "tensor '", name, "' has precision tag ", static_cast<int>(dbl));
    return values(shape(cat("tensor '", name, "'")), dbl ? at::kDouble : at::kFloat);
  }

  /// The payload's size in bytes (a bound for counts read from it).
  std::size_t size() const { return data_.size(); }
  /// Whether every byte has been read.
  bool done() const { return pos_ == data_.size(); }
  /// Throws unless every byte has been read: "bytes left after <after>".
  void finish(std::string_view after) const { check(done(), "bytes left after ", after); }
  /// Throws "<owner>: state blob is malformed: <parts...>" unless `cond` holds: for the checks
  /// a plugin makes on the values it read.
  template <typename... Parts>
  void check(bool cond, const Parts&... parts) const {
    if (!cond) throw Error(cat(owner_, ": state blob is malformed: ", parts...));
  }

 private:
  /// The next `n` bytes, which must be there; `what` is being read.
  const char* take(std::uint64_t n, std::string_view what) {
    const std::size_t left = data_.size() - pos_;
    check(n <= left, "it ends inside ", what, " (", left, " bytes left, ", n, " needed)");
    const char* p = data_.data() + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  /// A new CPU tensor of `shape` and `type` (float or double) filled from the next bytes.
  at::Tensor values(const std::vector<std::int64_t>& shape, at::ScalarType type) {
    at::Tensor t = at::empty(shape, type);
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
    const char* p = take(bytes, "tensor data");
    if (bytes) std::memcpy(t.data_ptr(), p, bytes);
    return t;
  }

  std::string_view data_;
  std::string owner_;
  std::size_t pos_ = 0;
};

/// `payload` in the envelope of `format`: its magic, its version, the payload's size and
/// checksum, then the payload.
inline std::string seal_blob(const BlobFormat& format, std::string_view payload) {
  HYPERNAS_INTERNAL_ASSERT(format.magic.size() == 8, "the magic of ", format.title, " is '",
                           format.magic, "', not 8 bytes");
  BlobWriter head;
  head.pod<std::uint32_t>(format.version);
  head.pod<std::uint64_t>(payload.size());
  head.pod<std::uint64_t>(fnv1a64(payload, format.checksum_basis));
  std::string out;
  out.reserve(kBlobHeaderSize + payload.size());
  out.append(format.magic);
  out += head.data();
  out.append(payload);
  return out;
}

/// Checks a blob written by seal_blob() with `format`, in this order: not empty, the magic, a
/// whole header, a version in 1..format.version, the payload as long as the header says (not
/// shorter: "truncated"; not longer: "unexpected bytes"), its checksum ("corrupted"). Throws
/// hypernas::Error starting with `format.owner` and saying which failed; returns the version
/// and the payload (a view into `blob`).
inline OpenedBlob open_blob(const BlobFormat& format, std::string_view blob) {
  const std::string_view owner = format.owner;
  HYPERNAS_CHECK(!blob.empty(), owner, ": cannot load an empty state blob");
  HYPERNAS_CHECK(blob.substr(0, format.magic.size()) == format.magic, owner, ": not ", format.title,
                 " (it does not start with '", format.magic, "'; ", blob.size(), " bytes)");
  HYPERNAS_CHECK(blob.size() >= kBlobHeaderSize, owner, ": state blob is truncated: ", blob.size(),
                 " bytes, shorter than its ", kBlobHeaderSize, "-byte header");
  std::uint32_t version;
  std::uint64_t size, checksum;
  std::memcpy(&version, blob.data() + 8, 4);
  std::memcpy(&size, blob.data() + 12, 8);
  std::memcpy(&checksum, blob.data() + 20, 8);
  HYPERNAS_CHECK(version >= 1 && version <= format.version, owner,
                 ": state blob has format version ", version, "; this build reads versions 1..",
                 format.version);
  const std::uint64_t have = blob.size() - kBlobHeaderSize;
  HYPERNAS_CHECK(have >= size, owner, ": state blob is truncated: its header announces ", size,
                 " bytes of payload, but only ", have, " follow");
  HYPERNAS_CHECK(have == size, owner, ": state blob has ", have - size,
                 " unexpected bytes after its ", size, "-byte payload");
  const std::string_view payload = blob.substr(kBlobHeaderSize);
  HYPERNAS_CHECK(fnv1a64(payload, format.checksum_basis) == checksum, owner,
                 ": state blob is corrupted: the payload checksum does not match");
  return {version, payload};
}

}  // namespace hypernas::plugins
