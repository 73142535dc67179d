/// @file ghn_space.cpp
/// @brief Exports GhnSpace (ghn.h) as the run-time space plugin `ghn`.

#include <hypernas/plugin.h>

#include "ghn.h"

HYPERNAS_PLUGIN(Space, hypernas::GhnSpace, "ghn", "1.0.0",
                "GHN random block space (N-node random DAG blocks, stacked with reductions)")
