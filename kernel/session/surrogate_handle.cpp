#include "kernel/session/surrogate_handle.h"

#include <hypernas/hash.h>

#include "kernel/plugin/registry.h"
#include "kernel/store/checkpoint.h"

namespace hypernas::session {

SurrogateHandle::SurrogateHandle(const plugin::Registry& registry, const std::string& name,
                                 const Options& given)
    : name_(name) {
  options_ = registry.resolve(PluginKind::Surrogate, name, given);
  plugin_ = registry.create_surrogate(name, given);
  const plugin::PluginInfo* info = registry.find(PluginKind::Surrogate, name);
  HYPERNAS_INTERNAL_ASSERT(info != nullptr, "surrogate '", name, "' created but not registered");
  abi_minor_ = info->abi_minor;
  table_ = &info->descriptor->params();
  // An untrained surrogate's scores depend on its initial state too (a GHN's init_seed).
  if (plugin_->capabilities() & kTrainable) retag();
}

std::uint32_t SurrogateHandle::reads() const {
  const std::uint32_t caps = plugin_->capabilities();
  if (abi_minor_ >= 1) return caps & (kNeedsData | kUsesSeed | kReadsEvalBatch | kReadsEvalImages);
  std::uint32_t r = kUsesSeed;
  if (caps & kNeedsData) r |= kNeedsData | kReadsEvalBatch | kReadsEvalImages;
  return r;
}

std::string SurrogateHandle::options_key() const {
  std::string out;
  for (const auto& [k, v] : options_.values()) {
    // NOTE: ParamTable::affects_score reads a member that ABI 1.0 tables do not have.
    if (abi_minor_ >= 1 && !table_->affects_score(k)) continue;
    out += (out.empty() ? "" : ",") + k + "=" + to_string(v);
  }
  return cat(name_, "{", out, "}");
}

void SurrogateHandle::retag() {
  const std::string blob = plugin_->save_state();
  state_tag_ = blob.empty() ? "" : "#" + hex64(fnv1a64(blob));
}

std::string SurrogateHandle::evaluation_key(const Dataset* data, const EvalSettings& settings,
                                            std::uint64_t seed) const {
  const std::uint32_t r = reads();
  std::string key = options_key() + state_tag_;
  if ((r & kNeedsData) && data) key += "@" + data->identity();
  std::string inputs;
  auto add = [&inputs](const std::string& part) { inputs += (inputs.empty() ? "" : ",") + part; };
  if (data && (r & kReadsEvalBatch)) add(cat("batch=", settings.batch_size));
  if (data && (r & kReadsEvalImages)) add(cat("images=", settings.max_images));
  if (r & kUsesSeed) add(cat("seed=", seed));
  if (!inputs.empty()) key += "[" + inputs + "]";
  return key;
}

void SurrogateHandle::load_checkpoint(const std::filesystem::path& path) {
  store::load_checkpoint(path, name_, *plugin_);
  retag();
}

void SurrogateHandle::save_checkpoint(const std::filesystem::path& path) const {
  store::write_checkpoint(path, {name_, options_.canonical(), plugin_->save_state()});
}

}  // namespace hypernas::session
