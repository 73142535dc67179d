#pragma once
/// @file cxxopts.h
/// @brief cxxopts as the CLI uses it: a repeatable option (`--set`, `--option`) takes each
/// value whole. cxxopts splits vector values on ',' by default, which would turn
/// `--set methods=params,flops` into two entries and drop `flops` silently; a NUL delimiter
/// never occurs in a command-line argument. Every file of the CLI includes cxxopts through this
/// header, so that all of them instantiate its templates alike.

#ifdef CXXOPTS_VECTOR_DELIMITER
#error "include cxxopts through kernel/cli/cxxopts.h only"
#endif
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>
