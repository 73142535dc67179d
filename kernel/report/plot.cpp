#include "kernel/report/plot.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>

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
}  // namespace

void plot(const Plot& p, const fs::path& png) {
  HYPERNAS_CHECK(!p.series.empty(), "plot ", png.string(), ": no series to draw");
  for (const auto& s : p.series) {
    HYPERNAS_CHECK(s.x.size() == s.y.size(), "plot ", png.string(), ": series '", s.name, "' has ",
                   s.x.size(), " x values and ", s.y.size(), " y values");
    HYPERNAS_CHECK(s.style == "lines" || s.style == "points" || s.style == "linespoints", "plot ",
                   png.string(), ": unknown style '", s.style, "' (lines, points, linespoints)");
  }
  if (png.has_parent_path()) fs::create_directories(png.parent_path());
  fs::path dat = png, gp = png;
  dat.replace_extension(".dat");
  gp.replace_extension(".gp");
  {
    std::ofstream out(dat);
    HYPERNAS_CHECK(out.good(), "cannot write ", dat.string());
    out.precision(10);
    for (const auto& s : p.series) {
      out << "# " << s.name << "\n";
      for (std::size_t i = 0; i < s.x.size(); ++i) out << s.x[i] << " " << s.y[i] << "\n";
      out << "\n\n";  // gnuplot index separator
    }
  }
  {
    std::ofstream out(gp);
    HYPERNAS_CHECK(out.good(), "cannot write ", gp.string());
    out << "set terminal pngcairo size 900,600 enhanced font 'sans,11'\n"
        << "set output " << quoted(png.string()) << "\n"
        << "set title " << quoted(p.title) << " noenhanced\n"
        << "set xlabel " << quoted(p.xlabel) << " noenhanced\n"
        << "set ylabel " << quoted(p.ylabel) << " noenhanced\n"
        << "set grid\nset key outside right top noenhanced\n";
    if (p.logx) out << "set logscale x\n";
    if (p.logy) out << "set logscale y\n";
    out << "plot ";
    for (std::size_t i = 0; i < p.series.size(); ++i) {
      const auto& s = p.series[i];
      out << (i ? ", \\\n     " : "") << quoted(dat.string()) << " index " << i
          << " using 1:2 with " << s.style << (s.style != "lines" ? " pt 7 ps 0.6" : " lw 2")
          << " title " << quoted(s.name);
    }
    out << "\n";
  }
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

}  // namespace hypernas::report
