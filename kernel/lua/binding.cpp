#include "kernel/lua/binding.h"

#include <cmath>

#include "kernel/store/store.h"

namespace hypernas::lua {

namespace {
const char* kStateKey = "hypernas.host";
}

HostState& host_state(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kStateKey);
  auto* state = static_cast<HostState*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (state == nullptr) luaL_error(L, "HyperNAS host state missing");
  return *state;
}

void set_host_state(lua_State* L, HostState* state) {
  lua_pushlightuserdata(L, state);
  lua_setfield(L, LUA_REGISTRYINDEX, kStateKey);
}

int protect(lua_State* L, const std::function<int(lua_State*)>& body) {
  std::string message;
  try {
    return body(L);
  } catch (const std::exception& e) {
    message = e.what();
  }
  // Outside the catch block: no C++ exception is in flight when Lua raises its own.
  luaL_where(L, 1);
  lua_pushlstring(L, message.data(), message.size());
  lua_concat(L, 2);
  return lua_error(L);
}

static int object_gc(lua_State* L) {
  auto* box = static_cast<Boxed*>(lua_touserdata(L, 1));
  if (box) box->~Boxed();
  return 0;
}

static int object_tostring(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), lua_touserdata(L, 1));
  return 1;
}

void define_class(lua_State* L, const char* meta, const luaL_Reg* methods) {
  luaL_newmetatable(L, meta);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, object_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, object_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // scripts cannot reach or change the metatable
  lua_pop(L, 1);
}

Options table_to_options(lua_State* L, int index, const std::vector<std::string>& skip) {
  index = lua_absindex(L, index);
  luaL_checktype(L, index, LUA_TTABLE);
  Options out;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      throw UsageError("options table has a key that is not a string");
    }
    std::string key = lua_tostring(L, -2);
    bool skipped = false;
    for (const auto& s : skip) skipped = skipped || s == key;
    if (!skipped) {
      switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN: out.set(key, lua_toboolean(L, -1) != 0); break;
        case LUA_TNUMBER:
          if (lua_isinteger(L, -1)) out.set(key, static_cast<std::int64_t>(lua_tointeger(L, -1)));
          else out.set(key, static_cast<double>(lua_tonumber(L, -1)));
          break;
        case LUA_TSTRING: out.set(key, std::string(lua_tostring(L, -1))); break;
        default: {
          std::string type = luaL_typename(L, -1);
          lua_pop(L, 2);
          throw UsageError(
              cat("option '", key, "' has type ", type, "; expected a boolean, number or string"));
        }
      }
    }
    lua_pop(L, 1);
  }
  return out;
}

void check_keys(lua_State* L, int index, const char* what, const std::vector<std::string>& known) {
  index = lua_absindex(L, index);
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);
    std::string key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    bool found = false;
    for (const auto& k : known) found = found || key == k;
    if (!found) {
      lua_pop(L, 1);
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      if (key.empty()) throw UsageError(cat(what, ": keys must be strings; known keys: ", list));
      throw UsageError(cat(what, ": unknown key '", key, "'; known keys: ", list));
    }
  }
}

std::int64_t opt_int_field(lua_State* L, int index, const char* field, std::int64_t def) {
  lua_getfield(L, index, field);
  std::int64_t out = def;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    out = lua_tointegerx(L, -1, &ok);
    if (!ok) {
      lua_pop(L, 1);
      throw UsageError(cat("field '", field, "' must be an integer"));
    }
  }
  lua_pop(L, 1);
  return out;
}

bool opt_bool_field(lua_State* L, int index, const char* field, bool def) {
  lua_getfield(L, index, field);
  bool out = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1)) {
      lua_pop(L, 1);
      throw UsageError(cat("field '", field, "' must be true or false"));
    }
    out = lua_toboolean(L, -1) != 0;
  }
  lua_pop(L, 1);
  return out;
}

double opt_number_field(lua_State* L, int index, const char* field, double def) {
  lua_getfield(L, index, field);
  double out = def;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    out = lua_tonumberx(L, -1, &ok);
    if (!ok) {
      lua_pop(L, 1);
      throw UsageError(cat("field '", field, "' must be a number"));
    }
  }
  lua_pop(L, 1);
  return out;
}

std::string opt_string_field(lua_State* L, int index, const char* field, const std::string& def) {
  lua_getfield(L, index, field);
  std::string out = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      throw UsageError(cat("field '", field, "' must be a string"));
    }
    out = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return out;
}

void push_value(lua_State* L, const Value& v) {
  if (auto b = std::get_if<bool>(&v)) lua_pushboolean(L, *b);
  else if (auto i = std::get_if<std::int64_t>(&v)) lua_pushinteger(L, *i);
  else if (auto d = std::get_if<double>(&v)) lua_pushnumber(L, *d);
  else lua_pushstring(L, std::get<std::string>(v).c_str());
}

void push_candidate(lua_State* L, const Candidate& c, int rank) {
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, rank);
  lua_setfield(L, -2, "rank");
  lua_pushstring(L, c.arch.text.c_str());
  lua_setfield(L, -2, "arch");
  lua_pushstring(L, c.hash.c_str());
  lua_setfield(L, -2, "hash");
  lua_pushnumber(L, c.score.value);
  lua_setfield(L, -2, "score");
  lua_pushinteger(L, c.stats.params);
  lua_setfield(L, -2, "params");
  lua_pushinteger(L, c.stats.flops);
  lua_setfield(L, -2, "flops");
  lua_pushnumber(L, c.seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushboolean(L, c.reused);
  lua_setfield(L, -2, "reused");
  for (const auto& [k, v] : c.score.extra) {
    lua_getfield(L, -1, k.c_str());
    bool taken = !lua_isnil(L, -1);  // never shadow a standard field (params, score, ...)
    lua_pop(L, 1);
    if (taken) continue;
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k.c_str());
  }
  if (!c.score.exits.empty()) {
    push_exits(L, c.score.exits);
    lua_setfield(L, -2, "exits");
  }
}

void push_exits(lua_State* L, const std::vector<ExitScore>& exits) {
  lua_createtable(L, static_cast<int>(exits.size()), 0);
  for (std::size_t i = 0; i < exits.size(); ++i) {
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, exits[i].accuracy);
    lua_setfield(L, -2, "accuracy");
    lua_pushinteger(L, exits[i].flops);
    lua_setfield(L, -2, "flops");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

}  // namespace hypernas::lua
