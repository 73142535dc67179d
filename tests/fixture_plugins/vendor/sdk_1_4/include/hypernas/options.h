#pragma once
/// @file options.h
/// @brief Named, typed, defaulted options and the parameter table that validates them.
///
/// Every plugin declares its parameters once, in a ParamTable. That one declaration validates
/// options coming from Lua tables and `--set key=value`, fills in defaults, and is printed by
/// `hypernas plugins --json`, so the docs, the CLI and the scripts agree.

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hypernas/error.h"

namespace hypernas {

/// One option value: a boolean, an integer, a real number or a string.
using Value = std::variant<bool, std::int64_t, double, std::string>;

/// The type a parameter is declared with.
enum class ParamType { Bool = 1, Int, Real, String };

/// Name of a ParamType as users see it ("bool", "int", "real", "string").
inline const char* type_name(ParamType t) {
  switch (t) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Real: return "real";
    case ParamType::String: return "string";
  }
  return "?";
}

/// Renders a value the way a user would type it.
inline std::string to_string(const Value& v) {
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) {
    // The shortest form that reads back as the same double (0.1 stays "0.1"; 0.1234567 and
    // 0.1234568 stay distinct), so canonical() never merges two different values.
    for (int precision = 6; precision <= 17; ++precision) {
      std::ostringstream s;
      s.precision(precision);
      s << *d;
      if (precision == 17 || std::stod(s.str()) == *d) return s.str();
    }
  }
  return std::get<std::string>(v);
}

/// A resolved set of options: every declared parameter present with a value of its type.
class Options {
 public:
  /// Sets (or replaces) one value.
  Options& set(const std::string& key, Value v) {
    values_[key] = std::move(v);
    return *this;
  }
  /// True when `key` has a value.
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  /// The raw value of `key`; throws Error naming the key when absent.
  const Value& at(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw Error(cat("option '", key, "' is not set"));
    return it->second;
  }
  /// Boolean option.
  bool get_bool(const std::string& key) const { return get<bool>(key, "bool"); }
  /// Integer option.
  std::int64_t get_int(const std::string& key) const { return get<std::int64_t>(key, "int"); }
  /// Real option; an integer value is widened.
  double get_real(const std::string& key) const {
    const Value& v = at(key);
    if (auto i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    return get<double>(key, "real");
  }
  /// String option.
  const std::string& get_string(const std::string& key) const {
    const Value& v = at(key);
    if (auto s = std::get_if<std::string>(&v)) return *s;
    throw Error(cat("option '", key, "' is not a string"));
  }
  /// All values, ordered by key.
  const std::map<std::string, Value>& values() const { return values_; }
  /// `key=value,key=value`, ordered by key: a stable text form used in cache keys.
  std::string canonical() const {
    std::string out;
    for (const auto& [k, v] : values_) {
      if (!out.empty()) out += ',';
      out += k + "=" + to_string(v);
    }
    return out;
  }

 private:
  template <typename T>
  const T& get(const std::string& key, const char* type) const {
    const Value& v = at(key);
    if (auto p = std::get_if<T>(&v)) return *p;
    throw Error(cat("option '", key, "' is not of type ", type));
  }
  std::map<std::string, Value> values_;
};

/// Declaration of one parameter: name, type, default, help text and optional limits.
struct ParamSpec {
  std::string name;                  ///< Key used in Lua tables and `--set`.
  ParamType type = ParamType::Int;   ///< Declared type.
  Value default_value;               ///< Value used when the caller gives none.
  std::string help;                  ///< One line for docs and `hypernas plugins`.
  std::optional<double> min;         ///< Inclusive lower bound for Int and Real.
  std::optional<double> max;         ///< Inclusive upper bound for Int and Real.
  std::vector<std::string> choices;  ///< Allowed values for String (empty: any).
};

/// The parameters of one plugin (or kernel service), declared once.
class ParamTable {
 public:
  /// Declares an integer parameter with inclusive bounds.
  ParamTable& add_int(std::string name, std::int64_t def, std::string help,
                      std::optional<double> min = std::nullopt,
                      std::optional<double> max = std::nullopt) {
    specs_.push_back({std::move(name), ParamType::Int, def, std::move(help), min, max, {}});
    return *this;
  }
  /// Declares a real parameter with inclusive bounds.
  ParamTable& add_real(std::string name, double def, std::string help,
                       std::optional<double> min = std::nullopt,
                       std::optional<double> max = std::nullopt) {
    specs_.push_back({std::move(name), ParamType::Real, def, std::move(help), min, max, {}});
    return *this;
  }
  /// Declares a boolean parameter.
  ParamTable& add_bool(std::string name, bool def, std::string help) {
    specs_.push_back({std::move(name), ParamType::Bool, def, std::move(help), {}, {}, {}});
    return *this;
  }
  /// Declares a string parameter; `choices` (if not empty) lists the allowed values.
  ParamTable& add_string(std::string name, std::string def, std::string help,
                         std::vector<std::string> choices = {}) {
    specs_.push_back({std::move(name),
                      ParamType::String,
                      std::move(def),
                      std::move(help),
                      {},
                      {},
                      std::move(choices)});
    return *this;
  }
  /// Marks the parameter declared last as one that changes no score (a checking or logging
  /// flag, a thread count): the kernel leaves it out of the evaluation key, so changing it
  /// reuses the scores already stored (ABI 1.1). Throws UsageError when nothing is declared.
  ParamTable& score_neutral() {
    if (specs_.empty()) throw UsageError("ParamTable::score_neutral(): no parameter declared yet");
    neutral_.push_back(specs_.back().name);
    return *this;
  }
  /// False for a parameter marked score_neutral().
  /// NOTE: the kernel calls this only on tables of plugins built with ABI >= 1.1; a table of an
  /// older plugin has no such member (every option of such a plugin keys its scores).
  bool affects_score(const std::string& name) const {
    for (const auto& n : neutral_)
      if (n == name) return false;
    return true;
  }
  /// The declarations, in declaration order.
  const std::vector<ParamSpec>& specs() const { return specs_; }
  /// The declaration of `name`, or nullptr.
  const ParamSpec* find(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }

  /// Checks `given` against the declarations and returns it completed with defaults.
  /// Throws UsageError naming `owner`, the key, the expected and the found value on an unknown
  /// key, a wrong type, a value out of range or not among the choices. Integers are accepted
  /// for Real parameters; integral reals (3.0) for Int parameters.
  Options resolve(const Options& given, const std::string& owner) const {
    Options out;
    for (const auto& s : specs_) out.set(s.name, s.default_value);
    for (const auto& [key, value] : given.values()) {
      const ParamSpec* s = find(key);
      if (!s) throw UsageError(cat(owner, ": unknown option '", key, "'; known: ", known()));
      out.set(key, coerce(*s, value, owner));
    }
    return out;
  }

 private:
  std::string known() const {
    std::string k;
    for (const auto& s : specs_) k += (k.empty() ? "" : ", ") + s.name;
    return k.empty() ? "(none)" : k;
  }
  static Value coerce(const ParamSpec& s, const Value& v, const std::string& owner) {
    auto bad = [&](const std::string& why) {
      return UsageError(cat(owner, ": option '", s.name, "' expects ", type_name(s.type), why,
                            ", got '", to_string(v), "'"));
    };
    Value out = v;
    switch (s.type) {
      case ParamType::Bool:
        if (!std::holds_alternative<bool>(v)) throw bad("");
        return v;
      case ParamType::Int:
        if (auto d = std::get_if<double>(&v)) {
          if (std::floor(*d) != *d) throw bad("");
          out = static_cast<std::int64_t>(*d);
        } else if (!std::holds_alternative<std::int64_t>(v)) {
          throw bad("");
        }
        break;
      case ParamType::Real:
        if (auto i = std::get_if<std::int64_t>(&v)) out = static_cast<double>(*i);
        else if (!std::holds_alternative<double>(v)) throw bad("");
        if (!std::isfinite(std::get<double>(out))) throw bad(" (finite)");
        break;
      case ParamType::String:
        if (!std::holds_alternative<std::string>(v)) throw bad("");
        if (!s.choices.empty()) {
          bool ok = false;
          std::string list;
          for (const auto& c : s.choices) {
            ok = ok || c == std::get<std::string>(v);
            list += (list.empty() ? "" : "|") + c;
          }
          if (!ok) throw bad(cat(" (one of ", list, ")"));
        }
        return v;
    }
    double x = std::holds_alternative<double>(out)
                   ? std::get<double>(out)
                   : static_cast<double>(std::get<std::int64_t>(out));
    if (s.min && x < *s.min) throw bad(cat(" >= ", *s.min));
    if (s.max && x > *s.max) throw bad(cat(" <= ", *s.max));
    return out;
  }
  // NOTE: members are only ever appended (the kernel reads tables that plugins built).
  std::vector<ParamSpec> specs_;
  std::vector<std::string> neutral_;  ///< ABI 1.1: names marked score_neutral().
};

}  // namespace hypernas
