#include "kernel/core/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace hypernas::core {
namespace {
std::atomic<int> g_mode{static_cast<int>(ProgressMode::Auto)};
std::atomic<bool> g_bar_on_screen{false};

std::string format_seconds(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}
}  // namespace

void set_progress_mode(ProgressMode mode) { g_mode = static_cast<int>(mode); }

void clear_progress_line() {
  if (g_bar_on_screen.exchange(false)) std::cerr << "\r\033[K" << std::flush;
}

ConsoleProgress::ConsoleProgress(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  auto mode = static_cast<ProgressMode>(g_mode.load());
  off_ = mode == ProgressMode::Off;
  bar_ = mode == ProgressMode::Bar || (mode == ProgressMode::Auto && isatty(STDERR_FILENO));
}

ConsoleProgress::~ConsoleProgress() { finish(); }

void ConsoleProgress::advance(std::int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  if (off_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (bar_) {
    if (since >= 0.1) draw(false);
  } else if ((total_ > 0 && done_ * 10 >= next_decile_ * total_) || since >= 30) {
    while (total_ > 0 && done_ * 10 >= next_decile_ * total_) ++next_decile_;
    double elapsed = std::chrono::duration<double>(now - start_).count();
    if (elapsed >= 1.0 || since >= 30) draw(false);
  }
}

void ConsoleProgress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!off_) draw(true);
}

void ConsoleProgress::draw(bool final) {
  if (!bar_ && final && last_drawn_ == done_) return;  // the 100% line is already there
  last_drawn_ = done_;
  last_draw_ = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(last_draw_ - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  std::ostringstream line;
  line << label_ << " ";
  if (total_ > 0) {
    double frac = std::min(1.0, double(done_) / double(total_));
    if (bar_) {
      int width = 24, filled = int(frac * width);
      line << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
    }
    line << done_ << "/" << total_ << " (" << int(frac * 100) << "%)";
    if (!final && rate > 0) line << " eta " << format_seconds((total_ - done_) / rate);
  } else {
    line << done_;
  }
  char r[32];
  std::snprintf(r, sizeof r, "%.2f/s", rate);
  line << " " << r << " " << format_seconds(elapsed);
  if (!status_.empty()) line << "  " << status_;
  if (bar_) {
    std::cerr << "\r\033[K" << line.str() << (final ? "\n" : "") << std::flush;
    g_bar_on_screen = !final;
  } else {
    std::cerr << "[progress] " << line.str() << std::endl;
  }
}

}  // namespace hypernas::core
