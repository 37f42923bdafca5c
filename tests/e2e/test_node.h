// The engine of stampede-test-node, the kubelet stand-in of the end-to-end tests (a real control
// plane has no kubelet here; see /work/shared/k8s-e2e.md, section 5). It registers one Node, keeps
// it Ready, and runs the first container of every Pod bound to it on the host network, in one of
// two ways:
//   - Container mode, for a Pod whose image is one of `image_archives` (loaded in Start, as
//     `kind load image-archive` would): a real OCI container run by runc from that image, with
//     the runtime spec of oci_runtime.h (securityContext, env, secret/configMap/emptyDir volumes,
//     resource limits as cgroup limits). The container's root file system is an overlay over the
//     image's, per container. KUBERNETES_SERVICE_HOST and _PORT point at `api_server`, as the
//     kubelet sets them from the `kubernetes` Service. Its output goes to the log file as well.
//   - Process mode, for any other image: no image is pulled, the container's command runs as a
//     local process, as is, or from `bin_dir` when that folder holds a file named like the
//     command's basename (so a Pod whose image would contain /usr/local/bin/stampede-agent runs
//     the freshly built one).
//
// Supported: command+args with $(VAR) expansion; env from value, secretKeyRef, configMapKeyRef
// and fieldRef (metadata.name, metadata.namespace, metadata.uid, spec.nodeName,
// spec.serviceAccountName, status.podIP, status.hostIP); workingDir; terminationMessagePolicy
// FallbackToLogsOnError (a failed container's message is its log's tail, 80 lines or 2048
// bytes); phase, conditions and containerStatuses as the kubelet reports them; graceful deletion
// (SIGTERM to the process group, SIGKILL after min(grace period, max_grace), then DELETE with
// gracePeriodSeconds 0); images named invalid.example/... fail with ErrImagePull, to simulate a
// registry that refuses the pull.
// Restarts follow restartPolicy (Always, OnFailure, Never): a container that exits is started
// again after a back-off (restart_backoff, doubling up to 16 times that), with restartCount and
// lastState in its status and the Pod Running meanwhile.
// Simulated mode (Options::simulate) starts nothing: each Pod goes straight to Running, ready.
// Not supported: containers after the first, init containers, envFrom, resourceFieldRef, probes
// (every container counts as ready once started), `kubectl logs`/`exec` (the output is in
// log_dir/<namespace>_<pod>.log instead); in process mode also image entrypoints (a container
// without command is reported CreateContainerConfigError), volumes, securityContext and limits.
//
// Processes get the node agent's environment, then HOSTNAME=<pod name>, then the Pod's env; each
// runs in its own process group with stdout and stderr in its log file. When the main process
// exits, whatever is left of its group is killed, as a container's would be, and the Pod is
// reported (or deleted) only once the whole group is gone. To reap the group's orphans, the
// node agent's process becomes a child subreaper (PR_SET_CHILD_SUBREAPER) in Start.
//
// Thread safety: Start and Stop are called by the owner, once each. The work runs on the node's
// own threads: the pod informer's, one sync loop (every API write and process start) and a
// reaper (waitpid). Errors: Start returns what kept the Node from registering; later API errors
// are logged and retried on the next event, heartbeat or retry period.
#ifndef STAMPEDE_TESTS_E2E_TEST_NODE_H_
#define STAMPEDE_TESTS_E2E_TEST_NODE_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/mutex.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "tests/e2e/oci_runtime.h"

namespace stampede::e2e {

class TestNode {
 public:
  struct Options {
    std::string node_name;
    std::string bin_dir;  // empty: commands run as written
    std::string log_dir;  // must exist
    std::chrono::milliseconds heartbeat_period{10'000};
    std::chrono::milliseconds max_grace{10'000};       // longest wait between SIGTERM and SIGKILL
    std::chrono::milliseconds retry_period{2'000};     // after an API error, or a missing Secret
    std::chrono::milliseconds restart_backoff{1'000};  // before the first restart
    // Container mode: archives from scripts/images, and the node's folder for images, bundles
    // and runc's state (must exist when there are archives). `api_server`: https://host:port.
    std::vector<std::string> image_archives;
    std::string state_dir;
    std::string api_server;
    std::string runc = "runc";
    // Simulated mode, for scale tests of the operator: every Pod is reported Running at once and
    // nothing is started (no process, no container, no Secret read); a deleted Pod is deleted
    // at once. Its status writes and deletes go out on `api_writers` threads, as the kubelets of
    // that many nodes would send them (one after the other, 10,000 Pods take the better part of
    // an hour on a busy API server).
    bool simulate = false;
    int api_writers = 8;
    int max_pods = 500;  // the Node's "pods" capacity
  };

  // `client` must outlive the node.
  TestNode(kube::Client* client, Options options);
  ~TestNode();  // Stop()
  TestNode(const TestNode&) = delete;
  TestNode& operator=(const TestNode&) = delete;

  // Creates the Node (or takes over an existing one of that name), reports it Ready, removes the
  // not-ready taint, then starts watching its Pods.
  absl::Status Start();
  // Stops watching and kills every process group it started (SIGKILL), then returns once the
  // threads are joined. Pods are left as they are in the API. Idempotent.
  void Stop();

 private:
  enum class State { kWaiting, kRunning, kExited };

  // What the node knows about one Pod; owned by the sync thread.
  struct Run {
    std::string uid;
    State state = State::kWaiting;
    pid_t pid = -1;                                    // also the process group
    std::string accepted_at, started_at, finished_at;  // RFC 3339
    bool attempted = false;                            // StartPod ran at least once
    int restart_count = 0;
    kube::Json last_terminated;  // the state.terminated of the run before the last restart
    // Container mode: the runc container id, and its bundle until it is cleaned up (both empty
    // in process mode).
    std::string container_id, bundle, image_id;
    // Container mode: `runc state` has found the container. Until then `runc run` is creating it
    // and the Pod is reported waiting (ContainerCreating), not Running.
    bool created = true;
    std::string log_path;  // where its output goes
    int exit_code = 0;
    std::string terminated_reason, terminated_message;
    bool reported = false;         // the latest state is in the API
    bool delete_queued = false;    // simulated: its delete waits for a writer or is under way
    std::string waiting_reported;  // reason and message of the last Pending report
    // SIGTERM was sent; SIGKILL is due then.
    std::optional<std::chrono::steady_clock::time_point> kill_at;
    bool killed = false;   // SIGKILL was sent
    bool drained = false;  // exited, and nothing is left of its process group
    // Sync this Pod again then (retry an API call, or a missing Secret).
    std::optional<std::chrono::steady_clock::time_point> retry_at;
  };

  // `ready`: the first heartbeat went through (else the next one is due after retry_period).
  void SyncLoop(bool ready);
  void ReapLoop();
  // Reports the Node Ready and takes the not-ready taint off; false on an API error.
  bool Heartbeat();
  void SyncPod(const std::string& key);
  void StartPod(const kube::Json& pod, Run& run);
  // Container mode: writes the bundle of `pod`'s container (overlay root, volumes, config.json)
  // and returns runc's argv; the error is the waiting reason's message.
  absl::StatusOr<std::vector<std::string>> PrepareContainer(
      const kube::Json& pod, const OciImage& image,
      const std::vector<std::pair<std::string, std::string>>& pod_env, Run& run);
  // Removes what runc and PrepareContainer left of a container that ended (`runc_delete`: with
  // `runc delete --force` first, which also kills what is left of it).
  void CleanUpContainer(Run& run, bool runc_delete = true);
  // Runs a helper (runc delete) to its end, while the reaper runs; its exit code, or -1.
  int RunHelper(std::vector<std::string> argv);
  // Whether an exited container is started again, per restartPolicy.
  bool RestartDue(const kube::Json& pod, const Run& run) const;
  void Terminate(const kube::Json& pod, Run& run);
  void Report(const kube::Json& pod, Run& run);
  void ReportWaiting(const kube::Json& pod, Run& run, const std::string& reason,
                     const std::string& message);
  bool Patch(const kube::Json& pod, Run& run, const kube::Json& status);
  // Simulated mode: sends queued status patches and deletes until Stop; a failed one is marked
  // for a retry.
  void WriteLoop();
  struct ApiWrite;
  // Simulated mode: hands `write` to the writer threads.
  void Queue(ApiWrite write);
  // Sends one status patch or delete and logs its outcome; true when it landed or is no longer
  // needed (the Pod is gone or was replaced), false when it should be tried again.
  bool Send(const ApiWrite& write);
  // Sync thread: the Pods whose queued write failed are synced again after retry_period.
  void RetryFailedWrites() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The exit status the reaper saw for `pid`, if it exited.
  std::optional<int> TakeExit(pid_t pid);

  // Constant after construction.
  kube::Client* const client_;
  const Options options_;
  std::string registered_at_;

  std::unique_ptr<kube::Informer> informer_;
  std::thread sync_thread_, reap_thread_;
  std::map<std::string, Run> runs_;  // by "namespace/name"; sync thread only

  common::Mutex mu_;
  common::CondVar cv_;  // dirty_, spawned_ or stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);  // pods to sync
  uint64_t spawned_ ABSL_GUARDED_BY(mu_) = 0;         // processes started so far
  std::set<pid_t> children_ ABSL_GUARDED_BY(mu_);     // main processes not yet reaped
  // Process groups (the main process's pid) of the Pods the node tracks -> pod key; a group
  // stays until its last process is reaped.
  std::map<pid_t, std::string> groups_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, int> exits_ ABSL_GUARDED_BY(mu_);  // wait statuses of main processes
  std::set<pid_t> helpers_ ABSL_GUARDED_BY(mu_);     // RunHelper's children not yet reaped
  // Simulated mode: status patches and deletes for the writer threads, and those that failed.
  struct ApiWrite {
    std::string key, path;
    kube::Json body;  // the merge patch, or the delete options
    bool is_delete = false;
  };
  std::deque<ApiWrite> writes_ ABSL_GUARDED_BY(mu_);
  std::vector<ApiWrite> failed_writes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> writers_;

  std::vector<OciImage> images_;  // constant after Start
};

}  // namespace stampede::e2e

#endif  // STAMPEDE_TESTS_E2E_TEST_NODE_H_
