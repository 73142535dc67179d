#pragma once
/// @file anytime.h
/// @brief ABI 1.3: the accuracy-vs-FLOPs curve of an anytime (multi-exit) network, its area, and
/// the Pareto front of a set of (FLOPs, accuracy) points. Header-only, no Torch.
///
/// An anytime network answers at any of its exits; with a budget of b FLOPs it answers with the
/// best exit it can afford, so its curve is a step function: acc(b) = the highest accuracy of
/// an exit whose FLOPs (exit_flops(), graph_stats.h) are at most b, 0 below the first exit.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "hypernas/error.h"
#include "hypernas/surrogate.h"

namespace hypernas {

/// The axis the budget is measured on when integrating an anytime curve.
enum class FlopsAxis {
  Linear = 0,  ///< FLOPs themselves.
  Log,         ///< log(FLOPs): every doubling of the budget weighs the same.
};

/// The normalised area under the step curve of `exits` over budgets [lo, hi]: the integral of
/// acc(b) over [lo, hi] divided by (hi - lo) (with FlopsAxis::Log, over log b, divided by
/// log(hi / lo)). In [0, 1] when accuracies are. Exits may come in any order; budgets below
/// lo count from lo, above hi are never reached. Throws Error unless lo < hi (and lo > 0 on a
/// log axis).
inline double anytime_auc(const std::vector<ExitScore>& exits, double lo, double hi,
                          FlopsAxis axis = FlopsAxis::Linear) {
  HYPERNAS_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi,
                 "anytime area: the FLOPs range needs lo < hi, got [", lo, ", ", hi, "]");
  HYPERNAS_CHECK(axis == FlopsAxis::Linear || lo > 0,
                 "anytime area: a log FLOPs axis needs lo > 0, got ", lo);
  auto x = [axis](double f) { return axis == FlopsAxis::Log ? std::log(f) : f; };
  std::vector<ExitScore> sorted = exits;
  std::sort(sorted.begin(), sorted.end(),
            [](const ExitScore& a, const ExitScore& b) { return a.flops < b.flops; });
  double area = 0;
  double best = 0;   // accuracy of the best exit affordable so far
  double from = lo;  // start of the current step
  for (const ExitScore& e : sorted) {
    const double f = static_cast<double>(e.flops);
    if (f >= hi) break;
    if (f > from) {
      area += best * (x(f) - x(from));
      from = f;
    }
    best = std::max(best, e.accuracy);
  }
  area += best * (x(hi) - x(from));
  return area / (x(hi) - x(lo));
}

/// One point of a Pareto front, with where it came from.
struct FrontPoint {
  std::int64_t flops = 0;  ///< Cost.
  double accuracy = 0;     ///< Accuracy.
  std::size_t source = 0;  ///< Caller's index of the network it belongs to.
  std::size_t exit = 0;    ///< Its exit index in that network.
};

/// The points of `points` no other point dominates (another costs no more FLOPs and is more
/// accurate, or costs fewer and is as accurate), by increasing FLOPs (so increasing accuracy).
/// Of points equal in both, the first is kept.
inline std::vector<FrontPoint> pareto_front(std::vector<FrontPoint> points) {
  std::stable_sort(points.begin(), points.end(), [](const FrontPoint& a, const FrontPoint& b) {
    return a.flops != b.flops ? a.flops < b.flops : a.accuracy > b.accuracy;
  });
  std::vector<FrontPoint> front;
  for (const FrontPoint& p : points)
    if (front.empty() || p.accuracy > front.back().accuracy) front.push_back(p);
  return front;
}

/// Parses a list of exit-loss weights, one per exit in exit order: comma-separated numbers >= 0
/// (spaces around them allowed), "" or blanks for none (the caller's default: a mean or a plain
/// sum). Throws UsageError starting with `option` (e.g. "train: option 'exit_weights'") that
/// quotes the text and names the bad item, its number and its position.
inline std::vector<double> parse_exit_weights(const std::string& text, const std::string& option) {
  std::vector<double> out;
  if (text.find_first_not_of(" \t") == std::string::npos) return out;
  std::size_t start = 0;
  for (std::size_t item = 1;; ++item) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string piece = text.substr(start, end - start);
    const std::size_t first = piece.find_first_not_of(" \t");
    const std::size_t last = piece.find_last_not_of(" \t");
    const std::string word =
        first == std::string::npos ? std::string() : piece.substr(first, last - first + 1);
    double value = 0;
    std::size_t used = 0;
    bool ok = !word.empty();
    if (ok) {
      try {
        value = std::stod(word, &used);
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok || used != word.size() || !std::isfinite(value) || value < 0)
      throw UsageError(cat(option,
                           " expects comma-separated numbers >= 0, one per exit in exit order "
                           "(e.g. '0.5,0.5,1'), or '' for the default; got '",
                           text, "': item ", item, " ('", word, "', at character ", start + 1,
                           ") is ", word.empty() ? "empty" : "not a number >= 0"));
    out.push_back(value);
    if (end == text.size()) break;
    start = end + 1;
  }
  return out;
}

}  // namespace hypernas
