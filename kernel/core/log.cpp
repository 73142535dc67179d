#include "kernel/core/log.h"

#include <atomic>
#include <iostream>
#include <mutex>

#include "kernel/core/progress.h"

namespace hypernas::core {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void write_log(LogLevel level, const std::string& component, const std::string& message) {
  if (static_cast<int>(level) < g_level.load()) return;
  const char* tag = level == LogLevel::Warn    ? "warning: "
                    : level == LogLevel::Error ? "error: "
                                               : "";
  std::lock_guard<std::mutex> lock(g_mutex);
  clear_progress_line();  // a log line never lands in the middle of a progress bar
  std::cerr << "[" << component << "] " << tag << message << std::endl;
}

}  // namespace hypernas::core
