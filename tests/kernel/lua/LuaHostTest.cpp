#include <gtest/gtest.h>

#include <lua.hpp>

#include <filesystem>
#include <fstream>

#include "kernel/core/cancel.h"
#include "kernel/lua/host.h"
#include "kernel/plugin/registry.h"
#include "kernel/store/store.h"

namespace fs = std::filesystem;
using hypernas::lua::Host;
using hypernas::lua::HostConfig;
using hypernas::lua::ScriptError;

namespace {

class LuaHost : public ::testing::Test {
 protected:
  void SetUp() override {
    hypernas::core::reset_cancel();
    root = fs::temp_directory_path() /
           ("hypernas_lua_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    fs::create_directories(root);
    registry.scan({fs::path(HYPERNAS_BINARY_DIR) / "plugins", HYPERNAS_TEST_FIXTURE_DIR});
    config.registry = &registry;
    config.results_root = root / "results";
    config.experiment = "exp";
    config.seed = 7;
  }
  void TearDown() override {
    hypernas::core::reset_cancel();
    fs::remove_all(root);
  }
  fs::path write_script(const std::string& name, const std::string& code) {
    fs::path p = root / name;
    std::ofstream(p) << code;
    return p;
  }
  // Runs `code` and returns the global `result` as a string.
  std::string eval(const std::string& code) {
    Host host(config);
    host.run_string(code + "\n", "=test");
    lua_getglobal(host.state(), "result");
    std::string out = luaL_tolstring(host.state(), -1, nullptr);
    return out;
  }
  std::string error_of(const fs::path& script) {
    Host host(config);
    try {
      host.run_file(script);
    } catch (const ScriptError& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path root;
  hypernas::plugin::Registry registry;
  HostConfig config;
};

TEST_F(LuaHost, SandboxOpensOnlyTheSafeLibraries) {
  EXPECT_EQ(eval("result = tostring(io) .. tostring(os) .. tostring(package) .. tostring(require)"
                 " .. tostring(dofile) .. tostring(loadfile) .. tostring(debug)"),
            "nilnilnilnilnilnilnil");
  EXPECT_EQ(eval("result = type(string.format) .. type(table.sort) .. type(math.sqrt) .."
                 " type(utf8.char) .. type(coroutine.wrap)"),
            "functionfunctionfunctionfunctionfunction");
  EXPECT_EQ(eval("result = tostring(string.dump)"), "nil");
}

TEST_F(LuaHost, LoadAcceptsTextButRefusesBytecode) {
  EXPECT_EQ(eval("result = load('return 1 + 2')()"), "3");
  EXPECT_EQ(eval("local f, err = load('\\27Lua\\84\\0'); result = err"),
            "attempt to load a binary chunk (mode is 't')");
}

TEST_F(LuaHost, SyntaxErrorNamesFileAndLineAndCreatesNoExperiment) {
  fs::path script = write_script("broken.lua", "local x = 1\nlocal y = = 2\n");
  std::string err = error_of(script);
  EXPECT_NE(err.find("broken.lua:2:"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(config.results_root / "exp"));
}

TEST_F(LuaHost, BindingErrorsCarryScriptLineAndTraceback) {
  fs::path script = write_script("bad_plugin.lua", "local a = 1\n\nlocal s = nas.surrogate('nope')\n");
  std::string err = error_of(script);
  EXPECT_NE(err.find("bad_plugin.lua:3: no surrogate plugin named 'nope'"), std::string::npos) << err;
  EXPECT_NE(err.find("stack traceback"), std::string::npos) << err;
  // The run is recorded as failed.
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  auto runs = store->runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "failed");
}

TEST_F(LuaHost, CppExceptionsBecomeCatchableLuaErrors) {
  EXPECT_EQ(eval("local ok, err = pcall(function() return nas.space{ name = 'nb201', channels = 'wide' } end)\n"
                 "result = tostring(ok) .. ' ' .. err"),
            "false test:1: space 'nb201': option 'channels' expects int, got 'wide'");
}

TEST_F(LuaHost, ArgsAreTypedAndArgConvertsToTheDefaultsType) {
  config.args = {{"n", "12"}, {"lr", "0.5"}, {"flag", "true"}, {"name", "abc"}};
  EXPECT_EQ(eval("result = math.type(nas.args.n) .. math.type(nas.args.lr) .. type(nas.args.flag)"
                 " .. nas.args.name"),
            "integerfloatbooleanabc");
  EXPECT_EQ(eval("result = nas.arg('n', 1) + nas.arg('missing', 100)"), "112");
  EXPECT_EQ(eval("local ok, err = pcall(function() return nas.arg('name', 3) end); result = err"),
            "test:1: --set name=abc: expected an integer");
}

TEST_F(LuaHost, RandomSearchRecordsEveryCandidateAndResumes) {
  const std::string code =
      "local space = nas.space{ name = 'nb201' }\n"
      "local top = nas.strategy('random', { candidates = 30, keep = 3 })"
      ":run{ surrogate = nas.surrogate('params'), space = space }\n"
      "result = #top .. ' ' .. tostring(top[1].reused) .. ' ' .. math.type(top[1].params)"
      " .. ' ' .. tostring(top[1].score >= top[2].score)\n";
  EXPECT_EQ(eval(code), "3 false integer true");
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  EXPECT_EQ(store->count("evaluations"), 30);
  // The same experiment again: every score comes from the store.
  EXPECT_EQ(eval(code), "3 true integer true");
  EXPECT_EQ(store->count("evaluations"), 30);
}

TEST_F(LuaHost, CallbackCanStopASearchEarly) {
  EXPECT_EQ(eval("local seen = 0\n"
                 "nas.on_candidate(function(event, v) seen = seen + 1; return seen < 5 end)\n"
                 "local top = nas.strategy('random', { candidates = 100, keep = 50 })"
                 ":run{ surrogate = nas.surrogate('flops'), space = nas.space{ name = 'nb201' } }\n"
                 "result = seen .. ' ' .. #top"),
            "5 5");
}

TEST_F(LuaHost, TimeLimitStopsARunawayScriptAndKeepsTheRun) {
  config.time_limit_s = 0.05;
  fs::path script = write_script("loop.lua",
                                 "nas.surrogate('params'):score{ space = nas.space{ name = 'nb201' },"
                                 " archs = { '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' } }\n"
                                 "while true do end\n");
  Host host(config);
  EXPECT_THROW(host.run_file(script), hypernas::Cancelled);
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  EXPECT_EQ(store->runs().at(0).state, "cancelled");
  EXPECT_EQ(store->count("evaluations"), 1);  // written before the stop, kept
}

TEST_F(LuaHost, WriteFileStaysInsideTheExperiment) {
  EXPECT_EQ(eval("local p = nas.write_file('sub/out.txt', 'hello'); result = p:match('sub/out.txt$') ~= nil"),
            "true");
  EXPECT_EQ(std::ifstream(config.results_root / "exp" / "sub" / "out.txt").rdbuf() != nullptr, true);
  EXPECT_EQ(eval("local ok, err = pcall(function() return nas.write_file('../escape.txt', 'x') end); result = err"),
            "test:1: file name '../escape.txt' must not contain '..'");
  EXPECT_EQ(eval("local ok, err = pcall(nas.write_file, '/tmp/x', 'x'); result = tostring(ok)"),
            "false");
}

TEST_F(LuaHost, SpaceMethodsRoundTrip) {
  EXPECT_EQ(eval("local s = nas.space{ name = 'nb201' }\n"
                 "result = s:size() .. ' ' .. s:at(0) .. ' ' .. #s:sample(20) .. ' ' .. s:stats('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|').params"),
            "15625 |none~0|+|none~0|none~1|+|none~0|none~1|none~2| 20 1531546");
}

TEST_F(LuaHost, ThirdPartyFixturePluginRunsFromLua) {
  EXPECT_EQ(eval("local s = nas.surrogate('fixture_nodes', { weight = 0.5 })\n"
                 "local sc = s:score{ space = nas.space{ name = 'nb201' },"
                 " archs = { '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' } }\n"
                 "result = sc[1] > 0 and s:key()"),
            "fixture_nodes{fail=false,weight=0.5}");
}

TEST_F(LuaHost, PresetsAreTablesFromConfigs) {
  EXPECT_EQ(eval("local p = nas.preset('nb201-small'); result = p.name .. ' ' .. p.cells_per_stage"),
            "nb201 1");
  EXPECT_EQ(eval("local ok, e = pcall(function() return nas.preset('no-such') end);"
                 " result = e:match(\"no preset named 'no%-such'\") ~= nil"),
            "true");
  EXPECT_EQ(eval("local ok, e = pcall(function() return nas.preset('../etc') end); result = tostring(ok)"),
            "false");
}

TEST_F(LuaHost, PlotWritesIntoTheExperiment) {
  EXPECT_EQ(eval("local p = nas.plot{ file = 'f.png', series = { { x = {1, 2}, y = {3, 4} } } };"
                 " result = p:match('exp/f.png$') ~= nil"),
            "true");
  EXPECT_TRUE(fs::exists(config.results_root / "exp" / "f.png"));
}

}  // namespace
