// Tests of kernel/store: the SQLite results store.

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <hypernas/error.h>

#include "kernel/graph/serialize.h"
#include "kernel/store/store.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;

namespace hypernas::store {
namespace {

/// A fresh folder under the system temp folder, removed with everything in it afterwards.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("hypernas_store_test_" + std::to_string(::getpid()) + "_" + info->name() + "_" +
            std::to_string(counter++) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path db() const { return dir_ / "sub" / "results.db"; }
  fs::path dir_;
};

Architecture arch(std::int64_t channels = 8, const std::string& text = "a") {
  Architecture a;
  a.space = "test";
  a.text = text;
  OpNode in;
  in.name = "in";
  in.op = "input";
  in.c_out = 3;
  OpNode conv;
  conv.name = "conv";
  conv.op = "conv";
  conv.c_in = 3;
  conv.c_out = channels;
  conv.kernel = 3;
  boost::add_vertex(in, a.graph);
  boost::add_vertex(conv, a.graph);
  boost::add_edge(0, 1, a.graph);
  return a;
}

/// Runs one scalar query on a separate raw SQLite connection.
std::string raw_query(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

using hypernas::test::error_of;

TEST_F(StoreTest, CreatesSchemaInWalMode) {
  auto store = SqliteStore::open(db());
  EXPECT_TRUE(fs::exists(db()));
  EXPECT_EQ(store->path(), db());
  EXPECT_EQ(raw_query(db(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw_query(db(), "PRAGMA user_version"), std::to_string(kSchemaVersion));
  for (const char* table :
       {"runs", "architectures", "evaluations", "trainings", "plugin_state", "search_epochs"}) {
    EXPECT_EQ(raw_query(db(), std::string("SELECT count(*) FROM sqlite_master WHERE type = "
                                          "'table' AND name = '") +
                                  table + "'"),
              "1")
        << table;
    EXPECT_EQ(store->count(table), 0) << table;
  }
  EXPECT_EQ(raw_query(db(),
                      "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
                      "'evaluations_arch_surrogate' AND sql LIKE '%UNIQUE%'"),
            "1");
  EXPECT_THROW(store->count("sqlite_master"), UsageError);
  EXPECT_THROW(store->count("runs; DROP TABLE runs"), UsageError);
}

TEST_F(StoreTest, ReopeningKeepsTheSchema) {
  SqliteStore::open(db());
  auto store = SqliteStore::open(db());
  EXPECT_EQ(store->count("runs"), 0);
}

TEST_F(StoreTest, RecordsArchitecturesOnce) {
  auto store = SqliteStore::open(db());
  const Architecture a = arch();
  const std::string h = store->record_architecture(a);
  EXPECT_EQ(h, graph::arch_hash(a));
  EXPECT_EQ(store->hash(a), h);
  EXPECT_EQ(store->record_architecture(a), h);
  EXPECT_EQ(store->count("architectures"), 1);
  EXPECT_EQ(raw_query(db(), "SELECT json FROM architectures"), graph::canonical_json(a));
  store->record_architecture(arch(16, "b"));
  EXPECT_EQ(store->count("architectures"), 2);
}

TEST_F(StoreTest, RefusesAnInvalidArchitecture) {
  auto store = SqliteStore::open(db());
  Architecture a = arch();
  a.graph[1].op = "bogus";
  EXPECT_THROW(store->record_architecture(a), Error);
  EXPECT_EQ(store->count("architectures"), 0);
}

TEST_F(StoreTest, EvaluationRoundTrip) {
  auto store = SqliteStore::open(db());
  const std::string h = store->record_architecture(arch());
  EXPECT_FALSE(store->find_evaluation(h, "ghn").has_value());

  Evaluation e;
  e.arch_hash = h;
  e.surrogate = "ghn{hidden=32}";
  e.score = 0.625;
  e.seconds = 0.08;
  e.extra = {{"acc_exit0", 0.5},
             {"flops", 1.5e6},
             {"nan", std::nan("")},
             {"inf", std::numeric_limits<double>::infinity()}};
  store->record_evaluation(e);

  const auto found = store->find_evaluation(h, "ghn{hidden=32}");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->arch_hash, h);
  EXPECT_EQ(found->surrogate, "ghn{hidden=32}");
  EXPECT_DOUBLE_EQ(found->score, 0.625);
  EXPECT_DOUBLE_EQ(found->seconds, 0.08);
  ASSERT_EQ(found->extra.size(), 4u);
  EXPECT_DOUBLE_EQ(found->extra.at("acc_exit0"), 0.5);
  EXPECT_DOUBLE_EQ(found->extra.at("flops"), 1.5e6);
  EXPECT_TRUE(std::isnan(found->extra.at("nan")));
  EXPECT_EQ(found->extra.at("inf"), std::numeric_limits<double>::infinity());
  EXPECT_FALSE(store->find_evaluation(h, "smash").has_value());

  const auto rows = store->evaluations();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].arch_hash, h);
  EXPECT_EQ(rows[0].text, "a");
  EXPECT_EQ(rows[0].space, "test");
  EXPECT_DOUBLE_EQ(rows[0].score, 0.625);
  EXPECT_EQ(rows[0].extra.size(), 4u);
  EXPECT_FALSE(rows[0].run_id.has_value());
  EXPECT_EQ(rows[0].created_at.size(), 24u);  // 2024-05-01T12:34:56.789Z
  EXPECT_EQ(rows[0].created_at.back(), 'Z');
}

TEST_F(StoreTest, NanScoreIsKept) {
  auto store = SqliteStore::open(db());
  Evaluation e;
  e.arch_hash = store->record_architecture(arch());
  e.surrogate = "s";
  e.score = std::nan("");
  store->record_evaluation(e);
  const auto found = store->find_evaluation(e.arch_hash, "s");
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(std::isnan(found->score));
}

TEST_F(StoreTest, RerecordingReplaces) {
  auto store = SqliteStore::open(db());
  Evaluation e;
  e.arch_hash = store->record_architecture(arch());
  e.surrogate = "ghn";
  e.score = 0.1;
  e.extra = {{"a", 1}};
  store->record_evaluation(e);
  e.score = 0.9;
  e.extra = {{"b", 2}};
  store->record_evaluation(e);
  EXPECT_EQ(store->count("evaluations"), 1);
  const auto found = store->find_evaluation(e.arch_hash, "ghn");
  ASSERT_TRUE(found.has_value());
  EXPECT_DOUBLE_EQ(found->score, 0.9);
  EXPECT_EQ(found->extra, (std::map<std::string, double>{{"b", 2}}));

  e.surrogate = "smash";
  store->record_evaluation(e);
  EXPECT_EQ(store->count("evaluations"), 2);
  EXPECT_EQ(store->evaluations("smash").size(), 1u);
  EXPECT_EQ(store->evaluations("ghn").size(), 1u);
  EXPECT_EQ(store->evaluations("none").size(), 0u);
  EXPECT_EQ(store->evaluations().size(), 2u);
}

TEST_F(StoreTest, EvaluationOfUnknownArchitectureIsAnError) {
  auto store = SqliteStore::open(db());
  Evaluation e;
  e.arch_hash = "0123456789abcdef";
  e.surrogate = "ghn";
  const std::string msg = error_of([&] { store->record_evaluation(e); });
  EXPECT_NE(msg.find("0123456789abcdef"), std::string::npos) << msg;
  EXPECT_NE(msg.find("record_architecture"), std::string::npos) << msg;
  EXPECT_EQ(store->count("evaluations"), 0);
}

TEST_F(StoreTest, CommittedRowsAreVisibleToASecondConnectionAndAfterReopening) {
  std::string h;
  {
    auto first = SqliteStore::open(db());
    const auto run = first->begin_run({"exp", "search.lua", "{}", 7, "{}"});
    h = first->record_architecture(arch());
    Evaluation e;
    e.arch_hash = h;
    e.surrogate = "ghn";
    e.score = 0.5;
    first->record_evaluation(e);
    first->save_state("ghn", "weights", "abc");

    // A killed run never reaches end_run or the destructor: what is committed must already be
    // visible to anyone else opening the file.
    auto second = SqliteStore::open(db());
    EXPECT_EQ(second->count("evaluations"), 1);
    ASSERT_TRUE(second->find_evaluation(h, "ghn").has_value());
    EXPECT_EQ(second->load_state("ghn", "weights"), "abc");
    const auto runs = second->runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].id, run);
    EXPECT_EQ(runs[0].state, "running");
    EXPECT_EQ(raw_query(db(), "SELECT score FROM evaluations"), "0.5");

    // And the second one can write while the first is open.
    Evaluation e2 = e;
    e2.surrogate = "smash";
    second->record_evaluation(e2);
    EXPECT_EQ(first->count("evaluations"), 2);
  }
  auto reopened = SqliteStore::open(db());
  EXPECT_EQ(reopened->count("evaluations"), 2);
  const auto found = reopened->find_evaluation(h, "ghn");
  ASSERT_TRUE(found.has_value());
  EXPECT_DOUBLE_EQ(found->score, 0.5);
  EXPECT_EQ(reopened->load_state("ghn", "weights"), "abc");
}

TEST_F(StoreTest, StateBlobsAreBinarySafe) {
  auto store = SqliteStore::open(db());
  std::string blob("a\0b\0\0c", 6);
  for (int i = 0; i < 256; ++i) blob += static_cast<char>(i);
  store->save_state("ghn", "weights", blob);
  const auto loaded = store->load_state("ghn", "weights");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->size(), blob.size());
  EXPECT_EQ(*loaded, blob);

  EXPECT_FALSE(store->load_state("ghn", "other").has_value());
  EXPECT_FALSE(store->load_state("smash", "weights").has_value());

  store->save_state("ghn", "weights", "new");
  EXPECT_EQ(store->load_state("ghn", "weights"), "new");
  EXPECT_EQ(store->count("plugin_state"), 1);

  store->save_state("ghn", "empty", "");
  const auto empty = store->load_state("ghn", "empty");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(*empty, "");
  EXPECT_EQ(raw_query(db(), "SELECT typeof(blob) FROM plugin_state WHERE key = 'empty'"), "blob");

  store.reset();
  EXPECT_EQ(SqliteStore::open(db())->load_state("ghn", "weights"), "new");
}

TEST_F(StoreTest, RefusesANewerSchemaVersion) {
  SqliteStore::open(db());
  raw_query(db(), "PRAGMA user_version = 7");
  const std::string msg = error_of([&] { SqliteStore::open(db()); });
  EXPECT_NE(msg.find(db().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("7"), std::string::npos) << msg;
  EXPECT_NE(msg.find(hypernas::cat("version ", kSchemaVersion)), std::string::npos) << msg;
  EXPECT_EQ(raw_query(db(), "PRAGMA user_version"), "7");  // left as it was
}

TEST_F(StoreTest, ParentIsARegularFile) {
  fs::create_directories(dir_);
  const fs::path file = dir_ / "plain";
  std::ofstream(file) << "not a folder";
  const fs::path bad = file / "results.db";
  const std::string msg = error_of([&] { SqliteStore::open(bad); });
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
}

TEST_F(StoreTest, NotADatabase) {
  fs::create_directories(dir_);
  const fs::path file = dir_ / "junk.db";
  std::ofstream(file) << std::string(4096, 'x');
  const std::string msg = error_of([&] { SqliteStore::open(file); });
  EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a database"), std::string::npos) << msg;
}

TEST_F(StoreTest, TrainingCurvesRoundTrip) {
  auto store = SqliteStore::open(db());
  const auto run = store->begin_run({"exp", "train.lua", "{}", 1, "{}"});
  TrainingRecord t;
  t.arch_hash = store->record_architecture(arch());
  t.recipe = "epochs=3,lr=0.1";
  t.train_loss = {2.3, 1.1, 0.7};
  t.valid_accuracy = {0.3, 0.6, std::nan("")};
  t.test_accuracy = 0.71;
  t.seconds = 12.5;
  store->record_training(t);
  const auto rows = store->trainings();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].run_id, run);
  EXPECT_EQ(rows[0].record.arch_hash, t.arch_hash);
  EXPECT_EQ(rows[0].record.recipe, t.recipe);
  EXPECT_EQ(rows[0].record.train_loss, t.train_loss);
  ASSERT_EQ(rows[0].record.valid_accuracy.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0].record.valid_accuracy[1], 0.6);
  EXPECT_TRUE(std::isnan(rows[0].record.valid_accuracy[2]));
  EXPECT_DOUBLE_EQ(rows[0].record.test_accuracy, 0.71);
  EXPECT_DOUBLE_EQ(rows[0].record.seconds, 12.5);
  EXPECT_EQ(store->trainings(t.arch_hash).size(), 1u);
  EXPECT_EQ(store->trainings("ffffffffffffffff").size(), 0u);
}

TEST_F(StoreTest, PerExitTestAccuraciesRoundTrip) {
  auto store = SqliteStore::open(db());
  store->begin_run({"exp", "train.lua", "{}", 1, "{}"});
  TrainingRecord t;
  t.arch_hash = store->record_architecture(arch());
  t.recipe = "epochs=1";
  t.test_accuracy = 0.8;
  store->record_training(t, {{0.5, 1200}, {0.8, 3400000000}});
  store->record_training(t);  // single-exit: no list
  const auto rows = store->trainings();
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[0].exits.size(), 2u);
  EXPECT_DOUBLE_EQ(rows[0].exits[0].accuracy, 0.5);
  EXPECT_EQ(rows[0].exits[0].flops, 1200);
  EXPECT_DOUBLE_EQ(rows[0].exits[1].accuracy, 0.8);
  EXPECT_EQ(rows[0].exits[1].flops, 3400000000);  // beyond 32 bits
  EXPECT_TRUE(rows[1].exits.empty());
}

TEST_F(StoreTest, RunsBeginAndEnd) {
  auto store = SqliteStore::open(db());
  RunInfo info;
  info.experiment = "nb201-ghn";
  info.script = "scripts/search.lua";
  info.args_json = R"({"epochs":5})";
  info.seed = 0xFEDCBA9876543210ull;  // above INT64_MAX: stored bit-cast
  info.versions_json = R"({"hypernas":"0.1.0"})";
  const auto id = store->begin_run(info);
  EXPECT_GT(id, 0);
  EXPECT_EQ(store->current_run(), id);

  Evaluation e;
  e.arch_hash = store->record_architecture(arch());
  e.surrogate = "ghn";
  store->record_evaluation(e);
  EXPECT_EQ(store->evaluations()[0].run_id, id);

  auto runs = store->runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].experiment, "nb201-ghn");
  EXPECT_EQ(runs[0].script, "scripts/search.lua");
  EXPECT_EQ(runs[0].args_json, R"({"epochs":5})");
  EXPECT_EQ(runs[0].seed, 0xFEDCBA9876543210ull);
  EXPECT_EQ(runs[0].versions_json, R"({"hypernas":"0.1.0"})");
  EXPECT_EQ(runs[0].state, "running");
  EXPECT_TRUE(runs[0].ended_at.empty());
  EXPECT_FALSE(runs[0].started_at.empty());

  store->end_run(id, "ok");
  runs = store->runs();
  EXPECT_EQ(runs[0].state, "ok");
  EXPECT_FALSE(runs[0].ended_at.empty());
  EXPECT_GE(runs[0].ended_at, runs[0].started_at);

  const auto second = store->begin_run({"exp", "s.lua", "{}", 2, "{}"});
  store->end_run(second, "cancelled");
  EXPECT_EQ(store->runs().size(), 2u);
  EXPECT_EQ(store->runs()[1].state, "cancelled");

  EXPECT_THROW(store->end_run(id, "finished"), UsageError);
  EXPECT_THROW(store->end_run(999, "failed"), Error);
  EXPECT_THROW(store->set_current_run(999), Error);
  store->set_current_run(0);
  EXPECT_EQ(store->current_run(), 0);
  store->set_current_run(id);
  EXPECT_EQ(store->current_run(), id);
}

TEST_F(StoreTest, ConcurrentWritersShareOneConnection) {
  auto store = SqliteStore::open(db());
  const std::string h = store->record_architecture(arch());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        Evaluation e;
        e.arch_hash = h;
        e.surrogate = "s" + std::to_string(t) + "_" + std::to_string(i);
        e.score = i;
        store->record_evaluation(e);
        EXPECT_TRUE(store->find_evaluation(h, e.surrogate).has_value());
        store->save_state("p" + std::to_string(t), std::to_string(i), std::string(3, '\0'));
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(store->count("evaluations"), 100);
  EXPECT_EQ(store->count("plugin_state"), 100);
}

TEST_F(StoreTest, SearchEpochsRoundTripAndReplaceByRunAndEpoch) {
  auto store = SqliteStore::open(db());
  SearchEpoch e;
  e.run = "gradient-b";
  e.strategy = "gradient";
  e.epoch = 0;
  e.phase = "basic";
  e.train_loss = 1.5;
  e.train_accuracy = 0.25;
  e.valid_loss = std::numeric_limits<double>::quiet_NaN();  // stored as NULL, read back as NaN
  e.valid_accuracy = 0.5;
  e.alphas = {{1.f, -2.f, 0.5f, 3.f, 0.f, 1.f}, {7.f}};
  e.alpha_shapes = {{2, 3}, {1, 1}};
  e.arch_hash = "abc";
  e.arch_text = "x";
  e.note = "{\"k\": 6}";
  e.extra = {{"superiority", 0.25}};
  e.seconds = 2.5;
  store->record_search_epoch(e);
  SearchEpoch later = e;
  later.epoch = 1;
  later.phase = "cross";
  store->record_search_epoch(later);
  SearchEpoch other = e;
  other.run = "gradient-a";  // started after run b: listed after it
  store->record_search_epoch(other);
  e.train_loss = 0.75;  // the same (run, epoch) again replaces the row
  store->record_search_epoch(e);

  const auto b = store->search_epochs("gradient-b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].epoch, 0);
  EXPECT_EQ(b[0].train_loss, 0.75);
  EXPECT_EQ(b[0].phase, "basic");
  EXPECT_TRUE(std::isnan(b[0].valid_loss));
  EXPECT_EQ(b[0].valid_accuracy, 0.5);
  EXPECT_EQ(b[0].alphas, e.alphas);
  EXPECT_EQ(b[0].alpha_shapes, e.alpha_shapes);
  EXPECT_EQ(b[0].arch_text, "x");
  EXPECT_EQ(b[0].note, e.note);
  EXPECT_EQ(b[0].extra.at("superiority"), 0.25);
  EXPECT_EQ(b[0].seconds, 2.5);
  EXPECT_EQ(b[1].phase, "cross");
  const auto all = store->search_epochs("");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].run, "gradient-b");
  EXPECT_EQ(all[2].run, "gradient-a");
  EXPECT_EQ(store->count("search_epochs"), 3);
  e.alpha_shapes.pop_back();
  EXPECT_NE(error_of([&] { store->record_search_epoch(e); }).find("2 alpha blocks but 1 shapes"),
            std::string::npos);
}

TEST_F(StoreTest, AVersion2DatabaseGainsTheSearchEpochsTable) {
  { SqliteStore::open(db())->record_architecture(arch()); }
  raw_query(db(), "DROP TABLE search_epochs");
  raw_query(db(), "PRAGMA user_version = 2");
  auto store = SqliteStore::open(db());
  EXPECT_EQ(raw_query(db(), "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(store->count("architectures"), 1);  // kept
  SearchEpoch e;
  e.run = "r";
  e.strategy = "gradient";
  e.phase = "basic";
  store->record_search_epoch(e);
  EXPECT_EQ(store->search_epochs("r").size(), 1u);
}

}  // namespace
}  // namespace hypernas::store
