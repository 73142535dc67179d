#pragma once
/// @file strategy.h
/// @brief Search strategies: decide which architectures to score and return a ranking.

#include <cstdint>
#include <string>
#include <vector>

#include "hypernas/architecture.h"
#include "hypernas/context.h"
#include "hypernas/data.h"
#include "hypernas/plugin.h"
#include "hypernas/space.h"
#include "hypernas/surrogate.h"

namespace hypernas {

/// One ranked architecture.
struct Candidate {
  Architecture arch;      ///< The architecture.
  std::string hash;       ///< Its stable hash in the results store.
  Score score;            ///< Its score.
  ArchStats stats;        ///< Its parameter count and FLOPs.
  double seconds = 0;     ///< Cost of scoring it (0 when reused from an earlier run).
  bool reused = false;    ///< True when the score came from the store, not a new evaluation.
};

/// What a strategy searches with.
struct SearchRequest {
  Surrogate* surrogate = nullptr;     ///< The scorer.
  std::string surrogate_key;          ///< Name plus resolved options: keys reused evaluations.
  const SearchSpace* space = nullptr; ///< Where architectures come from.
  const Dataset* data = nullptr;      ///< Data for scoring (may be null for data-free scorers).
  std::int64_t eval_batch_size = 256; ///< Fixed evaluation batch size.
  std::int64_t eval_images = 0;       ///< Validation images per scored architecture (0: all).
};

/// A strategy plugin.
class Strategy : public Plugin {
 public:
  /// Always PluginKind::Strategy.
  PluginKind kind() const final { return PluginKind::Strategy; }
  /// Runs the search and returns the kept candidates, best first. Records every scored
  /// candidate in ctx.store() as soon as it is scored, and skips architectures the store
  /// already holds an evaluation for (so a killed search resumes).
  virtual std::vector<Candidate> run(Context& ctx, const SearchRequest& request) = 0;
};

}  // namespace hypernas
