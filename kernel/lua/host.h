#pragma once
/// @file host.h
/// @brief The Lua host: a sandboxed Lua 5.4 state whose module `nas` is the scripts' whole API.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include <hypernas/error.h>

struct lua_State;

namespace hypernas::plugin {
class Registry;
}

namespace hypernas::lua {

struct HostState;
struct LuaMemory;

/// How a script run is set up (from the command line).
struct HostConfig {
  const plugin::Registry* registry = nullptr;      ///< Plugins (required).
  std::filesystem::path results_root = "results";  ///< Experiments live in results_root/<name>/.
  std::string experiment;                          ///< Experiment name (default: script's stem).
  std::uint64_t seed = 0;                          ///< The run's seed.
  c10::Device device{c10::kCPU};                   ///< Compute device.
  int threads = 1;                                 ///< CPU threads.
  std::map<std::string, std::string> args;         ///< `--set key=value` pairs (nas.args).
  std::optional<double> time_limit_s;              ///< Stop cleanly after this many seconds.
  std::string command_line;                        ///< The full command, recorded in the store.
  /// Cap on the Lua heap (`--lua-memory`): past it the script stops with an error naming its
  /// line; 0 means no cap.
  std::size_t lua_memory_bytes = std::size_t{4} << 30;
};

/// A script error as shown to the user: "file:line: message" plus a Lua traceback.
class ScriptError : public Error {
 public:
  /// An error with the full text (location, message, traceback).
  explicit ScriptError(const std::string& text) : Error(text) {}
};

/// Runs Lua search scripts. One Host is one Lua state and, once a script runs, one experiment.
class Host {
 public:
  /// A sandboxed state (base, string, table, math, utf8, coroutine; no io, os, package,
  /// dofile, loadfile or bytecode) with `nas` loaded.
  explicit Host(HostConfig config);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  /// Runs a script file. Opens the experiment's store, records the run, and closes it with
  /// state ok, failed or cancelled. Throws ScriptError (syntax or run-time error, with
  /// file:line and traceback) or Cancelled (Ctrl-C, time limit).
  void run_file(const std::filesystem::path& script);
  /// Runs Lua source (tests); `chunkname` names it in messages.
  void run_string(const std::string& code, const std::string& chunkname = "=(string)");

  /// The Lua state (tests inspect globals through it).
  lua_State* state() const { return L_; }
  /// The experiment folder (valid once a script started).
  std::filesystem::path experiment_dir() const;

 private:
  void run_chunk(int load_status);
  void open_experiment(const std::string& script);
  lua_State* L_ = nullptr;
  std::unique_ptr<HostState> state_;
  std::unique_ptr<LuaMemory> memory_;  ///< The allocator's byte count and limits (outlives L_).
};

/// Converts a `--set` value to the Lua value it stands for: true/false, an integer, a real,
/// else the string itself. Exposed for tests.
std::string classify_arg(const std::string& value);

}  // namespace hypernas::lua
