#include "kernel/core/context.h"

#include <hypernas/hash.h>

#include "kernel/core/cancel.h"
#include "kernel/core/progress.h"

namespace hypernas::core {

namespace {

// NOTE: not FNV's offset basis (0xcbf29ce484222325 = 14695981039346656037) but that number
// without its last digit, as derive_seed() has always used it: every derived seed, and so every
// run's draws, depends on it.
constexpr std::uint64_t kSeedBasis = 1469598103934665603ull;

}  // namespace

std::uint64_t derive_seed(std::uint64_t seed, const std::string& component) {
  return fnv1a64(component, kSeedBasis ^ seed);  // FNV-1a over the name, keyed by the seed
}

KernelContext::KernelContext(const RunServices& services, const std::string& component)
    : services_(services), rng_(0), log_(component) {
  std::uint64_t n = services.calls ? (*services.calls)[component]++ : 0;
  rng_ = Rng(derive_seed(services.seed, n == 0 ? component : cat(component, "#", n)));
}

std::unique_ptr<Progress> KernelContext::progress(const std::string& label, std::int64_t total) {
  return std::make_unique<ConsoleProgress>(label, total);
}

bool KernelContext::cancelled() const { return core::cancelled(); }

ResultStore& KernelContext::store() {
  HYPERNAS_CHECK(services_.store != nullptr, "no results store is open for this run");
  return *services_.store;
}

bool KernelContext::notify(const std::string& event, const std::map<std::string, double>& values) {
  return services_.notify ? services_.notify(event, values) : true;
}

}  // namespace hypernas::core
