/// @file smash_space.cpp
/// @brief Exports SmashSpace (smash.h) as the run-time space plugin `smash`.

#include <hypernas/plugin.h>

#include "smash.h"

HYPERNAS_PLUGIN(Space, hypernas::SmashSpace, "smash", "1.0.0",
                "SMASH memory-bank networks (Brock et al. 2018)")
