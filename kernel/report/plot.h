#pragma once
/// @file plot.h
/// @brief PNG plots for result reports, drawn by gnuplot. The data and the gnuplot script are
/// written next to the PNG, so a user can restyle a figure or plot it with other tools.

#include <filesystem>
#include <string>
#include <vector>

namespace hypernas::report {

/// One series of (x, y) points.
struct Series {
  std::string name;             ///< Legend entry.
  std::vector<double> x;        ///< X values.
  std::vector<double> y;        ///< Y values (same length as x).
  std::string style = "lines";  ///< "lines", "points" or "linespoints".
};

/// A figure.
struct Plot {
  std::string title;           ///< Title on top.
  std::string xlabel, ylabel;  ///< Axis labels.
  bool logx = false;           ///< Logarithmic x axis.
  bool logy = false;           ///< Logarithmic y axis.
  std::vector<Series> series;  ///< What to draw.
};

/// Writes `png` plus `<png stem>.dat` (the points, one block per series) and `<stem>.gp` (the
/// gnuplot script), then runs gnuplot. Throws Error when a series is malformed, gnuplot is
/// missing (naming the Debian package), or gnuplot fails (with its message).
void plot(const Plot& plot, const std::filesystem::path& png);

}  // namespace hypernas::report
