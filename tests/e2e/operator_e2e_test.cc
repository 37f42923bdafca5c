// `stampede operator` against a real control plane (kube-apiserver, scheduler, garbage collector,
// etcd) whose Pods stampede-test-node runs as real containers of the agent image (as local
// processes with STAMPEDE_E2E_PROCESS_MODE=1): LoadTests applied with kubectl run on agent Pods
// that dial the operator on 127.0.0.1 and load the test target, also on 127.0.0.1. Each test states
// one promise of the operator and checks it from the outside (kubectl, the API, the target's own
// count), never through the operator's internals.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "controller/operator/certificates.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/grafana/dashboard_queries.h"
#include "tests/integration/process.h"

namespace stampede::e2e {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::string Dir(const std::string& path) { return path.substr(0, path.rfind('/')); }

using testing::WaitUntil;

class OperatorE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Cluster::Options options;
    options.node_bin_dir = Dir(testing::AgentBinary());
    // Agent Pods name the agent image: with the images loaded they run as real containers.
    // STAMPEDE_E2E_PROCESS_MODE=1 runs them as processes instead (no root, no images).
    const char* process_mode = std::getenv("STAMPEDE_E2E_PROCESS_MODE");
    if (process_mode == nullptr || std::string(process_mode) != "1") {
      options.node_image_archives = testing::ImageArchives();
      const std::string problem = testing::ImageArchivesProblem();
      ASSERT_TRUE(problem.empty()) << problem << " (or set STAMPEDE_E2E_PROCESS_MODE=1)";
    }
    options.crd_files = {std::string(STAMPEDE_SOURCE_DIR) +
                         "/deploy/crd/loadtests.stampede.dev.yaml"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    target_ = new testing::TestTarget();
    grpc_port_ = testing::FreeLoopbackPort();
    std::ofstream(cluster_->dir() + "/ns.yaml")
        << "apiVersion: v1\nkind: Namespace\nmetadata: {name: stampede-system}\n";
    const CommandResult ns = cluster_->Kubectl({"apply", "-f", cluster_->dir() + "/ns.yaml"});
    ASSERT_EQ(ns.exit_code, 0) << ns.ToString();
  }
  static void TearDownTestSuite() {
    operator_.reset();
    standby_.reset();
    delete target_;
    target_ = nullptr;
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    EnsureOperator();
    testing::HttpGet(target_->Url("/stats/reset"));
  }

  // An operator replica on the agents' port, leading (started when none runs).
  // `lease` and `renew`: --lease-duration and --renew-deadline.
  static std::unique_ptr<testing::Process> StartOperator(const std::string& identity, int grpc_port,
                                                         const std::string& lease = "6s",
                                                         const std::string& renew = "4s",
                                                         const std::string& extra = "") {
    std::vector<std::string> argv{testing::ControllerBinary(),
                                  "operator",
                                  "--kubeconfig",
                                  cluster_->admin_kubeconfig(),
                                  "--grpc-listen=127.0.0.1:" + std::to_string(grpc_port),
                                  "--advertise-address=127.0.0.1:" + std::to_string(grpc_port),
                                  "--metrics-listen=127.0.0.1:0",
                                  "--leader-elect",
                                  "--lease-namespace=stampede-system",
                                  "--identity=" + identity,
                                  "--lease-duration=" + lease,
                                  "--renew-deadline=" + renew,
                                  "--retry-period=1s",
                                  "--agent-reconnect=30s",
                                  "--status-interval=1s",
                                  "--unschedulable-timeout=3s"};
    if (!extra.empty()) argv.push_back(extra);
    return std::make_unique<testing::Process>(argv);
  }
  void EnsureOperator() {
    if (operator_ != nullptr && !operator_->Wait(milliseconds(0)).has_value()) return;
    operator_ = StartOperator("op-" + std::to_string(++generation_), grpc_port_);
    ASSERT_TRUE(WaitUntil(seconds(30), [] {
      return operator_->Stderr().find("msg=reconciling") != std::string::npos;
    })) << operator_->Stderr();
  }

  // The test target's URL unless `url` is given.
  std::string Apply(const std::string& name, const std::string& spec, const std::string& url = "") {
    const std::string file = cluster_->dir() + "/" + name + ".yaml";
    std::ofstream(file) << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: "
                        << name << ", namespace: default}\nspec:\n  target: {url: \""
                        << (url.empty() ? target_->Url("/") : url) << "\"}\n"
                        << spec;
    const CommandResult r = cluster_->Kubectl({"apply", "-f", file});
    EXPECT_EQ(r.exit_code, 0) << r.ToString();
    return file;
  }
  json Get(const std::string& name) {
    auto lt =
        cluster_->client().Get("/apis/stampede.dev/v1alpha1/namespaces/default/loadtests/" + name);
    return lt.ok() ? *lt : json();
  }
  std::string Phase(const std::string& name) {
    json lt = Get(name);
    return lt.is_object() && lt.contains("status") ? lt["status"].value("phase", "") : "";
  }
  std::vector<json> Pods(const std::string& name) {
    auto list =
        cluster_->client().List("/api/v1/namespaces/default/pods", "stampede.dev/loadtest=" + name);
    return list.ok() ? (*list)["items"].get<std::vector<json>>() : std::vector<json>();
  }
  // Running, with requests counted: the load is on.
  bool WaitRunningUnderLoad(const std::string& name) {
    return WaitUntil(seconds(60), [&] {
      const json lt = Get(name);
      return lt.contains("status") && lt["status"].value("phase", "") == "Running" &&
             lt["status"]["summary"].value("requests", uint64_t{0}) > 0;
    });
  }
  bool WaitPhase(const std::string& name, const std::set<std::string>& phases, seconds timeout) {
    return WaitUntil(timeout, [&] { return phases.count(Phase(name)) != 0; });
  }
  // Where the leading operator serves /metrics (it binds port 0 and logs the port).
  static int MetricsPort() {
    const std::string log = operator_->Stderr();
    const size_t at = log.find("metrics_port=");
    return at == std::string::npos ? 0 : std::atoi(log.c_str() + at + 13);
  }
  std::string Diagnose(const std::string& name) {
    return "LoadTest: " + Get(name).dump(1) + "\noperator log:\n" + operator_->Stderr() + "\n" +
           cluster_->Logs(1500);
  }

  static Cluster* cluster_;
  static testing::TestTarget* target_;
  static int grpc_port_;
  static int generation_;
  static std::unique_ptr<testing::Process> operator_, standby_;
};

Cluster* OperatorE2eTest::cluster_ = nullptr;
testing::TestTarget* OperatorE2eTest::target_ = nullptr;
int OperatorE2eTest::grpc_port_ = 0;
int OperatorE2eTest::generation_ = 0;
std::unique_ptr<testing::Process> OperatorE2eTest::operator_, OperatorE2eTest::standby_;

TEST_F(OperatorE2eTest, AppliedLoadTestSucceedsWithEveryRequestTheTargetServed) {
  Apply("basic",
        "  requests: [{name: home, path: /}, {name: hello, path: /hello}]\n"
        "  load: {users: 4, thinkTime: {min: 5ms, max: 20ms}}\n  duration: 4s\n  agents: 2\n"
        "  thresholds: [\"p99 < 5s\", \"error_rate < 1%\"]\n");
  // The way CI waits for a test.
  const CommandResult wait = cluster_->Kubectl(
      {"wait", "--for=condition=Complete", "loadtest/basic", "--timeout=90s"}, seconds(100));
  ASSERT_EQ(wait.exit_code, 0) << wait.ToString() << "\n" << Diagnose("basic");
  // What Flux and `kubectl wait --for=condition=Ready` read (kstatus).
  const CommandResult ready = cluster_->Kubectl(
      {"wait", "--for=condition=Ready", "loadtest/basic", "--timeout=10s"}, seconds(20));
  EXPECT_EQ(ready.exit_code, 0) << ready.ToString();
  const json lt = Get("basic");
  const json& status = lt["status"];
  EXPECT_EQ(status.value("phase", ""), "Succeeded") << Diagnose("basic");
  EXPECT_EQ(status["agents"].value("desired", 0), 2);
  EXPECT_EQ(status["agents"].value("finished", 0), 2);
  EXPECT_EQ(status["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()))
      << "every request the target served, counted once";
  EXPECT_GT(status["summary"].value("requests", uint64_t{0}), 0u);
  EXPECT_FALSE(status["summary"].value("p95", "").empty());
  EXPECT_EQ(status["thresholds"].size(), 2u);
  EXPECT_EQ(status.value("observedGeneration", 0), lt["metadata"].value("generation", -1));
  // kubectl get shows the columns people watch.
  const CommandResult get = cluster_->Kubectl({"get", "lt", "basic"});
  EXPECT_NE(get.out.find("Succeeded"), std::string::npos) << get.ToString();
  EXPECT_NE(get.out.find("P95"), std::string::npos) << get.ToString();
  // Cleaned up: no Pods, no Secret; the finalizer stays until the LoadTest is deleted.
  EXPECT_TRUE(WaitUntil(seconds(20), [&] { return Pods("basic").empty(); })) << Diagnose("basic");
  EXPECT_NE(cluster_->Kubectl({"get", "secret", "basic-agent-token"}).exit_code, 0);
  // Events for the main transitions.
  const CommandResult events = cluster_->Kubectl(
      {"get", "events", "--field-selector", "involvedObject.name=basic", "-o", "json"});
  EXPECT_NE(events.out.find("\"Started\""), std::string::npos) << events.ToString();
  EXPECT_NE(events.out.find("\"Succeeded\""), std::string::npos) << events.ToString();
  // No writes once nothing changes (a hot loop would bump the resourceVersion): touch the finished
  // test so the operator reconciles it, then apply a test the operator must answer (an invalid
  // one: it fails at once, with no Pods). Events reach the operator in order, so once that answer
  // is in, the touched test was reconciled too, and must not have been written.
  ASSERT_EQ(cluster_->Kubectl({"annotate", "lt", "basic", "touched=1"}).exit_code, 0);
  const std::string rv = Get("basic")["metadata"].value("resourceVersion", "");
  Apply("basic-sentinel", "  load: {users: 1}\n  duration: 1s\n  thresholds: [\"p95 <\"]\n");
  ASSERT_TRUE(WaitPhase("basic-sentinel", {"Failed"}, seconds(30))) << Diagnose("basic-sentinel");
  EXPECT_EQ(Get("basic")["metadata"].value("resourceVersion", ""), rv)
      << "the operator keeps writing a finished test";
  cluster_->Kubectl({"delete", "lt", "basic-sentinel", "--timeout=30s"});
  // An edit to the finished test (as a GitOps tool would apply one) starts nothing; it is said by
  // a condition, and observedGeneration keeps up.
  ASSERT_EQ(
      cluster_
          ->Kubectl({"patch", "lt", "basic", "--type=merge", "-p", R"({"spec":{"duration":"5s"}})"})
          .exit_code,
      0);
  EXPECT_TRUE(WaitUntil(seconds(20), [&] {
    const json edited = Get("basic");
    return edited["status"].value("observedGeneration", 0) ==
           edited["metadata"].value("generation", -1);
  })) << Diagnose("basic");
  const CommandResult ignored = cluster_->Kubectl(
      {"wait", "--for=condition=SpecChangeIgnored", "loadtest/basic", "--timeout=10s"},
      seconds(20));
  EXPECT_EQ(ignored.exit_code, 0) << ignored.ToString();
  EXPECT_EQ(Phase("basic"), "Succeeded");
  EXPECT_TRUE(Pods("basic").empty());
  ASSERT_EQ(cluster_->Kubectl({"delete", "lt", "basic", "--timeout=30s"}).exit_code, 0);
}

// Promise: agents reach the operator only over TLS, and an agent refuses an operator whose
// certificate its CA does not sign. The operator keeps its CA in a Secret of its namespace and
// hands each test's agents that CA in the test's token Secret; here someone planted that Secret
// first, with another CA: the agents refuse to talk, the Pod's status says why, the test fails
// with that line, and no request reaches the target.
TEST_F(OperatorE2eTest, AgentsRefuseAnOperatorTheirCaDoesNotVouchFor) {
  EXPECT_NE(operator_->Stderr().find("agent_channel=tls"), std::string::npos)
      << operator_->Stderr();
  auto ca = cluster_->client().Get("/api/v1/namespaces/stampede-system/secrets/stampede-agent-ca");
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_TRUE((*ca)["data"].contains("ca.crt"));
  EXPECT_TRUE((*ca)["data"].contains("tls.key"));

  auto forged = controller::MakeCa("not-the-operator", absl::Now(), absl::Hours(1));
  ASSERT_TRUE(forged.ok()) << forged.status();
  json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", "forged-agent-token"}, {"namespace", "default"}}},
                 {"stringData", {{"token", "planted"}, {"ca.crt", forged->cert_pem}}}};
  ASSERT_TRUE(cluster_->client().Create("/api/v1/namespaces/default/secrets", secret).ok());
  Apply("forged",
        "  requests: [{name: home, path: /}]\n  load: {users: 1}\n  duration: 30s\n  agents: 1\n");
  ASSERT_TRUE(WaitPhase("forged", {"Failed", "Succeeded"}, seconds(60))) << Diagnose("forged");
  const json status = Get("forged")["status"];
  EXPECT_EQ(status.value("reason", ""), "AgentFailed") << Diagnose("forged");
  EXPECT_EQ(status.value("message", ""),
            "agent Pod forged-agent-0 failed (exit code 1): stampede-agent: refusing the "
            "controller at 127.0.0.1:" +
                std::to_string(grpc_port_) +
                ": its certificate does not verify against the CA we were given (unable to get "
                "local issuer certificate); log: kubectl logs -n default forged-agent-0")
      << Diagnose("forged");
  EXPECT_EQ(target_->Served(), 0);
}
TEST_F(OperatorE2eTest, SpecErrorsTheSchemaCannotSeeEndAsFailedInvalidSpec) {
  Apply("badthreshold", "  load: {users: 1}\n  duration: 2s\n  thresholds: [\"p95 <\"]\n");
  ASSERT_TRUE(WaitPhase("badthreshold", {"Failed"}, seconds(30))) << Diagnose("badthreshold");
  const json status = Get("badthreshold")["status"];
  EXPECT_EQ(status.value("reason", ""), "InvalidSpec");
  EXPECT_NE(status.value("message", "").find("spec.thresholds[0]"), std::string::npos)
      << status.dump();
  EXPECT_TRUE(Pods("badthreshold").empty());
  // kstatus: stalled, so Flux and kubectl wait give up instead of waiting.
  const CommandResult stalled = cluster_->Kubectl(
      {"wait", "--for=condition=Stalled", "loadtest/badthreshold", "--timeout=10s"}, seconds(20));
  EXPECT_EQ(stalled.exit_code, 0) << stalled.ToString();
  cluster_->Kubectl({"delete", "lt", "badthreshold", "--timeout=30s"});
}

// Issue 14: the API server is refused as a target unless a policy allows it, with no policy at
// all. Written as its address, the operator refuses it before any Pod exists; written as a name
// that the default rule admits (localhost), the agents, in their containers, resolve it, find the
// denied address and refuse to dial it, so the API server sees no load either way.
TEST_F(OperatorE2eTest, TheApiServerIsRefusedAtAdmissionAndByTheAgentsWhenReachedByName) {
  const std::string port = cluster_->server().substr(cluster_->server().rfind(':') + 1);
  Apply("apiserver", "  load: {users: 2}\n  duration: 2s\n", cluster_->server() + "/healthz");
  ASSERT_TRUE(WaitPhase("apiserver", {"Failed"}, seconds(30))) << Diagnose("apiserver");
  json status = Get("apiserver")["status"];
  EXPECT_EQ(status.value("reason", ""), "PolicyRefused");
  EXPECT_EQ(status.value("message", ""), "spec.target.url: address 127.0.0.1 port " + port +
                                             " is denied: 127.0.0.1:" + port +
                                             ", the Kubernetes API server (rule default)");
  EXPECT_TRUE(Pods("apiserver").empty());
  const CommandResult events = cluster_->Kubectl(
      {"get", "events", "--field-selector", "involvedObject.name=apiserver", "-o", "json"});
  EXPECT_NE(events.out.find("\"PolicyRefused\""), std::string::npos) << events.ToString();

  Apply("apiserver-by-name", "  load: {users: 2}\n  duration: 2s\n  agents: 2\n",
        "https://localhost:" + port + "/healthz");
  ASSERT_TRUE(WaitPhase("apiserver-by-name", {"Failed"}, seconds(90)))
      << Diagnose("apiserver-by-name");
  status = Get("apiserver-by-name")["status"];
  EXPECT_EQ(status.value("reason", ""), "TargetDenied") << status.dump();
  EXPECT_NE(status.value("message", "")
                .find("is in the denied range 127.0.0.1:" + port + " (rule default)"),
            std::string::npos)
      << status.dump();
  EXPECT_EQ(status.contains("summary") ? status["summary"].value("requests", 0) : 0, 0)
      << status.dump();

  const std::optional<std::string> metrics =
      testing::HttpGet("http://127.0.0.1:" + std::to_string(MetricsPort()) + "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->find("stampede_policy_refusals_total{namespace=\"default\",rule=\"default\","
                          "reason=\"address\",stage=\"admission\"} 1"),
            std::string::npos)
      << *metrics;
  EXPECT_NE(metrics->find("stampede_policy_refusals_total{namespace=\"default\",rule=\"default\","
                          "reason=\"address\",stage=\"agent\"} 1"),
            std::string::npos)
      << *metrics;
  cluster_->Kubectl({"delete", "lt", "apiserver", "apiserver-by-name", "--timeout=30s"});
}

// Scenarios with their data in a Secret: the operator reads it (its owner labelled it for
// LoadTests), and each agent Pod gets its users' rows in its assignment, never in its spec. The
// target's user flow counts each login: every row logged in once, by one virtual user.
TEST_F(OperatorE2eTest, ScenarioDataFromALabelledSecretGivesEachRowToOneUser) {
  const std::string secret = cluster_->dir() + "/users-secret.yaml";
  std::ofstream(secret) << "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-users\n"
                           "  namespace: default\n  labels: {stampede.dev/data: \"true\"}\n"
                           "stringData:\n  users.csv: |\n    name,password\n"
                           "    u900,pw-u900\n    u901,pw-u901\n    u902,pw-u902\n"
                           "    u903,pw-u903\n";
  const CommandResult created = cluster_->Kubectl({"apply", "-f", secret});
  ASSERT_EQ(created.exit_code, 0) << created.ToString();
  Apply("flow", R"(  agents: 2
  duration: 3s
  load: {users: 4}
  data:
    user: {secret: {name: shop-users, key: users.csv}, order: shuffle}
  scenarios:
    - name: buyer
      onStart:
        - name: login
          request:
            method: POST
            path: /flow/login
            json: {user: "{{ user.name }}", password: "{{ user.password }}"}
          capture: {token: {json: $.token}}
      flow:
        - request: {path: /flow/products, headers: {Authorization: "Bearer {{ token }}"}}
          capture: {id: {json: "$.items[*].id", pick: random}}
        - request: {path: "/flow/products/{{ id }}", headers: {Authorization: "Bearer {{ token }}"}}
        - name: add to cart
          request: {method: POST, path: /flow/cart, headers: {Authorization: "Bearer {{ token }}"}}
          expect: {status: [201]}
          think: 20ms
)");
  ASSERT_TRUE(WaitPhase("flow", {"Succeeded", "Failed"}, seconds(90))) << Diagnose("flow");
  const json lt = Get("flow");
  EXPECT_EQ(lt["status"].value("phase", ""), "Succeeded") << Diagnose("flow");
  // (A count of 0 is left out of the status, as protobuf's JSON does.)
  EXPECT_EQ(lt["status"]["summary"].value("errors", uint64_t{0}), 0u) << lt["status"].dump();
  EXPECT_GT(lt["status"]["summary"].value("requests", uint64_t{0}), 100u) << lt["status"].dump();
  const std::optional<std::string> stats_text = testing::HttpGet(target_->Url("/flow/stats"));
  ASSERT_TRUE(stats_text.has_value());
  const json stats = json::parse(*stats_text);
  for (int u = 900; u < 904; ++u) {
    EXPECT_EQ(stats["logins"].value("u" + std::to_string(u), 0), 1) << stats.dump();
  }
  EXPECT_EQ(stats.value("bad_token", -1), 0);
  EXPECT_EQ(stats.value("no_cart", -1), 0) << "each user's cookie went back";
  EXPECT_EQ(stats.value("cart_mismatch", -1), 0);
  EXPECT_EQ(lt.dump().find("pw-u90"), std::string::npos) << "no row in the LoadTest";

  // The same without the owner's label: refused before any Pod, naming the field and the label.
  const CommandResult unlabel =
      cluster_->Kubectl({"label", "secret", "shop-users", "stampede.dev/data-"});
  ASSERT_EQ(unlabel.exit_code, 0) << unlabel.ToString();
  cluster_->Kubectl({"delete", "lt", "flow", "--timeout=30s"});
  Apply("flow",
        "  duration: 1s\n  load: {users: 1}\n  data:\n"
        "    user: {secret: {name: shop-users, key: users.csv}}\n  scenarios:\n"
        "    - name: s\n      flow: [{request: {path: \"/flow/login?u={{ user.name }}\"}}]\n");
  ASSERT_TRUE(WaitPhase("flow", {"Failed"}, seconds(30))) << Diagnose("flow");
  const json refused = Get("flow")["status"];
  EXPECT_EQ(refused.value("reason", ""), "InvalidData");
  EXPECT_NE(refused.value("message", "")
                .find("spec.data.user.secret: default/shop-users is not "
                      "labelled stampede.dev/data"),
            std::string::npos)
      << refused.dump();
  EXPECT_TRUE(Pods("flow").empty());
  cluster_->Kubectl({"delete", "lt", "flow", "--timeout=30s"});
  cluster_->Kubectl({"delete", "secret", "shop-users"});
}

TEST_F(OperatorE2eTest, DeletingARunningLoadTestStopsItsAgentsAndRemovesItsPods) {
  Apply("deleteme",
        "  load: {users: 2, thinkTime: {min: 10ms, max: 20ms}}\n  duration: 5m\n  agents: 2\n");
  ASSERT_EQ(cluster_
                ->Kubectl({"wait", "--for=condition=Running", "loadtest/deleteme", "--timeout=60s"},
                          seconds(70))
                .exit_code,
            0)
      << Diagnose("deleteme");
  ASSERT_EQ(Pods("deleteme").size(), 2u);
  // While it runs: its Secret exists, and a user with only the `view` role cannot read it.
  EXPECT_EQ(cluster_->Kubectl({"get", "secret", "deleteme-agent-token"}).exit_code, 0);
  const CommandResult viewer =
      cluster_->KubectlAs("viewer", {"get", "secret", "deleteme-agent-token"});
  EXPECT_NE(viewer.exit_code, 0);
  EXPECT_NE(viewer.err.find("Forbidden"), std::string::npos) << viewer.ToString();
  EXPECT_EQ(cluster_->KubectlAs("viewer", {"get", "lt", "deleteme"}).exit_code, 0);

  const auto t0 = Clock::now();
  const CommandResult del =
      cluster_->Kubectl({"delete", "lt", "deleteme", "--timeout=60s"}, seconds(70));
  ASSERT_EQ(del.exit_code, 0) << del.ToString() << Diagnose("deleteme");
  EXPECT_TRUE(WaitUntil(seconds(30), [&] { return Pods("deleteme").empty(); }))
      << Diagnose("deleteme");
  RecordProperty(
      "delete_to_pods_gone_ms",
      std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));
  EXPECT_NE(cluster_->Kubectl({"get", "secret", "deleteme-agent-token"}).exit_code, 0);
  // The agents stopped sending load: no connection to the target is left.
  EXPECT_TRUE(WaitUntil(seconds(10), [&] { return target_->OpenConnections() == 0; }))
      << target_->OpenConnections()
      << " connection(s) still open: load continued after the LoadTest was deleted";
}

TEST_F(OperatorE2eTest, OperatorKilledMidRunIsReplacedAndTheTestFinishesOnceWithEverything) {
  Apply("restart",
        "  requests: [{name: home, path: /}]\n"
        "  load: {users: 4, thinkTime: {min: 5ms, max: 15ms}}\n  duration: 14s\n  agents: 2\n");
  ASSERT_TRUE(WaitRunningUnderLoad("restart")) << Diagnose("restart");
  std::map<std::string, std::string> uids;  // pod name -> uid
  for (const json& pod : Pods("restart")) uids[pod["metadata"]["name"]] = pod["metadata"]["uid"];
  ASSERT_EQ(uids.size(), 2u);

  operator_->Signal(SIGKILL);
  ASSERT_TRUE(operator_->Wait(seconds(5)).has_value());
  const std::string dead_log = operator_->Stderr();
  operator_ = StartOperator("op-" + std::to_string(++generation_),
                            grpc_port_);  // waits out the dead one's Lease

  // The new leader adopts the test: it finds both Pods and creates none.
  ASSERT_TRUE(
      WaitUntil(seconds(40),
                [] { return operator_->Stderr().find("loadtest_adopted") != std::string::npos; }))
      << Diagnose("restart") << "\nkilled operator:\n"
      << dead_log;
  EXPECT_TRUE(WaitUntil(seconds(10), [] {
    return operator_->Stderr().find("created=0 adopted=2") != std::string::npos;
  })) << operator_->Stderr();
  std::map<std::string, std::string> after;
  for (const json& pod : Pods("restart")) after[pod["metadata"]["name"]] = pod["metadata"]["uid"];
  EXPECT_EQ(after, uids) << "agent Pods were replaced";

  ASSERT_TRUE(WaitPhase("restart", {"Succeeded", "Failed", "Aborted"}, seconds(90)))
      << Diagnose("restart") << "\nkilled operator:\n"
      << dead_log;
  const json status = Get("restart")["status"];
  EXPECT_EQ(status.value("phase", ""), "Succeeded") << Diagnose("restart");
  EXPECT_EQ(status["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()))
      << "requests before and after the restart, each counted once";
  // Each agent was assigned and started once, and resumed with the new operator.
  for (const auto& [pod, uid] : uids) {
    const std::string log = cluster_->PodLog("default", pod);
    EXPECT_EQ(testing::CountOf(log, "msg=assigned"), 1u) << pod << ":\n" << log;
    EXPECT_GE(testing::CountOf(log, "resumed_session"), 1u) << pod << ":\n" << log;
  }
  cluster_->Kubectl({"delete", "lt", "restart", "--timeout=30s"});
}

// Promise: the control plane itself failing mid-run loses nothing. First the API server freezes
// (SIGSTOP: every watch falls silent on an open connection) until the operator's watches time out
// on the silence; then the API server and etcd are stopped and started again, every watch cut, and
// etcd compacted so each resumed watch is answered 410 Gone. The operator, whose Lease outlasts
// both, keeps leading, starts its watches again, relists, and the test finishes once with every
// request the target served: no Pod is created twice, no agent is assigned or started twice.
TEST_F(OperatorE2eTest, TheApiServerAndEtcdRestartedMidRunLoseNothing) {
  operator_->Signal(SIGTERM);  // releases the Lease for one that rides out a 10 s outage
  ASSERT_TRUE(operator_->Wait(seconds(20)).has_value());
  operator_ = StartOperator("op-" + std::to_string(++generation_), grpc_port_, "60s", "45s",
                            "--watch-idle-timeout=4s");
  ASSERT_TRUE(WaitUntil(seconds(30), [] {
    return operator_->Stderr().find("msg=reconciling") != std::string::npos;
  })) << operator_->Stderr();
  Apply("outage",
        "  requests: [{name: home, path: /}]\n"
        "  load: {users: 4, thinkTime: {min: 5ms, max: 15ms}}\n  duration: 25s\n  agents: 2\n");
  ASSERT_TRUE(WaitRunningUnderLoad("outage")) << Diagnose("outage");
  std::map<std::string, std::string> uids;  // pod name -> uid
  for (const json& pod : Pods("outage")) uids[pod["metadata"]["name"]] = pod["metadata"]["uid"];
  ASSERT_EQ(uids.size(), 2u);
  const std::string before = operator_->Stderr();

  // Silence: the LoadTests' watch gives up on it after 4 s and is started again once it thaws.
  cluster_->FreezeApiServer(true);
  const bool noticed = WaitUntil(seconds(20), [&] {
    for (absl::string_view line : absl::StrSplit(operator_->Stderr().substr(before.size()), '\n')) {
      if (absl::StrContains(line, "path=/apis/stampede.dev/v1alpha1/loadtests error=") &&
          absl::StrContains(line, "(idle timeout)")) {
        return true;
      }
    }
    return false;
  });
  cluster_->FreezeApiServer(false);
  ASSERT_TRUE(noticed) << "the operator did not notice a silent watch:\n"
                       << operator_->Stderr().substr(before.size());

  const absl::Status restarted = cluster_->RestartApiServerAndEtcd();
  ASSERT_TRUE(restarted.ok()) << restarted;
  std::map<std::string, std::string> after;
  for (const json& pod : Pods("outage")) after[pod["metadata"]["name"]] = pod["metadata"]["uid"];
  EXPECT_EQ(after, uids) << "agent Pods were replaced";

  ASSERT_TRUE(WaitPhase("outage", {"Succeeded", "Failed", "Aborted"}, seconds(90)))
      << Diagnose("outage");
  const json status = Get("outage")["status"];
  EXPECT_EQ(status.value("phase", ""), "Succeeded") << Diagnose("outage");
  EXPECT_EQ(status["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()))
      << "every request the target served, counted once";
  const std::string log = operator_->Stderr();
  const std::string since = log.substr(before.size());
  EXPECT_GE(testing::CountOf(since, "kube_informer_relist"), 1u)
      << "no watch was answered 410 and relisted:\n"
      << since;
  EXPECT_EQ(testing::CountOf(log, "agent_pods loadtest=default/outage"), 1u) << log;
  EXPECT_EQ(testing::CountOf(log, "agent_pods loadtest=default/outage created=2 adopted=0"), 1u)
      << log;
  EXPECT_EQ(log.find("leadership_lost"), std::string::npos) << log;
  EXPECT_FALSE(operator_->Wait(milliseconds(0)).has_value()) << "the operator exited:\n" << log;
  for (const auto& [pod, uid] : uids) {
    const std::string agent_log = cluster_->PodLog("default", pod);
    EXPECT_EQ(testing::CountOf(agent_log, "msg=assigned"), 1u) << pod << ":\n" << agent_log;
  }
  cluster_->Kubectl({"delete", "lt", "outage", "--timeout=30s"});
  operator_->Signal(SIGTERM);  // the next test starts an operator with the usual Lease
  operator_->Wait(seconds(20));
}

TEST_F(OperatorE2eTest, DeletedAgentPodFailsTheTestOrLeavesItPartialAsTheSpecSays) {
  for (const std::string policy : {"fail", "continue"}) {
    const std::string name = "podloss-" + policy;
    Apply(name,
          "  load: {users: 3, thinkTime: {min: 10ms, max: 20ms}}\n  duration: 12s\n  agents: 3\n"
          "  onAgentLoss: " +
              policy + "\n");
    ASSERT_EQ(
        cluster_
            ->Kubectl({"wait", "--for=condition=Running", "loadtest/" + name, "--timeout=60s"},
                      seconds(70))
            .exit_code,
        0)
        << Diagnose(name);
    ASSERT_EQ(cluster_->Kubectl({"delete", "pod", name + "-agent-1", "--wait=false"}).exit_code, 0);
    ASSERT_TRUE(WaitPhase(name, {"Succeeded", "Failed", "Aborted"}, seconds(60))) << Diagnose(name);
    const json status = Get(name)["status"];
    if (policy == "fail") {
      EXPECT_EQ(status.value("phase", ""), "Failed") << status.dump();
      EXPECT_EQ(status.value("reason", ""), "AgentLost") << status.dump();
      EXPECT_NE(status.value("message", "").find(name + "-agent-1"), std::string::npos)
          << status.dump();
    } else {
      EXPECT_EQ(status.value("phase", ""), "Succeeded") << status.dump();
      EXPECT_TRUE(status.value("partial", false)) << status.dump();
      EXPECT_EQ(status["agents"].value("lost", 0), 1) << status.dump();
    }
    cluster_->Kubectl({"delete", "lt", name, "--timeout=30s"});
  }
}

TEST_F(OperatorE2eTest, AgentImageThatCannotBePulledFailsTheTestInBoundedTime) {
  const auto t0 = Clock::now();
  Apply("badimage",
        "  load: {users: 1}\n  duration: 10s\n  agentTemplate: {image: invalid.example/agent:1}\n");
  ASSERT_TRUE(WaitPhase("badimage", {"Failed"}, seconds(30))) << Diagnose("badimage");
  const json status = Get("badimage")["status"];
  EXPECT_EQ(status.value("reason", ""), "ImagePullFailed") << status.dump();
  EXPECT_NE(status.value("message", "").find("badimage-agent-0"), std::string::npos)
      << status.dump();
  RecordProperty(
      "image_pull_failure_to_failed_ms",
      std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));
  EXPECT_TRUE(WaitUntil(seconds(20), [&] { return Pods("badimage").empty(); }));
  cluster_->Kubectl({"delete", "lt", "badimage", "--timeout=30s"});
}

TEST_F(OperatorE2eTest, AgentPodThatCannotBeScheduledFailsTheTestInBoundedTime) {
  const auto t0 = Clock::now();
  Apply("nowhere",
        "  load: {users: 1}\n  duration: 10s\n  agentTemplate: {nodeSelector: {pool: "
        "does-not-exist}}\n");
  ASSERT_TRUE(WaitPhase("nowhere", {"Failed"}, seconds(40))) << Diagnose("nowhere");
  const json status = Get("nowhere")["status"];
  EXPECT_EQ(status.value("reason", ""), "Unschedulable") << status.dump();
  EXPECT_NE(status.value("message", "").find("nowhere-agent-0"), std::string::npos)
      << status.dump();
  RecordProperty(
      "unschedulable_to_failed_ms",
      std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));
  EXPECT_TRUE(WaitUntil(seconds(20), [&] { return Pods("nowhere").empty(); }));
  cluster_->Kubectl({"delete", "lt", "nowhere", "--timeout=30s"});
}

TEST_F(OperatorE2eTest, AbortInTheSpecStopsARunningTest) {
  Apply("abortme", "  load: {users: 2, thinkTime: {min: 10ms, max: 20ms}}\n  duration: 5m\n");
  ASSERT_EQ(cluster_
                ->Kubectl({"wait", "--for=condition=Running", "loadtest/abortme", "--timeout=60s"},
                          seconds(70))
                .exit_code,
            0)
      << Diagnose("abortme");
  // Load has reached the status (the Running condition comes with the start broadcast, a second
  // before the agents' first request).
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    const json lt = Get("abortme");
    return lt.contains("status") && lt["status"].contains("summary") &&
           lt["status"]["summary"].value("requests", uint64_t{0}) > 0;
  })) << Diagnose("abortme");
  ASSERT_EQ(
      cluster_
          ->Kubectl({"patch", "lt", "abortme", "--type=merge", "-p", "{\"spec\":{\"abort\":true}}"})
          .exit_code,
      0);
  ASSERT_TRUE(WaitPhase("abortme", {"Aborted", "Succeeded", "Failed"}, seconds(30)))
      << Diagnose("abortme");
  EXPECT_EQ(Phase("abortme"), "Aborted");
  EXPECT_GT(Get("abortme")["status"]["summary"].value("requests", uint64_t{0}), 0u)
      << "results so far are kept";
  EXPECT_TRUE(WaitUntil(seconds(20), [&] { return Pods("abortme").empty(); }));
  cluster_->Kubectl({"delete", "lt", "abortme", "--timeout=30s"});
}

TEST_F(OperatorE2eTest, FiftyAgentPodsAreCreatedAndConnectedWithinThirtySeconds) {
  const auto t0 = Clock::now();
  Apply("fifty",
        "  load: {users: 50, thinkTime: {min: 100ms, max: 200ms}}\n  duration: 5s\n  agents: 50\n"
        "  threadsPerAgent: 1\n");
  bool connected = WaitUntil(seconds(60), [&] {
    const json lt = Get("fifty");
    return lt.contains("status") && lt["status"].contains("agents") &&
           lt["status"]["agents"].value("connected", 0) == 50;
  });
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  RecordProperty("fifty_agents_connected_ms", std::to_string(took.count()));
  std::cout << "50 agents: Pods created and agents connected in " << took.count() << " ms\n";
  ASSERT_TRUE(connected) << Diagnose("fifty");
  EXPECT_LT(took, seconds(30));
  // In container mode every agent is a runc container of the agent image. An agent's process
  // can reach the operator before the test node has posted its Pod's status (it asks `runc state`
  // every 20 ms, then writes the statuses one by one), so the count is awaited, not read once;
  // Pods are remembered by name, as the test ends 5 s after its start and its Pods go then.
  const char* process_mode = std::getenv("STAMPEDE_E2E_PROCESS_MODE");
  const bool containers = process_mode == nullptr || std::string(process_mode) != "1";
  std::set<std::string> seen_in_containers;
  auto count_in_containers = [&] {
    for (const json& pod : Pods("fifty")) {
      const json statuses = pod["status"].value("containerStatuses", json::array());
      if (!statuses.empty() && statuses[0].value("containerID", "").rfind("runc://", 0) == 0) {
        seen_in_containers.insert(pod["metadata"].value("name", ""));
      }
    }
    return seen_in_containers.size() == 50;
  };
  if (containers) {
    WaitUntil(seconds(20), count_in_containers);
  } else {
    count_in_containers();
  }
  const int in_containers = static_cast<int>(seen_in_containers.size());
  RecordProperty("fifty_agents_in_containers", std::to_string(in_containers));
  EXPECT_EQ(in_containers, containers ? 50 : 0);
  ASSERT_TRUE(WaitPhase("fifty", {"Succeeded", "Failed", "Aborted"}, seconds(60)))
      << Diagnose("fifty");
  EXPECT_EQ(Phase("fifty"), "Succeeded") << Diagnose("fifty");
  EXPECT_EQ(Get("fifty")["status"]["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()));
  cluster_->Kubectl({"delete", "lt", "fifty", "--timeout=60s"}, seconds(70));
}

// Last: it stops the leader on purpose.
TEST_F(OperatorE2eTest, SecondReplicaWaitsOnTheLeaseAndTakesOverWhenTheLeaderLeaves) {
  standby_ = StartOperator("standby", testing::FreeLoopbackPort());
  ASSERT_TRUE(WaitUntil(seconds(20), [] {
    return standby_->Stderr().find("leader_election waiting") != std::string::npos;
  })) << standby_->Stderr();
  // A few of its retries (1 s apart) go by while the leader renews the Lease twice.
  const std::string lease_path =
      "/apis/coordination.k8s.io/v1/namespaces/stampede-system/leases/stampede-operator";
  auto renewed_at = [&] {
    return cluster_->client().Get(lease_path).value_or(json())["spec"].value("renewTime", "");
  };
  const std::string first = renewed_at();
  std::string second;
  ASSERT_TRUE(WaitUntil(seconds(20), [&] { return (second = renewed_at()) != first; }));
  ASSERT_TRUE(WaitUntil(seconds(20), [&] { return renewed_at() != second; }));
  EXPECT_EQ(standby_->Stderr().find("leading"), std::string::npos) << standby_->Stderr();
  const json lease = cluster_->client().Get(lease_path).value_or(json());
  EXPECT_EQ(lease["spec"].value("holderIdentity", ""), "op-" + std::to_string(generation_))
      << lease.dump();

  operator_->Signal(SIGTERM);  // a clean exit releases the Lease
  ASSERT_TRUE(operator_->Wait(seconds(20)).has_value());
  EXPECT_TRUE(WaitUntil(seconds(10), [] {
    return standby_->Stderr().find("leader_election leading") != std::string::npos;
  })) << standby_->Stderr();
  const json taken =
      cluster_->client()
          .Get("/apis/coordination.k8s.io/v1/namespaces/stampede-system/leases/stampede-operator")
          .value_or(json());
  EXPECT_EQ(taken["spec"].value("holderIdentity", ""), "standby") << taken.dump();
  standby_.reset();
  operator_.reset();
}

// Promises, the last test (it freezes the leader):
// - A leader frozen past its Lease (SIGSTOP, a network partition's stand-in) loses it to the
//   standby; when it thaws it steps down at once and does nothing else: its log after the thaw
//   holds only the loss, and it exits 1.
// - An agent that can reach no controller for longer than its reconnect window (it dials the old
//   leader's port, where nobody answers any more) stops its load on its own: its process ends,
//   and the test ends as its onAgentLoss says (fail: Failed/AgentLost), from the new leader.
TEST_F(OperatorE2eTest, AFrozenLeaderStepsDownWithoutActingAndCutOffAgentsStopTheirLoad) {
  standby_ = StartOperator("standby-thaw", testing::FreeLoopbackPort());
  ASSERT_TRUE(WaitUntil(seconds(20), [] {
    return standby_->Stderr().find("leader_election waiting") != std::string::npos;
  })) << standby_->Stderr();
  Apply("frozen",
        "  requests: [{name: home, path: /}]\n"
        "  load: {users: 2, thinkTime: {min: 5ms, max: 15ms}}\n  duration: 300s\n  agents: 1\n"
        "  onAgentLoss: fail\n");
  ASSERT_TRUE(WaitRunningUnderLoad("frozen")) << Diagnose("frozen");

  operator_->Signal(SIGSTOP);
  EXPECT_TRUE(WaitUntil(seconds(30), [] {
    return standby_->Stderr().find("leader_election leading") != std::string::npos;
  })) << standby_->Stderr();
  const json lease =
      cluster_->client()
          .Get("/apis/coordination.k8s.io/v1/namespaces/stampede-system/leases/stampede-operator")
          .value_or(json());
  EXPECT_EQ(lease["spec"].value("holderIdentity", ""), "standby-thaw") << lease.dump();
  const size_t frozen_at = operator_->Stderr().size();
  operator_->Signal(SIGCONT);
  const std::optional<int> code = operator_->Wait(seconds(15));
  ASSERT_TRUE(code.has_value()) << "the old leader kept running after it thawed";
  EXPECT_EQ(*code, 1);
  const std::string thawed = operator_->Stderr().substr(frozen_at);
  EXPECT_NE(thawed.find("leadership_lost exiting=true"), std::string::npos) << thawed;
  for (absl::string_view line : absl::StrSplit(thawed, '\n', absl::SkipEmpty())) {
    // Of its own lines (gRPC's library may say something of its connections): the Lease's, or a
    // write its fence kept from being sent (its reconcile thread may run before its renew
    // thread notices the loss; found by this test before the fence existed). Nothing else.
    if (!absl::StrContains(line, " level=")) continue;
    EXPECT_TRUE(absl::StrContains(line, "leader") ||
                absl::StrContains(line, "not sent; this replica no longer holds the Lease"))
        << "acted after it thawed: " << line;
  }

  // The agent still dials the old leader's port; past its 30 s reconnect window it stops.
  ASSERT_TRUE(WaitUntil(seconds(90), [&] {
    const std::string agent_log = cluster_->PodLog("default", "frozen-agent-0");
    return agent_log.find("controller_gone") != std::string::npos;
  })) << cluster_->PodLog("default", "frozen-agent-0");
  ASSERT_TRUE(WaitUntil(seconds(20), [&] {
    for (const json& pod : Pods("frozen")) {
      const std::string phase = pod.contains("status") ? pod["status"].value("phase", "") : "";
      if (phase != "Failed" && phase != "Succeeded") return false;
    }
    return true;
  })) << "the agent's process did not end";
  ASSERT_TRUE(WaitPhase("frozen", {"Failed", "Succeeded", "Aborted"}, seconds(60)))
      << Get("frozen").dump(1) << "\nnew leader:\n"
      << standby_->Stderr();
  const json status = Get("frozen")["status"];
  EXPECT_EQ(status.value("phase", ""), "Failed") << status.dump();
  EXPECT_EQ(status.value("reason", ""), "AgentLost") << status.dump();
  cluster_->Kubectl({"delete", "lt", "frozen", "--timeout=30s"});
  standby_.reset();
  operator_.reset();
}

}  // namespace
}  // namespace stampede::e2e

namespace stampede::e2e {
namespace {

// GitOps: applying the same manifest again starts nothing; a new stampede.dev/run-id runs the
// finished test again, from a clean status, with every request of the new run counted.
TEST_F(OperatorE2eTest, ANewRunIdAnnotationRunsAFinishedTestAgainAndReapplyingDoesNot) {
  const std::string spec =
      "  load: {users: 2, thinkTime: {min: 5ms, max: 10ms}}\n  duration: 3s\n  agents: 2\n";
  const std::string file = Apply("rerun", spec);
  ASSERT_EQ(cluster_
                ->Kubectl({"wait", "--for=condition=Ready", "loadtest/rerun", "--timeout=90s"},
                          seconds(100))
                .exit_code,
            0)
      << Diagnose("rerun");
  const json first = Get("rerun")["status"];
  EXPECT_EQ(first["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()));
  ASSERT_TRUE(WaitUntil(seconds(30), [&] { return Pods("rerun").empty(); }));

  // The same manifest again, as a GitOps sync does: no new run. A sentinel the operator must
  // answer shows that the re-applied test was reconciled by then.
  EXPECT_EQ(cluster_->Kubectl({"apply", "-f", file}).exit_code, 0);
  ASSERT_EQ(cluster_->Kubectl({"annotate", "lt", "rerun", "synced=1"}).exit_code, 0);
  Apply("rerun-sentinel", "  load: {users: 1}\n  duration: 1s\n  thresholds: [\"p95 <\"]\n");
  ASSERT_TRUE(WaitPhase("rerun-sentinel", {"Failed"}, seconds(30)));
  cluster_->Kubectl({"delete", "lt", "rerun-sentinel", "--timeout=30s"});
  EXPECT_TRUE(Pods("rerun").empty());
  EXPECT_EQ(Get("rerun")["status"].value("completionTime", ""), first.value("completionTime", ""));

  // A new run-id: a fresh run, every request of it counted, and the old figures gone.
  testing::HttpGet(target_->Url("/stats/reset"));
  ASSERT_EQ(cluster_->Kubectl({"annotate", "lt", "rerun", "stampede.dev/run-id=second"}).exit_code,
            0);
  ASSERT_TRUE(WaitUntil(seconds(90), [&] {
    const json st = Get("rerun")["status"];
    return st.value("runId", "") == "second" && st.value("phase", "") == "Succeeded";
  })) << Diagnose("rerun");
  const json second = Get("rerun")["status"];
  EXPECT_EQ(second["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target_->Served()))
      << "the second run's requests, and only those";
  EXPECT_GT(second["summary"].value("requests", uint64_t{0}), 0u);
  EXPECT_NE(second.value("completionTime", ""), first.value("completionTime", ""));
  EXPECT_EQ(second["agents"].value("finished", 0), 2);
  const CommandResult events = cluster_->Kubectl(
      {"get", "events", "--field-selector", "involvedObject.name=rerun", "-o", "json"});
  EXPECT_NE(events.out.find("\"RunRequested\""), std::string::npos) << events.ToString();
  ASSERT_EQ(cluster_->Kubectl({"delete", "lt", "rerun", "--timeout=30s"}).exit_code, 0);
}

// The dashboard against a real Prometheus that scraped the operator every second while it ran
// two tests at once (one with two requests on two agent Pods, one with one on one): every query
// has data for both, the whole-run table adds up to each LoadTest's status, and the finished
// tests' series were still there after the operator forgot them.
TEST_F(OperatorE2eTest, EveryDashboardQueryHasDataFromAPrometheusScrapingTheOperator) {
  const int metrics_port = MetricsPort();
  ASSERT_GT(metrics_port, 0) << operator_->Stderr();
  const std::string dir = cluster_->dir() + "/prometheus";
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  testing::Prometheus prometheus(dir, "127.0.0.1:" + std::to_string(metrics_port));
  ASSERT_TRUE(prometheus.WaitReady()) << prometheus.Log();
  const long start_s = static_cast<long>(std::time(nullptr)) - 1;
  const std::map<std::string, double> rates = {{"dash-a", 100}, {"dash-b", 40}};
  // One of each kind the dashboard draws: per request, all requests, error_rate, rps.
  const std::string thresholds =
      "  thresholds: [\"p95{home} < 5s\", \"p99 < 5s\", \"error_rate < 1%\", \"rps > 20\"]\n";
  Apply("dash-a",
        "  requests: [{name: home, path: /, weight: 3}, {name: delayed, path: /delay/2}]\n"
        "  load: {rate: 100, connections: 32}\n  duration: 12s\n  agents: 2\n"
        "  threadsPerAgent: 1\n" +
            thresholds);
  Apply("dash-b",
        "  requests: [{name: home, path: /}]\n"
        "  load: {rate: 40, connections: 8}\n  duration: 12s\n  agents: 1\n"
        "  threadsPerAgent: 1\n" +
            thresholds);
  for (const auto& [name, rate] : rates) {
    ASSERT_TRUE(WaitPhase(name, {"Succeeded", "Failed", "Aborted"}, seconds(120)))
        << Diagnose(name);
    ASSERT_EQ(Phase(name), "Succeeded") << Diagnose(name);
  }
  // The operator has forgotten both runs; their series stay (--finished-metrics-ttl) until
  // scraped.
  long end_s = 0;
  ASSERT_TRUE(WaitUntil(seconds(30), [&] {
    end_s = static_cast<long>(std::time(nullptr));
    const json r = prometheus.Instant(
        R"(stampede_phase{loadtest=~"dash-a|dash-b",phase="Succeeded"} == 1)", end_s);
    return r.is_array() && r.size() == 2;
  })) << prometheus.Log();

  const testing::DashboardAnswers answers =
      testing::QueryDashboard(prometheus, testing::LoadDashboard(), "default", "dash-a|dash-b",
                              {"home", "delayed"}, start_s, end_s);
  EXPECT_GE(answers.queries, 20);
  EXPECT_TRUE(answers.empty.empty()) << "no data: " << json(answers.empty).dump(1);
  EXPECT_EQ(answers.variables.at("request"), (std::set<std::string>{"home", "delayed"}));
  EXPECT_TRUE(answers.variables.at("loadtest").count("dash-a") &&
              answers.variables.at("loadtest").count("dash-b"));
  // Each query that keeps the loadtest label shows both tests.
  for (const auto& [panel, result] : answers.panels) {
    std::set<std::string> tests;
    for (const json& s : result) {
      if (s["metric"].contains("loadtest")) tests.insert(s["metric"]["loadtest"]);
    }
    if (!tests.empty()) {
      EXPECT_EQ(tests, (std::set<std::string>{"dash-a", "dash-b"})) << panel;
    }
  }
  for (const auto& [name, rate] : rates) {
    const json status = Get(name)["status"];
    // The table's requests and errors add up to the status; the total p95 is the status's.
    double requests = 0, errors = 0;
    for (const json& s : answers.panels.at("Whole-run summary per request/A")) {
      if (s["metric"]["loadtest"] == name) requests += std::stod(s["value"][1].get<std::string>());
    }
    for (const json& s : answers.panels.at("Whole-run summary per request/B")) {
      if (s["metric"]["loadtest"] == name) errors += std::stod(s["value"][1].get<std::string>());
    }
    EXPECT_EQ(requests, status["summary"].value("requests", 0.0)) << name << status.dump();
    EXPECT_EQ(errors, status["summary"].value("errors", 0.0)) << name << status.dump();
    const json p95 =
        prometheus.Instant("last_over_time(stampede_request_duration_quantile_seconds{loadtest=\"" +
                               name + "\",request=\"*\",window=\"total\",quantile=\"0.95\"}[5m])",
                           end_s);
    ASSERT_EQ(p95.size(), 1u) << p95.dump();
    absl::Duration status_p95;
    ASSERT_TRUE(absl::ParseDuration(status["summary"].value("p95", ""), &status_p95));
    // The status prints three or four significant digits.
    EXPECT_NEAR(std::stod(p95[0]["value"][1].get<std::string>()), absl::ToDoubleSeconds(status_p95),
                0.005 * absl::ToDoubleSeconds(status_p95))
        << name;
    // The highest 10 s achieved rate is within 5 % of the run's; the target is the spec's.
    json achieved = json::array(), target = json::array();
    for (const json& s : answers.panels.at("Requests per second: achieved and target/A")) {
      if (s["metric"]["loadtest"] == name) achieved.push_back(s);
    }
    for (const json& s : answers.panels.at("Requests per second: achieved and target/B")) {
      if (s["metric"]["loadtest"] == name) target.push_back(s);
    }
    const double rps = status["summary"].value("rps", 0.0);
    EXPECT_NEAR(testing::MaxSample(achieved), rps, 0.05 * rps) << name;
    EXPECT_NEAR(rps, rate, 0.05 * rate) << name;
    EXPECT_EQ(testing::MaxSample(target), rate) << name;
    // The Thresholds table shows the verdicts of the status.
    ASSERT_EQ(status["thresholds"].size(), 4u) << name;
    for (const json& t : status["thresholds"]) {
      double verdict = -1;
      for (const json& s : answers.panels.at("Thresholds/A")) {
        if (s["metric"]["loadtest"] == name && s["metric"]["threshold"] == t["expression"])
          verdict = std::stod(s["value"][1].get<std::string>());
      }
      EXPECT_EQ(verdict, t.value("passed", false) ? 1 : 0) << name << t.dump();
    }
    cluster_->Kubectl({"delete", "lt", name, "--timeout=30s"});
  }
}

}  // namespace
}  // namespace stampede::e2e
