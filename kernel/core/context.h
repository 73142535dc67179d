#pragma once
/// @file context.h
/// @brief The kernel's implementation of hypernas::Context: what a plugin gets for one call.

#include <functional>
#include <memory>
#include <string>

#include <hypernas/context.h>

#include "kernel/core/log.h"

namespace hypernas::core {

/// Callback for Context::notify: returns false to ask the running task to stop.
using NotifyFn = std::function<bool(const std::string&, const std::map<std::string, double>&)>;

/// The services of one run, shared by every plugin call in it.
struct RunServices {
  c10::Device device{c10::kCPU};       ///< Device chosen with --device.
  std::uint64_t seed = 0;              ///< The run's seed.
  int threads = 1;                     ///< CPU threads.
  ResultStore* store = nullptr;        ///< The experiment's store (owned by the run).
  const Executor* executor = nullptr;  ///< The graph executor (owned by the kernel).
  NotifyFn notify;                     ///< The script's per-candidate callback, if any.
  /// Contexts made so far per component: the n-th call into a plugin gets its own random
  /// stream, so two searches in one script do not draw the same candidates, while a rerun of
  /// the same script draws exactly what it drew before.
  std::shared_ptr<std::map<std::string, std::uint64_t>> calls =
      std::make_shared<std::map<std::string, std::uint64_t>>();
};

/// Context for calls into one plugin: its own logger prefix and its own RNG stream, derived
/// from the run's seed, the plugin's name and how many contexts that plugin had before, so that
/// adding a plugin does not shift the draws of another.
class KernelContext final : public Context {
 public:
  /// A context for `component` over the run's services.
  KernelContext(const RunServices& services, const std::string& component);
  c10::Device device() const override { return services_.device; }
  Rng& rng() override { return rng_; }
  Logger& log() override { return log_; }
  std::unique_ptr<Progress> progress(const std::string& label, std::int64_t total) override;
  bool cancelled() const override;
  ResultStore& store() override;
  const Executor* executor() const override { return services_.executor; }
  int threads() const override { return services_.threads; }
  bool notify(const std::string& event, const std::map<std::string, double>& values) override;

 private:
  const RunServices& services_;
  Rng rng_;
  ComponentLogger log_;
};

/// A stable 64-bit seed for (run seed, component name).
std::uint64_t derive_seed(std::uint64_t seed, const std::string& component);

}  // namespace hypernas::core
