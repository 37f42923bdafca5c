// `stampede-agent connect` flags: defaults, bounds, the environment fallbacks, the replay log
// bound and the errors that name the flag.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/session.h"

namespace stampede::agent {
namespace {

std::vector<std::string> Base() {
  return {"--controller", "127.0.0.1:1", "--run", "r", "--index", "0"};
}

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
    EXPECT_NE(opt.status().message().find("--replay-log-max"), absl::string_view::npos)
        << opt.status();
  }
}

// The environment as a map, for the fallbacks.
common::FlagSet::EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ConnectFlagsTest, Defaults) {
  absl::StatusOr<SessionOptions> opt = ParseConnectFlags(Base(), Env({}));
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->controller, "127.0.0.1:1");
  EXPECT_EQ(opt->run, "r");
  EXPECT_EQ(opt->index, 0u);
  EXPECT_EQ(opt->token, "");
  EXPECT_EQ(opt->threads, 0u);
  EXPECT_EQ(opt->reconnect_s, 0);
  EXPECT_FALSE(opt->help);
}

TEST(ConnectFlagsTest, EveryFlagHasAnEnvironmentFallbackButTheReplayLogBound) {
  absl::StatusOr<SessionOptions> opt =
      ParseConnectFlags({}, Env({{"STAMPEDE_CONTROLLER", "c:7070"},
                                 {"STAMPEDE_RUN", "run-1"},
                                 {"STAMPEDE_AGENT_INDEX", "3"},
                                 {"STAMPEDE_TOKEN", "secret"},
                                 {"STAMPEDE_THREADS", "2"},
                                 {"STAMPEDE_RECONNECT_SECONDS", "60"}}));
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->controller, "c:7070");
  EXPECT_EQ(opt->run, "run-1");
  EXPECT_EQ(opt->index, 3u);
  EXPECT_EQ(opt->token, "secret");
  EXPECT_EQ(opt->threads, 2u);
  EXPECT_EQ(opt->reconnect_s, 60);
}

TEST(ConnectFlagsTest, TheCommandLineWinsOverTheEnvironment) {
  std::vector<std::string> args = Base();
  args.insert(args.end(), {"--threads=4", "--token", "t"});
  absl::StatusOr<SessionOptions> opt =
      ParseConnectFlags(args, Env({{"STAMPEDE_CONTROLLER", "other:1"},
                                   {"STAMPEDE_AGENT_INDEX", "9"},
                                   {"STAMPEDE_THREADS", "bad"},
                                   {"STAMPEDE_TOKEN", "env"}}));
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->controller, "127.0.0.1:1");
  EXPECT_EQ(opt->index, 0u);
  EXPECT_EQ(opt->threads, 4u);
  EXPECT_EQ(opt->token, "t");
}

TEST(ConnectFlagsTest, ErrorsNameTheFlagAndTheVariable) {
  const struct {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string message;
  } cases[] = {
      {{"--run", "r", "--index", "0"}, {}, "--controller (or STAMPEDE_CONTROLLER): is required"},
      {{"--controller", "c:1", "--index", "0"}, {}, "--run (or STAMPEDE_RUN): is required"},
      {{"--controller", "c:1", "--run", "r"}, {}, "--index (or STAMPEDE_AGENT_INDEX): is required"},
      {{"--controller", "c:1", "--run", "r", "--index", "x"},
       {},
       "--index: \"x\" is not a count >= 0"},
      {{"--controller", "c:1", "--run", "r"},
       {{"STAMPEDE_AGENT_INDEX", "-1"}},
       "--index (from STAMPEDE_AGENT_INDEX): \"-1\" is not a count >= 0"},
      {Base(),
       {{"STAMPEDE_THREADS", "2000"}},
       "--threads (from STAMPEDE_THREADS): \"2000\" is not a count in 0..1024"},
      {Base(),
       {{"STAMPEDE_RECONNECT_SECONDS", "3601"}},
       "--reconnect (from STAMPEDE_RECONNECT_SECONDS): \"3601\" is not a count in 0..3600"},
      {{"--controller"}, {}, "--controller: needs a value"},
      {{"--bogus", "1"}, {}, "--bogus: unknown flag"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<SessionOptions> opt = ParseConnectFlags(c.args, Env(c.env));
    ASSERT_FALSE(opt.ok()) << c.message;
    EXPECT_EQ(opt.status().message(), c.message);
  }
}

// The controller's CA, as text or from a file read within its bound (the project's ReadSmallFile:
// a device, a directory or a missing file is refused, naming the flag).
TEST(ConnectFlagsTest, TheCaComesAsTextOrFromAFileAndIsChecked) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  absl::StatusOr<SessionOptions> text = ParseConnectFlags(Base(), Env({{"STAMPEDE_CA", pem}}));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->ca_pem, pem);
  const std::string file = ::testing::TempDir() + "connect-flags-ca.pem";
  {
    std::ofstream out(file);
    out << pem;
  }
  std::vector<std::string> args = Base();
  args.insert(args.end(), {"--ca-file", file});
  absl::StatusOr<SessionOptions> read = ParseConnectFlags(args, Env({}));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->ca_pem, pem);
  EXPECT_TRUE(ParseConnectFlags(Base(), Env({}))->ca_pem.empty()) << "plaintext by default";

  const struct {
    std::vector<std::string> extra;
    std::string message_start;
  } cases[] = {
      {{"--ca-file", "/dev/zero"}, "--ca-file: "},
      {{"--ca-file", "/nonexistent/ca.pem"}, "--ca-file: "},
      {{"--ca-file", file, "--ca", pem}, "--ca-file: give --ca or --ca-file, not both"},
      {{"--ca", "not a certificate"}, "--ca: no PEM certificate in it"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> bad = Base();
    bad.insert(bad.end(), c.extra.begin(), c.extra.end());
    const absl::StatusOr<SessionOptions> opt = ParseConnectFlags(bad, Env({}));
    ASSERT_FALSE(opt.ok()) << c.message_start;
    EXPECT_EQ(opt.status().message().substr(0, c.message_start.size()), c.message_start);
  }
  std::remove(file.c_str());
}

TEST(ConnectFlagsTest, HelpAndUsage) {
  absl::StatusOr<SessionOptions> opt = ParseConnectFlags({"--help"}, Env({}));
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_TRUE(opt->help);
  const std::string usage = ConnectUsage();
  for (const char* text :
       {"--controller HOST:PORT", "[env STAMPEDE_CONTROLLER]", "--run ID", "[env STAMPEDE_RUN]",
        "--index I", "[env STAMPEDE_AGENT_INDEX]", "--token T", "[env STAMPEDE_TOKEN]",
        "--threads N", "[env STAMPEDE_THREADS]", "--reconnect SECONDS",
        "[env STAMPEDE_RECONNECT_SECONDS]", "--replay-log-max BYTES"}) {
    EXPECT_NE(usage.find(text), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace stampede::agent
