#pragma once
/// @file errors.h
/// @brief error_of(): the message of the hypernas::Error a piece of test code throws.

#include <exception>
#include <string>

#include <gtest/gtest.h>

#include <hypernas/error.h>

namespace hypernas::test {

/// The message of the hypernas::Error (or subclass) that `f()` throws. Adds a test failure, and
/// returns "", when `f` throws nothing; adds one, and returns its message, when `f` throws an
/// exception that is not a hypernas::Error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-hypernas exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no hypernas::Error thrown";
  return "";
}

}  // namespace hypernas::test
