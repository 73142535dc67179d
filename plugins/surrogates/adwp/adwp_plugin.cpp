/// @file adwp_plugin.cpp
/// @brief Exports AdwpSurrogate (adwp.h) as the run-time surrogate plugin `adwp`.

#include <hypernas/plugin.h>

#include "adwp.h"

HYPERNAS_PLUGIN(Surrogate, hypernas::AdwpSurrogate, "adwp", "1.0.0",
                "ADWPNAS HyperNetwork (Zhang, Chen, Gu): GeneratingBlocks generate every conv "
                "weight of the relaxed network from softmax(alpha); differentiable in alpha")
