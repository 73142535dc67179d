#pragma once
/// @file progress.h
/// @brief Progress of long tasks: a redrawn bar on a terminal, periodic lines otherwise.

#include <chrono>
#include <cstdint>
#include <string>

#include <hypernas/context.h>

namespace hypernas::core {

/// How progress is shown.
enum class ProgressMode { Auto = 1, Bar, Lines, Off };

/// Sets the mode for tasks started afterwards (Auto: a bar when stderr is a terminal).
void set_progress_mode(ProgressMode mode);

/// Erases a bar drawn on the terminal, if any, so that another line can be written.
void clear_progress_line();

/// A task's progress. Bar mode redraws at most 10 times a second; line mode prints at every
/// 10% (once the task has run a second) and at least every 30 seconds, and a last line when
/// done. Both show count, rate and an ETA.
class ConsoleProgress final : public Progress {
 public:
  /// Starts a task named `label` of `total` steps (0: unknown).
  ConsoleProgress(std::string label, std::int64_t total);
  ~ConsoleProgress() override;
  void advance(std::int64_t n = 1, const std::string& status = "") override;
  void finish() override;
  /// Steps done so far.
  std::int64_t done() const { return done_; }

 private:
  void draw(bool final);
  std::string label_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  std::string status_;
  bool finished_ = false;
  bool bar_;
  bool off_;
  int next_decile_ = 1;
  std::int64_t last_drawn_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace hypernas::core
