/// @file smash_plugin.cpp
/// @brief Exports SmashSurrogate (smash_hypernet.h) as the run-time surrogate plugin `smash`.

#include <hypernas/plugin.h>

#include "smash_hypernet.h"

HYPERNAS_PLUGIN(Surrogate, hypernas::SmashSurrogate, "smash", "1.0.0",
                "SMASH hypernetwork (Brock et al. 2018): a DenseNet of weight-normalised convs "
                "generates the 1x1 convs from the architecture's encoding; ops learned, sliced")
