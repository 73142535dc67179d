// The `nas` functions for data and measurement: datasets and ranking metrics.
#include <hypernas/anytime.h>

#include "kernel/data/dataset.h"
#include "kernel/lua/binding.h"
#include "kernel/metrics/metrics.h"
#include "kernel/report/plot.h"

namespace hypernas::lua {
namespace {

std::shared_ptr<const data::ImageDataset> check_dataset(lua_State* L, int i) {
  // Every dataset the kernel opens is an ImageDataset; the userdata holds it as a Dataset.
  return std::static_pointer_cast<const data::ImageDataset>(
      check_object<const Dataset>(L, i, kDatasetClass));
}

Split check_split(lua_State* L, int i) {
  const std::string s = luaL_optstring(L, i, "train");
  if (s == "train") return Split::Train;
  if (s == "valid") return Split::Valid;
  if (s == "test") return Split::Test;
  throw UsageError(cat("unknown split '", s, "': expected train, valid or test"));
}

/// nas.dataset{ name = "fashion-mnist", root = ..., valid = 5000, split_seed = 0,
///   normalize = true, crop_padding = ..., flip = ..., cutout = 0, cache = true }
HYPERNAS_LUA_FN(l_dataset) {
  luaL_checktype(L, 1, LUA_TTABLE);
  Options o = table_to_options(L, 1);
  static const ParamTable table = [] {
    ParamTable t;
    t.add_string("name", "", "dataset name");
    t.add_string("root", "", "folder holding the files (default: the dataset's usual place)");
    t.add_int("valid", 5000, "training examples held out for validation", 0);
    t.add_int("split_seed", 0, "seed of the train/valid split", 0);
    t.add_bool("normalize", true, "per-channel normalisation");
    t.add_int("crop_padding", -1, "random-crop padding (-1: the dataset's default)", -1, 64);
    t.add_string("flip", "default", "horizontal flip", {"default", "true", "false"});
    t.add_int("cutout", 0, "cutout square side (0: off)", 0);
    t.add_bool("cache", true, "cache decoded images");
    return t;
  }();
  // `flip` may come as a Lua boolean.
  if (o.has("flip") && std::holds_alternative<bool>(o.at("flip")))
    o.set("flip", std::string(o.get_bool("flip") ? "true" : "false"));
  Options r = table.resolve(o, "nas.dataset");
  data::DatasetOptions d;
  d.name = r.get_string("name");
  if (d.name.empty()) {
    std::string names;
    for (const auto& n : data::dataset_names()) names += (names.empty() ? "" : ", ") + n;
    throw UsageError(cat("nas.dataset{...} needs a name: one of ", names));
  }
  d.root = r.get_string("root");
  d.valid = r.get_int("valid");
  d.split_seed = static_cast<std::uint64_t>(r.get_int("split_seed"));
  d.normalize = r.get_bool("normalize");
  if (r.get_int("crop_padding") >= 0) d.crop_padding = r.get_int("crop_padding");
  if (r.get_string("flip") != "default") d.flip = r.get_string("flip") == "true";
  d.cutout = r.get_int("cutout");
  d.cache = r.get_bool("cache");
  push_object(L, kDatasetClass,
              std::shared_ptr<const Dataset>(
                  data::load_image_dataset(d, host_state(L).services().device)));
  return 1;
}

/// data:name()
HYPERNAS_LUA_FN(dataset_name) {
  lua_pushstring(L, check_dataset(L, 1)->name().c_str());
  return 1;
}

/// data:size([split]): examples in the split (default train).
HYPERNAS_LUA_FN(dataset_size) {
  auto d = check_dataset(L, 1);
  lua_pushinteger(L, d->size(check_split(L, 2)));
  return 1;
}

/// data:spec(): {channels=, height=, width=, classes=}
HYPERNAS_LUA_FN(dataset_spec) {
  ProblemSpec p = check_dataset(L, 1)->spec();
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, p.channels);
  lua_setfield(L, -2, "channels");
  lua_pushinteger(L, p.height);
  lua_setfield(L, -2, "height");
  lua_pushinteger(L, p.width);
  lua_setfield(L, -2, "width");
  lua_pushinteger(L, p.classes);
  lua_setfield(L, -2, "classes");
  return 1;
}

/// data:classes(): the class names, label order.
HYPERNAS_LUA_FN(dataset_classes) {
  const auto& classes = check_dataset(L, 1)->classes();
  lua_createtable(L, static_cast<int>(classes.size()), 0);
  for (std::size_t i = 0; i < classes.size(); ++i) {
    lua_pushstring(L, classes[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

std::vector<double> check_numbers(lua_State* L, int i, const char* what) {
  luaL_checktype(L, i, LUA_TTABLE);
  std::vector<double> out;
  for (lua_Integer k = 1, n = luaL_len(L, i); k <= n; ++k) {
    lua_rawgeti(L, i, k);
    int ok = 0;
    double v = lua_tonumberx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok) throw UsageError(cat(what, "[", k, "] is not a number"));
    out.push_back(v);
  }
  return out;
}

#define HYPERNAS_METRIC(fn)                                                             \
  HYPERNAS_LUA_FN(l_##fn) {                                                             \
    lua_pushnumber(L, metrics::fn(check_numbers(L, 1, "x"), check_numbers(L, 2, "y"))); \
    return 1;                                                                           \
  }
HYPERNAS_METRIC(pearson)
HYPERNAS_METRIC(spearman)
HYPERNAS_METRIC(kendall)
#undef HYPERNAS_METRIC

/// nas.metrics.top_k_overlap(x, y, k)
HYPERNAS_LUA_FN(l_top_k) {
  lua_Integer k = luaL_checkinteger(L, 3);
  if (k < 1) throw UsageError(cat("k must be >= 1, got ", k));
  lua_pushnumber(L, metrics::top_k_overlap(check_numbers(L, 1, "x"), check_numbers(L, 2, "y"),
                                           static_cast<std::size_t>(k)));
  return 1;
}

/// nas.metrics.bootstrap(metric, x, y [, { samples = 1000, level = 0.95, seed = 0 }]):
/// value, low, high: a correlation ("pearson", "spearman", "kendall") with its percentile
/// bootstrap interval.
HYPERNAS_LUA_FN(l_bootstrap) {
  const std::string metric = luaL_checkstring(L, 1);
  std::int64_t samples = 1000, seed = 0;
  double level = 0.95;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    check_keys(L, 4, "nas.metrics.bootstrap(..., {})", {"samples", "level", "seed"});
    samples = opt_int_field(L, 4, "samples", samples);
    level = opt_number_field(L, 4, "level", level);
    seed = opt_int_field(L, 4, "seed", seed);
  }
  if (samples < 10) throw UsageError(cat("samples must be >= 10, got ", samples));
  const metrics::Interval r =
      metrics::bootstrap(metric, check_numbers(L, 2, "x"), check_numbers(L, 3, "y"),
                         static_cast<std::size_t>(samples), level,
                         static_cast<std::uint64_t>(seed));
  lua_pushnumber(L, r.value);
  lua_pushnumber(L, r.low);
  lua_pushnumber(L, r.high);
  return 3;
}

/// Reads { flops =, accuracy = } tables from the list at `list` (`what` names it in messages).
std::vector<ExitScore> check_exit_points(lua_State* L, int list, const char* what) {
  luaL_checktype(L, list, LUA_TTABLE);
  std::vector<ExitScore> out;
  for (lua_Integer i = 1, n = luaL_len(L, list); i <= n; ++i) {
    lua_rawgeti(L, list, i);
    const int t = lua_gettop(L);
    if (!lua_istable(L, t))
      throw UsageError(cat(what, "[", i, "] is not a table { flops =, accuracy = }"));
    ExitScore e;
    lua_getfield(L, t, "flops");
    int ok = 0;
    e.flops = static_cast<std::int64_t>(std::llround(lua_tonumberx(L, -1, &ok)));
    if (!ok) throw UsageError(cat(what, "[", i, "].flops is not a number"));
    lua_getfield(L, t, "accuracy");
    e.accuracy = lua_tonumberx(L, -1, &ok);
    if (!ok) throw UsageError(cat(what, "[", i, "].accuracy is not a number"));
    lua_pop(L, 3);
    out.push_back(e);
  }
  return out;
}

/// nas.metrics.anytime_auc(exits, { lo =, hi =, axis = "linear" | "log" }): the normalised area
/// under the step curve of `exits` ({ { flops =, accuracy = }, ... }) over FLOPs [lo, hi]
/// (hypernas/anytime.h). lo and hi default to the exits' own first and last FLOPs.
HYPERNAS_LUA_FN(l_anytime_auc) {
  const std::vector<ExitScore> exits = check_exit_points(L, 1, "exits");
  if (exits.empty()) throw UsageError("nas.metrics.anytime_auc(exits): exits is empty");
  double lo = static_cast<double>(exits.front().flops);
  double hi = static_cast<double>(exits.front().flops);
  for (const ExitScore& e : exits) {
    lo = std::min(lo, static_cast<double>(e.flops));
    hi = std::max(hi, static_cast<double>(e.flops));
  }
  std::string axis = "linear";
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "nas.metrics.anytime_auc(exits, {})", {"lo", "hi", "axis"});
    lo = opt_number_field(L, 2, "lo", lo);
    hi = opt_number_field(L, 2, "hi", hi);
    axis = opt_string_field(L, 2, "axis", axis);
  }
  if (axis != "linear" && axis != "log")
    throw UsageError(
        cat("nas.metrics.anytime_auc: axis must be \"linear\" or \"log\", got '", axis, "'"));
  if (!(lo < hi))
    throw UsageError(cat("nas.metrics.anytime_auc: needs lo < hi, got [", lo, ", ", hi,
                         "] (one exit: give the range)"));
  lua_pushnumber(L, anytime_auc(exits, lo, hi, axis == "log" ? FlopsAxis::Log : FlopsAxis::Linear));
  return 1;
}

/// nas.metrics.pareto_front(points): the points of `points` ({ { flops =, accuracy =, ... },
/// ... }, any other fields kept) that no other point dominates, as the same tables, by
/// increasing FLOPs (hypernas/anytime.h).
HYPERNAS_LUA_FN(l_pareto_front) {
  const std::vector<ExitScore> points = check_exit_points(L, 1, "points");
  std::vector<FrontPoint> in;
  for (std::size_t i = 0; i < points.size(); ++i)
    in.push_back({points[i].flops, points[i].accuracy, i, 0});
  const std::vector<FrontPoint> front = pareto_front(std::move(in));
  lua_createtable(L, static_cast<int>(front.size()), 0);
  for (std::size_t i = 0; i < front.size(); ++i) {
    lua_rawgeti(L, 1, static_cast<lua_Integer>(front[i].source + 1));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

/// The list of series at stack index `list`: { { name =, x =, y =, style = }, ... }. `where`
/// prefixes the messages ("series", "panels[2].series").
std::vector<report::Series> read_series(lua_State* L, int list, const std::string& where) {
  std::vector<report::Series> out;
  for (lua_Integer i = 1, n = luaL_len(L, list); i <= n; ++i) {
    lua_rawgeti(L, list, i);
    const int t = lua_gettop(L);
    const std::string at = cat(where, "[", i, "]");
    if (!lua_istable(L, t)) throw UsageError(cat(at, " is not a table"));
    check_keys(L, t, at.c_str(), {"name", "x", "y", "style"});
    report::Series s;
    s.name = opt_string_field(L, t, "name", cat("series ", i));
    s.style = opt_string_field(L, t, "style", "lines");
    lua_getfield(L, t, "x");
    if (!lua_istable(L, -1)) throw UsageError(cat(at, " needs x = { numbers }"));
    s.x = check_numbers(L, lua_gettop(L), cat(at, ".x").c_str());
    lua_getfield(L, t, "y");
    if (!lua_istable(L, -1)) throw UsageError(cat(at, " needs y = { numbers }"));
    s.y = check_numbers(L, lua_gettop(L), cat(at, ".y").c_str());
    lua_settop(L, list);
    out.push_back(std::move(s));
  }
  return out;
}

/// The axes of one figure or panel (title, xlabel, ylabel, logx, logy) and its `series` list,
/// from the table at `t`.
report::Plot read_figure(lua_State* L, int t, const std::string& where) {
  report::Plot p;
  p.title = opt_string_field(L, t, "title", "");
  p.xlabel = opt_string_field(L, t, "xlabel", "");
  p.ylabel = opt_string_field(L, t, "ylabel", "");
  lua_getfield(L, t, "logx");
  p.logx = lua_toboolean(L, -1);
  lua_getfield(L, t, "logy");
  p.logy = lua_toboolean(L, -1);
  lua_pop(L, 2);
  lua_getfield(L, t, "series");
  if (!lua_istable(L, -1)) throw UsageError(cat(where, " needs series = { { x =, y = }, ... }"));
  p.series = read_series(L, lua_gettop(L), where == "nas.plot{...}" ? "series" : where + ".series");
  lua_pop(L, 1);
  return p;
}

/// nas.plot{ file = "loss.png", title =, <one of:>
///   series = { { name =, x = {...}, y = {...}, style = "lines"|"points"|"linespoints" }, ... },
///     xlabel =, ylabel =, logx =, logy =                       (one figure)
///   panels = { { title =, xlabel =, ylabel =, logx =, logy =, series = {...} }, ... },
///     columns =                                                (a grid of figures)
///   matrix = { {...}, ... }, labels = { "a", ... }, digits = 2, range = { low, high },
///     column_labels = { "x", ... }    (a heat map: square, or rectangular with column labels;
///                                      digits = -1 draws colours only)
/// }
/// Draws a PNG inside the experiment folder (data and gnuplot script beside it); returns its path.
HYPERNAS_LUA_FN(l_plot) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char* what = "nas.plot{...}";
  check_keys(L, 1, what,
             {"file", "title", "series", "xlabel", "ylabel", "logx", "logy", "panels", "columns",
              "matrix", "labels", "digits", "range", "column_labels"});
  const std::string file = opt_string_field(L, 1, "file", "");
  if (file.empty()) throw UsageError("nas.plot{...} needs file = \"name.png\"");
  int modes = 0;
  for (const char* key : {"series", "panels", "matrix"}) {
    lua_getfield(L, 1, key);
    modes += lua_isnil(L, -1) ? 0 : 1;
    lua_pop(L, 1);
  }
  if (modes > 1)
    throw UsageError(
        "nas.plot{...}: give one of series = (a figure), panels = (a grid) or matrix = (a heat "
        "map), not several");
  const auto refuse_keys = [&](const char* mode, std::initializer_list<const char*> keys) {
    for (const char* key : keys) {
      lua_getfield(L, 1, key);
      const bool given = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (given) throw UsageError(cat("nas.plot{...}: key '", key, "' does not go with ", mode));
    }
  };
  lua_getfield(L, 1, "panels");
  const bool grid = !lua_isnil(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "matrix");
  const bool matrix = !lua_isnil(L, -1);
  lua_pop(L, 1);
  const auto path = experiment_file(L, file);
  if (grid) {
    refuse_keys("panels =",
                {"labels", "digits", "range", "column_labels", "xlabel", "ylabel", "logx", "logy"});
    lua_getfield(L, 1, "panels");
    if (!lua_istable(L, -1))
      throw UsageError("nas.plot{...}: panels must be a list of { title =, series = { ... } }");
    const int panels = lua_gettop(L);
    report::Grid g;
    g.title = opt_string_field(L, 1, "title", "");
    const std::int64_t columns = opt_int_field(L, 1, "columns", 0);
    if (columns < 0 || columns > 100)
      throw UsageError(cat("nas.plot{...}: columns must be 0 (automatic) to 100, got ", columns));
    g.columns = static_cast<int>(columns);
    const lua_Integer n = luaL_len(L, panels);
    if (n == 0) throw UsageError("nas.plot{...}: panels is empty (give at least one panel)");
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, panels, i);
      const int t = lua_gettop(L);
      const std::string at = cat("panels[", i, "]");
      if (!lua_istable(L, t)) throw UsageError(cat("nas.plot{...}: ", at, " is not a table"));
      check_keys(L, t, cat("nas.plot{...}: ", at).c_str(),
                 {"title", "xlabel", "ylabel", "logx", "logy", "series"});
      g.panels.push_back(read_figure(L, t, at));
      if (g.panels.back().series.empty())
        throw UsageError(cat("nas.plot{...}: ", at, ".series is empty"));
      lua_settop(L, panels);
    }
    lua_pop(L, 1);
    report::plot_grid(g, path);
  } else if (matrix) {
    refuse_keys("matrix =", {"columns", "xlabel", "ylabel", "logx", "logy"});
    report::Heatmap m;
    m.title = opt_string_field(L, 1, "title", "");
    const std::int64_t digits = opt_int_field(L, 1, "digits", 2);
    if (digits < -1 || digits > 6)
      throw UsageError(cat("nas.plot{...}: digits must be -1 (no numbers) to 6, got ", digits));
    m.digits = static_cast<int>(digits);
    lua_getfield(L, 1, "column_labels");
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1))
        throw UsageError("nas.plot{...}: column_labels must be a list of column labels");
      const int t = lua_gettop(L);
      for (lua_Integer j = 1; j <= luaL_len(L, t); ++j) {
        lua_rawgeti(L, t, j);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
          throw UsageError(cat("nas.plot{...}: column_labels[", j, "] is not a string"));
        m.columns.emplace_back(lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      if (m.columns.empty()) throw UsageError("nas.plot{...}: column_labels is empty");
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "matrix");
    if (!lua_istable(L, -1))
      throw UsageError("nas.plot{...}: matrix must be a list of rows, each a list of numbers");
    const int rows = lua_gettop(L);
    const lua_Integer n = luaL_len(L, rows);
    if (n == 0) throw UsageError("nas.plot{...}: matrix is empty");
    const auto width = m.columns.empty() ? n : static_cast<lua_Integer>(m.columns.size());
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, rows, i);
      const std::string at = cat("nas.plot{...}: matrix[", i, "]");
      if (!lua_istable(L, -1)) throw UsageError(cat(at, " is not a list of numbers"));
      m.values.push_back(check_numbers(L, lua_gettop(L), at.c_str()));
      if (static_cast<lua_Integer>(m.values.back().size()) != width)
        throw UsageError(
            cat(at, " has ", m.values.back().size(), " values, expected ", width,
                m.columns.empty()
                    ? cat(" (without column_labels = the matrix is square: it has ", n, " rows)")
                    : cat(" (one per column label)")));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "labels");
    if (!lua_istable(L, -1))
      throw UsageError(
          cat("nas.plot{...}: matrix = needs labels = { ", n, " names }, one per row and column"));
    const int labels = lua_gettop(L);
    const lua_Integer count = luaL_len(L, labels);
    if (count != n)
      throw UsageError(cat("nas.plot{...}: labels has ", count, " names for a ", n, "x", n,
                           " matrix (one per row and column)"));
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, labels, i);
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        throw UsageError(cat("nas.plot{...}: labels[", i, "] is not a string"));
      m.labels.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "range");
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1))
        throw UsageError("nas.plot{...}: range must be { low, high }, e.g. { -1, 1 }");
      const auto r = check_numbers(L, lua_gettop(L), "nas.plot{...}: range");
      if (r.size() != 2 || !(r[0] < r[1]))
        throw UsageError("nas.plot{...}: range must be { low, high } with low < high");
      m.low = r[0];
      m.high = r[1];
    }
    lua_pop(L, 1);
    report::heatmap(m, path);
  } else {
    if (modes == 0)
      throw UsageError(
          "nas.plot{...} needs series = { { x =, y = }, ... } (a figure), panels = { ... } (a "
          "grid) or matrix = { ... } (a heat map)");
    refuse_keys("series =", {"labels", "digits", "range", "column_labels"});
    report::plot(read_figure(L, 1, what), path);
  }
  lua_pushstring(L, path.string().c_str());
  return 1;
}

}  // namespace

void bind_data(lua_State* L) {
  const luaL_Reg dataset_methods[] = {{"name", dataset_name},
                                      {"size", dataset_size},
                                      {"spec", dataset_spec},
                                      {"classes", dataset_classes},
                                      {nullptr, nullptr}};
  define_class(L, kDatasetClass, dataset_methods);
  lua_pushcfunction(L, l_dataset);
  lua_setfield(L, -2, "dataset");
  lua_pushcfunction(L, l_plot);
  lua_setfield(L, -2, "plot");
  const luaL_Reg metric_fns[] = {{"pearson", l_pearson},           {"spearman", l_spearman},
                                 {"kendall", l_kendall},           {"top_k_overlap", l_top_k},
                                 {"bootstrap", l_bootstrap},       {"anytime_auc", l_anytime_auc},
                                 {"pareto_front", l_pareto_front}, {nullptr, nullptr}};
  luaL_newlib(L, metric_fns);
  lua_setfield(L, -2, "metrics");
}

}  // namespace hypernas::lua
