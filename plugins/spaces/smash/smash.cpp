#include "smash.h"

#include <hypernas/graph_stats.h>

namespace hypernas {

const ParamTable& SmashSpace::params() noexcept { return smash::config_params(); }

SmashSpace::SmashSpace(const Options& options) : config_(smash::Config::from(options)) {}

Architecture SmashSpace::make(const smash::Arch& a) const {
  Architecture arch;
  arch.space = name();
  arch.text = smash::print(a);
  arch.graph = smash::build_graph(config_, a);
  return arch;
}

smash::Arch SmashSpace::arch_of(const Architecture& arch) const {
  HYPERNAS_CHECK(arch.space == name(),
                 "smash: expected an architecture of space 'smash', got one "
                 "of space '",
                 arch.space, "' ('", abbreviate(arch.text), "')");
  return smash::parse(config_, arch.text);
}

Architecture SmashSpace::sample(Rng& rng) const { return make(smash::sample(config_, rng)); }

Architecture SmashSpace::parse(const std::string& text) const {
  return make(smash::parse(config_, text));
}

std::vector<std::string> SmashSpace::op_vocabulary() const {
  return {"input", "conv",   "bn",    "relu", "avg_pool", "add",    "concat",
          "gap",   "linear", "slice", "mul",  "tanh",     "sigmoid"};
}

ArchStats SmashSpace::stats(const Architecture& arch) const {
  // An architecture that carries only its text (its graph not rebuilt) is counted from it.
  if (boost::num_vertices(arch.graph) == 0 && arch.space == name())
    return count_graph(make(arch_of(arch)).graph, config_.input_size);
  return count_graph(arch.graph, config_.input_size);
}

at::Tensor SmashSpace::encode(const Architecture& arch) const {
  return smash::encode(config_, arch_of(arch));
}

Architecture SmashSpace::mutate(const Architecture& arch, Rng& rng, double p) const {
  HYPERNAS_CHECK(p >= 0 && p <= 1, "smash: mutate expects a probability in [0, 1], got ", p);
  return make(smash::mutate(config_, arch_of(arch), rng, p));
}

}  // namespace hypernas
