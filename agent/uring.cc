#include "agent/uring.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace stampede::agent {
namespace {

// Completions may outnumber submissions by far: every connection keeps a multishot receive.
constexpr unsigned kCompletionSlots = 16384;

std::string ErrnoText(int error) { return absl::StrCat(strerror(error), " (errno ", error, ")"); }

absl::Status SetUp(io_uring* ring, unsigned entries) {
  io_uring_params params{};
  // One thread submits and reaps, and completions run only when it waits: no interrupting task
  // work while the worker handles a batch (6.1+).
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = std::max(kCompletionSlots, entries * 2);
  const int rc = io_uring_queue_init_params(entries, ring, &params);
  if (rc < 0) return absl::UnavailableError(absl::StrCat("io_uring_setup: ", ErrnoText(-rc)));
  if (!(params.features & IORING_FEAT_EXT_ARG)) {
    io_uring_queue_exit(ring);
    return absl::UnavailableError("the kernel cannot wait with a timeout (IORING_FEAT_EXT_ARG)");
  }
  if (!(params.features & IORING_FEAT_CQE_SKIP)) {
    io_uring_queue_exit(ring);
    return absl::UnavailableError("the kernel cannot skip completions (IORING_FEAT_CQE_SKIP)");
  }
  return absl::OkStatus();
}

}  // namespace

const char* IoBackendName(IoBackend backend) {
  return backend == IoBackend::kUring ? "uring" : "epoll";
}

absl::StatusOr<IoMode> ParseIoMode(absl::string_view text) {
  if (text == "auto") return IoMode::kAuto;
  if (text == "epoll") return IoMode::kEpoll;
  if (text == "uring") return IoMode::kUring;
  return absl::InvalidArgumentError(
      absl::StrCat("must be auto, epoll or uring, got \"", text, "\""));
}

absl::Status ProbeUring() {
  io_uring ring;
  if (absl::Status s = SetUp(&ring, 8); !s.ok()) return s;
  absl::Status result = absl::OkStatus();
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring); probe == nullptr) {
    result = absl::UnavailableError("the kernel cannot list its io_uring operations");
  } else {
    for (int op : {IORING_OP_CONNECT, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_READ,
                   IORING_OP_ASYNC_CANCEL}) {
      if (!io_uring_opcode_supported(probe, op)) {
        result = absl::UnavailableError(absl::StrCat("the kernel lacks io_uring operation ", op));
        break;
      }
    }
    io_uring_free_probe(probe);
  }
  if (result.ok()) {
    // Provided buffer rings (5.19) carry every receive.
    void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
      result = absl::UnavailableError(absl::StrCat("mmap: ", ErrnoText(errno)));
    } else {
      io_uring_buf_reg reg{};
      reg.ring_addr = reinterpret_cast<uint64_t>(mem);
      reg.ring_entries = 8;
      reg.bgid = 0;
      if (const int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc < 0)
        result =
            absl::UnavailableError(absl::StrCat("io_uring_register_buf_ring: ", ErrnoText(-rc)));
      munmap(mem, 4096);
    }
  }
  io_uring_queue_exit(&ring);
  return result;
}

absl::StatusOr<std::unique_ptr<Uring>> Uring::Create(unsigned entries, unsigned buffers,
                                                     unsigned buffer_bytes) {
  if (buffers == 0 || (buffers & (buffers - 1)) != 0 || buffers > 32768)
    return absl::InvalidArgumentError("receive buffers: a power of two up to 32768");
  std::unique_ptr<Uring> u(new Uring());
  u->ring_ = std::make_unique<io_uring>();
  if (absl::Status s = SetUp(u->ring_.get(), entries); !s.ok()) return s;
  u->ring_ready_ = true;

  u->buffer_ring_bytes_ = sizeof(io_uring_buf) * buffers;
  void* mem = mmap(nullptr, u->buffer_ring_bytes_, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return absl::UnavailableError(absl::StrCat("mmap: ", ErrnoText(errno)));
  u->buffer_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = buffers;
  reg.bgid = 0;
  if (const int rc = io_uring_register_buf_ring(u->ring_.get(), &reg, 0); rc < 0)
    return absl::UnavailableError(absl::StrCat("io_uring_register_buf_ring: ", ErrnoText(-rc)));
  u->buffer_count_ = buffers;
  u->buffer_bytes_ = buffer_bytes;
  u->buffers_.reset(new char[static_cast<size_t>(buffers) * buffer_bytes]);
  io_uring_buf_ring_init(u->buffer_ring_);
  const int mask = io_uring_buf_ring_mask(buffers);
  for (unsigned i = 0; i < buffers; ++i) {
    io_uring_buf_ring_add(u->buffer_ring_,
                          u->buffers_.get() + static_cast<size_t>(i) * buffer_bytes, buffer_bytes,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(u->buffer_ring_, static_cast<int>(buffers));
  return u;
}

Uring::~Uring() {
  // Exiting the ring cancels what is still pending before the buffers go away.
  if (ring_ready_) io_uring_queue_exit(ring_.get());
  if (buffer_ring_ != nullptr) munmap(buffer_ring_, buffer_ring_bytes_);
}

io_uring_sqe* Uring::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  while (sqe == nullptr) {
    // The queue is full: hand it to the kernel now. Completions it makes wait in the ring.
    io_uring_submit(ring_.get());
    ++submits_;
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

void Uring::Connect(uint64_t tag, int fd, const sockaddr* address, socklen_t length) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_connect(sqe, fd, address, length);
  io_uring_sqe_set_data64(sqe, tag);
}

void Uring::Send(uint64_t tag, int fd, const void* data, size_t length) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_send(sqe, fd, data, length, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, tag);
}

void Uring::SendNow(uint64_t tag, int fd, const void* data, size_t length) {
  io_uring_sqe* sqe = NextSqe();
  // MSG_DONTWAIT keeps the kernel from parking the send (REQ_F_NOWAIT); MSG_WAITALL makes a
  // short send a failure, and failures are not skipped, so silence means every byte went.
  io_uring_prep_send(sqe, fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, tag);
}

void Uring::ReceiveMultishot(uint64_t tag, int fd) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  io_uring_sqe_set_data64(sqe, tag);
}

void Uring::Read(uint64_t tag, int fd, void* data, size_t length) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_read(sqe, fd, data, static_cast<unsigned>(length), 0);
  io_uring_sqe_set_data64(sqe, tag);
}

void Uring::Cancel(uint64_t tag, uint64_t target) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_cancel64(sqe, target, 0);
  io_uring_sqe_set_data64(sqe, tag);
}

int Uring::SubmitAndWait(int64_t timeout_ns, Completion* out, int capacity) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{};
  __kernel_timespec* wait = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    wait = &ts;
  }
  // -ETIME (the timeout) and -EINTR (a signal) both just end the wait.
  io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, wait, nullptr);
  ++submits_;
  int n = 0;
  unsigned head;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    if (n == capacity) break;
    out[n++] = Completion{cqe->user_data, cqe->res, cqe->flags};
  }
  io_uring_cq_advance(ring_.get(), static_cast<unsigned>(n));
  return n;
}

bool Uring::More(const Completion& c) { return (c.flags & IORING_CQE_F_MORE) != 0; }

bool Uring::HasBuffer(const Completion& c) const { return (c.flags & IORING_CQE_F_BUFFER) != 0; }

const char* Uring::BufferOf(const Completion& c) const {
  const unsigned id = c.flags >> IORING_CQE_BUFFER_SHIFT;
  return buffers_.get() + static_cast<size_t>(id) * buffer_bytes_;
}

void Uring::ReturnBuffer(const Completion& c) {
  if (!HasBuffer(c)) return;
  const unsigned id = c.flags >> IORING_CQE_BUFFER_SHIFT;
  io_uring_buf_ring_add(buffer_ring_, buffers_.get() + static_cast<size_t>(id) * buffer_bytes_,
                        buffer_bytes_, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(buffer_count_), 0);
  io_uring_buf_ring_advance(buffer_ring_, 1);
}

}  // namespace stampede::agent
