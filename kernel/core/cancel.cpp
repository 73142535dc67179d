#include "kernel/core/cancel.h"

#include <atomic>
#include <csignal>
#include <cstring>

namespace hypernas::core {
namespace {
std::atomic<const char*> g_reason{nullptr};
std::atomic<long long> g_deadline_ns{0};  // steady_clock ns since epoch; 0: none

extern "C" void on_signal(int sig) {
  if (g_reason.load() != nullptr) {  // second signal: stop now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_reason = sig == SIGINT ? "interrupted (Ctrl-C)" : "terminated";
}
}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

void request_cancel(const char* reason) { g_reason = reason; }

void reset_cancel() {
  g_reason = nullptr;
  g_deadline_ns = 0;
}

void set_deadline(std::optional<std::chrono::steady_clock::time_point> deadline) {
  g_deadline_ns =
      deadline ? std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch())
                     .count()
               : 0;
}

bool cancelled() {
  if (g_reason.load() != nullptr) return true;
  long long d = g_deadline_ns.load();
  if (d != 0 &&
      std::chrono::steady_clock::now().time_since_epoch() >= std::chrono::nanoseconds(d)) {
    g_reason = "time limit reached";
    return true;
  }
  return false;
}

std::string cancel_reason() {
  const char* r = g_reason.load();
  return r ? r : "";
}

}  // namespace hypernas::core
