/// @file ensemble.cpp
/// @brief The `ensemble` surrogate (ensemble.h).

#include "ensemble.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <hypernas/error.h>
#include <hypernas/hash.h>

namespace hypernas {

namespace {

constexpr char kMagic[8] = {'H', 'N', 'A', 'S', '.', 'E', 'N', 'S'};
constexpr std::uint32_t kFormatVersion = 1;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

/// A value typed as the kernel types `--set` values: true/false, an integer, a real, or text.
Value typed(const std::string& text) {
  if (text == "true") return true;
  if (text == "false") return false;
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0' && errno == 0) return static_cast<std::int64_t>(i);
  const double d = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0' && std::isfinite(d)) return d;
  return text;
}

void put_u64(std::string& out, std::uint64_t v) { out.append(reinterpret_cast<char*>(&v), 8); }

}  // namespace

std::vector<EnsembleMember> parse_members(const std::string& members, const std::string& weights) {
  std::vector<EnsembleMember> out;
  if (trim(members).empty())
    throw UsageError(
        "ensemble: option 'members' is empty; name the surrogates to combine, e.g. "
        "members=\"ghn:fan_in_norm=true;params\"");
  for (const std::string& raw : split(members, ';')) {
    std::string spec = trim(raw);
    if (spec.empty())
      throw UsageError(cat("ensemble: option 'members' has an empty entry: '", members, "'"));
    EnsembleMember m;
    const std::size_t at = spec.find('@');
    if (at != std::string::npos) {
      m.checkpoint = trim(spec.substr(at + 1));
      if (m.checkpoint.empty())
        throw UsageError(cat("ensemble: member '", spec, "' has '@' but no checkpoint file"));
      spec = trim(spec.substr(0, at));
    }
    const std::size_t colon = spec.find(':');
    m.name = trim(spec.substr(0, colon));
    if (m.name.empty() || m.name.find_first_of(" =,") != std::string::npos)
      throw UsageError(cat("ensemble: member '", raw, "' does not start with a surrogate name"));
    if (colon != std::string::npos) {
      for (const std::string& kv : split(spec.substr(colon + 1), ',')) {
        const std::size_t eq = kv.find('=');
        const std::string key = trim(kv.substr(0, eq));
        if (eq == std::string::npos || key.empty())
          throw UsageError(
              cat("ensemble: member '", raw, "': expected key=value, got '", trim(kv), "'"));
        m.options.set(key, typed(trim(kv.substr(eq + 1))));
      }
    }
    out.push_back(std::move(m));
  }
  if (!trim(weights).empty()) {
    const std::vector<std::string> ws = split(weights, ',');
    if (ws.size() != out.size())
      throw UsageError(
          cat("ensemble: ", ws.size(), " weights ('", weights, "') for ", out.size(), " members"));
    double total = 0;
    for (std::size_t i = 0; i < ws.size(); ++i) {
      const Value v = typed(trim(ws[i]));
      double w = -1;
      if (auto d = std::get_if<double>(&v)) w = *d;
      if (auto n = std::get_if<std::int64_t>(&v)) w = static_cast<double>(*n);
      if (!(w >= 0))
        throw UsageError(cat("ensemble: weight '", trim(ws[i]), "' is not a non-negative number"));
      out[i].weight = w;
      total += w;
    }
    if (total <= 0) throw UsageError(cat("ensemble: the weights '", weights, "' are all zero"));
  }
  return out;
}

double quantile(const std::vector<double>& sorted, double value) {
  const auto lo = std::lower_bound(sorted.begin(), sorted.end(), value);
  const auto hi = std::upper_bound(lo, sorted.end(), value);
  const double below = static_cast<double>(lo - sorted.begin());
  const double equal = static_cast<double>(hi - lo);
  return (below + 0.5 * equal) / static_cast<double>(sorted.size());
}

const ParamTable& EnsembleSurrogate::params() noexcept {
  static const ParamTable table = [] {
    ParamTable t;
    t.add_string("members", "",
                 "the surrogates to combine, ';'-separated, each name[:key=value,...][@checkpoint]"
                 ", e.g. \"ghn:fan_in_norm=true;params\"");
    t.add_string("weights", "", "one weight per member, ','-separated (empty: equal weights)");
    t.add_int("reference", 128,
              "architectures of the reference sample each member's score is ranked in", 2, 100000);
    t.add_int("reference_seed", 0, "seed of the reference sample", 0);
    return t;
  }();
  return table;
}

EnsembleSurrogate::EnsembleSurrogate(const Options& options)
    : specs_(parse_members(options.get_string("members"), options.get_string("weights"))),
      reference_(options.get_int("reference")),
      reference_seed_(options.get_int("reference_seed")) {}

EnsembleSurrogate::~EnsembleSurrogate() = default;

void EnsembleSurrogate::attach(const SurrogateFactory& factory) {
  std::vector<std::shared_ptr<Surrogate>> made;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const EnsembleMember& m = specs_[i];
    std::shared_ptr<Surrogate> s;
    try {
      s = factory.create(m.name, m.options);
      if (!m.checkpoint.empty()) factory.load_checkpoint(*s, m.name, m.checkpoint);
    } catch (const UsageError& e) {
      throw UsageError(cat("ensemble: member ", i + 1, " ('", m.name, "'): ", e.what()));
    }
    made.push_back(std::move(s));
  }
  surrogates_ = std::move(made);
  cache_.clear();
}

std::uint32_t EnsembleSurrogate::capabilities() const {
  std::uint32_t caps = 0;
  for (const auto& s : surrogates_)
    caps |= s->capabilities() &
            (kTrainable | kNeedsData | kUsesSeed | kReadsEvalBatch | kReadsEvalImages);
  return caps;
}

void EnsembleSurrogate::fit(Context& ctx, const FitRequest& request) {
  for (std::size_t i = 0; i < surrogates_.size(); ++i) {
    if (!(surrogates_[i]->capabilities() & kTrainable)) continue;
    ctx.log().info(cat("fitting member ", i + 1, " (", specs_[i].name, ")"));
    cache_.clear();
    surrogates_[i]->fit(ctx, request);
  }
}

std::vector<Score> EnsembleSurrogate::score(Context& ctx, const ScoreRequest& req) {
  HYPERNAS_CHECK(!surrogates_.empty(),
                 "ensemble: no members were created (make the ensemble through the kernel: "
                 "nas.surrogate, hypernas score)");
  HYPERNAS_CHECK(req.space != nullptr,
                 "ensemble: score needs the search space (its reference sample is drawn from it)");
  // The reference sample is the same for every call on this space: the first draw (and its
  // counts, which tell two sizes of one space apart) names it, and the rest of it is drawn and
  // scored only when no call has done so yet with these data and settings.
  Rng rng(static_cast<std::uint64_t>(reference_seed_));
  Architecture first = req.space->sample(rng);
  const ArchStats first_stats = req.space->stats(first);
  const std::string key =
      cat(req.space->name(), "#", hex64(fnv1a64(first.text)), ":", first_stats.params, ":",
          first_stats.flops, "@", req.data ? req.data->identity() : std::string("-"), "[",
          req.batch_size, ",", req.max_images, "]");
  auto cached = cache_.find(key);
  if (cached == cache_.end()) {
    std::vector<Architecture> reference;
    reference.reserve(static_cast<std::size_t>(reference_));
    reference.push_back(std::move(first));
    while (static_cast<std::int64_t>(reference.size()) < reference_)
      reference.push_back(req.space->sample(rng));
    ScoreRequest rr = req;
    rr.archs.clear();
    rr.seeds.clear();
    for (const Architecture& a : reference) {
      rr.archs.push_back(&a);
      rr.seeds.push_back(fnv1a64(a.text, fnv1a64(cat("ensemble/reference/", reference_seed_))));
    }
    std::vector<std::vector<double>> sorted;
    for (std::size_t m = 0; m < surrogates_.size(); ++m) {
      ctx.log().info(cat("scoring the reference sample (", reference_,
                         " architectures) with member ", m + 1, " (", specs_[m].name, ")"));
      const std::vector<Score> scores = surrogates_[m]->score(ctx, rr);
      HYPERNAS_CHECK(scores.size() == rr.archs.size(), "ensemble: member ", m + 1, " ('",
                     specs_[m].name, "') returned ", scores.size(), " scores for ", rr.archs.size(),
                     " reference architectures");
      std::vector<double> v;
      for (const Score& s : scores)
        if (std::isfinite(s.value)) v.push_back(s.value);
      HYPERNAS_CHECK(!v.empty(), "ensemble: member ", m + 1, " ('", specs_[m].name,
                     "') could not score any of the ", reference_, " reference architectures");
      std::sort(v.begin(), v.end());
      sorted.push_back(std::move(v));
    }
    cached = cache_.emplace(key, std::move(sorted)).first;
  }
  const std::vector<std::vector<double>>& sorted = cached->second;

  double total_weight = 0;
  for (const EnsembleMember& m : specs_) total_weight += m.weight;
  std::vector<Score> out(req.archs.size());
  for (std::size_t m = 0; m < surrogates_.size(); ++m) {
    const std::vector<Score> scores = surrogates_[m]->score(ctx, req);
    HYPERNAS_CHECK(scores.size() == req.archs.size(), "ensemble: member ", m + 1, " ('",
                   specs_[m].name, "') returned ", scores.size(), " scores for ", req.archs.size(),
                   " architectures");
    const std::string label = cat(m + 1, ".", specs_[m].name);
    for (std::size_t i = 0; i < scores.size(); ++i) {
      const double raw = scores[i].value;
      const double q =
          std::isfinite(raw) ? quantile(sorted[m], raw) : std::numeric_limits<double>::quiet_NaN();
      out[i].extra[label] = raw;
      out[i].extra[label + ".quantile"] = q;
      out[i].value += specs_[m].weight * q / total_weight;  // NaN stays NaN
    }
  }
  return out;
}

std::string EnsembleSurrogate::save_state() const {
  std::string payload;
  put_u64(payload, surrogates_.size());
  for (std::size_t i = 0; i < surrogates_.size(); ++i) {
    const std::string blob = surrogates_[i]->save_state();
    put_u64(payload, specs_[i].name.size());
    payload += specs_[i].name;
    put_u64(payload, blob.size());
    payload += blob;
  }
  std::string out(kMagic, sizeof(kMagic));
  out.append(reinterpret_cast<const char*>(&kFormatVersion), 4);
  put_u64(out, payload.size());
  put_u64(out, fnv1a64(payload));
  return out + payload;
}

void EnsembleSurrogate::load_state(const std::string& blob) {
  constexpr std::size_t kHeader = sizeof(kMagic) + 4 + 8 + 8;
  HYPERNAS_CHECK(blob.size() >= sizeof(kMagic) && std::memcmp(blob.data(), kMagic, 8) == 0,
                 "ensemble: not an ensemble state blob (it does not start with 'HNAS.ENS'; ",
                 blob.size(), " bytes)");
  HYPERNAS_CHECK(blob.size() >= kHeader, "ensemble: state blob is truncated: ", blob.size(),
                 " bytes, shorter than its ", kHeader, "-byte header");
  std::uint32_t version = 0;
  std::uint64_t size = 0, checksum = 0;
  std::memcpy(&version, blob.data() + 8, 4);
  std::memcpy(&size, blob.data() + 12, 8);
  std::memcpy(&checksum, blob.data() + 20, 8);
  HYPERNAS_CHECK(version == kFormatVersion, "ensemble: state blob has format version ", version,
                 "; this build reads version ", kFormatVersion);
  HYPERNAS_CHECK(blob.size() - kHeader == size,
                 "ensemble: state blob is truncated or padded: ", "its header announces ", size,
                 " bytes of payload, ", blob.size() - kHeader, " follow");
  const std::string_view payload(blob.data() + kHeader, size);
  HYPERNAS_CHECK(fnv1a64(payload) == checksum,
                 "ensemble: state blob is corrupted: the payload checksum does not match");
  std::size_t pos = 0;
  auto u64 = [&](const char* what) {
    HYPERNAS_CHECK(payload.size() - pos >= 8, "ensemble: state blob is malformed: it ends in ",
                   what);
    std::uint64_t v;
    std::memcpy(&v, payload.data() + pos, 8);
    pos += 8;
    return v;
  };
  auto bytes = [&](std::uint64_t n, const char* what) {
    HYPERNAS_CHECK(payload.size() - pos >= n, "ensemble: state blob is malformed: it ends in ",
                   what);
    std::string v(payload.substr(pos, n));
    pos += n;
    return v;
  };
  const std::uint64_t count = u64("the member count");
  HYPERNAS_CHECK(count == surrogates_.size(), "ensemble: the state holds ", count,
                 " members, this ensemble has ", surrogates_.size());
  std::vector<std::string> blobs;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::string name = bytes(u64("a member name"), "a member name");
    HYPERNAS_CHECK(name == specs_[i].name, "ensemble: member ", i + 1, " of the state is '", name,
                   "', this ensemble's is '", specs_[i].name, "'");
    blobs.push_back(bytes(u64("a member state"), "a member state"));
  }
  HYPERNAS_CHECK(pos == payload.size(),
                 "ensemble: state blob is malformed: bytes after the last "
                 "member");
  std::vector<std::string> before;
  for (const auto& s : surrogates_) before.push_back(s->save_state());
  std::size_t i = 0;
  try {
    for (; i < surrogates_.size(); ++i) surrogates_[i]->load_state(blobs[i]);
  } catch (const std::exception& e) {
    for (std::size_t j = 0; j < i; ++j) surrogates_[j]->load_state(before[j]);
    throw Error(cat("ensemble: member ", i + 1, " ('", specs_[i].name, "'): ", e.what()));
  }
  cache_.clear();
}

}  // namespace hypernas
