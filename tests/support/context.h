#pragma once
/// @file context.h
/// @brief Test doubles of the kernel's services: an in-memory results store, and a Context
/// under the test's control (seed, executor, cancel switch, recorded logs, progress and
/// notifications).

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <hypernas/context.h>

namespace hypernas::test {

/// A results store in memory.
class MemoryStore final : public ResultStore {
 public:
  std::string record_architecture(const Architecture& arch) override {
    archs.push_back(arch.text);
    return hash(arch);
  }
  std::string hash(const Architecture& arch) const override { return "h:" + arch.text; }
  void record_evaluation(const Evaluation& e) override { evaluations.push_back(e); }
  std::optional<Evaluation> find_evaluation(const std::string&, const std::string&) const override {
    return std::nullopt;
  }
  void record_training(const TrainingRecord& t) override { trainings.push_back(t); }
  void save_state(const std::string& plugin, const std::string& key,
                  const std::string& blob) override {
    states[plugin + "/" + key] = blob;
  }
  std::optional<std::string> load_state(const std::string& plugin,
                                        const std::string& key) const override {
    auto it = states.find(plugin + "/" + key);
    if (it == states.end()) return std::nullopt;
    return it->second;
  }
  void record_search_epoch(const SearchEpoch& e) override {
    for (auto& old : epochs)
      if (old.run == e.run && old.epoch == e.epoch) {
        old = e;
        return;
      }
    epochs.push_back(e);
  }
  std::vector<SearchEpoch> search_epochs(const std::string& run) const override {
    std::vector<SearchEpoch> out;
    for (const auto& e : epochs)
      if (run.empty() || e.run == run) out.push_back(e);
    std::sort(out.begin(), out.end(),
              [](const SearchEpoch& a, const SearchEpoch& b) { return a.epoch < b.epoch; });
    return out;
  }
  std::vector<std::string> archs;             ///< Recorded architectures' texts, in order.
  std::vector<Evaluation> evaluations;        ///< Recorded evaluations.
  std::vector<TrainingRecord> trainings;      ///< Recorded trainings.
  std::map<std::string, std::string> states;  ///< Saved plugin states, by "plugin/key".
  std::vector<SearchEpoch> epochs;            ///< Recorded search epochs.
};

/// A CPU context over a MemoryStore that records what the code under test logs, the progress
/// it reports and the events it notifies, and cancels or stops on request.
class TestContext final : public Context {
 public:
  /// A context seeded with `seed` whose executor is `exec` (may be null).
  explicit TestContext(std::uint64_t seed = 1, const Executor* exec = nullptr)
      : rng_(seed), exec_(exec) {}
  TestContext(const TestContext&) = delete;
  TestContext& operator=(const TestContext&) = delete;

  c10::Device device() const override { return c10::kCPU; }
  Rng& rng() override { return rng_; }
  Logger& log() override { return log_; }
  std::unique_ptr<Progress> progress(const std::string& label, std::int64_t total) override {
    labels.push_back(label);
    totals.push_back(total);
    return std::make_unique<CountingProgress>(this);
  }
  bool cancelled() const override {
    return cancel || (cancel_after >= 0 && ++polls > cancel_after);
  }
  ResultStore& store() override { return store_; }
  const Executor* executor() const override { return exec_; }
  int threads() const override { return 1; }
  bool notify(const std::string& event, const std::map<std::string, double>& values) override {
    events.emplace_back(event, values);
    return stop_after < 0 || static_cast<std::int64_t>(events.size()) < stop_after;
  }

  MemoryStore store_;                ///< What was recorded.
  std::vector<std::string> lines;    ///< Logged lines.
  std::vector<std::string> labels;   ///< Progress labels.
  std::vector<std::int64_t> totals;  ///< Progress totals.
  std::int64_t advanced = 0;         ///< Sum of all progress advances.
  bool cancel = false;               ///< cancelled() is true while this is set.
  int cancel_after = -1;             ///< cancelled() turns true after this many polls (-1: never).
  mutable int polls = 0;             ///< Calls of cancelled() counted for cancel_after.
  /// notify() returns false (stop) from the stop_after-th event on (-1: never).
  std::int64_t stop_after = -1;
  /// Notified events with their values, in order.
  std::vector<std::pair<std::string, std::map<std::string, double>>> events;

 private:
  struct ListLogger final : Logger {
    explicit ListLogger(TestContext* c) : ctx(c) {}
    void log(LogLevel, const std::string& m) override { ctx->lines.push_back(m); }
    TestContext* ctx;
  };
  struct CountingProgress final : Progress {
    explicit CountingProgress(TestContext* c) : ctx(c) {}
    void advance(std::int64_t n, const std::string&) override { ctx->advanced += n; }
    void finish() override {}
    TestContext* ctx;
  };
  Rng rng_;
  const Executor* exec_;
  ListLogger log_{this};
};

}  // namespace hypernas::test
