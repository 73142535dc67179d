#include "zero_cost.h"

HYPERNAS_PLUGIN(Surrogate, hypernas::zero_cost::AznasSurrogate, "aznas", "1.0.0",
                "training-free proxy, AZ-NAS (Lee and Ham, CVPR 2024): expressivity, "
                "progressivity, trainability and complexity, rank-aggregated against a "
                "reference sample")
