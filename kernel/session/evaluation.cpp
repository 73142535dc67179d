#include "kernel/session/evaluation.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <new>

#include <hypernas/hash.h>

#include "kernel/core/log.h"
#include "kernel/store/store.h"

namespace hypernas::session {

std::uint64_t evaluation_seed(std::uint64_t run_seed, const std::string& arch_hash) {
  return core::derive_seed(run_seed, "evaluation/" + arch_hash);
}

namespace {

/// The per-exit scores recorded as "exit<K>_accuracy" / "exit<K>_flops" (see score_pending()),
/// rebuilt for a reused score: exits 0, 1, ... while both keys are there.
std::vector<ExitScore> exits_from_extra(const std::map<std::string, double>& extra) {
  std::vector<ExitScore> exits;
  for (std::size_t x = 0;; ++x) {
    const auto acc = extra.find(cat("exit", x, "_accuracy"));
    const auto flops = extra.find(cat("exit", x, "_flops"));
    if (acc == extra.end() || flops == extra.end()) break;
    exits.push_back({acc->second, static_cast<std::int64_t>(std::llround(flops->second))});
  }
  return exits;
}

bool is_allocation_failure(const std::string& message) {
  for (const char* marker :
       {"out of memory", "can't allocate", "Out of memory", "OutOfMemory", "Tried to allocate"})
    if (message.find(marker) != std::string::npos) return true;
  return false;
}

std::string first_line(const std::string& text) {
  return abbreviate(text.substr(0, text.find('\n')), 300);
}

}  // namespace

std::string failure_reason(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Cancelled&) {
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    return abbreviate(e.what(), 1000);
  } catch (const std::bad_alloc&) {
    return "out of memory (std::bad_alloc)";
  } catch (const c10::Error& e) {
    if (is_allocation_failure(e.what())) return "out of memory: " + first_line(e.what());
    throw;
  }
}

/// One architecture on its way through evaluate().
struct KernelEvaluationService::Pending {
  const Architecture* arch = nullptr;
  std::string hash;
  ArchStats stats;
  std::optional<Score> score;        ///< Set once scored.
  std::optional<std::string> error;  ///< Set once failed.
  double seconds = 0;
  bool reused = false;
};

KernelEvaluationService::KernelEvaluationService(std::shared_ptr<SurrogateHandle> surrogate,
                                                 const SearchSpace& space, const Dataset* data,
                                                 EvalSettings settings,
                                                 const core::RunServices& services,
                                                 store::SqliteStore& store)
    : surrogate_(std::move(surrogate)),
      space_(space),
      data_(data),
      settings_(settings),
      services_(services),
      store_(store) {
  HYPERNAS_INTERNAL_ASSERT(surrogate_ != nullptr, "evaluation service without a surrogate");
  if ((surrogate_->plugin().capabilities() & kNeedsData) && !data_)
    throw UsageError(cat("surrogate '", surrogate_->name(), "' needs data = nas.dataset{...}"));
  if (settings_.batch_size < 1)
    throw UsageError(cat("evaluation batch size must be >= 1, got ", settings_.batch_size));
  if (settings_.max_images < 0)
    throw UsageError(cat("evaluation images must be >= 0 (0: all), got ", settings_.max_images));
  if (!(settings_.max_failures >= 0 && settings_.max_failures <= 1))
    throw UsageError(
        cat("max_failures must be a fraction in [0, 1], got ", settings_.max_failures));
  key_ = surrogate_->evaluation_key(data_, settings_, services_.seed);
  counts_.best = -std::numeric_limits<double>::infinity();
}

void KernelEvaluationService::fail(Pending& p, const std::string& reason) {
  p.error = reason;
  Evaluation e;
  e.arch_hash = p.hash;
  e.surrogate = key_;
  e.score = std::numeric_limits<double>::quiet_NaN();
  e.seconds = p.seconds;
  e.extra["params"] = static_cast<double>(p.stats.params);
  e.extra["flops"] = static_cast<double>(p.stats.flops);
  store_.record_architecture(*p.arch);
  store_.record_failure(e, reason);
  ++counts_.failed;
  if (first_failure_.empty()) first_failure_ = cat(abbreviate(p.arch->text), ": ", reason);
  const LogLevel level = logged_reasons_.insert(reason).second ? LogLevel::Warn : LogLevel::Debug;
  core::write_log(level, surrogate_->name(),
                  cat("could not score ", abbreviate(p.arch->text), ": ", reason,
                      level == LogLevel::Warn ? " (recorded as failed; the search goes on)" : ""));
  // Reused scores count as tried: retrying old failures must not look like failing on everything.
  const std::int64_t tried = counts_.scored + counts_.reused + counts_.failed;
  if (counts_.failed >= settings_.min_failures &&
      static_cast<double>(counts_.failed) > settings_.max_failures * static_cast<double>(tried))
    throw Error(cat("surrogate '", surrogate_->name(), "' failed on ", counts_.failed, " of the ",
                    tried, " architectures it was asked to score (more than max_failures = ",
                    settings_.max_failures, "); first failure: ", first_failure_,
                    ". Every failure is recorded in the store with its reason (status 'failed')"));
}

void KernelEvaluationService::score_pending(const std::vector<Pending*>& pending) {
  if (pending.empty()) return;
  core::KernelContext ctx(services_, surrogate_->name());
  ScoreRequest request;
  request.space = &space_;
  request.data = data_;
  request.batch_size = settings_.batch_size;
  request.max_images = settings_.max_images;
  for (const Pending* p : pending) {
    request.archs.push_back(p->arch);
    request.seeds.push_back(evaluation_seed(services_.seed, p->hash));
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Score> scores;
  try {
    scores = surrogate_->plugin().score(ctx, request);
    HYPERNAS_CHECK(scores.size() == pending.size(), "surrogate '", surrogate_->name(),
                   "' returned ", scores.size(), " scores for ", pending.size(), " architectures");
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    if (pending.size() > 1) {
      // Which one failed? Score them one by one (each on its own is recorded as it goes).
      failure_reason(error);  // rethrows what is not a candidate's failure
      for (Pending* p : pending) score_pending({p});
      return;
    }
    pending[0]->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fail(*pending[0], failure_reason(error));
    return;
  }
  const double each = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                      static_cast<double>(pending.size());
  for (std::size_t j = 0; j < pending.size(); ++j) {
    Pending& p = *pending[j];
    p.seconds = each;
    if (!std::isfinite(scores[j].value)) {
      fail(p, cat("score is ", scores[j].value, " (not finite)"));
      continue;
    }
    store_.record_architecture(*p.arch);
    Evaluation e;
    e.arch_hash = p.hash;
    e.surrogate = key_;
    e.score = scores[j].value;
    e.seconds = each;
    e.extra = scores[j].extra;
    e.extra["params"] = static_cast<double>(p.stats.params);
    e.extra["flops"] = static_cast<double>(p.stats.flops);
    for (std::size_t x = 0; x < scores[j].exits.size(); ++x) {
      e.extra[cat("exit", x, "_accuracy")] = scores[j].exits[x].accuracy;
      e.extra[cat("exit", x, "_flops")] = static_cast<double>(scores[j].exits[x].flops);
    }
    store_.record_evaluation(e);
    p.score = std::move(scores[j]);
    p.score->extra = std::move(e.extra);  // as a reused score reads back from the store
    ++counts_.scored;
  }
}

Evaluated KernelEvaluationService::evaluate(Context& ctx, const std::vector<Architecture>& archs,
                                            Progress* progress) {
  Evaluated out;
  std::vector<Pending> all(archs.size());
  std::vector<Pending*> to_score;
  for (std::size_t i = 0; i < archs.size(); ++i) {
    Pending& p = all[i];
    p.arch = &archs[i];
    p.hash = store_.hash(archs[i]);
    p.stats = space_.stats(archs[i]);
    std::optional<store::Outcome> prior;
    if (settings_.reuse) prior = store_.find_outcome(p.hash, key_);
    if (prior && !prior->failed) {
      Score s;
      s.value = prior->evaluation.score;
      s.extra = prior->evaluation.extra;
      s.exits = exits_from_extra(s.extra);
      p.score = std::move(s);
      p.seconds = prior->evaluation.seconds;
      p.reused = true;
      ++counts_.reused;
    } else if (prior && prior->failed && !settings_.retry_failed) {
      p.error = prior->error;
      p.reused = true;
      ++counts_.reused_failed;
    } else {
      to_score.push_back(&p);
    }
  }
  ctx.check_cancelled();
  score_pending(to_score);

  for (Pending& p : all) {
    if (p.score) {
      Candidate c;
      c.arch = *p.arch;
      c.hash = p.hash;
      c.score = std::move(*p.score);
      c.stats = p.stats;
      c.seconds = p.reused ? 0 : p.seconds;
      c.reused = p.reused;
      counts_.best = std::max(counts_.best, c.score.value);
      if (progress) progress->advance(1, cat("best ", counts_.best));
      if (!p.reused && !stopped_ &&
          !ctx.notify("candidate", {{"index", static_cast<double>(++notified_)},
                                    {"score", c.score.value},
                                    {"params", static_cast<double>(c.stats.params)},
                                    {"flops", static_cast<double>(c.stats.flops)},
                                    {"seconds", c.seconds},
                                    {"best", counts_.best}})) {
        ctx.log().info("stopped by the script's on_candidate callback");
        stopped_ = true;
      }
      out.scored.push_back(std::move(c));
    } else {
      HYPERNAS_INTERNAL_ASSERT(p.error.has_value(), "architecture neither scored nor failed");
      if (progress) progress->advance(1);
      out.failed.push_back({*p.arch, p.hash, *p.error, p.reused});
    }
  }
  out.stop = stopped_;
  return out;
}

void KernelEvaluationService::log_summary(Logger& log) const {
  if (counts_.reused > 0)
    log.info(cat("reused ", counts_.reused, " scores recorded earlier under this key"));
  if (counts_.reused_failed > 0)
    log.info(cat("skipped ", counts_.reused_failed,
                 " architectures that failed before (retry_failed = true scores them again)"));
  if (counts_.failed > 0)
    log.warn(cat(counts_.failed, " of ", counts_.scored + counts_.failed,
                 " architectures could not be scored; they are recorded with their reasons "
                 "(nas.evaluations(key, { status = \"failed\" }))"));
}

}  // namespace hypernas::session
