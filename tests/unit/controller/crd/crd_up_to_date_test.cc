// The checked-in CRD must be exactly what the generator makes of today's loadtest.proto.
#include <fstream>
#include <sstream>
#include <string>

#include "controller/crd/crd_generator.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "line N:\n  checked in: ...\n  generated:  ..." for the first line that differs.
std::string FirstDifference(const std::string& checked_in, const std::string& generated) {
  std::istringstream a(checked_in), b(generated);
  std::string line_a, line_b;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, line_a));
    const bool more_b = static_cast<bool>(std::getline(b, line_b));
    if (!more_a && !more_b) return "only in line endings";
    if (!more_a || !more_b || line_a != line_b) {
      return "line " + std::to_string(line) +
             ":\n  checked in: " + (more_a ? line_a : "(end of file)") +
             "\n  generated:  " + (more_b ? line_b : "(end of file)");
    }
  }
}

TEST(CrdUpToDateTest, CheckedInCrdIsWhatTheProtoGenerates) {
  std::ifstream in(STAMPEDE_LOADTEST_DESCRIPTOR_SET, std::ios::binary);
  google::protobuf::FileDescriptorSet files;
  ASSERT_TRUE(in && files.ParseFromIstream(&in)) << STAMPEDE_LOADTEST_DESCRIPTOR_SET;
  const absl::StatusOr<std::string> generated = GenerateCrd(files, LoadTestCrdOptions());
  ASSERT_TRUE(generated.ok()) << "loadtest.proto does not make a valid CRD:\n"
                              << generated.status().message();
  // Written every time, so the difference can be read with diff.
  std::ofstream(STAMPEDE_FRESH_CRD, std::ios::binary | std::ios::trunc) << *generated;

  const std::string checked_in = ReadFile(STAMPEDE_CHECKED_IN_CRD);
  if (checked_in != *generated) {
    FAIL() << "deploy/crd/loadtests.stampede.dev.yaml is out of date: proto/stampede/v1/"
              "loadtest.proto changed since it was generated.\n"
           << "First difference, " << FirstDifference(checked_in, *generated) << "\n"
           << "Whole difference:\n  diff -u " << STAMPEDE_CHECKED_IN_CRD << " " STAMPEDE_FRESH_CRD
           << "\nRefresh the checked-in file (and commit it with the .proto change):\n"
           << "  cmake --build " << STAMPEDE_BUILD_DIR << " --target update-crd";
  }
}

}  // namespace
}  // namespace stampede::controller
