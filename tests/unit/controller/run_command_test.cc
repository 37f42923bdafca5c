// `stampede run` flags: defaults, each flag's bounds, and errors that name the flag.
#include "controller/run_command.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

TEST(RunFlagsTest, AFileAloneKeepsTheDefaults) {
  absl::StatusOr<RunCommandOptions> o = ParseRunFlags({"test.yaml"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->file, "test.yaml");
  EXPECT_EQ(o->agents, 0u);  // spec.agents
  EXPECT_EQ(o->target, "");
  EXPECT_EQ(o->out_json, "");
  EXPECT_EQ(o->out_csv, "");
  EXPECT_EQ(o->logs, "");
  EXPECT_EQ(o->metrics_listen, "");
  EXPECT_FALSE(o->quiet);
  EXPECT_FALSE(o->help);
}

TEST(RunFlagsTest, EveryFlagInBothForms) {
  absl::StatusOr<RunCommandOptions> o = ParseRunFlags(
      {"--agents", "3", "--target=http://127.0.0.1:1", "--out", "r.json", "--csv=r.csv", "--report",
       "r.html", "--logs", "/tmp/l", "--metrics-listen=127.0.0.1:0", "--metrics-linger", "30s",
       "--quiet", "t.yaml"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->file, "t.yaml");
  EXPECT_EQ(o->agents, 3u);
  EXPECT_EQ(o->target, "http://127.0.0.1:1");
  EXPECT_EQ(o->out_json, "r.json");
  EXPECT_EQ(o->out_csv, "r.csv");
  EXPECT_EQ(o->out_report, "r.html");
  EXPECT_EQ(o->logs, "/tmp/l");
  EXPECT_EQ(o->metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(o->metrics_linger, absl::Seconds(30));
  EXPECT_TRUE(o->quiet);
}

TEST(RunFlagsTest, HelpNeedsNoFile) {
  absl::StatusOr<RunCommandOptions> o = ParseRunFlags({"--help"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->help);
  EXPECT_TRUE(ParseRunFlags({"t.yaml", "-h"})->help);
}

TEST(RunFlagsTest, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{}, "TEST.yaml: which test? (a LoadTest YAML or JSON file)"},
      {{"--quiet"}, "TEST.yaml: which test? (a LoadTest YAML or JSON file)"},
      {{"a.yaml", "b.yaml"}, "TEST.yaml: one at a time (got \"a.yaml\" and \"b.yaml\")"},
      {{"t.yaml", "--agents", "0"}, "--agents: \"0\" is not a count >= 1"},
      {{"t.yaml", "--agents", "two"}, "--agents: \"two\" is not a count >= 1"},
      {{"t.yaml", "--agents", "5000000000"}, "--agents: \"5000000000\" is too large"},
      {{"t.yaml", "--metrics-listen", "9464"}, "--metrics-listen: \"9464\" is not host:port"},
      {{"t.yaml", "--metrics-linger", "5s"},
       "--metrics-linger: there is no /metrics without --metrics-listen"},
      {{"t.yaml", "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "1h"},
       "--metrics-linger: \"1h\" is not a duration >= 0 and <= 10m"},
      {{"t.yaml", "--out"}, "--out: needs a value"},
      {{"t.yaml", "--bogus"}, "--bogus: unknown flag"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<RunCommandOptions> o = ParseRunFlags(c.args);
    ASSERT_FALSE(o.ok()) << c.message;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(o.status().message(), c.message);
  }
}

TEST(RunFlagsTest, UsageListsEveryFlag) {
  const std::string usage = RunUsage();
  EXPECT_EQ(usage.rfind("usage: stampede run TEST.yaml [--agents N]", 0), 0u) << usage;
  for (const char* flag :
       {"--agents N", "--target URL", "--out FILE", "--csv FILE", "--report FILE", "--logs DIR",
        "--metrics-listen ADDR", "--quiet", "exit codes: 0 passed"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace stampede::controller
