#include "kernel/core/context.h"

#include "kernel/core/cancel.h"
#include "kernel/core/progress.h"

namespace hypernas::core {

std::uint64_t derive_seed(std::uint64_t seed, const std::string& component) {
  std::uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the name, keyed by the seed
  for (unsigned char c : component) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
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
