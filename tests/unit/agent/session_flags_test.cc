// `stampede-agent connect` flags: the replay log bound and the errors that name the flag.
#include <gtest/gtest.h>

#include "agent/session.h"

namespace stampede::agent {
namespace {

std::vector<std::string> Base() { return {"--controller", "127.0.0.1:1", "--run", "r", "--index", "0"}; }

TEST(ConnectFlagsTest, ReplayLogMaxDefaultsTo64MiBAndTakesAByteCount) {
  absl::StatusOr<SessionOptions> opt = ParseConnectFlags(Base());
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->replay_log_max_bytes, int64_t{64} << 20);
  std::vector<std::string> args = Base();
  args.insert(args.end(), {"--reconnect", "60", "--replay-log-max", "4096"});
  opt = ParseConnectFlags(args);
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->replay_log_max_bytes, 4096);
  EXPECT_EQ(opt->reconnect_s, 60);
}

TEST(ConnectFlagsTest, BadReplayLogMaxIsNamed) {
  for (const char* bad : {"100", "lots", "-5"}) {
    std::vector<std::string> args = Base();
    args.insert(args.end(), {"--replay-log-max", bad});
    const absl::StatusOr<SessionOptions> opt = ParseConnectFlags(args);
    ASSERT_FALSE(opt.ok()) << bad;
    EXPECT_NE(opt.status().message().find("--replay-log-max"), absl::string_view::npos) << opt.status();
  }
}

}  // namespace
}  // namespace stampede::agent
