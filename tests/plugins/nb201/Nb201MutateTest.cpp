// Tests of the nb201 space's ABI 1.5 mutate() (SMASH-style perturbations) and of its ±1
// encoding.

#include <cmath>
#include <set>
#include <string>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include "plugins/spaces/nb201/nb201.h"
#include "tests/support/errors.h"

namespace {

using hypernas::Architecture;
using hypernas::Nb201Space;
using hypernas::Rng;
using hypernas::test::error_of;
using namespace hypernas::nb201;

const std::string kExample =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

Nb201Space default_space() { return Nb201Space(Nb201Space::params().resolve({}, "nb201")); }

/// One cell per stage: mutations and encodings do not depend on the network around the cell,
/// and its graphs build faster.
Nb201Space small_space() {
  hypernas::Options o;
  o.set("cells_per_stage", std::int64_t{1});
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

/// Edges on which `a` and `b` take different ops.
int changed_edges(const Cell& a, const Cell& b) {
  int n = 0;
  for (int e = 0; e < kEdges; ++e) n += a.ops[e] != b.ops[e] ? 1 : 0;
  return n;
}

TEST(Nb201Mutate, ZeroProbabilityKeepsTheCellAndOneChangesEveryEdge) {
  const Nb201Space space = default_space();
  Rng rng(3);
  for (int i = 0; i < 200; ++i) {
    const Architecture a = space.sample(rng);
    EXPECT_EQ(space.mutate(a, rng, 0.0).text, a.text);
    const Architecture m = space.mutate(a, rng, 1.0);
    EXPECT_EQ(m.space, "nb201");
    EXPECT_EQ(changed_edges(space.cell_of(a), space.cell_of(m)), kEdges)
        << a.text << " -> " << m.text;
    EXPECT_EQ(space.parse(m.text).text, m.text);
    EXPECT_GT(boost::num_vertices(m.graph), 0u);  // a whole architecture, graph included
  }
}

TEST(Nb201Mutate, EachEdgeChangesWithProbabilityPUniformlyAmongTheOtherOps) {
  const Nb201Space space = small_space();
  Rng rng(17);
  const Architecture a = space.parse(kExample);
  const Cell start = space.cell_of(a);
  int changed = 0;
  // to[e][k]: how often edge e moved to op k.
  int to[kEdges][kOps] = {};
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const Architecture m = space.mutate(a, rng, 0.2);
    ASSERT_EQ(space.parse(m.text).text, m.text);
    const Cell c = space.cell_of(m);
    changed += changed_edges(start, c);
    for (int e = 0; e < kEdges; ++e)
      if (c.ops[e] != start.ops[e]) ++to[e][c.ops[e]];
  }
  const double fraction = static_cast<double>(changed) / (n * kEdges);
  EXPECT_NEAR(fraction, 0.2, 0.02);
  // A changed edge takes each of the 4 other ops about equally often (expected 100 each; the
  // bounds are about 4 standard deviations).
  for (int e = 0; e < kEdges; ++e)
    for (int k = 0; k < kOps; ++k) {
      if (k == start.ops[e]) continue;
      EXPECT_GT(to[e][k], 55) << "edge " << e << ", op " << kOpNames[k];
      EXPECT_LT(to[e][k], 145) << "edge " << e << ", op " << kOpNames[k];
    }
}

TEST(Nb201Mutate, IsDeterministicForASeedAndDrawsOnlyFromItsRng) {
  const Nb201Space space = default_space();
  const Architecture a = space.parse(kExample);
  Rng r1(5), r2(5);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(space.mutate(a, r1, 0.3).text, space.mutate(a, r2, 0.3).text);
  // The stream advanced by the same draws: one uniform per edge at p = 0.
  Rng r3(9), r4(9);
  space.mutate(a, r3, 0.0);
  for (int e = 0; e < kEdges; ++e) r4.uniform();
  EXPECT_EQ(r3.next_u64(), r4.next_u64());
}

TEST(Nb201Mutate, RefusesABadProbabilityAndAnotherSpace) {
  const Nb201Space space = default_space();
  const Architecture a = space.parse(kExample);
  Rng rng(1);
  EXPECT_NE(error_of([&] { space.mutate(a, rng, 1.5); }).find("p in [0, 1], got 1.5"),
            std::string::npos);
  EXPECT_NE(error_of([&] { space.mutate(a, rng, -0.1); }).find("got -0.1"), std::string::npos);
  EXPECT_NE(error_of([&] { space.mutate(a, rng, std::nan("")); }).find("p in [0, 1]"),
            std::string::npos);
  Architecture other = a;
  other.space = "darts";
  EXPECT_NE(error_of([&] { space.mutate(other, rng, 0.5); }).find("one of space 'darts'"),
            std::string::npos);
}

TEST(Nb201Encode, IsPlusMinusOneOneHotOfShape6x5) {
  const Nb201Space space = default_space();
  const at::Tensor t = space.encode(space.parse(kExample));
  EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{kEdges, kOps}));
  EXPECT_EQ(t.numel(), 30);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  const int ops[kEdges] = {kConv3x3, kConv3x3, kAvgPool3x3, kSkip, kConv3x3, kSkip};
  for (int e = 0; e < kEdges; ++e)
    for (int k = 0; k < kOps; ++k)
      EXPECT_EQ(t[e][k].item<float>(), k == ops[e] ? 1.0f : -1.0f) << e << "," << k;
  // Still its own argmax.
  EXPECT_EQ(space.discretize({t}, 1).text, kExample);
}

TEST(Nb201Encode, EveryCellHasItsOwnEncodingOfOneShape) {
  const Nb201Space space = small_space();
  std::set<std::string> seen;
  for (std::uint64_t i = 0; i < kCells; ++i) {
    // encode() reads the text alone; building 15,625 graphs would only slow the test down.
    Architecture a;
    a.space = "nb201";
    a.text = cell_to_string(cell_at(i));
    const at::Tensor t = space.encode(a);
    ASSERT_EQ(t.sizes(), (std::vector<std::int64_t>{kEdges, kOps})) << i;
    const float* v = t.data_ptr<float>();
    std::string key;
    for (std::int64_t j = 0; j < t.numel(); ++j) key += v[j] > 0 ? '+' : '-';
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), kCells);
}

}  // namespace
