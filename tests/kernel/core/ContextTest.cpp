// Tests of the kernel's context (kernel/core/context.h).

#include <gtest/gtest.h>

#include "kernel/core/context.h"

namespace {

using hypernas::core::derive_seed;

// Pinned: every plugin's random stream, and so every run's draws, comes from derive_seed().
// Its FNV-1a starts from 1469598103934665603 ^ seed (FNV's offset basis without its last digit):
// if these change, reruns of stored experiments draw other candidates.
TEST(DeriveSeed, IsPinned) {
  EXPECT_EQ(derive_seed(0, "ghn"), 0xf01a4651154d4146ull);
  EXPECT_EQ(derive_seed(7, "random"), 0xcea3b44f8c1d27abull);
  EXPECT_EQ(derive_seed(1, "sgd#1"), 0x23c9162d5ddba6d0ull);
}

TEST(DeriveSeed, DependsOnSeedAndName) {
  EXPECT_NE(derive_seed(1, "ghn"), derive_seed(2, "ghn"));
  EXPECT_NE(derive_seed(1, "ghn"), derive_seed(1, "sgd"));
}

}  // namespace
