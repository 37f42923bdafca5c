// Incremental HTTP/1.1 response parser for the load engine.
//
// Feeds on whatever bytes a read returned and keeps only what it must between reads: a partial line
// (status line, header, chunk size) is carried over, a body is counted and skipped, never stored.
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

namespace stampede::agent {

class HttpResponseParser {
 public:
  enum class Result { kNeedMore, kComplete, kError };

  // Limits that bound the memory a hostile server can make us hold.
  static constexpr size_t kMaxLineBytes = 16 * 1024;
  static constexpr size_t kMaxHeaderBytes = 64 * 1024;

  // Prepares for the response to a new request. `head_request` responses carry no body.
  void Reset(bool head_request);

  // Parses bytes. On kComplete, *consumed is the number of bytes that belonged to this response;
  // anything after them is not part of it. On kNeedMore all `len` bytes were consumed.
  Result Parse(const char* data, size_t len, size_t* consumed);

  // The peer closed the connection: kComplete when the body was delimited by the close,
  // kError otherwise (the response was cut short).
  Result OnEof();

  int status() const { return status_; }
  // False when the server asked to close (Connection: close, HTTP/1.0 without keep-alive, or a body
  // delimited by close).
  bool keep_alive() const { return keep_alive_; }
  // Whether any byte of a response arrived since Reset.
  bool started() const { return started_; }
  uint64_t body_bytes() const { return body_bytes_; }
  const char* error() const { return error_; }

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
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_HTTP_RESPONSE_PARSER_H_
