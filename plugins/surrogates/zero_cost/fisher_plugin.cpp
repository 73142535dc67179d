#include "zero_cost.h"

using FisherSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Fisher>;
HYPERNAS_PLUGIN(Surrogate, FisherSurrogate, "fisher", "1.0.0",
                "training-free proxy, Fisher (Turner et al. 2020; Abdelfattah et al. 2021): "
                "activation-gradient saliency")
