// The reconciler's decisions against an in-memory API, informer caches filled by the test, runs
// held by a registry without gRPC, and a fake clock. No threads, no sleeps: each test changes the
// world, calls Reconcile, and looks at what was written.
#include "controller/operator/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/report.h"
#include "controller/kube/client.h"
#include "controller/operator/kube_launcher.h"
#include "controller/run.h"
#include "stampede/v1/agent.pb.h"
#include "tests/fakes/fake_agents.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_kube.h"

namespace stampede::controller {
namespace {

using testing::FakeApi;
using testing::FakeCache;
using testing::FakeClock;
using testing::FakeConnection;
using Json = kube::Json;

constexpr char kKey[] = "perf/shop";
constexpr char kPath[] = "/apis/stampede.dev/v1alpha1/namespaces/perf/loadtests/shop";
constexpr char kPods[] = "/api/v1/namespaces/perf/pods";
constexpr char kSecret[] = "/api/v1/namespaces/perf/secrets/shop-agent-token";

// Runs as the Controller holds them, minus the gRPC listener and the ticker.
class FakeRuns final : public RunRegistry {
 public:
  std::shared_ptr<Run> StartRun(v1::LoadTest test, std::unique_ptr<AgentLauncher> launcher,
                                const std::string& id, const std::string& token,
                                const RunOptions& options) override {
    if (auto it = runs_.find(id); it != runs_.end()) return it->second;
    ++started_;
    tokens_[id] = token;
    auto run = std::make_shared<Run>(id, std::move(test), token, std::move(launcher), options);
    runs_[id] = run;
    run->Start();
    return run;
  }
  void RemoveRun(const std::string& id) override {
    auto it = runs_.find(id);
    if (it == runs_.end()) return;
    it->second->Abort("the test was removed");
    runs_.erase(it);
  }
  std::shared_ptr<Run> Find(const std::string& id) const {
    auto it = runs_.find(id);
    return it == runs_.end() ? nullptr : it->second;
  }
  int started() const { return started_; }
  std::string token(const std::string& id) const { return tokens_.count(id) ? tokens_.at(id) : ""; }

 private:
  std::map<std::string, std::shared_ptr<Run>> runs_;
  std::map<std::string, std::string> tokens_;
  int started_ = 0;
};

Json LoadTest(const std::string& spec) {
  return {{"apiVersion", "stampede.dev/v1alpha1"},
          {"kind", "LoadTest"},
          {"metadata",
           {{"name", "shop"}, {"namespace", "perf"}, {"uid", "uid-shop"}, {"generation", 1}}},
          {"spec", Json::parse(spec)}};
}

constexpr char kSpec[] =
    R"({"target": {"url": "http://shop.perf.svc:8080"}, "load": {"users": 4}, "duration": "3s", "agents": 2})";

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeReconciler(nullptr); }
  // A reconciler under `policy` (null: none given), counting refusals in refusals_; with
  // `agent_ca`, its agents speak TLS and trust that.
  void MakeReconciler(std::shared_ptr<const common::Policy> policy,
                      const std::string& agent_ca = "") {
    if (reconciler_ != nullptr) reconciler_->DetachAll();
    ReconcilerOptions options;
    if (!agent_ca.empty()) {
      options.pods.tls = true;
      options.agent_ca = [agent_ca] { return agent_ca; };
    }
    options.policy = std::move(policy);
    options.refusals = refusals_;
    options.identity = "op-1";
    options.status_interval = std::chrono::seconds(2);
    options.unschedulable_timeout = std::chrono::seconds(30);
    options.deletion_grace = std::chrono::milliseconds(0);  // the fake agents never answer a stop
    options.run.clock = &clock_;
    options.run.controller_address = "stampede-controller.stampede-system.svc:7070";
    reconciler_ =
        std::make_unique<Reconciler>(ReconcilerWorld{&api_, &loadtests_, &pods_, &runs_}, options);
  }
  void TearDown() override {
    reconciler_->DetachAll();  // the runs need not delete Pods at the end of a test
  }

  // The informers catch up with the API server; the Pods' is trimmed as ReconcileLoop's is, so
  // every test here also checks that the reconciler reads nothing TrimAgentPod drops.
  void Sync() {
    loadtests_.Replace(api_.Objects("/apis/stampede.dev/v1alpha1/namespaces/perf/loadtests"));
    std::vector<Json> pods = api_.Objects(kPods);
    for (Json& pod : pods) TrimAgentPod(pod);
    pods_.Replace(pods);
  }
  absl::Status Reconcile() {
    Sync();
    absl::Status s = reconciler_->Reconcile(kKey);
    Sync();
    return s;
  }
  Json Object() { return api_.Object(kPath).value_or(Json::object()); }
  std::string Phase() { return Object()["status"].value("phase", ""); }
  std::string Reason() { return Object()["status"].value("reason", ""); }
  std::shared_ptr<controller::Run> TheRun() { return runs_.Find(run_id_); }
  std::vector<std::string> EventReasons() {
    std::vector<std::string> out;
    for (const Json& e : api_.Objects("/api/v1/namespaces/perf/events"))
      out.push_back(e.value("reason", ""));
    return out;
  }
  void SetPodStatus(uint32_t index, const Json& status) {
    const std::string path = std::string(kPods) + "/shop-agent-" + std::to_string(index);
    Json pod = api_.Object(path).value();
    pod["status"] = status;
    api_.Put(path, pod);
  }
  // The test's agents connect with the token from the Secret and say Ready: the run starts.
  std::vector<std::shared_ptr<FakeConnection>> ConnectAgents() {
    std::string token;
    EXPECT_TRUE(absl::Base64Unescape(
        api_.Object(kSecret).value()["data"]["token"].get<std::string>(), &token));
    std::vector<std::shared_ptr<FakeConnection>> connections;
    for (uint32_t i = 0; i < 2; ++i) {
      connections.push_back(std::make_shared<FakeConnection>());
      v1::Hello hello;
      hello.set_run(run_id_);
      hello.set_token(token);
      hello.set_index(i);
      hello.set_threads(1);
      std::string why;
      EXPECT_TRUE(TheRun()->OnHello(hello, connections.back(), &why)) << why;
    }
    for (uint32_t i = 0; i < 2; ++i) {
      v1::AgentMessage ready;
      ready.mutable_ready();
      TheRun()->OnMessage(i, ready);
    }
    return connections;
  }
  // What a test still running under an operator that went away leaves in the API: the Running
  // LoadTest with its finalizer, the token Secret and both agent Pods.
  void PutTestOfAnEarlierOperator() {
    Json lt = LoadTest(kSpec);
    lt["metadata"]["finalizers"] = Json::array({kFinalizer});
    lt["status"] = {{"phase", "Running"}, {"reason", "Running"}};
    api_.Put(kPath, lt);
    api_.Put(kSecret, {{"metadata", {{"name", "shop-agent-token"}, {"namespace", "perf"}}},
                       {"data", {{"token", absl::Base64Escape("the-old-token")}}}});
    for (int i = 0; i < 2; ++i) {
      api_.Put(std::string(kPods) + "/shop-agent-" + std::to_string(i),
               {{"metadata",
                 {{"name", "shop-agent-" + std::to_string(i)},
                  {"namespace", "perf"},
                  {"labels", {{kLoadTestLabel, "shop"}, {kAgentIndexLabel, std::to_string(i)}}}}}});
    }
  }
  void AgentSays(uint32_t index, const v1::AgentMessage& m) { TheRun()->OnMessage(index, m); }
  // One second's report of ten successful 5 ms requests.
  static v1::AgentMessage TenRequestsReport() {
    common::IntervalStats stats(1);
    stats.requests[0].latency.RecordN(5'000'000, 10);
    stats.requests[0].outcomes[0] = 10;
    v1::AgentMessage report;
    common::IntervalToReport(stats, report.mutable_report());
    return report;
  }
  void AgentDone(uint32_t index) {
    v1::AgentMessage done;
    done.mutable_done();
    AgentSays(index, done);
  }

  // The agents' run: the uid for a test's first run, RunIdOf for a run asked for by annotation.
  std::string run_id_ = "uid-shop";
  FakeClock clock_;
  FakeApi api_;
  FakeCache loadtests_, pods_;
  FakeRuns runs_;
  std::shared_ptr<PolicyRefusals> refusals_ = std::make_shared<PolicyRefusals>();
  std::unique_ptr<Reconciler> reconciler_;
};

TEST_F(ReconcilerTest, ANewLoadTestGetsItsFinalizerSecretRunPodsAndStatus) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  const Json lt = Object();
  EXPECT_EQ(lt["metadata"]["finalizers"], Json::array({kFinalizer}));
  const std::optional<Json> secret = api_.Object(kSecret);
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ((*secret)["metadata"]["ownerReferences"][0]["uid"], "uid-shop");
  ASSERT_NE(TheRun(), nullptr);
  std::string token;
  ASSERT_TRUE(absl::Base64Unescape((*secret)["data"]["token"].get<std::string>(), &token));
  EXPECT_EQ(token, runs_.token("uid-shop")) << "the agents read the run's token from the Secret";
  EXPECT_EQ(api_.Objects(kPods).size(), 2u);
  EXPECT_TRUE(api_.Object(std::string(kPods) + "/shop-agent-1").has_value());
  EXPECT_EQ(Phase(), "Starting");
  EXPECT_EQ(Reason(), "Launching");
  EXPECT_EQ(EventReasons(), std::vector<std::string>({"Started"}));
  EXPECT_EQ(reconciler_->ActiveKeys(), std::vector<std::string>({kKey}));

  // Nothing changed: nothing is written, and no second run or Pod appears.
  const size_t writes = api_.Writes().size();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.Writes().size(), writes) << "a reconcile of an unchanged world wrote something";
  EXPECT_EQ(runs_.started(), 1);
}

TEST_F(ReconcilerTest, SpecErrorsTheSchemaCannotSeeEndAsFailedInvalidSpec) {
  Json lt = LoadTest(kSpec);
  lt["spec"]["thresholds"] = Json::array({"p95 <"});
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "InvalidSpec");
  EXPECT_NE(Object()["status"].value("message", "").find("spec.thresholds[0]"), std::string::npos);
  EXPECT_EQ(Object()["status"]["observedGeneration"], 1);
  EXPECT_TRUE(api_.Objects(kPods).empty());
  EXPECT_FALSE(api_.Object(kSecret).has_value());
  EXPECT_EQ(runs_.started(), 0);
  EXPECT_EQ(EventReasons(), std::vector<std::string>({"InvalidSpec"}));
  // Terminal phases are absorbing: later reconciles write nothing.
  const size_t writes = api_.Writes().size();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.Writes().size(), writes);
}

TEST_F(ReconcilerTest, AnEditToAFinishedTestIsReportedAndStartsNothing) {
  Json lt = LoadTest(kSpec);
  lt["spec"]["thresholds"] = Json::array({"p95 <"});
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Failed");
  // The user fixes the spec of the finished test: the API server bumps the generation.
  Json edited = Object();
  edited["spec"]["thresholds"] = Json::array({"p95 < 1s"});
  edited["metadata"]["generation"] = 2;
  api_.Put(kPath, edited);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed") << "a finished test never runs again";
  EXPECT_EQ(Object()["status"]["observedGeneration"], 2) << "so GitOps tools do not wait";
  const Json after = Object();
  Json ignored;
  for (const Json& c : after["status"]["conditions"]) {
    if (c["type"] == "SpecChangeIgnored") ignored = c;
  }
  ASSERT_FALSE(ignored.is_null()) << after["status"].dump();
  EXPECT_EQ(ignored["status"], "True");
  EXPECT_EQ(ignored["observedGeneration"], 2);
  EXPECT_NE(ignored.value("message", "").find("new name"), std::string::npos);
  bool stalled = false;
  for (const Json& c : after["status"]["conditions"]) {
    stalled |= c["type"] == "Stalled" && c["status"] == "True";
  }
  EXPECT_TRUE(stalled) << "the other conditions stay";
  EXPECT_EQ(runs_.started(), 0);
  EXPECT_TRUE(api_.Objects(kPods).empty());
  // Once said, nothing more is written.
  const size_t writes = api_.Writes().size();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.Writes().size(), writes);
}

const Json* Condition(const Json& object, const std::string& type) {
  const Json* status = object.contains("status") ? &object["status"] : nullptr;
  if (status == nullptr || !status->contains("conditions")) return nullptr;
  for (const Json& c : (*status)["conditions"]) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

TEST(RunIdOfTest, TheUidAloneForTheFirstRunAndAStableDistinctIdForEachAnnotation) {
  EXPECT_EQ(RunIdOf("uid-shop", ""), "uid-shop");
  EXPECT_EQ(RunIdOf("uid-shop", "2"), RunIdOf("uid-shop", "2")) << "a new leader finds the same";
  EXPECT_NE(RunIdOf("uid-shop", "2"), RunIdOf("uid-shop", "3"));
  EXPECT_EQ(RunIdOf("uid-shop", "release 1.4\n").rfind("uid-shop.", 0), 0u);
  EXPECT_EQ(RunIdOf("uid-shop", "release 1.4\n").size(), std::string("uid-shop.").size() + 16)
      << "any annotation value becomes 16 hex digits";
}

// GitOps: re-applying the same manifest runs nothing; a new stampede.dev/run-id runs it again,
// from a clean status, once the old Pods (whose names the new ones take) are gone; one set while
// a test runs takes effect when it ends.
TEST_F(ReconcilerTest, ANewRunIdAnnotationRunsAFinishedTestAgainFromACleanStatus) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  std::vector<std::shared_ptr<FakeConnection>> agents = ConnectAgents();
  ASSERT_TRUE(Reconcile().ok());
  const v1::AgentMessage report = TenRequestsReport();
  AgentSays(0, report);
  clock_.AdvanceSeconds(4);
  AgentDone(0);
  AgentDone(1);
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Succeeded");
  ASSERT_EQ(Object()["status"]["summary"]["requests"], 10);
  ASSERT_TRUE(Object()["status"].contains("completionTime"));
  EXPECT_FALSE(Object()["status"].contains("runId"));

  // The same manifest applied again (an annotation of another tool changes): nothing happens.
  Json lt = Object();
  lt["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
      "app:stampede.dev/LoadTest:perf/shop";
  api_.Put(kPath, lt);
  size_t writes = api_.Writes().size();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.Writes().size(), writes);
  EXPECT_EQ(runs_.started(), 1);

  // A new run is asked for while an old Pod is still terminating: nothing starts yet.
  const std::string old_pod = std::string(kPods) + "/shop-agent-0";
  api_.Put(old_pod, {{"metadata",
                      {{"name", "shop-agent-0"},
                       {"namespace", "perf"},
                       {"deletionTimestamp", "2026-12-03T10:00:00Z"},
                       {"labels", {{kLoadTestLabel, "shop"}, {kAgentIndexLabel, "0"}}}}}});
  lt = Object();
  lt["metadata"]["annotations"][kRunIdAnnotation] = "second";
  api_.Put(kPath, lt);
  const Json finished = Object();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.started(), 1) << "the new Pods would take the old names";
  EXPECT_EQ(Phase(), "Succeeded");
  // The Pod is gone: the new run starts, and nothing of the old run's status is left.
  ASSERT_TRUE(api_.Delete(old_pod).ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.started(), 2);
  run_id_ = RunIdOf("uid-shop", "second");
  ASSERT_NE(TheRun(), nullptr) << "the new run has its own id";
  Json status = Object()["status"];
  EXPECT_EQ(status.value("phase", ""), "Starting") << status.dump();
  EXPECT_EQ(status.value("runId", ""), "second");
  EXPECT_FALSE(status.contains("completionTime")) << status.dump();
  EXPECT_FALSE(status.contains("startTime")) << status.dump();
  EXPECT_NE(status["summary"].value("requests", 0), 10) << status.dump();
  const Json now = Object();
  EXPECT_EQ(Condition(now, "Complete"), nullptr) << status.dump();
  EXPECT_EQ(Condition(now, "SpecChangeIgnored"), nullptr) << status.dump();
  ASSERT_NE(Condition(now, "Reconciling"), nullptr) << status.dump();
  EXPECT_EQ((*Condition(now, "Reconciling"))["status"], "True");
  EXPECT_EQ(api_.Objects(kPods).size(), 2u);
  EXPECT_TRUE(api_.Object(kSecret).has_value()) << "a fresh token";
  const std::vector<std::string> events = EventReasons();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2], "RunRequested");
  EXPECT_EQ(events.back(), "Started");

  // The informer still holds the finished object from before the reset: the new run goes on.
  loadtests_.Replace({finished});
  ASSERT_TRUE(reconciler_->Reconcile(kKey).ok());
  EXPECT_EQ(reconciler_->ActiveKeys(), std::vector<std::string>({kKey}));
  EXPECT_FALSE(IsTerminal(TheRun()->phase()));

  // Another value while it runs: it takes effect when this run ends.
  agents = ConnectAgents();
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Running");
  lt = Object();
  lt["metadata"]["annotations"][kRunIdAnnotation] = "third";
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.started(), 2);
  EXPECT_EQ(Phase(), "Running");
  clock_.AdvanceSeconds(4);
  AgentDone(0);
  AgentDone(1);
  ASSERT_TRUE(Reconcile().ok());  // the second run's final status
  EXPECT_EQ(Object()["status"].value("runId", ""), "second");
  ASSERT_TRUE(Reconcile().ok());  // its watch event: the third run
  EXPECT_EQ(runs_.started(), 3);
  EXPECT_EQ(Object()["status"].value("runId", ""), "third");
  EXPECT_EQ(Phase(), "Starting");
  run_id_ = RunIdOf("uid-shop", "third");
  EXPECT_NE(TheRun(), nullptr);
  // Applied again with the same value: no fourth run.
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.started(), 3);
  (void)agents;
}

TEST_F(ReconcilerTest, AbortSetBeforeTheStartEndsAbortedWithoutPods) {
  Json lt = LoadTest(kSpec);
  lt["spec"]["abort"] = true;
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Aborted");
  EXPECT_TRUE(api_.Objects(kPods).empty());
}

TEST_F(ReconcilerTest, ASecretTheOperatorMayNotCreateFailsTheTestWithAReason) {
  api_.Put(kPath, LoadTest(kSpec));
  api_.Plant("POST", "/api/v1/namespaces/perf/secrets",
             absl::PermissionDeniedError("secrets is forbidden"));
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "AgentSetupFailed");
  EXPECT_NE(Object()["status"].value("message", "").find("secrets is forbidden"),
            std::string::npos);
  EXPECT_TRUE(api_.Objects(kPods).empty());
}

TEST_F(ReconcilerTest, ATransientErrorIsReturnedSoTheKeyIsTriedAgain) {
  api_.Put(kPath, LoadTest(kSpec));
  api_.Plant("POST", "/api/v1/namespaces/perf/secrets", absl::UnavailableError("503"));
  EXPECT_EQ(Reconcile().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(runs_.started(), 0);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.started(), 1);
  EXPECT_EQ(Phase(), "Starting");
}

TEST_F(ReconcilerTest, AConflictOnTheFinalizerIsRereadAndRetried) {
  api_.Put(kPath, LoadTest(kSpec));
  api_.Plant("PUT", kPath, absl::AbortedError("409"));
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(std::string("PUT ") + kPath), 2u);
  EXPECT_EQ(Object()["metadata"]["finalizers"], Json::array({kFinalizer}));
}

TEST_F(ReconcilerTest, AnUnpullableImageFailsTheTestAndCleansUp) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  SetPodStatus(
      1,
      {{"phase", "Pending"},
       {"containerStatuses",
        {{{"state", {{"waiting", {{"reason", "ErrImagePull"}, {"message", "no such image"}}}}}}}}});
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "ImagePullFailed");
  EXPECT_NE(
      Object()["status"].value("message", "").find("shop-agent-1: ErrImagePull: no such image"),
      std::string::npos);
  EXPECT_TRUE(api_.Objects(kPods).empty()) << "a finished test's Pods are deleted";
  EXPECT_FALSE(api_.Object(kSecret).has_value());
  EXPECT_TRUE(reconciler_->ActiveKeys().empty());
  EXPECT_EQ(EventReasons().back(), "ImagePullFailed");
}

TEST_F(ReconcilerTest, WithTlsTheTokenSecretCarriesTheCaTheAgentsTrust) {
  const std::string ca = "-----BEGIN CERTIFICATE-----\nthe CA\n-----END CERTIFICATE-----\n";
  MakeReconciler(nullptr, ca);
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  const std::optional<Json> secret = api_.Object(kSecret);
  ASSERT_TRUE(secret.has_value());
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape((*secret)["data"]["ca.crt"].get<std::string>(), &decoded));
  EXPECT_EQ(decoded, ca);
  const Json pod = api_.Object(std::string(kPods) + "/shop-agent-0").value();
  bool reads_ca = false;
  for (const Json& env : pod["spec"]["containers"][0]["env"]) {
    reads_ca |=
        env["name"] == "STAMPEDE_CA" &&
        env["valueFrom"]["secretKeyRef"] == Json({{"name", "shop-agent-token"}, {"key", "ca.crt"}});
  }
  EXPECT_TRUE(reads_ca) << pod.dump();
}

// An agent that exits with an error says why on its last log line; the kubelet puts the log's
// tail in the Pod's status (FallbackToLogsOnError) and the test's message carries that line.
TEST_F(ReconcilerTest, AFailedAgentsLastWordsReachTheTestsMessage) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  Json terminated = {{"exitCode", 1}, {"reason", "Error"}};
  terminated["message"] =
      "level=error msg=controller_unverified\nstampede-agent: refusing the controller at c:7070: "
      "its certificate does not verify against the CA we were given (unable to get local issuer "
      "certificate)\n";
  Json container = {{"name", "agent"}, {"state", {{"terminated", terminated}}}};
  SetPodStatus(0, {{"phase", "Failed"}, {"containerStatuses", Json::array({container})}});
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "AgentFailed");
  EXPECT_EQ(Object()["status"].value("message", ""),
            "agent Pod shop-agent-0 failed (exit code 1): stampede-agent: refusing the controller "
            "at c:7070: its certificate does not verify against the CA we were given (unable to "
            "get local issuer certificate); log: kubectl logs -n perf shop-agent-0");
}

TEST_F(ReconcilerTest, OnlyItsOwnPodsFailATest) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  // A failed Pod of another LoadTest in the namespace, and one of this test's name with an
  // agent index past its agents: neither is one of its agents.
  const Json failed = {{"phase", "Failed"}};
  const auto put_pod = [&](const std::string& name, const std::string& test, int index) {
    api_.Put(std::string(kPods) + "/" + name,
             {{"metadata",
               {{"name", name},
                {"namespace", "perf"},
                {"labels", {{kLoadTestLabel, test}, {kAgentIndexLabel, std::to_string(index)}}}}},
              {"status", failed}});
  };
  put_pod("cart-agent-0", "cart", 0);
  put_pod("shop-agent-7", "shop", 7);
  for (int round = 0; round < 3; ++round) ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Starting");
  SetPodStatus(0, failed);  // its own, after rounds that read it as quiet
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "AgentFailed");
  EXPECT_NE(Object()["status"].value("message", "").find("shop-agent-0 failed"), std::string::npos);
}

TEST_F(ReconcilerTest, AnUnschedulablePodFailsTheTestOnlyAfterTheTimeout) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  SetPodStatus(0, {{"phase", "Pending"},
                   {"conditions",
                    {{{"type", "PodScheduled"},
                      {"status", "False"},
                      {"reason", "Unschedulable"},
                      {"message", "0/1 nodes are available: 1 Insufficient cpu."}}}}});
  ASSERT_TRUE(Reconcile().ok());
  clock_.AdvanceSeconds(29);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Starting");
  clock_.AdvanceSeconds(1);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "Unschedulable");
  EXPECT_NE(Object()["status"].value("message", "").find("Insufficient cpu"), std::string::npos);
}

TEST_F(ReconcilerTest, StatusIsWrittenOnAPhaseChangeAtOnceAndOtherwiseAtMostEveryInterval) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  std::vector<std::shared_ptr<FakeConnection>> agents = ConnectAgents();
  const std::string status_write = std::string("PATCH ") + kPath + "/status";
  const size_t before = api_.CountWrites(status_write);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Running") << "a phase change is written at once";
  EXPECT_EQ(api_.CountWrites(status_write), before + 1);

  // A report changes the summary: written once the interval has passed, not before.
  clock_.AdvanceSeconds(1);
  const v1::AgentMessage report = TenRequestsReport();
  AgentSays(0, report);
  AgentSays(1, report);
  TheRun()->Tick();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(status_write), before + 1)
      << "written again within the status interval";
  clock_.AdvanceSeconds(1);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(status_write), before + 2);
  EXPECT_EQ(Object()["status"]["summary"]["requests"], 20);
  // The rps moves until the elapsed time reaches the test's duration (3 s), then nothing does.
  clock_.AdvanceSeconds(5);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(status_write), before + 3);
  clock_.AdvanceSeconds(5);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(status_write), before + 3)
      << "nothing changed, yet the status was written";

  AgentDone(0);
  AgentDone(1);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Succeeded");
  EXPECT_EQ(api_.CountWrites(status_write), before + 4);
  EXPECT_TRUE(api_.Objects(kPods).empty());
  EXPECT_EQ(EventReasons().back(), "Succeeded");
  // Done is absorbing: nothing more is written, nothing restarted.
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.CountWrites(status_write), before + 4);
  EXPECT_EQ(runs_.started(), 1);
  (void)agents;
}

TEST_F(ReconcilerTest, APodDeletedMidRunIsALostAgent) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  std::vector<std::shared_ptr<FakeConnection>> agents = ConnectAgents();
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Running");
  ASSERT_TRUE(api_.Delete(std::string(kPods) + "/shop-agent-1").ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(TheRun()->Status().agents().lost(), 1u);
  EXPECT_EQ(agents[0]->Count(v1::ControllerMessage::kStop), 1u)
      << "onAgentLoss: fail stops the other agent";
  AgentDone(0);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "AgentLost");
  EXPECT_NE(Object()["status"].value("message", "").find("shop-agent-1 is gone"),
            std::string::npos);
}

// A Pod being deleted (deletionTimestamp set, its grace period running) is lost at once, before
// it leaves the cache, and after rounds that read it as quiet.
TEST_F(ReconcilerTest, APodBeingDeletedIsALostAgentBeforeItIsGone) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  std::vector<std::shared_ptr<FakeConnection>> agents = ConnectAgents();
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Running");
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(TheRun()->Status().agents().lost(), 0u);
  const std::string path = std::string(kPods) + "/shop-agent-1";
  Json pod = api_.Object(path).value();
  pod["metadata"]["deletionTimestamp"] = "2026-12-07T10:00:00Z";
  api_.Put(path, pod);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(TheRun()->Status().agents().lost(), 1u);
  AgentDone(0);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_NE(Object()["status"].value("message", "").find("shop-agent-1 was deleted"),
            std::string::npos)
      << Object()["status"].dump();
  (void)agents;
}

TEST_F(ReconcilerTest, SpecAbortAbortsARunningTest) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  std::vector<std::shared_ptr<FakeConnection>> agents = ConnectAgents();
  Json lt = Object();
  lt["spec"]["abort"] = true;
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(agents[1]->Count(v1::ControllerMessage::kStop), 1u);
  AgentDone(0);
  AgentDone(1);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Aborted");
  EXPECT_EQ(Object()["status"].value("message", ""), "spec.abort was set to true");
}

TEST_F(ReconcilerTest, DeletingARunningTestAbortsItWritesTheFinalStatusAndReleasesTheFinalizer) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  ConnectAgents();
  Json lt = Object();
  lt["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:00Z";
  api_.Put(kPath, lt);
  // The agents are told to stop; the final status is written with what the run had.
  ASSERT_TRUE(Reconcile().ok());
  const Json after = Object();
  EXPECT_EQ(after["metadata"]["finalizers"], Json::array());
  EXPECT_EQ(after["status"].value("reason", ""), "Deleted");
  EXPECT_TRUE(api_.Objects(kPods).empty());
  EXPECT_FALSE(api_.Object(kSecret).has_value());
  EXPECT_EQ(TheRun(), nullptr) << "the run is forgotten";
  EXPECT_EQ(EventReasons().back(), "Deleted");
}

TEST_F(ReconcilerTest, ARunningTestFromBeforeARestartIsAdoptedWithItsTokenAndPods) {
  PutTestOfAnEarlierOperator();
  const size_t pod_creates = api_.CountWrites(std::string("POST ") + kPods);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(runs_.token("uid-shop"), "the-old-token") << "the running agents hold the old token";
  EXPECT_EQ(api_.CountWrites(std::string("POST ") + kPods), pod_creates + 2)
      << "each existing Pod is asked for once";
  EXPECT_EQ(api_.Objects(kPods).size(), 2u) << "and none is duplicated";
  EXPECT_EQ(Phase(), "Running") << "an adopted test stays Running while its agents come back";
  EXPECT_EQ(EventReasons(), std::vector<std::string>({"Adopted"}));
}

// An adopted test had started before: an agent that gives up while its new leader waits for it
// (it could not reach any controller within its reconnect window) is a lost agent, so onAgentLoss
// decides, not "AgentFailed" (which means an agent that never started). Found by the e2e test of a
// frozen leader.
TEST_F(ReconcilerTest, AnAdoptedTestsAgentThatGivesUpIsLostNotFailedToStart) {
  PutTestOfAnEarlierOperator();
  ASSERT_TRUE(Reconcile().ok());
  const std::shared_ptr<controller::Run> run = TheRun();
  ASSERT_NE(run, nullptr);
  Json terminated = {{"exitCode", 1}, {"reason", "Error"}};
  terminated["message"] = "level=error msg=controller_gone waited_s=30 stopping=true\n";
  Json container = {{"name", "agent"}, {"state", {{"terminated", terminated}}}};
  SetPodStatus(0, {{"phase", "Failed"}, {"containerStatuses", Json::array({container})}});
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(run->Status().agents().lost(), 1u);
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "AgentLost") << Object()["status"].dump();
}

TEST_F(ReconcilerTest, ALoadTestRemovedWithoutTheFinalizerStopsItsRun) {
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_NE(TheRun(), nullptr);
  ASSERT_TRUE(api_.Delete(kPath).ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(TheRun(), nullptr);
  EXPECT_TRUE(reconciler_->ActiveKeys().empty());
  EXPECT_TRUE(api_.Objects(kPods).empty()) << "its Pods are deleted";
}

}  // namespace
}  // namespace stampede::controller

namespace stampede::controller {
namespace {

constexpr char kScenarioSpec[] = R"({"target": {"url": "http://shop.perf.svc:8080"},
  "load": {"users": 4}, "duration": "3s", "agents": 2,
  "data": {"user": {"secret": {"name": "shop-users", "key": "users.csv"}},
           "code": {"configMap": {"name": "codes", "key": "c.csv"}, "split": "shared"}},
  "scenarios": [{"name": "s", "flow": [{"request": {"path": "/u/{{ user.name }}/{{ code.c }}"}}]}]})";

Json Labelled(Json object, bool opt_in) {
  if (opt_in) object["metadata"]["labels"] = {{"stampede.dev/data", "true"}};
  return object;
}

TEST_F(ReconcilerTest, DataFromASecretAndAConfigMapReachesOnlyItsAgentsAndNeedsTheirOptIn) {
  const std::string secret_path = "/api/v1/namespaces/perf/secrets/shop-users";
  const std::string config_path = "/api/v1/namespaces/perf/configmaps/codes";
  std::string csv;
  absl::Base64Escape("name\nu0\nu1\nu2\nu3\n", &csv);
  const Json secret = {{"metadata", {{"name", "shop-users"}}}, {"data", {{"users.csv", csv}}}};
  const Json config = {{"metadata", {{"name", "codes"}}}, {"data", {{"c.csv", "c\nX\n"}}}};

  // Without the owner's label the Secret is not read: the test fails before any Pod exists.
  api_.Put(secret_path, Labelled(secret, false));
  api_.Put(config_path, Labelled(config, true));
  api_.Put(kPath, LoadTest(kScenarioSpec));
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "InvalidData");
  const std::string message = Object()["status"].value("message", "");
  EXPECT_NE(message.find("spec.data.user.secret: perf/shop-users is not labelled "
                         "stampede.dev/data: \"true\""),
            std::string::npos)
      << message;
  EXPECT_TRUE(api_.Objects(kPods).empty());
  EXPECT_EQ(runs_.started(), 0);
}

TEST_F(ReconcilerTest, LabelledDataIsSplitOverTheAgentsAssignments) {
  const std::string secret_path = "/api/v1/namespaces/perf/secrets/shop-users";
  std::string csv;
  absl::Base64Escape("name\nu0\nu1\nu2\nu3\n", &csv);
  api_.Put(
      secret_path,
      Labelled({{"metadata", {{"name", "shop-users"}}}, {"data", {{"users.csv", csv}}}}, true));
  api_.Put("/api/v1/namespaces/perf/configmaps/codes",
           Labelled({{"metadata", {{"name", "codes"}}}, {"data", {{"c.csv", "c\nX\n"}}}}, true));
  api_.Put(kPath, LoadTest(kScenarioSpec));
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(runs_.started(), 1) << Object().dump();
  const auto agents = ConnectAgents();
  std::vector<std::string> users;
  for (uint32_t i = 0; i < 2; ++i) {
    const auto sent = agents[i]->Sent(v1::ControllerMessage::kAssignment);
    ASSERT_EQ(sent.size(), 1u);
    const v1::Assignment& a = sent[0].assignment();
    ASSERT_EQ(a.data_size(), 2);
    EXPECT_EQ(a.data(0).name(), "code");
    EXPECT_FALSE(a.data(0).local()) << "shared: the whole table";
    EXPECT_EQ(a.data(1).name(), "user");
    EXPECT_TRUE(a.data(1).local());
    EXPECT_EQ(a.data(1).cells_size(), 2) << "agent " << i << ": its 2 users' rows only";
    for (const std::string& c : a.data(1).cells()) users.push_back(c);
    EXPECT_EQ(a.data_seed(),
              agents[0]->Sent(v1::ControllerMessage::kAssignment)[0].assignment().data_seed());
  }
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{"u0", "u1", "u2", "u3"}));
  EXPECT_EQ(Object().dump().find("u1"), std::string::npos) << "no row in the LoadTest";
}

constexpr char kPolicy[] = R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTestPolicy
rules:
  - name: perf
    namespaces: [perf]
    hosts: ["*.perf.svc"]
    limits: {agents: 2, concurrentTests: 1}
)yaml";

std::shared_ptr<const common::Policy> PolicyOf(const char* text) {
  absl::StatusOr<common::Policy> p = common::Policy::Parse(text);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::make_shared<const common::Policy>(p.ok() ? *std::move(p)
                                                       : common::Policy::AllowAll());
}

TEST_F(ReconcilerTest, ATestThePolicyRefusesFailsBeforeAnyPodOrSecretExists) {
  MakeReconciler(PolicyOf(kPolicy));
  Json lt = LoadTest(kSpec);
  lt["spec"]["agents"] = 3;
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "PolicyRefused");
  EXPECT_EQ(Object()["status"].value("message", ""),
            "spec.agents: 3 agents; at most 2 allowed (rule perf)");
  EXPECT_TRUE(api_.Objects(kPods).empty());
  EXPECT_FALSE(api_.Object(kSecret).has_value());
  EXPECT_EQ(runs_.started(), 0);
  EXPECT_EQ(EventReasons(), std::vector<std::string>({"PolicyRefused"}));
  EXPECT_EQ(refusals_->Total(), 1u);
  std::vector<prometheus::MetricFamily> families;
  refusals_->AppendTo(&families);
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, "stampede_policy_refusals_total");
  ASSERT_EQ(families[0].metric.size(), 1u);
  EXPECT_EQ(families[0].metric[0].label[1].value, "perf");    // rule
  EXPECT_EQ(families[0].metric[0].label[2].value, "agents");  // reason
  EXPECT_EQ(families[0].metric[0].label[3].value, "admission");
  // Absorbing, like any terminal phase: nothing more is written or counted.
  const size_t writes = api_.Writes().size();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(api_.Writes().size(), writes);
  EXPECT_EQ(refusals_->Total(), 1u);
  // Nor when the cache has not caught up yet and still shows the test new (a second event for it
  // arrived before the status write's): seen in the e2e test as a refusal counted twice.
  Json stale = api_.Object(kPath).value();
  stale.erase("status");
  loadtests_.Replace({stale});
  ASSERT_TRUE(reconciler_->Reconcile(kKey).ok());
  EXPECT_EQ(api_.Writes().size(), writes);
  EXPECT_EQ(refusals_->Total(), 1u);
  EXPECT_EQ(EventReasons(), std::vector<std::string>({"PolicyRefused"}));
}

TEST_F(ReconcilerTest, TheMetadataServiceIsRefusedWithoutAnyPolicy) {
  Json lt = LoadTest(kSpec);
  lt["spec"]["target"]["url"] = "http://169.254.169.254/latest/meta-data/";
  api_.Put(kPath, lt);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Reason(), "PolicyRefused");
  EXPECT_NE(Object()["status"]
                .value("message", "")
                .find("spec.target.url: address "
                      "169.254.169.254 port 80 is denied"),
            std::string::npos)
      << Object()["status"].dump();
  EXPECT_TRUE(api_.Objects(kPods).empty());
}

TEST_F(ReconcilerTest, ANamespaceAtItsConcurrentTestLimitRefusesTheNextTest) {
  MakeReconciler(PolicyOf(kPolicy));
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(Phase(), "Starting");
  const std::string cart_path = "/apis/stampede.dev/v1alpha1/namespaces/perf/loadtests/cart";
  Json cart = LoadTest(kSpec);
  cart["metadata"]["name"] = "cart";
  cart["metadata"]["uid"] = "uid-cart";
  api_.Put(cart_path, cart);
  Sync();
  ASSERT_TRUE(reconciler_->Reconcile("perf/cart").ok());
  const Json refused = api_.Object(cart_path).value();
  EXPECT_EQ(refused["status"].value("reason", ""), "PolicyRefused");
  EXPECT_NE(refused["status"]
                .value("message", "")
                .find("metadata.namespace: namespace \"perf\" already runs 1 test(s); at most 1"),
            std::string::npos)
      << refused["status"].dump();
  EXPECT_EQ(runs_.started(), 1);
}

TEST_F(ReconcilerTest, AgentsGetTheRulesAndAnAgentsRefusalFailsTheTestAsTargetDenied) {
  MakeReconciler(PolicyOf(kPolicy));
  api_.Put(kPath, LoadTest(kSpec));
  ASSERT_TRUE(Reconcile().ok());
  const auto agents = ConnectAgents();
  const v1::TargetRules rules =
      agents[0]->Sent(v1::ControllerMessage::kAssignment).at(0).assignment().target_rules();
  EXPECT_EQ(rules.rule(), "perf");
  EXPECT_FALSE(rules.restrict_addresses()) << "the rule lists no addresses";
  EXPECT_NE(std::find(rules.deny().begin(), rules.deny().end(), "169.254.0.0/16"),
            rules.deny().end());
  v1::AgentMessage done;
  done.mutable_done()->set_error("target shop.perf.svc: address 169.254.1.1 port 8080 is denied");
  done.mutable_done()->set_reason("TargetDenied");
  AgentSays(0, done);
  AgentDone(1);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(), "Failed");
  EXPECT_EQ(Reason(), "TargetDenied");
  EXPECT_EQ(refusals_->Total(), 1u);
  std::vector<prometheus::MetricFamily> families;
  refusals_->AppendTo(&families);
  EXPECT_EQ(families.at(0).metric.at(0).label[3].value, "agent");
}

}  // namespace
}  // namespace stampede::controller

namespace stampede::controller {
namespace {

// The cache keeps an agent Pod without its spec and managedFields, and with everything the
// reconciler reads.
TEST(TrimAgentPodTest, DropsTheSpecAndManagedFieldsAndKeepsMetadataAndStatus) {
  v1::LoadTest test;
  test.mutable_metadata()->set_name("shop");
  test.mutable_metadata()->set_namespace_("perf");
  test.mutable_spec()->set_agents(3);
  Json pod = AgentPod(test, 2, "uid-shop", "c:7070", AgentPodOptions());
  pod["metadata"]["uid"] = "u-2";
  pod["metadata"]["resourceVersion"] = "41";
  pod["metadata"]["deletionTimestamp"] = "2026-12-06T10:00:00Z";
  pod["metadata"]["managedFields"] =
      Json::array({{{"manager", "stampede"}, {"fieldsV1", {{"f:spec", pod["spec"]}}}}});
  pod["status"] = {{"phase", "Running"},
                   {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}};
  const Json whole = pod;
  TrimAgentPod(pod);
  EXPECT_FALSE(pod.contains("spec"));
  EXPECT_FALSE(pod["metadata"].contains("managedFields"));
  EXPECT_EQ(pod["status"], whole["status"]);
  Json metadata = whole["metadata"];
  metadata.erase("managedFields");
  EXPECT_EQ(pod["metadata"], metadata);
  EXPECT_EQ(LoadTestOfPod(pod), "shop");
  EXPECT_EQ(kube::ObjectKey(pod), "perf/" + AgentPodName("shop", 2));
  EXPECT_LT(pod.dump().size() * 3, whole.dump().size()) << pod.dump();

  Json odd = Json::array({1, 2});  // not an object: left alone, nothing thrown
  TrimAgentPod(odd);
  EXPECT_EQ(odd, Json::array({1, 2}));
}

}  // namespace
}  // namespace stampede::controller
