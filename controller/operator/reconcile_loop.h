// What drives the Reconciler: an informer on the LoadTests and one on the agent Pods (one pair
// for each watched namespace, behind one cache each, or a cluster-wide pair), a queue of keys, and
// one worker thread. A key is queued when its LoadTest or one of its Pods changes,
// when a reconcile of it failed (tried again on the next round), and every second while its test
// runs. The worker reconciles each queued key once per round.
//
// Thread safety: Start and Stop from the owner; the informers' handlers only queue keys.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_RECONCILE_LOOP_H_
#define STAMPEDE_CONTROLLER_OPERATOR_RECONCILE_LOOP_H_

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"
#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/operator/reconciler.h"
#include "controller/run_registry.h"

namespace stampede::controller {

class ReconcileLoop {
 public:
  // `client` and `runs` must outlive the loop.
  ReconcileLoop(kube::Client* client, RunRegistry* runs, ReconcilerOptions options);
  ~ReconcileLoop();  // Stop()

  // Starts the informers and the worker; returns once both caches are synced (or false on timeout).
  bool Start(std::chrono::milliseconds sync_timeout);
  // Stops watching and working. Tests keep running (their Pods are left alone): the next leader
  // adopts them.
  void Stop();

 private:
  void Enqueue(const std::string& key);
  void Work();

  // Several informers as one cache: a key ("namespace/name") goes to its namespace's informer.
  class Caches : public kube::ObjectCache {
   public:
    void Add(std::string name_space, std::unique_ptr<kube::Informer> informer);
    std::optional<kube::Json> Get(const std::string& key) const override;
    std::vector<kube::Json> List() const override;
    std::vector<std::shared_ptr<const kube::Json>> ListShared() const override;
    void Start();
    bool WaitForSync(std::chrono::milliseconds timeout);
    void Stop();

   private:
    // By namespace; "" for a cluster-wide informer (the only one then).
    std::vector<std::pair<std::string, std::unique_ptr<kube::Informer>>> informers_;
  };

  kube::Client* const client_;
  std::unique_ptr<kube::FencedApi> fenced_;  // client_'s writes behind options_.may_write
  RunRegistry* const runs_;
  const ReconcilerOptions options_;
  Caches loadtests_;
  Caches pods_;
  std::unique_ptr<Reconciler> reconciler_;  // used by the worker thread only
  std::thread worker_;

  common::Mutex mu_;
  common::CondVar cv_;
  std::set<std::string> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool spacing_ ABSL_GUARDED_BY(mu_) = false;  // Work waits out the gap between rounds
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_RECONCILE_LOOP_H_
