// The superiority helpers of the SDK (intensive.h) on hand-made intensive spaces, and the
// `gradient` strategy as the kernel loads it: ADWP's basic-search and cross-search with the
// `adwp` surrogate on a toy `nb201` (and `darts`) space over a tiny in-memory dataset, through
// RunSession::search(). Checked: basic-search changes only α, cross-search changes the
// GeneratingBlocks too and the surrogate gets its state back, every epoch is recorded with its
// derived architecture, a search stopped by Ctrl-C resumes to the very α of an uninterrupted
// one, the intensive-space deriving, and the refusals (a space built with ABI 1.3, a surrogate
// without generate_relaxed()).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <hypernas/intensive.h>

#include "kernel/core/cancel.h"
#include "kernel/plugin/registry.h"
#include "kernel/session/session.h"
#include "kernel/store/store.h"
#include "tests/plugins/ghn/brightness_data.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace hypernas;
using hypernas::session::EvalSettings;
using hypernas::session::RunSession;
using hypernas::test::BrightnessData;
using hypernas::test::error_of;

namespace {

// ---- superiority (Eqs. 2-3), by hand --------------------------------------------------------

IntensiveSpace space_of(std::vector<std::vector<std::string>> nodes) {
  IntensiveSpace s;
  s.choices = {std::move(nodes)};
  return s;
}

TEST(Superiority, StabilityAndSuperiorityByHand) {
  // One cell type, M = 2 nodes, K = 2 candidates each.
  const IntensiveSpace o0 = space_of({{"a~0", "b~1"}, {"c~0", "d~2"}});
  const IntensiveSpace o1 = space_of({{"a~0", "e~1"}, {"c~0", "d~2"}});  // one change
  const IntensiveSpace o2 = space_of({{"e~1", "a~0"}, {"d~2", "c~0"}});  // o1 reordered
  const IntensiveSpace o3 = space_of({{"f~0", "g~1"}, {"h~0", "d~2"}});  // three changes
  EXPECT_EQ(intensive_changes(o0, o1), 1);
  EXPECT_EQ(intensive_changes(o1, o2), 0);  // order within a node does not matter
  EXPECT_EQ(intensive_changes(o2, o3), 3);
  EXPECT_DOUBLE_EQ(intensive_stability(o0, o1, 2), 0.75);  // 1 - 1 / (2 * 2)
  EXPECT_DOUBLE_EQ(intensive_stability(o1, o2, 2), 1.0);
  EXPECT_DOUBLE_EQ(intensive_stability(o2, o3, 2), 0.25);
  const std::vector<IntensiveSpace> spaces = {o0, o1, o2, o3};
  const std::vector<double> acc = {0.9, 0.8, 0.5, 0.95};
  // S(O*_2), n = 2: s(O2,O2) e2 * s(O1,O2) e1 * s(O0,O2) e0.
  EXPECT_DOUBLE_EQ(superiority(spaces, acc, 2, 2, 2), 1.0 * 0.5 * 1.0 * 0.8 * 0.75 * 0.9);
  // S(O*_3): s(O3,O3) e3 * s(O2,O3) e2 * s(O1,O3) e1 = 0.95 * 0.25 * 0.5 * 0.25 * 0.8.
  EXPECT_DOUBLE_EQ(superiority(spaces, acc, 3, 2, 2), 0.95 * 0.25 * 0.5 * 0.25 * 0.8);
  // n = 0 is the accuracy alone; the best epoch is the one of largest S, not of best accuracy.
  EXPECT_DOUBLE_EQ(superiority(spaces, acc, 1, 0, 2), 0.8);
  EXPECT_EQ(best_superiority_epoch(spaces, acc, 2, 2), 2u);
  EXPECT_EQ(best_superiority_epoch(spaces, acc, 0, 2), 3u);
  EXPECT_NE(error_of([&] { superiority(spaces, acc, 1, 2, 2); }).find("cannot backtrack 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              intensive_changes(o0, space_of({{"a~0"}}));
            }).find("with 2 and 1 nodes in cell type 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { best_superiority_epoch({o0}, {0.5}, 2, 2); }).find("need at least 3"),
            std::string::npos);
}

// ---- the strategy ---------------------------------------------------------------------------

/// BrightnessData whose train split requests cancellation (as Ctrl-C does) once a given number
/// of batches more has been taken from it (see cancel_after()).
class CancellingData final : public Dataset {
 public:
  CancellingData() : inner_(96, 48, /*size=*/8, /*classes=*/2, false, /*channels=*/1, /*seed=*/3) {}
  /// Requests cancellation when the n-th train batch from now is taken.
  void cancel_after(std::int64_t n) { cancel_after_ = taken_ + n; }
  std::string name() const override { return inner_.name(); }
  std::string identity() const override { return inner_.identity(); }
  ProblemSpec spec() const override { return inner_.spec(); }
  std::int64_t size(Split s) const override { return inner_.size(s); }
  using Dataset::batches;
  std::unique_ptr<BatchStream> batches(Split s, const BatchOptions& o, Rng& rng) const override {
    struct Counting final : BatchStream {
      std::unique_ptr<BatchStream> inner;
      const CancellingData* owner;
      std::optional<Batch> next() override {
        auto b = inner->next();
        if (b && ++owner->taken_ == owner->cancel_after_) core::request_cancel("test");
        return b;
      }
    };
    auto c = std::make_unique<Counting>();
    c->inner = inner_.batches(s, o, rng);
    c->owner = s == Split::Train ? this : nullptr;
    if (!c->owner) return std::move(c->inner);
    return c;
  }

 private:
  BrightnessData inner_;
  std::int64_t cancel_after_ = -1;
  mutable std::int64_t taken_ = 0;
};

class GradientSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    core::reset_cancel();
    static std::atomic<int> counter{0};
    root = fs::temp_directory_path() /
           ("hypernas_gradient_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
            std::to_string(counter++));
    fs::remove_all(root);
    registry.scan({GRADIENT_PLUGIN_DIR, GRADIENT_LEGACY_DIR});
    for (const auto& r : registry.refusals()) ADD_FAILURE() << r.path << ": " << r.reason;
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
    c.seed = 11;
    auto s = std::make_unique<RunSession>(c);
    s->begin("test");
    s->services().notify = [this](const std::string& event,
                                  const std::map<std::string, double>& v) {
      if (event == "search_epoch") epochs.push_back(v);
      return true;
    };
    return s;
  }
  /// The toy nb201 space: one cell per stage, 4 channels, 8x8 grey images, 2 classes.
  static Options nb201_options() {
    Options o;
    o.set("cells_per_stage", std::int64_t{1}).set("channels", std::int64_t{4});
    return o;
  }
  static Options search_options(std::int64_t epochs, std::int64_t cross_start,
                                std::int64_t cross_end) {
    Options o;
    o.set("epochs", epochs).set("steps", std::int64_t{2}).set("batch", std::int64_t{16});
    o.set("cross_start", cross_start).set("cross_end", cross_end);
    o.set("valid_images", std::int64_t{32}).set("alpha_lr", 0.05);
    return o;
  }
  /// An adwp surrogate fitted for 3 steps (a deterministic state to search with).
  std::shared_ptr<session::SurrogateHandle> fitted_adwp(RunSession& s, const SearchSpace& space,
                                                        const Dataset& data) {
    Options o;
    o.set("hidden", std::int64_t{8});
    auto h = s.make_surrogate("adwp", o);
    FitRequest f;
    f.space = &space;
    f.data = &data;
    f.batch_size = 16;
    f.max_steps = 3;
    core::KernelContext ctx(s.services(), "adwp");
    h->plugin().fit(ctx, f);
    h->retag();
    return h;
  }
  /// Runs `gradient` as a script's strategy:run{} does.
  std::vector<Candidate> search(RunSession& s, const Options& options,
                                std::shared_ptr<session::SurrogateHandle> h,
                                const SearchSpace& space, const Dataset& data) {
    auto strategy = registry.create_strategy("gradient", options);
    EvalSettings settings;
    settings.max_images = 32;
    settings.batch_size = 32;
    return s.search(*strategy, "gradient", std::move(h), space, &data, settings);
  }

  fs::path root;
  plugin::Registry registry;
  std::vector<std::map<std::string, double>> epochs;  ///< The "search_epoch" events.
};

TEST_F(GradientSearch, BasicSearchChangesOnlyAlpha) {
  auto s = open();
  CancellingData data;
  auto space = s->make_space("nb201", nb201_options(), &data);
  auto h = fitted_adwp(*s, *space, data);
  const std::string before = h->plugin().save_state();
  const auto top = search(*s, search_options(3, 0, 0), h, *space, data);
  ASSERT_EQ(epochs.size(), 3u);
  for (const auto& e : epochs) {
    EXPECT_EQ(e.at("gb_change"), 0.0);  // the GeneratingBlocks stay frozen
    EXPECT_EQ(e.at("cross"), 0.0);
  }
  const auto rows = s->store().search_epochs("");
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(rows[0].alphas.size(), 1u);
  ASSERT_EQ(rows[0].alpha_shapes[0], (std::vector<std::int64_t>{6, 5}));
  // α moves every epoch (Adam with lr 0.05 moves each logit by about 0.05 a step).
  double moved = 0;
  for (std::size_t i = 0; i < rows[0].alphas[0].size(); ++i)
    moved = std::max<double>(moved, std::fabs(rows[2].alphas[0][i] - rows[0].alphas[0][i]));
  EXPECT_GT(moved, 0.05);
  EXPECT_EQ(h->plugin().save_state(), before);
  ASSERT_FALSE(top.empty());
}

TEST_F(GradientSearch, CrossSearchChangesBothAndTheSurrogateGetsItsStateBack) {
  auto s = open();
  CancellingData data;
  auto space = s->make_space("nb201", nb201_options(), &data);
  auto h = fitted_adwp(*s, *space, data);
  const std::string before = h->plugin().save_state();
  EvalSettings settings;
  settings.max_images = 32;
  settings.batch_size = 32;
  const std::string key_before = h->evaluation_key(&data, settings, 11);
  search(*s, search_options(3, 1, 2), h, *space, data);
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(epochs[0].at("gb_change"), 0.0);  // basic-search first
  EXPECT_EQ(epochs[1].at("cross"), 1.0);
  EXPECT_GT(epochs[1].at("gb_change"), 0.0);  // cross-search trains the GeneratingBlocks
  EXPECT_EQ(epochs[2].at("cross"), 0.0);      // then basic-search again, on the changed GBs
  EXPECT_EQ(epochs[2].at("gb_change"), epochs[1].at("gb_change"));
  const auto rows = s->store().search_epochs("");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].phase, "basic");
  EXPECT_EQ(rows[1].phase, "cross");
  EXPECT_EQ(rows[2].phase, "basic");
  // The candidates were scored, and later scores see, the surrogate's own (Stage 1) state.
  EXPECT_EQ(h->plugin().save_state(), before);
  EXPECT_EQ(h->evaluation_key(&data, settings, 11), key_before);
}

TEST_F(GradientSearch, RecordsEveryEpochAndReturnsTheDerivedArchitectures) {
  auto s = open();
  CancellingData data;
  auto space = s->make_space("nb201", nb201_options(), &data);
  auto h = fitted_adwp(*s, *space, data);
  const auto top = search(*s, search_options(2, 0, 0), h, *space, data);
  const auto rows = s->store().search_epochs("");
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.strategy, "gradient");
    EXPECT_EQ(r.run, rows[0].run);
    EXPECT_EQ(r.arch_hash, s->store().hash(space->parse(r.arch_text)));  // recorded, parses
    EXPECT_GE(r.valid_accuracy, 0.0);
    EXPECT_LE(r.valid_accuracy, 1.0);
    EXPECT_TRUE(std::isfinite(r.train_loss));
    EXPECT_GT(r.seconds, 0.0);
    // The derived cell is discretize() of the recorded α.
    const at::Tensor a = at::tensor(at::ArrayRef<float>(r.alphas[0])).reshape({6, 5});
    EXPECT_EQ(space->discretize({a}, 2).text, r.arch_text);
  }
  ASSERT_GE(top.size(), 1u);
  ASSERT_LE(top.size(), 2u);
  int finals = 0;
  for (const Candidate& c : top) {
    finals += static_cast<int>(c.score.extra.at("final"));
    EXPECT_TRUE(c.score.extra.count("best_valid"));
    EXPECT_TRUE(c.score.extra.count("relaxed_valid_accuracy"));
    if (c.score.extra.at("final") == 1) {
      EXPECT_EQ(c.arch.text, rows.back().arch_text);
      EXPECT_EQ(c.score.extra.at("epoch"), 1.0);
    }
    // Scored through the evaluation service: recorded under the surrogate's key.
    EvalSettings settings;
    settings.max_images = 32;
    settings.batch_size = 32;
    EXPECT_TRUE(s->store().find_evaluation(c.hash, h->evaluation_key(&data, settings, 11)));
  }
  EXPECT_EQ(finals, 1);
}

TEST_F(GradientSearch, AStoppedSearchResumesToTheAlphaOfAnUninterruptedOne) {
  const Options options = search_options(3, 1, 2);  // the stop falls in cross-search
  std::vector<float> expected;
  {
    auto s = open("whole");
    CancellingData data;
    auto space = s->make_space("nb201", nb201_options(), &data);
    search(*s, options, fitted_adwp(*s, *space, data), *space, data);
    expected = s->store().search_epochs("").back().alphas[0];
  }
  {
    auto s = open("stopped");
    CancellingData data;
    auto space = s->make_space("nb201", nb201_options(), &data);
    auto h = fitted_adwp(*s, *space, data);
    data.cancel_after(3);  // the first step of epoch 1 asks to stop: it ends before the second
    EXPECT_THROW(search(*s, options, h, *space, data), Cancelled);
    EXPECT_EQ(s->store().search_epochs("").size(), 1u);  // epoch 0 was recorded
    s->finish("cancelled");
  }
  core::reset_cancel();
  epochs.clear();
  auto s = open("stopped");
  CancellingData data;
  auto space = s->make_space("nb201", nb201_options(), &data);
  search(*s, options, fitted_adwp(*s, *space, data), *space, data);
  EXPECT_EQ(epochs.size(), 2u);  // epochs 1 (from its second step) and 2
  const auto rows = s->store().search_epochs("");
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(rows.back().alphas[0].size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(rows.back().alphas[0][i], expected[i], 1e-5) << i;
}

TEST_F(GradientSearch, TheIntensiveSpaceOfLargestSuperiorityIsChosenAndReadsBack) {
  auto s = open();
  CancellingData data;
  Options darts;
  darts.set("layers", std::int64_t{3}).set("channels", std::int64_t{4});
  auto space = s->make_space("darts", darts, &data);
  auto h = fitted_adwp(*s, *space, data);
  Options o = search_options(3, 0, 0);
  o.set("intensive_k", std::int64_t{3}).set("intensive_n", std::int64_t{1});
  const auto top = search(*s, o, h, *space, data);
  const auto rows = s->store().search_epochs("");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_FALSE(rows[0].extra.count("superiority"));  // epoch 0 cannot backtrack 1
  std::size_t best = 1;
  for (std::size_t t = 1; t < rows.size(); ++t) {
    ASSERT_TRUE(rows[t].extra.count("superiority")) << t;
    EXPECT_GE(rows[t].extra.at("superiority"), 0.0);
    EXPECT_LE(rows[t].extra.at("superiority"), 1.0);
    if (rows[t].extra.at("superiority") > rows[best].extra.at("superiority")) best = t;
  }
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0].score.extra.at("intensive_epoch"), static_cast<double>(best));
  // The chosen epoch's intensive space, as a file, is the darts space's `intensive` option.
  const fs::path file = root / "intensive.json";
  std::ofstream(file) << rows[best].note;
  Options restricted = darts;
  restricted.set("intensive", file.string());
  auto small = s->make_space("darts", restricted, &data);
  ASSERT_EQ(small->arch_params().size(), 2u);
  EXPECT_EQ(small->arch_params()[0].shape, (std::vector<std::int64_t>{4, 3}));
}

TEST_F(GradientSearch, RefusesWhatItCannotSearch) {
  auto s = open();
  CancellingData data;
  // A space built with ABI 1.3 has no relaxed network: refused by name, nothing called.
  const auto* legacy = registry.find(PluginKind::Space, "legacy_space_1_3");
  ASSERT_NE(legacy, nullptr);
  EXPECT_EQ(legacy->abi_minor, 3u);
  auto old_space = s->make_space("legacy_space_1_3", {}, &data);
  Rng rng(1);
  EXPECT_EQ(old_space->sample(rng).space, "legacy_space_1_3");  // it still loads and samples
  auto nb = s->make_space("nb201", nb201_options(), &data);
  auto adwp = fitted_adwp(*s, *nb, data);
  // The kernel stops it before the surrogate or the strategy could call SearchSpace::relaxed():
  // when searching, scoring or fitting.
  EXPECT_NE(error_of([&] {
              search(*s, search_options(1, 0, 0), adwp, *old_space, data);
            }).find("which space 'legacy_space_1_3' (built with ABI 1.3) does not have"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              s->evaluations(adwp, *old_space, &data, {});
            }).find("surrogate 'adwp' runs relaxed networks"),
            std::string::npos);
  // A surrogate that does not generate weights from α.
  auto params = s->make_surrogate("params", {});
  EXPECT_NE(error_of([&] {
              search(*s, search_options(1, 0, 0), params, *nb, data);
            }).find("is not differentiable in architecture parameters"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              registry.create_strategy("gradient", search_options(4, 3, 2));
            }).find("cross_end (2) must be >= cross_start (3)"),
            std::string::npos);
}

}  // namespace
