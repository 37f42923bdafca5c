#include "agent/h2_session.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/spec.h"

namespace stampede::agent {

using common::Outcome;

struct H2Session::Slot {
  bool open = false;
  uint64_t tag = 0;
  int32_t stream_id = 0;
  const H2Request* request = nullptr;
  size_t body_sent = 0;
  int64_t deadline_ns = 0;
  int64_t stalled_since_ns = 0;  // 0: not stalled
  int status = 0;
  uint64_t body_bytes = 0;
  bool response_complete = false;  // END_STREAM received after the final response
  bool reset_received = false;
  uint32_t reset_code = 0;
  bool deliver = false;              // the listener gets the response (Submit's `deliver`)
  bool final_headers = false;        // inside the final response's header block
  Outcome forced = Outcome::kCount;  // set when we end the stream ourselves

  bool BodyPending() const { return request != nullptr && body_sent < request->body().size(); }
};

namespace {

bool ConnectionSpecific(absl::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" ||
         lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade";
}

absl::Status BadWire(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("HTTP/2 request: ", what));
}

}  // namespace

absl::StatusOr<H2Request> H2Request::FromHttp1(std::string_view wire, bool tls,
                                               ExpectedStatus expected) {
  H2Request r;
  if (absl::Status s = r.Assign(wire, tls, expected); !s.ok()) return s;
  return r;
}

absl::Status H2Request::Assign(std::string_view wire_text, bool tls, ExpectedStatus expected) {
  nv_.clear();
  body_ = {};
  head_ = false;
  const absl::string_view wire(wire_text.data(), wire_text.size());
  const size_t head_end = wire.find("\r\n\r\n");
  if (head_end == absl::string_view::npos) return BadWire("no end of the header block");
  const absl::string_view head = wire.substr(0, head_end);
  const absl::string_view body = wire.substr(head_end + 4);

  // storage_ holds the pseudo-header names, every line's pieces (names lowercased) and the body:
  // never more than the wire plus the pseudo-header names and the scheme.
  const size_t needed = wire.size() + 64;
  if (storage_.size() < needed) storage_.resize(needed);
  char* out = storage_.data();
  auto put = [&](absl::string_view s, bool lower) {
    char* begin = out;
    for (char c : s) *out++ = lower ? absl::ascii_tolower(static_cast<unsigned char>(c)) : c;
    return absl::string_view(begin, s.size());
  };
  auto add = [&](absl::string_view name, absl::string_view value) {
    nv_.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                             reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                             name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
  };
  auto fail = [&](absl::string_view what) {
    nv_.clear();
    return BadWire(what);
  };

  size_t line_end = head.find("\r\n");
  const absl::string_view request_line = head.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.rfind(' ');
  if (sp1 == absl::string_view::npos || sp2 == sp1 || request_line.substr(sp2 + 1) != "HTTP/1.1") {
    return fail("the first line is not METHOD PATH HTTP/1.1");
  }
  const absl::string_view method = request_line.substr(0, sp1);
  const absl::string_view path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  add(put(":method", false), put(method, false));
  add(put(":scheme", false), put(tls ? "https" : "http", false));
  const size_t authority_index = nv_.size();
  add(put(":authority", false), absl::string_view());
  add(put(":path", false), put(path, false));
  bool has_authority = false;
  while (line_end != absl::string_view::npos) {
    const size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const absl::string_view line =
        head.substr(start, line_end == absl::string_view::npos ? line_end : line_end - start);
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return fail(absl::StrCat("header line \"", line, "\" has no name"));
    }
    const absl::string_view value = absl::StripLeadingAsciiWhitespace(line.substr(colon + 1));
    char* const mark = out;
    const absl::string_view name = put(line.substr(0, colon), true);
    if (ConnectionSpecific(name)) {
      out = mark;
      continue;
    }
    if (name == "host") {
      out = mark;
      const absl::string_view authority = put(value, false);
      nv_[authority_index].value = reinterpret_cast<uint8_t*>(const_cast<char*>(authority.data()));
      nv_[authority_index].valuelen = authority.size();
      has_authority = true;
      continue;
    }
    add(name, put(value, false));
  }
  if (!has_authority) return fail("no Host header for :authority");
  const absl::string_view stored_body = put(body, false);
  body_ = std::string_view(stored_body.data(), stored_body.size());
  head_ = method == "HEAD";
  expected_ = expected;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<H2Session>> H2Session::Create(const H2SessionOptions& options,
                                                             Listener* listener) {
  if (options.max_concurrent_streams < 1 ||
      options.max_concurrent_streams > common::kMaxConcurrentStreams) {
    return absl::InvalidArgumentError(absl::StrCat("maxConcurrentStreams: must be in 1..",
                                                   common::kMaxConcurrentStreams, ", got ",
                                                   options.max_concurrent_streams));
  }
  if (options.flow_control_stall_ns <= 0) {
    return absl::InvalidArgumentError("flow_control_stall_ns: must be > 0");
  }
  if (options.stream_window < 1 || options.connection_window < options.stream_window) {
    return absl::InvalidArgumentError("stream_window: must be > 0 and not above connection_window");
  }
  if (listener == nullptr) return absl::InvalidArgumentError("listener: required");
  std::unique_ptr<H2Session> session(new H2Session(options, listener));
  if (absl::Status s = session->Init(); !s.ok()) return s;
  return session;
}

H2Session::H2Session(const H2SessionOptions& options, Listener* listener)
    : options_(options), listener_(listener), slots_(options.max_concurrent_streams) {
  mem_ = nghttp2_mem{this, &Malloc, &Free, &Calloc, &Realloc};
  free_.reserve(slots_.size());
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) free_.push_back(&*it);
}

H2Session::~H2Session() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  ReleasePool();
}

absl::Status H2Session::Init() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0)
    return absl::InternalError("nghttp2: no memory");
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &OnFrameSend);
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0) {
    nghttp2_session_callbacks_del(callbacks);
    return absl::InternalError("nghttp2: no memory");
  }
  // Until the server's SETTINGS arrive, one stream: the server's limit is unknown, and a server
  // with a lower one refuses the excess (nginx answers REFUSED_STREAM), which would count as
  // rst_stream errors the client caused. The first flight carries one request.
  nghttp2_option_set_peer_max_concurrent_streams(option, 1);
  const int rv = nghttp2_session_client_new3(&session_, callbacks, this, option, &mem_);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(rv)));

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},  // no server-initiated streams
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(options_.stream_window)},
  };
  int err = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                                    sizeof(settings) / sizeof(settings[0]));
  if (err == 0) {
    err = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                                options_.connection_window);
  }
  if (err != 0) return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(err)));
  return absl::OkStatus();
}

uint32_t H2Session::StreamLimit() const {
  if (!settings_received_) return 1;
  const uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::min(peer, options_.max_concurrent_streams);
}

bool H2Session::AcceptsStreams() const {
  return !goaway_received_ && !ids_exhausted_ && !lost_ && !protocol_error_ &&
         nghttp2_session_want_read(session_) != 0;
}

bool H2Session::Finished() const {
  if (lost_) return true;
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
         pending_size_ == 0;
}

bool H2Session::WantsWrite() const {
  return !lost_ && (pending_size_ > 0 || nghttp2_session_want_write(session_) != 0);
}

bool H2Session::Submit(const H2Request& request, uint64_t tag, int64_t deadline_ns, int64_t now_ns,
                       bool deliver) {
  (void)now_ns;
  if (!AcceptsStreams() || open_ >= StreamLimit() || free_.empty()) return false;
  Slot* slot = free_.back();
  nghttp2_data_provider provider{};
  provider.source.ptr = slot;
  provider.read_callback = &ReadBody;
  const bool has_body = !request.body().empty();
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, request.headers().data(), request.headers().size(),
                             has_body ? &provider : nullptr, slot);
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) ids_exhausted_ = true;
    return false;
  }
  free_.pop_back();
  *slot = Slot{};
  slot->open = true;
  slot->tag = tag;
  slot->stream_id = id;
  slot->request = &request;
  slot->deadline_ns = deadline_ns;
  if (deadline_ns != 0) ++deadlines_;
  slot->deliver = deliver;
  if (deliver) ++delivering_;
  ++open_;
  if (has_body) ++bodies_pending_;
  return true;
}

void H2Session::Receive(const uint8_t* data, size_t size, int64_t now_ns) {
  if (lost_) return;
  const ssize_t n = nghttp2_session_mem_recv(session_, data, size);
  if (n < 0) {
    // Fatal to the session (nghttp2_is_fatal): no GOAWAY can follow.
    protocol_error_ = true;
    lost_ = true;
    EndAll(Outcome::kMalformed);
    return;
  }
  UpdateStalls(now_ns);
  CheckFinished();
}

size_t H2Session::Produce(uint8_t* out, size_t capacity, int64_t now_ns) {
  size_t produced = 0;
  while (!lost_ && produced < capacity) {
    if (pending_size_ == 0) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        lost_ = true;
        EndAll(Outcome::kMalformed);
        break;
      }
      if (n == 0) break;
      pending_ = data;
      pending_size_ = static_cast<size_t>(n);
    }
    const size_t take = std::min(pending_size_, capacity - produced);
    std::memcpy(out + produced, pending_, take);
    produced += take;
    pending_ += take;
    pending_size_ -= take;
  }
  UpdateStalls(now_ns);
  CheckFinished();
  return produced;
}

void H2Session::UpdateStalls(int64_t now_ns) {
  if (bodies_pending_ == 0) return;
  const int32_t connection_window = nghttp2_session_get_remote_window_size(session_);
  for (Slot& slot : slots_) {
    if (!slot.open || !slot.BodyPending()) continue;
    const int32_t window = std::min(
        connection_window, nghttp2_session_get_stream_remote_window_size(session_, slot.stream_id));
    if (window > 0) {
      slot.stalled_since_ns = 0;
    } else if (slot.stalled_since_ns == 0) {
      slot.stalled_since_ns = std::max<int64_t>(now_ns, 1);
    }
  }
}

void H2Session::Tick(int64_t now_ns) {
  UpdateStalls(now_ns);
  for (Slot& slot : slots_) {
    if (!slot.open) continue;
    if (slot.deadline_ns != 0 && now_ns >= slot.deadline_ns) {
      ResetStream(&slot, Outcome::kTimeout);
    } else if (slot.stalled_since_ns != 0 &&
               now_ns - slot.stalled_since_ns >= options_.flow_control_stall_ns) {
      ResetStream(&slot, Outcome::kFlowControl);
    }
  }
  CheckFinished();
}

int64_t H2Session::NextDeadlineNs() const {
  int64_t next = INT64_MAX;
  // Only a deadline or a request body waiting on the window (a stall) makes one. The worker
  // submits without deadlines (its timeouts are its own) and asks once per loop turn.
  if (open_ == 0 || (deadlines_ == 0 && bodies_pending_ == 0)) return next;
  for (const Slot& slot : slots_) {
    if (!slot.open) continue;
    if (slot.deadline_ns != 0) next = std::min(next, slot.deadline_ns);
    if (slot.stalled_since_ns != 0) {
      next = std::min(next, slot.stalled_since_ns + options_.flow_control_stall_ns);
    }
  }
  return next;
}

bool H2Session::Cancel(uint64_t tag, Outcome outcome) {
  for (Slot& slot : slots_) {
    if (slot.open && slot.tag == tag) {
      ResetStream(&slot, outcome);
      CheckFinished();
      return true;
    }
  }
  return false;
}

void H2Session::ResetStream(Slot* slot, Outcome outcome) {
  const int32_t id = slot->stream_id;
  if (!lost_) {
    // The stream's RST_STREAM goes out with the next Produce; nghttp2 forgets it then, so
    // detach the slot now and end it here.
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  }
  End(slot, outcome);
}

void H2Session::ConnectionLost(Outcome outcome) {
  lost_ = true;
  pending_size_ = 0;
  EndAll(outcome);
}

void H2Session::EndAll(Outcome outcome) {
  for (Slot& slot : slots_) {
    if (!slot.open) continue;
    if (slot.forced == Outcome::kCount) {
      if (goaway_received_ && slot.stream_id > goaway_last_stream_id_) {
        slot.forced = Outcome::kGoaway;
      } else if (protocol_error_) {
        slot.forced = Outcome::kMalformed;
      } else {
        slot.forced = outcome;
      }
    }
    if (!lost_) nghttp2_session_set_stream_user_data(session_, slot.stream_id, nullptr);
    End(&slot, slot.forced);
  }
}

void H2Session::CheckFinished() {
  // nghttp2 stops reading after it has sent or received the last GOAWAY it needs; streams it has
  // not closed by then never will be.
  if (open_ > 0 && !lost_ && nghttp2_session_want_read(session_) == 0) {
    EndAll(Outcome::kClosed);
  }
}

void H2Session::End(Slot* slot, Outcome outcome) {
  H2StreamEnd end;
  end.tag = slot->tag;
  end.stream_id = slot->stream_id;
  end.outcome = outcome;
  end.status = slot->status;
  end.body_bytes = slot->body_bytes;
  end.reset_code = slot->reset_code;
  if (slot->BodyPending()) --bodies_pending_;
  if (slot->deliver) --delivering_;
  if (slot->deadline_ns != 0) --deadlines_;
  slot->open = false;
  slot->request = nullptr;
  free_.push_back(slot);
  --open_;
  listener_->OnStreamEnd(end);
}

Outcome H2Session::OutcomeAtClose(const Slot& slot, uint32_t error_code) const {
  if (slot.forced != Outcome::kCount) return slot.forced;
  // A server may reset a stream (NO_ERROR) after a complete response, to stop the request body.
  if (slot.response_complete) {
    return slot.request->Expected(slot.status) ? Outcome::kOk : Outcome::kUnexpectedStatus;
  }
  if (slot.reset_received) return Outcome::kStreamReset;
  if (goaway_received_ && slot.stream_id > goaway_last_stream_id_) return Outcome::kGoaway;
  // Closed by nghttp2 itself: a malformed header block or frame on this stream (it sent
  // RST_STREAM PROTOCOL_ERROR), or the connection's end after a protocol error.
  if (error_code != NGHTTP2_NO_ERROR || protocol_error_) return Outcome::kMalformed;
  return Outcome::kClosed;
}

// The slot of an open stream. The stream's user data can outlive the stream's slot: a stream we
// ended ourselves before its HEADERS went out keeps it, and the slot may serve a newer stream.
H2Session::Slot* H2Session::SlotOf(nghttp2_session* session, int32_t stream_id) {
  auto* slot = static_cast<Slot*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (slot == nullptr || !slot->open || slot->stream_id != stream_id) return nullptr;
  return slot;
}

int H2Session::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  H2Session* self = static_cast<H2Session*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) self->settings_received_ = true;
      return 0;
    case NGHTTP2_GOAWAY:
      self->goaway_received_ = true;
      self->goaway_last_stream_id_ = frame->goaway.last_stream_id;
      return 0;
    case NGHTTP2_RST_STREAM: {
      Slot* slot = SlotOf(session, frame->hd.stream_id);
      if (slot != nullptr) {
        slot->reset_received = true;
        slot->reset_code = frame->rst_stream.error_code;
      }
      return 0;
    }
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      if (frame->hd.type == NGHTTP2_HEADERS && self->delivering_ > 0) {
        // The header block is over: what follows is DATA or trailers.
        Slot* slot = SlotOf(session, frame->hd.stream_id);
        if (slot != nullptr) slot->final_headers = false;
      }
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
      Slot* slot = SlotOf(session, frame->hd.stream_id);
      // nghttp2's HTTP checks reject an END_STREAM before a final response, so a status is set.
      if (slot != nullptr && slot->status >= 200) slot->response_complete = true;
      return 0;
    }
    default:
      return 0;
  }
}

int H2Session::OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t /*flags*/,
                        void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  H2Session* self = static_cast<H2Session*>(user);
  const bool status_field = namelen == 7 && std::memcmp(name, ":status", 7) == 0;
  // The request mix reads only :status; other fields matter to streams that deliver them.
  if (!status_field && self->delivering_ == 0) return 0;
  Slot* slot = SlotOf(session, frame->hd.stream_id);
  if (slot == nullptr) return 0;
  if (!status_field) {
    // nghttp2 has checked the field (lower-case name, no pseudo-header after a regular one).
    if (slot->final_headers) {
      self->listener_->OnResponseHeader(
          slot->tag, std::string_view(reinterpret_cast<const char*>(name), namelen),
          std::string_view(reinterpret_cast<const char*>(value), valuelen));
    }
    return 0;
  }
  // nghttp2 checks for three digits but lets "000".."099" through, which HTTP has no use for
  // (RFC 9110 section 15): failing the callback resets the stream, which then ends as malformed.
  int status = 0;
  for (size_t i = 0; i < valuelen; ++i) {
    if (value[i] < '0' || value[i] > '9') return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    status = status * 10 + (value[i] - '0');
  }
  if (valuelen != 3 || status < 100) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  // 1xx responses are interim: the final one follows and overwrites it.
  slot->status = status;
  if (status >= 200 && slot->deliver) {
    slot->final_headers = true;
    self->listener_->OnResponseStatus(slot->tag, status);
  }
  return 0;
}

int H2Session::OnDataChunk(nghttp2_session* session, uint8_t /*flags*/, int32_t stream_id,
                           const uint8_t* data, size_t len, void* user) {
  Slot* slot = SlotOf(session, stream_id);
  if (slot == nullptr) return 0;
  slot->body_bytes += len;
  if (slot->deliver) static_cast<H2Session*>(user)->listener_->OnResponseData(slot->tag, data, len);
  return 0;
}

int H2Session::OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                             void* user) {
  H2Session* self = static_cast<H2Session*>(user);
  Slot* slot = SlotOf(session, stream_id);
  if (slot == nullptr) return 0;  // already ended by us
  self->End(slot, self->OutcomeAtClose(*slot, error_code));
  return 0;
}

int H2Session::OnFrameSend(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    static_cast<H2Session*>(user)->protocol_error_ = true;
  }
  return 0;
}

ssize_t H2Session::ReadBody(nghttp2_session* /*session*/, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                            void* user) {
  H2Session* self = static_cast<H2Session*>(user);
  Slot* slot = static_cast<Slot*>(source->ptr);
  // A stream we ended ourselves may still have its DATA queued while its slot serves a new one.
  if (!slot->open || slot->stream_id != stream_id || slot->request == nullptr) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  const std::string_view body = slot->request->body();
  const size_t n = std::min(length, body.size() - slot->body_sent);
  std::memcpy(buf, body.data() + slot->body_sent, n);
  slot->body_sent += n;
  slot->stalled_since_ns = 0;
  if (slot->body_sent == body.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    --self->bodies_pending_;
  }
  return static_cast<ssize_t>(n);
}

// nghttp2's allocator: blocks of 64 B..4 KiB come from per-size-class free lists, so a stream's
// allocations in steady state reuse the blocks of the streams before it. Each block has a 16-byte
// header (its class, or its size when larger than the classes), which keeps payloads 16-aligned.
namespace {

constexpr size_t kHeaderBytes = 16;
constexpr size_t kLargeClass = ~size_t{0};
constexpr size_t kClassCount = 7;  // H2Session::kPoolClasses

// Under AddressSanitizer (the fuzz build) blocks go back to free() at once, so that a use after
// free in or around nghttp2 is caught rather than hidden by reuse.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPool = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPool = false;
#else
constexpr bool kPool = true;
#endif
#else
constexpr bool kPool = true;
#endif

size_t ClassFor(size_t size) {
  size_t c = 0;
  while (c < kClassCount && (size_t{64} << c) < size) ++c;
  return c < kClassCount ? c : kLargeClass;
}

size_t* HeaderOf(void* payload) {
  return reinterpret_cast<size_t*>(static_cast<char*>(payload) - kHeaderBytes);
}

}  // namespace

void* H2Session::Malloc(size_t size, void* user) {
  static_assert(kClassCount == kPoolClasses);
  H2Session* self = static_cast<H2Session*>(user);
  const size_t c = ClassFor(size);
  if (c != kLargeClass && self->pool_[c] != nullptr) {
    void* payload = self->pool_[c];
    self->pool_[c] = *static_cast<void**>(payload);
    self->pooled_bytes_ -= size_t{64} << c;
    return payload;
  }
  ++self->allocations_;
  const size_t capacity = c == kLargeClass ? size : size_t{64} << c;
  char* block = static_cast<char*>(std::malloc(kHeaderBytes + capacity));
  if (block == nullptr) return nullptr;
  size_t* header = reinterpret_cast<size_t*>(block);
  header[0] = c;
  header[1] = capacity;
  return block + kHeaderBytes;
}

void H2Session::Free(void* ptr, void* user) {
  if (ptr == nullptr) return;
  H2Session* self = static_cast<H2Session*>(user);
  size_t* header = HeaderOf(ptr);
  const size_t c = header[0];
  if (kPool && c != kLargeClass && self->pooled_bytes_ + header[1] <= kMaxPooledBytes) {
    *static_cast<void**>(ptr) = self->pool_[c];
    self->pool_[c] = ptr;
    self->pooled_bytes_ += header[1];
    return;
  }
  std::free(header);
}

void* H2Session::Calloc(size_t n, size_t size, void* user) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = Malloc(n * size, user);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* H2Session::Realloc(void* ptr, size_t size, void* user) {
  if (ptr == nullptr) return Malloc(size, user);
  const size_t capacity = HeaderOf(ptr)[1];
  if (size <= capacity) return ptr;
  void* grown = Malloc(size, user);
  if (grown == nullptr) return nullptr;  // ptr stays valid, as realloc leaves it
  std::memcpy(grown, ptr, capacity);
  Free(ptr, user);
  return grown;
}

bool H2Session::BlockPoolEnabled() { return kPool; }

void H2Session::ReleasePool() {
  for (void*& head : pool_) {
    while (head != nullptr) {
      void* next = *static_cast<void**>(head);
      std::free(HeaderOf(head));
      head = next;
    }
  }
  pooled_bytes_ = 0;
}

}  // namespace stampede::agent
