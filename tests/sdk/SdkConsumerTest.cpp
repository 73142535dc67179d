// The whole path of a plugin author: install the SDK, build a plugin out of tree with
// find_package(HyperNAS), load it by name from Lua through HYPERNAS_PLUGIN_PATH, run it.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include <hypernas/abi.h>

#include "tests/support/process.h"

namespace fs = std::filesystem;
using hypernas::test::run;

TEST(SdkConsumer, OutOfTreePluginBuildsLoadsAndRuns) {
  const fs::path work = fs::temp_directory_path() / ("hypernas_sdk_" + std::to_string(::getpid()));
  fs::remove_all(work);
  const fs::path prefix = work / "prefix", build = work / "build";

  auto install =
      run({HYPERNAS_CMAKE, "--install", HYPERNAS_BINARY_DIR, "--prefix", prefix.string()});
  ASSERT_EQ(install.exit_code, 0) << install.output;
  ASSERT_TRUE(fs::exists(prefix / "include" / "hypernas" / "surrogate.h"));
  ASSERT_TRUE(fs::exists(prefix / "bin" / "hypernas"));

  const std::string source = std::string(HYPERNAS_SOURCE_DIR) + "/tests/sdk_consumer";
  auto configure = run({HYPERNAS_CMAKE, "-S", source, "-B", build.string(),
                        "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_PREFIX_PATH=" + prefix.string()});
  ASSERT_EQ(configure.exit_code, 0) << configure.output;
  auto compile = run({HYPERNAS_CMAKE, "--build", build.string()});
  ASSERT_EQ(compile.exit_code, 0) << compile.output;
  for (const char* lib :
       {"libhypernas_depth.so", "libhypernas_naswot_example.so",
        "libhypernas_exhaustive_example.so", "libhypernas_penalised_example.so",
        "libhypernas_exit_depth.so", "libhypernas_relaxed_scale.so", "libhypernas_gated_chain.so"})
    ASSERT_TRUE(fs::exists(build / lib)) << lib;

  const std::map<std::string, std::string> env{{"HYPERNAS_PLUGIN_PATH", build.string()}};
  const std::string exe = (prefix / "bin" / "hypernas").string();
  auto listed = run({exe, "plugins", "--json"}, env);
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  auto j = nlohmann::json::parse(listed.output);
  bool found = false;
  for (const auto& p : j["plugins"])
    if (p["name"] == "depth") {
      found = true;
      EXPECT_EQ(p["version"], "1.2.0");
      EXPECT_EQ(p["kind"], "surrogate");
      EXPECT_EQ(p["build_id"], hypernas::build_id());
    }
  EXPECT_TRUE(found) << listed.output;
  for (const char* name : {"naswot_example", "exhaustive_example", "penalised_example"}) {
    bool listed_too = false;
    for (const auto& p : j["plugins"]) listed_too = listed_too || p["name"] == name;
    EXPECT_TRUE(listed_too) << name << "\n" << listed.output;
  }
  EXPECT_TRUE(j["refused"].empty()) << listed.output;
  // ABI 1.3 out of tree: the multi-exit surrogate was built with this minor, and the installed
  // built-ins it runs with are there (the `anytime` space only once it is built).
  bool exit_depth = false, anytime_strategy = false, anytime_space = false;
  bool relaxed_scale = false, gradient = false;  // ABI 1.4
  for (const auto& p : j["plugins"]) {
    if (p["name"] == "relaxed_scale" && p["kind"] == "surrogate") {
      relaxed_scale = true;
      EXPECT_EQ(p["abi"], "1." + std::to_string(HYPERNAS_ABI_MINOR)) << listed.output;
    }
    gradient = gradient || (p["name"] == "gradient" && p["kind"] == "strategy");
    if (p["name"] == "exit_depth" && p["kind"] == "surrogate") {
      exit_depth = true;
      EXPECT_EQ(p["abi"], "1." + std::to_string(HYPERNAS_ABI_MINOR)) << listed.output;
    }
    anytime_strategy = anytime_strategy || (p["name"] == "anytime" && p["kind"] == "strategy");
    anytime_space = anytime_space || (p["name"] == "anytime" && p["kind"] == "space");
  }
  EXPECT_TRUE(exit_depth) << listed.output;
  EXPECT_TRUE(anytime_strategy) << listed.output;
  EXPECT_TRUE(relaxed_scale) << listed.output;
  EXPECT_TRUE(gradient) << listed.output;
  // The installed binary finds the installed built-in plugins (nb201, random) by itself.
  auto searched = run({exe, "run", source + "/search.lua", "--results", (work / "results").string(),
                       "--progress", "off"},
                      env);
  ASSERT_EQ(searched.exit_code, 0) << searched.output;
  EXPECT_NE(searched.output.find("top1 |"), std::string::npos) << searched.output;
  EXPECT_NE(searched.output.find("depth="), std::string::npos) << searched.output;
  // NASWOT read the ReLU outputs through the SDK: every score counts some units.
  EXPECT_NE(searched.output.find("naswot1 |"), std::string::npos) << searched.output;
  EXPECT_EQ(searched.output.find("units=0"), std::string::npos) << searched.output;
  // The third-party strategy scored through the evaluation service; a score-neutral option
  // left the key alone, so the second search reused every score.
  EXPECT_NE(searched.output.find("exhaustive |"), std::string::npos) << searched.output;
  EXPECT_NE(searched.output.find("reused true"), std::string::npos) << searched.output;
  // The surrogate built from another by name (ABI 1.2) scored through its inner `depth`.
  EXPECT_NE(searched.output.find("penalised 3 scores, below depth: true"), std::string::npos)
      << searched.output;
  // The out-of-tree multi-exit surrogate drove the built-in `anytime` strategy, whose ranking
  // the script rechecked in full (areas, order, flags, front), on the anytime space when the
  // install has it, else on NB201.
  const std::string anytime_line =
      std::string("anytime on ") + (anytime_space ? "anytime" : "nb201") + ": 16 checked";
  EXPECT_NE(searched.output.find(anytime_line), std::string::npos) << searched.output;
  // The out-of-tree differentiable surrogate drove the built-in `gradient` strategy (ABI 1.4):
  // two epochs recorded, the second a cross-search, the final candidate the last epoch's cell.
  EXPECT_NE(searched.output.find("gradient |"), std::string::npos) << searched.output;
  EXPECT_NE(searched.output.find("after 2 epochs"), std::string::npos) << searched.output;
  // An out-of-tree space with SMASH's primitives and mutate() (ABI 1.5) drove the built-in
  // `perturb` strategy: 3 perturbations and 3 chain steps reported.
  EXPECT_NE(searched.output.find("perturb "), std::string::npos) << searched.output;
  EXPECT_NE(searched.output.find("after 6 steps"), std::string::npos) << searched.output;
  fs::remove_all(work);
}
