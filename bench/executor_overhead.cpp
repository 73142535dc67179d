// Benchmark: the graph executor's overhead. One training step (forward, cross-entropy,
// backward, SGD step) of the same NAS-Bench-201 network three ways, with the same weights, the
// same batch and the same optimiser (train::Sgd):
//   nn       - the network written by hand from torch::nn modules
//   (tests/kernel/exec/Nb201Reference.h) plan     - the executor with external weights, compiled
//   once (what train::train() does) forward  - the executor through the SDK's
//   Executor::forward(arch, ...), which compiles the
//              graph on every call (what a plugin does)
// Each network runs in both activation layouts; the hand-built network is given its input in
// the same layout and keeps it after its stem (its convolutions follow it). Steps are interleaved
// (nn, plan, forward, nn,
// ...) so that a change of load on the machine hits all three alike; tables give medians and
// the ratios to nn.
//
// Two tables: (1) 2 LibTorch threads, wall-clock time; (2) 1 LibTorch thread, CPU time of the
// calling thread, which does all the work then, so the ratio holds even on a busy machine.
// A third table gives the cost of compiling a plan alone.
//
// Usage: hypernas_bench_executor_overhead [seconds per row, default 3]

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "bench/bench_common.h"
#include "kernel/exec/executor.h"
#include "kernel/train/train.h"
#include "tests/kernel/exec/Nb201Reference.h"

namespace {

using namespace hypernas;

struct Row {
  std::int64_t n, c, channels, size, batch;
};

const char* layout_name(exec::Layout l) {
  return l == exec::Layout::ChannelsLast ? "channels-last" : "NCHW";
}

const char* kCell = bench::kExampleCell;
const std::vector<Row> kRows = {{5, 16, 3, 32, 16}, {1, 16, 1, 28, 64}, {1, 4, 3, 8, 8}};

/// Prints one table; `cpu_clock`: time with the thread's CPU clock instead of the wall clock.
/// Returns the median plan step time of each row in NCHW (for the compile table).
std::vector<double> table(int threads, bool cpu_clock, double budget) {
  at::set_num_threads(threads);
  std::cout << "\n"
            << threads << " LibTorch thread" << (threads > 1 ? "s" : "") << ", "
            << (cpu_clock ? "CPU time of the calling thread" : "wall-clock time") << ":\n\n"
            << "| network | input | batch | layout | steps | nn (ms) | plan (ms) | forward (ms) | "
               "plan / nn | forward / nn |\n"
            << "|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n";
  std::vector<double> plan_times;
  for (const Row& row : kRows) {
    for (const exec::Layout layout : {exec::Layout::Contiguous, exec::Layout::ChannelsLast}) {
      const exec::GraphExecutor exec(exec::ExecutorOptions{layout});
      const Architecture arch = bench::nb201_arch(kCell, row.n, row.c, row.channels, row.size);
      const auto config = bench::nb201_config(row.n, row.c, row.channels, row.size);
      const auto plan = exec.compile(arch);
      WeightMap w = exec::GraphExecutor::init_weights(*plan, 1, c10::kCPU);
      test::Nb201Reference ref(nb201::parse_cell(kCell), config);
      ref.train();
      ref.set_channels_last(layout == exec::Layout::ChannelsLast);
      ref.load(w);
      std::vector<at::Tensor> exec_params, ref_params;
      for (const auto& p : exec::GraphExecutor::parameters(*plan)) {
        exec_params.push_back(w.at(p.name));
        ref_params.push_back(ref.by_name().at(p.name));
      }
      train::Sgd exec_sgd(exec_params, {0.05, 0.9, 5e-4, true});
      train::Sgd ref_sgd(ref_params, {0.05, 0.9, 5e-4, true});

      auto gen = at::detail::createCPUGenerator(2);
      const at::Tensor x = at::randn({row.batch, row.channels, row.size, row.size}, gen);
      const at::Tensor x_nn =
          layout == exec::Layout::ChannelsLast ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
      const at::Tensor y = at::randint(0, 10, {row.batch}, gen, at::kLong);

      auto nn_step = [&] {
        at::Tensor loss = train::cross_entropy(ref.forward(x_nn), y);
        (void)loss.item<double>();
        loss.backward();
        ref_sgd.step();
        ref_sgd.zero_grad();
      };
      auto plan_step = [&] {
        at::Tensor loss = train::cross_entropy(exec.forward(*plan, w, x).back(), y);
        (void)loss.item<double>();
        loss.backward();
        exec_sgd.step();
        exec_sgd.zero_grad();
      };
      auto forward_step = [&] {
        at::Tensor loss = train::cross_entropy(exec.forward(arch, w, x).back(), y);
        (void)loss.item<double>();
        loss.backward();
        exec_sgd.step();
        exec_sgd.zero_grad();
      };
      auto measure = [&](auto& f) { return cpu_clock ? bench::cpu_time_of(f) : bench::time_of(f); };
      nn_step();
      plan_step();
      forward_step();
      std::vector<double> t_nn, t_plan, t_fwd;
      double spent = 0;
      while ((spent < budget && t_nn.size() < 2000) || t_nn.size() < 3) {
        const double w0 = bench::time_of([&] {
          t_nn.push_back(measure(nn_step));
          t_plan.push_back(measure(plan_step));
          t_fwd.push_back(measure(forward_step));
        });
        spent += w0;
      }
      const double m_nn = bench::median(t_nn), m_plan = bench::median(t_plan),
                   m_fwd = bench::median(t_fwd);
      std::printf(
          "| N=%lld, C=%lld | %lldx%lldx%lld | %lld | %s | %zu | %.3f | %.3f | %.3f | "
          "%.3f | %.3f |\n",
          static_cast<long long>(row.n), static_cast<long long>(row.c),
          static_cast<long long>(row.size), static_cast<long long>(row.size),
          static_cast<long long>(row.channels), static_cast<long long>(row.batch),
          layout_name(layout), t_nn.size(), m_nn * 1e3, m_plan * 1e3, m_fwd * 1e3, m_plan / m_nn,
          m_fwd / m_nn);
      std::fflush(stdout);
      if (layout == exec::Layout::Contiguous) plan_times.push_back(m_plan);
    }
  }
  return plan_times;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::setup();
    const double budget = argc > 1 ? std::atof(argv[1]) : 3.0;
    std::cout << "### Executor overhead: training step, executor vs torch::nn, NB201 cell `"
              << kCell << "`\n\n"
              << bench::machine_line()
              << "; same weights, batch and optimiser (train::Sgd); steps interleaved.\n";
    table(2, false, budget);
    const std::vector<double> plan_times = table(1, true, budget);

    std::cout << "\nCompiling a plan (GraphExecutor::compile) alone, CPU time, median of 200:\n\n"
              << "| network | nodes | parameters | compile (us) | share of a 1-thread plan step |\n"
              << "|---|---:|---:|---:|---:|\n";
    const exec::GraphExecutor exec;
    for (std::size_t i = 0; i < kRows.size(); ++i) {
      const Row& row = kRows[i];
      const Architecture arch = bench::nb201_arch(kCell, row.n, row.c, row.channels, row.size);
      std::vector<double> t;
      for (int k = 0; k < 200; ++k) t.push_back(bench::cpu_time_of([&] { exec.compile(arch); }));
      std::printf("| N=%lld, C=%lld | %zu | %zu | %.1f | %.3f%% |\n", static_cast<long long>(row.n),
                  static_cast<long long>(row.c), boost::num_vertices(arch.graph),
                  exec.parameters(arch).size(), bench::median(t) * 1e6,
                  100.0 * bench::median(t) / plan_times[i]);
    }
    std::cout << "\nReproduce: `" << argv[0] << (argc > 1 ? std::string(" ") + argv[1] : "")
              << "` (from a Release build; `cmake --build <build> --target "
                 "hypernas_bench_executor_overhead`).\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
