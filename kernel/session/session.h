#pragma once
/// @file session.h
/// @brief The run session: one experiment's store, the run's row and heartbeat, the services
/// plugins get, the executor, and the factories that turn names and options into plugin objects.
///
/// The method body of every front end (mlpack's idea): the Lua host (`hypernas run`) and the
/// CLI commands (`hypernas score`, `hypernas runs`) are thin bindings over it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <c10/core/Device.h>

#include <hypernas/strategy.h>

#include "kernel/core/context.h"
#include "kernel/exec/executor.h"
#include "kernel/session/evaluation.h"
#include "kernel/session/surrogate_handle.h"

namespace hypernas::plugin {
class Registry;
}
namespace hypernas::store {
class SqliteStore;
}

namespace hypernas::session {

/// How a run is set up (from the command line).
struct SessionConfig {
  const plugin::Registry* registry = nullptr;      ///< Plugins (required).
  std::filesystem::path results_root = "results";  ///< Experiments live in results_root/<name>/.
  std::string experiment;                   ///< Experiment name (default: the script's stem).
  std::uint64_t seed = 0;                   ///< The run's seed.
  c10::Device device{c10::kCPU};            ///< Compute device.
  int threads = 1;                          ///< CPU threads.
  std::map<std::string, std::string> args;  ///< Script arguments (recorded).
  std::string command_line;                 ///< The full command (recorded).
  double heartbeat_s = 15;                  ///< Seconds between two heartbeats.
};

/// A run that has not begun yet has services and an executor but no store; begin() opens the
/// experiment, marks runs left 'running' by dead processes as interrupted, records this run and
/// starts its heartbeat; finish() closes the run. A session destroyed while its run is open
/// closes it as failed.
class RunSession {
 public:
  /// Checks the experiment name (a plain folder name) and sets up the services.
  explicit RunSession(SessionConfig config);
  ~RunSession();
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;

  /// Opens the experiment (its name defaults to the stem of `script`) and records the run.
  void begin(const std::string& script);
  /// True between begin() and finish().
  bool running() const { return run_id_ != 0 && !finished_; }
  /// Closes the run with state "ok", "failed" or "cancelled" (once; later calls do nothing).
  void finish(const std::string& state);

  /// The configuration.
  const SessionConfig& config() const { return config_; }
  /// The services every plugin call of this run gets.
  core::RunServices& services() { return services_; }
  /// The graph executor.
  const exec::GraphExecutor& executor() const { return executor_; }
  /// The plugin registry.
  const plugin::Registry& registry() const { return *config_.registry; }
  /// The experiment's store; Error when begin() has not run.
  store::SqliteStore& store() const;
  /// True once the store is open.
  bool has_store() const { return store_ != nullptr; }
  /// results_root/experiment (valid after begin()).
  const std::filesystem::path& experiment_dir() const { return experiment_dir_; }
  /// This run's row id (0 before begin()).
  std::int64_t run_id() const { return run_id_; }

  /// Search space `name` with `options`; the problem's shape (input_channels, input_size,
  /// classes) comes from `data` where the options do not set it.
  std::shared_ptr<SearchSpace> make_space(const std::string& name, Options options,
                                          const Dataset* data) const;
  /// Surrogate `name` with `options`.
  std::shared_ptr<SurrogateHandle> make_surrogate(const std::string& name,
                                                  const Options& options) const;
  /// An evaluation service over this run's store.
  std::unique_ptr<KernelEvaluationService> evaluations(std::shared_ptr<SurrogateHandle> surrogate,
                                                       const SearchSpace& space,
                                                       const Dataset* data,
                                                       const EvalSettings& settings);
  /// The ABI minor `space`'s plugin was built with (this SDK's for a space made outside the
  /// registry).
  std::uint32_t space_abi_minor(const SearchSpace& space) const;
  /// Throws UsageError when `surrogate` would call SearchSpace functions that `space` lacks: a
  /// surrogate with kArchGradient (ABI >= 1.4) on a space built before ABI 1.4. Called before
  /// every fit and evaluation service.
  void check_space_for(const SurrogateHandle& surrogate, const SearchSpace& space) const;
  /// Runs `strategy` with `surrogate` through an evaluation service: the kept candidates.
  std::vector<Candidate> search(Strategy& strategy, const std::string& strategy_name,
                                std::shared_ptr<SurrogateHandle> surrogate,
                                const SearchSpace& space, const Dataset* data,
                                const EvalSettings& settings);
  /// Scores `archs` through an evaluation service (surrogate:score{}, `hypernas score`), one
  /// architecture per call so that Ctrl-C and the script's stop act between two of them;
  /// `each` (may be empty) sees each one's result as soon as it is recorded.
  Evaluated score(std::shared_ptr<SurrogateHandle> surrogate, const SearchSpace& space,
                  const Dataset* data, const std::vector<Architecture>& archs,
                  const EvalSettings& settings, const std::string& progress_label,
                  const std::function<void(const Evaluated&)>& each = {});

  /// Opens the store of an existing experiment for reading, after marking its dead runs as
  /// interrupted (what `hypernas runs` shows). Error when it does not exist.
  static std::unique_ptr<store::SqliteStore> open_existing(
      const std::filesystem::path& results_root, const std::string& experiment);
  /// Seconds without a heartbeat after which a running run is taken for dead.
  static constexpr double kStaleAfterS = 120;

 private:
  void heartbeat_loop();

  SessionConfig config_;
  exec::GraphExecutor executor_;
  core::RunServices services_;
  std::unique_ptr<store::SqliteStore> store_;
  std::filesystem::path experiment_dir_;
  std::int64_t run_id_ = 0;
  bool finished_ = false;
  std::thread heartbeat_;
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_wake_;
  bool heartbeat_stop_ = false;
};

/// Throws UsageError unless `name` is a plain folder name (no '/', not '.' or '..', not empty).
void check_experiment_name(const std::string& name);

}  // namespace hypernas::session
