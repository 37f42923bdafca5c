#include "tests/target/h2_test_server.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace stampede::test_target {
namespace {
constexpr uint32_t kWideWindow = 16u << 20;  // Options::wide_window
}  // namespace

H2TestServer::H2TestServer(const Options& options) : options_(options) {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) std::abort();
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0) std::abort();
  if (options_.zero_window) nghttp2_option_set_no_auto_window_update(option, 1);
  if (nghttp2_session_server_new2(&session_, callbacks, this, option) != 0) std::abort();
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.zero_window   ? 0u
                                             : options_.wide_window ? kWideWindow
                                                                    : 65535u},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2) != 0) std::abort();
  // The connection's window is not a setting: a WINDOW_UPDATE on stream 0 widens it.
  if (options_.wide_window &&
      nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWideWindow) != 0) {
    std::abort();
  }
}

H2TestServer::~H2TestServer() { nghttp2_session_del(session_); }

bool H2TestServer::Receive(const uint8_t* data, size_t size) {
  if (broken_) return false;
  if (nghttp2_session_mem_recv(session_, data, size) < 0) broken_ = true;
  return !broken_;
}

bool H2TestServer::Produce(std::string* out) {
  if (broken_) return false;
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      broken_ = true;
      return false;
    }
    if (n == 0) break;
    out->append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  out->append(raw_);
  raw_.clear();
  return true;
}

bool H2TestServer::Finished() const {
  return broken_ || (nghttp2_session_want_read(session_) == 0 &&
                     nghttp2_session_want_write(session_) == 0 && raw_.empty());
}

namespace {

nghttp2_nv Field(const char* name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

void H2TestServer::Respond(int32_t stream_id, int status, std::string body) {
  Respond(stream_id, std::to_string(status), std::move(body));
}

void H2TestServer::Respond(int32_t stream_id, const std::string& status_text, std::string body,
                           const std::vector<std::pair<const char*, std::string>>& extra,
                           bool trailers) {
  Stream& stream = streams_[stream_id];
  stream.body = std::move(body);
  stream.sent = 0;
  stream.trailers = trailers;
  const std::string length = std::to_string(stream.body.size());
  std::vector<nghttp2_nv> headers = {Field(":status", status_text),
                                     Field("content-length", length)};
  for (const auto& [name, value] : extra) headers.push_back(Field(name, value));
  nghttp2_data_provider provider{};
  provider.source.ptr = nullptr;
  provider.read_callback = &ReadBody;
  nghttp2_submit_response(session_, stream_id, headers.data(), headers.size(), &provider);
  ++answered_;
}

void H2TestServer::OnRequest(int32_t stream_id) {
  const std::string path = streams_[stream_id].path;
  ++by_path_[path];
  if (stream_id > goaway_last_) return;  // excluded by our GOAWAY: never processed
  if (path == "/rst" || path == "/refuse") {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id,
                              path == "/rst" ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_REFUSED_STREAM);
  } else if (path == "/goaway") {
    goaway_last_ = stream_id;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
    Respond(stream_id, 200, "ok");
  } else if (path == "/garbage") {
    // DATA on stream 0, which RFC 9113 section 6.1 makes a connection error.
    static constexpr char kFrame[] = {0, 0, 4, 0, 0, 0, 0, 0, 0, 'j', 'u', 'n', 'k'};
    raw_.append(kFrame, sizeof(kFrame));
  } else if (path == "/bad-hpack") {
    // An indexed field whose index overflows: HPACK cannot decode it (COMPRESSION_ERROR).
    const char frame[] = {0,
                          0,
                          6,
                          NGHTTP2_HEADERS,
                          NGHTTP2_FLAG_END_HEADERS,
                          static_cast<char>((stream_id >> 24) & 0x7f),
                          static_cast<char>((stream_id >> 16) & 0xff),
                          static_cast<char>((stream_id >> 8) & 0xff),
                          static_cast<char>(stream_id & 0xff),
                          '\xff',
                          '\xff',
                          '\xff',
                          '\xff',
                          '\xff',
                          '\x7f'};
    raw_.append(frame, sizeof(frame));
  } else if (path == "/bad-status") {
    Respond(stream_id, "099", "three digits, not an HTTP status");
  } else if (path == "/session") {
    // An interim 103 with a field of its own, then the final response with what a scenario reads
    // (two cookies, a header, a JSON body) and a trailer: the fields of the 103 and the trailer
    // are not the response's headers.
    const std::string early_status = "103", link = "</style.css>; rel=preload";
    const nghttp2_nv early[] = {Field(":status", early_status), Field("link", link)};
    nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream_id, nullptr, early, 2, nullptr);
    const std::string id = std::to_string(stream_id);
    Respond(stream_id, "200", "{\"token\":\"tok-" + id + "\",\"items\":[{\"id\":7},{\"id\":8}]}",
            {{"set-cookie", "sid=s" + id + "; Path=/"},
             {"set-cookie", "theme=dark"},
             {"x-request-id", "r" + id}},
            /*trailers=*/true);
  } else if (path == "/hang") {
    // no answer
  } else if (path.rfind("/status/", 0) == 0) {
    const int status = std::atoi(path.c_str() + 8);
    if (status < 200 || status > 599) {
      Respond(stream_id, 400, "status must be 200..599");
    } else {
      Respond(stream_id, status, "status " + std::to_string(status));
    }
  } else {
    Respond(stream_id, 200, "ok");
  }
}

int H2TestServer::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    static_cast<H2TestServer*>(user)->streams_[frame->hd.stream_id] = Stream{};
  }
  return 0;
}

int H2TestServer::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* user) {
  auto* self = static_cast<H2TestServer*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":path") {
    self->streams_[frame->hd.stream_id].path.assign(reinterpret_cast<const char*>(value), valuelen);
  }
  return 0;
}

int H2TestServer::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2TestServer*>(user);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
      self->streams_.count(frame->hd.stream_id) != 0) {
    self->OnRequest(frame->hd.stream_id);
  }
  return 0;
}

int H2TestServer::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
  static_cast<H2TestServer*>(user)->streams_.erase(stream_id);
  return 0;
}

ssize_t H2TestServer::ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                               size_t length, uint32_t* data_flags, nghttp2_data_source*,
                               void* user) {
  auto* self = static_cast<H2TestServer*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  Stream& stream = it->second;
  const size_t n = std::min(length, stream.body.size() - stream.sent);
  std::memcpy(buf, stream.body.data() + stream.sent, n);
  stream.sent += n;
  if (stream.sent == stream.body.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (stream.trailers) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const std::string value = "late";
      const nghttp2_nv trailer[] = {Field("x-trailer", value)};
      nghttp2_submit_trailer(session, stream_id, trailer, 1);
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace stampede::test_target
