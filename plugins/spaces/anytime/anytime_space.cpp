/// @file anytime_space.cpp
/// @brief Exports AnytimeSpace (anytime.h) as the run-time space plugin `anytime`.

#include <hypernas/plugin.h>

#include "anytime.h"

HYPERNAS_PLUGIN(Space, hypernas::AnytimeSpace, "anytime", "1.0.0",
                "GHN anytime space (multi-scale cells, early-exit classifiers)")
