// The `nas` functions that concern the run itself: arguments, logging, files, the store.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <boost/dll/runtime_symbol_info.hpp>

#include <nlohmann/json.hpp>

#include "kernel/core/cancel.h"
#include "kernel/device/device.h"
#include "kernel/lua/binding.h"
#include "kernel/plugin/registry.h"
#include "kernel/store/store.h"

namespace hypernas::lua {
namespace fs = std::filesystem;

fs::path experiment_file(lua_State* L, const std::string& relative) {
  fs::path p(relative);
  HYPERNAS_CHECK(!relative.empty() && p.is_relative(), "file name '", relative,
                 "' must be a relative path inside the experiment folder");
  for (const auto& part : p)
    HYPERNAS_CHECK(part != "..", "file name '", relative, "' must not contain '..'");
  return host_state(L).run->experiment_dir() / p;
}

store::SqliteStore& require_store(lua_State* L) { return host_state(L).run->store(); }

namespace {

void push_arg(lua_State* L, const std::string& value) {
  const std::string kind = classify_arg(value);
  if (kind == "bool") lua_pushboolean(L, value == "true");
  else if (kind == "int") lua_pushinteger(L, std::stoll(value));
  else if (kind == "real") lua_pushnumber(L, std::stod(value));
  else lua_pushstring(L, value.c_str());
}

/// nas.arg(name, default): the --set value of `name` converted to the default's type, or the
/// default. A value that does not convert is an error naming the key.
HYPERNAS_LUA_FN(l_arg) {
  const char* name = luaL_checkstring(L, 1);
  const auto& args = host_state(L).config.args;
  auto it = args.find(name);
  if (it == args.end()) {
    lua_settop(L, 2);
    return 1;
  }
  const std::string& v = it->second;
  const std::string kind = classify_arg(v);
  switch (lua_type(L, 2)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, 2) && kind != "int")
        throw UsageError(cat("--set ", name, "=", v, ": expected an integer"));
      if (kind != "int" && kind != "real")
        throw UsageError(cat("--set ", name, "=", v, ": expected a number"));
      push_arg(L, v);
      return 1;
    case LUA_TBOOLEAN:
      if (kind != "bool") throw UsageError(cat("--set ", name, "=", v, ": expected true or false"));
      lua_pushboolean(L, v == "true");
      return 1;
    case LUA_TSTRING: lua_pushstring(L, v.c_str()); return 1;
    default: push_arg(L, v); return 1;
  }
}

/// nas.log(...): one line on stderr, prefixed [script].
HYPERNAS_LUA_FN(l_log) {
  std::string line;
  for (int i = 1, n = lua_gettop(L); i <= n; ++i) {
    if (i > 1) line += ' ';
    line += luaL_tolstring(L, i, nullptr);
    lua_pop(L, 1);
  }
  core::write_log(LogLevel::Info, "script", line);
  return 0;
}

/// nas.plugins(): {{name=, kind=, version=, path=, summary=}, ...}
HYPERNAS_LUA_FN(l_plugins) {
  const auto& plugins = host_state(L).config.registry->plugins();
  lua_createtable(L, static_cast<int>(plugins.size()), 0);
  int i = 0;
  for (const auto& p : plugins) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, p.name.c_str());
    lua_setfield(L, -2, "name");
    lua_pushstring(L, kind_name(p.kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, p.version.c_str());
    lua_setfield(L, -2, "version");
    lua_pushstring(L, p.path.string().c_str());
    lua_setfield(L, -2, "path");
    lua_pushstring(L, p.summary.c_str());
    lua_setfield(L, -2, "summary");
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/// nas.on_candidate(fn | nil): fn(event, values) is called between candidates; returning
/// false stops the running task after the current candidate.
HYPERNAS_LUA_FN(l_on_candidate) {
  HostState& s = host_state(L);
  if (s.callback_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s.callback_ref);
  s.callback_ref = LUA_NOREF;
  s.services().notify = nullptr;
  if (lua_isnoneornil(L, 1)) return 0;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  s.callback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_State* state = L;
  HostState* host = &s;
  s.services().notify = [state, host](const std::string& event,
                                      const std::map<std::string, double>& values) {
    lua_rawgeti(state, LUA_REGISTRYINDEX, host->callback_ref);
    lua_pushstring(state, event.c_str());
    lua_createtable(state, 0, static_cast<int>(values.size()));
    for (const auto& [k, v] : values) {
      lua_pushnumber(state, v);
      lua_setfield(state, -2, k.c_str());
    }
    if (lua_pcall(state, 2, 1, 0) != LUA_OK) {
      std::string msg = lua_tostring(state, -1) ? lua_tostring(state, -1) : "error";
      lua_pop(state, 1);
      throw Error(cat("in nas.on_candidate callback: ", msg));
    }
    bool keep_going = !(lua_isboolean(state, -1) && !lua_toboolean(state, -1));
    lua_pop(state, 1);
    return keep_going;
  };
  return 0;
}

/// nas.write_file(name, text): writes (atomically: temp file, then rename) a file inside the
/// experiment folder and returns its path.
HYPERNAS_LUA_FN(l_write_file) {
  const std::string name = luaL_checkstring(L, 1);
  size_t len = 0;
  const char* text = luaL_checklstring(L, 2, &len);
  fs::path target = experiment_file(L, name);
  fs::create_directories(target.parent_path());
  fs::path tmp = target;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    HYPERNAS_CHECK(out.good(), "cannot write ", tmp.string());
    out.write(text, static_cast<std::streamsize>(len));
    HYPERNAS_CHECK(out.good(), "error while writing ", tmp.string());
  }
  fs::rename(tmp, target);
  lua_pushstring(L, target.string().c_str());
  return 1;
}

/// Splits one CSV line into fields: commas separate, double quotes quote ("" is a quote).
/// Returns false on an unterminated quote.
bool split_csv_line(const std::string& line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields->push_back(field);
      field.clear();
      was_quoted = false;
    } else if (c != '\r') {
      field += c;
    }
  }
  fields->push_back(field);
  return !quoted;
}

/// nas.read_csv(path): the rows of a CSV file with a header line, as tables keyed by the header's
/// names; fields that read as numbers become numbers. For ground truth a benchmark compares
/// against (e.g. NAS-Bench-201's accuracies); plugins never see it. Errors name the file and
/// line.
HYPERNAS_LUA_FN(l_read_csv) {
  const std::string path = luaL_checkstring(L, 1);
  std::ifstream in(path);
  if (!in.good()) throw Error(cat("nas.read_csv: cannot read ", path));
  std::string line;
  std::vector<std::string> header, fields;
  std::size_t number = 0;
  while (header.empty() && std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!split_csv_line(line, &header))
      throw Error(cat(path, ":", number, ": unterminated quote in the header"));
  }
  if (header.empty()) throw Error(cat(path, ": no header line (the file is empty)"));
  lua_newtable(L);
  lua_Integer row = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!split_csv_line(line, &fields)) throw Error(cat(path, ":", number, ": unterminated quote"));
    if (fields.size() != header.size())
      throw Error(cat(path, ":", number, ": expected ", header.size(), " fields (", header.size(),
                      " columns in the header), got ", fields.size()));
    lua_createtable(L, 0, static_cast<int>(header.size()));
    for (std::size_t i = 0; i < header.size(); ++i) {
      const std::string kind = classify_arg(fields[i]);
      if (kind == "int" || kind == "real") lua_pushnumber(L, std::stod(fields[i]));
      else lua_pushstring(L, fields[i].c_str());
      lua_setfield(L, -2, header[i].c_str());
    }
    lua_rawseti(L, -2, ++row);
  }
  return 1;
}

/// nas.evaluations([key [, { status = "ok" | "failed" | "all" }]]): the evaluations recorded in
/// this experiment under evaluation key `key` (surrogate:key{...}; nil or "": every key), in
/// the order recorded (a re-recorded one moves to the end); by default the successful ones:
/// {{arch=, hash=, surrogate=, score=, seconds=, status=, error=, <extra values such as params,
/// flops>}, ...}
HYPERNAS_LUA_FN(l_evaluations) {
  const std::string filter = luaL_optstring(L, 1, "");
  std::string status = "ok";
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "nas.evaluations(key, {...})", {"status"});
    status = opt_string_field(L, 2, "status", "ok");
    if (status != "ok" && status != "failed" && status != "all")
      throw UsageError(
          cat("nas.evaluations: status must be \"ok\", \"failed\" or \"all\", got '", status, "'"));
    if (status == "all") status.clear();
  }
  auto rows = require_store(L).evaluations(filter, status);
  lua_createtable(L, static_cast<int>(rows.size()), 0);
  int i = 0;
  for (const auto& r : rows) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, r.text.c_str());
    lua_setfield(L, -2, "arch");
    lua_pushstring(L, r.arch_hash.c_str());
    lua_setfield(L, -2, "hash");
    lua_pushstring(L, r.surrogate.c_str());
    lua_setfield(L, -2, "surrogate");
    lua_pushnumber(L, r.score);
    lua_setfield(L, -2, "score");
    lua_pushnumber(L, r.seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushstring(L, r.status.c_str());
    lua_setfield(L, -2, "status");
    if (!r.error.empty()) {
      lua_pushstring(L, r.error.c_str());
      lua_setfield(L, -2, "error");
    }
    for (const auto& [k, v] : r.extra) {  // side values (params, flops, loss, ...)
      lua_getfield(L, -1, k.c_str());
      const bool taken = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (taken) continue;
      lua_pushnumber(L, v);
      lua_setfield(L, -2, k.c_str());
    }
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/// nas.results_dir(): the experiment folder (results/<experiment>).
HYPERNAS_LUA_FN(l_results_dir) {
  lua_pushstring(L, host_state(L).run->experiment_dir().string().c_str());
  return 1;
}

/// Folders searched for presets: HYPERNAS_CONFIG_PATH (':'-separated), the install's
/// share/hypernas/configs, then the source tree's configs/.
std::vector<fs::path> preset_folders() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("HYPERNAS_CONFIG_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) out.emplace_back(item);
  }
  std::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / "share" / "hypernas" / "configs");
  out.emplace_back(HYPERNAS_SOURCE_CONFIG_DIR);
  return out;
}

/// nas.preset(name): the table returned by configs/<name>.lua. A preset is a plain Lua file
/// run with only the string, table and math libraries; it cannot reach `nas`.
HYPERNAS_LUA_FN(l_preset) {
  const std::string name = luaL_checkstring(L, 1);
  HYPERNAS_CHECK(!name.empty() && name.find('/') == std::string::npos &&
                     name.find("..") == std::string::npos,
                 "preset name '", name, "' must be a plain name such as 'nb201-small'");
  fs::path file;
  std::string searched;
  for (const auto& folder : preset_folders()) {
    searched += "\n  " + (folder / (name + ".lua")).string();
    if (fs::is_regular_file(folder / (name + ".lua"))) {
      file = folder / (name + ".lua");
      break;
    }
  }
  if (file.empty()) throw Error(cat("no preset named '", name, "'; looked for:", searched));
  if (luaL_loadfilex(L, file.string().c_str(), "t") != LUA_OK) throw Error(lua_tostring(L, -1));
  lua_createtable(L, 0, 4);  // the preset's whole environment
  for (const char* lib : {"string", "table", "math"}) {
    lua_getglobal(L, lib);
    lua_setfield(L, -2, lib);
  }
  lua_setupvalue(L, -2, 1);  // _ENV of the chunk
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) throw Error(lua_tostring(L, -1));
  if (!lua_istable(L, -1))
    throw Error(cat("preset ", file.string(), " must return a table, it returned a ",
                    luaL_typename(L, -1)));
  return 1;
}

/// nas.config_file(name): the path of a shipped configuration file ("adwp-intensive.json"),
/// looked up in the preset folders.
HYPERNAS_LUA_FN(l_config_file) {
  const std::string name = luaL_checkstring(L, 1);
  HYPERNAS_CHECK(!name.empty() && name.find('/') == std::string::npos &&
                     name.find("..") == std::string::npos,
                 "configuration file name '", name,
                 "' must be a plain name such as 'adwp-intensive.json'");
  std::string searched;
  for (const auto& folder : preset_folders()) {
    searched += "\n  " + (folder / name).string();
    if (fs::is_regular_file(folder / name)) {
      lua_pushstring(L, (folder / name).string().c_str());
      return 1;
    }
  }
  throw Error(cat("no configuration file named '", name, "'; looked for:", searched));
}

/// nas.search_epochs([run]): the recorded epochs of gradient searches (of `run`, a run key a
/// row carries as `run`; all when absent): runs in the order they started (the latest last),
/// each by epoch.
HYPERNAS_LUA_FN(l_search_epochs) {
  const std::string run = luaL_optstring(L, 1, "");
  const auto rows = require_store(L).search_epochs(run);
  lua_createtable(L, static_cast<int>(rows.size()), 0);
  int i = 0;
  for (const auto& e : rows) {
    lua_createtable(L, 0, 16);
    auto str = [&](const char* k, const std::string& v) {
      lua_pushstring(L, v.c_str());
      lua_setfield(L, -2, k);
    };
    auto num = [&](const char* k, double v) {
      lua_pushnumber(L, v);
      lua_setfield(L, -2, k);
    };
    str("run", e.run);
    str("strategy", e.strategy);
    lua_pushinteger(L, static_cast<lua_Integer>(e.epoch));
    lua_setfield(L, -2, "epoch");
    str("phase", e.phase);
    num("train_loss", e.train_loss);
    num("train_accuracy", e.train_accuracy);
    num("valid_loss", e.valid_loss);
    num("valid_accuracy", e.valid_accuracy);
    num("seconds", e.seconds);
    str("arch", e.arch_text);
    str("hash", e.arch_hash);
    if (!e.note.empty()) str("note", e.note);
    // alphas[b] = {shape = {rows, cols}, [1..rows] = {[1..cols] = logit}}
    lua_createtable(L, static_cast<int>(e.alphas.size()), 0);
    for (std::size_t b = 0; b < e.alphas.size(); ++b) {
      const auto& shape = e.alpha_shapes[b];
      const std::int64_t cols = shape.empty() ? 0 : shape.back();
      const std::int64_t rows = cols > 0 ? static_cast<std::int64_t>(e.alphas[b].size()) / cols : 0;
      lua_createtable(L, static_cast<int>(rows), 1);
      for (std::int64_t r = 0; r < rows; ++r) {
        lua_createtable(L, static_cast<int>(cols), 0);
        for (std::int64_t c = 0; c < cols; ++c) {
          lua_pushnumber(L, e.alphas[b][static_cast<std::size_t>(r * cols + c)]);
          lua_rawseti(L, -2, static_cast<lua_Integer>(c + 1));
        }
        lua_rawseti(L, -2, static_cast<lua_Integer>(r + 1));
      }
      lua_createtable(L, static_cast<int>(shape.size()), 0);
      for (std::size_t d = 0; d < shape.size(); ++d) {
        lua_pushinteger(L, static_cast<lua_Integer>(shape[d]));
        lua_rawseti(L, -2, static_cast<lua_Integer>(d + 1));
      }
      lua_setfield(L, -2, "shape");
      lua_rawseti(L, -2, static_cast<lua_Integer>(b + 1));
    }
    lua_setfield(L, -2, "alphas");
    for (const auto& [k, v] : e.extra) num(k.c_str(), v);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/// nas.clock(): seconds on a monotonic clock (differences time a step of a script).
HYPERNAS_LUA_FN(l_clock) {
  lua_pushnumber(
      L,
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  return 1;
}

/// nas.cancelled(): true once Ctrl-C was pressed or the time limit passed.
HYPERNAS_LUA_FN(l_cancelled) {
  lua_pushboolean(L, core::cancelled());
  return 1;
}

}  // namespace

void bind_core(lua_State* L) {
  HostState& s = host_state(L);
  const luaL_Reg fns[] = {{"arg", l_arg},
                          {"log", l_log},
                          {"plugins", l_plugins},
                          {"on_candidate", l_on_candidate},
                          {"write_file", l_write_file},
                          {"read_csv", l_read_csv},
                          {"evaluations", l_evaluations},
                          {"cancelled", l_cancelled},
                          {"preset", l_preset},
                          {"clock", l_clock},
                          {"config_file", l_config_file},
                          {"search_epochs", l_search_epochs},
                          {nullptr, nullptr}};
  luaL_setfuncs(L, fns, 0);
  lua_pushstring(L, HYPERNAS_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, static_cast<lua_Integer>(s.config.seed));
  lua_setfield(L, -2, "seed");
  lua_pushstring(L, device::describe(s.config.device).c_str());
  lua_setfield(L, -2, "device");
  lua_pushinteger(L, s.config.threads);
  lua_setfield(L, -2, "threads");
  lua_pushstring(L, s.config.command_line.c_str());  // as recorded in the store ("" if none)
  lua_setfield(L, -2, "command");
  lua_pushcfunction(L, l_results_dir);
  lua_setfield(L, -2, "results_dir");
  lua_createtable(L, 0, static_cast<int>(s.config.args.size()));
  for (const auto& [k, v] : s.config.args) {
    push_arg(L, v);
    lua_setfield(L, -2, k.c_str());
  }
  lua_setfield(L, -2, "args");
}

}  // namespace hypernas::lua
