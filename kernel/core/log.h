#pragma once
/// @file log.h
/// @brief The kernel's logger: one line per message on stderr, prefixed with a component name.

#include <string>

#include <hypernas/context.h>

namespace hypernas::core {

/// Sets the lowest level written (default Info; --verbose gives Debug, --quiet Warn).
void set_log_level(LogLevel level);
/// The lowest level written.
LogLevel log_level();

/// Writes one line "[component] message" (warnings and errors marked) to stderr.
void write_log(LogLevel level, const std::string& component, const std::string& message);

/// A Logger that prefixes every line with a component's name.
class ComponentLogger final : public Logger {
 public:
  /// A logger for `component` ("ghn", "random", "kernel").
  explicit ComponentLogger(std::string component) : component_(std::move(component)) {}
  void log(LogLevel level, const std::string& message) override {
    write_log(level, component_, message);
  }

 private:
  std::string component_;
};

}  // namespace hypernas::core
