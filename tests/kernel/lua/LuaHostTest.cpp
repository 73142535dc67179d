#include <gtest/gtest.h>

#include <lua.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

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
  fs::path script =
      write_script("bad_plugin.lua", "local a = 1\n\nlocal s = nas.surrogate('nope')\n");
  std::string err = error_of(script);
  EXPECT_NE(err.find("bad_plugin.lua:3: no surrogate plugin named 'nope'"), std::string::npos)
      << err;
  EXPECT_NE(err.find("stack traceback"), std::string::npos) << err;
  // The run is recorded as failed.
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  auto runs = store->runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "failed");
}

TEST_F(LuaHost, CppExceptionsBecomeCatchableLuaErrors) {
  EXPECT_EQ(eval("local ok, err = pcall(function() return nas.space{ name = 'nb201', channels = "
                 "'wide' } end)\n"
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
  fs::path script =
      write_script("loop.lua",
                   "nas.surrogate('params'):score{ space = nas.space{ name = 'nb201' },"
                   " archs = { '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' } }\n"
                   "while true do end\n");
  Host host(config);
  EXPECT_THROW(host.run_file(script), hypernas::Cancelled);
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  EXPECT_EQ(store->runs().at(0).state, "cancelled");
  EXPECT_EQ(store->count("evaluations"), 1);  // written before the stop, kept
}

// A script that would take all the machine's memory, 1 MB per step.
const char* kMemoryHog =
    "local t = {}\n"
    "for i = 1, 1e9 do\n"
    "  t[i] = string.rep('x', 1e6) .. i\n"
    "end\n";

TEST_F(LuaHost, MemoryLimitStopsARunawayScriptAtItsLine) {
  config.lua_memory_bytes = std::size_t{64} << 20;
  const std::string err = error_of(write_script("hog.lua", kMemoryHog));
  EXPECT_NE(err.find("hog.lua:3: Lua memory limit of 64 MiB exceeded (--lua-memory)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("stack traceback"), std::string::npos) << err;
  auto store = hypernas::store::SqliteStore::open(config.results_root / "exp" / "experiment.db");
  EXPECT_EQ(store->runs().at(0).state, "failed");
}

TEST_F(LuaHost, MemoryLimitRefusesOneHugeAllocationNamingTheScript) {
  config.lua_memory_bytes = std::size_t{64} << 20;
  // 1 GiB at once: past the hard cap, so the allocation itself is refused.
  const std::string err =
      error_of(write_script("huge.lua", "local s = string.rep('x', 1 << 30)\n"));
  EXPECT_NE(err.find("huge.lua: Lua memory limit of 64 MiB exceeded (--lua-memory)"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("not enough memory"), std::string::npos) << err;
}

TEST_F(LuaHost, MemoryLimitErrorIsCatchableAndTheStateRecovers) {
  config.lua_memory_bytes = std::size_t{64} << 20;
  Host host(config);
  try {
    host.run_string(kMemoryHog, "=hog");
    FAIL() << "the memory limit did not stop the script";
  } catch (const ScriptError& e) {
    EXPECT_NE(std::string(e.what()).find("hog:3: Lua memory limit of 64 MiB exceeded"),
              std::string::npos)
        << e.what();
  }
  // The table is garbage now: the same state runs the next chunk, and a script may catch the
  // error itself.
  host.run_string("local t = {} for i = 1, 100000 do t[i] = i end result = #t", "=after");
  lua_getglobal(host.state(), "result");
  EXPECT_EQ(lua_tointeger(host.state(), -1), 100000);
  lua_pop(host.state(), 1);
  host.run_string(
      "local ok, err = pcall(function() local t = {} for i = 1, 1e9 do "
      "t[i] = string.rep('x', 1e6) .. i end end) result = err",
      "=caught");
  lua_getglobal(host.state(), "result");
  const char* caught = lua_tostring(host.state(), -1);
  ASSERT_NE(caught, nullptr);
  EXPECT_NE(std::string(caught).find("caught:1: Lua memory limit of 64 MiB exceeded"),
            std::string::npos)
      << caught;
}

TEST_F(LuaHost, WriteFileStaysInsideTheExperiment) {
  EXPECT_EQ(eval("local p = nas.write_file('sub/out.txt', 'hello'); result = "
                 "p:match('sub/out.txt$') ~= nil"),
            "true");
  const fs::path written = config.results_root / "exp" / "sub" / "out.txt";
  ASSERT_TRUE(fs::is_regular_file(written)) << written;
  std::ifstream in(written, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
            "hello");
  EXPECT_EQ(eval("local ok, err = pcall(function() return nas.write_file('../escape.txt', 'x') "
                 "end); result = err"),
            "test:1: file name '../escape.txt' must not contain '..'");
  EXPECT_EQ(eval("local ok, err = pcall(nas.write_file, '/tmp/x', 'x'); result = tostring(ok)"),
            "false");
}

TEST_F(LuaHost, SpaceMethodsRoundTrip) {
  EXPECT_EQ(eval("local s = nas.space{ name = 'nb201' }\n"
                 "result = s:size() .. ' ' .. s:at(0) .. ' ' .. #s:sample(20) .. ' ' .. "
                 "s:stats('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_"
                 "conv_3x3~1|nor_conv_3x3~2|').params"),
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
  EXPECT_EQ(eval(
                "local p = nas.preset('nb201-small'); result = p.name .. ' ' .. p.cells_per_stage"),
            "nb201 1");
  EXPECT_EQ(eval("local ok, e = pcall(function() return nas.preset('no-such') end);"
                 " result = e:match(\"no preset named 'no%-such'\") ~= nil"),
            "true");
  EXPECT_EQ(
      eval(
          "local ok, e = pcall(function() return nas.preset('../etc') end); result = tostring(ok)"),
      "false");
}

TEST_F(LuaHost, PlotWritesIntoTheExperiment) {
  EXPECT_EQ(eval("local p = nas.plot{ file = 'f.png', series = { { x = {1, 2}, y = {3, 4} } } };"
                 " result = p:match('exp/f.png$') ~= nil"),
            "true");
  EXPECT_TRUE(fs::exists(config.results_root / "exp" / "f.png"));
}

TEST_F(LuaHost, RequestTablesRejectUnknownKeysListingTheKnownOnes) {
  const std::string prelude =
      "local space = nas.space{ name = 'nb201', cells_per_stage = 1 }\n"
      "local s = nas.surrogate('params')\n";
  EXPECT_EQ(eval(prelude + "local ok, err = pcall(function() return nas.strategy('random', "
                           "{ candidates = 3 }):run{ surrogate = s, space = space, eval_bacth = "
                           "100 } end); result = err"),
            "test:3: strategy:run{}: unknown key 'eval_bacth'; known keys: surrogate, space, data, "
            "eval_batch, eval_images, reuse, retry_failed, max_failures");
  EXPECT_EQ(eval(prelude + "local ok, err = pcall(function() return s:fit{ space = space, "
                           "epoch = 2 } end); result = err"),
            "test:3: surrogate:fit{}: unknown key 'epoch'; known keys: space, data, epochs, batch, "
            "steps");
  EXPECT_EQ(eval(prelude + "local ok, err = pcall(function() return s:score{ space = space, "
                           "archs = {}, image = 5 } end); result = err"),
            "test:3: surrogate:score{}: unknown key 'image'; known keys: space, data, archs, "
            "batch, images, reuse, retry_failed, max_failures");
  EXPECT_EQ(eval(prelude + "local ok, err = pcall(function() return s:key{ dat = 1 } end); "
                           "result = err"),
            "test:3: surrogate:key{}: unknown key 'dat'; known keys: data, batch, images");
}

TEST_F(LuaHost, EvaluationsOfAKeyAreExactlyTheScoresRecordedUnderIt) {
  // The example of docs/lua-api.md: score, then read the scores back by the surrogate's key.
  EXPECT_EQ(eval("local space = nas.space{ name = 'nb201', cells_per_stage = 1 }\n"
                 "local s = nas.surrogate('params')\n"
                 "local archs = space:sample(5)\n"
                 "local scores = s:score{ space = space, archs = archs }\n"
                 "local rows = nas.evaluations(s:key())\n"
                 "assert(#rows == 5 and rows[1].status == 'ok' and rows[1].score == scores[1])\n"
                 "assert(#nas.evaluations(nas.surrogate('flops'):key()) == 0)\n"
                 "local again = s:score{ space = space, archs = archs }\n"
                 "assert(again[3] == scores[3] and #nas.evaluations(s:key()) == 5)\n"
                 "result = s:key()"),
            "params{prefer=larger}");
  const fs::path fmnist = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!fs::exists(fmnist)) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  // With data, the key carries the dataset's identity and the settings the surrogate reads.
  const std::string key = eval(
      "local data = nas.dataset{ name = 'fashion-mnist', valid = 100 }\n"
      "local space = nas.space{ name = 'nb201', cells_per_stage = 1, channels = 4, data = data }\n"
      "local s = nas.surrogate('sgd', { steps = 1, batch = 8 })\n"
      "local archs = space:sample(2)\n"
      "s:score{ space = space, data = data, archs = archs, images = 32, batch = 32 }\n"
      "assert(#nas.evaluations(s:key{ data = data, images = 32, batch = 32 }) == 2)\n"
      "assert(#nas.evaluations(s:key{ data = data }) == 0)\n"
      "result = s:key{ data = data, images = 32, batch = 32 }");
  EXPECT_EQ(key.rfind("sgd{augment=false,batch=8,", 0), 0u) << key;
  EXPECT_NE(key.find("}@fashion-mnist{valid=100,split_seed=0,normalize=1,mean="), std::string::npos)
      << key;
  EXPECT_NE(key.find(",train=60000,test=10000}[batch=32,images=32,seed=7]"), std::string::npos)
      << key;
}

TEST_F(LuaHost, ScoreReturnsNaNAndTheFailuresForArchitecturesThatFail) {
  registry.scan({fs::path(HYPERNAS_TEST_FIXTURE_DIR) / "eval"});
  EXPECT_EQ(
      eval("local space = nas.space{ name = 'nb201', cells_per_stage = 1 }\n"
           "local s = nas.surrogate('flaky')\n"
           "local scores, failed = s:score{ space = space, archs = {\n"
           "  '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|',\n"
           "  '|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|',\n"
           "  '|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|' } }\n"
           "assert(scores[1] ~= scores[1] and scores[2] == scores[2] and scores[3] ~= scores[3])\n"
           "assert(#failed == 2)\n"
           "local rows = nas.evaluations(s:key(), { status = 'failed' })\n"
           "assert(#rows == 2 and rows[1].status == 'failed')\n"
           "assert(#nas.evaluations(s:key(), { status = 'all' }) == 3)\n"
           "result = failed[2].reason"),
      "flaky: cannot score a cell that starts with a pool");
}

TEST_F(LuaHost, ReadCsvGivesRowsByHeaderAndNamesTheBadLine) {
  const fs::path good = write_script(
      "truth.csv",
      "arch,cifar10_test,note\n"
      "\"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\",93.5,\"a, \"\"b\"\"\"\n"
      "\n"
      "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10,plain\n");
  EXPECT_EQ(eval("local rows = nas.read_csv('" + good.string() +
                 "')\n"
                 "assert(#rows == 2 and rows[1].cifar10_test == 93.5 and rows[2].note == 'plain')\n"
                 "result = rows[1].note .. ' ' .. rows[1].arch:sub(1, 16)"),
            "a, \"b\" |nor_conv_3x3~0|");
  const fs::path bad = write_script("bad.csv", "arch,acc\nx,1\ny,2,3\n");
  EXPECT_EQ(eval("local ok, err = pcall(nas.read_csv, '" + bad.string() + "'); result = err"),
            bad.string() + ":3: expected 2 fields (2 columns in the header), got 3");
  EXPECT_NE(eval("local ok, err = pcall(nas.read_csv, '" + (root / "none.csv").string() +
                 "'); result = err")
                .find("nas.read_csv: cannot read"),
            std::string::npos);
}

TEST_F(LuaHost, MetricsBootstrapReturnsTheValueAndItsInterval) {
  EXPECT_EQ(
      eval(
          "local x, y = {}, {}\n"
          "for i = 1, 40 do x[i] = i; y[i] = i + ((i * 7) % 5) end\n"
          "local v, lo, hi = nas.metrics.bootstrap('spearman', x, y, { samples = 200, seed = 3 })\n"
          "assert(v == nas.metrics.spearman(x, y) and lo < v and v <= hi and hi <= 1)\n"
          "local v2, lo2 = nas.metrics.bootstrap('spearman', x, y, { samples = 200, seed = 3 })\n"
          "result = tostring(lo2 == lo)"),
      "true");
  EXPECT_NE(eval("local ok, err = pcall(nas.metrics.bootstrap, 'spearman', {1, 2, 3}, {1, 2, 3}, "
                 "{ sample = 5 }); result = err")
                .find("unknown key 'sample'"),
            std::string::npos);
}

}  // namespace
