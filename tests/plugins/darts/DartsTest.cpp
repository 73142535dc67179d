#include <gtest/gtest.h>
#include <iostream>
#include "plugins/spaces/darts/darts.h"
using namespace hypernas;
TEST(Darts, Print) {
  Options o; o.set("channels", std::int64_t{36}).set("layers", std::int64_t{20});
  DartsSpace s(DartsSpace::params().resolve(o, "darts"));
  for (const char* t : {darts::kDartsV1, darts::kDartsV2}) {
    auto a = s.parse(t);
    auto st = s.stats(a);
    std::cout << a.text << "\n" << st.params << " " << st.flops << " nodes " << boost::num_vertices(a.graph) << "\n";
  }
}
