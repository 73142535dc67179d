#include "kernel/cli/commands.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
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

// One argument as a POSIX shell reads it back: bare when it holds only safe characters,
// otherwise in single quotes. The recorded command line can then be pasted into a shell.
std::string shell_word(const std::string& word) {
  const bool safe = !word.empty() && word.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-+=/.,:@%^") == std::string::npos;
  if (safe) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_line(int argc, char** argv) {
  std::string out = "hypernas";
  for (int i = 0; i < argc; ++i) out += " " + shell_word(argv[i]);
  return out;
}

// -v / -q and --progress, shared by the commands that run a script.
void set_output_modes(const cxxopts::ParseResult& r) {
  if (r.count("verbose")) core::set_log_level(LogLevel::Debug);
  if (r.count("quiet")) core::set_log_level(LogLevel::Warn);
  const std::string progress = r["progress"].as<std::string>();
  if (progress == "auto") core::set_progress_mode(core::ProgressMode::Auto);
  else if (progress == "bar") core::set_progress_mode(core::ProgressMode::Bar);
  else if (progress == "lines") core::set_progress_mode(core::ProgressMode::Lines);
  else if (progress == "off") core::set_progress_mode(core::ProgressMode::Off);
  else throw UsageError(cat("--progress expects auto, bar, lines or off, got '", progress, "'"));
}

// Loads the plugins (warning about refused files) and runs `script` with `config`.
int run_script(lua::HostConfig config, const std::filesystem::path& script) {
  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  for (const auto& refusal : registry.refusals())
    core::write_log(LogLevel::Warn, "plugins",
                    cat("refused ", refusal.path.string(), ": ", refusal.reason));
  config.registry = &registry;
  core::install_interrupt_handler();
  lua::Host host(config);
  host.run_file(script);
  return 0;
}

// A script shipped with HyperNAS: the installed copy (<prefix>/share/hypernas/scripts, beside
// <prefix>/bin/hypernas, where CMake installs scripts/), else the source tree's scripts/.
std::filesystem::path shipped_script(const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> tried;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    tried.push_back(exe.parent_path().parent_path() / "share" / "hypernas" / "scripts" / name);
  tried.push_back(fs::path(HYPERNAS_SOURCE_SCRIPT_DIR) / name);
  std::string list;
  for (const auto& p : tried) {
    if (fs::is_regular_file(p, ec)) return p;
    list += "\n  " + p.string();
  }
  throw Error(cat("cannot find ", name, "; looked for:", list, "\n(give its path with --script)"));
}

// Checks the syntax of `hypernas compare --surrogates` (the script checks it again, with the
// plugins' options): ';'-separated specs, each members joined by '+', each member
// name[:key=value,...][@checkpoint] with an optional fit=N. Returns the number of specs.
std::size_t check_surrogate_specs(const std::string& specs, const plugin::Registry& registry) {
  const auto trim = [](const std::string& t) {
    const auto b = t.find_first_not_of(" \t");
    return b == std::string::npos ? std::string() : t.substr(b, t.find_last_not_of(" \t") - b + 1);
  };
  const auto split = [](const std::string& t, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(t);
    std::string item;
    while (std::getline(ss, item, sep)) out.push_back(item);
    if (!t.empty() && t.back() == sep) out.emplace_back();
    if (t.empty()) out.emplace_back();
    return out;
  };
  const auto word = [](const std::string& t, const char* extra) {
    if (t.empty()) return false;
    for (char c : t)
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::strchr(extra, c) == nullptr)
        return false;
    return true;
  };
  std::size_t count = 0;
  for (const std::string& raw : split(specs, ';')) {
    const std::string spec = trim(raw);
    if (spec.empty())
      throw UsageError(cat("--surrogates: empty spec in '", specs, "' (specs are ';'-separated)"));
    const auto fail = [&spec](const std::string& why) {
      return UsageError(
          cat("--surrogates: spec '", spec, "': ", why, " (see hypernas compare --help)"));
    };
    if (spec.rfind("preset:", 0) == 0) {  // configs/<name>.lua: compare.lua expands it
      ++count;
      continue;
    }
    for (const std::string& part : split(spec, '+')) {
      std::string member = trim(part);
      if (member.empty()) throw fail("empty member (members are '+'-separated)");
      const auto at = member.find('@');
      if (at != std::string::npos) {
        if (trim(member.substr(at + 1)).empty()) throw fail("'@' but no checkpoint file");
        member = trim(member.substr(0, at));
      }
      const auto colon = member.find(':');
      const std::string name = trim(member.substr(0, colon));
      if (!word(name, "_.-"))
        throw fail(cat("expected name[:key=value,...][@checkpoint], got '", trim(part), "'"));
      if (!registry.find(PluginKind::Surrogate, name)) {
        std::string known;
        for (const auto& p : registry.plugins())
          if (p.kind == PluginKind::Surrogate) known += (known.empty() ? "" : ", ") + p.name;
        throw fail(cat("no surrogate plugin named '", name, "' (loaded: ", known, ")"));
      }
      if (colon == std::string::npos) continue;
      for (const std::string& kv : split(member.substr(colon + 1), ',')) {
        const auto eq = kv.find('=');
        const std::string key = trim(kv.substr(0, eq));
        if (eq == std::string::npos || !word(key, "_"))
          throw fail(cat("expected key=value, got '", trim(kv), "'"));
        if (key == "fit") {
          const std::string n = trim(kv.substr(eq + 1));
          if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos ||
              std::stoll(n.substr(0, 18)) < 1)
            throw fail(cat("fit=", n, " is not a number of steps >= 1"));
        }
      }
    }
    ++count;
  }
  return count;
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
  sc.command_line = command_line(argc, argv);
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
  set_output_modes(r);

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
  config.command_line = command_line(argc, argv);
  return run_script(config, r["script"].as<std::string>());
}

int cmd_compare(int argc, char** argv) {
  cxxopts::Options o(
      "hypernas compare",
      cat("Every surrogate side by side on one pool: each scores the same architectures, and its "
          "ranking is compared with a ground truth (Pearson, Spearman, Kendall with bootstrap "
          "intervals, precision of the top 10 %, fit and scoring cost). Runs the script "
          "compare.lua and writes report.md (table, plots, the command), compare.csv and "
          "compare_costs.csv into results/<experiment>/; prints the table.\n\n"
          "  hypernas compare --truth ../shared/data/nb201/dev-1000.csv --subset 200 \\\n"
          "    --surrogates \"params;flops;ghn:fit=300;ghn:fit=300+params\"\n\n"
          "Ground truth: --truth FILE, a CSV with the columns 'arch' and --column (default "
          "cifar10_test); or, without --truth, --pool architectures sampled and trained from "
          "scratch on --data (default fashion-mnist) with one fixed recipe.\n\n"
          "--surrogates: ';'-separated specs, each name[:key=value,...][@checkpoint]\n"
          "  params                 a surrogate plugin with its default options\n"
          "  sgd:steps=10,lr=0.1    with options\n"
          "  ghn@ghn.ckpt           its state loaded from a checkpoint (a path from here)\n"
          "  ghn:hidden=32,fit=300  fit=N: fit it for N steps (batch 64) on the space and data "
          "first (fit is not passed to the plugin)\n"
          "  ghn:fit=300+params     specs joined by '+': one 'ensemble' surrogate of them "
          "(members \"ghn...;params\", rank averaging)\n"
          "  preset:best-evaluator  the spec a preset names (configs/best-evaluator.lua, its "
          "'spec')\n"
          "Quote the list in a shell (';' ends a command). Checkpoint paths must not contain ';' "
          "or '+'. A rerun of the same experiment reuses the stored scores and the fitted "
          "checkpoints, and reports the costs recorded when they were made.",
          kPluginPathNote));
  // clang-format off
  o.add_options()
    ("truth", "ground-truth CSV (columns arch and --column)", cxxopts::value<std::string>())
    ("column", "ground-truth column (default cifar10_test)", cxxopts::value<std::string>())
    ("subset", "score a seeded subset of this many truth rows (0: all)", cxxopts::value<std::int64_t>())
    ("subset-seed", "seed of the subset (default --seed)", cxxopts::value<std::int64_t>())
    ("pool", "without --truth: architectures to sample and train (default 50)", cxxopts::value<std::int64_t>())
    ("surrogates", "';'-separated specs (default \"params;flops;params+flops\")", cxxopts::value<std::string>())
    ("labels", "';'-separated names for the surrogates (default: the specs)", cxxopts::value<std::string>())
    ("space", "search space (default nb201)", cxxopts::value<std::string>())
    ("data", "dataset (default cifar10 with --truth, fashion-mnist without)", cxxopts::value<std::string>())
    ("images", "validation images per architecture for surrogates that read data", cxxopts::value<std::int64_t>())
    ("set", "another argument of compare.lua, key=value (cells, channels, space_options, "
            "batch, bootstrap, train_steps, ...); repeatable; the flags above win", cxxopts::value<std::vector<std::string>>())
    ("device", "cpu, cuda, cuda:N or auto", cxxopts::value<std::string>()->default_value("cpu"))
    ("threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
    ("seed", "seed of every random draw", cxxopts::value<std::uint64_t>()->default_value("0"))
    ("experiment", "experiment name", cxxopts::value<std::string>()->default_value("compare"))
    ("results", "folder holding experiments", cxxopts::value<std::string>()->default_value("results"))
    ("script", "the comparison script (default: the compare.lua shipped with HyperNAS)", cxxopts::value<std::string>())
    ("progress", "auto, bar, lines or off", cxxopts::value<std::string>()->default_value("auto"))
    ("v,verbose", "debug messages")
    ("q,quiet", "warnings and errors only")
    ("h,help", "this text");
  // clang-format on
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  if (!r.unmatched().empty())
    throw UsageError(cat("unexpected argument '", r.unmatched().front(), "'"));
  set_output_modes(r);

  lua::HostConfig config;
  if (r.count("set")) config.args = parse_sets(r["set"].as<std::vector<std::string>>());
  for (const char* flag : {"truth", "column", "surrogates", "labels", "space", "data"})
    if (r.count(flag)) config.args[flag] = r[flag].as<std::string>();
  for (const auto& [flag, key] :
       std::vector<std::pair<const char*, const char*>>{{"subset", "subset"},
                                                        {"subset-seed", "subset_seed"},
                                                        {"pool", "pool"},
                                                        {"images", "images"}}) {
    if (!r.count(flag)) continue;
    const std::int64_t v = r[flag].as<std::int64_t>();
    if (v < 0) throw UsageError(cat("--", flag, " must be >= 0, got ", v));
    config.args[key] = std::to_string(v);
  }
  if (config.args.count("truth") && config.args.at("truth").empty())
    throw UsageError("--truth needs a file");
  if (config.args.count("truth") && !std::filesystem::is_regular_file(config.args.at("truth")))
    throw UsageError(cat("--truth: no file ", config.args.at("truth")));
  {
    plugin::Registry registry;
    registry.scan(plugin::Registry::default_search_path());
    const auto specs = config.args.count("surrogates") ? config.args.at("surrogates")
                                                       : std::string("params;flops;params+flops");
    const std::size_t n = check_surrogate_specs(specs, registry);
    if (config.args.count("labels")) {
      const std::string& labels = config.args.at("labels");
      const auto count =
          static_cast<std::size_t>(std::count(labels.begin(), labels.end(), ';')) + 1;
      if (count != n)
        throw UsageError(
            cat("--labels: ", count, " labels for ", n, " surrogates ('", labels, "')"));
    }
  }
  config.device = device::select(r["device"].as<std::string>());
  config.threads = device::set_threads(r["threads"].as<int>());
  config.seed = r["seed"].as<std::uint64_t>();
  config.experiment = r["experiment"].as<std::string>();
  session::check_experiment_name(config.experiment);
  config.results_root = r["results"].as<std::string>();
  config.command_line = command_line(argc, argv);
  const std::filesystem::path script = r.count("script")
                                           ? std::filesystem::path(r["script"].as<std::string>())
                                           : shipped_script("compare.lua");
  return run_script(config, script);
}

}  // namespace hypernas::cli
