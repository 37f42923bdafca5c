// The controller's HTTP server over real loopback sockets: keep-alive and pipelining, and each of
// its bounds as a client that breaks it meets it: slow heads, the connection cap, oversized and
// chunked bodies, a full queue, idle connections.
#include "controller/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/process.h"

namespace stampede::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A raw client: bytes exactly as given, reads with a deadline.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& data) {
    return send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Reads until `until` appears in what was read, the peer closes, or `timeout` passes.
  std::string ReadUntil(const std::string& until, milliseconds timeout = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(until) == std::string::npos && !closed_) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  // Reads until the peer closes (or `timeout`); true when it did.
  bool WaitClosed(milliseconds timeout = milliseconds(5000)) {
    ReadUntil(std::string(1, '\0') + "never", timeout);
    return closed_;
  }
  void Clear() { received_.clear(); }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string received_;
};

// Blocks handlers of /block until released.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  bool WaitForWaiting(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, seconds(5), [&] { return waiting >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options) {
    options.listen = "127.0.0.1:0";
    auto server = HttpServer::Start(
        options,
        [](const HttpRequest& r) -> std::optional<HttpResponse> {
          if (r.path != "/healthz") return std::nullopt;
          return HttpResponse{200, "text/plain", "ok\n", {}, false};
        },
        [this](const HttpRequest& r) {
          if (r.path == "/block") gate_.Wait();
          return HttpResponse{200,
                              "text/plain",
                              r.method + " " + r.path + " " + std::to_string(r.body.size()),
                              {},
                              false};
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    gate_.Open();
    if (server_ != nullptr) server_->Stop();
  }
  int port() const { return server_->port(); }

  Gate gate_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveServesRequestsInOrderAndPipelined) {
  Start({});
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = c.ReadUntil("GET /a 0");
  EXPECT_NE(got.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: keep-alive"), std::string::npos) << got;
  c.Clear();
  c.Send(
      "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /healthz HTTP/1.1\r\n\r\nGET /c "
      "HTTP/1.1\r\nConnection: close\r\n\r\n");
  got = c.ReadUntil("GET /c 0");
  const size_t b = got.find("POST /b 3"), h = got.find("ok\n"), last = got.find("GET /c 0");
  ASSERT_NE(b, std::string::npos) << got;
  ASSERT_NE(h, std::string::npos) << got;
  ASSERT_NE(last, std::string::npos) << got;
  EXPECT_LT(b, h);
  EXPECT_LT(h, last);
  EXPECT_TRUE(c.WaitClosed()) << "Connection: close was not honoured";
}

TEST_F(HttpServerTest, SlowHeadsTimeOutWhileHealthStaysResponsive) {
  HttpServerOptions o;
  o.head_timeout = milliseconds(800);
  o.workers = 1;
  Start(o);
  // Eight clients trickle a header byte every 50 ms: each byte is progress, none is a request.
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(std::make_unique<RawClient>(port()));
  const std::string head = "GET /x HTTP/1.1\r\nX-Slow: " + std::string(200, 'a');
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    for (size_t i = 0; i < head.size() && !stop.load(); ++i) {
      for (auto& c : slow) c->Send(std::string(1, head[i]));
      std::this_thread::sleep_for(milliseconds(50));
    }
  });
  for (int i = 0; i < 5; ++i) {
    RawClient h(port());
    h.Send("GET /healthz HTTP/1.1\r\n\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_NE(h.ReadUntil("ok\n", seconds(2)).find("ok\n"), std::string::npos);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(2))
        << "/healthz waited behind slow clients";
  }
  for (auto& c : slow) {
    const std::string got = c->ReadUntil("\r\n\r\n", seconds(3));
    EXPECT_NE(got.find("HTTP/1.1 408"), std::string::npos)
        << "a trickled head was not cut off: " << got;
  }
  stop.store(true);
  trickler.join();
  EXPECT_GE(server_->counters().timed_out.load(), 8u);
}

TEST_F(HttpServerTest, AtTheCapTheLongestWaitingIdleConnectionMakesRoom) {
  HttpServerOptions o;
  o.max_connections = 4;
  Start(o);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<RawClient>(port()));
    idle.back()->Send("G");  // a started request, so the server surely holds the connection
  }
  RawClient fifth(port());
  fifth.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_NE(fifth.ReadUntil("ok\n").find("ok\n"), std::string::npos);
  EXPECT_TRUE(idle[0]->WaitClosed()) << "the oldest idle connection should have been closed";
  EXPECT_EQ(server_->counters().evicted.load(), 1u);
}

TEST_F(HttpServerTest, AtTheCapWithEveryConnectionBusyANewcomerGets503) {
  HttpServerOptions o;
  o.max_connections = 2;
  o.workers = 2;
  Start(o);
  RawClient a(port()), b(port());
  a.Send("GET /block HTTP/1.1\r\n\r\n");
  b.Send("GET /block HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(gate_.WaitForWaiting(2));
  RawClient c(port());
  const std::string got = c.ReadUntil("\r\n\r\n");
  EXPECT_NE(got.find("HTTP/1.1 503"), std::string::npos) << got;
  EXPECT_NE(got.find("Retry-After: 1"), std::string::npos) << got;
  EXPECT_EQ(server_->counters().refused.load(), 1u);
  gate_.Open();
  EXPECT_NE(a.ReadUntil("GET /block 0").find("GET /block 0"), std::string::npos);
}

TEST_F(HttpServerTest, AFullQueueAnswers503) {
  HttpServerOptions o;
  o.workers = 1;
  o.max_queued = 1;
  Start(o);
  RawClient a(port()), b(port()), c(port());
  a.Send("GET /block HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(gate_.WaitForWaiting(1));
  b.Send("GET /queued HTTP/1.1\r\n\r\n");  // waits in the queue
  // The queue holds one: c is sent once the server has b's request.
  ASSERT_TRUE(stampede::testing::WaitUntil(
      seconds(5), [&] { return server_->counters().requests.load() >= 2; }, milliseconds(5)));
  c.Send("GET /c HTTP/1.1\r\n\r\n");
  EXPECT_NE(c.ReadUntil("\r\n\r\n").find("HTTP/1.1 503"), std::string::npos);
  gate_.Open();
  EXPECT_NE(b.ReadUntil("GET /queued 0").find("GET /queued 0"), std::string::npos);
}

TEST_F(HttpServerTest, ABodyOverTheLimitIsRefusedHoweverItIsFramed) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  Start(o);
  {
    // Declared too large: refused before the body, and no 100 Continue invites it.
    RawClient c(port());
    c.Send("POST /p HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n");
    const std::string got = c.ReadUntil("\r\n\r\n");
    EXPECT_EQ(got.find("100 Continue"), std::string::npos) << got;
    EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got;
  }
  {
    // Chunked: the client keeps sending well past the limit; it still reads the 413.
    RawClient c(port());
    c.Send("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "400\r\n" + std::string(1024, 'x') + "\r\n";
    for (int i = 0; i < 200; ++i) {
      if (!c.Send(chunk)) break;  // the server may close once it has said 413
    }
    const std::string got = c.ReadUntil("\r\n\r\n");
    EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got;
  }
  {
    // Within the limit, with 100-continue, as curl sends a body over 1 KiB.
    RawClient c(port());
    c.Send("POST /p HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_NE(c.ReadUntil("100 Continue\r\n\r\n").find("HTTP/1.1 100 Continue"), std::string::npos);
    c.Send("hello");
    EXPECT_NE(c.ReadUntil("POST /p 5").find("POST /p 5"), std::string::npos);
  }
}

TEST_F(HttpServerTest, MalformedRequestsAreAnsweredAndClosed) {
  Start({});
  RawClient c(port());
  c.Send("GET / HTTP/1.1\r\nBad Header\r\n\r\n");
  const std::string got = c.ReadUntil("}\n");
  EXPECT_NE(got.find("HTTP/1.1 400"), std::string::npos) << got;
  EXPECT_NE(got.find("NAME: VALUE"), std::string::npos) << got;
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(HttpServerTest, AnIdleKeptAliveConnectionIsClosedAfterTheIdleTimeout) {
  HttpServerOptions o;
  o.idle_timeout = milliseconds(300);
  Start(o);
  RawClient c(port());
  c.Send("GET /healthz HTTP/1.1\r\n\r\n");
  ASSERT_NE(c.ReadUntil("ok\n").find("ok\n"), std::string::npos);
  EXPECT_TRUE(c.WaitClosed(seconds(3)));
}

TEST_F(HttpServerTest, StopReturnsWithClientsConnected) {
  Start({});
  RawClient idle(port()), half(port());
  half.Send("GET /x HTTP/1.1\r\n");
  server_->Stop();
  EXPECT_TRUE(idle.WaitClosed());
  EXPECT_TRUE(half.WaitClosed());
}

}  // namespace
}  // namespace stampede::controller
