#pragma once
/// @file plugin.h
/// @brief The plugin handshake: the exported descriptor, the plugin base class, and the macro
/// that exports a plugin from a shared library.
///
/// A plugin library exports one symbol, `hypernas_plugin_descriptor` (a Boost.DLL alias to a
/// function returning a pointer to a PluginDescriptor). The host reads the descriptor's plain-C
/// head (size, ABI, kind, name, version, build id) and refuses the library, naming the file and
/// both values, before it calls anything else of it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/dll/alias.hpp>

#include "hypernas/abi.h"
#include "hypernas/options.h"

namespace hypernas {

/// What a plugin provides. Zero is not a valid kind.
enum class PluginKind : std::uint32_t { Surrogate = 1, Strategy = 2, Space = 3 };

/// Name of a kind as users see it ("surrogate", "strategy", "space").
inline const char* kind_name(PluginKind k) {
  switch (k) {
    case PluginKind::Surrogate: return "surrogate";
    case PluginKind::Strategy: return "strategy";
    case PluginKind::Space: return "space";
  }
  return "unknown";
}

/// Base of every object a plugin creates. Its code lives in the plugin library, which the
/// registry keeps loaded for the whole process (plugins are linked with -z nodelete too).
class Plugin {
 public:
  virtual ~Plugin() = default;
  /// The kind this object implements; must equal the descriptor's kind.
  virtual PluginKind kind() const = 0;
};

/// Creates a plugin object from resolved options. Must not throw: on failure it returns
/// nullptr and writes the reason into `*error`.
using PluginFactory = Plugin* (*)(const Options& options, std::string* error) noexcept;

/// Returns the plugin's parameter table (a static object inside the plugin).
using PluginParams = const ParamTable& (*)() noexcept;

/// The exported handshake. Fields are only ever appended; `struct_size` tells the host which
/// ones a plugin has. Everything up to `summary` is plain C and read before any check passes.
struct PluginDescriptor {
  std::uint32_t struct_size;  ///< sizeof(PluginDescriptor) in the plugin's SDK.
  std::uint32_t abi_major;    ///< HYPERNAS_ABI_MAJOR the plugin was built with.
  std::uint32_t abi_minor;    ///< HYPERNAS_ABI_MINOR the plugin was built with.
  std::uint32_t kind;         ///< A PluginKind value.
  const char* name;           ///< Name scripts use ("ghn"); unique per kind.
  const char* version;        ///< The plugin's own version ("1.0.0").
  const char* build_id;       ///< HYPERNAS_BUILD_ID the plugin was built with.
  const char* summary;        ///< One line for `hypernas plugins`.
  PluginParams params;        ///< Declared parameters (called only after the checks pass).
  PluginFactory create;       ///< Factory (called only after the checks pass).
};

/// Signature of the exported entry point.
using DescriptorFn = const PluginDescriptor* (*)();

/// Name of the exported entry point (a Boost.DLL alias).
inline constexpr const char* kDescriptorSymbol = "hypernas_plugin_descriptor";

/// @cond INTERNAL
namespace detail {
template <typename T>
Plugin* create_plugin(const Options& options, std::string* error) noexcept {
  try {
    return new T(options);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
  } catch (...) {
    if (error) *error = "unknown exception in plugin constructor";
  }
  return nullptr;
}
}  // namespace detail
/// @endcond

}  // namespace hypernas

/// Exports class `Class` as a plugin named `NAME` (a string literal) of kind `KIND`
/// (Surrogate, Strategy or Space). `Class` must be constructible from `const Options&` and
/// have a static `const ParamTable& params() noexcept`. Use once per library, at namespace
/// scope in a .cpp file:
/// @code
/// HYPERNAS_PLUGIN(Surrogate, MySurrogate, "mine", "1.0.0", "scores by depth")
/// @endcode
#define HYPERNAS_PLUGIN(KIND, Class, NAME, VERSION, SUMMARY)                \
  namespace hypernas_plugin_export {                                        \
  static const ::hypernas::PluginDescriptor kDescriptor = {                 \
      sizeof(::hypernas::PluginDescriptor),                                 \
      HYPERNAS_ABI_MAJOR,                                                   \
      HYPERNAS_ABI_MINOR,                                                   \
      static_cast<std::uint32_t>(::hypernas::PluginKind::KIND),             \
      NAME,                                                                 \
      VERSION,                                                              \
      HYPERNAS_BUILD_ID,                                                    \
      SUMMARY,                                                              \
      &Class::params,                                                       \
      &::hypernas::detail::create_plugin<Class>};                           \
  const ::hypernas::PluginDescriptor* descriptor() { return &kDescriptor; } \
  }                                                                         \
  BOOST_DLL_ALIAS(hypernas_plugin_export::descriptor, hypernas_plugin_descriptor)
