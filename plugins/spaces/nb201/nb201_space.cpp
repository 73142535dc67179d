/// @file nb201_space.cpp
/// @brief Exports Nb201Space (nb201.h) as the run-time space plugin `nb201`.

#include <hypernas/plugin.h>

#include "nb201.h"

HYPERNAS_PLUGIN(Space, hypernas::Nb201Space, "nb201", "1.0.0",
                "NAS-Bench-201 cell space (15,625 cells)")
