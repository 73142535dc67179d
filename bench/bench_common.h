#pragma once
/// @file bench_common.h
/// @brief Shared pieces of the benchmark programs: NB201 architectures, a synthetic in-memory
/// image dataset (the kernel's ImageDataset over random pixels), a results store that keeps
/// nothing, a kernel context, and timing helpers.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <hypernas/context.h>

#include "kernel/core/context.h"
#include "kernel/core/log.h"
#include "kernel/core/progress.h"
#include "kernel/data/dataset.h"
#include "plugins/spaces/nb201/nb201.h"

namespace hypernas::bench {

/// The cell of design.md's example: convolutions, a pool and skips.
inline const char* kExampleCell =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

/// An NB201 network of `cell` with N cells per stage, C channels, for `channels` x `size`^2
/// images and 10 classes.
inline Architecture nb201_arch(const std::string& cell, std::int64_t n, std::int64_t c,
                               std::int64_t channels, std::int64_t size) {
  nb201::MacroConfig m;
  m.cells_per_stage = n;
  m.channels = c;
  m.input_channels = channels;
  m.input_size = size;
  m.classes = 10;
  Architecture a;
  a.space = "nb201";
  a.text = cell;
  a.graph = nb201::build_graph(nb201::parse_cell(cell), m);
  return a;
}

/// The macro config of nb201_arch().
inline nb201::MacroConfig nb201_config(std::int64_t n, std::int64_t c, std::int64_t channels,
                                       std::int64_t size) {
  nb201::MacroConfig m;
  m.cells_per_stage = n;
  m.channels = c;
  m.input_channels = channels;
  m.input_size = size;
  m.classes = 10;
  return m;
}

/// The kernel's ImageDataset over `n` random uint8 images of `channels` x `size`^2 with 10
/// classes; CIFAR-like augmentation (crop 4, flip) when `augment`.
inline std::shared_ptr<data::ImageDataset> synthetic_dataset(std::int64_t n, std::int64_t channels,
                                                             std::int64_t size, bool augment) {
  auto gen = at::detail::createCPUGenerator(1);
  data::ImageSet train, test;
  train.images = at::randint(0, 256, {n, channels, size, size}, gen, at::kByte);
  train.labels = at::randint(0, 10, {n}, gen, at::kLong);
  test.images = at::randint(0, 256, {256, channels, size, size}, gen, at::kByte);
  test.labels = at::randint(0, 10, {256}, gen, at::kLong);
  for (int k = 0; k < 10; ++k) {
    train.classes.push_back("c" + std::to_string(k));
    test.classes.push_back("c" + std::to_string(k));
  }
  data::DatasetOptions o;
  o.name = augment ? "synthetic-cifar" : "synthetic-fmnist";
  o.valid = 256;
  o.crop_padding = augment ? 4 : 0;
  o.flip = augment;
  return std::make_shared<data::ImageDataset>(std::move(train), std::move(test), o,
                                              c10::Device(c10::kCPU));
}

/// A results store that records nothing.
class NullStore final : public ResultStore {
 public:
  std::string record_architecture(const Architecture& a) override { return hash(a); }
  std::string hash(const Architecture& a) const override { return a.text; }
  void record_evaluation(const Evaluation&) override {}
  std::optional<Evaluation> find_evaluation(const std::string&, const std::string&) const override {
    return std::nullopt;
  }
  void record_training(const TrainingRecord&) override {}
  void save_state(const std::string&, const std::string&, const std::string&) override {}
  std::optional<std::string> load_state(const std::string&, const std::string&) const override {
    return std::nullopt;
  }
};

/// Sets 2 LibTorch threads (this machine's cores), quiet logs and no progress display.
inline void setup() {
  at::set_num_threads(2);
  core::set_log_level(LogLevel::Warn);
  core::set_progress_mode(core::ProgressMode::Off);
}

/// Seconds taken by `f`.
template <typename F>
double time_of(F&& f) {
  const auto t = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// CPU seconds the calling thread has used so far. With one LibTorch thread every op runs on
/// the calling thread, so differences of this clock measure the work of a step whatever else
/// the machine runs.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Thread CPU seconds taken by `f`.
template <typename F>
double cpu_time_of(F&& f) {
  const double t = thread_cpu_seconds();
  f();
  return thread_cpu_seconds() - t;
}

/// The median of `v` (copied).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// One line describing the CPU and the LibTorch threads, for the table's caption.
inline std::string machine_line() {
  std::string cpu = "unknown CPU";
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      std::string s = line;
      if (s.rfind("model name", 0) == 0) {
        cpu = s.substr(s.find(':') + 2);
        if (!cpu.empty() && cpu.back() == '\n') cpu.pop_back();
        break;
      }
    }
    std::fclose(f);
  }
  std::string load = "?";
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {0};
    if (std::fgets(buf, sizeof buf, f))
      load = std::string(buf).substr(0, std::string(buf).find(' '));
    std::fclose(f);
  }
  return cpu + " (" + std::to_string(std::thread::hardware_concurrency()) +
         " cores, 1-minute load average " + load + " at the start), " +
         std::to_string(at::get_num_threads()) +
         (at::get_num_threads() == 1 ? " LibTorch thread" : " LibTorch threads") + ", LibTorch " +
         std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace hypernas::bench
