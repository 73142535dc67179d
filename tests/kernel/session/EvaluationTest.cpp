// The evaluation service: failed candidates, reuse, the evaluation key, per-evaluation seeds,
// and the `random` strategy that scores through it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "kernel/core/cancel.h"
#include "kernel/graph/serialize.h"
#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"
#include "tests/kernel/train/FakeDataset.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace hypernas;
using hypernas::session::EvalSettings;
using hypernas::session::RunSession;
using hypernas::test::error_of;

namespace {

class Evaluation : public ::testing::Test {
 protected:
  void SetUp() override {
    core::reset_cancel();
    root = fs::temp_directory_path() /
           ("hypernas_eval_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    const fs::path fixtures = HYPERNAS_TEST_FIXTURE_DIR;
    registry.scan({fs::path(HYPERNAS_BINARY_DIR) / "plugins", fixtures / "eval",
                   fixtures / "abi_1_0", fixtures / "abi_1_1", fixtures / "abi_1_2"});
    ASSERT_TRUE(registry.refusals().empty())
        << registry.refusals().front().path << ": " << registry.refusals().front().reason;
  }
  void TearDown() override {
    core::reset_cancel();
    fs::remove_all(root);
  }
  std::unique_ptr<RunSession> open(std::uint64_t seed = 5, const std::string& experiment = "exp") {
    session::SessionConfig c;
    c.registry = &registry;
    c.results_root = root;
    c.experiment = experiment;
    c.seed = seed;
    auto s = std::make_unique<RunSession>(c);
    s->begin("test");
    return s;
  }
  std::shared_ptr<SearchSpace> nb201(RunSession& s) {
    Options o;
    o.set("cells_per_stage", std::int64_t{1});
    o.set("channels", std::int64_t{4});
    return s.make_space("nb201", o, nullptr);
  }
  std::shared_ptr<session::SurrogateHandle> flaky(RunSession& s, Options o = {}) {
    return s.make_surrogate("flaky", o);
  }
  std::vector<Candidate> random_search(RunSession& s, std::shared_ptr<session::SurrogateHandle> h,
                                       std::int64_t candidates, std::int64_t batch = 1,
                                       EvalSettings settings = {}) {
    Options o;
    o.set("candidates", candidates).set("keep", candidates).set("batch", batch);
    auto strategy = registry.create_strategy("random", o);
    auto space = nb201(s);
    return s.search(*strategy, "random", h, *space, nullptr, settings);
  }
  fs::path root;
  plugin::Registry registry;
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

TEST_F(Evaluation, FailedCandidatesAreRecordedWithTheirReasonAndTheSearchGoesOn) {
  auto s = open();
  auto h = flaky(*s);
  const auto top = random_search(*s, h, 40);
  ASSERT_FALSE(top.empty());
  for (const auto& c : top) {
    EXPECT_TRUE(std::isfinite(c.score.value)) << c.arch.text;
    EXPECT_FALSE(starts_with(c.arch.text, "|none") || starts_with(c.arch.text, "|avg_pool"))
        << c.arch.text;
  }
  const std::string key = h->evaluation_key(nullptr, {}, 5);
  const auto failed = s->store().evaluations(key, "failed");
  ASSERT_FALSE(failed.empty());
  EXPECT_EQ(top.size() + failed.size(), 40u);
  std::set<std::string> reasons;
  for (const auto& f : failed) {
    EXPECT_TRUE(std::isnan(f.score));
    EXPECT_EQ(f.status, "failed");
    reasons.insert(f.error);
    if (starts_with(f.text, "|none")) {
      EXPECT_EQ(f.error, "score is nan (not finite)");
    } else if (starts_with(f.text, "|avg_pool")) {
      EXPECT_EQ(f.error, "flaky: cannot score a cell that starts with a pool");
    }
  }
  EXPECT_EQ(reasons.size(), 2u);
  EXPECT_EQ(s->store().evaluations(key, "ok").size(), top.size());
  // Failures are not evaluations to ResultStore's users (a strategy built against ABI 1.0).
  EXPECT_FALSE(s->store().find_evaluation(failed[0].arch_hash, key).has_value());
}

TEST_F(Evaluation, ARerunSkipsRecordedFailuresUnlessAskedToRetry) {
  std::size_t failures = 0;
  {
    auto s = open();
    random_search(*s, flaky(*s), 30);
    failures = s->store().evaluations("", "failed").size();
    s->finish("ok");
  }
  ASSERT_GT(failures, 0u);
  auto s = open();
  auto h = flaky(*s);
  auto space = nb201(*s);
  std::vector<Architecture> archs;
  for (const auto& row : s->store().evaluations("", "")) archs.push_back(space->parse(row.text));
  core::KernelContext ctx(s->services(), "test");
  auto again = s->evaluations(h, *space, nullptr, {});
  Evaluated e = again->evaluate(ctx, archs, nullptr);
  EXPECT_EQ(again->counts().reused_failed, static_cast<std::int64_t>(failures));
  EXPECT_EQ(again->counts().failed, 0);
  EXPECT_EQ(again->counts().scored, 0);
  EXPECT_EQ(again->counts().reused, static_cast<std::int64_t>(archs.size() - failures));
  ASSERT_EQ(e.failed.size(), failures);
  EXPECT_TRUE(e.failed[0].reused);
  EXPECT_FALSE(e.failed[0].reason.empty());

  EvalSettings retry;
  retry.retry_failed = true;
  auto retried = s->evaluations(h, *space, nullptr, retry);
  retried->evaluate(ctx, archs, nullptr);
  EXPECT_EQ(retried->counts().failed, static_cast<std::int64_t>(failures));
  EXPECT_EQ(retried->counts().reused_failed, 0);
}

TEST_F(Evaluation, RunningOutOfMemoryOnOneArchitectureIsAFailedCandidate) {
  auto s = open();
  Options o;
  o.set("oom", true);
  random_search(*s, flaky(*s, o), 30);
  std::set<std::string> reasons;
  for (const auto& f : s->store().evaluations("", "failed")) reasons.insert(f.error);
  EXPECT_TRUE(reasons.count("out of memory (std::bad_alloc)")) << reasons.size();
}

TEST_F(Evaluation, ASurrogateThatFailsOnEverythingStopsWithOneClearMessage) {
  auto s = open();
  Options o;
  o.set("always", true);
  const std::string msg = error_of([&] { random_search(*s, flaky(*s, o), 200); });
  EXPECT_NE(msg.find("surrogate 'flaky' failed on 10 of the 10 architectures"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("max_failures = 0.75"), std::string::npos) << msg;
  EXPECT_NE(msg.find("first failure: |"), std::string::npos) << msg;
  EXPECT_NE(msg.find("flaky: asked to fail on"), std::string::npos) << msg;
  EXPECT_EQ(s->store().evaluations("", "failed").size(), 10u);  // kept, with reasons

  EvalSettings lenient;
  lenient.max_failures = 1.0;  // never give up: every candidate fails, none is ranked
  auto s2 = open(5, "lenient");
  EXPECT_TRUE(random_search(*s2, flaky(*s2, o), 20, 1, lenient).empty());
  EXPECT_EQ(s2->store().evaluations("", "failed").size(), 20u);
}

TEST_F(Evaluation, UsageErrorsAndCancellationStopTheSearch) {
  auto s = open();
  Options o;
  o.set("usage", true);
  EXPECT_THROW(random_search(*s, flaky(*s, o), 5), UsageError);
  EXPECT_EQ(s->store().count("evaluations"), 0);

  core::request_cancel("test");
  EXPECT_THROW(random_search(*s, flaky(*s), 5), Cancelled);
}

TEST_F(Evaluation, ABatchWithOneBadArchitectureScoresTheOthers) {
  auto s = open();
  auto space = nb201(*s);
  auto h = flaky(*s);
  const std::vector<Architecture> archs = {
      space->parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|"),
      space->parse("|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|"),
      space->parse("|skip_connect~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|")};
  core::KernelContext ctx(s->services(), "test");
  auto service = s->evaluations(h, *space, nullptr, {});
  Evaluated e = service->evaluate(ctx, archs, nullptr);
  ASSERT_EQ(e.scored.size(), 2u);
  EXPECT_EQ(e.scored[0].arch.text, archs[0].text);
  EXPECT_EQ(e.scored[1].arch.text, archs[2].text);
  ASSERT_EQ(e.failed.size(), 1u);
  EXPECT_EQ(e.failed[0].arch.text, archs[1].text);
  EXPECT_EQ(e.scored[0].stats.params, space->stats(archs[0]).params);
  EXPECT_EQ(e.scored[0].score.extra.at("params"), static_cast<double>(e.scored[0].stats.params));
}

TEST_F(Evaluation, TheKeyHoldsExactlyWhatChangesAScore) {
  auto s = open();
  EvalSettings settings;
  const std::string base = flaky(*s)->evaluation_key(nullptr, settings, 5);
  EXPECT_EQ(base, "flaky{always=false,exits=0,oom=false,usage=false}[seed=5]");
  Options neutral;
  neutral.set("verbosity", std::int64_t{3});  // marked score_neutral
  EXPECT_EQ(flaky(*s, neutral)->evaluation_key(nullptr, settings, 5), base);
  Options other;
  other.set("oom", true);
  EXPECT_NE(flaky(*s, other)->evaluation_key(nullptr, settings, 5), base);
  EXPECT_NE(flaky(*s)->evaluation_key(nullptr, settings, 6), base);  // it reads the seed
  settings.batch_size = 17;  // it declares no evaluation settings: they are not in its key
  EXPECT_EQ(flaky(*s)->evaluation_key(nullptr, settings, 5), base);

  // A data-free surrogate that reads nothing: its name and options alone.
  EXPECT_EQ(s->make_surrogate("params", {})->evaluation_key(nullptr, settings, 5),
            "params{prefer=larger}");
  // sgd reads the data, both settings and the seed.
  test::FakeDataset data(32, 16, 8);
  auto sgd = s->make_surrogate("sgd", {});
  EvalSettings e;
  e.batch_size = 64;
  e.max_images = 100;
  const std::string k = sgd->evaluation_key(&data, e, 5);
  EXPECT_NE(k.find("@fake{size=8}[batch=64,images=100,seed=5]"), std::string::npos) << k;
  e.reuse = false;  // how the service reuses is not part of what was scored
  e.max_failures = 0.1;
  EXPECT_EQ(sgd->evaluation_key(&data, e, 5), k);
}

TEST_F(Evaluation, ATrainableSurrogateIsKeyedByItsStateFromTheStart) {
  auto s = open();
  Options a, b;
  a.set("init_seed", std::int64_t{1});
  b.set("init_seed", std::int64_t{2});
  auto ghn_a = s->make_surrogate("ghn", a);
  auto ghn_b = s->make_surrogate("ghn", b);
  EXPECT_FALSE(ghn_a->state_tag().empty());
  EXPECT_NE(ghn_a->state_tag(), ghn_b->state_tag());
  // log_every is score-neutral; init_seed is not.
  Options c = a;
  c.set("log_every", std::int64_t{7});
  EXPECT_EQ(s->make_surrogate("ghn", c)->options_key(), ghn_a->options_key());
  EXPECT_NE(ghn_b->options_key(), ghn_a->options_key());
}

TEST_F(Evaluation, SeedsDependOnTheArchitectureAndTheRunSeedNotOnOrder) {
  auto space_session = open(5, "a");
  auto space = nb201(*space_session);
  const Architecture x =
      space->parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|");
  const Architecture y =
      space->parse("|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|");
  auto seeds_of = [&](RunSession& s, const std::vector<Architecture>& archs) {
    core::KernelContext ctx(s.services(), "test");
    auto service = s.evaluations(flaky(s), *space, nullptr, {});
    std::map<std::string, double> out;
    for (const auto& c : service->evaluate(ctx, archs, nullptr).scored)
      out[c.arch.text] = c.score.extra.at("seed_low_bits");
    return out;
  };
  const auto forward = seeds_of(*space_session, {x, y});
  auto other = open(5, "b");
  const auto backward = seeds_of(*other, {y, x});
  EXPECT_EQ(forward, backward);
  EXPECT_EQ(forward.at(x.text),
            static_cast<double>(session::evaluation_seed(5, graph::arch_hash(x)) % 1000));
  EXPECT_NE(session::evaluation_seed(5, "abc"), session::evaluation_seed(6, "abc"));
  EXPECT_NE(session::evaluation_seed(5, "abc"), session::evaluation_seed(5, "abd"));
}

// ---- the random strategy, which only chooses what to score -----------------------------------

TEST_F(Evaluation, RandomGivesTheSameRankingWhateverItsBatch) {
  auto one = open(5, "one");
  auto many = open(5, "many");
  const auto a = random_search(*one, flaky(*one), 25, 1);
  const auto b = random_search(*many, flaky(*many), 25, 7);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].arch.text, b[i].arch.text);
    EXPECT_EQ(a[i].score.value, b[i].score.value);
  }
  for (std::size_t i = 1; i < a.size(); ++i) EXPECT_GE(a[i - 1].score.value, a[i].score.value);
}

TEST_F(Evaluation, RandomReusesEveryScoreOnARerunAndDrawsTheSameCandidates) {
  std::vector<Candidate> first;
  {
    auto s = open();
    first = random_search(*s, flaky(*s), 20);
    s->finish("ok");
  }
  auto s = open();
  const std::int64_t rows = s->store().count("evaluations");
  const auto second = random_search(*s, flaky(*s), 20);
  EXPECT_EQ(s->store().count("evaluations"), rows);  // nothing scored twice
  ASSERT_EQ(second.size(), first.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(second[i].arch.text, first[i].arch.text);
    EXPECT_TRUE(second[i].reused);
    EXPECT_EQ(second[i].seconds, 0.0);
  }
  EvalSettings fresh;
  fresh.reuse = false;
  for (const auto& c : random_search(*s, flaky(*s), 20, 1, fresh)) EXPECT_FALSE(c.reused);
}

TEST_F(Evaluation, AReusedScoreKeepsItsPerExitScores) {
  Options three;
  three.set("exits", std::int64_t{3});
  std::vector<Candidate> first;
  {
    auto s = open();
    first = random_search(*s, flaky(*s, three), 12);
    s->finish("ok");
  }
  auto s = open();
  const auto second = random_search(*s, flaky(*s, three), 12);
  ASSERT_EQ(second.size(), first.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_FALSE(first[i].reused);
    EXPECT_TRUE(second[i].reused);
    ASSERT_EQ(first[i].score.exits.size(), 3u);
    ASSERT_EQ(second[i].score.exits.size(), 3u) << second[i].arch.text;
    for (std::size_t x = 0; x < 3; ++x) {
      EXPECT_DOUBLE_EQ(second[i].score.exits[x].accuracy, first[i].score.exits[x].accuracy);
      EXPECT_EQ(second[i].score.exits[x].flops, first[i].score.exits[x].flops);
    }
  }
}

TEST_F(Evaluation, RandomStopsWhenTheCallbackSaysSo) {
  auto s = open();
  int calls = 0;
  s->services().notify = [&calls](const std::string& event,
                                  const std::map<std::string, double>& v) {
    EXPECT_EQ(event, "candidate");
    EXPECT_EQ(v.at("index"), calls + 1);
    return ++calls < 4;
  };
  const auto top = random_search(*s, flaky(*s), 30);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(top.size(), 4u);  // what was scored before the stop is ranked
}

TEST_F(Evaluation, APluginBuiltAgainstAbi10StillLoadsAndScores) {
  auto s = open();
  const auto* info = registry.find(PluginKind::Surrogate, "legacy_1_0");
  ASSERT_NE(info, nullptr) << "the ABI 1.0 fixture was refused";
  EXPECT_EQ(info->abi_minor, 0u);
  // ABI 1.0's clang build ids carried a space after the compiler version: still a match.
  EXPECT_NE(registry.find(PluginKind::Surrogate, "fixture_spaced"), nullptr);
  auto h = s->make_surrogate("legacy_1_0", {});
  EXPECT_EQ(h->abi_minor(), 0u);
  // A 1.0 plugin declares no inputs: it is taken to read the seed.
  EXPECT_EQ(h->evaluation_key(nullptr, {}, 5), "legacy_1_0{scale=1}[seed=5]");
  auto space = nb201(*s);
  const auto top = random_search(*s, h, 12);
  ASSERT_EQ(top.size(), 12u);
  for (const auto& c : top) {
    EXPECT_EQ(c.score.extra.at("executor_params"), static_cast<double>(space->stats(c.arch).params))
        << c.arch.text;
    EXPECT_EQ(c.score.extra.at("logits"), 10.0);
    EXPECT_EQ(c.score.extra.at("hash_length"), 16.0);
  }
}

TEST_F(Evaluation, APluginBuiltAgainstAbi11LoadsScoresAndJoinsAnEnsemble) {
  auto s = open();
  const auto* info = registry.find(PluginKind::Surrogate, "legacy_1_1");
  ASSERT_NE(info, nullptr) << "the ABI 1.1 fixture was refused";
  EXPECT_EQ(info->abi_minor, 1u);
  // Created without Surrogate::attach() (a 1.2 slot its vtable lacks), directly and as an
  // ensemble member (the ensemble is 1.2 and is attached; its member is not).
  Options verbose;
  verbose.set("verbose", true);
  auto h = s->make_surrogate("legacy_1_1", verbose);
  EXPECT_EQ(h->abi_minor(), 1u);
  // Its score-neutral option stays out of the key; it declared the seed.
  EXPECT_EQ(h->evaluation_key(nullptr, {}, 5), "legacy_1_1{scale=1}[seed=5]");
  auto space = nb201(*s);
  const auto top = random_search(*s, h, 6);
  ASSERT_EQ(top.size(), 6u);
  for (const auto& c : top) {
    EXPECT_GT(c.score.extra.at("weights"), 0.0) << c.arch.text;
    EXPECT_GT(c.score.extra.at("fan_in"), 0.0) << c.arch.text;
  }
  Options e;
  e.set("members", std::string("legacy_1_1;params")).set("reference", std::int64_t{16});
  auto ensemble = s->make_surrogate("ensemble", e);
  const auto mixed = random_search(*s, ensemble, 6);
  ASSERT_EQ(mixed.size(), 6u);
  for (const auto& c : mixed) {
    EXPECT_GE(c.score.value, 0.0);
    EXPECT_LE(c.score.value, 1.0);
    EXPECT_EQ(c.score.extra.count("1.legacy_1_1"), 1u);
  }
}

TEST_F(Evaluation, APluginBuiltAgainstAbi12IsAttachedAndRunsNewPrimitives) {
  auto s = open();
  const auto* info = registry.find(PluginKind::Surrogate, "legacy_1_2");
  ASSERT_NE(info, nullptr) << "the ABI 1.2 fixture was refused";
  EXPECT_EQ(info->abi_minor, 2u);
  auto h = s->make_surrogate("legacy_1_2", {});
  EXPECT_EQ(h->abi_minor(), 2u);
  // attach() was called (its score comes from the `params` member it created there) ...
  const auto top = random_search(*s, h, 4);
  ASSERT_EQ(top.size(), 4u);
  for (const auto& c : top) {
    EXPECT_NEAR(c.score.value, std::log10(static_cast<double>(c.stats.params)), 1e-12)
        << c.arch.text;
    EXPECT_EQ(c.score.extra.at("exits_run"), 1.0);
  }
  // ... and networks with `resample` nodes and several exits (ABI 1.3) run for it.
  Options o;
  o.set("nodes", std::string("3,2")).set("channels", std::int64_t{4}).set("exit_prob", 1.0);
  auto space = s->make_space("anytime", o, nullptr);
  Options r;
  r.set("candidates", std::int64_t{3}).set("keep", std::int64_t{3});
  auto strategy = registry.create_strategy("random", r);
  const auto found = s->search(*strategy, "random", h, *space, nullptr, {});
  ASSERT_EQ(found.size(), 3u);
  for (const auto& c : found) {
    EXPECT_NE(c.arch.text.find('@'), std::string::npos);
    EXPECT_EQ(c.score.extra.at("exits_run"), 5.0) << c.arch.text;  // every node has an exit
  }
}

TEST_F(Evaluation, AStrategyBuiltAgainstAbi10GivesA11SurrogateItsSeeds) {
  auto s = open();
  const auto* info = registry.find(PluginKind::Strategy, "legacy_strategy_1_0");
  ASSERT_NE(info, nullptr) << "the ABI 1.0 strategy fixture was refused";
  EXPECT_EQ(info->abi_minor, 0u);
  Options o;
  o.set("count", std::int64_t{8});
  auto strategy = registry.create_strategy("legacy_strategy_1_0", o);
  auto space = nb201(*s);
  auto h = s->make_surrogate("params", {});
  const auto first = s->search(*strategy, "legacy_strategy_1_0", h, *space, nullptr, {});
  ASSERT_EQ(first.size(), 8u);
  // flaky reads ScoreRequest::seeds, which the 1.0 strategy's request does not have.
  Options good;
  auto f = flaky(*s, good);
  const auto top = s->search(*strategy, "legacy_strategy_1_0", f, *space, nullptr, {});
  ASSERT_EQ(top.size(), 8u);
  for (const auto& c : top) {
    if (!std::isfinite(c.score.value)) continue;  // flaky's NaN cells, recorded as the 1.0 code did
    EXPECT_EQ(c.score.extra.at("seed_low_bits"),
              static_cast<double>(session::evaluation_seed(5, c.hash) % 1000))
        << c.arch.text;
  }
  // It recorded under the key the kernel gave it, so a rerun through the service reuses them.
  EXPECT_EQ(s->store().evaluations(f->evaluation_key(nullptr, {}, 5)).size(), 8u);
}

}  // namespace
