// stampede-floor-client: the least work a client can do per HTTP/1.1 request, to measure what the
// kernel alone costs on this machine. scripts/bench runs it beside wrk and stampede-agent so that
// "requests per client CPU-second" has a ceiling to be read against.
//
// It is not a load generator: it sends one fixed request per keep-alive connection, learns the
// length of the server's answer from the first one, and from then on only counts bytes. Every
// `length` bytes on a connection are one response, and the next request goes out at once. It does
// not parse, time or record anything, so it is only valid against a server whose responses all
// have the same length (nginx's `return 200 "hello\n"`: its Date header has a fixed width). At
// each response boundary that falls at the start of a received buffer it checks the status line,
// and it fails if one does not match.
//
//   stampede-floor-client --port P [--path /] [--connections 50] [--seconds 10] [--io uring|epoll]
//
// --io uring: one io_uring_enter per loop turn, multishot receives into a provided buffer ring,
// sends that post no completion (the engine's own Uring wrapper, as stampede-agent uses it).
// --io epoll: epoll_wait, then recv and send per ready connection (wrk's pattern, minus parsing).
// Prints "requests=N errors=E response_bytes=L" on stdout. Traffic goes to 127.0.0.1 only.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/uring.h"
#include "common/clock.h"
#include "common/flags.h"

namespace {

constexpr char kStatus[] = "HTTP/1.1 200 ";
constexpr size_t kStatusLength = sizeof(kStatus) - 1;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "stampede-floor-client: %s\n", what.c_str());
  std::exit(1);
}

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Fail(std::string("socket: ") + strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
    Fail(std::string("connect to 127.0.0.1:") + std::to_string(port) + ": " + strerror(errno));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // as wrk and stampede-agent do
  return fd;
}

// Sends one request on a blocking socket and returns the length of the whole response.
size_t ResponseLength(int fd, const std::string& request) {
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    Fail("the first request did not go whole");
  std::string received;
  char buffer[4096];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) Fail("the server closed before its first response ended");
    received.append(buffer, static_cast<size_t>(n));
    const size_t end = received.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    if (received.compare(0, kStatusLength, kStatus) != 0) Fail("the first response is not a 200");
    const size_t field = received.find("Content-Length: ");
    if (field == std::string::npos || field > end) Fail("the first response has no Content-Length");
    const size_t length = end + 4 + std::strtoul(received.c_str() + field + 16, nullptr, 10);
    if (received.size() > length) Fail("the server sent more than one response");
    if (received.size() == length) return length;
  }
}

struct Connection {
  int fd = -1;
  size_t into_response = 0;  // bytes of the current response received so far
};

struct Counts {
  uint64_t requests = 0;
  uint64_t errors = 0;
};

// Counts the responses that `n` received bytes complete on `c`; returns how many ended.
uint64_t Take(Connection& c, const char* data, size_t n, size_t length, Counts& counts) {
  uint64_t ended = 0;
  size_t at = 0;
  while (at < n) {
    if (c.into_response == 0 && n - at >= kStatusLength &&
        memcmp(data + at, kStatus, kStatusLength) != 0)
      ++counts.errors;
    const size_t take = std::min(n - at, length - c.into_response);
    at += take;
    c.into_response += take;
    if (c.into_response == length) {
      c.into_response = 0;
      ++ended;
    }
  }
  counts.requests += ended;
  return ended;
}

Counts RunUring(std::vector<Connection>& connections, const std::string& request, size_t length,
                int64_t deadline) {
  auto ring = stampede::agent::Uring::Create(4096, 4096, 4096);
  if (!ring.ok()) Fail(std::string(ring.status().message()));
  stampede::agent::Uring& u = **ring;
  Counts counts;
  for (size_t i = 0; i < connections.size(); ++i) {
    u.ReceiveMultishot(i, connections[i].fd);
    u.SendNow(i, connections[i].fd, request.data(), request.size());
  }
  std::vector<stampede::agent::Uring::Completion> done(4096);
  while (stampede::common::MonotonicNanos() < deadline) {
    const int n = u.SubmitAndWait(100000000, done.data(), static_cast<int>(done.size()));
    for (int k = 0; k < n; ++k) {
      const auto& c = done[k];
      Connection& connection = connections[c.tag];
      if (c.res <= 0 || !u.HasBuffer(c)) Fail("a connection failed or closed");
      const uint64_t ended =
          Take(connection, u.BufferOf(c), static_cast<size_t>(c.res), length, counts);
      u.ReturnBuffer(c);
      if (!stampede::agent::Uring::More(c)) u.ReceiveMultishot(c.tag, connection.fd);
      if (ended > 1) Fail("a connection received more responses than it asked for");
      if (ended == 1) u.SendNow(c.tag, connection.fd, request.data(), request.size());
    }
  }
  return counts;
}

Counts RunEpoll(std::vector<Connection>& connections, const std::string& request, size_t length,
                int64_t deadline) {
  const int ep = epoll_create1(0);
  if (ep < 0) Fail(std::string("epoll_create1: ") + strerror(errno));
  Counts counts;
  for (size_t i = 0; i < connections.size(); ++i) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, connections[i].fd, &event) != 0)
      Fail(std::string("epoll_ctl: ") + strerror(errno));
    if (send(connections[i].fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size()))
      Fail("a request did not go whole");
  }
  std::vector<epoll_event> ready(connections.size());
  char buffer[4096];
  while (stampede::common::MonotonicNanos() < deadline) {
    const int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 100);
    for (int k = 0; k < n; ++k) {
      Connection& connection = connections[ready[k].data.u64];
      const ssize_t got = recv(connection.fd, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (got < 0 && errno == EAGAIN) continue;
      if (got <= 0) Fail("a connection failed or closed");
      const uint64_t ended = Take(connection, buffer, static_cast<size_t>(got), length, counts);
      if (ended > 1) Fail("a connection received more responses than it asked for");
      if (ended == 1 && send(connection.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
                            static_cast<ssize_t>(request.size()))
        Fail("a request did not go whole");
    }
  }
  close(ep);
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  bool help = false;
  int port = 0;
  int connection_count = 50;
  double seconds = 10;
  std::string io = "uring";
  std::string path = "/";
  stampede::common::FlagSet flags("stampede-floor-client", &help);
  flags.Count("--port", "P", "the server's port on 127.0.0.1", &port, 1, 65535).Required();
  flags.String("--path", "PATH", "the path every request asks for (default /)", &path);
  flags.Count("--connections", "N", "keep-alive connections (default 50)", &connection_count, 1,
              4096);
  flags.Number("--seconds", "S", "how long to run (default 10)", &seconds,
               stampede::common::FlagSet::kPositive, 600);
  flags.Custom("--io", "uring|epoll", "the I/O backend (default uring)",
               [&io](const std::string& value) {
                 if (value != "uring" && value != "epoll") {
                   return absl::InvalidArgumentError("\"" + value + "\" is not uring or epoll");
                 }
                 io = value;
                 return absl::OkStatus();
               });
  const absl::Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) Fail(std::string(parsed.message()));
  if (help) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (path.empty() || path[0] != '/' || path.find_first_of(" \r\n") != std::string::npos)
    Fail("--path: starts with / and has no space or line break");
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

  std::vector<Connection> connections(static_cast<size_t>(connection_count));
  for (Connection& c : connections) c.fd = Connect(port);
  const size_t length = ResponseLength(connections[0].fd, request);
  const int64_t deadline = stampede::common::MonotonicNanos() + static_cast<int64_t>(seconds * 1e9);
  const Counts counts = io == "uring" ? RunUring(connections, request, length, deadline)
                                      : RunEpoll(connections, request, length, deadline);
  for (Connection& c : connections) close(c.fd);
  std::printf("requests=%llu errors=%llu response_bytes=%zu\n",
              static_cast<unsigned long long>(counts.requests),
              static_cast<unsigned long long>(counts.errors), length);
  return counts.errors == 0 ? 0 : 1;
}
