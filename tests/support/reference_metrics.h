#pragma once
/// @file reference_metrics.h
/// @brief The ranking metrics written out from their definitions (O(n^2) Kendall, ranks by
/// sorting), independently of kernel/metrics: the reference the kernel's metrics and the
/// `compare` report are tested against.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

namespace hypernas::test::reference {

inline double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}
inline std::vector<double> ranks(const std::vector<double>& v) {  // ties: their average rank
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    double below = 0, equal = 0;
    for (double w : v) below += w < v[i], equal += w == v[i];
    r[i] = below + (equal + 1) / 2;
  }
  return r;
}
inline double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  return pearson(ranks(x), ranks(y));
}
inline double kendall_b(const std::vector<double>& x, const std::vector<double>& y) {
  double c = 0, d = 0, tx = 0, ty = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = i + 1; j < x.size(); ++j) {
      const double a = x[i] - x[j], b = y[i] - y[j];
      if (a == 0 && b == 0) continue;
      if (a == 0) ++tx;
      else if (b == 0) ++ty;
      else if ((a > 0) == (b > 0)) ++c;
      else ++d;
    }
  return (c - d) / std::sqrt((c + d + tx) * (c + d + ty));
}
inline double top_overlap(const std::vector<double>& x, const std::vector<double>& y,
                          std::size_t k) {
  auto order = [](const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](auto a, auto b) { return v[a] > v[b]; });
    return idx;
  };
  const auto ox = order(x), oy = order(y);
  std::size_t both = 0;
  for (std::size_t i = 0; i < k; ++i)
    both += std::count(oy.begin(), oy.begin() + static_cast<long>(k), ox[i]);
  return static_cast<double>(both) / static_cast<double>(k);
}

}  // namespace hypernas::test::reference
