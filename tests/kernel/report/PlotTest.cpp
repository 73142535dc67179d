#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <hypernas/error.h>

#include "kernel/report/plot.h"

namespace fs = std::filesystem;
using namespace hypernas::report;

namespace {

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

}  // namespace
