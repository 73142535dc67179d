// `hypernas compare` (scripts/compare.lua) and the grid and heat-map forms of nas.plot, driven
// through the `hypernas` binary as a user runs them. No dataset is needed: params, flops, their
// ensemble and the `flaky` fixture read no data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "kernel/store/store.h"
#include "tests/support/process.h"
#include "tests/support/reference_metrics.h"

namespace fs = std::filesystem;
using hypernas::test::run;

namespace {

std::string read(const fs::path& file) {
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// One CSV line, with "..." quoting ("" inside).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

// The cells of a markdown table row "| a | b |".
std::vector<std::string> md_cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '|' && row[i - 1] != '\\') {
      const auto b = cell.find_first_not_of(' ');
      out.push_back(b == std::string::npos ? ""
                                           : cell.substr(b, cell.find_last_not_of(' ') - b + 1));
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  return out;
}

using hypernas::test::reference::kendall_b;
using hypernas::test::reference::pearson;
using hypernas::test::reference::spearman;
using hypernas::test::reference::top_overlap;

const char* kOps[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};

// NB201 cell number `index` (base 5, first edge most significant).
std::string cell(int index) {
  int d[6];
  for (int k = 5; k >= 0; --k) d[k] = index % 5, index /= 5;
  std::ostringstream s;
  s << "|" << kOps[d[0]] << "~0|+|" << kOps[d[1]] << "~0|" << kOps[d[2]] << "~1|+|" << kOps[d[3]]
    << "~0|" << kOps[d[4]] << "~1|" << kOps[d[5]] << "~2|";
  return s.str();
}

class Compare : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("hypernas_compare_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  // 30 cells with made-up accuracies (distinct, unrelated to any count) and a second column.
  void write_truth() {
    std::ofstream out(dir / "truth.csv");
    out << "arch,cifar10_test,other\n";
    for (int i = 0; i < 30; ++i)
      out << cell((i * 523 + 7) % 15625) << "," << 60 + (i * 37) % 30 + 0.01 * i << "," << i
          << "\n";
  }
  hypernas::test::ProcessResult hypernas(std::vector<std::string> args) {
    args.insert(args.begin(), HYPERNAS_EXE);
    // The flaky fixture (NaN and errors on some cells) and no dataset anywhere: opening one
    // would fail the run.
    return run(args,
               {{"HYPERNAS_PLUGIN_PATH", std::string(HYPERNAS_TEST_FIXTURE_DIR) + "/eval"},
                {"HYPERNAS_DATA_CACHE", (dir / "no-datasets").string()}},
               dir.string());
  }
  fs::path dir;
};

// The rows of compare.csv for one surrogate: scores and ground truth, in pool order.
struct Column {
  std::vector<std::string> archs;
  std::vector<double> score, truth;
};
std::map<std::string, Column> read_compare_csv(const fs::path& file) {
  std::map<std::string, Column> out;
  const auto lines = lines_of(read(file));
  EXPECT_EQ(lines.at(0), "surrogate,arch,score,truth");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto f = csv_fields(lines[i]);
    EXPECT_EQ(f.size(), 4u) << lines[i];
    Column& c = out[f.at(0)];
    c.archs.push_back(f.at(1));
    c.score.push_back(std::stod(f.at(2)));
    c.truth.push_back(std::stod(f.at(3)));
  }
  return out;
}

// The table rows of report.md by surrogate label.
std::map<std::string, std::vector<std::string>> report_table(const std::string& report) {
  std::map<std::string, std::vector<std::string>> out;
  bool in_table = false;
  for (const auto& line : lines_of(report)) {
    if (line.rfind("| surrogate | Pearson | Spearman | Kendall | P@10% |", 0) == 0) in_table = true;
    else if (in_table && line.rfind("| ---", 0) == 0) continue;
    else if (in_table && line.rfind("| ", 0) == 0) out[md_cells(line).at(0)] = md_cells(line);
    else if (in_table) break;
  }
  return out;
}

TEST_F(Compare, TableMatchesTheMetricsOfItsScoresAndARerunReusesThem) {
  write_truth();
  const std::vector<std::string> args{"compare",
                                      "--truth",
                                      "truth.csv",
                                      "--surrogates",
                                      "params;flops;params+flops;flaky",
                                      "--experiment",
                                      "cmp",
                                      "--threads",
                                      "1",
                                      "--progress",
                                      "off"};
  auto first = hypernas(args);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const fs::path exp = dir / "results" / "cmp";
  const std::string report = read(exp / "report.md");
  const auto table = report_table(report);
  ASSERT_EQ(table.size(), 4u) << report;
  const auto csv = read_compare_csv(exp / "compare.csv");
  ASSERT_EQ(csv.size(), 4u);

  // Every surrogate scored the same 30 cells, in the same order, against the same truth.
  const Column& params = csv.at("params");
  ASSERT_EQ(params.archs.size(), 30u);
  for (const auto& [label, column] : csv) {
    EXPECT_EQ(column.archs, params.archs) << label;
    EXPECT_EQ(column.truth, params.truth) << label;
  }
  // The pool is the 30 rows of truth.csv (in a seeded order), each with its own accuracy.
  std::map<std::string, double> expected;
  for (int i = 0; i < 30; ++i)
    expected[cell((i * 523 + 7) % 15625)] = 60 + (i * 37) % 30 + 0.01 * i;
  std::map<std::string, double> seen;
  for (std::size_t i = 0; i < params.archs.size(); ++i) seen[params.archs[i]] = params.truth[i];
  ASSERT_EQ(seen.size(), 30u);
  for (const auto& [arch, truth] : expected) EXPECT_NEAR(seen[arch], truth, 1e-9) << arch;

  // The table's correlations are those of the scores in compare.csv.
  for (const auto& [label, column] : csv) {
    const auto& row = table.at(label);
    ASSERT_EQ(row.size(), 8u) << label;
    EXPECT_NEAR(std::stod(row[1]), pearson(column.score, column.truth), 5.1e-4) << label;
    EXPECT_NEAR(std::stod(row[2]), spearman(column.score, column.truth), 5.1e-4) << label;
    EXPECT_NEAR(std::stod(row[3]), kendall_b(column.score, column.truth), 5.1e-4) << label;
    EXPECT_NE(row[1].find(" ["), std::string::npos) << row[1];  // with its interval
    EXPECT_NEAR(std::stod(row[4]), top_overlap(column.score, column.truth, 3), 5.1e-3) << label;
  }
  // The ensemble ranks like the mean of its members' ranks; params and flops are exact.
  EXPECT_EQ(table.at("params")[5], "0");
  EXPECT_EQ(table.at("params")[6], "0.0");  // nothing fitted
  EXPECT_GT(std::stod(table.at("params+flops")[7]), 0);

  // flaky fails on every cell whose first edge is none (NaN) or avg_pool_3x3 (an error); each
  // failed cell ranks last, at the lowest score minus 1.
  const Column& flaky = csv.at("flaky");
  int failures = 0;
  double lowest = INFINITY;
  for (std::size_t i = 0; i < flaky.archs.size(); ++i) {
    const bool fails =
        flaky.archs[i].rfind("|none~", 0) == 0 || flaky.archs[i].rfind("|avg_pool_3x3~", 0) == 0;
    failures += fails;
    if (!fails) lowest = std::min(lowest, flaky.score[i]);
  }
  ASSERT_GT(failures, 0);
  ASSERT_LT(failures, 30);
  EXPECT_EQ(table.at("flaky")[5], std::to_string(failures));
  for (std::size_t i = 0; i < flaky.archs.size(); ++i) {
    if (flaky.archs[i].rfind("|none~", 0) == 0 || flaky.archs[i].rfind("|avg_pool_3x3~", 0) == 0) {
      EXPECT_EQ(flaky.score[i], lowest - 1) << flaky.archs[i];
    }
  }

  // The table is printed as written; the plots, the costs and the command are there.
  const auto header = report.find("| surrogate |");
  const std::string table_text = report.substr(header, report.find("\n\n", header) - header);
  EXPECT_NE(first.output.find(table_text), std::string::npos) << first.output;
  for (const char* png : {"scores.png", "cost_quality.png", "rank_correlation.png"}) {
    EXPECT_TRUE(fs::exists(exp / png)) << png;
    EXPECT_NE(report.find(std::string("](") + png + ")"), std::string::npos) << png;
  }
  const std::string grid = read(exp / "scores.gp");
  EXPECT_NE(grid.find("set multiplot layout 2,2"), std::string::npos) << grid;
  char title[64];
  std::snprintf(title, sizeof title, "set title \"flops (Spearman %.3f)\"",
                std::stod(table.at("flops")[2]));
  EXPECT_NE(grid.find(title), std::string::npos) << title << "\n" << grid;
  EXPECT_NE(read(exp / "cost_quality.gp").find("set logscale x"), std::string::npos);
  const std::string heat = read(exp / "rank_correlation.dat");
  EXPECT_EQ(lines_of(heat).size(), 1u + 16u) << heat;
  EXPECT_NE(heat.find("3 3 1 \"1.00\""), std::string::npos) << heat;
  EXPECT_NE(read(exp / "rank_correlation.gp").find("\"params+flops\" 2"), std::string::npos);
  EXPECT_NE(report.find("hypernas compare --truth truth.csv --surrogates "
                        "'params;flops;params+flops;flaky' --experiment cmp"),
            std::string::npos)
      << report;
  const std::string costs = read(exp / "compare_costs.csv");
  EXPECT_EQ(lines_of(costs).size(), 1u + 4u) << costs;
  EXPECT_NE(costs.find("score,params{prefer=larger},params,"), std::string::npos) << costs;

  // A rerun scores nothing again and reports the same table, costs included.
  auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  const auto evaluations = store->count("evaluations");
  EXPECT_EQ(evaluations, 4 * 30);
  store.reset();
  auto second = hypernas(args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("all 30 reused from the store"), std::string::npos) << second.output;
  EXPECT_EQ(read(exp / "report.md"), report);
  EXPECT_EQ(read(exp / "compare_costs.csv"), costs);
  EXPECT_NE(second.output.find(table_text), std::string::npos) << second.output;
  store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  EXPECT_EQ(store->count("evaluations"), evaluations);
  const auto runs = store->runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].state, "ok");
  EXPECT_EQ(runs[1].evaluations, 0);
}

TEST_F(Compare, SubsetAndColumnAndLabelsAreHonoured) {
  write_truth();
  auto r = hypernas({"compare", "--truth", "truth.csv", "--column", "other", "--subset", "12",
                     "--subset-seed", "3", "--surrogates", "params;params:prefer=smaller",
                     "--labels", "big;small", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path exp = dir / "results" / "compare";  // the default experiment
  const auto csv = read_compare_csv(exp / "compare.csv");
  ASSERT_EQ(csv.size(), 2u);
  const Column& big = csv.at("big");
  const Column& small = csv.at("small");
  ASSERT_EQ(big.archs.size(), 12u);
  // Column `other` holds the row number: the subset is 12 distinct rows, and their truth.
  std::vector<double> rows = big.truth;
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(std::unique(rows.begin(), rows.end()), rows.end());
  for (std::size_t i = 0; i < 12; ++i)
    EXPECT_EQ(big.archs[i], cell((static_cast<int>(big.truth[i]) * 523 + 7) % 15625));
  for (std::size_t i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(small.score[i], -big.score[i]);
  const auto table = report_table(read(exp / "report.md"));
  EXPECT_NEAR(std::stod(table.at("big")[2]), -std::stod(table.at("small")[2]), 1e-9);
  EXPECT_NE(read(exp / "report.md").find("12 of its 30 rows (subset seed 3)"), std::string::npos);
}

TEST_F(Compare, MalformedOrUnknownSpecsFailNamingTheSpec) {
  write_truth();
  const auto compare = [&](const std::string& specs, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"compare", "--truth",    "truth.csv", "--surrogates",
                                  specs,     "--progress", "off"};
    args.insert(args.end(), more.begin(), more.end());
    return hypernas(args);
  };
  const std::vector<std::pair<std::string, std::string>> usage{
      {"params;nosuch", "spec 'nosuch': no surrogate plugin named 'nosuch'"},
      {"params;flops:prefer", "spec 'flops:prefer': expected key=value, got 'prefer'"},
      {"params+", "spec 'params+': empty member"},
      {"params;;flops", "empty spec in 'params;;flops'"},
      {"ghn:fit=lots", "spec 'ghn:fit=lots': fit=lots is not a number of steps >= 1"},
      {"ghn@", "spec 'ghn@': '@' but no checkpoint file"},
      {":x=1", "spec ':x=1': expected name[:key=value,...][@checkpoint]"}};
  for (const auto& [specs, message] : usage) {
    auto r = compare(specs);
    EXPECT_EQ(r.exit_code, 2) << specs << ": " << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << specs << ": " << r.output;
  }
  auto r = compare("params;flops", {"--labels", "one"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--labels: 1 labels for 2 surrogates"), std::string::npos) << r.output;
  // What only the plugin can tell: options it does not take, fit on what is not trainable.
  r = compare("params;flops:prefer=sideways");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("surrogate spec 'flops:prefer=sideways': "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("sideways"), std::string::npos) << r.output;
  r = compare("params:fit=5");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("surrogate spec 'params:fit=5': fit=5, but surrogate 'params' is not "
                          "trainable"),
            std::string::npos)
      << r.output;
  // (A preset counts as one surrogate for --labels; the preset itself is looked up by the script.)
  r = compare("params;preset:no-such-evaluator", {"--labels", "one;two"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("surrogate spec 'preset:no-such-evaluator': "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("no-such-evaluator"), std::string::npos) << r.output;
  r = compare("params;params");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("'params' names two of them"), std::string::npos) << r.output;
  r = compare("params+flops@missing.ckpt");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("surrogate spec 'params+flops@missing.ckpt': "), std::string::npos)
      << r.output;
  // The script checks them the same way when run directly.
  r = hypernas({"run", (fs::path(HYPERNAS_SOURCE_DIR) / "scripts" / "compare.lua").string(),
                "--set", "truth=truth.csv", "--set", "surrogates=params;flops:x", "--progress",
                "off"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("surrogate spec 'flops:x': expected key=value, got 'x'"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "results" / "compare" / "report.md"));
  // Other usage errors.
  EXPECT_EQ(hypernas({"compare", "--truth", "nowhere.csv"}).exit_code, 2);
  EXPECT_EQ(hypernas({"compare", "stray"}).exit_code, 2);
  EXPECT_EQ(hypernas({"compare", "--subset", "-1", "--truth", "truth.csv"}).exit_code, 2);
}

TEST_F(Compare, HelpExplainsTheSpecSyntax) {
  auto r = hypernas({"compare", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* text : {"name[:key=value,...][@checkpoint]", "fit=N", "'+'", "ensemble",
                           "--truth", "--surrogates", "--subset"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << "\n" << r.output;
  EXPECT_NE(hypernas({"--help"}).output.find("compare"), std::string::npos);
}

TEST_F(Compare, FitsOnceAndLoadsTheCheckpointOnARerun) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  write_truth();
  // A tiny GHN fitted for 2 steps, alone and in an ensemble with params: one fit for both.
  const std::string ghn = "ghn:hidden=18,hyper_hidden=8,steps=1,fit=2";
  const std::vector<std::string> args{"compare",
                                      "--truth",
                                      "truth.csv",
                                      "--subset",
                                      "10",
                                      "--data",
                                      "fashion-mnist",
                                      "--images",
                                      "32",
                                      "--set",
                                      "channels=4",
                                      "--surrogates",
                                      ghn + ";" + ghn + "+params",
                                      "--labels",
                                      "ghn;ghn+params",
                                      "--threads",
                                      "1",
                                      "--progress",
                                      "off"};
  const auto compare = [&] {
    auto a = args;
    a.insert(a.begin(), HYPERNAS_EXE);
    return run(a, {{"HYPERNAS_PLUGIN_PATH", ""}}, dir.string());
  };
  auto first = compare();
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto fits = [](const std::string& out) {
    std::size_t n = 0;
    for (auto at = out.find("fitting for 2 steps"); at != std::string::npos;
         at = out.find("fitting for 2 steps", at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(fits(first.output), 1u) << first.output;
  const fs::path exp = dir / "results" / "compare";
  const std::string report = read(exp / "report.md");
  const auto table = report_table(report);
  ASSERT_EQ(table.size(), 2u) << report;
  EXPECT_EQ(table.at("ghn")[6], table.at("ghn+params")[6]);  // the fit seconds of both
  const std::string costs = read(exp / "compare_costs.csv");
  int fit_rows = 0;
  for (const auto& line : lines_of(costs)) {
    if (line.rfind("fit,", 0) != 0) continue;
    ++fit_rows;
    const auto f = csv_fields(line);
    ASSERT_EQ(f.size(), 6u) << line;
    EXPECT_GT(std::stod(f[3]), 0) << line;  // seconds
    EXPECT_NE(f[5].find(".ckpt"), std::string::npos) << line;
    EXPECT_TRUE(fs::exists(dir / f[5])) << line;
  }
  EXPECT_EQ(fit_rows, 1) << costs;

  auto second = compare();
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(fits(second.output), 0u) << second.output;
  EXPECT_NE(second.output.find("fitted state loaded from"), std::string::npos) << second.output;
  EXPECT_EQ(read(exp / "report.md"), report);  // same scores (reused), same costs
  auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  EXPECT_EQ(store->runs().at(1).evaluations, 0);
}

TEST_F(Compare, PlotDrawsGridsAndHeatMapsAndNamesTheKeyAtFault) {
  std::ofstream(dir / "plots.lua") << R"(
local ok = nas.plot{ file = "g.png", title = "two", columns = 1, panels = {
  { title = "a", series = { { x = {1, 2}, y = {2, 1}, style = "points" } } },
  { title = "b", logx = true, series = { { x = {1, 10}, y = {1, 2} } } } } }
print("grid " .. ok)
print("heat " .. nas.plot{ file = "h.png", matrix = { {1, 0.5}, {0.5, 1} }, labels = { "x", "y" },
                           range = { -1, 1 }, digits = 3 })
local function err(t) local ok, e = pcall(nas.plot, t); return tostring(e) end
print("E1 " .. err{ file = "e.png", panels = {} })
print("E2 " .. err{ file = "e.png", matrix = { {1, 2}, {3} }, labels = { "a", "b" } })
print("E3 " .. err{ file = "e.png", matrix = { {1, 2}, {3, 4} }, labels = { "a" } })
print("E4 " .. err{ file = "e.png", matrix = { {1} }, labels = { "a" }, series = {} })
print("E5 " .. err{ file = "e.png", panels = { { title = "p" } } })
print("E6 " .. err{ file = "e.png", matrix = { {1} } })
print("E7 " .. err{ file = "e.png", panels = { { series = { { x = {1}, y = {"a"} } } } } })
print("E8 " .. err{ file = "e.png", matrx = { {1} } })
print("E9 " .. err{ file = "e.png", matrix = { {1} }, labels = { "a" }, columns = 2 })
)";
  auto r = hypernas({"run", "plots.lua", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path exp = dir / "results" / "plots";
  EXPECT_TRUE(fs::exists(exp / "g.png"));
  EXPECT_NE(read(exp / "g.gp").find("set multiplot layout 2,1 rowsfirst title \"two\""),
            std::string::npos);
  EXPECT_TRUE(fs::exists(exp / "h.png"));
  EXPECT_NE(read(exp / "h.dat").find("0 1 0.5 \"0.500\""), std::string::npos)
      << read(exp / "h.dat");
  EXPECT_FALSE(fs::exists(exp / "e.png"));
  for (const char* message :
       {"E1 nas.plot{...}: panels is empty", "E2 nas.plot{...}: matrix[2] has 1 values, expected 2",
        "E3 nas.plot{...}: labels has 1 names for a 2x2 matrix",
        "E4 nas.plot{...}: give one of series = (a figure), panels = (a grid) or matrix =",
        "E5 panels[1] needs series =", "E6 nas.plot{...}: matrix = needs labels =",
        "E7 panels[1].series[1].y[1] is not a number", "E8 nas.plot{...}: unknown key 'matrx'",
        "E9 nas.plot{...}: key 'columns' does not go with matrix ="})
    EXPECT_NE(r.output.find(message), std::string::npos) << message << "\n" << r.output;
}

}  // namespace
