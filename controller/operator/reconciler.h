// The operator's decisions: one LoadTest custom resource in, agent Pods and status out.
//
// Level-triggered, as controller-runtime's: Reconcile(key) reads the cached world (the LoadTest
// and its Pods) and converges:
//   - a new LoadTest gets the finalizer, a token Secret, a Run (run id: RunIdOf the uid) and its
//     agent Pods; invalid specs end as Failed/InvalidSpec at once, and tests the policy refuses
//     as Failed/PolicyRefused (the rule and the field in the message and a Warning Event);
//   - a LoadTest whose status says Starting or Running but that this process does not run (the
//     operator restarted, or leadership moved) is adopted: the same Pods, the same token, and the
//     agents, which redial, replay their reports (no second start);
//   - status is written from the Run (merge-patch of /status) when it changed, at most every
//     `status_interval` while running and at once on a phase change; never when nothing changed;
//   - Pods that cannot run (image pull errors, unschedulable, exited before connecting) end the
//     test as Failed with a reason; a Pod deleted or failed mid-run is a lost agent (the spec's
//     onAgentLoss decides); spec.abort ends it as Aborted; deleting the LoadTest aborts it, writes
//     the final status, deletes Pods and Secret, then releases the finalizer;
//   - terminal phases are absorbing: an edit starts nothing (the condition SpecChangeIgnored says
//     so); setting the annotation stampede.dev/run-id to a value other than status.runId starts
//     a fresh run once the previous run's Pods are gone (set while a test runs, when it ends).
// Kubernetes Events mark the main transitions. The ReconcileLoop (reconcile_loop.h) calls it.
//
// Thread safety: not thread-safe; one caller (the loop's worker thread, or a test). The caches and
// the API it is given are thread-safe and must outlive it.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_
#define STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/policy.h"
#include "controller/kube/api.h"
#include "controller/metrics.h"
#include "controller/operator/kube_launcher.h"
#include "controller/run.h"
#include "controller/run_registry.h"

namespace stampede::controller {

inline constexpr char kFinalizer[] = "stampede.dev/cleanup";
// A new value asks a finished LoadTest for a new run.
inline constexpr char kRunIdAnnotation[] = "stampede.dev/run-id";

struct ReconcilerOptions {
  std::vector<std::string> watch_namespaces;  // empty: every namespace
  std::string identity;                       // reported in Events
  AgentPodOptions pods;
  std::chrono::milliseconds status_interval{2000};
  // A Pod that stays unschedulable this long fails a starting test.
  std::chrono::seconds unschedulable_timeout{30};
  // A deleted test's agents are stopped; their last reports are waited for this long.
  std::chrono::milliseconds deletion_grace{5000};
  RunOptions run;  // agent_reconnect_s should equal pods.reconnect_s; its clock is the reconciler's
  // Who may aim load where (common/policy.h): a new test it refuses ends as Failed/PolicyRefused
  // before any Pod or Secret exists. Null: common::Policy::AllowAll().
  std::shared_ptr<const common::Policy> policy;
  // Counts the refusals, the agents' too (null: not counted).
  std::shared_ptr<PolicyRefusals> refusals;
  // A watch that delivers no byte for this long is dropped and started again (its connection died
  // without a word); zero: the informer's default, the watch timeout plus 5 s.
  std::chrono::milliseconds watch_idle_timeout{0};
  // The reconcile loop's writes go out only while this says yes (the replica still holds its
  // Lease; see kube::FencedApi); null: always.
  std::function<bool()> may_write;
  // With pods.tls: the CAs (PEM) a new test's agents trust, put in its token Secret.
  std::function<std::string()> agent_ca;
};

// Where the reconciler reads and writes. Everything must outlive the reconciler.
struct ReconcilerWorld {
  kube::Api* api = nullptr;
  const kube::ObjectCache* loadtests = nullptr;  // the LoadTests watched
  const kube::ObjectCache* pods = nullptr;       // the agent Pods (label kManagedByLabel)
  RunRegistry* runs = nullptr;
};

class Reconciler {
 public:
  Reconciler(ReconcilerWorld world, ReconcilerOptions options);

  // Converges the LoadTest "namespace/name". An error means it should be tried again later.
  absl::Status Reconcile(const std::string& key);
  // The keys of the tests this reconciler runs: look at them again every second, since their
  // status comes from the Run, not from the API server.
  std::vector<std::string> ActiveKeys() const;
  // Lets go of every running test without stopping it (its Pods are left alone): the operator
  // is shutting down and whoever leads next adopts them.
  void DetachAll();

 private:
  // What WatchPods read from one cached Pod object (`pod` keeps it, so its address stays its own).
  // The four signals are everything WatchPods acts on; each is decided here only, so a Pod with
  // none of them (quiet) can be skipped without reading it again.
  struct PodSeen {
    std::shared_ptr<const kube::Json> pod;
    std::string test;            // "namespace/name" of its LoadTest; empty: none
    int64_t index = -1;          // the agent it runs; -1: no valid index label
    bool deleted = false;        // metadata.deletionTimestamp is set
    bool failed = false;         // status.phase is Failed
    bool stuck = false;          // a container waits for a reason that will not pass (StuckReason)
    bool unschedulable = false;  // PodScheduled is False for reason Unschedulable
    uint64_t round = 0;          // the last WatchPods round that saw it in the cache
    bool quiet() const { return !deleted && !failed && !stuck && !unschedulable; }
  };
  struct Active {
    std::string uid;
    std::string run_tag;  // the stampede.dev/run-id this run answers (status.runId)
    std::shared_ptr<Run> run;
    KubeLauncher* launcher = nullptr;  // owned by the run
    v1::LoadTest test;
    kube::Json last_status = kube::Json::object();  // what we last wrote
    int64_t last_write_ns = 0;                      // when, on the clock's monotonic time
    bool adopted = false;
    std::map<std::string, int64_t> unschedulable_since_ns;  // per Pod name
  };

  // The data tables (ConfigMap and Secret keys) and env values of a test with scenarios.
  // Unavailable when the API server could not answer (try again).
  absl::StatusOr<common::TestData> ReadTestData(const v1::LoadTest& test);
  absl::Status Begin(const std::string& key, const kube::Json& object, const std::string& phase,
                     const std::string& run_tag);
  // A finished test asked for a new run by stampede.dev/run-id: once the old Pods are gone, its
  // status is reset (every field of the old run removed) and the run begins.
  absl::Status Rerun(const std::string& key, const kube::Json& object, const std::string& run_tag);
  // A finished test whose spec changed since: observedGeneration catches up, and the condition
  // SpecChangeIgnored says the edit starts no new run. Nothing is written otherwise.
  absl::Status ReportIgnoredEdit(const kube::Json& object);
  absl::Status Finalize(const std::string& key, const kube::Json& object);
  // The tests of `ns` this reconciler runs that have not ended.
  uint32_t RunningIn(const std::string& ns) const;
  // A test that ends before any agent ran: a final status (and a Warning event when `warn`).
  absl::Status EndBeforeStart(const kube::Json& object, const std::string& phase,
                              const std::string& reason, const std::string& message,
                              const std::string& run_tag, bool warn);
  static PodSeen ReadPod(std::shared_ptr<const kube::Json> shared);
  void WatchPods(const std::string& key, Active& active);
  absl::Status SyncStatus(const std::string& key, Active& active, bool force);
  absl::Status WriteStatus(const std::string& ns, const std::string& name,
                           const kube::Json& status);
  absl::StatusOr<std::string> EnsureToken(const v1::LoadTest& test);
  void Forget(std::map<std::string, Active>::iterator it);
  void CleanUp(const std::string& ns, const std::string& name);
  void Event(const kube::Json& object, const std::string& type, const std::string& reason,
             const std::string& message);

  // "uid/generation/run tag" of a test EndBeforeStart ended.
  static std::string EndedKey(const kube::Json& object, const std::string& run_tag);

  const ReconcilerWorld world_;
  const ReconcilerOptions options_;
  const common::Clock* const clock_;
  std::map<std::string, Active> active_;
  // Every cached Pod object as WatchPods last read it, for all tests (each round lists every Pod);
  // emptied when no test is active.
  std::unordered_map<const kube::Json*, PodSeen> pods_seen_;
  uint64_t pod_round_ = 0;
  // Tests ended before they started, remembered so a reconcile that still sees them new (the
  // cache lags the status write) neither refuses nor counts them again. Emptied past the bound.
  static constexpr size_t kMaxRemembered = 10000;
  std::set<std::string> ended_before_start_;
};

// The name of the LoadTest an agent Pod belongs to (its kLoadTestLabel); empty when it has none.
std::string LoadTestOfPod(const kube::Json& pod);
// Drops what the operator never reads from an agent Pod before its cache keeps it: the spec
// (the operator wrote it) and metadata.managedFields. What is left (metadata's name, namespace,
// labels, uid, resourceVersion, deletionTimestamp; the whole status) is what the reconciler reads.
void TrimAgentPod(kube::Json& pod);
// The LoadTest collection of `ns` ("" for every namespace), and the agent Pods'.
std::string LoadTestsPath(const std::string& ns);
std::string AgentPodsPath(const std::string& ns);

// The controller's id of a LoadTest's run: its uid, and for a run asked for by the annotation
// stampede.dev/run-id, a hash of the annotation's value after it (stable across restarts, so a
// new leader adopts the same run).
std::string RunIdOf(const std::string& uid, const std::string& run_tag);

// The LoadTest status as the custom resource's .status JSON (unset fields omitted).
kube::Json StatusJson(const v1::LoadTestStatus& status);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_RECONCILER_H_
