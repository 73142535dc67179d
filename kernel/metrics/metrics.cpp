#include "kernel/metrics/metrics.h"

#include <random>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <hypernas/error.h>

namespace hypernas::metrics {
namespace {

void check_pair(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  HYPERNAS_CHECK(x.size() == y.size(), what, ": lists differ in length (", x.size(), " and ",
                 y.size(), ")");
  HYPERNAS_CHECK(x.size() >= 2, what, ": needs at least 2 pairs, got ", x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    HYPERNAS_CHECK(std::isfinite(x[i]) && std::isfinite(y[i]), what, ": value ", i + 1,
                   " is not finite (", x[i], ", ", y[i], ")");
}

double pearson_unchecked(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

std::vector<std::size_t> order_desc(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] > v[b]; });
  return idx;
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (std::size_t k = i; k <= j; ++k) ranks[idx[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair(x, y, "pearson");
  return pearson_unchecked(x, y);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair(x, y, "spearman");
  return pearson_unchecked(average_ranks(x), average_ranks(y));
}

namespace {

/// Pairs among runs of equal values of `v` (sorted): the sum of t (t - 1) / 2 over the runs.
template <typename Equal>
double tied_pairs(std::size_t n, Equal equal) {
  double ties = 0, run = 1;
  for (std::size_t i = 1; i <= n; ++i) {
    if (i < n && equal(i - 1, i)) {
      ++run;
    } else {
      ties += run * (run - 1) / 2;
      run = 1;
    }
  }
  return ties;
}

}  // namespace

double kendall(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair(x, y, "kendall");
  // Knight's O(n log n) tau-b: sort by (x, y), count the exchanges a stable merge sort by y
  // makes (the discordant pairs), and correct for ties in x, in y and in both.
  const std::size_t n = x.size();
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(),
            [&](std::size_t a, std::size_t b) { return x[a] != x[b] ? x[a] < x[b] : y[a] < y[b]; });
  const double tx =
      tied_pairs(n, [&](std::size_t i, std::size_t j) { return x[idx[i]] == x[idx[j]]; });
  const double txy = tied_pairs(n, [&](std::size_t i, std::size_t j) {
    return x[idx[i]] == x[idx[j]] && y[idx[i]] == y[idx[j]];
  });
  // Bottom-up merge sort by y, counting the elements each one jumps over.
  double swaps = 0;
  std::vector<std::size_t> buf(n);
  for (std::size_t width = 1; width < n; width *= 2) {
    for (std::size_t lo = 0; lo < n; lo += 2 * width) {
      const std::size_t mid = std::min(lo + width, n), hi = std::min(lo + 2 * width, n);
      std::size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        if (y[idx[j]] < y[idx[i]]) {
          swaps += static_cast<double>(mid - i);
          buf[k++] = idx[j++];
        } else {
          buf[k++] = idx[i++];
        }
      }
      while (i < mid) buf[k++] = idx[i++];
      while (j < hi) buf[k++] = idx[j++];
    }
    idx.swap(buf);
  }
  const double ty =
      tied_pairs(n, [&](std::size_t i, std::size_t j) { return y[idx[i]] == y[idx[j]]; });
  const double n0 = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
  const double denom = std::sqrt((n0 - tx) * (n0 - ty));
  if (denom == 0) return std::numeric_limits<double>::quiet_NaN();
  return (n0 - tx - ty + txy - 2 * swaps) / denom;
}

double top_k_overlap(const std::vector<double>& x, const std::vector<double>& y, std::size_t k) {
  check_pair(x, y, "top_k_overlap");
  HYPERNAS_CHECK(k >= 1 && k <= x.size(), "top_k_overlap: k must be in [1, ", x.size(), "], got ",
                 k);
  auto ox = order_desc(x), oy = order_desc(y);
  std::vector<char> in_y(x.size(), 0);
  for (std::size_t i = 0; i < k; ++i) in_y[oy[i]] = 1;
  std::size_t both = 0;
  for (std::size_t i = 0; i < k; ++i) both += in_y[ox[i]];
  return static_cast<double>(both) / static_cast<double>(k);
}

Interval bootstrap(const std::string& metric, const std::vector<double>& x,
                   const std::vector<double>& y, std::size_t samples, double level,
                   std::uint64_t seed) {
  double (*fn)(const std::vector<double>&, const std::vector<double>&) = nullptr;
  if (metric == "pearson") fn = pearson;
  else if (metric == "spearman") fn = spearman;
  else if (metric == "kendall") fn = kendall;
  else
    throw UsageError(
        cat("bootstrap: unknown metric '", metric, "' (expected pearson, spearman or kendall)"));
  if (!(level > 0 && level < 1))
    throw UsageError(cat("bootstrap: level must be in (0, 1), got ", level));
  if (samples < 10) throw UsageError(cat("bootstrap: samples must be >= 10, got ", samples));
  Interval out;
  out.value = fn(x, y);  // checks the lists
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<std::size_t> pick(0, x.size() - 1);
  std::vector<double> stats, bx(x.size()), by(y.size());
  stats.reserve(samples);
  for (std::size_t s = 0; s < samples; ++s) {
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t j = pick(gen);
      bx[i] = x[j];
      by[i] = y[j];
    }
    const double v = fn(bx, by);
    if (std::isfinite(v)) stats.push_back(v);
  }
  if (stats.empty()) {
    out.low = out.high = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  std::sort(stats.begin(), stats.end());
  auto at = [&stats](double q) {
    const double pos = q * static_cast<double>(stats.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, stats.size() - 1);
    return stats[lo] + (pos - static_cast<double>(lo)) * (stats[hi] - stats[lo]);
  };
  out.low = at((1 - level) / 2);
  out.high = at(1 - (1 - level) / 2);
  return out;
}

}  // namespace hypernas::metrics
