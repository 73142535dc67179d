// Benchmark: the `ghn` surrogate (plugins/surrogates/ghn) on a NAS-Bench-201 network (C = 16,
// N = 5 cells per stage, 3x32x32 inputs, 10 classes): generate() with each propagation scheme,
// the GHN's generation + backward alone, a training step with generated weights against the
// same network with its own weights, a whole fit step (batch 64, with Adam) and score() of one
// architecture on 256 images. Each figure is the minimum wall time over several architectures
// and repetitions (after one warm-up call): the machine is shared, and the minimum is the
// least disturbed run. Prints a markdown table and the command that reproduces it.
//
// Two more modes, for profilers (perf record / perf stat ...), print only their own time:
//   --mode=fit-loop  ten fit steps, 1 LibTorch thread
//   --mode=ghn-loop  generation with gradient history and backpropagation, --loops times
//                    (default 20) on one network with --steps propagation steps (default 5),
//                    1 LibTorch thread
//
// Usage: hypernas_bench_ghn_timing [--mode=table|fit-loop|ghn-loop] [--threads=2]
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

/// The nb201 space of these timings: N = 5, C = 16, 3x32x32 inputs, 10 classes.
Nb201Space nb201_space() {
  Options o;
  o.set("cells_per_stage", std::int64_t{5}).set("channels", std::int64_t{16});
  o.set("input_channels", std::int64_t{3}).set("input_size", std::int64_t{32});
  o.set("classes", std::int64_t{10});
  return Nb201Space(Nb201Space::params().resolve(o, "nb201"));
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

void table(int threads) {
  at::set_num_threads(threads);
  Kernel k;
  const Nb201Space space = nb201_space();
  Rng rng(1);
  std::vector<Architecture> archs;
  for (int i = 0; i < 8; ++i) archs.push_back(space.sample(rng));
  auto arch = [&](int i) -> const Architecture& {
    return archs[static_cast<std::size_t>(i) % archs.size()];
  };
  const auto order =
      ghn::propagation_order(archs[0].graph, ghn::Propagation::ForwardBackward, 5, true);
  GhnSurrogate ghn(ghn_options());
  std::cout << "### GHN timing: NB201 N=5, C=16, 3x32x32 inputs, 10 classes\n\n"
            << bench::machine_line() << "; " << boost::num_vertices(archs[0].graph) << " nodes, "
            << k.exec.parameters(archs[0]).size()
            << " parameter tensors, stacked forward-backward schedule of " << order.size()
            << " batched GRU updates (T = 5); GHN of " << ghn.parameter_count()
            << " parameters (default options); minimum wall time over 8 architectures.\n\n"
            << "| measurement | min (ms) |\n|---|---:|\n";

  for (const char* prop : {"forward-backward", "synchronous"}) {
    for (bool stacked : {true, false}) {
      GhnSurrogate g(ghn_options({{"propagation", std::string(prop)}, {"stacked", stacked}}));
      print_row(std::string("generate(), ") + prop + (stacked ? ", stacked" : ", flat"),
                min_ms([&](int i) { g.generate(k.ctx, arch(i), space); }, 8));
    }
  }
  {
    GhnSurrogate g(ghn_options({{"steps", std::int64_t{0}}}));
    print_row("generate() without propagation (steps 0: the hypernetwork alone)",
              min_ms([&](int i) { g.generate(k.ctx, arch(i), space); }, 8));
  }

  const at::Tensor images = at::randn({64, 3, 32, 32});
  const at::Tensor labels = at::randint(10, {64}, at::kLong);
  std::vector<const Architecture*> one(1);
  // The GHN alone: generation with gradient history, and backpropagation of a simple function
  // of all generated weights.
  auto ghn_alone = [&](int i) {
    one[0] = &arch(i);
    auto w = ghn.generate_batch(one, {k.exec.parameters(arch(i))}, true);
    std::vector<at::Tensor> flat;
    for (const auto& [name, t] : w[0]) flat.push_back(t.reshape({-1}));
    at::cat(flat).square().sum().backward();
  };
  print_row("GHN generation + backward alone", min_ms(ghn_alone, 8));
  // A training step without the optimiser update, and the same network with its own weights.
  auto with_ghn = [&](int i) {
    one[0] = &arch(i);
    auto w = ghn.generate_batch(one, {k.exec.parameters(arch(i))}, true);
    at::cross_entropy_loss(k.exec.forward(arch(i), w[0], images).back(), labels).backward();
  };
  auto plain = [&](int i) {
    WeightMap own = k.exec.init_weights(arch(i), 1, c10::kCPU);
    at::cross_entropy_loss(k.exec.forward(arch(i), own, images).back(), labels).backward();
  };
  print_row("forward + backward of the network (batch 64), with GHN weights", min_ms(with_ghn, 5));
  print_row("forward + backward of the network (batch 64), with its own weights", min_ms(plain, 5));
  // Whole fit steps (sampling, generation, forward, backward, Adam), meta_batch 1.
  const auto data = bench::synthetic_dataset(64 * 8 + 256, 3, 32, false);
  FitRequest fr;
  fr.space = &space;
  fr.data = data.get();
  fr.batch_size = 64;
  fr.max_steps = 1;
  print_row("fit step (batch 64, with Adam)", min_ms([&](int) { ghn.fit(k.ctx, fr); }, 5));
  // score(): generation + accuracy on the 256 validation images in one batch.
  ScoreRequest sr;
  sr.space = &space;
  sr.data = data.get();
  sr.batch_size = 256;
  auto score = [&](int i) {
    sr.archs = {&arch(i)};
    ghn.score(k.ctx, sr);
  };
  print_row("score() of one architecture on 256 images", min_ms(score, 5));
}

/// Ten fit steps with 1 thread, for profilers.
void fit_loop() {
  at::set_num_threads(1);
  Kernel k;
  const Nb201Space space = nb201_space();
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
  const Nb201Space space = nb201_space();
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
    } else if (mode == "fit-loop") {
      fit_loop();
    } else if (mode == "ghn-loop") {
      ghn_loop(std::atoll(flag(argc, argv, "steps", "5").c_str()),
               std::atoi(flag(argc, argv, "loops", "20").c_str()));
    } else {
      std::cerr << "unknown --mode=" << mode << " (table, fit-loop or ghn-loop)\n";
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
