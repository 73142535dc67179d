// Tests of the trainer (kernel/train): options, loss, clipping and SGD against LibTorch's own,
// training a small NB201 network on synthetic data, records, divergence and cancellation.

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hypernas/graph_stats.h>
#include <torch/torch.h>

#include "kernel/exec/executor.h"
#include "kernel/train/train.h"
#include "plugins/spaces/nb201/nb201.h"
#include "tests/kernel/train/FakeDataset.h"
#include "tests/support/arch_builder.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace {

using hypernas::Architecture;
using hypernas::Options;
using hypernas::Split;
using hypernas::WeightMap;
using hypernas::exec::GraphExecutor;
using hypernas::test::FakeDataset;
using hypernas::test::TestContext;
namespace nb201 = hypernas::nb201;
namespace train = hypernas::train;

const std::string kConvCell =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

Architecture small_arch(const std::string& text = kConvCell) {
  nb201::MacroConfig m;
  m.cells_per_stage = 1;
  m.channels = 4;
  m.input_channels = FakeDataset::kClasses;
  m.input_size = 8;
  m.classes = FakeDataset::kClasses;
  Architecture a;
  a.space = "nb201";
  a.text = text;
  a.graph = nb201::build_graph(nb201::parse_cell(text), m);
  return a;
}

train::TrainOptions quick_options() {
  train::TrainOptions o;
  o.epochs = 3;
  o.batch = 16;
  o.lr = 0.1;
  o.eval_batch = 64;
  o.augment = false;
  return o;
}

using hypernas::test::error_of;

// ---------------------------------------------------------------------------------------------
// Options

TEST(TrainOptions, DefaultsAndResolution) {
  const train::TrainOptions d = train::TrainOptions::from_options(Options{});
  EXPECT_EQ(d.epochs, 10);
  EXPECT_EQ(d.batch, 64);
  EXPECT_DOUBLE_EQ(d.lr, 0.05);
  EXPECT_DOUBLE_EQ(d.momentum, 0.9);
  EXPECT_TRUE(d.nesterov);
  EXPECT_DOUBLE_EQ(d.weight_decay, 5e-4);
  EXPECT_DOUBLE_EQ(d.label_smoothing, 0.0);
  EXPECT_EQ(d.schedule, "cosine");
  EXPECT_EQ(d.eval_batch, 256);
  EXPECT_EQ(d.max_steps, 0);
  EXPECT_TRUE(d.augment);
  EXPECT_DOUBLE_EQ(d.grad_clip, 5.0);
  EXPECT_EQ(d.recipe(), train::TrainOptions{}.recipe());
  EXPECT_NE(d.recipe().find("lr=0.05"), std::string::npos) << d.recipe();

  Options given;
  given.set("epochs", std::int64_t{3}).set("schedule", std::string("constant"));
  const auto o = train::TrainOptions::from_options(given);
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.schedule, "constant");
  EXPECT_EQ(train::TrainOptions::from_options(o.to_options()).recipe(), o.recipe());

  EXPECT_THROW(train::TrainOptions::from_options(Options().set("epoch", std::int64_t{3})),
               hypernas::UsageError);
  EXPECT_THROW(train::TrainOptions::from_options(Options().set("schedule", std::string("step"))),
               hypernas::UsageError);
  EXPECT_THROW(train::TrainOptions::from_options(Options().set("batch", std::int64_t{0})),
               hypernas::UsageError);
}

// ---------------------------------------------------------------------------------------------
// Loss, clipping, SGD against LibTorch

TEST(TrainParts, CrossEntropyMatchesTorch) {
  torch::manual_seed(0);
  const torch::Tensor logits = torch::randn({7, 5});
  const torch::Tensor labels = torch::randint(0, 5, {7}, torch::kLong);
  namespace F = torch::nn::functional;
  for (double eps : {0.0, 0.1, 0.3}) {
    const torch::Tensor expected =
        F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().label_smoothing(eps));
    EXPECT_TRUE(torch::allclose(train::cross_entropy(logits, labels, eps), expected, 1e-6, 1e-6))
        << eps;
  }
}

TEST(TrainParts, ClipGradNormMatchesTorch) {
  torch::manual_seed(1);
  std::vector<torch::Tensor> a = {torch::randn({3, 4}, torch::requires_grad()),
                                  torch::randn({5}, torch::requires_grad()),
                                  torch::randn({2}, torch::requires_grad())};
  std::vector<torch::Tensor> b;
  for (auto& p : a) b.push_back(p.detach().clone().requires_grad_(true));
  for (auto* set : {&a, &b}) ((*set)[0].pow(3).sum() * 10 + (*set)[1].sum() * 4).backward();
  const torch::Tensor norm = train::clip_grad_norm(a, 1.0);
  const double expected = torch::nn::utils::clip_grad_norm_(b, 1.0);
  EXPECT_NEAR(norm.item<double>(), expected, 1e-4 * expected);
  EXPECT_FALSE(a[2].grad().defined());
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(torch::allclose(a[i].grad(), b[i].grad(), 1e-5, 1e-7));
}

TEST(TrainParts, SgdMatchesTorchOptim) {
  for (bool nesterov : {true, false}) {
    torch::manual_seed(2);
    std::vector<torch::Tensor> a = {torch::randn({4, 3}, torch::requires_grad()),
                                    torch::randn({3}, torch::requires_grad())};
    std::vector<torch::Tensor> b;
    for (auto& p : a) b.push_back(p.detach().clone().requires_grad_(true));
    train::Sgd mine(a, {0.1, 0.9, 5e-4, nesterov});
    torch::optim::SGD theirs(
        b, torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4).nesterov(nesterov));
    const torch::Tensor x = torch::randn({6, 4});
    for (int step = 0; step < 5; ++step) {
      if (step == 3) {
        mine.set_lr(0.03);
        static_cast<torch::optim::SGDOptions&>(theirs.param_groups()[0].options()).lr(0.03);
      }
      torch::matmul(x, a[0]).add(a[1]).tanh().sum().backward();
      torch::matmul(x, b[0]).add(b[1]).tanh().sum().backward();
      mine.step();
      theirs.step();
      mine.zero_grad();
      theirs.zero_grad();
      for (int i = 0; i < 2; ++i)
        EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-6, 1e-7)) << "step " << step << " param " << i;
    }
    EXPECT_FALSE(a[0].grad().defined());
  }
}

// ---------------------------------------------------------------------------------------------
// Training

TEST(Train, LearnsTheSyntheticTaskAndRecordsIt) {
  const FakeDataset data(96, 48, 60);
  const Architecture arch = small_arch();
  GraphExecutor exec;
  TestContext ctx(5);
  const auto r = train::train(ctx, arch, data, quick_options(), exec);

  EXPECT_EQ(r.steps, 18);  // 96 / 16 = 6 steps per epoch, 3 epochs
  EXPECT_EQ(r.images, 18 * 16);
  ASSERT_EQ(r.record.train_loss.size(), 3u);
  ASSERT_EQ(r.record.valid_accuracy.size(), 3u);
  EXPECT_LT(r.record.train_loss.back(), r.record.train_loss.front());
  EXPECT_GT(r.record.valid_accuracy.back(), 0.75);
  EXPECT_GT(r.record.test_accuracy, 0.75);
  EXPECT_GT(r.record.seconds, 0.0);
  EXPECT_GT(r.train_seconds, 0.0);
  EXPECT_EQ(r.weights.size(), exec.parameters(arch).size());

  // The architecture is recorded first, the training when done, under its hash.
  ASSERT_EQ(ctx.store_.archs, std::vector<std::string>{kConvCell});
  ASSERT_EQ(ctx.store_.trainings.size(), 1u);
  const auto& rec = ctx.store_.trainings[0];
  EXPECT_EQ(rec.arch_hash, "h:" + kConvCell);
  EXPECT_EQ(rec.recipe, quick_options().recipe());
  EXPECT_EQ(rec.train_loss, r.record.train_loss);
  EXPECT_DOUBLE_EQ(rec.test_accuracy, r.record.test_accuracy);

  // Progress and one log line per epoch.
  ASSERT_EQ(ctx.totals.size(), 1u);
  EXPECT_EQ(ctx.totals[0], 18);
  EXPECT_EQ(ctx.advanced, 18);
  int epoch_lines = 0;
  for (const auto& l : ctx.lines) epoch_lines += l.rfind("epoch ", 0) == 0;
  EXPECT_EQ(epoch_lines, 3);

  // The weights it returns give the recorded test accuracy.
  EXPECT_DOUBLE_EQ(train::evaluate(exec, arch, r.weights, data, Split::Test, 64),
                   r.record.test_accuracy);
}

TEST(Train, IsDeterministicForASeedAndHonoursMaxSteps) {
  const FakeDataset data(64, 16, 16);
  const Architecture arch = small_arch();
  GraphExecutor exec;
  auto o = quick_options();
  o.max_steps = 5;
  o.label_smoothing = 0.1;
  o.schedule = "constant";
  TestContext c1(9), c2(9), c3(10);
  const auto r1 = train::train(c1, arch, data, o, exec);
  const auto r2 = train::train(c2, arch, data, o, exec);
  const auto r3 = train::train(c3, arch, data, o, exec);
  EXPECT_EQ(r1.steps, 5);
  EXPECT_EQ(r1.record.train_loss.size(), 2u);  // 4 steps per epoch: 4 + 1
  EXPECT_EQ(r1.record.train_loss, r2.record.train_loss);
  EXPECT_EQ(r1.record.valid_accuracy, r2.record.valid_accuracy);
  for (const auto& [name, t] : r1.weights)
    EXPECT_TRUE(torch::equal(t, r2.weights.at(name))) << name;
  EXPECT_NE(r1.record.train_loss, r3.record.train_loss);
}

TEST(Train, EpochStepsSetsThePointsOfTheCurves) {
  const FakeDataset data(64, 16, 16);  // 4 steps per pass at batch 16
  GraphExecutor exec;
  auto o = quick_options();
  o.epochs = 3;
  o.epoch_steps = 6;  // longer than one pass: the epoch goes on into a new pass
  TestContext ctx(9);
  const auto r = train::train(ctx, small_arch(), data, o, exec);
  EXPECT_EQ(r.steps, 18);
  EXPECT_EQ(r.record.train_loss.size(), 3u);
  EXPECT_EQ(r.record.valid_accuracy.size(), 3u);
  EXPECT_NE(o.recipe().find("epoch_steps=6"), std::string::npos) << o.recipe();
  o.epoch_steps = 0;  // the default stays out of the recipe (older recordings still match)
  EXPECT_EQ(o.recipe().find("epoch_steps"), std::string::npos) << o.recipe();
  o.epoch_steps = 2;
  o.max_steps = 5;  // 2 + 2 + 1
  TestContext again(9);
  const auto short_run = train::train(again, small_arch(), data, o, exec);
  EXPECT_EQ(short_run.steps, 5);
  EXPECT_EQ(short_run.record.train_loss.size(), 3u);
}

TEST(Train, NanLossIsReportedWithEpochStepAndLr) {
  const FakeDataset data(32, 16, 16, 8, 1, 1.0, /*poison=*/true);
  GraphExecutor exec;
  TestContext ctx;
  auto o = quick_options();
  o.batch = 32;  // the poisoned image is in the first batch
  const std::string msg = error_of([&] { train::train(ctx, small_arch(), data, o, exec); });
  EXPECT_EQ(msg.rfind("training diverged: loss is NaN at epoch 1 step 1 (lr 0.1)", 0), 0u) << msg;
  EXPECT_TRUE(ctx.store_.trainings.empty());
}

TEST(Train, StopsWhenCancelled) {
  const FakeDataset data(64, 16, 16);
  GraphExecutor exec;
  TestContext ctx;
  ctx.cancel_after = 2;
  EXPECT_THROW(train::train(ctx, small_arch(), data, quick_options(), exec), hypernas::Cancelled);
  EXPECT_EQ(ctx.advanced, 2);
  EXPECT_TRUE(ctx.store_.trainings.empty());
}

TEST(Train, EvaluateHonoursTheLimitAndTheBatchSize) {
  const FakeDataset data(32, 40, 16);
  const Architecture arch = small_arch();
  GraphExecutor exec;
  const WeightMap w = exec.init_weights(arch, 1, torch::kCPU);
  const double all = train::evaluate(exec, arch, w, data, Split::Valid, 40);
  const double some = train::evaluate(exec, arch, w, data, Split::Valid, 10, 10);

  // By hand: batch-statistics BN over the same batches.
  torch::NoGradGuard no_grad;
  hypernas::Rng rng(0);
  hypernas::BatchOptions bo;
  bo.batch_size = 40;
  auto batch = data.batches(Split::Valid, bo, rng)->next();
  const auto logits = exec.forward(arch, w, batch->images)[0];
  EXPECT_DOUBLE_EQ(all, logits.argmax(1).eq(batch->labels).sum().item<double>() / 40.0);
  const auto first = exec.forward(arch, w, batch->images.narrow(0, 0, 10))[0];
  EXPECT_DOUBLE_EQ(some,
                   first.argmax(1).eq(batch->labels.narrow(0, 0, 10)).sum().item<double>() / 10.0);

  const FakeDataset no_valid(32, 0, 16);
  const std::string msg = error_of([&] { train::evaluate(exec, arch, w, no_valid, Split::Valid); });
  EXPECT_NE(msg.find("no valid images"), std::string::npos) << msg;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Multi-exit networks

/// Two exits at two scales: stem conv at full size with an exit (gap, linear) on it, then a
/// resample to 1/2 and a second conv with the final exit.
Architecture two_exit_arch() {
  hypernas::test::Builder b;
  const std::int64_t k = FakeDataset::kClasses;
  const auto in = b.add("input", "input", 0, k, {});
  const auto c1 = b.add("conv", "c1", k, 4, {in}, 3);
  const auto n1 = b.add("bn", "c1.bn", 4, 4, {c1});
  const auto r1 = b.add("relu", "c1.relu", 4, 4, {n1});
  const auto g0 = b.add("gap", "exit0.gap", 4, 4, {r1});
  b.add("linear", "exit0.linear", 4, k, {g0}, 0, 1, 1, 1, /*exit=*/0);
  const auto rs = b.add("resample", "down", 4, 4, {r1}, 0, 1, 1, 1, -1, /*scale=*/1);
  const auto c2 = b.add("conv", "c2", 4, 4, {rs}, 3, 1, 1, 1, -1, 1);
  const auto n2 = b.add("bn", "c2.bn", 4, 4, {c2}, 0, 1, 1, 1, -1, 1);
  const auto r2 = b.add("relu", "c2.relu", 4, 4, {n2}, 0, 1, 1, 1, -1, 1);
  const auto g1 = b.add("gap", "exit1.gap", 4, 4, {r2});
  b.add("linear", "exit1.linear", 4, k, {g1}, 0, 1, 1, 1, /*exit=*/1);
  b.arch.space = "hand";
  b.arch.text = "two-exit";
  return b.arch;
}

TEST(TrainParts, ExitWeightsParseAndRefuseBadLists) {
  EXPECT_TRUE(train::parse_exit_weights("").empty());
  EXPECT_EQ(train::parse_exit_weights("1,0.5,2"), (std::vector<double>{1, 0.5, 2}));
  for (const char* bad : {"1,,2", "-1", "a", "1,", "1;2", "nan"}) {
    const std::string e = error_of([&] { train::parse_exit_weights(bad); });
    EXPECT_NE(e.find("exit_weights"), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find(std::string("'") + bad + "'"), std::string::npos) << e;
  }
  // The option is checked when the recipe is resolved, and left out of it at its default.
  EXPECT_THROW(train::TrainOptions::from_options(Options().set("exit_weights", std::string("x"))),
               hypernas::UsageError);
  EXPECT_EQ(train::TrainOptions{}.recipe().find("exit_weights"), std::string::npos);
  train::TrainOptions w;
  w.exit_weights = "1,2";
  EXPECT_NE(w.recipe().find("exit_weights=1,2"), std::string::npos) << w.recipe();
}

TEST(TrainParts, ExitLossIsTheWeightedSumOfTheExitsCrossEntropies) {
  torch::manual_seed(3);
  const at::Tensor labels = torch::tensor({0, 2, 1, 1}, torch::kLong);
  std::vector<at::Tensor> logits;
  for (int e = 0; e < 3; ++e) logits.push_back(torch::randn({4, 3}));
  auto ce = [&](int e) {
    return torch::nn::functional::cross_entropy(logits[e], labels).item<double>();
  };
  EXPECT_NEAR(train::exit_loss(logits, labels, {}).item<double>(), ce(0) + ce(1) + ce(2), 1e-6);
  // by position, the last weight repeating
  EXPECT_NEAR(train::exit_loss(logits, labels, {2.0, 0.5}).item<double>(),
              2 * ce(0) + 0.5 * ce(1) + 0.5 * ce(2), 1e-6);
  EXPECT_NEAR(train::exit_loss({logits[1]}, labels, {}).item<double>(), ce(1), 1e-6);
  EXPECT_NEAR(train::exit_loss(logits, labels, {0.0, 0.0, 1.0}).item<double>(), ce(2), 1e-6);
}

TEST(Train, MultiExitNetworkReportsEveryExitsTestAccuracyAndFlops) {
  const FakeDataset data(96, 32, 48);
  const Architecture arch = two_exit_arch();
  GraphExecutor exec;
  TestContext ctx(2);
  const auto r = train::train(ctx, arch, data, quick_options(), exec);
  ASSERT_EQ(r.exits.size(), 2u);
  const std::vector<std::int64_t> flops = hypernas::exit_flops(arch.graph, 8);
  // exit 0: conv 3->4 3x3 at 8x8 and its linear; exit 1 adds conv 4->4 3x3 at 4x4 and a linear
  EXPECT_EQ(flops, (std::vector<std::int64_t>{4 * 3 * 9 * 64 + 3 * 4,
                                              4 * 3 * 9 * 64 + 3 * 4 + 4 * 4 * 9 * 16 + 3 * 4}));
  EXPECT_EQ(r.exits[0].flops, flops[0]);
  EXPECT_EQ(r.exits[1].flops, flops[1]);
  EXPECT_DOUBLE_EQ(r.exits.back().accuracy, r.record.test_accuracy);
  // Each exit's accuracy, recomputed from the returned weights.
  const auto plan = exec.compile(arch);
  at::Tensor images, labels;
  {
    hypernas::BatchOptions bo;
    bo.batch_size = 48;
    hypernas::Rng unused(0);
    auto batch = data.batches(Split::Test, bo, unused)->next();
    images = batch->images;
    labels = batch->labels;
  }
  {
    torch::NoGradGuard no_grad;
    const auto logits = exec.forward(*plan, r.weights, images);
    ASSERT_EQ(logits.size(), 2u);
    for (std::size_t e = 0; e < 2; ++e)
      EXPECT_DOUBLE_EQ(r.exits[e].accuracy,
                       logits[e].argmax(1).eq(labels).sum().item<double>() / 48.0)
          << e;
  }
  // Both exits learn the task (the loss reaches both heads).
  EXPECT_GT(r.exits[0].accuracy, 0.6);
  EXPECT_GT(r.exits[1].accuracy, 0.6);
  // A single-exit network reports no per-exit list.
  EXPECT_TRUE(train::train(ctx, small_arch(), data, quick_options(), exec).exits.empty());
}
