#include "zero_cost.h"

using GraspSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::Grasp>;
HYPERNAS_PLUGIN(Surrogate, GraspSurrogate, "grasp", "1.0.0",
                "training-free proxy, GraSP (Wang et al. 2020): sum of -W * Hg at initialisation")
