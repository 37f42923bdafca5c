// An HTTP/2 client connection without I/O: nghttp2 does the framing and HPACK, the caller moves the
// bytes. One H2Session is one connection; each request is one stream on it.
//
// Driving it from a non-blocking event loop (docs/h2-integration.md has the whole recipe):
//   - after connect (h2c) or after a TLS handshake that selected ALPN "h2": call Produce() and
//     write what it returns; it starts with the client preface and SETTINGS;
//   - readable: Receive() the bytes read, then Produce() and write (Receive queues SETTINGS ACKs,
//     PINGs' answers and WINDOW_UPDATEs);
//   - writable: Produce() until it returns 0 or the socket would block;
//   - Submit() a request when a user or an arrival wants one; false means "not on this
//     connection now" (stream limit reached, or the connection takes no new streams);
//   - a timer at NextDeadlineNs(): Tick() ends streams past their deadline (timeout) and streams
//     whose request body has waited on a zero flow-control window for longer than the stall bound
//     (flow_control);
//   - EOF or an error on the socket: ConnectionLost(outcome) ends every open stream;
//   - Finished(): nothing more will be read or written; close the socket once Produce() is empty.
// Every stream submitted ends exactly once in Listener::OnStreamEnd, called from inside Receive,
// Produce, Tick, Cancel or ConnectionLost (never from Submit), with an outcome from
// common/stats.h. The listener may call Submit from OnStreamEnd (its slot is already free) but
// must not destroy the session there. A stream submitted with `deliver` also hands its response
// to the listener (OnResponseStatus, OnResponseHeader, OnResponseData) from inside Receive, before
// its end; those callbacks must not call into the session.
//
// Not thread-safe: one event loop owns a session. No sockets, clocks or threads inside; time is
// passed in (CLOCK_MONOTONIC ns).
//
// Memory: the per-stream state is a slot array sized at construction. nghttp2 allocates per
// stream (its stream object, the queued HEADERS item and its copy of the header list, HPACK's
// buffers) through the session's allocator hook, which keeps freed blocks of up to 4 KiB in
// per-size free lists (at most 256 KiB): in steady state a request takes no block from malloc
// (allocations() counts those that do).
#ifndef STAMPEDE_AGENT_H2_SESSION_H_
#define STAMPEDE_AGENT_H2_SESSION_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/target.h"
#include "common/stats.h"

namespace stampede::agent {

// A request ready to submit as HTTP/2: pseudo-headers and headers as nghttp2 name/value pairs over
// one owned buffer, and the body. Built once per request of the mix, like PreparedRequest's wire,
// or anew (Assign) for each request a scenario renders.
// Move-only (the pairs point into its own heap buffer, which a move keeps in place).
class H2Request {
 public:
  // From an HTTP/1.1 request as PrepareRequests serializes it: the request line becomes :method
  // and :path, Host becomes :authority, header names are lowercased, and the connection-specific
  // headers HTTP/2 forbids (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade)
  // are dropped. `tls` chooses :scheme. InvalidArgument when `wire` is not such a request.
  static absl::StatusOr<H2Request> FromHttp1(std::string_view wire, bool tls,
                                             ExpectedStatus expected);

  // An empty request (no headers) until Assign.
  H2Request() = default;
  H2Request(H2Request&&) = default;
  H2Request& operator=(H2Request&&) = default;

  // FromHttp1 in place: a scenario step's request, rendered anew each time, reuses the buffers of
  // the one before (no allocation once they are large enough). On error the request is empty.
  absl::Status Assign(std::string_view wire, bool tls, ExpectedStatus expected);

  const std::vector<nghttp2_nv>& headers() const { return nv_; }
  std::string_view body() const { return body_; }
  bool head() const { return head_; }
  bool Expected(int status) const { return expected_.Contains(status); }

 private:
  std::vector<char> storage_;  // a move keeps its heap buffer in place
  std::vector<nghttp2_nv> nv_;
  std::string_view body_;  // into storage_
  bool head_ = false;
  ExpectedStatus expected_;
};

struct H2SessionOptions {
  // Streams in flight at most (spec.target.maxConcurrentStreams, 1..1000); the server's
  // SETTINGS_MAX_CONCURRENT_STREAMS lowers it when smaller. Until those SETTINGS arrive the limit
  // is 1: a server with a lower limit than the streams sent refuses the excess (REFUSED_STREAM).
  uint32_t max_concurrent_streams = 100;
  // A stream whose request body cannot be sent because the server's flow-control window (the
  // stream's or the connection's) is 0 ends as flow_control after this long. A server that is
  // slow to read gets this much time with nothing accepted; one that never opens its window would
  // otherwise only show up as timeouts, hiding the cause.
  int64_t flow_control_stall_ns = 1'000'000'000;
  // Our receive windows: large, so that a fast server is not throttled by WINDOW_UPDATE round
  // trips. nghttp2 passes received DATA straight through, so nothing is buffered for them.
  int32_t stream_window = 1 << 20;
  int32_t connection_window = 16 << 20;
};

// How one stream ended.
struct H2StreamEnd {
  uint64_t tag = 0;       // what the caller passed to Submit
  int32_t stream_id = 0;  // 0 if it never got one
  common::Outcome outcome = common::Outcome::kOk;
  int status = 0;           // the final response's :status; 0 when none arrived
  uint64_t body_bytes = 0;  // DATA payload received
  uint32_t reset_code = 0;  // the server's RST_STREAM error code, when outcome is rst_stream
};

class H2Session {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnStreamEnd(const H2StreamEnd& end) = 0;
    // Streams submitted with `deliver` only, before their OnStreamEnd: the final response's
    // :status, then its header fields (lower-case names; no pseudo-headers, no trailers), then
    // its DATA as it arrives. An interim (1xx) response is not delivered.
    virtual void OnResponseStatus(uint64_t /*tag*/, int /*status*/) {}
    virtual void OnResponseHeader(uint64_t /*tag*/, std::string_view /*name*/,
                                  std::string_view /*value*/) {}
    virtual void OnResponseData(uint64_t /*tag*/, const uint8_t* /*data*/, size_t /*size*/) {}
  };

  // InvalidArgument when an option is out of range; Internal when nghttp2 cannot start a session.
  static absl::StatusOr<std::unique_ptr<H2Session>> Create(const H2SessionOptions& options,
                                                           Listener* listener);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Opens a stream for `request` (which must outlive the stream: its headers and body are read
  // from it). `deadline_ns` (0: none) is when Tick ends it as timeout. Returns false, with nothing
  // queued, when this connection cannot take the stream now: the limit of streams in flight is
  // reached (see StreamLimit), GOAWAY was received, the stream ids are used up, or the session is
  // finished. The request goes out with the next Produce. `deliver`: the response's status,
  // headers and body go to the listener as they arrive (a scenario checks and captures them);
  // otherwise only OnStreamEnd's counts.
  bool Submit(const H2Request& request, uint64_t tag, int64_t deadline_ns, int64_t now_ns,
              bool deliver = false);

  // Bytes read from the connection. A protocol error ends the connection: nghttp2 queues a GOAWAY
  // (PROTOCOL_ERROR and the like) for Produce, and every open stream ends as malformed.
  void Receive(const uint8_t* data, size_t size, int64_t now_ns);

  // Copies up to `capacity` bytes to send into `out`; returns how many (0: nothing to send now).
  // Bytes not taken stay queued for the next call.
  size_t Produce(uint8_t* out, size_t capacity, int64_t now_ns);
  bool WantsWrite() const;

  // Ends streams past their deadline (timeout) or stalled on flow control (flow_control), each with
  // an RST_STREAM CANCEL to the server.
  void Tick(int64_t now_ns);
  // The earliest time Tick has work; INT64_MAX when none.
  int64_t NextDeadlineNs() const;

  // Ends one stream now with `outcome` (the grace period ran out: cancelled) and resets it at the
  // server. False if `tag` names no open stream. O(open streams).
  bool Cancel(uint64_t tag, common::Outcome outcome);

  // The transport is gone (EOF: closed; an error: reset): every open stream ends with `outcome`,
  // except those the server's GOAWAY excluded (goaway). The session is finished afterwards.
  void ConnectionLost(common::Outcome outcome);

  // Nothing more to read or write: the peer or we ended the connection, and every stream has
  // ended. Close the socket once Produce returns 0.
  bool Finished() const;
  // New streams can be submitted when below StreamLimit (no GOAWAY, ids left, not finished).
  bool AcceptsStreams() const;
  uint32_t StreamLimit() const;
  // The server's first SETTINGS have arrived; until then StreamLimit() is 1.
  bool PeerSettingsReceived() const { return settings_received_; }
  uint32_t OpenStreams() const { return open_; }
  // Blocks taken from the system allocator for nghttp2 since Create: the misses of the session's
  // block pool. Flat in steady state.
  uint64_t allocations() const { return allocations_; }
  // False under AddressSanitizer, where freed blocks go straight back to free().
  static bool BlockPoolEnabled();

 private:
  struct Slot;
  H2Session(const H2SessionOptions& options, Listener* listener);
  absl::Status Init();

  Slot* AllocSlot();
  void End(Slot* slot, common::Outcome outcome);
  void EndAll(common::Outcome outcome);
  void UpdateStalls(int64_t now_ns);
  void ResetStream(Slot* slot, common::Outcome outcome);
  common::Outcome OutcomeAtClose(const Slot& slot, uint32_t error_code) const;
  void CheckFinished();

  static Slot* SlotOf(nghttp2_session* session, int32_t stream_id);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user);
  static void* Malloc(size_t size, void* user);
  static void Free(void* ptr, void* user);
  static void* Calloc(size_t n, size_t size, void* user);
  static void* Realloc(void* ptr, size_t size, void* user);
  void ReleasePool();

  // nghttp2's blocks of 64 B << class, kept for reuse after nghttp2 frees them, at most
  // kMaxPooledBytes in all; larger blocks go straight to malloc and free.
  static constexpr size_t kPoolClasses = 7;  // 64 B .. 4 KiB
  static constexpr size_t kMaxPooledBytes = 256 << 10;
  void* pool_[kPoolClasses] = {};
  size_t pooled_bytes_ = 0;

  const H2SessionOptions options_;
  Listener* const listener_;
  nghttp2_mem mem_;
  nghttp2_session* session_ = nullptr;

  std::vector<Slot> slots_;
  std::vector<Slot*> free_;
  uint32_t open_ = 0;
  uint32_t bodies_pending_ = 0;  // open streams with request body bytes not yet sent
  uint32_t delivering_ = 0;      // open streams submitted with `deliver`
  uint32_t deadlines_ = 0;       // open streams submitted with a deadline
  uint64_t allocations_ = 0;

  const uint8_t* pending_ = nullptr;  // bytes from nghttp2_session_mem_send not yet produced
  size_t pending_size_ = 0;

  bool settings_received_ = false;  // the server's first SETTINGS (not an ACK)
  bool goaway_received_ = false;
  int32_t goaway_last_stream_id_ = 0;
  bool protocol_error_ = false;  // we sent GOAWAY with an error code: the peer broke the protocol
  bool ids_exhausted_ = false;
  bool lost_ = false;  // ConnectionLost, or nghttp2 returned a fatal error
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_H2_SESSION_H_
