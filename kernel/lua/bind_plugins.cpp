// The `nas` functions that create plugin objects: spaces, surrogates, strategies.
#include <chrono>
#include <unordered_set>

#include "kernel/graph/serialize.h"
#include "kernel/lua/binding.h"
#include "kernel/plugin/registry.h"
#include "kernel/store/checkpoint.h"
#include "kernel/store/store.h"

namespace hypernas::lua {
namespace {

constexpr const char* kSpace = "nas.Space";
constexpr const char* kSurrogate = "nas.Surrogate";
constexpr const char* kStrategy = "nas.Strategy";

/// A surrogate with the name and options it was made with (they key its evaluations).
struct SurrogateHandle {
  std::shared_ptr<Surrogate> plugin;
  std::string name;
  std::string key;        ///< name{resolved options}
  std::string state_tag;  ///< "#<hash of its state>" once fitted or loaded; "" before.

  /// Re-tags after fit() or load(): scores of a surrogate in another state are not reused.
  void retag() {
    const std::string blob = plugin->save_state();
    state_tag = blob.empty() ? "" : cat("#", graph::hex64(graph::fnv1a64(blob)));
  }
  /// The key evaluations are recorded under: the surrogate, its state, and what it scored on.
  std::string evaluation_key(const Dataset* data, std::int64_t batch, std::int64_t images) const {
    if (!data) return key + state_tag;
    return cat(key, state_tag, "@", data->name(), "{batch=", batch, ",images=", images, "}");
  }
};

/// A strategy with its name.
struct StrategyHandle {
  std::shared_ptr<Strategy> plugin;
  std::string name;
};

const plugin::Registry& registry(lua_State* L) { return *host_state(L).config.registry; }

std::shared_ptr<SearchSpace> check_space(lua_State* L, int i) {
  return check_object<SearchSpace>(L, i, kSpace);
}

std::shared_ptr<SearchSpace> require_space_field(lua_State* L, int table) {
  auto space = opt_field_object<SearchSpace>(L, table, "space", kSpace);
  if (!space) throw UsageError("missing field 'space' (a nas.space{...})");
  return space;
}

std::shared_ptr<const Dataset> opt_dataset_field(lua_State* L, int table) {
  return opt_field_object<const Dataset>(L, table, "data", kDatasetClass);
}

void push_stats(lua_State* L, const ArchStats& st) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, st.params);
  lua_setfield(L, -2, "params");
  lua_pushinteger(L, st.flops);
  lua_setfield(L, -2, "flops");
}

// ---- nas.space ---------------------------------------------------------------------------

/// nas.space{ name = "nb201", data = <dataset>, <options> }
HYPERNAS_LUA_FN(l_space) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const std::string name = opt_string_field(L, 1, "name", "");
  if (name.empty())
    throw UsageError("nas.space{...} needs a name, e.g. nas.space{ name = \"nb201\" }");
  Options options = table_to_options(L, 1, {"name", "data"});
  if (auto data = opt_dataset_field(L, 1)) {
    ProblemSpec p = data->spec();
    if (!options.has("input_channels")) options.set("input_channels", p.channels);
    if (!options.has("input_size")) options.set("input_size", p.height);
    if (!options.has("classes")) options.set("classes", p.classes);
  }
  push_object(L, kSpace, registry(L).create_space(name, options));
  return 1;
}

/// space:name()
HYPERNAS_LUA_FN(space_name) {
  lua_pushstring(L, check_space(L, 1)->name().c_str());
  return 1;
}

/// space:sample([n]): one architecture string; with n, a list of n distinct ones (all of
/// them when the space has fewer).
HYPERNAS_LUA_FN(space_sample) {
  auto space = check_space(L, 1);
  Rng& rng = host_state(L).script_rng;
  if (lua_isnoneornil(L, 2)) {
    lua_pushstring(L, space->sample(rng).text.c_str());
    return 1;
  }
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0) throw UsageError(cat("space:sample(n): n must be >= 0, got ", n));
  if (auto size = space->size()) n = std::min<lua_Integer>(n, static_cast<lua_Integer>(*size));
  std::unordered_set<std::string> seen;
  lua_createtable(L, static_cast<int>(n), 0);
  std::int64_t tries = 0;
  while (static_cast<lua_Integer>(seen.size()) < n) {
    HYPERNAS_CHECK(++tries <= 100 * n + 1000, "space '", space->name(), "' yielded only ",
                   seen.size(), " distinct architectures in ", tries - 1, " draws");
    std::string text = space->sample(rng).text;
    if (seen.insert(text).second) {
      lua_pushstring(L, text.c_str());
      lua_rawseti(L, -2, static_cast<lua_Integer>(seen.size()));
    }
  }
  return 1;
}

/// space:parse(text): the canonical string of `text` (an error names what is malformed).
HYPERNAS_LUA_FN(space_parse) {
  auto space = check_space(L, 1);
  lua_pushstring(L, space->parse(luaL_checkstring(L, 2)).text.c_str());
  return 1;
}

/// space:size(): number of architectures, or nil for an unbounded space.
HYPERNAS_LUA_FN(space_size) {
  auto size = check_space(L, 1)->size();
  if (size) lua_pushinteger(L, static_cast<lua_Integer>(*size));
  else lua_pushnil(L);
  return 1;
}

/// space:at(index): the architecture with 0-based `index`.
HYPERNAS_LUA_FN(space_at) {
  auto space = check_space(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  auto size = space->size();
  if (i < 0 || (size && static_cast<std::uint64_t>(i) >= *size))
    throw UsageError(cat("space:at(", i, "): index out of range [0, ",
                         size ? std::to_string(*size) : std::string("?"), ")"));
  lua_pushstring(L, space->at(static_cast<std::uint64_t>(i)).text.c_str());
  return 1;
}

/// space:stats(text): {params=, flops=}
HYPERNAS_LUA_FN(space_stats) {
  auto space = check_space(L, 1);
  push_stats(L, space->stats(space->parse(luaL_checkstring(L, 2))));
  return 1;
}

/// space:info(text): {arch=, hash=, nodes=, edges=, params=, flops=, json=, dot=}
HYPERNAS_LUA_FN(space_info) {
  auto space = check_space(L, 1);
  Architecture arch = space->parse(luaL_checkstring(L, 2));
  ArchStats st = space->stats(arch);
  push_stats(L, st);
  lua_pushstring(L, arch.text.c_str());
  lua_setfield(L, -2, "arch");
  lua_pushstring(L, graph::arch_hash(arch).c_str());
  lua_setfield(L, -2, "hash");
  lua_pushinteger(L, static_cast<lua_Integer>(boost::num_vertices(arch.graph)));
  lua_setfield(L, -2, "nodes");
  lua_pushinteger(L, static_cast<lua_Integer>(boost::num_edges(arch.graph)));
  lua_setfield(L, -2, "edges");
  lua_pushstring(L, graph::canonical_json(arch).c_str());
  lua_setfield(L, -2, "json");
  lua_pushstring(L, graph::to_dot(arch).c_str());
  lua_setfield(L, -2, "dot");
  return 1;
}

// ---- nas.surrogate -----------------------------------------------------------------------

/// nas.surrogate(name, { <options> })
HYPERNAS_LUA_FN(l_surrogate) {
  const std::string name = luaL_checkstring(L, 1);
  Options given;
  if (!lua_isnoneornil(L, 2)) given = table_to_options(L, 2);
  const auto& reg = registry(L);
  auto handle = std::make_shared<SurrogateHandle>();
  handle->name = name;
  handle->key = cat(name, "{", reg.resolve(PluginKind::Surrogate, name, given).canonical(), "}");
  handle->plugin = reg.create_surrogate(name, given);
  push_object(L, kSurrogate, handle);
  return 1;
}

std::shared_ptr<SurrogateHandle> check_surrogate(lua_State* L, int i) {
  return check_object<SurrogateHandle>(L, i, kSurrogate);
}

/// surrogate:name(), surrogate:key() (name plus resolved options)
HYPERNAS_LUA_FN(surrogate_name) {
  lua_pushstring(L, check_surrogate(L, 1)->name.c_str());
  return 1;
}
HYPERNAS_LUA_FN(surrogate_key) {
  lua_pushstring(L, check_surrogate(L, 1)->key.c_str());
  return 1;
}

/// surrogate:capabilities(): list of capability names.
HYPERNAS_LUA_FN(surrogate_capabilities) {
  std::uint32_t caps = check_surrogate(L, 1)->plugin->capabilities();
  const std::pair<Capability, const char*> names[] = {
      {kTrainable, "trainable"},        {kGeneratesWeights, "generates_weights"},
      {kGraphConditioned, "graph"},     {kEncodingConditioned, "encoding"},
      {kArchGradient, "arch_gradient"}, {kMultiExit, "multi_exit"},
      {kNeedsData, "needs_data"}};
  lua_newtable(L);
  int i = 0;
  for (const auto& [flag, name] : names)
    if (caps & flag) {
      lua_pushstring(L, name);
      lua_rawseti(L, -2, ++i);
    }
  return 1;
}

/// surrogate:fit{ space=, data=, epochs=1, batch=64, steps=0 }: trains the surrogate and returns
/// the curves it reported, e.g. { step = {...}, loss = {...} } (empty for untrained surrogates).
HYPERNAS_LUA_FN(surrogate_fit) {
  auto h = check_surrogate(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  auto space = require_space_field(L, 2);
  auto data = opt_dataset_field(L, 2);
  FitRequest req;
  req.space = space.get();
  req.data = data.get();
  req.epochs = opt_int_field(L, 2, "epochs", 1);
  req.batch_size = opt_int_field(L, 2, "batch", 64);
  req.max_steps = opt_int_field(L, 2, "steps", 0);
  // Record the plugin's "fit_step" reports (step, loss, ...) to return them as curves; the
  // script's own callback still sees every event.
  HostState& s = host_state(L);
  std::map<std::string, std::vector<double>> curves;
  core::RunServices services = s.services;
  services.notify = [&curves, &s](const std::string& event, const std::map<std::string, double>& v) {
    if (event == "fit_step")
      for (const auto& [k, x] : v) curves[k].push_back(x);
    return s.services.notify ? s.services.notify(event, v) : true;
  };
  core::KernelContext ctx(services, h->name);
  h->plugin->fit(ctx, req);
  h->retag();
  lua_createtable(L, 0, static_cast<int>(curves.size()));
  for (const auto& [k, values] : curves) {
    lua_createtable(L, static_cast<int>(values.size()), 0);
    for (std::size_t i = 0; i < values.size(); ++i) {
      lua_pushnumber(L, values[i]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
    }
    lua_setfield(L, -2, k.c_str());
  }
  return 1;
}

/// surrogate:score{ space=, data=, archs={...}, batch=256, images=0 }: one score per
/// architecture, each recorded in the store.
HYPERNAS_LUA_FN(surrogate_score) {
  auto h = check_surrogate(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  auto space = require_space_field(L, 2);
  auto data = opt_dataset_field(L, 2);
  lua_getfield(L, 2, "archs");
  if (!lua_istable(L, -1)) throw UsageError("surrogate:score{...} needs archs = { \"...\", ... }");
  std::vector<Architecture> archs;
  for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; ++i) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING) throw UsageError(cat("archs[", i, "] is not a string"));
    archs.push_back(space->parse(lua_tostring(L, -1)));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  ScoreRequest req;
  req.space = space.get();
  req.data = data.get();
  req.batch_size = opt_int_field(L, 2, "batch", 256);
  req.max_images = opt_int_field(L, 2, "images", 0);
  for (const auto& a : archs) req.archs.push_back(&a);
  core::KernelContext ctx(host_state(L).services, h->name);
  auto start = std::chrono::steady_clock::now();
  std::vector<Score> scores = h->plugin->score(ctx, req);
  HYPERNAS_CHECK(scores.size() == archs.size(), "surrogate '", h->name, "' returned ",
                 scores.size(), " scores for ", archs.size(), " architectures");
  double each = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                std::max<std::size_t>(1, archs.size());
  auto& store = require_store(L);
  lua_createtable(L, static_cast<int>(scores.size()), 0);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    Evaluation e;
    e.arch_hash = store.record_architecture(archs[i]);
    e.surrogate = h->evaluation_key(data.get(), req.batch_size, req.max_images);
    e.score = scores[i].value;
    e.seconds = each;
    e.extra = scores[i].extra;
    store.record_evaluation(e);
    lua_pushnumber(L, scores[i].value);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

/// surrogate:save(file): writes the trained state as a versioned checkpoint, atomically, at
/// `file` inside the experiment folder; returns the full path.
HYPERNAS_LUA_FN(surrogate_save) {
  auto h = check_surrogate(L, 1);
  const std::filesystem::path file = experiment_file(L, luaL_checkstring(L, 2));
  const std::string options = h->key.substr(h->name.size() + 1, h->key.size() - h->name.size() - 2);
  store::write_checkpoint(file, {h->name, options, h->plugin->save_state()});
  lua_pushstring(L, file.string().c_str());
  return 1;
}

/// surrogate:load(path): restores a checkpoint written by surrogate:save() (any readable path).
HYPERNAS_LUA_FN(surrogate_load) {
  auto h = check_surrogate(L, 1);
  const std::string path = luaL_checkstring(L, 2);
  store::Checkpoint c = store::read_checkpoint(path);
  if (c.plugin != h->name)
    throw Error(cat("checkpoint ", path, " was written by surrogate '", c.plugin,
                    "', not '", h->name, "'"));
  try {
    h->plugin->load_state(c.blob);
  } catch (const std::exception& e) {
    throw Error(cat("checkpoint ", path, ": ", e.what()));
  }
  h->retag();
  return 0;
}

// ---- nas.strategy ------------------------------------------------------------------------

/// nas.strategy(name, { <options> })
HYPERNAS_LUA_FN(l_strategy) {
  const std::string name = luaL_checkstring(L, 1);
  Options given;
  if (!lua_isnoneornil(L, 2)) given = table_to_options(L, 2);
  auto handle = std::make_shared<StrategyHandle>();
  handle->name = name;
  handle->plugin = registry(L).create_strategy(name, given);
  push_object(L, kStrategy, handle);
  return 1;
}

/// strategy:run{ surrogate=, space=, data=, eval_batch=256, eval_images=0 }: the kept
/// candidates, best first, as tables (see push_candidate).
HYPERNAS_LUA_FN(strategy_run) {
  auto h = check_object<StrategyHandle>(L, 1, kStrategy);
  luaL_checktype(L, 2, LUA_TTABLE);
  auto surrogate = opt_field_object<SurrogateHandle>(L, 2, "surrogate", kSurrogate);
  if (!surrogate) throw UsageError("strategy:run{...} needs surrogate = nas.surrogate(...)");
  auto space = require_space_field(L, 2);
  auto data = opt_dataset_field(L, 2);
  if ((surrogate->plugin->capabilities() & kNeedsData) && !data)
    throw UsageError(cat("surrogate '", surrogate->name, "' needs data = nas.dataset{...}"));
  SearchRequest req;
  req.surrogate = surrogate->plugin.get();
  req.surrogate_key = "";  // set below, once the evaluation settings are known
  req.space = space.get();
  req.data = data.get();
  req.eval_batch_size = opt_int_field(L, 2, "eval_batch", 256);
  req.eval_images = opt_int_field(L, 2, "eval_images", 0);
  req.surrogate_key = surrogate->evaluation_key(data.get(), req.eval_batch_size, req.eval_images);
  require_store(L);
  core::KernelContext ctx(host_state(L).services, h->name);
  std::vector<Candidate> top = h->plugin->run(ctx, req);
  lua_createtable(L, static_cast<int>(top.size()), 0);
  for (std::size_t i = 0; i < top.size(); ++i) {
    push_candidate(L, top[i], static_cast<int>(i + 1));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

}  // namespace

void bind_plugins(lua_State* L) {
  const luaL_Reg space_methods[] = {{"name", space_name},   {"sample", space_sample},
                                    {"parse", space_parse}, {"size", space_size},
                                    {"at", space_at},       {"stats", space_stats},
                                    {"info", space_info},   {nullptr, nullptr}};
  define_class(L, kSpace, space_methods);
  const luaL_Reg surrogate_methods[] = {{"name", surrogate_name},
                                        {"key", surrogate_key},
                                        {"capabilities", surrogate_capabilities},
                                        {"fit", surrogate_fit},
                                        {"score", surrogate_score},
                                        {"save", surrogate_save},
                                        {"load", surrogate_load},
                                        {nullptr, nullptr}};
  define_class(L, kSurrogate, surrogate_methods);
  const luaL_Reg strategy_methods[] = {{"run", strategy_run}, {nullptr, nullptr}};
  define_class(L, kStrategy, strategy_methods);
  const luaL_Reg fns[] = {{"space", l_space},
                          {"surrogate", l_surrogate},
                          {"strategy", l_strategy},
                          {nullptr, nullptr}};
  luaL_setfuncs(L, fns, 0);
}

}  // namespace hypernas::lua
