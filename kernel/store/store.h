#pragma once
/// @file store.h
/// @brief The experiment's results database: SQLite through its C API, one file per experiment.
///
/// Every write is its own autocommitted statement, so a run that is killed keeps everything it
/// recorded. The database runs in WAL mode: another process (or a second SqliteStore) may read
/// it while a run writes. Schema (version 3, kept in `PRAGMA user_version`; a version-1 or
/// version-2 file is migrated when opened):
/// - `runs(id, experiment, script, args_json, seed, versions_json, started_at, ended_at, state,
///   pid, host, heartbeat_at)`; state is running, ok, failed, cancelled or interrupted (a
///   process that died without closing its run: see mark_interrupted())
/// - `architectures(hash PK, space, text, json, created_at)`
/// - `evaluations(id, run_id, arch_hash, surrogate, score, seconds, extra_json, created_at,
///   status, error)`, unique on (arch_hash, surrogate): recording the same pair again replaces
///   the row; status is 'ok', or 'failed' with the reason in `error` (score NULL)
/// - `trainings(id, run_id, arch_hash, recipe, curves_json, test_accuracy, seconds, created_at)`
/// - `plugin_state(plugin, key, blob, updated_at)`, primary key (plugin, key)
/// - `search_epochs(run, epoch, run_id, strategy, phase, train_loss, train_accuracy, valid_loss,
///   valid_accuracy, alphas_json, arch_hash, arch_text, note, extra_json, seconds, created_at)`,
///   primary key (run, epoch): the course of a gradient search (version 3, ABI 1.4)
///
/// Timestamps are ISO-8601 UTC text ("2024-05-01T12:34:56.789Z"). A NaN score, time or
/// accuracy is stored as NULL and read back as NaN.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <hypernas/context.h>
#include <hypernas/surrogate.h>

struct sqlite3;
struct sqlite3_stmt;

namespace hypernas::store {

/// The schema version this build writes (stored in `PRAGMA user_version`).
inline constexpr int kSchemaVersion = 3;

/// What the kernel records when a run starts.
struct RunInfo {
  std::string experiment;        ///< Experiment name.
  std::string script;            ///< Path of the Lua script run.
  std::string args_json = "{}";  ///< Script arguments, as JSON.
  std::uint64_t seed = 0;        ///< The run's seed (stored bit-cast to a signed 64-bit integer).
  std::string versions_json = "{}";  ///< Engine, plugin and library versions, as JSON.
};

/// One row of `runs`.
struct RunRow {
  std::int64_t id = 0;           ///< Run id.
  std::string experiment;        ///< Experiment name.
  std::string script;            ///< Script path.
  std::string args_json;         ///< Script arguments, as JSON.
  std::uint64_t seed = 0;        ///< The run's seed.
  std::string versions_json;     ///< Versions, as JSON.
  std::string started_at;        ///< ISO-8601 UTC start time.
  std::string ended_at;          ///< ISO-8601 UTC end time; empty while the run is running.
  std::string state;             ///< "running", "ok", "failed", "cancelled" or "interrupted".
  std::int64_t pid = 0;          ///< Process that ran it (0: unknown, a version-1 row).
  std::string host;              ///< Machine that ran it.
  std::string heartbeat_at;      ///< Last sign of life (ISO-8601 UTC).
  std::int64_t evaluations = 0;  ///< Evaluations it recorded (status ok).
  std::int64_t failures = 0;     ///< Failed evaluations it recorded.
};

/// A stored evaluation and whether it failed.
struct Outcome {
  Evaluation evaluation;  ///< The row (score NaN when failed).
  bool failed = false;    ///< Recorded by record_failure().
  std::string error;      ///< The failure's reason.
};

/// One evaluation joined with its architecture.
struct EvaluationRow {
  std::string arch_hash;                ///< Hash of the architecture.
  std::string space;                    ///< The architecture's search space.
  std::string text;                     ///< The architecture's canonical text form.
  std::string surrogate;                ///< Surrogate key.
  double score = 0;                     ///< Score (higher is better; NaN if none was recorded).
  double seconds = 0;                   ///< Cost of scoring it.
  std::map<std::string, double> extra;  ///< Named side values.
  std::optional<std::int64_t> run_id;   ///< The run that recorded it, if any was current.
  std::string created_at;               ///< ISO-8601 UTC time it was recorded.
  std::string status;                   ///< "ok" or "failed".
  std::string error;                    ///< Why it failed ("" when ok).
};

/// One row of `trainings`, its curves decoded.
struct TrainingRow {
  std::int64_t id = 0;                 ///< Row id.
  std::optional<std::int64_t> run_id;  ///< The run that recorded it, if any was current.
  TrainingRecord record;               ///< What was recorded.
  std::vector<ExitScore> exits;        ///< Per-exit test accuracy and FLOPs (multi-exit only).
  std::string created_at;              ///< ISO-8601 UTC time it was recorded.
};

/// The results store on one SQLite file. Thread-safe: one mutex guards the connection.
class SqliteStore final : public ResultStore {
 public:
  /// Opens (creating it and its parent folders if needed) the database at `db_path`, switches it
  /// to WAL mode and creates the schema if absent. Refuses a database written by a newer
  /// schema version. Every failure is a hypernas::Error naming the path.
  static std::unique_ptr<SqliteStore> open(const std::filesystem::path& db_path);

  /// Finalizes the cached statements and closes the connection.
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  /// @name Kernel-only API
  /// @{
  /// Records the start of a run (state "running") and makes it the current run; returns its id.
  std::int64_t begin_run(const RunInfo& info);
  /// Marks run `run_id` finished with `state` ("ok", "failed" or "cancelled").
  void end_run(std::int64_t run_id, const std::string& state);
  /// The run later evaluations and trainings are recorded under (0: none, stored as NULL).
  void set_current_run(std::int64_t run_id);
  /// The current run id (0: none).
  std::int64_t current_run() const;
  /// Every evaluation, oldest first, joined with its architecture; only those whose surrogate
  /// key equals `surrogate_filter` and whose status equals `status_filter` ("ok", "failed"),
  /// each when not empty.
  std::vector<EvaluationRow> evaluations(const std::string& surrogate_filter = "",
                                         const std::string& status_filter = "") const;
  /// Records a failed evaluation of (e.arch_hash, e.surrogate) with its reason (e.score is
  /// ignored: stored as NULL), replacing an earlier row of the pair.
  void record_failure(const Evaluation& e, const std::string& reason);
  /// The stored row of (arch_hash, surrogate), failed or not.
  std::optional<Outcome> find_outcome(const std::string& arch_hash,
                                      const std::string& surrogate) const;
  /// Records that run `run_id` is alive now (a running run only).
  void heartbeat(std::int64_t run_id);
  /// Marks as interrupted every run still 'running' whose process is gone: on this machine,
  /// when its pid no longer exists or its heartbeat is older than `stale_after_s`; on another
  /// machine, when its heartbeat is older than that. Its end time becomes its last heartbeat.
  /// Returns how many runs it marked.
  std::int64_t mark_interrupted(double stale_after_s);
  /// Every training, oldest first; only those of `arch_hash` when it is not empty.
  std::vector<TrainingRow> trainings(const std::string& arch_hash = "") const;
  /// Every run, oldest first.
  std::vector<RunRow> runs() const;
  /// Number of rows of `table`, one of runs, architectures, evaluations, trainings, plugin_state.
  std::int64_t count(const std::string& table) const;
  /// The database file.
  std::filesystem::path path() const { return path_; }
  /// @}

  /// @name ResultStore
  /// @{
  /// Validates `arch`, stores its canonical JSON under its hash (once) and returns the hash.
  std::string record_architecture(const Architecture& arch) override;
  /// graph::arch_hash(arch).
  std::string hash(const Architecture& arch) const override;
  /// Records `e` under the current run, replacing an earlier row of the same (arch, surrogate).
  /// The architecture must have been recorded first.
  void record_evaluation(const Evaluation& e) override;
  /// The evaluation of (arch_hash, surrogate), if one was recorded and did not fail.
  std::optional<Evaluation> find_evaluation(const std::string& arch_hash,
                                            const std::string& surrogate) const override;
  /// Records `t` under the current run; its curves are stored as JSON.
  void record_training(const TrainingRecord& t) override;
  /// record_training() of a multi-exit network, with every exit's test accuracy and FLOPs
  /// (stored in the curves' JSON as "exits").
  void record_training(const TrainingRecord& t, const std::vector<ExitScore>& exits);
  /// Stores `blob` (any bytes) for (plugin, key), replacing an older one.
  void save_state(const std::string& plugin, const std::string& key,
                  const std::string& blob) override;
  /// The blob stored for (plugin, key), if any.
  std::optional<std::string> load_state(const std::string& plugin,
                                        const std::string& key) const override;
  /// Records one epoch of a search run under the current run id, replacing an earlier row of
  /// the same (run, epoch); α is stored as JSON ([{"shape": [...], "values": [...]}, ...]).
  void record_search_epoch(const SearchEpoch& epoch) override;
  /// The epochs of `run` (all runs when empty): runs in the order their first epoch was
  /// recorded (the latest run last), each by epoch.
  std::vector<SearchEpoch> search_epochs(const std::string& run) const override;
  /// @}

 private:
  class Statement;
  explicit SqliteStore(std::filesystem::path path);
  void exec(const char* sql, const char* what);
  std::int64_t query_int(const std::string& sql) const;
  void create_schema();
  void write_evaluation(const Evaluation& e, const std::string* failure);
  sqlite3_stmt* prepare(const std::string& sql) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  std::int64_t current_run_ = 0;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, sqlite3_stmt*> statements_;  ///< by SQL text
};

}  // namespace hypernas::store
