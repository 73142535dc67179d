// Benchmark: the graph executor's overhead. One training step (forward, cross-entropy,
// backward, SGD step) of the same NAS-Bench-201 network three ways, with the same weights, the
// same batch and the same optimiser:
//   nn       - the network written by hand from torch::nn modules (tests/kernel/exec/Nb201Reference.h)
//   plan     - the executor with external weights, compiled once (what train::train() does)
//   forward  - the executor through the SDK's Executor::forward(arch, ...), which compiles the
//              graph on every call (what a plugin does)
// Steps are interleaved (nn, plan, forward, nn, ...) so that a load change on the machine hits
// all three alike; the table gives medians and the ratios to nn. A second table gives the cost
// of compiling a plan alone.
//
// Usage: hypernas_bench_executor_overhead [seconds per row, default 10]

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

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::setup();
    const double budget = argc > 1 ? std::atof(argv[1]) : 10.0;
    const std::string cell = bench::kExampleCell;
    const exec::GraphExecutor exec;
    const std::vector<Row> rows = {
        {5, 16, 3, 32, 16}, {1, 16, 1, 28, 64}, {5, 4, 3, 8, 8}, {1, 4, 3, 8, 8}};

    std::cout << "### Executor overhead: training step, executor vs torch::nn, NB201 cell `"
              << cell << "`\n\n"
              << bench::machine_line()
              << "; same weights, batch and optimiser (train::Sgd); steps interleaved.\n\n"
              << "| network | input | batch | steps | nn (ms) | plan (ms) | forward (ms) | "
                 "plan / nn | forward / nn |\n"
              << "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";

    std::vector<std::string> compile_lines;
    for (const Row& row : rows) {
      const Architecture arch = bench::nb201_arch(cell, row.n, row.c, row.channels, row.size);
      const auto config = bench::nb201_config(row.n, row.c, row.channels, row.size);
      const auto plan = exec.compile(arch);
      WeightMap w = exec::GraphExecutor::init_weights(*plan, 1, c10::kCPU);
      test::Nb201Reference ref(nb201::parse_cell(cell), config);
      ref.train();
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
      const at::Tensor y = at::randint(0, 10, {row.batch}, gen, at::kLong);

      auto nn_step = [&] {
        at::Tensor loss = train::cross_entropy(ref.forward(x), y);
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
      for (int i = 0; i < 2; ++i) {
        nn_step();
        plan_step();
        forward_step();
      }
      std::vector<double> t_nn, t_plan, t_fwd;
      double spent = 0;
      while ((spent < budget && t_nn.size() < 2000) || t_nn.size() < 5) {
        t_nn.push_back(bench::time_of(nn_step));
        t_plan.push_back(bench::time_of(plan_step));
        t_fwd.push_back(bench::time_of(forward_step));
        spent += t_nn.back() + t_plan.back() + t_fwd.back();
      }
      const double m_nn = bench::median(t_nn), m_plan = bench::median(t_plan),
                   m_fwd = bench::median(t_fwd);
      std::printf("| N=%lld, C=%lld | %lldx%lldx%lld | %lld | %zu | %.3f | %.3f | %.3f | %.3f | "
                  "%.3f |\n",
                  static_cast<long long>(row.n), static_cast<long long>(row.c),
                  static_cast<long long>(row.size), static_cast<long long>(row.size),
                  static_cast<long long>(row.channels), static_cast<long long>(row.batch),
                  t_nn.size(), m_nn * 1e3, m_plan * 1e3, m_fwd * 1e3, m_plan / m_nn,
                  m_fwd / m_nn);
      std::fflush(stdout);

      // Compiling alone.
      std::vector<double> t_compile;
      for (int i = 0; i < 200; ++i) t_compile.push_back(bench::time_of([&] { exec.compile(arch); }));
      char line[256];
      std::snprintf(line, sizeof line, "| N=%lld, C=%lld | %zu | %zu | %.1f | %.2f%% |",
                    static_cast<long long>(row.n), static_cast<long long>(row.c),
                    boost::num_vertices(arch.graph), exec::GraphExecutor::parameters(*plan).size(),
                    bench::median(t_compile) * 1e6, 100.0 * bench::median(t_compile) / m_plan);
      compile_lines.push_back(line);
    }

    std::cout << "\nCompiling a plan (GraphExecutor::compile) alone, median of 200:\n\n"
              << "| network | nodes | parameters | compile (us) | share of a plan step |\n"
              << "|---|---:|---:|---:|---:|\n";
    for (const auto& l : compile_lines) std::cout << l << "\n";
    std::cout << "\nReproduce: `" << argv[0] << (argc > 1 ? std::string(" ") + argv[1] : "")
              << "` (from a Release build; `cmake --build <build> --target "
                 "hypernas_bench_executor_overhead`).\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
