#pragma once
/// @file registry.h
/// @brief Finds, checks and loads plugin libraries; creates plugin objects by kind and name.
///
/// NOTE: every library loaded (refused ones too: their static initialisers already ran) stays
/// loaded for the registry's lifetime, and every object created holds a reference to its
/// library, so no code is unloaded while anything made from it lives.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <hypernas/plugin.h>
#include <hypernas/space.h>
#include <hypernas/strategy.h>
#include <hypernas/surrogate.h>

namespace boost::dll {
class shared_library;
}

namespace hypernas::plugin {

/// A plugin that passed every check.
struct PluginInfo {
  std::string name;                                     ///< Name scripts use.
  PluginKind kind{};                                    ///< What it provides.
  std::string version;                                  ///< Plugin's own version.
  std::string summary;                                  ///< One line of description.
  std::uint32_t abi_major = 0;                          ///< ABI it was built for.
  std::uint32_t abi_minor = 0;                          ///< ABI minor it was built for.
  std::string build_id;                                 ///< Build id it was built with.
  std::filesystem::path path;                           ///< The library file.
  const PluginDescriptor* descriptor = nullptr;         ///< Its descriptor (inside the library).
  std::shared_ptr<boost::dll::shared_library> library;  ///< Keeps the library loaded.
};

/// A file that was not loaded, and why.
struct Refusal {
  std::filesystem::path path;  ///< The file.
  std::string reason;          ///< Why it was refused, with both values where two disagree.
};

/// The plugin registry of one process.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// The folders searched by default: each entry of HYPERNAS_PLUGIN_PATH (':'-separated), then
  /// the built-in plugin folder: the build tree's when the executable lies in the build tree,
  /// else the install's (found relative to the executable, so an install can move).
  static std::vector<std::filesystem::path> default_search_path();

  /// Loads every `*.so` file of each folder (sorted by name, not recursive). A folder that
  /// does not exist is recorded as a refusal.
  void scan(const std::vector<std::filesystem::path>& folders);
  /// Checks and loads one file; returns true when registered, else records a Refusal.
  bool load(const std::filesystem::path& file);

  /// Plugins registered, in load order.
  const std::vector<PluginInfo>& plugins() const { return plugins_; }
  /// Files refused, in scan order.
  const std::vector<Refusal>& refusals() const { return refusals_; }
  /// The plugin of `kind` named `name`, or nullptr.
  const PluginInfo* find(PluginKind kind, const std::string& name) const;

  /// Creates a plugin object; `given` is validated against its parameter table. Throws
  /// UsageError for an unknown name (listing the known ones) or bad options, Error when the
  /// plugin's factory fails (with its message and the library path).
  std::shared_ptr<Surrogate> create_surrogate(const std::string& name, const Options& given) const;
  /// See create_surrogate().
  std::shared_ptr<Strategy> create_strategy(const std::string& name, const Options& given) const;
  /// See create_surrogate().
  std::shared_ptr<SearchSpace> create_space(const std::string& name, const Options& given) const;
  /// The resolved options `create_*` would pass for `given` (defaults filled in).
  Options resolve(PluginKind kind, const std::string& name, const Options& given) const;

  /// Plugins and refusals as JSON text (what `hypernas plugins --json` prints).
  std::string to_json() const;
  /// Plugins and refusals as an aligned table.
  std::string to_table() const;

 private:
  const PluginInfo& require(PluginKind kind, const std::string& name) const;
  std::shared_ptr<Plugin> create(PluginKind kind, const std::string& name,
                                 const Options& given) const;
  void refuse(const std::filesystem::path& file, std::string reason);

  std::vector<PluginInfo> plugins_;
  std::vector<Refusal> refusals_;
  std::vector<std::shared_ptr<boost::dll::shared_library>> retained_;
};

}  // namespace hypernas::plugin
