#include "agent/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "common/clock.h"
#include "common/logging.h"

namespace stampede::agent {
namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr int kMaxEvents = 512;
constexpr int64_t kSecond = 1000000000;
constexpr int64_t kRampCheckNs = 10000000;     // users are (de)activated on a 10 ms grid
constexpr int64_t kFirstBackoffNs = 10000000;  // after a failed connection attempt: 10 ms,
constexpr int64_t kMaxBackoffNs = 1000000000;  // doubling up to 1 s, per user

// io_uring: submission slots, and the receive buffers all of a worker's connections share (4 MiB;
// a turn that uses them all ends its receives with ENOBUFS, and they are armed again).
constexpr unsigned kRingEntries = 4096;
constexpr unsigned kReceiveBuffers = 512;
constexpr unsigned kReceiveBufferBytes = 8192;
constexpr int kMaxCompletions = 1024;

// io_uring operation kinds, the top byte of a tag.
enum Op : uint8_t {
  kOpConnect = 1,
  kOpSend,
  kOpReceive,
  kOpCancel,
  kOpWake,
  kOpSendNow,
  // HTTP/2 (h2c): operations on a shared connection's socket; the tag's index is the connection's.
  kOpH2Connect,
  kOpH2Send,
  kOpH2Receive,
  kOpH2SendNow,
};
constexpr uint32_t kNoConnection = 0xffffffff;

int64_t Now() { return common::MonotonicNanos(); }
int64_t ThreadCpuNs() { return common::ThreadCpuNanos(); }

// Tags that tell the loop's own descriptors from connections in epoll_event.data.ptr.
char timer_tag;
char wake_tag;

// ReadSome and WriteSome: nothing can move now; wait for the socket's next edge.
constexpr ssize_t kWouldBlock = -2;

// A non-blocking TCP socket with Nagle's algorithm off, or -1.
int NewSocket(int family) {
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

// The error a non-blocking connect ended with (0: connected).
int ConnectError(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error;
}

// A client TLS session on `fd` that sends SNI and, unless verification is off, checks the
// certificate's name; null when OpenSSL cannot make one.
SSL* NewTls(SSL_CTX* ctx, const std::string& sni, int fd) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE) SSL_set1_host(ssl, sni.c_str());
  SSL_set_connect_state(ssl);
  return ssl;
}

// One read from a plain (ssl null) or TLS socket: the bytes read, 0 at the peer's end,
// kWouldBlock, or -1 with errno (a TLS failure reads as ECONNRESET).
ssize_t ReadSome(SSL* ssl, int fd, char* buf, size_t capacity) {
  if (ssl == nullptr) {
    const ssize_t n = recv(fd, buf, capacity, 0);
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? kWouldBlock : n;
  }
  ERR_clear_error();
  const int rc = SSL_read(ssl, buf, static_cast<int>(capacity));
  if (rc > 0) return rc;
  const int err = SSL_get_error(ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return kWouldBlock;
  if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) return 0;
  errno = ECONNRESET;
  return -1;
}

// One write: the bytes written, kWouldBlock, or -1.
ssize_t WriteSome(SSL* ssl, int fd, const void* data, size_t size) {
  if (ssl == nullptr) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? kWouldBlock : n;
  }
  ERR_clear_error();
  const int rc = SSL_write(ssl, data, static_cast<int>(size));
  if (rc > 0) return rc;
  const int err = SSL_get_error(ssl, rc);
  return err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ ? kWouldBlock : -1;
}

}  // namespace

enum class Worker::State : uint8_t {
  kIdle,      // no request: closed model user inactive or done; open model connection free
  kThinking,  // closed model: waiting for the think time (or a backoff) to end
  kConnecting,
  kHandshaking,  // TLS
  kSending,
  kReceiving,
};

struct Worker::Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  State state = State::kIdle;
  bool active = false;   // closed model: the user is running
  bool reused = false;   // the socket already carried a complete response
  bool retried = false;  // the current request was already resent on a fresh connection
  bool tracked = false;  // in the timeout list
  // io_uring: the socket's generation (tags carry it) and its operations in the kernel.
  uint32_t generation = 0;
  bool connect_pending = false;
  bool send_pending = false;
  bool receive_armed = false;
  // The request's first send is a SendNow; `send_now` is its size until its fate is known (a
  // failure completes, success is silent: see ConfirmSendNow). Once the socket refused part of
  // it (`send_blocked`), the rest goes by sends that wait for room.
  bool send_blocked = false;
  size_t send_now = 0;
  uint64_t send_now_submission = 0;  // the ring's submit that takes it to the kernel
  // HTTP/2: the request waits for a stream on its connection, or is one.
  bool h2_waiting = false;
  bool h2_submitted = false;
  // Scenarios over HTTP/2: the step's rendered request as HTTP/2 (made at its first step, so
  // other runs keep their 10,000-user footprint).
  std::unique_ptr<H2Request> h2_request;
  uint32_t request = 0;        // the stat it counts under (the mix: the request)
  uint32_t step = 0;           // scenarios: the request step in flight
  bool end_iteration = false;  // scenarios: its result ends the user's iteration
  const char* wire = nullptr;  // the bytes to send
  size_t wire_len = 0;
  size_t written = 0;
  int64_t start_ns = 0;  // closed: when the request started (connect included); open: planned
  int64_t send_ns = 0;   // when its first byte was written
  int64_t deadline_ns = 0;
  int64_t wake_ns = 0;
  int64_t backoff_ns = 0;
  Connection* prev = nullptr;
  Connection* next = nullptr;
  HttpResponseParser parser;
  std::unique_ptr<UserState> user;  // scenarios
};

// One HTTP/2 connection of the worker and the slots whose streams it carries.
struct Worker::H2Connection final : H2Session::Listener {
  enum class Phase : uint8_t { kClosed, kConnecting, kHandshaking, kOpen };

  void OnStreamEnd(const H2StreamEnd& end) override { worker->OnH2StreamEnd(*this, end); }
  // Scenarios: the response goes to the slot's parser, which keeps what the step checks and
  // captures, as it does from HTTP/1.1 bytes.
  void OnResponseStatus(uint64_t tag, int status) override {
    worker->connections_[tag].parser.DecodedStatus(status);
  }
  void OnResponseHeader(uint64_t tag, std::string_view name, std::string_view value) override {
    worker->connections_[tag].parser.DecodedHeader(name.data(), name.size(), value.data(),
                                                   value.size());
  }
  void OnResponseData(uint64_t tag, const uint8_t* data, size_t size) override {
    worker->connections_[tag].parser.DecodedBody(reinterpret_cast<const char*>(data), size);
  }

  Worker* worker = nullptr;
  int fd = -1;
  SSL* ssl = nullptr;
  Phase phase = Phase::kClosed;
  std::unique_ptr<H2Session> session;
  std::vector<Connection*> pending;  // slots waiting for a stream, oldest first from `head`
  size_t head = 0;
  std::unique_ptr<uint8_t[]> out;  // produced, not yet written: [out_begin, out_end)
  size_t out_begin = 0, out_end = 0;
  bool busy = false;     // inside a session call or a pump: H2Pump only marks `again`
  bool again = false;    // another pass is due when the outer call returns
  bool want_out = true;  // EPOLLOUT registered: connecting, or a write would block
  // io_uring (h2c): the connection's place in h2_ and its socket's generation (tags carry both),
  // and its operations in the kernel. Writes wait for the end of the loop's turn (`flush_due`),
  // so each turn sends one buffer a connection with every frame the turn made. That buffer goes
  // as a SendNow (`send_now` bytes, confirmed once its submission has passed without a failure),
  // or, for what a full socket did not take, as a send that waits for room (`send_pending`).
  uint32_t index = 0;
  uint32_t generation = 0;
  bool connect_pending = false;
  bool send_pending = false;
  bool receive_armed = false;
  bool flush_due = false;
  size_t send_now = 0;
  uint64_t send_now_submission = 0;
};

namespace {
constexpr size_t kH2OutBytes = 64 * 1024;
}  // namespace

Worker::Worker(const WorkerShared& shared, uint32_t stream_index, uint32_t connections,
               uint64_t seed, Publish publish)
    : shared_(shared),
      stream_index_(stream_index),
      open_model_(shared.plan.model() == LoadPlan::Model::kOpen),
      publish_(std::move(publish)),
      rng_state_(seed ^ (0x9e3779b97f4a7c15ULL * (stream_index + 1))),
      read_buffer_(new char[kReadBufferBytes]) {
  size_t count;
  if (open_model_) {
    count = std::max<uint32_t>(connections, 1);
  } else {
    count = common::EvenShare(shared_.plan.MaxUsers(), shared_.stream_count, stream_index_);
  }
  connections_.resize(count);
  free_.reserve(count);
  wakeups_.reserve(count + 1);
  if (open_model_) {
    for (auto it = connections_.rbegin(); it != connections_.rend(); ++it) free_.push_back(&*it);
  }
  if (shared_.program != nullptr) {
    for (Connection& c : connections_) c.user = std::make_unique<UserState>();
    finder_ = std::make_unique<common::JsonFinder>();
  }
  if (shared_.h2) {
    h2_per_connection_ = std::max<uint32_t>(shared_.h2_options.max_concurrent_streams, 1);
    const size_t n = (count + h2_per_connection_ - 1) / h2_per_connection_;
    for (size_t i = 0; i < n; ++i) {
      auto h = std::make_unique<H2Connection>();
      h->worker = this;
      h->index = static_cast<uint32_t>(i);
      h->pending.reserve(h2_per_connection_);
      h->out.reset(new uint8_t[kH2OutBytes]);
      h2_.push_back(std::move(h));
    }
  }
  // Created here, before the thread starts, so Stop (from any thread) reads settled descriptors.
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Worker::~Worker() {
  for (auto& h : h2_) H2Close(*h);
  for (Connection& c : connections_) CloseSocket(c);
  for (int fd : {epoll_fd_, timer_fd_, wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void Worker::Stop(bool abort) {
  int expected = stop_request_.load();
  const int want = abort ? 2 : 1;
  while (expected < want && !stop_request_.compare_exchange_weak(expected, want)) {
  }
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
}

void Worker::Run(int64_t start_ns) {
  // Timer slack would let the kernel delay our wakeups by 50 us; pacing wants them on time.
  prctl(PR_SET_TIMERSLACK, 1UL);
  if (epoll_fd_ < 0 || timer_fd_ < 0 || wake_fd_ < 0) {
    SLOG(kError)
        << "worker_setup_failed why=\"could not create the epoll, timerfd or eventfd descriptor\"";
    current_ = NewStats();
    publish_(std::move(current_), true);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &timer_tag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev);
  ev.data.ptr = &wake_tag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  if (shared_.io == IoBackend::kUring) {
    // Made here: the ring belongs to the thread that submits (IORING_SETUP_SINGLE_ISSUER).
    auto ring = Uring::Create(kRingEntries, kReceiveBuffers, kReceiveBufferBytes);
    if (ring.ok()) {
      ring_ = std::move(ring).value();
      backend_.store(IoBackend::kUring);
    } else {
      SLOG(kWarning) << "io_backend=epoll why=\"" << ring.status().message() << "\"";
    }
  }
  start_ns_ = start_ns;
  end_ns_ = start_ns + shared_.plan.duration_ns();
  next_interval_ns_ = start_ns + kSecond;
  current_ = NewStats();
  if (open_model_) {
    next_arrival_ = stream_index_;
    const int64_t t = shared_.plan.PlannedTime(next_arrival_);
    next_arrival_ns_ = t == INT64_MAX ? INT64_MAX : start_ns_ + t;
  } else {
    next_ramp_ns_ = start_ns_;
  }
  Loop();
}

void Worker::Loop() {
  if (ring_ != nullptr) {
    LoopUring();
    return;
  }
  epoll_event events[kMaxEvents];
  // Wait for the common start time first; nothing is sent before it.
  while (Now() < start_ns_ && stop_request_.load() == 0) {
    ArmTimer(start_ns_);
    epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    armed_ns_ = INT64_MAX;
    uint64_t ticks;
    ssize_t ignored = read(timer_fd_, &ticks, sizeof(ticks));
    (void)ignored;
  }
  thread_cpu_ns_ = ThreadCpuNs();
  started_ns_.store(Now());
  while (true) {
    Housekeeping(Now());
    if (finished_) break;
    const int64_t deadline = NextDeadline();
    if (deadline < armed_ns_) ArmTimer(deadline);
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    for (int i = 0; i < n; ++i) {
      void* ptr = events[i].data.ptr;
      if (ptr == &timer_tag) {
        uint64_t ticks;
        ssize_t ignored = read(timer_fd_, &ticks, sizeof(ticks));
        (void)ignored;
        const int64_t lag = Now() - armed_ns_;
        if (armed_ns_ != INT64_MAX && lag > current_->max_timer_lag_ns)
          current_->max_timer_lag_ns = lag;
        armed_ns_ = INT64_MAX;
      } else if (ptr == &wake_tag) {
        uint64_t value;
        ssize_t ignored = read(wake_fd_, &value, sizeof(value));
        (void)ignored;
      } else if (const auto bits = reinterpret_cast<uintptr_t>(ptr); bits & 1) {
        OnH2Event(*reinterpret_cast<H2Connection*>(bits & ~uintptr_t{1}), events[i].events);
      } else {
        OnEvent(*static_cast<Connection*>(ptr), events[i].events);
      }
    }
  }
  PublishInterval(true);
}

void Worker::LoopUring() {
  Uring::Completion done[kMaxCompletions];
  ring_->Read((uint64_t{kOpWake} << 56) | kNoConnection, wake_fd_, &wake_value_,
              sizeof(wake_value_));
  while (Now() < start_ns_ && stop_request_.load() == 0) {
    const int n = ring_->SubmitAndWait(start_ns_ - Now(), done, kMaxCompletions);
    for (int i = 0; i < n; ++i) OnCompletion(done[i]);
  }
  thread_cpu_ns_ = ThreadCpuNs();
  started_ns_.store(Now());
  while (true) {
    Housekeeping(Now());
    if (finished_) break;
    if (!h2_flush_due_.empty()) H2FlushTurn();
    const int64_t deadline = NextDeadline();
    int64_t wait = deadline == INT64_MAX ? -1 : std::max<int64_t>(deadline - Now(), 0);
    // Frames made while a connection's SendNow waits to be confirmed (streams that ended while
    // it was produced) go next turn, without waiting for a reply that may never come.
    if (!h2_flush_due_.empty()) wait = 0;
    const int n = ring_->SubmitAndWait(wait, done, kMaxCompletions);
    if (deadline != INT64_MAX) {
      const int64_t lag = Now() - deadline;
      if (lag > current_->max_timer_lag_ns) current_->max_timer_lag_ns = lag;
    }
    for (int i = 0; i < n; ++i) OnCompletion(done[i]);
    if (n < kMaxCompletions && !h2_sent_now_.empty()) ConfirmH2SendNow();
  }
  PublishInterval(true);
  // Closed before the ring goes, on this thread: the ring's exit cancels what is left.
  for (Connection& c : connections_) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
  for (auto& h : h2_) {
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
  }
  ring_.reset();
}

uint64_t Worker::Tag(uint8_t op, const Connection& c) const {
  const uint64_t index = static_cast<uint64_t>(&c - connections_.data());
  return (static_cast<uint64_t>(op) << 56) |
         (static_cast<uint64_t>(c.generation & 0xffffff) << 32) | index;
}

void Worker::OnCompletion(const Uring::Completion& done) {
  const uint8_t op = static_cast<uint8_t>(done.tag >> 56);
  const uint32_t index = static_cast<uint32_t>(done.tag);
  if (op == kOpCancel) return;
  if (op == kOpWake) {
    // Stop() wrote the eventfd; Housekeeping reads the request. Read it again for the next one.
    ring_->Read(done.tag, wake_fd_, &wake_value_, sizeof(wake_value_));
    return;
  }
  if (op >= kOpH2Connect) {
    if (index < h2_.size()) OnH2Completion(*h2_[index], op, done);
    return;
  }
  if (index >= connections_.size()) return;
  Connection& c = connections_[index];
  const bool stale = c.fd < 0 || Tag(op, c) != done.tag;
  switch (op) {
    case kOpConnect:
      if (stale) return;
      c.connect_pending = false;
      if (done.res < 0) {
        Fail(c, Outcome::kConnect);
        return;
      }
      c.receive_armed = true;
      ring_->ReceiveMultishot(Tag(kOpReceive, c), c.fd);
      OnConnected(c);
      return;
    case kOpSend:
      if (stale) return;
      c.send_pending = false;
      if (c.state != State::kSending) return;
      if (done.res <= 0) {
        if (!RetryOnFreshConnection(c)) Fail(c, Outcome::kReset);
        return;
      }
      c.written += static_cast<size_t>(done.res);
      current_->bytes_written += static_cast<uint64_t>(done.res);
      if (c.written < c.wire_len) {
        Send(c);
      } else {
        c.state = State::kReceiving;
      }
      return;
    case kOpSendNow: {
      // Only a send the socket could not take whole completes (Uring::SendNow); it ended within
      // the submission, before any response to it could be read.
      if (stale || c.state != State::kReceiving || c.send_now == 0) return;
      const size_t sent = std::min(done.res > 0 ? static_cast<size_t>(done.res) : 0, c.send_now);
      c.written -= c.send_now - sent;
      current_->bytes_written += sent;
      c.send_now = 0;
      c.state = State::kSending;
      if (done.res < 0 && done.res != -EAGAIN) {
        if (!RetryOnFreshConnection(c)) Fail(c, Outcome::kReset);
        return;
      }
      c.send_blocked = true;
      Send(c);
      return;
    }
    case kOpReceive: {
      const uint32_t generation = c.generation;
      if (stale) {
        ring_->ReturnBuffer(done);
        return;
      }
      ConfirmSendNow(c);
      const bool more = Uring::More(done);
      if (!more) c.receive_armed = false;
      const bool in_flight = c.state == State::kSending || c.state == State::kReceiving;
      if (done.res > 0) {
        if (in_flight) {
          Consume(c, ring_->BufferOf(done), static_cast<size_t>(done.res));
        } else {
          CloseSocket(c);  // bytes nobody asked for: the connection cannot carry a request
        }
        ring_->ReturnBuffer(done);
      } else if (done.res == 0) {
        if (in_flight) {
          OnPeerClosed(c);
        } else {
          CloseSocket(c);
        }
        return;
      } else if (done.res != -ENOBUFS) {
        if (in_flight) {
          errno = -done.res;
          OnReceiveError(c);
        } else {
          CloseSocket(c);
        }
        return;
      }
      // Out of buffers (the data waits in the socket) or done for another reason: armed again
      // while the same socket is open.
      if (!c.receive_armed && c.fd >= 0 && c.generation == generation) {
        c.receive_armed = true;
        ring_->ReceiveMultishot(Tag(kOpReceive, c), c.fd);
      }
      return;
    }
    default:
      return;
  }
}

uint64_t Worker::H2Tag(uint8_t op, const H2Connection& h) const {
  return (static_cast<uint64_t>(op) << 56) |
         (static_cast<uint64_t>(h.generation & 0xffffff) << 32) | h.index;
}

void Worker::OnH2Completion(H2Connection& h, uint8_t op, const Uring::Completion& done) {
  if (h.fd < 0 || H2Tag(op, h) != done.tag) {
    // A socket closed since (H2Close cancelled what it had in the kernel).
    if (op == kOpH2Receive) ring_->ReturnBuffer(done);
    return;
  }
  const int64_t now = Now();
  switch (op) {
    case kOpH2Connect:
      h.connect_pending = false;
      if (done.res < 0) {
        H2ConnectFailed(h, Outcome::kConnect);
        return;
      }
      h.receive_armed = true;
      ring_->ReceiveMultishot(H2Tag(kOpH2Receive, h), h.fd);
      H2Connected(h, now);
      return;
    case kOpH2SendNow: {
      // Only a SendNow the socket could not take whole completes; the rest waits for room.
      if (h.send_now == 0) return;
      const size_t sent = std::min(done.res > 0 ? static_cast<size_t>(done.res) : 0, h.send_now);
      h.send_now = 0;
      h.out_begin += sent;
      current_->bytes_written += sent;
      if (done.res < 0 && done.res != -EAGAIN) {
        H2Lost(h, Outcome::kReset);
        H2Pump(h, now);
        return;
      }
      h.send_pending = true;
      ring_->Send(H2Tag(kOpH2Send, h), h.fd, h.out.get() + h.out_begin, h.out_end - h.out_begin);
      return;
    }
    case kOpH2Send:
      h.send_pending = false;
      if (done.res <= 0) {
        H2Lost(h, Outcome::kReset);
      } else {
        h.out_begin += static_cast<size_t>(done.res);
        current_->bytes_written += static_cast<uint64_t>(done.res);
      }
      H2Pump(h, now);  // writes the rest, or what the session has produced since
      return;
    case kOpH2Receive: {
      if (!Uring::More(done)) h.receive_armed = false;
      if (done.res > 0) {
        current_->bytes_read += static_cast<uint64_t>(done.res);
        if (!h.session->Finished()) {
          h.busy = true;
          h.session->Receive(reinterpret_cast<const uint8_t*>(ring_->BufferOf(done)),
                             static_cast<size_t>(done.res), now);
          h.busy = false;
        }
        ring_->ReturnBuffer(done);
      } else if (done.res != -ENOBUFS) {
        // The server closed (its streams end as closed) or reset the connection.
        H2Lost(h, done.res == 0 ? Outcome::kClosed : Outcome::kReset);
      }
      // Out of buffers (the data waits in the socket): armed again while the socket is open.
      if (h.fd >= 0 && !h.receive_armed) {
        h.receive_armed = true;
        ring_->ReceiveMultishot(H2Tag(kOpH2Receive, h), h.fd);
      }
      H2Pump(h, now);
      return;
    }
    default:
      return;
  }
}

void Worker::H2FlushTurn() {
  std::swap(h2_flushing_, h2_flush_due_);
  const int64_t now = Now();
  for (H2Connection* h : h2_flushing_) {
    h->flush_due = false;
    if (h->fd < 0 || h->phase != H2Connection::Phase::kOpen || h->send_pending ||
        h->send_now != 0) {
      continue;  // a send's completion or ConfirmH2SendNow asks again
    }
    if (h->out_begin == h->out_end) {
      // Producing can end streams (a GOAWAY sent, a stall): their slots only mark the pump.
      h->busy = true;
      h->out_begin = 0;
      h->out_end = h->session->Produce(h->out.get(), kH2OutBytes, now);
      h->busy = false;
    }
    if (h->out_end > h->out_begin && (h->session->Finished() || h->session->WantsWrite())) {
      // A session's last bytes, or a buffer with more to follow (a large body): nothing may come
      // back to wake the loop, so this send completes, and its completion closes or goes on.
      h->send_pending = true;
      ring_->Send(H2Tag(kOpH2Send, *h), h->fd, h->out.get() + h->out_begin,
                  h->out_end - h->out_begin);
    } else if (h->out_end > h->out_begin) {
      h->send_now = h->out_end - h->out_begin;
      ring_->SendNow(H2Tag(kOpH2SendNow, *h), h->fd, h->out.get() + h->out_begin, h->send_now);
      // Read after queueing: a full queue submits what was queued before this send.
      h->send_now_submission = ring_->Submits() + 1;
      h2_sent_now_.push_back(h);
    }
    // Streams that ended, or a session that did (closed once its last bytes went).
    if (h->again || h->session->Finished()) H2Pump(*h, now);
  }
  h2_flushing_.clear();
}

void Worker::ConfirmH2SendNow() {
  // A SendNow's failure is posted within its submission; a turn that read every completion there
  // was (fewer than it could take) has seen it, so silence means every byte went.
  std::swap(h2_confirming_, h2_sent_now_);
  for (H2Connection* h : h2_confirming_) {
    if (h->send_now == 0) continue;  // it failed, or the socket closed
    if (h->send_now_submission > ring_->Submits()) {
      h2_sent_now_.push_back(h);  // not submitted yet
      continue;
    }
    h->out_begin += h->send_now;
    current_->bytes_written += h->send_now;
    h->send_now = 0;
    H2Pump(*h, Now());  // closes a finished session, or marks what is left for the turn's end
  }
  h2_confirming_.clear();
}

void Worker::ArmTimer(int64_t deadline) {
  if (deadline == INT64_MAX) return;
  itimerspec spec{};
  // 0 would disarm the timer; a deadline already past fires at once.
  const int64_t at = std::max<int64_t>(deadline, 1);
  spec.it_value.tv_sec = at / kSecond;
  spec.it_value.tv_nsec = at % kSecond;
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
  armed_ns_ = deadline;
}

int64_t Worker::NextDeadline() const {
  int64_t d = next_interval_ns_;
  if (!stopping_) {
    d = std::min(d, end_ns_);
  } else {
    d = std::min(d, drain_deadline_ns_);
  }
  if (timeout_head_ != nullptr) d = std::min(d, timeout_head_->deadline_ns);
  for (const auto& h : h2_) {
    if (h->session != nullptr) d = std::min(d, h->session->NextDeadlineNs());
  }
  if (!wakeups_.empty()) d = std::min(d, wakeups_.front().first);
  d = std::min(d, next_ramp_ns_);
  if (open_model_ && next_arrival_ns_ != INT64_MAX) {
    // Without a free connection the next arrival can only be dropped, once it is too old.
    d = std::min(d, free_.empty() ? next_arrival_ns_ + shared_.timeout_ns : next_arrival_ns_);
  }
  return d;
}

void Worker::Housekeeping(int64_t now) {
  while (now >= next_interval_ns_) PublishInterval(false);

  if (const int stop = stop_request_.load(std::memory_order_relaxed); stop != 0) {
    if (!stopping_) BeginStop(now, stop == 2);
    if (stop == 2) drain_deadline_ns_ = std::min(drain_deadline_ns_, now);
  }
  if (!stopping_ && now >= end_ns_) {
    // A turn that came late (a busy or instrumented machine) still sends the arrivals that came
    // due before the end, as it sends any late arrival; only those that find no free connection
    // are dropped (BeginStop). Every planned arrival is due before the end.
    if (open_model_) DispatchArrivals(now);
    BeginStop(now, false);
  }

  while (timeout_head_ != nullptr && timeout_head_->deadline_ns <= now) {
    // A handshake that never completes (https:// to a plain-HTTP port that waits for a request
    // head) is a TLS failure, not a slow response.
    const bool handshaking =
        timeout_head_->state == State::kHandshaking ||
        (!h2_.empty() && HomeOf(*timeout_head_).phase == H2Connection::Phase::kHandshaking);
    Fail(*timeout_head_, handshaking ? Outcome::kTls : Outcome::kTimeout);
  }
  for (auto& h : h2_) {
    // Flow-control stalls (request timeouts are the worker's own, above).
    if (h->session == nullptr || h->session->NextDeadlineNs() > now) continue;
    h->busy = true;
    h->session->Tick(now);
    h->busy = false;
    H2Pump(*h, now);
  }
  auto later = [](const std::pair<int64_t, Connection*>& a,
                  const std::pair<int64_t, Connection*>& b) { return a.first > b.first; };
  while (!wakeups_.empty() && wakeups_.front().first <= now) {
    std::pop_heap(wakeups_.begin(), wakeups_.end(), later);
    auto [at, c] = wakeups_.back();
    wakeups_.pop_back();
    if (c->state != State::kThinking || c->wake_ns != at) continue;  // superseded
    c->state = State::kIdle;
    if (c->active && !stopping_) StartRequest(*c, now);
  }
  if (!stopping_) {
    if (open_model_) {
      DispatchArrivals(now);
    } else if (now >= next_ramp_ns_) {
      UpdateUsers(now);
    }
  }

  if (stopping_) {
    if (now >= drain_deadline_ns_) {
      while (timeout_head_ != nullptr) Fail(*timeout_head_, Outcome::kCancelled);
    }
    if (in_flight_ == 0) {
      finished_ = true;
      for (auto& h : h2_) H2Close(*h);
    }
  }
}

void Worker::BeginStop(int64_t now, bool abort) {
  stopping_ = true;
  drain_deadline_ns_ = abort ? now : now + shared_.grace_ns;
  next_ramp_ns_ = INT64_MAX;
  if (open_model_ && next_arrival_ns_ < std::min(now, end_ns_)) {
    // Arrivals that came due before the end but were never sent are dropped. Counted, not
    // visited: at a rate the target could not take for long, one by one took hours and ignored
    // the stop signals. This stream's arrivals are next_arrival_, + stream_count, ... below the
    // plan's count at the end.
    const uint64_t due = shared_.plan.ArrivalsBefore(std::min(now, end_ns_) - start_ns_);
    const uint64_t streams = shared_.stream_count;
    const uint64_t missed = due > next_arrival_ ? (due - next_arrival_ + streams - 1) / streams : 0;
    current_->planned += missed;
    DropByWeight(missed);
  }
  next_arrival_ns_ = INT64_MAX;
  for (Connection& c : connections_) {
    if (c.state == State::kThinking) c.state = State::kIdle;
    if (c.state == State::kIdle) CloseSocket(c);
  }
  wakeups_.clear();
}

void Worker::PublishInterval(bool final) {
  const int64_t cpu = ThreadCpuNs();
  const int64_t interval_ns = final ? Now() - (next_interval_ns_ - kSecond) : kSecond;
  current_->index = interval_index_;
  current_->active_users = active_users_;
  current_->in_flight = in_flight_;
  current_->cpu_seconds = (cpu - thread_cpu_ns_) / 1e9;
  // A final interval of a few microseconds says nothing about saturation.
  current_->busiest_thread_cpu =
      interval_ns < kSecond / 10
          ? 0
          : std::min(1.0, static_cast<double>(cpu - thread_cpu_ns_) / interval_ns);
  thread_cpu_ns_ = cpu;
  publish_(std::move(current_), final);
  current_ = NewStats();
  ++interval_index_;
  next_interval_ns_ += kSecond;
}

uint64_t Worker::Random() {
  // splitmix64: cheap, good enough to pick requests and think times.
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void Worker::DropByWeight(uint64_t count) {
  // The requests' shares by weight, the rounding remainder picked at random as a send would.
  const auto& cum = shared_.cumulative_weights;
  const uint64_t total = cum.back();
  uint64_t assigned = 0, previous = 0;
  for (size_t i = 0; i < cum.size(); ++i) {
    const uint64_t weight = cum[i] - previous;
    previous = cum[i];
    const uint64_t share =
        static_cast<uint64_t>(static_cast<unsigned __int128>(count) * weight / total);
    CountDropped(static_cast<uint32_t>(i), share);
    assigned += share;
  }
  for (; assigned < count; ++assigned) CountDropped(PickRequest(), 1);
}

void Worker::CountDropped(uint32_t pick, uint64_t n) {
  if (n == 0) return;
  if (shared_.program == nullptr) {
    current_->requests[pick].outcomes[static_cast<size_t>(Outcome::kDropped)] += n;
    return;
  }
  const uint32_t stat = shared_.program->first_stat(pick);
  current_->requests[stat].outcomes[static_cast<size_t>(Outcome::kDropped)] += n;
  current_->iterations[pick].dropped += n;
}

std::unique_ptr<IntervalStats> Worker::NewStats() const {
  auto stats = std::make_unique<IntervalStats>(shared_.requests.size());
  if (shared_.program != nullptr) stats->iterations.resize(shared_.program->scenario_count());
  return stats;
}

uint32_t Worker::PickRequest() {
  const auto& cum = shared_.cumulative_weights;
  if (cum.size() == 1) return 0;
  const uint64_t r = Random() % cum.back();
  return static_cast<uint32_t>(std::upper_bound(cum.begin(), cum.end(), r) - cum.begin());
}

void Worker::UpdateUsers(int64_t now) {
  const int64_t t = now - start_ns_;
  const uint64_t share =
      common::EvenShare(shared_.plan.UsersAt(t), shared_.stream_count, stream_index_);
  const uint32_t target = static_cast<uint32_t>(std::min<uint64_t>(share, connections_.size()));
  while (active_users_ < target) {
    Connection& c = connections_[active_users_++];
    c.active = true;
    c.backoff_ns = 0;
    if (c.state == State::kIdle) StartRequest(c, now);
  }
  while (active_users_ > target) {
    Connection& c = connections_[--active_users_];
    c.active = false;  // a user with a request in flight stops once it completes
    if (c.state == State::kThinking || c.state == State::kIdle) {
      c.state = State::kIdle;
      CloseSocket(c);
    }
  }
  next_ramp_ns_ = t < shared_.plan.RampEnd()
                      ? std::min(now + kRampCheckNs, start_ns_ + shared_.plan.RampEnd())
                      : INT64_MAX;
}

void Worker::DispatchArrivals(int64_t now) {
  // A request that fails at once returns its connection through AfterRequest, which would call us
  // again; the loop below picks that connection up instead of recursing.
  if (dispatching_) return;
  dispatching_ = true;
  while (next_arrival_ns_ <= now) {
    const bool too_old = next_arrival_ns_ + shared_.timeout_ns <= now;
    if (!too_old && free_.empty()) break;  // stays due; sent when a connection frees up
    ++current_->planned;
    if (too_old) {
      CountDropped(PickRequest(), 1);
    } else {
      Connection* c = free_.back();
      free_.pop_back();
      if (now - next_arrival_ns_ > kLateNs) ++current_->late;
      c->start_ns = next_arrival_ns_;
      if (shared_.program == nullptr) {
        StartRequest(*c, now);
      } else {
        c->active = true;  // each arrival is a new virtual user running its scenario once
        if (shared_.program->BeginUser(*c->user, next_arrival_, &rng_state_, c->start_ns)) {
          Proceed(*c, now);
        } else {
          EndUser(*c, now);
        }
      }
    }
    next_arrival_ += shared_.stream_count;
    const int64_t t = shared_.plan.PlannedTime(next_arrival_);
    next_arrival_ns_ = t == INT64_MAX ? INT64_MAX : start_ns_ + t;
  }
  dispatching_ = false;
}

void Worker::StartRequest(Connection& c, int64_t now) {
  if (shared_.program != nullptr) {
    Proceed(c, now);
    return;
  }
  c.request = PickRequest();
  const PreparedRequest& r = shared_.requests[c.request];
  c.wire = r.wire.data();
  c.wire_len = r.wire.size();
  if (!open_model_) c.start_ns = now;
  c.retried = false;
  c.written = 0;
  c.send_blocked = false;
  ResetParser(c);
  Launch(c, now);
}

void Worker::ResetParser(Connection& c) {
  if (shared_.program != nullptr) {
    const ScenarioProgram::Step& step = shared_.program->step(c.step);
    c.parser.Reset(step.head, &step.keep);
  } else {
    c.parser.Reset(shared_.requests[c.request].head);
  }
}

void Worker::Proceed(Connection& c, int64_t now) {
  const ScenarioProgram& program = *shared_.program;
  UserState& u = *c.user;
  if (!u.started) {
    // Closed model: slot k of this stream is user stream + k * streams of the whole test.
    const uint64_t vu =
        stream_index_ + static_cast<uint64_t>(&c - connections_.data()) * shared_.stream_count;
    if (!program.BeginUser(u, vu, &rng_state_, now)) {
      EndUser(c, now);
      return;
    }
  }
  if (u.exhausted) {
    EndUser(c, now);
    return;
  }
  while (true) {
    const ScenarioProgram::Action a = program.Next(u, &rng_state_, now);
    switch (a.kind) {
      case ScenarioProgram::Action::Kind::kRequest:
        StartStep(c, a.step, now);
        return;
      case ScenarioProgram::Action::Kind::kPause:
        Pause(c, now + a.pause_ns);
        return;
      case ScenarioProgram::Action::Kind::kIterationEnd: {
        CountIteration(u, now);
        if (open_model_) {  // an arrival runs its scenario once
          EndUser(c, now);
          return;
        }
        int64_t wait = 0;
        if (!program.NextIteration(u, now, &rng_state_, &wait)) {
          EndUser(c, now);
          return;
        }
        // An iteration that sent nothing waits (NextIteration), so this cannot spin.
        if (wait > 0) {
          Pause(c, now + wait);
          return;
        }
        continue;
      }
    }
  }
}

void Worker::StartStep(Connection& c, uint32_t step, int64_t now) {
  const ScenarioProgram& program = *shared_.program;
  UserState& u = *c.user;
  c.step = step;
  c.request = program.step(step).stat;
  c.end_iteration = false;
  std::string why;
  bool rendered = program.Render(u, step, &rng_state_, &c.wire, &c.wire_len, &why);
  if (rendered && shared_.h2) {
    if (c.h2_request == nullptr) c.h2_request = std::make_unique<H2Request>();
    rendered = c.h2_request
                   ->Assign(std::string_view(c.wire, c.wire_len), shared_.ssl_ctx != nullptr,
                            program.step(step).expected)
                   .ok();
  }
  if (!rendered) {
    // A value a header cannot hold (CR/LF from a capture), or over HTTP/2 a request the
    // conversion refuses: not sent, counted, iteration over.
    ++current_->requests[c.request].outcomes[static_cast<size_t>(Outcome::kCapture)];
    Pause(c, now + std::max<int64_t>(program.AbortIteration(u), kRampCheckNs));
    return;
  }
  if (!open_model_ || !u.first_request) c.start_ns = now;  // an arrival's first: its plan
  u.first_request = false;
  c.retried = false;
  c.written = 0;
  c.send_blocked = false;
  ResetParser(c);
  Launch(c, now);
}

void Worker::Pause(Connection& c, int64_t until) {
  c.state = State::kThinking;
  c.wake_ns = until;
  wakeups_.emplace_back(c.wake_ns, &c);
  std::push_heap(wakeups_.begin(), wakeups_.end(),
                 [](const auto& a, const auto& b) { return a.first > b.first; });
}

void Worker::CountIteration(const UserState& u, int64_t now) {
  IterationStats& it = current_->iterations[u.scenario];
  if (u.ended_early) {
    ++it.ended_early;
  } else {
    it.duration.Record(static_cast<uint64_t>(std::max<int64_t>(now - u.iteration_start_ns, 0)));
  }
}

void Worker::EndUser(Connection& c, int64_t now) {
  c.state = State::kIdle;
  if (open_model_) {
    c.active = false;
    c.user->started = false;
    free_.push_back(&c);
    if (!stopping_) DispatchArrivals(now);
    return;
  }
  CloseSocket(c);  // a closed-model user whose data ran out stays idle
}

void Worker::Launch(Connection& c, int64_t now) {
  ++in_flight_;
  Track(c, now + shared_.timeout_ns);
  if (!h2_.empty()) {
    H2Enqueue(c, now);
    return;
  }
  if (c.fd < 0) {
    OpenSocket(c, now);
  } else {
    c.send_ns = now;
    c.state = State::kSending;
    Send(c);
  }
}

void Worker::OpenSocket(Connection& c, int64_t now) {
  if (shared_.dns_failed) {
    Fail(c, Outcome::kDns);
    return;
  }
  const int fd = NewSocket(shared_.address.ss_family);
  if (fd < 0) {
    Fail(c, Outcome::kConnect);  // out of descriptors or ports: the generator's limit, counted
    return;
  }
  c.fd = fd;
  c.reused = false;
  ++current_->connections_opened;
  if (ring_ != nullptr) {
    c.send_ns = now;
    c.state = State::kConnecting;
    c.connect_pending = true;
    ring_->Connect(Tag(kOpConnect, c), fd, reinterpret_cast<const sockaddr*>(&shared_.address),
                   shared_.address_len);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    Fail(c, Outcome::kConnect);
    return;
  }
  c.send_ns = now;
  c.state = State::kConnecting;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&shared_.address), shared_.address_len) == 0) {
    OnConnected(c);
  } else if (errno != EINPROGRESS) {
    Fail(c, Outcome::kConnect);
  }
}

void Worker::OnEvent(Connection& c, uint32_t events) {
  switch (c.state) {
    case State::kConnecting: {
      if (ConnectError(c.fd) != 0) {
        Fail(c, Outcome::kConnect);
      } else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        OnConnected(c);
      }
      return;
    }
    case State::kHandshaking:
      Handshake(c);
      return;
    case State::kSending:
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) Send(c);
      // A response (often an error) can arrive before the request is fully written.
      if ((c.state == State::kSending || c.state == State::kReceiving) && (events & EPOLLIN))
        Receive(c, events);
      return;
    case State::kReceiving:
      Receive(c, events);
      return;
    case State::kIdle:
    case State::kThinking:
      // An idle keep-alive connection is only readable when the server closed it or sent bytes
      // nobody asked for; either way it cannot carry another request.
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        if (events & EPOLLIN) {
          ssize_t n = recv(c.fd, read_buffer_.get(), kReadBufferBytes, MSG_DONTWAIT);
          if (n < 0 && errno == EAGAIN) return;
        }
        CloseSocket(c);
      }
      return;
  }
}

void Worker::OnConnected(Connection& c) {
  if (shared_.ssl_ctx != nullptr) {
    c.ssl = NewTls(shared_.ssl_ctx, shared_.sni, c.fd);
    if (c.ssl == nullptr) {
      Fail(c, Outcome::kTls);
      return;
    }
    c.state = State::kHandshaking;
    Handshake(c);
    return;
  }
  c.state = State::kSending;
  Send(c);
}

void Worker::Handshake(Connection& c) {
  ERR_clear_error();
  const int rc = SSL_do_handshake(c.ssl);
  if (rc == 1) {
    c.state = State::kSending;
    Send(c);
    return;
  }
  const int err = SSL_get_error(c.ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
  Fail(c, Outcome::kTls);
}

void Worker::Send(Connection& c) {
  if (ring_ != nullptr) {
    // The completion moves the request on (OnCompletion); one send at a time per socket.
    if (c.send_pending || c.written >= c.wire_len) return;
    if (!c.send_blocked) {
      // Most requests fit the socket at once: then nothing completes and the request is sent.
      c.send_now = c.wire_len - c.written;
      ring_->SendNow(Tag(kOpSendNow, c), c.fd, c.wire + c.written, c.send_now);
      // Read after queueing: a full queue submits what was queued before this send.
      c.send_now_submission = ring_->Submits() + 1;
      c.written = c.wire_len;
      c.state = State::kReceiving;
      return;
    }
    c.send_pending = true;
    ring_->Send(Tag(kOpSend, c), c.fd, c.wire + c.written, c.wire_len - c.written);
    return;
  }
  const absl::string_view wire(c.wire, c.wire_len);
  while (c.written < wire.size()) {
    const ssize_t n = WriteSome(c.ssl, c.fd, wire.data() + c.written, wire.size() - c.written);
    if (n == kWouldBlock) return;  // EPOLLOUT (edge-triggered) resumes us
    if (n < 0) {
      if (!RetryOnFreshConnection(c)) Fail(c, Outcome::kReset);
      return;
    }
    c.written += static_cast<size_t>(n);
    current_->bytes_written += static_cast<uint64_t>(n);
  }
  c.state = State::kReceiving;
}

void Worker::ConfirmSendNow(Connection& c) {
  // A SendNow's failure is posted while it is submitted, so it comes before anything the socket
  // receives after it: without one by then, every byte went. A socket closed before its SendNow
  // was submitted sent nothing (the send meets a closed descriptor, or an unconnected socket that
  // took its number).
  if (c.send_now == 0) return;
  if (c.send_now_submission <= ring_->Submits()) current_->bytes_written += c.send_now;
  c.send_now = 0;
}

void Worker::Receive(Connection& c, uint32_t events) {
  char* buf = read_buffer_.get();
  // Once the peer has shut down its side, a short read does not mean "no more events": the EOF is
  // pending and raises no new edge, so read on until recv returns 0.
  const bool peer_closed = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  while (true) {
    const ssize_t n = ReadSome(c.ssl, c.fd, buf, kReadBufferBytes);
    if (n == kWouldBlock) return;
    if (n > 0) {
      if (Consume(c, buf, static_cast<size_t>(n))) return;
      // A short read drained the socket; edge-triggered epoll tells us when more arrives.
      if (c.ssl == nullptr && !peer_closed && static_cast<size_t>(n) < kReadBufferBytes) return;
      continue;
    }
    if (n == 0) {
      OnPeerClosed(c);
      return;
    }
    OnReceiveError(c);
    return;
  }
}

bool Worker::Consume(Connection& c, const char* data, size_t n) {
  current_->bytes_read += n;
  size_t consumed = 0;
  const auto r = c.parser.Parse(data, n, &consumed);
  if (r == HttpResponseParser::Result::kComplete) {
    // Bytes after the response were never asked for: the connection is not trustworthy.
    Complete(c, Now(), consumed < n);
    return true;
  }
  if (r == HttpResponseParser::Result::kError) {
    Fail(c, Outcome::kMalformed);
    return true;
  }
  return false;
}

void Worker::OnPeerClosed(Connection& c) {
  if (c.parser.OnEof() == HttpResponseParser::Result::kComplete) {
    Complete(c, Now(), true);
  } else if (c.parser.started() || !RetryOnFreshConnection(c)) {
    Fail(c, Outcome::kClosed);
  }
}

void Worker::OnReceiveError(Connection& c) {
  if (c.parser.started() || !RetryOnFreshConnection(c)) Fail(c, Outcome::kReset);
}

bool Worker::RetryOnFreshConnection(Connection& c) {
  // A keep-alive connection the server closed just as we reused it: resend once on a new one, as
  // browsers do. Fresh connections and second attempts fail for real.
  if (!c.reused || c.retried) return false;
  CloseSocket(c);
  c.retried = true;
  c.written = 0;
  c.send_blocked = false;
  ResetParser(c);
  OpenSocket(c, Now());
  return true;
}

void Worker::Complete(Connection& c, int64_t now, bool close_after) {
  Untrack(c);
  --in_flight_;
  RequestStats& stats = current_->requests[c.request];
  const int status = c.parser.status();
  const int status_class = status / 100;
  ++stats.status_classes[status_class >= 1 && status_class <= 5 ? status_class : 0];
  Outcome outcome;
  if (shared_.program == nullptr) {
    outcome =
        shared_.requests[c.request].Expected(status) ? Outcome::kOk : Outcome::kUnexpectedStatus;
  } else {
    outcome = CheckStep(c, shared_.program->step(c.step).Expected(status));
  }
  ++stats.outcomes[static_cast<size_t>(outcome)];
  stats.latency.Record(static_cast<uint64_t>(std::max<int64_t>(now - c.start_ns, 0)));
  if (open_model_)
    stats.service.Record(static_cast<uint64_t>(std::max<int64_t>(now - c.send_ns, 0)));
  c.reused = true;
  c.backoff_ns = 0;
  // A response that came before the whole request was written leaves the stream out of step.
  if (c.written < c.wire_len) close_after = true;
  if (close_after || !c.parser.keep_alive()) CloseSocket(c);
  AfterRequest(c, now, 0);
}

Outcome Worker::CheckStep(Connection& c, bool expected_status) {
  if (c.parser.body_truncated()) ++current_->bodies_cut;
  const Outcome outcome =
      shared_.program->Check(*c.user, c.step, c.parser, expected_status, *finder_, &rng_state_);
  c.end_iteration = outcome != Outcome::kOk && shared_.program->step(c.step).ends_on_fail;
  return outcome;
}

void Worker::Fail(Connection& c, Outcome outcome) {
  if (c.h2_submitted) {
    H2Abandon(c, outcome);  // the session ends the stream and counts it (OnH2StreamEnd)
    return;
  }
  if (c.h2_waiting) {
    H2Connection& h = HomeOf(c);
    h.pending.erase(std::find(h.pending.begin() + h.head, h.pending.end(), &c));
    c.h2_waiting = false;
  }
  Untrack(c);
  --in_flight_;
  ++current_->requests[c.request].outcomes[static_cast<size_t>(outcome)];
  if (shared_.program != nullptr) c.end_iteration = shared_.program->step(c.step).ends_on_fail;
  CloseSocket(c);
  int64_t backoff = 0;
  if (outcome == Outcome::kConnect || outcome == Outcome::kDns || outcome == Outcome::kTls) {
    // Without a pause a refused target would turn every user into a busy loop.
    c.backoff_ns = c.backoff_ns == 0 ? kFirstBackoffNs : std::min(c.backoff_ns * 2, kMaxBackoffNs);
    backoff = c.backoff_ns;
  }
  AfterRequest(c, Now(), backoff);
}

void Worker::AfterRequest(Connection& c, int64_t now, int64_t backoff_ns) {
  c.state = State::kIdle;
  if (shared_.program != nullptr) {
    if (stopping_ || (!open_model_ && !c.active)) {
      if (open_model_) {
        EndUser(c, now);
      } else {
        CloseSocket(c);
      }
      return;
    }
    int64_t wait = shared_.program->ThinkAfter(c.step, &rng_state_);
    if (c.end_iteration) wait = std::max(wait, shared_.program->AbortIteration(*c.user));
    wait = std::max(wait, backoff_ns);
    if (wait > 0) {
      Pause(c, now + wait);
    } else {
      Proceed(c, now);
    }
    return;
  }
  if (open_model_) {
    free_.push_back(&c);
    if (!stopping_) DispatchArrivals(now);
    return;
  }
  if (!c.active || stopping_) {
    CloseSocket(c);
    return;
  }
  int64_t think = shared_.think_min_ns;
  if (shared_.think_max_ns > think) {
    think +=
        static_cast<int64_t>(Random() % static_cast<uint64_t>(shared_.think_max_ns - think + 1));
  }
  const int64_t wait = std::max(think, backoff_ns);
  if (wait <= 0) {
    StartRequest(c, now);
    return;
  }
  Pause(c, now + wait);
}

void Worker::CloseSocket(Connection& c) {
  if (c.ssl != nullptr) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    if (ring_ != nullptr) {
      ConfirmSendNow(c);
      // The ring holds the socket open while an operation on it is pending: cancel them. Their
      // completions, and any already on the way, carry the old generation and are ignored.
      if (c.connect_pending) ring_->Cancel(uint64_t{kOpCancel} << 56, Tag(kOpConnect, c));
      if (c.send_pending) ring_->Cancel(uint64_t{kOpCancel} << 56, Tag(kOpSend, c));
      if (c.receive_armed) ring_->Cancel(uint64_t{kOpCancel} << 56, Tag(kOpReceive, c));
      c.connect_pending = c.send_pending = c.receive_armed = false;
      ++c.generation;
    }
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  c.reused = false;
}

void Worker::Track(Connection& c, int64_t deadline) {
  // Deadlines are start + a fixed timeout, so appending keeps the list sorted.
  c.deadline_ns = deadline;
  c.tracked = true;
  c.next = nullptr;
  c.prev = timeout_tail_;
  if (timeout_tail_ != nullptr) {
    timeout_tail_->next = &c;
  } else {
    timeout_head_ = &c;
  }
  timeout_tail_ = &c;
}

void Worker::Untrack(Connection& c) {
  if (!c.tracked) return;
  c.tracked = false;
  if (c.prev != nullptr)
    c.prev->next = c.next;
  else
    timeout_head_ = c.next;
  if (c.next != nullptr)
    c.next->prev = c.prev;
  else
    timeout_tail_ = c.prev;
  c.prev = c.next = nullptr;
}

// --- HTTP/2 -------------------------------------------------------------------------------------

Worker::H2Connection& Worker::HomeOf(const Connection& c) {
  return *h2_[static_cast<size_t>(&c - connections_.data()) / h2_per_connection_];
}

void Worker::H2Enqueue(Connection& c, int64_t now) {
  if (shared_.dns_failed) {
    Fail(c, Outcome::kDns);
    return;
  }
  H2Connection& h = HomeOf(c);
  c.state = State::kSending;
  c.send_ns = now;
  c.h2_waiting = true;
  h.pending.push_back(&c);
  H2Pump(h, now);
}

void Worker::H2Pump(H2Connection& h, int64_t now) {
  if (h.busy) {
    h.again = true;
    return;
  }
  h.busy = true;
  do {
    h.again = false;
    if (h.phase == H2Connection::Phase::kClosed) {
      if (h.head < h.pending.size()) H2Open(h, now);
      continue;
    }
    if (h.phase != H2Connection::Phase::kOpen) break;
    while (h.head < h.pending.size()) {
      Connection& c = *h.pending[h.head];
      const uint64_t tag = static_cast<uint64_t>(&c - connections_.data());
      const bool scenario = shared_.program != nullptr;
      const H2Request& request = scenario ? *c.h2_request : shared_.h2_requests[c.request];
      if (!h.session->Submit(request, tag, 0, now, scenario)) break;
      ++h.head;
      c.h2_waiting = false;
      c.h2_submitted = true;
      c.send_ns = now;
    }
    if (h.head == h.pending.size()) {
      h.pending.clear();
      h.head = 0;
    }
    H2Flush(h, now);
    if (h.phase == H2Connection::Phase::kOpen && h.session->Finished() &&
        h.out_begin == h.out_end) {
      // GOAWAY, or a protocol error, and every stream has ended: a new connection serves the
      // slots still waiting.
      H2Close(h);
      h.again = h.head < h.pending.size();
    }
  } while (h.again);
  h.busy = false;
}

void Worker::H2Open(H2Connection& h, int64_t now) {
  (void)now;
  auto session = H2Session::Create(shared_.h2_options, &h);
  const int fd = session.ok() ? NewSocket(shared_.address.ss_family) : -1;
  if (fd < 0) {
    H2ConnectFailed(h, Outcome::kConnect);
    return;
  }
  h.fd = fd;
  h.session = std::move(session).value();
  h.out_begin = h.out_end = 0;
  h.phase = H2Connection::Phase::kConnecting;
  h.want_out = true;
  ++current_->connections_opened;
  if (ring_ != nullptr) {
    h.connect_pending = true;
    ring_->Connect(H2Tag(kOpH2Connect, h), fd, reinterpret_cast<const sockaddr*>(&shared_.address),
                   shared_.address_len);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<uintptr_t>(&h) | 1;  // a tagged pointer: not a user slot
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    H2ConnectFailed(h, Outcome::kConnect);
    return;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&shared_.address), shared_.address_len) == 0) {
    H2Connected(h, Now());
  } else if (errno != EINPROGRESS) {
    H2ConnectFailed(h, Outcome::kConnect);
  }
}

void Worker::H2Connected(H2Connection& h, int64_t now) {
  if (shared_.ssl_ctx != nullptr) {
    h.ssl = NewTls(shared_.ssl_ctx, shared_.sni, h.fd);
    if (h.ssl == nullptr) {
      H2ConnectFailed(h, Outcome::kTls);
      return;
    }
    h.phase = H2Connection::Phase::kHandshaking;
    H2Handshake(h, now);
    return;
  }
  h.phase = H2Connection::Phase::kOpen;
  h.again = true;  // the pump that opened us (or the next one) submits and writes
  if (!h.busy) H2Pump(h, now);
}

void Worker::H2Handshake(H2Connection& h, int64_t now) {
  ERR_clear_error();
  const int rc = SSL_do_handshake(h.ssl);
  if (rc != 1) {
    const int err = SSL_get_error(h.ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    H2ConnectFailed(h, Outcome::kTls);
    return;
  }
  // h2 is negotiated by ALPN; a server that picks anything else cannot take our frames.
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(h.ssl, &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    H2ConnectFailed(h, Outcome::kTls);
    return;
  }
  h.phase = H2Connection::Phase::kOpen;
  h.again = true;
  if (!h.busy) H2Pump(h, now);
}

void Worker::H2Flush(H2Connection& h, int64_t now) {
  if (ring_ != nullptr) {
    // Written at the end of the turn (H2FlushTurn), with whatever else the turn adds.
    if (h.fd >= 0 && !h.flush_due) {
      h.flush_due = true;
      h2_flush_due_.push_back(&h);
    }
    return;
  }
  while (h.fd >= 0) {
    if (h.out_begin == h.out_end) {
      h.out_begin = 0;
      h.out_end = h.session->Produce(h.out.get(), kH2OutBytes, now);
      if (h.out_end == 0) {
        // Everything is written: no wakeup for every ACK that frees send buffer space.
        if (h.phase == H2Connection::Phase::kOpen) H2WantWritable(h, false);
        return;
      }
    }
    const uint8_t* data = h.out.get() + h.out_begin;
    const size_t size = h.out_end - h.out_begin;
    const ssize_t n = WriteSome(h.ssl, h.fd, data, size);
    if (n == kWouldBlock) {
      H2WantWritable(h, true);  // EPOLLOUT resumes us
      return;
    }
    if (n < 0) {
      H2Lost(h, Outcome::kReset);
      return;
    }
    h.out_begin += static_cast<size_t>(n);
    current_->bytes_written += static_cast<uint64_t>(n);
  }
}

void Worker::H2WantWritable(H2Connection& h, bool want) {
  if (h.want_out == want || h.fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = reinterpret_cast<uintptr_t>(&h) | 1;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, h.fd, &ev);
  h.want_out = want;
}

void Worker::H2Read(H2Connection& h, uint32_t events, int64_t now) {
  char* buf = read_buffer_.get();
  const bool peer_closed = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  h.busy = true;
  Outcome lost = Outcome::kOk;
  while (!h.session->Finished()) {
    const ssize_t n = ReadSome(h.ssl, h.fd, buf, kReadBufferBytes);
    if (n == kWouldBlock) break;
    if (n > 0) {
      current_->bytes_read += static_cast<uint64_t>(n);
      h.session->Receive(reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n), now);
      if (h.ssl == nullptr && !peer_closed && static_cast<size_t>(n) < kReadBufferBytes) break;
      continue;
    }
    // The server closed (its streams end as closed) or reset the connection.
    lost = n == 0 ? Outcome::kClosed : Outcome::kReset;
    break;
  }
  h.busy = false;
  if (lost != Outcome::kOk) H2Lost(h, lost);
  H2Pump(h, now);
}

void Worker::H2Lost(H2Connection& h, Outcome outcome) {
  const bool was_busy = h.busy;
  h.busy = true;
  h.session->ConnectionLost(outcome);
  h.busy = was_busy;
  H2Close(h);
}

void Worker::OnH2Event(H2Connection& h, uint32_t events) {
  const int64_t now = Now();
  switch (h.phase) {
    case H2Connection::Phase::kClosed:
      return;
    case H2Connection::Phase::kConnecting: {
      if (ConnectError(h.fd) != 0) {
        H2ConnectFailed(h, Outcome::kConnect);
      } else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        H2Connected(h, now);
      }
      return;
    }
    case H2Connection::Phase::kHandshaking:
      H2Handshake(h, now);
      return;
    case H2Connection::Phase::kOpen:
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        H2Read(h, events, now);
      } else {
        H2Pump(h, now);
      }
      return;
  }
}

void Worker::H2ConnectFailed(H2Connection& h, Outcome outcome) {
  H2Close(h);
  // Nothing was submitted on a connection that never opened: the waiting slots fail one by one.
  // Each backs off (connect, dns and tls failures do), so none re-queues within this loop.
  std::vector<Connection*> waiting(h.pending.begin() + h.head, h.pending.end());
  h.pending.clear();
  h.head = 0;
  const bool was_busy = h.busy;
  h.busy = true;
  for (Connection* c : waiting) {
    c->h2_waiting = false;
    Fail(*c, outcome);
  }
  h.busy = was_busy;
  if (!was_busy && h.head < h.pending.size()) H2Pump(h, Now());
}

void Worker::H2Close(H2Connection& h) {
  if (h.ssl != nullptr) {
    SSL_free(h.ssl);
    h.ssl = nullptr;
  }
  if (h.fd >= 0) {
    if (ring_ != nullptr) {
      // As CloseSocket: the ring holds the socket while operations on it are pending; their
      // completions carry the old generation and are ignored.
      const uint64_t cancel = uint64_t{kOpCancel} << 56;
      if (h.connect_pending) ring_->Cancel(cancel, H2Tag(kOpH2Connect, h));
      if (h.send_pending) ring_->Cancel(cancel, H2Tag(kOpH2Send, h));
      if (h.receive_armed) ring_->Cancel(cancel, H2Tag(kOpH2Receive, h));
      h.connect_pending = h.send_pending = h.receive_armed = false;
      h.send_now = 0;
      ++h.generation;
    }
    close(h.fd);
    h.fd = -1;
  }
  if (h.session != nullptr && h.session->OpenStreams() != 0) {
    // Closing under open streams (the end of the run): they end as the transport does.
    const bool was_busy = h.busy;
    h.busy = true;
    h.session->ConnectionLost(Outcome::kCancelled);
    h.busy = was_busy;
  }
  h.session.reset();
  h.out_begin = h.out_end = 0;
  h.phase = H2Connection::Phase::kClosed;
}

void Worker::OnH2StreamEnd(H2Connection& h, const H2StreamEnd& end) {
  if (end.tag >= connections_.size()) return;
  Connection& c = connections_[end.tag];
  if (!c.h2_submitted) return;
  c.h2_submitted = false;
  if (end.outcome == Outcome::kGoaway && !c.retried) {
    // The server never processed it (its GOAWAY's last stream id is below): sent again once, on
    // the connection that replaces this one, as browsers do. Servers recycle connections this way
    // (nginx after keepalive_requests), so a first refusal is no error. Latency keeps counting.
    c.retried = true;
    c.h2_waiting = true;
    ResetParser(c);
    h.pending.push_back(&c);
    return;
  }
  Untrack(c);
  --in_flight_;
  const int64_t now = Now();
  RequestStats& stats = current_->requests[c.request];
  if (end.status != 0) {
    const int status_class = end.status / 100;
    ++stats.status_classes[status_class >= 1 && status_class <= 5 ? status_class : 0];
  }
  Outcome outcome = end.outcome;
  if (shared_.program != nullptr) {
    if (outcome == Outcome::kOk || outcome == Outcome::kUnexpectedStatus) {
      // A whole response: the step's checks and captures decide, as over HTTP/1.1 (Complete).
      outcome = CheckStep(c, outcome == Outcome::kOk);
    } else {
      c.end_iteration = shared_.program->step(c.step).ends_on_fail;  // as Fail
    }
  }
  ++stats.outcomes[static_cast<size_t>(outcome)];
  int64_t backoff = 0;
  if (end.outcome == Outcome::kOk || end.outcome == Outcome::kUnexpectedStatus) {
    stats.latency.Record(static_cast<uint64_t>(std::max<int64_t>(now - c.start_ns, 0)));
    if (open_model_)
      stats.service.Record(static_cast<uint64_t>(std::max<int64_t>(now - c.send_ns, 0)));
    c.backoff_ns = 0;
  } else if (end.outcome == Outcome::kGoaway) {
    // Refused by GOAWAY a second time: counted, and the user pauses before its next request, so
    // a server that keeps refusing cannot turn it into a busy loop.
    c.backoff_ns = c.backoff_ns == 0 ? kFirstBackoffNs : std::min(c.backoff_ns * 2, kMaxBackoffNs);
    backoff = c.backoff_ns;
  }
  AfterRequest(c, now, backoff);
}

void Worker::H2Abandon(Connection& c, Outcome outcome) {
  H2Connection& h = HomeOf(c);
  const uint64_t tag = static_cast<uint64_t>(&c - connections_.data());
  const bool was_busy = h.busy;
  h.busy = true;
  const bool ended = h.session != nullptr && h.session->Cancel(tag, outcome);
  h.busy = was_busy;
  if (!ended && c.h2_submitted) {
    // The session no longer knows the stream: count it here.
    c.h2_submitted = false;
    Untrack(c);
    --in_flight_;
    ++current_->requests[c.request].outcomes[static_cast<size_t>(outcome)];
    if (shared_.program != nullptr) c.end_iteration = shared_.program->step(c.step).ends_on_fail;
    AfterRequest(c, Now(), 0);
  }
  if (!was_busy) H2Pump(h, Now());
}

}  // namespace stampede::agent
