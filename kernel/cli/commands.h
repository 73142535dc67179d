#pragma once
/// @file commands.h
/// @brief The subcommands of `hypernas`. Each parses its own options (argv[0] is its name),
/// returns an exit code, and throws cxxopts / UsageError exceptions for usage errors.

namespace hypernas::cli {

/// `hypernas run SCRIPT.lua [--set k=v ...] ...`
int cmd_run(int argc, char** argv);
/// `hypernas plugins [--json]`
int cmd_plugins(int argc, char** argv);
/// `hypernas score --surrogate NAME --space NAME --archs FILE [--data NAME] ...`
int cmd_score(int argc, char** argv);
/// `hypernas runs [--experiment NAME] [--results DIR] [--json]`
int cmd_runs(int argc, char** argv);
/// `hypernas compare [--truth FILE] [--surrogates SPECS] ...`: runs scripts/compare.lua
int cmd_compare(int argc, char** argv);
/// `hypernas arch info --space NAME [--set k=v ...] ARCH [--json] [--dot FILE]`
int cmd_arch(int argc, char** argv);

}  // namespace hypernas::cli
