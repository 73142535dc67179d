#include "../common/cost_surrogate.h"

using FlopsSurrogate = hypernas::plugins::CostSurrogate<hypernas::plugins::CostMetric::Flops>;
HYPERNAS_PLUGIN(Surrogate, FlopsSurrogate, "flops", "1.0.0",
                "baseline: ranks by FLOPs (no data, no training)")
