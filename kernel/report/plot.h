#pragma once
/// @file plot.h
/// @brief PNG plots for result reports, drawn by gnuplot. The data and the gnuplot script are
/// written next to the PNG, so a user can restyle a figure or plot it with other tools.

#include <filesystem>
#include <limits>
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

/// A figure (or one panel of a Grid).
struct Plot {
  std::string title;           ///< Title on top.
  std::string xlabel, ylabel;  ///< Axis labels.
  bool logx = false;           ///< Logarithmic x axis.
  bool logy = false;           ///< Logarithmic y axis.
  std::vector<Series> series;  ///< What to draw.
};

/// Several figures in one PNG, laid out in rows of `columns` panels (gnuplot multiplot). Each
/// panel has its own title, axes and series.
struct Grid {
  std::string title;         ///< Title above every panel (may be empty).
  std::vector<Plot> panels;  ///< The panels, row by row.
  int columns = 0;           ///< Panels per row; 0: ceil(sqrt(panels)).
};

/// A labelled matrix drawn as coloured cells with each value printed in its cell (for instance
/// the rank correlation between every pair of surrogates). Row i is drawn top-down, column j
/// left to right; without `columns` the matrix is square and both carry labels[i]; with them it
/// may be rectangular (the softmax of each architecture parameter over the epochs of a search).
/// A NaN cell is left blank and printed "nan".
struct Heatmap {
  std::string title;                        ///< Title on top.
  std::vector<std::string> labels;          ///< One per row (and column, without `columns`).
  std::vector<std::string> columns;         ///< Column labels (empty: the matrix is square).
  std::vector<std::vector<double>> values;  ///< values[row][column].
  int digits = 2;  ///< Decimals printed in each cell (0-6; -1: no numbers, colours only).
  double low = std::numeric_limits<double>::quiet_NaN();   ///< Colour range; NaN: the data's.
  double high = std::numeric_limits<double>::quiet_NaN();  ///< Colour range; NaN: the data's.
};

/// Writes `png` plus `<png stem>.dat` (the points, one block per series) and `<stem>.gp` (the
/// gnuplot script), then runs gnuplot. Throws Error when a series is malformed, gnuplot is
/// missing (naming the Debian package), or gnuplot fails (with its message).
void plot(const Plot& plot, const std::filesystem::path& png);

/// The same for a grid of panels: one .dat (a block per series of every panel, in order) and
/// one .gp. Throws Error when there are no panels, a panel has no series, or a series is
/// malformed (naming the panel and the series).
void plot_grid(const Grid& grid, const std::filesystem::path& png);

/// The same for a heat map: the .dat has one line per cell, `row column value "text"`. Throws
/// Error when the matrix is empty, not square without `columns` or ragged (naming the row), or
/// the labels do not match its size.
void heatmap(const Heatmap& map, const std::filesystem::path& png);

}  // namespace hypernas::report
