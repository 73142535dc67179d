#include "zero_cost.h"

using NaswotSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Naswot>;
HYPERNAS_PLUGIN(Surrogate, NaswotSurrogate, "naswot", "1.0.0",
                "training-free proxy, NASWOT (Mellor et al. 2021): log|det K_H| of the ReLU codes "
                "of one mini-batch")
