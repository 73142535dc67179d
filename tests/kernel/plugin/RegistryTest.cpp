#include <gtest/gtest.h>

#include <filesystem>

#include "kernel/core/context.h"
#include "kernel/plugin/registry.h"

namespace fs = std::filesystem;
using hypernas::PluginKind;
using hypernas::plugin::Registry;

namespace {

const fs::path kFixtures = HYPERNAS_TEST_FIXTURE_DIR;

class FixtureRegistry : public ::testing::Test {
 protected:
  void SetUp() override { registry.scan({kFixtures}); }
  std::string reason_for(const std::string& file) const {
    for (const auto& r : registry.refusals())
      if (r.path.filename() == file) return r.reason;
    return "(not refused)";
  }
  Registry registry;
};

TEST_F(FixtureRegistry, LoadsTheGoodPluginWithItsDescriptor) {
  const auto* info = registry.find(PluginKind::Surrogate, "fixture_nodes");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->path.filename(), "good.so");
  EXPECT_EQ(info->version, "0.1.0");
  EXPECT_EQ(info->abi_major, hypernas::kAbiMajor);
  EXPECT_EQ(info->build_id, hypernas::build_id());
  EXPECT_EQ(registry.plugins().size(), 1u);
}

TEST_F(FixtureRegistry, RefusesATextFileNamedLikeALibrary) {
  EXPECT_NE(reason_for("not_a_library.so").find("not a loadable shared library"), std::string::npos)
      << reason_for("not_a_library.so");
}

TEST_F(FixtureRegistry, RefusesALibraryWithoutDescriptor) {
  EXPECT_NE(reason_for("no_descriptor.so").find("hypernas_plugin_descriptor"), std::string::npos);
}

TEST_F(FixtureRegistry, RefusesAnotherAbiMajorNamingBothValues) {
  const std::string r = reason_for("abi_major.so");
  EXPECT_NE(r.find("ABI major 99"), std::string::npos) << r;
  EXPECT_NE(r.find(hypernas::cat("host has ABI ", hypernas::kAbiMajor)), std::string::npos) << r;
}

TEST_F(FixtureRegistry, RefusesANewerAbiMinor) {
  const std::string r = reason_for("abi_minor.so");
  EXPECT_NE(r.find(hypernas::cat("ABI ", hypernas::kAbiMajor, ".", hypernas::kAbiMinor + 1)),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("newer"), std::string::npos) << r;
}

TEST_F(FixtureRegistry, RefusesAnotherBuildIdNamingBoth) {
  const std::string r = reason_for("build_id.so");
  EXPECT_NE(r.find("torch-0.1"), std::string::npos) << r;
  EXPECT_NE(r.find(hypernas::build_id()), std::string::npos) << r;
}

TEST_F(FixtureRegistry, RefusesAnUnknownKind) {
  EXPECT_NE(reason_for("bad_kind.so").find("unknown kind 7"), std::string::npos);
}

TEST_F(FixtureRegistry, RefusesAPluginOfAnotherCxxAbiNamingTheSymbolInCxx) {
  const std::string r = reason_for("old_cxx_abi.so");
  EXPECT_NE(r.find("old_cxx_abi.so"), std::string::npos) << r;
  EXPECT_NE(r.find("c10::detail::torchCheckFail("), std::string::npos) << r;
  EXPECT_NE(r.find("C++ ABI"), std::string::npos) << r;
  EXPECT_NE(r.find(hypernas::build_id()), std::string::npos) << r;
  EXPECT_EQ(r.find("Bad file descriptor"), std::string::npos) << r;
}

TEST_F(FixtureRegistry, LoaderMessagesCarryNoStrayErrnoText) {
  for (const auto& refusal : registry.refusals())
    EXPECT_EQ(refusal.reason.find("Bad file descriptor"), std::string::npos) << refusal.reason;
}

TEST_F(FixtureRegistry, RefusesADuplicateNameNamingTheFirstFile) {
  const std::string r = reason_for("zz_duplicate.so");
  EXPECT_NE(r.find("duplicate surrogate name 'fixture_nodes'"), std::string::npos) << r;
  EXPECT_NE(r.find("good.so"), std::string::npos) << r;
}

TEST_F(FixtureRegistry, EveryBadFixtureIsRefusedExactlyOnce) {
  EXPECT_EQ(registry.refusals().size(), 8u);
}

TEST_F(FixtureRegistry, CreatesAWorkingObjectAndValidatesOptions) {
  hypernas::Options given;
  given.set("weight", std::int64_t{2});
  auto s = registry.create_surrogate("fixture_nodes", given);
  ASSERT_TRUE(s);
  hypernas::Architecture arch;
  boost::add_vertex(hypernas::OpNode{"input", "in"}, arch.graph);
  boost::add_vertex(hypernas::OpNode{"relu", "r"}, arch.graph);
  hypernas::ScoreRequest req;
  req.archs = {&arch};
  hypernas::core::RunServices services;
  hypernas::core::KernelContext ctx(services, "test");
  auto scores = s->score(ctx, req);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_DOUBLE_EQ(scores[0].value, 4.0);

  hypernas::Options bad;
  bad.set("weight", std::string("heavy"));
  EXPECT_THROW(registry.create_surrogate("fixture_nodes", bad), hypernas::UsageError);
  hypernas::Options unknown;
  unknown.set("wieght", 1.0);
  try {
    registry.create_surrogate("fixture_nodes", unknown);
    FAIL() << "unknown option accepted";
  } catch (const hypernas::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'wieght'"), std::string::npos);
  }
}

TEST_F(FixtureRegistry, ReportsAFailingFactoryWithItsMessageAndPath) {
  hypernas::Options o;
  o.set("fail", true);
  try {
    registry.create_surrogate("fixture_nodes", o);
    FAIL() << "factory failure not reported";
  } catch (const hypernas::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fixture asked to fail"), std::string::npos) << m;
    EXPECT_NE(m.find("good.so"), std::string::npos) << m;
  }
}

TEST_F(FixtureRegistry, UnknownNameListsAvailableAndRefused) {
  try {
    registry.create_strategy("nope", {});
    FAIL();
  } catch (const hypernas::UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no strategy plugin named 'nope'"), std::string::npos) << m;
    EXPECT_NE(m.find("abi_major.so"), std::string::npos) << m;
  }
}

TEST_F(FixtureRegistry, JsonListsPluginsAndRefusals) {
  const std::string json = registry.to_json();
  EXPECT_NE(json.find("\"fixture_nodes\""), std::string::npos);
  EXPECT_NE(json.find("\"build_id\""), std::string::npos);
  EXPECT_NE(json.find("not_a_library.so"), std::string::npos);
  EXPECT_NE(json.find("\"weight\""), std::string::npos);  // parameter table
}

TEST(Registry, MissingFolderIsReportedNotFatal) {
  Registry r;
  r.scan({"/nonexistent/hypernas/plugins"});
  ASSERT_EQ(r.refusals().size(), 1u);
  EXPECT_NE(r.refusals()[0].reason.find("not a folder"), std::string::npos);
}

TEST(Registry, BuiltInPluginsLoad) {
  Registry r;
  r.scan({fs::path(HYPERNAS_BINARY_DIR) / "plugins"});
  EXPECT_TRUE(r.refusals().empty()) << r.to_table();
  EXPECT_NE(r.find(PluginKind::Space, "nb201"), nullptr) << r.to_table();
}

}  // namespace
