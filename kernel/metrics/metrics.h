#pragma once
/// @file metrics.h
/// @brief Ranking metrics between a surrogate's scores and trained accuracies.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hypernas::metrics {

/// Pearson's linear correlation. NaN when either list is constant. Throws Error when the
/// lists differ in length, hold fewer than 2 values, or hold a non-finite value.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

/// Spearman's rank correlation: Pearson on ranks, ties given their average rank.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// Kendall's tau-b, which corrects for ties in either list. O(n^2), fine for thousands.
double kendall(const std::vector<double>& x, const std::vector<double>& y);

/// Fraction of the top-k items by x that are also in the top-k by y (ties broken by index).
double top_k_overlap(const std::vector<double>& x, const std::vector<double>& y, std::size_t k);

/// A statistic with its percentile-bootstrap confidence interval.
struct Interval {
  double value = 0;  ///< The statistic on the data as given.
  double low = 0;    ///< Lower end of the interval.
  double high = 0;   ///< Upper end of the interval.
};

/// A correlation of (x, y) (`metric` is "pearson", "spearman" or "kendall") with its
/// percentile-bootstrap interval at `level` (0.95: the 2.5th and 97.5th percentiles): `samples`
/// resamples of the pairs with replacement, drawn from a generator seeded with `seed`, so the
/// interval is repeatable. Resamples whose statistic is undefined (a constant list) are
/// skipped. Throws UsageError for an unknown metric, a level outside (0, 1) or samples < 10.
Interval bootstrap(const std::string& metric, const std::vector<double>& x,
                   const std::vector<double>& y, std::size_t samples = 1000, double level = 0.95,
                   std::uint64_t seed = 0);

/// Ranks 1..n with ties averaged (the ranks Spearman uses).
std::vector<double> average_ranks(const std::vector<double>& v);

}  // namespace hypernas::metrics
