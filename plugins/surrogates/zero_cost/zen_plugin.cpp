#include "zero_cost.h"

using ZenSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Zen>;
HYPERNAS_PLUGIN(Surrogate, ZenSurrogate, "zen", "1.0.0",
                "training-free proxy, Zen-score (Lin et al. 2021): log of the feature map's "
                "response to a perturbed Gaussian input plus the batch norms' scales")
