// Tests of the `ensemble` surrogate (plugins/surrogates/ensemble): member specs, quantiles, and
// the plugin loaded by the kernel's registry with built-in members (params, flops, ghn).

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/exec/executor.h"
#include "kernel/plugin/registry.h"
#include "kernel/store/checkpoint.h"
#include "plugins/surrogates/ensemble/ensemble.h"
#include "tests/kernel/train/FakeDataset.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace {

namespace fs = std::filesystem;
using namespace hypernas;
using test::error_of;
using test::TestContext;

TEST(EnsembleSpec, MembersOptionsCheckpointsAndWeights) {
  const auto m = parse_members(
      " ghn:fan_in_norm=true,steps=2,lr=0.01,propagation=synchronous"
      "@ck/ghn.ckpt ; params ",
      "2, 0.5");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].name, "ghn");
  EXPECT_EQ(m[0].checkpoint, "ck/ghn.ckpt");
  EXPECT_EQ(m[0].options.get_bool("fan_in_norm"), true);
  EXPECT_EQ(m[0].options.get_int("steps"), 2);
  EXPECT_DOUBLE_EQ(m[0].options.get_real("lr"), 0.01);
  EXPECT_EQ(m[0].options.get_string("propagation"), "synchronous");
  EXPECT_EQ(m[0].weight, 2.0);
  EXPECT_EQ(m[1].name, "params");
  EXPECT_TRUE(m[1].options.values().empty());
  EXPECT_EQ(m[1].weight, 0.5);
  EXPECT_EQ(parse_members("params;flops", "")[1].weight, 1.0);
}

TEST(EnsembleSpec, BadSpecsSayWhatIsWrong) {
  auto bad = [](const std::string& members, const std::string& weights = "") {
    return error_of([&] { parse_members(members, weights); });
  };
  EXPECT_NE(bad("").find("'members' is empty"), std::string::npos);
  EXPECT_NE(bad("params;;flops").find("empty entry"), std::string::npos);
  EXPECT_NE(bad("ghn:steps").find("expected key=value, got 'steps'"), std::string::npos);
  EXPECT_NE(bad("ghn@").find("no checkpoint"), std::string::npos);
  EXPECT_NE(bad(":x=1").find("surrogate name"), std::string::npos);
  EXPECT_NE(bad("params;flops", "1").find("1 weights ('1') for 2 members"), std::string::npos);
  EXPECT_NE(bad("params;flops", "1,-2").find("'-2' is not a non-negative number"),
            std::string::npos);
  EXPECT_NE(bad("params;flops", "0,0").find("all zero"), std::string::npos);
}

TEST(EnsembleSpec, QuantileCountsTiesHalf) {
  const std::vector<double> ref = {1, 2, 2, 3};
  EXPECT_DOUBLE_EQ(quantile(ref, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(quantile(ref, 1), 0.125);   // (0 + 1/2) / 4
  EXPECT_DOUBLE_EQ(quantile(ref, 2), 0.5);     // (1 + 2/2) / 4
  EXPECT_DOUBLE_EQ(quantile(ref, 2.5), 0.75);  // 3 below
  EXPECT_DOUBLE_EQ(quantile(ref, 9), 1.0);
}

class Ensemble : public ::testing::Test {
 protected:
  void SetUp() override {
    registry.scan({fs::path(HYPERNAS_BINARY_DIR) / "plugins"});
    ASSERT_TRUE(registry.refusals().empty()) << registry.refusals().front().reason;
    Options o;
    o.set("cells_per_stage", std::int64_t{1}).set("channels", std::int64_t{4});
    space = registry.create_space("nb201", o);
    Rng rng(3);
    for (int i = 0; i < 30; ++i) archs.push_back(space->sample(rng));
  }
  std::shared_ptr<Surrogate> make(const std::string& members, const std::string& weights = "",
                                  std::int64_t reference = 64) {
    Options o;
    o.set("members", members).set("weights", weights).set("reference", reference);
    return registry.create_surrogate("ensemble", o);
  }
  std::vector<Score> score(Surrogate& s) {
    ScoreRequest r;
    r.space = space.get();
    for (const Architecture& a : archs) r.archs.push_back(&a);
    r.seeds.assign(archs.size(), 1);
    return s.score(ctx, r);
  }
  plugin::Registry registry;
  std::shared_ptr<SearchSpace> space;
  std::vector<Architecture> archs;
  exec::GraphExecutor exec;
  TestContext ctx{1, &exec};
};

TEST_F(Ensemble, OneMemberKeepsItsOrderAndScoresAreQuantiles) {
  auto e = make("params");
  EXPECT_EQ(e->capabilities(), 0u);  // params reads nothing
  const auto s = score(*e);
  ASSERT_EQ(s.size(), archs.size());
  for (std::size_t i = 0; i < archs.size(); ++i) {
    EXPECT_GE(s[i].value, 0.0);
    EXPECT_LE(s[i].value, 1.0);
    EXPECT_EQ(s[i].value, s[i].extra.at("1.params.quantile"));
    for (std::size_t j = 0; j < archs.size(); ++j) {
      const double pi = s[i].extra.at("1.params"), pj = s[j].extra.at("1.params");
      if (pi < pj) {
        EXPECT_LE(s[i].value, s[j].value) << i << " " << j;
      }
    }
  }
}

TEST_F(Ensemble, ScoreIsTheWeightedMeanOfQuantilesAndIndependentOfTheBatch) {
  auto both = make("params;flops", "3,1");
  const auto s = score(*both);
  for (const Score& x : s)
    EXPECT_NEAR(x.value, (3 * x.extra.at("1.params.quantile") + x.extra.at("2.flops.quantile")) / 4,
                1e-12);
  // One architecture alone gets the score it got among the others, and the reference sample
  // is not scored again (one "scoring the reference sample" line per member, from the first call).
  auto reference_lines = [&] {
    return std::count_if(ctx.lines.begin(), ctx.lines.end(), [](const std::string& l) {
      return l.find("scoring the reference sample") != std::string::npos;
    });
  };
  EXPECT_EQ(reference_lines(), 2);
  ScoreRequest one;
  one.space = space.get();
  one.archs = {&archs[7]};
  one.seeds = {1};
  EXPECT_EQ(both->score(ctx, one).at(0).value, s[7].value);
  EXPECT_EQ(reference_lines(), 2);
  // A zero weight drops a member.
  auto only = make("params;flops", "1,0");
  const auto p = score(*make("params")), q = score(*only);
  for (std::size_t i = 0; i < archs.size(); ++i) EXPECT_DOUBLE_EQ(q[i].value, p[i].value);
}

TEST_F(Ensemble, UnknownMembersAndBadMemberOptionsFailTheCreation) {
  std::string e = error_of([&] { make("params;nosuch"); });
  EXPECT_NE(e.find("member 2 ('nosuch')"), std::string::npos) << e;
  EXPECT_NE(e.find("no surrogate plugin named 'nosuch'"), std::string::npos) << e;
  e = error_of([&] { make("ghn:hiden=32"); });
  EXPECT_NE(e.find("unknown option 'hiden'"), std::string::npos) << e;
  e = error_of([&] { make("ghn@/nonexistent/ghn.ckpt"); });
  EXPECT_NE(e.find("/nonexistent/ghn.ckpt"), std::string::npos) << e;
}

TEST_F(Ensemble, TrainableMembersCheckpointsAndStateRoundTrip) {
  // A small GHN on a tiny synthetic task (3 classes of 8x8 images).
  Options so;
  so.set("cells_per_stage", std::int64_t{1}).set("channels", std::int64_t{4});
  so.set("input_size", std::int64_t{8}).set("classes", std::int64_t{3});
  space = registry.create_space("nb201", so);
  const test::FakeDataset data(64, 32, 8);
  const std::string ghn_opts = "ghn:steps=1,hidden=18,hyper_hidden=8";
  Options g;
  g.set("steps", std::int64_t{1}).set("hidden", std::int64_t{18});
  g.set("hyper_hidden", std::int64_t{8});
  auto ghn = registry.create_surrogate("ghn", g);
  FitRequest fr;
  fr.space = space.get();
  fr.data = &data;
  fr.batch_size = 16;
  fr.max_steps = 2;
  ghn->fit(ctx, fr);
  const fs::path ck =
      fs::temp_directory_path() / ("ensemble_" + std::to_string(::getpid()) + ".ckpt");
  store::write_checkpoint(ck, {"ghn", "", ghn->save_state()});

  auto fresh = make(ghn_opts + ";params", "", 8);
  EXPECT_TRUE(fresh->capabilities() & kTrainable);
  EXPECT_TRUE(fresh->capabilities() & kNeedsData);
  EXPECT_TRUE(fresh->capabilities() & kReadsEvalImages);
  auto loaded = make(ghn_opts + "@" + ck.string() + ";params", "", 8);
  EXPECT_FALSE(loaded->save_state() == fresh->save_state());  // the checkpoint was loaded

  Rng rng(5);
  std::vector<Architecture> pool;
  for (int i = 0; i < 6; ++i) pool.push_back(space->sample(rng));
  ScoreRequest sr;
  sr.space = space.get();
  sr.data = &data;
  sr.batch_size = 16;
  sr.max_images = 16;
  for (const Architecture& a : pool) sr.archs.push_back(&a);
  sr.seeds.assign(pool.size(), 2);
  auto values = [&](Surrogate& s) {
    std::vector<double> v;
    for (const Score& x : s.score(ctx, sr)) v.push_back(x.extra.at("1.ghn"));
    return v;
  };
  const std::vector<double> expected = values(*loaded);
  fresh->load_state(loaded->save_state());
  EXPECT_TRUE(fresh->save_state() == loaded->save_state());
  EXPECT_EQ(values(*fresh), expected);
  // Fitting the ensemble fits its GHN.
  fresh->fit(ctx, fr);
  EXPECT_FALSE(fresh->save_state() == loaded->save_state());

  // A state for other members is refused, and changes nothing; so is a truncated one.
  auto other = make("params;flops", "", 8);
  const std::string before = other->save_state();
  std::string e = error_of([&] { other->load_state(loaded->save_state()); });
  EXPECT_NE(e.find("member 1 of the state is 'ghn'"), std::string::npos) << e;
  EXPECT_TRUE(other->save_state() == before);
  const std::string blob = loaded->save_state();
  e = error_of([&] { fresh->load_state(blob.substr(0, blob.size() - 3)); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // A checkpoint of another plugin is refused at creation, naming both.
  e = error_of([&] { make("params@" + ck.string()); });
  EXPECT_NE(e.find("written by surrogate 'ghn', not 'params'"), std::string::npos) << e;
  fs::remove(ck);
}

}  // namespace
