// Benchmark: training throughput (images/s) of NAS-Bench-201 networks with the graph executor
// and the trainer's pieces, on this CPU with 2 LibTorch threads. Prints a markdown table and
// the command that reproduces it.
//
// Each row times whole training steps as train::train() runs them: next batch from the
// kernel's ImageDataset (synthetic pixels; crop + flip augmentation for the 32x32x3 rows, as
// CIFAR-10; none for 28x28x1, as Fashion-MNIST), forward, cross-entropy, backward, gradient
// clipping, SGD step. One warm-up step, then steps until the row's time budget is spent
// (3 at least).
// A last row runs train::train() itself end to end (its own timer) as a cross-check.
//
// Usage: hypernas_bench_train_throughput [seconds per row, default 10] [cell]

#include <algorithm>
#include <cstdlib>
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

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::setup();
    const double budget = argc > 1 ? std::atof(argv[1]) : 10.0;
    const std::string cell = argc > 2 ? argv[2] : bench::kExampleCell;
    const std::int64_t batch = 64;
    const exec::GraphExecutor default_exec;

    std::cout << "### Training throughput, NB201 cell `" << cell << "`\n\n"
              << bench::machine_line() << "; batch " << batch
              << "; SGD (Nesterov, weight decay, clip 5); synthetic data through the kernel's "
                 "ImageDataset.\n\n"
              << "| network | input | layout | params | MMAC/image | steps timed | median step "
                 "(ms) | best step (ms) | images/s (median) | images/s (best) |\n"
              << "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";

    const auto CL = exec::Layout::ChannelsLast, NCHW = exec::Layout::Contiguous;
    const std::vector<Row> rows = {{1, 16, 3, 32, CL},   {1, 16, 1, 28, CL},
                                   {5, 16, 3, 32, CL},   {5, 16, 1, 28, CL},
                                   {1, 16, 3, 32, NCHW}, {1, 16, 1, 28, NCHW}};
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
        times.push_back(bench::time_of(step));
        spent += times.back();
      }
      const double med = bench::median(times);
      const double best = *std::min_element(times.begin(), times.end());
      std::printf("| N=%lld, C=%lld | %lldx%lldx%lld | %s | %lld | %.1f | %zu | %.1f | %.1f | %.0f | "
                  "%.0f |\n",
                  static_cast<long long>(row.n), static_cast<long long>(row.c),
                  static_cast<long long>(row.size), static_cast<long long>(row.size),
                  static_cast<long long>(row.channels), layout_name(row.layout),
                  static_cast<long long>(st.params), static_cast<double>(st.flops) / 1e6,
                  times.size(), med * 1e3, best * 1e3, static_cast<double>(batch) / med,
                  static_cast<double>(batch) / best);
      std::fflush(stdout);
    }

    // Cross-check: train::train() end to end (includes the first, slower steps).
    {
      const Architecture arch = bench::nb201_arch(cell, 1, 16, 3, 32);
      auto data = bench::synthetic_dataset(1024, 3, 32, true);
      bench::NullStore store;
      core::RunServices services;
      services.store = &store;
      services.executor = &default_exec;
      core::KernelContext ctx(services, "bench");
      train::TrainOptions o;
      o.epochs = 1;
      o.batch = batch;
      o.max_steps = 8;
      o.valid_images = 64;
      o.test_images = 64;
      const auto r = train::train(ctx, arch, *data, o, default_exec);
      std::printf("\ntrain::train() end to end (default executor: layout auto), N=1, C=16, "
                  "32x32x3: %lld steps in %.2f s of training steps: %.0f images/s.\n",
                  static_cast<long long>(r.steps), r.train_seconds,
                  static_cast<double>(r.images) / r.train_seconds);
    }
    std::cout << "\nReproduce: `" << argv[0] << (argc > 1 ? std::string(" ") + argv[1] : "")
              << "` (from a Release build; `cmake --build <build> --target "
                 "hypernas_bench_train_throughput`).\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
