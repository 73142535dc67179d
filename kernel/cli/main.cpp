// hypernas: the command-line front end. Exit codes: 0 ok, 1 failure, 2 usage error,
// 130 interrupted (Ctrl-C; everything recorded so far is kept).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "kernel/cli/cxxopts.h"

#include <hypernas/abi.h>

#include "kernel/cli/commands.h"
#include "kernel/core/cancel.h"
#include "kernel/core/log.h"

namespace {

const char* kUsage =
    "usage: hypernas <command> [options]\n"
    "\n"
    "commands:\n"
    "  run SCRIPT.lua   run a Lua search script (hypernas run --help)\n"
    "  plugins          list loaded and refused plugins (hypernas plugins --help)\n"
    "  arch info ARCH   nodes, edges, parameters and FLOPs of one architecture\n"
    "  score            score a list of architectures with a surrogate, to CSV\n"
    "  compare          every surrogate side by side on one pool, against a ground truth\n"
    "  runs             list the runs of an experiment, with their state\n"
    "\n"
    "  --version        print the version, ABI and build id\n"
    "  --help           this text\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace hypernas;
  // NOTE: LibTorch's OpenMP threads spin while they wait. When the cores are shared with other
  // work, that makes every parallel op wait for a descheduled spinner (steps 10-20x slower
  // measured on a busy 2-core machine). libgomp reads OMP_WAIT_POLICY when it loads, before
  // main, so set it and run again; a value the user chose is left alone.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
  }
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (command == "--version") {
    std::cout << "hypernas " << HYPERNAS_VERSION << " (ABI " << kAbiMajor << "." << kAbiMinor
              << ", build id " << build_id() << ")\n";
    return 0;
  }
  std::vector<char*> sub_argv(argv + 1, argv + argc);  // argv[0] of the subcommand = its name
  const int sub_argc = static_cast<int>(sub_argv.size());
  try {
    if (command == "run") return cli::cmd_run(sub_argc, sub_argv.data());
    if (command == "plugins") return cli::cmd_plugins(sub_argc, sub_argv.data());
    if (command == "arch") return cli::cmd_arch(sub_argc, sub_argv.data());
    if (command == "score") return cli::cmd_score(sub_argc, sub_argv.data());
    if (command == "compare") return cli::cmd_compare(sub_argc, sub_argv.data());
    if (command == "runs") return cli::cmd_runs(sub_argc, sub_argv.data());
    std::cerr << "hypernas: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << "hypernas " << command << ": " << e.what() << "\n(see hypernas " << command
              << " --help)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "hypernas " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const Cancelled& e) {
    std::cerr << "hypernas: stopped: " << e.what() << "\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "hypernas: error: " << e.what() << "\n";
    return 1;
  }
}
