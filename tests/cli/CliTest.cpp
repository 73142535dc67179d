// Drives the `hypernas` binary as a user would: exit codes, messages, JSON, Ctrl-C.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <set>

#include <hypernas/abi.h>

#include "kernel/store/store.h"
#include "tests/support/process.h"

namespace fs = std::filesystem;
using hypernas::test::Process;
using hypernas::test::run;

namespace {

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("hypernas_cli_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path script(const std::string& name, const std::string& code) {
    std::ofstream(dir / name) << code;
    return dir / name;
  }
  hypernas::test::ProcessResult hypernas(std::vector<std::string> args,
                                         std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), HYPERNAS_EXE);
    env.emplace("HYPERNAS_PLUGIN_PATH", "");
    return run(args, env, dir.string());
  }
  fs::path dir;
};

TEST_F(Cli, VersionPrintsAbiAndBuildId) {
  auto r = hypernas({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find(hypernas::build_id()), std::string::npos) << r.output;
}

TEST_F(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(hypernas({}).exit_code, 2);
  EXPECT_EQ(hypernas({"frobnicate"}).exit_code, 2);
  auto r = hypernas({"run", "x.lua", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no-such-flag"), std::string::npos) << r.output;
  EXPECT_EQ(hypernas({"run"}).exit_code, 2);
  EXPECT_EQ(hypernas({"run", "x.lua", "--set", "novalue"}).exit_code, 2);
  EXPECT_EQ(hypernas({"run", "x.lua", "--device", "tpu"}).exit_code, 2);
  EXPECT_EQ(hypernas({"run", "x.lua", "--threads", "many"}).exit_code, 2);
}

TEST_F(Cli, HelpExitsWithZero) {
  auto r = hypernas({"run", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--device"), std::string::npos);
  EXPECT_EQ(hypernas({"plugins", "--help"}).exit_code, 0);
  EXPECT_EQ(hypernas({"--help"}).exit_code, 0);
}

TEST_F(Cli, MissingGpuIsAFailureWithAReason) {
  script("ok.lua", "print('hi')\n");
  auto r = hypernas({"run", "ok.lua", "--device", "cuda:3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cuda:3"), std::string::npos) << r.output;
}

TEST_F(Cli, PluginsJsonListsBuiltInsWithAbiAndBuildId) {
  auto r = hypernas({"plugins", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  std::set<std::string> names;
  for (const auto& p : j["plugins"]) {
    names.insert(p["name"].get<std::string>());
    EXPECT_EQ(p["build_id"], hypernas::build_id());
    EXPECT_EQ(p["abi"], hypernas::cat(hypernas::kAbiMajor, ".", hypernas::kAbiMinor));
  }
  for (const char* n : {"nb201", "random", "params", "flops"}) EXPECT_TRUE(names.count(n)) << n;
  EXPECT_TRUE(j["refused"].empty());
}

TEST_F(Cli, ForeignPluginsAreListedWithReasons) {
  auto r = hypernas({"plugins"}, {{"HYPERNAS_PLUGIN_PATH", HYPERNAS_TEST_FIXTURE_DIR}});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("abi_major.so: plugin 'fixture_major' was built for ABI major 99"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("not_a_library.so: not a loadable shared library"), std::string::npos);
}

TEST_F(Cli, UsingARefusedPluginFailsWithOneClearMessage) {
  script("use.lua", "local s = nas.surrogate('fixture_major')\n");
  auto r = hypernas({"run", "use.lua"}, {{"HYPERNAS_PLUGIN_PATH", HYPERNAS_TEST_FIXTURE_DIR}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("use.lua:1: no surrogate plugin named 'fixture_major'"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("abi_major.so: plugin 'fixture_major' was built for ABI major 99"),
            std::string::npos)
      << r.output;
}

TEST_F(Cli, PluginsStrictExitsWithOneWhenAFileWasRefused) {
  auto r = hypernas({"plugins", "--strict"}, {{"HYPERNAS_PLUGIN_PATH", HYPERNAS_TEST_FIXTURE_DIR}});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("abi_major.so: plugin 'fixture_major'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" files were refused (--strict)"), std::string::npos) << r.output;
  r = hypernas({"plugins", "--strict", "--json"},
               {{"HYPERNAS_PLUGIN_PATH", HYPERNAS_TEST_FIXTURE_DIR}});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("\"refused\""), std::string::npos) << r.output;
  // Only the built-in plugins: nothing refused.
  r = hypernas({"plugins", "--strict"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("refused"), std::string::npos) << r.output;
  r = hypernas({"plugins", "--strict", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(nlohmann::json::parse(r.output)["refused"].empty());
}

TEST_F(Cli, PluginOfAnotherCxxAbiIsRefusedWithTheCause) {
  auto r = hypernas({"plugins"}, {{"HYPERNAS_PLUGIN_PATH", HYPERNAS_TEST_FIXTURE_DIR}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("old_cxx_abi.so needs c10::detail::torchCheckFail("), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("another C++ ABI (_GLIBCXX_USE_CXX11_ABI)"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("Bad file descriptor"), std::string::npos) << r.output;
}

TEST_F(Cli, LuaMemoryLimitStopsARunawayScriptWithItsLine) {
  script("hog.lua", "local t = {}\nfor i = 1, 1e9 do\n  t[i] = string.rep('x', 1e6) .. i\nend\n");
  auto r = hypernas({"run", "hog.lua", "--lua-memory", "64M", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string message = "hog.lua:3: Lua memory limit of 64 MiB exceeded (--lua-memory)";
  const auto at = r.output.find(message);
  EXPECT_NE(at, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Lua memory limit", at + message.size()), std::string::npos)
      << r.output;  // one message
  // Sizes: K, M, G, T (binary), optional B or iB; a plain number is MiB; at least 1 MiB.
  script("ok.lua", "print('fine')\n");
  for (const char* good : {"64", "1.5giB"}) {
    r = hypernas({"run", "ok.lua", "--lua-memory", good, "--progress", "off"});
    EXPECT_EQ(r.exit_code, 0) << good << ": " << r.output;
  }
  for (const char* bad : {"lots", "0", "-64M", "64X", "512K", "M", ""}) {
    r = hypernas({"run", "ok.lua", std::string("--lua-memory=") + bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("--lua-memory expects a size"), std::string::npos) << r.output;
  }
}

TEST_F(Cli, HugeMalformedArchitectureGivesAShortMessage) {
  // ~100 kB, the fault (an unknown op) in the middle.
  const std::string pad(50000, ' ');
  auto r = hypernas({"arch", "info", "--space", "nb201",
                     pad + "|nor_conv_3x3~0|+|conv_9x9~0|none~1|+|none~0|none~1|none~2|" + pad});
  EXPECT_EQ(r.exit_code, 1) << r.output.substr(0, 2000);
  EXPECT_LT(r.output.size(), 500u) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("unknown op 'conv_9x9'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("|nor_conv_3x3~0|+|conv_9x9~0|"), std::string::npos) << r.output;
}

TEST_F(Cli, SyntaxErrorExitsWithOneAndNamesTheLine) {
  script("syntax.lua", "print('a')\nfor i = 1 do\n");
  auto r = hypernas({"run", "syntax.lua"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("syntax.lua:2:"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Segmentation"), std::string::npos);
}

TEST_F(Cli, MissingScriptIsAFailure) {
  auto r = hypernas({"run", "nowhere.lua"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nowhere.lua"), std::string::npos);
}

TEST_F(Cli, SetValuesReachTheScript) {
  script("args.lua", "print('n=' .. nas.arg('n', 1) * 2 .. ' s=' .. nas.args.s)\n");
  auto r = hypernas({"run", "args.lua", "--set", "n=21", "--set", "s=word"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("n=42 s=word"), std::string::npos) << r.output;
  // A value with commas stays one value.
  r = hypernas({"run", "args.lua", "--set", "s=a,b,c", "--set", "n=1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("n=2 s=a,b,c"), std::string::npos) << r.output;
  // So does a value that is itself a list of key=value pairs (ranking.lua's ghn_options).
  r = hypernas({"run", "args.lua", "--set", "s=k=v,x=y", "--set", "n=1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("n=2 s=k=v,x=y"), std::string::npos) << r.output;
}

TEST_F(Cli, CtrlCStopsCleanlyAndKeepsWhatWasRecorded) {
  // The callback logs 'ready' after 20 candidates, then slows the search down so the signal
  // lands mid-search; the test waits for the line, not for a time.
  script("long.lua",
         "local space = nas.space{ name = 'nb201' }\n"
         "local n = 0\n"
         "nas.on_candidate(function() n = n + 1; if n == 20 then nas.log('ready') end;"
         " if n >= 20 then local x = 0; for i = 1, 200000 do x = x + i end end end)\n"
         "nas.strategy('random', { candidates = 3000 }):run{ surrogate = nas.surrogate('params'), "
         "space = space }\n");
  Process p({HYPERNAS_EXE, "run", "long.lua", "--progress", "off"}, {{"HYPERNAS_PLUGIN_PATH", ""}},
            dir.string());
  ASSERT_TRUE(p.wait_for("ready"));
  p.signal(SIGINT);
  auto r = p.finish();
  EXPECT_EQ(r.exit_code, 130) << r.output;
  EXPECT_NE(r.output.find("interrupted"), std::string::npos) << r.output;
  auto store = hypernas::store::SqliteStore::open(dir / "results" / "long" / "experiment.db");
  EXPECT_EQ(store->runs().at(0).state, "cancelled");
  EXPECT_GE(store->count("evaluations"), 20);
  EXPECT_LT(store->count("evaluations"), 3000);
}

const char* kAll3x3 =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~"
    "2|";

TEST_F(Cli, ArchInfoMatchesNasBench201ParameterCount) {
  auto r = hypernas({"arch", "info", "--space", "nb201", kAll3x3});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("params  1531546"), std::string::npos) << r.output;
  auto j = hypernas({"arch", "info", "--space", "nb201", "--json", "--dot", "g.dot", kAll3x3});
  ASSERT_EQ(j.exit_code, 0) << j.output;
  auto json = nlohmann::json::parse(j.output);
  EXPECT_EQ(json["params"], 1531546);
  EXPECT_EQ(json["space"], "nb201");
  EXPECT_TRUE(fs::exists(dir / "g.dot"));
  // The JSON form reads back to the same architecture.
  std::ofstream(dir / "arch.json") << j.output;
  auto back = hypernas({"arch", "info", "--space", "nb201", "@arch.json"});
  EXPECT_EQ(back.exit_code, 0) << back.output;
  EXPECT_NE(back.output.find("params  1531546"), std::string::npos);
}

TEST_F(Cli, MalformedArchitectureIsOneClearFailure) {
  auto r = hypernas({"arch", "info", "--space", "nb201",
                     "|nor_conv_3x3~0|+|conv_9x9~0|none~1|+|none~0|none~1|none~2|"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown op 'conv_9x9'"), std::string::npos) << r.output;
  EXPECT_EQ(hypernas({"arch", "info", kAll3x3}).exit_code, 2);  // no --space
}

TEST_F(Cli, ScoreWritesACsvRowPerArchitecture) {
  std::ofstream(dir / "archs.txt")
      << kAll3x3 << "\n# skipped\n\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n";
  auto r = hypernas({"score", "--surrogate", "params", "--space", "nb201", "--archs", "archs.txt",
                     "--out", "scores.csv", "--progress-off-is-not-an-option"});
  EXPECT_EQ(r.exit_code, 2);  // unknown flag
  r = hypernas({"score", "--surrogate", "params", "--space", "nb201", "--archs", "archs.txt",
                "--out", "scores.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::stringstream csv;
  csv << std::ifstream(dir / "scores.csv").rdbuf();
  EXPECT_EQ(csv.str().substr(0, csv.str().find('\n')),
            "arch,score,params,flops,seconds,reused,status,error");
  EXPECT_NE(csv.str().find(std::string("\"") + kAll3x3 + "\",6.18513,1531546,220119680,"),
            std::string::npos)
      << csv.str();
  EXPECT_NE(csv.str().find(",73306,"), std::string::npos);
}

TEST_F(Cli, ScoreNamesTheBadLineOfTheList) {
  std::ofstream(dir / "archs.txt") << kAll3x3 << "\n|none~0|+|oops|\n";
  auto r = hypernas({"score", "--surrogate", "params", "--space", "nb201", "--archs", "archs.txt"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("archs.txt:2: nb201: cannot parse"), std::string::npos) << r.output;
}

TEST_F(Cli, ScoreWorksForTrainedAndDataDrivenSurrogates) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  // A tiny GHN, trained for 2 steps and saved as a checkpoint by a script.
  script(
      "fit.lua",
      "local data = nas.dataset{ name = 'fashion-mnist' }\n"
      "local space = nas.space{ name = 'nb201', cells_per_stage = 1, channels = 4, data = data }\n"
      "local ghn = nas.surrogate('ghn', { hidden = 18, hyper_hidden = 8, steps = 1 })\n"
      "ghn:fit{ space = space, data = data, steps = 2, batch = 16 }\n"
      "print('saved ' .. ghn:save('ghn.ckpt'))\n");
  auto fit = hypernas({"run", "fit.lua", "--threads", "1", "--progress", "off"});
  ASSERT_EQ(fit.exit_code, 0) << fit.output;
  std::ofstream(dir / "archs.txt")
      << kAll3x3 << "\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n";
  const std::vector<std::string> common{"--space",   "nb201",      "--set",    "cells_per_stage=1",
                                        "--set",     "channels=4", "--data",   "fashion-mnist",
                                        "--archs",   "archs.txt",  "--images", "64",
                                        "--threads", "1"};
  std::vector<std::string> ghn{"score",
                               "--surrogate",
                               "ghn",
                               "--option",
                               "hidden=18",
                               "--option",
                               "hyper_hidden=8",
                               "--option",
                               "steps=1",
                               "--checkpoint",
                               "results/fit/ghn.ckpt",
                               "--out",
                               "ghn.csv"};
  ghn.insert(ghn.end(), common.begin(), common.end());
  auto r = hypernas(ghn);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::stringstream csv;
  csv << std::ifstream(dir / "ghn.csv").rdbuf();
  const std::string rows = csv.str();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 3) << rows;
  // The same checkpoint refused by a GHN made with other options, naming the difference.
  ghn[4] = "hidden=19";
  r = hypernas(ghn);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("hidden=18 (here 19)"), std::string::npos) << r.output;
  std::vector<std::string> sgd{"score",   "--surrogate", "sgd",    "--option",
                               "steps=2", "--out",       "sgd.csv"};
  sgd.insert(sgd.end(), common.begin(), common.end());
  r = hypernas(sgd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::stringstream sgd_csv;
  sgd_csv << std::ifstream(dir / "sgd.csv").rdbuf();
  EXPECT_NE(sgd_csv.str().find(",4822,"), std::string::npos)
      << sgd_csv.str();  // all-none, C=4, N=1, 28x28x1
}

TEST_F(Cli, ScoreRecordsIntoTheExperimentAndReusesIt) {
  std::ofstream(dir / "archs.txt")
      << kAll3x3 << "\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n";
  const std::vector<std::string> args{"score",   "--surrogate", "params",       "--space", "nb201",
                                      "--archs", "archs.txt",   "--experiment", "ranked"};
  auto first = hypernas(args);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find(",0,ok,"), std::string::npos) << first.output;  // scored now
  auto second = hypernas(args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(second.output.find(",0,ok,"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find(",1,ok,"), std::string::npos) << second.output;  // reused
  auto store = hypernas::store::SqliteStore::open(dir / "results" / "ranked" / "experiment.db");
  EXPECT_EQ(store->count("evaluations"), 2);
  const auto runs = store->runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].state, "ok");
  EXPECT_EQ(runs[0].evaluations, 2);
  EXPECT_EQ(runs[1].evaluations, 0);  // the second run recorded nothing new

  auto listed = hypernas({"runs", "--experiment", "ranked"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("ranked"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("hypernas score --surrogate params"), std::string::npos)
      << listed.output;
  auto json = nlohmann::json::parse(hypernas({"runs", "--json"}).output);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["experiment"], "ranked");
  EXPECT_EQ(json[0]["state"], "ok");
  EXPECT_EQ(json[0]["evaluations"], 2);
  EXPECT_EQ(hypernas({"runs", "--experiment", "missing"}).exit_code, 1);
  EXPECT_EQ(hypernas({"runs", "--experiment", "../up"}).exit_code, 2);
}

TEST_F(Cli, AKilledRunIsShownInterruptedAndItsRerunScoresNothingTwice) {
  // Each candidate takes about 20 ms (the callback waits), so the search is still running when
  // the first 15 are recorded and the process is killed.
  script("slow.lua",
         "local space = nas.space{ name = 'nb201', cells_per_stage = 1 }\n"
         "local fresh = 0\n"
         "nas.on_candidate(function(event, v)\n"
         "  fresh = fresh + 1\n"
         "  if fresh % 5 == 0 then print('scored ' .. fresh) end\n"
         "  local t = nas.clock() while nas.clock() - t < 0.02 do end\n"
         "end)\n"
         "local top = nas.strategy('random', { candidates = 120, keep = 120 })\n"
         "  :run{ surrogate = nas.surrogate('params'), space = space }\n"
         "local reused = 0\n"
         "for _, c in ipairs(top) do if c.reused then reused = reused + 1 end end\n"
         "print(string.format('done %d candidates, %d reused, %d scored now', #top, reused, "
         "fresh))\n");
  {
    Process p({HYPERNAS_EXE, "run", "slow.lua", "--progress", "off"},
              {{"HYPERNAS_PLUGIN_PATH", ""}}, dir.string());
    ASSERT_TRUE(p.wait_for("scored 15"));
    p.signal(SIGKILL);
    EXPECT_EQ(p.finish().exit_code, 128 + SIGKILL);
  }
  auto listed = hypernas({"runs", "--experiment", "slow", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  auto runs = nlohmann::json::parse(listed.output);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["state"], "interrupted") << listed.output;
  const int kept = runs[0]["evaluations"];
  EXPECT_GE(kept, 15);
  EXPECT_LT(kept, 120);

  auto rerun = hypernas({"run", "slow.lua", "--progress", "off"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;
  const std::string done = "done 120 candidates, " + std::to_string(kept) + " reused, " +
                           std::to_string(120 - kept) + " scored now";
  EXPECT_NE(rerun.output.find(done), std::string::npos) << rerun.output;
  runs = nlohmann::json::parse(hypernas({"runs", "--experiment", "slow", "--json"}).output);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["state"], "interrupted");
  EXPECT_EQ(runs[1]["state"], "ok");
  EXPECT_EQ(runs[1]["evaluations"], 120 - kept);
  auto store = hypernas::store::SqliteStore::open(dir / "results" / "slow" / "experiment.db");
  EXPECT_EQ(store->count("evaluations"), 120);
}

TEST_F(Cli, RankingBenchmarkScoresCellsAgainstTheirPublishedAccuracy) {
  // Twelve NAS-Bench-201 cells of the dev pool with their 200-epoch CIFAR-10 accuracies.
  const fs::path dev =
      fs::path(HYPERNAS_SOURCE_DIR) / ".." / "shared" / "data" / "nb201" / "dev-1000.csv";
  if (!fs::exists(dev)) GTEST_SKIP() << dev << " is not here";
  std::ifstream in(dev);
  std::ofstream out(dir / "truth.csv");
  std::string line;
  for (int i = 0; i < 13 && std::getline(in, line); ++i) out << line << "\n";
  out.close();
  auto r = hypernas({"run",
                     (fs::path(HYPERNAS_SOURCE_DIR) / "scripts" / "bench" / "ranking.lua").string(),
                     "--set", "truth=truth.csv", "--set", "methods=params,flops", "--set",
                     "subset=10", "--progress", "off", "--experiment", "ranking"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::stringstream md;
  md << std::ifstream(dir / "results" / "ranking" / "ranking.md").rdbuf();
  EXPECT_NE(md.str().find("10 of its 12 cells"), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("| params | "), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("| flops | "), std::string::npos) << md.str();
  EXPECT_NE(md.str().find(" ["), std::string::npos) << md.str();  // intervals
  std::stringstream csv;
  csv << std::ifstream(dir / "results" / "ranking" / "ranking.csv").rdbuf();
  const std::string rows = csv.str();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 1 + 2 * 10) << rows;
}

TEST_F(Cli, AnytimeSearchScriptRunsAndARerunReusesEverything) {
  // scripts/anytime_search.lua at a toy size: GHN fit, anytime strategy, trainings of the
  // winner and both baselines, report and plots.
  const std::vector<std::string> args = {
      "run",          (fs::path(HYPERNAS_SOURCE_DIR) / "scripts" / "anytime_search.lua").string(),
      "--set",        "nodes=2,2",
      "--set",        "channels=4",
      "--set",        "exit_prob=0.5",
      "--set",        "fit_steps=3",
      "--set",        "candidates=4",
      "--set",        "keep=1",
      "--set",        "eval_images=64",
      "--set",        "train_steps=2",
      "--set",        "valid_images=64",
      "--set",        "test_images=128",
      "--set",        "random_baselines=1",
      "--progress",   "off",
      "--experiment", "anytime",
      "--threads",    "1"};
  auto r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("winner 1 trained: area"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chain trained: area"), std::string::npos) << r.output;
  const fs::path exp = dir / "results" / "anytime";
  std::stringstream md;
  md << std::ifstream(exp / "report.md").rdbuf();
  for (const char* part : {"# Anytime search", "## Winners", "## Baselines", "predicted area",
                           "winners_curves.png", "pareto_front.png", "trained_vs_baselines.png"})
    EXPECT_NE(md.str().find(part), std::string::npos) << part << "\n" << md.str();
  for (const char* png :
       {"winners_curves.png", "pareto_front.png", "trained_vs_baselines.png", "ghn_loss.png"})
    EXPECT_TRUE(fs::exists(exp / png)) << png;
  std::int64_t trainings = 0, evaluations = 0;
  {
    auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
    trainings = store->count("trainings");
    evaluations = store->count("evaluations");
    EXPECT_EQ(trainings, 3);  // the winner, one random network, the chain
    for (const auto& t : store->trainings()) {
      for (std::size_t k = 1; k < t.exits.size(); ++k) {
        EXPECT_GE(t.exits[k].flops, t.exits[k - 1].flops);
      }
    }
  }
  // The rerun loads nothing new: the scores and trainings are reused (the GHN is refitted, the
  // same way, so its key is the same).
  r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  EXPECT_EQ(store->count("trainings"), trainings);
  EXPECT_EQ(store->count("evaluations"), evaluations);
}

TEST_F(Cli, AdwpSearchScriptRunsAndARerunResumesAndReusesEverything) {
  // scripts/adwp_search.lua at a toy size on the shipped intensive space: Stage 1, the gradient
  // search with a cross-search epoch, the trainings of the winner and a random cell, the report,
  // the plots and the genotype files.
  const std::vector<std::string> args = {
      "run",          (fs::path(HYPERNAS_SOURCE_DIR) / "scripts" / "adwp_search.lua").string(),
      "--set",        "layers=3",
      "--set",        "channels=4",
      "--set",        "hidden=8",
      "--set",        "fit_steps=2",
      "--set",        "batch=16",
      "--set",        "epochs=3",
      "--set",        "steps=2",
      "--set",        "cross_start=1",
      "--set",        "cross_end=2",
      "--set",        "valid_images=32",
      "--set",        "eval_images=32",
      "--set",        "train_epochs=2",
      "--set",        "train_epoch_steps=2",
      "--set",        "train_valid_images=32",
      "--set",        "test_images=64",
      "--progress",   "off",
      "--experiment", "adwp",
      "--threads",    "1"};
  auto r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("derived after 3 epochs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("winner trained from scratch: test accuracy"), std::string::npos)
      << r.output;
  const fs::path exp = dir / "results" / "adwp";
  std::stringstream md;
  md << std::ifstream(exp / "report.md").rdbuf();
  for (const char* part : {"# ADWP search", "## Result", "## Search epochs", "| 2 | cross |",
                           "adwp-intensive.json", "alpha_heatmap.png", "genotype.json"})
    EXPECT_NE(md.str().find(part), std::string::npos) << part << "\n" << md.str();
  for (const char* file : {"stage1_loss.png", "alpha_heatmap.png", "search_accuracy.png",
                           "winner_curve.png", "genotype.json", "genotype.dot", "adwp.ckpt"})
    EXPECT_TRUE(fs::exists(exp / file)) << file;
  std::stringstream json;
  json << std::ifstream(exp / "genotype.json").rdbuf();
  EXPECT_NE(json.str().find("\"cells\": ["), std::string::npos) << json.str();
  EXPECT_NE(json.str().find("\"reduction\": true"), std::string::npos) << json.str();
  std::int64_t trainings = 0, epochs = 0;
  {
    auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
    trainings = store->count("trainings");
    epochs = store->count("search_epochs");
    EXPECT_EQ(trainings, 2);  // the winner and the random cell
    EXPECT_EQ(epochs, 3);
  }
  // The rerun fits the same surrogate, finds the search finished (it resumes at its end) and
  // reuses both trainings.
  r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming run gradient-"), std::string::npos) << r.output;
  auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  EXPECT_EQ(store->count("trainings"), trainings);
  EXPECT_EQ(store->count("search_epochs"), epochs);
}

TEST_F(Cli, SmashSearchScriptRunsAndARerunReusesEverything) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  // scripts/smash_search.lua at a toy size: the hypernetwork, the random candidates, the
  // perturbations and the chain, the trainings of the winner and a random network, the report
  // and its plots.
  const std::vector<std::string> args = {
      "run",          (fs::path(HYPERNAS_SOURCE_DIR) / "scripts" / "smash_search.lua").string(),
      "--set",        "N=4",
      "--set",        "N_max=8",
      "--set",        "width=1",
      "--set",        "depth_compression=2",
      "--set",        "min_layers=1",
      "--set",        "max_layers=2",
      "--set",        "hidden_layers=1,1,1",
      "--set",        "hidden_growth=4",
      "--set",        "fit_steps=2",
      "--set",        "batch=16",
      "--set",        "candidates=6",
      "--set",        "perturbations=3",
      "--set",        "chain=3",
      "--set",        "eval_images=32",
      "--set",        "train_epochs=1",
      "--set",        "train_epoch_steps=2",
      "--set",        "train_valid_images=32",
      "--set",        "test_images=64",
      "--progress",   "off",
      "--experiment", "smash",
      "--threads",    "1"};
  auto r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank score"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("winner trained from scratch: test accuracy"), std::string::npos)
      << r.output;
  const fs::path exp = dir / "results" / "smash";
  std::stringstream md;
  md << std::ifstream(exp / "report.md").rdbuf();
  for (const char* part : {"# SMASH search", "## Result", "## Top candidates", "| winner |",
                           "perturbation_trace.png", "score_vs_params.png"})
    EXPECT_NE(md.str().find(part), std::string::npos) << part << "\n" << md.str();
  for (const char* file : {"smash_loss.png", "score_vs_params.png", "perturbation_trace.png",
                           "winner_curve.png", "smash.ckpt"})
    EXPECT_TRUE(fs::exists(exp / file)) << file;
  std::int64_t trainings = 0, evaluations = 0;
  {
    auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
    trainings = store->count("trainings");
    evaluations = store->count("evaluations");
    EXPECT_EQ(trainings, 2);  // the winner and the random network
    EXPECT_GE(evaluations, 6);
    EXPECT_LE(evaluations, 12);  // 6 random, 3 perturbations, 3 chain steps, repeats reused
  }
  // The rerun fits the same hypernetwork (same seed, same state), so every score and both
  // trainings are reused.
  r = hypernas(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto store = hypernas::store::SqliteStore::open(exp / "experiment.db");
  EXPECT_EQ(store->count("trainings"), trainings);
  EXPECT_EQ(store->count("evaluations"), evaluations);
}

TEST_F(Cli, ScoreWithSmashOnSmashNb201AndDartsArchitectures) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  // One tiny SMASH hypernetwork per space, trained for 2 steps and saved by a script, then
  // `hypernas score --surrogate smash` on each space's architectures.
  script(
      "fit.lua",
      "local data = nas.dataset{ name = 'fashion-mnist' }\n"
      "local spaces = {\n"
      "  smash = nas.space{ name = 'smash', N = 4, N_max = 8, width = 1, depth_compression = 2,\n"
      "                     min_layers = 1, max_layers = 2, data = data },\n"
      "  nb201 = nas.space{ name = 'nb201', cells_per_stage = 1, channels = 4, data = data },\n"
      "  darts = nas.space{ name = 'darts', layers = 2, channels = 4, data = data } }\n"
      "for _, name in ipairs{ 'smash', 'nb201', 'darts' } do\n"
      "  local s = nas.surrogate('smash', { hidden_layers = '1,1,1', hidden_growth = 4 })\n"
      "  s:fit{ space = spaces[name], data = data, steps = 2, batch = 16 }\n"
      "  print('saved ' .. s:save(name .. '.ckpt'))\n"
      "  nas.write_file(name .. '.txt', table.concat(spaces[name]:sample(3), '\\n') .. '\\n')\n"
      "end\n");
  auto fit = hypernas({"run", "fit.lua", "--threads", "1", "--progress", "off"});
  ASSERT_EQ(fit.exit_code, 0) << fit.output;
  const std::map<std::string, std::vector<std::string>> sets{
      {"smash",
       {"N=4", "N_max=8", "width=1", "depth_compression=2", "min_layers=1", "max_layers=2"}},
      {"nb201", {"cells_per_stage=1", "channels=4"}},
      {"darts", {"layers=2", "channels=4"}}};
  auto score = [&](const std::string& space, const std::string& checkpoint) {
    std::vector<std::string> a{"score",
                               "--surrogate",
                               "smash",
                               "--option",
                               "hidden_layers=1,1,1",
                               "--option",
                               "hidden_growth=4",
                               "--checkpoint",
                               "results/fit/" + checkpoint + ".ckpt",
                               "--space",
                               space,
                               "--data",
                               "fashion-mnist",
                               "--archs",
                               "results/fit/" + space + ".txt",
                               "--images",
                               "32",
                               "--threads",
                               "1",
                               "--out",
                               space + ".csv"};
    for (const std::string& s : sets.at(space)) a.insert(a.end(), {"--set", s});
    return hypernas(a);
  };
  for (const char* space : {"smash", "nb201", "darts"}) {
    SCOPED_TRACE(space);
    auto r = score(space, space);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::stringstream csv;
    csv << std::ifstream(dir / (std::string(space) + ".csv")).rdbuf();
    const std::string rows = csv.str();
    EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 4) << rows;  // header + 3
    EXPECT_EQ(rows.find("failed"), std::string::npos) << rows;
  }
  // A hypernetwork trained on nb201 cannot score darts genotypes (its input is nb201's
  // encoding): every row fails with a reason that names both spaces, and the run says so.
  auto r = score("darts", "nb201");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 of 3 architectures could not be scored"), std::string::npos)
      << r.output;
  std::stringstream file;
  file << std::ifstream(dir / "darts.csv").rdbuf();
  const std::string rows = file.str();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 4) << rows;
  EXPECT_NE(rows.find(",failed,\"smash: this surrogate's model was built for space 'nb201'"),
            std::string::npos)
      << rows;
  EXPECT_NE(rows.find("but space 'darts' gives encoding"), std::string::npos) << rows;
}

}  // namespace
