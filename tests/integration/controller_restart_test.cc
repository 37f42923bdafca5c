// A controller that goes away mid-test and comes back on the same address (the operator being
// killed and restarted): real agent processes with a reconnect window keep their load going,
// redial, and replay every report; the new controller adopts the running test without a second
// start, and its totals equal what the target served, request for request.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/spec.h"
#include "controller/controller.h"
#include "gtest/gtest.h"
#include "tests/fakes/no_launcher.h"
#include "tests/integration/process.h"

namespace stampede::controller {
namespace {

using std::chrono::seconds;

using testing::NoLauncher;

std::unique_ptr<Controller> NewController(const std::string& listen) {
  ControllerOptions options;
  options.grpc_listen = listen;
  options.abort_runs_on_shutdown = false;  // as if killed: nothing tells the agents to stop
  auto c = Controller::Create(options);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// A two-agent LoadTest with two requests against `url`, defaults applied and validated.
absl::StatusOr<v1::LoadTest> TwoAgentTest(const std::string& name, const std::string& url,
                                          int users, const std::string& duration) {
  auto test = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: " + name +
      "}\nspec:\n  target: {url: \"" + url +
      "\"}\n  requests: [{name: home, path: /}, {name: item, path: /item}]\n"
      "  load: {users: " +
      std::to_string(users) + ", thinkTime: {min: 5ms, max: 15ms}}\n  duration: " + duration +
      "\n  agents: 2\n");
  if (!test.ok()) return test.status();
  common::ApplyDefaults(&*test);
  if (absl::Status s = common::ValidationStatus(*test); !s.ok()) return s;
  return test;
}

// The first controller, on a free port, running `test` as run `id` with a reconnect window.
struct FirstController {
  std::unique_ptr<Controller> controller;
  std::string address;
  RunOptions options;
  std::shared_ptr<Run> run;
};

FirstController StartFirst(const v1::LoadTest& test, const std::string& id,
                           const std::string& token, int reconnect_s) {
  FirstController f;
  f.controller = NewController("127.0.0.1:0");
  if (f.controller == nullptr) return f;
  f.address = "127.0.0.1:" + std::to_string(f.controller->grpc_port());
  f.options = f.controller->run_defaults();
  f.options.agent_reconnect_s = reconnect_s;
  f.options.start_delay_ms = 200;
  f.run = f.controller->StartRun(test, std::make_unique<NoLauncher>(), id, token, f.options);
  return f;
}

// Two real agent processes (one thread each) dialing `address` for run `id`, `extra` flags added.
std::vector<std::unique_ptr<testing::Process>> StartAgents(const std::string& address,
                                                           const std::string& id,
                                                           const std::string& token,
                                                           const std::vector<std::string>& extra) {
  std::vector<std::unique_ptr<testing::Process>> agents;
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> args{testing::AgentBinary(),
                                  "connect",
                                  "--controller",
                                  address,
                                  "--run",
                                  id,
                                  "--token",
                                  token,
                                  "--index",
                                  std::to_string(i),
                                  "--threads",
                                  "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    agents.push_back(std::make_unique<testing::Process>(args));
  }
  return agents;
}

// Issue 9: a refused agent said controller_gone; it says why it was refused and stops, and the
// controller logs an unknown run id too.
TEST(ControllerRestartTest, ARefusedAgentSaysWhyAndStops) {
  testing::TestTarget target;
  auto test = TwoAgentTest("refused", target.Url("/"), 2, "30s");
  ASSERT_TRUE(test.ok()) << test.status();
  FirstController first = StartFirst(*test, "refused-run", "the-token", 0);
  ASSERT_NE(first.controller, nullptr);
  for (const auto& [run, token, reason] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"refused-run", "a-wrong-token", "bad token"},
           {"no-such-run", "the-token", "no test with run id"}}) {
    testing::Process agent({testing::AgentBinary(), "connect", "--controller", first.address,
                            "--run", run, "--token", token, "--index", "0", "--threads", "1"});
    const auto code = agent.Wait(seconds(20));
    ASSERT_TRUE(code.has_value()) << agent.Stderr();
    EXPECT_EQ(*code, 1);
    EXPECT_NE(agent.Stderr().find("msg=rejected"), std::string::npos) << agent.Stderr();
    EXPECT_NE(agent.Stderr().find(reason), std::string::npos) << agent.Stderr();
    EXPECT_EQ(agent.Stderr().find("controller_gone"), std::string::npos) << agent.Stderr();
  }
  first.run->Abort("test over");
}

TEST(ControllerRestartTest, AgentsResumeWithARestartedControllerAndNothingIsLostOrCountedTwice) {
  testing::TestTarget target;
  auto test = TwoAgentTest("restart", target.Url("/"), 6, "7s");
  ASSERT_TRUE(test.ok()) << test.status();

  const std::string id = "restart-run", token = "restart-token";
  FirstController first = StartFirst(*test, id, token, 20);
  ASSERT_NE(first.controller, nullptr);
  const std::string address = first.address;
  const RunOptions options = first.options;
  auto& run = first.run;

  // Wait (on the observer, not a sleep) until two seconds of load are in.
  std::mutex mu;
  std::condition_variable cv;
  int intervals = 0;
  run->SetObserver([&](const RunEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (e.kind == RunEvent::Kind::kInterval) ++intervals;
    cv.notify_all();
  });
  std::vector<std::unique_ptr<testing::Process>> agents =
      StartAgents(address, id, token, {"--reconnect", "20"});
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(20), [&] { return intervals >= 2; }))
        << "no load reached the first controller\n"
        << agents[0]->Stderr();
  }
  run->SetObserver(nullptr);
  const long served_before = target.Served();
  ASSERT_GT(served_before, 0);
  first.controller.reset();  // the listener goes away mid-test; the agents keep running
  run.reset();

  std::unique_ptr<Controller> second = NewController(address);
  ASSERT_NE(second, nullptr);
  // A restarted operator listens before it has read its tests back: agents that redial now are
  // told the run is unknown (NOT_FOUND, code 5) and must keep trying, not give up.
  const auto until = std::chrono::steady_clock::now() + seconds(15);
  while (agents[0]->Stderr().find("stream_ended status=5") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(agents[0]->Stderr().find("stream_ended status=5"), std::string::npos)
      << agents[0]->Stderr();
  auto resumed = second->StartRun(*test, std::make_unique<NoLauncher>(), id, token, options);
  ASSERT_TRUE(resumed->WaitDone(40000)) << "the resumed run did not end";
  const v1::LoadTestStatus status = resumed->Status();
  EXPECT_EQ(status.phase(), "Succeeded") << status.reason() << ": " << status.message();
  EXPECT_EQ(status.agents().finished(), 2u);
  EXPECT_EQ(status.agents().lost(), 0u);
  for (auto& agent : agents) {
    auto code = agent->Wait(seconds(20));
    ASSERT_TRUE(code.has_value()) << "agent still running";
    EXPECT_EQ(*code, 0) << agent->Stderr();
    const std::string log = agent->Stderr();
    EXPECT_EQ(testing::CountOf(log, "assigned run="), 1u)
        << "a second assignment means a second start\n"
        << log;
    EXPECT_GE(testing::CountOf(log, "resumed_session reports_replayed="), 1u) << log;
  }
  // Every request, before and after the restart, counted exactly once.
  const long served = target.Served();
  EXPECT_GT(served, served_before);
  EXPECT_EQ(static_cast<long>(status.summary().requests()), served);
  const Run::Snapshot snap = resumed->TakeSnapshot(true);
  ASSERT_FALSE(snap.series.empty());
  EXPECT_EQ(snap.series.front().index, 0) << "the new controller rebuilt the series from the start";
  uint64_t from_series = 0;
  for (const IntervalPoint& p : snap.series) from_series += p.requests;
  EXPECT_EQ(from_series, status.summary().requests())
      << "replayed reports all landed in their own seconds";
}

// An agent whose kept reports outgrow --replay-log-max folds the oldest into one; a restarted
// controller takes the fold into its totals, which still equal what the target served.
TEST(ControllerRestartTest, FoldedReplayLogsStillGiveExactTotals) {
  testing::TestTarget target;
  auto test = TwoAgentTest("fold", target.Url("/"), 4, "10s");
  ASSERT_TRUE(test.ok()) << test.status();

  const std::string id = "fold-run", token = "fold-token";
  FirstController first = StartFirst(*test, id, token, 3);
  ASSERT_NE(first.controller, nullptr);
  const std::string address = first.address;
  const RunOptions options = first.options;
  // 3 s of reconnect window: the newest 5 reports stay whole, older ones fold past 1 KiB.
  std::vector<std::unique_ptr<testing::Process>> agents =
      StartAgents(address, id, token, {"--reconnect", "3", "--replay-log-max", "1024"});
  // Both agents have folded (they log it) before the controller goes away.
  const auto until = std::chrono::steady_clock::now() + seconds(20);
  auto both_folded = [&] {
    return agents[0]->Stderr().find("replay_log_folded") != std::string::npos &&
           agents[1]->Stderr().find("replay_log_folded") != std::string::npos;
  };
  while (!both_folded() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(both_folded()) << agents[0]->Stderr();
  first.controller.reset();
  first.run.reset();
  std::unique_ptr<Controller> second = NewController(address);
  ASSERT_NE(second, nullptr);
  auto resumed = second->StartRun(*test, std::make_unique<NoLauncher>(), id, token, options);
  ASSERT_TRUE(resumed->WaitDone(40000)) << "the resumed run did not end";
  const v1::LoadTestStatus status = resumed->Status();
  EXPECT_EQ(status.phase(), "Succeeded") << status.reason() << ": " << status.message();
  for (auto& agent : agents) {
    auto code = agent->Wait(seconds(20));
    ASSERT_TRUE(code.has_value()) << "agent still running";
    EXPECT_EQ(*code, 0) << agent->Stderr();
    EXPECT_GE(testing::CountOf(agent->Stderr(), "resumed_session"), 1u) << agent->Stderr();
  }
  EXPECT_EQ(static_cast<long>(status.summary().requests()), target.Served());
  // The folded seconds have no points of their own: the series starts later and sums to less.
  const Run::Snapshot snap = resumed->TakeSnapshot(true);
  ASSERT_FALSE(snap.series.empty());
  EXPECT_GT(snap.series.front().index, 0);
  uint64_t from_series = 0;
  for (const IntervalPoint& p : snap.series) from_series += p.requests;
  EXPECT_LT(from_series, status.summary().requests());
}

}  // namespace
}  // namespace stampede::controller
