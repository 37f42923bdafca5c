// A small Kubernetes REST client: JSON in and out on API paths such as
// "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests/x", with what a controller needs on top
// of plain HTTP: paginated LIST, WATCH streams, conflict-retrying updates, backoff on overload,
// and bearer tokens that rotate on disk.
//
// Thread safety: every method may be called from several threads at once. Each call opens its
// own connection (no pooling: a controller makes few calls, and a watch holds its connection for
// minutes); the only shared state is the bearer token, behind a mutex.
//
// Errors: the code says what the caller should do.
//   InvalidArgument     400, 415, 422 (and other 4xx): fix the request; the message is the
//                       apiserver's Status.message
//   Unauthenticated     401 (after one re-read of the token file and a retry)
//   PermissionDenied    403 (RBAC)
//   NotFound            404
//   AlreadyExists       409 with reason AlreadyExists (a create found the name taken)
//   Aborted             409 otherwise: a write with a stale resourceVersion; re-read and retry
//   FailedPrecondition  410: the resourceVersion or continue token expired; relist (IsExpired)
//   Unavailable         429, 5xx and transport errors, after `max_attempts` tries with backoff
//   Internal            a 2xx answer that is not JSON
// Every message names the method, the path and the HTTP status.
#ifndef STAMPEDE_CONTROLLER_KUBE_CLIENT_H_
#define STAMPEDE_CONTROLLER_KUBE_CLIENT_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "controller/kube/api.h"
#include "controller/kube/config.h"

namespace httplib {
class ClientImpl;
}  // namespace httplib

namespace stampede::kube {

// A 410: the resourceVersion or continue token is too old; list again.
bool IsExpired(const absl::Status& status);
// "namespace/name", or "name" for cluster-scoped objects.
std::string ObjectKey(const Json& object);

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED or BOOKMARK
  Json object;
};

struct WatchOptions {
  std::string resource_version;  // start after this version; empty: from the current state
  std::string label_selector;
  std::string field_selector;
  int timeout_seconds = 290;  // the server ends the stream after this long
  bool allow_bookmarks = true;
  // No bytes for this long ends the watch with Unavailable (a dead connection). Zero means
  // timeout_seconds + 5 s.
  std::chrono::milliseconds idle_timeout{0};
};

// Ends a Watch from another thread: the watch in flight returns Cancelled promptly, and so does
// every later Watch given this canceler. One watch at a time per canceler. Thread-safe.
class WatchCanceler {
 public:
  // Returns once the watch in flight, if any, has let go of its connection. Idempotent. Called
  // from the watch's own on_event it only marks the canceler (return false there instead).
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class Client;
  bool Attach(std::function<void()> stop);  // false when already cancelled
  void Detach();

  std::atomic<bool> cancelled_{false};
  common::Mutex mu_;
  common::CondVar detached_;
  std::function<void()> stop_ ABSL_GUARDED_BY(mu_);  // shuts the watch's socket down
  std::thread::id watcher_ ABSL_GUARDED_BY(mu_);
};

class Client final : public Api {
 public:
  struct Options {
    std::chrono::milliseconds request_timeout{30'000};  // connect, and each send or read
    // Tries for 429, 5xx and transport errors.
    int max_attempts = 5;
    // Backoff before retry n (n >= 1): uniform in [0, min(backoff_max, backoff_base * 2^(n-1))]
    // ("full jitter"). A Retry-After header (seconds, at most backoff_max) replaces it.
    std::chrono::milliseconds backoff_base{250};
    std::chrono::milliseconds backoff_max{15'000};
    int list_page_size = 500;
    std::chrono::seconds token_reload_period{60};  // token_file is re-read at least this often
    // Injected for tests; defaults: std::this_thread::sleep_for, steady_clock::now, a PRNG that
    // returns a uniform value in [0, 1].
    std::function<void(std::chrono::nanoseconds)> sleep;
    std::function<std::chrono::steady_clock::time_point()> now;
    std::function<double()> jitter;
  };

  // Checks the server URL and reads the token file once (it must be readable). Ignores SIGPIPE
  // in the process (see the definition).
  static absl::StatusOr<std::unique_ptr<Client>> New(Config config, Options options);
  static absl::StatusOr<std::unique_ptr<Client>> New(Config config) {
    return New(std::move(config), Options());
  }
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  absl::StatusOr<Json> Get(const std::string& path) override;
  // Every page of a collection (limit/continue), merged: the first page's kind and apiVersion,
  // all items, and the list's metadata.resourceVersion (to watch from). An expired continue
  // token restarts the list from the beginning (a few times, then FailedPrecondition).
  absl::StatusOr<Json> List(const std::string& path, const std::string& label_selector = "",
                            const std::string& field_selector = "");
  absl::StatusOr<Json> Create(const std::string& path, const Json& body) override;
  absl::StatusOr<Json> Update(const std::string& path, const Json& body) override;
  absl::StatusOr<Json> MergePatch(const std::string& path, const Json& patch) override;
  absl::StatusOr<Json> Delete(const std::string& path, const Json& options = Json()) override;

  // Streams a collection's changes to `on_event`, in order, on the calling thread, until the
  // server ends the stream or `on_event` returns false (both OK). Expired resourceVersion (HTTP
  // 410 or an in-stream ERROR event with code 410): FailedPrecondition. Idle timeout or
  // transport error: Unavailable. Cancelled through `canceler`: Cancelled. Not retried here
  // (see Informer) except once after a 401 with a re-read token.
  absl::Status Watch(const std::string& path, const WatchOptions& options,
                     const std::function<bool(WatchEvent&)>& on_event,
                     WatchCanceler* canceler = nullptr);

  const Config& config() const { return config_; }

 private:
  struct Answer {
    int status = 0;
    std::string body;
    std::string retry_after;
  };

  Client(Config config, Options options);
  absl::StatusOr<Json> Call(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type);
  absl::StatusOr<Answer> Exchange(const std::string& method, const std::string& path,
                                  const std::string& body, const std::string& content_type);
  // A new connection; `keep_alive` ones stay open between requests (see idle_).
  std::unique_ptr<httplib::ClientImpl> Connect(std::chrono::milliseconds read_timeout,
                                               bool keep_alive) const;
  std::chrono::nanoseconds Backoff(int retry) const;
  std::string Token();
  void ReloadToken();

  // Constant after construction.
  const Config config_;
  const Options options_;
  bool tls_ = false;
  std::string host_;
  int port_ = 0;
  std::string path_prefix_;  // from a server URL like https://host/k8s/clusters/c-1

  common::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point token_read_at_ ABSL_GUARDED_BY(mu_);
  // Open connections between requests, each used by one request at a time. A new TLS connection
  // (and TLS context) per request was a third of the operator's CPU while it created and deleted
  // 4,000 Pods. At most kMaxIdleConnections, none idle for longer than kMaxIdleAge (servers close
  // idle connections after a while); a transport error drops them all. Watches keep their own.
  struct Idle {
    std::unique_ptr<httplib::ClientImpl> http;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<Idle> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_CLIENT_H_
