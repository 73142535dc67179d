// Tests of kernel/data: every reader on small files written here, the split, normalisation,
// batches, shuffling, augmentation and every error path; plus the real Fashion-MNIST when the
// Debian package is installed.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#if HYPERNAS_HAVE_JPEG
#include <jpeglib.h>
#endif
#if HYPERNAS_HAVE_PNG
#include <png.h>
#endif

#include <hypernas/context.h>
#include <hypernas/error.h>

#include "kernel/data/dataset.h"
#include "kernel/data/readers.h"
#include "tests/support/errors.h"

namespace fs = std::filesystem;
using namespace hypernas;
using namespace hypernas::data;

namespace {

/// A fresh folder under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "hypernas-data-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// An IDX file: big-endian magic and dimensions, then `data`; gzip-compressed with zlib.
/// `keep` cuts the uncompressed content to that many bytes (a truncated file).
void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& dims,
               const std::vector<std::uint8_t>& data, std::size_t keep = SIZE_MAX) {
  std::vector<std::uint8_t> raw;
  auto be = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) raw.push_back(static_cast<std::uint8_t>(v >> s));
  };
  be(magic);
  for (auto d : dims) be(d);
  raw.insert(raw.end(), data.begin(), data.end());
  if (keep < raw.size()) raw.resize(keep);
  fs::create_directories(fs::path(path).parent_path());
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!raw.empty()) gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(f);
}

/// Pixel j of example i in the synthetic IDX sets: distinct per example.
std::uint8_t idx_pixel(std::int64_t i, std::int64_t j) {
  return static_cast<std::uint8_t>((i * 37 + j * 11 + (i * j) % 7) % 256);
}

constexpr std::int64_t kH = 4, kW = 5;  // non-square on purpose

/// A Fashion-MNIST-like folder: `train` and `test` examples of kH x kW, label i % 10.
void write_fashion(const std::string& dir, std::uint32_t train, std::uint32_t test) {
  for (auto [prefix, n, offset] :
       {std::tuple{"train", train, 0u}, std::tuple{"t10k", test, 1000u}}) {
    std::vector<std::uint8_t> px, lb;
    for (std::uint32_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < kH * kW; ++j) px.push_back(idx_pixel(i + offset, j));
      lb.push_back(static_cast<std::uint8_t>(i % 10));
    }
    write_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz", 0x803, {n, kH, kW}, px);
    write_idx(dir + "/" + prefix + "-labels-idx1-ubyte.gz", 0x801, {n}, lb);
  }
}

/// CIFAR-10 binary records with random pixels; label i % 10 (or `label` when >= 0).
void write_cifar(const std::string& path, int records, std::uint32_t seed, int label = -1,
                 std::size_t extra = 0) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> bytes;
  for (int r = 0; r < records; ++r) {
    bytes.push_back(static_cast<std::uint8_t>(label >= 0 ? label : r % 10));
    for (int j = 0; j < 3072; ++j) bytes.push_back(static_cast<std::uint8_t>(gen() & 0xFF));
  }
  bytes.resize(bytes.size() + extra, 0);
  write_bytes(path, bytes);
}

void write_cifar_release(const std::string& dir, int per_batch, int test) {
  for (int b = 1; b <= 5; ++b)
    write_cifar(dir + "/data_batch_" + std::to_string(b) + ".bin", per_batch, 100 + b);
  write_cifar(dir + "/test_batch.bin", test, 7);
}

/// A constant-colour image, interleaved [H, W, C].
std::vector<std::uint8_t> solid(int w, int h, int c, std::uint8_t r, std::uint8_t g = 0,
                                std::uint8_t b = 0) {
  std::vector<std::uint8_t> px;
  for (int i = 0; i < w * h; ++i) {
    px.push_back(r);
    if (c == 3) {
      px.push_back(g);
      px.push_back(b);
    }
  }
  return px;
}

#if HYPERNAS_HAVE_PNG
void write_png(const std::string& path, const std::vector<std::uint8_t>& hwc, int w, int h, int c) {
  fs::create_directories(fs::path(path).parent_path());
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(w);
  img.height = static_cast<png_uint_32>(h);
  img.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  ASSERT_TRUE(png_image_write_to_file(&img, path.c_str(), 0, hwc.data(), 0, nullptr))
      << img.message;
}
#endif

#if HYPERNAS_HAVE_JPEG
void write_jpeg(const std::string& path, const std::vector<std::uint8_t>& hwc, int w, int h,
                int c) {
  fs::create_directories(fs::path(path).parent_path());
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_compress_struct ci;
  jpeg_error_mgr jerr;
  ci.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&ci);
  jpeg_stdio_dest(&ci, f);
  ci.image_width = static_cast<JDIMENSION>(w);
  ci.image_height = static_cast<JDIMENSION>(h);
  ci.input_components = c;
  ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 95, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row =
        const_cast<std::uint8_t*>(&hwc[static_cast<std::size_t>(ci.next_scanline) * w * c]);
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  std::fclose(f);
}
#endif

/// The values of a 1-D int64 tensor.
std::vector<std::int64_t> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous().cpu();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

using hypernas::test::error_of;

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "\"" << p << "\" not in: " << message;
}

/// Every batch of one pass, concatenated.
struct Pass {
  at::Tensor images, labels;
  std::vector<std::int64_t> sizes;
};
Pass collect(const Dataset& ds, Split split, const BatchOptions& options, Rng& rng) {
  auto stream = ds.batches(split, options, rng);
  std::vector<at::Tensor> xs, ys;
  Pass pass;
  while (auto b = stream->next()) {
    xs.push_back(b->images);
    ys.push_back(b->labels);
    pass.sizes.push_back(b->images.size(0));
  }
  EXPECT_FALSE(stream->next().has_value());
  if (!xs.empty()) {
    pass.images = at::cat(xs);
    pass.labels = at::cat(ys);
  }
  return pass;
}

DatasetOptions fashion_options(const std::string& root, std::int64_t valid = 6) {
  DatasetOptions o;
  o.name = "fashion-mnist";
  o.root = root;
  o.valid = valid;
  return o;
}

}  // namespace

// ---- Fashion-MNIST (gzip IDX) ------------------------------------------------------------------

TEST(DataIdx, CountsShapesLabelsAndPixels) {
  TempDir dir;
  write_fashion(dir.str(), 30, 10);
  auto opts = fashion_options(dir.str());
  opts.normalize = false;
  auto ds = load_image_dataset(opts, at::kCPU);
  EXPECT_EQ(ds->name(), "fashion-mnist");
  EXPECT_EQ(ds->size(Split::Train), 24);
  EXPECT_EQ(ds->size(Split::Valid), 6);
  EXPECT_EQ(ds->size(Split::Test), 10);
  const ProblemSpec spec = ds->spec();
  EXPECT_EQ(spec.channels, 1);
  EXPECT_EQ(spec.height, kH);
  EXPECT_EQ(spec.width, kW);
  EXPECT_EQ(spec.classes, 10);
  EXPECT_EQ(ds->classes().front(), "T-shirt/top");
  EXPECT_EQ(ds->classes().back(), "Ankle boot");
  // No crop or flip by default for Fashion-MNIST.
  EXPECT_EQ(*ds->options().crop_padding, 0);
  EXPECT_FALSE(*ds->options().flip);

  Rng rng(1);
  BatchOptions bo;
  bo.batch_size = 4;
  const Pass test = collect(*ds, Split::Test, bo, rng);
  ASSERT_EQ(test.images.sizes(), (at::IntArrayRef{10, 1, kH, kW}));
  for (std::int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(test.labels[i].item<std::int64_t>(), i % 10);
    for (std::int64_t j = 0; j < kH * kW; ++j)
      ASSERT_FLOAT_EQ(test.images[i].flatten()[j].item<float>(), idx_pixel(i + 1000, j) / 255.0f);
  }
  // Train and Valid together are the training file's examples, with their labels.
  const at::Tensor train_idx = ds->indices(Split::Train);
  const Pass train = collect(*ds, Split::Train, bo, rng);
  for (std::int64_t k = 0; k < train_idx.size(0); ++k) {
    const std::int64_t i = train_idx[k].item<std::int64_t>();
    EXPECT_EQ(train.labels[k].item<std::int64_t>(), i % 10);
    EXPECT_FLOAT_EQ(train.images[k].flatten()[3].item<float>(), idx_pixel(i, 3) / 255.0f);
  }
}

TEST(DataIdx, PlainUncompressedFilesAreReadToo) {
  TempDir dir;
  std::vector<std::uint8_t> raw = {0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 9};
  write_bytes(dir / "labels-idx1-ubyte", raw);
  const at::Tensor labels = read_idx_labels(dir / "labels-idx1-ubyte");
  ASSERT_EQ(labels.size(0), 3);
  EXPECT_EQ(labels[2].item<std::int64_t>(), 9);
  EXPECT_EQ(labels.scalar_type(), at::kLong);
}

// ---- split --------------------------------------------------------------------------------------

TEST(DataSplit, DeterministicFromSeedAndDisjoint) {
  TempDir dir;
  write_fashion(dir.str(), 50, 10);
  auto a = load_image_dataset(fashion_options(dir.str(), 12), at::kCPU);
  auto b = load_image_dataset(fashion_options(dir.str(), 12), at::kCPU);
  auto other_opts = fashion_options(dir.str(), 12);
  other_opts.split_seed = 99;
  auto c = load_image_dataset(other_opts, at::kCPU);

  EXPECT_TRUE(a->indices(Split::Valid).equal(b->indices(Split::Valid)));
  EXPECT_TRUE(a->indices(Split::Train).equal(b->indices(Split::Train)));
  EXPECT_FALSE(a->indices(Split::Valid).equal(c->indices(Split::Valid)));

  for (const auto& ds : {a, c}) {
    std::set<std::int64_t> train, valid;
    const at::Tensor t = ds->indices(Split::Train), v = ds->indices(Split::Valid);
    for (std::int64_t i = 0; i < t.size(0); ++i) train.insert(t[i].item<std::int64_t>());
    for (std::int64_t i = 0; i < v.size(0); ++i) valid.insert(v[i].item<std::int64_t>());
    EXPECT_EQ(train.size(), 38u);
    EXPECT_EQ(valid.size(), 12u);
    for (auto i : valid) EXPECT_EQ(train.count(i), 0u) << "example " << i << " in both splits";
    std::set<std::int64_t> all = train;
    all.insert(valid.begin(), valid.end());
    EXPECT_EQ(all.size(), 50u);
    EXPECT_EQ(*all.begin(), 0);
    EXPECT_EQ(*all.rbegin(), 49);
  }

  auto none = load_image_dataset(fashion_options(dir.str(), 0), at::kCPU);
  EXPECT_EQ(none->size(Split::Valid), 0);
  EXPECT_EQ(none->size(Split::Train), 50);
  Rng rng(3);
  auto stream = none->batches(Split::Valid, BatchOptions{}, rng);
  EXPECT_FALSE(stream->next().has_value());
}

// ---- normalisation ------------------------------------------------------------------------------

TEST(DataNormalize, StatisticsOfTheTrainSplitOnly) {
  TempDir dir;
  write_fashion(dir.str(), 40, 10);
  auto ds = load_image_dataset(fashion_options(dir.str(), 8), at::kCPU);
  // Expected: mean and population std of the Train part's pixels (scaled to [0, 1]).
  const at::Tensor raw = read_idx_images(dir / "train-images-idx3-ubyte.gz");
  const at::Tensor part = raw.index_select(0, ds->indices(Split::Train)).to(at::kDouble).div(255.0);
  const double mean = part.mean().item<double>();
  const double sd = part.std(/*unbiased=*/false).item<double>();
  ASSERT_EQ(ds->mean().size(), 1u);
  EXPECT_NEAR(ds->mean()[0], mean, 1e-9);
  EXPECT_NEAR(ds->stddev()[0], sd, 1e-9);
  const double all_mean = raw.to(at::kDouble).div(255.0).mean().item<double>();
  EXPECT_NE(ds->mean()[0], all_mean);  // the held-out part is excluded

  Rng rng(5);
  BatchOptions bo;
  bo.batch_size = 7;
  const Pass train = collect(*ds, Split::Train, bo, rng);
  EXPECT_NEAR(train.images.mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(train.images.std(false).item<double>(), 1.0, 1e-5);
}

TEST(DataNormalize, GivenConstants) {
  TempDir dir;
  write_fashion(dir.str(), 20, 10);
  auto opts = fashion_options(dir.str(), 4);
  opts.mean = {0.5};
  opts.stddev = {0.25};
  auto ds = load_image_dataset(opts, at::kCPU);
  Rng rng(5);
  const Pass test = collect(*ds, Split::Test, BatchOptions{}, rng);
  EXPECT_NEAR(test.images[0][0][0][0].item<float>(), (idx_pixel(1000, 0) / 255.0 - 0.5) / 0.25,
              1e-5);

  opts.mean = {0.5, 0.5};
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }),
                  {"mean", "one value per channel (1 here)"});
}

// ---- batches and shuffling ----------------------------------------------------------------------

TEST(DataBatches, ShapesDtypesDropLastAndLimit) {
  TempDir dir;
  write_fashion(dir.str(), 30, 10);
  auto ds = load_image_dataset(fashion_options(dir.str()), at::kCPU);
  Rng rng(9);
  BatchOptions bo;
  bo.batch_size = 8;
  auto stream = ds->batches(Split::Train, bo, rng);
  auto first = stream->next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->images.sizes(), (at::IntArrayRef{8, 1, kH, kW}));
  EXPECT_EQ(first->images.scalar_type(), at::kFloat);
  EXPECT_EQ(first->labels.sizes(), (at::IntArrayRef{8}));
  EXPECT_EQ(first->labels.scalar_type(), at::kLong);
  EXPECT_TRUE(first->images.device().is_cpu());
  EXPECT_TRUE(first->images.is_contiguous());

  EXPECT_EQ(collect(*ds, Split::Train, bo, rng).sizes, (std::vector<std::int64_t>{8, 8, 8}));
  bo.batch_size = 7;
  EXPECT_EQ(collect(*ds, Split::Train, bo, rng).sizes, (std::vector<std::int64_t>{7, 7, 7, 3}));
  bo.drop_last = true;
  EXPECT_EQ(collect(*ds, Split::Train, bo, rng).sizes, (std::vector<std::int64_t>{7, 7, 7}));
  bo.drop_last = false;
  bo.limit = 10;
  EXPECT_EQ(collect(*ds, Split::Train, bo, rng).sizes, (std::vector<std::int64_t>{7, 3}));
  bo.limit = 1000;
  EXPECT_EQ(collect(*ds, Split::Valid, bo, rng).sizes, (std::vector<std::int64_t>{6}));

  bo.batch_size = 0;
  EXPECT_THROW(ds->batches(Split::Train, bo, rng), UsageError);
}

TEST(DataBatches, ShuffleIsDeterministicForASeed) {
  TempDir dir;
  write_fashion(dir.str(), 60, 10);
  auto opts = fashion_options(dir.str());
  opts.normalize = false;
  auto ds = load_image_dataset(opts, at::kCPU);
  BatchOptions bo;
  bo.batch_size = 16;
  bo.shuffle = true;
  Rng r1(42), r2(42), r3(43);
  const Pass a = collect(*ds, Split::Train, bo, r1);
  const Pass b = collect(*ds, Split::Train, bo, r2);
  const Pass c = collect(*ds, Split::Train, bo, r3);
  EXPECT_TRUE(a.images.equal(b.images));
  EXPECT_TRUE(a.labels.equal(b.labels));
  EXPECT_FALSE(a.images.equal(c.images));
  // A second pass from the same stream of draws gives another order.
  const Pass a2 = collect(*ds, Split::Train, bo, r1);
  EXPECT_FALSE(a.images.equal(a2.images));
  // A shuffled pass is a permutation of the ordered one.
  bo.shuffle = false;
  const Pass ordered = collect(*ds, Split::Train, bo, r1);
  EXPECT_FALSE(a.images.equal(ordered.images));
  auto key = [](const at::Tensor& x) {
    std::multiset<double> keys;
    const at::Tensor s = x.flatten(1).mul(at::arange(1, x[0].numel() + 1, at::kFloat)).sum(1);
    for (std::int64_t i = 0; i < s.size(0); ++i) keys.insert(s[i].item<double>());
    return keys;
  };
  EXPECT_EQ(key(a.images), key(ordered.images));
  // Without shuffling, nothing is drawn and the order is ascending.
  Rng untouched(7), reference(7);
  collect(*ds, Split::Train, bo, untouched);
  EXPECT_EQ(untouched.next_u64(), reference.next_u64());
}

// ---- CIFAR-10 binary and augmentation -----------------------------------------------------------

TEST(DataCifarBinary, CountsLabelsPixelsAndDefaults) {
  TempDir dir;
  write_cifar_release(dir.str(), 4, 5);
  DatasetOptions o;
  o.name = "cifar10-bin";
  o.root = dir.str();
  o.valid = 3;
  o.normalize = false;
  auto ds = load_image_dataset(o, at::kCPU);
  EXPECT_EQ(ds->size(Split::Train), 17);
  EXPECT_EQ(ds->size(Split::Valid), 3);
  EXPECT_EQ(ds->size(Split::Test), 5);
  EXPECT_EQ(ds->spec().channels, 3);
  EXPECT_EQ(ds->spec().height, 32);
  EXPECT_EQ(ds->spec().classes, 10);
  EXPECT_EQ(ds->classes()[0], "airplane");
  EXPECT_EQ(*ds->options().crop_padding, 4);  // literature defaults for CIFAR-10
  EXPECT_TRUE(*ds->options().flip);
  EXPECT_EQ(ds->options().cutout, 0);

  // Record layout: label byte, then 1,024 R, 1,024 G, 1,024 B bytes, rows top to bottom.
  const auto bytes = read_bytes(dir / "test_batch.bin");
  Rng rng(1);
  const Pass test = collect(*ds, Split::Test, BatchOptions{}, rng);
  for (std::int64_t r = 0; r < 5; ++r) {
    const std::uint8_t* rec = bytes.data() + r * 3073;
    EXPECT_EQ(test.labels[r].item<std::int64_t>(), rec[0]);
    EXPECT_FLOAT_EQ(test.images[r][0][0][1].item<float>(), rec[1 + 1] / 255.0f);
    EXPECT_FLOAT_EQ(test.images[r][1][2][3].item<float>(), rec[1 + 1024 + 2 * 32 + 3] / 255.0f);
    EXPECT_FLOAT_EQ(test.images[r][2][31][31].item<float>(), rec[3072] / 255.0f);
  }

  // The binary release's own folder name is found below root.
  TempDir parent;
  write_cifar_release(parent / "cifar-10-batches-bin", 2, 2);
  o.root = parent.str();
  EXPECT_EQ(load_image_dataset(o, at::kCPU)->size(Split::Test), 2);
}

class DataAugment : public ::testing::Test {
 protected:
  void SetUp() override { write_cifar_release(dir_.str(), 6, 4); }
  std::shared_ptr<ImageDataset> open(std::int64_t pad, bool flip, std::int64_t cutout) {
    DatasetOptions o;
    o.name = "cifar10-bin";
    o.root = dir_.str();
    o.valid = 5;
    o.normalize = false;
    o.crop_padding = pad;
    o.flip = flip;
    o.cutout = cutout;
    return load_image_dataset(o, at::kCPU);
  }
  /// The ordered train pass, with and without augmentation.
  std::pair<at::Tensor, at::Tensor> passes(const ImageDataset& ds, std::uint64_t seed = 11) {
    BatchOptions bo;
    bo.batch_size = 8;
    Rng plain_rng(seed), aug_rng(seed);
    const Pass plain = collect(ds, Split::Train, bo, plain_rng);
    bo.augment = true;
    const Pass aug = collect(ds, Split::Train, bo, aug_rng);
    EXPECT_EQ(aug.images.sizes(), plain.images.sizes());
    EXPECT_EQ(aug.images.scalar_type(), at::kFloat);
    EXPECT_TRUE(aug.labels.equal(plain.labels));
    return {plain.images, aug.images};
  }
  TempDir dir_;
};

TEST_F(DataAugment, CropIsAShiftWithZeroPadding) {
  auto ds = open(4, false, 0);
  auto [plain, aug] = passes(*ds);
  EXPECT_FALSE(plain.equal(aug));
  int shifted = 0;
  for (std::int64_t i = 0; i < plain.size(0); ++i) {
    const at::Tensor padded = at::constant_pad_nd(plain[i], {4, 4, 4, 4}, 0);
    bool found = false;
    for (std::int64_t dy = 0; dy <= 8 && !found; ++dy)
      for (std::int64_t dx = 0; dx <= 8 && !found; ++dx)
        if (padded.slice(1, dy, dy + 32).slice(2, dx, dx + 32).equal(aug[i])) {
          found = true;
          shifted += (dy != 4 || dx != 4);
        }
    EXPECT_TRUE(found) << "augmented image " << i << " is not a padded crop of the original";
  }
  EXPECT_GT(shifted, 0);
}

TEST_F(DataAugment, FlipMirrorsSomeImages) {
  auto ds = open(0, true, 0);
  auto [plain, aug] = passes(*ds);
  int flipped = 0;
  for (std::int64_t i = 0; i < plain.size(0); ++i) {
    const bool same = aug[i].equal(plain[i]);
    const bool mirror = aug[i].equal(plain[i].flip({2}));
    EXPECT_TRUE(same || mirror) << i;
    flipped += mirror;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, plain.size(0));
}

TEST_F(DataAugment, CutoutZeroesASquare) {
  auto ds = open(0, false, 8);
  auto [plain, aug] = passes(*ds);
  for (std::int64_t i = 0; i < plain.size(0); ++i) {
    const at::Tensor changed = aug[i].ne(plain[i]);
    EXPECT_TRUE(aug[i].masked_select(changed).eq(0).all().item<bool>());
    const at::Tensor zeroed = aug[i].eq(0).logical_and(plain[i].ne(0)).any(0);  // [H, W]
    EXPECT_LE(zeroed.sum().item<std::int64_t>(), 64);
    EXPECT_GT(zeroed.sum().item<std::int64_t>(), 0);  // random pixels: a zero is rare
  }
}

TEST_F(DataAugment, DeterministicAndTrainOnly) {
  auto ds = open(4, true, 8);
  auto [plain1, aug1] = passes(*ds, 21);
  auto [plain2, aug2] = passes(*ds, 21);
  auto [plain3, aug3] = passes(*ds, 22);
  EXPECT_TRUE(aug1.equal(aug2));
  EXPECT_FALSE(aug1.equal(aug3));
  // Valid and Test are never augmented.
  for (Split s : {Split::Valid, Split::Test}) {
    BatchOptions bo;
    Rng r1(1), r2(1);
    const Pass plain = collect(*ds, s, bo, r1);
    bo.augment = true;
    const Pass aug = collect(*ds, s, bo, r2);
    EXPECT_TRUE(plain.images.equal(aug.images)) << split_name(s);
  }
  // No augmentation configured: the flag changes nothing.
  auto none = open(0, false, 0);
  auto [p, a] = passes(*none);
  EXPECT_TRUE(p.equal(a));
}

// ---- image folders ------------------------------------------------------------------------------

#if HYPERNAS_HAVE_PNG && HYPERNAS_HAVE_JPEG
namespace {
constexpr int kFw = 6, kFh = 5;
/// root/train/{cat,dog}, root/test/{cat,dog}: PNGs and JPEGs of constant colours.
void write_folder(const std::string& root) {
  write_png(root + "/train/dog/a.png", solid(kFw, kFh, 3, 200, 10, 10), kFw, kFh, 3);
  write_jpeg(root + "/train/dog/b.JPG", solid(kFw, kFh, 3, 10, 200, 10), kFw, kFh, 3);
  write_png(root + "/train/cat/a.png", solid(kFw, kFh, 3, 10, 10, 200), kFw, kFh, 3);
  write_png(root + "/train/cat/b.png", solid(kFw, kFh, 1, 128), kFw, kFh, 1);  // gray -> RGB
  write_jpeg(root + "/train/cat/c.jpeg", solid(kFw, kFh, 3, 250, 250, 250), kFw, kFh, 3);
  write_bytes(root + "/train/cat/notes.txt", {'h', 'i'});   // not an image: ignored
  write_bytes(root + "/train/cat/._a.png", {0, 5, 22, 7});  // hidden (a macOS fork): ignored
  write_bytes(root + "/train/.thumbs/x.png", {1, 2});       // hidden folder: not a class
  write_png(root + "/test/cat/x.png", solid(kFw, kFh, 3, 1, 2, 3), kFw, kFh, 3);
  write_jpeg(root + "/test/dog/y.jpg", solid(kFw, kFh, 3, 90, 90, 90), kFw, kFh, 3);
}
DatasetOptions folder_options(const TempDir& dir) {
  DatasetOptions o;
  o.name = "folder";
  o.root = dir / "data";
  o.cache_dir = dir / "cache";
  o.valid = 1;
  o.normalize = false;
  return o;
}
std::vector<fs::path> cache_files(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path());
  return files;
}
}  // namespace

TEST(DataFolder, ClassesLabelsPixelsAndConversion) {
  TempDir dir;
  write_folder(dir / "data");
  auto ds = load_image_dataset(folder_options(dir), at::kCPU);
  EXPECT_EQ(ds->classes(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(ds->size(Split::Train) + ds->size(Split::Valid), 5);
  EXPECT_EQ(ds->size(Split::Test), 2);
  EXPECT_EQ(ds->spec().channels, 3);
  EXPECT_EQ(ds->spec().height, kFh);
  EXPECT_EQ(ds->spec().width, kFw);
  EXPECT_EQ(ds->spec().classes, 2);
  EXPECT_EQ(*ds->options().crop_padding, 0);
  EXPECT_FALSE(*ds->options().flip);

  // Training set in listing order: cat/a.png, cat/b.png, cat/c.jpeg, dog/a.png, dog/b.JPG.
  const ImageSet train = read_image_folder(dir / "data/train");
  ASSERT_EQ(train.size(), 5);
  EXPECT_EQ(to_vec(train.labels), std::vector<std::int64_t>({0, 0, 0, 1, 1}));
  auto colour = [&](std::int64_t i) {
    return std::vector<int>{train.images[i][0][2][3].item<int>(),
                            train.images[i][1][2][3].item<int>(),
                            train.images[i][2][2][3].item<int>()};
  };
  EXPECT_EQ(colour(0), (std::vector<int>{10, 10, 200}));    // PNG: exact
  EXPECT_EQ(colour(1), (std::vector<int>{128, 128, 128}));  // gray PNG converted to RGB
  EXPECT_EQ(colour(3), (std::vector<int>{200, 10, 10}));
  for (int k = 0; k < 3; ++k) {  // JPEG: close
    EXPECT_NEAR(colour(2)[k], 250, 3);
    EXPECT_NEAR(colour(4)[k], k == 1 ? 200 : 10, 4);
  }
  // Test classes follow the training set's list.
  Rng rng(1);
  const Pass test = collect(*ds, Split::Test, BatchOptions{}, rng);
  EXPECT_EQ(to_vec(test.labels), std::vector<std::int64_t>({0, 1}));
  EXPECT_NEAR(test.images[0][2][0][0].item<float>(), 3 / 255.0, 1e-6);

  // A grayscale first image makes a one-channel set; colour images are converted.
  TempDir gray;
  write_png(gray / "train/a/1.png", solid(kFw, kFh, 1, 77), kFw, kFh, 1);
  write_png(gray / "train/a/2.png", solid(kFw, kFh, 3, 77, 77, 77), kFw, kFh, 3);
  const ImageSet g = read_image_folder(gray / "train");
  EXPECT_EQ(g.images.sizes(), (at::IntArrayRef{2, 1, kFh, kFw}));
  EXPECT_NEAR(g.images[1][0][0][0].item<int>(), 77, 1);
}

TEST(DataFolder, DecodedImagesAreCachedAndTheCacheFollowsTheFiles) {
  TempDir dir;
  write_folder(dir / "data");
  auto opts = folder_options(dir);
  auto first = load_image_dataset(opts, at::kCPU);
  ASSERT_EQ(cache_files(opts.cache_dir).size(), 2u);  // train and test
  for (const auto& f : cache_files(opts.cache_dir)) EXPECT_EQ(f.extension(), ".bin");

  // Overwrite a JPEG with garbage of the same size: the cache (same count and total size)
  // is read, so nothing is decoded.
  const std::string jpeg = dir / "data/train/cat/c.jpeg";
  std::vector<std::uint8_t> garbage(read_bytes(jpeg).size(), 0x42);
  write_bytes(jpeg, garbage);
  auto second = load_image_dataset(opts, at::kCPU);
  Rng r1(1), r2(1);
  BatchOptions bo;
  EXPECT_TRUE(collect(*first, Split::Train, bo, r1)
                  .images.equal(collect(*second, Split::Train, bo, r2).images));

  // Without the cache the garbage is decoded and refused.
  opts.cache = false;
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }),
                  {jpeg, "not a JPEG or PNG"});
  // A changed total size misses the cache: decoding again finds the bad file.
  opts.cache = true;
  garbage.push_back(0);
  write_bytes(jpeg, garbage);
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {jpeg});
  // A damaged cache file is ignored and rewritten.
  write_jpeg(jpeg, solid(kFw, kFh, 3, 250, 250, 250), kFw, kFh, 3);
  for (const auto& f : cache_files(opts.cache_dir)) fs::resize_file(f, 100);
  auto third = load_image_dataset(opts, at::kCPU);
  EXPECT_EQ(third->size(Split::Test), 2);
  auto fourth = load_image_dataset(opts, at::kCPU);
  Rng r3(1), r4(1);
  EXPECT_TRUE(collect(*third, Split::Train, bo, r3)
                  .images.equal(collect(*fourth, Split::Train, bo, r4).images));
}

TEST(DataFolder, Errors) {
  TempDir dir;
  write_folder(dir / "data");
  auto opts = folder_options(dir);
  opts.cache = false;

  // Corrupt JPEG: truncated, and damaged after a valid header.
  const std::string jpeg = dir / "data/train/dog/b.JPG";
  const auto good = read_bytes(jpeg);
  write_bytes(jpeg, std::vector<std::uint8_t>(good.begin(),
                                              good.begin() + static_cast<long>(good.size() / 2)));
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {jpeg, "JPEG"});
  auto damaged = good;
  for (std::size_t i = 200; i < damaged.size() - 2; ++i) damaged[i] = 0xFF;
  write_bytes(jpeg, damaged);
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {jpeg, "JPEG"});
  write_bytes(jpeg, {});
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {jpeg, "empty"});
  write_bytes(jpeg, good);

  // Corrupt PNG.
  const std::string png = dir / "data/train/dog/a.png";
  auto png_bytes = read_bytes(png);
  png_bytes.resize(png_bytes.size() / 2);
  write_bytes(png, png_bytes);
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {png, "PNG"});
  write_png(png, solid(kFw, kFh, 3, 200, 10, 10), kFw, kFh, 3);

  // An image of another size.
  const std::string big = dir / "data/train/dog/c.png";
  write_png(big, solid(kFw + 1, kFh, 3, 1, 1, 1), kFw + 1, kFh, 3);
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }),
                  {big, "wrong size", "7x5", "6x5"});
  fs::remove(big);

  // A test class the training set does not have.
  write_png(dir / "data/test/bird/z.png", solid(kFw, kFh, 3, 1, 1, 1), kFw, kFh, 3);
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }), {"bird", "classes"});
  fs::remove_all(dir / "data/test/bird");

  // A missing test folder.
  fs::remove_all(dir / "data/test");
  expect_contains(error_of([&] { load_image_dataset(opts, at::kCPU); }),
                  {dir / "data/test", "missing"});

  // No root at all.
  DatasetOptions no_root;
  no_root.name = "folder";
  EXPECT_THROW(load_image_dataset(no_root, at::kCPU), UsageError);
}
#endif

TEST(DataFolder, DecodeImageRejectsOtherFormats) {
  const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0};
  expect_contains(error_of([&] { decode_image(gif.data(), gif.size(), 0, "x.gif"); }),
                  {"x.gif", "not a JPEG or PNG", "0x47 0x49 0x46 0x38"});
}

// ---- errors of the IDX and CIFAR readers, and of the options ------------------------------------

TEST(DataErrors, IdxFiles) {
  TempDir dir;
  write_fashion(dir.str(), 20, 10);
  const std::string images = dir / "train-images-idx3-ubyte.gz";
  const std::string labels = dir / "train-labels-idx1-ubyte.gz";
  const auto opts = fashion_options(dir.str(), 2);
  auto load = [&] { load_image_dataset(opts, at::kCPU); };
  std::vector<std::uint8_t> px(20 * kH * kW, 1), lb(20, 3);

  // Truncated: the header promises 20 images, the file holds fewer bytes.
  write_idx(images, 0x803, {20, kH, kW}, px, 16 + 5 * kH * kW + 3);
  expect_contains(error_of(load),
                  {images, "truncated", "20 images of 4x5", "400 bytes", "103 bytes"});
  // Truncated gzip stream.
  write_idx(images, 0x803, {20, kH, kW}, px);
  const auto gz = read_bytes(images);
  write_bytes(images,
              std::vector<std::uint8_t>(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
  expect_contains(error_of(load), {images, "gzip"});
  // Header cut short.
  write_idx(images, 0x803, {20, kH, kW}, px, 6);
  expect_contains(error_of(load), {images, "truncated"});
  // Bad magic numbers.
  write_idx(images, 0x801, {20, kH, kW}, px);
  expect_contains(error_of(load), {images, "magic", "0x00000801", "0x00000803"});
  write_idx(images, 0x803, {20, kH, kW}, px);
  write_idx(labels, 0x0803, {20}, lb);
  expect_contains(error_of(load), {labels, "magic"});
  // Label count differs from image count.
  write_idx(labels, 0x801, {19}, std::vector<std::uint8_t>(19, 1));
  expect_contains(error_of(load), {labels, "19 labels", "20 images"});
  // Label out of range.
  lb[7] = 10;
  write_idx(labels, 0x801, {20}, lb);
  expect_contains(error_of(load), {labels, "label 10", "example 7", "out of range"});
  // Missing file.
  fs::remove(labels);
  expect_contains(error_of(load), {labels, "missing"});
  TempDir empty;
  expect_contains(error_of([&] { load_image_dataset(fashion_options(empty.str()), at::kCPU); }),
                  {empty / "train-images-idx3-ubyte.gz", "missing"});
}

TEST(DataErrors, CifarBinaryFiles) {
  TempDir dir;
  write_cifar_release(dir.str(), 2, 2);
  DatasetOptions o;
  o.name = "cifar10-bin";
  o.root = dir.str();
  o.valid = 1;
  auto load = [&] { load_image_dataset(o, at::kCPU); };
  const std::string batch = dir / "data_batch_3.bin";
  write_cifar(batch, 2, 1, -1, 5);
  expect_contains(error_of(load), {batch, "6151", "multiple of 3073"});
  write_cifar(batch, 0, 1);
  expect_contains(error_of(load), {batch, "multiple of 3073"});
  write_cifar(batch, 2, 1, 10);
  expect_contains(error_of(load), {batch, "label 10", "out of range"});
  fs::remove(batch);
  expect_contains(error_of(load), {batch, "missing"});
}

TEST(DataErrors, Options) {
  TempDir dir;
  write_fashion(dir.str(), 20, 10);
  DatasetOptions o = fashion_options(dir.str(), 20);
  EXPECT_THROW(load_image_dataset(o, at::kCPU), UsageError);  // valid >= training set
  o.valid = -1;
  EXPECT_THROW(load_image_dataset(o, at::kCPU), UsageError);
  o.valid = 2;
  o.crop_padding = -1;
  EXPECT_THROW(load_image_dataset(o, at::kCPU), UsageError);
  DatasetOptions unknown;
  unknown.name = "imagenet";
  const std::string msg = error_of([&] { open_dataset(unknown, at::kCPU); });
  expect_contains(msg, {"imagenet", "fashion-mnist", "cifar10"});

  // CIFAR-10 JPEGs missing: the message says how to unpack them.
  DatasetOptions cifar;
  cifar.name = "cifar10";
  cifar.root = dir / "nowhere";
  expect_contains(error_of([&] { open_dataset(cifar, at::kCPU); }),
                  {dir / "nowhere/train", "tar -xzf", "cifar10-jpeg.tar.gz"});
}

TEST(DataOptions, Defaults) {
  DatasetOptions o;
  o.name = "cifar10";
  const DatasetOptions r = resolve_options(o);
  EXPECT_EQ(r.root, (fs::path(default_cache_root()) / "cifar10").string());
  EXPECT_EQ(r.cache_dir, (fs::path(default_cache_root()) / "decoded").string());
  EXPECT_EQ(*r.crop_padding, 4);
  EXPECT_TRUE(*r.flip);
  EXPECT_EQ(r.valid, 5000);
  o.name = "fashion-mnist";
  EXPECT_EQ(resolve_options(o).root, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(*resolve_options(o).crop_padding, 0);
  EXPECT_EQ(dataset_names().size(), 4u);
}

// ---- the real data ------------------------------------------------------------------------------

TEST(DataReal, FashionMnist) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(root + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed (Debian package dataset-fashion-mnist)";
  DatasetOptions o;
  o.name = "fashion-mnist";
  const auto t0 = std::chrono::steady_clock::now();
  auto ds = open_dataset(o, at::kCPU);
  std::printf("fashion-mnist load: %.3f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  EXPECT_EQ(ds->size(Split::Train), 55000);
  EXPECT_EQ(ds->size(Split::Valid), 5000);
  EXPECT_EQ(ds->size(Split::Test), 10000);
  const ProblemSpec spec = ds->spec();
  EXPECT_EQ(spec.channels, 1);
  EXPECT_EQ(spec.height, 28);
  EXPECT_EQ(spec.width, 28);
  EXPECT_EQ(spec.classes, 10);
  // The test set has 1,000 images of each class.
  Rng rng(1);
  BatchOptions bo;
  bo.batch_size = 2500;
  const Pass test = collect(*ds, Split::Test, bo, rng);
  EXPECT_EQ(to_vec(test.labels.bincount()), std::vector<std::int64_t>(10, 1000));
  EXPECT_NEAR(test.images.mean().item<double>(), 0.0, 0.05);
}

// Opt-in (HYPERNAS_TEST_CIFAR10=1): the real CIFAR-10 JPEGs at the default root, with timings.
TEST(DataReal, Cifar10Jpeg) {
  const char* flag = std::getenv("HYPERNAS_TEST_CIFAR10");
  if (flag == nullptr || std::string(flag) != "1") GTEST_SKIP() << "set HYPERNAS_TEST_CIFAR10=1";
  DatasetOptions o;
  o.name = "cifar10";
  for (int round = 0; round < 2; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ds = load_image_dataset(o, at::kCPU);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cifar10 load %d: %.2f s (mean %.4f %.4f %.4f, std %.4f %.4f %.4f)\n", round, secs,
                ds->mean()[0], ds->mean()[1], ds->mean()[2], ds->stddev()[0], ds->stddev()[1],
                ds->stddev()[2]);
    EXPECT_EQ(ds->size(Split::Train) + ds->size(Split::Valid), 50000);
    EXPECT_EQ(ds->size(Split::Test), 10000);
    EXPECT_EQ(ds->classes().front(), "airplane");
    EXPECT_EQ(ds->classes().back(), "truck");
    // One augmented, shuffled epoch of 128-image batches.
    Rng rng(1);
    BatchOptions bo;
    bo.batch_size = 128;
    bo.shuffle = true;
    bo.augment = true;
    const auto t1 = std::chrono::steady_clock::now();
    std::int64_t seen = 0;
    auto stream = ds->batches(Split::Train, bo, rng);
    while (auto b = stream->next()) seen += b->images.size(0);
    EXPECT_EQ(seen, ds->size(Split::Train));
    std::printf("cifar10 augmented epoch: %.2f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
  }
}

// Batch-statistics evaluation needs class-mixed batches: a folder dataset must not keep the
// class-by-class listing order in its splits.
TEST(DataFolder, SplitsMixTheClassesOfAFolder) {
  TempDir dir;
  for (int i = 0; i < 20; ++i)
    for (const char* cls : {"a", "b"}) {
      write_png(std::string(dir / "data/train") + "/" + cls + "/" + std::to_string(i) + ".png",
                solid(kFw, kFh, 3, 9, 9, 9), kFw, kFh, 3);
      write_png(std::string(dir / "data/test") + "/" + cls + "/" + std::to_string(i) + ".png",
                solid(kFw, kFh, 3, 9, 9, 9), kFw, kFh, 3);
    }
  DatasetOptions o = folder_options(dir);
  o.valid = 10;
  auto ds = load_image_dataset(o, at::kCPU);
  Rng rng(1);
  const std::vector<std::int64_t> test =
      to_vec(collect(*ds, Split::Test, BatchOptions{}, rng).labels);
  ASSERT_EQ(test.size(), 40u);
  // The first half of the test split holds both classes (class-sorted order would give one).
  const std::int64_t ones = std::count(test.begin(), test.begin() + 20, std::int64_t{1});
  EXPECT_GT(ones, 3);
  EXPECT_LT(ones, 17);
  // The same order on every load.
  auto again = load_image_dataset(o, at::kCPU);
  EXPECT_EQ(to_vec(collect(*again, Split::Test, BatchOptions{}, rng).labels), test);
}
