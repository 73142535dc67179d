#include "zero_cost.h"

using JacobCovSurrogate = hypernas::zero_cost::ProxySurrogate<hypernas::zero_cost::Proxy::JacobCov>;
HYPERNAS_PLUGIN(Surrogate, JacobCovSurrogate, "jacob_cov", "1.0.0",
                "training-free proxy, Jacobian covariance (NASWOT v1): correlation spectrum of the "
                "input Jacobians of one mini-batch")
