#pragma once
/// @file image_codec.h
/// @brief Internal to kernel/data: a reusable JPEG (libjpeg-turbo) and PNG (libpng) decoder.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hypernas::data {

/// Decodes many small images with one set of decoder objects (one per thread: not shareable).
class ImageDecoder {
 public:
  ImageDecoder();
  ~ImageDecoder();
  ImageDecoder(const ImageDecoder&) = delete;
  ImageDecoder& operator=(const ImageDecoder&) = delete;

  /// Decodes a JPEG or PNG held in memory into `out` as [C, H, W] bytes and sets the shape.
  /// `channels` 0 keeps the image's own (1 or 3), 1 or 3 converts. Throws Error naming `what`.
  void decode(const std::uint8_t* data, std::size_t size, int channels, const std::string& what,
              std::vector<std::uint8_t>& out, std::int64_t& c, std::int64_t& h, std::int64_t& w);

  /// Whether this build decodes JPEG (libjpeg found at configure time).
  static bool jpeg_supported();
  /// Whether this build decodes PNG (libpng found at configure time).
  static bool png_supported();

 private:
  struct Jpeg;
  std::unique_ptr<Jpeg> jpeg_;
  std::vector<std::uint8_t> interleaved_;
};

}  // namespace hypernas::data
