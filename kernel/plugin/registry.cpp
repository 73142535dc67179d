#include "kernel/plugin/registry.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <nlohmann/json.hpp>

#include "kernel/store/checkpoint.h"

namespace hypernas::plugin {
namespace fs = std::filesystem;

namespace {

/// A build id with the white space around each ';'-separated part removed: ABI 1.0's clang id
/// ended its compiler version with the space __clang_version__ carries ("clang-14.0.6 ;...").
std::string normalized_build_id(const std::string& id) {
  std::string out, part;
  auto flush = [&] {
    const auto b = part.find_first_not_of(" \t");
    const auto e = part.find_last_not_of(" \t");
    out += b == std::string::npos ? "" : part.substr(b, e - b + 1);
    part.clear();
  };
  for (char c : id) {
    if (c == ';') {
      flush();
      out += ';';
    } else {
      part += c;
    }
  }
  flush();
  return out;
}

// The plain-C head every descriptor version has, up to and including `summary`.
constexpr std::size_t kDescriptorHead = offsetof(PluginDescriptor, params);
// The size of an ABI 1.0 descriptor: fields a later minor appends are read only when a
// plugin's struct_size covers them, so older plugins keep loading.
constexpr std::size_t kDescriptorV1Size =
    offsetof(PluginDescriptor, create) + sizeof(PluginFactory);

bool is_library_name(const fs::path& p) {
  const std::string name = p.filename().string();
  return p.extension() == ".so" || name.find(".so.") != std::string::npos;
}

bool valid_name(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* c = name; *c; ++c)
    if (!(std::isalnum(static_cast<unsigned char>(*c)) || *c == '_' || *c == '-')) return false;
  return std::strlen(name) <= 64;
}

std::string str_or(const char* s, const char* fallback) { return s ? s : fallback; }

// The C++ name of a mangled symbol ("_ZN3c106detail14torchCheckFail..." ->
// "c10::detail::torchCheckFail(char const*, ...)"); the symbol itself when it is not one.
std::string demangle(const std::string& symbol) {
  int status = 0;
  char* name = abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status);
  if (status != 0 || name == nullptr) return symbol;
  std::string out = name;
  std::free(name);
  return out;
}

// The dynamic loader's own message for a library that failed to load. Boost.DLL's exception
// wraps it and appends the text of an unrelated errno (": Bad file descriptor"), so ask the
// loader again; fall back to the part of Boost's text that came from the loader.
std::string loader_message(const fs::path& file, const std::string& boost_what) {
  dlerror();  // clear
  if (void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    dlclose(handle);
  } else if (const char* why = dlerror()) {
    return why;
  }
  const std::string key = "dlerror system message: ";
  const auto at = boost_what.find(key);
  const auto close = boost_what.rfind(')');
  if (at != std::string::npos && close != std::string::npos && close > at + key.size())
    return boost_what.substr(at + key.size(), close - at - key.size());
  return boost_what;
}

// Why `file` is not loadable, from the loader's message: an undefined C++ symbol is named in
// C++ and its likely cause is said (another C++ ABI, another Torch).
std::string load_failure(const fs::path& file, const std::string& why) {
  const std::string key = ": undefined symbol: ";
  const auto at = why.find(key);
  if (at == std::string::npos) return cat("not a loadable shared library: ", why);
  const std::string object = why.substr(0, at);
  std::string symbol = why.substr(at + key.size());
  std::string version;  // ", version GLIBCXX_3.4.30" after a versioned symbol
  if (const auto end = symbol.find_first_of(", "); end != std::string::npos) {
    version = symbol.substr(end);
    symbol.resize(end);
  }
  std::string out = cat("not a loadable shared library: ", file.filename().string(), " needs ");
  const std::string name = demangle(symbol);
  out += name == symbol ? cat("the symbol ", symbol, version)
                        : cat(name, " (symbol ", symbol, version, ")");
  if (fs::path(object).filename() != file.filename()) out += cat(" through ", object);
  out += ", which no loaded library defines";
  if (symbol.rfind("_Z", 0) == 0)
    out +=
        cat(": it was likely built with another C++ ABI (_GLIBCXX_USE_CXX11_ABI) or against "
            "another Torch than this hypernas (build id ",
            build_id(), "); rebuild it with the same compiler, standard library and Torch");
  return out;
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

std::vector<fs::path> Registry::default_search_path() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("HYPERNAS_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) out.emplace_back(item);
  }
  // The install's plugin folder, relative to the executable so an install can move; the build
  // tree's when the binary runs from there.
  std::error_code ec;
  const fs::path exe = fs::weakly_canonical(boost::dll::program_location(ec));
  const fs::path installed = exe.parent_path().parent_path() / "lib" / "hypernas" / "plugins";
  const std::string build_root = fs::weakly_canonical(HYPERNAS_BINARY_ROOT).string() + "/";
  if (!ec && exe.string().rfind(build_root, 0) == 0) out.emplace_back(HYPERNAS_BUILD_PLUGIN_DIR);
  else if (!ec && fs::is_directory(installed)) out.push_back(installed);
  else out.emplace_back(HYPERNAS_INSTALL_PLUGIN_DIR);
  return out;
}

void Registry::scan(const std::vector<fs::path>& folders) {
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
      refuse(folder, "not a folder (named in HYPERNAS_PLUGIN_PATH or the plugin path)");
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec))
      if (entry.is_regular_file() && is_library_name(entry.path())) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) load(f);
  }
}

void Registry::refuse(const fs::path& file, std::string reason) {
  refusals_.push_back({file, std::move(reason)});
}

bool Registry::load(const fs::path& file) {
  auto lib = std::make_shared<boost::dll::shared_library>();
  try {
    // rtld_now: an unresolved symbol (a plugin built against other libraries) is reported
    // here, with its name, instead of crashing later.
    lib->load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    refuse(file, load_failure(file, loader_message(file, e.what())));
    return false;
  }
  retained_.push_back(lib);
  if (!lib->has(kDescriptorSymbol)) {
    refuse(file, cat("no HyperNAS descriptor: symbol '", kDescriptorSymbol,
                     "' not found (build the plugin with HYPERNAS_PLUGIN(...))"));
    return false;
  }
  const PluginDescriptor* d = nullptr;
  try {
    d = lib->get_alias<const PluginDescriptor*()>(kDescriptorSymbol)();
  } catch (const std::exception& e) {
    refuse(file, cat("cannot read the descriptor: ", e.what()));
    return false;
  }
  if (d == nullptr) {
    refuse(file, "the descriptor function returned null");
    return false;
  }
  if (d->struct_size < kDescriptorHead) {
    refuse(file, cat("descriptor too small: ", d->struct_size, " bytes, at least ", kDescriptorHead,
                     " expected"));
    return false;
  }
  const std::string name = str_or(d->name, "");
  const std::string what = name.empty() ? std::string("plugin") : cat("plugin '", name, "'");
  if (d->abi_major != kAbiMajor) {
    refuse(file, cat(what, " was built for ABI major ", d->abi_major, ", this host has ABI ",
                     kAbiMajor, ".", kAbiMinor, "; rebuild it against this SDK"));
    return false;
  }
  if (d->abi_minor > kAbiMinor) {
    refuse(file, cat(what, " was built for ABI ", d->abi_major, ".", d->abi_minor,
                     ", newer than this host's ", kAbiMajor, ".", kAbiMinor,
                     "; update HyperNAS or rebuild the plugin"));
    return false;
  }
  const std::string plugin_build = normalized_build_id(str_or(d->build_id, "(none)"));
  if (plugin_build != normalized_build_id(build_id())) {
    refuse(file, cat(what, " has build id '", plugin_build, "', this host has '", build_id(),
                     "'; build it with the same compiler, standard library and Torch"));
    return false;
  }
  if (d->kind < 1 || d->kind > 3) {
    refuse(file, cat(what, " has unknown kind ", d->kind, " (1 surrogate, 2 strategy, 3 space)"));
    return false;
  }
  if (!valid_name(d->name)) {
    refuse(file,
           cat("invalid plugin name '", name, "' (letters, digits, '_' and '-', at most 64)"));
    return false;
  }
  if (d->struct_size < kDescriptorV1Size || d->create == nullptr || d->params == nullptr) {
    refuse(file, cat(what, " has no factory or parameter table (descriptor of ", d->struct_size,
                     " bytes)"));
    return false;
  }
  const auto kind = static_cast<PluginKind>(d->kind);
  if (const PluginInfo* other = find(kind, name)) {
    refuse(file, cat("duplicate ", kind_name(kind), " name '", name, "': already loaded from ",
                     other->path.string()));
    return false;
  }
  PluginInfo info;
  info.name = name;
  info.kind = kind;
  info.version = str_or(d->version, "");
  info.summary = str_or(d->summary, "");
  info.abi_major = d->abi_major;
  info.abi_minor = d->abi_minor;
  info.build_id = plugin_build;
  info.path = fs::absolute(file);
  info.descriptor = d;
  info.library = lib;
  plugins_.push_back(std::move(info));
  return true;
}

const PluginInfo* Registry::find(PluginKind kind, const std::string& name) const {
  for (const auto& p : plugins_)
    if (p.kind == kind && p.name == name) return &p;
  return nullptr;
}

const PluginInfo& Registry::require(PluginKind kind, const std::string& name) const {
  if (const PluginInfo* p = find(kind, name)) return *p;
  std::string known;
  for (const auto& p : plugins_)
    if (p.kind == kind) known += (known.empty() ? "" : ", ") + p.name;
  std::string refused;
  for (const auto& r : refusals_) refused += cat("\n  refused ", r.path.string(), ": ", r.reason);
  throw UsageError(cat("no ", kind_name(kind), " plugin named '", name,
                       "'; available: ", known.empty() ? "(none)" : known, refused));
}

Options Registry::resolve(PluginKind kind, const std::string& name, const Options& given) const {
  const PluginInfo& info = require(kind, name);
  return info.descriptor->params().resolve(given, cat(kind_name(kind), " '", name, "'"));
}

std::shared_ptr<Plugin> Registry::create(PluginKind kind, const std::string& name,
                                         const Options& given) const {
  const PluginInfo& info = require(kind, name);
  Options options = resolve(kind, name, given);
  std::string error;
  Plugin* raw = info.descriptor->create(options, &error);
  if (raw == nullptr)
    throw Error(cat(kind_name(kind), " '", name, "' (", info.path.string(),
                    ") failed to start: ", error.empty() ? "no reason given" : error));
  // The deleter holds the library: the object's code stays mapped while the object lives.
  auto library = info.library;
  std::shared_ptr<Plugin> object(raw, [library](Plugin* p) { delete p; });
  HYPERNAS_CHECK(object->kind() == kind, "plugin '", name, "' (", info.path.string(),
                 ") created an object of kind ", kind_name(object->kind()), ", expected ",
                 kind_name(kind));
  return object;
}

namespace {

/// What Surrogate::attach() receives (ABI 1.2): this registry's surrogates, and checkpoints.
class Factory final : public SurrogateFactory {
 public:
  explicit Factory(const Registry& registry) : registry_(registry) {}
  std::shared_ptr<Surrogate> create(const std::string& name,
                                    const Options& options) const override {
    return registry_.create_surrogate(name, options);
  }
  void load_checkpoint(Surrogate& surrogate, const std::string& name,
                       const std::string& path) const override {
    store::load_checkpoint(path, name, surrogate);
  }

 private:
  const Registry& registry_;
};

}  // namespace

std::shared_ptr<Surrogate> Registry::create_surrogate(const std::string& name,
                                                      const Options& given) const {
  auto object = std::static_pointer_cast<Surrogate>(create(PluginKind::Surrogate, name, given));
  const PluginInfo& info = require(PluginKind::Surrogate, name);
  // NOTE: Surrogate::attach() is a 1.2 virtual: an older plugin's vtable has no such slot.
  if (info.abi_minor >= 2) {
    try {
      object->attach(Factory(*this));
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(
          cat("surrogate '", name, "' (", info.path.string(), ") failed to start: ", e.what()));
    }
  }
  return object;
}
std::shared_ptr<Strategy> Registry::create_strategy(const std::string& name,
                                                    const Options& given) const {
  return std::static_pointer_cast<Strategy>(create(PluginKind::Strategy, name, given));
}
std::shared_ptr<SearchSpace> Registry::create_space(const std::string& name,
                                                    const Options& given) const {
  return std::static_pointer_cast<SearchSpace>(create(PluginKind::Space, name, given));
}

namespace {
nlohmann::json value_json(const Value& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}
}  // namespace

std::string Registry::to_json() const {
  nlohmann::json out;
  out["host"] = {{"abi", cat(kAbiMajor, ".", kAbiMinor)}, {"build_id", build_id()}};
  out["plugins"] = nlohmann::json::array();
  for (const auto& p : plugins_) {
    nlohmann::json params = nlohmann::json::array();
    for (const auto& s : p.descriptor->params().specs()) {
      nlohmann::json j{{"name", s.name},
                       {"type", type_name(s.type)},
                       {"default", value_json(s.default_value)},
                       {"help", s.help}};
      if (s.min) j["min"] = *s.min;
      if (s.max) j["max"] = *s.max;
      if (!s.choices.empty()) j["choices"] = s.choices;
      params.push_back(std::move(j));
    }
    out["plugins"].push_back({{"name", p.name},
                              {"kind", kind_name(p.kind)},
                              {"version", p.version},
                              {"summary", p.summary},
                              {"abi", cat(p.abi_major, ".", p.abi_minor)},
                              {"build_id", p.build_id},
                              {"path", p.path.string()},
                              {"params", std::move(params)}});
  }
  out["refused"] = nlohmann::json::array();
  for (const auto& r : refusals_)
    out["refused"].push_back({{"path", r.path.string()}, {"reason", r.reason}});
  return out.dump(2);
}

std::string Registry::to_table() const {
  std::ostringstream out;
  std::size_t w = 4;
  for (const auto& p : plugins_) w = std::max(w, p.name.size());
  out << "host ABI " << kAbiMajor << "." << kAbiMinor << ", build id " << build_id() << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-9s  %-8s  %-4s  %s\n", int(w), "NAME", "KIND",
                "VERSION", "ABI", "PATH");
  out << line;
  for (const auto& p : plugins_) {
    std::snprintf(line, sizeof line, "%-*s  %-9s  %-8s  %u.%u   %s\n", int(w), p.name.c_str(),
                  kind_name(p.kind), p.version.c_str(), p.abi_major, p.abi_minor,
                  p.path.string().c_str());
    out << line;
    out << std::string(w + 2, ' ') << p.summary << "\n";
    out << std::string(w + 2, ' ') << "build id " << p.build_id << "\n";
  }
  if (plugins_.empty()) out << "(no plugins found)\n";
  if (!refusals_.empty()) {
    out << "\nrefused:\n";
    for (const auto& r : refusals_) out << "  " << r.path.string() << ": " << r.reason << "\n";
  }
  return out.str();
}

}  // namespace hypernas::plugin
