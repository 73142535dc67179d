// ADWPNAS's architecture search (Zhang, Chen, Gu; §3.2.2 and Stage 2 of Algorithm 1), for any
// surrogate whose weights are a differentiable function of the architecture parameters
// (kArchGradient: generate_relaxed(), e.g. `adwp`) and any space with a relaxed network
// (SearchSpace::relaxed(), ABI 1.4: `nb201`, `darts`).
//
// Each step: the surrogate generates the relaxed network's weights from α (one block per
// arch_params() entry), the kernel's executor runs the network with probabilities softmax(α)
// on a batch, and the cross-entropy's gradient updates α by Adam (lr 3e-4, betas (0.5, 0.999),
// weight decay 1e-3: the paper's settings). That is basic-search (the GeneratingBlocks frozen,
// gate g_G off). In the epochs [cross_start, cross_end) it is cross-search: the same loss also
// updates the surrogate's relaxed_parameters() (the GeneratingBlocks) by SGD with momentum
// (lr 0.025, momentum 0.9, weight decay 3e-4: the paper's w_G optimizer); then basic-search
// again. α starts as init_std * N(0, 1) (DARTS's 1e-3 * randn; the paper says "randomly").
// Algorithm 1 computes the loss on x_train for both; alpha_split=valid draws α's batches from
// the validation split instead (first-order DARTS), an option.
//
// After each epoch it measures the relaxed network on `valid_images` validation images, derives
// the architecture discretize(α, keep) (T = 2 strongest ops per node), and records the epoch in
// the store (ResultStore::record_search_epoch: α, losses, accuracies, the derived
// architecture, which is recorded too), with its resume state (ResultStore::save_state). With
// intensive_k = K > 0 it also derives each epoch's intensive space O*_t
// (SearchSpace::intensive(α, K), kept in the epoch's note as JSON) and its superiority
// S(O*_t) over the last intensive_n epochs (intensive.h, Eqs. 2-3); the epoch of largest
// superiority is ADWP's choice of intensive space.
//
// Returned, scored through the kernel's evaluation service (with the surrogate's own state: a
// cross-search's changes to the GeneratingBlocks are undone when the search ends, so the
// surrogate's evaluation key stays true): the architecture of the final α (extra "final" = 1)
// and the one of the epoch of best relaxed validation accuracy ("best_valid" = 1), best score
// first. Ctrl-C or a time limit stops it between two steps: the state at that step is saved,
// and a rerun of the same experiment with the same options resumes there (resume = true).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <hypernas/hash.h>
#include <hypernas/intensive.h>
#include <hypernas/strategy.h>

#include "../../common/state_blob.h"

namespace {

using namespace hypernas;

/// Version of the resume state's layout.
constexpr std::uint32_t kResumeVersion = 1;
/// The envelope of the resume state (../../common/state_blob.h).
constexpr plugins::BlobFormat kResumeFormat{"gradient", "a gradient search state", "HNAS.GRD",
                                            kResumeVersion};

/// Everything a resumed search needs to continue exactly where it stopped.
struct SearchState {
  std::int64_t epoch = 0;  ///< The epoch in progress (or the next one, at step 0).
  std::int64_t step = 0;   ///< Steps of that epoch already taken.
  std::vector<at::Tensor> alphas, adam_m, adam_v;
  std::int64_t adam_t = 0;              ///< Adam's step count.
  std::vector<at::Tensor> gb_momentum;  ///< SGD momentum of the GeneratingBlocks (cross-search).
  std::string surrogate_state;          ///< The surrogate's state once cross-search changed it.
  double loss_sum = 0, correct = 0, seen = 0;  ///< The epoch's running training totals.
  double epoch_seconds = 0;                    ///< Time spent in the epoch so far.
};

/// `ts` as their count and each a float tensor.
void write_tensors(plugins::BlobWriter& w, const std::vector<at::Tensor>& ts) {
  w.pod<std::uint64_t>(ts.size());
  for (const auto& t : ts) w.float_tensor(t);
}

/// Tensors written by write_tensors(), named `what` and their index in the errors.
std::vector<at::Tensor> read_tensors(plugins::BlobReader& r, const std::string& what) {
  const std::uint64_t n = r.pod<std::uint64_t>(cat("the ", what, " count"));
  r.check(n <= r.size(), n, " ", what, " tensors");
  std::vector<at::Tensor> out;
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(r.float_tensor(cat(what, " ", i)));
  return out;
}

std::string save_state_blob(const SearchState& s) {
  plugins::BlobWriter w;
  w.pod<std::int64_t>(s.epoch);
  w.pod<std::int64_t>(s.step);
  write_tensors(w, s.alphas);
  write_tensors(w, s.adam_m);
  write_tensors(w, s.adam_v);
  w.pod<std::int64_t>(s.adam_t);
  write_tensors(w, s.gb_momentum);
  w.str(s.surrogate_state);
  w.pod<double>(s.loss_sum);
  w.pod<double>(s.correct);
  w.pod<double>(s.seen);
  w.pod<double>(s.epoch_seconds);
  return plugins::seal_blob(kResumeFormat, w.data());
}

/// The state save_state_blob() wrote; `what` names the blob in the errors.
SearchState load_state_blob(const std::string& blob, const std::string& what) {
  try {
    plugins::BlobReader r(plugins::open_blob(kResumeFormat, blob).payload, "gradient");
    SearchState s;
    s.epoch = r.pod<std::int64_t>("the epoch");
    s.step = r.pod<std::int64_t>("the step");
    s.alphas = read_tensors(r, "alpha");
    s.adam_m = read_tensors(r, "adam.m");
    s.adam_v = read_tensors(r, "adam.v");
    s.adam_t = r.pod<std::int64_t>("Adam's step count");
    s.gb_momentum = read_tensors(r, "gb.momentum");
    s.surrogate_state = r.str("the surrogate's state");
    s.loss_sum = r.pod<double>("the epoch's loss");
    s.correct = r.pod<double>("the epoch's correct count");
    s.seen = r.pod<double>("the epoch's image count");
    s.epoch_seconds = r.pod<double>("the epoch's time");
    r.finish("the epoch's time");
    return s;
  } catch (const Error& e) {
    throw Error(cat(e.what(), " (", what,
                    "); delete the experiment's gradient state or pass resume=false"));
  }
}

/// Gives the surrogate its state back when the search ends, however it ends.
class SurrogateRestore {
 public:
  explicit SurrogateRestore(Surrogate& s) : surrogate_(s) {}
  ~SurrogateRestore() {
    if (!snapshot_) return;
    try {
      surrogate_.load_state(*snapshot_);
    } catch (...) {  // NOTE: a destructor must not throw; restore() reports the error instead
    }
  }
  SurrogateRestore(const SurrogateRestore&) = delete;
  SurrogateRestore& operator=(const SurrogateRestore&) = delete;
  /// Takes the snapshot once, before the first change.
  void before_change() {
    if (!snapshot_) snapshot_ = surrogate_.save_state();
  }
  /// Restores now (reporting an error), so the candidates are scored with the original state.
  void restore() {
    if (!snapshot_) return;
    const std::string s = std::move(*snapshot_);
    snapshot_.reset();
    surrogate_.load_state(s);
  }
  bool changed() const { return snapshot_.has_value(); }

 private:
  Surrogate& surrogate_;
  std::optional<std::string> snapshot_;
};

/// The L2 distance between two lists of tensors of the same shapes (b moved to a's device: a
/// surrogate may move its tensors when first used on another device).
double tensor_distance(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    sum += (a[i].detach() - b[i].detach().to(a[i].device()))
               .to(at::kDouble)
               .pow(2)
               .sum()
               .item<double>();
  return std::sqrt(sum);
}

class GradientStrategy final : public Strategy {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("epochs", 12, "search epochs (the paper: I_total - I_train = 60)", 1);
      t.add_int("steps", 20, "training batches per epoch (0: one pass over the split)", 0);
      t.add_int("batch", 64, "images per step (the paper: 98)", 1);
      t.add_int("cross_start", 6,
                "first epoch of cross-search (the paper: 30 of 60); = cross_end: none", 0);
      t.add_int("cross_end", 8, "epoch after the last of cross-search (the paper: 40 of 60)", 0);
      t.add_real("alpha_lr", 3e-4, "Adam learning rate of the architecture parameters", 0.0);
      t.add_real("alpha_beta1", 0.5, "Adam beta1 of the architecture parameters", 0.0, 1.0);
      t.add_real("alpha_beta2", 0.999, "Adam beta2 of the architecture parameters", 0.0, 1.0);
      t.add_real("alpha_wd", 1e-3, "Adam weight decay of the architecture parameters", 0.0);
      t.add_real("init_std", 1e-3, "standard deviation of the initial architecture parameters",
                 0.0);
      t.add_real("gb_lr", 0.025, "SGD learning rate of the GeneratingBlocks in cross-search", 0.0);
      t.add_real("gb_momentum", 0.9, "SGD momentum of the GeneratingBlocks", 0.0, 1.0);
      t.add_real("gb_wd", 3e-4, "SGD weight decay of the GeneratingBlocks", 0.0);
      t.add_string("alpha_split", "train",
                   "split the steps' batches come from: train (Algorithm 1) or valid "
                   "(first-order DARTS)",
                   {"train", "valid"});
      t.add_int("keep", 2, "T: strongest ops kept per node by discretize()", 1);
      t.add_int("valid_images", 1000,
                "validation images the relaxed network is measured on after each epoch (0: all)",
                0);
      t.add_int("intensive_k", 0,
                "K > 0: derive each epoch's intensive space of K ops per node and its "
                "superiority (ADWP §3.1.2)",
                0);
      t.add_int("intensive_n", 2, "n: epochs the superiority backtracks", 0);
      t.add_bool("resume", true, "continue a stopped search of the same key from its last step");
      return t;
    }();
    return table;
  }

  explicit GradientStrategy(const Options& o)
      : options_(o),
        epochs_(o.get_int("epochs")),
        steps_(o.get_int("steps")),
        batch_(o.get_int("batch")),
        cross_start_(o.get_int("cross_start")),
        cross_end_(o.get_int("cross_end")),
        alpha_lr_(o.get_real("alpha_lr")),
        beta1_(o.get_real("alpha_beta1")),
        beta2_(o.get_real("alpha_beta2")),
        alpha_wd_(o.get_real("alpha_wd")),
        init_std_(o.get_real("init_std")),
        gb_lr_(o.get_real("gb_lr")),
        gb_momentum_(o.get_real("gb_momentum")),
        gb_wd_(o.get_real("gb_wd")),
        alpha_split_(o.get_string("alpha_split") == "valid" ? Split::Valid : Split::Train),
        keep_(o.get_int("keep")),
        valid_images_(o.get_int("valid_images")),
        intensive_k_(o.get_int("intensive_k")),
        intensive_n_(o.get_int("intensive_n")),
        resume_(o.get_bool("resume")) {
    if (cross_end_ < cross_start_)
      throw UsageError(cat("gradient: cross_end (", cross_end_, ") must be >= cross_start (",
                           cross_start_, "); equal values mean no cross-search"));
  }

  std::vector<Candidate> run(Context& ctx, const SearchRequest& req) override {
    check_request(ctx, req);
    Surrogate& surrogate = *req.surrogate;
    const SearchSpace& space = *req.space;
    const Executor& exec = *ctx.executor();
    const Relaxation relax = space.relaxed();
    const std::vector<ArchParamSpec> specs = space.arch_params();

    // The run's key: what makes two searches the same search.
    const std::uint64_t seed = ctx.rng().next_u64();
    std::string ident = cat(options_.canonical(), "|", req.surrogate_key, "|", space.name(), "|",
                            relax.network.text, "|", req.data->identity(), "|", seed);
    for (const auto& s : specs) {
      ident += "|" + s.name;
      for (auto d : s.shape) ident += cat(",", d);
    }
    const std::string run_key = cat("gradient-", hex64(fnv1a64(ident)));
    ResultStore& store = ctx.store();

    SurrogateRestore restore(surrogate);
    SearchState st;
    std::vector<SearchEpoch> history;
    if (resume_) {
      if (auto blob = store.load_state("gradient", run_key)) {
        st = load_state_blob(*blob, cat("the saved gradient search state of run ", run_key));
        check_shapes(st.alphas, specs, run_key);
        if (!st.surrogate_state.empty()) {
          restore.before_change();
          surrogate.load_state(st.surrogate_state);
        }
        history = store.search_epochs(run_key);
        history.erase(std::remove_if(history.begin(), history.end(),
                                     [&](const SearchEpoch& e) { return e.epoch >= st.epoch; }),
                      history.end());
        ctx.log().info(cat("resuming run ", run_key, " at epoch ", st.epoch, ", step ", st.step,
                           " (", history.size(), " epochs recorded)"));
      }
    }
    if (st.alphas.empty()) {
      at::Generator gen = at::detail::createCPUGenerator(seed);
      for (const auto& s : specs) {
        st.alphas.push_back(at::randn(s.shape, gen, at::kFloat) * init_std_);
        st.adam_m.push_back(at::zeros(s.shape, at::kFloat));
        st.adam_v.push_back(at::zeros(s.shape, at::kFloat));
      }
    }
    const c10::Device device = ctx.device();
    std::vector<at::Tensor> alphas, m, v;
    for (std::size_t b = 0; b < st.alphas.size(); ++b) {
      alphas.push_back(st.alphas[b].to(device).set_requires_grad(true));
      m.push_back(st.adam_m[b].to(device));
      v.push_back(st.adam_v[b].to(device));
    }
    std::vector<at::Tensor> gb_momentum;
    for (auto& t : st.gb_momentum) gb_momentum.push_back(t.to(device));
    std::int64_t adam_t = st.adam_t;

    const std::int64_t steps_per_epoch =
        steps_ > 0 ? steps_ : std::max<std::int64_t>(1, req.data->size(alpha_split_) / batch_);
    auto progress = ctx.progress("gradient search", epochs_ * steps_per_epoch);
    progress->advance(st.epoch * steps_per_epoch + st.step);
    // One generation first: a surrogate may build its model (and so its relaxed_parameters())
    // lazily, on the first call that shows it the space.
    {
      at::NoGradGuard no_grad;
      surrogate.generate_relaxed(ctx, space, alphas);
    }
    const bool any_cross = cross_end_ > cross_start_ && cross_start_ < epochs_;
    if (any_cross && surrogate.relaxed_parameters().empty())
      throw UsageError(cat("gradient: cross-search (epochs [", cross_start_, ", ", cross_end_,
                           ")) trains the surrogate's GeneratingBlocks, but '", req.surrogate_key,
                           "' exposes none (relaxed_parameters()); set cross_start = cross_end "
                           "for basic-search only"));
    // gb_change of an epoch: the GeneratingBlocks' distance from where this run (or resume)
    // started.
    std::vector<at::Tensor> gb_start;
    for (const auto& p : surrogate.relaxed_parameters()) gb_start.push_back(p.detach().clone());

    // Saves the state at (epoch, step): on Ctrl-C between two steps and after every epoch.
    auto save = [&](std::int64_t epoch, std::int64_t step, double loss_sum, double correct,
                    double seen, double seconds) {
      SearchState s;
      s.epoch = epoch;
      s.step = step;
      for (std::size_t b = 0; b < alphas.size(); ++b) {
        s.alphas.push_back(alphas[b].detach().cpu());
        s.adam_m.push_back(m[b].cpu());
        s.adam_v.push_back(v[b].cpu());
      }
      s.adam_t = adam_t;
      for (auto& t : gb_momentum) s.gb_momentum.push_back(t.cpu());
      if (restore.changed()) s.surrogate_state = surrogate.save_state();
      s.loss_sum = loss_sum;
      s.correct = correct;
      s.seen = seen;
      s.epoch_seconds = seconds;
      store.save_state("gradient", run_key, save_state_blob(s));
    };

    for (std::int64_t epoch = st.epoch; epoch < epochs_; ++epoch) {
      const bool cross = epoch >= cross_start_ && epoch < cross_end_;
      const auto t0 = std::chrono::steady_clock::now();
      const bool resumed_here = epoch == st.epoch;
      double loss_sum = resumed_here ? st.loss_sum : 0;
      double correct = resumed_here ? st.correct : 0;
      double seen = resumed_here ? st.seen : 0;
      const double seconds_before = resumed_here ? st.epoch_seconds : 0;
      const std::int64_t first_step = resumed_here ? st.step : 0;
      auto elapsed = [&] {
        return seconds_before +
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      };
      // The epoch's batches depend only on the run's seed and the epoch: a resumed epoch sees
      // the same ones, skipping those already taken.
      Rng batch_rng(seed ^ (static_cast<std::uint64_t>(epoch + 1) * 0x9E3779B97F4A7C15ull));
      BatchOptions bo;
      bo.batch_size = batch_;
      bo.shuffle = true;
      bo.drop_last = true;
      std::unique_ptr<BatchStream> stream = req.data->batches(alpha_split_, bo, batch_rng);
      for (std::int64_t s = 0; s < first_step; ++s)
        if (!stream->next()) stream = req.data->batches(alpha_split_, bo, batch_rng);

      for (std::int64_t step = first_step; step < steps_per_epoch; ++step) {
        if (ctx.cancelled()) {
          save(epoch, step, loss_sum, correct, seen, elapsed());
          ctx.check_cancelled();
        }
        std::optional<Batch> batch = stream->next();
        if (!batch) {  // a short split: start another pass
          stream = req.data->batches(alpha_split_, bo, batch_rng);
          batch = stream->next();
          HYPERNAS_CHECK(batch.has_value(), "gradient: the ", split_name(alpha_split_),
                         " split of '", req.data->name(), "' has fewer than ", batch_,
                         " images (batch)");
        }
        std::vector<at::Tensor> gb;
        if (cross) {
          restore.before_change();
          gb = surrogate.relaxed_parameters();
        }
        const WeightMap weights = surrogate.generate_relaxed(ctx, space, alphas);
        std::vector<at::Tensor> probs;
        for (const auto& a : alphas) probs.push_back(at::softmax(a, -1));
        const at::Tensor logits = exec.forward_relaxed(relax, weights, probs, batch->images).back();
        const at::Tensor loss = at::nll_loss(at::log_softmax(logits, 1), batch->labels);
        const double value = loss.item<double>();
        if (!std::isfinite(value))
          throw Error(cat("gradient: the loss is ", value, " at epoch ", epoch, ", step ", step,
                          " of run ", run_key,
                          "; everything up to the last epoch is recorded (try a smaller "
                          "alpha_lr or gb_lr)"));
        std::vector<at::Tensor> inputs = alphas;
        inputs.insert(inputs.end(), gb.begin(), gb.end());
        const std::vector<at::Tensor> grads =
            torch::autograd::grad({loss}, inputs, {}, /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true);
        {
          at::NoGradGuard no_grad;
          ++adam_t;
          const double bc1 = 1 - std::pow(beta1_, static_cast<double>(adam_t));
          const double bc2 = 1 - std::pow(beta2_, static_cast<double>(adam_t));
          for (std::size_t b = 0; b < alphas.size(); ++b) {
            if (!grads[b].defined()) continue;
            const at::Tensor g = grads[b] + alpha_wd_ * alphas[b];  // torch Adam's L2 decay
            m[b].mul_(beta1_).add_(g, 1 - beta1_);
            v[b].mul_(beta2_).addcmul_(g, g, 1 - beta2_);
            const at::Tensor denom = (v[b] / bc2).sqrt_().add_(1e-8);
            alphas[b].sub_(m[b] / denom, alpha_lr_ / bc1);
          }
          if (cross) {
            if (gb_momentum.size() != gb.size()) {
              gb_momentum.clear();
              for (const auto& p : gb) gb_momentum.push_back(at::zeros_like(p));
            }
            for (std::size_t i = 0; i < gb.size(); ++i) {
              const at::Tensor& g = grads[alphas.size() + i];
              if (!g.defined()) continue;
              gb_momentum[i].mul_(gb_momentum_).add_(g + gb_wd_ * gb[i]);
              gb[i].sub_(gb_momentum[i], gb_lr_);
            }
          }
        }
        loss_sum += value * static_cast<double>(batch->labels.size(0));
        correct += logits.argmax(1).eq(batch->labels).sum().item<double>();
        seen += static_cast<double>(batch->labels.size(0));
        progress->advance(1, cat("epoch ", epoch + 1, "/", epochs_, cross ? " cross" : " basic",
                                 " loss ", value));
      }

      // The epoch's record: validation of the relaxed network, the derived architecture.
      SearchEpoch rec;
      rec.run = run_key;
      rec.strategy = "gradient";
      rec.epoch = epoch;
      rec.phase = cross ? "cross" : "basic";
      rec.train_loss = seen > 0 ? loss_sum / seen : std::numeric_limits<double>::quiet_NaN();
      rec.train_accuracy = seen > 0 ? correct / seen : std::numeric_limits<double>::quiet_NaN();
      validate(ctx, req, relax, alphas, &rec.valid_loss, &rec.valid_accuracy);
      std::vector<at::Tensor> cpu_alphas;
      for (const auto& a : alphas) {
        cpu_alphas.push_back(a.detach().cpu().contiguous());
        const at::Tensor& c = cpu_alphas.back();
        rec.alphas.emplace_back(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
        rec.alpha_shapes.emplace_back(c.sizes().begin(), c.sizes().end());
      }
      const Architecture derived = space.discretize(cpu_alphas, keep_);
      rec.arch_hash = store.record_architecture(derived);
      rec.arch_text = derived.text;
      rec.extra["gb_change"] = tensor_distance(surrogate.relaxed_parameters(), gb_start);
      if (intensive_k_ > 0) {
        const IntensiveSpace o = space.intensive(cpu_alphas, intensive_k_);
        rec.note = o.json;
        history.push_back(rec);
        const auto sup = superiorities(space, history);
        if (!std::isnan(sup.back())) rec.extra["superiority"] = sup.back();
        history.pop_back();
      }
      rec.seconds = elapsed();
      store.record_search_epoch(rec);
      history.push_back(rec);
      save(epoch + 1, 0, 0, 0, 0, 0);
      ctx.log().info(cat("epoch ", epoch + 1, "/", epochs_, " (", rec.phase, "): train loss ",
                         rec.train_loss, ", accuracy ", rec.train_accuracy, "; valid accuracy ",
                         rec.valid_accuracy, "; derived ", derived.text));
      std::map<std::string, double> event = {
          {"epoch", static_cast<double>(epoch)}, {"cross", cross ? 1.0 : 0.0},
          {"train_loss", rec.train_loss},        {"train_accuracy", rec.train_accuracy},
          {"valid_loss", rec.valid_loss},        {"valid_accuracy", rec.valid_accuracy},
          {"gb_change", rec.extra["gb_change"]}, {"seconds", rec.seconds}};
      if (!ctx.notify("search_epoch", event)) {
        ctx.log().info(cat("stopped by the script after epoch ", epoch + 1));
        break;
      }
    }
    progress->finish();
    restore.restore();
    return candidates(ctx, req, history);
  }

 private:
  void check_request(Context& ctx, const SearchRequest& req) const {
    HYPERNAS_CHECK(req.surrogate && req.space && req.evaluations,
                   "gradient: the request lacks a surrogate, a space or an evaluation service");
    auto built = [](std::uint32_t minor) { return cat("ABI 1.", minor); };
    if (req.space_abi_minor < 4)
      throw UsageError(cat("gradient: space '", req.space->name(), "' was built with ",
                           built(req.space_abi_minor),
                           "; relaxed networks came with ABI 1.4: rebuild it against this SDK"));
    if (req.surrogate_abi_minor < 4)
      throw UsageError(cat("gradient: surrogate '", req.surrogate_key, "' was built with ",
                           built(req.surrogate_abi_minor),
                           "; gradient search needs ABI 1.4 (relaxed_parameters()): rebuild it"));
    if (!(req.surrogate->capabilities() & kArchGradient))
      throw UsageError(cat("gradient: surrogate '", req.surrogate_key,
                           "' is not differentiable in architecture parameters (no "
                           "generate_relaxed()); use one with the arch_gradient capability, "
                           "such as adwp"));
    if (req.space->arch_params().empty())
      throw UsageError(cat("gradient: space '", req.space->name(),
                           "' has no architecture parameters (no continuous relaxation)"));
    HYPERNAS_CHECK(req.data != nullptr, "gradient: needs data (pass data = nas.dataset(...))");
    HYPERNAS_CHECK(ctx.executor() != nullptr, "gradient: this kernel has no graph executor");
  }

  void check_shapes(const std::vector<at::Tensor>& alphas, const std::vector<ArchParamSpec>& specs,
                    const std::string& run_key) const {
    HYPERNAS_CHECK(alphas.size() == specs.size(), "gradient: the saved state of run ", run_key,
                   " has ", alphas.size(), " alpha blocks, the space has ", specs.size());
    for (std::size_t b = 0; b < specs.size(); ++b)
      HYPERNAS_CHECK(alphas[b].sizes() == at::IntArrayRef(specs[b].shape),
                     "gradient: the saved state of run ", run_key, " has block ", specs[b].name,
                     " of shape ", alphas[b].sizes(), ", the space's is ",
                     at::IntArrayRef(specs[b].shape));
  }

  /// Loss and accuracy of the relaxed network with α on valid_images validation images.
  void validate(Context& ctx, const SearchRequest& req, const Relaxation& relax,
                const std::vector<at::Tensor>& alphas, double* loss, double* accuracy) const {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> detached;
    std::vector<at::Tensor> probs;
    for (const auto& a : alphas) {
      detached.push_back(a.detach());
      probs.push_back(at::softmax(detached.back(), -1));
    }
    const WeightMap weights = req.surrogate->generate_relaxed(ctx, *req.space, detached);
    BatchOptions bo;
    bo.batch_size = req.eval_batch_size;
    bo.limit = valid_images_;
    auto stream = req.data->batches(Split::Valid, bo);
    double sum = 0, correct = 0, seen = 0;
    while (auto batch = stream->next()) {
      const at::Tensor logits =
          ctx.executor()->forward_relaxed(relax, weights, probs, batch->images).back();
      const double n = static_cast<double>(batch->labels.size(0));
      sum += at::nll_loss(at::log_softmax(logits, 1), batch->labels).item<double>() * n;
      correct += logits.argmax(1).eq(batch->labels).sum().item<double>();
      seen += n;
    }
    *loss = seen > 0 ? sum / seen : std::numeric_limits<double>::quiet_NaN();
    *accuracy = seen > 0 ? correct / seen : std::numeric_limits<double>::quiet_NaN();
  }

  /// The superiority of every epoch of `history` (NaN before epoch n), from each epoch's α.
  std::vector<double> superiorities(const SearchSpace& space,
                                    const std::vector<SearchEpoch>& history) const {
    std::vector<IntensiveSpace> spaces;
    std::vector<double> accuracy;
    for (const auto& e : history) {
      std::vector<at::Tensor> a;
      for (std::size_t b = 0; b < e.alphas.size(); ++b)
        a.push_back(
            at::tensor(at::ArrayRef<float>(e.alphas[b]), at::kFloat).reshape(e.alpha_shapes[b]));
      spaces.push_back(space.intensive(a, intensive_k_));
      accuracy.push_back(e.valid_accuracy);
    }
    std::vector<double> out;
    const auto n = static_cast<std::size_t>(intensive_n_);
    for (std::size_t t = 0; t < spaces.size(); ++t)
      out.push_back(t < n ? std::numeric_limits<double>::quiet_NaN()
                          : superiority(spaces, accuracy, t, n, intensive_k_));
    return out;
  }

  /// The final and the best-validated architectures, scored through the evaluation service.
  std::vector<Candidate> candidates(Context& ctx, const SearchRequest& req,
                                    const std::vector<SearchEpoch>& history) const {
    if (history.empty()) return {};
    const SearchEpoch& last = history.back();
    std::size_t best = 0;
    for (std::size_t i = 1; i < history.size(); ++i)
      if (history[i].valid_accuracy > history[best].valid_accuracy) best = i;
    std::optional<std::size_t> chosen_intensive;
    std::vector<double> sup;
    if (intensive_k_ > 0 && history.size() > static_cast<std::size_t>(intensive_n_)) {
      sup = superiorities(*req.space, history);
      std::size_t t = static_cast<std::size_t>(intensive_n_);
      for (std::size_t i = t; i < sup.size(); ++i)
        if (sup[i] > sup[t]) t = i;
      chosen_intensive = t;
      ctx.log().info(cat("intensive space of largest superiority: epoch ", history[t].epoch + 1,
                         " (S = ", sup[t], ")"));
    }
    std::vector<Architecture> archs = {req.space->parse(last.arch_text)};
    const bool two = history[best].arch_text != last.arch_text;
    if (two) archs.push_back(req.space->parse(history[best].arch_text));
    Evaluated e = req.evaluations->evaluate(ctx, archs, nullptr);
    for (Candidate& c : e.scored) {
      const bool is_final = c.arch.text == last.arch_text;
      const SearchEpoch& from = is_final ? last : history[best];
      c.score.extra["final"] = is_final ? 1 : 0;
      c.score.extra["best_valid"] = c.arch.text == history[best].arch_text ? 1 : 0;
      c.score.extra["epoch"] = static_cast<double>(from.epoch);
      c.score.extra["relaxed_valid_accuracy"] = from.valid_accuracy;
      if (chosen_intensive) {
        c.score.extra["intensive_epoch"] = static_cast<double>(history[*chosen_intensive].epoch);
        c.score.extra["superiority"] = sup[*chosen_intensive];
      }
    }
    for (const Failure& f : e.failed)
      ctx.log().warn(cat("the surrogate could not score the derived architecture ", f.arch.text,
                         ": ", f.reason));
    std::stable_sort(e.scored.begin(), e.scored.end(), [](const Candidate& a, const Candidate& b) {
      return a.score.value > b.score.value;
    });
    return std::move(e.scored);
  }

  Options options_;
  std::int64_t epochs_, steps_, batch_, cross_start_, cross_end_;
  double alpha_lr_, beta1_, beta2_, alpha_wd_, init_std_, gb_lr_, gb_momentum_, gb_wd_;
  Split alpha_split_;
  std::int64_t keep_, valid_images_, intensive_k_, intensive_n_;
  bool resume_;
};

}  // namespace

HYPERNAS_PLUGIN(Strategy, GradientStrategy, "gradient", "1.0.0",
                "ADWP's gradient search over architecture parameters: basic-search and "
                "cross-search (needs a surrogate with generate_relaxed and a relaxed space)")
