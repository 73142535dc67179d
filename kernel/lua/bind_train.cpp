// nas.train: training an architecture from scratch (the ground truth every ranking needs).
#include "kernel/lua/binding.h"
#include "kernel/store/store.h"
#include "kernel/train/train.h"

namespace hypernas::lua {
namespace {

void push_numbers(lua_State* L, const std::vector<double>& v, const char* field) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (std::size_t i = 0; i < v.size(); ++i) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, field);
}

/// nas.train{ arch = "...", space = <space>, data = <dataset>, reuse = true, <recipe> }
/// Trains from scratch and returns { arch, hash, test_accuracy, valid_accuracy = {...},
/// train_loss = {...}, seconds, params, flops, reused, recipe }, and for a multi-exit network
/// exits = { { accuracy =, flops = }, ... } (test accuracy and FLOPs of every exit, in exit
/// order; test_accuracy is the last one's). The recipe keys are train::TrainOptions
/// (epochs, batch, lr, momentum, nesterov, weight_decay, label_smoothing, schedule, ...). With
/// reuse, a training of the same architecture with the same recipe already in the experiment's
/// store is returned instead of training again.
HYPERNAS_LUA_FN(l_train) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const std::string text = opt_string_field(L, 1, "arch", "");
  if (text.empty()) throw UsageError("nas.train{...} needs arch = \"<architecture string>\"");
  auto space = opt_field_object<SearchSpace>(L, 1, "space", "nas.Space");
  if (!space) throw UsageError("nas.train{...} needs space = nas.space{...}");
  auto data = opt_field_object<const Dataset>(L, 1, "data", kDatasetClass);
  if (!data) throw UsageError("nas.train{...} needs data = nas.dataset{...}");
  lua_getfield(L, 1, "reuse");
  const bool reuse = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  const train::TrainOptions options =
      train::TrainOptions::from_options(table_to_options(L, 1, {"arch", "space", "data", "reuse"}));
  const Architecture arch = space->parse(text);
  const ArchStats stats = space->stats(arch);
  HostState& s = host_state(L);
  auto& store = require_store(L);

  TrainingRecord record;
  std::vector<ExitScore> exits;
  bool reused = false;
  const std::string hash = store.hash(arch);
  if (reuse)
    for (const auto& row : store.trainings(hash))
      if (row.record.recipe == options.recipe()) {
        record = row.record;
        exits = row.exits;
        reused = true;
      }
  if (!reused) {
    core::KernelContext ctx(s.services(), "train");
    train::TrainResult r = train::train(ctx, arch, *data, options, s.run->executor());
    record = std::move(r.record);
    exits = std::move(r.exits);
  }
  lua_createtable(L, 0, 10);
  lua_pushstring(L, arch.text.c_str());
  lua_setfield(L, -2, "arch");
  lua_pushstring(L, hash.c_str());
  lua_setfield(L, -2, "hash");
  lua_pushnumber(L, record.test_accuracy);
  lua_setfield(L, -2, "test_accuracy");
  push_numbers(L, record.valid_accuracy, "valid_accuracy");
  push_numbers(L, record.train_loss, "train_loss");
  lua_pushnumber(L, record.seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushinteger(L, stats.params);
  lua_setfield(L, -2, "params");
  lua_pushinteger(L, stats.flops);
  lua_setfield(L, -2, "flops");
  lua_pushboolean(L, reused);
  lua_setfield(L, -2, "reused");
  lua_pushstring(L, record.recipe.c_str());
  lua_setfield(L, -2, "recipe");
  if (!exits.empty()) {
    push_exits(L, exits);
    lua_setfield(L, -2, "exits");
  }
  return 1;
}

}  // namespace

void bind_train(lua_State* L) {
  lua_pushcfunction(L, l_train);
  lua_setfield(L, -2, "train");
}

}  // namespace hypernas::lua
