// A third-party activation-based surrogate, written against the installed SDK only: NASWOT
// (Mellor et al., "Neural Architecture Search without Training", ICML 2021). For one mini-batch
// of N images and a network at its initial weights, every ReLU unit gives each image a binary
// code (active or not); K_H[i][j] is the number of units on which images i and j agree, and
// the score is log|det K_H|. Networks that tell the images apart score higher.
//
// What it uses of the SDK (ABI 1.1): Executor::forward_capture to read every ReLU output,
// Executor::init_weights for the initial weights nas.train uses, ScoreRequest::seeds for the
// per-evaluation seed, Dataset::batches without an Rng for the same mini-batch every time, and
// ParamTable::score_neutral for an option that changes no score.
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <hypernas/surrogate.h>

namespace {

using namespace hypernas;

class NaswotSurrogate final : public Surrogate {
 public:
  static const ParamTable& params() noexcept {
    static const ParamTable table = [] {
      ParamTable t;
      t.add_int("batch", 32, "images in the mini-batch (N: K_H is N x N)", 2, 1024);
      t.add_bool("report_units", false, "log the number of ReLU units per architecture")
          .score_neutral();
      return t;
    }();
    return table;
  }
  explicit NaswotSurrogate(const Options& o)
      : batch_(o.get_int("batch")), report_(o.get_bool("report_units")) {}

  std::uint32_t capabilities() const override { return kNeedsData | kUsesSeed; }
  void fit(Context&, const FitRequest&) override {}

  std::vector<Score> score(Context& ctx, const ScoreRequest& r) override {
    const Executor* exec = ctx.executor();
    HYPERNAS_CHECK(exec && r.data, "naswot: needs the kernel's executor and a dataset");
    HYPERNAS_CHECK(r.seeds.size() == r.archs.size(), "naswot: needs one seed per architecture");
    BatchOptions bo;
    bo.batch_size = batch_;
    auto stream = r.data->batches(Split::Valid, bo);  // in order: the same batch every call
    std::optional<Batch> batch = stream->next();
    HYPERNAS_CHECK(batch && batch->images.size(0) == batch_, "naswot: the valid split of '",
                   r.data->name(), "' has fewer than ", batch_, " images");
    c10::NoGradGuard no_grad;
    std::vector<Score> out;
    for (std::size_t i = 0; i < r.archs.size(); ++i) {
      const Architecture& arch = *r.archs[i];
      const WeightMap weights = exec->init_weights(arch, r.seeds[i], ctx.device());
      at::Tensor k = at::zeros({batch_, batch_}, batch->images.options().dtype(at::kDouble));
      std::int64_t units = 0;
      CaptureOptions capture;
      capture.observer = [&](const OpNode& node, const at::Tensor& y) {
        if (node.op != "relu") return;
        const at::Tensor codes = (y.reshape({batch_, -1}) > 0).to(at::kDouble);
        k += codes.mm(codes.t()) + (1 - codes).mm((1 - codes).t());
        units += codes.size(1);
      };
      exec->forward_capture(arch, weights, batch->images, capture);
      if (report_) ctx.log().info(cat(arch.text, ": ", units, " ReLU units"));
      if (units == 0) throw Error(cat("naswot: ", arch.text, " has no ReLU to read codes from"));
      // NOTE: two images with the same codes make K_H singular (log det = -inf), as every image
      // does in a cell whose edges are all `none`. One unit of ridge keeps such a network at
      // a defined, low score (K_H's entries count up to `units`, so the ridge moves the others
      // by a negligible amount).
      k.diagonal().add_(1.0);
      const auto [sign, logdet] = at::slogdet(k);
      Score s;
      s.value = logdet.item<double>();
      s.extra["relu_units"] = static_cast<double>(units);
      out.push_back(s);
    }
    return out;
  }

 private:
  std::int64_t batch_;
  bool report_;
};

}  // namespace

HYPERNAS_PLUGIN(Surrogate, NaswotSurrogate, "naswot_example", "1.0.0",
                "third-party example: NASWOT's log|det K_H| of ReLU codes at initialisation")
