// Benchmark: training throughput (images/s) of NAS-Bench-201 networks with the graph executor
// and the trainer's pieces. Prints a markdown table and the command that reproduces it.
//
// Each row times whole training steps as train::train() runs them: next batch from the
// kernel's ImageDataset (synthetic pixels; crop + flip augmentation for the 32x32x3 rows, as
// CIFAR-10; none for 28x28x1, as Fashion-MNIST), forward, cross-entropy, backward, gradient
// clipping, SGD step; batch 64. One warm-up step, then steps until the row's time budget is
// spent (3 at least).
//
// Clocks: `wall` (default) is what a user waits; `cpu` is the CPU time of the calling thread,
// which with --threads=1 does all the work, so it measures the work itself and holds on a busy
// machine (images per CPU-second of one core). With `wall`, a last line runs train::train()
// itself end to end (its own timer) as a cross-check.
//
// Usage: hypernas_bench_train_throughput [--threads=2] [--clock=wall|cpu] [--seconds=8]
//                                        [--cell=<nb201 cell>]

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "kernel/exec/executor.h"
#include "kernel/train/train.h"

namespace {

using namespace hypernas;

struct Row {
  std::int64_t n, c, channels, size;
  exec::Layout layout;
};

const char* layout_name(exec::Layout l) {
  switch (l) {
    case exec::Layout::Auto: return "auto";
    case exec::Layout::Contiguous: return "NCHW";
    case exec::Layout::ChannelsLast: return "channels-last";
  }
  return "?";
}

/// The value of `--name=value` in argv, or `def`.
std::string flag(int argc, char** argv, const char* name, const std::string& def) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::setup();
    const int threads = std::atoi(flag(argc, argv, "threads", "2").c_str());
    const std::string clock = flag(argc, argv, "clock", "wall");
    const double budget = std::atof(flag(argc, argv, "seconds", "8").c_str());
    const std::string cell = flag(argc, argv, "cell", bench::kExampleCell);
    if (threads < 1 || (clock != "wall" && clock != "cpu") || !(budget > 0))
      throw Error(
          "usage: hypernas_bench_train_throughput [--threads=N>=1] [--clock=wall|cpu] "
          "[--seconds=S>0] [--cell=...]");
    at::set_num_threads(threads);
    const bool cpu = clock == "cpu";
    const std::int64_t batch = 64;

    std::cout << "### Training throughput, NB201 cell `" << cell << "`, " << threads
              << " LibTorch thread" << (threads > 1 ? "s" : "") << ", "
              << (cpu ? "CPU time of the calling thread" : "wall-clock time") << "\n\n"
              << bench::machine_line() << "; batch " << batch
              << "; SGD (Nesterov, weight decay, clip 5); synthetic data through the kernel's "
                 "ImageDataset.\n\n"
              << "| network | input | layout | params | MMAC/image | steps timed | median step "
                 "(ms) | best step (ms) | images/s (median) | images/s (best) |\n"
              << "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";

    const auto CL = exec::Layout::ChannelsLast, NCHW = exec::Layout::Contiguous;
    const std::vector<Row> rows = {{1, 16, 3, 32, CL}, {1, 16, 1, 28, CL},   {5, 16, 3, 32, CL},
                                   {5, 16, 1, 28, CL}, {1, 16, 3, 32, NCHW}, {1, 16, 1, 28, NCHW}};
    for (const Row& row : rows) {
      const exec::GraphExecutor exec(exec::ExecutorOptions{row.layout});
      const Architecture arch = bench::nb201_arch(cell, row.n, row.c, row.channels, row.size);
      const ArchStats st = nb201::graph_stats(arch.graph, row.size);
      const bool augment = row.channels == 3;
      auto data = bench::synthetic_dataset(1024, row.channels, row.size, augment);
      const auto plan = exec.compile(arch);
      WeightMap w = exec::GraphExecutor::init_weights(*plan, 1, c10::kCPU);
      std::vector<at::Tensor> params;
      for (const auto& p : exec::GraphExecutor::parameters(*plan)) params.push_back(w.at(p.name));
      train::Sgd sgd(params, {0.05, 0.9, 5e-4, true});
      Rng rng(1);
      BatchOptions bo;
      bo.batch_size = batch;
      bo.shuffle = true;
      bo.augment = augment;
      bo.drop_last = true;
      std::unique_ptr<BatchStream> stream;

      auto step = [&] {
        std::optional<Batch> b = stream ? stream->next() : std::nullopt;
        if (!b) {
          stream = data->batches(Split::Train, bo, rng);
          b = stream->next();
        }
        const auto logits = exec.forward(*plan, w, b->images);
        at::Tensor loss = train::cross_entropy(logits.back(), b->labels);
        (void)loss.item<double>();
        loss.backward();
        train::clip_grad_norm(params, 5.0);
        sgd.step();
        sgd.zero_grad();
      };
      step();  // warm-up: first allocations
      std::vector<double> times;
      double spent = 0;
      while ((spent < budget && times.size() < 200) || times.size() < 3) {
        const double wall = bench::time_of(
            [&] { times.push_back(cpu ? bench::cpu_time_of(step) : bench::time_of(step)); });
        spent += wall;
      }
      const double med = bench::median(times);
      const double best = *std::min_element(times.begin(), times.end());
      std::printf(
          "| N=%lld, C=%lld | %lldx%lldx%lld | %s | %lld | %.1f | %zu | %.1f | %.1f | %.0f | "
          "%.0f |\n",
          static_cast<long long>(row.n), static_cast<long long>(row.c),
          static_cast<long long>(row.size), static_cast<long long>(row.size),
          static_cast<long long>(row.channels), layout_name(row.layout),
          static_cast<long long>(st.params), static_cast<double>(st.flops) / 1e6, times.size(),
          med * 1e3, best * 1e3, static_cast<double>(batch) / med,
          static_cast<double>(batch) / best);
      std::fflush(stdout);
    }

    if (!cpu) {  // Cross-check: train::train() end to end (includes its first, slower step).
      const exec::GraphExecutor exec;
      const Architecture arch = bench::nb201_arch(cell, 1, 16, 3, 32);
      auto data = bench::synthetic_dataset(1024, 3, 32, true);
      bench::NullStore store;
      core::RunServices services;
      services.store = &store;
      services.executor = &exec;
      services.threads = threads;
      core::KernelContext ctx(services, "bench");
      train::TrainOptions o;
      o.epochs = 1;
      o.batch = batch;
      o.max_steps = 8;
      o.valid_images = 64;
      o.test_images = 64;
      const auto r = train::train(ctx, arch, *data, o, exec);
      std::printf(
          "\ntrain::train() end to end (default executor: layout auto), N=1, C=16, "
          "32x32x3: %lld steps in %.2f s of training steps: %.0f images/s.\n",
          static_cast<long long>(r.steps), r.train_seconds,
          static_cast<double>(r.images) / r.train_seconds);
    }
    std::cout << "\nReproduce: `" << argv[0];
    for (int i = 1; i < argc; ++i) std::cout << " " << argv[i];
    std::cout << "` (Release build; `cmake --build <build> --target "
                 "hypernas_bench_train_throughput`).\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
