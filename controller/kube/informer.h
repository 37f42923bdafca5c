// A local, always-converging copy of one collection (e.g. every LoadTest in a namespace): LIST,
// then WATCH from the list's resourceVersion, as client-go's reflector does.
//   - a BOOKMARK only advances the resourceVersion;
//   - a stream the server ends cleanly is watched again from the last resourceVersion;
//   - an expired resourceVersion (HTTP 410, or an ERROR event with code 410) means a new LIST
//     that replaces the cache, reporting objects that vanished meanwhile as deleted;
//   - anything that makes no progress (errors, expiry, a watch that delivered nothing) waits a
//     backoff first: 800 ms doubling to 30 s, each delay drawn from [d/2, d]; a watch that
//     delivers an event resets it.
// Objects are keyed "namespace/name" ("name" for cluster-scoped ones).
//
// Thread safety: the handler runs on the informer's own thread, one call at a time, after the
// cache has the change (so the handler may read the cache). Get, List, HasSynced and
// WaitForSync may be called from any thread. Start and Stop are called by the owner, never from
// the handler.
// Errors are logged and retried forever; they never reach the handler.
#ifndef STAMPEDE_CONTROLLER_KUBE_INFORMER_H_
#define STAMPEDE_CONTROLLER_KUBE_INFORMER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/mutex.h"
#include "controller/kube/client.h"

namespace stampede::kube {

class Informer final : public ObjectCache {
 public:
  using Handler = std::function<void(const Json& object, bool deleted)>;

  struct Options {
    std::string label_selector;
    std::string field_selector;
    int watch_timeout_seconds = 290;
    std::chrono::milliseconds idle_timeout{0};  // zero: watch_timeout_seconds + 5 s
    std::chrono::milliseconds backoff_initial{800};
    std::chrono::milliseconds backoff_max{30'000};
    std::function<double()> jitter;  // uniform in [0, 1]; default a PRNG
    // Applied to every listed or watched object before it is cached and handed to the handler,
    // e.g. to drop fields nobody reads (an agent Pod's spec and managedFields are most of its
    // size; with 10,000 Pods the cache is the operator's memory). It must keep metadata.name,
    // namespace and resourceVersion. Empty: objects kept whole.
    std::function<void(Json& object)> transform;
  };

  // Watches `path` (a collection, e.g. "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests").
  // `client` must outlive the informer.
  Informer(Client* client, std::string path, Handler handler, Options options);
  Informer(Client* client, std::string path, Handler handler)
      : Informer(client, std::move(path), std::move(handler), Options()) {}
  ~Informer();  // Stop()
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the background thread. Call once.
  void Start();
  // Ends a watch in flight at once and joins the thread. A LIST in flight is waited for (bounded
  // by the client's timeouts and attempts). Idempotent; the informer cannot be restarted.
  void Stop();

  // True once the first LIST is in the cache.
  bool HasSynced() const;
  bool WaitForSync(std::chrono::milliseconds timeout) const;
  std::optional<Json> Get(const std::string& key) const override;
  std::vector<Json> List() const override;
  std::vector<std::shared_ptr<const Json>> ListShared() const override;
  // The last resourceVersion seen (list, event or bookmark).
  std::string ResourceVersion() const;

 private:
  void Run();
  absl::Status Relist();
  void Apply(WatchEvent& event);
  // Waits the backoff for the `failures`-th consecutive failure; false when stopping.
  bool Backoff(int failures);

  // Constant after construction.
  Client* const client_;
  const std::string path_;
  const Handler handler_;
  const Options options_;

  WatchCanceler canceler_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  mutable common::Mutex mu_;
  mutable common::CondVar cv_;  // synced_ or stopping_ changed
  // Never changed in place: an update replaces the pointer, so ListShared's holders keep theirs.
  std::map<std::string, std::shared_ptr<const Json>> cache_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_INFORMER_H_
