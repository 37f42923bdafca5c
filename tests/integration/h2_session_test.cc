// H2Session over real loopback sockets, against Debian's nginx with HTTP/2 (h2c, prior knowledge)
// and against the test target's misbehaving HTTP/2 mode (stampede-test-target --h2c). The loop
// here drives the session the way docs/h2-integration.md asks the worker to: non-blocking socket,
// Produce on writable, Receive on readable, Tick at NextDeadlineNs, ConnectionLost on EOF.
#include "agent/h2_session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/target.h"
#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::agent {
namespace {

using common::Outcome;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

H2Request Request(int port, const std::string& method, const std::string& path,
                  const std::string& body = "", bool tls = false) {
  RequestSpec spec;
  spec.method = method;
  spec.path = path;
  spec.body = body;
  absl::StatusOr<Url> url =
      ParseUrl((tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port));
  absl::StatusOr<std::vector<PreparedRequest>> prepared = PrepareRequests(*url, {spec});
  EXPECT_TRUE(prepared.ok()) << prepared.status();
  absl::StatusOr<H2Request> r =
      H2Request::FromHttp1((*prepared)[0].wire, tls, ExpectedStatus::Of({}));
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

// One connection and its session, run by a poll loop; over TLS when given an SSL_CTX (the
// handshake is done blocking, then ALPN must have chosen "h2").
class Connection : public H2Session::Listener {
 public:
  Connection(int port, const H2SessionOptions& options, SSL_CTX* tls = nullptr)
      : fd_(Connect(port)) {
    if (tls != nullptr && fd_ >= 0) {
      ssl_ = SSL_new(tls);
      SSL_set_fd(ssl_, fd_);
      fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
      handshake_ok_ = SSL_connect(ssl_) == 1;
      fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
      const unsigned char* alpn = nullptr;
      unsigned int alpn_len = 0;
      SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
      alpn_.assign(reinterpret_cast<const char*>(alpn), alpn_len);
    }
    absl::StatusOr<std::unique_ptr<H2Session>> s = H2Session::Create(options, this);
    EXPECT_TRUE(s.ok()) << s.status();
    session_ = std::move(*s);
  }
  ~Connection() override {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
  }
  bool handshake_ok() const { return handshake_ok_; }
  const std::string& alpn() const { return alpn_; }
  bool connected() const { return fd_ >= 0; }
  // Until the server's SETTINGS arrive a session opens one stream.
  bool Handshake() {
    return Run([&] { return session_->PeerSettingsReceived(); }, std::chrono::seconds(5)) &&
           session_->PeerSettingsReceived();
  }
  H2Session& session() { return *session_; }

  void OnStreamEnd(const H2StreamEnd& end) override {
    ends.push_back(end);
    if (on_end) on_end(end);
  }

  // Runs until `done` holds or the session is finished; false after `limit`.
  bool Run(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const int64_t give_up = NowNs() + limit.count() * 1'000'000;
    for (;;) {
      const int64_t now = NowNs();
      session_->Tick(now);  // may end streams and queue their RST_STREAM: check and write after
      if (done()) return true;
      if (now >= give_up) return false;
      if (!Flush(now)) return true;
      if (session_->Finished() && out_.empty()) return true;
      const int64_t wake = std::min(session_->NextDeadlineNs(), give_up);
      const int timeout_ms =
          static_cast<int>(std::max<int64_t>(0, (wake - now + 999'999) / 1'000'000));
      pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
      if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR) return false;
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !Read(NowNs())) return true;
    }
  }

 private:
  // Writes what the session has; false when the connection is gone.
  bool Flush(int64_t now) {
    for (;;) {
      if (out_.empty()) {
        uint8_t buf[16384];
        const size_t n = session_->Produce(buf, sizeof buf, now);
        if (n == 0) return true;
        out_.assign(reinterpret_cast<char*>(buf), n);
      }
      ssize_t w;
      if (ssl_ != nullptr) {
        const int n = SSL_write(ssl_, out_.data(), static_cast<int>(out_.size()));
        w = n > 0 ? n : -1;
        errno = n <= 0 && SSL_get_error(ssl_, n) == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
      } else {
        w = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      }
      if (w < 0) {
        if (errno == EAGAIN) return true;
        session_->ConnectionLost(Outcome::kReset);
        return false;
      }
      out_.erase(0, static_cast<size_t>(w));
    }
  }

  bool Read(int64_t now) {
    uint8_t buf[16384];
    for (;;) {
      ssize_t n;
      if (ssl_ != nullptr) {
        const int r = SSL_read(ssl_, buf, sizeof buf);
        n = r > 0 ? r : SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
        errno = r <= 0 && SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ ? EAGAIN : ECONNRESET;
      } else {
        n = recv(fd_, buf, sizeof buf, 0);
      }
      if (n > 0) {
        session_->Receive(buf, static_cast<size_t>(n), now);
        continue;
      }
      if (n < 0 && errno == EAGAIN) return true;
      session_->ConnectionLost(n == 0 ? Outcome::kClosed : Outcome::kReset);
      return false;
    }
  }

 public:
  std::vector<H2StreamEnd> ends;
  std::function<void(const H2StreamEnd&)> on_end;

 private:
  int fd_;
  SSL* ssl_ = nullptr;
  bool handshake_ok_ = false;
  std::string alpn_;
  std::unique_ptr<H2Session> session_;
  std::string out_;  // produced, not yet sent
};

Outcome OutcomeOf(const std::vector<H2StreamEnd>& ends, uint64_t tag) {
  for (const H2StreamEnd& e : ends)
    if (e.tag == tag) return e.outcome;
  ADD_FAILURE() << "no end for tag " << tag;
  return Outcome::kCount;
}

size_t Count(const std::vector<H2StreamEnd>& ends, Outcome outcome) {
  return static_cast<size_t>(std::count_if(
      ends.begin(), ends.end(), [&](const H2StreamEnd& e) { return e.outcome == outcome; }));
}

class Nginx {
 public:
  // tls: HTTPS with a fresh self-signed certificate, HTTP/2 offered by ALPN when http2 is true.
  explicit Nginx(bool tls = false, bool http2 = true)
      : dir_(testing::MakeTempDir()), port_(testing::FreeLoopbackPort()) {
    std::string listen = std::string(tls ? " ssl" : "") + (http2 ? " http2" : "");
    if (tls) {
      const std::string cmd =
          "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout " + dir_ +
          "/key.pem -out " + dir_ + "/cert.pem >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) return;
      listen += ";\n    ssl_certificate " + dir_ + "/cert.pem;\n    ssl_certificate_key " + dir_ +
                "/key.pem";
    }
    std::ofstream(dir_ + "/index.html") << std::string(1000, 'a');
    std::ofstream(dir_ + "/big.bin")
        << std::string(300'000, 'b');  // > the 65535-byte default window
    std::ofstream conf(dir_ + "/nginx.conf");
    conf << (geteuid() == 0 ? "user root;\n" : "") << "daemon off;\nmaster_process off;\n"
         << "pid " << dir_ << "/nginx.pid;\nerror_log " << dir_ << "/error.log warn;\n"
         << "events { worker_connections 64; }\n"
         << "http {\n  access_log off;\n  client_body_temp_path " << dir_ << "/body;\n"
         << "  proxy_temp_path " << dir_ << "/proxy;\n  fastcgi_temp_path " << dir_ << "/fcgi;\n"
         << "  uwsgi_temp_path " << dir_ << "/uwsgi;\n  scgi_temp_path " << dir_ << "/scgi;\n"
         << "  http2_max_concurrent_streams 8;\n"
         // nginx's default (1000) ends a connection with GOAWAY after that many requests.
         << "  keepalive_requests 100000;\n"
         << "  server {\n    listen 127.0.0.1:" << port_ << listen << ";\n    root " << dir_
         << ";\n  }\n}\n";
    conf.close();
    process_ = std::make_unique<testing::Process>(std::vector<std::string>{
        "/usr/sbin/nginx", "-p", dir_, "-c", dir_ + "/nginx.conf", "-e", dir_ + "/error.log"});
    ready_ = testing::WaitUntil(std::chrono::seconds(10), [&] {
      const int fd = Connect(port_);
      if (fd >= 0) close(fd);
      return fd >= 0;
    });
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }
  std::string Log() const { return process_->Stderr(); }

 private:
  std::string dir_;
  int port_;
  std::unique_ptr<testing::Process> process_;
  bool ready_ = false;
};

TEST(H2SessionNginxTest, ManyStreamsOnOneConnectionAllSucceed) {
  Nginx nginx;
  ASSERT_TRUE(nginx.ready()) << nginx.Log();
  H2SessionOptions options;
  options.max_concurrent_streams = 100;
  Connection conn(nginx.port(), options);
  ASSERT_TRUE(conn.connected());
  const H2Request index = Request(nginx.port(), "GET", "/index.html");
  const H2Request big = Request(nginx.port(), "GET", "/big.bin");
  const H2Request missing = Request(nginx.port(), "GET", "/missing");
  constexpr uint64_t kRequests = 1000;
  uint64_t submitted = 0;
  uint32_t most_open = 0;
  auto fill = [&] {
    const int64_t now = NowNs();
    while (submitted < kRequests) {
      const H2Request& r = submitted % 100 == 7 ? big : submitted % 100 == 9 ? missing : index;
      if (!conn.session().Submit(r, submitted, now + 10'000'000'000, now)) break;
      ++submitted;
    }
    most_open = std::max(most_open, conn.session().OpenStreams());
  };
  conn.on_end = [&](const H2StreamEnd&) { fill(); };
  fill();
  ASSERT_TRUE(conn.Run([&] { return conn.ends.size() == kRequests; }, std::chrono::seconds(30)));
  ASSERT_EQ(conn.ends.size(), kRequests);
  // nginx's http2_max_concurrent_streams 8 lowered our 100.
  EXPECT_EQ(conn.session().StreamLimit(), 8u);
  // One stream until nginx's SETTINGS, then its 8: nothing sent beyond its limit, none refused.
  EXPECT_EQ(most_open, 8u);
  EXPECT_EQ(Count(conn.ends, Outcome::kStreamReset), 0u);
  EXPECT_EQ(Count(conn.ends, Outcome::kOk), kRequests - kRequests / 100);
  EXPECT_EQ(Count(conn.ends, Outcome::kUnexpectedStatus), kRequests / 100);
  for (const H2StreamEnd& e : conn.ends) {
    const uint64_t i = e.tag % 100;
    EXPECT_EQ(e.status, i == 9 ? 404 : 200) << e.tag;
    EXPECT_EQ(e.body_bytes, i == 9 ? e.body_bytes : i == 7 ? 300'000u : 1000u) << e.tag;
  }
  EXPECT_TRUE(conn.session().AcceptsStreams());
}

TEST(H2SessionNginxTest, ARequestBodyLargerThanTheWindowIsSent) {
  Nginx nginx;
  ASSERT_TRUE(nginx.ready()) << nginx.Log();
  Connection conn(nginx.port(), H2SessionOptions{});
  ASSERT_TRUE(conn.connected());
  // nginx refuses POST to a static file (405) but reads the body first or resets the stream with
  // NO_ERROR after its response: either way a complete response.
  const H2Request post = Request(nginx.port(), "POST", "/index.html", std::string(200'000, 'p'));
  ASSERT_TRUE(conn.session().Submit(post, 1, NowNs() + 10'000'000'000, NowNs()));
  ASSERT_TRUE(conn.Run([&] { return !conn.ends.empty(); }, std::chrono::seconds(10)));
  ASSERT_EQ(conn.ends.size(), 1u);
  EXPECT_EQ(conn.ends[0].status, 405);
  EXPECT_EQ(conn.ends[0].outcome, Outcome::kUnexpectedStatus);
}

// h2: HTTP/2 over TLS, chosen by ALPN, as docs/h2-integration.md has the worker do it.
TEST(H2SessionNginxTest, OverTlsAlpnChoosesHttpTwo) {
  Nginx nginx(/*tls=*/true);
  ASSERT_TRUE(nginx.ready()) << nginx.Log();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>("\x02h2"), 3), 0);
  {
    Connection conn(nginx.port(), H2SessionOptions{}, ctx);
    ASSERT_TRUE(conn.handshake_ok());
    EXPECT_EQ(conn.alpn(), "h2");
    const H2Request index = Request(nginx.port(), "GET", "/index.html", "", /*tls=*/true);
    ASSERT_TRUE(conn.Handshake());
    for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(conn.session().Submit(index, i, 0, NowNs()));
    ASSERT_TRUE(conn.Run([&] { return conn.ends.size() == 8; }, std::chrono::seconds(10)));
    ASSERT_EQ(conn.ends.size(), 8u);
    EXPECT_EQ(Count(conn.ends, Outcome::kOk), 8u);
    EXPECT_EQ(conn.ends[0].body_bytes, 1000u);
  }
  {
    // A server that does not offer h2: nginx ends the handshake with a no_application_protocol
    // alert (others complete it without ALPN); the worker counts either as tls.
    Nginx http1_only(/*tls=*/true, /*http2=*/false);
    ASSERT_TRUE(http1_only.ready()) << http1_only.Log();
    Connection conn(http1_only.port(), H2SessionOptions{}, ctx);
    EXPECT_FALSE(conn.handshake_ok());
    EXPECT_NE(conn.alpn(), "h2");
  }
  SSL_CTX_free(ctx);
}

TEST(H2SessionTargetTest, EveryMisbehaviourIsItsOutcome) {
  testing::TestTarget target({"--h2c"});
  Connection conn(target.port(), H2SessionOptions{});
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Handshake());
  const H2Request ok = Request(target.port(), "GET", "/");
  const H2Request rst = Request(target.port(), "GET", "/rst");
  const H2Request refuse = Request(target.port(), "GET", "/refuse");
  const H2Request hang = Request(target.port(), "GET", "/hang");
  const H2Request goaway = Request(target.port(), "GET", "/goaway");
  const int64_t now = NowNs();
  ASSERT_TRUE(conn.session().Submit(ok, 0, 0, now));
  ASSERT_TRUE(conn.session().Submit(rst, 1, 0, now));
  ASSERT_TRUE(conn.session().Submit(refuse, 2, 0, now));
  ASSERT_TRUE(conn.session().Submit(hang, 3, now + 300'000'000, now));  // a 300 ms timeout
  ASSERT_TRUE(conn.Run([&] { return conn.ends.size() == 4; }, std::chrono::seconds(10)));
  EXPECT_EQ(OutcomeOf(conn.ends, 0), Outcome::kOk);
  EXPECT_EQ(OutcomeOf(conn.ends, 1), Outcome::kStreamReset);
  EXPECT_EQ(OutcomeOf(conn.ends, 2), Outcome::kStreamReset);
  EXPECT_EQ(OutcomeOf(conn.ends, 3), Outcome::kTimeout);

  // GOAWAY mid-run: the streams after it fail as goaway, the server closes, the session finishes.
  ASSERT_TRUE(conn.session().Submit(goaway, 4, 0, NowNs()));
  ASSERT_TRUE(conn.session().Submit(ok, 5, 0, NowNs()));
  ASSERT_TRUE(conn.Run([] { return false; }, std::chrono::seconds(10)));
  ASSERT_EQ(conn.ends.size(), 6u);
  EXPECT_EQ(OutcomeOf(conn.ends, 4), Outcome::kOk);
  EXPECT_EQ(OutcomeOf(conn.ends, 5), Outcome::kGoaway);
  EXPECT_TRUE(conn.session().Finished());
}

TEST(H2SessionTargetTest, GarbageFramesEndTheConnectionAsMalformed) {
  testing::TestTarget target({"--h2c"});
  Connection conn(target.port(), H2SessionOptions{});
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Handshake());
  const H2Request hang = Request(target.port(), "GET", "/hang");
  const H2Request garbage = Request(target.port(), "GET", "/garbage");
  ASSERT_TRUE(conn.session().Submit(hang, 0, 0, NowNs()));
  ASSERT_TRUE(conn.session().Submit(garbage, 1, 0, NowNs()));
  ASSERT_TRUE(conn.Run([] { return false; }, std::chrono::seconds(10)));
  ASSERT_EQ(conn.ends.size(), 2u);
  EXPECT_EQ(Count(conn.ends, Outcome::kMalformed), 2u);
}

TEST(H2SessionTargetTest, AWindowThatNeverOpensIsAFlowControlStall) {
  testing::TestTarget target({"--h2c", "--h2-zero-window"});
  H2SessionOptions options;
  options.flow_control_stall_ns = 200'000'000;
  Connection conn(target.port(), options);
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Handshake());
  const H2Request post = Request(target.port(), "POST", "/", "a body");
  const H2Request get = Request(target.port(), "GET", "/");
  const int64_t start = NowNs();
  ASSERT_TRUE(conn.session().Submit(post, 0, start + 10'000'000'000, start));
  ASSERT_TRUE(conn.session().Submit(get, 1, start + 10'000'000'000, start));
  ASSERT_TRUE(conn.Run([&] { return conn.ends.size() == 2; }, std::chrono::seconds(10)));
  ASSERT_EQ(conn.ends.size(), 2u);
  EXPECT_EQ(OutcomeOf(conn.ends, 1), Outcome::kOk);
  EXPECT_EQ(OutcomeOf(conn.ends, 0), Outcome::kFlowControl);
  EXPECT_GE(NowNs() - start, 200'000'000);
}

}  // namespace
}  // namespace stampede::agent
