#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <hypernas/error.h>

#include "kernel/store/checkpoint.h"

namespace fs = std::filesystem;
using namespace hypernas::store;

namespace {

class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("hypernas_ckpt_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string error_reading(const fs::path& p) {
    try {
      read_checkpoint(p);
    } catch (const hypernas::Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path dir;
};

TEST_F(CheckpointFile, RoundTripsABinaryBlob) {
  Checkpoint c{"ghn", "hidden=32,steps=5", std::string("a\0b\nc\xff", 6)};
  write_checkpoint(dir / "sub" / "ghn.ckpt", c);
  Checkpoint r = read_checkpoint(dir / "sub" / "ghn.ckpt");
  EXPECT_EQ(r.plugin, "ghn");
  EXPECT_EQ(r.options, "hidden=32,steps=5");
  EXPECT_EQ(r.blob, c.blob);
  EXPECT_FALSE(fs::exists(dir / "sub" / "ghn.ckpt.tmp"));
}

TEST_F(CheckpointFile, OverwriteReplacesTheWholeFile) {
  write_checkpoint(dir / "x.ckpt", {"p", "", std::string(1000, 'a')});
  write_checkpoint(dir / "x.ckpt", {"p", "", "short"});
  EXPECT_EQ(read_checkpoint(dir / "x.ckpt").blob, "short");
}

TEST_F(CheckpointFile, TruncatedFileNamesBothByteCounts) {
  write_checkpoint(dir / "t.ckpt", {"ghn", "", std::string(100, 'z')});
  fs::resize_file(dir / "t.ckpt", fs::file_size(dir / "t.ckpt") - 40);
  const std::string e = error_reading(dir / "t.ckpt");
  EXPECT_NE(e.find(
                "t.ckpt is truncated: its header promises 100 bytes of state, the file holds 60"),
            std::string::npos)
      << e;
}

TEST_F(CheckpointFile, CorruptionIsCaughtByTheChecksum) {
  write_checkpoint(dir / "c.ckpt", {"ghn", "", std::string(100, 'z')});
  {
    std::fstream f(dir / "c.ckpt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-10, std::ios::end);
    f.put('y');
  }
  EXPECT_NE(error_reading(dir / "c.ckpt").find("is corrupt: checksum"), std::string::npos);
}

TEST_F(CheckpointFile, ForeignMissingAndNewerFilesAreRefused) {
  fs::create_directories(dir);
  std::ofstream(dir / "foreign.ckpt") << "PK\x03\x04 zip file";
  EXPECT_NE(error_reading(dir / "foreign.ckpt").find("is not a HyperNAS checkpoint"),
            std::string::npos);
  EXPECT_NE(error_reading(dir / "missing.ckpt").find("missing.ckpt (missing or unreadable)"),
            std::string::npos);
  std::ofstream(dir / "new.ckpt") << "HYPERNAS-CHECKPOINT\nversion 9\n";
  EXPECT_NE(error_reading(dir / "new.ckpt").find("format version 9"), std::string::npos);
  std::ofstream(dir / "head.ckpt") << "HYPERNAS-CHECKPOINT\nversion 1\nplugin ghn\n";
  EXPECT_NE(error_reading(dir / "head.ckpt").find("truncated in its header"), std::string::npos);
}

}  // namespace
