#include "kernel/lua/host.h"

#include <lua.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <regex>

#include "kernel/core/cancel.h"
#include "kernel/core/log.h"
#include "kernel/device/device.h"
#include "kernel/lua/binding.h"
#include "kernel/store/store.h"

namespace hypernas::lua {
namespace fs = std::filesystem;

/// The Lua heap's bookkeeping: the state's allocator counts every byte it holds. Past `limit`
/// it arms memory_hook, so that the next VM instruction raises an ordinary error (with the
/// script's line and traceback); past `hard` it refuses to allocate (Lua's LUA_ERRMEM), so a
/// single huge request or a runaway C function cannot take the machine's memory.
struct LuaMemory {
  std::size_t used = 0;                                         ///< Bytes allocated now.
  std::size_t limit = std::numeric_limits<std::size_t>::max();  ///< The --lua-memory cap.
  std::size_t hard = std::numeric_limits<std::size_t>::max();   ///< limit + 25%.
  bool armed = false;      ///< memory_hook is set, or usage is still past the limit.
  bool refused = false;    ///< An allocation was refused at the hard cap.
  lua_State* L = nullptr;  ///< The main thread, whose hook is armed.
};

namespace {

constexpr int kCancelHookCount = 10000;

LuaMemory& memory_of(lua_State* L) {
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  return *static_cast<LuaMemory*>(ud);
}

// "Lua memory limit of 64 MiB exceeded (--lua-memory)".
std::string memory_message(const LuaMemory& m) {
  constexpr std::size_t MiB = std::size_t{1} << 20;
  const std::string size =
      m.limit % MiB == 0 ? std::to_string(m.limit / MiB) : cat(static_cast<double>(m.limit) / MiB);
  return cat("Lua memory limit of ", size, " MiB exceeded (--lua-memory)");
}

// Raises the memory error when the heap is past its limit even after a full collection (only
// live data counts). Called from hooks only: level 0 is then the running Lua function, whose
// line the message names.
void check_memory(lua_State* L) {
  const LuaMemory& m = memory_of(L);
  if (m.used <= m.limit) return;
  lua_gc(L, LUA_GCCOLLECT);
  if (m.used <= m.limit) return;
  luaL_where(L, 0);
  lua_pushstring(L, memory_message(m).c_str());
  lua_concat(L, 2);
  lua_error(L);
}

// Checked every 10,000 VM instructions: Ctrl-C and time limits stop a script between two steps
// even when it never calls into the engine; the memory check also covers coroutines, whose
// hooks memory_hook does not reach.
void cancel_hook(lua_State* L, lua_Debug*) {
  if (core::cancelled()) luaL_error(L, "%s", core::cancel_reason().c_str());
  check_memory(L);
}

// Armed by the allocator when the heap passes its limit: runs before the next VM instruction,
// puts the cancel hook back and raises the memory error.
void memory_hook(lua_State* L, lua_Debug*) {
  lua_sethook(L, cancel_hook, LUA_MASKCOUNT, kCancelHookCount);
  check_memory(L);
}

// The state's allocator (see LuaMemory). Lua assumes a block never fails to shrink.
void* counting_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto& m = *static_cast<LuaMemory*>(ud);
  const std::size_t old = ptr != nullptr ? osize : 0;  // without ptr, osize is a type tag
  if (nsize == 0) {
    std::free(ptr);
    m.used -= old;
    if (m.used <= m.limit) m.armed = false;
    return nullptr;
  }
  if (nsize > old && nsize - old > m.hard - std::min(m.used, m.hard)) {
    m.refused = true;
    return nullptr;
  }
  void* block = std::realloc(ptr, nsize);
  if (block == nullptr) return nsize <= old ? ptr : nullptr;
  m.used = m.used - old + nsize;
  if (m.used <= m.limit) {
    m.armed = false;
  } else if (!m.armed && m.L != nullptr) {
    m.armed = true;
    lua_sethook(m.L, memory_hook, LUA_MASKCOUNT, 1);  // safe anywhere, like from a signal
  }
  return block;
}

// As lauxlib's panic function (lua_newstate sets none): an error outside any protected call.
int panic(lua_State* L) {
  const char* msg = lua_tostring(L, -1);
  std::fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
               msg ? msg : "error object is not a string");
  return 0;
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
  const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
                           {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                           {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine}};
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
  session::SessionConfig sc;
  sc.registry = state_->config.registry;
  sc.results_root = state_->config.results_root;
  sc.experiment = state_->config.experiment;
  sc.seed = state_->config.seed;
  sc.device = state_->config.device;
  sc.threads = state_->config.threads;
  sc.args = state_->config.args;
  sc.command_line = state_->config.command_line;
  state_->run = std::make_unique<session::RunSession>(std::move(sc));
  state_->script_rng = Rng(core::derive_seed(state_->config.seed, "script"));
  // No cap while the state is set up (an error there would be unprotected); the cap applies
  // from the end of the constructor.
  memory_ = std::make_unique<LuaMemory>();
  L_ = lua_newstate(counting_alloc, memory_.get());
  HYPERNAS_CHECK(L_ != nullptr, "cannot create a Lua state (out of memory)");
  lua_atpanic(L_, panic);
  state_->L = L_;
  set_host_state(L_, state_.get());
  open_sandbox(L_);
  lua_newtable(L_);
  bind_core(L_);
  bind_plugins(L_);
  bind_data(L_);
  bind_train(L_);
  lua_setglobal(L_, "nas");
  lua_sethook(L_, cancel_hook, LUA_MASKCOUNT, kCancelHookCount);
  if (const std::size_t cap = state_->config.lua_memory_bytes; cap > 0) {
    memory_->limit = cap;
    memory_->hard = cap > std::numeric_limits<std::size_t>::max() - cap / 4
                        ? std::numeric_limits<std::size_t>::max()
                        : cap + cap / 4;
  }
  memory_->L = L_;
}

Host::~Host() {
  if (L_) lua_close(L_);  // runs __gc of every bound object before the store closes
}

fs::path Host::experiment_dir() const { return state_->run->experiment_dir(); }

void Host::open_experiment(const std::string& script) { state_->run->begin(script); }

void Host::run_chunk(int load_status) {
  if (load_status != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load script";
    lua_pop(L_, 1);
    if (load_status == LUA_ERRMEM && memory_->refused)
      msg = cat(memory_message(*memory_), " while loading the script");
    throw ScriptError(msg);
  }
  if (state_->config.time_limit_s)
    core::set_deadline(std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(*state_->config.time_limit_s)));
  int base = lua_gettop(L_);  // the chunk
  lua_Debug chunk;            // its name, for a memory error (which gets no traceback)
  lua_pushvalue(L_, base);
  lua_getinfo(L_, ">S", &chunk);
  memory_->refused = false;
  lua_pushcfunction(L_, traceback);
  lua_insert(L_, base);
  int status = lua_pcall(L_, 0, 0, base);
  lua_remove(L_, base);
  if (status != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "unknown Lua error";
    lua_pop(L_, 1);
    if (core::cancelled()) throw Cancelled(msg);
    // An allocation refused at the hard cap is LUA_ERRMEM, for which Lua calls no message
    // handler (so no line); or, re-raised by coroutine.wrap, "not enough memory" with one.
    const std::string oom = "not enough memory";
    if (memory_->refused && (status == LUA_ERRMEM || msg.rfind(oom, 0) == 0))
      msg = cat(chunk.short_src, ": ", memory_message(*memory_),
                msg.substr(std::min(msg.size(), oom.size())));
    else if (status == LUA_ERRMEM) msg = cat(chunk.short_src, ": ", msg);
    // What the script left is garbage now: free it before this state runs anything else.
    if (memory_->used > memory_->limit) lua_gc(L_, LUA_GCCOLLECT);
    throw ScriptError(msg);
  }
}

void Host::run_string(const std::string& code, const std::string& chunkname) {
  if (!state_->run->has_store()) open_experiment("inline");
  run_chunk(luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t"));
}

void Host::run_file(const fs::path& script) {
  std::error_code ec;
  if (!fs::is_regular_file(script, ec)) throw Error(cat("script not found: ", script.string()));
  // Load first: a syntax error is reported before any experiment is created.
  int load = luaL_loadfilex(L_, script.string().c_str(), "t");
  if (load != LUA_OK) run_chunk(load);
  open_experiment(script.string());
  try {
    run_chunk(load);
  } catch (const Cancelled&) {
    state_->run->finish("cancelled");
    throw;
  } catch (...) {
    state_->run->finish("failed");
    throw;
  }
  state_->run->finish("ok");
}

}  // namespace hypernas::lua
