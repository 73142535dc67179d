#pragma once
/// @file intensive.h
/// @brief ADWP's superiority score of an intensive space (ADWPNAS §3.1.2, Eqs. 2-3), header-only
/// (ABI 1.4).
///
/// An intensive space O*_t keeps, for every node of every cell type, the K most likely non-zero
/// candidates under the architecture parameters of epoch t (SearchSpace::intensive()). Its
/// stability against an earlier one is s(O*_{t-i}, O*_t) = 1 - C / (M K), C the number of
/// changed candidates, M the number of nodes; its superiority backtracks n epochs:
/// S(O*_t) = prod_{0 <= i <= n} s(O*_{t-i}, O*_t) eps(alpha_{t-i}), eps the validation accuracy.

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "hypernas/error.h"
#include "hypernas/space.h"

namespace hypernas {

/// Number of nodes (M, summed over cell types) of an intensive space.
inline std::int64_t intensive_nodes(const IntensiveSpace& space) {
  std::int64_t m = 0;
  for (const auto& cell : space.choices) m += static_cast<std::int64_t>(cell.size());
  return m;
}

/// C(a, b): candidates of b that a's same node lacks, summed over nodes. Throws Error when the
/// two do not have the same cell types and nodes.
inline std::int64_t intensive_changes(const IntensiveSpace& a, const IntensiveSpace& b) {
  if (a.choices.size() != b.choices.size())
    throw Error(cat("intensive spaces with ", a.choices.size(), " and ", b.choices.size(),
                    " cell types cannot be compared"));
  std::int64_t changed = 0;
  for (std::size_t g = 0; g < a.choices.size(); ++g) {
    if (a.choices[g].size() != b.choices[g].size())
      throw Error(cat("intensive spaces with ", a.choices[g].size(), " and ", b.choices[g].size(),
                      " nodes in cell type ", g, " cannot be compared"));
    for (std::size_t m = 0; m < a.choices[g].size(); ++m) {
      const std::set<std::string> before(a.choices[g][m].begin(), a.choices[g][m].end());
      for (const auto& c : b.choices[g][m]) changed += before.count(c) ? 0 : 1;
    }
  }
  return changed;
}

/// Eq. 2: s(a, b) = 1 - C(a, b) / (M K), K candidates per node. Throws Error unless k >= 1.
inline double intensive_stability(const IntensiveSpace& a, const IntensiveSpace& b,
                                  std::int64_t k) {
  if (k < 1) throw Error(cat("intensive stability needs K >= 1, got ", k));
  const std::int64_t m = intensive_nodes(b);
  if (m == 0) throw Error("intensive stability of a space without nodes");
  return 1.0 - static_cast<double>(intensive_changes(a, b)) / static_cast<double>(m * k);
}

/// Eq. 3: S(O*_t) over spaces[t-n..t] and their epochs' validation accuracies (in [0, 1]).
/// Throws Error when t < n, t is out of range or the two lists differ in length.
inline double superiority(const std::vector<IntensiveSpace>& spaces,
                          const std::vector<double>& accuracy, std::size_t t, std::size_t n,
                          std::int64_t k) {
  if (spaces.size() != accuracy.size())
    throw Error(cat("superiority: ", spaces.size(), " intensive spaces but ", accuracy.size(),
                    " accuracies"));
  if (t >= spaces.size()) throw Error(cat("superiority: epoch ", t, " of ", spaces.size()));
  if (t < n) throw Error(cat("superiority: epoch ", t, " cannot backtrack ", n, " epochs"));
  double s = 1.0;
  for (std::size_t i = 0; i <= n; ++i)
    s *= intensive_stability(spaces[t - i], spaces[t], k) * accuracy[t - i];
  return s;
}

/// The epoch t >= n of largest superiority (the first of equal ones); throws Error when there
/// are not n + 1 epochs.
inline std::size_t best_superiority_epoch(const std::vector<IntensiveSpace>& spaces,
                                          const std::vector<double>& accuracy, std::size_t n,
                                          std::int64_t k) {
  if (spaces.size() < n + 1)
    throw Error(
        cat("superiority: ", spaces.size(), " epochs, need at least ", n + 1, " to backtrack ", n));
  std::size_t best = n;
  double best_s = -1;
  for (std::size_t t = n; t < spaces.size(); ++t) {
    const double s = superiority(spaces, accuracy, t, n, k);
    if (s > best_s) {
      best_s = s;
      best = t;
    }
  }
  return best;
}

}  // namespace hypernas
