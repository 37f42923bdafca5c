// The controller over real gRPC with agents played by the test: exact merging (the merged
// percentiles are those of the union of every agent's samples), the assignment split, and bad
// input from the network (wrong token, unknown run, taken index, malformed reports).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "common/histogram.h"
#include "common/report.h"
#include "common/spec.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "gtest/gtest.h"
#include "stampede/v1/agent.grpc.pb.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/no_launcher.h"

namespace stampede::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using testing::NoLauncher;

// An agent played by the test over a real gRPC stream.
class FakeAgent {
 public:
  // `small_window`: no BDP probing, a 64 KiB lookahead: what the agent does not read soon fills
  // the transport's window.
  explicit FakeAgent(const std::string& address, bool small_window = false) {
    grpc::ChannelArguments args;
    if (small_window) {
      args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
      args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
    }
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::AgentService::NewStub(channel_);
    stream_ = stub_->Session(&context_);
  }
  bool Send(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Hello(const std::string& run, const std::string& token, uint32_t index,
             uint32_t threads = 1) {
    v1::AgentMessage m;
    m.mutable_hello()->set_run(run);
    m.mutable_hello()->set_token(token);
    m.mutable_hello()->set_index(index);
    m.mutable_hello()->set_threads(threads);
    return Send(m);
  }
  // Reads until a message of the wanted kind (skipping heartbeats); false if the stream ended.
  bool ReadUntil(v1::ControllerMessage::BodyCase kind, v1::ControllerMessage* out) {
    while (stream_->Read(out)) {
      if (out->body_case() == kind) return true;
    }
    return false;
  }
  grpc::Status Finish() {
    stream_->WritesDone();
    v1::ControllerMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    return stream_->Finish();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
};

v1::LoadTest Spec(uint32_t agents, uint32_t users) {
  auto test = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: fake}\nspec:\n"
      "  target: {url: \"http://127.0.0.1:1\"}\n"
      "  requests: [{name: a, path: /a}, {name: b, path: /b}]\n"
      "  load: {users: " +
      std::to_string(users) + "}\n  duration: 3s\n  agents: " + std::to_string(agents) +
      "\n"
      "  thresholds: [\"p99 < 1h\"]\n");
  EXPECT_TRUE(test.ok()) << test.status();
  return *test;
}

class ControllerGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControllerOptions options;
    options.run_defaults.start_delay_ms = 50;
    options.run_defaults.start_timeout_s = 20;
    auto c = Controller::Create(options);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = std::move(*c);
  }
  std::shared_ptr<controller::Run> Start(v1::LoadTest test, NoLauncher** launcher) {
    auto l = std::make_unique<NoLauncher>();
    *launcher = l.get();
    return controller_->StartRun(std::move(test), std::move(l));
  }
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerGrpcTest, MergedResultsEqualTheUnionOfEveryAgentsSamples) {
  constexpr uint32_t kAgents = 4;
  NoLauncher* launcher;
  auto run = Start(Spec(kAgents, 10), &launcher);
  const std::string run_id = launcher->last.run_id, token = launcher->last.token;
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (uint32_t i = 0; i < kAgents; ++i) {
    agents.push_back(std::make_unique<FakeAgent>(controller_->agent_address()));
    ASSERT_TRUE(agents.back()->Hello(run_id, token, i, /*threads=*/i + 1));
  }
  // The assignment splits the 10 users exactly over 1+2+3+4 = 10 streams.
  uint32_t users = 0, expected_offset = 0;
  for (uint32_t i = 0; i < kAgents; ++i) {
    v1::ControllerMessage m;
    ASSERT_TRUE(agents[i]->ReadUntil(v1::ControllerMessage::kAssignment, &m));
    EXPECT_EQ(m.assignment().stream_offset(), expected_offset);
    EXPECT_EQ(m.assignment().stream_count(), 10u);
    expected_offset += i + 1;
    users += m.assignment().users();
    v1::AgentMessage ready;
    ready.mutable_ready();
    ASSERT_TRUE(agents[i]->Send(ready));
  }
  EXPECT_EQ(users, 10u);
  for (auto& a : agents) {
    v1::ControllerMessage m;
    ASSERT_TRUE(a->ReadUntil(v1::ControllerMessage::kStart, &m));
  }
  // Each agent reports 3 intervals of different distributions; the test keeps the union.
  std::mt19937_64 rng(7);
  common::Histogram union_all, union_a;
  uint64_t requests = 0;
  for (uint32_t i = 0; i < kAgents; ++i) {
    std::lognormal_distribution<double> dist(std::log(1e6 * (i + 1)), 0.5 + 0.2 * i);
    for (int64_t interval = 0; interval < 3; ++interval) {
      common::IntervalStats stats(2);
      stats.index = interval;
      for (int n = 0; n < 5000; ++n) {
        const size_t req = n % 3 == 0 ? 1 : 0;
        const uint64_t v = static_cast<uint64_t>(dist(rng));
        stats.requests[req].latency.Record(v);
        ++stats.requests[req].outcomes[0];
        union_all.Record(v);
        if (req == 0) union_a.Record(v);
        ++requests;
      }
      v1::AgentMessage m;
      common::IntervalToReport(stats, m.mutable_report());
      ASSERT_TRUE(agents[i]->Send(m));
    }
    v1::AgentMessage done;
    done.mutable_done();
    ASSERT_TRUE(agents[i]->Send(done));
  }
  for (auto& a : agents) EXPECT_TRUE(a->Finish().ok());
  ASSERT_TRUE(run->WaitDone(10000));
  const controller::Run::Snapshot snap = run->TakeSnapshot(true);
  EXPECT_EQ(snap.phase, Phase::kSucceeded) << snap.status.message();
  common::Histogram merged;
  for (const auto& r : snap.cumulative.requests) merged.Merge(r.latency);
  EXPECT_TRUE(merged == union_all);
  EXPECT_TRUE(snap.cumulative.requests[0].latency == union_a);
  for (double q : {0.5, 0.9, 0.99, 0.999})
    EXPECT_EQ(merged.ValueAtQuantile(q), union_all.ValueAtQuantile(q)) << q;
  EXPECT_EQ(snap.status.summary().requests(), requests);
  ASSERT_EQ(snap.series.size(), 3u);
  uint64_t series_total = 0;
  for (const IntervalPoint& p : snap.series) series_total += p.requests;
  EXPECT_EQ(series_total, requests);
}

TEST_F(ControllerGrpcTest, BadTokenUnknownRunAndTakenIndexAreRejected) {
  NoLauncher* launcher;
  auto run = Start(Spec(2, 2), &launcher);
  {
    FakeAgent a(controller_->agent_address());
    ASSERT_TRUE(a.Hello(launcher->last.run_id, "not-the-token", 0));
    v1::ControllerMessage m;
    EXPECT_FALSE(a.ReadUntil(v1::ControllerMessage::kAssignment, &m));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    FakeAgent a(controller_->agent_address());
    ASSERT_TRUE(a.Hello("no-such-run", launcher->last.token, 0));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    FakeAgent a(controller_->agent_address());
    ASSERT_TRUE(a.Hello(launcher->last.run_id, launcher->last.token, 7));
    grpc::Status s = a.Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("out of range"), std::string::npos) << s.error_message();
  }
  // Wait (on the run's events) until the controller counted it, then try the same index again.
  std::mutex mu;
  std::condition_variable cv;
  bool counted = false;
  run->SetObserver([&](const RunEvent& e) {
    if (e.kind != RunEvent::Kind::kAgents) return;
    std::lock_guard<std::mutex> lock(mu);
    counted = true;
    cv.notify_all();
  });
  FakeAgent first(controller_->agent_address());
  ASSERT_TRUE(first.Hello(launcher->last.run_id, launcher->last.token, 0));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return counted; }));
  }
  run->SetObserver(nullptr);
  ASSERT_EQ(run->Status().agents().connected(), 1u);
  FakeAgent twin(controller_->agent_address());
  ASSERT_TRUE(twin.Hello(launcher->last.run_id, launcher->last.token, 0));
  grpc::Status s = twin.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("already connected"), std::string::npos) << s.error_message();
  run->Abort("test over");
  first.Finish();
  EXPECT_TRUE(run->WaitDone(10000));
  EXPECT_EQ(run->phase(), Phase::kAborted);
}

// The operator removes a run as soon as its final status is written; its series stay on /metrics
// for ended_metrics_ttl so a scrape sees the end, while its agents are turned away at once.
TEST(ControllerEndedRuns, StayOnMetricsForTheTtlAndTheirAgentsAreRejected) {
  testing::FakeClock clock;
  ControllerOptions options;
  options.run_defaults.clock = &clock;
  options.ended_metrics_ttl = seconds(300);
  auto controller = Controller::Create(options);
  ASSERT_TRUE(controller.ok()) << controller.status();
  auto launcher = std::make_unique<NoLauncher>();
  NoLauncher* l = launcher.get();
  auto run = (*controller)->StartRun(Spec(1, 1), std::move(launcher));
  const std::string id = l->last.run_id;
  auto metrics = RunMetrics::ForController(controller->get());
  auto phase_of = [&] {
    const std::string text = SerializeMetrics(metrics->Collect());
    return text.find(R"(stampede_phase{loadtest="fake",namespace="default",phase="Aborted"} 1)") !=
           std::string::npos;
  };
  (*controller)->RemoveRun(id);
  EXPECT_EQ(run->phase(), Phase::kAborted);
  EXPECT_EQ((*controller)->FindRun(id), nullptr);
  EXPECT_TRUE((*controller)->Runs().empty());
  ASSERT_EQ((*controller)->RunsForMetrics().size(), 1u);
  EXPECT_TRUE(phase_of()) << SerializeMetrics(metrics->Collect());
  {
    FakeAgent a((*controller)->agent_address());
    ASSERT_TRUE(a.Hello(id, l->last.token, 0));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  clock.AdvanceSeconds(299);
  EXPECT_TRUE(phase_of());
  clock.AdvanceSeconds(1);
  EXPECT_TRUE((*controller)->RunsForMetrics().empty());
  EXPECT_FALSE(phase_of());
  // With no TTL (stampede serve, stampede run) a removed run is gone from /metrics at once.
  ControllerOptions none;
  auto plain = Controller::Create(none);
  ASSERT_TRUE(plain.ok());
  auto other = std::make_unique<NoLauncher>();
  NoLauncher* o = other.get();
  (*plain)->StartRun(Spec(1, 1), std::move(other));
  (*plain)->RemoveRun(o->last.run_id);
  EXPECT_TRUE((*plain)->RunsForMetrics().empty());
}

TEST_F(ControllerGrpcTest, MalformedReportIsRejectedAndTheRestStillCounts) {
  NoLauncher* launcher;
  auto run = Start(Spec(1, 1), &launcher);
  FakeAgent a(controller_->agent_address());
  ASSERT_TRUE(a.Hello(launcher->last.run_id, launcher->last.token, 0));
  v1::ControllerMessage m;
  ASSERT_TRUE(a.ReadUntil(v1::ControllerMessage::kAssignment, &m));
  v1::AgentMessage ready;
  ready.mutable_ready();
  ASSERT_TRUE(a.Send(ready));
  ASSERT_TRUE(a.ReadUntil(v1::ControllerMessage::kStart, &m));
  common::IntervalStats good(2);
  good.requests[0].latency.Record(1000000);
  good.requests[0].outcomes[0] = 1;
  v1::AgentMessage report;
  common::IntervalToReport(good, report.mutable_report());
  ASSERT_TRUE(a.Send(report));
  // A histogram whose counts do not add up, and a request index that does not exist.
  v1::AgentMessage bad = report;
  bad.mutable_report()->set_interval(1);
  bad.mutable_report()->mutable_requests(0)->mutable_latency()->set_total_count(99);
  ASSERT_TRUE(a.Send(bad));
  v1::AgentMessage bad_index = report;
  bad_index.mutable_report()->set_interval(1);
  bad_index.mutable_report()->mutable_requests(0)->set_request(42);
  ASSERT_TRUE(a.Send(bad_index));
  v1::AgentMessage done;
  done.mutable_done();
  ASSERT_TRUE(a.Send(done));
  a.Finish();
  ASSERT_TRUE(run->WaitDone(10000));
  EXPECT_EQ(run->Status().summary().requests(), 1u);
}

TEST_F(ControllerGrpcTest, AgentsThatNeverConnectFailTheRunInBoundedTime) {
  ControllerOptions options;
  options.run_defaults.start_timeout_s = 1;
  auto c = Controller::Create(options);
  ASSERT_TRUE(c.ok());
  auto launcher = std::make_unique<NoLauncher>();
  auto run = (*c)->StartRun(Spec(2, 2), std::move(launcher));
  ASSERT_TRUE(run->WaitDone(10000));
  const v1::LoadTestStatus st = run->Status();
  EXPECT_EQ(st.phase(), "Failed");
  EXPECT_EQ(st.reason(), "AgentsNotReady");
  EXPECT_NE(st.message().find("0 of 2"), std::string::npos) << st.message();
}

// An agent that stops reading (stuck, or cut off while its connection stays up) must not make the
// controller queue messages for it without end: past the bound its stream is cancelled, counted,
// and the agent is lost. The assignment here is larger than the agent's receive window, so it
// stays in flight while the start and the heartbeats queue behind it.
TEST(ControllerSendQueueTest, AnAgentThatStopsReadingIsCutOffAtTheBoundAndCounted) {
  ControllerOptions options;
  options.max_queued_messages = 2;
  options.run_defaults.start_delay_ms = 50;
  options.run_defaults.heartbeat_timeout_s = 2;  // a heartbeat to each agent every second
  auto c = Controller::Create(options);
  ASSERT_TRUE(c.ok()) << c.status();
  std::unique_ptr<Controller> controller = std::move(*c);
  v1::LoadTest test = Spec(1, 1);
  test.mutable_spec()->set_duration("1h");
  (*test.mutable_spec()->mutable_requests(0)->mutable_headers())["X-Padding"] =
      std::string(3 << 20, 'x');  // 3 MiB: past the window, within the 4 MiB message limit
  auto launcher = std::make_unique<NoLauncher>();
  NoLauncher* l = launcher.get();
  auto run = controller->StartRun(std::move(test), std::move(launcher));
  FakeAgent agent(controller->agent_address(), /*small_window=*/true);
  ASSERT_TRUE(agent.Hello(l->last.run_id, l->last.token, 0));
  v1::AgentMessage ready;
  ready.mutable_ready();
  ASSERT_TRUE(agent.Send(ready));
  // The agent keeps talking (so it is not silent) but never reads.
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (controller->agent_send_overflows() == 0 && std::chrono::steady_clock::now() < deadline) {
    v1::AgentMessage beat;
    beat.mutable_heartbeat();
    if (!agent.Send(beat)) break;  // cancelled: the stream is gone
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(controller->agent_send_overflows(), 1u);
  std::vector<prometheus::MetricFamily> families;
  AppendChannelMetrics(*controller, &families);
  const std::string text = SerializeMetrics(families);
  EXPECT_NE(text.find("stampede_agent_send_overflows_total 1"), std::string::npos) << text;
  // The run lost its only agent.
  ASSERT_TRUE(run->WaitDone(20000));
  const v1::LoadTestStatus status = run->Status();
  EXPECT_EQ(status.phase(), "Failed") << status.reason() << ": " << status.message();
  EXPECT_EQ(status.agents().lost(), 1u) << status.message();
}

}  // namespace
}  // namespace stampede::controller
