// stampede-test-target: an HTTP/1.1 server with well-behaved and misbehaving endpoints, used as the
// target of integration tests.
//
// One detached thread per accepted connection with blocking sockets, so a slow endpoint (/delay,
// /stall, /slow-read/N, which leaves a request's body unread for N ms) never holds up another
// connection. Requests on a connection are served in order;
// pipelined requests and requests split across reads are both handled. Optional TLS via OpenSSL.
//
// Counting: a request is counted just before its response is written (after any delay), so a
// client that has seen a response always finds it in /stats. /drop, /reset, /malformed,
// /not-http and /truncated are counted just before the close or the write; /stall and /h2-frame
// when their request is received.
// Requests rejected as unparsable (400 before routing, 431) are not counted; a well-formed request
// with a bad endpoint argument (/delay/abc, /status/100) is counted and answered 400 keep-alive.
// /flow/ is a user flow with logins, tokens and cookies (flow.h). HEAD gets the headers of the GET
// response without the body. /stats also has "connections"
// (accepted since the start) and "open_connections" (accepted and not closed yet, not counting the
// one asking), which reaches 0 once every other client has gone.
//
// --h2c serves HTTP/2 by prior knowledge instead (tests/target/h2_test_server.h: normal answers,
// GOAWAY, RST_STREAM, garbage frames, undecodable HPACK, and with --h2-zero-window a flow-control
// window that never opens, or with --h2-wide-window 16 MiB windows that need no update). In that
// mode every connection speaks HTTP/2, so there is no /stats.
//
// Bounds: request head 16 KiB (431 and close); /bytes up to 64 MiB; /chunked up to 100000 chunks;
// delays up to one hour; at most 10000 distinct paths in /stats (the rest go under "(other)").

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "common/http_syntax.h"
#include "tests/target/flow.h"
#include "tests/target/h2_test_server.h"

namespace stampede::test_target {
namespace {

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr uint64_t kMaxBytesBody = 64ull * 1024 * 1024;
constexpr uint64_t kMaxChunks = 100000;
constexpr uint64_t kMaxDelayMs = 3600 * 1000;
constexpr size_t kMaxDistinctPaths = 10000;
constexpr uint64_t kMaxFlowBody = 64 * 1024;
constexpr size_t kThreadStackBytes = 512 * 1024;
constexpr int kListenBacklog = 4096;

class Stats {
 public:
  void CountConnection() {
    connections_.fetch_add(1, std::memory_order_relaxed);
    open_.fetch_add(1, std::memory_order_relaxed);
  }
  void ConnectionClosed() { open_.fetch_sub(1, std::memory_order_relaxed); }

  void CountRequest(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    auto it = by_path_.find(path);
    if (it != by_path_.end()) {
      ++it->second;
    } else if (by_path_.size() < kMaxDistinctPaths) {
      by_path_.emplace(path, 1);
    } else {
      ++by_path_["(other)"];
    }
  }

  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_ = 0;
    by_path_.clear();
    connections_.store(0, std::memory_order_relaxed);
  }

  // Called while serving /stats, whose own connection is open.
  std::string ToJson() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out = "{\"requests\": " + std::to_string(requests_) + ", \"by_path\": {";
    bool first = true;
    for (const auto& [path, count] : by_path_) {
      if (!first) out += ", ";
      first = false;
      AppendJsonString(path, &out);
      out += ": " + std::to_string(count);
    }
    out += "}, \"connections\": " + std::to_string(connections_.load(std::memory_order_relaxed)) +
           ", \"open_connections\": " + std::to_string(open_.load(std::memory_order_relaxed) - 1) +
           "}\n";
    return out;
  }

 private:
  // Paths come from clients, so every byte outside printable ASCII is escaped.
  static void AppendJsonString(const std::string& s, std::string* out) {
    *out += '"';
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        *out += '\\';
        *out += static_cast<char>(c);
      } else if (c < 0x20 || c >= 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        *out += buf;
      } else {
        *out += static_cast<char>(c);
      }
    }
    *out += '"';
  }

  std::atomic<uint64_t> connections_{0};
  std::atomic<int64_t> open_{0};  // accepted and not yet closed
  std::mutex mu_;
  uint64_t requests_ = 0;                    // guarded by mu_
  std::map<std::string, uint64_t> by_path_;  // guarded by mu_
};

Stats& GlobalStats() {
  static Stats* stats = new Stats;
  return *stats;
}

// One accepted socket, plain or TLS. Owns the fd and the SSL object. Used by one thread only.
class Connection {
 public:
  Connection(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { Close(); }

  bool Handshake() {
    if (ssl_ == nullptr) return true;
    if (SSL_accept(ssl_) == 1) return true;
    failed_ = true;
    ERR_clear_error();
    return false;
  }

  // Returns bytes read, or 0 on EOF or any error.
  size_t Read(char* buf, size_t len) {
    if (ssl_ != nullptr) {
      int n = SSL_read(ssl_, buf, static_cast<int>(len));
      if (n > 0) return static_cast<size_t>(n);
      failed_ = true;
      ERR_clear_error();
      return 0;
    }
    for (;;) {
      ssize_t n = recv(fd_, buf, len, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }

  bool Write(std::string_view data) {
    while (!data.empty()) {
      size_t piece = std::min<size_t>(data.size(), 1 << 20);
      size_t written;
      if (ssl_ != nullptr) {
        int n = SSL_write(ssl_, data.data(), static_cast<int>(piece));
        if (n <= 0) {
          failed_ = true;
          ERR_clear_error();
          return false;
        }
        written = static_cast<size_t>(n);
      } else {
        ssize_t n = send(fd_, data.data(), piece, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        written = static_cast<size_t>(n);
      }
      data.remove_prefix(written);
    }
    return true;
  }

  // Sends our FIN (and TLS close_notify), then drains what the client still sends for a bounded
  // time, so unread pipelined input does not make the kernel answer with an RST that could destroy
  // the response before the client reads it.
  void CloseGracefully() {
    if (fd_ < 0) return;
    if (ssl_ != nullptr && !failed_) SSL_shutdown(ssl_);
    shutdown(fd_, SHUT_WR);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    size_t drained = 0;
    char buf[4096];
    while (drained < (1 << 20)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfd{fd_, POLLIN, 0};
      int r = poll(&pfd, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
    Close();
  }

  // Makes the kernel send an RST instead of a FIN.
  void Reset() {
    if (fd_ < 0) return;
    linger lin{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    Close();
  }

  // Plain close: FIN, no TLS close_notify.
  void Close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_;
  SSL* ssl_;
  bool failed_ = false;  // after a TLS error no further SSL_* I/O is allowed
};

struct Request {
  std::string method;
  std::string path;  // target without the query string
  bool keep_alive = false;
  bool http10 = false;
  bool expect_continue = false;
  bool has_transfer_encoding = false;
  uint64_t content_length = 0;
  // What the user flow (/flow/, flow.h) reads; other endpoints ignore them.
  std::string authorization;
  std::string cookie;
  std::string content_type;
  std::string body;  // kept only for /flow/ requests, up to kMaxFlowBody
};

using stampede::common::AsciiLower;
using stampede::common::IsToken;
using stampede::common::TrimOws;

// Digits only, no sign, no overflow, at most `max`.
bool ParseUint(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// `head` is the request line and header lines, without the final empty line.
bool ParseRequestHead(std::string_view head, Request* req) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);

  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || target.empty() || target.front() != '/') return false;
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  if (version == "HTTP/1.1") {
    req->http10 = false;
  } else if (version == "HTTP/1.0") {
    req->http10 = true;
  } else {
    return false;
  }
  req->method = std::string(method);
  req->path = std::string(target.substr(0, target.find('?')));

  bool saw_close = false;
  bool saw_keep_alive = false;
  bool saw_length = false;
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    std::string_view header = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    size_t colon = header.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = header.substr(0, colon);  // no obs-fold, no space before the colon
    if (!IsToken(name)) return false;
    std::string_view value = TrimOws(header.substr(colon + 1));
    std::string lname = AsciiLower(name);
    if (lname == "content-length") {
      uint64_t length;
      if (!ParseUint(value, UINT64_MAX / 2, &length)) return false;
      if (saw_length && length != req->content_length) return false;
      saw_length = true;
      req->content_length = length;
    } else if (lname == "transfer-encoding") {
      req->has_transfer_encoding = true;
    } else if (lname == "authorization") {
      req->authorization = std::string(value);
    } else if (lname == "cookie") {
      req->cookie = std::string(value);
    } else if (lname == "content-type") {
      req->content_type = std::string(value);
    } else if (lname == "expect") {
      req->expect_continue = AsciiLower(value) == "100-continue";
    } else if (lname == "connection") {
      std::string tokens = AsciiLower(value);
      size_t start = 0;
      while (start <= tokens.size()) {
        size_t comma = tokens.find(',', start);
        if (comma == std::string::npos) comma = tokens.size();
        std::string_view token = TrimOws(std::string_view(tokens).substr(start, comma - start));
        if (token == "close") saw_close = true;
        if (token == "keep-alive") saw_keep_alive = true;
        start = comma + 1;
      }
    }
  }
  req->keep_alive = req->http10 ? (saw_keep_alive && !saw_close) : !saw_close;
  return true;
}

enum class Next { kContinue, kCloseGracefully, kClose, kReset };

const char* Reason(int status) {
  static const auto* const kReasons = new std::map<int, const char*>{
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {206, "Partial Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {303, "See Other"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {410, "Gone"},
      {413, "Content Too Large"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  auto it = kReasons->find(status);
  return it == kReasons->end() ? "Status" : it->second;
}

enum class Framing {
  kLength,   // Content-Length
  kEof,      // no Content-Length: the body ends with the connection
  kChunked,  // Transfer-Encoding: chunked, set by the caller in extra_headers
  kNone,     // 204/304: neither body nor Content-Length
};

struct Reply {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
  std::string extra_headers;  // complete "Name: value\r\n" lines
  bool close = false;
  Framing framing = Framing::kLength;
};

std::string StatusLine(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
}

// Everything up to and including the empty line. Decides Connection: close vs keep-alive.
std::string ResponseHead(const Request& req, const Reply& reply, uint64_t content_length,
                         bool* close_after) {
  *close_after = reply.close || reply.framing == Framing::kEof || !req.keep_alive;
  std::string head = StatusLine(reply.status);
  if (reply.framing != Framing::kNone) head += "Content-Type: " + reply.content_type + "\r\n";
  if (reply.framing == Framing::kLength) {
    head += "Content-Length: " + std::to_string(content_length) + "\r\n";
  }
  head += reply.extra_headers;
  if (*close_after) {
    head += "Connection: close\r\n";
  } else if (req.http10) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  return head;
}

Next AfterWrite(bool ok, bool close_after) {
  if (!ok) return Next::kClose;
  return close_after ? Next::kCloseGracefully : Next::kContinue;
}

Next Send(Connection& conn, const Request& req, const Reply& reply) {
  bool close_after;
  std::string out = ResponseHead(req, reply, reply.body.size(), &close_after);
  if (req.method != "HEAD" && reply.framing != Framing::kNone) out += reply.body;
  return AfterWrite(conn.Write(out), close_after);
}

// `close` is for protocol errors, after which the rest of the input cannot be trusted.
Next SendError(Connection& conn, const Request& req, int status, bool close) {
  Reply reply;
  reply.status = status;
  reply.body = std::to_string(status) + " " + Reason(status) + "\n";
  reply.close = close;
  return Send(conn, req, reply);
}

Next SendBytes(Connection& conn, const Request& req, uint64_t n) {
  static const std::string* const kFill = new std::string(64 * 1024, 'x');
  Reply reply;
  reply.content_type = "application/octet-stream";
  bool close_after;
  if (!conn.Write(ResponseHead(req, reply, n, &close_after))) return Next::kClose;
  if (req.method != "HEAD") {
    while (n > 0) {
      size_t piece = std::min<uint64_t>(n, kFill->size());
      if (!conn.Write(std::string_view(*kFill).substr(0, piece))) return Next::kClose;
      n -= piece;
    }
  }
  return AfterWrite(true, close_after);
}

// Chunk i has 1 + (i * 7919 + 31) % 300 bytes, all equal to 'a' + i % 26. Every fourth chunk
// (i % 4 == 1) carries the extension ";foo=bar"; sizes for i % 3 == 2 are in uppercase hex.
Next SendChunked(Connection& conn, const Request& req, uint64_t chunks) {
  uint64_t total = 0;
  for (uint64_t i = 0; i < chunks; ++i) total += 1 + (i * 7919 + 31) % 300;
  Reply reply;
  reply.framing = Framing::kChunked;
  reply.extra_headers = "Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\nX-Decoded-Length: " +
                        std::to_string(total) + "\r\n";
  bool close_after;
  std::string out = ResponseHead(req, reply, 0, &close_after);
  if (req.method != "HEAD") {
    for (uint64_t i = 0; i < chunks; ++i) {
      size_t size = 1 + (i * 7919 + 31) % 300;
      char line[32];
      std::snprintf(line, sizeof line, i % 3 == 2 ? "%zX" : "%zx", size);
      out += line;
      if (i % 4 == 1) out += ";foo=bar";
      out += "\r\n";
      out.append(size, static_cast<char>('a' + i % 26));
      out += "\r\n";
      if (out.size() >= 64 * 1024) {
        if (!conn.Write(out)) return Next::kClose;
        out.clear();
      }
    }
    out += "0\r\nX-Trailer: done\r\n\r\n";
  }
  return AfterWrite(conn.Write(out), close_after);
}

void SleepMs(uint64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

uint64_t RandomBetween(uint64_t lo, uint64_t hi) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
}

Next BadArgument(Connection& conn, const Request& req) {
  GlobalStats().CountRequest(req.path);
  return SendError(conn, req, 400, false);
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Counts and answers one request whose body has been consumed. A bad number in a path (e.g.
// /delay/abc, /status/100) is counted and answered 400 on a connection that stays open, since the
// request itself was well framed.
Next Dispatch(Connection& conn, const Request& req) {
  Stats& stats = GlobalStats();
  const std::string& path = req.path;
  std::string_view p = path;
  uint64_t a = 0;
  uint64_t b = 0;

  if (test_target::FlowReply flow; HandleFlow(
          {req.method, path, req.authorization, req.cookie, req.content_type, req.body}, &flow)) {
    stats.CountRequest(path);
    Reply reply;
    reply.status = flow.status;
    reply.content_type = flow.content_type;
    reply.body = std::move(flow.body);
    reply.extra_headers = std::move(flow.extra_headers);
    return Send(conn, req, reply);
  }
  if (path == "/stats") {
    Reply reply;
    reply.content_type = "application/json";
    reply.body = stats.ToJson();
    return Send(conn, req, reply);
  }
  if (path == "/stats/reset") {
    stats.Reset();
    Reply reply;
    reply.content_type = "application/json";
    reply.body = "{}\n";
    return Send(conn, req, reply);
  }
  if (path == "/" || path == "/hello") {
    stats.CountRequest(path);
    Reply reply;
    reply.body = "hello\n";
    return Send(conn, req, reply);
  }
  if (StartsWith(p, "/delay/")) {
    if (!ParseUint(p.substr(7), kMaxDelayMs, &a)) return BadArgument(conn, req);
    SleepMs(a);
    stats.CountRequest(path);
    Reply reply;
    reply.body = "ok\n";
    return Send(conn, req, reply);
  }
  if (StartsWith(p, "/slow-read/")) {
    if (!ParseUint(p.substr(11), kMaxDelayMs, &a)) return BadArgument(conn, req);
    stats.CountRequest(path);
    Reply reply;
    reply.body = "ok\n";
    return Send(conn, req, reply);
  }
  if (StartsWith(p, "/random-delay/")) {
    std::string_view args = p.substr(14);
    size_t slash = args.find('/');
    if (slash == std::string_view::npos || !ParseUint(args.substr(0, slash), kMaxDelayMs, &a) ||
        !ParseUint(args.substr(slash + 1), kMaxDelayMs, &b) || a > b) {
      return BadArgument(conn, req);
    }
    SleepMs(RandomBetween(a, b));
    stats.CountRequest(path);
    Reply reply;
    reply.body = "ok\n";
    return Send(conn, req, reply);
  }
  if (StartsWith(p, "/status/")) {
    if (!ParseUint(p.substr(8), 599, &a) || a < 200) return BadArgument(conn, req);
    stats.CountRequest(path);
    Reply reply;
    reply.status = static_cast<int>(a);
    reply.body = "status " + std::to_string(a) + "\n";
    if (a == 204 || a == 304) reply.framing = Framing::kNone;
    return Send(conn, req, reply);
  }
  if (StartsWith(p, "/bytes/")) {
    if (!ParseUint(p.substr(7), kMaxBytesBody, &a)) return BadArgument(conn, req);
    stats.CountRequest(path);
    return SendBytes(conn, req, a);
  }
  if (StartsWith(p, "/chunked/")) {
    if (!ParseUint(p.substr(9), kMaxChunks, &a)) return BadArgument(conn, req);
    stats.CountRequest(path);
    return SendChunked(conn, req, a);
  }
  if (path == "/close") {
    stats.CountRequest(path);
    Reply reply;
    reply.body = "closing\n";
    reply.close = true;
    return Send(conn, req, reply);
  }
  if (path == "/eof-body") {
    stats.CountRequest(path);
    Reply reply;
    reply.body = "this body ends at eof\n";
    reply.framing = Framing::kEof;
    return Send(conn, req, reply);
  }
  if (path == "/drop") {
    stats.CountRequest(path);
    return Next::kClose;
  }
  if (path == "/reset") {
    stats.CountRequest(path);
    return Next::kReset;
  }
  if (path == "/malformed") {
    stats.CountRequest(path);
    conn.Write("HTTP/1.1 abc garbage\r\n\r\n");
    return Next::kCloseGracefully;
  }
  if (path == "/not-http") {
    // Bytes that are not HTTP at all, then a close (a banner, another protocol).
    stats.CountRequest(path);
    conn.Write("SSH-2.0-OpenSSH_9.2\r\n");
    return Next::kCloseGracefully;
  }
  if (path == "/h2-frame") {
    // What an HTTP/2-only server sends an HTTP/1 client: a SETTINGS frame, then it waits.
    stats.CountRequest(path);
    conn.Write(std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9));
    char buf[4096];
    while (conn.Read(buf, sizeof buf) > 0) {
    }
    return Next::kClose;
  }
  if (path == "/truncated") {
    stats.CountRequest(path);
    conn.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    return Next::kCloseGracefully;
  }
  if (path == "/stall") {
    stats.CountRequest(path);
    char buf[4096];
    while (conn.Read(buf, sizeof buf) > 0) {
    }
    return Next::kClose;
  }
  if (path == "/continue") {
    // The interim response was sent before the body was read.
    stats.CountRequest(path);
    Reply reply;
    reply.body = "ok\n";
    return Send(conn, req, reply);
  }
  stats.CountRequest(path);
  return SendError(conn, req, 404, false);
}

// Reads `length` body bytes into `body`, first from `buf` (which keeps any pipelined excess).
bool ReadBody(Connection& conn, std::string& buf, uint64_t length, std::string* body) {
  const size_t from_buf = std::min<uint64_t>(length, buf.size());
  body->assign(buf, 0, from_buf);
  buf.erase(0, from_buf);
  char scratch[16 * 1024];
  while (body->size() < length) {
    const size_t n = conn.Read(scratch, std::min<uint64_t>(length - body->size(), sizeof scratch));
    if (n == 0) return false;
    body->append(scratch, n);
  }
  return true;
}

// Reads and discards `length` body bytes, first from `buf` (which keeps any pipelined excess).
bool DiscardBody(Connection& conn, std::string& buf, uint64_t length) {
  size_t from_buf = std::min<uint64_t>(length, buf.size());
  buf.erase(0, from_buf);
  length -= from_buf;
  char scratch[16 * 1024];
  while (length > 0) {
    size_t n = conn.Read(scratch, std::min<uint64_t>(length, sizeof scratch));
    if (n == 0) return false;
    length -= n;
  }
  return true;
}

Next Serve(Connection& conn) {
  if (!conn.Handshake()) return Next::kClose;
  std::string buf;
  char scratch[16 * 1024];
  for (;;) {
    size_t head_end;
    for (;;) {
      // RFC 9112 2.2: ignore empty lines before a request line.
      size_t skip = 0;
      while (buf.compare(skip, 2, "\r\n") == 0) skip += 2;
      buf.erase(0, skip);
      head_end = buf.find("\r\n\r\n");
      if (head_end != std::string::npos) break;
      if (buf.size() > kMaxHeaderBytes) return SendError(conn, Request(), 431, true);
      size_t n = conn.Read(scratch, sizeof scratch);
      if (n == 0) return Next::kClose;
      buf.append(scratch, n);
    }
    if (head_end + 4 > kMaxHeaderBytes) return SendError(conn, Request(), 431, true);

    Request req;
    if (!ParseRequestHead(std::string_view(buf).substr(0, head_end), &req)) {
      return SendError(conn, Request(), 400, true);
    }
    buf.erase(0, head_end + 4);
    if (req.has_transfer_encoding) {
      return SendError(conn, req, 400, true);
    }
    if (req.path == "/continue" || (req.expect_continue && req.content_length > 0)) {
      if (!conn.Write("HTTP/1.1 100 Continue\r\n\r\n")) return Next::kClose;
    }
    if (uint64_t ms = 0; StartsWith(req.path, "/slow-read/") &&
                         ParseUint(std::string_view(req.path).substr(11), kMaxDelayMs, &ms)) {
      SleepMs(ms);  // the body waits in the socket, so a client's send of a large one must wait
    }
    if (req.path.compare(0, 6, "/flow/") == 0) {
      if (req.content_length > kMaxFlowBody) return SendError(conn, req, 413, true);
      if (!ReadBody(conn, buf, req.content_length, &req.body)) return Next::kClose;
    } else if (!DiscardBody(conn, buf, req.content_length)) {
      return Next::kClose;
    }

    Next next = Dispatch(conn, req);
    if (next != Next::kContinue) return next;
  }
}

struct ConnectionArgs {
  int fd;
  SSL_CTX* tls;
  const H2TestServer::Options* h2;  // null: HTTP/1.1
};

// One HTTP/2 connection: write what the server session has, then block on the next read.
void ServeH2(Connection& conn, const H2TestServer::Options& options) {
  H2TestServer server(options);
  char buf[16384];
  for (;;) {
    std::string out;
    if (!server.Produce(&out) || (!out.empty() && !conn.Write(out))) return;
    if (server.Finished()) return;
    const size_t n = conn.Read(buf, sizeof buf);
    if (n == 0 || !server.Receive(reinterpret_cast<const uint8_t*>(buf), n)) {
      std::string last;  // a GOAWAY for the protocol error, when there is one
      if (server.Produce(&last) && !last.empty()) conn.Write(last);
      return;
    }
  }
}

void* ConnectionThread(void* raw) {
  std::unique_ptr<ConnectionArgs> args(static_cast<ConnectionArgs*>(raw));
  SSL* ssl = nullptr;
  if (args->tls != nullptr) {
    ssl = SSL_new(args->tls);
    if (ssl == nullptr || SSL_set_fd(ssl, args->fd) != 1) {
      if (ssl != nullptr) SSL_free(ssl);
      close(args->fd);
      GlobalStats().ConnectionClosed();
      return nullptr;
    }
  }
  Connection conn(args->fd, ssl);
  if (args->h2 != nullptr) {
    ServeH2(conn, *args->h2);
    conn.CloseGracefully();
    GlobalStats().ConnectionClosed();
    return nullptr;
  }
  switch (Serve(conn)) {
    case Next::kContinue:
    case Next::kClose:
      conn.Close();
      break;
    case Next::kCloseGracefully:
      conn.CloseGracefully();
      break;
    case Next::kReset:
      conn.Reset();
      break;
  }
  GlobalStats().ConnectionClosed();
  return nullptr;
}

void StartConnectionThread(int fd, SSL_CTX* tls, const H2TestServer::Options* h2) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kThreadStackBytes);
  auto* args = new ConnectionArgs{fd, tls, h2};
  pthread_t thread;
  if (pthread_create(&thread, &attr, ConnectionThread, args) != 0) {
    delete args;
    close(fd);
    GlobalStats().ConnectionClosed();
  }
  pthread_attr_destroy(&attr);
}

struct Flags {
  std::string host = "127.0.0.1";
  uint64_t port = 0;
  std::string port_file;
  std::string tls_cert;
  std::string tls_key;
  bool h2c = false;
  H2TestServer::Options h2;
};

[[noreturn]] void FlagError(const std::string& message) {
  std::fprintf(stderr, "stampede-test-target: %s\n", message.c_str());
  std::fprintf(stderr,
               "usage: stampede-test-target [--port N] [--host ADDR] [--port-file PATH] "
               "[--tls-cert FILE --tls-key FILE] [--h2c [--h2-zero-window | --h2-wide-window]]\n");
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    bool inline_value = StartsWith(arg, "--") && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: stampede-test-target [--port N] [--host ADDR] [--port-file PATH] "
          "[--tls-cert FILE --tls-key FILE] [--h2c [--h2-zero-window | --h2-wide-window]]\n");
      std::exit(0);
    }
    if (arg == "--h2c" || arg == "--h2-zero-window" || arg == "--h2-wide-window") {
      if (inline_value) FlagError("flag " + arg + " takes no value");
      if (arg == "--h2c") flags.h2c = true;
      if (arg == "--h2-zero-window") flags.h2.zero_window = true;
      if (arg == "--h2-wide-window") flags.h2.wide_window = true;
      continue;
    }
    if (arg != "--port" && arg != "--host" && arg != "--port-file" && arg != "--tls-cert" &&
        arg != "--tls-key") {
      FlagError("unknown flag " + arg);
    }
    if (!inline_value) {
      if (i + 1 >= argc) FlagError("flag " + arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--port") {
      if (!ParseUint(value, 65535, &flags.port)) {
        FlagError("flag --port: '" + value + "' is not a port number (0..65535)");
      }
    } else if (arg == "--host") {
      flags.host = value;
    } else if (arg == "--port-file") {
      flags.port_file = value;
    } else if (arg == "--tls-cert") {
      flags.tls_cert = value;
    } else {
      flags.tls_key = value;
    }
  }
  if (flags.h2.zero_window && !flags.h2c) FlagError("flag --h2-zero-window needs --h2c");
  if (flags.h2.wide_window && !flags.h2c) FlagError("flag --h2-wide-window needs --h2c");
  if (flags.h2.zero_window && flags.h2.wide_window)
    FlagError("flags --h2-zero-window and --h2-wide-window exclude each other");
  if (flags.h2c && !flags.tls_cert.empty())
    FlagError("flag --h2c is cleartext: not with --tls-cert");
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    FlagError(flags.tls_cert.empty() ? "flag --tls-key needs --tls-cert"
                                     : "flag --tls-cert needs --tls-key");
  }
  return flags;
}

SSL_CTX* MakeTlsContext(const Flags& flags) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) FlagError("cannot create a TLS context");
  if (SSL_CTX_use_certificate_chain_file(ctx, flags.tls_cert.c_str()) != 1) {
    FlagError("flag --tls-cert: cannot load PEM certificate from " + flags.tls_cert);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, flags.tls_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    FlagError("flag --tls-key: cannot load PEM private key from " + flags.tls_key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    FlagError("flag --tls-key: key does not match the certificate in --tls-cert");
  }
  return ctx;
}

int Listen(const Flags& flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string port = std::to_string(flags.port);
  if (getaddrinfo(flags.host.c_str(), port.c_str(), &hints, &result) != 0 || result == nullptr) {
    FlagError("flag --host: '" + flags.host + "' is not a numeric IPv4 or IPv6 address");
  }
  int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, result->ai_addr, result->ai_addrlen) != 0 || listen(fd, kListenBacklog) != 0) {
    std::fprintf(stderr, "stampede-test-target: cannot listen on %s port %s: %s\n",
                 flags.host.c_str(), port.c_str(), std::strerror(errno));
    std::exit(1);
  }
  freeaddrinfo(result);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  bool ok = f != nullptr && std::fprintf(f, "%d\n", port) > 0;
  if (f != nullptr && std::fclose(f) != 0) ok = false;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "stampede-test-target: cannot write --port-file %s: %s\n", path.c_str(),
                 std::strerror(errno));
    std::exit(1);
  }
}

void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  signal(SIGPIPE, SIG_IGN);  // OpenSSL writes with write(), not send(MSG_NOSIGNAL)

  // Blocked here so every thread inherits the mask and only the sigwait thread receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals] {
    int sig;
    sigwait(&stop_signals, &sig);
    _exit(0);
  }).detach();

  RaiseFileLimit();
  SSL_CTX* tls = flags.tls_cert.empty() ? nullptr : MakeTlsContext(flags);
  int listen_fd = Listen(flags);
  int port = BoundPort(listen_fd);
  if (!flags.port_file.empty()) WritePortFile(flags.port_file, port);
  std::printf("listening port=%d\n", port);
  std::fflush(stdout);

  for (;;) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors or memory: back off rather than spin; the backlog holds the rest.
      if (errno != EINTR && errno != ECONNABORTED) SleepMs(10);
      continue;
    }
    GlobalStats().CountConnection();
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    StartConnectionThread(fd, tls, flags.h2c ? &flags.h2 : nullptr);
  }
}

}  // namespace
}  // namespace stampede::test_target

int main(int argc, char** argv) { return stampede::test_target::Main(argc, argv); }
