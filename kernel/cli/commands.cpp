#include "kernel/cli/commands.h"

#include <chrono>
#include <iostream>

#include <cxxopts.hpp>

#include "kernel/core/cancel.h"
#include "kernel/core/log.h"
#include "kernel/core/progress.h"
#include "kernel/device/device.h"
#include "kernel/lua/host.h"
#include "kernel/plugin/registry.h"

namespace hypernas::cli {

namespace {

const char* kPluginPathNote =
    "\nPlugins are loaded from each folder of HYPERNAS_PLUGIN_PATH (':'-separated), then from "
    "the built-in plugin folder.";

std::map<std::string, std::string> parse_sets(const std::vector<std::string>& sets) {
  std::map<std::string, std::string> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError(cat("--set expects key=value, got '", s, "'"));
    out[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return out;
}

}  // namespace

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
  if (r.count("experiment")) config.experiment = r["experiment"].as<std::string>();
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
