#include "kernel/session/session.h"

#include <lua.hpp>

#include <nlohmann/json.hpp>

#include <hypernas/abi.h>

#include "kernel/core/log.h"
#include "kernel/device/device.h"
#include "kernel/graph/serialize.h"
#include "kernel/plugin/registry.h"
#include "kernel/store/store.h"

namespace hypernas::session {
namespace fs = std::filesystem;

namespace {

/// What a strategy built with ABI 1.0 gets as its surrogate. Such a strategy calls score() with
/// a ScoreRequest of the 1.0 layout, which ends before `seeds`: a 1.1 surrogate would read past
/// it. The adapter copies the 1.0 fields into a complete request with the per-evaluation seeds,
/// and forwards everything else.
class Abi10ScoreAdapter final : public Surrogate {
 public:
  Abi10ScoreAdapter(Surrogate& inner, std::uint64_t run_seed) : inner_(inner), seed_(run_seed) {}
  std::uint32_t capabilities() const override { return inner_.capabilities(); }
  void fit(Context& ctx, const FitRequest& r) override { inner_.fit(ctx, r); }
  std::vector<Score> score(Context& ctx, const ScoreRequest& old) override {
    ScoreRequest r;  // NOTE: reads only the fields ABI 1.0 had
    r.space = old.space;
    r.data = old.data;
    r.archs = old.archs;
    r.batch_size = old.batch_size;
    r.max_images = old.max_images;
    for (const Architecture* a : r.archs)
      r.seeds.push_back(evaluation_seed(seed_, graph::arch_hash(*a)));
    return inner_.score(ctx, r);
  }
  WeightMap generate(Context& ctx, const Architecture& a, const SearchSpace& s) override {
    return inner_.generate(ctx, a, s);
  }
  WeightMap generate_relaxed(Context& ctx, const SearchSpace& s,
                             const std::vector<at::Tensor>& alphas) override {
    return inner_.generate_relaxed(ctx, s, alphas);
  }
  std::string save_state() const override { return inner_.save_state(); }
  void load_state(const std::string& blob) override { inner_.load_state(blob); }

 private:
  Surrogate& inner_;
  std::uint64_t seed_;
};

}  // namespace

void check_experiment_name(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw UsageError(cat("--experiment must be a plain folder name, got '", name, "'"));
}

RunSession::RunSession(SessionConfig config) : config_(std::move(config)) {
  HYPERNAS_INTERNAL_ASSERT(config_.registry != nullptr, "run session without a plugin registry");
  if (!config_.experiment.empty()) check_experiment_name(config_.experiment);
  services_.device = config_.device;
  services_.seed = config_.seed;
  services_.threads = config_.threads;
  services_.executor = &executor_;
}

RunSession::~RunSession() {
  try {
    if (running()) finish("failed");
  } catch (...) {
    // A destructor must not throw; the run stays 'running' and is marked interrupted later.
  }
  {
    std::lock_guard<std::mutex> lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

store::SqliteStore& RunSession::store() const {
  HYPERNAS_CHECK(store_ != nullptr, "no experiment is open");
  return *store_;
}

void RunSession::begin(const std::string& script) {
  HYPERNAS_INTERNAL_ASSERT(run_id_ == 0, "run session begun twice");
  if (config_.experiment.empty()) config_.experiment = fs::path(script).stem().string();
  check_experiment_name(config_.experiment);
  experiment_dir_ = config_.results_root / config_.experiment;
  store_ = store::SqliteStore::open(experiment_dir_ / "experiment.db");
  services_.store = store_.get();
  if (const std::int64_t n = store_->mark_interrupted(kStaleAfterS))
    core::write_log(LogLevel::Info, "kernel",
                    cat(n, " earlier run", n == 1 ? "" : "s",
                        " of this experiment ended without "
                        "closing (killed?): marked interrupted; their results are kept"));
  nlohmann::json args = nlohmann::json::object();
  for (const auto& [k, v] : config_.args) args[k] = v;
  store::RunInfo info;
  info.experiment = config_.experiment;
  info.script = script;
  info.args_json = nlohmann::json{{"set", args}, {"command", config_.command_line}}.dump();
  info.seed = config_.seed;
  info.versions_json = nlohmann::json{{"hypernas", HYPERNAS_VERSION},
                                      {"abi", cat(kAbiMajor, ".", kAbiMinor)},
                                      {"build_id", build_id()},
                                      {"lua", LUA_RELEASE},
                                      {"device", device::describe(config_.device)},
                                      {"threads", config_.threads}}
                           .dump();
  run_id_ = store_->begin_run(info);
  store_->set_current_run(run_id_);
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  core::write_log(LogLevel::Info, "kernel",
                  cat("experiment '", config_.experiment, "' in ", experiment_dir_.string(),
                      " (run ", run_id_, ", seed ", config_.seed, ", ",
                      device::describe(config_.device), ")"));
}

void RunSession::heartbeat_loop() {
  std::unique_lock<std::mutex> lock(heartbeat_mutex_);
  const auto period = std::chrono::duration<double>(config_.heartbeat_s);
  while (!heartbeat_wake_.wait_for(lock, period, [this] { return heartbeat_stop_; })) {
    try {
      store_->heartbeat(run_id_);
    } catch (const std::exception& e) {
      core::write_log(LogLevel::Debug, "kernel", cat("heartbeat not recorded: ", e.what()));
    }
  }
}

void RunSession::finish(const std::string& state) {
  if (run_id_ == 0 || finished_) return;
  finished_ = true;
  {
    std::lock_guard<std::mutex> lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  store_->end_run(run_id_, state);
}

std::shared_ptr<SearchSpace> RunSession::make_space(const std::string& name, Options options,
                                                    const Dataset* data) const {
  if (data) {
    const ProblemSpec p = data->spec();
    if (!options.has("input_channels")) options.set("input_channels", p.channels);
    if (!options.has("input_size")) options.set("input_size", p.height);
    if (!options.has("classes")) options.set("classes", p.classes);
  }
  return registry().create_space(name, options);
}

std::shared_ptr<SurrogateHandle> RunSession::make_surrogate(const std::string& name,
                                                            const Options& options) const {
  return std::make_shared<SurrogateHandle>(registry(), name, options);
}

std::uint32_t RunSession::space_abi_minor(const SearchSpace& space) const {
  // A space made outside the registry (by the kernel's own tests) is built with this SDK.
  const plugin::PluginInfo* info = registry().find(PluginKind::Space, space.name());
  return info ? info->abi_minor : kAbiMinor;
}

void RunSession::check_space_for(const SurrogateHandle& surrogate, const SearchSpace& space) const {
  // A surrogate differentiable in α calls SearchSpace::relaxed() and select() (ABI 1.4); on a
  // space built before them that would call past the end of its vtable.
  const std::uint32_t minor = space_abi_minor(space);
  if ((surrogate.plugin().capabilities() & kArchGradient) && surrogate.abi_minor() >= 4 &&
      minor < 4)
    throw UsageError(cat("surrogate '", surrogate.name(), "' runs relaxed networks, which space '",
                         space.name(), "' (built with ABI 1.", minor,
                         ") does not have: rebuild the space against SDK 1.4 or later"));
}

std::unique_ptr<KernelEvaluationService> RunSession::evaluations(
    std::shared_ptr<SurrogateHandle> surrogate, const SearchSpace& space, const Dataset* data,
    const EvalSettings& settings) {
  check_space_for(*surrogate, space);
  return std::make_unique<KernelEvaluationService>(std::move(surrogate), space, data, settings,
                                                   services_, store());
}

std::vector<Candidate> RunSession::search(Strategy& strategy, const std::string& strategy_name,
                                          std::shared_ptr<SurrogateHandle> surrogate,
                                          const SearchSpace& space, const Dataset* data,
                                          const EvalSettings& settings) {
  auto service = evaluations(surrogate, space, data, settings);
  const plugin::PluginInfo* info = registry().find(PluginKind::Strategy, strategy_name);
  std::unique_ptr<Abi10ScoreAdapter> adapter;
  if (info && info->abi_minor < 1)
    adapter = std::make_unique<Abi10ScoreAdapter>(surrogate->plugin(), services_.seed);
  SearchRequest req;
  req.surrogate = adapter ? static_cast<Surrogate*>(adapter.get()) : &surrogate->plugin();
  req.surrogate_key = service->key();
  req.space = &space;
  req.data = data;
  req.eval_batch_size = settings.batch_size;
  req.eval_images = settings.max_images;
  req.evaluations = service.get();
  req.space_abi_minor = space_abi_minor(space);
  req.surrogate_abi_minor = surrogate->abi_minor();
  core::KernelContext ctx(services_, strategy_name);
  std::vector<Candidate> top = strategy.run(ctx, req);
  service->log_summary(ctx.log());
  // A strategy may fit its surrogate (SMASH's and ADWP's do): later scores get the new state.
  if (surrogate->plugin().capabilities() & kTrainable) surrogate->retag();
  return top;
}

Evaluated RunSession::score(std::shared_ptr<SurrogateHandle> surrogate, const SearchSpace& space,
                            const Dataset* data, const std::vector<Architecture>& archs,
                            const EvalSettings& settings, const std::string& progress_label,
                            const std::function<void(const Evaluated&)>& each) {
  auto service = evaluations(surrogate, space, data, settings);
  core::KernelContext ctx(services_, surrogate->name());
  auto progress = ctx.progress(progress_label, static_cast<std::int64_t>(archs.size()));
  Evaluated all;
  for (const Architecture& arch : archs) {
    ctx.check_cancelled();
    Evaluated one = service->evaluate(ctx, {arch}, progress.get());
    if (each) each(one);
    for (auto& c : one.scored) all.scored.push_back(std::move(c));
    for (auto& f : one.failed) all.failed.push_back(std::move(f));
    if (one.stop) {
      all.stop = true;
      break;
    }
  }
  progress->finish();
  service->log_summary(ctx.log());
  return all;
}

std::unique_ptr<store::SqliteStore> RunSession::open_existing(const fs::path& results_root,
                                                              const std::string& experiment) {
  check_experiment_name(experiment);
  const fs::path db = results_root / experiment / "experiment.db";
  std::error_code ec;
  if (!fs::is_regular_file(db, ec))
    throw Error(cat("no experiment '", experiment, "' in ", results_root.string(), " (",
                    db.string(), " does not exist)"));
  auto store = store::SqliteStore::open(db);
  store->mark_interrupted(kStaleAfterS);
  return store;
}

}  // namespace hypernas::session
