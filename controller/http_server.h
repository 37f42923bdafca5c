// The controller's HTTP/1.1 server (the REST API, /metrics, health): one epoll thread does all
// socket I/O and keeps every connection to its deadlines; handlers run on a small pool of worker
// threads, except the quick ones (health checks), which answer on the I/O thread so they stay
// responsive whatever the workers and the other clients are doing.
//
// Bounds, each with a clear refusal:
//   - connections: at most `max_connections`; when full, the one that has waited longest without
//     sending a whole request is closed to make room, and when none has, the newcomer gets 503;
//   - the request head must arrive within `head_timeout` of its first byte, the body within
//     `body_timeout` of the head, the response be taken within `write_timeout`; a kept-alive
//     connection may sit idle `idle_timeout` (408 and close otherwise; trickling a byte at a time
//     does not extend any of them);
//   - the head is at most `max_head_bytes` (431) and the body `max_body_bytes` whatever its
//     framing (413), never buffered past the limit (http_request_parser.h);
//   - requests waiting for a worker: `max_queued` (503 beyond).
// cpp-httplib, used before, serves each connection on a pool thread with per-read timeouts only,
// so eight clients trickling a header byte a second kept its pool busy and /healthz unanswered.
//
// Thread safety: Start, Stop and the destructor from the owner; handlers are called concurrently
// from the worker threads (the quick handler from the I/O thread) and must be thread-safe.
#ifndef STAMPEDE_CONTROLLER_HTTP_SERVER_H_
#define STAMPEDE_CONTROLLER_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/http_request_parser.h"

namespace stampede::controller {

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/Length
  bool close = false;  // close the connection after this response
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  int workers = 4;
  size_t max_connections = 256;
  size_t max_head_bytes = 16 << 10;
  size_t max_body_bytes = 1 << 20;
  size_t max_queued = 256;
  std::chrono::milliseconds head_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
};

// What the server did, for tests and metrics.
struct HttpServerCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};    // 503 at the connection cap
  std::atomic<uint64_t> evicted{0};    // closed to make room at the cap
  std::atomic<uint64_t> timed_out{0};  // 408 or closed at a deadline
  std::atomic<uint64_t> rejected{0};   // 4xx/5xx from the parser (malformed, too large)
  std::atomic<uint64_t> requests{0};   // whole requests handled
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Returns a response to answer on the I/O thread at once, or nullopt to pass the request on.
  using QuickHandler = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

  // Binds `listen` and starts serving. Unavailable when it cannot listen.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           QuickHandler quick, Handler handler);
  ~HttpServer();  // Stop()

  int port() const { return port_; }
  const HttpServerCounters& counters() const { return counters_; }
  // Stops accepting, closes every connection and waits for the handlers in progress. Idempotent.
  void Stop();

 private:
  class Impl;
  HttpServer() = default;

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  HttpServerCounters counters_;
};

// The reason phrase of a status code ("Not Found").
const char* HttpReason(int status);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_HTTP_SERVER_H_
