#include "kernel/report/plot.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <hypernas/error.h>

namespace hypernas::report {
namespace fs = std::filesystem;

namespace {
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\n') out += c;
  }
  return out + "\"";
}

void check_series(const std::vector<Series>& series, const std::string& where) {
  for (const auto& s : series) {
    HYPERNAS_CHECK(s.x.size() == s.y.size(), where, ": series '", s.name, "' has ", s.x.size(),
                   " x values and ", s.y.size(), " y values");
    HYPERNAS_CHECK(s.style == "lines" || s.style == "points" || s.style == "linespoints", where,
                   ": unknown style '", s.style, "' (lines, points, linespoints)");
  }
}

/// The .dat and .gp paths next to `png` (whose folder is created).
std::pair<fs::path, fs::path> side_files(const fs::path& png) {
  if (png.has_parent_path()) fs::create_directories(png.parent_path());
  fs::path dat = png, gp = png;
  dat.replace_extension(".dat");
  gp.replace_extension(".gp");
  return {dat, gp};
}

/// Appends each series as one gnuplot data block (index) to `out`.
void write_blocks(std::ostream& out, const std::vector<Series>& series) {
  for (const auto& s : series) {
    out << "# " << s.name << "\n";
    for (std::size_t i = 0; i < s.x.size(); ++i) out << s.x[i] << " " << s.y[i] << "\n";
    out << "\n\n";  // gnuplot index separator
  }
}

/// The settings and the `plot` command of one figure whose blocks start at index `first`.
void write_panel(std::ostream& out, const Plot& p, const fs::path& dat, std::size_t first,
                 bool in_grid) {
  out << "set title " << quoted(p.title) << " noenhanced\n"
      << "set xlabel " << quoted(p.xlabel) << " noenhanced\n"
      << "set ylabel " << quoted(p.ylabel) << " noenhanced\n"
      << "unset logscale\n";
  if (p.logx) out << "set logscale x\n";
  if (p.logy) out << "set logscale y\n";
  if (!in_grid) out << "set key outside right top noenhanced\n";
  else if (p.series.size() == 1) out << "unset key\n";
  else out << "set key inside top left noenhanced font ',9'\n";
  out << "plot ";
  for (std::size_t i = 0; i < p.series.size(); ++i) {
    const auto& s = p.series[i];
    out << (i ? ", \\\n     " : "") << quoted(dat.string()) << " index " << first + i
        << " using 1:2 with " << s.style << (s.style != "lines" ? " pt 7 ps 0.6" : " lw 2")
        << " title " << quoted(s.name);
  }
  out << "\n";
}

void run_gnuplot(const fs::path& gp, const fs::path& png) {
  const std::string cmd = "gnuplot " + quoted(gp.string()) + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  HYPERNAS_CHECK(pipe != nullptr, "cannot start gnuplot (install Debian's gnuplot-nox)");
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) output += buf;
  const int status = pclose(pipe);
  HYPERNAS_CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 127,
                 "gnuplot is not installed (install Debian's gnuplot-nox) to draw ", png.string());
  HYPERNAS_CHECK(status == 0 && fs::exists(png), "gnuplot failed to draw ", png.string(), ": ",
                 output.empty() ? "no message" : output);
}

std::ofstream open_for_writing(const fs::path& file) {
  std::ofstream out(file);
  HYPERNAS_CHECK(out.good(), "cannot write ", file.string());
  out.precision(10);
  return out;
}
}  // namespace

void plot(const Plot& p, const fs::path& png) {
  HYPERNAS_CHECK(!p.series.empty(), "plot ", png.string(), ": no series to draw");
  check_series(p.series, "plot " + png.string());
  const auto [dat, gp] = side_files(png);
  {
    auto out = open_for_writing(dat);
    write_blocks(out, p.series);
  }
  {
    auto out = open_for_writing(gp);
    out << "set terminal pngcairo size 900,600 enhanced font 'sans,11'\n"
        << "set output " << quoted(png.string()) << "\n"
        << "set grid\n";
    write_panel(out, p, dat, 0, false);
  }
  run_gnuplot(gp, png);
}

void plot_grid(const Grid& g, const fs::path& png) {
  const std::string where = "plot " + png.string();
  HYPERNAS_CHECK(!g.panels.empty(), where, ": no panels to draw");
  HYPERNAS_CHECK(g.columns >= 0, where, ": columns must be >= 0, got ", g.columns);
  for (std::size_t i = 0; i < g.panels.size(); ++i) {
    const std::string panel = cat(where, ": panel ", i + 1, " ('", g.panels[i].title, "')");
    HYPERNAS_CHECK(!g.panels[i].series.empty(), panel, " has no series to draw");
    check_series(g.panels[i].series, panel);
  }
  const int n = static_cast<int>(g.panels.size());
  const int columns = g.columns > 0
                          ? std::min(g.columns, n)
                          : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n)) - 1e-9));
  const int rows = (n + columns - 1) / columns;
  const auto [dat, gp] = side_files(png);
  {
    auto out = open_for_writing(dat);
    for (const auto& panel : g.panels) write_blocks(out, panel.series);
  }
  {
    auto out = open_for_writing(gp);
    out << "set terminal pngcairo size " << 450 * columns << "," << 380 * rows + 40
        << " enhanced font 'sans,10'\n"
        << "set output " << quoted(png.string()) << "\n"
        << "set grid\n"
        << "set multiplot layout " << rows << "," << columns << " rowsfirst";
    if (!g.title.empty()) out << " title " << quoted(g.title) << " font ',13' noenhanced";
    out << "\n";
    std::size_t first = 0;
    for (const auto& panel : g.panels) {
      write_panel(out, panel, dat, first, true);
      first += panel.series.size();
    }
    out << "unset multiplot\n";
  }
  run_gnuplot(gp, png);
}

void heatmap(const Heatmap& m, const fs::path& png) {
  const std::string where = "heat map " + png.string();
  const std::size_t n = m.values.size();
  HYPERNAS_CHECK(n > 0, where, ": the matrix is empty");
  const bool square = m.columns.empty();
  const std::size_t cols = square ? n : m.columns.size();
  for (std::size_t i = 0; i < n; ++i)
    HYPERNAS_CHECK(m.values[i].size() == cols, where, ": row ", i + 1, " has ", m.values[i].size(),
                   " values, expected ", cols,
                   square ? cat(" (a square matrix: ", n, " rows)") : cat(" (one per column)"));
  HYPERNAS_CHECK(m.labels.size() == n, where, ": ", m.labels.size(), " labels for a ", n, "x", cols,
                 " matrix (one per row)");
  HYPERNAS_CHECK(m.digits >= -1 && m.digits <= 6, where, ": digits must be -1 to 6, got ",
                 m.digits);
  double low = m.low, high = m.high;
  if (std::isnan(low) || std::isnan(high)) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& row : m.values)
      for (double v : row)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!(lo <= hi)) lo = 0, hi = 1;  // nothing finite: any range
    if (std::isnan(low)) low = lo;
    if (std::isnan(high)) high = hi;
  }
  HYPERNAS_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high, where,
                 ": the colour range [", low, ", ", high, "] is not a finite interval");
  if (low == high) low -= 0.5, high += 0.5;  // gnuplot refuses an empty colour range
  const auto [dat, gp] = side_files(png);
  {
    auto out = open_for_writing(dat);
    out << "# row column value text\n";
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        const double v = m.values[i][j];
        char text[64];
        if (std::isnan(v)) std::snprintf(text, sizeof text, "nan");
        else std::snprintf(text, sizeof text, "%.*f", std::max(m.digits, 0), v);
        out << i << " " << j << " ";
        if (std::isnan(v)) out << "NaN";
        else out << v;
        out << " \"" << text << "\"\n";
      }
  }
  {
    auto out = open_for_writing(gp);
    // Cells of 60 pixels, at most 3000 pixels a side (then smaller cells); a tall rectangular
    // map keeps its rows readable at 14 pixels or more.
    const std::size_t cell =
        square ? 60
               : std::max<std::size_t>(14, std::min<std::size_t>(60, 3000 / std::max(n, cols)));
    const int height = static_cast<int>(std::min<std::size_t>(cell * n, 6000)) + 260;
    const int width = static_cast<int>(std::min<std::size_t>(cell * cols, 6000)) + 380;
    std::ostringstream ytics, xtics;
    for (std::size_t i = 0; i < n; ++i) ytics << (i ? ", " : "") << quoted(m.labels[i]) << " " << i;
    for (std::size_t j = 0; j < cols; ++j)
      xtics << (j ? ", " : "") << quoted(square ? m.labels[j] : m.columns[j]) << " " << j;
    out << "set terminal pngcairo size " << width << "," << height << " enhanced font 'sans,10'\n"
        << "set output " << quoted(png.string()) << "\n"
        << "set title " << quoted(m.title) << " noenhanced\n"
        << "unset key\n"
        << (square ? "set size ratio -1\n" : "") << "set xrange [-0.5:" << cols - 0.5 << "]\n"
        << "set yrange [" << n - 0.5 << ":-0.5]\n"
        << "set xtics (" << xtics.str() << ") rotate by 45 right noenhanced scale 0\n"
        << "set ytics (" << ytics.str() << ") noenhanced scale 0\n"
        << "set cbrange [" << low << ":" << high << "]\n"
        << "set palette defined (0 '#3b4cc0', 0.5 '#f7f7f7', 1 '#b40426')\n"
        << "plot " << quoted(dat.string())
        << " using 2:1:(0.5):(0.5):3 with boxxyerror fillstyle solid 1.0 noborder"
           " linecolor palette";
    if (m.digits >= 0)
      out << ", \\\n     " << quoted(dat.string())
          << " using 2:1:4 with labels noenhanced font ',10'";
    out << "\n";
  }
  run_gnuplot(gp, png);
}

}  // namespace hypernas::report
