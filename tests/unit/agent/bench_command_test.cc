// `stampede-agent bench`: its flags (defaults, bounds, the checks across flags, messages that
// name the flag) and its summary, as text and as the JSON scripts read.
#include "agent/bench_command.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::agent {
namespace {

std::vector<std::string> With(std::vector<std::string> more) {
  std::vector<std::string> args = {"--url", "http://127.0.0.1:1/"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST(BenchFlagsTest, ClosedModelDefaults) {
  absl::StatusOr<BenchOptions> o = ParseBenchFlags(With({"--users", "10", "--duration", "2s"}));
  ASSERT_TRUE(o.ok()) << o.status();
  const EngineConfig& cfg = o->engine;
  EXPECT_EQ(cfg.url, "http://127.0.0.1:1/");
  EXPECT_EQ(cfg.plan.model(), LoadPlan::Model::kClosed);
  EXPECT_EQ(cfg.plan.MaxUsers(), 10u);
  EXPECT_EQ(cfg.plan.duration_ns(), 2'000'000'000);
  EXPECT_EQ(cfg.think_min_ns, 0);
  EXPECT_EQ(cfg.think_max_ns, 0);
  EXPECT_EQ(cfg.threads, 0u);
  EXPECT_EQ(cfg.connections, 0u);
  EXPECT_EQ(cfg.timeout_ns, 10'000'000'000);
  EXPECT_EQ(cfg.grace_ns, -1);
  EXPECT_FALSE(cfg.insecure_skip_verify);
  EXPECT_EQ(cfg.ca_file, "");
  EXPECT_EQ(cfg.seed, 0u);
  ASSERT_EQ(cfg.requests.size(), 1u);  // the engine's default request
  EXPECT_EQ(cfg.requests[0].method, "GET");
  EXPECT_TRUE(cfg.requests[0].headers.empty());
  EXPECT_TRUE(cfg.requests[0].expect_status.empty());
  EXPECT_FALSE(o->json);
  EXPECT_FALSE(o->quiet);
  EXPECT_FALSE(o->help);
}

TEST(BenchFlagsTest, EveryFlagInBothForms) {
  absl::StatusOr<BenchOptions> o = ParseBenchFlags(With({"--users=5",
                                                         "--spawn-rate",
                                                         "2.5",
                                                         "--think=100ms,200ms",
                                                         "--duration",
                                                         "1m",
                                                         "--method",
                                                         "POST",
                                                         "--header",
                                                         "X-A: 1",
                                                         "--header=X-B:  two",
                                                         "--body",
                                                         "{}",
                                                         "--expect-status=200,201",
                                                         "--timeout",
                                                         "500ms",
                                                         "--grace=0s",
                                                         "--insecure",
                                                         "--cacert",
                                                         "/ca.pem",
                                                         "--threads=4",
                                                         "--seed",
                                                         "18446744073709551615",
                                                         "--json",
                                                         "--quiet"}));
  ASSERT_TRUE(o.ok()) << o.status();
  const EngineConfig& cfg = o->engine;
  EXPECT_EQ(cfg.plan.MaxUsers(), 5u);
  EXPECT_EQ(cfg.plan.duration_ns(), 60'000'000'000);
  EXPECT_EQ(cfg.think_min_ns, 100'000'000);
  EXPECT_EQ(cfg.think_max_ns, 200'000'000);
  ASSERT_EQ(cfg.requests.size(), 1u);
  EXPECT_EQ(cfg.requests[0].method, "POST");
  EXPECT_EQ(cfg.requests[0].headers,
            (std::vector<std::pair<std::string, std::string>>{{"X-A", "1"}, {"X-B", "two"}}));
  EXPECT_EQ(cfg.requests[0].body, "{}");
  EXPECT_EQ(cfg.requests[0].expect_status, (std::vector<int>{200, 201}));
  EXPECT_EQ(cfg.timeout_ns, 500'000'000);
  EXPECT_EQ(cfg.grace_ns, 0);
  EXPECT_TRUE(cfg.insecure_skip_verify);
  EXPECT_EQ(cfg.ca_file, "/ca.pem");
  EXPECT_EQ(cfg.threads, 4u);
  EXPECT_EQ(cfg.seed, 18446744073709551615u);
  EXPECT_TRUE(o->json);
  EXPECT_TRUE(o->quiet);
}

TEST(BenchFlagsTest, OpenModelAndStages) {
  absl::StatusOr<BenchOptions> o =
      ParseBenchFlags(With({"--rate", "100", "--connections", "20", "--duration", "3s"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->engine.plan.model(), LoadPlan::Model::kOpen);
  EXPECT_EQ(o->engine.plan.TotalArrivals(), 300u);
  EXPECT_EQ(o->engine.connections, 20u);
  // --stages alone: the closed model from 0 users; the duration is the stages'.
  o = ParseBenchFlags(With({"--stages", "1s:10,2s:10"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->engine.plan.model(), LoadPlan::Model::kClosed);
  EXPECT_EQ(o->engine.plan.MaxUsers(), 10u);
  EXPECT_EQ(o->engine.plan.duration_ns(), 3'000'000'000);
  o = ParseBenchFlags(With({"--rate", "0", "--stages", "10s:1000"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->engine.plan.model(), LoadPlan::Model::kOpen);
}

TEST(BenchFlagsTest, HelpNeedsNothingElse) {
  absl::StatusOr<BenchOptions> o = ParseBenchFlags({"-h"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->help);
}

TEST(BenchFlagsTest, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--users", "10", "--duration", "1s"}, "--url: is required"},
      {With({"--duration", "1s"}), "--users/--rate: give exactly one of them"},
      {With({"--users", "5", "--rate", "10", "--duration", "1s"}),
       "--users/--rate: give exactly one of them"},
      {With({"--users", "0", "--duration", "1s"}),
       "--users: must be > 0 (or start a --stages ramp)"},
      {With({"--rate", "0", "--duration", "1s"}), "--rate: must be > 0 (or start a --stages ramp)"},
      {With({"--users", "5"}), "--duration: is required"},
      // The same bounds as a LoadTest's (issue 9: --rate 1e12 spun for hours).
      {With({"--users", "1000001"}), "--users: \"1000001\" is not a count in 0..1000000"},
      {With({"--users", "-1"}), "--users: \"-1\" is not a count in 0..1000000"},
      {With({"--rate", "1e12"}), "--rate: \"1e12\" is more than 1e+07"},
      {With({"--rate", "0", "--stages", "1s:20000000"}),
       "--stages: a target of 2e+07 is more than 1e+07 requests per second"},
      {With({"--spawn-rate", "2000000"}), "--spawn-rate: \"2000000\" is more than 1e+06"},
      {With({"--duration", "2562048h"}),
       "--duration: \"2562048h\" is longer than 168h (7 days), the longest Stampede takes"},
      {With({"--rate", "-5"}), "--rate: \"-5\" is not a number >= 0"},
      {With({"--rate", "nan"}), "--rate: \"nan\" is not a number >= 0"},
      {With({"--spawn-rate", "0"}), "--spawn-rate: \"0\" is not a number > 0"},
      {With({"--rate", "5", "--spawn-rate", "1", "--duration", "1s"}),
       "--spawn-rate: applies to --users only"},
      {With({"--rate", "5", "--duration", "1s", "--think", "1s"}),
       "--think: applies to --users only"},
      {With({"--users", "5", "--duration", "1s", "--connections", "5"}),
       "--connections: applies to --rate only (each user has one connection)"},
      {With({"--users", "5", "--stages", "1s:10", "--spawn-rate", "1"}),
       "--spawn-rate: cannot be combined with --stages"},
      {With({"--think", "1s,2s,3s"}), "--think: want MIN or MIN,MAX"},
      {With({"--think", "2s,1s"}), "--think: MAX is below MIN"},
      {With({"--think", "1"}), "--think: \"1\" has no unit (write 1s or 1ms)"},
      {With({"--stages", "10s"}), "--stages: \"10s\" is not DURATION:TARGET"},
      {With({"--stages", "10s:-1"}), "--stages: \"10s:-1\" is not DURATION:TARGET"},
      {With({"--stages", "0s:5"}), "--stages: \"0s:5\" has no duration"},
      {With({"--duration", "10"}), "--duration: \"10\" has no unit (write 10s or 10ms)"},
      {With({"--duration", "0s"}), "--duration: \"0s\" is not a duration > 0"},
      {With({"--timeout", "0ms"}), "--timeout: \"0ms\" is not a duration > 0"},
      {With({"--grace", "-1s"}), "--grace: \"-1s\" is negative"},
      {With({"--threads", "0"}), "--threads: \"0\" is not a count in 1..1024"},
      {With({"--threads", "1025"}), "--threads: \"1025\" is not a count in 1..1024"},
      {With({"--connections", "0"}), "--connections: \"0\" is not a count in 1..1000000"},
      {With({"--seed", "-1"}), "--seed: \"-1\" is not a number"},
      {With({"--header", "NoColon"}), "--header: \"NoColon\" is not 'Name: value'"},
      {With({"--header", ": v"}), "--header: \": v\" is not 'Name: value'"},
      {With({"--expect-status", "200,99"}), "--expect-status: \"99\" is not a status code"},
      {With({"--insecure=yes"}), "--insecure: \"yes\" is not true or false"},
      {With({"--body"}), "--body: needs a value"},
      {With({"--bogus"}), "--bogus: unknown flag"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<BenchOptions> o = ParseBenchFlags(c.args);
    ASSERT_FALSE(o.ok()) << c.message;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(o.status().message(), c.message);
  }
}

BenchResult ClosedResult() {
  BenchResult r;
  r.url = "http://127.0.0.1:1/";
  r.threads = 2;
  r.max_users = 10;
  r.planned_duration_s = 2;
  r.request_names = {"GET /"};
  r.totals = common::IntervalStats(1);
  common::RequestStats& s = r.totals.requests[0];
  for (int i = 0; i < 99; ++i) s.latency.Record(1000);
  s.latency.Record(2'000'000);
  s.outcomes[0] = 100;
  s.outcomes[static_cast<size_t>(common::Outcome::kTimeout)] = 2;
  s.status_classes[2] = 100;
  r.totals.connections_opened = 10;
  r.elapsed_s = 2;
  r.user_cpu_s = 0.5;
  r.system_cpu_s = 0.25;
  r.busiest_thread = 0.42;
  r.seconds = 2;
  return r;
}

TEST(BenchSummaryTest, TextOfAClosedModelRun) {
  EXPECT_EQ(
      BenchSummaryText(ClosedResult()),
      "\n"
      "  102 requests in 2.00s, 51 req/s, 2 errors\n"
      "  latency          p50 1.00us    p90 1.00us    p99 1.00us    p99.9 2.00ms    max "
      "2.00ms\n"
      "  status: 2xx=100\n"
      "  errors: timeout=2\n"
      "  client cpu: 0.50s user + 0.25s system = 136 req per cpu-second; busiest thread 42%\n");
}

TEST(BenchSummaryTest, TextOfASaturatedOpenModelRun) {
  BenchResult r = ClosedResult();
  r.open = true;
  r.totals.requests[0].service.Record(500);
  r.totals.planned = 104;
  r.totals.late = 3;
  r.totals.requests[0].outcomes[static_cast<size_t>(common::Outcome::kDropped)] = 2;
  r.seconds = 10;
  r.saturated_seconds = 2;
  const std::string text = BenchSummaryText(r);
  EXPECT_NE(text.find("  latency (corr.)  p50 1.00us"), std::string::npos) << text;
  EXPECT_NE(text.find("  service time     p50 500ns"), std::string::npos) << text;
  EXPECT_NE(text.find("  arrivals: 104 planned, 3 late (>1ms), 2 dropped\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  errors: timeout=2 dropped=2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  WARNING: the generator was saturated in 2 of 10 seconds"),
            std::string::npos)
      << text;
}

TEST(BenchSummaryTest, JsonKeysAreTheOnesScriptsRead) {
  const nlohmann::json closed = nlohmann::json::parse(BenchSummaryJson(ClosedResult()));
  std::vector<std::string> keys;
  for (const auto& [key, value] : closed.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "bytes_read", "bytes_written", "connections_opened", "cpu", "duration_s",
                      "errors", "errors_total", "io", "latency_ns", "model", "ok", "protocol",
                      "requests", "rps", "saturated", "status", "threads", "url", "users"}));
  EXPECT_EQ(closed["protocol"], "http1");
  EXPECT_EQ(closed["requests"], 102u);
  EXPECT_EQ(closed["ok"], 100u);
  EXPECT_EQ(closed["errors_total"], 2u);
  EXPECT_EQ(closed["errors"]["timeout"], 2u);
  EXPECT_EQ(closed["status"]["2xx"], 100u);
  EXPECT_EQ(closed["users"], 10u);
  EXPECT_EQ(closed["rps"], 51.0);
  EXPECT_EQ(closed["model"], "closed");
  EXPECT_EQ(closed["latency_ns"]["count"], 100u);
  EXPECT_EQ(closed["latency_ns"]["p50"], 1000u);
  EXPECT_EQ(closed["cpu"]["requests_per_cpu_s"], 136.0);
  EXPECT_EQ(closed["saturated"], false);

  BenchResult h2 = ClosedResult();
  h2.protocol = "h2c";
  h2.max_streams = 10;
  const nlohmann::json h2_json = nlohmann::json::parse(BenchSummaryJson(h2));
  EXPECT_EQ(h2_json["protocol"], "h2c");
  EXPECT_EQ(h2_json["max_streams"], 10u);

  BenchResult r = ClosedResult();
  r.open = true;
  r.connections = 20;
  r.planned_arrivals = 200;
  r.totals.planned = 104;
  r.request_names = {"a", "b"};
  r.totals.requests.resize(2);
  const nlohmann::json open = nlohmann::json::parse(BenchSummaryJson(r));
  EXPECT_TRUE(open["users"].is_null());
  EXPECT_EQ(open["model"], "open");
  EXPECT_TRUE(open.contains("service_time_ns"));
  EXPECT_EQ(open["open"]["target_rate"], 100.0);
  EXPECT_EQ(open["open"]["planned"], 104u);
  EXPECT_EQ(open["open"]["achieved_rate"], 52.0);
  EXPECT_EQ(open["by_request"]["a"]["requests"], 102u);
}

}  // namespace
}  // namespace stampede::agent
