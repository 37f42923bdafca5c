// The operator's reconcile loop: LoadTest custom resources in, agent Pods and status out.
//
// Level-triggered, as controller-runtime's: a LoadTest's key ("namespace/name") is queued when it
// or one of its Pods changes, and once a second while its test runs; Reconcile reads the cached
// world and converges:
//   - a new LoadTest gets the finalizer, a token Secret, a Run in the embedded Controller (run id =
//     the object's uid) and its agent Pods; invalid specs end as Failed/InvalidSpec at once;
//   - a LoadTest whose status says Starting or Running but that this process does not run (the
//     operator restarted, or leadership moved) is adopted: the same Pods, the same token, and the
//     agents, which redial, replay their reports (no second start);
//   - status is written from the Run (merge-patch of /status) when it changed, at most every
//     `status_interval` while running and at once on a phase change; never when nothing changed;
//   - Pods that cannot run (image pull errors, unschedulable, exited before connecting) end the
//     test as Failed with a reason; a Pod deleted or failed mid-run is a lost agent (the spec's
//     onAgentLoss decides); spec.abort ends it as Aborted; deleting the LoadTest aborts it, writes
//     the final status, deletes Pods and Secret, then releases the finalizer;
//   - terminal phases are absorbing: nothing is started again.
// Kubernetes Events mark the main transitions.
//
// Thread safety: Start and Stop from the owner; everything else runs on the reconciler's worker
// thread and the informers' threads.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_
#define STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "controller/controller.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/operator/kube_launcher.h"

namespace stampede::controller {

inline constexpr char kFinalizer[] = "stampede.dev/cleanup";

struct ReconcilerOptions {
  std::string watch_namespace;  // empty: every namespace
  std::string identity;         // reported in Events
  AgentPodOptions pods;
  std::chrono::milliseconds status_interval{2000};
  // A Pod that stays unschedulable this long fails a starting test.
  std::chrono::seconds unschedulable_timeout{30};
  RunOptions run;  // agent_reconnect_s should equal pods.reconnect_s
};

class Reconciler {
 public:
  // `client` and `controller` must outlive the reconciler.
  Reconciler(kube::Client* client, Controller* controller, ReconcilerOptions options);
  ~Reconciler();  // Stop()

  // Starts the informers and the worker; returns once both caches are synced (or false on timeout).
  bool Start(std::chrono::milliseconds sync_timeout);
  // Stops watching and working. Tests keep running (their Pods are left alone): the next leader
  // adopts them.
  void Stop();

 private:
  struct Active {
    std::string uid;
    std::shared_ptr<Run> run;
    KubeLauncher* launcher = nullptr;  // owned by the run
    v1::LoadTest test;
    kube::Json last_status = kube::Json::object();  // what we last wrote
    std::chrono::steady_clock::time_point last_write;
    bool adopted = false;
    std::map<std::string, std::chrono::steady_clock::time_point> unschedulable_since;
  };

  void Enqueue(const std::string& key);
  void Work();
  absl::Status Reconcile(const std::string& key);
  absl::Status Begin(const std::string& key, const kube::Json& object, const std::string& phase);
  absl::Status Finalize(const std::string& key, const kube::Json& object);
  void WatchPods(const std::string& key, Active& active);
  absl::Status SyncStatus(const std::string& key, Active& active, bool force);
  absl::Status WriteStatus(const std::string& ns, const std::string& name, const kube::Json& status);
  absl::StatusOr<std::string> EnsureToken(const v1::LoadTest& test);
  void CleanUp(const std::string& ns, const std::string& name);
  void Event(const kube::Json& object, const std::string& type, const std::string& reason, const std::string& message);

  std::string LoadTestsPath(const std::string& ns) const;

  // Constant after construction.
  kube::Client* const client_;
  Controller* const controller_;
  const ReconcilerOptions options_;
  std::unique_ptr<kube::Informer> loadtests_;
  std::unique_ptr<kube::Informer> pods_;
  std::thread worker_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> failed_ ABSL_GUARDED_BY(mu_);  // queued again on the next round
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Worker thread only.
  std::map<std::string, Active> active_;
};

// The LoadTest status as the custom resource's .status JSON (unset fields omitted).
kube::Json StatusJson(const v1::LoadTestStatus& status);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_
