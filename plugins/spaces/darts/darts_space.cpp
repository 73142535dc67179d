/// @file darts_space.cpp
/// @brief Exports DartsSpace (darts.h) as the run-time space plugin `darts`.

#include <hypernas/plugin.h>

#include "darts.h"

HYPERNAS_PLUGIN(Space, hypernas::DartsSpace, "darts", "1.0.0",
                "DARTS / ADWP cell space (8 ops, normal + reduction cells or one per cell)")
