// Incremental HTTP/1.1 response parser for the load engine.
//
// Feeds on whatever bytes a read returned and keeps only what it must between reads: a partial line
// (status line, header, chunk size) is carried over, a body is counted and skipped, never stored,
// unless the request asked to keep some of it (a scenario step that captures or checks: Keep).
// Understands Content-Length, chunked bodies (extensions, trailers), bodies delimited by connection
// close, interim 1xx responses, and responses that have no body (HEAD, 1xx, 204, 304).
//
// Never throws and never reads past the bytes it was given; malformed input gives kError with a
// reason (it is fuzzed: tests/fuzz/response_parser_fuzz.cc). Not thread-safe; one per connection.
#ifndef STAMPEDE_AGENT_HTTP_RESPONSE_PARSER_H_
#define STAMPEDE_AGENT_HTTP_RESPONSE_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace stampede::agent {

class HttpResponseParser {
 public:
  enum class Result { kNeedMore, kComplete, kError };

  // Limits that bound the memory a hostile server can make us hold.
  static constexpr size_t kMaxLineBytes = 16 * 1024;
  static constexpr size_t kMaxHeaderBytes = 64 * 1024;

  // What a request keeps of its response beside the status: by default nothing.
  struct Keep {
    size_t body_bytes = 0;     // the body's first bytes (chunked bodies decoded); more is counted
    bool set_cookies = false;  // every Set-Cookie value
    // Lower-case names of headers whose first value to keep; must outlive the response.
    const std::vector<std::string>* headers = nullptr;
  };

  // Prepares for the response to a new request. `head_request` responses carry no body. `keep`
  // (may be null: nothing) must outlive the response. What was kept before is cleared, its memory
  // reused: a connection that keeps the same each time allocates nothing once warmed up.
  void Reset(bool head_request, const Keep* keep = nullptr);

  // Parses bytes. On kComplete, *consumed is the number of bytes that belonged to this response;
  // anything after them is not part of it. On kNeedMore all `len` bytes were consumed.
  Result Parse(const char* data, size_t len, size_t* consumed);

  // The peer closed the connection: kComplete when the body was delimited by the close,
  // kError otherwise (the response was cut short).
  Result OnEof();

  // HTTP/2: the same response from decoded frames instead of bytes (H2Session hands them over,
  // agent/worker.cc). Only what Keep asked for is kept, as from bytes; the stream's end is the
  // response's end, so nothing here completes it. Call Reset first, then DecodedStatus with the
  // final :status, then each of its header fields (lower-case names) and DATA chunks.
  void DecodedStatus(int status);
  void DecodedHeader(const char* name, size_t name_len, const char* value, size_t value_len);
  void DecodedBody(const char* data, size_t len);

  int status() const { return status_; }
  // False when the server asked to close (Connection: close, HTTP/1.0 without keep-alive, or a body
  // delimited by close).
  bool keep_alive() const { return keep_alive_; }
  // Whether any byte of a response arrived since Reset.
  bool started() const { return started_; }
  uint64_t body_bytes() const { return body_bytes_; }
  const char* error() const { return error_; }

  // What Keep asked for, complete once Parse said kComplete. The body's first Keep::body_bytes
  // bytes; whether it was longer (then body_bytes() says by how much).
  const std::string& kept_body() const { return body_; }
  bool body_truncated() const { return body_truncated_; }
  // The Set-Cookie values, in order.
  size_t set_cookie_count() const { return set_cookie_count_; }
  const std::string& set_cookie(size_t i) const { return set_cookies_[i]; }
  // The first value of Keep::headers[i], or nullptr when the response had none.
  const std::string* kept_header(size_t i) const {
    return i < header_present_.size() && header_present_[i] ? &header_values_[i] : nullptr;
  }

 private:
  enum class State {
    kStatusLine,
    kHeaders,
    kBodyLength,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kBodyUntilClose,
    kDone,
    kError,
  };

  Result Fail(const char* reason);
  // Handles one complete line (without CR LF) in a line-oriented state.
  Result OnLine(const char* line, size_t len);
  Result OnStatusLine(const char* line, size_t len);
  Result OnHeader(const char* line, size_t len);
  Result OnHeadersDone();
  Result OnChunkSize(const char* line, size_t len);
  void KeepHeader(const char* name, size_t name_len, const char* value, size_t value_len);
  void KeepBody(const char* data, uint64_t len);

  State state_ = State::kStatusLine;
  bool head_request_ = false;
  bool started_ = false;
  bool keep_alive_ = true;
  bool chunked_ = false;
  bool has_length_ = false;
  bool http10_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  int status_ = 0;
  uint64_t content_length_ = 0;
  uint64_t remaining_ = 0;
  uint64_t body_bytes_ = 0;
  size_t header_bytes_ = 0;
  const char* error_ = nullptr;
  std::string partial_line_;  // allocated only when a line is split across reads

  const Keep* keep_ = nullptr;
  std::string body_;
  bool body_truncated_ = false;
  std::vector<std::string> set_cookies_;  // the first set_cookie_count_ are this response's
  size_t set_cookie_count_ = 0;
  std::vector<std::string> header_values_;
  std::vector<char> header_present_;
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_HTTP_RESPONSE_PARSER_H_
