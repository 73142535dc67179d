// Benchmark: the `ghn` surrogate (plugins/surrogates/ghn) against plain training and inference
// of the same networks, at NAS-Bench-201 sizes N=1, C=8 and N=5, C=16 (3x32x32 inputs, 10
// classes): weight generation (with and without propagation), generation + backward, a whole
// fit step (batch 64, with Adam) against a plain SGD step, and score() on 256 images against
// plain inference (--mode=table); and generation of every weight of the DARTS genotype at
// C=16, 8 cells, ppuda's example network (--mode=darts; bench/ppuda_timing.py times ppuda's
// GHN-1 and GHN-2 on the same network). Each figure is the minimum wall time over several
// architectures and repetitions (after one warm-up call): the machine is shared, and the
// minimum is the least disturbed run. Prints a markdown table and the command that reproduces
// it.
//
// Two more modes, for profilers (perf record / perf stat ...), print only their own time:
//   --mode=fit-loop  ten fit steps, 1 LibTorch thread
//   --mode=ghn-loop  generation with gradient history and backpropagation, --loops times
//                    (default 20) on one network with --steps propagation steps (default 5),
//                    1 LibTorch thread
//
// Usage: hypernas_bench_ghn_timing [--mode=table|darts|fit-loop|ghn-loop] [--threads=2]
//                                  [--steps=5] [--loops=20]
// Data are synthetic pixels through the kernel's ImageDataset (timings do not depend on them).

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "kernel/exec/executor.h"
#include "plugins/spaces/darts/darts.h"
#include "plugins/spaces/nb201/nb201.h"
#include "plugins/surrogates/ghn/ghn.h"

namespace {

using namespace hypernas;

const char* kCell = bench::kExampleCell;

/// The value of `--name=value` in argv, or `def`.
std::string flag(int argc, char** argv, const char* name, const std::string& def) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  return def;
}

/// The ghn surrogate's options: its defaults with `given` on top.
Options ghn_options(const std::map<std::string, Value>& given = {}) {
  Options o;
  for (const auto& [k, v] : given) o.set(k, v);
  return GhnSurrogate::params().resolve(o, "ghn");
}

/// Minimum wall time in ms of `f(i)` over `reps` calls (after one warm-up call).
double min_ms(const std::function<void(int)>& f, int reps) {
  f(0);
  double best = 1e30;
  for (int i = 1; i <= reps; ++i) best = std::min(best, 1e3 * bench::time_of([&] { f(i); }));
  return best;
}

/// The services of a run with a store that keeps nothing and the graph executor.
core::RunServices services_of(ResultStore& store, const Executor& exec) {
  core::RunServices s;
  s.store = &store;
  s.executor = &exec;
  s.seed = 1;
  return s;
}

/// The kernel's context for the `ghn` plugin over services_of().
struct Kernel {
  bench::NullStore store;
  exec::GraphExecutor exec;
  core::RunServices services = services_of(store, exec);
  core::KernelContext ctx{services, "ghn"};
};

void print_row(const std::string& what, double ms) {
  std::printf("| %s | %.2f |\n", what.c_str(), ms);
  std::fflush(stdout);
}

/// The nb201 space of a speed row: N cells per stage, C channels, 3x32x32 inputs, 10 classes.
Nb201Space nb201_space(std::int64_t n, std::int64_t c) {
  Options o;
  o.set("cells_per_stage", n).set("channels", c);
  o.set("input_channels", std::int64_t{3}).set("input_size", std::int64_t{32});
  o.set("classes", std::int64_t{10});
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
}

/// One speed row at NB201 (N, C): the GHN (its declared defaults) against the same networks
/// with their own weights. Minimum wall time over 8 sampled architectures.
void speed_row(std::int64_t n, std::int64_t c) {
  Kernel k;
  const Nb201Space space = nb201_space(n, c);
  Rng rng(1);
  std::vector<Architecture> archs;
  for (int i = 0; i < 8; ++i) archs.push_back(space.sample(rng));
  auto arch = [&](int i) -> const Architecture& {
    return archs[static_cast<std::size_t>(i) % archs.size()];
  };
  GhnSurrogate ghn(ghn_options());
  GhnSurrogate bare(ghn_options({{"steps", std::int64_t{0}}}));
  const at::Tensor images = at::randn({64, 3, 32, 32});
  const at::Tensor labels = at::randint(10, {64}, at::kLong);
  const at::Tensor valid = at::randn({256, 3, 32, 32});
  std::vector<const Architecture*> one(1);

  const double gen = min_ms([&](int i) { ghn.generate(k.ctx, arch(i), space); }, 8);
  const double gen_h = min_ms([&](int i) { bare.generate(k.ctx, arch(i), space); }, 8);
  const double gen_bwd = min_ms(
      [&](int i) {
        one[0] = &arch(i);
        auto w = ghn.generate_batch(one, {k.exec.parameters(arch(i))}, true);
        std::vector<at::Tensor> flat;
        for (const auto& [name, t] : w[0]) flat.push_back(t.reshape({-1}));
        at::cat(flat).square().sum().backward();
      },
      8);
  // A plain SGD training step of the network with its own weights (forward, backward, update).
  std::vector<WeightMap> own;
  for (int i = 0; i < 8; ++i) own.push_back(k.exec.init_weights(arch(i), 1, c10::kCPU));
  const double train = min_ms(
      [&](int i) {
        WeightMap& w = own[static_cast<std::size_t>(i) % own.size()];
        at::cross_entropy_loss(k.exec.forward(arch(i), w, images).back(), labels).backward();
        c10::NoGradGuard no_grad;
        for (auto& [name, t] : w) {
          if (!t.grad().defined()) continue;  // (a weight the output does not reach)
          t.sub_(t.grad(), 0.01);
          t.mutable_grad() = at::Tensor();
        }
      },
      8);
  // The network's forward and backward with generated weights (backward into the GHN too).
  const double net_ghn = min_ms(
      [&](int i) {
        one[0] = &arch(i);
        auto w = ghn.generate_batch(one, {k.exec.parameters(arch(i))}, true);
        at::cross_entropy_loss(k.exec.forward(arch(i), w[0], images).back(), labels).backward();
        for (auto& [name, p] : ghn.named_parameters()) p.mutable_grad() = at::Tensor();
      },
      8);
  const auto data = bench::synthetic_dataset(64 * 16 + 256, 3, 32, false);
  FitRequest fr;
  fr.space = &space;
  fr.data = data.get();
  fr.batch_size = 64;
  fr.max_steps = 1;
  const double fit = min_ms([&](int) { ghn.fit(k.ctx, fr); }, 8);
  // Scoring on 256 validation images in one batch, and plain inference of the same.
  ScoreRequest sr;
  sr.space = &space;
  sr.data = data.get();
  sr.batch_size = 256;
  const double score = min_ms(
      [&](int i) {
        sr.archs = {&arch(i)};
        ghn.score(k.ctx, sr);
      },
      8);
  const double infer = min_ms(
      [&](int i) {
        c10::NoGradGuard no_grad;
        k.exec.forward(arch(i), own[static_cast<std::size_t>(i) % own.size()], valid)
            .back()
            .argmax(1);
      },
      8);
  std::printf(
      "| %lld/%lld | %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | **%.2f** | %.1f | %.1f | "
      "**%.2f** | %.1f |\n",
      static_cast<long long>(n), static_cast<long long>(c), boost::num_vertices(archs[0].graph),
      gen, gen_h, gen_bwd, net_ghn, fit, train, fit / train, score, infer, score / infer,
      1e3 / score);
  std::fflush(stdout);
}

void table(int threads) {
  at::set_num_threads(threads);
  GhnSurrogate ghn(ghn_options());
  std::cout << "### GHN speed: NB201 networks, 3x32x32 inputs, 10 classes\n\n"
            << bench::machine_line() << "; GHN with its declared defaults ("
            << ghn.options().canonical() << "; " << ghn.parameter_count()
            << " parameters); minimum wall time over 8 architectures, in ms. gen: generate() "
               "of all weights; H: the same with steps = 0 (the hypernetwork alone, no "
               "propagation); gen+bwd: generation with gradient history and its backward; "
               "net fwd+bwd: the network's forward and backward on a batch of 64 with "
               "generated weights (into the GHN); fit: a whole GHN fit step (sampling, "
               "generation, forward, backward, Adam); train: a plain SGD step of the same "
               "network with its own weights; score: generation plus accuracy on 256 "
               "images; infer: the network's forward on those 256 images with its own "
               "weights.\n\n"
            << "| N/C | nodes | gen | H | gen+bwd | net fwd+bwd | fit | train | fit / train | "
               "score | infer | score / infer | archs / s |\n"
            << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  speed_row(1, 8);
  speed_row(5, 16);
}

/// Generation of every weight of the DARTS genotype (DARTS-V2, Liu et al. 2019) at C = 16
/// with 8 cells on 32x32 inputs: ppuda's example network, for the side-by-side with ppuda's
/// GHN-1 and GHN-2 (bench/ppuda_timing.py).
void darts_row(int threads) {
  at::set_num_threads(threads);
  Kernel k;
  Options o;
  o.set("layers", std::int64_t{8}).set("channels", std::int64_t{16});
  const DartsSpace space(DartsSpace::params().resolve(o, "darts"));
  const std::string genotype =
      "normal=[(sep_conv_3x3,0),(sep_conv_3x3,1),(sep_conv_3x3,0),(sep_conv_3x3,1),"
      "(sep_conv_3x3,1),(skip_connect,0),(skip_connect,0),(dil_conv_3x3,2)];"
      "reduce=[(max_pool_3x3,0),(max_pool_3x3,1),(skip_connect,2),(max_pool_3x3,1),"
      "(max_pool_3x3,0),(skip_connect,2),(skip_connect,2),(max_pool_3x3,1)]";
  const double parse = min_ms([&](int) { space.parse(genotype); }, 8);
  const Architecture a = space.parse(genotype);
  std::cout << "### GHN weight generation: DARTS genotype, C=16, 8 cells, 32x32x3, 10 classes\n\n"
            << bench::machine_line() << "; " << boost::num_vertices(a.graph) << " nodes, "
            << k.exec.parameters(a).size() << " parameter tensors; minimum over 8 calls.\n\n"
            << "| GHN | parse + graph (ms) | generate all weights (ms) |\n|---|---:|---:|\n";
  for (const auto& [label, given] :
       std::vector<std::pair<std::string, std::map<std::string, Value>>>{
           {"paper preset (GHN-1 setting)", {{"preset", std::string("paper")}}},
           {"defaults", {}},
           {"GHN-2 options (fan-in, layer norm, virtual edges)",
            {{"fan_in_norm", true}, {"layer_norm", true}, {"virtual_edges", true}}}}) {
    GhnSurrogate g(ghn_options(given));
    print_row(label + " | " + std::to_string(parse).substr(0, 5),
              min_ms([&](int) { g.generate(k.ctx, a, space); }, 8));
  }
}

/// Ten fit steps with 1 thread, for profilers.
void fit_loop() {
  at::set_num_threads(1);
  Kernel k;
  const Nb201Space space = nb201_space(5, 16);
  const auto data = bench::synthetic_dataset(64 * 10 + 256, 3, 32, false);
  GhnSurrogate ghn(ghn_options());
  FitRequest fr;
  fr.space = &space;
  fr.data = data.get();
  fr.batch_size = 64;
  fr.max_steps = 10;
  const double s = bench::time_of([&] { ghn.fit(k.ctx, fr); });
  std::printf("10 fit steps: %.3f s\n", s);
}

/// Generation with gradient history and backpropagation, `loops` times, for profilers.
void ghn_loop(std::int64_t steps, int loops) {
  at::set_num_threads(1);
  const exec::GraphExecutor exec;
  const Nb201Space space = nb201_space(5, 16);
  const Architecture a = space.parse(kCell);
  GhnSurrogate ghn(ghn_options({{"steps", steps}}));
  const auto shapes = exec.parameters(a);
  const double s = bench::time_of([&] {
    for (int i = 0; i < loops; ++i) {
      auto w = ghn.generate_batch({&a}, {shapes}, true);
      std::vector<at::Tensor> flat;
      for (const auto& [name, t] : w[0]) flat.push_back(t.reshape({-1}));
      at::cat(flat).square().sum().backward();
    }
  });
  std::printf("%d generations + backward (steps %lld): %.3f s\n", loops,
              static_cast<long long>(steps), s);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::setup();
    const std::string mode = flag(argc, argv, "mode", "table");
    if (mode == "table") {
      table(std::atoi(flag(argc, argv, "threads", "2").c_str()));
    } else if (mode == "darts") {
      darts_row(std::atoi(flag(argc, argv, "threads", "2").c_str()));
    } else if (mode == "fit-loop") {
      fit_loop();
    } else if (mode == "ghn-loop") {
      ghn_loop(std::atoll(flag(argc, argv, "steps", "5").c_str()),
               std::atoi(flag(argc, argv, "loops", "20").c_str()));
    } else {
      std::cerr << "unknown --mode=" << mode << " (table, darts, fit-loop or ghn-loop)\n";
      return 2;
    }
    std::cout << "\nReproduce: `" << argv[0];
    for (int i = 1; i < argc; ++i) std::cout << " " << argv[i];
    std::cout << "` (from a Release build; `cmake --build <build> --target "
                 "hypernas_bench_ghn_timing`).\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
