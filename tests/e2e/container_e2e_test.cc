// Real containers on the real control plane: stampede-test-node loads the images scripts/images
// built and runs every Pod naming them with runc. The chart installs the operator, which runs in
// its container with the service account token the token controller mounted, and runs a LoadTest
// whose agents are containers too. Other tests look at a container from the host, in /proc and
// the cgroup files, to see that the kernel enforces what its Pod asked for (user, groups, read-only
// root, no new privileges, capabilities, seccomp, volumes, env, limits), and that exit codes and
// restarts reach the Pod's status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/cluster.h"
#include "tests/integration/process.h"

namespace stampede::e2e {
namespace {

using kube::Json;
using std::chrono::seconds;
using testing::WaitUntil;

constexpr char kSourceDir[] = STAMPEDE_SOURCE_DIR;
constexpr char kRunc[] = "/usr/sbin/runc";  // Debian's runc package
constexpr char kAgentImage[] = "ghcr.io/stampede-dev/stampede-agent:" STAMPEDE_VERSION;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The value of "Key:" in a /proc/<pid>/status text.
std::string StatusField(const std::string& status, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, key + ":")) return std::string(absl::StripAsciiWhitespace(line));
  }
  return "";
}

// A process's cgroup (v1) path by controller, from /proc/<pid>/cgroup.
std::map<std::string, std::string> Cgroups(pid_t pid) {
  std::map<std::string, std::string> cgroups;
  for (absl::string_view line :
       absl::StrSplit(ReadAll(absl::StrCat("/proc/", pid, "/cgroup")), '\n')) {
    const std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() == 3) {
      for (absl::string_view controller : absl::StrSplit(fields[1], ',')) {
        cgroups[std::string(controller)] = fields[2];
      }
    }
  }
  return cgroups;
}

class ContainerE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    start_error_ = testing::ImageArchivesProblem();
    if (!start_error_.empty()) return;
    Cluster::Options options;
    options.node_image_archives = testing::ImageArchives();
    options.workload_controllers = true;
    absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(options);
    if (!cluster.ok()) {
      start_error_ = cluster.status().ToString();
      return;
    }
    cluster_ = *std::move(cluster);
    digests_[0] = ReadAll(Dir(testing::ImageArchives()[0]) + "/stampede-agent.digest");
    digests_[1] = ReadAll(Dir(testing::ImageArchives()[1]) + "/stampede.digest");
    for (std::string& digest : digests_) digest = std::string(absl::StripAsciiWhitespace(digest));
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << start_error_;
    ASSERT_FALSE(digests_[0].empty()) << "no stampede-agent.digest next to the archives";
  }
  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) std::fprintf(stderr, "%s\n", cluster_->Logs().c_str());
  }

  static std::string Dir(const std::string& path) { return path.substr(0, path.rfind('/')); }

  std::string Kubectl(const std::vector<std::string>& args) {
    const CommandResult r = cluster_->Kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.ToString();
    return r.out;
  }
  void ApplyYaml(const std::string& name, const std::string& yaml) {
    const std::string file = cluster_->dir() + "/" + name + ".yaml";
    std::ofstream(file) << yaml;
    const CommandResult r = cluster_->Kubectl({"apply", "-f", file});
    ASSERT_EQ(r.exit_code, 0) << r.ToString();
  }
  Json GetPod(const std::string& name_space, const std::string& name) {
    absl::StatusOr<Json> pod =
        cluster_->client().Get(absl::StrCat("/api/v1/namespaces/", name_space, "/pods/", name));
    return pod.ok() ? *pod : Json();
  }
  static Json ContainerStatus(const Json& pod) {
    if (!pod.is_object() || !pod.contains("status") ||
        !pod["status"].contains("containerStatuses")) {
      return Json::object();
    }
    return pod["status"]["containerStatuses"][0];
  }
  // Until the service account controller made `default` in that namespace (the ServiceAccount
  // admission plugin refuses Pods before).
  void WaitForDefaultServiceAccount(const std::string& name_space) {
    ASSERT_TRUE(WaitUntil(seconds(30),
                          [&] {
                            return cluster_->client()
                                .Get(absl::StrCat("/api/v1/namespaces/", name_space,
                                                  "/serviceaccounts/default"))
                                .ok();
                          }))
        << "no default service account in " << name_space;
  }
  // The host pid of a running Pod's container, from runc's state. The test node reports Running
  // only once runc has made the container, so runc knows it at once.
  pid_t ContainerPid(const Json& pod) {
    const std::string id = ContainerStatus(pod).value("containerID", "");
    EXPECT_TRUE(absl::StartsWith(id, "runc://")) << pod.dump(1);
    const testing::CommandOutput state = testing::RunToEnd(
        {kRunc, "--root", cluster_->dir() + "/node/runc", "state", id.substr(7)}, seconds(20));
    if (state.exit_code != 0) {
      ADD_FAILURE() << "the Pod is Running, but runc has no container " << id << ": " << state.err;
      return -1;
    }
    return Json::parse(state.out).value("pid", -1);
  }
  bool RuncKnows(const std::string& id) {
    return testing::RunToEnd({kRunc, "--root", cluster_->dir() + "/node/runc", "state", id},
                             seconds(20))
               .exit_code == 0;
  }

  static inline std::unique_ptr<Cluster> cluster_;
  static inline std::string start_error_;
  static inline std::string digests_[2];  // stampede-agent, stampede
};

TEST_F(ContainerE2eTest, ChartInstalledOperatorRunsALoadTestWithAgentsInContainers) {
  testing::TestTarget target;
  const int grpc_port = testing::FreeLoopbackPort(), metrics_port = testing::FreeLoopbackPort();
  const std::string chart = std::string(kSourceDir) + "/helm/stampede";
  testing::CommandOutput installed =
      testing::RunToEnd({testing::HelmBinary(),
                         "install",
                         "stampede",
                         chart,
                         "-n",
                         "stampede-system",
                         "--create-namespace",
                         "--kubeconfig",
                         cluster_->admin_kubeconfig(),
                         "--set",
                         absl::StrCat("service.grpcPort=", grpc_port),
                         "--set",
                         absl::StrCat("service.metricsPort=", metrics_port),
                         "--set",
                         absl::StrCat("service.advertiseAddress=127.0.0.1:", grpc_port),
                         "--set",
                         "agent.resources.limits.memory=256Mi",
                         "--set",
                         "agent.nodeSelector.kubernetes\\.io/os=linux",
                         "--wait",
                         "--timeout",
                         "120s"},
                        seconds(150));
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;
  // A failed assertion ends the test early: the chart's operator, which watches every namespace,
  // must not outlive it and run the next tests' LoadTests.
  const auto uninstall = [&] {
    return testing::RunToEnd(
        {testing::HelmBinary(), "uninstall", "stampede", "-n", "stampede-system", "--kubeconfig",
         cluster_->admin_kubeconfig(), "--wait"},
        seconds(120));
  };
  bool uninstalling = false;
  auto uninstall_if_failed = absl::MakeCleanup([&] {
    if (!uninstalling) uninstall();
  });

  // The operator's Pod runs the stampede image as 65532, with the mounted token.
  const Json pods = Json::parse(Kubectl({"get", "pods", "-n", "stampede-system", "-l",
                                         "app.kubernetes.io/name=stampede", "-o", "json"}));
  ASSERT_EQ(pods["items"].size(), 1u) << pods.dump(1);
  const Json& operator_pod = pods["items"][0];
  const std::string operator_name = operator_pod["metadata"]["name"];
  EXPECT_EQ(ContainerStatus(operator_pod).value("imageID", ""),
            "ghcr.io/stampede-dev/stampede@" + digests_[1]);
  bool token_mounted = false;
  for (const Json& mount : operator_pod["spec"]["containers"][0]["volumeMounts"]) {
    token_mounted |=
        mount.value("mountPath", "") == "/var/run/secrets/kubernetes.io/serviceaccount";
  }
  EXPECT_TRUE(token_mounted) << "the ServiceAccount admission plugin mounts the token";
  const pid_t operator_pid = ContainerPid(operator_pod);
  ASSERT_GT(operator_pid, 0) << cluster_->PodLog("stampede-system", operator_name);
  EXPECT_EQ(StatusField(ReadAll(absl::StrCat("/proc/", operator_pid, "/status")), "Uid"),
            "65532\t65532\t65532\t65532");
  // Ready once it reconciles, on its metrics port (host network).
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    return testing::RunToEnd({"/usr/bin/curl", "-sf", "--max-time", "5",
                              absl::StrCat("http://127.0.0.1:", metrics_port, "/readyz")},
                             seconds(10))
               .exit_code == 0;
  })) << cluster_->PodLog("stampede-system", operator_name);

  ASSERT_EQ(cluster_->Kubectl({"create", "namespace", "shop"}).exit_code, 0);
  WaitForDefaultServiceAccount("shop");
  ApplyYaml("shop-test", absl::StrCat("apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n",
                                      "metadata: {name: in-containers, namespace: shop}\nspec:\n",
                                      "  target: {url: \"", target.Url("/"), "\"}\n",
                                      "  load: {users: 4, thinkTime: {min: 5ms, max: 20ms}}\n",
                                      "  duration: 5s\n  agents: 2\n"));
  // The chart's agent defaults reach the agent Pods, and the memory limit their cgroup.
  Json agent;
  ASSERT_TRUE(WaitUntil(seconds(60),
                        [&] {
                          agent = GetPod("shop", "in-containers-agent-0");
                          return agent.is_object() &&
                                 agent["status"].value("phase", "") == "Running";
                        }))
      << agent.dump(1) << cluster_->PodLog("stampede-system", operator_name);
  EXPECT_EQ(agent["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
  EXPECT_EQ(agent["spec"]["containers"][0]["resources"]["limits"]["memory"], "256Mi");
  const pid_t agent_pid = ContainerPid(agent);
  ASSERT_GT(agent_pid, 0);
  EXPECT_EQ(ReadAll(absl::StrCat("/sys/fs/cgroup/memory", Cgroups(agent_pid)["memory"],
                                 "/memory.limit_in_bytes")),
            "268435456\n");
  const CommandResult wait = cluster_->Kubectl({"wait", "--for=condition=Complete", "-n", "shop",
                                                "loadtest/in-containers", "--timeout=120s"},
                                               seconds(130));
  const std::string operator_log = cluster_->PodLog("stampede-system", operator_name);
  ASSERT_EQ(wait.exit_code, 0) << wait.ToString() << "\noperator:\n" << operator_log;
  const Json lt = Json::parse(Kubectl({"get", "lt", "in-containers", "-n", "shop", "-o", "json"}));
  EXPECT_EQ(lt["status"].value("phase", ""), "Succeeded") << lt.dump(1);
  EXPECT_EQ(lt["status"]["summary"].value("requests", uint64_t{0}),
            static_cast<uint64_t>(target.Served()));
  EXPECT_GT(target.Served(), 0);
  // The agents ran from the agent image (the node's log names it) and were assigned their share.
  EXPECT_TRUE(absl::StrContains(operator_log, "in-containers")) << operator_log;
  bool saw_agent = false;
  for (const auto& entry : std::filesystem::directory_iterator(cluster_->node_log_dir())) {
    const std::string name = entry.path().filename();
    if (!absl::StartsWith(name, "shop_in-containers-agent")) continue;
    saw_agent = true;
    EXPECT_TRUE(absl::StrContains(ReadAll(entry.path()), "msg=assigned")) << name;
  }
  EXPECT_TRUE(saw_agent) << "no agent Pod log in " << cluster_->node_log_dir();
  const std::string node_log = cluster_->Logs(200000);
  EXPECT_TRUE(absl::StrContains(node_log, "test_node_started_pod pod=shop/in-containers-agent"))
      << node_log;
  EXPECT_TRUE(absl::StrContains(node_log, "image=" + std::string(kAgentImage)));

  uninstalling = true;
  const testing::CommandOutput uninstalled = uninstall();
  EXPECT_EQ(uninstalled.exit_code, 0) << uninstalled.out << uninstalled.err;
  // The Deployment's Pod goes, and its container with it.
  EXPECT_TRUE(
      WaitUntil(seconds(60), [&] { return GetPod("stampede-system", operator_name).is_null(); }));
  EXPECT_FALSE(RuncKnows(ContainerStatus(operator_pod).value("containerID", "runc://x").substr(7)));
}

// After the chart's operator is gone: one operator watching two namespaces runs the LoadTests of
// both and leaves a third namespace's alone.
TEST_F(ContainerE2eTest, AnOperatorWatchingTwoNamespacesRunsBothAndNoOther) {
  testing::TestTarget target;
  const int grpc_port = testing::FreeLoopbackPort();
  testing::Process op({testing::ControllerBinary(), "operator", "--kubeconfig",
                       cluster_->admin_kubeconfig(), "--namespace=team-a,team-b",
                       absl::StrCat("--grpc-listen=127.0.0.1:", grpc_port),
                       absl::StrCat("--advertise-address=127.0.0.1:", grpc_port),
                       "--metrics-listen=127.0.0.1:0", "--status-interval=1s"});
  for (const char* ns : {"team-a", "team-b", "team-c"}) {
    ASSERT_EQ(cluster_->Kubectl({"create", "namespace", ns}).exit_code, 0);
    WaitForDefaultServiceAccount(ns);
  }
  ASSERT_TRUE(WaitUntil(seconds(30), [&] {
    return op.Stderr().find("msg=reconciling") != std::string::npos;
  })) << op.Stderr();
  EXPECT_TRUE(absl::StrContains(op.Stderr(), "namespace=team-a,team-b")) << op.Stderr();
  for (const char* ns : {"team-a", "team-b", "team-c"}) {
    ApplyYaml(absl::StrCat("lt-", ns),
              absl::StrCat("apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n",
                           "metadata: {name: watched, namespace: ", ns, "}\nspec:\n",
                           "  target: {url: \"", target.Url("/"), "\"}\n",
                           "  load: {users: 2}\n  duration: 2s\n  agents: 1\n"));
  }
  for (const char* ns : {"team-a", "team-b"}) {
    const CommandResult wait = cluster_->Kubectl(
        {"wait", "--for=condition=Complete", "-n", ns, "loadtest/watched", "--timeout=90s"},
        seconds(100));
    ASSERT_EQ(wait.exit_code, 0) << ns << ": " << wait.ToString() << "\n" << op.Stderr();
    EXPECT_EQ(Kubectl({"get", "lt", "watched", "-n", ns, "-o", "jsonpath={.status.phase}"}),
              "Succeeded");
  }
  // Both are done; had team-c been watched, it would have started by now.
  EXPECT_EQ(Kubectl({"get", "lt", "watched", "-n", "team-c", "-o", "jsonpath={.status.phase}"}),
            "");
  EXPECT_EQ(Kubectl({"get", "pods", "-n", "team-c", "-o", "name"}), "");
  EXPECT_FALSE(absl::StrContains(op.Stderr(), "team-c")) << op.Stderr();
}

TEST_F(ContainerE2eTest, SecurityContextVolumesAndLimitsAreWhatTheKernelEnforces) {
  WaitForDefaultServiceAccount("default");
  ApplyYaml("locked-secret",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: demo, namespace: default}\n"
            "stringData: {token: s3cret}\n");
  const int closed_port =
      testing::FreeLoopbackPort();  // nothing listens: the agent retries, bounded by --duration
  ApplyYaml("locked", absl::StrCat(R"(apiVersion: v1
kind: Pod
metadata: {name: locked, namespace: default}
spec:
  automountServiceAccountToken: false
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 65533
    runAsGroup: 65534
    fsGroup: 2000
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: agent
    image: )",
                                   kAgentImage, R"(
    args: [bench, --url, "http://127.0.0.1:)",
                                   closed_port, R"(/", --users, "1", --duration, 60s]
    env: [{name: DEMO_MODE, value: strict}]
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    resources:
      limits: {cpu: 500m, memory: 64Mi}
    volumeMounts:
    - {name: demo, mountPath: /etc/demo}
    - {name: scratch, mountPath: /scratch}
    - {name: cache, mountPath: /cache}
  volumes:
  - {name: demo, secret: {secretName: demo}}
  - {name: scratch, emptyDir: {}}
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
)"));
  Json pod;
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    pod = GetPod("default", "locked");
    return pod.is_object() && pod["status"].value("phase", "") == "Running";
  })) << pod.dump(1);
  EXPECT_EQ(ContainerStatus(pod).value("imageID", ""),
            "ghcr.io/stampede-dev/stampede-agent@" + digests_[0]);
  const pid_t pid = ContainerPid(pod);
  ASSERT_GT(pid, 0);
  const std::string proc = absl::StrCat("/proc/", pid);

  const std::string status = ReadAll(proc + "/status");
  EXPECT_EQ(StatusField(status, "Uid"), "65533\t65533\t65533\t65533") << status;
  EXPECT_EQ(StatusField(status, "Gid"), "65534\t65534\t65534\t65534") << status;
  EXPECT_EQ(StatusField(status, "Groups"), "2000") << status;
  EXPECT_EQ(StatusField(status, "NoNewPrivs"), "1") << status;
  EXPECT_EQ(StatusField(status, "Seccomp"), "2") << "seccomp filter mode\n" << status;
  EXPECT_EQ(StatusField(status, "CapBnd"), "0000000000000000") << status;
  EXPECT_EQ(StatusField(status, "CapEff"), "0000000000000000") << status;

  // Mounts as the container sees them: a read-only root, the Secret read-only, the emptyDirs.
  std::map<std::string, std::pair<std::string, std::string>> mounts;  // point -> options, type
  for (absl::string_view line : absl::StrSplit(ReadAll(proc + "/mountinfo"), '\n')) {
    const std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 10) continue;
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash + 1 < fields.size()) mounts[fields[4]] = {fields[5], fields[dash + 1]};
  }
  ASSERT_TRUE(mounts.count("/")) << ReadAll(proc + "/mountinfo");
  EXPECT_TRUE(absl::StartsWith(mounts["/"].first, "ro")) << mounts["/"].first;
  EXPECT_EQ(mounts["/"].second, "overlay");
  EXPECT_TRUE(absl::StartsWith(mounts["/etc/demo"].first, "ro")) << mounts["/etc/demo"].first;
  EXPECT_TRUE(absl::StartsWith(mounts["/scratch"].first, "rw")) << mounts["/scratch"].first;
  EXPECT_EQ(mounts["/cache"].second, "tmpfs");
  EXPECT_EQ(ReadAll(proc + "/root/etc/demo/token"), "s3cret");
  EXPECT_TRUE(std::filesystem::is_directory(proc + "/root/scratch"));
  EXPECT_FALSE(std::filesystem::exists(proc + "/root/bin/sh")) << "the image has no shell";

  const std::string environ = ReadAll(proc + "/environ");
  EXPECT_TRUE(absl::StrContains(environ, std::string("DEMO_MODE=strict\0", 17)));
  EXPECT_TRUE(absl::StrContains(environ, std::string("HOSTNAME=locked\0", 16)));
  EXPECT_TRUE(absl::StrContains(environ, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"))
      << "the image's own env";

  // Limits as cgroup (v1) settings.
  std::map<std::string, std::string> cgroups = Cgroups(pid);
  ASSERT_TRUE(cgroups.count("memory")) << ReadAll(proc + "/cgroup");
  EXPECT_TRUE(absl::StrContains(cgroups["memory"], "stampede-test-node/")) << cgroups["memory"];
  EXPECT_EQ(ReadAll("/sys/fs/cgroup/memory" + cgroups["memory"] + "/memory.limit_in_bytes"),
            "67108864\n");
  EXPECT_EQ(ReadAll("/sys/fs/cgroup/cpu" + cgroups["cpu"] + "/cpu.cfs_quota_us"), "50000\n");

  // Deleting the Pod stops the container and removes it.
  const std::string id = ContainerStatus(pod).value("containerID", "").substr(7);
  ASSERT_EQ(cluster_->Kubectl({"delete", "pod", "locked", "--timeout=60s"}).exit_code, 0);
  EXPECT_TRUE(testing::WaitForExit(pid, std::chrono::seconds(30)));
  EXPECT_FALSE(RuncKnows(id));
  const std::string volumes =
      cluster_->dir() + "/node/volumes/" + pod["metadata"].value("uid", "none");
  EXPECT_TRUE(WaitUntil(seconds(20), [&] { return !std::filesystem::exists(volumes); }))
      << volumes << ": the Secret's copy outlived its Pod";
}

TEST_F(ContainerE2eTest, RunAsNonRootRefusesARootUserWithTheKubeletsReason) {
  WaitForDefaultServiceAccount("default");
  ApplyYaml("root", absl::StrCat(R"(apiVersion: v1
kind: Pod
metadata: {name: as-root, namespace: default}
spec:
  automountServiceAccountToken: false
  restartPolicy: Never
  containers:
  - name: agent
    image: )",
                                 kAgentImage, R"(
    args: [--help]
    securityContext: {runAsNonRoot: true, runAsUser: 0}
)"));
  Json waiting;
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    waiting = ContainerStatus(GetPod("default", "as-root"))
                  .value("state", Json::object())
                  .value("waiting", Json::object());
    return !waiting.empty();
  }));
  EXPECT_EQ(waiting.value("reason", ""), "CreateContainerConfigError");
  EXPECT_TRUE(absl::StrContains(waiting.value("message", ""),
                                "container has runAsNonRoot and image will run as root"))
      << waiting.dump();
  EXPECT_EQ(GetPod("default", "as-root")["status"].value("phase", ""), "Pending");
  ASSERT_EQ(cluster_->Kubectl({"delete", "pod", "as-root", "--timeout=60s"}).exit_code, 0);
}

// The test node reports a container Running only once runc has made it: every state the API
// server records is seen through a watch, and at the first Running runc already knows the
// container. ContainerCreating, a Pending waiting state, comes before it.
TEST_F(ContainerE2eTest, APodIsRunningOnlyOnceRuncHasMadeItsContainer) {
  WaitForDefaultServiceAccount("default");
  absl::StatusOr<Json> list = cluster_->client().List("/api/v1/namespaces/default/pods");
  ASSERT_TRUE(list.ok()) << list.status();
  bool creating = false;
  std::atomic<bool> running{false};
  testing::CommandOutput state;
  kube::WatchCanceler canceler;
  std::thread watcher([&] {
    kube::WatchOptions options;
    options.resource_version = (*list)["metadata"].value("resourceVersion", "");
    options.field_selector = "metadata.name=creating";
    options.timeout_seconds = 90;
    (void)cluster_->client().Watch(
        "/api/v1/namespaces/default/pods", options,
        [&](kube::WatchEvent& event) {
          const Json status = event.object.value("status", Json::object());
          const Json container = status.contains("containerStatuses")
                                     ? status["containerStatuses"][0]
                                     : Json::object();
          if (container.contains("state") && container["state"].contains("waiting") &&
              container["state"]["waiting"].value("reason", "") == "ContainerCreating") {
            creating = true;
          }
          if (status.value("phase", "") != "Running") return true;
          state = testing::RunToEnd({kRunc, "--root", cluster_->dir() + "/node/runc", "state",
                                     container.value("containerID", "runc://").substr(7)},
                                    seconds(20));
          running = true;
          return false;
        },
        &canceler);
  });
  const int closed_port = testing::FreeLoopbackPort();  // the agent retries until --duration
  ApplyYaml("creating", absl::StrCat("apiVersion: v1\nkind: Pod\nmetadata: {name: creating, "
                                     "namespace: default}\nspec:\n",
                                     "  automountServiceAccountToken: false\n  restartPolicy: "
                                     "Never\n  containers:\n  - name: agent\n    image: ",
                                     kAgentImage, "\n    args: [bench, --url, 'http://127.0.0.1:",
                                     closed_port, "/', --users, '1', --duration, 20s]\n"));
  const bool seen = WaitUntil(seconds(60), [&] { return running.load(); });
  canceler.Cancel();  // the watch has ended on its own if it saw Running
  watcher.join();
  ASSERT_TRUE(seen) << "the watch saw no Running: " << GetPod("default", "creating").dump(1);
  EXPECT_TRUE(creating) << "no ContainerCreating state before Running";
  EXPECT_EQ(state.exit_code, 0) << "Running, but runc has no container yet: " << state.err;
  EXPECT_EQ(cluster_->Kubectl({"delete", "pod", "creating", "--timeout=60s"}).exit_code, 0);
}

TEST_F(ContainerE2eTest, ExitCodesAndRestartsReachThePodStatus) {
  WaitForDefaultServiceAccount("default");
  // stampede-agent exits 2 on an unknown flag.
  for (const char* policy : {"Never", "OnFailure"}) {
    const std::string name = absl::AsciiStrToLower(absl::StrCat("exits-", policy));
    ApplyYaml(name, absl::StrCat("apiVersion: v1\nkind: Pod\nmetadata: {name: ", name,
                                 ", namespace: default}\nspec:\n",
                                 "  automountServiceAccountToken: false\n  restartPolicy: ", policy,
                                 "\n  containers:\n  - name: agent\n    image: ", kAgentImage,
                                 "\n    args: [bench, --no-such-flag]\n"));
  }
  Json never;
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    never = GetPod("default", "exits-never");
    return never.is_object() && never["status"].value("phase", "") == "Failed";
  })) << never.dump(1);
  EXPECT_EQ(ContainerStatus(never)["state"]["terminated"].value("exitCode", -1), 2);
  EXPECT_EQ(ContainerStatus(never).value("restartCount", -1), 0);

  Json restarted;
  ASSERT_TRUE(WaitUntil(seconds(60), [&] {
    restarted = GetPod("default", "exits-onfailure");
    return ContainerStatus(restarted).value("restartCount", 0) >= 2;
  })) << restarted.dump(1);
  EXPECT_EQ(restarted["status"].value("phase", ""), "Running") << "restarting, not finished";
  EXPECT_EQ(ContainerStatus(restarted)["lastState"]["terminated"].value("exitCode", -1), 2)
      << restarted.dump(1);
  for (const char* name : {"exits-never", "exits-onfailure"}) {
    EXPECT_EQ(cluster_->Kubectl({"delete", "pod", name, "--timeout=60s"}).exit_code, 0);
  }
}

}  // namespace
}  // namespace stampede::e2e
