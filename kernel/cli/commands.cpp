#include "kernel/cli/commands.h"

#include <chrono>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include <cxxopts.hpp>

#include "kernel/core/cancel.h"
#include "kernel/core/log.h"
#include "kernel/core/progress.h"
#include "kernel/core/context.h"
#include "kernel/data/dataset.h"
#include "kernel/device/device.h"
#include "kernel/exec/executor.h"
#include "kernel/store/checkpoint.h"
#include "kernel/graph/serialize.h"
#include "kernel/lua/host.h"
#include "kernel/plugin/registry.h"

namespace hypernas::cli {

namespace {

const char* kPluginPathNote =
    "\nPlugins are loaded from each folder of HYPERNAS_PLUGIN_PATH (':'-separated), then from "
    "the built-in plugin folder.";

std::map<std::string, std::string> parse_sets(const std::vector<std::string>& sets) {
  std::map<std::string, std::string> out;
  std::string last;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    // cxxopts splits a repeated option's value at commas: `--set list=a,b` arrives as
    // "list=a" and "b". A piece without '=' continues the previous value.
    if (eq == std::string::npos && !last.empty()) {
      out[last] += "," + s;
      continue;
    }
    if (eq == std::string::npos || eq == 0)
      throw UsageError(cat("--set expects key=value, got '", s, "'"));
    last = s.substr(0, eq);
    out[last] = s.substr(eq + 1);
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
  if (r.count("set")) space_options = sets_to_options(parse_sets(r["set"].as<std::vector<std::string>>()));
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
                         "(blank lines and lines starting with # are skipped).",
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
    if (!r.count(required)) throw UsageError(cat("missing --", required, " (see hypernas score --help)"));

  core::RunServices services;
  services.device = device::select(r["device"].as<std::string>());
  services.threads = device::set_threads(r["threads"].as<int>());
  services.seed = r["seed"].as<std::uint64_t>();
  exec::GraphExecutor executor;
  services.executor = &executor;

  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  Options space_options;
  if (r.count("set")) space_options = sets_to_options(parse_sets(r["set"].as<std::vector<std::string>>()));
  std::shared_ptr<Dataset> data;
  if (r.count("data")) {
    data::DatasetOptions d;
    d.name = r["data"].as<std::string>();
    if (r.count("data-root")) d.root = r["data-root"].as<std::string>();
    data = data::open_dataset(d, services.device);
    const ProblemSpec p = data->spec();
    if (!space_options.has("input_channels")) space_options.set("input_channels", p.channels);
    if (!space_options.has("input_size")) space_options.set("input_size", p.height);
    if (!space_options.has("classes")) space_options.set("classes", p.classes);
  }
  auto space = registry.create_space(r["space"].as<std::string>(), space_options);
  const std::string name = r["surrogate"].as<std::string>();
  Options surrogate_options;
  if (r.count("option"))
    surrogate_options = sets_to_options(parse_sets(r["option"].as<std::vector<std::string>>()));
  auto surrogate = registry.create_surrogate(name, surrogate_options);
  if ((surrogate->capabilities() & kNeedsData) && !data)
    throw UsageError(cat("surrogate '", name, "' needs --data"));
  if (r.count("checkpoint")) {
    const std::string path = r["checkpoint"].as<std::string>();
    store::Checkpoint c = store::read_checkpoint(path);
    HYPERNAS_CHECK(c.plugin == name, "checkpoint ", path, " was written by surrogate '", c.plugin,
                   "', not '", name, "'");
    try {
      surrogate->load_state(c.blob);
    } catch (const std::exception& e) {
      throw Error(cat("checkpoint ", path, ": ", e.what()));
    }
  }

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
  out << "arch,score,params,flops,seconds\n";
  core::install_interrupt_handler();
  core::KernelContext ctx(services, name);
  core::ConsoleProgress progress("scoring", static_cast<std::int64_t>(archs.size()));
  for (const auto& arch : archs) {
    ctx.check_cancelled();
    ScoreRequest req;
    req.space = space.get();
    req.data = data.get();
    req.archs = {&arch};
    req.batch_size = r["batch"].as<std::int64_t>();
    req.max_images = r["images"].as<std::int64_t>();
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Score> scores = surrogate->score(ctx, req);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    HYPERNAS_CHECK(scores.size() == 1, "surrogate '", name, "' returned ", scores.size(),
                   " scores for one architecture");
    const ArchStats st = space->stats(arch);
    char row[96];
    std::snprintf(row, sizeof row, ",%.6g,%lld,%lld,%.4f\n", scores[0].value,
                  static_cast<long long>(st.params), static_cast<long long>(st.flops), seconds);
    out << '"' << arch.text << '"' << row << std::flush;  // each row is kept if stopped later
    progress.advance(1);
  }
  progress.finish();
  return 0;
}

int cmd_plugins(int argc, char** argv) {
  cxxopts::Options o("hypernas plugins",
                     cat("List the plugins found, and every file refused with its reason.",
                         kPluginPathNote));
  o.add_options()("json", "print JSON instead of a table")("h,help", "this text");
  auto r = o.parse(argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  plugin::Registry registry;
  registry.scan(plugin::Registry::default_search_path());
  std::cout << (r.count("json") ? registry.to_json() + "\n" : registry.to_table());
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
    if (config.experiment.empty() || config.experiment.find('/') != std::string::npos ||
        config.experiment == "." || config.experiment == "..")
      throw UsageError(cat("--experiment must be a plain folder name, got '", config.experiment, "'"));
  }
  config.results_root = r["results"].as<std::string>();
  if (r.count("set")) config.args = parse_sets(r["set"].as<std::vector<std::string>>());
  if (r.count("time-limit")) {
    double t = r["time-limit"].as<double>();
    if (!(t > 0)) throw UsageError(cat("--time-limit must be positive, got ", t));
    config.time_limit_s = t;
  }
  for (int i = 0; i < argc; ++i) config.command_line += (i ? " " : "hypernas ") + std::string(argv[i]);

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
