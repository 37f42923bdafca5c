// The flag table: both forms of a value, every kind of bound, the environment, help, and a usage
// text generated from the same declarations.
#include "common/flags.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

struct Values {
  bool help = false;
  std::string file;
  std::string name = "default";
  std::vector<std::string> headers;
  std::string listen = "127.0.0.1:1";
  int count = 7;
  uint32_t threads = 0;
  double rate = -1;
  absl::Duration timeout = absl::Seconds(10);
  int64_t grace_ns = -1;
  bool quiet = false;
};

FlagSet Declare(Values* v) {
  FlagSet flags("tool do", &v->help);
  flags.Description("Does one thing.");
  flags.Positional("FILE", &v->file);
  flags.String("--name", "NAME", "what to call it", &v->name);
  flags.Strings("--header", "'K: V'", "an extra header", &v->headers);
  flags.HostPort("--listen", "ADDR", "where to listen", &v->listen);
  flags.Count("--count", "N", "how many", &v->count, 1);
  flags.Count("--threads", "T", "threads", &v->threads, 0, 1024).Env("TOOL_THREADS");
  flags.Number("--rate", "R", "per second", &v->rate, FlagSet::kNonNegative);
  flags.Duration("--timeout", "D", "per request", &v->timeout, FlagSet::kPositive, absl::Hours(1));
  flags.DurationNanos("--grace", "D", "after the end", &v->grace_ns, FlagSet::kNonNegative);
  flags.Bool("--quiet", "no progress lines", &v->quiet);
  flags.Footer("exit codes: 0 done, 2 bad flags");
  return flags;
}

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

absl::Status Parse(const std::vector<std::string>& args, Values* v,
                   const FlagSet::EnvLookup& env = NoEnv) {
  return Declare(v).Parse(args, env);
}

TEST(FlagSetTest, NothingGivenKeepsTheDefaults) {
  Values v;
  ASSERT_TRUE(Parse({}, &v).ok());
  EXPECT_EQ(v.name, "default");
  EXPECT_EQ(v.count, 7);
  EXPECT_EQ(v.timeout, absl::Seconds(10));
  EXPECT_FALSE(v.quiet);
  EXPECT_FALSE(v.help);
}

TEST(FlagSetTest, TakesBothFormsOfAValue) {
  Values v;
  ASSERT_TRUE(Parse({"--name", "a", "--count=3", "--timeout", "1m30s", "--grace=250ms", "--rate",
                     "0.5", "--listen=:8080", "f.yaml"},
                    &v)
                  .ok());
  EXPECT_EQ(v.name, "a");
  EXPECT_EQ(v.count, 3);
  EXPECT_EQ(v.timeout, absl::Seconds(90));
  EXPECT_EQ(v.grace_ns, 250'000'000);
  EXPECT_EQ(v.rate, 0.5);
  EXPECT_EQ(v.listen, ":8080");
  EXPECT_EQ(v.file, "f.yaml");
}

TEST(FlagSetTest, AValueMayStartWithADashOrHoldAnEqualsSign) {
  Values v;
  ASSERT_TRUE(Parse({"--name", "-x", "--header", "X-A: b=c"}, &v).ok());
  EXPECT_EQ(v.name, "-x");
  EXPECT_EQ(v.headers, std::vector<std::string>{"X-A: b=c"});
  ASSERT_TRUE(Parse({"--name=a=b"}, &v).ok());
  EXPECT_EQ(v.name, "a=b");
}

TEST(FlagSetTest, TheLastValueWinsButARepeatableFlagKeepsEach) {
  Values v;
  ASSERT_TRUE(Parse({"--name", "a", "--name", "b", "--header", "A: 1", "--header=B: 2"}, &v).ok());
  EXPECT_EQ(v.name, "b");
  EXPECT_EQ(v.headers, (std::vector<std::string>{"A: 1", "B: 2"}));
}

TEST(FlagSetTest, BooleanFlagsTakeNoValueOrTrueOrFalse) {
  Values v;
  ASSERT_TRUE(Parse({"--quiet", "f"}, &v).ok());
  EXPECT_TRUE(v.quiet);
  EXPECT_EQ(v.file, "f");  // not taken as the flag's value
  ASSERT_TRUE(Parse({"--quiet=false"}, &v).ok());
  EXPECT_FALSE(v.quiet);
  ASSERT_TRUE(Parse({"--quiet=true"}, &v).ok());
  EXPECT_TRUE(v.quiet);
  EXPECT_EQ(Parse({"--quiet=yes"}, &v).message(), "--quiet: \"yes\" is not true or false");
}

TEST(FlagSetTest, ErrorsNameTheFlagAndSayWhy) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--bogus"}, "--bogus: unknown flag"},
      {{"--bogus=1"}, "--bogus: unknown flag"},
      {{"-x"}, "-x: unknown flag"},
      {{"--name"}, "--name: needs a value"},
      {{"a", "b"}, "FILE: one at a time (got \"a\" and \"b\")"},
      {{"--count", "0"}, "--count: \"0\" is not a count >= 1"},
      {{"--count", "x"}, "--count: \"x\" is not a count >= 1"},
      {{"--count", "1.5"}, "--count: \"1.5\" is not a count >= 1"},
      {{"--threads", "1025"}, "--threads: \"1025\" is not a count in 0..1024"},
      {{"--threads", "-1"}, "--threads: \"-1\" is not a count in 0..1024"},
      {{"--count", "3000000000"}, "--count: \"3000000000\" is too large"},  // for an int
      {{"--rate", "-1"}, "--rate: \"-1\" is not a number >= 0"},
      {{"--rate", "inf"}, "--rate: \"inf\" is not a number >= 0"},
      {{"--rate", "fast"}, "--rate: \"fast\" is not a number >= 0"},
      {{"--timeout", "0s"}, "--timeout: \"0s\" is not a duration > 0 and <= 1h"},
      {{"--timeout", "2h"}, "--timeout: \"2h\" is not a duration > 0 and <= 1h"},
      {{"--timeout", "10"}, "--timeout: \"10\" has no unit (write 10s or 10ms)"},
      {{"--grace", "-1s"}, "--grace: \"-1s\" is negative"},
      {{"--listen", "nowhere"}, "--listen: \"nowhere\" is not host:port"},
      {{"--listen", "h:99999"}, "--listen: \"h:99999\" is not host:port"},
  };
  for (const auto& c : cases) {
    Values v;
    const absl::Status s = Parse(c.args, &v);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(s.message(), c.message);
  }
}

TEST(FlagSetTest, WithoutPositionalsAnArgumentIsUnknown) {
  bool help = false;
  std::string name;
  FlagSet flags("tool", &help);
  flags.String("--name", "N", "", &name);
  EXPECT_EQ(flags.Parse({"stray"}, NoEnv).message(), "stray: unknown argument");
}

TEST(FlagSetTest, HelpStopsTheParseAndIsNoError) {
  for (const std::string help : {"-h", "--help"}) {
    Values v;
    // What follows is not looked at, and a required flag is not asked for.
    bool required_help = false;
    std::string url;
    FlagSet flags("tool", &required_help);
    flags.String("--url", "URL", "", &url).Required();
    EXPECT_TRUE(flags.Parse({help, "--bogus"}, NoEnv).ok());
    EXPECT_TRUE(required_help);
    ASSERT_TRUE(Parse({"--count", "2", help, "--count", "0"}, &v).ok());
    EXPECT_TRUE(v.help);
    EXPECT_EQ(v.count, 2);
  }
  // A bad flag before it is still an error.
  Values v;
  EXPECT_FALSE(Parse({"--bogus", "--help"}, &v).ok());
}

TEST(FlagSetTest, TheEnvironmentFillsWhatTheCommandLineLeaves) {
  const std::map<std::string, std::string> env = {{"TOOL_THREADS", "8"}};
  auto lookup = [&env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  Values v;
  ASSERT_TRUE(Parse({}, &v, lookup).ok());
  EXPECT_EQ(v.threads, 8u);
  ASSERT_TRUE(Parse({"--threads", "2"}, &v, lookup).ok());
  EXPECT_EQ(v.threads, 2u);  // the command line wins
  ASSERT_TRUE(Parse({"--threads=3"}, &v, lookup).ok());
  EXPECT_EQ(v.threads, 3u);
}

TEST(FlagSetTest, ABadOrEmptyEnvironmentValue) {
  Values v;
  v.threads = 5;
  // Empty counts as unset.
  ASSERT_TRUE(Parse({}, &v, [](const std::string&) { return std::string(); }).ok());
  EXPECT_EQ(v.threads, 5u);
  const absl::Status s = Parse({}, &v, [](const std::string&) { return std::string("many"); });
  EXPECT_EQ(s.message(), "--threads (from TOOL_THREADS): \"many\" is not a count in 0..1024");
}

TEST(FlagSetTest, RequiredFlagsAreNamedWithTheirEnvironmentFallback) {
  bool help = false;
  std::string controller, run;
  FlagSet flags("tool", &help);
  flags.String("--controller", "HOST:PORT", "", &controller).Env("TOOL_CONTROLLER").Required();
  flags.String("--run", "ID", "", &run).Required();
  EXPECT_EQ(flags.Parse({}, NoEnv).message(), "--controller (or TOOL_CONTROLLER): is required");
  EXPECT_EQ(flags.Parse({"--controller", "c"}, NoEnv).message(), "--run: is required");
  auto env = [](const std::string&) { return std::string("from-env"); };
  ASSERT_TRUE(flags.Parse({"--run", "r"}, env).ok());
  EXPECT_EQ(controller, "from-env");
}

TEST(FlagSetTest, UsageIsGeneratedFromTheTable) {
  Values v;
  EXPECT_EQ(Declare(&v).Usage(),
            "usage: tool do FILE [--name NAME] [--header 'K: V'] [--listen ADDR] [--count N] "
            "[--threads T]\n"
            "               [--rate R] [--timeout D] [--grace D] [--quiet]\n"
            "  Does one thing.\n"
            "  --name NAME      what to call it\n"
            "  --header 'K: V'  an extra header (repeatable)\n"
            "  --listen ADDR    where to listen\n"
            "  --count N        how many\n"
            "  --threads T      threads [env TOOL_THREADS]\n"
            "  --rate R         per second\n"
            "  --timeout D      per request\n"
            "  --grace D        after the end\n"
            "  --quiet          no progress lines\n"
            "  exit codes: 0 done, 2 bad flags\n");
}

TEST(FlagSetTest, UsageGroupsWrapsAndTakesAGivenSynopsis) {
  bool help = false, json = false;
  std::string url, a_very_long_flag;
  FlagSet flags("bench", &help);
  flags.Synopsis("--url URL [options]");
  flags.Group("requests:");
  flags.String("--url", "URL", "http:// or https:// target", &url).Required();
  flags.Group("output:");
  flags.Bool("--json", "print the summary as JSON", &json);
  flags.String("--a-very-long-flag-name", "VALUE",
               "help that is long enough to need a second line once it has run past the right "
               "margin\nand a line of its own",
               &a_very_long_flag);
  EXPECT_EQ(flags.Usage(),
            "usage: bench --url URL [options]\n"
            "\n"
            "requests:\n"
            "  --url URL                   http:// or https:// target\n"
            "\n"
            "output:\n"
            "  --json                      print the summary as JSON\n"
            "  --a-very-long-flag-name VALUE  help that is long enough to need a second line "
            "once it has run past\n"
            "                              the right margin\n"
            "                              and a line of its own\n");
}

}  // namespace
}  // namespace stampede::common
