#include "kernel/lua/host.h"

#include <lua.hpp>

#include <algorithm>
#include <regex>

#include <nlohmann/json.hpp>

#include "kernel/core/cancel.h"
#include "kernel/core/log.h"
#include "kernel/device/device.h"
#include "kernel/lua/binding.h"
#include "kernel/store/store.h"

namespace hypernas::lua {
namespace fs = std::filesystem;

namespace {

// Checked every 10,000 VM instructions: Ctrl-C and time limits stop a script between two steps
// even when it never calls into the engine.
void cancel_hook(lua_State* L, lua_Debug*) {
  if (core::cancelled()) luaL_error(L, "%s", core::cancel_reason().c_str());
}

// Adds a traceback to an error message (the message handler of every protected call).
int traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

// `load` restricted to text chunks: bytecode can break out of any sandbox.
int safe_load(lua_State* L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (n >= 2) lua_pushvalue(L, 2);
  else lua_pushnil(L);
  lua_pushliteral(L, "t");
  if (n >= 4) lua_pushvalue(L, 4);
  lua_call(L, n >= 4 ? 4 : 3, LUA_MULTRET);
  return lua_gettop(L) - n;
}

void open_sandbox(lua_State* L) {
  const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},          {LUA_STRLIBNAME, luaopen_string},
                           {LUA_TABLIBNAME, luaopen_table},    {LUA_MATHLIBNAME, luaopen_math},
                           {LUA_UTF8LIBNAME, luaopen_utf8},    {LUA_COLIBNAME, luaopen_coroutine}};
  for (const auto& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_getglobal(L, "load");
  lua_pushcclosure(L, safe_load, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
}

std::string versions_json(const HostConfig& c) {
  nlohmann::json j{{"hypernas", HYPERNAS_VERSION},
                   {"abi", cat(kAbiMajor, ".", kAbiMinor)},
                   {"build_id", build_id()},
                   {"lua", LUA_RELEASE},
                   {"device", device::describe(c.device)},
                   {"threads", c.threads}};
  return j.dump();
}

}  // namespace

std::string classify_arg(const std::string& value) {
  static const std::regex integer(R"([+-]?[0-9]+)");
  static const std::regex real(R"([+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)");
  if (value == "true" || value == "false") return "bool";
  // A number that does not fit its type stays a string (nas.arg then says what it expected).
  try {
    if (std::regex_match(value, integer)) {
      (void)std::stoll(value);
      return "int";
    }
    if (std::regex_match(value, real)) {
      (void)std::stod(value);
      return "real";
    }
  } catch (const std::out_of_range&) {
  }
  return "string";
}

Host::Host(HostConfig config) : state_(std::make_unique<HostState>()) {
  HYPERNAS_CHECK(config.registry != nullptr, "Lua host needs a plugin registry");
  state_->config = std::move(config);
  state_->services.device = state_->config.device;
  state_->services.seed = state_->config.seed;
  state_->services.threads = state_->config.threads;
  state_->services.executor = &state_->executor;
  state_->script_rng = Rng(core::derive_seed(state_->config.seed, "script"));
  L_ = luaL_newstate();
  HYPERNAS_CHECK(L_ != nullptr, "cannot create a Lua state (out of memory)");
  state_->L = L_;
  set_host_state(L_, state_.get());
  open_sandbox(L_);
  lua_newtable(L_);
  bind_core(L_);
  bind_plugins(L_);
  bind_data(L_);
  bind_train(L_);
  lua_setglobal(L_, "nas");
  lua_sethook(L_, cancel_hook, LUA_MASKCOUNT, 10000);
}

Host::~Host() {
  if (L_) lua_close(L_);  // runs __gc of every bound object before the store closes
}

fs::path Host::experiment_dir() const { return state_->experiment_dir; }

void Host::open_experiment(const std::string& script) {
  HostState& s = *state_;
  if (s.config.experiment.empty()) s.config.experiment = fs::path(script).stem().string();
  s.experiment_dir = s.config.results_root / s.config.experiment;
  s.store = store::SqliteStore::open(s.experiment_dir / "experiment.db");
  s.services.store = s.store.get();
  nlohmann::json args = nlohmann::json::object();
  for (const auto& [k, v] : s.config.args) args[k] = v;
  store::RunInfo info;
  info.experiment = s.config.experiment;
  info.script = script;
  info.args_json = nlohmann::json{{"set", args}, {"command", s.config.command_line}}.dump();
  info.seed = s.config.seed;
  info.versions_json = versions_json(s.config);
  s.run_id = s.store->begin_run(info);
  s.store->set_current_run(s.run_id);
  core::write_log(LogLevel::Info, "kernel",
                  cat("experiment '", s.config.experiment, "' in ", s.experiment_dir.string(),
                      " (run ", s.run_id, ", seed ", s.config.seed, ", ",
                      device::describe(s.config.device), ")"));
}

void Host::run_chunk(int load_status) {
  if (load_status != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load script";
    lua_pop(L_, 1);
    throw ScriptError(msg);
  }
  if (state_->config.time_limit_s)
    core::set_deadline(std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(*state_->config.time_limit_s)));
  int base = lua_gettop(L_);  // the chunk
  lua_pushcfunction(L_, traceback);
  lua_insert(L_, base);
  int status = lua_pcall(L_, 0, 0, base);
  lua_remove(L_, base);
  if (status != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "unknown Lua error";
    lua_pop(L_, 1);
    if (core::cancelled()) throw Cancelled(msg);
    throw ScriptError(msg);
  }
}

void Host::run_string(const std::string& code, const std::string& chunkname) {
  if (!state_->store) open_experiment("inline");
  run_chunk(luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t"));
}

void Host::run_file(const fs::path& script) {
  std::error_code ec;
  if (!fs::is_regular_file(script, ec)) throw Error(cat("script not found: ", script.string()));
  // Load first: a syntax error is reported before any experiment is created.
  int load = luaL_loadfilex(L_, script.string().c_str(), "t");
  if (load != LUA_OK) run_chunk(load);
  open_experiment(script.string());
  std::string state = "failed";
  try {
    run_chunk(load);
    state = "ok";
  } catch (const Cancelled&) {
    state = "cancelled";
    state_->store->end_run(state_->run_id, state);
    throw;
  } catch (...) {
    state_->store->end_run(state_->run_id, state);
    throw;
  }
  state_->store->end_run(state_->run_id, state);
}

}  // namespace hypernas::lua
