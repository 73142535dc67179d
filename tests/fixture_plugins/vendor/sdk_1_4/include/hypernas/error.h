#pragma once
/// @file error.h
/// @brief The exception types the SDK and the kernel throw, and a message builder.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace hypernas {

/// Any error HyperNAS reports to a user: the message says what was expected, what was found
/// and where (file, line, value).
class Error : public std::runtime_error {
 public:
  /// Builds an error from a complete message.
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A caller's mistake in options or arguments (unknown key, wrong type, out of range).
class UsageError : public Error {
 public:
  /// Builds a usage error from a complete message.
  explicit UsageError(const std::string& message) : Error(message) {}
};

/// Thrown by Context::check_cancelled() when the user pressed Ctrl-C or a time limit passed.
/// Work already committed to the results store is kept.
class Cancelled : public Error {
 public:
  /// Builds the cancellation error; `why` says what stopped the run.
  explicit Cancelled(const std::string& why) : Error(why) {}
};

/// Concatenates any streamable values into one string: `cat("expected ", a, ", got ", b)`.
template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

/// A message-sized excerpt of `text` around byte position `pos`: at most about `width`
/// characters, with "..." where text was cut, so that a malformed 100 kB input does not flood
/// the terminal. `pos` past the end means the end.
inline std::string excerpt(const std::string& text, std::size_t pos, std::size_t width = 120) {
  if (text.size() <= width) return text;
  if (pos > text.size()) pos = text.size();
  const std::size_t half = width / 2;
  std::size_t begin = pos > half ? pos - half : 0;
  if (begin + width > text.size()) begin = text.size() - width;
  std::string out = begin > 0 ? "..." : "";
  out += text.substr(begin, width);
  if (begin + width < text.size()) out += "...";
  return out;
}

/// The first `width` characters of `text` (see excerpt()), plus its length when cut.
inline std::string abbreviate(const std::string& text, std::size_t width = 120) {
  if (text.size() <= width) return text;
  return excerpt(text, 0, width) + " (" + std::to_string(text.size()) + " characters)";
}

}  // namespace hypernas

/// Throws hypernas::Error with the concatenated message unless `cond` holds. For the caller's
/// mistakes and bad input: the message talks to the user.
#define HYPERNAS_CHECK(cond, ...)                                       \
  do {                                                                  \
    if (!(cond)) throw ::hypernas::Error(::hypernas::cat(__VA_ARGS__)); \
  } while (false)

/// Throws hypernas::Error naming the C++ file and line unless `cond` holds. For broken
/// contracts inside HyperNAS or a plugin, never for user input: the message asks for a report.
#define HYPERNAS_INTERNAL_ASSERT(cond, ...)                                                        \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      throw ::hypernas::Error(::hypernas::cat("internal error at ", __FILE__, ":", __LINE__, ": ", \
                                              #cond, " failed. ", ##__VA_ARGS__,                   \
                                              " (please report this as a bug)"));                  \
  } while (false)
