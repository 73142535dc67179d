// A library built with -D_GLIBCXX_USE_CXX11_ABI=0 (the pre-C++11 std::string), unlike Torch and
// hypernas. Its TORCH_CHECK with a formatted message calls
// c10::detail::torchCheckFail(const char*, const char*, unsigned, const std::string&) with the
// old std::string: a symbol libc10 does not define, so loading it fails with an undefined
// symbol, as a real plugin built for the other ABI does (tests/kernel/plugin/RegistryTest.cpp).
#include <c10/util/Exception.h>

extern "C" __attribute__((visibility("default"))) int hypernas_fixture_positive(int x) {
  TORCH_CHECK(x > 0, "expected a positive number, got ", x);
  return x;
}
