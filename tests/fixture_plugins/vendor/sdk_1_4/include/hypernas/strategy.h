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
  Architecture arch;    ///< The architecture.
  std::string hash;     ///< Its stable hash in the results store.
  Score score;          ///< Its score.
  ArchStats stats;      ///< Its parameter count and FLOPs.
  double seconds = 0;   ///< Cost of scoring it (0 when reused from an earlier run).
  bool reused = false;  ///< True when the score came from the store, not a new evaluation.
};

/// An architecture the surrogate could not score: its score was NaN or infinite, or scoring it
/// threw hypernas::Error or ran out of memory (ABI 1.1).
struct Failure {
  Architecture arch;    ///< The architecture.
  std::string hash;     ///< Its hash in the results store.
  std::string reason;   ///< Why, as recorded in the store.
  bool reused = false;  ///< True when the failure was recorded by an earlier run.
};

/// What EvaluationService::evaluate() returns (ABI 1.1).
struct Evaluated {
  std::vector<Candidate> scored;  ///< Scored or reused architectures, in request order.
  std::vector<Failure> failed;    ///< Architectures that failed, in request order.
  bool stop = false;  ///< The script's callback asked to stop: a strategy scores no more.
};

/// Running totals of one EvaluationService (ABI 1.1).
struct EvaluationCounts {
  std::int64_t scored = 0;         ///< Newly scored.
  std::int64_t reused = 0;         ///< Scores taken from the store.
  std::int64_t failed = 0;         ///< Newly failed.
  std::int64_t reused_failed = 0;  ///< Failures recorded by an earlier run, not retried.
  double best = 0;                 ///< Best score seen (scored or reused); -inf before any.
};

/// The kernel's evaluation service for one surrogate with fixed evaluation settings (ABI 1.1).
/// Strategies score through it and only choose what to score: it looks up stored scores (and
/// stored failures), calls the surrogate with the per-evaluation seeds, times each call, checks
/// each score, records architecture, evaluation, parameters and FLOPs (or the failure and its
/// reason) as soon as they are known, calls the script's callback and honours Ctrl-C.
/// A surrogate that fails on too many architectures (the run's `max_failures`) stops the
/// search with an Error that names it and its first failure.
class EvaluationService {
 public:
  virtual ~EvaluationService() = default;
  /// Scores `archs` in order, advancing `progress` (may be null) by one per architecture.
  /// Throws Cancelled on Ctrl-C or a time limit (everything scored so far is recorded).
  virtual Evaluated evaluate(Context& ctx, const std::vector<Architecture>& archs,
                             Progress* progress) = 0;
  /// The evaluation key the scores are stored under (see docs/architecture.md).
  virtual std::string key() const = 0;
  /// True once the script's callback asked to stop.
  virtual bool stopped() const = 0;
  /// What it did so far.
  virtual EvaluationCounts counts() const = 0;
};

/// What a strategy searches with.
struct SearchRequest {
  Surrogate* surrogate = nullptr;      ///< The scorer.
  std::string surrogate_key;           ///< The evaluation key (see EvaluationService::key()).
  const SearchSpace* space = nullptr;  ///< Where architectures come from.
  const Dataset* data = nullptr;       ///< Data for scoring (may be null for data-free scorers).
  std::int64_t eval_batch_size = 256;  ///< Fixed evaluation batch size.
  std::int64_t eval_images = 0;        ///< Validation images per scored architecture (0: all).
  /// ABI 1.1: scores `surrogate` with these settings, recording and reusing (never null when
  /// the kernel calls). Strategies built with ABI 1.0 record through Context::store() instead.
  EvaluationService* evaluations = nullptr;
  /// ABI 1.4: the ABI minors `space` and `surrogate` were built with. A virtual function
  /// appended in minor m may be called on them only when their minor is >= m (a gradient
  /// strategy checks for 4 before SearchSpace::relaxed()).
  std::uint32_t space_abi_minor = 0;
  std::uint32_t surrogate_abi_minor = 0;  ///< See space_abi_minor.
};

/// A strategy plugin.
class Strategy : public Plugin {
 public:
  /// Always PluginKind::Strategy.
  PluginKind kind() const final { return PluginKind::Strategy; }
  /// Runs the search and returns the kept candidates, best first. Scores through
  /// request.evaluations, which records every candidate as soon as it is scored and reuses what
  /// the store already holds (so a killed search resumes).
  virtual std::vector<Candidate> run(Context& ctx, const SearchRequest& request) = 0;
};

}  // namespace hypernas
