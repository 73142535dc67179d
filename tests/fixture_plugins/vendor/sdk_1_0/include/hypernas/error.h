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

}  // namespace hypernas

/// Throws hypernas::Error with the concatenated message unless `cond` holds.
#define HYPERNAS_CHECK(cond, ...)                          \
  do {                                                     \
    if (!(cond)) throw ::hypernas::Error(::hypernas::cat(__VA_ARGS__)); \
  } while (false)
