// The io_uring side of the engine's I/O: a ring owned by one worker thread, its provided-buffer
// ring for multishot receives, and the probe that decides at start whether this process may use
// io_uring at all (kernels before 6.1 and container seccomp profiles often refuse it).
//
// Every operation carries a 64-bit tag that the worker chooses; a completion gives it back with
// the kernel's result. Nothing here knows about connections or HTTP.
#ifndef STAMPEDE_AGENT_URING_H_
#define STAMPEDE_AGENT_URING_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct io_uring;
struct io_uring_buf_ring;
struct io_uring_sqe;

namespace stampede::agent {

// What `--io` asks for, and what a worker runs.
enum class IoMode : uint8_t { kAuto, kEpoll, kUring };
enum class IoBackend : uint8_t { kEpoll, kUring };

const char* IoBackendName(IoBackend backend);
// "auto", "epoll" or "uring"; InvalidArgument otherwise.
absl::StatusOr<IoMode> ParseIoMode(absl::string_view text);

// OK when this process can set up a ring the way a worker does (single issuer, deferred task
// work, a registered buffer ring) and the kernel has every operation the worker uses; otherwise
// the reason, with the kernel's error.
absl::Status ProbeUring();

class Uring {
 public:
  struct Completion {
    uint64_t tag;
    int32_t res;
    uint32_t flags;
  };

  // `entries` submission slots; `buffers` (a power of two) receive buffers of `buffer_bytes`
  // each, shared by every multishot receive on the ring. Call on the thread that will use it.
  static absl::StatusOr<std::unique_ptr<Uring>> Create(unsigned entries, unsigned buffers,
                                                       unsigned buffer_bytes);
  ~Uring();
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;

  // Queue operations; they reach the kernel at the next Wait (or earlier when the queue is full).
  void Connect(uint64_t tag, int fd, const sockaddr* address, socklen_t length);
  void Send(uint64_t tag, int fd, const void* data, size_t length);
  // Sends all of `data` while the kernel takes the submission, or gives up at once: a send that
  // goes whole posts no completion (so it costs no wake-up and no system call of its own); one
  // the socket could not take whole completes as `tag` with the bytes that went (0 or more, or
  // -EAGAIN for none) or an error. Either way it has ended when the next SubmitAndWait returns, so
  // `data` may change after that. Uses MSG_DONTWAIT | MSG_WAITALL with IOSQE_CQE_SKIP_SUCCESS.
  void SendNow(uint64_t tag, int fd, const void* data, size_t length);
  // Receives into the ring's buffers until it fails, the peer closes or it is cancelled; each
  // completion without IORING_CQE_F_MORE is its last.
  void ReceiveMultishot(uint64_t tag, int fd);
  void Read(uint64_t tag, int fd, void* data, size_t length);
  // Cancels the operation queued with `target` (a no-op if it has ended); completes as `tag`.
  void Cancel(uint64_t tag, uint64_t target);

  // Submits what is queued and waits for one completion or `timeout_ns` (< 0: no limit). Copies
  // up to `capacity` completions to `out` and returns how many.
  int SubmitAndWait(int64_t timeout_ns, Completion* out, int capacity);
  // How many times queued operations have been handed to the kernel: by SubmitAndWait, and by an
  // operation queued while the queue was full. An operation queued when this was n has reached
  // the kernel once it exceeds n.
  uint64_t Submits() const { return submits_; }

  // A receive completion's data (its buffer), valid until ReturnBuffer.
  const char* BufferOf(const Completion& c) const;
  bool HasBuffer(const Completion& c) const;
  // Whether the multishot operation behind `c` goes on (IORING_CQE_F_MORE).
  static bool More(const Completion& c);
  // Gives a receive completion's buffer back to the kernel.
  void ReturnBuffer(const Completion& c);

 private:
  Uring() = default;
  io_uring_sqe* NextSqe();

  std::unique_ptr<io_uring> ring_;
  bool ring_ready_ = false;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  size_t buffer_ring_bytes_ = 0;
  std::unique_ptr<char[]> buffers_;
  unsigned buffer_count_ = 0;
  unsigned buffer_bytes_ = 0;
  uint64_t submits_ = 0;
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_URING_H_
