#pragma once
/// @file pool.h
/// @brief What the sampling strategies (`random`, `anytime`) share: drawing a pool of distinct
/// architectures, and scoring it through the kernel's evaluation service.

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <hypernas/strategy.h>

namespace hypernas::strategies {

/// How two draws are told apart.
enum class Distinct {
  Text,  ///< By Architecture::text (a finite space's indices are distinct already).
  Hash,  ///< By the results store's hash, also across the indices of a finite space.
};

/// `n` distinct architectures (at most the space's size), drawn from ctx.rng() before anything
/// is scored, so that they depend only on the seed. A finite space is sampled by index without
/// replacement (Floyd's algorithm, then shuffled), which stays fast when n is close to its
/// size; an unbounded one by rejection of repeats (an Error after 100 n + 1000 draws).
inline std::vector<Architecture> draw_distinct(Context& ctx, const SearchSpace& space,
                                               std::int64_t n, Distinct distinct) {
  if (auto size = space.size()) n = std::min<std::int64_t>(n, static_cast<std::int64_t>(*size));
  std::vector<Architecture> pool;
  pool.reserve(static_cast<std::size_t>(n));
  std::unordered_set<std::string> seen;
  auto keep = [&](Architecture a) {
    const bool fresh =
        seen.insert(distinct == Distinct::Hash ? ctx.store().hash(a) : a.text).second;
    if (fresh) pool.push_back(std::move(a));
  };
  if (auto size = space.size()) {
    std::unordered_set<std::uint64_t> chosen;
    std::vector<std::uint64_t> order;
    for (std::uint64_t j = *size - static_cast<std::uint64_t>(n); j < *size; ++j) {
      std::uint64_t t = ctx.rng().uniform_int(j + 1);
      if (!chosen.insert(t).second) t = j, chosen.insert(j);
      order.push_back(t);
    }
    std::shuffle(order.begin(), order.end(), ctx.rng().engine());
    for (std::uint64_t index : order) {
      ctx.check_cancelled();
      if (distinct == Distinct::Hash) keep(space.at(index));
      else pool.push_back(space.at(index));
    }
    return pool;
  }
  std::int64_t draws = 0;
  while (static_cast<std::int64_t>(pool.size()) < n) {
    ctx.check_cancelled();
    HYPERNAS_CHECK(++draws <= 100 * n + 1000, "space '", space.name(), "' yielded only ",
                   pool.size(), " distinct architectures in ", draws - 1, " draws");
    keep(space.sample(ctx.rng()));
  }
  return pool;
}

/// What score_pool() returns.
struct ScoredPool {
  std::vector<Candidate> scored;  ///< Scored (or reused) candidates, in pool order.
  std::size_t failed = 0;         ///< Candidates the surrogate failed on (recorded by the service).
};

/// Scores `pool` through `service`, `batch` architectures per call, under one progress bar named
/// `label`, until done or the script's callback asks to stop; `on_batch` sees each call's scored
/// candidates before they are kept (to check them). Cancelled (Ctrl-C, a time limit) goes out:
/// everything scored is already recorded. Warns when every candidate failed.
template <typename OnBatch>
ScoredPool score_pool(Context& ctx, EvaluationService& service,
                      const std::vector<Architecture>& pool, std::int64_t batch,
                      const std::string& label, OnBatch&& on_batch) {
  ScoredPool out;
  auto progress = ctx.progress(label, static_cast<std::int64_t>(pool.size()));
  for (std::size_t next = 0; next < pool.size();) {
    const std::size_t end = std::min(pool.size(), next + static_cast<std::size_t>(batch));
    Evaluated e =
        service.evaluate(ctx,
                         std::vector<Architecture>(pool.begin() + static_cast<std::ptrdiff_t>(next),
                                                   pool.begin() + static_cast<std::ptrdiff_t>(end)),
                         progress.get());
    next = end;
    out.failed += e.failed.size();
    on_batch(e.scored);
    for (auto& c : e.scored) out.scored.push_back(std::move(c));
    if (e.stop) break;
  }
  progress->finish();
  if (out.scored.empty() && out.failed > 0)
    ctx.log().warn(cat("every one of the ", out.failed, " candidates failed; nothing to rank"));
  return out;
}

}  // namespace hypernas::strategies
