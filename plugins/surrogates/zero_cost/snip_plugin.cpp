#include "zero_cost.h"

using SnipSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Snip>;
HYPERNAS_PLUGIN(Surrogate, SnipSurrogate, "snip", "1.0.0",
                "training-free proxy, SNIP (Lee et al. 2019): sum of |W * dL/dW| at initialisation")
