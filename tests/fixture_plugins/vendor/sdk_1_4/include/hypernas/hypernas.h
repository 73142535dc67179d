#pragma once
/// @file hypernas.h
/// @brief Convenience header: the whole SDK.

#include "hypernas/abi.h"
#include "hypernas/architecture.h"
#include "hypernas/context.h"
#include "hypernas/data.h"
#include "hypernas/error.h"
#include "hypernas/graph_builder.h"
#include "hypernas/graph_stats.h"
#include "hypernas/hash.h"
#include "hypernas/intensive.h"
#include "hypernas/options.h"
#include "hypernas/plugin.h"
#include "hypernas/space.h"
#include "hypernas/strategy.h"
#include "hypernas/surrogate.h"
