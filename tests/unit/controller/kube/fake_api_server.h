// A real HTTP server on 127.0.0.1 (a port the kernel picks) standing in for the Kubernetes API
// server in the kube client tests: every request is recorded and answered by one handler the
// test sets. Handlers run on the server's threads; tests guard the state they share with them.
#ifndef STAMPEDE_TESTS_UNIT_CONTROLLER_KUBE_FAKE_API_SERVER_H_
#define STAMPEDE_TESTS_UNIT_CONTROLLER_KUBE_FAKE_API_SERVER_H_

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace stampede::kube::testing {

class FakeApiServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  struct Seen {
    std::string method;
    std::string path;
    httplib::Params params;  // decoded query
    std::string authorization;
    std::string content_type;
    std::string body;
    int remote_port = 0;  // the client's end: which connection it came on
  };

  // `server` may be an httplib::SSLServer; `scheme` says which.
  explicit FakeApiServer(
      std::unique_ptr<httplib::Server> server = std::make_unique<httplib::Server>(),
      std::string scheme = "http")
      : server_holder_(std::move(server)), server_(*server_holder_), scheme_(std::move(scheme)) {
    auto route = [this](const httplib::Request& request, httplib::Response& response) {
      Serve(request, response);
    };
    // httplib writes a response in two parts; without this, on a kept connection the second waits
    // for the client's delayed ACK (40 ms), which the real API server's answers never do.
    server_.set_tcp_nodelay(true);
    server_.Get(".*", route);
    server_.Post(".*", route);
    server_.Put(".*", route);
    server_.Patch(".*", route);
    server_.Delete(".*", route);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket already listens; waiting only makes Shutdown's stop() reliable.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ~FakeApiServer() { Shutdown(); }

  // Releases handlers blocked in BlockUntilShutdown, then stops and joins the server.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutting_down_ = true;
    }
    cv_.notify_all();
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }

  int port() const { return port_; }
  std::string url() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }

  std::vector<Seen> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

  size_t Count(const std::string& method) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const Seen& seen : seen_) n += seen.method == method ? 1 : 0;
    return n;
  }

  // Waits until `predicate(requests so far)` holds; false after `timeout`.
  bool WaitFor(const std::function<bool(const std::vector<Seen>&)>& predicate,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return predicate(seen_); });
  }

  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return WaitFor([n](const std::vector<Seen>& seen) { return seen.size() >= n; }, timeout);
  }

  // For handlers and content providers that must hang (a silent connection): returns once the
  // server shuts down, or after `limit` as a safety net.
  void BlockUntilShutdown(std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [this] { return shutting_down_; });
  }

 private:
  void Serve(const httplib::Request& request, httplib::Response& response) {
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(Seen{
          request.method, request.path, request.params, request.get_header_value("Authorization"),
          request.get_header_value("Content-Type"), request.body, request.remote_port});
      handler = handler_;
    }
    cv_.notify_all();
    if (handler) {
      handler(request, response);
    } else {
      response.status = 404;
    }
  }

  std::unique_ptr<httplib::Server> server_holder_;
  httplib::Server& server_;
  const std::string scheme_;
  int port_ = -1;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Handler handler_;
  std::vector<Seen> seen_;
  bool shutting_down_ = false;
};

// A Kubernetes Status body, as the API server sends with errors.
inline std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{
      {"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()},
      {"status", "Failure"}, {"message", message}, {"reason", reason},
      {"code", code}}
      .dump();
}

inline void Reply(httplib::Response& response, int status, const std::string& body) {
  response.status = status;
  response.set_content(body, "application/json");
}

inline void ReplyJson(httplib::Response& response, int status, const nlohmann::json& body) {
  Reply(response, status, body.dump());
}

// A namespaced object with a name and resourceVersion, and optional extra data.
inline nlohmann::json Object(const std::string& name, const std::string& resource_version,
                             const nlohmann::json& spec = nlohmann::json::object()) {
  return {
      {"apiVersion", "stampede.dev/v1alpha1"},
      {"kind", "LoadTest"},
      {"metadata", {{"name", name}, {"namespace", "ns"}, {"resourceVersion", resource_version}}},
      {"spec", spec}};
}

// One line of a watch stream.
inline std::string WatchLine(const std::string& type, const nlohmann::json& object) {
  return nlohmann::json{{"type", type}, {"object", object}}.dump() + "\n";
}

// Answers with a chunked 200 stream: each string is written as its own chunk, then the stream
// ends.
inline void ReplyChunks(httplib::Response& response, std::vector<std::string> chunks) {
  response.status = 200;
  response.set_chunked_content_provider(
      "application/json", [chunks = std::move(chunks)](size_t, httplib::DataSink& sink) {
        for (const std::string& chunk : chunks) {
          if (!sink.write(chunk.data(), chunk.size())) return false;
        }
        sink.done();
        return true;
      });
}

}  // namespace stampede::kube::testing

#endif  // STAMPEDE_TESTS_UNIT_CONTROLLER_KUBE_FAKE_API_SERVER_H_
