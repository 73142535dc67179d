/// @file ensemble_plugin.cpp
/// @brief Exports EnsembleSurrogate (ensemble.h) as the run-time surrogate plugin `ensemble`.

#include <hypernas/plugin.h>

#include "ensemble.h"

HYPERNAS_PLUGIN(Surrogate, hypernas::EnsembleSurrogate, "ensemble", "1.0.0",
                "combines surrogates by name: weighted mean of their score quantiles (rank "
                "averaging against a fixed reference sample)")
