#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <hypernas/error.h>

#include "kernel/report/plot.h"

namespace fs = std::filesystem;
using namespace hypernas::report;

namespace {

std::string read(const fs::path& file) {
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  return text.str();
}

bool is_png(const fs::path& file) {
  std::ifstream png(file, std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  return std::string(magic + 1, 3) == "PNG";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const hypernas::Error& e) {
    return e.what();
  }
  return "(no error)";
}

fs::path temp_dir(const char* name) {
  fs::path d = fs::temp_directory_path() / ("hypernas_plot_" + std::to_string(::getpid()) + name);
  fs::remove_all(d);
  return d;
}

TEST(Plot, WritesPngWithItsDataAndScript) {
  const fs::path dir = temp_dir("ok");
  Plot p;
  p.title = "loss";
  p.series.push_back({"train", {1, 2, 3}, {3.0, 2.0, 1.5}, "lines"});
  p.series.push_back({"valid", {1, 2, 3}, {3.1, 2.2, 1.9}, "points"});
  plot(p, dir / "loss.png");
  ASSERT_TRUE(fs::exists(dir / "loss.png"));
  std::ifstream png(dir / "loss.png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  std::stringstream dat;
  dat << std::ifstream(dir / "loss.dat").rdbuf();
  EXPECT_NE(dat.str().find("# valid\n1 3.1\n2 2.2\n3 1.9"), std::string::npos) << dat.str();
  EXPECT_TRUE(fs::exists(dir / "loss.gp"));
  fs::remove_all(dir);
}

TEST(Plot, MalformedSeriesIsRefusedByName) {
  Plot p;
  p.series.push_back({"bad", {1, 2}, {1}, "lines"});
  try {
    plot(p, temp_dir("bad") / "x.png");
    FAIL();
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("series 'bad' has 2 x values and 1 y values"),
              std::string::npos);
  }
  Plot empty;
  EXPECT_THROW(plot(empty, temp_dir("empty") / "x.png"), hypernas::Error);
}

TEST(PlotGrid, DrawsOnePanelPerFigureWithItsOwnTitle) {
  const fs::path dir = temp_dir("grid");
  Grid g;
  g.title = "score against truth";
  g.columns = 2;
  for (const char* name : {"params", "flops", "params+flops"}) {
    Plot p;
    p.title = std::string(name) + " (Spearman 0.5)";
    p.xlabel = "cifar10_test";
    p.ylabel = "score";
    p.series.push_back({name, {1, 2, 3}, {2, 1, 3}, "points"});
    g.panels.push_back(p);
  }
  g.panels[1].logy = true;
  g.panels[2].series.push_back({"second", {1, 2}, {4, 5}, "lines"});
  plot_grid(g, dir / "sub" / "grid.png");
  ASSERT_TRUE(is_png(dir / "sub" / "grid.png"));
  const std::string gp = read(dir / "sub" / "grid.gp");
  // Two columns, two rows, one plot command per panel, each after its own title.
  EXPECT_NE(gp.find("set multiplot layout 2,2 rowsfirst title \"score against truth\""),
            std::string::npos)
      << gp;
  EXPECT_NE(gp.find("set terminal pngcairo size 900,800"), std::string::npos) << gp;
  std::size_t plots = 0;
  for (auto at = gp.find("\nplot "); at != std::string::npos; at = gp.find("\nplot ", at + 1))
    ++plots;
  EXPECT_EQ(plots, 3u) << gp;
  const auto first = gp.find("set title \"params (Spearman 0.5)\"");
  const auto second = gp.find("set title \"flops (Spearman 0.5)\"");
  const auto third = gp.find("set title \"params+flops (Spearman 0.5)\"");
  ASSERT_NE(first, std::string::npos) << gp;
  ASSERT_NE(second, std::string::npos) << gp;
  ASSERT_NE(third, std::string::npos) << gp;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  // The log axis belongs to the second panel only, and each panel reads its own data blocks.
  EXPECT_NE(gp.find("set logscale y", second), std::string::npos);
  EXPECT_LT(gp.find("set logscale y", second), third);
  EXPECT_EQ(gp.find("set logscale y"), gp.find("set logscale y", second));
  EXPECT_NE(gp.find("index 3 using 1:2 with lines", third), std::string::npos) << gp;
  EXPECT_NE(gp.find("unset multiplot"), std::string::npos);
  const std::string dat = read(dir / "sub" / "grid.dat");
  EXPECT_NE(dat.find("# flops\n1 2\n2 1\n3 3\n"), std::string::npos) << dat;
  EXPECT_NE(dat.find("# second\n1 4\n2 5\n"), std::string::npos) << dat;
  fs::remove_all(dir);
}

TEST(PlotGrid, SquareLayoutByDefault) {
  const fs::path dir = temp_dir("square");
  Grid g;
  for (int i = 0; i < 5; ++i) {
    Plot p;
    p.title = "panel " + std::to_string(i);
    p.series.push_back({"s", {0, 1}, {1, 0}, "points"});
    g.panels.push_back(p);
  }
  plot_grid(g, dir / "g.png");
  EXPECT_NE(read(dir / "g.gp").find("set multiplot layout 2,3 rowsfirst\n"), std::string::npos)
      << read(dir / "g.gp");
  EXPECT_TRUE(is_png(dir / "g.png"));
  fs::remove_all(dir);
}

TEST(PlotGrid, MalformedGridsAreRefusedNamingThePanel) {
  Grid none;
  EXPECT_NE(error_of([&] { plot_grid(none, temp_dir("none") / "x.png"); }).find("no panels"),
            std::string::npos);
  Grid g;
  Plot ok, empty, ragged;
  ok.series.push_back({"a", {1}, {1}, "points"});
  empty.title = "nothing";
  g.panels = {ok, empty};
  EXPECT_NE(error_of([&] {
              plot_grid(g, temp_dir("empty") / "x.png");
            }).find("panel 2 ('nothing') has no series"),
            std::string::npos);
  ragged.title = "bad";
  ragged.series.push_back({"r", {1, 2}, {1}, "points"});
  g.panels = {ok, ragged};
  EXPECT_NE(error_of([&] {
              plot_grid(g, temp_dir("ragged") / "x.png");
            }).find("panel 2 ('bad'): series 'r' has 2 x values and 1 y values"),
            std::string::npos);
}

TEST(Heatmap, PrintsEveryValueInItsCellWithTheLabelsOnBothAxes) {
  const fs::path dir = temp_dir("heat");
  Heatmap m;
  m.title = "Spearman between surrogates";
  m.labels = {"params", "flops", "ghn_fit"};
  m.values = {{1, 0.95, -0.125}, {0.95, 1, std::nan("")}, {-0.125, std::nan(""), 1}};
  m.low = -1;
  m.high = 1;
  heatmap(m, dir / "corr.png");
  ASSERT_TRUE(is_png(dir / "corr.png"));
  const std::string dat = read(dir / "corr.dat");
  EXPECT_NE(dat.find("0 1 0.95 \"0.95\"\n"), std::string::npos) << dat;
  EXPECT_NE(dat.find("0 2 -0.125 \"-0.12\"\n"), std::string::npos) << dat;  // 2 digits
  EXPECT_NE(dat.find("1 2 NaN \"nan\"\n"), std::string::npos) << dat;
  EXPECT_NE(dat.find("2 2 1 \"1.00\"\n"), std::string::npos) << dat;
  const std::string gp = read(dir / "corr.gp");
  EXPECT_NE(gp.find("set xtics (\"params\" 0, \"flops\" 1, \"ghn_fit\" 2)"), std::string::npos)
      << gp;
  EXPECT_NE(gp.find("set ytics (\"params\" 0, \"flops\" 1, \"ghn_fit\" 2)"), std::string::npos)
      << gp;
  EXPECT_NE(gp.find("set yrange [2.5:-0.5]"), std::string::npos) << gp;  // row 1 on top
  EXPECT_NE(gp.find("set cbrange [-1:1]"), std::string::npos) << gp;
  EXPECT_NE(gp.find("with labels"), std::string::npos) << gp;
  EXPECT_NE(gp.find("set title \"Spearman between surrogates\""), std::string::npos) << gp;
  // One cell, and the colour range taken from the data.
  Heatmap one;
  one.labels = {"only"};
  one.values = {{0.5}};
  heatmap(one, dir / "one.png");
  EXPECT_TRUE(is_png(dir / "one.png"));
  EXPECT_NE(read(dir / "one.gp").find("set cbrange [0:1]"), std::string::npos)
      << read(dir / "one.gp");
  fs::remove_all(dir);
}

TEST(Heatmap, RectangularWithColumnLabelsAndColoursOnly) {
  const fs::path dir = temp_dir("rectheat");
  Heatmap m;
  m.title = "softmax(alpha) per epoch";
  m.labels = {"e0 conv", "e0 pool", "e1 conv"};
  m.columns = {"1", "2"};
  m.values = {{0.2, 0.6}, {0.8, 0.4}, {0.5, 0.5}};
  m.digits = -1;
  heatmap(m, dir / "alpha.png");
  ASSERT_TRUE(is_png(dir / "alpha.png"));
  const std::string dat = read(dir / "alpha.dat");
  EXPECT_NE(dat.find("2 1 0.5 "), std::string::npos) << dat;  // row 3, column 2
  const std::string gp = read(dir / "alpha.gp");
  EXPECT_NE(gp.find("set xtics (\"1\" 0, \"2\" 1)"), std::string::npos) << gp;
  EXPECT_NE(gp.find("set ytics (\"e0 conv\" 0, \"e0 pool\" 1, \"e1 conv\" 2)"), std::string::npos)
      << gp;
  EXPECT_NE(gp.find("set xrange [-0.5:1.5]"), std::string::npos) << gp;
  EXPECT_EQ(gp.find("with labels"), std::string::npos) << gp;  // digits -1: no numbers
  m.values[1].pop_back();
  EXPECT_NE(error_of([&] {
              heatmap(m, dir / "bad.png");
            }).find("row 2 has 1 values, expected 2 (one per column)"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Heatmap, MalformedMatricesAreRefused) {
  const fs::path png = temp_dir("badheat") / "x.png";
  Heatmap m;
  EXPECT_NE(error_of([&] { heatmap(m, png); }).find("the matrix is empty"), std::string::npos);
  m.labels = {"a", "b"};
  m.values = {{1, 2}, {3}};
  EXPECT_NE(error_of([&] { heatmap(m, png); }).find("row 2 has 1 values, expected 2"),
            std::string::npos)
      << error_of([&] { heatmap(m, png); });
  m.values = {{1, 2}, {3, 4}};
  m.labels = {"a", "b", "c"};
  EXPECT_NE(error_of([&] { heatmap(m, png); }).find("3 labels for a 2x2 matrix"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(png));
}

}  // namespace
