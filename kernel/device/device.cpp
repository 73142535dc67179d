#include "kernel/device/device.h"

#include <thread>

#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/cuda.h>

#include <hypernas/error.h>

namespace hypernas::device {

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

c10::Device select(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto")
    return cuda_device_count() > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      const std::string digits = spec.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
          digits.size() > 3)
        throw UsageError(cat("malformed device '", spec, "': expected cpu, cuda, cuda:N or auto"));
      index = std::stoi(digits);
    }
    const int n = cuda_device_count();
    if (n == 0)
      throw Error(
          cat("device '", spec, "' requested, but this LibTorch ",
              torch::cuda::is_available() ? "sees no GPU" : "has no CUDA support or sees no GPU",
              "; use --device cpu or auto"));
    if (index >= n)
      throw Error(cat("device '", spec, "' requested, but only ", n,
                      " GPU(s) exist (cuda:0..cuda:", n - 1, ")"));
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UsageError(cat("malformed device '", spec, "': expected cpu, cuda, cuda:N or auto"));
}

int set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return n;
}

std::string describe(const c10::Device& device) { return device.str(); }

}  // namespace hypernas::device
