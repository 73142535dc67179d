// The run session: the run's row and its liveness (interrupted runs), and the store's migration.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace hypernas;
using hypernas::session::RunSession;

namespace {

class Session : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() /
           ("hypernas_session_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }
  session::SessionConfig config(const std::string& experiment = "exp") {
    session::SessionConfig c;
    c.registry = &registry;
    c.results_root = root;
    c.experiment = experiment;
    return c;
  }
  /// Runs `sql` on the experiment's database file directly (as another process would).
  void sql(const std::string& text, const std::string& experiment = "exp") {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((root / experiment / "experiment.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err ? err : "") << "\n"
        << text;
    sqlite3_free(err);
    sqlite3_close(db);
  }
  /// A pid that is certainly not running: a child that has exited and been reaped.
  static pid_t dead_pid() {
    const pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return child;
  }
  fs::path root;
  plugin::Registry registry;
};

TEST_F(Session, RecordsTheRunWithItsProcessAndClosesIt) {
  {
    RunSession s(config());
    EXPECT_FALSE(s.running());
    s.begin("script.lua");
    EXPECT_TRUE(s.running());
    const auto runs = s.store().runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].state, "running");
    EXPECT_EQ(runs[0].pid, ::getpid());
    EXPECT_FALSE(runs[0].host.empty());
    EXPECT_FALSE(runs[0].heartbeat_at.empty());
    s.finish("ok");
    s.finish("failed");  // once only
    EXPECT_EQ(s.store().runs()[0].state, "ok");
  }
  {
    RunSession s(config());  // destroyed while running: closed as failed
    s.begin("script.lua");
  }
  auto store = RunSession::open_existing(root, "exp");
  ASSERT_EQ(store->runs().size(), 2u);
  EXPECT_EQ(store->runs()[1].state, "failed");
}

TEST_F(Session, ARunWhoseProcessDiedIsShownAsInterrupted) {
  {
    RunSession s(config());
    s.begin("script.lua");
    s.finish("ok");
  }
  // Two runs left 'running': one by a process that is gone, one by a live process on another
  // machine whose heartbeat is fresh.
  const pid_t gone = dead_pid();
  sql("INSERT INTO runs(experiment, script, args_json, seed, versions_json, started_at, state, "
      "pid, host, heartbeat_at) SELECT experiment, script, args_json, seed, versions_json, "
      "started_at, 'running', " +
      std::to_string(gone) +
      ", host, '2026-01-01T00:00:00.000Z' "
      "FROM runs WHERE id = 1;"
      "INSERT INTO runs(experiment, script, args_json, seed, versions_json, started_at, state, "
      "pid, host, heartbeat_at) SELECT experiment, script, args_json, seed, versions_json, "
      "started_at, 'running', 1, 'another-machine', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
      "FROM runs WHERE id = 1;");
  auto store = RunSession::open_existing(root, "exp");
  const auto runs = store->runs();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].state, "ok");
  EXPECT_EQ(runs[1].state, "interrupted");
  EXPECT_EQ(runs[1].ended_at, "2026-01-01T00:00:00.000Z");  // its last sign of life
  EXPECT_EQ(runs[2].state, "running");
  // The other machine's run stops beating: after two minutes it is taken for dead too.
  sql("UPDATE runs SET heartbeat_at = '2026-01-01T00:00:00.000Z' WHERE id = 3");
  EXPECT_EQ(RunSession::open_existing(root, "exp")->runs()[2].state, "interrupted");
}

TEST_F(Session, OpeningAMissingExperimentForReadingSaysWhere) {
  const std::string msg = test::error_of([&] { RunSession::open_existing(root, "nothing"); });
  EXPECT_NE(msg.find("no experiment 'nothing' in"), std::string::npos) << msg;
  EXPECT_THROW(RunSession::open_existing(root, "../x"), UsageError);
  EXPECT_THROW(RunSession(config("a/b")), UsageError);
}

TEST_F(Session, AVersion1DatabaseIsMigratedKeepingEverything) {
  fs::create_directories(root / "old");
  sql(R"sql(
CREATE TABLE runs(id INTEGER PRIMARY KEY, experiment TEXT NOT NULL, script TEXT NOT NULL,
  args_json TEXT NOT NULL, seed INTEGER NOT NULL, versions_json TEXT NOT NULL,
  started_at TEXT NOT NULL, ended_at TEXT,
  state TEXT NOT NULL CHECK(state IN ('running', 'ok', 'failed', 'cancelled')));
CREATE TABLE architectures(hash TEXT PRIMARY KEY, space TEXT NOT NULL, text TEXT NOT NULL,
  json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE evaluations(id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),
  arch_hash TEXT NOT NULL REFERENCES architectures(hash), surrogate TEXT NOT NULL, score REAL,
  seconds REAL, extra_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE UNIQUE INDEX evaluations_arch_surrogate ON evaluations(arch_hash, surrogate);
CREATE INDEX evaluations_surrogate ON evaluations(surrogate);
CREATE TABLE trainings(id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),
  arch_hash TEXT NOT NULL REFERENCES architectures(hash), recipe TEXT NOT NULL,
  curves_json TEXT NOT NULL, test_accuracy REAL, seconds REAL, created_at TEXT NOT NULL);
CREATE INDEX trainings_arch ON trainings(arch_hash);
CREATE TABLE plugin_state(plugin TEXT NOT NULL, key TEXT NOT NULL, blob BLOB NOT NULL,
  updated_at TEXT NOT NULL, PRIMARY KEY(plugin, key));
INSERT INTO runs VALUES(1, 'old', 's.lua', '{}', 3, '{}', '2025-01-01T00:00:00.000Z',
  '2025-01-01T00:01:00.000Z', 'ok');
INSERT INTO architectures VALUES('00000000000000aa', 'nb201', 'x', '{}', '2025-01-01T00:00:00.000Z');
INSERT INTO evaluations VALUES(1, 1, '00000000000000aa', 'params{}', 42.0, 0.5, '{}',
  '2025-01-01T00:00:30.000Z');
PRAGMA user_version = 1;
)sql",
      "old");
  auto store = store::SqliteStore::open(root / "old" / "experiment.db");
  const auto runs = store->runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "ok");
  EXPECT_EQ(runs[0].evaluations, 1);
  const auto rows = store->evaluations();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].score, 42.0);
  EXPECT_EQ(rows[0].status, "ok");
  EXPECT_EQ(rows[0].run_id, 1);
  // The new columns and states work, and the foreign keys still point at `runs`.
  const std::int64_t run = store->begin_run({"old", "t.lua", "{}", 0, "{}"});
  store->set_current_run(run);
  Evaluation e;
  e.arch_hash = "00000000000000aa";
  e.surrogate = "flaky{}";
  store->record_failure(e, "boom");
  auto outcome = store->find_outcome("00000000000000aa", "flaky{}");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->failed);
  EXPECT_EQ(outcome->error, "boom");
  EXPECT_EQ(store->runs().back().failures, 1);
  store.reset();
  sql("UPDATE runs SET state = 'interrupted' WHERE id = 1", "old");  // allowed by the new CHECK
  auto again = store::SqliteStore::open(root / "old" / "experiment.db");
  EXPECT_EQ(again->runs()[0].state, "interrupted");
  Evaluation orphan = e;
  orphan.arch_hash = "ffffffffffffffff";  // the foreign key is still enforced
  EXPECT_THROW(again->record_evaluation(orphan), Error);
}

}  // namespace
