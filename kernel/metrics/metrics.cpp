#include "kernel/metrics/metrics.h"

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

double kendall(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair(x, y, "kendall");
  double concordant = 0, discordant = 0, ties_x = 0, ties_y = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = i + 1; j < x.size(); ++j) {
      const double dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx == 0 && dy == 0) continue;  // tied in both: counts in neither denominator term
      if (dx == 0) ++ties_x;
      else if (dy == 0) ++ties_y;
      else if ((dx > 0) == (dy > 0)) ++concordant;
      else ++discordant;
    }
  const double denom =
      std::sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y));
  if (denom == 0) return std::numeric_limits<double>::quiet_NaN();
  return (concordant - discordant) / denom;
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

}  // namespace hypernas::metrics
