#pragma once
/// @file device.h
/// @brief Choosing the compute device and the CPU thread count.

#include <string>

#include <c10/core/Device.h>

namespace hypernas::device {

/// Parses "cpu", "cuda", "cuda:N" or "auto" and checks the device exists. "auto" picks
/// cuda:0 when LibTorch sees a GPU, else the CPU. Throws UsageError for a malformed name and
/// Error for a GPU this build or machine does not have (saying which).
c10::Device select(const std::string& spec);

/// Number of CUDA devices LibTorch sees (0 on a CPU-only build).
int cuda_device_count();

/// Sets LibTorch's intra-op thread count; n <= 0 means every core.
int set_threads(int n);

/// "cpu" or "cuda:N (name)" for logs and the results store.
std::string describe(const c10::Device& device);

}  // namespace hypernas::device
