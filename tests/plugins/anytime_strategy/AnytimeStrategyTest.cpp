// The anytime curve helpers of the SDK (anytime.h: anytime_auc, pareto_front) on curves and
// point sets worked out by hand, and the `anytime` strategy as the kernel loads it, searching the
// test-local `exit_chain` space with the test-local `exit_oracle` surrogate through the kernel's
// evaluation service. Its ranking, flags and front are checked against a reference recomputed
// here from the scores the service stored (its own step-curve integration, a brute-force front).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include <hypernas/anytime.h>

#include "kernel/core/cancel.h"
#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace hypernas;
using hypernas::session::EvalSettings;
using hypernas::session::RunSession;
using hypernas::test::error_of;

namespace {

// ---- anytime_auc and pareto_front, by hand ---------------------------------------------------

TEST(AnytimeArea, StepCurveOnALinearAxisByHand) {
  // Unsorted; (40, 0.3) is affordable from 40 on but never the best; (60, 0.9) lies above hi.
  const std::vector<ExitScore> exits = {{0.5, 30}, {0.2, 10}, {0.9, 60}, {0.4, 20}, {0.3, 40}};
  // acc(b) = 0 on [0, 10), 0.2 on [10, 20), 0.4 on [20, 30), 0.5 on [30, 50]:
  // (0 * 10 + 0.2 * 10 + 0.4 * 10 + 0.5 * 20) / 50.
  EXPECT_NEAR(anytime_auc(exits, 0, 50), 16.0 / 50, 1e-12);
  // A range cutting the steps [10, 20) and [30, 40): (0.2 * 5 + 0.4 * 10 + 0.5 * 5) / 20.
  EXPECT_NEAR(anytime_auc(exits, 15, 35), 7.5 / 20, 1e-12);
  // Exits below lo count from lo: from 25 on the 0.4 exit is affordable, from 30 the 0.5 one.
  EXPECT_NEAR(anytime_auc(exits, 25, 35), (0.4 * 5 + 0.5 * 5) / 10, 1e-12);
  // Up to 100 the 0.9 exit is reached at 60: (16 + 0.5 * 10 + 0.9 * 40) / 100.
  EXPECT_NEAR(anytime_auc(exits, 0, 100), 57.0 / 100, 1e-12);
  // Nothing affordable in the range: 0.
  EXPECT_EQ(anytime_auc(exits, 1, 9), 0.0);
  EXPECT_NE(error_of([&] { anytime_auc(exits, 50, 50); }).find("lo < hi, got [50, 50]"),
            std::string::npos);
}

TEST(AnytimeArea, StepCurveOnALogAxisByHand) {
  const std::vector<ExitScore> exits = {{0.8, 10}, {0.5, 1}};
  // Each decade weighs the same: (0.5 * ln 10 + 0.8 * ln 10) / ln 100.
  EXPECT_NEAR(anytime_auc(exits, 1, 100, FlopsAxis::Log), 0.65, 1e-12);
  // From 2: (0.5 * ln 5 + 0.8 * ln 10) / ln 50.
  EXPECT_NEAR(anytime_auc(exits, 2, 100, FlopsAxis::Log),
              (0.5 * std::log(5.0) + 0.8 * std::log(10.0)) / std::log(50.0), 1e-12);
  // The same curve on a linear axis: (0.5 * 9 + 0.8 * 90) / 99.
  EXPECT_NEAR(anytime_auc(exits, 1, 100), (0.5 * 9 + 0.8 * 90) / 99, 1e-12);
  EXPECT_NE(error_of([&] { anytime_auc(exits, 0, 100, FlopsAxis::Log); }).find("needs lo > 0"),
            std::string::npos);
}

TEST(ParetoFront, HandMadePointsWithTiesAndDominatedOnes) {
  const std::vector<FrontPoint> points = {
      {10, 0.5, 0, 0},   // on the front
      {10, 0.3, 1, 0},   // same cost, less accurate than point 0
      {20, 0.5, 2, 0},   // costs more than point 0, no more accurate
      {15, 0.7, 3, 0},   // on the front
      {20, 0.7, 4, 1},   // costs more than point 3, no more accurate
      {30, 0.9, 5, 2},   // on the front
      {30, 0.9, 6, 0},   // equal to point 5, which comes first
      {40, 0.85, 7, 3},  // costs more than point 5, less accurate
      {5, 0.1, 8, 1},    // on the front: the cheapest
  };
  const std::vector<FrontPoint> front = pareto_front(points);
  ASSERT_EQ(front.size(), 4u);
  const std::vector<std::size_t> sources = {8, 0, 3, 5};  // by increasing FLOPs
  for (std::size_t i = 0; i < front.size(); ++i) {
    EXPECT_EQ(front[i].source, sources[i]) << i;
    EXPECT_EQ(front[i].flops, points[sources[i]].flops) << i;
    EXPECT_EQ(front[i].accuracy, points[sources[i]].accuracy) << i;
    EXPECT_EQ(front[i].exit, points[sources[i]].exit) << i;
  }
  EXPECT_TRUE(pareto_front({}).empty());
}

// ---- the reference the strategy is checked against -------------------------------------------

/// A scored candidate as the evaluation service stored it.
struct Stored {
  std::string text;
  double value = 0;
  std::vector<ExitScore> exits;
};

/// Every candidate stored under `key`, oldest first, its exits read from the "exit<K>_*" keys.
std::vector<Stored> stored(const store::SqliteStore& store, const std::string& key) {
  std::vector<Stored> out;
  for (const auto& row : store.evaluations(key, "ok")) {
    Stored s{row.text, row.score, {}};
    for (std::size_t k = 0; row.extra.count(cat("exit", k, "_accuracy")); ++k)
      s.exits.push_back({row.extra.at(cat("exit", k, "_accuracy")),
                         static_cast<std::int64_t>(row.extra.at(cat("exit", k, "_flops")))});
    out.push_back(std::move(s));
  }
  return out;
}

/// The step curve's area, integrated segment by segment between the breakpoints in [lo, hi]:
/// over each segment the best exit with FLOPs at most its start.
double reference_area(const std::vector<ExitScore>& exits, double lo, double hi, bool log_axis) {
  auto x = [log_axis](double f) { return log_axis ? std::log(f) : f; };
  std::vector<double> cuts = {lo, hi};
  for (const ExitScore& e : exits)
    if (e.flops > lo && e.flops < hi) cuts.push_back(static_cast<double>(e.flops));
  std::sort(cuts.begin(), cuts.end());
  double area = 0;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    double best = 0;
    for (const ExitScore& e : exits)
      if (static_cast<double>(e.flops) <= cuts[i]) best = std::max(best, e.accuracy);
    area += best * (x(cuts[i + 1]) - x(cuts[i]));
  }
  return area / (x(hi) - x(lo));
}

using Point = std::pair<std::int64_t, double>;

/// The (FLOPs, accuracy) points of `nets` that no other point dominates, by brute force.
std::set<Point> brute_front(const std::vector<std::vector<ExitScore>>& nets) {
  std::vector<Point> all;
  for (const auto& exits : nets)
    for (const ExitScore& e : exits) all.emplace_back(e.flops, e.accuracy);
  std::set<Point> front;
  for (const Point& p : all) {
    bool dominated = false;
    for (const Point& q : all)
      dominated = dominated || (q.first <= p.first && q.second > p.second) ||
                  (q.first < p.first && q.second >= p.second);
    if (!dominated) front.insert(p);
  }
  return front;
}

std::vector<std::vector<ExitScore>> exits_of(const std::vector<Candidate>& top) {
  std::vector<std::vector<ExitScore>> out;
  for (const Candidate& c : top) out.push_back(c.score.exits);
  return out;
}

// ---- the strategy --------------------------------------------------------------------------

class AnytimeSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    core::reset_cancel();
    root = fs::temp_directory_path() /
           ("hypernas_anytime_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    ASSERT_TRUE(registry.load(ANYTIME_STRATEGY_PLUGIN));
    registry.scan({ANYTIME_TEST_PLUGIN_DIR});
    ASSERT_TRUE(registry.refusals().empty())
        << registry.refusals().front().path << ": " << registry.refusals().front().reason;
  }
  void TearDown() override {
    core::reset_cancel();
    fs::remove_all(root);
  }
  std::unique_ptr<RunSession> open(const std::string& experiment = "exp") {
    session::SessionConfig c;
    c.registry = &registry;
    c.results_root = root;
    c.experiment = experiment;
    c.seed = 7;
    auto s = std::make_unique<RunSession>(c);
    s->begin("test");
    return s;
  }
  /// What one search returned, and what its evaluation service did.
  struct Searched {
    std::vector<Candidate> top;
    EvaluationCounts counts;
    std::string key;
  };
  /// Runs `anytime` with `options` on `space_name` (default options) as RunSession::search()
  /// does, keeping the service to read its counts.
  Searched search(RunSession& s, const Options& options, const Options& surrogate = {},
                  const std::string& space_name = "exit_chain") {
    auto strategy = registry.create_strategy("anytime", options);
    auto h = s.make_surrogate("exit_oracle", surrogate);
    auto space = s.make_space(space_name, {}, nullptr);
    auto service = s.evaluations(h, *space, nullptr, {});
    SearchRequest req;
    req.surrogate = &h->plugin();
    req.surrogate_key = service->key();
    req.space = space.get();
    req.evaluations = service.get();
    core::KernelContext ctx(s.services(), "anytime");
    Searched out;
    out.top = strategy->run(ctx, req);
    out.counts = service->counts();
    out.key = service->key();
    return out;
  }
  static Options options(std::int64_t candidates, std::int64_t keep, std::int64_t batch = 1) {
    Options o;
    o.set("candidates", candidates).set("keep", keep).set("batch", batch);
    return o;
  }
  fs::path root;
  plugin::Registry registry;
};

/// Checks `top` against the reference ranking of everything stored under `key` over the FLOPs
/// range [lo, hi] (0: derived as the strategy documents).
void expect_reference_ranking(const std::vector<Candidate>& top, const std::vector<Stored>& all,
                              std::int64_t keep, double lo = 0, double hi = 0,
                              bool log_axis = false) {
  ASSERT_FALSE(all.empty());
  std::int64_t cheapest = all[0].exits.at(0).flops, costliest = cheapest;
  for (const Stored& s : all)
    for (const ExitScore& e : s.exits) {
      cheapest = std::min(cheapest, e.flops);
      costliest = std::max(costliest, e.flops);
    }
  if (lo == 0) lo = static_cast<double>(cheapest);
  if (hi == 0) hi = static_cast<double>(costliest);
  std::vector<double> area;
  std::vector<std::vector<ExitScore>> nets;
  for (const Stored& s : all) {
    area.push_back(reference_area(s.exits, lo, hi, log_axis));
    nets.push_back(s.exits);
  }
  const std::set<Point> front = brute_front(nets);
  auto owns = [&front](const std::vector<ExitScore>& exits) {
    for (const ExitScore& e : exits)
      if (front.count({e.flops, e.accuracy})) return true;
    return false;
  };
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&area](std::size_t a, std::size_t b) { return area[a] > area[b]; });
  std::vector<std::size_t> expected;
  for (std::size_t r = 0; r < order.size(); ++r)
    if (static_cast<std::int64_t>(r) < keep || owns(all[order[r]].exits))
      expected.push_back(order[r]);

  ASSERT_EQ(top.size(), expected.size());
  for (std::size_t i = 0; i < top.size(); ++i) {
    const Candidate& c = top[i];
    const Stored& ref = all[expected[i]];
    EXPECT_EQ(c.arch.text, ref.text) << "rank " << i;
    EXPECT_NEAR(c.score.value, area[expected[i]], 1e-12) << c.arch.text;
    EXPECT_EQ(c.score.extra.at("auc"), c.score.value) << c.arch.text;
    EXPECT_EQ(c.score.extra.at("final_accuracy"), ref.value) << c.arch.text;
    EXPECT_EQ(c.score.extra.at("kept"), static_cast<std::int64_t>(i) < keep ? 1 : 0) << i;
    EXPECT_EQ(c.score.extra.at("front"), owns(ref.exits) ? 1 : 0) << c.arch.text;
    ASSERT_EQ(c.score.exits.size(), ref.exits.size()) << c.arch.text;
    for (std::size_t k = 0; k < ref.exits.size(); ++k) {
      EXPECT_EQ(c.score.exits[k].flops, ref.exits[k].flops) << c.arch.text << " exit " << k;
      EXPECT_EQ(c.score.exits[k].accuracy, ref.exits[k].accuracy) << c.arch.text << " exit " << k;
    }
  }
  // What is returned keeps the whole front.
  EXPECT_EQ(brute_front(exits_of(top)), front);
}

TEST_F(AnytimeSearch, RanksByAnytimeAreaWithKeptAndFrontFlags) {
  auto s = open();
  auto strategy = registry.create_strategy("anytime", options(60, 5, 7));
  auto space = s->make_space("exit_chain", {}, nullptr);
  auto h = s->make_surrogate("exit_oracle", {});
  const auto top = s->search(*strategy, "anytime", h, *space, nullptr, {});
  const auto all = stored(s->store(), h->evaluation_key(nullptr, {}, 7));
  ASSERT_EQ(all.size(), 60u);
  for (const Stored& st : all) ASSERT_EQ(st.exits.size(), 3u) << st.text;
  expect_reference_ranking(top, all, 5);
  // The case is not trivial: front owners beyond the kept ones, and a front of several.
  EXPECT_GT(top.size(), 6u);
  EXPECT_GT(brute_front(exits_of(top)).size(), 3u);
}

TEST_F(AnytimeSearch, SearchesTheBuiltInAnytimeSpace) {
#ifndef ANYTIME_SPACE_PLUGIN
  GTEST_SKIP() << "the built-in anytime space (plugins/spaces/anytime) is not part of this build";
#else
  ASSERT_TRUE(registry.load(ANYTIME_SPACE_PLUGIN));
  auto s = open();
  const auto searched = search(*s, options(24, 4, 5), {}, "anytime");
  const auto all = stored(s->store(), searched.key);
  ASSERT_EQ(all.size(), 24u);  // distinct architectures (an unbounded space: drawn by rejection)
  std::set<std::string> texts;
  for (const Stored& st : all) {
    texts.insert(st.text);
    EXPECT_FALSE(st.exits.empty()) << st.text;
  }
  EXPECT_EQ(texts.size(), 24u);
  expect_reference_ranking(searched.top, all, 4);
#endif
}

TEST_F(AnytimeSearch, AGivenFlopsRangeAndALogAxisAreUsed) {
  auto s = open();
  Options o = options(40, 3, 4);
  o.set("flops_min", 20000.0).set("flops_max", 400000.0).set("axis", std::string("log"));
  const auto given = search(*s, o);
  const auto all = stored(s->store(), given.key);
  ASSERT_EQ(all.size(), 40u);
  expect_reference_ranking(given.top, all, 3, 20000, 400000, true);

  // Only the lower end given: the upper one is still derived.
  auto s2 = open("lower_only");
  Options lower = options(40, 3, 4);
  lower.set("flops_min", 20000.0);
  const auto half = search(*s2, lower);
  expect_reference_ranking(half.top, stored(s2->store(), half.key), 3, 20000, 0, false);
}

TEST_F(AnytimeSearch, ASingleExitSurrogateIsRefusedNamingItsKey) {
  auto s = open();
  Options single;
  single.set("multi_exit", false);
  const std::string msg = error_of([&] { search(*s, options(30, 5, 4), single); });
  EXPECT_NE(msg.find("surrogate 'exit_oracle{input_size=32,multi_exit=false}'"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("needs a multi_exit surrogate (ghn)"), std::string::npos) << msg;
  // It stopped after the first batch instead of scoring every candidate.
  EXPECT_EQ(s->store().count("evaluations"), 4);
}

TEST_F(AnytimeSearch, ARerunReusesEveryScoreAndRanksTheSame) {
  // NOTE: needs the kernel's evaluation service to rebuild Score::exits from the stored
  // "exit<K>_accuracy" / "exit<K>_flops" keys when it reuses a score.
  Searched first;
  {
    auto s = open();
    first = search(*s, options(50, 4, 6));
    EXPECT_EQ(first.counts.scored, 50);
    s->finish("ok");
  }
  auto s = open();
  const std::int64_t rows = s->store().count("evaluations");
  const auto again = search(*s, options(50, 4, 6));
  EXPECT_EQ(again.counts.reused, 50);
  EXPECT_EQ(again.counts.scored, 0);
  EXPECT_EQ(s->store().count("evaluations"), rows);
  ASSERT_EQ(again.top.size(), first.top.size());
  for (std::size_t i = 0; i < first.top.size(); ++i) {
    EXPECT_EQ(again.top[i].arch.text, first.top[i].arch.text) << i;
    EXPECT_EQ(again.top[i].score.value, first.top[i].score.value) << i;
    EXPECT_EQ(again.top[i].score.extra.at("kept"), first.top[i].score.extra.at("kept")) << i;
    EXPECT_EQ(again.top[i].score.extra.at("front"), first.top[i].score.extra.at("front")) << i;
    EXPECT_TRUE(again.top[i].reused) << i;
  }
}

TEST_F(AnytimeSearch, StopsWhenTheCallbackSaysSoAndCtrlCKeepsWhatWasScored) {
  auto s = open();
  int calls = 0;
  s->services().notify = [&calls](const std::string&, const std::map<std::string, double>&) {
    return ++calls < 4;
  };
  const auto stopped = search(*s, options(30, 10));
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(stopped.counts.scored, 4);
  ASSERT_EQ(stopped.top.size(), 4u);  // what was scored before the stop is ranked
  expect_reference_ranking(stopped.top, stored(s->store(), stopped.key), 10);

  auto c = open("cancelled");
  int seen = 0;
  c->services().notify = [&seen](const std::string&, const std::map<std::string, double>&) {
    if (++seen == 6) core::request_cancel("test");
    return true;
  };
  EXPECT_THROW(search(*c, options(30, 10)), Cancelled);
  EXPECT_EQ(seen, 6);
  EXPECT_EQ(c->store().evaluations("", "ok").size(), 6u);  // recorded as they were scored
}

TEST_F(AnytimeSearch, OptionsAreChecked) {
  Options axis;
  axis.set("axis", std::string("cubic"));
  EXPECT_NE(error_of([&] { registry.create_strategy("anytime", axis); }).find("one of linear|log"),
            std::string::npos);
  Options range;
  range.set("flops_min", 500.0).set("flops_max", 100.0);
  EXPECT_NE(error_of([&] {
              registry.create_strategy("anytime", range);
            }).find("flops_min (500) must be below flops_max (100)"),
            std::string::npos);
  // A derived range that is empty (one candidate with one exit cost) says what to set.
  auto s = open();
  Options one = options(1, 1);
  Options single_stage;
  single_stage.set("stages", std::int64_t{1});
  auto strategy = registry.create_strategy("anytime", one);
  auto space = s->make_space("exit_chain", single_stage, nullptr);
  auto h = s->make_surrogate("exit_oracle", {});
  const std::string msg =
      error_of([&] { s->search(*strategy, "anytime", h, *space, nullptr, {}); });
  EXPECT_NE(msg.find("is empty; set flops_min and flops_max"), std::string::npos) << msg;
}

}  // namespace
