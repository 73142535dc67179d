#include "kernel/store/store.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <hypernas/error.h>

#include "kernel/graph/serialize.h"

namespace hypernas::store {
namespace {

using Json = nlohmann::json;

constexpr const char* kTables[] = {"runs",      "architectures", "evaluations",
                                   "trainings", "plugin_state",  "search_epochs"};

constexpr const char* kRunsTable = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  id            INTEGER PRIMARY KEY,
  experiment    TEXT NOT NULL,
  script        TEXT NOT NULL,
  args_json     TEXT NOT NULL,
  seed          INTEGER NOT NULL,
  versions_json TEXT NOT NULL,
  started_at    TEXT NOT NULL,
  ended_at      TEXT,
  state         TEXT NOT NULL
                CHECK(state IN ('running', 'ok', 'failed', 'cancelled', 'interrupted')),
  pid           INTEGER,
  host          TEXT,
  heartbeat_at  TEXT);
)sql";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS architectures(
  hash       TEXT PRIMARY KEY,
  space      TEXT NOT NULL,
  text       TEXT NOT NULL,
  json       TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations(
  id         INTEGER PRIMARY KEY,
  run_id     INTEGER REFERENCES runs(id),
  arch_hash  TEXT NOT NULL REFERENCES architectures(hash),
  surrogate  TEXT NOT NULL,
  score      REAL,
  seconds    REAL,
  extra_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  status     TEXT NOT NULL DEFAULT 'ok' CHECK(status IN ('ok', 'failed')),
  error      TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS evaluations_arch_surrogate ON evaluations(arch_hash, surrogate);
CREATE INDEX IF NOT EXISTS evaluations_surrogate ON evaluations(surrogate);
CREATE TABLE IF NOT EXISTS trainings(
  id            INTEGER PRIMARY KEY,
  run_id        INTEGER REFERENCES runs(id),
  arch_hash     TEXT NOT NULL REFERENCES architectures(hash),
  recipe        TEXT NOT NULL,
  curves_json   TEXT NOT NULL,
  test_accuracy REAL,
  seconds       REAL,
  created_at    TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS trainings_arch ON trainings(arch_hash);
CREATE TABLE IF NOT EXISTS plugin_state(
  plugin     TEXT NOT NULL,
  key        TEXT NOT NULL,
  blob       BLOB NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY(plugin, key));
)sql";

// Version 3: the epochs of gradient searches (ABI 1.4), one row per (run key, epoch).
constexpr const char* kSearchEpochsTable = R"sql(
CREATE TABLE IF NOT EXISTS search_epochs(
  run            TEXT NOT NULL,
  epoch          INTEGER NOT NULL,
  run_id         INTEGER REFERENCES runs(id),
  strategy       TEXT NOT NULL,
  phase          TEXT NOT NULL,
  train_loss     REAL,
  train_accuracy REAL,
  valid_loss     REAL,
  valid_accuracy REAL,
  alphas_json    TEXT NOT NULL,
  arch_hash      TEXT,
  arch_text      TEXT,
  note           TEXT,
  extra_json     TEXT NOT NULL,
  seconds        REAL,
  created_at     TEXT NOT NULL,
  PRIMARY KEY(run, epoch));
)sql";

// Version 1 -> 2: runs gain pid, host, heartbeat_at and the state 'interrupted' (a CHECK
// constraint cannot be altered: the table is rebuilt the way SQLite's manual says, new table,
// copy, drop, rename the new one, so the REFERENCES of other tables stay valid); evaluations
// gain status and error.
constexpr const char* kMigrate1To2 = R"sql(
INSERT INTO runs_new(id, experiment, script, args_json, seed, versions_json, started_at,
                     ended_at, state)
  SELECT id, experiment, script, args_json, seed, versions_json, started_at, ended_at, state
  FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
ALTER TABLE evaluations ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'
  CHECK(status IN ('ok', 'failed'));
ALTER TABLE evaluations ADD COLUMN error TEXT;
)sql";

/// Now, as ISO-8601 UTC with milliseconds: "2024-05-01T12:34:56.789Z".
std::string now_iso() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

/// This machine's name (gethostname), "" if it has none.
std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

/// Seconds from an ISO-8601 UTC time written by now_iso() until now; +inf if unreadable.
double seconds_since(const std::string& iso) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
    return std::numeric_limits<double>::infinity();
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t t = ::timegm(&tm);
  const double then = static_cast<double>(t) + ms / 1000.0;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - then;
}

/// A double as JSON; JSON has no NaN or infinities, so those become strings.
Json number_to_json(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  return x;
}

double number_from_json(const Json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  return std::numeric_limits<double>::quiet_NaN();
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string extra_to_json(const std::map<std::string, double>& extra) {
  Json j = Json::object();
  for (const auto& [k, v] : extra) j[k] = number_to_json(v);
  return dump(j);
}

/// The inverse of extra_to_json(); text that is not a JSON object gives no values.
std::map<std::string, double> extra_from_json(const std::string& text) {
  std::map<std::string, double> out;
  const Json j = Json::parse(text, nullptr, false);
  if (j.is_object())
    for (const auto& [k, v] : j.items()) out[k] = number_from_json(v);
  return out;
}

Json vector_to_json(const std::vector<double>& xs) {
  Json j = Json::array();
  for (double x : xs) j.push_back(number_to_json(x));
  return j;
}

std::vector<double> vector_from_json(const Json& j) {
  std::vector<double> out;
  if (!j.is_array()) return out;
  out.reserve(j.size());
  for (const Json& x : j) out.push_back(number_from_json(x));
  return out;
}

bool known_table(const std::string& name) {
  for (const char* t : kTables)
    if (name == t) return true;
  return false;
}

}  // namespace

/// A cached prepared statement in use: binds, steps, reads columns, and resets itself (and
/// clears its bindings) when it goes out of scope, so the cache always holds idle statements.
class SqliteStore::Statement {
 public:
  Statement(const SqliteStore& store, const std::string& sql)
      : store_(store), stmt_(store.prepare(sql)) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& s) {
    check(sqlite3_bind_text64(stmt_, i, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  Statement& bind(int i, std::int64_t x) {
    check(sqlite3_bind_int64(stmt_, i, x));
    return *this;
  }
  Statement& bind(int i, double x) {
    check(std::isnan(x) ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_double(stmt_, i, x));
    return *this;
  }
  /// Binds a run id; 0 (no run) becomes NULL.
  Statement& bind_run(int i, std::int64_t run) {
    check(run == 0 ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_int64(stmt_, i, run));
    return *this;
  }
  Statement& bind_blob(int i, const std::string& blob) {
    // A NULL pointer would bind SQL NULL; an empty blob must stay a blob.
    check(blob.empty() ? sqlite3_bind_zeroblob(stmt_, i, 0)
                       : sqlite3_bind_blob64(stmt_, i, blob.data(), blob.size(), SQLITE_TRANSIENT));
    return *this;
  }

  /// Steps once: true when a row is ready, false when done; throws on an error.
  bool step(const char* what) {
    const int rc = step_rc();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    store_.fail(what);
  }
  /// Steps once and returns SQLite's result code.
  int step_rc() { return sqlite3_step(stmt_); }

  std::string text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string();
  }
  std::string blob(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    const int n = sqlite3_column_bytes(stmt_, i);
    return p && n > 0 ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n))
                      : std::string();
  }
  std::int64_t int64(int i) const { return sqlite3_column_int64(stmt_, i); }
  double real(int i) const {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN()
                                                        : sqlite3_column_double(stmt_, i);
  }
  std::optional<std::int64_t> optional_int64(int i) const {
    if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(stmt_, i);
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) store_.fail("binding a parameter");
  }
  const SqliteStore& store_;
  sqlite3_stmt* stmt_;
};

SqliteStore::SqliteStore(std::filesystem::path path) : path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  if (db_) sqlite3_close_v2(db_);
}

void SqliteStore::fail(const std::string& what) const {
  throw Error(cat("results database '", path_.string(), "': ", what, ": ",
                  db_ ? sqlite3_errmsg(db_) : "not open"));
}

sqlite3_stmt* SqliteStore::prepare(const std::string& sql) const {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size() + 1),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    fail(cat("preparing \"", sql, "\""));
  }
  statements_.emplace(sql, stmt);
  return stmt;
}

void SqliteStore::exec(const char* sql, const char* what) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string text = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw Error(cat("results database '", path_.string(), "': ", what, ": ", text));
  }
}

std::int64_t SqliteStore::query_int(const std::string& sql) const {
  Statement s(*this, sql);
  if (!s.step(sql.c_str())) return 0;
  return s.int64(0);
}

std::unique_ptr<SqliteStore> SqliteStore::open(const std::filesystem::path& db_path) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(db_path));
  const std::string name = db_path.string();
  HYPERNAS_CHECK(!name.empty(), "results database: the path is empty");

  const std::filesystem::path parent = db_path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec)
      throw Error(cat("results database '", name, "': cannot create its folder '", parent.string(),
                      "': ", ec.message()));
  }

  const int rc =
      sqlite3_open_v2(name.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = store->db_ ? sqlite3_errmsg(store->db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(store->db_);
    store->db_ = nullptr;
    throw Error(cat("results database '", name, "': cannot open: ", message));
  }
  sqlite3_extended_result_codes(store->db_, 1);
  sqlite3_busy_timeout(store->db_, 5000);
  store->exec("PRAGMA foreign_keys = ON", "enabling foreign keys");

  // Read before touching anything, so a newer database is left exactly as it was.
  const std::int64_t version = store->query_int("PRAGMA user_version");
  if (version > kSchemaVersion)
    throw Error(cat("results database '", name, "' has schema version ", version,
                    ", newer than version ", kSchemaVersion,
                    " that this build of hypernas reads; use a newer hypernas or another file"));

  store->exec("PRAGMA journal_mode = WAL", "switching to WAL mode");
  store->exec("PRAGMA synchronous = NORMAL", "setting synchronous mode");
  if (version < kSchemaVersion) store->create_schema();
  return store;
}

void SqliteStore::create_schema() {
  // Rebuilding `runs` must not trip the foreign keys that point at it; the pragma only takes
  // effect outside a transaction.
  exec("PRAGMA foreign_keys = OFF", "disabling foreign keys for the schema change");
  // IMMEDIATE takes the write lock at once: of two processes creating the same file, the
  // second waits and then finds the schema in place.
  exec("BEGIN IMMEDIATE", "starting the schema transaction");
  try {
    const std::int64_t version = query_int("PRAGMA user_version");
    if (version > kSchemaVersion)
      throw Error(cat("results database '", path_.string(), "' has schema version ", version,
                      ", newer than version ", kSchemaVersion, " that this build reads"));
    if (version == 1) {
      std::string runs_new = kRunsTable;
      runs_new.replace(runs_new.find("IF NOT EXISTS runs("), 19, "runs_new(");
      exec(runs_new.c_str(), "migrating the schema from version 1 (new runs table)");
      exec(kMigrate1To2, "migrating the schema from version 1");
    } else if (version == 0) {
      exec(kRunsTable, "creating the schema (runs)");
      exec(kSchema, "creating the schema");
    }
    if (version < 3) exec(kSearchEpochsTable, "creating the search_epochs table");
    if (version < kSchemaVersion)
      exec(cat("PRAGMA user_version = ", kSchemaVersion).c_str(), "setting the schema version");
    exec("COMMIT", "committing the schema");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_exec(db_, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA foreign_keys = ON", "enabling foreign keys");
}

std::int64_t SqliteStore::begin_run(const RunInfo& info) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "INSERT INTO runs(experiment, script, args_json, seed, versions_json, started_at, "
              "state, pid, host, heartbeat_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, "
              "?6)");
  s.bind(1, info.experiment).bind(2, info.script).bind(3, info.args_json);
  s.bind(4, static_cast<std::int64_t>(info.seed)).bind(5, info.versions_json).bind(6, now_iso());
  s.bind(7, static_cast<std::int64_t>(::getpid())).bind(8, host_name());
  s.step("recording the start of a run");
  current_run_ = sqlite3_last_insert_rowid(db_);
  return current_run_;
}

void SqliteStore::end_run(std::int64_t run_id, const std::string& state) {
  if (state != "ok" && state != "failed" && state != "cancelled")
    throw UsageError(cat("results database '", path_.string(), "': cannot end run ", run_id,
                         " with state '", state, "' (expected ok, failed or cancelled)"));
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this, "UPDATE runs SET state = ?2, ended_at = ?3, heartbeat_at = ?3 WHERE id = ?1");
  s.bind(1, run_id).bind(2, state).bind(3, now_iso());
  s.step("recording the end of a run");
  if (sqlite3_changes(db_) == 0)
    throw Error(cat("results database '", path_.string(), "': no run with id ", run_id));
}

void SqliteStore::set_current_run(std::int64_t run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (run_id != 0) {
    Statement s(*this, "SELECT 1 FROM runs WHERE id = ?1");
    s.bind(1, run_id);
    if (!s.step("looking up a run"))
      throw Error(cat("results database '", path_.string(), "': no run with id ", run_id));
  }
  current_run_ = run_id;
}

std::int64_t SqliteStore::current_run() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_run_;
}

std::vector<EvaluationRow> SqliteStore::evaluations(const std::string& surrogate_filter,
                                                    const std::string& status_filter) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "SELECT e.arch_hash, a.space, a.text, e.surrogate, e.score, e.seconds, e.extra_json, "
              "e.run_id, e.created_at, e.status, e.error FROM evaluations e JOIN architectures a "
              "ON a.hash = e.arch_hash WHERE (?1 = '' OR e.surrogate = ?1) AND (?2 = '' OR "
              "e.status = ?2) ORDER BY e.id");
  s.bind(1, surrogate_filter).bind(2, status_filter);
  std::vector<EvaluationRow> rows;
  while (s.step("reading evaluations")) {
    EvaluationRow r;
    r.arch_hash = s.text(0);
    r.space = s.text(1);
    r.text = s.text(2);
    r.surrogate = s.text(3);
    r.score = s.real(4);
    r.seconds = s.real(5);
    r.extra = extra_from_json(s.text(6));
    r.run_id = s.optional_int64(7);
    r.created_at = s.text(8);
    r.status = s.text(9);
    r.error = s.text(10);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<TrainingRow> SqliteStore::trainings(const std::string& arch_hash) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "SELECT id, run_id, arch_hash, recipe, curves_json, test_accuracy, seconds, "
              "created_at FROM trainings WHERE ?1 = '' OR arch_hash = ?1 ORDER BY id");
  s.bind(1, arch_hash);
  std::vector<TrainingRow> rows;
  while (s.step("reading trainings")) {
    TrainingRow r;
    r.id = s.int64(0);
    r.run_id = s.optional_int64(1);
    r.record.arch_hash = s.text(2);
    r.record.recipe = s.text(3);
    const Json curves = Json::parse(s.text(4), nullptr, false);
    if (curves.is_object()) {
      r.record.train_loss = vector_from_json(curves.value("train_loss", Json::array()));
      r.record.valid_accuracy = vector_from_json(curves.value("valid_accuracy", Json::array()));
      for (const Json& e : curves.value("exits", Json::array()))
        if (e.is_object())
          r.exits.push_back(
              {number_from_json(e.value("accuracy", Json())), e.value("flops", std::int64_t{0})});
    }
    r.record.test_accuracy = s.real(5);
    r.record.seconds = s.real(6);
    r.created_at = s.text(7);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<RunRow> SqliteStore::runs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "SELECT id, experiment, script, args_json, seed, versions_json, started_at, "
              "ended_at, state, pid, host, heartbeat_at, (SELECT count(*) FROM evaluations e "
              "WHERE e.run_id = runs.id AND e.status = 'ok'), (SELECT count(*) FROM evaluations "
              "e WHERE e.run_id = runs.id AND e.status = 'failed') FROM runs ORDER BY id");
  std::vector<RunRow> rows;
  while (s.step("reading runs")) {
    RunRow r;
    r.id = s.int64(0);
    r.experiment = s.text(1);
    r.script = s.text(2);
    r.args_json = s.text(3);
    r.seed = static_cast<std::uint64_t>(s.int64(4));
    r.versions_json = s.text(5);
    r.started_at = s.text(6);
    r.ended_at = s.text(7);
    r.state = s.text(8);
    r.pid = s.optional_int64(9).value_or(0);
    r.host = s.text(10);
    r.heartbeat_at = s.text(11);
    r.evaluations = s.int64(12);
    r.failures = s.int64(13);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::int64_t SqliteStore::count(const std::string& table) const {
  if (!known_table(table)) {
    std::string list;
    for (const char* t : kTables) list += (list.empty() ? "" : ", ") + std::string(t);
    throw UsageError(cat("results database '", path_.string(), "': no table '", table,
                         "' (expected one of ", list, ")"));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return query_int("SELECT count(*) FROM " + table);  // table is from the fixed list above
}

std::string SqliteStore::record_architecture(const Architecture& arch) {
  graph::validate(arch);
  const std::string json = graph::canonical_json(arch);
  const std::string h = graph::arch_hash(arch);
  std::lock_guard<std::mutex> lock(mutex_);
  {
    Statement s(*this,
                "INSERT OR IGNORE INTO architectures(hash, space, text, json, created_at) "
                "VALUES(?1, ?2, ?3, ?4, ?5)");
    s.bind(1, h).bind(2, arch.space).bind(3, arch.text).bind(4, json).bind(5, now_iso());
    s.step("recording an architecture");
  }
  if (sqlite3_changes(db_) == 0) {
    // Already there: the same architecture, unless two differ in a 64-bit hash.
    Statement s(*this, "SELECT json FROM architectures WHERE hash = ?1");
    s.bind(1, h);
    if (s.step("looking up an architecture") && s.text(0) != json)
      throw Error(cat("results database '", path_.string(), "': architecture '",
                      abbreviate(arch.text), "' has the same hash ", h,
                      " as a different recorded architecture"));
  }
  return h;
}

std::string SqliteStore::hash(const Architecture& arch) const { return graph::arch_hash(arch); }

void SqliteStore::record_evaluation(const Evaluation& e) { write_evaluation(e, nullptr); }

void SqliteStore::record_failure(const Evaluation& e, const std::string& reason) {
  write_evaluation(e, &reason);
}

void SqliteStore::write_evaluation(const Evaluation& e, const std::string* failure) {
  const std::string extra = extra_to_json(e.extra);
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "INSERT OR REPLACE INTO evaluations(run_id, arch_hash, surrogate, score, seconds, "
              "extra_json, created_at, status, error) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  s.bind_run(1, current_run_).bind(2, e.arch_hash).bind(3, e.surrogate).bind(4, e.score);
  s.bind(5, e.seconds).bind(6, extra).bind(7, now_iso());
  s.bind(8, std::string(failure ? "failed" : "ok"));
  if (failure) s.bind(9, *failure);
  if (s.step_rc() == SQLITE_DONE) return;
  if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_FOREIGNKEY)
    throw Error(cat("results database '", path_.string(),
                    "': cannot record an evaluation of "
                    "architecture ",
                    e.arch_hash, " by '", e.surrogate,
                    "': no architecture with that hash is recorded (call record_architecture "
                    "first)"));
  fail("recording an evaluation");
}

std::optional<Evaluation> SqliteStore::find_evaluation(const std::string& arch_hash,
                                                       const std::string& surrogate) const {
  auto outcome = find_outcome(arch_hash, surrogate);
  if (!outcome || outcome->failed) return std::nullopt;
  return std::move(outcome->evaluation);
}

std::optional<Outcome> SqliteStore::find_outcome(const std::string& arch_hash,
                                                 const std::string& surrogate) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "SELECT score, seconds, extra_json, status, error FROM evaluations WHERE arch_hash "
              "= ?1 AND surrogate = ?2");
  s.bind(1, arch_hash).bind(2, surrogate);
  if (!s.step("looking up an evaluation")) return std::nullopt;
  Outcome o;
  Evaluation& e = o.evaluation;
  e.arch_hash = arch_hash;
  e.surrogate = surrogate;
  e.score = s.real(0);
  e.seconds = s.real(1);
  e.extra = extra_from_json(s.text(2));
  o.failed = s.text(3) == "failed";
  o.error = s.text(4);
  return o;
}

void SqliteStore::heartbeat(std::int64_t run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this, "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1 AND state = 'running'");
  s.bind(1, run_id).bind(2, now_iso());
  s.step("recording a heartbeat");
}

std::int64_t SqliteStore::mark_interrupted(double stale_after_s) {
  const std::string here = host_name();
  const auto self = static_cast<std::int64_t>(::getpid());
  std::vector<std::pair<std::int64_t, std::string>> dead;  // run id, last sign of life
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Statement s(*this,
                "SELECT id, pid, host, coalesce(heartbeat_at, started_at) FROM runs WHERE "
                "state = 'running'");
    while (s.step("reading running runs")) {
      const std::int64_t id = s.int64(0);
      const std::int64_t pid = s.optional_int64(1).value_or(0);
      const std::string host = s.text(2);
      const std::string beat = s.text(3);
      const bool stale = seconds_since(beat) > stale_after_s;
      bool alive;
      if (host == here && pid > 0) {
        // The process is gone, or it lives but stopped beating (its pid was reused, or it
        // hangs): either way the run is not running. This process's own run is alive.
        alive =
            pid == self || ((::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) && !stale);
      } else {
        alive = !stale;  // another machine's run (a shared folder), or a version-1 row
      }
      if (!alive) dead.emplace_back(id, beat);
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, beat] : dead) {
    Statement u(*this,
                "UPDATE runs SET state = 'interrupted', ended_at = ?2 WHERE id = ?1 AND state = "
                "'running'");
    u.bind(1, id).bind(2, beat);
    u.step("marking an interrupted run");
  }
  return static_cast<std::int64_t>(dead.size());
}

void SqliteStore::record_training(const TrainingRecord& t) { record_training(t, {}); }

void SqliteStore::record_training(const TrainingRecord& t, const std::vector<ExitScore>& exits) {
  Json curves = Json::object();
  curves["train_loss"] = vector_to_json(t.train_loss);
  curves["valid_accuracy"] = vector_to_json(t.valid_accuracy);
  if (!exits.empty()) {
    Json list = Json::array();
    for (const ExitScore& e : exits) list.push_back({{"accuracy", e.accuracy}, {"flops", e.flops}});
    curves["exits"] = std::move(list);
  }
  const std::string curves_json = dump(curves);
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "INSERT INTO trainings(run_id, arch_hash, recipe, curves_json, test_accuracy, "
              "seconds, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind_run(1, current_run_).bind(2, t.arch_hash).bind(3, t.recipe).bind(4, curves_json);
  s.bind(5, t.test_accuracy).bind(6, t.seconds).bind(7, now_iso());
  if (s.step_rc() == SQLITE_DONE) return;
  if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_FOREIGNKEY)
    throw Error(cat("results database '", path_.string(),
                    "': cannot record a training of "
                    "architecture ",
                    t.arch_hash,
                    ": no architecture with that hash is recorded (call record_architecture "
                    "first)"));
  fail("recording a training");
}

void SqliteStore::save_state(const std::string& plugin, const std::string& key,
                             const std::string& blob) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "INSERT OR REPLACE INTO plugin_state(plugin, key, blob, updated_at) "
              "VALUES(?1, ?2, ?3, ?4)");
  s.bind(1, plugin).bind(2, key).bind_blob(3, blob).bind(4, now_iso());
  s.step("saving plugin state");
}

std::optional<std::string> SqliteStore::load_state(const std::string& plugin,
                                                   const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this, "SELECT blob FROM plugin_state WHERE plugin = ?1 AND key = ?2");
  s.bind(1, plugin).bind(2, key);
  if (!s.step("loading plugin state")) return std::nullopt;
  return s.blob(0);
}

void SqliteStore::record_search_epoch(const SearchEpoch& e) {
  HYPERNAS_CHECK(e.alphas.size() == e.alpha_shapes.size(), "results database '", path_.string(),
                 "': search epoch ", e.epoch, " of run ", e.run, " has ", e.alphas.size(),
                 " alpha blocks but ", e.alpha_shapes.size(), " shapes");
  Json alphas = Json::array();
  for (std::size_t b = 0; b < e.alphas.size(); ++b) {
    Json values = Json::array();
    for (float x : e.alphas[b]) values.push_back(number_to_json(x));
    alphas.push_back(Json{{"shape", e.alpha_shapes[b]}, {"values", std::move(values)}});
  }
  const std::string alphas_json = dump(alphas);
  const std::string extra = extra_to_json(e.extra);
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "INSERT OR REPLACE INTO search_epochs(run, epoch, run_id, strategy, phase, "
              "train_loss, train_accuracy, valid_loss, valid_accuracy, alphas_json, arch_hash, "
              "arch_text, note, extra_json, seconds, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
              "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
  s.bind(1, e.run).bind(2, e.epoch).bind_run(3, current_run_).bind(4, e.strategy).bind(5, e.phase);
  s.bind(6, e.train_loss).bind(7, e.train_accuracy).bind(8, e.valid_loss);
  s.bind(9, e.valid_accuracy).bind(10, alphas_json).bind(11, e.arch_hash).bind(12, e.arch_text);
  s.bind(13, e.note).bind(14, extra).bind(15, e.seconds).bind(16, now_iso());
  s.step("recording a search epoch");
}

std::vector<SearchEpoch> SqliteStore::search_epochs(const std::string& run) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(*this,
              "SELECT run, epoch, strategy, phase, train_loss, train_accuracy, valid_loss, "
              "valid_accuracy, alphas_json, arch_hash, arch_text, note, extra_json, seconds "
              "FROM search_epochs WHERE ?1 = '' OR run = ?1 ORDER BY (SELECT min(rowid) FROM "
              "search_epochs s WHERE s.run = search_epochs.run), epoch");
  s.bind(1, run);
  std::vector<SearchEpoch> rows;
  while (s.step("reading search epochs")) {
    SearchEpoch e;
    e.run = s.text(0);
    e.epoch = s.int64(1);
    e.strategy = s.text(2);
    e.phase = s.text(3);
    e.train_loss = s.real(4);
    e.train_accuracy = s.real(5);
    e.valid_loss = s.real(6);
    e.valid_accuracy = s.real(7);
    const Json alphas = Json::parse(s.text(8), nullptr, false);
    if (alphas.is_array()) {
      for (const Json& block : alphas) {
        if (!block.is_object()) continue;
        std::vector<std::int64_t> shape;
        for (const Json& d : block.value("shape", Json::array()))
          if (d.is_number_integer()) shape.push_back(d.get<std::int64_t>());
        std::vector<float> values;
        for (double x : vector_from_json(block.value("values", Json::array())))
          values.push_back(static_cast<float>(x));
        e.alpha_shapes.push_back(std::move(shape));
        e.alphas.push_back(std::move(values));
      }
    }
    e.arch_hash = s.text(9);
    e.arch_text = s.text(10);
    e.note = s.text(11);
    e.extra = extra_from_json(s.text(12));
    e.seconds = s.real(13);
    rows.push_back(std::move(e));
  }
  return rows;
}

}  // namespace hypernas::store
