// Tests of the `sgd` surrogate (plugins/surrogates/sgd): on a tiny synthetic task it ranks a
// network that can learn above one that cannot, it is repeatable for a seed, and it reports
// what it lacks. The kernel's context lends it the graph executor (RunServices::executor).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <hypernas/plugin.h>
#include <hypernas/surrogate.h>

#include "kernel/core/context.h"
#include "kernel/exec/executor.h"
#include "kernel/graph/serialize.h"
#include "kernel/session/evaluation.h"
#include "plugins/spaces/nb201/nb201.h"
#include "tests/kernel/train/FakeDataset.h"
#include "tests/support/errors.h"

namespace hypernas_plugin_export {
const hypernas::PluginDescriptor* descriptor();  // defined by HYPERNAS_PLUGIN in sgd_surrogate.cpp
}

namespace {

using hypernas::Architecture;
using hypernas::Options;
using hypernas::Score;
using hypernas::ScoreRequest;
using hypernas::Surrogate;
using hypernas::test::FakeDataset;
namespace nb201 = hypernas::nb201;

const std::string kConvCell =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";
const std::string kAllNone = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";

Architecture small_arch(const std::string& text) {
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

std::unique_ptr<Surrogate> make(const Options& given) {
  const auto* d = hypernas_plugin_export::descriptor();
  std::string error;
  const Options resolved = d->params().resolve(given, "sgd");
  std::unique_ptr<hypernas::Plugin> p(d->create(resolved, &error));
  EXPECT_NE(p, nullptr) << error;
  auto* s = dynamic_cast<Surrogate*>(p.get());
  if (s) p.release();
  return std::unique_ptr<Surrogate>(s);
}

Options quick() {
  Options o;
  o.set("steps", std::int64_t{24}).set("batch", std::int64_t{16}).set("lr", 0.1);
  return o;
}

/// A kernel context over `services` whose executor is the kernel's GraphExecutor.
struct Kernel {
  explicit Kernel(std::uint64_t seed, bool with_executor = true)
      : services(make_services(seed, with_executor)), ctx(services, "sgd") {}
  hypernas::core::RunServices make_services(std::uint64_t seed, bool with_executor) {
    hypernas::core::RunServices s;
    s.seed = seed;
    s.store = &store;
    s.executor = with_executor ? &exec : nullptr;  // what the Lua host is to pass
    return s;
  }
  hypernas::exec::GraphExecutor exec;
  hypernas::test::MemoryStore store;
  hypernas::core::RunServices services;  // KernelContext keeps a reference to it
  hypernas::core::KernelContext ctx;
};

/// Scores `archs` as the kernel's evaluation service would: one seed per architecture, derived
/// from the run's seed and the architecture.
std::vector<Score> score(Surrogate& s, Kernel& k, const FakeDataset& data,
                         const std::vector<const Architecture*>& archs,
                         std::int64_t max_images = 0) {
  ScoreRequest r;
  r.data = &data;
  r.archs = archs;
  r.batch_size = 32;
  r.max_images = max_images;
  for (const Architecture* a : archs)
    r.seeds.push_back(
        hypernas::session::evaluation_seed(k.services.seed, hypernas::graph::arch_hash(*a)));
  return s.score(k.ctx, r);
}

using hypernas::test::error_of;

TEST(SgdSurrogate, DescriptorAndOptions) {
  const auto* d = hypernas_plugin_export::descriptor();
  EXPECT_STREQ(d->name, "sgd");
  EXPECT_EQ(d->kind, static_cast<std::uint32_t>(hypernas::PluginKind::Surrogate));
  const Options o = d->params().resolve({}, "sgd");
  EXPECT_EQ(o.get_int("steps"), 50);
  EXPECT_EQ(o.get_int("batch"), 64);
  EXPECT_DOUBLE_EQ(o.get_real("lr"), 0.05);
  EXPECT_EQ(o.get_int("eval_images"), 1000);
  auto s = make({});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->capabilities(), hypernas::kNeedsData | hypernas::kUsesSeed |
                                   hypernas::kReadsEvalBatch | hypernas::kReadsEvalImages);
  EXPECT_EQ(s->capabilities() & hypernas::kTrainable, 0u);
}

TEST(SgdSurrogate, RanksALearningNetworkAboveOneThatCannotLearn) {
  const FakeDataset data(96, 48, 8);
  const Architecture conv = small_arch(kConvCell);
  const Architecture none = small_arch(kAllNone);
  auto s = make(quick());
  Kernel k(3);
  const auto scores = score(*s, k, data, {&conv, &none});
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_GT(scores[0].value, 0.7);
  EXPECT_LT(scores[1].value, 0.5);  // constant logits: the share of one class (1/3)
  EXPECT_DOUBLE_EQ(scores[0].extra.at("accuracy"), scores[0].value);
  EXPECT_EQ(scores[0].extra.at("steps"), 24.0);
  EXPECT_EQ(scores[0].extra.at("images"), 48.0);
  EXPECT_EQ(scores[0].extra.at("diverged"), 0.0);
  EXPECT_GT(scores[0].extra.at("train_loss"), 0.0);
}

TEST(SgdSurrogate, IsDeterministicForASeedAndHonoursMaxImages) {
  const FakeDataset data(64, 40, 8);
  const Architecture conv = small_arch(kConvCell);
  Options o = quick();
  o.set("steps", std::int64_t{6});
  auto s1 = make(o);
  auto s2 = make(o);
  auto s3 = make(o);
  Kernel k1(7), k2(7), k3(8);
  const auto a = score(*s1, k1, data, {&conv}, 20);
  const auto b = score(*s2, k2, data, {&conv}, 20);
  const auto c = score(*s3, k3, data, {&conv}, 20);
  EXPECT_EQ(a[0].value, b[0].value);
  EXPECT_EQ(a[0].extra.at("train_loss"), b[0].extra.at("train_loss"));
  EXPECT_NE(a[0].extra.at("train_loss"), c[0].extra.at("train_loss"));
  EXPECT_EQ(a[0].extra.at("images"), 20.0);
  // The seed is the evaluation's, not a stream's: scoring again gives the same, and so does a
  // request with other architectures before it.
  const auto again = score(*s1, k1, data, {&conv}, 20);
  EXPECT_EQ(again[0].extra.at("train_loss"), a[0].extra.at("train_loss"));
  const Architecture none = small_arch(kAllNone);
  const auto after = score(*s1, k1, data, {&none, &conv}, 20);
  EXPECT_EQ(after[1].extra.at("train_loss"), a[0].extra.at("train_loss"));
  // A request without seeds (a host of ABI 1.0) is a clear error.
  ScoreRequest bare;
  bare.data = &data;
  bare.archs = {&conv};
  EXPECT_NE(error_of([&] { s1->score(k1.ctx, bare); }).find("one seed per architecture"),
            std::string::npos);
}

TEST(SgdSurrogate, ReportsAMissingExecutorOrDataset) {
  const FakeDataset data(32, 16, 8);
  const FakeDataset no_valid(32, 0, 8);
  const Architecture conv = small_arch(kConvCell);
  auto s = make(quick());
  Kernel bare(1, /*with_executor=*/false);
  std::string msg = error_of([&] { score(*s, bare, data, {&conv}); });
  EXPECT_NE(msg.find("no graph executor"), std::string::npos) << msg;

  Kernel k(1);
  ScoreRequest r;
  r.archs = {&conv};
  msg = error_of([&] { s->score(k.ctx, r); });
  EXPECT_NE(msg.find("needs a dataset"), std::string::npos) << msg;
  msg = error_of([&] { score(*s, k, no_valid, {&conv}); });
  EXPECT_NE(msg.find("no validation split"), std::string::npos) << msg;
}

}  // namespace
