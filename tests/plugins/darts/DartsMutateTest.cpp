// Tests of the darts space's ABI 1.5 mutate() (SMASH-style perturbations), also inside an
// intensive space and in macro mode, and of its ±1 encoding.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include "plugins/spaces/darts/darts.h"
#include "tests/support/errors.h"

namespace {

namespace fs = std::filesystem;

using hypernas::Architecture;
using hypernas::DartsSpace;
using hypernas::Options;
using hypernas::Rng;
using hypernas::test::error_of;
using namespace hypernas::darts;

/// K = 3 candidates per node; node 2 of the normal cell has all three on source 0 and 1 only,
/// node 5 of the reduce cell all on one source (so its genotypes read a single input there).
const char* kIntensive = R"({"format": "hypernas-intensive-1", "k": 3,
 "normal": [["sep_conv_3x3~0", "skip_connect~1", "max_pool_3x3~0"],
            ["sep_conv_5x5~2", "skip_connect~0", "avg_pool_3x3~1"],
            ["dil_conv_5x5~3", "skip_connect~2", "max_pool_3x3~0"],
            ["skip_connect~4", "sep_conv_3x3~0", "dil_conv_3x3~3"]],
 "reduce": [["max_pool_3x3~0", "max_pool_3x3~1", "skip_connect~0"],
            ["skip_connect~2", "max_pool_3x3~1", "avg_pool_3x3~0"],
            ["skip_connect~2", "max_pool_3x3~0", "sep_conv_5x5~3"],
            ["skip_connect~4", "max_pool_3x3~4", "avg_pool_3x3~4"]]})";

class DartsMutate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hypernas_darts_mutate_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "intensive.json") << kIntensive;
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// 3 layers (cell 0 normal, cells 1 and 2 reduction), 4 channels, 8x8 inputs.
  DartsSpace space(bool macro = false, bool intensive = false) const {
    Options o;
    o.set("layers", std::int64_t{3})
        .set("channels", std::int64_t{4})
        .set("input_size", std::int64_t{8})
        .set("macro", macro)
        .set("intensive", intensive ? (dir_ / "intensive.json").string() : std::string());
    return DartsSpace(DartsSpace::params().resolve(o, "darts"));
  }

  fs::path dir_;
};

/// The sources node k (2..5) of cell block b reads.
std::set<int> sources(const Genotype& g, std::size_t b, int k) {
  std::set<int> out;
  for (const Input& in : g.cells[b].nodes[static_cast<std::size_t>(k - kInputNodes)])
    out.insert(in.from);
  return out;
}

/// Checks what every mutation must keep: same space and number of inputs per node, distinct
/// sources (make_canonical() checks them), a text that parses back to itself.
void expect_valid_neighbour(const DartsSpace& s, const Architecture& from, const Architecture& to) {
  ASSERT_EQ(to.space, "darts");
  EXPECT_EQ(s.parse(to.text).text, to.text);
  const Genotype a = s.genotype_of(from), b = s.genotype_of(to);
  ASSERT_EQ(a.cells.size(), b.cells.size());
  for (std::size_t c = 0; c < a.cells.size(); ++c)
    for (int j = 0; j < kSteps; ++j) {
      EXPECT_EQ(a.cells[c].nodes[j].size(), b.cells[c].nodes[j].size());
      Cell copy = b.cells[c];
      EXPECT_NO_THROW(make_canonical(copy));
      for (const Input& in : b.cells[c].nodes[j]) EXPECT_NE(in.op, kNone) << to.text;
    }
}

TEST_F(DartsMutate, ZeroProbabilityKeepsTheGenotype) {
  for (const bool macro : {false, true})
    for (const bool intensive : {false, true}) {
      const DartsSpace s = space(macro, intensive);
      Rng rng(4);
      for (int i = 0; i < 20; ++i) {
        const Architecture a = s.sample(rng);
        EXPECT_EQ(s.mutate(a, rng, 0.0).text, a.text) << macro << intensive;
      }
    }
}

TEST_F(DartsMutate, OneChangesEveryOpOfNode2AndEverySourceSetItCan) {
  const DartsSpace s = space();
  Rng rng(8);
  for (int i = 0; i < 100; ++i) {
    const Architecture a = s.sample(rng);
    const Architecture m = s.mutate(a, rng, 1.0);
    expect_valid_neighbour(s, a, m);
    const Genotype ga = s.genotype_of(a), gm = s.genotype_of(m);
    for (std::size_t b = 0; b < 2; ++b) {
      // Node 2 reads both 0 and 1, the only pair it has: its sources stay, both ops change.
      for (int x = 0; x < 2; ++x) {
        EXPECT_EQ(gm.cells[b].nodes[0][x].from, ga.cells[b].nodes[0][x].from);
        EXPECT_NE(gm.cells[b].nodes[0][x].op, ga.cells[b].nodes[0][x].op);
      }
      // Nodes 3..5 have free sources: the first input always moves to one the node did not read.
      for (int k = 3; k <= 5; ++k) EXPECT_NE(sources(gm, b, k), sources(ga, b, k)) << k;
    }
  }
}

TEST_F(DartsMutate, OpsChangeWithProbabilityPAmongTheOtherNonNoneOps) {
  const DartsSpace s = space();
  const Architecture a = s.parse(kDartsV2);
  const Genotype ga = s.genotype_of(a);
  // Node 2's inputs keep their sources (see above), so their op changes are counted exactly.
  int changed = 0, total = 0;
  std::set<int> seen_ops;
  Rng rng(21);
  for (int i = 0; i < 2000; ++i) {
    const Architecture m = s.mutate(a, rng, 0.2);
    if (i % 20 == 0) expect_valid_neighbour(s, a, m);  // (parsing every one is slow)
    const Genotype gm = s.genotype_of(m);
    for (std::size_t b = 0; b < 2; ++b)
      for (int x = 0; x < 2; ++x, ++total) {
        const int op = gm.cells[b].nodes[0][x].op;
        if (op != ga.cells[b].nodes[0][x].op) ++changed;
        seen_ops.insert(op);
      }
  }
  EXPECT_NEAR(static_cast<double>(changed) / total, 0.2, 0.02);
  EXPECT_EQ(seen_ops.size(), 7u);  // every op but none
  EXPECT_FALSE(seen_ops.count(kNone));
}

TEST_F(DartsMutate, IsDeterministicForASeed) {
  const DartsSpace s = space(true);
  Rng pick(2);
  const Architecture a = s.sample(pick);
  Rng r1(6), r2(6);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(s.mutate(a, r1, 0.3).text, s.mutate(a, r2, 0.3).text);
}

TEST_F(DartsMutate, StaysInsideTheIntensiveSpace) {
  const DartsSpace s = space(false, true);
  const DartsSpace macro = space(true, true);
  Rng rng(13);
  std::set<std::string> texts;
  for (const DartsSpace* sp : {&s, &macro}) {
    for (int i = 0; i < 300; ++i) {
      const Architecture a = sp->sample(rng);
      const Architecture m = sp->mutate(a, rng, 0.5);
      expect_valid_neighbour(*sp, a, m);
      EXPECT_NO_THROW(sp->select(m)) << m.text;  // every input is one of its node's candidates
      texts.insert(m.text);
    }
  }
  EXPECT_GT(texts.size(), 300u);  // it does move
  // An input outside the intensive space is refused, naming the node and the candidates.
  const Architecture outside = s.parse(kDartsV2);
  const std::string e = error_of([&] { s.mutate(outside, rng, 0.1); });
  EXPECT_NE(e.find("outside the intensive space"), std::string::npos) << e;
  EXPECT_NE(e.find("node 2 reads sep_conv_3x3~1"), std::string::npos) << e;
  EXPECT_NE(e.find("sep_conv_3x3~0, skip_connect~1, max_pool_3x3~0"), std::string::npos) << e;
}

TEST_F(DartsMutate, RefusesABadProbabilityAndAnotherSpace) {
  const DartsSpace s = space();
  const Architecture a = s.parse(kDartsV2);
  Rng rng(1);
  EXPECT_NE(error_of([&] { s.mutate(a, rng, 2.0); })
                .find("darts: mutate expects a probability p "
                      "in [0, 1], got 2"),
            std::string::npos);
  Architecture other = a;
  other.space = "nb201";
  EXPECT_NE(error_of([&] { s.mutate(other, rng, 0.1); }).find("one of space 'nb201'"),
            std::string::npos);
}

TEST_F(DartsMutate, EncodingHasOneShapeAndTellsGenotypesApart) {
  for (const bool macro : {false, true}) {
    const DartsSpace s = space(macro);
    const std::vector<std::int64_t> shape = {macro ? 3 : 2, kSteps, kEncodedInputs, kEncodedSlot};
    Rng rng(5);
    std::set<std::string> texts, codes;
    for (int i = 0; i < 500; ++i) {
      const Architecture a = s.mutate(s.sample(rng), rng, 0.1);
      const at::Tensor t = s.encode(a);
      ASSERT_EQ(t.sizes(), at::IntArrayRef(shape));
      const float* v = t.data_ptr<float>();
      std::string key;
      for (std::int64_t j = 0; j < t.numel(); ++j) {
        ASSERT_TRUE(v[j] == 1.0f || v[j] == -1.0f);
        key += v[j] > 0 ? '+' : '-';
      }
      texts.insert(a.text);
      codes.insert(key);
    }
    EXPECT_EQ(codes.size(), texts.size());
  }
}

TEST_F(DartsMutate, EncodingOfASingleInputNodeAndOfTooManyInputs) {
  // The intensive reduce cell's node 5 has its candidates on one source: one input, slot 1 -1.
  const DartsSpace s = space(false, true);
  Rng rng(3);
  const at::Tensor t = s.encode(s.sample(rng));
  EXPECT_TRUE(at::equal(t[1][3][1], at::full({kEncodedSlot}, -1.0, at::kFloat)));
  EXPECT_EQ(t[1][3][0][kOps + 4].item<float>(), 1.0f);
  // Grouped form with 3 inputs on node 4: no room in the encoding, and an error says why.
  const DartsSpace plain = space();
  const std::string three =
      "normal=[(sep_conv_3x3,0),(sep_conv_3x3,1)|(sep_conv_3x3,0),(sep_conv_3x3,1)|"
      "(skip_connect,0),(sep_conv_3x3,1),(skip_connect,2)|(skip_connect,0),(dil_conv_3x3,2)];"
      "reduce=" +
      std::string(kDartsV2).substr(std::string(kDartsV2).find("reduce=") + 7);
  const std::string e = error_of([&] { plain.encode(plain.parse(three)); });
  EXPECT_NE(e.find("at most 2 inputs per node"), std::string::npos) << e;
  EXPECT_NE(e.find("cell 'normal', node 4"), std::string::npos) << e;
  EXPECT_NE(e.find("reads 3"), std::string::npos) << e;
}

}  // namespace
