// The controller's HTTP face: /metrics, /healthz and /readyz always; with `loadtest_api` also the
// LoadTest REST API of `stampede serve`:
//
//   POST /api/v1/loadtests                          a LoadTest (YAML or JSON) -> 201 + Location
//                                                   400 invalid (every problem listed), 403
//                                                   refused by the policy (rule, field), 409 same
//                                                   namespace/name still active, 415 not
//                                                   application/json or application/yaml, 429 too
//                                                   many active
//   GET  /api/v1/loadtests                          {"items":[{id,name,namespace,phase,summary}]}
//   GET  /api/v1/loadtests/{id}                     the LoadTest with its live status (secret
//                                                   request headers redacted)
//   GET  /api/v1/namespaces/{ns}/loadtests/{name}   the same, for the newest run of that name
//   POST /api/v1/loadtests/{id}/abort               202; 409 when it has already ended
//   GET  /api/v1/loadtests/{id}/results[?format=csv][&since=S]
//                                                   results JSON (or per-second CSV); since=S
//                                                   keeps only the series' seconds after S
//   GET  /api/v1/loadtests/{id}/results.csv
//   GET  /api/v1/loadtests/{id}/report.html         the HTML report of the run so far
//   GET  /api/v1/info                               {"readOnly", "tokenRequired"}: what the UI asks
//   GET  /, /ui/, /ui/app.js, /ui/app.css           the web UI (ui/): static, no data, no token
//   GET  /metrics                                   Prometheus text format 0.0.4 (metrics.h)
//   GET  /healthz, /readyz                          200 "ok"; /readyz 503 once shutting down
//
// With a token, every route but /healthz, /readyz, /api/v1/info and the UI's files (and /metrics,
// when public) needs
// "Authorization: Bearer TOKEN" (401 otherwise). Requests from a browser are held to the address
// the server listens on: on a loopback listener the Host must name it (localhost, 127.0.0.1, [::1]
// with its port), and an Origin must be the Host itself (same origin), else 403: a web page cannot
// drive the API (DNS rebinding included). Errors are JSON objects {"error": "..."}; unknown routes
// give 404, a known route with another method 405. Served by http_server.h (its bounds and
// deadlines); every method is thread-safe.
#ifndef STAMPEDE_CONTROLLER_HTTP_API_H_
#define STAMPEDE_CONTROLLER_HTTP_API_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "common/policy.h"
#include "controller/agent_launcher.h"
#include "controller/controller.h"
#include "controller/http_server.h"
#include "controller/metrics.h"

namespace stampede::controller {

struct HttpApiOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  int threads = 4;                        // handler threads (health answers on the I/O thread)
  size_t max_body_bytes = 1 << 20;        // larger request bodies get 413, however framed
  size_t max_connections = 256;
  // Bearer token every route but health (and public metrics) needs; empty: none is asked for.
  std::string token;
  bool public_metrics = false;  // /metrics without the token
  // The /api/v1 routes and the web UI (/ui/). Without them (stampede run --metrics-listen)
  // /metrics shows every run of the controller.
  bool loadtest_api = false;
  // The operator's port: the GET routes of the API and the web UI over every run of the
  // controller (the operator's LoadTests), read-only (POSTs get 405: LoadTests are made through
  // Kubernetes). /metrics stays as without the API. Ignored with loadtest_api.
  bool read_only_api = false;
  int max_active_runs = 4;  // POSTs beyond this many active runs get 429
  // Finished runs kept for GET and /results; past this many the oldest finished one is forgotten
  // when a new one is posted (its id then gives 404), so a long-lived server's memory is bounded.
  int max_finished_runs = 100;
  // Who may aim load where (loadtest_api): a POSTed test the policy refuses gets 403 naming the
  // rule and the field. Null: common::Policy::LoopbackOnly().
  std::shared_ptr<const common::Policy> policy;
  // Counts the refusals (this API's and, for the operator, the reconciler's) on /metrics. Null:
  // none are counted.
  std::shared_ptr<PolicyRefusals> refusals;
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

  int port() const { return server_->port(); }
  const HttpServerCounters& counters() const { return server_->counters(); }
  // /readyz turns 503 and POSTs get 503; every run started here that is still active is aborted.
  // Returns those runs, so the caller can wait for them to settle.
  std::vector<std::shared_ptr<Run>> BeginShutdown(const std::string& reason);
  // Stops accepting and waits for the handlers in progress. Idempotent.
  void Stop();

 private:
  HttpApi(HttpApiOptions options, Controller* controller);
  std::optional<HttpResponse> Quick(const HttpRequest& req);
  HttpResponse Handle(const HttpRequest& req);
  // 403/401 for a request the checks refuse; nullopt when it may go on.
  std::optional<HttpResponse> Refusal(const HttpRequest& req) const;
  std::shared_ptr<Run> Find(const std::string& id) const;
  std::vector<std::shared_ptr<Run>> RunsInOrder() const;
  void ForgetOldFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  HttpResponse Create(const HttpRequest& req);
  HttpResponse List();
  HttpResponse Get(const Run& run);
  HttpResponse Abort(const HttpRequest& req, const std::string& id);
  HttpResponse Results(const HttpRequest& req, const std::string& id, bool csv);
  HttpResponse Report(const std::string& id);
  bool ServesApi() const { return options_.loadtest_api || options_.read_only_api; }

  // Constant after construction.
  const HttpApiOptions options_;
  Controller* const controller_;
  std::unique_ptr<RunMetrics> metrics_;
  std::vector<std::string> allowed_hosts_;  // Host values a browser may use; empty: any
  std::unique_ptr<HttpServer> server_;

  std::atomic<bool> shutting_down_{false};
  // Serializes POSTs, so two of the same name cannot both pass the 409 check.
  mutable common::Mutex mu_;
  std::vector<std::shared_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);  // oldest first
};

// A copy of `test` whose secret request headers (Authorization, Cookie, Proxy-Authorization, and
// those named in spec.secretHeaders) read "<redacted>".
v1::LoadTest Redacted(v1::LoadTest test);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_HTTP_API_H_
