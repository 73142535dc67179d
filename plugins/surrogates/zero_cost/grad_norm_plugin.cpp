#include "zero_cost.h"

using GradNormSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::GradNorm>;
HYPERNAS_PLUGIN(
    Surrogate, GradNormSurrogate, "grad_norm", "1.0.0",
    "training-free proxy, gradient norm (Abdelfattah et al. 2021): sum over layers of ||dL/dW||")
