#pragma once
/// @file evaluation.h
/// @brief The kernel's evaluation service: the one place that looks up, scores, times, checks,
/// records and reports evaluations (LLVM's AnalysisManager idea: callers ask, it caches by key).
///
/// `random` and every other strategy, `surrogate:score{}` and `hypernas score` go through it,
/// so a score means the same thing and is stored the same way whoever asked for it.

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include <hypernas/strategy.h>

#include "kernel/core/context.h"
#include "kernel/session/surrogate_handle.h"

namespace hypernas::store {
class SqliteStore;
}

namespace hypernas::session {

/// The seed of one evaluation: derived from the run's seed and the architecture's hash only,
/// so it does not depend on call order (ScoreRequest::seeds).
std::uint64_t evaluation_seed(std::uint64_t run_seed, const std::string& arch_hash);

/// Why an exception thrown while scoring is a failed candidate rather than a failed run: a
/// hypernas::Error (not Cancelled, not UsageError), std::bad_alloc, or a c10::Error for an
/// allocation. Returns the reason, or rethrows the exception when it is none of these.
std::string failure_reason(std::exception_ptr error);

/// EvaluationService over one surrogate, space, dataset and settings.
class KernelEvaluationService final : public EvaluationService {
 public:
  /// `services` and `store` must outlive the service; `space` and `data` too (data may be null).
  KernelEvaluationService(std::shared_ptr<SurrogateHandle> surrogate, const SearchSpace& space,
                          const Dataset* data, EvalSettings settings,
                          const core::RunServices& services, store::SqliteStore& store);

  Evaluated evaluate(Context& ctx, const std::vector<Architecture>& archs,
                     Progress* progress) override;
  std::string key() const override { return key_; }
  bool stopped() const override { return stopped_; }
  EvaluationCounts counts() const override { return counts_; }

  /// Logs one line summing up reuse and failures (nothing when there is nothing to say).
  void log_summary(Logger& log) const;

 private:
  struct Pending;
  /// Scores `pending` in one call; on an error, one by one to find the architecture at fault.
  void score_pending(const std::vector<Pending*>& pending);
  void fail(Pending& p, const std::string& reason);

  std::shared_ptr<SurrogateHandle> surrogate_;
  const SearchSpace& space_;
  const Dataset* data_;
  EvalSettings settings_;
  const core::RunServices& services_;
  store::SqliteStore& store_;
  std::string key_;
  bool stopped_ = false;
  EvaluationCounts counts_;
  std::int64_t notified_ = 0;             ///< Candidates reported to the script so far.
  std::string first_failure_;             ///< "arch: reason" of the first fresh failure.
  std::set<std::string> logged_reasons_;  ///< Each distinct reason is logged once as a warning.
};

}  // namespace hypernas::session
