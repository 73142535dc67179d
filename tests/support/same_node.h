#pragma once
/// @file same_node.h
/// @brief expect_same_node(): a node of a discrete architecture and its counterpart in the
/// space's relaxed network carry the same op and attributes (the relaxation tests of the spaces).

#include <string>

#include <gtest/gtest.h>

#include <hypernas/architecture.h>

namespace hypernas::test {

/// Expects `relaxed` (named `name` in the relaxed network) to have `discrete`'s op, channels,
/// kernel, stride, dilation, groups, scale, module and exit.
inline void expect_same_node(const OpNode& relaxed, const OpNode& discrete,
                             const std::string& name) {
  EXPECT_EQ(relaxed.op, discrete.op) << name;
  EXPECT_EQ(relaxed.c_in, discrete.c_in) << name;
  EXPECT_EQ(relaxed.c_out, discrete.c_out) << name;
  EXPECT_EQ(relaxed.kernel, discrete.kernel) << name;
  EXPECT_EQ(relaxed.stride, discrete.stride) << name;
  EXPECT_EQ(relaxed.dilation, discrete.dilation) << name;
  EXPECT_EQ(relaxed.groups, discrete.groups) << name;
  EXPECT_EQ(relaxed.scale, discrete.scale) << name;
  EXPECT_EQ(relaxed.module, discrete.module) << name;
  EXPECT_EQ(relaxed.exit, discrete.exit) << name;
}

}  // namespace hypernas::test
