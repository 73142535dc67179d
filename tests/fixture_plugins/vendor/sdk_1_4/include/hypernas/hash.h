#pragma once
/// @file hash.h
/// @brief The one stable hash of HyperNAS: 64-bit FNV-1a, and its hex form.
///
/// Stable across runs, builds and machines (unlike std::hash), so it may key stored results:
/// architecture hashes, surrogate state tags, derived seeds.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace hypernas {

/// FNV-1a's 64-bit offset basis.
inline constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;  // 0xcbf29ce484222325
/// FNV-1a's 64-bit prime.
inline constexpr std::uint64_t kFnvPrime = 1099511628211ull;

/// 64-bit FNV-1a of `bytes`, continuing from `h` (the offset basis by default), so that several
/// pieces can be hashed in turn.
inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = kFnvOffset) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

/// `x` as 16 lower-case hex digits.
inline std::string hex64(std::uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

}  // namespace hypernas
