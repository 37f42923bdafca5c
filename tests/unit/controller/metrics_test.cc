#include "controller/metrics.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/report.h"
#include "common/spec.h"
#include "common/stats.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
// (Inside a TEST body, `Run` names testing::Test::Run.)
using RunList = std::vector<std::shared_ptr<Run>>;

class FakeLauncher : public AgentLauncher {
 public:
  absl::Status Launch(const LaunchRequest&) override { return absl::OkStatus(); }
  void Stop() override {}
  std::string LogLocation(uint32_t) const override { return "nowhere"; }
};

class FakeConnection : public AgentConnection {
 public:
  void Send(const v1::ControllerMessage& message) override { sent.push_back(message); }
  void Close() override { closed = true; }
  std::vector<v1::ControllerMessage> sent;
  bool closed = false;
};

// A request name a label value must escape: quotes, a backslash and a newline.
const char kOddName[] = "a \"q\" \\ c\nd";
const char kOddNameEscaped[] = R"(a \"q\" \\ c\nd)";

constexpr size_t Outcome(common::Outcome o) { return static_cast<size_t>(o); }

v1::LoadTest Test(const std::string& name, const std::vector<std::string>& thresholds = {}) {
  auto test = common::ParseLoadTest(absl::StrCat(R"(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: )",
                                                 name, R"(, namespace: shop}
spec:
  target: {url: "http://127.0.0.1:1"}
  requests:
    - {name: home, path: /}
    - {name: odd, path: /odd}
  load: {users: 4}
  duration: 2s
  agents: 2
)"));
  EXPECT_TRUE(test.ok()) << test.status();
  // Validation keeps control characters out of names, but the exposition must not depend on it.
  test->mutable_spec()->mutable_requests(1)->set_name(kOddName);
  for (const std::string& t : thresholds) test->mutable_spec()->add_thresholds(t);
  return *test;
}

// A run with two fake agents, started (phase Running).
struct StartedRun {
  std::shared_ptr<Run> run;
  std::vector<std::shared_ptr<FakeConnection>> agents;
};

StartedRun Start(const std::string& name, const std::vector<std::string>& thresholds = {}) {
  StartedRun s;
  s.run = std::make_shared<Run>(absl::StrCat("shop-", name, "-1"), Test(name, thresholds), "secret",
                                std::make_unique<FakeLauncher>(), RunOptions{});
  s.run->Start();
  for (uint32_t i = 0; i < 2; ++i) {
    s.agents.push_back(std::make_shared<FakeConnection>());
    v1::Hello hello;
    hello.set_run(s.run->id());
    hello.set_token("secret");
    hello.set_index(i);
    hello.set_threads(1);
    std::string why;
    EXPECT_TRUE(s.run->OnHello(hello, s.agents.back(), &why)) << why;
  }
  // One agent on each I/O backend.
  for (uint32_t i = 0; i < 2; ++i) {
    v1::AgentMessage ready;
    ready.mutable_ready()->set_io_backend(i == 0 ? "epoll" : "uring");
    s.run->OnMessage(i, ready);
  }
  EXPECT_EQ(s.run->phase(), Phase::kRunning);
  return s;
}

// One agent's interval: `ok` responses of home at base_ns, base_ns+1ms, ...; 3 timeouts; odd
// requests answered 500 after 2 ms .. 2 s.
common::IntervalStats Interval(int64_t index, int ok, uint64_t base_ns) {
  common::IntervalStats stats(2);
  stats.index = index;
  common::RequestStats& home = stats.requests[0];
  for (int i = 0; i < ok; ++i) home.latency.Record(base_ns + static_cast<uint64_t>(i) * 1'000'000);
  home.outcomes[Outcome(common::Outcome::kOk)] = ok;
  home.outcomes[Outcome(common::Outcome::kTimeout)] = 3;
  home.status_classes[2] = ok;
  common::RequestStats& odd = stats.requests[1];
  for (uint64_t ns = 2'000'000; ns <= 2'000'000'000; ns *= 10) odd.latency.Record(ns + index);
  odd.outcomes[Outcome(common::Outcome::kUnexpectedStatus)] = odd.latency.count();
  odd.status_classes[5] = odd.latency.count();
  stats.active_users = 2;
  return stats;
}

void Report(Run& run, uint32_t agent, const common::IntervalStats& stats) {
  v1::AgentMessage message;
  common::IntervalToReport(stats, message.mutable_report());
  run.OnMessage(agent, message);
}

std::string Scrape(RunList runs) {
  RunMetrics metrics([runs] { return runs; });
  return SerializeMetrics(metrics.Collect());
}

// Series (name and labels, as written) -> value.
std::map<std::string, double> Parse(const std::string& text) {
  std::map<std::string, double> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    EXPECT_EQ(out.count(line.substr(0, space)), 0u) << "duplicate series " << line;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

std::string Series(const std::string& name, const std::string& labels) {
  return absl::StrCat(name, "{loadtest=\"checkout\",namespace=\"shop\"", labels.empty() ? "" : ",",
                      labels, "}");
}

double Get(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  if (it == m.end()) {
    ADD_FAILURE() << "no series " << series;
    return NAN;
  }
  return it->second;
}

std::string Le(double bound) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", bound);
  return buf;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    started_ = Start("checkout");
    // Two seconds from each agent; the merged histograms are what the metrics must show.
    merged_ = common::IntervalStats(2);
    for (int64_t second = 0; second < 2; ++second) {
      for (uint32_t agent = 0; agent < 2; ++agent) {
        const common::IntervalStats stats =
            Interval(second, 100 + 50 * agent, 300'000 + agent * 7'000 + second);
        Report(*started_.run, agent, stats);
        merged_.Merge(stats);
      }
    }
    started_.run->Tick();  // finalizes the seconds every agent has reported
  }

  StartedRun started_;
  common::IntervalStats merged_{2};
};

TEST_F(MetricsTest, CountersAreTheMergedOutcomesAndStatusClasses) {
  const auto m = Parse(Scrape({started_.run}));
  EXPECT_EQ(Get(m, Series("stampede_requests_total", R"(request="home",outcome="ok")")), 500);
  EXPECT_EQ(Get(m, Series("stampede_requests_total", R"(request="home",outcome="timeout")")), 12);
  EXPECT_EQ(Get(m, Series("stampede_requests_total", R"(request="home",outcome="connect")")), 0);
  EXPECT_EQ(Get(m, Series("stampede_responses_total", R"(request="home",code_class="2xx")")), 500);
  EXPECT_EQ(Get(m, Series("stampede_responses_total", R"(request="home",code_class="5xx")")), 0);
  const std::string odd = absl::StrCat("request=\"", kOddNameEscaped, "\"");
  EXPECT_EQ(Get(m, Series("stampede_requests_total", odd + R"(,outcome="status")")), 16);
  EXPECT_EQ(Get(m, Series("stampede_responses_total", odd + R"(,code_class="5xx")")), 16);
  // Every outcome and class is there from the start, so rate() never sees a series appear.
  size_t outcomes = 0;
  for (const auto& [series, value] : m) {
    outcomes += series.rfind("stampede_requests_total{", 0) == 0;
  }
  EXPECT_EQ(outcomes, 2 * static_cast<size_t>(common::Outcome::kCount));
}

TEST_F(MetricsTest, HistogramBucketsAreCumulativeCountsOfTheMergedHistogram) {
  const auto m = Parse(Scrape({started_.run}));
  for (size_t r = 0; r < 2; ++r) {
    const common::Histogram& h = merged_.requests[r].latency;
    const std::string request = absl::StrCat("request=\"", r == 0 ? "home" : kOddNameEscaped, "\"");
    double previous = 0;
    for (double bound : DurationBucketBounds()) {
      const double count = Get(m, Series("stampede_request_duration_seconds_bucket",
                                         request + ",le=\"" + Le(bound) + "\""));
      EXPECT_EQ(count, h.CountAtOrBelow(static_cast<uint64_t>(std::llround(bound * 1e9)))) << bound;
      EXPECT_GE(count, previous) << bound;
      previous = count;
    }
    EXPECT_EQ(Get(m, Series("stampede_request_duration_seconds_bucket", request + ",le=\"+Inf\"")),
              h.count());
    EXPECT_EQ(Get(m, Series("stampede_request_duration_seconds_count", request)), h.count());
    EXPECT_NEAR(Get(m, Series("stampede_request_duration_seconds_sum", request)), h.sum() / 1e9,
                1e-9);
  }
  // home: 0.3 ms .. 149 ms, so the first bucket holds some but not all.
  const double first =
      Get(m, Series("stampede_request_duration_seconds_bucket", R"(request="home",le="0.0005")"));
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 500);
  // odd: 2 ms, 20 ms, 200 ms, 2 s per agent and second.
  EXPECT_EQ(Get(m, Series("stampede_request_duration_seconds_bucket",
                          absl::StrCat("request=\"", kOddNameEscaped, "\",le=\"0.025\""))),
            8);
}

TEST_F(MetricsTest, QuantilesAreThoseOfTheMergedHistograms) {
  const auto m = Parse(Scrape({started_.run}));
  common::Histogram all;
  for (const common::RequestStats& r : merged_.requests) all.Merge(r.latency);
  struct Case {
    std::string request;
    const common::Histogram* histogram;
  };
  for (const Case& c : {Case{"home", &merged_.requests[0].latency},
                        Case{kOddNameEscaped, &merged_.requests[1].latency}, Case{"*", &all}}) {
    // Both seconds are finalized and inside the 10 s window, so both windows hold everything.
    for (const char* window : {"10s", "total"}) {
      const std::string labels =
          absl::StrCat("request=\"", c.request, "\",window=\"", window, "\"");
      for (const char* q : {"0.5", "0.9", "0.95", "0.99", "0.999"}) {
        const double expected = c.histogram->ValueAtQuantile(std::stod(q)) / 1e9;
        EXPECT_NEAR(Get(m, Series("stampede_request_duration_quantile_seconds",
                                  labels + ",quantile=\"" + q + "\"")),
                    expected, expected * 1e-12)
            << labels << " q=" << q;
      }
      EXPECT_EQ(Get(m, Series("stampede_request_duration_quantile_seconds_count", labels)),
                c.histogram->count());
    }
  }
  // Not an average of the two requests' p99 (which would be ~1 s here).
  EXPECT_LT(Get(m, Series("stampede_request_duration_quantile_seconds",
                          R"(request="*",window="total",quantile="0.5")")),
            0.1);
}

TEST_F(MetricsTest, RunGaugesFollowTheLifecycle) {
  auto m = Parse(Scrape({started_.run}));
  EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Running")")), 1);
  EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Succeeded")")), 0);
  EXPECT_EQ(Get(m, Series("stampede_agents", R"(state="desired")")), 2);
  EXPECT_EQ(Get(m, Series("stampede_agents", R"(state="connected")")), 2);
  EXPECT_EQ(Get(m, Series("stampede_last_interval_seconds", "")), 2);
  EXPECT_EQ(Get(m, Series("stampede_active_users", "")), 4);
  EXPECT_EQ(Get(m, Series("stampede_generator_saturated", "")), 0);
  EXPECT_EQ(Get(m, Series("stampede_agent_io_backend", R"(backend="epoll")")), 1);
  EXPECT_EQ(Get(m, Series("stampede_agent_io_backend", R"(backend="uring")")), 1);
  EXPECT_EQ(Get(m, Series("stampede_requests_per_second", R"(window="10s")")),
            (500 + 12 + 16) / 2.0);
  EXPECT_EQ(m.count(Series("stampede_target_rate_requests_per_second", "")), 0u);  // closed model

  v1::AgentMessage done;
  done.mutable_done();
  for (uint32_t i = 0; i < 2; ++i) started_.run->OnMessage(i, done);
  ASSERT_EQ(started_.run->phase(), Phase::kSucceeded);
  m = Parse(Scrape({started_.run}));
  EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Running")")), 0);
  EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Succeeded")")), 1);
  EXPECT_EQ(Get(m, Series("stampede_agents", R"(state="finished")")), 2);
  EXPECT_EQ(Get(m, Series("stampede_agents", R"(state="connected")")), 0);
}

// What a dashboard draws next to the figures: each rule's bound in the unit of its metric, and
// whether it holds so far (the run's own verdicts).
TEST(RunMetricsTest, ThresholdBoundsAndVerdictsAreExported) {
  StartedRun started =
      Start("checkout", {"p95 < 500ms", "p99.9{home} <= 2s", "error_rate < 1%", "rps > 10"});
  for (uint32_t agent = 0; agent < 2; ++agent)
    Report(*started.run, agent, Interval(0, 100, 300'000));
  started.run->Tick();
  const auto m = Parse(Scrape({started.run}));
  const std::string bound = "stampede_threshold_bound", met = "stampede_threshold_met";
  EXPECT_EQ(Get(m, Series(bound, R"(threshold="p95 < 500ms",metric="p95",request="*")")), 0.5);
  EXPECT_EQ(Get(m, Series(bound, R"(threshold="p99.9{home} <= 2s",metric="p99.9",request="home")")),
            2);
  EXPECT_EQ(Get(m, Series(bound, R"(threshold="error_rate < 1%",metric="error_rate",request="*")")),
            0.01);
  EXPECT_EQ(Get(m, Series(bound, R"(threshold="rps > 10",metric="rps",request="*")")), 10);
  // Every second has timeouts and 500s: the error rate fails, the latencies hold.
  EXPECT_EQ(Get(m, Series(met, R"(threshold="p95 < 500ms")")), 1);
  EXPECT_EQ(Get(m, Series(met, R"(threshold="p99.9{home} <= 2s")")), 1);
  EXPECT_EQ(Get(m, Series(met, R"(threshold="error_rate < 1%")")), 0);
  size_t verdicts = 0;
  for (const auto& [series, value] : m) verdicts += series.rfind(met + "{", 0) == 0 ? 1 : 0;
  EXPECT_EQ(verdicts, 4u) << "one per rule";
  // A test without thresholds has neither family.
  const std::string plain = Scrape({Start("plain").run});
  EXPECT_EQ(plain.find(bound), std::string::npos);
  EXPECT_EQ(plain.find(met), std::string::npos);
}

TEST_F(MetricsTest, LabelValuesAreEscaped) {
  const std::string text = Scrape({started_.run});
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("request=\"", kOddNameEscaped, "\",outcome=\"ok\"} 0\n")));
  // The raw newline never reaches the exposition: every line is a comment or a sample.
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    EXPECT_TRUE(line.rfind("# ", 0) == 0 || line.rfind("stampede_", 0) == 0) << line;
    start = end + 1;
  }
}

TEST_F(MetricsTest, PromtoolAcceptsTheExposition) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool is not installed";
  const std::string path = ::testing::TempDir() + "/metrics.txt";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  StartedRun gated = Start("gated", {"p95 < 500ms", "error_rate < 1%"});
  const std::string text = Scrape({started_.run, gated.run});
  ASSERT_NE(text.find("stampede_threshold_met"), std::string::npos);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  FILE* p = popen(("/usr/bin/promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "");
}

TEST(RunMetricsTest, AnEmptyHistogramHasNoQuantiles) {
  StartedRun s = Start("checkout");
  const auto m = Parse(Scrape({s.run}));
  EXPECT_EQ(Get(m, Series("stampede_request_duration_quantile_seconds_count",
                          R"(request="home",window="total")")),
            0);
  for (const auto& [series, value] : m) {
    EXPECT_THAT(series, Not(HasSubstr("quantile=\""))) << series;
  }
  EXPECT_EQ(
      Get(m, Series("stampede_request_duration_seconds_bucket", R"(request="home",le="+Inf")")), 0);
}

TEST(RunMetricsTest, OfTwoRunsWithOneNameTheActiveOneIsExported) {
  StartedRun finished = Start("checkout");
  finished.run->Abort("test");
  v1::AgentMessage done;
  done.mutable_done();
  for (uint32_t i = 0; i < 2; ++i) finished.run->OnMessage(i, done);
  ASSERT_EQ(finished.run->phase(), Phase::kAborted);
  StartedRun active = Start("checkout");
  for (const RunList& runs :
       {RunList{finished.run, active.run}, RunList{active.run, finished.run}}) {
    const auto m = Parse(Scrape(runs));  // Parse fails the test on a duplicate series
    EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Running")")), 1);
    EXPECT_EQ(Get(m, Series("stampede_phase", R"(phase="Aborted")")), 0);
  }
  // Of two ended runs, the newer (later in the list): here the one that saw traffic.
  for (uint32_t i = 0; i < 2; ++i) Report(*active.run, i, Interval(0, 10, 1'000'000));
  active.run->Abort("test");
  for (uint32_t i = 0; i < 2; ++i) active.run->OnMessage(i, done);
  ASSERT_EQ(active.run->phase(), Phase::kAborted);
  const std::string ok = Series("stampede_requests_total", R"(request="home",outcome="ok")");
  EXPECT_EQ(Get(Parse(Scrape({finished.run, active.run})), ok), 20);
  EXPECT_EQ(Get(Parse(Scrape({active.run, finished.run})), ok), 0);
}

}  // namespace
}  // namespace stampede::controller
