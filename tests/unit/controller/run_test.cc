// The run lifecycle as a unit: a fake clock, a fake launcher and agents played by the test through
// fake connections. No threads and no sleeps: each test moves the clock and calls Tick.
#include "controller/run.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/report.h"
#include "common/spec.h"
#include "stampede/v1/agent.pb.h"
#include "tests/fakes/fake_agents.h"
#include "tests/fakes/fake_clock.h"

namespace stampede::controller {
namespace {

using testing::FakeClock;
using testing::FakeConnection;
using testing::FakeLauncher;
using testing::LauncherLog;
using Body = v1::ControllerMessage::BodyCase;

constexpr int64_t kSecond = 1'000'000'000;
constexpr char kToken[] = "secret-token";

v1::LoadTest MakeTest(const std::string& spec) {
  absl::StatusOr<v1::LoadTest> test = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: unit}\nspec:\n"
      "  target: {url: \"http://127.0.0.1:1\", timeout: 2s}\n" +
      spec);
  EXPECT_TRUE(test.ok()) << test.status();
  return test.ok() ? *test : v1::LoadTest();
}

// One agent as the run sees it: its stream, and what it says.
struct Agent {
  uint32_t index = 0;
  uint32_t threads = 1;
  std::shared_ptr<FakeConnection> connection = std::make_shared<FakeConnection>();
};

class RunTest : public ::testing::Test {
 protected:
  // The run's options on the fake clock; `reconnect_s` is the agents' reconnect window.
  RunOptions Options(int reconnect_s = 0) {
    RunOptions o;
    o.clock = &clock_;
    o.controller_address = "127.0.0.1:7070";
    o.agent_reconnect_s = reconnect_s;
    return o;
  }

  // A run of `spec` with `agents` agents, launched (phase Starting) and observed.
  std::unique_ptr<controller::Run> Launch(const std::string& spec, RunOptions options) {
    auto run = std::make_unique<controller::Run>(
        "run-1", MakeTest(spec), kToken, std::make_unique<FakeLauncher>(launcher_), options);
    run->SetObserver([this](const RunEvent& e) {
      if (e.kind == RunEvent::Kind::kAgents) {
        ++agent_events_;
        return;
      }
      events_.push_back(e.kind == RunEvent::Kind::kPhase      ? std::string(PhaseName(e.phase))
                        : e.kind == RunEvent::Kind::kInterval ? "s" + std::to_string(e.point->index)
                                                              : "end");
      if (e.kind == RunEvent::Kind::kInterval) points_.push_back(*e.point);
    });
    run->Start();
    return run;
  }
  std::unique_ptr<controller::Run> Launch(const std::string& spec) {
    return Launch(spec, Options());
  }

  bool Hello(controller::Run& run, Agent& agent, int64_t start_unix_ns = 0, uint32_t replayed = 0,
             const std::string& token = kToken) {
    v1::Hello hello;
    hello.set_run("run-1");
    hello.set_token(token);
    hello.set_index(agent.index);
    hello.set_hostname("host-" + std::to_string(agent.index));
    hello.set_threads(agent.threads);
    hello.set_start_unix_nanos(start_unix_ns);
    hello.set_replayed_reports(replayed);
    why_.clear();
    return run.OnHello(hello, agent.connection, &why_);
  }
  void Ready(controller::Run& run, const Agent& agent) {
    v1::AgentMessage m;
    m.mutable_ready();
    run.OnMessage(agent.index, m);
  }
  // `requests` responses of `latency_ns` each in `interval`, `errors` of them timeouts.
  void Report(controller::Run& run, const Agent& agent, int64_t interval, uint64_t requests,
              uint64_t latency_ns, uint64_t errors = 0) {
    common::IntervalStats stats(run.test().spec().requests_size());
    stats.index = interval;
    common::RequestStats& r = stats.requests[0];
    r.latency.RecordN(latency_ns, requests - errors);
    r.outcomes[static_cast<size_t>(common::Outcome::kOk)] = requests - errors;
    r.outcomes[static_cast<size_t>(common::Outcome::kTimeout)] = errors;
    r.status_classes[2] = requests - errors;
    stats.active_users = 5;
    v1::AgentMessage m;
    common::IntervalToReport(stats, m.mutable_report());
    run.OnMessage(agent.index, m);
  }
  void Done(controller::Run& run, const Agent& agent, const std::string& error = "") {
    v1::AgentMessage m;
    m.mutable_done()->set_error(error);
    run.OnMessage(agent.index, m);
  }
  void Heartbeat(controller::Run& run, const Agent& agent) {
    v1::AgentMessage m;
    m.mutable_heartbeat()->set_unix_nanos(clock_.RealtimeNanos());
    run.OnMessage(agent.index, m);
  }
  // Every agent connects and says Ready: the run broadcasts the start.
  std::vector<Agent> StartAll(controller::Run& run, uint32_t n) {
    std::vector<Agent> agents(n);
    for (uint32_t i = 0; i < n; ++i) {
      agents[i].index = i;
      EXPECT_TRUE(Hello(run, agents[i])) << why_;
    }
    for (Agent& a : agents) Ready(run, a);
    EXPECT_EQ(run.phase(), Phase::kRunning);
    return agents;
  }
  // Moves the clock in steps of 100 ms (as the controller's ticker would) for `ms`.
  void Advance(controller::Run& run, int64_t ms) {
    for (int64_t t = 0; t < ms; t += 100) {
      clock_.AdvanceMs(100);
      run.Tick();
    }
  }
  static std::string Condition(const v1::LoadTestStatus& status, const std::string& type) {
    for (const v1::Condition& c : status.conditions()) {
      if (c.type() == type) return c.status() + "/" + c.reason();
    }
    return "absent";
  }

  FakeClock clock_;
  std::shared_ptr<LauncherLog> launcher_ = std::make_shared<LauncherLog>();
  std::vector<std::string> events_;  // phases, seconds and the end
  int agent_events_ = 0;
  std::vector<IntervalPoint> points_;
  std::string why_;
};

constexpr char kTwoAgents[] = "  load: {users: 10}\n  duration: 3s\n  agents: 2\n";

TEST_F(RunTest, AHealthyRunAssignsExactSharesStartsTogetherAndSucceeds) {
  auto run =
      Launch("  load: {users: 10}\n  duration: 3s\n  agents: 2\n  thresholds: [\"p95 < 50ms\"]\n");
  EXPECT_EQ(launcher_->Launches(), 1);
  EXPECT_EQ(run->phase(), Phase::kStarting);
  EXPECT_EQ(Condition(run->Status(), "AgentsReady"), "False/Launching");
  // What kstatus (Flux, kubectl wait) reads: in progress.
  EXPECT_EQ(Condition(run->Status(), "Reconciling"), "True/Starting");
  EXPECT_EQ(Condition(run->Status(), "Ready"), "False/Starting");
  EXPECT_EQ(Condition(run->Status(), "Stalled"), "False/Starting");

  Agent a, b;
  a.index = 0, a.threads = 1;
  b.index = 1, b.threads = 3;
  ASSERT_TRUE(Hello(*run, a)) << why_;
  EXPECT_EQ(a.connection->Count(Body::kAssignment), 0u) << "assigned before every agent said hello";
  ASSERT_TRUE(Hello(*run, b)) << why_;
  // Users are split by stream (4 in all): 10 = 3 + (2 + 2 + 3)... exactly as the engines split.
  const v1::Assignment first = a.connection->Sent(Body::kAssignment).at(0).assignment();
  const v1::Assignment second = b.connection->Sent(Body::kAssignment).at(0).assignment();
  EXPECT_EQ(first.stream_offset(), 0u);
  EXPECT_EQ(second.stream_offset(), 1u);
  EXPECT_EQ(first.stream_count(), 4u);
  EXPECT_EQ(first.users() + second.users(), 10u);
  EXPECT_EQ(first.users(), 3u);
  EXPECT_EQ(first.heartbeat_timeout_seconds(), 10u);

  Ready(*run, a);
  EXPECT_EQ(a.connection->Count(Body::kStart), 0u);
  Ready(*run, b);
  ASSERT_EQ(a.connection->Count(Body::kStart), 1u);
  ASSERT_EQ(b.connection->Count(Body::kStart), 1u);
  const int64_t start = a.connection->Sent(Body::kStart)[0].start().start_unix_nanos();
  EXPECT_EQ(start, b.connection->Sent(Body::kStart)[0].start().start_unix_nanos());
  EXPECT_EQ(start, clock_.RealtimeNanos() + kSecond) << "the start lies start_delay_ms ahead";
  EXPECT_EQ(run->phase(), Phase::kRunning);
  EXPECT_EQ(Condition(run->Status(), "AgentsReady"), "True/AllAgentsReady");
  EXPECT_EQ(Condition(run->Status(), "Running"), "True/Started");

  clock_.AdvanceSeconds(1);
  for (int64_t s = 0; s < 3; ++s) {
    clock_.AdvanceSeconds(1);
    Report(*run, a, s, 100, 10'000'000);
    run->Tick();
    EXPECT_EQ(points_.size(), static_cast<size_t>(s))
        << "a second closed before every agent reported it";
    Report(*run, b, s, 300, 20'000'000);
    run->Tick();
    ASSERT_EQ(points_.size(), static_cast<size_t>(s + 1));
    EXPECT_EQ(points_.back().requests, 400u);
  }
  Done(*run, a);
  EXPECT_FALSE(run->Done());
  Done(*run, b);
  EXPECT_TRUE(run->Done());
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Succeeded");
  EXPECT_EQ(status.reason(), "Succeeded");
  EXPECT_EQ(status.summary().requests(), 1200u);
  EXPECT_EQ(status.agents().finished(), 2u);
  ASSERT_EQ(status.thresholds_size(), 1);
  EXPECT_TRUE(status.thresholds(0).passed());
  EXPECT_EQ(status.thresholds(0).actual(), "20.0ms");
  EXPECT_EQ(Condition(status, "ThresholdsMet"), "True/ThresholdsMet");
  EXPECT_EQ(Condition(status, "Complete"), "True/Succeeded");
  EXPECT_EQ(Condition(status, "Running"), "False/Succeeded");
  EXPECT_EQ(Condition(status, "Ready"), "True/Succeeded");
  EXPECT_EQ(Condition(status, "Reconciling"), "False/Succeeded");
  EXPECT_EQ(Condition(status, "Stalled"), "False/Succeeded");
  EXPECT_TRUE(a.connection->closed());
  EXPECT_EQ(events_, (std::vector<std::string>{"Starting", "Running", "s0", "s1", "s2", "Succeeded",
                                               "end"}));
  EXPECT_EQ(agent_events_, 4) << "two connected, two finished";
  EXPECT_EQ(launcher_->Stops(), 1) << "the launcher is stopped once the run is over";
  run->Tick();
  EXPECT_EQ(launcher_->Stops(), 1);
}

TEST_F(RunTest, AgentsThatNeverConnectFailTheRunAtTheStartTimeout) {
  RunOptions options = Options();
  options.start_timeout_s = 5;
  auto run = Launch(kTwoAgents, options);
  Agent a;
  ASSERT_TRUE(Hello(*run, a)) << why_;
  Advance(*run, 4900);
  EXPECT_EQ(run->phase(), Phase::kStarting);
  Advance(*run, 200);
  EXPECT_TRUE(a.connection->Count(Body::kStop) == 1) << "the connected agent is told to stop";
  EXPECT_FALSE(run->Done()) << "the connected agent may still say done";
  Done(*run, a);
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Failed");
  EXPECT_EQ(status.reason(), "AgentsNotReady");
  EXPECT_NE(status.message().find("1 of 2 agent(s) connected and 0 ready within 5s"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("fake-log-0"), std::string::npos)
      << "the message says where the log is";
  EXPECT_EQ(status.agents().lost(), 1u);
  EXPECT_EQ(Condition(status, "AgentsReady"), "False/Launching");
  EXPECT_EQ(Condition(status, "Complete"), "True/AgentsNotReady");
  EXPECT_EQ(Condition(status, "ThresholdsMet"), "absent") << "nothing ran, so nothing was judged";
  EXPECT_EQ(events_, (std::vector<std::string>{"Starting", "Failed", "end"}));
}

TEST_F(RunTest, ASilentAgentIsLostAndFailsTheRun) {
  auto run = Launch(kTwoAgents);
  std::vector<Agent> agents = StartAll(*run, 2);
  for (int i = 0; i < 95; ++i) {
    Advance(*run, 100);
    Heartbeat(*run, agents[0]);
  }
  EXPECT_EQ(run->Status().agents().lost(), 0u);
  EXPECT_GE(agents[1].connection->Count(Body::kHeartbeat), 1u) << "the controller beats too";
  Advance(*run, 600);  // agent 1 last heard 10.1 s ago
  v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.agents().lost(), 1u);
  EXPECT_TRUE(agents[1].connection->closed());
  EXPECT_EQ(agents[0].connection->Count(Body::kStop), 1u) << "onAgentLoss: fail stops the others";
  EXPECT_TRUE(agents[0].connection->Sent(Body::kStop)[0].stop().abort());
  Done(*run, agents[0]);
  run->Tick();
  status = run->Status();
  EXPECT_EQ(status.phase(), "Failed");
  EXPECT_EQ(status.reason(), "AgentLost");
  EXPECT_NE(status.message().find("agent 1 (host-1) silent for 10s"), std::string::npos)
      << status.message();
  EXPECT_EQ(Condition(status, "Complete"), "True/AgentLost");
  EXPECT_EQ(Condition(status, "Ready"), "False/Failed");
  EXPECT_EQ(Condition(status, "Reconciling"), "False/Failed");
  EXPECT_EQ(Condition(status, "Stalled"), "True/Failed");
}

TEST_F(RunTest, WithOnAgentLossContinueALostAgentLeavesAPartialSuccess) {
  auto run = Launch("  load: {users: 10}\n  duration: 3s\n  agents: 3\n  onAgentLoss: continue\n");
  std::vector<Agent> agents = StartAll(*run, 3);
  clock_.AdvanceSeconds(2);
  for (const Agent& a : agents) Report(*run, a, 0, 10, 1'000'000);
  run->OnStreamClosed(2, agents[2].connection.get());
  EXPECT_EQ(agents[0].connection->Count(Body::kStop), 0u) << "the others go on";
  Report(*run, agents[0], 1, 10, 1'000'000);
  Report(*run, agents[1], 1, 10, 1'000'000);
  run->Tick();
  EXPECT_EQ(points_.size(), 2u) << "a lost agent's seconds are not waited for";
  Done(*run, agents[0]);
  Done(*run, agents[1]);
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Succeeded");
  EXPECT_EQ(status.reason(), "SucceededPartial");
  EXPECT_TRUE(status.partial());
  EXPECT_EQ(status.agents().lost(), 1u);
  EXPECT_EQ(status.agents().finished(), 2u);
  EXPECT_EQ(status.summary().requests(), 50u);
}

TEST_F(RunTest, AnAgentThatReconnectsWithinTheWindowIsKept) {
  auto run = Launch(kTwoAgents, Options(/*reconnect_s=*/5));
  std::vector<Agent> agents = StartAll(*run, 2);
  const int64_t start = agents[0].connection->Sent(Body::kStart)[0].start().start_unix_nanos();
  clock_.AdvanceSeconds(2);
  Report(*run, agents[0], 0, 10, 1'000'000);
  Report(*run, agents[1], 0, 10, 1'000'000);
  run->OnStreamClosed(1, agents[1].connection.get());
  Advance(*run, 4000);
  EXPECT_EQ(run->Status().agents().lost(), 0u)
      << "within the window it is neither connected nor lost";
  Agent back;
  back.index = 1;
  ASSERT_TRUE(Hello(*run, back, start, /*replayed=*/1)) << why_;
  EXPECT_EQ(back.connection->Count(Body::kAssignment), 0u)
      << "a running agent is not assigned again";
  EXPECT_EQ(back.connection->Count(Body::kStart), 0u) << "nor started again";
  Report(*run, back, 0, 10, 1'000'000);  // its replay: counted once
  Report(*run, agents[0], 1, 10, 1'000'000);
  Report(*run, back, 1, 10, 1'000'000);
  Done(*run, agents[0]);
  Done(*run, back);
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Succeeded") << status.message();
  EXPECT_EQ(status.agents().lost(), 0u);
  EXPECT_EQ(status.summary().requests(), 40u);
}

TEST_F(RunTest, AnAgentThatDoesNotReconnectWithinTheWindowIsLost) {
  auto run = Launch(kTwoAgents, Options(/*reconnect_s=*/5));
  std::vector<Agent> agents = StartAll(*run, 2);
  run->OnStreamClosed(1, agents[1].connection.get());
  Advance(*run, 5000);
  EXPECT_EQ(run->Status().agents().lost(), 0u);
  Advance(*run, 200);
  EXPECT_EQ(run->Status().agents().lost(), 1u);
  Agent late;
  late.index = 1;
  EXPECT_FALSE(
      Hello(*run, late, agents[0].connection->Sent(Body::kStart)[0].start().start_unix_nanos()));
  EXPECT_EQ(why_, "agent 1 already counts as lost");
  Done(*run, agents[0]);
  run->Tick();
  EXPECT_EQ(run->Status().reason(), "AgentLost");
  EXPECT_NE(run->Status().message().find("agent 1 did not reconnect within 5s; log: fake-log-1"),
            std::string::npos)
      << run->Status().message();
}

TEST_F(RunTest, AbortOnFailStopsTheAgentsAtTheFirstFailedThreshold) {
  auto run = Launch(
      "  load: {users: 10}\n  duration: 60s\n  agents: 1\n  abortOnFail: true\n"
      "  thresholds: [\"error_rate < 10%\"]\n");
  std::vector<Agent> agents = StartAll(*run, 1);
  clock_.AdvanceSeconds(2);
  Report(*run, agents[0], 0, 100, 1'000'000, /*errors=*/5);
  run->Tick();
  EXPECT_EQ(agents[0].connection->Count(Body::kStop), 0u) << "5% errors holds";
  clock_.AdvanceSeconds(1);
  Report(*run, agents[0], 1, 100, 1'000'000, /*errors=*/50);
  run->Tick();
  ASSERT_EQ(agents[0].connection->Count(Body::kStop), 1u);
  EXPECT_TRUE(agents[0].connection->Sent(Body::kStop)[0].stop().abort());
  EXPECT_EQ(agents[0].connection->Sent(Body::kStop)[0].stop().reason(),
            "a threshold failed (abortOnFail)");
  Done(*run, agents[0]);
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Failed");
  EXPECT_EQ(status.reason(), "ThresholdsFailed");
  EXPECT_EQ(status.message(), "abortOnFail: error_rate < 10% (actual 27.5%)");
  EXPECT_EQ(Condition(status, "ThresholdsMet"), "False/ThresholdsFailed");
}

TEST_F(RunTest, AgentsStillRunningLongAfterThePlannedEndHitTheDeadline) {
  auto run = Launch("  load: {users: 10}\n  duration: 3s\n  agents: 1\n");
  std::vector<Agent> agents = StartAll(*run, 1);
  // The deadline: start (1 s ahead) + duration 3 s + timeout 2 s + 30 s.
  for (int i = 0; i < 35; ++i) {
    Advance(*run, 1000);
    Heartbeat(*run, agents[0]);
  }
  EXPECT_EQ(agents[0].connection->Count(Body::kStop), 0u);
  Advance(*run, 1100);
  ASSERT_EQ(agents[0].connection->Count(Body::kStop), 1u);
  EXPECT_EQ(agents[0].connection->Sent(Body::kStop)[0].stop().reason(), "deadline exceeded");
  Done(*run, agents[0]);
  run->Tick();
  EXPECT_EQ(run->Status().reason(), "Deadline");
  EXPECT_EQ(run->Status().phase(), "Failed");
}

TEST_F(RunTest, AgentsThatDoNotConfirmAStopWithinTheStopTimeoutAreGivenUp) {
  auto run = Launch(kTwoAgents);
  std::vector<Agent> agents = StartAll(*run, 2);
  clock_.AdvanceSeconds(2);
  run->Abort("stopped by the user");
  EXPECT_EQ(agents[0].connection->Sent(Body::kStop).at(0).stop().reason(), "stopped by the user");
  Done(*run, agents[0]);
  for (int i = 0; i < 9; ++i) {
    Advance(*run, 1000);
    Heartbeat(*run, agents[1]);
  }
  EXPECT_FALSE(run->Done()) << "agent 1 still has time to confirm";
  Advance(*run, 1100);
  ASSERT_TRUE(run->Done());
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Aborted");
  EXPECT_EQ(status.reason(), "Aborted");
  EXPECT_EQ(status.message(), "stopped by the user");
  EXPECT_EQ(status.agents().lost(), 1u);
  EXPECT_TRUE(agents[1].connection->closed());
}

TEST_F(RunTest, AReportForASecondAlreadyClosedStillCountsInTheTotals) {
  auto run = Launch(kTwoAgents);
  std::vector<Agent> agents = StartAll(*run, 2);
  // Start + 1 s, then 4 s: second 0 ended 4 s ago, past the 3 s report grace.
  clock_.AdvanceSeconds(1);
  Report(*run, agents[0], 0, 10, 1'000'000);
  Advance(*run, 3900);
  EXPECT_TRUE(points_.empty()) << "second 0 waits for agent 1 within the grace period";
  for (const Agent& a : agents) Heartbeat(*run, a);
  Advance(*run, 200);
  ASSERT_EQ(points_.size(), 1u) << "closed without agent 1 after the grace period";
  EXPECT_EQ(points_[0].requests, 10u);
  Report(*run, agents[1], 0, 7, 1'000'000);
  EXPECT_EQ(run->Status().summary().requests(), 17u) << "the late report is in the totals";
  for (const Agent& a : agents) Done(*run, a);
  run->Tick();
  EXPECT_EQ(run->Status().summary().requests(), 17u);
  EXPECT_EQ(run->TakeSnapshot(true).series.at(0).requests, 10u)
      << "the closed second keeps its point";
}

// A saturated server answers the requests queued at the end during the drain: they count in the
// last stage, and so do the drain's seconds in its rate, which otherwise showed more than the
// server can do (the Django example's sync workers read 85 req/s against a 52 req/s capacity).
TEST_F(RunTest, TheLastStagesRateCountsTheDrainSecondsWhoseRequestsItHolds) {
  auto run = Launch(
      "  load: {users: 0, stages: [{duration: 1s, target: 10}, {duration: 1s, target: 10}]}\n");
  std::vector<Agent> agents = StartAll(*run, 1);
  for (int64_t second = 0; second < 4; ++second) {  // seconds 2 and 3 are the drain
    clock_.AdvanceSeconds(1);
    Report(*run, agents[0], second, 10, 1'000'000);
    Advance(*run, 100);
  }
  Done(*run, agents[0]);
  run->Tick();
  ASSERT_EQ(run->phase(), Phase::kSucceeded);
  const v1::LoadTestStatus status = run->Status();
  ASSERT_EQ(status.stages_size(), 2);
  EXPECT_EQ(status.stages(0).summary().requests(), 10u);
  EXPECT_DOUBLE_EQ(status.stages(0).summary().rps(), 10.0);
  EXPECT_EQ(status.stages(1).summary().requests(), 30u) << "its second and the drain's two";
  EXPECT_DOUBLE_EQ(status.stages(1).summary().rps(), 10.0) << "30 requests over 3 s, not 1 s";
}

TEST_F(RunTest, ARestartedControllerAdoptsRunningAgentsWithoutASecondStart) {
  auto run = Launch(kTwoAgents, Options(/*reconnect_s=*/10));
  EXPECT_EQ(run->phase(), Phase::kStarting);
  // The agents started 2.5 s ago, under the previous controller, which saw 2 seconds of reports.
  const int64_t start = clock_.RealtimeNanos() - 2500LL * 1'000'000;
  Agent a, b;
  a.index = 0;
  b.index = 1;
  ASSERT_TRUE(Hello(*run, a, start, /*replayed=*/2)) << why_;
  EXPECT_EQ(run->phase(), Phase::kRunning) << "the first resumed agent brings the start";
  EXPECT_EQ(a.connection->Count(Body::kAssignment) + a.connection->Count(Body::kStart), 0u);
  Report(*run, a, 0, 10, 1'000'000);
  Report(*run, a, 1, 10, 1'000'000);
  // Seconds 0 and 1 are past the report grace, but agent b has not come back yet: they stay open.
  Advance(*run, 3000);
  EXPECT_TRUE(points_.empty()) << "closed while an agent was still coming back with its reports";
  ASSERT_TRUE(Hello(*run, b, start, /*replayed=*/2)) << why_;
  Report(*run, b, 0, 20, 1'000'000);
  run->Tick();
  ASSERT_EQ(points_.size(), 1u);
  EXPECT_EQ(points_[0].requests, 30u);
  Report(*run, b, 1, 20, 1'000'000);
  for (const Agent* agent : {&a, &b}) Done(*run, *agent);
  run->Tick();
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Succeeded") << status.message();
  EXPECT_EQ(status.summary().requests(), 60u);
  EXPECT_EQ(status.start_time(), Rfc3339(start));
  Agent stranger;
  stranger.index = 1;
  EXPECT_FALSE(Hello(*run, stranger, start + 1));
  EXPECT_EQ(events_.front(), "Starting");
  EXPECT_EQ(events_.at(1), "Running");
}

TEST_F(RunTest, AResumingAgentFromAnotherStartIsRejected) {
  auto run = Launch(kTwoAgents, Options(/*reconnect_s=*/10));
  Agent a, b;
  a.index = 0;
  b.index = 1;
  ASSERT_TRUE(Hello(*run, a, 1000, 0)) << why_;
  EXPECT_FALSE(Hello(*run, b, 2000, 0));
  EXPECT_EQ(why_, "agent 1 started at another time than this test");
}

TEST_F(RunTest, HelloIsRejectedForABadTokenAnIndexOutOfRangeOrATakenIndex) {
  auto run = Launch(kTwoAgents);
  Agent a;
  EXPECT_FALSE(Hello(*run, a, 0, 0, "wrong"));
  EXPECT_EQ(why_, "bad token");
  Agent far;
  far.index = 2;
  EXPECT_FALSE(Hello(*run, far));
  EXPECT_EQ(why_, "index 2 out of range (2 agents)");
  ASSERT_TRUE(Hello(*run, a));
  Agent twin;
  EXPECT_FALSE(Hello(*run, twin));
  EXPECT_EQ(why_, "agent 0 is already connected");
}

TEST_F(RunTest, AnAgentThatLosesItsStreamBeforeTheStartGetsTheSameShareAgain) {
  auto run = Launch(kTwoAgents, Options(/*reconnect_s=*/5));
  Agent a, b;
  a.index = 0;
  b.index = 1;
  ASSERT_TRUE(Hello(*run, a));
  ASSERT_TRUE(Hello(*run, b));
  Ready(*run, a);
  run->OnStreamClosed(1, b.connection.get());
  Agent again;
  again.index = 1;
  ASSERT_TRUE(Hello(*run, again)) << why_;
  ASSERT_EQ(again.connection->Count(Body::kAssignment), 1u);
  EXPECT_EQ(again.connection->Sent(Body::kAssignment)[0].assignment().stream_offset(),
            b.connection->Sent(Body::kAssignment)[0].assignment().stream_offset());
  Ready(*run, again);
  EXPECT_EQ(run->phase(), Phase::kRunning);
}

TEST_F(RunTest, AnAgentReportingAnErrorInsteadOfDoneFailsTheRunBeforeTheStart) {
  auto run = Launch(kTwoAgents);
  Agent a, b;
  a.index = 0;
  b.index = 1;
  ASSERT_TRUE(Hello(*run, a));
  ASSERT_TRUE(Hello(*run, b));
  Done(*run, b, "spec.target.url: cannot resolve");
  EXPECT_EQ(a.connection->Count(Body::kStop), 1u);
  Done(*run, a);
  run->Tick();
  EXPECT_EQ(run->Status().phase(), "Failed");
  EXPECT_EQ(run->Status().reason(), "AgentFailed") << "lost before the start";
  EXPECT_EQ(run->Status().message(), "agent 1 failed: spec.target.url: cannot resolve");
}

TEST_F(RunTest, ALauncherErrorFailsTheRunAtOnce) {
  {
    common::MutexLock lock(&launcher_->mu);
    launcher_->answer = absl::UnavailableError("no such image");
  }
  auto run = Launch(kTwoAgents);
  EXPECT_TRUE(run->Done());
  EXPECT_EQ(run->Status().reason(), "LaunchFailed");
  EXPECT_EQ(run->Status().message(), "no such image");
  run->Tick();
  EXPECT_EQ(events_, (std::vector<std::string>{"Starting", "Failed", "end"}));
}

TEST_F(RunTest, FailFromTheOperatorEndsTheRunWithItsReason) {
  auto run = Launch(kTwoAgents);
  run->Fail("ImagePullFailed", "agent Pod unit-agent-0: ErrImagePull");
  EXPECT_TRUE(run->Done()) << "no agent connected, so none has to confirm";
  EXPECT_EQ(run->Status().reason(), "ImagePullFailed");
  EXPECT_EQ(Condition(run->Status(), "Complete"), "True/ImagePullFailed");
}

}  // namespace
}  // namespace stampede::controller
