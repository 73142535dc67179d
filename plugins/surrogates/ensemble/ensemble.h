#pragma once
/// @file ensemble.h
/// @brief The `ensemble` surrogate: several surrogates, named in its options, combined by rank
/// averaging (e.g. a GHN and parameter count).
///
/// Rank averaging needs a population to rank in, and a score must not depend on which other
/// architectures happen to share a request (the kernel stores scores one by one, re-scores a
/// failed batch one architecture at a time, and reuses stored scores). So each member's score
/// is turned into its QUANTILE among the member's scores of a fixed reference sample: `reference`
/// architectures drawn from the request's space with `reference_seed`, scored once per member
/// (with the request's data and settings) and kept until the members change (fit, load); a
/// later call recognises the sample by its first draw and that draw's parameter and FLOPs
/// counts, so it draws one architecture, not the whole sample. The
/// quantile is (#reference below + #equal / 2) / reference, in [0, 1]; the ensemble's score is
/// the weighted mean of its members' quantiles. Over a pool, ranking by it is rank averaging
/// with each member's ranks read off the reference sample instead of the pool.
///
/// Members are created through the kernel (SurrogateFactory, ABI 1.2), so any surrogate plugin
/// can be one, fitted ones included: `fit` fits every trainable member on the same request,
/// `save_state` bundles the members' states, and a member spec may name a checkpoint to start
/// from.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <hypernas/options.h>
#include <hypernas/surrogate.h>

namespace hypernas {

/// One member as the `members` option names it.
struct EnsembleMember {
  std::string name;        ///< Surrogate plugin name.
  Options options;         ///< Its options (typed like `--set` values).
  std::string checkpoint;  ///< Checkpoint file to load after creating it ("" : none).
  double weight = 1;       ///< Its weight in the mean.
};

/// Parses the `members` and `weights` options: members are separated by ';', each
/// `name[:key=value,key=value...][@checkpoint]` (values: true/false, integers, reals, else
/// text); weights are ','-separated non-negative numbers, one per member, not all zero
/// ("": all 1). Throws UsageError naming the offending piece.
std::vector<EnsembleMember> parse_members(const std::string& members, const std::string& weights);

/// The quantile of `value` among `sorted` (ascending, not empty): (#below + #equal / 2) / n.
double quantile(const std::vector<double>& sorted, double value);

/// The `ensemble` surrogate plugin. Options: see params().
class EnsembleSurrogate final : public Surrogate {
 public:
  /// Options: members, weights, reference, reference_seed.
  static const ParamTable& params() noexcept;
  /// From resolved options; the members are parsed here (a malformed spec fails the creation)
  /// and created in attach().
  explicit EnsembleSurrogate(const Options& options);
  ~EnsembleSurrogate() override;

  /// The union of the members' kTrainable, kNeedsData, kUsesSeed, kReadsEvalBatch and
  /// kReadsEvalImages.
  std::uint32_t capabilities() const override;
  /// Fits every trainable member with `request`, in order.
  void fit(Context& ctx, const FitRequest& request) override;
  /// The weighted mean of the members' score quantiles (see the file comment). Score::extra:
  /// each member's raw score ("<i>.<name>", i from 1) and its quantile ("<i>.<name>.quantile").
  /// A member's NaN (an architecture it cannot score) makes the ensemble's score NaN.
  std::vector<Score> score(Context& ctx, const ScoreRequest& request) override;
  /// Every member's state, in order, with its name: a versioned, checksummed blob.
  std::string save_state() const override;
  /// Restores save_state()'s blob into members of the same names, in the same order; on any
  /// error, every member is restored to its state before the call.
  void load_state(const std::string& blob) override;
  /// Creates the members (and loads their checkpoints).
  void attach(const SurrogateFactory& factory) override;

  /// The members, in order (empty before attach()).
  const std::vector<std::shared_ptr<Surrogate>>& members() const { return surrogates_; }

 private:
  std::vector<EnsembleMember> specs_;
  std::vector<std::shared_ptr<Surrogate>> surrogates_;
  std::int64_t reference_ = 0;
  std::int64_t reference_seed_ = 0;
  /// Sorted reference scores per member, by the request settings they were computed with.
  std::map<std::string, std::vector<std::vector<double>>> cache_;
};

}  // namespace hypernas
