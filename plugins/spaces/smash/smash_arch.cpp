#include "smash_arch.h"

#include <hypernas/error.h>
#include <hypernas/graph_builder.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

#include <ATen/Functions.h>

namespace hypernas::smash {

namespace {

using Vertex = GraphBuilder::Vertex;

/// The layer form users are shown when the structure of a text is wrong.
constexpr const char* kLayerForm =
    "<reads>><writes>/g<G>/o<ops>/k<kernels>/d<dilations>/p<groups>"
    "/x<gates>/n<nls>";
constexpr const char* kNonlinearities = "rts";
constexpr std::int64_t kConvs = 4;

// ---------------------------------------------------------------------------------------------
// Random draws

/// Uniform integer in [lo, hi].
std::int64_t uniform_in(Rng& rng, std::int64_t lo, std::int64_t hi) {
  return lo + static_cast<std::int64_t>(rng.uniform_int(static_cast<std::uint64_t>(hi - lo + 1)));
}

/// True with probability p; draws nothing when p <= 0, so that mutate(p = 0) leaves the stream
/// as it found it.
bool chance(Rng& rng, double p) { return p > 0 && rng.uniform() < p; }

/// An index drawn with probability proportional to `weights`.
std::size_t weighted(Rng& rng, const std::vector<double>& weights) {
  double total = 0;
  for (double w : weights) total += w;
  double u = rng.uniform() * total;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (u < weights[i]) return i;
    u -= weights[i];
  }
  return weights.size() - 1;  // rounding
}

/// `count` distinct values of 0 .. n-1, sorted.
std::vector<std::int64_t> sorted_subset(Rng& rng, std::int64_t n, std::int64_t count) {
  std::vector<std::int64_t> pool(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) pool[static_cast<std::size_t>(i)] = i;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t j = uniform_in(rng, i, n - 1);
    std::swap(pool[static_cast<std::size_t>(i)], pool[static_cast<std::size_t>(j)]);
  }
  pool.resize(static_cast<std::size_t>(count));
  std::sort(pool.begin(), pool.end());
  return pool;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

bool gated(const Layer& layer) { return layer.gates[0] || layer.gates[1]; }
/// Conv j belongs to stage j % 2 (conv0 and conv2 feed stage 0, conv1 and conv3 stage 1); a
/// gate at that stage supplies its nonlinearity.
bool conv_gated(const Layer& layer, std::int64_t j) {
  return layer.gates[static_cast<std::size_t>(j % 2)];
}

std::string join(const std::vector<std::int64_t>& values, const char* sep = ".") {
  std::string out;
  for (std::int64_t v : values) out += (out.empty() ? "" : sep) + std::to_string(v);
  return out;
}

std::string bits(const bool* b, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += b[i] ? '1' : '0';
  return out;
}

std::string op_list() {
  std::string out;
  for (const auto& ops : op_configs()) out += (out.empty() ? "" : ", ") + bits(ops.data(), 4);
  return out;
}

/// Four values as four digits when they all are, else dot-separated ("3537", "3.5.11.7").
std::string quad(const std::array<std::int64_t, 4>& v) {
  bool digits = true;
  for (std::int64_t x : v) digits = digits && x >= 0 && x <= 9;
  std::string out;
  for (std::int64_t x : v) out += (digits || out.empty() ? "" : ".") + std::to_string(x);
  return out;
}

/// Kernel sizes 3, 5, ..., max_kernel.
std::vector<std::int64_t> kernel_choices(const Config& c) {
  std::vector<std::int64_t> out;
  for (std::int64_t k = 3; k <= (c.var_ks ? c.max_kernel : 3); k += 2) out.push_back(k);
  return out;
}

/// The number of banks a layer writes for the first time, given `written` banks before it.
std::int64_t new_banks(const Layer& layer, std::int64_t written) {
  std::int64_t n = 0;
  for (std::int64_t w : layer.writes) n += w >= written ? 1 : 0;
  return n;
}

/// The op's output width in channels (G·N, halved by a gate).
std::int64_t out_channels(const Config& c, const Layer& layer) {
  return layer.units * c.N / (gated(layer) ? 2 : 1);
}

/// Where each group of channels of the encoding starts.
struct Channels {
  std::int64_t banks = 0;  ///< MB: the largest max_banks of any block.
  std::int64_t convs = 0;  ///< Convs described: 4 with var_op, else 1.
  std::int64_t read = 0, write = 0, block = 0, units = 0, dilation = 0, kernel = 0, op = 0,
               gate = 0, nl = 0, groups = 0, start = 0, total = 0;
  std::int64_t kernels = 0;  ///< (max_kernel - 1) / 2 one-hot channels per conv.
  std::int64_t group_count = 0;
};

Channels channels(const Config& c) {
  Channels ch;
  for (std::int64_t b = 0; b < c.blocks; ++b) ch.banks = std::max(ch.banks, c.max_banks(b));
  ch.convs = c.var_op ? kConvs : 1;
  ch.kernels = (c.max_kernel - 1) / 2;
  ch.group_count = static_cast<std::int64_t>(c.group_choices().size());
  ch.read = 0;
  ch.write = ch.read + ch.banks;
  ch.block = ch.write + ch.banks;
  ch.units = ch.block + c.blocks;
  ch.dilation = ch.units + c.units_max();
  ch.kernel = ch.dilation + ch.convs * c.max_dilate;
  ch.op = ch.kernel + (c.var_ks ? ch.convs * ch.kernels : 0);
  ch.gate = ch.op + (c.var_op ? kConvs : 0);
  ch.nl = ch.gate + (c.gates ? 2 : 0);
  ch.groups = ch.nl + (c.var_nl ? ch.convs * 3 : 0);
  ch.start = ch.groups + (c.var_group ? ch.convs * ch.group_count : 0);
  ch.total = ch.start + 1;
  return ch;
}

std::int64_t nl_index(char nl) {
  const char* p = std::char_traits<char>::find(kNonlinearities, 3, nl);
  return p ? p - kNonlinearities : -1;
}

std::int64_t group_index(const Config& c, std::int64_t groups) {
  const std::vector<std::int64_t> choices = c.group_choices();
  auto it = std::find(choices.begin(), choices.end(), groups);
  return it == choices.end() ? -1 : it - choices.begin();
}

/// The channels set (+1) in every slice of `layer` (all but the read banks and the layer-start
/// channel), in block `block`.
std::vector<std::int64_t> common_channels(const Config& c, const Channels& ch, const Layer& layer,
                                          std::int64_t block) {
  std::vector<std::int64_t> on;
  for (std::int64_t w : layer.writes) on.push_back(ch.write + w);
  on.push_back(ch.block + block);
  on.push_back(ch.units + layer.units - 1);
  for (std::int64_t j = 0; j < ch.convs; ++j) {
    if (!layer.ops[static_cast<std::size_t>(j)]) continue;
    const auto J = static_cast<std::size_t>(j);
    on.push_back(ch.dilation + j * c.max_dilate + layer.dilation[J] - 1);
    if (c.var_ks) on.push_back(ch.kernel + j * ch.kernels + (layer.kernel[J] - 1) / 2 - 1);
    if (c.var_op) on.push_back(ch.op + j);
    if (c.var_nl && !conv_gated(layer, j)) on.push_back(ch.nl + j * 3 + nl_index(layer.nl[J]));
    if (c.var_group) on.push_back(ch.groups + j * ch.group_count + group_index(c, layer.groups[J]));
  }
  if (c.gates)
    for (std::int64_t s = 0; s < 2; ++s)
      if (layer.gates[static_cast<std::size_t>(s)]) on.push_back(ch.gate + s);
  return on;
}

// ---------------------------------------------------------------------------------------------
// Sampling (see README.md, "Sampling")

std::vector<std::int64_t> draw_reads(const Config& c, Rng& rng, std::int64_t readable) {
  const std::int64_t count =
      c.depth_compression * uniform_in(rng, 1, readable / c.depth_compression);
  return sorted_subset(rng, readable, count);
}

/// G with probability ∝ 1 / (0.01 + 10 |G - reads|): the authors' "most probable G".
std::int64_t draw_units(const Config& c, Rng& rng, std::int64_t reads) {
  std::vector<double> w;
  for (std::int64_t g = 1; g <= c.units_max(); ++g)
    w.push_back(1.0 / (0.01 + 10.0 * static_cast<double>(std::llabs(g - reads))));
  return static_cast<std::int64_t>(weighted(rng, w)) + 1;
}

/// The authors' writes: n_w in [G, max(readable / 2, G)] with probability ∝ exp(-n_w), a sorted
/// subset of the written banks and the first G empty ones, the empty ones chosen replaced by the
/// first empty banks. Clipped to the block's max_banks.
std::vector<std::int64_t> draw_writes(Rng& rng, std::int64_t readable, std::int64_t max_banks,
                                      std::int64_t units) {
  const std::int64_t candidates = readable + std::min(units, max_banks - readable);
  const std::int64_t lo = std::min(units, candidates);
  const std::int64_t hi = std::min(std::max(readable / 2, units), candidates);
  std::vector<double> w;
  for (std::int64_t n = lo; n <= hi; ++n) w.push_back(std::exp(static_cast<double>(lo - n)));
  const std::int64_t count = lo + static_cast<std::int64_t>(weighted(rng, w));
  std::vector<std::int64_t> chosen = sorted_subset(rng, candidates, count);
  std::int64_t next = readable;
  for (std::int64_t& b : chosen)
    if (b >= readable) b = next++;
  return chosen;
}

std::array<bool, 4> draw_ops(const Config& c, Rng& rng) {
  if (!c.var_op) return {true, false, false, false};
  return op_configs()[weighted(rng, op_config_probabilities())];
}

std::array<bool, 2> draw_gates(const Config& c, Rng& rng, const std::array<bool, 4>& ops,
                               std::int64_t units) {
  if (!c.gates || units % 2 != 0) return {false, false};
  const bool g0 = ops[0] && ops[2] && rng.uniform() < 0.25;
  const bool g1 = ops[1] && ops[3] && !g0 && rng.uniform() < 0.25;
  return {g0, g1};
}

std::int64_t draw_kernel(const Config& c, Rng& rng) {
  const std::vector<std::int64_t> k = kernel_choices(c);
  return k[rng.uniform_int(k.size())];
}

std::int64_t draw_dilation(const Config& c, Rng& rng, std::int64_t kernel) {
  return uniform_in(rng, 1, c.max_dilation(kernel));
}

std::int64_t draw_groups(const Config& c, Rng& rng) {
  if (!c.var_group) return 1;
  const std::vector<std::int64_t> g = c.group_choices();
  return g[rng.uniform_int(g.size())];
}

char draw_nl(const Config& c, Rng& rng) {
  return c.var_nl ? kNonlinearities[rng.uniform_int(3)] : 'r';
}

/// Draws every field of conv j.
void draw_conv(const Config& c, Rng& rng, Layer& layer, std::size_t j) {
  layer.kernel[j] = draw_kernel(c, rng);
  layer.dilation[j] = draw_dilation(c, rng, layer.kernel[j]);
  layer.groups[j] = draw_groups(c, rng);
  layer.nl[j] = draw_nl(c, rng);
}

/// Inactive convs to k3 d1 p1 r, gated convs' nonlinearity to r.
void canonicalize(Layer& layer) {
  for (std::size_t j = 0; j < 4; ++j) {
    if (!layer.ops[j]) {
      layer.kernel[j] = 3;
      layer.dilation[j] = 1;
      layer.groups[j] = 1;
    }
    if (!layer.ops[j] || conv_gated(layer, static_cast<std::int64_t>(j))) layer.nl[j] = 'r';
  }
}

Layer draw_layer(const Config& c, Rng& rng, std::int64_t readable, std::int64_t max_banks) {
  Layer layer;
  layer.reads = draw_reads(c, rng, readable);
  layer.units = draw_units(c, rng, static_cast<std::int64_t>(layer.reads.size()));
  layer.writes = draw_writes(rng, readable, max_banks, layer.units);
  layer.ops = draw_ops(c, rng);
  for (std::size_t j = 0; j < 4; ++j) layer.nl[j] = draw_nl(c, rng);
  layer.gates = draw_gates(c, rng, layer.ops, layer.units);
  for (std::size_t j = 0; j < 4; ++j) layer.kernel[j] = draw_kernel(c, rng);
  for (std::size_t j = 0; j < 4; ++j) layer.dilation[j] = draw_dilation(c, rng, layer.kernel[j]);
  for (std::size_t j = 0; j < 4; ++j) layer.groups[j] = draw_groups(c, rng);
  canonicalize(layer);
  return layer;
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Checks one layer of block `block`, `written` banks written before it; returns the number of
/// banks it writes first. Messages start with the field (validate() adds where).
std::int64_t check_layer(const Config& c, const Layer& L, std::int64_t written,
                         std::int64_t max_banks) {
  const auto reads = static_cast<std::int64_t>(L.reads.size());
  HYPERNAS_CHECK(reads > 0 && reads % c.depth_compression == 0, "reads '", join(L.reads), "' are ",
                 reads,
                 " banks, not a positive multiple of depth_compression = ", c.depth_compression);
  for (std::size_t i = 0; i < L.reads.size(); ++i) {
    HYPERNAS_CHECK(i == 0 || L.reads[i - 1] < L.reads[i], "reads '", join(L.reads),
                   "' are not sorted and distinct");
    HYPERNAS_CHECK(L.reads[i] >= 0 && L.reads[i] < written, "read of bank ", L.reads[i],
                   ", which is not written yet (banks 0..", written - 1, " are)");
  }
  HYPERNAS_CHECK(L.units >= 1 && L.units <= c.units_max(), "G ", L.units, " is not in 1..",
                 c.units_max(), " (N_max / N)");
  const auto& configs = op_configs();
  const bool known_ops = c.var_op
                             ? std::find(configs.begin(), configs.end(), L.ops) != configs.end()
                             : L.ops == std::array<bool, 4>{true, false, false, false};
  HYPERNAS_CHECK(known_ops, "op configuration ", bits(L.ops.data(), 4), " is not one of ",
                 c.var_op ? op_list() : std::string("1000 (var_op is off)"));
  if (gated(L)) {
    HYPERNAS_CHECK(c.gates, "gates ", bits(L.gates.data(), 2), " are set, but option gates is off");
    HYPERNAS_CHECK(L.units % 2 == 0, "gates ", bits(L.gates.data(), 2), " need an even G, got G ",
                   L.units);
    HYPERNAS_CHECK(!L.gates[0] || (L.ops[0] && L.ops[2]),
                   "gate 0 needs convs 0 and 2, but the "
                   "op configuration is ",
                   bits(L.ops.data(), 4));
    HYPERNAS_CHECK(!L.gates[1] || (L.ops[1] && L.ops[3] && !L.gates[0]),
                   "gate 1 needs convs 1 and 3 and no gate 0, but the op configuration is ",
                   bits(L.ops.data(), 4), " and the gates ", bits(L.gates.data(), 2));
  }
  const std::vector<std::int64_t> kernels = kernel_choices(c);
  const std::vector<std::int64_t> groups =
      c.var_group ? c.group_choices() : std::vector<std::int64_t>{1};
  for (std::size_t j = 0; j < 4; ++j) {
    const std::int64_t k = L.kernel[j], d = L.dilation[j], p = L.groups[j];
    const char n = L.nl[j];
    if (!L.ops[j]) {
      HYPERNAS_CHECK(k == 3 && d == 1 && p == 1 && n == 'r', "conv ", j,
                     " is inactive but not canonical (k3 d1 p1 nr), got k", k, " d", d, " p", p,
                     " n", n);
      continue;
    }
    HYPERNAS_CHECK(std::find(kernels.begin(), kernels.end(), k) != kernels.end(), "kernel ", k,
                   " of conv ", j, " is not one of ", join(kernels, ", "));
    HYPERNAS_CHECK(d >= 1 && d <= c.max_dilation(k), "dilation ", d, " of conv ", j,
                   " is not in 1..", c.max_dilation(k), " (kernel ", k, ")");
    HYPERNAS_CHECK(std::find(groups.begin(), groups.end(), p) != groups.end(), "groups ", p,
                   " of conv ", j, " is not one of ", join(groups, ", "));
    if (conv_gated(L, static_cast<std::int64_t>(j)))
      HYPERNAS_CHECK(n == 'r', "nonlinearity '", n, "' of conv ", j,
                     " is not r (the conv is gated: its gate is its nonlinearity)");
    else if (c.var_nl)
      HYPERNAS_CHECK(nl_index(n) >= 0, "nonlinearity '", n, "' of conv ", j,
                     " is not one of r, t, s");
    else
      HYPERNAS_CHECK(n == 'r', "nonlinearity '", n, "' of conv ", j, " is not r (var_nl is off)");
  }
  const std::int64_t chunks = out_channels(c, L) / c.N;
  const auto writes = static_cast<std::int64_t>(L.writes.size());
  HYPERNAS_CHECK(writes >= chunks, "writes '", join(L.writes), "' are ", writes,
                 " banks, fewer than the ", chunks, " chunks of the output");
  std::int64_t next = written;
  for (std::size_t i = 0; i < L.writes.size(); ++i) {
    const std::int64_t w = L.writes[i];
    HYPERNAS_CHECK(i == 0 || L.writes[i - 1] < w, "writes '", join(L.writes),
                   "' are not sorted and distinct");
    HYPERNAS_CHECK(w >= 0 && w < max_banks, "write to bank ", w, ", beyond the block's ", max_banks,
                   " banks");
    if (w >= written) {
      HYPERNAS_CHECK(w == next, "write to bank ", w, " skips empty bank ", next,
                     " (empty banks are filled in order)");
      ++next;
    }
  }
  return next - written;
}

// ---------------------------------------------------------------------------------------------
// Text form

/// Throws the parse error of block b, layer l.
[[noreturn]] void parse_fail(const std::string& text, std::size_t b, std::size_t l,
                             const std::string& why) {
  throw Error(cat("smash: block ", b, ", layer ", l, ": ", why, " in '", abbreviate(text), "'"));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char ch : s) {
    if (ch == sep) out.emplace_back();
    else out.back() += ch;
  }
  return out;
}

/// A non-negative integer of at most 6 digits, or -1.
std::int64_t number(const std::string& s) {
  if (s.empty() || s.size() > 6) return -1;
  for (char ch : s)
    if (!std::isdigit(static_cast<unsigned char>(ch))) return -1;
  return std::stoll(s);
}

Layer parse_layer(const std::string& s, const std::string& text, std::size_t b, std::size_t l) {
  auto fail = [&](const std::string& why) { parse_fail(text, b, l, why); };
  if (s.empty()) fail(cat("empty layer (expected '", kLayerForm, "')"));
  const std::vector<std::string> fields = split(s, '/');
  if (fields.size() != 8)
    fail(cat("expected 8 fields '", kLayerForm, "' separated by '/', got ", fields.size(), " ('", s,
             "')"));
  Layer L;
  const std::vector<std::string> io = split(fields[0], '>');
  if (io.size() != 2) fail(cat("expected '<reads>><writes>', got '", fields[0], "'"));
  auto banks = [&](const std::string& list, const char* what) {
    std::vector<std::int64_t> out;
    for (const std::string& part : split(list, '.')) {
      const std::int64_t v = number(part);
      if (v < 0) fail(cat(what, " '", list, "' are not dot-separated bank numbers ('", part, "')"));
      out.push_back(v);
    }
    return out;
  };
  L.reads = banks(io[0], "reads");
  L.writes = banks(io[1], "writes");
  auto prefixed = [&](const std::string& f, char prefix, const char* what) {
    if (f.empty() || f[0] != prefix)
      fail(cat("expected the ", what, " field '", prefix, "...', got '", f, "'"));
    return f.substr(1);
  };
  const std::string g = prefixed(fields[1], 'g', "G");
  L.units = number(g);
  if (L.units < 0) fail(cat("G '", g, "' is not a number"));
  const std::string o = prefixed(fields[2], 'o', "op configuration");
  if (o.size() != 4 || o.find_first_not_of("01") != std::string::npos)
    fail(cat("op configuration '", o, "' is not 4 bits"));
  for (std::size_t j = 0; j < 4; ++j) L.ops[j] = o[j] == '1';
  auto four = [&](const std::string& f, char prefix, const char* what) {
    const std::string v = prefixed(f, prefix, what);
    std::vector<std::string> parts;
    if (v.find('.') != std::string::npos) parts = split(v, '.');
    else
      for (char ch : v) parts.emplace_back(1, ch);
    std::array<std::int64_t, 4> out{};
    if (parts.size() != 4)
      fail(cat(what, " '", v, "' are not 4 values (4 digits, or 4 dot-separated numbers)"));
    for (std::size_t j = 0; j < 4; ++j) {
      out[j] = number(parts[j]);
      if (out[j] < 0) fail(cat(what, " '", v, "' are not numbers"));
    }
    return out;
  };
  L.kernel = four(fields[3], 'k', "kernels");
  L.dilation = four(fields[4], 'd', "dilations");
  L.groups = four(fields[5], 'p', "groups");
  const std::string x = prefixed(fields[6], 'x', "gates");
  if (x.size() != 2 || x.find_first_not_of("01") != std::string::npos)
    fail(cat("gates '", x, "' are not 2 bits"));
  L.gates = {x[0] == '1', x[1] == '1'};
  const std::string n = prefixed(fields[7], 'n', "nonlinearities");
  if (n.size() != 4 || n.find_first_not_of(kNonlinearities) != std::string::npos)
    fail(cat("nonlinearities '", n, "' are not 4 of r, t, s"));
  for (std::size_t j = 0; j < 4; ++j) L.nl[j] = n[j];
  return L;
}

// ---------------------------------------------------------------------------------------------
// Graph

class Builder : public GraphBuilder {
 public:
  static OpNode node(const char* op, std::string name, std::int64_t c_in, std::int64_t c_out,
                     std::int64_t scale, std::int64_t module, std::int64_t kernel = 0,
                     std::int64_t stride = 1) {
    OpNode n = GraphBuilder::node(op, std::move(name), c_in, c_out, scale, module);
    n.kernel = kernel;
    n.stride = stride;
    return n;
  }
  Vertex slice(const std::string& name, Vertex in, std::int64_t c_in, std::int64_t first,
               std::int64_t step, std::int64_t width, std::int64_t scale, std::int64_t module) {
    return add(node("slice", name, c_in, width, scale, module, first, step), {in});
  }
  /// act -> conv, named `<name>.act` and `<name>`.
  Vertex act_conv(const std::string& name, Vertex in, char nl, std::int64_t c_in,
                  std::int64_t c_out, std::int64_t kernel, std::int64_t dilation,
                  std::int64_t groups, std::int64_t scale, std::int64_t module) {
    const char* act = nl == 't' ? "tanh" : nl == 's' ? "sigmoid" : "relu";
    Vertex a = add(node(act, name + ".act", c_in, c_in, scale, module), {in});
    OpNode conv = node("conv", name, c_in, c_out, scale, module, kernel);
    conv.dilation = dilation;
    conv.groups = groups;
    return add(std::move(conv), {a});
  }
  /// tanh(even channels of `pre`) * sigmoid(odd channels), named `<name>.*` and `<name>`.
  Vertex gate(const std::string& name, Vertex pre, std::int64_t width, std::int64_t scale,
              std::int64_t module) {
    const std::int64_t half = width / 2;
    Vertex even = slice(name + ".even", pre, width, 0, 2, half, scale, module);
    Vertex odd = slice(name + ".odd", pre, width, 1, 2, half, scale, module);
    Vertex t = add(node("tanh", name + ".tanh", half, half, scale, module), {even});
    Vertex s = add(node("sigmoid", name + ".sigmoid", half, half, scale, module), {odd});
    return add(node("mul", name, half, half, scale, module), {t, s});
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config

const ParamTable& config_params() noexcept {
  static const ParamTable table = [] {
    const Config d;
    ParamTable t;
    t.add_int("input_channels", d.input_channels, "channels of the input images", 1);
    t.add_int("input_size", d.input_size, "height = width of the input images", 1);
    t.add_int("classes", d.classes, "output classes", 1);
    t.add_int("N", d.N, "channels of one memory bank (the paper: 8)", 1);
    t.add_int("N_max", d.N_max, "largest layer width in channels, a multiple of N (paper: 64)", 1);
    t.add_int("width", d.width, "widening factor: the stem makes 2 N width channels (paper: 4)", 1);
    t.add_int("blocks", d.blocks, "blocks, joined by downsampling transitions (paper: 3)", 1);
    t.add_int("min_layers", d.min_layers, "fewest layers per block", 1);
    t.add_int("max_layers", d.max_layers, "most layers per block", 1);
    t.add_int("depth_compression", d.depth_compression,
              "reads per slice of the encoding; a layer reads a multiple of it (paper: 4)", 1);
    t.add_int("bottleneck", d.bottleneck, "the 1x1 conv has at most bottleneck G N channels", 1);
    t.add_int("max_kernel", d.max_kernel, "kernel sizes 3, 5, ..., max_kernel (odd; paper: 7)", 3);
    t.add_int("max_dilate", d.max_dilate, "dilations 1 .. max_dilate (paper: 3)", 1);
    t.add_int("max_groups", d.max_groups, "conv groups: the factors of N up to it", 1);
    t.add_int("stem_kernel", d.stem_kernel, "kernel of the stem conv (odd; the authors': 7)", 1);
    t.add_bool("var_op", d.var_op, "op configurations other than one conv (the 2x2 op)");
    t.add_bool("gates", d.gates, "tanh-sigmoid gates (the authors' default: off)");
    t.add_bool("var_nl", d.var_nl, "per-conv nonlinearity relu / tanh / sigmoid");
    t.add_bool("var_ks", d.var_ks, "variable kernel sizes (else always 3)");
    t.add_bool("var_group", d.var_group, "variable conv groups (else always 1)");
    return t;
  }();
  return table;
}

Config Config::from(const Options& o) {
  Config c;
  c.input_channels = o.get_int("input_channels");
  c.input_size = o.get_int("input_size");
  c.classes = o.get_int("classes");
  c.N = o.get_int("N");
  c.N_max = o.get_int("N_max");
  c.width = o.get_int("width");
  c.blocks = o.get_int("blocks");
  c.min_layers = o.get_int("min_layers");
  c.max_layers = o.get_int("max_layers");
  c.depth_compression = o.get_int("depth_compression");
  c.bottleneck = o.get_int("bottleneck");
  c.max_kernel = o.get_int("max_kernel");
  c.max_dilate = o.get_int("max_dilate");
  c.max_groups = o.get_int("max_groups");
  c.stem_kernel = o.get_int("stem_kernel");
  c.var_op = o.get_bool("var_op");
  c.gates = o.get_bool("gates");
  c.var_nl = o.get_bool("var_nl");
  c.var_ks = o.get_bool("var_ks");
  c.var_group = o.get_bool("var_group");

  auto check = [](bool ok, const char* key, std::int64_t value, const std::string& expected) {
    HYPERNAS_CHECK(ok, "smash: option '", key, "' expects ", expected, ", got '", value, "'");
  };
  check(c.input_channels >= 1, "input_channels", c.input_channels, "int >= 1");
  check(c.classes >= 1, "classes", c.classes, "int >= 1");
  check(c.N >= 1, "N", c.N, "int >= 1");
  check(c.N_max >= c.N && c.N_max % c.N == 0, "N_max", c.N_max,
        cat("a positive multiple of N = ", c.N));
  check(c.width >= 1, "width", c.width, "int >= 1");
  check(c.blocks >= 1, "blocks", c.blocks, "int >= 1");
  check(c.min_layers >= 1, "min_layers", c.min_layers, "int >= 1");
  check(c.max_layers >= c.min_layers, "max_layers", c.max_layers,
        cat("int >= min_layers = ", c.min_layers));
  check(c.depth_compression >= 1, "depth_compression", c.depth_compression, "int >= 1");
  check(c.bottleneck >= 1, "bottleneck", c.bottleneck, "int >= 1");
  check(c.max_kernel >= 3 && c.max_kernel % 2 == 1, "max_kernel", c.max_kernel, "an odd int >= 3");
  check(c.max_dilate >= 1, "max_dilate", c.max_dilate, "int >= 1");
  // NOTE: any max_groups >= 1 is accepted (the groups are the factors of N up to it), so that
  // the default 8 works with any N; the authors' code requires a factor of N.
  check(c.max_groups >= 1, "max_groups", c.max_groups, "int >= 1");
  check(c.stem_kernel >= 1 && c.stem_kernel % 2 == 1, "stem_kernel", c.stem_kernel,
        "an odd int >= 1");
  std::int64_t size = c.input_size;
  for (std::int64_t b = 0; b + 1 < c.blocks; ++b) {
    check(size >= 2, "input_size", c.input_size,
          cat("a size that survives ", c.blocks - 1, " 2x2 average pools (at least ",
              std::int64_t{1} << (c.blocks - 1), ")"));
    size /= 2;
  }
  check(c.input_size >= 1, "input_size", c.input_size, "int >= 1");
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    const std::int64_t in = c.in_channels(b);
    check(in % c.N == 0, "N", c.N,
          cat("a bank size dividing block ", b, "'s ", in, " input channels"));
    check(in / c.N >= c.depth_compression, "depth_compression", c.depth_compression,
          cat("at most block ", b, "'s ", in / c.N,
              " initial banks (a layer reads a multiple of depth_compression banks)"));
    check(c.max_banks(b) >= c.units_max(), "N_max", c.N_max,
          cat("at most block ", b, "'s ", c.max_channels(b),
              " channels (every unit of a layer must have a bank to write to)"));
  }
  return c;
}

namespace {
/// in_channels(b) and max_channels(b), following the authors' SMASH.__init__ (base = 2N).
std::pair<std::int64_t, std::int64_t> block_channels(const Config& c, std::int64_t block) {
  HYPERNAS_CHECK(block >= 0 && block < c.blocks, "smash: block ", block, " is not in 0..",
                 c.blocks - 1);
  const std::int64_t base = 2 * c.N;
  std::int64_t in = base * c.width;
  for (std::int64_t b = 0;; ++b) {
    std::int64_t max = in + 2 * base * c.width;
    if (b == c.blocks - 1) {
      max = 4 * base * c.width;
      if (max < in + c.N) max = in + 2 * base * c.width;
    }
    if (b == block) return {in, max};
    in = max / 2 / base * base;
  }
}
}  // namespace

std::int64_t Config::in_channels(std::int64_t block) const {
  return block_channels(*this, block).first;
}

std::int64_t Config::max_channels(std::int64_t block) const {
  return block_channels(*this, block).second;
}

std::vector<std::int64_t> Config::group_choices() const {
  std::vector<std::int64_t> out;
  for (std::int64_t f = 1; f <= std::min(N, max_groups); ++f)
    if (N % f == 0) out.push_back(f);
  return out;
}

std::int64_t Config::max_dilation(std::int64_t kernel) const {
  return std::max<std::int64_t>(1, std::min(max_dilate, 4 - (kernel - 1) / 2));
}

bool Layer::operator==(const Layer& o) const {
  return reads == o.reads && writes == o.writes && units == o.units && ops == o.ops &&
         gates == o.gates && kernel == o.kernel && dilation == o.dilation && groups == o.groups &&
         nl == o.nl;
}

const std::vector<std::array<bool, 4>>& op_configs() {
  static const std::vector<std::array<bool, 4>> configs = {{true, false, false, false},
                                                           {true, false, true, false},
                                                           {true, true, false, false},
                                                           {true, true, true, false},
                                                           {true, true, true, true}};
  return configs;
}

const std::vector<double>& op_config_probabilities() {
  static const std::vector<double> p = {0.05, 0.1, 0.15, 0.25, 0.45};
  return p;
}

std::vector<std::vector<LayerGeometry>> geometry(const Config& c, const Arch& a) {
  std::vector<std::vector<LayerGeometry>> out;
  std::int64_t row = 0;
  for (const auto& block : a.blocks) {
    out.emplace_back();
    for (const Layer& L : block) {
      LayerGeometry g;
      g.in = static_cast<std::int64_t>(L.reads.size()) * c.N;
      const std::int64_t width = L.units * c.N;
      g.bottleneck = std::min(
          {std::min(std::max<std::int64_t>(g.in / width, 1), c.bottleneck) * width, g.in, c.N_max});
      g.out = out_channels(c, L);
      g.chunks = g.out / c.N;
      g.row = row;
      g.slice = row / (c.depth_compression * c.N);
      row += g.in;
      out.back().push_back(g);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sampling, mutation, validation

Arch sample(const Config& c, Rng& rng) {
  Arch a;
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    const std::int64_t layers = uniform_in(rng, c.min_layers, c.max_layers);
    std::int64_t written = c.in_channels(b) / c.N;
    a.blocks.emplace_back();
    for (std::int64_t l = 0; l < layers; ++l) {
      a.blocks.back().push_back(draw_layer(c, rng, written, c.max_banks(b)));
      written += new_banks(a.blocks.back().back(), written);
    }
  }
  return a;
}

Arch mutate(const Config& c, const Arch& a, Rng& rng, double p) {
  validate(c, a);
  Arch out = a;
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    auto& layers = out.blocks[static_cast<std::size_t>(b)];
    const std::int64_t max_banks = c.max_banks(b);
    std::int64_t written = c.in_channels(b) / c.N;
    for (Layer& L : layers) {
      // Earlier layers may now write fewer banks: reads of banks no longer written are redrawn.
      const bool reads_ok = L.reads.back() < written;
      if (chance(rng, p) || !reads_ok) L.reads = draw_reads(c, rng, written);
      if (chance(rng, p)) L.units = draw_units(c, rng, static_cast<std::int64_t>(L.reads.size()));
      if (c.var_op && chance(rng, p)) {
        const std::array<bool, 4> ops = draw_ops(c, rng);
        // A conv the new configuration switches on gets all its fields drawn.
        for (std::size_t j = 0; j < 4; ++j)
          if (ops[j] && !L.ops[j]) draw_conv(c, rng, L, j);
        L.ops = ops;
      }
      if (c.gates && chance(rng, p)) {
        L.gates = draw_gates(c, rng, L.ops, L.units);
      } else {  // keep the gates that are still allowed
        const bool even = L.units % 2 == 0;
        L.gates[0] = L.gates[0] && even && L.ops[0] && L.ops[2];
        L.gates[1] = L.gates[1] && even && L.ops[1] && L.ops[3] && !L.gates[0];
      }
      for (std::size_t j = 0; j < 4; ++j) {
        if (!L.ops[j]) continue;
        if (c.var_ks && chance(rng, p)) L.kernel[j] = draw_kernel(c, rng);
        if (chance(rng, p) || L.dilation[j] > c.max_dilation(L.kernel[j]))
          L.dilation[j] = draw_dilation(c, rng, L.kernel[j]);
        if (c.var_group && chance(rng, p)) L.groups[j] = draw_groups(c, rng);
        if (c.var_nl && !conv_gated(L, static_cast<std::int64_t>(j)) && chance(rng, p))
          L.nl[j] = draw_nl(c, rng);
      }
      canonicalize(L);
      if (chance(rng, p)) {
        L.writes = draw_writes(rng, written, max_banks, L.units);
      } else {
        // Writes into banks that are empty now move to the first empty banks (the authors'
        // perturb_arch.py does the same); too few for the output's chunks are redrawn.
        std::vector<std::int64_t> writes;
        std::int64_t next = written;
        for (std::int64_t w : L.writes) {
          if (w < written) writes.push_back(w);
          else if (next < max_banks) writes.push_back(next++);
        }
        L.writes = std::move(writes);
        if (static_cast<std::int64_t>(L.writes.size()) < out_channels(c, L) / c.N)
          L.writes = draw_writes(rng, written, max_banks, L.units);
      }
      written += new_banks(L, written);
    }
    if (chance(rng, p)) {
      const auto n = static_cast<std::int64_t>(layers.size());
      const bool can_add = n<c.max_layers, can_remove = n> c.min_layers;
      if (can_add && (!can_remove || rng.uniform() < 0.5))
        layers.push_back(draw_layer(c, rng, written, max_banks));
      else if (can_remove) layers.pop_back();
    }
  }
  validate(c, out);
  return out;
}

void validate(const Config& c, const Arch& a) {
  HYPERNAS_CHECK(static_cast<std::int64_t>(a.blocks.size()) == c.blocks, "smash: expected ",
                 c.blocks, " blocks (option blocks), got ", a.blocks.size());
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    const auto& layers = a.blocks[static_cast<std::size_t>(b)];
    const auto n = static_cast<std::int64_t>(layers.size());
    HYPERNAS_CHECK(n >= c.min_layers && n <= c.max_layers, "smash: block ", b, " has ", n,
                   " layers, expected ", c.min_layers, "..", c.max_layers,
                   " (options min_layers, max_layers)");
    std::int64_t written = c.in_channels(b) / c.N;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      try {
        written += check_layer(c, layers[l], written, c.max_banks(b));
      } catch (const Error& e) {
        throw Error(cat("smash: block ", b, ", layer ", l, ": ", e.what()));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Text form

std::string print(const Arch& a) {
  std::string out;
  for (std::size_t b = 0; b < a.blocks.size(); ++b) {
    if (b > 0) out += '|';
    for (std::size_t l = 0; l < a.blocks[b].size(); ++l) {
      const Layer& L = a.blocks[b][l];
      if (l > 0) out += ';';
      out += join(L.reads) + ">" + join(L.writes) + "/g" + std::to_string(L.units) + "/o" +
             bits(L.ops.data(), 4) + "/k" + quad(L.kernel) + "/d" + quad(L.dilation) + "/p" +
             quad(L.groups) + "/x" + bits(L.gates.data(), 2) + "/n" +
             std::string(L.nl.begin(), L.nl.end());
    }
  }
  return out;
}

Arch parse(const Config& c, const std::string& text) {
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  const std::string s = first == std::string::npos
                            ? ""
                            : text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  HYPERNAS_CHECK(!s.empty(), "smash: empty architecture text; expected ", c.blocks,
                 " blocks separated by '|' of layers '", kLayerForm, "' separated by ';'");
  const std::vector<std::string> blocks = split(s, '|');
  HYPERNAS_CHECK(static_cast<std::int64_t>(blocks.size()) == c.blocks, "smash: expected ", c.blocks,
                 " blocks separated by '|' (option blocks), got ", blocks.size(), " in '",
                 abbreviate(text), "'");
  Arch a;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    a.blocks.emplace_back();
    const std::vector<std::string> layers = split(blocks[b], ';');
    for (std::size_t l = 0; l < layers.size(); ++l)
      a.blocks.back().push_back(parse_layer(layers[l], text, b, l));
  }
  try {
    validate(c, a);
  } catch (const Error& e) {
    throw Error(cat(e.what(), " in '", abbreviate(text), "'"));
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Graph

ArchGraph build_graph(const Config& c, const Arch& a) {
  validate(c, a);
  const auto geo = geometry(c, a);
  const std::int64_t N = c.N;
  Builder g;
  Vertex x = g.add(Builder::node("input", "input", 0, c.input_channels, 0, -1), {});
  x = g.add(Builder::node("conv", "stem.conv", c.input_channels, c.in_channels(0), 0, -1,
                          c.stem_kernel),
            {x});
  x = g.add(Builder::node("relu", "stem.relu", c.in_channels(0), c.in_channels(0), 0, -1), {x});
  std::int64_t width = c.in_channels(0);
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    const std::string B = cat("b", b);
    const std::int64_t in = c.in_channels(b);
    std::vector<Vertex> state;         // each bank's current state
    std::vector<std::int64_t> writes;  // writes into each bank so far
    std::vector<bool> filled;          // whether the bank holds anything yet
    for (std::int64_t j = 0; j < in / N; ++j) {
      state.push_back(g.slice(cat(B, ".in", j), x, in, j * N, 1, N, b, b));
      writes.push_back(0);
      filled.push_back(true);
    }
    const auto& layers = a.blocks[static_cast<std::size_t>(b)];
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      const LayerGeometry& G = geo[static_cast<std::size_t>(b)][l];
      const std::string P = cat(B, ".l", l);
      std::vector<Vertex> reads;
      for (std::size_t i = 0; i < L.reads.size(); ++i)
        reads.push_back(g.add(Builder::node("add", cat(P, ".r", i), N, N, b, b),
                              {state[static_cast<std::size_t>(L.reads[i])]}));
      Vertex v = g.add(Builder::node("concat", P + ".cat", G.in, G.in, b, b), reads);
      v = g.add(Builder::node("conv", P + ".bottleneck", G.in, G.bottleneck, b, b, 1), {v});
      const Vertex bottleneck =
          g.add(Builder::node("relu", P + ".bottleneck.relu", G.bottleneck, G.bottleneck, b, b),
                {v});
      auto conv = [&](std::size_t j, Vertex input, std::int64_t c_in, std::int64_t c_out) {
        return g.act_conv(cat(P, ".c", j), input, L.nl[j], c_in, c_out, L.kernel[j], L.dilation[j],
                          L.groups[j], b, b);
      };
      std::int64_t w = L.units * N;
      // Stage 0: one path a, or two paths a and b (bb).
      Vertex pa = conv(0, bottleneck, G.bottleneck, w), pb = pa;
      bool two = false;
      if (L.gates[0]) {
        const Vertex c2 = conv(2, bottleneck, G.bottleneck, w);
        const Vertex pre = g.add(Builder::node("add", P + ".g0.pre", w, w, b, b), {pa, c2});
        pa = g.gate(P + ".g0", pre, w, b, b);
        w /= 2;
      } else if (L.ops[2]) {
        pb = conv(2, bottleneck, G.bottleneck, w);
        two = true;
      }
      // Stage 1.
      Vertex out = pa;
      if (L.gates[1]) {
        const Vertex c1 = conv(1, pa, w, w);
        const Vertex c3 = conv(3, two ? pb : pa, w, w);
        const Vertex pre = g.add(Builder::node("add", P + ".g1.pre", w, w, b, b), {c1, c3});
        out = g.gate(P + ".g1", pre, w, b, b);
        w /= 2;
      } else if (L.ops[3]) {
        const Vertex c1 = conv(1, pa, w, w);
        const Vertex c3 = conv(3, two ? pb : pa, w, w);
        out = g.add(Builder::node("add", P + ".s1", w, w, b, b), {c1, c3});
      } else if (L.ops[1]) {
        const Vertex c1 = conv(1, pa, w, w);
        out = two ? g.add(Builder::node("add", P + ".s1", w, w, b, b), {c1, pb}) : c1;
      } else if (two) {
        out = g.add(Builder::node("add", P + ".s0", w, w, b, b), {pa, pb});
      }
      HYPERNAS_CHECK(w == G.out, "smash: internal error: block ", b, ", layer ", l, " computes ", w,
                     " output channels, its geometry ", G.out);
      // Writes: chunk j % chunks into bank writes[j].
      for (std::size_t j = 0; j < L.writes.size(); ++j) {
        const auto bank = static_cast<std::size_t>(L.writes[j]);
        const std::int64_t first = (static_cast<std::int64_t>(j) % G.chunks) * N;
        const Vertex chunk = g.slice(cat(P, ".w", j), out, G.out, first, 1, N, b, b);
        // Writes go to written banks or to the next empty one (validate() checks it).
        if (bank == state.size()) {
          state.push_back(chunk);
          writes.push_back(0);
          filled.push_back(false);
        }
        const std::string name = cat(B, ".m", bank, ".", writes[bank]++);
        // NOTE: the first write into an empty bank is an identity `add` of the chunk alone, so
        // that every write has its `m` node.
        std::vector<Vertex> inputs;
        if (filled[bank]) inputs.push_back(state[bank]);
        inputs.push_back(chunk);
        filled[bank] = true;
        state[bank] = g.add(Builder::node("add", name, N, N, b, b), inputs);
      }
    }
    std::vector<Vertex> banks;
    for (std::size_t w = 0; w < state.size(); ++w)
      banks.push_back(g.add(Builder::node("add", cat(B, ".bank", w), N, N, b, b), {state[w]}));
    width = static_cast<std::int64_t>(banks.size()) * N;
    x = g.add(Builder::node("concat", B + ".out", width, width, b, b), banks);
    if (b + 1 < c.blocks) {
      const std::string T = cat("t", b);
      const std::int64_t next = c.in_channels(b + 1);
      x = g.add(Builder::node("bn", T + ".bn", width, width, b, b), {x});
      x = g.add(Builder::node("relu", T + ".relu", width, width, b, b), {x});
      x = g.add(Builder::node("conv", T + ".conv", width, next, b, b, 1), {x});
      x = g.add(Builder::node("avg_pool", T + ".pool", next, next, b + 1, b, 2, 2), {x});
    }
  }
  const std::int64_t s = c.blocks - 1;
  x = g.add(Builder::node("bn", "head.bn", width, width, s, -1), {x});
  x = g.add(Builder::node("relu", "head.relu", width, width, s, -1), {x});
  x = g.add(Builder::node("gap", "head.gap", width, width, s, -1), {x});
  OpNode fc = Builder::node("linear", "head.fc", width, c.classes, s, -1);
  fc.exit = 0;
  g.add(std::move(fc), {x});
  return g.take();
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::int64_t encoding_channels(const Config& c) { return channels(c).total; }

std::int64_t max_slices(const Config& c) {
  std::int64_t n = 0;
  for (std::int64_t b = 0; b < c.blocks; ++b)
    n += c.max_layers * (c.max_banks(b) / c.depth_compression);
  return n;
}

at::Tensor encode(const Config& c, const Arch& a) {
  validate(c, a);
  const Channels ch = channels(c);
  const auto geo = geometry(c, a);
  at::Tensor code = at::full({ch.total, c.units_max(), max_slices(c)}, -1.0, at::kFloat);
  auto t = code.accessor<float, 3>();
  for (std::size_t b = 0; b < a.blocks.size(); ++b) {
    for (std::size_t l = 0; l < a.blocks[b].size(); ++l) {
      const Layer& L = a.blocks[b][l];
      const std::vector<std::int64_t> on = common_channels(c, ch, L, static_cast<std::int64_t>(b));
      for (std::size_t i = 0; i < L.reads.size(); ++i) {
        const std::int64_t s = geo[b][l].slice + static_cast<std::int64_t>(i) / c.depth_compression;
        for (std::int64_t row = 0; row < L.units; ++row) {
          t[ch.read + L.reads[i]][row][s] = 1.0f;
          for (std::int64_t k : on) t[k][row][s] = 1.0f;
          if (i == 0) t[ch.start][row][s] = 1.0f;
        }
      }
    }
  }
  return code;
}

Arch decode(const Config& c, const at::Tensor& code) {
  const Channels ch = channels(c);
  const std::int64_t units = c.units_max(), slices = max_slices(c);
  HYPERNAS_CHECK(code.defined() && code.dim() == 3 && code.size(0) == ch.total &&
                     code.size(1) == units && code.size(2) == slices,
                 "smash: decode expects an encoding of shape [", ch.total, ", ", units, ", ",
                 slices, "], got ", code.defined() ? cat(code.sizes()) : std::string("none"));
  const at::Tensor values = code.detach().to(at::Device(at::kCPU), at::kFloat).contiguous();
  auto t = values.accessor<float, 3>();
  for (std::int64_t k = 0; k < ch.total; ++k)
    for (std::int64_t r = 0; r < units; ++r)
      for (std::int64_t s = 0; s < slices; ++s)
        HYPERNAS_CHECK(t[k][r][s] == 1.0f || t[k][r][s] == -1.0f, "smash: decode: entry [", k, ", ",
                       r, ", ", s, "] is ", t[k][r][s], ", not +1 or -1");
  auto on = [&](std::int64_t k, std::int64_t s) { return t[k][0][s] > 0; };
  auto used = [&](std::int64_t s) {
    for (std::int64_t k = 0; k < ch.total; ++k)
      if (on(k, s)) return true;
    return false;
  };
  /// The one set channel among [first, first + n) of slice s, as an index.
  auto one_hot = [&](std::int64_t first, std::int64_t n, std::int64_t s, const char* what) {
    std::int64_t found = -1;
    for (std::int64_t i = 0; i < n; ++i) {
      if (!on(first + i, s)) continue;
      HYPERNAS_CHECK(found < 0, "smash: decode: slice ", s, " sets ", what, " ", found, " and ", i,
                     " (one expected)");
      found = i;
    }
    HYPERNAS_CHECK(found >= 0, "smash: decode: slice ", s, " sets no ", what);
    return found;
  };
  Arch a;
  a.blocks.resize(static_cast<std::size_t>(c.blocks));
  std::int64_t s = 0;
  while (s < slices && used(s)) {
    HYPERNAS_CHECK(on(ch.start, s), "smash: decode: slice ", s,
                   " is used but starts no layer and continues none");
    std::int64_t end = s + 1;
    while (end < slices && used(end) && !on(ch.start, end)) ++end;
    Layer L;
    const std::int64_t block = one_hot(ch.block, c.blocks, s, "block");
    L.units = one_hot(ch.units, units, s, "G") + 1;
    for (std::int64_t u = s; u < end; ++u)
      for (std::int64_t bank = 0; bank < ch.banks; ++bank)
        if (on(ch.read + bank, u)) L.reads.push_back(bank);
    for (std::int64_t bank = 0; bank < ch.banks; ++bank)
      if (on(ch.write + bank, s)) L.writes.push_back(bank);
    if (c.var_op)
      for (std::int64_t j = 0; j < kConvs; ++j)
        L.ops[static_cast<std::size_t>(j)] = on(ch.op + j, s);
    if (c.gates)
      for (std::int64_t g = 0; g < 2; ++g)
        L.gates[static_cast<std::size_t>(g)] = on(ch.gate + g, s);
    for (std::int64_t j = 0; j < ch.convs; ++j) {
      const auto J = static_cast<std::size_t>(j);
      if (!L.ops[J]) continue;
      L.dilation[J] = one_hot(ch.dilation + j * c.max_dilate, c.max_dilate, s, "dilation") + 1;
      if (c.var_ks)
        L.kernel[J] = 2 * (one_hot(ch.kernel + j * ch.kernels, ch.kernels, s, "kernel") + 1) + 1;
      if (c.var_nl && !conv_gated(L, j))
        L.nl[J] = kNonlinearities[one_hot(ch.nl + j * 3, 3, s, "nonlinearity")];
      if (c.var_group)
        L.groups[J] = c.group_choices()[static_cast<std::size_t>(
            one_hot(ch.groups + j * ch.group_count, ch.group_count, s, "groups"))];
    }
    a.blocks[static_cast<std::size_t>(block)].push_back(std::move(L));
    s = end;
  }
  try {
    validate(c, a);
  } catch (const Error& e) {
    throw Error(cat("smash: decode: the encoding is no architecture's: ", e.what()));
  }
  // Anything the reading above let through (a layer out of block order, a stray +1, rows that
  // disagree) makes the encoding of what was read differ from the tensor.
  HYPERNAS_CHECK(at::equal(encode(c, a), values),
                 "smash: decode: the tensor is not the encoding "
                 "of the architecture it reads as ('",
                 abbreviate(print(a)), "')");
  return a;
}

}  // namespace hypernas::smash
