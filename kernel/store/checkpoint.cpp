#include "kernel/store/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <hypernas/error.h>
#include <hypernas/surrogate.h>

#include "kernel/graph/serialize.h"

namespace hypernas::store {
namespace fs = std::filesystem;

namespace {
constexpr const char* kMagic = "HYPERNAS-CHECKPOINT";
using graph::hex64;
}  // namespace

void write_checkpoint(const fs::path& path, const Checkpoint& c) {
  HYPERNAS_CHECK(c.plugin.find('\n') == std::string::npos &&
                     c.options.find('\n') == std::string::npos,
                 "checkpoint header fields must be single lines");
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  std::ostringstream header;
  header << kMagic << "\nversion " << kCheckpointVersion << "\nplugin " << c.plugin << "\noptions "
         << c.options << "\nbytes " << c.blob.size() << "\nfnv1a " << hex64(graph::fnv1a64(c.blob))
         << "\n\n";
  const std::string head = header.str();
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  HYPERNAS_CHECK(fd >= 0, "cannot write checkpoint ", tmp.string(), ": ", std::strerror(errno));
  auto write_all = [&](const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::write(fd, s.data() + done, s.size() - done);
      if (n <= 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(cat("cannot write checkpoint ", tmp.string(), ": ", std::strerror(err)));
      }
      done += static_cast<std::size_t>(n);
    }
  };
  write_all(head);
  write_all(c.blob);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(cat("cannot flush checkpoint ", tmp.string(), ": ", std::strerror(errno)));
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw Error(cat("cannot move checkpoint into place at ", path.string(), ": ", ec.message()));
  }
}

Checkpoint read_checkpoint(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  HYPERNAS_CHECK(in.good(), "cannot open checkpoint ", path.string(), " (missing or unreadable)");
  const std::string file = path.string();
  std::string line;
  auto next = [&](const char* key) {
    HYPERNAS_CHECK(std::getline(in, line), "checkpoint ", file, " is truncated in its header (no '",
                   key, "' line)");
    const std::string prefix = std::string(key) + " ";
    HYPERNAS_CHECK(line.rfind(prefix, 0) == 0, "checkpoint ", file, ": expected a '", key,
                   "' line, found '", line.substr(0, 60), "'");
    return line.substr(prefix.size());
  };
  HYPERNAS_CHECK(std::getline(in, line) && line == kMagic, file,
                 " is not a HyperNAS checkpoint (first line is not ", kMagic, ")");
  const std::string version = next("version");
  int v = 0;
  try {
    v = std::stoi(version);
  } catch (const std::exception&) {
    throw Error(cat("checkpoint ", file, ": malformed version '", version, "'"));
  }
  HYPERNAS_CHECK(v >= 1 && v <= kCheckpointVersion, "checkpoint ", file, " has format version ", v,
                 "; this build reads up to ", kCheckpointVersion);
  Checkpoint c;
  c.plugin = next("plugin");
  c.options = next("options");
  const std::string bytes_text = next("bytes");
  const std::string sum = next("fnv1a");
  HYPERNAS_CHECK(std::getline(in, line) && line.empty(), "checkpoint ", file,
                 ": header does not end with a blank line");
  std::size_t bytes = 0;
  try {
    bytes = static_cast<std::size_t>(std::stoull(bytes_text));
  } catch (const std::exception&) {
    throw Error(cat("checkpoint ", file, ": malformed byte count '", bytes_text, "'"));
  }
  c.blob.resize(bytes);
  in.read(c.blob.data(), static_cast<std::streamsize>(bytes));
  const auto got = static_cast<std::size_t>(in.gcount());
  HYPERNAS_CHECK(got == bytes, "checkpoint ", file, " is truncated: its header promises ", bytes,
                 " bytes of state, the file holds ", got);
  HYPERNAS_CHECK(hex64(graph::fnv1a64(c.blob)) == sum, "checkpoint ", file,
                 " is corrupt: checksum ", hex64(graph::fnv1a64(c.blob)), " does not match ", sum);
  return c;
}

void load_checkpoint(const std::filesystem::path& path, const std::string& name,
                     Surrogate& surrogate) {
  Checkpoint c = read_checkpoint(path);
  if (c.plugin != name)
    throw Error(cat("checkpoint ", path.string(), " was written by surrogate '", c.plugin,
                    "', not '", name, "'"));
  try {
    surrogate.load_state(c.blob);
  } catch (const std::exception& e) {
    throw Error(cat("checkpoint ", path.string(), ": ", e.what()));
  }
}

}  // namespace hypernas::store
