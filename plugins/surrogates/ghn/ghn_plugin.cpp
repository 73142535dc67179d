/// @file ghn_plugin.cpp
/// @brief Exports GhnSurrogate (ghn.h) as the run-time surrogate plugin `ghn`.

#include <hypernas/plugin.h>

#include "ghn.h"

HYPERNAS_PLUGIN(Surrogate, hypernas::GhnSurrogate, "ghn", "1.4.0",
                "Graph HyperNetwork (Zhang et al. 2019; GHN-2 options): generates all weights "
                "from the architecture graph")
