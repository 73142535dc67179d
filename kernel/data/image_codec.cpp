/// @file image_codec.cpp
/// @brief JPEG through libjpeg-turbo's libjpeg API (one decompressor reused for every image),
/// PNG through libpng's simplified API.

#include "kernel/data/image_codec.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <hypernas/error.h>

#include "kernel/data/readers.h"

#if HYPERNAS_HAVE_JPEG
// jpeglib.h needs FILE and size_t declared first (<cstdio> above); jerror.h after it.
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#endif
#if HYPERNAS_HAVE_PNG
#include <png.h>
#endif

namespace hypernas::data {
namespace {

/// Converts interleaved [H, W, C] bytes to channel-major [C, H, W].
void to_planar(const std::uint8_t* hwc, std::int64_t c, std::int64_t h, std::int64_t w,
               std::vector<std::uint8_t>& out) {
  out.resize(static_cast<std::size_t>(c * h * w));
  if (c == 1) {
    std::memcpy(out.data(), hwc, out.size());
    return;
  }
  const std::int64_t plane = h * w;
  for (std::int64_t p = 0; p < plane; ++p)
    for (std::int64_t k = 0; k < c; ++k)
      out[static_cast<std::size_t>(k * plane + p)] = hwc[p * c + k];
}

std::string first_bytes(const std::uint8_t* data, std::size_t size) {
  std::string s;
  char buf[8];
  for (std::size_t i = 0; i < size && i < 4; ++i) {
    std::snprintf(buf, sizeof buf, "%s0x%02x", i ? " " : "", data[i]);
    s += buf;
  }
  return s;
}

}  // namespace

#if HYPERNAS_HAVE_JPEG

/// libjpeg's error manager extended with a jump target and the last message. libjpeg reports
/// errors by calling error_exit, which must not return: we longjmp back into decode(), whose
/// frame holds no object with a destructor.
struct ImageDecoder::Jpeg {
  struct Err {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
  };
  jpeg_decompress_struct cinfo;
  Err err;

  static void on_error(j_common_ptr c) {
    auto* e = reinterpret_cast<Err*>(c->err);
    (*c->err->format_message)(c, e->message);
    std::longjmp(e->jump, 1);
  }
  /// Warnings about corrupt data (a truncated file, a damaged segment) are errors here: such an
  /// image would be decoded with made-up pixels. Extraneous bytes between markers are harmless.
  static void on_message(j_common_ptr c, int level) {
    if (level >= 0 || c->err->msg_code == JWRN_EXTRANEOUS_DATA) return;
    auto* e = reinterpret_cast<Err*>(c->err);
    (*c->err->format_message)(c, e->message);
    std::longjmp(e->jump, 1);
  }

  Jpeg() {
    std::memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = &on_error;
    err.pub.emit_message = &on_message;
    err.message[0] = '\0';
    if (setjmp(err.jump)) throw Error(cat("cannot create a JPEG decoder: ", err.message));
    jpeg_create_decompress(&cinfo);
  }
  ~Jpeg() { jpeg_destroy_decompress(&cinfo); }

  /// Decodes into `hwc`; false (message in err.message) on failure.
  bool decode(const std::uint8_t* data, std::size_t size, int channels,
              std::vector<std::uint8_t>& hwc, std::int64_t& c, std::int64_t& h, std::int64_t& w) {
    if (setjmp(err.jump)) {
      jpeg_abort_decompress(&cinfo);
      return false;
    }
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    const int want = channels != 0 ? channels : (cinfo.num_components == 1 ? 1 : 3);
    cinfo.out_color_space = want == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    c = cinfo.output_components;
    h = cinfo.output_height;
    w = cinfo.output_width;
    hwc.resize(static_cast<std::size_t>(c * h * w));
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = hwc.data() + static_cast<std::size_t>(cinfo.output_scanline) * w * c;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    return true;
  }
};

ImageDecoder::ImageDecoder() : jpeg_(std::make_unique<Jpeg>()) {}
bool ImageDecoder::jpeg_supported() { return true; }

#else

struct ImageDecoder::Jpeg {};
ImageDecoder::ImageDecoder() = default;
bool ImageDecoder::jpeg_supported() { return false; }

#endif

ImageDecoder::~ImageDecoder() = default;

bool ImageDecoder::png_supported() {
#if HYPERNAS_HAVE_PNG
  return true;
#else
  return false;
#endif
}

void ImageDecoder::decode(const std::uint8_t* data, std::size_t size, int channels,
                          const std::string& what, std::vector<std::uint8_t>& out, std::int64_t& c,
                          std::int64_t& h, std::int64_t& w) {
  if (channels != 0 && channels != 1 && channels != 3)
    throw Error(cat(what, ": cannot convert to ", channels, " channels (1 or 3)"));
  if (size == 0) throw Error(cat(what, ": empty file, not an image"));
  const bool is_jpeg = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  static const std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const bool is_png = size >= 8 && std::memcmp(data, png_sig, 8) == 0;
  if (is_jpeg) {
#if HYPERNAS_HAVE_JPEG
    if (!jpeg_->decode(data, size, channels, interleaved_, c, h, w))
      throw Error(cat(what, ": cannot decode JPEG image (", jpeg_->err.message, ")"));
#else
    throw Error(cat(what,
                    ": this build of HyperNAS has no JPEG support (libjpeg was not found "
                    "when it was configured)"));
#endif
  } else if (is_png) {
#if HYPERNAS_HAVE_PNG
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
      const std::string msg = image.message;
      png_image_free(&image);
      throw Error(cat(what, ": cannot decode PNG image (", msg, ")"));
    }
    const int want = channels != 0 ? channels : ((image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1);
    image.format = want == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    c = want;
    h = image.height;
    w = image.width;
    interleaved_.assign(PNG_IMAGE_SIZE(image), 0);  // alpha is composed onto black
    if (!png_image_finish_read(&image, nullptr, interleaved_.data(), 0, nullptr)) {
      const std::string msg = image.message;
      png_image_free(&image);
      throw Error(cat(what, ": cannot decode PNG image (", msg, ")"));
    }
#else
    throw Error(cat(what,
                    ": this build of HyperNAS has no PNG support (libpng was not found "
                    "when it was configured)"));
#endif
  } else {
    throw Error(cat(what, ": not a JPEG or PNG image (starts with ", first_bytes(data, size), ")"));
  }
  to_planar(interleaved_.data(), c, h, w, out);
}

DecodedImage decode_image(const std::uint8_t* data, std::size_t size, int channels,
                          const std::string& what) {
  ImageDecoder decoder;
  DecodedImage image;
  decoder.decode(data, size, channels, what, image.pixels, image.channels, image.height,
                 image.width);
  return image;
}

}  // namespace hypernas::data
