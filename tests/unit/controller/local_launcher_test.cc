// PerRunLocalLauncher: one log folder per run, named at Launch; one run per launcher.
#include "controller/local_launcher.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

TEST(PerRunLocalLauncherTest, LogsGoUnderTheRunIdOnceLaunched) {
  char root[] = "/tmp/stampede-launcher-test-XXXXXX";
  ASSERT_NE(mkdtemp(root), nullptr);
  // No agent is started: the binary only has to be executable.
  PerRunLocalLauncher launcher("/bin/true", root);
  EXPECT_EQ(launcher.LogLocation(0), root);
  LaunchRequest request;
  request.run_id = "run-1";
  request.agents = 0;
  ASSERT_TRUE(launcher.Launch(request).ok());
  EXPECT_EQ(launcher.LogLocation(2), std::string(root) + "/run-1/agent-2.log");
  struct stat st {};
  EXPECT_EQ(stat((std::string(root) + "/run-1").c_str(), &st), 0);
  EXPECT_EQ(launcher.Launch(request).code(), absl::StatusCode::kFailedPrecondition);
  launcher.Stop();
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace stampede::controller
