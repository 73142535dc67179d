#include "kernel/cli/commands.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kernel/cli/cxxopts.h"

#include "kernel/core/cancel.h"
#include "kernel/core/context.h"
#include "kernel/core/log.h"
#include "kernel/core/progress.h"
#include "kernel/data/dataset.h"
#include "kernel/device/device.h"
#include "kernel/graph/serialize.h"
#include "kernel/lua/host.h"
#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"

namespace hypernas::cli {

namespace {

const char* kPluginPathNote =
    "\nPlugins are loaded from each folder of HYPERNAS_PLUGIN_PATH (':'-separated), then from "
    "the built-in plugin folder.";

std::map<std::string, std::string> parse_sets(const std::vector<std::string>& sets) {
  // Each value arrives whole (kernel/cli/cxxopts.h): `--set list=a,b` and
  // `--set opts=k=v,x=y` are one key each, split at the first '='.
  std::map<std::string, std::string> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError(cat("--set expects key=value, got '", s, "'"));
    out[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return out;
}

// `--set` values typed like the Lua host types them (true/false, integers, reals, strings).
Options sets_to_options(const std::map<std::string, std::string>& sets) {
  Options o;
  for (const auto& [k, v] : sets) {
    const std::string kind = lua::classify_arg(v);
    if (kind == "bool") o.set(k, v == "true");
    else if (kind == "int") o.set(k, static_cast<std::int64_t>(std::stoll(v)));
    else if (kind == "real") o.set(k, std::stod(v));
    else o.set(k, v);
  }
  return o;
}

// --lua-memory SIZE: a number with an optional K, M, G or T suffix (binary units, "MiB" and
// "MB" too); a plain number is MiB. At least 1 MiB.
std::size_t parse_lua_memory(const std::string& size) {
  const auto bad = [&size]() {
    return UsageError(
        cat("--lua-memory expects a size such as 512M, 4G or a number of MiB "
            "(at least 1M), got '",
            size, "'"));
  };
  std::size_t digits = 0;
  double value = 0;
  try {
    value = std::stod(size, &digits);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = size.substr(digits);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty()) scale = 0x1p20;
  const std::pair<const char*, double> units[] = {{"K", 0x1p10},
                                                  {"M", 0x1p20},
                                                  {"G", 0x1p30},
                                                  {"T", 0x1p40}};
  for (const auto& [prefix, factor] : units)
    for (const char* tail : {"", "B", "IB"})
      if (unit == std::string(prefix) + tail) scale = factor;
  const double bytes = value * scale;
  if (!(std::isdigit(static_cast<unsigned char>(size[0])) || size[0] == '.') || scale == 0 ||
      !(bytes >= 0x1p20) || bytes >= 0x1p63)
    throw bad();
  return static_cast<std::size_t>(bytes);
}

}  // namespace

int cmd_arch(int argc, char** argv) {
  cxxopts::Options o("hypernas arch",
                     cat("Describe one architecture: hypernas arch info --space NAME ARCH.\n"
                         "ARCH is the space's string form, or a JSON file written by --json.",
                         kPluginPathNote));
  o.positional_help("info ARCH");
  // clang-format off
  o.add_options()
    ("action", "info", cxxopts::value<std::string>())
    ("arch", "architecture (string form, or @FILE with its JSON)", cxxopts::value<std::string>())
    ("space", "search space name", cxxopts::value<std::string>())
    ("set", "space option key=value; repeatable", cxxopts::value<std::vector<std::string>>())
    ("json", "print the canonical JSON graph and the counts")
    ("dot", "write the graph as Graphviz DOT to FILE", cxxopts::value<std::string>())
    ("h,help", "this text");
  // clang-format on
  o.parse_positional({"action", "arch"});
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  if (!r.count("action") || r["action"].as<std::string>() != "info")
    throw UsageError("expected: hypernas arch info --space NAME ARCH");
  if (!r.count("space")) throw UsageError("missing --space NAME (e.g. --space nb201)");
  if (!r.count("arch")) throw UsageError("missing ARCH (the space's string form)");
  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  Options space_options;
  if (r.count("set"))
    space_options = sets_to_options(parse_sets(r["set"].as<std::vector<std::string>>()));
  auto space = registry.create_space(r["space"].as<std::string>(), space_options);
  std::string text = r["arch"].as<std::string>();
  Architecture arch;
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    HYPERNAS_CHECK(in.good(), "cannot read architecture file ", text.substr(1));
    std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      // Accept what --json prints: the graph plus the counts, which are derived, not read.
      nlohmann::json j = nlohmann::json::parse(json);
      for (const char* derived : {"hash", "params", "flops"}) j.erase(derived);
      arch = graph::from_json(j.dump());
    } catch (const std::exception& e) {
      throw Error(cat(text.substr(1), ": ", e.what()));
    }
    // Through the space's string form, so the graph is the one this space builds.
    arch = space->parse(arch.text);
  } else {
    arch = space->parse(text);
  }
  graph::validate(arch);
  const ArchStats st = space->stats(arch);
  if (r.count("dot")) {
    const std::string path = r["dot"].as<std::string>();
    std::ofstream out(path);
    HYPERNAS_CHECK(out.good(), "cannot write ", path);
    out << graph::to_dot(arch);
  }
  if (r.count("json")) {
    nlohmann::json j = nlohmann::json::parse(graph::canonical_json(arch));
    j["hash"] = graph::arch_hash(arch);
    j["params"] = st.params;
    j["flops"] = st.flops;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::map<std::string, int> ops;
  for (auto v : boost::make_iterator_range(boost::vertices(arch.graph))) ++ops[arch.graph[v].op];
  std::cout << "space   " << space->name() << "\n"
            << "arch    " << arch.text << "\n"
            << "hash    " << graph::arch_hash(arch) << "\n"
            << "nodes   " << boost::num_vertices(arch.graph) << "\n"
            << "edges   " << boost::num_edges(arch.graph) << "\n"
            << "params  " << st.params << " (" << st.params / 1e6 << " M)\n"
            << "flops   " << st.flops << " (" << st.flops / 1e6 << " M multiply-adds)\n"
            << "ops    ";
  for (const auto& [op, n] : ops) std::cout << " " << op << "=" << n;
  std::cout << "\n";
  return 0;
}

int cmd_score(int argc, char** argv) {
  cxxopts::Options o("hypernas score",
                     cat("Score architectures with a surrogate, one CSV row each:\n"
                         "hypernas score --surrogate ghn --checkpoint FILE --space nb201 "
                         "--data fashion-mnist --archs FILE [--out FILE.csv]\n"
                         "FILE lists one architecture per line in the space's string form "
                         "(blank lines and lines starting with # are skipped). Every score is "
                         "recorded in the experiment's store (results/score/experiment.db by "
                         "default) and reused when scored again under the same key; a failed "
                         "architecture gets status 'failed' and its reason.",
                         kPluginPathNote));
  // clang-format off
  o.add_options()
    ("surrogate", "surrogate plugin name", cxxopts::value<std::string>())
    ("option", "surrogate option key=value; repeatable", cxxopts::value<std::vector<std::string>>())
    ("checkpoint", "load the surrogate's state from this checkpoint", cxxopts::value<std::string>())
    ("space", "search space name", cxxopts::value<std::string>())
    ("set", "space option key=value; repeatable", cxxopts::value<std::vector<std::string>>())
    ("data", "dataset name (fashion-mnist, cifar10, ...)", cxxopts::value<std::string>())
    ("data-root", "dataset folder (default: its usual place)", cxxopts::value<std::string>())
    ("archs", "file with one architecture per line", cxxopts::value<std::string>())
    ("out", "CSV file (default: standard output)", cxxopts::value<std::string>())
    ("images", "validation images per architecture (0: all)", cxxopts::value<std::int64_t>()->default_value("0"))
    ("batch", "evaluation batch size", cxxopts::value<std::int64_t>()->default_value("256"))
    ("experiment", "experiment whose store records (and reuses) the scores", cxxopts::value<std::string>()->default_value("score"))
    ("results", "folder holding experiments", cxxopts::value<std::string>()->default_value("results"))
    ("no-reuse", "score again what the store already holds")
    ("retry-failed", "score again architectures that failed before")
    ("max-failures", "stop when more than this fraction failed", cxxopts::value<double>()->default_value("0.75"))
    ("device", "cpu, cuda, cuda:N or auto", cxxopts::value<std::string>()->default_value("cpu"))
    ("threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
    ("seed", "seed", cxxopts::value<std::uint64_t>()->default_value("0"))
    ("h,help", "this text");
  // clang-format on
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  for (const char* required : {"surrogate", "space", "archs"})
    if (!r.count(required))
      throw UsageError(cat("missing --", required, " (see hypernas score --help)"));

  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  session::SessionConfig sc;
  sc.registry = &registry;
  sc.device = device::select(r["device"].as<std::string>());
  sc.threads = device::set_threads(r["threads"].as<int>());
  sc.seed = r["seed"].as<std::uint64_t>();
  sc.experiment = r["experiment"].as<std::string>();
  sc.results_root = r["results"].as<std::string>();
  for (int i = 0; i < argc; ++i) sc.command_line += (i ? " " : "hypernas ") + std::string(argv[i]);
  session::RunSession run(sc);

  session::EvalSettings settings;
  settings.batch_size = r["batch"].as<std::int64_t>();
  settings.max_images = r["images"].as<std::int64_t>();
  settings.reuse = r.count("no-reuse") == 0;
  settings.retry_failed = r.count("retry-failed") != 0;
  settings.max_failures = r["max-failures"].as<double>();

  std::shared_ptr<Dataset> data;
  if (r.count("data")) {
    data::DatasetOptions d;
    d.name = r["data"].as<std::string>();
    if (r.count("data-root")) d.root = r["data-root"].as<std::string>();
    data = data::open_dataset(d, sc.device);
  }
  Options space_options;
  if (r.count("set"))
    space_options = sets_to_options(parse_sets(r["set"].as<std::vector<std::string>>()));
  auto space = run.make_space(r["space"].as<std::string>(), space_options, data.get());
  Options surrogate_options;
  if (r.count("option"))
    surrogate_options = sets_to_options(parse_sets(r["option"].as<std::vector<std::string>>()));
  auto surrogate = run.make_surrogate(r["surrogate"].as<std::string>(), surrogate_options);
  if ((surrogate->plugin().capabilities() & kNeedsData) && !data)
    throw UsageError(cat("surrogate '", surrogate->name(), "' needs --data"));
  if (r.count("checkpoint")) surrogate->load_checkpoint(r["checkpoint"].as<std::string>());

  // Parse every line first: a malformed line stops the run before any scoring.
  const std::string archs_path = r["archs"].as<std::string>();
  std::ifstream in(archs_path);
  HYPERNAS_CHECK(in.good(), "cannot read architecture list ", archs_path);
  std::vector<Architecture> archs;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    try {
      archs.push_back(space->parse(line.substr(first, last - first + 1)));
    } catch (const std::exception& e) {
      throw Error(cat(archs_path, ":", number, ": ", e.what()));
    }
  }
  HYPERNAS_CHECK(!archs.empty(), archs_path, " lists no architectures");

  std::ofstream file;
  if (r.count("out")) {
    file.open(r["out"].as<std::string>());
    HYPERNAS_CHECK(file.good(), "cannot write ", r["out"].as<std::string>());
  }
  std::ostream& out = r.count("out") ? static_cast<std::ostream&>(file) : std::cout;
  core::install_interrupt_handler();
  run.begin("hypernas score");
  out << "arch,score,params,flops,seconds,reused,status,error\n" << std::flush;
  auto csv_text = [](const std::string& text) {
    std::string q = "\"";
    for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  // Each row is written as soon as its architecture is scored, so a stopped run keeps them.
  auto write_rows = [&](const Evaluated& e) {
    char row[128];
    for (const auto& c : e.scored) {
      std::snprintf(row, sizeof row, ",%.6g,%lld,%lld,%.4f,%d,ok,\n", c.score.value,
                    static_cast<long long>(c.stats.params), static_cast<long long>(c.stats.flops),
                    c.seconds, c.reused ? 1 : 0);
      out << csv_text(c.arch.text) << row << std::flush;
    }
    for (const auto& f : e.failed) {
      const ArchStats st = space->stats(f.arch);
      std::snprintf(row, sizeof row, ",nan,%lld,%lld,0,%d,failed,",
                    static_cast<long long>(st.params), static_cast<long long>(st.flops),
                    f.reused ? 1 : 0);
      out << csv_text(f.arch.text) << row << csv_text(f.reason) << "\n" << std::flush;
    }
  };
  try {
    run.score(surrogate, *space, data.get(), archs, settings, "scoring", write_rows);
  } catch (const Cancelled&) {
    run.finish("cancelled");
    throw;
  }  // any other error: the session closes the run as failed when it goes
  run.finish("ok");
  return 0;
}

int cmd_runs(int argc, char** argv) {
  cxxopts::Options o("hypernas runs",
                     "List the runs of an experiment: state, script, arguments, start, end and "
                     "the number of evaluations each recorded. A run whose process died "
                     "(kill -9, power cut) is shown as interrupted.");
  // clang-format off
  o.add_options()
    ("experiment", "experiment name (default: every experiment in --results)", cxxopts::value<std::string>())
    ("results", "folder holding experiments", cxxopts::value<std::string>()->default_value("results"))
    ("json", "print JSON instead of a table")
    ("h,help", "this text");
  // clang-format on
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  namespace fs = std::filesystem;
  const fs::path root = r["results"].as<std::string>();
  std::vector<std::string> experiments;
  if (r.count("experiment")) {
    experiments.push_back(r["experiment"].as<std::string>());
  } else {
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      throw Error(cat("no results folder ", root.string(), " (see --results)"));
    for (const auto& entry : fs::directory_iterator(root, ec))
      if (fs::is_regular_file(entry.path() / "experiment.db"))
        experiments.push_back(entry.path().filename().string());
    std::sort(experiments.begin(), experiments.end());
    if (experiments.empty()) throw Error(cat("no experiments in ", root.string()));
  }
  nlohmann::json all = nlohmann::json::array();
  std::ostringstream table;
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %4s  %-11s %-24s %-24s %6s %6s  %s\n", "experiment",
                "run", "state", "started", "ended", "evals", "failed", "script and arguments");
  table << line;
  for (const auto& name : experiments) {
    auto store = session::RunSession::open_existing(root, name);
    for (const auto& run : store->runs()) {
      const nlohmann::json args = nlohmann::json::parse(run.args_json, nullptr, false);
      std::string command = run.script;
      if (args.is_object() && args.contains("command") && args["command"].is_string() &&
          !args["command"].get<std::string>().empty())
        command = args["command"].get<std::string>();
      all.push_back({{"experiment", name},
                     {"id", run.id},
                     {"state", run.state},
                     {"script", run.script},
                     {"args", args},
                     {"seed", run.seed},
                     {"started_at", run.started_at},
                     {"ended_at", run.ended_at},
                     {"pid", run.pid},
                     {"host", run.host},
                     {"heartbeat_at", run.heartbeat_at},
                     {"evaluations", run.evaluations},
                     {"failures", run.failures}});
      std::snprintf(line, sizeof line, "%-16s %4lld  %-11s %-24s %-24s %6lld %6lld  ",
                    abbreviate(name, 16).c_str(), static_cast<long long>(run.id), run.state.c_str(),
                    run.started_at.c_str(), run.ended_at.empty() ? "-" : run.ended_at.c_str(),
                    static_cast<long long>(run.evaluations), static_cast<long long>(run.failures));
      table << line << abbreviate(command, 100) << "\n";
    }
  }
  std::cout << (r.count("json") ? all.dump(2) + "\n" : table.str());
  return 0;
}

int cmd_plugins(int argc, char** argv) {
  cxxopts::Options o("hypernas plugins",
                     cat("List the plugins found, and every file refused with its reason.",
                         kPluginPathNote));
  o.add_options()("json", "print JSON instead of a table")(
      "strict", "exit with 1 when any file was refused (for CI and install checks)")("h,help",
                                                                                     "this text");
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  std::cout << (r.count("json") ? registry.to_json() + "\n" : registry.to_table());
  const std::size_t refused = registry.refusals().size();
  if (r.count("strict") && refused > 0) {
    std::cout << std::flush;
    std::cerr << "hypernas plugins: " << refused << (refused == 1 ? " file was" : " files were")
              << " refused (--strict)\n";
    return 1;
  }
  return 0;
}

int cmd_run(int argc, char** argv) {
  cxxopts::Options o("hypernas run", cat("Run a Lua search script.", kPluginPathNote));
  o.positional_help("SCRIPT.lua");
  // clang-format off
  o.add_options()
    ("script", "the Lua script", cxxopts::value<std::string>())
    ("set", "pass key=value to the script (nas.args, nas.arg); repeatable", cxxopts::value<std::vector<std::string>>())
    ("device", "cpu, cuda, cuda:N or auto", cxxopts::value<std::string>()->default_value("cpu"))
    ("threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
    ("seed", "seed of every random draw", cxxopts::value<std::uint64_t>()->default_value("0"))
    ("experiment", "experiment name (default: the script's file name)", cxxopts::value<std::string>())
    ("results", "folder holding experiments", cxxopts::value<std::string>()->default_value("results"))
    ("time-limit", "stop cleanly after this many seconds", cxxopts::value<double>())
    ("lua-memory", "cap on the script's Lua heap: 512M, 4G, or a number of MiB", cxxopts::value<std::string>()->default_value("4G"))
    ("progress", "auto, bar, lines or off", cxxopts::value<std::string>()->default_value("auto"))
    ("v,verbose", "debug messages")
    ("q,quiet", "warnings and errors only")
    ("h,help", "this text");
  // clang-format on
  o.parse_positional({"script"});
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  if (!r.count("script")) throw UsageError("missing SCRIPT.lua (see hypernas run --help)");
  if (r.count("verbose")) core::set_log_level(LogLevel::Debug);
  if (r.count("quiet")) core::set_log_level(LogLevel::Warn);
  const std::string progress = r["progress"].as<std::string>();
  if (progress == "auto") core::set_progress_mode(core::ProgressMode::Auto);
  else if (progress == "bar") core::set_progress_mode(core::ProgressMode::Bar);
  else if (progress == "lines") core::set_progress_mode(core::ProgressMode::Lines);
  else if (progress == "off") core::set_progress_mode(core::ProgressMode::Off);
  else throw UsageError(cat("--progress expects auto, bar, lines or off, got '", progress, "'"));

  lua::HostConfig config;
  config.device = device::select(r["device"].as<std::string>());
  config.threads = device::set_threads(r["threads"].as<int>());
  config.seed = r["seed"].as<std::uint64_t>();
  if (r.count("experiment")) {
    config.experiment = r["experiment"].as<std::string>();
    session::check_experiment_name(config.experiment);
  }
  config.results_root = r["results"].as<std::string>();
  if (r.count("set")) config.args = parse_sets(r["set"].as<std::vector<std::string>>());
  if (r.count("time-limit")) {
    double t = r["time-limit"].as<double>();
    if (!(t > 0)) throw UsageError(cat("--time-limit must be positive, got ", t));
    config.time_limit_s = t;
  }
  config.lua_memory_bytes = parse_lua_memory(r["lua-memory"].as<std::string>());
  for (int i = 0; i < argc; ++i)
    config.command_line += (i ? " " : "hypernas ") + std::string(argv[i]);

  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  for (const auto& refusal : registry.refusals())
    core::write_log(LogLevel::Warn, "plugins",
                    cat("refused ", refusal.path.string(), ": ", refusal.reason));
  config.registry = &registry;

  core::install_interrupt_handler();
  lua::Host host(config);
  host.run_file(r["script"].as<std::string>());
  return 0;
}

}  // namespace hypernas::cli
