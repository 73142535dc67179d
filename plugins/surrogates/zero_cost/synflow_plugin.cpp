#include "zero_cost.h"

using SynflowSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Synflow>;
HYPERNAS_PLUGIN(Surrogate, SynflowSurrogate, "synflow", "1.0.0",
                "training-free proxy, SynFlow (Tanaka et al. 2020; Abdelfattah et al. 2021): |W * "
                "dR/dW| of the all-ones input through |W|, no batch norm")
