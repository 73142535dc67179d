// Tests of the ghn space's ABI 1.5 mutate() (SMASH-style perturbations of a random block).

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "plugins/spaces/ghn/ghn.h"
#include "tests/support/errors.h"

namespace {

using hypernas::Architecture;
using hypernas::GhnSpace;
using hypernas::Options;
using hypernas::Rng;
using hypernas::test::error_of;
using namespace hypernas::ghn_space;

/// Blocks of `nodes` nodes in a toy network (1 stage, 4 channels, 8x8 inputs).
GhnSpace space(std::int64_t nodes = 7) {
  Options o;
  o.set("nodes", nodes)
      .set("blocks", std::int64_t{1})
      .set("channels", std::int64_t{4})
      .set("input_size", std::int64_t{8});
  return GhnSpace(GhnSpace::params().resolve(o, "ghn"));
}

TEST(GhnMutate, ZeroProbabilityKeepsTheBlockAndOneChangesEveryOp) {
  const GhnSpace s = space();
  Rng rng(3);
  for (int i = 0; i < 200; ++i) {
    const Architecture a = s.sample(rng);
    EXPECT_EQ(s.mutate(a, rng, 0.0).text, a.text);
    const Architecture m = s.mutate(a, rng, 1.0);
    EXPECT_EQ(m.space, "ghn");
    EXPECT_EQ(s.parse(m.text).text, m.text);
    const Block ba = s.block_of(a), bm = s.block_of(m);
    ASSERT_EQ(bm.nodes.size(), 7u);
    for (std::size_t k = 0; k < 7; ++k) {
      EXPECT_NE(bm.nodes[k].op, ba.nodes[k].op) << k;
      // Nodes >= 2 switch between reading 1 and 2 sources at p = 1.
      if (k >= 1) {
        EXPECT_NE(bm.nodes[k].inputs.size(), ba.nodes[k].inputs.size()) << k;
      } else {
        EXPECT_EQ(bm.nodes[k].inputs, std::vector<int>{0});  // node 1 can only read 0
      }
    }
  }
}

TEST(GhnMutate, EachChoiceChangesWithProbabilityAboutP) {
  const GhnSpace s = space();
  Rng rng(17);
  const Architecture a = s.parse(
      "n1=conv_3x3<0;n2=sep_conv_5x5<0,1;n3=max_pool_3x3<1;n4=identity<0,3;n5=conv_5x5<2;"
      "n6=avg_pool_3x3<4,5;n7=dil_conv_3x3<6");
  const Block ba = s.block_of(a);
  int ops = 0, counts = 0, sources = 0, source_total = 0;
  std::set<std::string> texts;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const Architecture m = s.mutate(a, rng, 0.2);
    ASSERT_EQ(s.parse(m.text).text, m.text);
    texts.insert(m.text);
    const Block bm = s.block_of(m);
    for (std::size_t k = 0; k < 7; ++k) {
      ops += bm.nodes[k].op != ba.nodes[k].op ? 1 : 0;
      if (k >= 1) counts += bm.nodes[k].inputs.size() != ba.nodes[k].inputs.size() ? 1 : 0;
      // Single-source nodes that kept their count: was the source redrawn (p, when it can be)?
      if (k >= 1 && ba.nodes[k].inputs.size() == 1 && bm.nodes[k].inputs.size() == 1) {
        ++source_total;
        sources += bm.nodes[k].inputs != ba.nodes[k].inputs ? 1 : 0;
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(ops) / (7 * n), 0.2, 0.02);
  EXPECT_NEAR(static_cast<double>(counts) / (6 * n), 0.2, 0.02);
  EXPECT_NEAR(static_cast<double>(sources) / source_total, 0.2, 0.03);
  EXPECT_GT(texts.size(), 1000u);
}

TEST(GhnMutate, IsDeterministicAndValidForEveryBlockSize) {
  for (const std::int64_t nodes : {1, 2, 3, 12}) {
    const GhnSpace s = space(nodes);
    Rng r1(9), r2(9);
    Architecture a = s.sample(r1);
    s.sample(r2);
    for (int i = 0; i < 300; ++i) {
      const Architecture m1 = s.mutate(a, r1, 0.4);
      EXPECT_EQ(m1.text, s.mutate(a, r2, 0.4).text);
      EXPECT_EQ(s.parse(m1.text).text, m1.text);
      a = m1;  // a walk: mutations of mutations stay valid
    }
  }
}

TEST(GhnMutate, RefusesABadProbabilityAndAnotherSpace) {
  const GhnSpace s = space(3);
  const Architecture a = s.parse("n1=conv_3x3<0;n2=sep_conv_5x5<0,1;n3=max_pool_3x3<1");
  Rng rng(1);
  EXPECT_NE(error_of([&] { s.mutate(a, rng, -1.0); })
                .find("ghn: mutate expects a probability p "
                      "in [0, 1], got -1"),
            std::string::npos);
  Architecture other = a;
  other.space = "nb201";
  EXPECT_NE(error_of([&] { s.mutate(other, rng, 0.1); }).find("one of space 'nb201'"),
            std::string::npos);
}

}  // namespace
