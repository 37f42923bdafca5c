#include "controller/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/mutex.h"

namespace stampede::controller {
namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr int kListenBacklog = 1024;
// After a response that closes the connection: how long, and how much, to read and drop.
constexpr int64_t kLingerNs = 2'000'000'000;
constexpr size_t kMaxLingerBytes = 64 << 20;

int64_t Ns(std::chrono::milliseconds d) { return static_cast<int64_t>(d.count()) * 1'000'000; }

std::string JsonError(const std::string& message) {
  std::string out = "{\"error\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"}\n";
}

std::string Serialize(const HttpResponse& r, bool head_request, bool keep_alive) {
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ", HttpReason(r.status), "\r\n");
  if (!r.content_type.empty()) absl::StrAppend(&out, "Content-Type: ", r.content_type, "\r\n");
  absl::StrAppend(&out, "Content-Length: ", r.body.size(), "\r\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  absl::StrAppend(&out, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n");
  if (!head_request) out += r.body;
  return out;
}

std::string PeerAddress(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return absl::StrCat(host, ":", port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return absl::StrCat("[", host, "]:", port);
}

}  // namespace

const char* HttpReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, QuickHandler quick, Handler handler, HttpServerCounters* counters)
      : options_(std::move(options)),
        quick_(std::move(quick)),
        handler_(std::move(handler)),
        counters_(counters) {}

  ~Impl() {
    for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
      if (fd >= 0) close(fd);
    }
  }

  absl::StatusOr<int> Listen() {
    auto address = common::SplitHostPort(options_.listen);
    if (!address.ok()) return address.status();
    const auto& [host, port] = *address;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* result = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result) != 0 ||
        result == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("cannot resolve \"", host, "\""));
    }
    listen_fd_ = socket(result->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool bound = listen_fd_ >= 0 &&
                       bind(listen_fd_, result->ai_addr, result->ai_addrlen) == 0 &&
                       listen(listen_fd_, kListenBacklog) == 0;
    freeaddrinfo(result);
    if (!bound) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options_.listen, ": ", std::strerror(errno)));
    }
    sockaddr_storage bound_addr{};
    socklen_t len = sizeof bound_addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound_addr), &len);
    const int bound_port = bound_addr.ss_family == AF_INET
                               ? ntohs(reinterpret_cast<sockaddr_in*>(&bound_addr)->sin_port)
                               : ntohs(reinterpret_cast<sockaddr_in6*>(&bound_addr)->sin6_port);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0)
      return absl::InternalError("cannot create the epoll or eventfd descriptor");
    Watch(listen_fd_, EPOLLIN, kListenTag);
    Watch(wake_fd_, EPOLLIN, kWakeTag);
    return bound_port;
  }

  void Start() {
    for (int i = 0; i < std::max(1, options_.workers); ++i)
      workers_.emplace_back([this] { WorkLoop(); });
    loop_ = std::thread([this] { Loop(); });
  }

  void Stop() {
    {
      common::MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    work_cv_.SignalAll();
    Wake();
    if (loop_.joinable()) loop_.join();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

 private:
  // Epoll tags: connections are tagged with their id (>= kFirstId).
  static constexpr uint64_t kListenTag = 1, kWakeTag = 2, kFirstId = 16;

  // kLingering: the last response is sent and the write side shut; what the client still sends
  // (the rest of a refused upload) is read and dropped for a moment, so that closing does not
  // reset the connection before the client has read the refusal.
  enum class Stage { kReading, kHandling, kWriting, kLingering };

  struct Connection {
    int fd = -1;
    uint64_t id = 0;
    std::string remote;
    Stage stage = Stage::kReading;
    HttpRequestParser parser;
    std::string pending;  // bytes read past the request being handled (pipelining)
    std::string out;
    size_t out_sent = 0;
    size_t discarded = 0;  // kLingering
    bool close_after_write = false;
    bool head_request = false;
    bool started_request = false;  // a byte of the current request has arrived
    int64_t deadline_ns = 0;
    int64_t waiting_since_ns = 0;  // for eviction at the cap: since when it has not been served

    Connection(size_t head, size_t body) : parser(head, body) {}
  };

  struct Job {
    uint64_t id;
    HttpRequest request;
  };
  struct Done {
    uint64_t id;
    HttpResponse response;
    bool keep_alive;
    bool head_request;
  };

  void Watch(int fd, uint32_t events, uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  void Interest(Connection& c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  }
  void Wake() {
    const uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof one);
    (void)ignored;
  }
  bool Stopping() {
    common::MutexLock lock(&mu_);
    return stopping_;
  }

  void Loop() {
    epoll_event events[64];
    while (!Stopping()) {
      const int n = epoll_wait(epoll_fd_, events, 64, TimeoutMs());
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[i].data.u64;
        if (tag == kListenTag) {
          Accept();
        } else if (tag == kWakeTag) {
          uint64_t count;
          ssize_t ignored = read(wake_fd_, &count, sizeof count);
          (void)ignored;
          DeliverDone();
        } else if (auto it = connections_.find(tag); it != connections_.end()) {
          OnEvent(*it->second, events[i].events);
        }
      }
      ExpireDeadlines();
    }
    for (auto& [id, c] : connections_) close(c->fd);
    connections_.clear();
    // Connections still in the backlog are reset with it, rather than left waiting.
    close(listen_fd_);
    listen_fd_ = -1;
  }

  int TimeoutMs() const {
    int64_t next = INT64_MAX;
    for (const auto& [id, c] : connections_) next = std::min(next, c->deadline_ns);
    if (next == INT64_MAX) return 1000;
    const int64_t left = next - common::MonotonicNanos();
    return static_cast<int>(std::clamp<int64_t>(left / 1'000'000 + 1, 0, 1000));
  }

  void Accept() {
    while (true) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or out of descriptors: the backlog holds the rest
      counters_->accepted.fetch_add(1);
      if (connections_.size() >= options_.max_connections && !EvictOne()) {
        counters_->refused.fetch_add(1);
        // Best effort: the 503 fits in the socket buffer of a new connection.
        const std::string refusal = Serialize({503,
                                               "application/json",
                                               JsonError("too many connections; try again"),
                                               {{"Retry-After", "1"}},
                                               true},
                                              false, false);
        ssize_t ignored = send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL);
        (void)ignored;
        close(fd);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Connection>(options_.max_head_bytes, options_.max_body_bytes);
      c->fd = fd;
      c->id = next_id_++;
      c->remote = PeerAddress(addr);
      const int64_t now = common::MonotonicNanos();
      c->deadline_ns = now + Ns(options_.head_timeout);
      c->waiting_since_ns = now;
      Watch(fd, EPOLLIN | EPOLLRDHUP, c->id);
      connections_[c->id] = std::move(c);
    }
  }

  // At the cap: closes the connection that has waited longest without a whole request (idle or
  // trickling). False when every connection is being served.
  bool EvictOne() {
    Connection* oldest = nullptr;
    for (auto& [id, c] : connections_) {
      if (c->stage != Stage::kReading && c->stage != Stage::kLingering) continue;
      if (oldest == nullptr || c->waiting_since_ns < oldest->waiting_since_ns) oldest = c.get();
    }
    if (oldest == nullptr) return false;
    counters_->evicted.fetch_add(1);
    CloseConnection(*oldest);
    return true;
  }

  void CloseConnection(Connection& c) {
    close(c.fd);  // also removes it from the epoll set
    connections_.erase(c.id);
  }

  void OnEvent(Connection& c, uint32_t events) {
    if (c.stage == Stage::kWriting && (events & EPOLLOUT) != 0) {
      Flush(c);
      return;
    }
    if (c.stage == Stage::kLingering) {
      char buf[kReadChunk];
      while (true) {
        const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n > 0 && (c.discarded += static_cast<size_t>(n)) < kMaxLingerBytes) continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        CloseConnection(c);  // EOF, an error, or enough dropped
        return;
      }
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
    if (c.stage != Stage::kReading) {
      // A client that went away while its request is handled: its response has nowhere to go.
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) CloseConnection(c);
      return;
    }
    char buf[kReadChunk];
    while (c.stage == Stage::kReading) {
      const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        if (!Consume(c, std::string_view(buf, static_cast<size_t>(n)))) return;  // closed
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      CloseConnection(c);  // EOF or an error before a whole request: nothing to answer
      return;
    }
  }

  // Feeds bytes to the parser and acts on what it finds; false when the connection was closed.
  bool Consume(Connection& c, std::string_view data) {
    const uint64_t id = c.id;  // `c` may be closed (and gone) by a response below
    while (!data.empty() && c.stage == Stage::kReading) {
      if (!c.started_request) {
        c.started_request = true;
        c.deadline_ns = common::MonotonicNanos() + Ns(options_.head_timeout);
      }
      const HttpRequestParser::State before = c.parser.state();
      const size_t used = c.parser.Feed(data);
      data.remove_prefix(used);
      const HttpRequestParser::State state = c.parser.state();
      if (state == HttpRequestParser::State::kError) {
        counters_->rejected.fetch_add(1);
        Respond(
            c, {c.parser.error_status(), "application/json", JsonError(c.parser.error()), {}, true},
            false, false);
        return connections_.count(id) != 0;
      }
      if (before == HttpRequestParser::State::kHead && state == HttpRequestParser::State::kBody) {
        c.deadline_ns = common::MonotonicNanos() + Ns(options_.body_timeout);
        if (c.parser.request().expect_continue) {
          static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
          ssize_t ignored = send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL);
          (void)ignored;
        }
      }
      if (state == HttpRequestParser::State::kDone) {
        c.pending.assign(data.data(), data.size());
        Dispatch(c);
        return connections_.count(id) != 0;
      }
    }
    return true;
  }

  void Dispatch(Connection& c) {
    HttpRequest& request = c.parser.request();
    request.remote = c.remote;
    counters_->requests.fetch_add(1);
    const bool keep_alive = request.keep_alive;
    const bool head = request.method == "HEAD";
    c.stage = Stage::kHandling;
    c.deadline_ns = INT64_MAX;  // a handler takes what it takes; the client may wait or leave
    Interest(c, EPOLLRDHUP);
    if (std::optional<HttpResponse> quick = quick_ ? quick_(request) : std::nullopt;
        quick.has_value()) {
      Respond(c, std::move(*quick), keep_alive, head);
      return;
    }
    {
      common::MutexLock lock(&mu_);
      if (jobs_.size() < options_.max_queued) {
        jobs_.push_back({c.id, std::move(request)});
        work_cv_.Signal();
        return;
      }
    }
    Respond(c,
            {503,
             "application/json",
             JsonError("the server is busy; try again"),
             {{"Retry-After", "1"}},
             false},
            keep_alive, head);
  }

  void WorkLoop() {
    while (true) {
      Job job;
      {
        common::MutexLock lock(&mu_);
        while (jobs_.empty() && !stopping_) work_cv_.Wait(&mu_);
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      HttpResponse response;
      try {
        response = handler_(job.request);
      } catch (const std::exception& e) {
        SLOG(kError) << "http_handler_failed path=" << job.request.path << " error=\"" << e.what()
                     << "\"";
        response = {500, "application/json", JsonError("internal error"), {}, false};
      }
      {
        common::MutexLock lock(&mu_);
        done_.push_back(
            {job.id, std::move(response), job.request.keep_alive, job.request.method == "HEAD"});
      }
      Wake();
    }
  }

  void DeliverDone() {
    std::deque<Done> done;
    {
      common::MutexLock lock(&mu_);
      done.swap(done_);
    }
    for (Done& d : done) {
      auto it = connections_.find(d.id);
      if (it == connections_.end()) continue;  // the client went away
      Respond(*it->second, std::move(d.response), d.keep_alive, d.head_request);
    }
  }

  void Respond(Connection& c, HttpResponse response, bool keep_alive, bool head_request) {
    c.close_after_write = response.close || !keep_alive;
    c.out = Serialize(response, head_request, !c.close_after_write);
    c.out_sent = 0;
    c.stage = Stage::kWriting;
    c.deadline_ns = common::MonotonicNanos() + Ns(options_.write_timeout);
    Interest(c, EPOLLOUT | EPOLLRDHUP);
    Flush(c);
  }

  void Flush(Connection& c) {
    while (c.out_sent < c.out.size()) {
      const ssize_t n =
          send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // EPOLLOUT calls again
      CloseConnection(c);
      return;
    }
    if (c.close_after_write) {
      shutdown(c.fd, SHUT_WR);
      c.stage = Stage::kLingering;
      c.deadline_ns = common::MonotonicNanos() + kLingerNs;
      c.waiting_since_ns = 0;  // the first to go when room is needed
      Interest(c, EPOLLIN | EPOLLRDHUP);
      return;
    }
    // The next request, perhaps already here (pipelined).
    c.out.clear();
    c.parser.Reset();
    c.stage = Stage::kReading;
    c.started_request = false;
    const int64_t now = common::MonotonicNanos();
    c.deadline_ns = now + Ns(options_.idle_timeout);
    c.waiting_since_ns = now;
    Interest(c, EPOLLIN | EPOLLRDHUP);
    if (!c.pending.empty()) {
      const std::string pending = std::move(c.pending);
      c.pending.clear();
      Consume(c, pending);
    }
  }

  void ExpireDeadlines() {
    const int64_t now = common::MonotonicNanos();
    std::vector<Connection*> expired;
    for (auto& [id, c] : connections_) {
      if (c->deadline_ns <= now) expired.push_back(c.get());
    }
    for (Connection* c : expired) {
      if (c->stage == Stage::kLingering) {
        CloseConnection(*c);
        continue;
      }
      counters_->timed_out.fetch_add(1);
      if (c->stage == Stage::kReading && c->started_request) {
        // A request that is too slow hears why; an idle connection is just closed.
        Respond(
            *c,
            {408, "application/json", JsonError("the request did not arrive in time"), {}, true},
            false, false);
      } else {
        CloseConnection(*c);
      }
    }
  }

  const HttpServerOptions options_;
  const QuickHandler quick_;
  const Handler handler_;
  HttpServerCounters* const counters_;
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  std::thread loop_;
  std::vector<std::thread> workers_;

  // I/O thread only.
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  uint64_t next_id_ = kFirstId;

  common::Mutex mu_;
  common::CondVar work_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<Done> done_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              QuickHandler quick, Handler handler) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->impl_ = std::make_unique<Impl>(std::move(options), std::move(quick), std::move(handler),
                                         &server->counters_);
  absl::StatusOr<int> port = server->impl_->Listen();
  if (!port.ok()) return port.status();
  server->port_ = *port;
  server->impl_->Start();
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (impl_ != nullptr) impl_->Stop();
}

}  // namespace stampede::controller
