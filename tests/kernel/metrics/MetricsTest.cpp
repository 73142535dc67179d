#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include <hypernas/error.h>

#include "kernel/metrics/metrics.h"
#include "tests/support/reference_metrics.h"

using namespace hypernas::metrics;

TEST(Metrics, PerfectAndReversedOrders) {
  std::vector<double> a{1, 2, 3, 4, 5}, b{10, 20, 30, 40, 50}, c{5, 4, 3, 2, 1};
  EXPECT_NEAR(pearson(a, b), 1.0, 1e-12);
  EXPECT_NEAR(spearman(a, c), -1.0, 1e-12);
  EXPECT_NEAR(kendall(a, b), 1.0, 1e-12);
  EXPECT_NEAR(kendall(a, c), -1.0, 1e-12);
}

TEST(Metrics, KnownValuesFromScipy) {
  // scipy.stats on x = [1, 2, 3, 4, 5, 6], y = [2, 1, 4, 3, 6, 5]:
  // pearsonr 0.8285714, spearmanr 0.8285714, kendalltau 0.6
  std::vector<double> x{1, 2, 3, 4, 5, 6}, y{2, 1, 4, 3, 6, 5};
  EXPECT_NEAR(pearson(x, y), 0.8285714285714286, 1e-12);
  EXPECT_NEAR(spearman(x, y), 0.8285714285714286, 1e-12);
  EXPECT_NEAR(kendall(x, y), 0.6, 1e-12);
}

TEST(Metrics, TiesAreHandled) {
  // scipy: x = [1, 2, 2, 3], y = [1, 3, 2, 4] -> spearmanr 0.9486833, kendalltau(tau-b) 0.9128709
  std::vector<double> x{1, 2, 2, 3}, y{1, 3, 2, 4};
  EXPECT_NEAR(spearman(x, y), 0.9486832980505138, 1e-12);
  EXPECT_NEAR(kendall(x, y), 0.9128709291752769, 1e-12);
  auto r = average_ranks({10, 20, 20, 30});
  EXPECT_EQ(r, (std::vector<double>{1, 2.5, 2.5, 4}));
}

TEST(Metrics, ConstantInputGivesNaN) {
  std::vector<double> x{1, 1, 1}, y{1, 2, 3};
  EXPECT_TRUE(std::isnan(pearson(x, y)));
  EXPECT_TRUE(std::isnan(kendall(x, y)));
}

TEST(Metrics, TopKOverlap) {
  std::vector<double> x{9, 8, 7, 1, 2}, y{9, 1, 7, 8, 2};
  EXPECT_DOUBLE_EQ(top_k_overlap(x, y, 3), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(top_k_overlap(x, x, 5), 1.0);
}

TEST(Metrics, BadInputIsRefusedWithReason) {
  try {
    pearson({1, 2}, {1, 2, 3});
    FAIL();
  } catch (const hypernas::Error& e) {
    EXPECT_NE(std::string(e.what()).find("differ in length (2 and 3)"), std::string::npos);
  }
  EXPECT_THROW(spearman({1}, {1}), hypernas::Error);
  EXPECT_THROW(kendall({1, NAN}, {1, 2}), hypernas::Error);
  EXPECT_THROW(top_k_overlap({1, 2}, {1, 2}, 3), hypernas::Error);
}

TEST(Metrics, KendallMatchesANaiveCountOverRandomData) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t n = 2 + rng() % 60;
    const int levels = trial % 2 ? 5 : 1000;  // many ties, or few
    std::vector<double> x(n), y(n);
    for (auto& v : x) v = static_cast<double>(rng() % levels);
    for (auto& v : y) v = static_cast<double>(rng() % levels);
    if (std::all_of(x.begin(), x.end(), [&](double v) { return v == x[0]; })) x[0] += 1;
    if (std::all_of(y.begin(), y.end(), [&](double v) { return v == y[0]; })) y[0] += 1;
    const double tau = kendall(x, y);
    EXPECT_NEAR(tau, hypernas::test::reference::kendall_b(x, y), 1e-12)
        << "n " << n << " trial " << trial;
    EXPECT_GE(tau, -1.0);
    EXPECT_LE(tau, 1.0);
    EXPECT_NEAR(kendall(x, x), 1.0, 1e-12);
    EXPECT_NEAR(kendall(y, x), tau, 1e-12);  // symmetric
  }
}

TEST(Metrics, BootstrapIntervalsAreRepeatableAndShrinkWithMoreData) {
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto sample = [&](std::size_t n) {
    std::vector<double> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = noise(rng);
      y[i] = x[i] + noise(rng);  // correlation 1/sqrt(2)
    }
    return std::make_pair(x, y);
  };
  const auto [x, y] = sample(60);
  const auto a = hypernas::metrics::bootstrap("spearman", x, y, 500, 0.95, 7);
  const auto b = hypernas::metrics::bootstrap("spearman", x, y, 500, 0.95, 7);
  EXPECT_EQ(a.low, b.low);  // a seed gives the same interval
  EXPECT_EQ(a.high, b.high);
  EXPECT_DOUBLE_EQ(a.value, spearman(x, y));
  EXPECT_LT(a.low, a.value);
  EXPECT_GT(a.high, a.value);
  const auto narrow = hypernas::metrics::bootstrap("spearman", x, y, 500, 0.5, 7);
  EXPECT_GT(narrow.low, a.low);
  EXPECT_LT(narrow.high, a.high);
  const auto [bx, by] = sample(600);
  const auto big = hypernas::metrics::bootstrap("kendall", bx, by, 200, 0.95, 7);
  const auto small = hypernas::metrics::bootstrap("kendall", x, y, 200, 0.95, 7);
  EXPECT_LT(big.high - big.low, small.high - small.low);
  EXPECT_GT(big.low, 0.35);  // tau of a 0.71 Gaussian correlation is about 0.5
  EXPECT_LT(big.high, 0.65);

  EXPECT_THROW(hypernas::metrics::bootstrap("rmse", x, y), hypernas::UsageError);
  EXPECT_THROW(hypernas::metrics::bootstrap("pearson", x, y, 5), hypernas::UsageError);
  EXPECT_THROW(hypernas::metrics::bootstrap("pearson", x, y, 100, 1.0), hypernas::UsageError);
  EXPECT_THROW(hypernas::metrics::bootstrap("pearson", {1, 2}, {1}), hypernas::Error);
}
