// The agent Pod manifest: Pod Security "restricted", no service-account token, the token from the
// test's Secret, ownership by the LoadTest, and the user's agentTemplate carried over. Launching:
// bounded creates in flight, and an overloaded API server pausing them all.
#include "controller/operator/kube_launcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "common/spec.h"
#include "controller/operator/reconciler.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_kube.h"

namespace stampede::controller {
namespace {

v1::LoadTest ShopTest(const std::string& extra_spec) {
  auto test = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n"
      "metadata: {name: shop, namespace: perf, uid: 1234-abcd}\n"
      "spec:\n  target: {url: \"http://shop.perf.svc:8080\"}\n  load: {users: 10}\n  duration: "
      "30s\n"
      "  agents: 3\n" +
      extra_spec);
  EXPECT_TRUE(test.ok()) << test.status();
  return test.ok() ? *test : v1::LoadTest();
}

const kube::Json* Env(const kube::Json& container, const std::string& name) {
  for (const kube::Json& e : container["env"]) {
    if (e["name"] == name) return &e;
  }
  return nullptr;
}

TEST(AgentPodTest, MeetsTheRestrictedProfileAndMountsNoToken) {
  const kube::Json pod =
      AgentPod(ShopTest(""), 2, "1234-abcd", "ctl.stampede-system.svc:7070", AgentPodOptions());
  EXPECT_EQ(pod["metadata"]["name"], "shop-agent-2");
  EXPECT_EQ(pod["metadata"]["namespace"], "perf");
  const kube::Json& spec = pod["spec"];
  EXPECT_EQ(spec["automountServiceAccountToken"], false);
  EXPECT_EQ(spec["restartPolicy"], "Never");
  EXPECT_EQ(spec["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  ASSERT_EQ(spec["containers"].size(), 1u);
  const kube::Json& c = spec["containers"][0];
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], kube::Json::array({"ALL"}));
  EXPECT_FALSE(c["securityContext"].contains("privileged"));
  EXPECT_EQ(c["image"], AgentPodOptions().default_image);
}

TEST(AgentPodTest, DialsTheControllerWithTheTestsSecretAndIsOwnedByTheLoadTest) {
  AgentPodOptions options;
  options.reconnect_s = 45;
  const kube::Json pod =
      AgentPod(ShopTest("  threadsPerAgent: 2\n"), 0, "1234-abcd", "10.0.0.5:7070", options);
  const kube::Json& c = pod["spec"]["containers"][0];
  ASSERT_NE(Env(c, "STAMPEDE_CONTROLLER"), nullptr);
  EXPECT_EQ((*Env(c, "STAMPEDE_CONTROLLER"))["value"], "10.0.0.5:7070");
  EXPECT_EQ((*Env(c, "STAMPEDE_RUN"))["value"], "1234-abcd");
  EXPECT_EQ((*Env(c, "STAMPEDE_AGENT_INDEX"))["value"], "0");
  EXPECT_EQ((*Env(c, "STAMPEDE_RECONNECT_SECONDS"))["value"], "45");
  EXPECT_EQ((*Env(c, "STAMPEDE_THREADS"))["value"], "2");
  const kube::Json& token = *Env(c, "STAMPEDE_TOKEN");
  EXPECT_FALSE(token.contains("value")) << "the token must come from the Secret, not the Pod spec";
  EXPECT_EQ(token["valueFrom"]["secretKeyRef"]["name"], TokenSecretName("shop"));
  EXPECT_EQ(token["valueFrom"]["secretKeyRef"]["key"], "token");
  ASSERT_EQ(pod["metadata"]["ownerReferences"].size(), 1u);
  const kube::Json& owner = pod["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["kind"], "LoadTest");
  EXPECT_EQ(owner["uid"], "1234-abcd");
  EXPECT_EQ(owner["controller"], true);
  EXPECT_EQ(pod["metadata"]["labels"][kLoadTestLabel], "shop");
  EXPECT_EQ(pod["metadata"]["labels"][kAgentIndexLabel], "0");
}

TEST(AgentPodTest, WithTlsTrustsTheCaInTheTestsSecretAndSaysWhyItFailed) {
  const kube::Json plain = AgentPod(ShopTest(""), 0, "1234-abcd", "c:1", AgentPodOptions());
  EXPECT_EQ(Env(plain["spec"]["containers"][0], "STAMPEDE_CA"), nullptr);
  AgentPodOptions options;
  options.tls = true;
  const kube::Json pod = AgentPod(ShopTest(""), 0, "1234-abcd", "c:1", options);
  const kube::Json& c = pod["spec"]["containers"][0];
  ASSERT_NE(Env(c, "STAMPEDE_CA"), nullptr);
  EXPECT_EQ((*Env(c, "STAMPEDE_CA"))["valueFrom"]["secretKeyRef"],
            kube::Json({{"name", TokenSecretName("shop")}, {"key", "ca.crt"}}));
  EXPECT_EQ(c["terminationMessagePolicy"], "FallbackToLogsOnError");
}

TEST(AgentPodTest, CarriesTheAgentTemplateButKeepsItsOwnLabels) {
  const kube::Json pod = AgentPod(
      ShopTest(
          "  agentTemplate:\n"
          "    image: registry.example/agent:1\n"
          "    imagePullPolicy: Always\n"
          "    resources: {requests: {cpu: 500m}, limits: {memory: 128Mi}}\n"
          "    nodeSelector: {pool: load}\n"
          "    tolerations: [{key: dedicated, operator: Equal, value: load, effect: NoSchedule}]\n"
          "    affinity: {podAntiAffinity: {}}\n"
          "    labels: {team: perf, stampede.dev/loadtest: other}\n"
          "    annotations: {note: hi}\n"),
      1, "1234-abcd", "c:1", AgentPodOptions());
  const kube::Json& c = pod["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "registry.example/agent:1");
  EXPECT_EQ(c["imagePullPolicy"], "Always");
  EXPECT_EQ(c["resources"]["requests"]["cpu"], "500m");
  EXPECT_EQ(c["resources"]["limits"]["memory"], "128Mi");
  EXPECT_EQ(pod["spec"]["nodeSelector"]["pool"], "load");
  EXPECT_EQ(pod["spec"]["tolerations"][0]["effect"], "NoSchedule");
  EXPECT_TRUE(pod["spec"]["affinity"].contains("podAntiAffinity"));
  EXPECT_EQ(pod["metadata"]["labels"]["team"], "perf");
  EXPECT_EQ(pod["metadata"]["labels"][kLoadTestLabel], "shop")
      << "a user label must not move the Pod to another test";
  EXPECT_EQ(pod["metadata"]["annotations"]["note"], "hi");
}

TEST(StatusJsonTest, OmitsUnsetFieldsAndWritesCountsAsNumbers) {
  v1::LoadTestStatus status;
  status.set_phase("Running");
  status.mutable_summary()->set_requests(12345678901ull);
  status.mutable_summary()->set_rps(12.5);
  status.mutable_agents()->set_desired(3);
  const kube::Json j = StatusJson(status);
  EXPECT_EQ(j["phase"], "Running");
  ASSERT_TRUE(j["summary"]["requests"].is_number()) << j.dump();
  EXPECT_EQ(j["summary"]["requests"].get<uint64_t>(), 12345678901ull);
  EXPECT_FALSE(j.contains("reason")) << "empty strings are left out (the API server rejects some)";
  EXPECT_FALSE(j["summary"].contains("p95"));
}

TEST(AgentDefaultsTest, FillWhatTheTemplateLeavesUnsetAndYieldToWhatItSets) {
  absl::StatusOr<AgentDefaults> defaults = ParseAgentDefaults(R"({
    "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
    "nodeSelector": {"pool": "load"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]})");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  AgentPodOptions options;
  options.defaults = *defaults;

  const kube::Json plain = AgentPod(ShopTest(""), 0, "1234-abcd", "10.0.0.5:7070", options);
  EXPECT_EQ(plain["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi");
  EXPECT_EQ(plain["spec"]["nodeSelector"], kube::Json::parse(R"({"pool":"load"})"));
  EXPECT_EQ(plain["spec"]["tolerations"][0]["key"], "dedicated");

  // A field the template sets wins whole; the others still come from the defaults.
  const kube::Json own =
      AgentPod(ShopTest("  agentTemplate:\n    resources: {limits: {memory: 128Mi}}\n"
                        "    nodeSelector: {zone: a}\n"),
               0, "1234-abcd", "10.0.0.5:7070", options);
  EXPECT_EQ(own["spec"]["containers"][0]["resources"],
            kube::Json::parse(R"({"limits":{"memory":"128Mi"}})"));
  EXPECT_EQ(own["spec"]["nodeSelector"], kube::Json::parse(R"({"zone":"a"})"));
  EXPECT_EQ(own["spec"]["tolerations"][0]["key"], "dedicated");

  // Without defaults, nothing is added.
  const kube::Json none =
      AgentPod(ShopTest(""), 0, "1234-abcd", "10.0.0.5:7070", AgentPodOptions());
  EXPECT_FALSE(none["spec"]["containers"][0].contains("resources"));
  EXPECT_FALSE(none["spec"].contains("nodeSelector"));
  EXPECT_FALSE(none["spec"].contains("tolerations"));
}

TEST(AgentDefaultsTest, BadDefaultsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[]", "must be a JSON object"},
      {"{", "not valid JSON"},
      {R"({"affinity": {}})", "affinity: unknown field"},
      {R"({"resources": {"limit": {}}})", "resources.limit"},
      {R"({"resources": {"limits": {"cpu": true}}})", "resources.limits.cpu"},
      {R"({"nodeSelector": {"zone": 1}})", "nodeSelector.zone"},
      {R"({"tolerations": {"key": "a"}})", "tolerations: must be an array"},
      {R"({"tolerations": ["a"]})", "tolerations[0]"},
  };
  for (const auto& [text, field] : cases) {
    absl::StatusOr<AgentDefaults> defaults = ParseAgentDefaults(text);
    EXPECT_FALSE(defaults.ok()) << text;
    EXPECT_NE(defaults.status().message().find(field), std::string::npos)
        << text << ": " << defaults.status().message();
  }
  // Empty fields are as good as none.
  absl::StatusOr<AgentDefaults> empty =
      ParseAgentDefaults(R"({"resources": {}, "nodeSelector": {}, "tolerations": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->resources.is_null());
  EXPECT_TRUE(empty->node_selector.is_null());
  EXPECT_TRUE(empty->tolerations.is_null());
}

constexpr char kPods[] = "/api/v1/namespaces/perf/pods";

// A FakeApi that counts the Pod creates in flight. The first `gate` creates wait until that many
// are in flight together (at most 10 s), so a launcher that never overlaps them is seen.
class CountingApi final : public kube::Api {
 public:
  explicit CountingApi(int gate) : gate_(gate) {}
  absl::StatusOr<kube::Json> Get(const std::string& p) override { return fake.Get(p); }
  absl::StatusOr<kube::Json> Create(const std::string& p, const kube::Json& body) override {
    {
      common::MutexLock lock(&mu_);
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
      cv_.SignalAll();
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!gate_open_ && in_flight_ < gate_ && cv_.WaitUntil(&mu_, deadline)) {
      }
      gate_open_ = true;
    }
    auto created = fake.Create(p, body);
    common::MutexLock lock(&mu_);
    --in_flight_;
    return created;
  }
  absl::StatusOr<kube::Json> Update(const std::string& p, const kube::Json& b) override {
    return fake.Update(p, b);
  }
  absl::StatusOr<kube::Json> MergePatch(const std::string& p, const kube::Json& b) override {
    return fake.MergePatch(p, b);
  }
  absl::StatusOr<kube::Json> Delete(const std::string& p, const kube::Json& o) override {
    return fake.Delete(p, o);
  }
  int max_in_flight() {
    common::MutexLock lock(&mu_);
    return max_in_flight_;
  }

  testing::FakeApi fake;

 private:
  const int gate_;
  common::Mutex mu_;
  common::CondVar cv_;
  int in_flight_ = 0, max_in_flight_ = 0;
  bool gate_open_ = false;
};

LaunchRequest Request(uint32_t agents) {
  LaunchRequest request;
  request.run_id = "r1";
  request.token = "t";
  request.controller_address = "ctl:7070";
  request.agents = agents;
  return request;
}

TEST(KubeLauncherTest, KeepsAtMostCreateConcurrencyPodCreatesInFlight) {
  CountingApi api(/*gate=*/4);
  v1::LoadTest test = ShopTest("");
  test.mutable_spec()->set_agents(40);
  AgentPodOptions options;
  options.create_concurrency = 4;
  KubeLauncher launcher(&api, test, options);
  ASSERT_TRUE(launcher.Launch(Request(40)).ok());
  EXPECT_EQ(api.max_in_flight(), 4);
  EXPECT_EQ(api.fake.CountWrites("POST"), 40u);
  EXPECT_EQ(api.fake.Objects(kPods).size(), 40u);
  EXPECT_TRUE(api.fake.Object(std::string(kPods) + "/shop-agent-39").has_value());

  launcher.Stop();
  EXPECT_EQ(api.fake.CountWrites("DELETE"), 40u);
  EXPECT_TRUE(api.fake.Objects(kPods).empty());
}

// Fixture parts for the overload tests: one worker, so the pauses come in a known order.
struct Paused {
  testing::FakeClock clock;
  std::vector<std::chrono::nanoseconds> sleeps;
  AgentPodOptions Options(int retries) {
    AgentPodOptions options;
    options.create_concurrency = 1;
    options.overload_retries = retries;
    options.clock = &clock;
    options.sleep = [this](std::chrono::nanoseconds d) {
      sleeps.push_back(d);
      clock.Advance(d.count());
    };
    return options;
  }
};

TEST(KubeLauncherTest, AnOverloadedApiServerPausesCreatesWithDoublingPauses) {
  testing::FakeApi api;
  api.Plant("POST", kPods, absl::UnavailableError("POST pods: HTTP 429 (overloaded or down)"), 3);
  Paused paused;
  KubeLauncher launcher(&api, ShopTest(""), paused.Options(8));
  ASSERT_TRUE(launcher.Launch(Request(3)).ok());
  using std::chrono::seconds;
  EXPECT_EQ(paused.sleeps,
            (std::vector<std::chrono::nanoseconds>{seconds(1), seconds(2), seconds(4)}));
  EXPECT_EQ(api.Objects(kPods).size(), 3u);
  EXPECT_EQ(api.CountWrites("POST"), 6u);  // agent 0 four times, then 1 and 2 at once
}

TEST(KubeLauncherTest, GivesUpAfterOverloadRetriesNamingThePod) {
  testing::FakeApi api;
  api.Plant("POST", kPods, absl::UnavailableError("POST pods: HTTP 429 (overloaded or down)"), 10);
  Paused paused;
  KubeLauncher launcher(&api, ShopTest(""), paused.Options(2));
  const absl::Status status = launcher.Launch(Request(3));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("creating agent Pod shop-agent-0: POST pods: HTTP 429"),
            std::string::npos)
      << status;
  using std::chrono::seconds;
  EXPECT_EQ(paused.sleeps, (std::vector<std::chrono::nanoseconds>{seconds(1), seconds(2)}));
  EXPECT_EQ(api.CountWrites("POST"), 3u);
}

TEST(KubeLauncherTest, AnyOtherErrorEndsTheLaunchAtOnce) {
  testing::FakeApi api;
  api.Plant("POST", kPods, absl::PermissionDeniedError("POST pods: HTTP 403 Forbidden"));
  Paused paused;
  KubeLauncher launcher(&api, ShopTest(""), paused.Options(8));
  EXPECT_EQ(launcher.Launch(Request(3)).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(api.CountWrites("POST"), 1u);
  EXPECT_TRUE(paused.sleeps.empty());
}

}  // namespace
}  // namespace stampede::controller
