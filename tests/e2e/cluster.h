// A throwaway Kubernetes cluster for the end-to-end tests: etcd, kube-apiserver (RBAC, static
// tokens), kube-controller-manager (garbage collector and namespace controllers; with
// Options::workload_controllers also deployments, replica sets and service account tokens),
// kube-scheduler and one stampede-test-node, all on free ports of 127.0.0.1 with their state in a
// fresh temporary directory (etcd's in /dev/shm when there is one; directories a crashed test
// left behind are removed by the next Start). The recipe is
// /work/shared/k8s-e2e.md; the binaries come from scripts/k8s-build.
//
// Users: "admin" (group system:masters) and "viewer" (group stampede-e2e-viewers, bound to the
// ClusterRole of that name: get/list/watch on Pods, ConfigMaps, Events, Namespaces, Nodes,
// Services, Deployments, Leases, LoadTests and CRDs, and nothing on Secrets), each with a
// kubeconfig that skips TLS verification (the apiserver's certificate is self-signed).
//
// Start returns once the apiserver is ready, the Node is Ready and schedulable, and a probe Pod
// went through scheduler and node agent to Succeeded. The controller manager has been started by
// then (after the CRDs are established) but may still be syncing its caches: tests that need the
// garbage collector or namespace deletion wait for the effect, bounded. Stop (and the destructor)
// ends every process (SIGTERM, then SIGKILL after a few seconds; the node agent first, which kills
// the Pods' processes) and removes the directories, unless STAMPEDE_E2E_KEEP=1 is set in the
// environment. Every process the cluster starts dies with the thread that called Start
// (PR_SET_PDEATHSIG), so a crashed test leaves no control plane behind (only a Pod's grandchild
// process can outlive a node agent that is killed outright): call Start from a thread that
// outlives the cluster, such as the test's main thread.
//
// Thread safety: Kubectl, KubectlAs, client() and the accessors may be called from any thread;
// Start and Stop by the owner only. Errors: Start returns FailedPrecondition when binaries are
// missing, DeadlineExceeded or Internal with the tail of the failing component's log otherwise.
#ifndef STAMPEDE_TESTS_E2E_CLUSTER_H_
#define STAMPEDE_TESTS_E2E_CLUSTER_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/kube/client.h"

namespace stampede::e2e {

// What a command printed and how it ended.
struct CommandResult {
  int exit_code = -1;  // -1: it did not end within its timeout (and was killed) or did not start
  std::string out;
  std::string err;
  // The exit code, stdout and stderr, one after the other, for failure messages.
  std::string ToString() const;
};

class Cluster {
 public:
  struct Options {
    // The node agent's --bin-dir: a container whose command's basename is a file here runs that
    // file (say, the freshly built stampede-agent). Empty: commands run as written.
    std::string node_bin_dir;
    std::string node_name = "stampede-e2e-node";
    // CustomResourceDefinition files applied before the controller manager starts, so its
    // garbage collector watches those resources from the start; otherwise it notices new kinds
    // only at its next discovery resync (every 30 s).
    std::vector<std::string> crd_files;
    std::chrono::seconds start_timeout{120};
    // Image archives (scripts/images) the node agent loads: Pods naming them run as real runc
    // containers (see test_node.h).
    std::vector<std::string> node_image_archives;
    // Runs what a Deployment needs too: the deployment, replicaset, serviceaccount and token
    // controllers, with the ServiceAccount admission plugin, so Pods get their service account's
    // token mounted (a Secret volume, as in Kubernetes 1.20).
    bool workload_controllers = false;
    // The node agent's --simulate (every Pod reported Running, nothing started; the probe Pod
    // then only has to reach Running) and --max-pods (0: its default).
    bool node_simulate = false;
    int node_max_pods = 0;
  };

  static absl::StatusOr<std::unique_ptr<Cluster>> Start(Options options);
  ~Cluster();  // Stop()
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Ends every process and removes the directory. Idempotent.
  void Stop();

  // Runs the cluster's kubectl (1.20, like the control plane) as admin, or as `user` ("admin" or
  // "viewer"). The process is killed when it outlives `timeout`.
  CommandResult Kubectl(const std::vector<std::string>& args,
                        std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  CommandResult KubectlAs(const std::string& user, const std::vector<std::string>& args,
                          std::chrono::seconds timeout = std::chrono::seconds(60)) const;

  // Stops the apiserver and etcd (SIGTERM), then starts both again on the same ports, data and
  // certificates, and returns once the apiserver is ready again: an outage of the control plane
  // that every client must ride out. etcd is compacted to its newest revision before the
  // apiserver comes back, so a watch resumed from any resourceVersion held before gets 410 Gone.
  // Their logs go to <name>-restarted.log. Called by the owner, between Start and Stop.
  absl::Status RestartApiServerAndEtcd(std::chrono::seconds timeout = std::chrono::seconds(60));

  // SIGSTOP and SIGCONT to the apiserver: its connections stay open and say nothing, so every
  // watch on it falls silent (what a dead connection looks like to a client).
  void FreezeApiServer(bool frozen);

  // A client with the admin's credentials.
  kube::Client& client() const { return *client_; }
  const std::string& server() const { return server_; }  // https://127.0.0.1:<port>
  const std::string& admin_kubeconfig() const { return admin_kubeconfig_; }
  const std::string& viewer_kubeconfig() const { return viewer_kubeconfig_; }
  const std::string& node_name() const { return options_.node_name; }
  // Where the node agent writes each Pod's output: <namespace>_<pod>.log.
  const std::string& node_log_dir() const { return node_log_dir_; }
  // A Pod's output so far; empty when it has none (yet).
  std::string PodLog(const std::string& name_space, const std::string& pod) const;
  const std::string& dir() const { return dir_; }
  // Wall time from the call to Start until it returned.
  std::chrono::milliseconds start_duration() const { return start_duration_; }
  // When each stage of Start finished, e.g. "apiserver_ready=4800ms node_ready=5900ms ...".
  const std::string& start_timeline() const { return start_timeline_; }
  // The last `bytes` of every component's log, labelled, for failure messages.
  std::string Logs(size_t bytes = 3000) const;

  // $STAMPEDE_K8S_BIN, else /var/cache/stampede/k8s/bin.
  static std::string K8sBinDir();

 private:
  class Child;

  explicit Cluster(Options options);
  absl::Status Boot();
  absl::Status WaitForApiServer(std::chrono::steady_clock::time_point deadline);
  absl::Status InstallCrds(std::chrono::steady_clock::time_point deadline);
  absl::Status WaitForNode(std::chrono::steady_clock::time_point deadline);
  absl::Status RunProbePod(std::chrono::steady_clock::time_point deadline);
  // Fails with the component's log tail when it is no longer running.
  absl::Status CheckAlive(Child* child) const;
  // `what`, the cluster's directory and the tail of `child`'s log (every log when null).
  absl::Status Failure(absl::StatusCode code, const std::string& what, const Child* child) const;

  const Options options_;
  std::string dir_;
  std::string shm_dir_;  // holds etcd_dir_ when /dev/shm is usable
  std::string etcd_dir_;
  std::string k8s_bin_;
  std::string server_;
  std::string admin_token_, viewer_token_;
  std::string admin_kubeconfig_, viewer_kubeconfig_;
  std::string node_log_dir_;
  std::chrono::milliseconds start_duration_{0};
  std::string start_timeline_;
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<Child> etcd_, apiserver_, controller_manager_, scheduler_, node_;
  std::vector<std::string> etcd_argv_, apiserver_argv_;  // for RestartApiServerAndEtcd
  int etcd_port_ = 0;
  mutable std::atomic<int> kubectl_runs_{0};
  bool stopped_ = false;
};

}  // namespace stampede::e2e

#endif  // STAMPEDE_TESTS_E2E_CLUSTER_H_
