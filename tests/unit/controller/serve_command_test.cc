// `stampede serve` flags: defaults, each flag's bounds, and errors that name the flag.
#include "controller/serve_command.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

TEST(ServeFlagsTest, Defaults) {
  absl::StatusOr<ServeCommandOptions> o = ParseServeFlags({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, "127.0.0.1:8080");
  EXPECT_EQ(o->grpc_listen, "127.0.0.1:9090");
  EXPECT_EQ(o->advertise, "");
  EXPECT_EQ(o->logs, "");
  EXPECT_EQ(o->max_runs, 4);
  EXPECT_EQ(o->keep_runs, 100);
  EXPECT_EQ(o->port_file, "");
  EXPECT_FALSE(o->help);
}

TEST(ServeFlagsTest, EveryFlagInBothForms) {
  absl::StatusOr<ServeCommandOptions> o = ParseServeFlags(
      {"--listen", "127.0.0.1:0", "--grpc-listen=:0", "--advertise", "[::1]:7070", "--logs=/tmp/l",
       "--max-runs", "1", "--keep-runs=0", "--port-file", "/tmp/port"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, "127.0.0.1:0");
  EXPECT_EQ(o->grpc_listen, ":0");
  EXPECT_EQ(o->advertise, "[::1]:7070");
  EXPECT_EQ(o->logs, "/tmp/l");
  EXPECT_EQ(o->max_runs, 1);
  EXPECT_EQ(o->keep_runs, 0);
  EXPECT_EQ(o->port_file, "/tmp/port");
}

TEST(ServeFlagsTest, Help) { EXPECT_TRUE(ParseServeFlags({"-h"})->help); }

TEST(ServeFlagsTest, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--listen", "8080"}, "--listen: \"8080\" is not host:port"},
      {{"--grpc-listen", "h:70000"}, "--grpc-listen: \"h:70000\" is not host:port"},
      {{"--advertise", "host"}, "--advertise: \"host\" is not host:port"},
      {{"--max-runs", "0"}, "--max-runs: \"0\" is not a count >= 1"},
      {{"--keep-runs", "-1"}, "--keep-runs: \"-1\" is not a count >= 0"},
      {{"--keep-runs"}, "--keep-runs: needs a value"},
      {{"--bogus"}, "--bogus: unknown flag"},
      {{"stray"}, "stray: unknown argument"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<ServeCommandOptions> o = ParseServeFlags(c.args);
    ASSERT_FALSE(o.ok()) << c.message;
    EXPECT_EQ(o.status().message(), c.message);
  }
}

TEST(ServeFlagsTest, UsageListsEveryFlag) {
  const std::string usage = ServeUsage();
  for (const char* flag : {"--listen ADDR", "--grpc-listen ADDR", "--advertise ADDR", "--logs DIR",
                           "--max-runs N", "--keep-runs N", "--port-file FILE", "SIGINT/SIGTERM"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace stampede::controller
