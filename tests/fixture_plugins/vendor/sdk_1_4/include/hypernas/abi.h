#pragma once
/// @file abi.h
/// @brief The plugin ABI: version numbers and the build id a plugin must share with the host.
///
/// NOTE: a plugin and the host exchange C++ objects (std::string, at::Tensor, virtual
/// classes), so they must agree on compiler, standard library, the C++11 string ABI and the
/// Torch version. The build id captures those four; the host refuses any plugin whose build id
/// differs from its own, before calling a single function of it.

#include <cstdint>
#include <string>  // defines __GLIBCXX__ and _GLIBCXX_USE_CXX11_ABI under libstdc++

#include <torch/csrc/api/include/torch/version.h>

/// Major ABI version: bumped on any incompatible change of the SDK's classes or descriptor.
#define HYPERNAS_ABI_MAJOR 1
/// Minor ABI version: bumped when the SDK grows compatibly (a host accepts older minors).
/// 1.1: evaluation service (SearchRequest::evaluations), per-evaluation seeds
/// (ScoreRequest::seeds), declared evaluation inputs (Capability bits), score-neutral options,
/// Executor::forward_capture / parameter roles / init_weights, Dataset::identity and
/// unshuffled batches without an Rng.
/// 1.2: surrogates built from other surrogates (SurrogateFactory, Surrogate::attach).
/// 1.3: multi-scale, multi-exit networks: the `resample` primitive, exit_flops() (graph_stats.h),
/// the anytime curve helpers (anytime.h).
/// 1.4: differentiable architecture search: relaxed networks (SearchSpace::relaxed(), select(),
/// intensive(), the `mix` primitive, Executor::forward_relaxed()), Surrogate::relaxed_parameters(),
/// SearchRequest::space_abi_minor / surrogate_abi_minor, search epochs in the results store,
/// ADWP's superiority score (intensive.h).
/// See docs/sdk.md, "ABI history".
#define HYPERNAS_ABI_MINOR 4

/// @cond INTERNAL
#define HYPERNAS_STR2(x) #x
#define HYPERNAS_STR(x) HYPERNAS_STR2(x)
#if defined(__clang__)
// NOTE: __clang_version__ carries a trailing space ("14.0.6 "); the numbers alone do not.
#define HYPERNAS_COMPILER_ID                                                                 \
  "clang-" HYPERNAS_STR(__clang_major__) "." HYPERNAS_STR(__clang_minor__) "." HYPERNAS_STR( \
      __clang_patchlevel__)
#elif defined(__GNUC__)
#define HYPERNAS_COMPILER_ID "gcc-" __VERSION__
#else
#define HYPERNAS_COMPILER_ID "unknown-compiler"
#endif
#if defined(__GLIBCXX__)
#define HYPERNAS_STDLIB_ID "libstdc++-" HYPERNAS_STR(__GLIBCXX__)
#elif defined(_LIBCPP_VERSION)
#define HYPERNAS_STDLIB_ID "libc++-" HYPERNAS_STR(_LIBCPP_VERSION)
#else
#define HYPERNAS_STDLIB_ID "unknown-stdlib"
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define HYPERNAS_CXX11_ABI_ID "cxx11abi-" HYPERNAS_STR(_GLIBCXX_USE_CXX11_ABI)
#else
#define HYPERNAS_CXX11_ABI_ID "cxx11abi-na"
#endif
/// @endcond

/// Build id of the translation unit that expands it: compiler, standard library, C++11 ABI flag
/// and Torch version, separated by ';'. A plugin's descriptor carries the value this macro had
/// when the plugin was compiled; the host compares it with its own.
// NOTE: clang-format 14 does not settle on one layout for this macro.
// clang-format off
#define HYPERNAS_BUILD_ID                                                          \
  HYPERNAS_COMPILER_ID ";" HYPERNAS_STDLIB_ID ";" HYPERNAS_CXX11_ABI_ID ";torch-" \
      HYPERNAS_STR(TORCH_VERSION_MAJOR) "." HYPERNAS_STR(TORCH_VERSION_MINOR)
// clang-format on

namespace hypernas {

/// Major ABI version as a value (see HYPERNAS_ABI_MAJOR).
inline constexpr std::uint32_t kAbiMajor = HYPERNAS_ABI_MAJOR;
/// Minor ABI version as a value (see HYPERNAS_ABI_MINOR).
inline constexpr std::uint32_t kAbiMinor = HYPERNAS_ABI_MINOR;

/// The build id of the code that includes this header (see HYPERNAS_BUILD_ID).
inline const char* build_id() { return HYPERNAS_BUILD_ID; }

}  // namespace hypernas
