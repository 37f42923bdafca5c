// The end-to-end fixture itself, against a real control plane: the install from deploy/ works, the
// CRD's schema rejects what it should, and the node agent, garbage collector and RBAC behave as
// the Stampede e2e tests will rely on. One cluster serves the whole suite; each test works in a
// namespace of its own.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"

namespace stampede::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using kube::Json;
using std::chrono::seconds;

constexpr char kSourceDir[] = STAMPEDE_SOURCE_DIR;
constexpr char kLoadTests[] = "/apis/stampede.dev/v1alpha1/namespaces/";

std::string PodPath(const std::string& name_space, const std::string& name) {
  return absl::StrCat("/api/v1/namespaces/", name_space, "/pods/", name);
}

Json Pod(const std::string& name, Json container) {
  container["name"] = "main";
  if (!container.contains("image")) container["image"] = "stampede-e2e/shell";
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}}},
          {"spec", {{"restartPolicy", "Never"}, {"containers", Json::array({container})}}}};
}

Json LoadTest(const std::string& name) {
  return {{"apiVersion", "stampede.dev/v1alpha1"},
          {"kind", "LoadTest"},
          {"metadata", {{"name", name}}},
          {"spec", {{"target", {{"url", "http://127.0.0.1:8080/"}}}, {"load", {{"users", 1}}}}}};
}

// The first container's status, or null.
Json ContainerStatus(const Json& pod) {
  if (!pod.contains("status")) return nullptr;
  const Json statuses = pod["status"].value("containerStatuses", Json::array());
  return statuses.empty() ? Json() : statuses[0];
}

std::string Phase(const Json& pod) {
  return pod.contains("status") ? pod["status"].value("phase", "") : "";
}

class ClusterSmokeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A bin dir with one program, standing in for what an image would hold.
    char dir[] = "/tmp/stampede-e2e-bin-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    bin_dir_ = dir;
    const std::string hello = bin_dir_ + "/stampede-e2e-hello";
    std::ofstream(hello) << "#!/bin/sh\necho \"hello from bin-dir: $1\"\n";
    chmod(hello.c_str(), 0755);

    Cluster::Options options;
    options.node_bin_dir = bin_dir_;
    options.crd_files = {std::string(kSourceDir) + "/deploy/crd/loadtests.stampede.dev.yaml"};
    absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(options);
    if (!cluster.ok()) {
      start_error_ = cluster.status().ToString();
      return;
    }
    cluster_ = *std::move(cluster);
    const long long millis = cluster_->start_duration().count();
    std::fprintf(stderr, "e2e cluster started in %lld ms (%s) in %s\n", millis,
                 cluster_->start_timeline().c_str(), cluster_->dir().c_str());
    RecordProperty("cluster_start_ms", std::to_string(millis));
  }

  static void TearDownTestSuite() {
    const auto stopping = Clock::now();
    cluster_.reset();
    std::fprintf(stderr, "e2e cluster stopped in %lld ms\n",
                 static_cast<long long>(
                     std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopping)
                         .count()));
    std::remove((bin_dir_ + "/stampede-e2e-hello").c_str());
    std::remove(bin_dir_.c_str());
  }

  void SetUp() override { ASSERT_NE(cluster_, nullptr) << start_error_; }

  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) std::fprintf(stderr, "%s\n", cluster_->Logs().c_str());
  }

  kube::Client& client() { return cluster_->client(); }

  // A namespace named after the running test.
  std::string CreateNamespace() {
    std::string name =
        absl::AsciiStrToLower(::testing::UnitTest::GetInstance()->current_test_info()->name());
    const Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
    const absl::StatusOr<Json> created = client().Create("/api/v1/namespaces", ns);
    EXPECT_TRUE(created.ok()) << created.status();
    return name;
  }

  std::string WriteManifest(const std::string& name, const std::string& yaml) {
    const std::string path = cluster_->dir() + "/" + name;
    std::ofstream(path) << yaml;
    return path;
  }

  // Reads `path` until `done` holds for it (or for NotFound: null), within `timeout`; the last
  // object read, or nullopt on timeout (a test failure naming `what`).
  std::optional<Json> WaitFor(const std::string& path, const std::string& what,
                              const std::function<bool(const Json&)>& done,
                              seconds timeout = seconds(60)) {
    const auto deadline = Clock::now() + timeout;
    Json last;
    while (true) {
      absl::StatusOr<Json> object = client().Get(path);
      if (object.ok() || absl::IsNotFound(object.status())) {
        last = object.ok() ? *object : Json();
        if (done(last)) return last;
      }
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "timed out after " << timeout.count() << " s waiting for " << what << " at "
                  << path << "; last seen: " << last.dump();
    return std::nullopt;
  }

  static inline std::unique_ptr<Cluster> cluster_;
  static inline std::string start_error_;
  static inline std::string bin_dir_;
};

TEST_F(ClusterSmokeTest, KustomizeInstallsTheOperator) {
  const CommandResult applied =
      cluster_->Kubectl({"apply", "-k", std::string(kSourceDir) + "/deploy/"});
  ASSERT_EQ(applied.exit_code, 0) << applied.ToString();
  EXPECT_TRUE(absl::StrContains(
      applied.out, "customresourcedefinition.apiextensions.k8s.io/loadtests.stampede.dev"))
      << applied.out;
  const CommandResult crd = cluster_->Kubectl({"get", "crd", "loadtests.stampede.dev"});
  ASSERT_EQ(crd.exit_code, 0) << crd.ToString();
  EXPECT_TRUE(absl::StrContains(crd.out, "loadtests.stampede.dev")) << crd.out;
  const CommandResult deployment =
      cluster_->Kubectl({"get", "deployment", "stampede-controller", "-n", "stampede-system"});
  EXPECT_EQ(deployment.exit_code, 0) << deployment.ToString();
}

TEST_F(ClusterSmokeTest, InvalidLoadTestIsRejectedNamingTheField) {
  const std::string ns = CreateNamespace();
  const std::string manifest =
      WriteManifest("zero-agents.yaml", R"(apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata:
  name: zero-agents
spec:
  target: {url: "http://127.0.0.1:8080/"}
  load: {users: 1}
  agents: 0
)");
  // --validate=false: the apiserver's verdict, not kubectl's own schema check.
  const CommandResult applied =
      cluster_->Kubectl({"apply", "--validate=false", "-n", ns, "-f", manifest});
  EXPECT_NE(applied.exit_code, 0) << applied.ToString();
  EXPECT_TRUE(absl::StrContains(applied.err, "spec.agents")) << applied.err;
  EXPECT_TRUE(absl::StrContains(applied.err, "greater than or equal to 1")) << applied.err;
  const CommandResult listed = cluster_->Kubectl({"get", "lt", "-n", ns, "-o", "name"});
  EXPECT_EQ(listed.exit_code, 0) << listed.ToString();
  EXPECT_EQ(listed.out, "");
}

TEST_F(ClusterSmokeTest, ExampleLoadTestIsAcceptedAndListed) {
  // The example lives in namespace `shop`.
  const Json shop = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "shop"}}}};
  ASSERT_TRUE(client().Create("/api/v1/namespaces", shop).ok());
  const CommandResult applied = cluster_->Kubectl(
      {"apply", "-f", std::string(kSourceDir) + "/deploy/examples/k8s-loadtest.yaml"});
  ASSERT_EQ(applied.exit_code, 0) << applied.ToString();
  const CommandResult listed = cluster_->Kubectl({"get", "lt", "-n", "shop"});
  ASSERT_EQ(listed.exit_code, 0) << listed.ToString();
  EXPECT_TRUE(absl::StrContains(listed.out, "checkout-k8s")) << listed.out;
  const absl::StatusOr<Json> stored =
      client().Get(absl::StrCat(kLoadTests, "shop/loadtests/checkout-k8s"));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["spec"]["agents"], 3);
  EXPECT_EQ((*stored)["spec"]["target"]["timeout"], "5s");
  // A schema default fills what the example leaves out.
  EXPECT_EQ((*stored)["spec"]["onAgentLoss"], "fail") << stored->dump();
  EXPECT_EQ((*stored)["spec"]["requests"][0]["method"], "GET") << stored->dump();
}

TEST_F(ClusterSmokeTest, PodGetsSecretEnvAndReportsItsExitCode) {
  const std::string ns = CreateNamespace();
  const std::string value = absl::StrCat("greeting-", Clock::now().time_since_epoch().count());
  const Json secret = {{"apiVersion", "v1"},
                       {"kind", "Secret"},
                       {"metadata", {{"name", "greeting"}}},
                       {"stringData", {{"GREETING", value}}}};
  ASSERT_TRUE(client().Create(absl::StrCat("/api/v1/namespaces/", ns, "/secrets"), secret).ok());
  const Json pod = Pod(
      "shout",
      {{"command", {"/bin/sh", "-c", "echo $GREETING from $MY_NAME; exit 3"}},
       {"env",
        {{{"name", "GREETING"},
          {"valueFrom", {{"secretKeyRef", {{"name", "greeting"}, {"key", "GREETING"}}}}}},
         {{"name", "MY_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}}}}});
  ASSERT_TRUE(client().Create(absl::StrCat("/api/v1/namespaces/", ns, "/pods"), pod).ok());

  const std::optional<Json> ended = WaitFor(PodPath(ns, "shout"), "phase Failed",
                                            [](const Json& p) { return Phase(p) == "Failed"; });
  ASSERT_TRUE(ended.has_value());
  const Json status = ContainerStatus(*ended);
  ASSERT_TRUE(status.is_object()) << ended->dump();
  EXPECT_EQ(status["state"]["terminated"]["exitCode"], 3) << status.dump();
  EXPECT_EQ(status["state"]["terminated"]["reason"], "Error") << status.dump();
  EXPECT_EQ((*ended)["status"]["podIP"], "127.0.0.1");
  EXPECT_EQ((*ended)["spec"]["nodeName"], cluster_->node_name());
  EXPECT_TRUE(absl::StrContains(cluster_->PodLog(ns, "shout"), value + " from shout"))
      << cluster_->PodLog(ns, "shout");
}

TEST_F(ClusterSmokeTest, DeletedPodIsGoneWithItsProcess) {
  const std::string ns = CreateNamespace();
  ASSERT_TRUE(client()
                  .Create(absl::StrCat("/api/v1/namespaces/", ns, "/pods"),
                          Pod("sleeper", {{"command", {"/bin/sh", "-c", "sleep 300"}}}))
                  .ok());
  const std::optional<Json> running = WaitFor(PodPath(ns, "sleeper"), "phase Running",
                                              [](const Json& p) { return Phase(p) == "Running"; });
  ASSERT_TRUE(running.has_value());
  const std::string container_id = ContainerStatus(*running).value("containerID", "");
  pid_t pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(container_id.substr(container_id.rfind('/') + 1), &pid))
      << container_id;
  ASSERT_EQ(kill(-pid, 0), 0) << "the Pod's process group " << pid << " is not running";

  const auto deleting = Clock::now();
  const CommandResult deleted =
      cluster_->Kubectl({"delete", "pod", "sleeper", "-n", ns, "--timeout=15s"}, seconds(20));
  EXPECT_EQ(deleted.exit_code, 0) << deleted.ToString();
  ASSERT_TRUE(WaitFor(
      PodPath(ns, "sleeper"), "the Pod to be gone", [](const Json& p) { return p.is_null(); },
      seconds(15)));
  EXPECT_LT(Clock::now() - deleting, seconds(15));
  const int killed = kill(-pid, 0);
  const int error = errno;
  EXPECT_EQ(killed, -1) << "the Pod's process group " << pid << " still runs";
  EXPECT_EQ(error, ESRCH);
}

TEST_F(ClusterSmokeTest, ImagePullFailureIsReported) {
  const std::string ns = CreateNamespace();
  ASSERT_TRUE(
      client()
          .Create(absl::StrCat("/api/v1/namespaces/", ns, "/pods"),
                  Pod("unpullable", {{"image", "invalid.example/x"}, {"command", {"/bin/true"}}}))
          .ok());
  const std::optional<Json> waiting =
      WaitFor(PodPath(ns, "unpullable"), "reason ErrImagePull", [](const Json& p) {
        const Json status = ContainerStatus(p);
        return status.is_object() && status["state"].contains("waiting") &&
               status["state"]["waiting"].value("reason", "") == "ErrImagePull";
      });
  ASSERT_TRUE(waiting.has_value());
  EXPECT_EQ(Phase(*waiting), "Pending");
  EXPECT_TRUE(absl::StrContains(ContainerStatus(*waiting)["state"]["waiting"].value("message", ""),
                                "invalid.example/x"));
}

TEST_F(ClusterSmokeTest, BinDirStandsInForTheImage) {
  const std::string ns = CreateNamespace();
  const Json container = {
      {"command", {"/usr/local/bin/stampede-e2e-hello"}},
      {"args", {"$(MY_NAME)"}},
      {"env",
       {{{"name", "MY_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}}}}};
  ASSERT_TRUE(client()
                  .Create(absl::StrCat("/api/v1/namespaces/", ns, "/pods"), Pod("hello", container))
                  .ok());
  const std::optional<Json> ended = WaitFor(PodPath(ns, "hello"), "phase Succeeded",
                                            [](const Json& p) { return Phase(p) == "Succeeded"; });
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ContainerStatus(*ended)["state"]["terminated"]["reason"], "Completed");
  EXPECT_EQ(cluster_->PodLog(ns, "hello"), "hello from bin-dir: hello\n");
}

TEST_F(ClusterSmokeTest, GarbageCollectorDeletesWhatALoadTestOwns) {
  const std::string ns = CreateNamespace();
  const std::string loadtests = absl::StrCat(kLoadTests, ns, "/loadtests");
  const absl::StatusOr<Json> owner = client().Create(loadtests, LoadTest("owner"));
  ASSERT_TRUE(owner.ok()) << owner.status();
  const Json config_map = {{"apiVersion", "v1"},
                           {"kind", "ConfigMap"},
                           {"metadata",
                            {{"name", "owned"},
                             {"ownerReferences",
                              {{{"apiVersion", "stampede.dev/v1alpha1"},
                                {"kind", "LoadTest"},
                                {"name", "owner"},
                                {"uid", kube::MetadataField(*owner, "uid")}}}}}},
                           {"data", {{"k", "v"}}}};
  const std::string config_maps = absl::StrCat("/api/v1/namespaces/", ns, "/configmaps");
  ASSERT_TRUE(client().Create(config_maps, config_map).ok());
  const absl::StatusOr<Json> deleted =
      client().Delete(loadtests + "/owner", {{"propagationPolicy", "Background"}});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(WaitFor(config_maps + "/owned", "the garbage collector to delete the ConfigMap",
                      [](const Json& c) { return c.is_null(); }));
}

TEST_F(ClusterSmokeTest, ViewerCannotReadSecrets) {
  const std::string ns = CreateNamespace();
  const Json secret = {{"apiVersion", "v1"},
                       {"kind", "Secret"},
                       {"metadata", {{"name", "hidden"}}},
                       {"stringData", {{"k", "v"}}}};
  ASSERT_TRUE(client().Create(absl::StrCat("/api/v1/namespaces/", ns, "/secrets"), secret).ok());
  const CommandResult can_i =
      cluster_->KubectlAs("viewer", {"auth", "can-i", "get", "secrets", "-n", ns});
  EXPECT_EQ(absl::StripAsciiWhitespace(can_i.out), "no") << can_i.ToString();
  const CommandResult get = cluster_->KubectlAs("viewer", {"get", "secret", "hidden", "-n", ns});
  EXPECT_NE(get.exit_code, 0) << get.ToString();
  EXPECT_TRUE(absl::StrContains(get.err, "Forbidden")) << get.err;
  // The viewer is authenticated and may read what `view` allows.
  const CommandResult pods = cluster_->KubectlAs("viewer", {"get", "pods", "-n", ns});
  EXPECT_EQ(pods.exit_code, 0) << pods.ToString();
}

}  // namespace
}  // namespace stampede::e2e
