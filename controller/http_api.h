// The controller's HTTP face: /metrics, /healthz and /readyz always; with `loadtest_api` also the
// LoadTest REST API of `stampede serve`:
//
//   POST /api/v1/loadtests                          a LoadTest (YAML or JSON) -> 201 + Location
//                                                   400 invalid (every problem listed), 409 same
//                                                   namespace/name still active, 429 too many
//                                                   active
//   GET  /api/v1/loadtests                          {"items":[{id,name,namespace,phase,summary}]}
//   GET  /api/v1/loadtests/{id}                     the LoadTest with its live status
//   GET  /api/v1/namespaces/{ns}/loadtests/{name}   the same, for the newest run of that name
//   POST /api/v1/loadtests/{id}/abort               202; 409 when it has already ended
//   GET  /api/v1/loadtests/{id}/results[?format=csv] results JSON (or per-second CSV)
//   GET  /api/v1/loadtests/{id}/results.csv
//   GET  /metrics                                   Prometheus text format 0.0.4 (metrics.h)
//   GET  /healthz, /readyz                          200 "ok"; /readyz 503 once shutting down
//
// Errors are JSON objects {"error": "..."}; unknown routes and ids give 404, bodies over the limit
// 413. Served by a fixed pool of worker threads; every method is thread-safe.
#ifndef STAMPEDE_CONTROLLER_HTTP_API_H_
#define STAMPEDE_CONTROLLER_HTTP_API_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>  // std::once_flag
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "controller/agent_launcher.h"
#include "controller/controller.h"
#include "controller/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace stampede::controller {

struct HttpApiOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  // Worker threads; each serves one connection at a time, so this bounds concurrent clients.
  int threads = 8;
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  // The /api/v1 routes. Without them (stampede run --metrics-listen) /metrics shows every run of
  // the controller.
  bool loadtest_api = false;
  int max_active_runs = 4;  // POSTs beyond this many active runs get 429
  // Finished runs kept for GET and /results; past this many the oldest finished one is forgotten
  // when a new one is posted (its id then gives 404), so a long-lived server's memory is bounded.
  int max_finished_runs = 100;
  // Makes the agent launcher of each new run (required with loadtest_api).
  std::function<std::unique_ptr<AgentLauncher>()> make_launcher;
  // /readyz also asks this (the operator: ready only while it leads, so that its Service sends
  // agents to the leader). Unset: always.
  std::function<bool()> ready;
};

class HttpApi {
 public:
  // Binds, then serves on background threads. `controller` must outlive the HttpApi.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(HttpApiOptions options,
                                                        Controller* controller);
  ~HttpApi();  // Stop()

  int port() const { return port_; }
  // /readyz turns 503 and POSTs get 503; every run started here that is still active is aborted.
  // Returns those runs, so the caller can wait for them to settle.
  std::vector<std::shared_ptr<Run>> BeginShutdown(const std::string& reason);
  // Stops accepting and waits for the handlers in progress. Idempotent.
  void Stop();

 private:
  HttpApi(HttpApiOptions options, Controller* controller);
  void Route();
  std::shared_ptr<Run> Find(const std::string& id) const;
  std::vector<std::shared_ptr<Run>> RunsInOrder() const;
  void ForgetOldFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Create(const httplib::Request& req, httplib::Response& res);
  void List(const httplib::Request& req, httplib::Response& res);
  void Get(const std::shared_ptr<Run>& run, httplib::Response& res);
  void Abort(const httplib::Request& req, httplib::Response& res);
  void Results(const httplib::Request& req, httplib::Response& res);

  // Constant after construction.
  const HttpApiOptions options_;
  Controller* const controller_;
  std::unique_ptr<RunMetrics> metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  std::atomic<bool> shutting_down_{false};
  std::once_flag stopped_;
  // Serializes POSTs, so two of the same name cannot both pass the 409 check.
  mutable common::Mutex mu_;
  std::vector<std::shared_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_HTTP_API_H_
