/// @file image_dataset.cpp
/// @brief ImageDataset: the seeded split, normalisation statistics, and batches made on the
/// device (gather, crop + flip in one gather, float conversion, normalisation, cutout).

#include <ATen/ATen.h>
#include <hypernas/context.h>
#include <hypernas/error.h>

#include <algorithm>
#include <cmath>

#include "kernel/data/dataset.h"

namespace hypernas::data {

struct ImageDataset::State {
  DatasetOptions options;  // resolved, mean and stddev filled in
  c10::Device device{c10::kCPU};
  std::vector<std::string> classes;
  ProblemSpec spec;
  at::Tensor train_images, train_labels;  // on the device
  at::Tensor test_images, test_labels;    // on the device (undefined when there is no test set)
  std::int64_t test_size = 0;
  at::Tensor train_index, valid_index;  // int64, CPU, ascending
  at::Tensor scale, shift;              // float [1, C, 1, 1] on the device: x * scale - shift
};

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// A permutation of [0, n) from `seed` alone: splitmix64 and Fisher-Yates with a
/// multiply-shift bound, so the split is the same with any standard library.
std::vector<std::int64_t> seeded_permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  std::uint64_t state = seed;
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto bound = static_cast<unsigned __int128>(i + 1);
    const auto j = static_cast<std::int64_t>(
        (static_cast<unsigned __int128>(splitmix64(state)) * bound) >> 64);
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

at::Tensor sorted_index(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<std::int64_t>());
  return t;
}

/// Per-channel mean and standard deviation (population) of the images at `index`, in [0, 1].
void channel_stats(const at::Tensor& images, const at::Tensor& index, std::vector<double>& mean,
                   std::vector<double>& stddev) {
  const std::int64_t c = images.size(1), plane = images.size(2) * images.size(3);
  const auto* px = images.data_ptr<std::uint8_t>();
  const auto* idx = index.data_ptr<std::int64_t>();
  std::vector<std::uint64_t> sum(static_cast<std::size_t>(c)), sq(static_cast<std::size_t>(c));
  for (std::int64_t i = 0; i < index.size(0); ++i) {
    for (std::int64_t k = 0; k < c; ++k) {
      const std::uint8_t* p = px + (idx[i] * c + k) * plane;
      std::uint64_t s = 0, q = 0;
      for (std::int64_t j = 0; j < plane; ++j) {
        const std::uint64_t v = p[j];
        s += v;
        q += v * v;
      }
      sum[static_cast<std::size_t>(k)] += s;
      sq[static_cast<std::size_t>(k)] += q;
    }
  }
  const double count = static_cast<double>(index.size(0)) * static_cast<double>(plane);
  mean.assign(static_cast<std::size_t>(c), 0.0);
  stddev.assign(static_cast<std::size_t>(c), 1.0);
  for (std::size_t k = 0; k < static_cast<std::size_t>(c); ++k) {
    const double m = static_cast<double>(sum[k]) / count / 255.0;
    const double var = static_cast<double>(sq[k]) / count / (255.0 * 255.0) - m * m;
    mean[k] = m;
    const double sd = std::sqrt(std::max(var, 0.0));
    stddev[k] = sd > 1e-8 ? sd : 1.0;  // a constant channel: shift only
  }
}

}  // namespace

/// One pass over a split.
class ImageDataset::Stream final : public BatchStream {
 public:
  Stream(std::shared_ptr<const ImageDataset::State> state, bool test, at::Tensor order,
         const BatchOptions& options, bool augment, std::uint64_t augment_seed)
      : state_(std::move(state)),
        images_(test ? state_->test_images : state_->train_images),
        labels_(test ? state_->test_labels : state_->train_labels),
        order_(order.to(state_->device)),
        options_(options),
        augment_(augment),
        rng_(augment_seed) {
    end_ = order_.size(0);
    if (options_.limit > 0) end_ = std::min(end_, options_.limit);
  }

  std::optional<Batch> next() override {
    const std::int64_t count = std::min(options_.batch_size, end_ - pos_);
    if (count <= 0 || (options_.drop_last && count < options_.batch_size)) {
      pos_ = end_;
      return std::nullopt;
    }
    const at::Tensor idx = order_.slice(0, pos_, pos_ + count);
    pos_ += count;
    at::Tensor x = images_.index_select(0, idx);
    const auto& o = state_->options;
    const std::int64_t pad = augment_ ? *o.crop_padding : 0;
    const bool flip = augment_ && *o.flip;
    const std::int64_t cut = augment_ ? o.cutout : 0;
    at::Tensor draws;
    if (pad > 0 || flip || cut > 0) draws = draw(count, pad, flip, cut, x.size(2), x.size(3));
    if (pad > 0 || flip) x = crop_flip(x, draws, pad, flip);
    at::Tensor images = x.to(at::kFloat);
    images.mul_(state_->scale).sub_(state_->shift);
    if (cut > 0) apply_cutout(images, draws, cut);
    return Batch{images, labels_.index_select(0, idx)};
  }

 private:
  /// Per-example draws [B, 5] (crop row offset, crop column offset, flip, cutout centre row,
  /// cutout centre column), made on the CPU in a fixed order so any device gives the same batch.
  at::Tensor draw(std::int64_t count, std::int64_t pad, bool flip, std::int64_t cut, std::int64_t h,
                  std::int64_t w) {
    at::Tensor d = at::zeros({count, 5}, at::kLong);
    auto* p = d.data_ptr<std::int64_t>();
    const auto span = static_cast<std::uint64_t>(2 * pad + 1);
    for (std::int64_t i = 0; i < count; ++i, p += 5) {
      if (pad > 0) {
        p[0] = static_cast<std::int64_t>(rng_.uniform_int(span));
        p[1] = static_cast<std::int64_t>(rng_.uniform_int(span));
      }
      if (flip) p[2] = static_cast<std::int64_t>(rng_.uniform_int(2));
      if (cut > 0) {
        p[3] = static_cast<std::int64_t>(rng_.uniform_int(static_cast<std::uint64_t>(h)));
        p[4] = static_cast<std::int64_t>(rng_.uniform_int(static_cast<std::uint64_t>(w)));
      }
    }
    return d.to(state_->device);
  }

  /// Random crop of the zero-padded images and horizontal flip, as two gathers on uint8.
  at::Tensor crop_flip(const at::Tensor& x, const at::Tensor& draws, std::int64_t pad,
                       bool flip) const {
    const std::int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const auto lopt = at::TensorOptions().dtype(at::kLong).device(state_->device);
    const at::Tensor padded = pad > 0 ? at::constant_pad_nd(x, {pad, pad, pad, pad}, 0) : x;
    const at::Tensor ar_h = at::arange(h, lopt).view({1, h});
    at::Tensor ar_w = at::arange(w, lopt).view({1, w});
    at::Tensor cols = ar_w.expand({b, w});
    if (flip) {
      const at::Tensor flipped = draws.select(1, 2).unsqueeze(1).to(at::kBool);
      cols = at::where(flipped, (w - 1) - ar_w, ar_w);
    }
    const at::Tensor rows = draws.select(1, 0).unsqueeze(1) + ar_h;
    cols = draws.select(1, 1).unsqueeze(1) + cols;
    const std::int64_t wp = padded.size(3);
    const at::Tensor by_rows = padded.gather(2, rows.view({b, 1, h, 1}).expand({b, c, h, wp}));
    return by_rows.gather(3, cols.view({b, 1, 1, w}).expand({b, c, h, w}));
  }

  /// Zeroes a cut x cut square (clipped at the borders) centred on the drawn point.
  void apply_cutout(at::Tensor& images, const at::Tensor& draws, std::int64_t cut) const {
    const std::int64_t b = images.size(0), h = images.size(2), w = images.size(3);
    const auto lopt = at::TensorOptions().dtype(at::kLong).device(state_->device);
    const at::Tensor top = draws.select(1, 3).unsqueeze(1) - cut / 2;
    const at::Tensor left = draws.select(1, 4).unsqueeze(1) - cut / 2;
    const at::Tensor ys = at::arange(h, lopt).view({1, h});
    const at::Tensor xs = at::arange(w, lopt).view({1, w});
    const at::Tensor in_y = ys.ge(top).logical_and(ys.lt(top + cut));
    const at::Tensor in_x = xs.ge(left).logical_and(xs.lt(left + cut));
    const at::Tensor mask = in_y.view({b, 1, h, 1}).logical_and(in_x.view({b, 1, 1, w}));
    images.masked_fill_(mask, 0.0);
  }

  std::shared_ptr<const ImageDataset::State> state_;
  at::Tensor images_, labels_, order_;
  BatchOptions options_;
  bool augment_;
  Rng rng_;
  std::int64_t pos_ = 0, end_ = 0;
};

ImageDataset::ImageDataset(ImageSet train, ImageSet test, const DatasetOptions& options,
                           c10::Device device) {
  auto st = std::make_shared<State>();
  st->options = options;
  st->device = device;
  auto& o = st->options;
  if (!o.crop_padding || !o.flip)
    throw UsageError("ImageDataset: options must be resolved (crop_padding and flip set)");
  if (*o.crop_padding < 0)
    throw UsageError(cat("crop_padding must be >= 0, got ", *o.crop_padding));
  if (o.cutout < 0) throw UsageError(cat("cutout must be >= 0, got ", o.cutout));

  const std::int64_t n = train.size();
  if (n == 0 || train.images.dim() != 4 || train.images.scalar_type() != at::kByte)
    throw Error(cat("dataset ", o.name, ": the training set is empty or not uint8 [N, C, H, W]"));
  if (train.labels.numel() != n)
    throw Error(
        cat("dataset ", o.name, ": ", train.labels.numel(), " labels for ", n, " training images"));
  if (o.valid < 0 || o.valid >= n)
    throw UsageError(cat("dataset ", o.name, ": valid = ", o.valid,
                         " must be at least 0 and below the training set's ", n, " examples"));
  const std::int64_t c = train.images.size(1), h = train.images.size(2), w = train.images.size(3);
  if (test.size() > 0) {
    if (test.images.sizes().slice(1) != train.images.sizes().slice(1))
      throw Error(cat("dataset ", o.name, ": test images are ", test.images.size(1), "x",
                      test.images.size(2), "x", test.images.size(3),
                      " (CxHxW) but training images are ", c, "x", h, "x", w));
    if (!test.classes.empty() && test.classes != train.classes)
      throw Error(
          cat("dataset ", o.name, ": the test set's classes differ from the training set's"));
  }
  const auto k = static_cast<std::int64_t>(train.classes.size());
  st->classes = train.classes;
  st->spec = ProblemSpec{c, h, w, k};

  // Seeded split: the first `valid` positions of a permutation drawn from split_seed.
  const auto perm = seeded_permutation(n, o.split_seed);
  st->valid_index = sorted_index({perm.begin(), perm.begin() + o.valid});
  st->train_index = sorted_index({perm.begin() + o.valid, perm.end()});

  // Normalisation: the given constants, or statistics of the Train split.
  if (!o.normalize) {
    o.mean.assign(static_cast<std::size_t>(c), 0.0);
    o.stddev.assign(static_cast<std::size_t>(c), 1.0);
  } else if (o.mean.empty() || o.stddev.empty()) {
    std::vector<double> mean, stddev;
    channel_stats(train.images.contiguous(), st->train_index, mean, stddev);
    if (o.mean.empty()) o.mean = mean;
    if (o.stddev.empty()) o.stddev = stddev;
  }
  if (static_cast<std::int64_t>(o.mean.size()) != c ||
      static_cast<std::int64_t>(o.stddev.size()) != c)
    throw UsageError(cat("dataset ", o.name, ": mean and stddev need one value per channel (", c,
                         " here), got ", o.mean.size(), " and ", o.stddev.size()));
  for (double s : o.stddev)
    if (!(s > 0))
      throw UsageError(cat("dataset ", o.name, ": stddev values must be positive, got ", s));
  at::Tensor scale = at::empty({1, c, 1, 1}, at::kFloat),
             shift = at::empty({1, c, 1, 1}, at::kFloat);
  for (std::int64_t i = 0; i < c; ++i) {
    const auto m = o.mean[static_cast<std::size_t>(i)], s = o.stddev[static_cast<std::size_t>(i)];
    scale.data_ptr<float>()[i] = static_cast<float>(1.0 / (255.0 * s));
    shift.data_ptr<float>()[i] = static_cast<float>(m / s);
  }
  st->scale = scale.to(device);
  st->shift = shift.to(device);

  st->train_images = train.images.contiguous().to(device);
  st->train_labels = train.labels.to(at::kLong).to(device);
  st->test_size = test.size();
  if (st->test_size > 0) {
    st->test_images = test.images.contiguous().to(device);
    st->test_labels = test.labels.to(at::kLong).to(device);
  }
  state_ = std::move(st);
}

ImageDataset::~ImageDataset() = default;

std::string ImageDataset::name() const { return state_->options.name; }

std::string ImageDataset::identity() const {
  const DatasetOptions& o = state_->options;
  auto list = [](const std::vector<double>& xs) {
    std::string out;
    for (double x : xs) out += (out.empty() ? "" : "/") + cat(x);  // 6 significant digits
    return out;
  };
  std::string id = cat(o.name, "{valid=", o.valid, ",split_seed=", o.split_seed,
                       ",normalize=", o.normalize ? 1 : 0);
  if (o.normalize) id += cat(",mean=", list(o.mean), ",std=", list(o.stddev));
  id += cat(",crop=", o.crop_padding.value_or(0), ",flip=", o.flip.value_or(false) ? 1 : 0,
            ",cutout=", o.cutout, ",train=", state_->train_images.size(0),
            ",test=", state_->test_images.defined() ? state_->test_images.size(0) : 0);
  if (o.name == "folder") id += cat(",root=", o.root);
  return id + "}";
}
ProblemSpec ImageDataset::spec() const { return state_->spec; }

std::int64_t ImageDataset::size(Split split) const {
  switch (split) {
    case Split::Train: return state_->train_index.size(0);
    case Split::Valid: return state_->valid_index.size(0);
    case Split::Test: return state_->test_size;
  }
  return 0;
}

std::unique_ptr<BatchStream> ImageDataset::batches(Split split, const BatchOptions& options,
                                                   Rng& rng) const {
  if (options.batch_size < 1)
    throw UsageError(cat("batch size must be at least 1, got ", options.batch_size));
  if (options.limit < 0) throw UsageError(cat("limit must be >= 0, got ", options.limit));
  at::Tensor order = indices(split);  // a fresh CPU copy
  if (options.shuffle) {
    auto* p = order.data_ptr<std::int64_t>();
    for (std::int64_t i = order.size(0) - 1; i > 0; --i)
      std::swap(p[i],
                p[static_cast<std::int64_t>(rng.uniform_int(static_cast<std::uint64_t>(i + 1)))]);
  }
  const auto& o = state_->options;
  const bool augment =
      options.augment && split == Split::Train && (*o.crop_padding > 0 || *o.flip || o.cutout > 0);
  const std::uint64_t seed = augment ? rng.next_u64() : 0;
  return std::make_unique<Stream>(state_, split == Split::Test, order, options, augment, seed);
}

const std::vector<std::string>& ImageDataset::classes() const { return state_->classes; }
const std::vector<double>& ImageDataset::mean() const { return state_->options.mean; }
const std::vector<double>& ImageDataset::stddev() const { return state_->options.stddev; }
const DatasetOptions& ImageDataset::options() const { return state_->options; }
c10::Device ImageDataset::device() const { return state_->device; }

at::Tensor ImageDataset::indices(Split split) const {
  switch (split) {
    case Split::Train: return state_->train_index.clone();
    case Split::Valid: return state_->valid_index.clone();
    case Split::Test: return at::arange(state_->test_size, at::kLong);
  }
  return at::empty({0}, at::kLong);
}

}  // namespace hypernas::data
