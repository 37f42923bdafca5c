// Leader election among controller replicas on a coordination.k8s.io/v1 Lease, with client-go's
// semantics:
//   - the lease is free when its holderIdentity is empty, ours, or has not changed for
//     leaseDurationSeconds as measured on *our* clock from when we last saw its
//     resourceVersion change (the holder's renewTime is never compared with our clock, so
//     clock skew between nodes does not matter);
//   - taking or renewing is a PUT carrying the resourceVersion read, so of two replicas racing
//     for a free lease one gets 409 and tries again later;
//   - leaseTransitions grows by one whenever the holder changes; acquireTime and renewTime are
//     MicroTime (RFC 3339 with microseconds, UTC);
//   - the leader renews every renew_period and steps down (IsLeader false, on_lost called) when
//     no renewal has succeeded for renew_deadline, which must be shorter than lease_duration so
//     that it stops acting before anyone else may take over.
//
// Thread safety: IsLeader may be called from any thread. WaitForLeadership, Release and the
// destructor are called by the owner, one at a time. on_lost runs on the renew thread.
// Errors from the API server are logged and retried; they never end the election by themselves.
#ifndef STAMPEDE_CONTROLLER_KUBE_LEADER_ELECTION_H_
#define STAMPEDE_CONTROLLER_KUBE_LEADER_ELECTION_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "controller/kube/client.h"

namespace stampede::kube {

// RFC 3339 with exactly six fractional digits, UTC: "2026-11-27T05:31:18.123456Z".
std::string FormatMicroTime(absl::Time time);

class LeaderElector {
 public:
  struct Options {
    std::string lease_namespace;
    std::string lease_name;
    std::string identity;  // unique per replica, e.g. the pod name
    std::chrono::milliseconds lease_duration{15'000};
    std::chrono::milliseconds renew_deadline{10'000};
    std::chrono::milliseconds renew_period{2'000};  // the leader renews this often
    std::chrono::milliseconds retry_period{2'000};  // a candidate tries this often
    std::function<void()> on_lost;  // called once when leadership is lost (not on Release)
    // Injected for tests; defaults: steady_clock::now (expiry and deadlines), absl::Now
    // (the times written into the lease).
    std::function<std::chrono::steady_clock::time_point()> now;
    std::function<absl::Time()> wall_now;
  };

  // `client` must outlive the elector.
  LeaderElector(Client* client, Options options);
  // Stops renewing without releasing the lease (it expires after lease_duration).
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Tries every retry_period until this replica holds the lease (true; a background thread then
  // renews it) or `stop` becomes true or Release is called (false). May be called again after
  // leadership was lost.
  bool WaitForLeadership(const std::atomic<bool>& stop);
  bool IsLeader() const { return leader_.load(); }
  // Leading, and the last successful take or renewal (timed from before its request) lies less
  // than renew_deadline ago: what a write on the leader's behalf must check, since IsLeader turns
  // false only once the renew thread runs again (after a freeze, other threads may run first).
  bool HoldsLease() const;
  // On clean shutdown: stops renewing and, when leading, clears holderIdentity so that another
  // replica takes over at its next try instead of after the lease expires. The elector is done
  // afterwards.
  absl::Status Release();

  // One round: GET the lease; create it when missing; take it when free, renew it when ours.
  // True when we hold it afterwards; false when another replica does or won a race (409).
  absl::StatusOr<bool> TryAcquireOrRenew();

 private:
  void RenewLoop();
  // Waits up to `period` (real time); false when Release or the destructor stops the elector.
  bool Pause(std::chrono::milliseconds period, const std::atomic<bool>* stop);

  // Constant after construction.
  Client* const client_;
  const Options options_;
  const std::string collection_path_;
  const std::string path_;

  std::atomic<bool> leader_{false};
  std::atomic<std::chrono::steady_clock::rep> renewed_at_ns_{0};  // steady_clock ticks
  std::thread renewer_;

  common::Mutex mu_;
  common::CondVar cv_;  // stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // One round at a time: the state below is what the last round saw.
  common::Mutex round_mu_;
  std::string observed_version_ ABSL_GUARDED_BY(round_mu_);
  std::chrono::steady_clock::time_point observed_at_ ABSL_GUARDED_BY(round_mu_);
  Json held_lease_ ABSL_GUARDED_BY(round_mu_);  // the lease as we last wrote it
};

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_LEADER_ELECTION_H_
