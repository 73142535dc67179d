// Tests of the `ghn` surrogate (plugins/surrogates/ghn) on multi-exit, multi-scale networks:
// the `resample` node type, exit roles, the scale and exit-role embeddings (option
// `scale_embed`) on the CPU engine and the ATen propagation, pruning that keeps early exits,
// generation of every exit head's weights, per-exit scores against an independent evaluation,
// the multi-exit training loss (option `exit_weights`), and state blobs with and without the new
// model key. Hand-made 3-exit, two-scale graphs, and sampled `anytime` architectures.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <hypernas/graph_stats.h>
#include <hypernas/hash.h>

#include "kernel/exec/executor.h"
#include "plugins/spaces/anytime/anytime.h"
#include "plugins/surrogates/ghn/ghn.h"
#include "tests/plugins/ghn/brightness_data.h"
#include "tests/plugins/ghn/ghn_support.h"
#include "tests/support/arch_builder.h"
#include "tests/support/context.h"
#include "tests/support/errors.h"

namespace {

using namespace hypernas;
using ghn::ExitRole;
using test::error_of;
using test::ghn_gradients;
using test::ghn_options;
using test::TestContext;

// ---------------------------------------------------------------------------------------------
// Fixtures: a hand-made 3-exit, two-scale network family, its space, tiny data

/// The kernel's graph executor, for the contexts of these tests.
const exec::GraphExecutor& executor() {
  static const exec::GraphExecutor exec;
  return exec;
}

constexpr std::int64_t kImage = 8;    // images are 1 x 8 x 8
constexpr std::int64_t kClasses = 2;  // two classes
constexpr std::int64_t kWidth = 8;    // channels of the body

/// A 3-exit network over two scales, 1 x 8 x 8 images, 2 classes:
///   stem (conv 3x3, bn, relu; scale 0)
///   block a (module 0, scale 0): conv a_kernel, bn, relu            -> exit 0 head off a.relu
///   block b (module 1, scale 1): conv 3x3 stride 2, bn, relu; resample of a.relu to scale 1;
///                                b.sum = add of both                -> exit 1 head off b.sum
///   block c (module 2, scale 1): conv c_kernel, bn, relu; c.sum = c.relu + b.sum
///                                                                     -> exit 2 head off c.sum
/// Each exit head (module -1, at its source's scale) is e<k>.{bn,relu,gap,linear}, linear with
/// OpNode::exit = k. The text is "a<a_kernel>c<c_kernel>".
Architecture three_exit(std::int64_t a_kernel = 3, std::int64_t c_kernel = 3) {
  test::Builder b;
  const std::int64_t w = kWidth;
  auto in_module = [&b](std::size_t v, std::int64_t m) {
    b.arch.graph[v].module = m;
    return v;
  };
  auto head = [&](const std::string& name, std::size_t from, std::int64_t exit,
                  std::int64_t scale) {
    auto bn = b.add("bn", name + ".bn", w, w, {from}, 0, 1, 1, 1, -1, scale);
    auto relu = b.add("relu", name + ".relu", w, w, {bn}, 0, 1, 1, 1, -1, scale);
    auto gap = b.add("gap", name + ".gap", w, w, {relu}, 0, 1, 1, 1, -1, scale);
    return b.add("linear", name + ".linear", w, kClasses, {gap}, 0, 1, 1, 1, exit, scale);
  };
  auto in = b.add("input", "input", 0, 1, {});
  auto stem = b.add("conv", "stem.conv", 1, w, {in}, 3);
  stem = b.add("bn", "stem.bn", w, w, {stem});
  stem = b.add("relu", "stem.relu", w, w, {stem});
  auto a = in_module(b.add("conv", "a.conv", w, w, {stem}, a_kernel), 0);
  a = in_module(b.add("bn", "a.bn", w, w, {a}), 0);
  a = in_module(b.add("relu", "a.relu", w, w, {a}), 0);
  head("e0", a, 0, 0);
  auto bc = in_module(b.add("conv", "b.conv", w, w, {a}, 3, 2, 1, 1, -1, 1), 1);
  bc = in_module(b.add("bn", "b.bn", w, w, {bc}, 0, 1, 1, 1, -1, 1), 1);
  bc = in_module(b.add("relu", "b.relu", w, w, {bc}, 0, 1, 1, 1, -1, 1), 1);
  auto rs = in_module(b.add("resample", "b.rs", w, w, {a}, 0, 1, 1, 1, -1, 1), 1);
  auto bsum = in_module(b.add("add", "b.sum", w, w, {bc, rs}, 0, 1, 1, 1, -1, 1), 1);
  head("e1", bsum, 1, 1);
  auto c = in_module(b.add("conv", "c.conv", w, w, {bsum}, c_kernel, 1, 1, 1, -1, 1), 2);
  c = in_module(b.add("bn", "c.bn", w, w, {c}, 0, 1, 1, 1, -1, 1), 2);
  c = in_module(b.add("relu", "c.relu", w, w, {c}, 0, 1, 1, 1, -1, 1), 2);
  auto csum = in_module(b.add("add", "c.sum", w, w, {c, bsum}, 0, 1, 1, 1, -1, 1), 2);
  head("e2", csum, 2, 1);
  b.arch.space = "three_exit";
  b.arch.text = cat("a", a_kernel, "c", c_kernel);
  return b.arch;
}

/// The family of three_exit() networks, kernels of blocks a and c in {1, 3, 5}.
class ThreeExitSpace final : public SearchSpace {
 public:
  std::string name() const override { return "three_exit"; }
  Architecture sample(Rng& rng) const override {
    const std::int64_t kernels[] = {1, 3, 5};
    const std::int64_t a = kernels[rng.uniform_int(3)];
    return three_exit(a, kernels[rng.uniform_int(3)]);
  }
  Architecture parse(const std::string& text) const override {
    HYPERNAS_CHECK(text.size() == 4 && text[0] == 'a' && text[2] == 'c',
                   "three_exit: cannot parse '", text, "'");
    return three_exit(text[1] - '0', text[3] - '0');
  }
  std::vector<std::string> op_vocabulary() const override {
    return {"input", "conv", "bn", "relu", "add", "gap", "linear", "resample"};
  }
  ArchStats stats(const Architecture& arch) const override {
    return count_graph(arch.graph, kImage);
  }
};

/// The GHN tests' brightness images (brightness_data.h) at this file's size and class count.
test::BrightnessData brightness(std::int64_t train, std::int64_t valid) {
  return test::BrightnessData(train, valid, kImage, kClasses, false, 1, /*seed=*/11,
                              /*noise=*/0.3);
}

std::int64_t vertex(const Architecture& a, const std::string& name) {
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(boost::num_vertices(a.graph)); ++v)
    if (a.graph[v].name == name) return v;
  ADD_FAILURE() << "no vertex " << name;
  return 0;
}

/// Checks that `weights` holds exactly the parameters `shapes` lists, with their shapes, finite.
void expect_matches(const WeightMap& weights, const std::vector<ParamShape>& shapes,
                    const std::string& what) {
  EXPECT_EQ(weights.size(), shapes.size()) << what;
  for (const ParamShape& p : shapes) {
    auto it = weights.find(p.name);
    ASSERT_NE(it, weights.end()) << what << ": missing " << p.name;
    EXPECT_EQ(it->second.sizes().vec(), p.shape) << what << ": " << p.name;
    EXPECT_TRUE(at::isfinite(it->second).all().item<bool>()) << what << ": " << p.name;
  }
}

/// Per-exit cross-entropies and numbers of correct predictions on one batch.
struct ExitEval {
  std::vector<double> ce;             ///< Mean cross-entropy of each exit.
  std::vector<std::int64_t> correct;  ///< Argmax hits of each exit.
};

/// The ExitEval of `a` with `weights` on `batch`: the executor run here, argmax per exit.
ExitEval evaluate(const Architecture& a, const WeightMap& weights, const Batch& batch) {
  ExitEval out;
  for (const at::Tensor& y : executor().forward(a, weights, batch.images)) {
    out.ce.push_back(at::cross_entropy_loss(y, batch.labels).item<double>());
    out.correct.push_back(y.argmax(1).eq(batch.labels).sum().item<std::int64_t>());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Graph analysis

TEST(GhnMultiExit, ResampleIsANodeTypeOfItsOwn) {
  OpNode rs;
  rs.op = "resample";
  rs.name = "b.rs";
  const int t = ghn::node_type(rs);
  EXPECT_EQ(t, 17);
  EXPECT_EQ(ghn::node_types().at(static_cast<std::size_t>(t)), "resample");
  // The scale key clamps to the table.
  rs.scale = 3;
  EXPECT_EQ(ghn::scale_key(rs), 3);
  rs.scale = 12;
  EXPECT_EQ(ghn::scale_key(rs), ghn::kScaleTableSize - 1);
  rs.scale = -1;
  EXPECT_EQ(ghn::scale_key(rs), 0);
}

TEST(GhnMultiExit, ExitRolesOfAHandMadeNetwork) {
  const Architecture a = three_exit();
  const std::vector<ExitRole> roles = ghn::exit_roles(a.graph);
  ASSERT_EQ(roles.size(), boost::num_vertices(a.graph));
  std::map<std::string, ExitRole> want;
  for (const char* e : {"e0", "e1", "e2"})
    for (const char* part : {".bn", ".relu", ".gap", ".linear"})
      want[cat(e, part)] = ExitRole::Head;
  // a.relu and b.sum feed their heads and the body; c.sum (the final exit's source) has two
  // inputs and another module than its head.
  for (const char* s : {"a.relu", "b.sum", "c.sum"}) want[s] = ExitRole::Source;
  for (std::int64_t v = 0; v < static_cast<std::int64_t>(roles.size()); ++v) {
    const std::string& name = a.graph[v].name;
    const ExitRole expected = want.count(name) ? want.at(name) : ExitRole::None;
    EXPECT_EQ(static_cast<int>(roles[v]), static_cast<int>(expected)) << name;
  }

  // A head whose source feeds nothing else: input -> conv -> bn -> head. With the body in a
  // module (as the anytime space and nb201 build them), the walk stops at the module border;
  // without modules, it goes on through the single-input, single-output chain to the input.
  test::Builder b;
  auto in = b.add("input", "input", 0, 1, {});
  auto conv = b.add("conv", "conv", 1, 4, {in}, 3);
  auto bn = b.add("bn", "bn", 4, 4, {conv});
  auto hbn = b.add("bn", "h.bn", 4, 4, {bn});
  auto hrelu = b.add("relu", "h.relu", 4, 4, {hbn});
  auto gap = b.add("gap", "h.gap", 4, 4, {hrelu});
  auto linear = b.add("linear", "h.linear", 4, 2, {gap}, 0, 1, 1, 1, /*exit=*/0);
  const std::vector<ExitRole> flat = ghn::exit_roles(b.arch.graph);
  for (std::size_t v : {conv, bn, hbn, hrelu, gap, linear})
    EXPECT_EQ(flat[v], ExitRole::Head) << b.arch.graph[v].name;
  EXPECT_EQ(flat[in], ExitRole::Source);
  b.arch.graph[conv].module = 0;
  b.arch.graph[bn].module = 0;
  const std::vector<ExitRole> cut = ghn::exit_roles(b.arch.graph);
  EXPECT_EQ(cut[in], ExitRole::None);
  EXPECT_EQ(cut[conv], ExitRole::None);
  EXPECT_EQ(cut[bn], ExitRole::Source);
  for (std::size_t v : {hbn, hrelu, gap, linear}) EXPECT_EQ(cut[v], ExitRole::Head);
  // No exits (a linear without OpNode::exit): no roles.
  b.arch.graph[linear].exit = -1;
  for (ExitRole r : ghn::exit_roles(b.arch.graph)) EXPECT_EQ(r, ExitRole::None);
}

TEST(GhnMultiExit, PruneKeepsEarlyExitHeads) {
  // An early exit does not reach the last vertex, but it is an output: its head keeps its edges
  // (a GHN that took only the last vertex as the output isolated e0 and e1 entirely).
  const Architecture a = three_exit();
  const ghn::GraphView view = ghn::prune_graph(a.graph);
  auto node = [&](const std::string& name) { return view.vertex_of.at(vertex(a, name)); };
  for (const char* e : {"e0", "e1", "e2"}) {
    for (const char* part : {".bn", ".relu", ".gap", ".linear"})
      EXPECT_EQ(boost::in_degree(node(cat(e, part)), view.graph), 1u) << e << part;
    EXPECT_EQ(view.graph[node(cat(e, ".linear"))].exit, a.graph[vertex(a, cat(e, ".linear"))].exit);
  }
  // a.relu feeds e0's head, b's conv and the resample; the bn after b's conv is folded into it.
  EXPECT_EQ(boost::out_degree(node("a.relu"), view.graph), 3u);
  EXPECT_EQ(node("b.bn"), node("b.conv"));
}

// ---------------------------------------------------------------------------------------------
// Scale and exit-role embeddings

TEST(GhnMultiExit, ScaleEmbeddingsAreLearnedAndTellScalesAndRolesApart) {
  const Architecture a = three_exit();
  // steps = 0, unstacked: the initial states themselves. a.bn (scale 0) and c.bn (scale 1) are
  // the same type and shape; a.relu (exit source) and e0.relu (exit head) too, at scale 0.
  auto gap = [&](bool scale_embed, const char* x, const char* y) {
    GhnSurrogate ghn(ghn_options(
        {{"stacked", false}, {"scale_embed", scale_embed}, {"steps", std::int64_t{0}}}));
    const at::Tensor e = ghn.node_embeddings(a);
    return (e[vertex(a, x)] - e[vertex(a, y)]).abs().max().item<double>();
  };
  EXPECT_EQ(gap(false, "a.bn", "c.bn"), 0.0);
  EXPECT_GT(gap(true, "a.bn", "c.bn"), 1e-3);
  EXPECT_EQ(gap(false, "a.relu", "e0.relu"), 0.0);
  EXPECT_GT(gap(true, "a.relu", "e0.relu"), 1e-3);
  // Gradients reach the rows that are used (scales 0 and 1, every role), and only those.
  GhnSurrogate ghn(ghn_options({{"scale_embed", true}, {"steps", std::int64_t{2}}}));
  const auto grads = ghn_gradients(ghn, {&a});
  ASSERT_TRUE(grads.count("scale.level"));
  ASSERT_TRUE(grads.count("scale.exit_role"));
  const at::Tensor level = grads.at("scale.level").abs().sum(1);
  const at::Tensor role = grads.at("scale.exit_role").abs().sum(1);
  ASSERT_EQ(level.size(0), ghn::kScaleTableSize);
  ASSERT_EQ(role.size(0), ghn::kExitRoleCount);
  for (std::int64_t s = 0; s < ghn::kScaleTableSize; ++s) {
    if (s <= 1) {
      EXPECT_GT(level[s].item<double>(), 0.0) << "scale " << s;
    } else {
      EXPECT_EQ(level[s].item<double>(), 0.0) << "scale " << s;
    }
  }
  for (std::int64_t r = 0; r < ghn::kExitRoleCount; ++r)
    EXPECT_GT(role[r].item<double>(), 0.0) << "role " << r;
  // A model option: a state saved with the tables does not load into a GHN without them.
  GhnSurrogate without(ghn_options({{"steps", std::int64_t{2}}}));
  const std::string e = error_of([&] { without.load_state(ghn.save_state()); });
  EXPECT_NE(e.find("scale_embed"), std::string::npos) << e;
}

TEST(GhnMultiExit, CpuEngineEqualsAtenPropagationWithScaleEmbed) {
  // The CPU engine's hand-written backward returns the initial states' gradient to the new
  // tables as the ATen propagation's autograd does: embeddings and every gradient agree.
  const Architecture a = three_exit(3, 5), b = three_exit(1, 3);
  const std::vector<std::map<std::string, Value>> variants = {
      {{"scale_embed", true}},
      {{"scale_embed", true}, {"stacked", false}},
      {{"scale_embed", true}, {"prune", true}},
      {{"scale_embed", true}, {"shape_embed", true}, {"propagation", std::string("synchronous")}},
      {{"scale_embed", true}, {"virtual_edges", true}, {"handoff", std::string("all")}},
  };
  test::expect_cpu_engine_equals_aten(
      variants, a, b,
      [](const std::string& what, const std::map<std::string, at::Tensor>& our_grad) {
        EXPECT_GT(our_grad.at("scale.exit_role").abs().sum().item<double>(), 0.0) << what;
      });
}

// ---------------------------------------------------------------------------------------------
// Generation and scoring

TEST(GhnMultiExit, GeneratesEveryParameterOfAThreeExitNetwork) {
  TestContext ctx(1, &executor());
  const ThreeExitSpace space;
  const Architecture a = three_exit(5, 1);
  const std::vector<ParamShape> shapes = executor().parameters(a);
  // The exit heads' parameters are among them.
  std::set<std::string> names;
  for (const ParamShape& p : shapes) names.insert(p.name);
  for (const char* e : {"e0", "e1", "e2"})
    for (const char* p : {".bn.weight", ".bn.bias", ".linear.weight", ".linear.bias"})
      EXPECT_TRUE(names.count(cat(e, p))) << e << p;
  for (const auto& o : std::vector<std::map<std::string, Value>>{
           {},
           {{"scale_embed", true}},
           {{"scale_embed", true}, {"prune", true}},
           {{"scale_embed", true}, {"stacked", false}, {"shape_embed", true}}}) {
    GhnSurrogate ghn(ghn_options(o));
    const WeightMap w = ghn.generate(ctx, a, space);
    expect_matches(w, shapes, a.text);
    // The network runs with them: one finite [N, classes] logits tensor per exit.
    const auto logits = executor().forward(a, w, at::randn({3, 1, kImage, kImage}));
    ASSERT_EQ(logits.size(), 3u);
    for (const at::Tensor& y : logits) {
      EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, kClasses}));
      EXPECT_TRUE(at::isfinite(y).all().item<bool>());
    }
  }
}

TEST(GhnMultiExit, ScoreGivesEveryExitFromOneEvaluation) {
  TestContext ctx(1, &executor());
  const ThreeExitSpace space;
  const test::BrightnessData data = brightness(64, 40);
  const Architecture a = three_exit(3, 5), b = three_exit(1, 1);
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.archs = {&a, &b};
  sr.batch_size = 10;
  sr.max_images = 30;
  for (bool loss_metric : {false, true}) {
    GhnSurrogate ghn(
        ghn_options({{"scale_embed", true},
                     {"steps", std::int64_t{1}},
                     {"score_metric", std::string(loss_metric ? "loss" : "accuracy")}}));
    const std::vector<Score> scores = ghn.score(ctx, sr);
    ASSERT_EQ(scores.size(), 2u);
    // The same weights as score() generates (one batch of both architectures), evaluated here
    // on the same 30 images in the same batches of 10.
    const auto weights =
        ghn.generate_batch({&a, &b}, {executor().parameters(a), executor().parameters(b)});
    for (std::size_t k = 0; k < 2; ++k) {
      const Architecture& arch = *sr.archs[k];
      const Score& s = scores[k];
      ASSERT_EQ(s.exits.size(), 3u) << arch.text;
      const std::vector<std::int64_t> flops = exit_flops(arch.graph, kImage);
      std::vector<std::int64_t> correct(3, 0);
      double final_loss = 0;
      BatchOptions bo;
      bo.batch_size = 10;
      bo.limit = 30;
      auto stream = data.batches(Split::Valid, bo);
      while (auto batch = stream->next()) {
        const ExitEval e = evaluate(arch, weights[k], *batch);
        for (std::size_t x = 0; x < 3; ++x) correct[x] += e.correct[x];
        final_loss += e.ce[2] * static_cast<double>(batch->labels.size(0));
      }
      final_loss /= 30.0;
      for (std::size_t x = 0; x < 3; ++x) {
        EXPECT_EQ(s.exits[x].flops, flops[x]) << arch.text << " exit " << x;
        EXPECT_EQ(s.exits[x].accuracy, static_cast<double>(correct[x]) / 30.0)
            << arch.text << " exit " << x;
      }
      EXPECT_LT(s.exits[0].flops, s.exits[1].flops);
      EXPECT_LT(s.exits[1].flops, s.exits[2].flops);
      // The ranking value is still the final (highest) exit's.
      EXPECT_EQ(s.extra.at("accuracy"), s.exits[2].accuracy);
      EXPECT_NEAR(s.extra.at("loss"), final_loss, 1e-6);
      EXPECT_EQ(s.value, loss_metric ? -s.extra.at("loss") : s.exits[2].accuracy);
    }
  }
  // Fine-tuning first trains on every exit; the scores keep all three, deterministically.
  GhnSurrogate tuned(ghn_options({{"scale_embed", true},
                                  {"steps", std::int64_t{1}},
                                  {"finetune_steps", std::int64_t{3}},
                                  {"finetune_lr", 0.05}}));
  sr.archs = {&a};
  const std::vector<Score> first = tuned.score(ctx, sr), again = tuned.score(ctx, sr);
  ASSERT_EQ(first.at(0).exits.size(), 3u);
  for (std::size_t x = 0; x < 3; ++x) {
    EXPECT_EQ(first[0].exits[x].accuracy, again.at(0).exits.at(x).accuracy);
    EXPECT_EQ(first[0].exits[x].flops, exit_flops(a.graph, kImage)[x]);
  }
  EXPECT_TRUE(std::isfinite(first[0].extra.at("loss")));
}

// ---------------------------------------------------------------------------------------------
// Training

TEST(GhnMultiExit, ExitWeightsParseOrSayWhatIsWrong) {
  EXPECT_TRUE(ghn::parse_exit_weights("").empty());
  EXPECT_TRUE(ghn::parse_exit_weights("  ").empty());
  EXPECT_EQ(ghn::parse_exit_weights("1"), (std::vector<double>{1.0}));
  EXPECT_EQ(ghn::parse_exit_weights(" 0.25, 0.5 ,1e0"), (std::vector<double>{0.25, 0.5, 1.0}));
  EXPECT_EQ(ghn::parse_exit_weights("0,2"), (std::vector<double>{0.0, 2.0}));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"a", "item 1 ('a'"},     {"1,,2", "item 2 (''"},   {"1,", "item 2"},
      {"-1", "item 1 ('-1'"},   {"0.5,nan", "item 2"},    {"inf", "item 1"},
      {"1 2", "item 1 ('1 2'"}, {"1;2", "item 1 ('1;2'"}, {"0.5,1x", "item 2 ('1x'"},
  };
  for (const auto& [text, where] : bad) {
    EXPECT_THROW(ghn::parse_exit_weights(text), UsageError) << text;
    const std::string e = error_of([&] { ghn::parse_exit_weights(text); });
    EXPECT_NE(e.find("exit_weights"), std::string::npos) << e;
    EXPECT_NE(e.find("'" + text + "'"), std::string::npos) << e;
    EXPECT_NE(e.find(where), std::string::npos) << text << ": " << e;
  }
  // The surrogate refuses a malformed list when it is made.
  EXPECT_THROW(GhnSurrogate(ghn_options({{"exit_weights", std::string("0.5,x")}})), UsageError);
  EXPECT_NO_THROW(GhnSurrogate(ghn_options({{"exit_weights", std::string("0.5,1")}})));
}

TEST(GhnMultiExit, ExitLossIsTheMeanOrTheWeightedSum) {
  at::manual_seed(5);
  const at::Tensor labels = at::randint(kClasses, {6}, at::kLong);
  std::vector<at::Tensor> logits;
  std::vector<double> ce;
  for (int k = 0; k < 3; ++k) {
    logits.push_back(at::randn({6, kClasses}));
    ce.push_back(at::cross_entropy_loss(logits.back(), labels).item<double>());
  }
  // One exit: its cross-entropy, exactly (single-exit training is unchanged).
  EXPECT_EQ(ghn::exit_loss({logits[0]}, labels, {}).item<double>(), ce[0]);
  EXPECT_NEAR(ghn::exit_loss(logits, labels, {}).item<double>(), (ce[0] + ce[1] + ce[2]) / 3, 1e-6);
  // Weights by position, the last repeating.
  EXPECT_NEAR(ghn::exit_loss(logits, labels, {0.2, 0.3}).item<double>(),
              0.2 * ce[0] + 0.3 * ce[1] + 0.3 * ce[2], 1e-6);
  EXPECT_NEAR(ghn::exit_loss(logits, labels, {1, 2, 3, 4}).item<double>(),
              ce[0] + 2 * ce[1] + 3 * ce[2], 1e-5);
  EXPECT_THROW(ghn::exit_loss({}, labels, {}), Error);
}

TEST(GhnMultiExit, FitTrainsOnEveryExit) {
  const ThreeExitSpace space;
  const test::BrightnessData data = brightness(64, 16);
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.max_steps = 1;
  // The first step's loss is the mean of the exits' cross-entropies (or their weighted sum) of
  // the architecture and batch fit draws, computed here from the same draws: the training batch
  // first (the stream shuffles with the context's Rng), then the architecture.
  for (const std::string& weights : {std::string(), std::string("0.2,0.3")}) {
    GhnSurrogate ghn(ghn_options(
        {{"scale_embed", true}, {"steps", std::int64_t{1}}, {"exit_weights", weights}}));
    Rng rng(21);
    BatchOptions bo;
    bo.batch_size = 16;
    bo.shuffle = true;
    bo.augment = true;
    bo.drop_last = true;
    const Batch batch = *data.batches(Split::Train, bo, rng)->next();
    const Architecture arch = space.sample(rng);
    const WeightMap w = ghn.generate_batch({&arch}, {executor().parameters(arch)})[0];
    const ExitEval e = evaluate(arch, w, batch);
    ASSERT_EQ(e.ce.size(), 3u);
    const double want = weights.empty() ? (e.ce[0] + e.ce[1] + e.ce[2]) / 3.0
                                        : 0.2 * e.ce[0] + 0.3 * e.ce[1] + 0.3 * e.ce[2];
    TestContext ctx(21, &executor());
    ghn.fit(ctx, fr);
    ASSERT_EQ(ghn.loss_curve().size(), 1u);
    EXPECT_NEAR(ghn.loss_curve()[0], want, 1e-5 * want) << "exit_weights '" << weights << "'";
    // Not just the final exit's.
    EXPECT_GT(std::abs(ghn.loss_curve()[0] - e.ce[2]), 1e-4);
  }
  // The gradient of that loss reaches every exit head's generated weights (and none of the
  // heads whose weight is 0).
  const Architecture a = three_exit(3, 5);
  const at::Tensor images = at::randn({8, 1, kImage, kImage});
  const at::Tensor labels = at::randint(kClasses, {8}, at::kLong);
  GhnSurrogate ghn(ghn_options({{"scale_embed", true}, {"steps", std::int64_t{1}}}));
  auto head_grads = [&](const std::vector<double>& weights) {
    WeightMap w = ghn.generate_batch({&a}, {executor().parameters(a)}, true)[0];
    for (auto& [name, t] : w) t.retain_grad();
    ghn::exit_loss(executor().forward(a, w, images), labels, weights).backward();
    std::vector<double> out;
    for (const char* e : {"e0", "e1", "e2"}) {
      const at::Tensor& g = w.at(cat(e, ".linear.weight")).grad();
      out.push_back(g.defined() ? g.abs().sum().item<double>() : 0.0);
    }
    return out;
  };
  for (double g : head_grads({})) EXPECT_GT(g, 0.0);
  const std::vector<double> first_only = head_grads({1, 0});
  EXPECT_GT(first_only[0], 0.0);
  EXPECT_EQ(first_only[1], 0.0);
  EXPECT_EQ(first_only[2], 0.0);
  // A few steps of fit on the family stay finite and move the GHN, the new tables included.
  GhnSurrogate trained(ghn_options(
      {{"scale_embed", true}, {"steps", std::int64_t{1}}, {"meta_batch", std::int64_t{2}}}));
  std::map<std::string, at::Tensor> before;
  for (const auto& [name, t] : trained.named_parameters()) before[name] = t.detach().clone();
  TestContext ctx(4, &executor());
  fr.max_steps = 4;
  trained.fit(ctx, fr);
  ASSERT_EQ(trained.loss_curve().size(), 4u);
  for (double l : trained.loss_curve()) EXPECT_TRUE(std::isfinite(l));
  for (const auto& [name, t] : trained.named_parameters()) {
    EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << name;
    if (name.rfind("scale.", 0) == 0) {
      EXPECT_FALSE(at::equal(t.detach(), before.at(name))) << name;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// State

TEST(GhnMultiExit, StateRoundTripWithScaleEmbedGivesIdenticalScores) {
  TestContext ctx(3, &executor());
  const ThreeExitSpace space;
  const test::BrightnessData data = brightness(48, 20);
  GhnSurrogate a(ghn_options({{"scale_embed", true}, {"steps", std::int64_t{1}}}));
  FitRequest fr;
  fr.space = &space;
  fr.data = &data;
  fr.batch_size = 16;
  fr.max_steps = 2;
  a.fit(ctx, fr);
  GhnSurrogate b(ghn_options(
      {{"scale_embed", true}, {"steps", std::int64_t{1}}, {"init_seed", std::int64_t{99}}}));
  const Architecture arch = three_exit(5, 3);
  EXPECT_FALSE(at::equal(a.node_embeddings(arch), b.node_embeddings(arch)));
  b.load_state(a.save_state());
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.archs = {&arch};
  sr.batch_size = 10;
  const Score sa = a.score(ctx, sr).at(0), sb = b.score(ctx, sr).at(0);
  EXPECT_EQ(sa.value, sb.value);
  EXPECT_EQ(sa.extra.at("loss"), sb.extra.at("loss"));
  ASSERT_EQ(sa.exits.size(), 3u);
  ASSERT_EQ(sb.exits.size(), 3u);
  for (std::size_t x = 0; x < 3; ++x) {
    EXPECT_EQ(sa.exits[x].accuracy, sb.exits[x].accuracy) << x;
    EXPECT_EQ(sa.exits[x].flops, sb.exits[x].flops) << x;
  }
  EXPECT_TRUE(at::equal(a.node_embeddings(arch), b.node_embeddings(arch)));
}

constexpr std::size_t kHeader = 8 + 4 + 8 + 8;  // magic, version, payload size, checksum

/// The model signature of a GHN state blob (the payload's first string).
std::string signature_of(const std::string& blob) {
  std::uint64_t length = 0;
  std::memcpy(&length, blob.data() + kHeader, 8);
  return blob.substr(kHeader + 8, length);
}

/// `blob` (a GHN state) with `entry` (",key=value") cut from its model signature, re-framed
/// (payload size and checksum), as a build before that model key existed wrote it.
std::string without_signature_entry(const std::string& blob, const std::string& entry) {
  std::string signature = signature_of(blob);
  const std::size_t length = signature.size();
  const std::size_t at = signature.find(entry);
  EXPECT_NE(at, std::string::npos) << signature;
  if (at == std::string::npos) return blob;
  signature.erase(at, entry.size());
  std::string payload(8, '\0');
  const std::uint64_t new_length = signature.size();
  std::memcpy(payload.data(), &new_length, 8);
  payload += signature + blob.substr(kHeader + 8 + length);
  std::string out = blob.substr(0, 12);  // magic and format version as they were
  const std::uint64_t size = payload.size();
  // The checksum basis of GHN blobs (ghn.cpp's kChecksumBasis).
  const std::uint64_t checksum = fnv1a64(payload, 1469598103934665603ull);
  out.append(reinterpret_cast<const char*>(&size), 8);
  out.append(reinterpret_cast<const char*>(&checksum), 8);
  return out + payload;
}

TEST(GhnMultiExit, AStateSavedBeforeScaleEmbedStillLoads) {
  // States written before option scale_embed existed lack the key: they mean scale_embed =
  // false and load into such a GHN (and not into one with the tables).
  GhnSurrogate old(ghn_options({{"steps", std::int64_t{1}}, {"init_seed", std::int64_t{3}}}));
  const std::string blob = without_signature_entry(old.save_state(), ",scale_embed=false");
  ASSERT_NE(signature_of(old.save_state()).find("scale_embed=false"), std::string::npos);
  ASSERT_EQ(signature_of(blob).find("scale_embed"), std::string::npos) << signature_of(blob);
  const Architecture arch = three_exit();
  GhnSurrogate now(ghn_options({{"steps", std::int64_t{1}}}));
  EXPECT_FALSE(at::equal(now.node_embeddings(arch), old.node_embeddings(arch)));
  EXPECT_NO_THROW(now.load_state(blob));
  EXPECT_TRUE(at::equal(now.node_embeddings(arch), old.node_embeddings(arch)));
  GhnSurrogate with(ghn_options({{"steps", std::int64_t{1}}, {"scale_embed", true}}));
  const std::string e = error_of([&] { with.load_state(blob); });
  EXPECT_NE(e.find("scale_embed=false (here true)"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// The `anytime` space

TEST(GhnMultiExit, SampledAnytimeArchitectures) {
  Options o;
  o.set("nodes", std::string("4,3")).set("channels", std::int64_t{4});
  o.set("input_channels", std::int64_t{1}).set("input_size", kImage);
  o.set("classes", kClasses).set("exit_prob", 0.5);
  const AnytimeSpace space(AnytimeSpace::params().resolve(o, "anytime"));
  TestContext ctx(1, &executor());
  const test::BrightnessData data = brightness(16, 12);
  GhnSurrogate ghn(ghn_options({{"scale_embed", true}, {"steps", std::int64_t{1}}}));
  Rng rng(2019);
  std::vector<Architecture> archs;
  for (int i = 0; i < 4; ++i) archs.push_back(space.sample(rng));
  ScoreRequest sr;
  sr.space = &space;
  sr.data = &data;
  sr.batch_size = 12;
  for (const Architecture& a : archs) sr.archs.push_back(&a);
  const std::vector<Score> scores = ghn.score(ctx, sr);
  ASSERT_EQ(scores.size(), archs.size());
  for (std::size_t k = 0; k < archs.size(); ++k) {
    const Architecture& a = archs[k];
    // Every parameter, the exit heads' included.
    expect_matches(ghn.generate(ctx, a, space), executor().parameters(a), a.text);
    // Roles: each exit head is its four nodes, hanging off its cell node (module border).
    const std::vector<ExitRole> roles = ghn::exit_roles(a.graph);
    std::int64_t exits = 0, heads = 0, sources = 0;
    for (std::int64_t v = 0; v < static_cast<std::int64_t>(roles.size()); ++v) {
      exits += a.graph[v].exit >= 0 ? 1 : 0;
      heads += roles[v] == ExitRole::Head ? 1 : 0;
      sources += roles[v] == ExitRole::Source ? 1 : 0;
      if (roles[v] == ExitRole::Head) {
        EXPECT_NE(a.graph[v].name.find(".exit."), std::string::npos) << a.graph[v].name;
      }
      if (roles[v] == ExitRole::Source) {
        EXPECT_GE(a.graph[v].module, 0) << a.graph[v].name;
      }
    }
    EXPECT_GE(exits, 1) << a.text;
    EXPECT_EQ(heads, 4 * exits) << a.text;
    EXPECT_EQ(sources, exits) << a.text;  // one exit per node at most
    // One score per exit, with exit_flops() at the images' size.
    const std::vector<std::int64_t> flops = exit_flops(a.graph, kImage);
    ASSERT_EQ(scores[k].exits.size(), flops.size()) << a.text;
    for (std::size_t x = 0; x < flops.size(); ++x) {
      EXPECT_EQ(scores[k].exits[x].flops, flops[x]) << a.text;
      EXPECT_GE(scores[k].exits[x].accuracy, 0.0);
      EXPECT_LE(scores[k].exits[x].accuracy, 1.0);
    }
    EXPECT_EQ(scores[k].value, scores[k].exits.back().accuracy);
  }
}

}  // namespace
