#pragma once
/// @file metrics.h
/// @brief Ranking metrics between a surrogate's scores and trained accuracies.

#include <cstddef>
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

/// Ranks 1..n with ties averaged (the ranks Spearman uses).
std::vector<double> average_ranks(const std::vector<double>& v);

}  // namespace hypernas::metrics
