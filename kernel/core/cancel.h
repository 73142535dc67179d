#pragma once
/// @file cancel.h
/// @brief Cooperative cancellation: Ctrl-C and time limits set one flag that long work polls.

#include <chrono>
#include <optional>
#include <string>

namespace hypernas::core {

/// Installs a SIGINT/SIGTERM handler that requests cancellation; a second Ctrl-C kills the
/// process at once.
void install_interrupt_handler();
/// Requests cancellation with a reason ("interrupted", "time limit of 60 s reached").
void request_cancel(const char* reason);
/// Clears a previous request (tests).
void reset_cancel();
/// Sets a wall-clock deadline after which cancelled() turns true.
void set_deadline(std::optional<std::chrono::steady_clock::time_point> deadline);
/// True once cancellation was requested or the deadline passed.
bool cancelled();
/// Why the run was cancelled (empty if it was not).
std::string cancel_reason();

}  // namespace hypernas::core
