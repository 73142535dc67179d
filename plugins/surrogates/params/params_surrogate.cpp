#include "../common/cost_surrogate.h"

using ParamsSurrogate = hypernas::plugins::CostSurrogate<hypernas::plugins::CostMetric::Params>;
HYPERNAS_PLUGIN(Surrogate, ParamsSurrogate, "params", "1.0.0",
                "baseline: ranks by parameter count (no data, no training)")
