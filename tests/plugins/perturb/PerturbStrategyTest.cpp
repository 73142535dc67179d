// The `perturb` strategy as the kernel loads it: SMASH's search (random candidates, then
// perturbations of the best, then a Markov chain of mutations) with the data-free `params`
// surrogate (score = log10 of the parameter count) on a toy `nb201` space, plus smoke runs on
// `darts` and `ghn`. Checked: the exact number of evaluations (repeats reused, not rescored), the
// best never getting worse, a sorted and distinct kept list, a rerun with the same seed reusing
// every score and returning the same ranking, p = 0 proposing only the architecture it starts
// from, the script's callback stopping it, and the refusals (a space built with ABI 1.4, a 1.5
// space without mutate(), bad options).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

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

using Event = std::map<std::string, double>;

class PerturbSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    core::reset_cancel();
    static std::atomic<int> counter{0};
    root = fs::temp_directory_path() /
           ("hypernas_perturb_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
            std::to_string(counter++));
    fs::remove_all(root);
    registry.scan({PERTURB_PLUGIN_DIR, PERTURB_LEGACY_DIR});
    for (const auto& r : registry.refusals()) ADD_FAILURE() << r.path << ": " << r.reason;
  }
  void TearDown() override {
    core::reset_cancel();
    fs::remove_all(root);
  }
  /// A session on experiment `experiment` with seed `seed`, recording the "perturb" events;
  /// its callback asks to stop at the event numbered `stop_at` (0-based), if set.
  std::unique_ptr<RunSession> open(const std::string& experiment = "exp", std::uint64_t seed = 11) {
    session::SessionConfig c;
    c.registry = &registry;
    c.results_root = root;
    c.experiment = experiment;
    c.seed = seed;
    auto s = std::make_unique<RunSession>(c);
    s->begin("test");
    events.clear();
    fresh.clear();
    s->services().notify = [this](const std::string& event, const Event& v) {
      if (event == "candidate") fresh.push_back(v.at("score"));
      if (event != "perturb") return true;
      events.push_back(v);
      return stop_at < 0 || static_cast<std::int64_t>(events.size()) <= stop_at;
    };
    return s;
  }
  /// The toy nb201 space: one cell per stage, 4 channels (parameter counts still differ).
  static Options nb201_options() {
    Options o;
    o.set("cells_per_stage", std::int64_t{1}).set("channels", std::int64_t{4});
    return o;
  }
  static Options options(std::int64_t candidates, std::int64_t perturbations, std::int64_t chain,
                         double p) {
    Options o;
    o.set("candidates", candidates).set("perturbations", perturbations).set("chain", chain);
    o.set("p", p);
    return o;
  }

  struct Outcome {
    std::vector<Candidate> top;
    EvaluationCounts counts;
  };
  /// Runs `perturb` with `params` on `space` as RunSession::search() does, keeping the
  /// evaluation service's counts.
  Outcome run(RunSession& s, const Options& o, const SearchSpace& space) {
    auto strategy = registry.create_strategy("perturb", o);
    auto h = s.make_surrogate("params", {});
    auto service = s.evaluations(h, space, nullptr, EvalSettings{});
    SearchRequest req;
    req.surrogate = &h->plugin();
    req.surrogate_key = service->key();
    req.space = &space;
    req.evaluations = service.get();
    req.space_abi_minor = s.space_abi_minor(space);
    req.surrogate_abi_minor = h->abi_minor();
    core::KernelContext ctx(s.services(), "perturb");
    Outcome out;
    out.top = strategy->run(ctx, req);
    out.counts = service->counts();
    return out;
  }
  /// Through RunSession::search() itself (the kernel's checks included).
  std::vector<Candidate> search(RunSession& s, const Options& o, const SearchSpace& space) {
    auto strategy = registry.create_strategy("perturb", o);
    return s.search(*strategy, "perturb", s.make_surrogate("params", {}), space, nullptr,
                    EvalSettings{});
  }
  /// The events of `phase` (1: perturbations, 2: chain).
  std::vector<Event> phase(int p) const {
    std::vector<Event> out;
    for (const Event& e : events)
      if (e.at("phase") == p) out.push_back(e);
    return out;
  }
  /// Score of every architecture the store holds under params, by hash.
  static std::size_t stored(RunSession& s) {
    return static_cast<std::size_t>(s.store().count("evaluations"));
  }

  fs::path root;
  plugin::Registry registry;
  /// The best of the first n newly scored architectures (the random candidates, all new in a
  /// fresh experiment).
  double best_of_first(std::size_t n) const {
    EXPECT_GE(fresh.size(), n);
    double best = -1e300;
    for (std::size_t i = 0; i < n && i < fresh.size(); ++i) best = std::max(best, fresh[i]);
    return best;
  }

  std::vector<Event> events;  ///< The "perturb" events.
  std::vector<double> fresh;  ///< Scores of the "candidate" events (newly scored architectures).
  std::int64_t stop_at = -1;
};

TEST_F(PerturbSearch, ScoresExactlyCandidatesPlusPerturbationsPlusChain) {
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  const Outcome o = run(*s, options(40, 25, 30, 0.3), *space);
  EXPECT_EQ(o.counts.scored + o.counts.reused, 40 + 25 + 30);
  EXPECT_EQ(o.counts.failed, 0);
  // Repeats (an unchanged mutation, a state the chain returns to) are taken from the store.
  EXPECT_GT(o.counts.reused, 0);
  EXPECT_EQ(stored(*s), static_cast<std::size_t>(o.counts.scored));
  ASSERT_EQ(events.size(), 55u);
  ASSERT_EQ(phase(1).size(), 25u);
  ASSERT_EQ(phase(2).size(), 30u);
  for (std::size_t i = 0; i < 25; ++i) EXPECT_EQ(phase(1)[i].at("step"), static_cast<double>(i));
  for (std::size_t i = 0; i < 30; ++i) EXPECT_EQ(phase(2)[i].at("step"), static_cast<double>(i));
}

TEST_F(PerturbSearch, TheBestNeverGetsWorseAndOnlyImprovementsAreKeptInPhase1) {
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  const Outcome o = run(*s, options(20, 60, 40, 0.2), *space);
  // The perturbation phase starts from the random best (starts = 1).
  double current = best_of_first(20);
  double best = current;
  const auto p1 = phase(1);
  ASSERT_EQ(p1.size(), 60u);
  for (std::size_t i = 0; i < p1.size(); ++i) {
    const Event& e = p1[i];
    // Accepted exactly when it beats the current best; the best is then its score.
    EXPECT_EQ(e.at("accepted"), e.at("score") > current ? 1.0 : 0.0) << i;
    if (e.at("accepted") == 1) current = e.at("score");
    EXPECT_GE(e.at("best"), best) << i;  // never worse
    best = e.at("best");
    EXPECT_EQ(best, current) << i;
  }
  // The chain may move to worse states, but the best seen never gets worse either.
  const auto p2 = phase(2);
  ASSERT_EQ(p2.size(), 40u);
  std::int64_t worse_accepted = 0;
  double state = best;
  for (const Event& e : p2) {
    EXPECT_GE(e.at("best"), best);
    EXPECT_GE(e.at("best"), e.at("score"));
    best = e.at("best");
    if (e.at("score") > state) {
      EXPECT_EQ(e.at("accepted"), 1.0);  // better: always accepted
    }
    if (e.at("accepted") == 1) {
      if (e.at("score") < state) ++worse_accepted;
      state = e.at("score");
    }
  }
  // log10 parameter counts differ by ~0.05 between neighbours, 5 temperatures: exp(-5) is rare.
  EXPECT_LE(worse_accepted, 5);
  ASSERT_FALSE(o.top.empty());
  EXPECT_EQ(o.top[0].score.value, best);
}

TEST_F(PerturbSearch, ReturnsTheKeepBestDistinctSortedBestFirst) {
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  Options opt = options(30, 30, 30, 0.3);
  opt.set("keep", std::int64_t{12});
  const Outcome o = run(*s, opt, *space);
  ASSERT_EQ(o.top.size(), 12u);
  std::set<std::string> hashes;
  for (std::size_t i = 0; i < o.top.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(o.top[i - 1].score.value, o.top[i].score.value) << i;
    }
    EXPECT_TRUE(hashes.insert(o.top[i].hash).second) << o.top[i].arch.text;
    EXPECT_EQ(o.top[i].hash, s->store().hash(space->parse(o.top[i].arch.text)));
    const double ph = o.top[i].score.extra.at("phase");
    EXPECT_TRUE(ph == 0 || ph == 1 || ph == 2);
  }
  // The kept best is the best of everything scored: the store's best under params.
  double stored_best = -1e9;
  for (const auto& row : s->store().evaluations()) stored_best = std::max(stored_best, row.score);
  EXPECT_EQ(o.top[0].score.value, stored_best);
}

TEST_F(PerturbSearch, ARerunWithTheSameSeedReusesEveryScoreAndRanksTheSame) {
  const Options opt = options(30, 20, 20, 0.3);
  Outcome first, second;
  std::vector<Event> first_events;
  {
    auto s = open();
    auto space = s->make_space("nb201", nb201_options(), nullptr);
    first = run(*s, opt, *space);
    first_events = events;
    s->finish("ok");
  }
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  second = run(*s, opt, *space);
  EXPECT_EQ(second.counts.scored, 0);
  EXPECT_EQ(second.counts.reused, 70);
  EXPECT_EQ(events, first_events);  // the same proposals, scores and decisions
  ASSERT_EQ(second.top.size(), first.top.size());
  for (std::size_t i = 0; i < first.top.size(); ++i) {
    EXPECT_EQ(second.top[i].arch.text, first.top[i].arch.text) << i;
    EXPECT_EQ(second.top[i].score.value, first.top[i].score.value) << i;
    EXPECT_TRUE(second.top[i].reused);
  }
  // Another seed searches differently.
  auto other = open("other", 12);
  auto other_space = other->make_space("nb201", nb201_options(), nullptr);
  run(*other, opt, *other_space);
  EXPECT_NE(events, first_events);
}

TEST_F(PerturbSearch, AtPZeroEveryProposalIsTheArchitectureItStartsFrom) {
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  const Outcome o = run(*s, options(25, 15, 10, 0.0), *space);
  EXPECT_EQ(o.counts.scored, 25);  // nothing new after the random candidates
  EXPECT_EQ(o.counts.reused, 25);
  EXPECT_EQ(stored(*s), 25u);
  ASSERT_EQ(events.size(), 25u);
  const double best = events[0].at("best");
  for (const Event& e : phase(1)) {
    EXPECT_EQ(e.at("score"), best);
    EXPECT_EQ(e.at("accepted"), 0.0);  // not better
  }
  for (const Event& e : phase(2)) {
    EXPECT_EQ(e.at("score"), best);
    EXPECT_EQ(e.at("accepted"), 1.0);  // exp(0) = 1: an equal proposal is always accepted
  }
}

TEST_F(PerturbSearch, PerturbingImprovesOnTheRandomBestUnderParams) {
  // With few random candidates the best of them is far from the largest cell (all
  // nor_conv_3x3); mutations of it climb towards that.
  auto s = open();
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  const Outcome o = run(*s, options(10, 60, 0, 0.2), *space);
  const double random_best = best_of_first(10);
  std::int64_t accepted = 0;
  for (const Event& e : phase(1)) accepted += static_cast<std::int64_t>(e.at("accepted"));
  EXPECT_GE(accepted, 1);
  ASSERT_FALSE(o.top.empty());
  EXPECT_GT(o.top[0].score.value, random_best);
  EXPECT_EQ(o.top[0].score.extra.at("phase"), 1.0);  // the winner came from a perturbation
}

TEST_F(PerturbSearch, TheScriptCanStopIt) {
  auto s = open();
  stop_at = 4;  // the callback answers false to the 5th event
  auto space = s->make_space("nb201", nb201_options(), nullptr);
  const Outcome o = run(*s, options(20, 10, 10, 0.3), *space);
  EXPECT_EQ(events.size(), 5u);
  EXPECT_EQ(o.counts.scored + o.counts.reused, 25);
  EXPECT_FALSE(o.top.empty());
}

TEST_F(PerturbSearch, SplitsThePerturbationsAmongStartsAndRunsOnDartsAndGhn) {
  {
    auto s = open();
    auto space = s->make_space("nb201", nb201_options(), nullptr);
    Options opt = options(20, 10, 0, 0.3);
    opt.set("starts", std::int64_t{3}).set("batch", std::int64_t{4});
    const Outcome o = run(*s, opt, *space);
    EXPECT_EQ(phase(1).size(), 10u);
    EXPECT_EQ(o.counts.scored + o.counts.reused, 30);
  }
  Options darts;
  darts.set("layers", std::int64_t{3}).set("channels", std::int64_t{4});
  Options ghn;
  ghn.set("nodes", std::int64_t{5}).set("blocks", std::int64_t{1}).set("channels", std::int64_t{4});
  for (const auto& [name, space_options] :
       std::vector<std::pair<std::string, Options>>{{"darts", darts}, {"ghn", ghn}}) {
    auto s = open("exp_" + name);
    auto space = s->make_space(name, space_options, nullptr);
    const Outcome o = run(*s, options(8, 6, 6, 0.2), *space);
    EXPECT_EQ(o.counts.scored + o.counts.reused, 20) << name;
    ASSERT_EQ(o.top.size(), 10u) << name;
    for (const Candidate& c : o.top) EXPECT_EQ(space->parse(c.arch.text).text, c.arch.text);
  }
}

TEST_F(PerturbSearch, RefusesASpaceBuiltWithAbi14ByName) {
  auto s = open();
  const auto* legacy = registry.find(PluginKind::Space, "legacy_space_1_4");
  ASSERT_NE(legacy, nullptr);
  EXPECT_EQ(legacy->abi_minor, 4u);
  auto old_space = s->make_space("legacy_space_1_4", {}, nullptr);
  EXPECT_EQ(s->space_abi_minor(*old_space), 4u);
  Rng rng(1);
  const Architecture a = old_space->sample(rng);  // it still loads, samples, parses, relaxes
  EXPECT_EQ(a.space, "legacy_space_1_4");
  EXPECT_EQ(old_space->parse("k3").text, "k3");
  EXPECT_EQ(old_space->relaxed().blocks.size(), 1u);
  const std::string e = error_of([&] { search(*s, options(4, 2, 2, 0.5), *old_space); });
  EXPECT_NE(e.find("perturb needs a space that can mutate architectures (ABI 1.5), which space "
                   "'legacy_space_1_4' (built with ABI 1.4) does not have"),
            std::string::npos)
      << e;
  EXPECT_TRUE(events.empty());
  // Random search alone calls no mutate(): that much it can do on the old space.
  const auto top = search(*s, options(2, 0, 0, 0.5), *old_space);
  ASSERT_EQ(top.size(), 2u);          // its two architectures
  EXPECT_EQ(top[0].arch.text, "k3");  // 9 parameters beat 1
}

TEST_F(PerturbSearch, RefusesA15SpaceThatCannotMutateAndBadOptions) {
  auto s = open();
  auto anytime = s->make_space("anytime", {}, nullptr);
  EXPECT_EQ(s->space_abi_minor(*anytime), kAbiMinor);
  const std::string e = error_of([&] { search(*s, options(4, 2, 2, 0.5), *anytime); });
  EXPECT_NE(e.find("space 'anytime' cannot mutate an architecture"), std::string::npos) << e;
  EXPECT_EQ(s->store().count("evaluations"), 0);  // refused before scoring anything
  Options hot = options(4, 2, 2, 0.5);
  hot.set("temperature", 0.0);
  EXPECT_NE(error_of([&] {
              registry.create_strategy("perturb", hot);
            }).find("option 'temperature' expects a real > 0, got '0'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              registry.create_strategy("perturb", options(4, 2, 2, 1.5));
            }).find("'p' expects real <= 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              registry.create_strategy("perturb", options(4, -1, 2, 0.5));
            }).find("'perturbations' expects int >= 0"),
            std::string::npos);
}

}  // namespace
