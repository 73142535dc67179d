#pragma once
/// @file binding.h
/// @brief Internal helpers of the Lua binding: the host's shared state, error translation,
/// bound classes as userdata, and Lua table <-> Options conversion.

#include <lua.hpp>

#include <functional>
#include <memory>
#include <string>

#include <hypernas/options.h>
#include <hypernas/strategy.h>

#include "kernel/core/context.h"
#include "kernel/lua/host.h"
#include "kernel/session/session.h"

namespace hypernas::store {
class SqliteStore;
}

namespace hypernas::lua {

/// What every binding can reach: the configuration and the run session (services, executor,
/// store, plugin factories). The bindings only convert between Lua and the session's calls.
struct HostState {
  HostConfig config;                         ///< From the command line.
  std::unique_ptr<session::RunSession> run;  ///< The run: services, executor, store.
  int callback_ref = LUA_NOREF;              ///< nas.on_candidate function.
  Rng script_rng{0};                         ///< Draws the script makes (space:sample()).
  lua_State* L = nullptr;                    ///< The state.
  /// The run's services (device, seed, store, executor, callback).
  core::RunServices& services() { return run->services(); }
};

/// Throws UsageError unless every key of the table at `index` is in `known` (then lists them):
/// `what` names the call ("surrogate:fit{}").
void check_keys(lua_State* L, int index, const char* what, const std::vector<std::string>& known);

/// The HostState of a Lua state.
HostState& host_state(lua_State* L);

/// `relative` inside the experiment folder; absolute paths and '..' are refused (Error).
std::filesystem::path experiment_file(lua_State* L, const std::string& relative);

/// The experiment's store (open while a script runs); Error when none is open.
store::SqliteStore& require_store(lua_State* L);

/// Runs `body` and turns any C++ exception into a Lua error at the caller's line.
/// NOTE: Lua is built as C++ here (lua5.4-c++), so its own errors are C++ throws of a type that
/// is not std::exception; they pass through untouched.
int protect(lua_State* L, const std::function<int(lua_State*)>& body);

/// Declares a lua_CFunction that runs `name##_impl` under protect().
#define HYPERNAS_LUA_FN(name)                                                        \
  static int name##_impl(lua_State* L);                                              \
  static int name(lua_State* L) { return ::hypernas::lua::protect(L, name##_impl); } \
  static int name##_impl(lua_State* L)

/// A C++ object owned by a Lua userdata (type-erased; the metatable names the class).
struct Boxed {
  std::shared_ptr<void> ptr;  ///< The object; its deleter is the one it was created with.
};

/// Registers a bound class: metatable `meta` with methods, __index, __gc and __tostring.
void define_class(lua_State* L, const char* meta, const luaL_Reg* methods);

/// Pushes `object` as a userdata of class `meta`.
template <typename T>
void push_object(lua_State* L, const char* meta, std::shared_ptr<T> object) {
  void* mem = lua_newuserdatauv(L, sizeof(Boxed), 1);
  new (mem) Boxed{
      std::static_pointer_cast<void>(std::const_pointer_cast<std::remove_const_t<T>>(object))};
  luaL_setmetatable(L, meta);
}

/// The object at `index`, which must be a userdata of class `meta` (else a Lua error naming
/// the expected class). Only call with the T that was pushed under `meta`.
template <typename T>
std::shared_ptr<T> check_object(lua_State* L, int index, const char* meta) {
  auto* box = static_cast<Boxed*>(luaL_checkudata(L, index, meta));
  return std::static_pointer_cast<T>(box->ptr);
}

/// The object in field `field` of the table at `index`, or nullptr when absent; a Lua error
/// when present but of another class.
template <typename T>
std::shared_ptr<T> opt_field_object(lua_State* L, int index, const char* field, const char* meta) {
  lua_getfield(L, index, field);
  std::shared_ptr<T> out;
  if (!lua_isnil(L, -1)) {
    if (!luaL_testudata(L, -1, meta))
      luaL_error(L, "field '%s' must be a %s, got %s", field, meta, luaL_typename(L, -1));
    out = std::static_pointer_cast<T>(static_cast<Boxed*>(lua_touserdata(L, -1))->ptr);
  }
  lua_pop(L, 1);
  return out;
}

/// Converts the table at `index` to Options, skipping the keys in `skip`. Booleans, integers,
/// reals and strings are accepted; anything else is a UsageError naming the key.
Options table_to_options(lua_State* L, int index, const std::vector<std::string>& skip = {});

/// Integer field of a table, with a default; a Lua error naming the field on a wrong type.
std::int64_t opt_int_field(lua_State* L, int index, const char* field, std::int64_t def);
/// Boolean field of a table, with a default; a Lua error naming the field on a wrong type.
bool opt_bool_field(lua_State* L, int index, const char* field, bool def);
/// Number field of a table, with a default; a Lua error naming the field on a wrong type.
double opt_number_field(lua_State* L, int index, const char* field, double def);
/// String field of a table, with a default.
std::string opt_string_field(lua_State* L, int index, const char* field, const std::string& def);

/// Pushes a Value as the Lua value of the same type.
void push_value(lua_State* L, const Value& v);

/// Pushes a candidate as a table {rank, arch, hash, score, params, flops, seconds, reused, ...}.
void push_candidate(lua_State* L, const Candidate& c, int rank);
/// Pushes { { accuracy =, flops = }, ... }, one table per exit in order.
void push_exits(lua_State* L, const std::vector<ExitScore>& exits);

/// Stores `state` in the Lua registry (the host does this once).
void set_host_state(lua_State* L, HostState* state);

/// Class name of the dataset userdata (bound by the data module).
inline constexpr const char* kDatasetClass = "nas.Dataset";

/// Binders: each adds its functions to the `nas` table at the top of the stack.
void bind_core(lua_State* L);
void bind_plugins(lua_State* L);
void bind_data(lua_State* L);
void bind_train(lua_State* L);

}  // namespace hypernas::lua
