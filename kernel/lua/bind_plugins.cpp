// The `nas` functions that create plugin objects: spaces, surrogates, strategies.
#include <chrono>
#include <limits>
#include <unordered_set>

#include "kernel/graph/serialize.h"
#include "kernel/lua/binding.h"
#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"

namespace hypernas::lua {
namespace {

constexpr const char* kSpace = "nas.Space";
constexpr const char* kSurrogate = "nas.Surrogate";
constexpr const char* kStrategy = "nas.Strategy";

using session::EvalSettings;
using session::SurrogateHandle;

/// A strategy with its name.
struct StrategyHandle {
  std::shared_ptr<Strategy> plugin;
  std::string name;
};

const plugin::Registry& registry(lua_State* L) { return *host_state(L).config.registry; }
session::RunSession& run(lua_State* L) { return *host_state(L).run; }

/// Evaluation settings from a request table: `batch` and `images` (or `eval_batch` and
/// `eval_images` with `prefixed`), `reuse`, `retry_failed`, `max_failures`.
EvalSettings read_settings(lua_State* L, int table, bool prefixed) {
  EvalSettings e;
  e.batch_size = opt_int_field(L, table, prefixed ? "eval_batch" : "batch", e.batch_size);
  e.max_images = opt_int_field(L, table, prefixed ? "eval_images" : "images", e.max_images);
  e.reuse = opt_bool_field(L, table, "reuse", e.reuse);
  e.retry_failed = opt_bool_field(L, table, "retry_failed", e.retry_failed);
  e.max_failures = opt_number_field(L, table, "max_failures", e.max_failures);
  return e;
}

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
  auto data = opt_dataset_field(L, 1);
  push_object(L, kSpace, run(L).make_space(name, options, data.get()));
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

/// space:mutate(text, p): a random neighbour of `text` (every choice redrawn with probability
/// p, SearchSpace::mutate, ABI 1.5), drawn from the script's random stream.
HYPERNAS_LUA_FN(space_mutate) {
  auto space = check_space(L, 1);
  const std::string text = luaL_checkstring(L, 2);
  const double p = luaL_checknumber(L, 3);
  if (!(p >= 0.0 && p <= 1.0))
    throw UsageError(cat("space:mutate(text, p): p must be in [0, 1], got ", p));
  const std::uint32_t minor = run(L).space_abi_minor(*space);
  if (minor < 5)
    throw Error(cat("space '", space->name(), "' was built with ABI 1.", minor,
                    "; mutate() came with ABI 1.5"));
  const Architecture arch = space->parse(text);
  lua_pushstring(L, space->mutate(arch, host_state(L).script_rng, p).text.c_str());
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

/// space:relaxation(): the space's continuous relaxation, { blocks = { { name =, shape = {rows,
/// cols} }, ... }, mixes = { { label =, block =, row =, col = }, ... } } (block, row and col
/// 1-based, as Lua indexes the α tables of nas.search_epochs()); nil for a space without
/// architecture parameters. Error for a space built with an ABI older than 1.4.
HYPERNAS_LUA_FN(space_relaxation) {
  auto space = check_space(L, 1);
  const std::vector<ArchParamSpec> specs = space->arch_params();
  if (specs.empty()) {
    lua_pushnil(L);
    return 1;
  }
  const plugin::PluginInfo* info = run(L).registry().find(PluginKind::Space, space->name());
  if (info && info->abi_minor < 4)
    throw Error(cat("space '", space->name(), "' was built with ABI 1.", info->abi_minor,
                    "; relaxed networks came with ABI 1.4"));
  const Relaxation r = space->relaxed();
  lua_createtable(L, 0, 2);
  lua_createtable(L, static_cast<int>(specs.size()), 0);
  for (std::size_t b = 0; b < specs.size(); ++b) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, specs[b].name.c_str());
    lua_setfield(L, -2, "name");
    lua_createtable(L, static_cast<int>(specs[b].shape.size()), 0);
    for (std::size_t d = 0; d < specs[b].shape.size(); ++d) {
      lua_pushinteger(L, static_cast<lua_Integer>(specs[b].shape[d]));
      lua_rawseti(L, -2, static_cast<lua_Integer>(d + 1));
    }
    lua_setfield(L, -2, "shape");
    lua_rawseti(L, -2, static_cast<lua_Integer>(b + 1));
  }
  lua_setfield(L, -2, "blocks");
  lua_createtable(L, static_cast<int>(r.mixes.size()), 0);
  for (std::size_t i = 0; i < r.mixes.size(); ++i) {
    const MixChoice& m = r.mixes[i];
    lua_createtable(L, 0, 4);
    lua_pushstring(L, m.label.c_str());
    lua_setfield(L, -2, "label");
    lua_pushinteger(L, static_cast<lua_Integer>(m.block + 1));
    lua_setfield(L, -2, "block");
    lua_pushinteger(L, static_cast<lua_Integer>(m.row + 1));
    lua_setfield(L, -2, "row");
    lua_pushinteger(L, static_cast<lua_Integer>(m.col + 1));
    lua_setfield(L, -2, "col");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "mixes");
  return 1;
}

// ---- nas.surrogate -----------------------------------------------------------------------

/// nas.surrogate(name, { <options> })
HYPERNAS_LUA_FN(l_surrogate) {
  const std::string name = luaL_checkstring(L, 1);
  Options given;
  if (!lua_isnoneornil(L, 2)) given = table_to_options(L, 2);
  push_object(L, kSurrogate, run(L).make_surrogate(name, given));
  return 1;
}

std::shared_ptr<SurrogateHandle> check_surrogate(lua_State* L, int i) {
  return check_object<SurrogateHandle>(L, i, kSurrogate);
}

/// surrogate:name()
HYPERNAS_LUA_FN(surrogate_name) {
  lua_pushstring(L, check_surrogate(L, 1)->name().c_str());
  return 1;
}

/// surrogate:key([{ data =, batch = 256, images = 0 }]): the evaluation key its scores are
/// stored under for those settings (what nas.evaluations(key) filters on). It holds exactly
/// what changes a score: the name, the options that affect scores, the trained state, and,
/// where the surrogate reads them, the dataset, the evaluation settings and the run's seed.
HYPERNAS_LUA_FN(surrogate_key) {
  auto h = check_surrogate(L, 1);
  EvalSettings settings;
  std::shared_ptr<const Dataset> data;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "surrogate:key{}", {"data", "batch", "images"});
    data = opt_dataset_field(L, 2);
    settings = read_settings(L, 2, false);
  }
  lua_pushstring(L, h->evaluation_key(data.get(), settings, run(L).services().seed).c_str());
  return 1;
}

/// surrogate:capabilities(): list of capability names.
HYPERNAS_LUA_FN(surrogate_capabilities) {
  std::uint32_t caps = check_surrogate(L, 1)->plugin().capabilities();
  const std::pair<Capability, const char*> names[] = {{kTrainable, "trainable"},
                                                      {kGeneratesWeights, "generates_weights"},
                                                      {kGraphConditioned, "graph"},
                                                      {kEncodingConditioned, "encoding"},
                                                      {kArchGradient, "arch_gradient"},
                                                      {kMultiExit, "multi_exit"},
                                                      {kNeedsData, "needs_data"},
                                                      {kUsesSeed, "uses_seed"},
                                                      {kReadsEvalBatch, "reads_eval_batch"},
                                                      {kReadsEvalImages, "reads_eval_images"}};
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
  check_keys(L, 2, "surrogate:fit{}", {"space", "data", "epochs", "batch", "steps"});
  auto space = require_space_field(L, 2);
  auto data = opt_dataset_field(L, 2);
  run(L).check_space_for(*h, *space);
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
  core::RunServices services = s.services();
  services.notify = [&curves, &s](const std::string& event,
                                  const std::map<std::string, double>& v) {
    if (event == "fit_step")
      for (const auto& [k, x] : v) curves[k].push_back(x);
    return s.services().notify ? s.services().notify(event, v) : true;
  };
  core::KernelContext ctx(services, h->name());
  h->plugin().fit(ctx, req);
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

/// surrogate:score{ space=, data=, archs={...}, batch=256, images=0, reuse=true,
/// retry_failed=false, max_failures=0.75 }: one score per architecture, through the evaluation
/// service (recorded in the store, reused when already there). A failed architecture scores
/// NaN; the second result lists the failures as { arch=, reason= }.
HYPERNAS_LUA_FN(surrogate_score) {
  auto h = check_surrogate(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  check_keys(L, 2, "surrogate:score{}",
             {"space", "data", "archs", "batch", "images", "reuse", "retry_failed",
              "max_failures"});
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
  const EvalSettings settings = read_settings(L, 2, false);
  Evaluated result = run(L).score(h, *space, data.get(), archs, settings, h->name() + " score");
  std::map<std::string, double> by_text;  // a space's canonical text names its architecture
  for (const auto& c : result.scored) by_text[c.arch.text] = c.score.value;
  lua_createtable(L, static_cast<int>(archs.size()), 0);
  for (std::size_t i = 0; i < archs.size(); ++i) {
    auto it = by_text.find(archs[i].text);
    lua_pushnumber(L, it == by_text.end() ? std::numeric_limits<double>::quiet_NaN() : it->second);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_createtable(L, static_cast<int>(result.failed.size()), 0);
  for (std::size_t i = 0; i < result.failed.size(); ++i) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, result.failed[i].arch.text.c_str());
    lua_setfield(L, -2, "arch");
    lua_pushstring(L, result.failed[i].reason.c_str());
    lua_setfield(L, -2, "reason");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 2;
}

/// surrogate:save(file): writes the trained state as a versioned checkpoint, atomically, at
/// `file` inside the experiment folder; returns the full path.
HYPERNAS_LUA_FN(surrogate_save) {
  auto h = check_surrogate(L, 1);
  const std::filesystem::path file = experiment_file(L, luaL_checkstring(L, 2));
  h->save_checkpoint(file);
  lua_pushstring(L, file.string().c_str());
  return 1;
}

/// surrogate:load(path): restores a checkpoint written by surrogate:save() (any readable path).
HYPERNAS_LUA_FN(surrogate_load) {
  check_surrogate(L, 1)->load_checkpoint(luaL_checkstring(L, 2));
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

/// strategy:run{ surrogate=, space=, data=, eval_batch=256, eval_images=0, reuse=true,
/// retry_failed=false, max_failures=0.75 }: the kept candidates, best first, as tables (see
/// push_candidate). Every candidate is scored through the evaluation service.
HYPERNAS_LUA_FN(strategy_run) {
  auto h = check_object<StrategyHandle>(L, 1, kStrategy);
  luaL_checktype(L, 2, LUA_TTABLE);
  check_keys(L, 2, "strategy:run{}",
             {"surrogate", "space", "data", "eval_batch", "eval_images", "reuse", "retry_failed",
              "max_failures"});
  auto surrogate = opt_field_object<SurrogateHandle>(L, 2, "surrogate", kSurrogate);
  if (!surrogate) throw UsageError("strategy:run{...} needs surrogate = nas.surrogate(...)");
  auto space = require_space_field(L, 2);
  auto data = opt_dataset_field(L, 2);
  const EvalSettings settings = read_settings(L, 2, true);
  std::vector<Candidate> top =
      run(L).search(*h->plugin, h->name, surrogate, *space, data.get(), settings);
  lua_createtable(L, static_cast<int>(top.size()), 0);
  for (std::size_t i = 0; i < top.size(); ++i) {
    push_candidate(L, top[i], static_cast<int>(i + 1));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

}  // namespace

void bind_plugins(lua_State* L) {
  const luaL_Reg space_methods[] = {{"name", space_name},     {"sample", space_sample},
                                    {"parse", space_parse},   {"size", space_size},
                                    {"at", space_at},         {"stats", space_stats},
                                    {"info", space_info},     {"relaxation", space_relaxation},
                                    {"mutate", space_mutate}, {nullptr, nullptr}};
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
