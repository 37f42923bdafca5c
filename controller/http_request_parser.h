// An incremental HTTP/1.1 request parser for the controller's own server (http_server.h): bytes
// in, as they arrive, in pieces of any size; whole requests out. Strict where leniency would let a
// request mean two things (RFC 9112): a bare LF, obs-fold, a space before a header's colon,
// Content-Length and Transfer-Encoding together, conflicting Content-Lengths and codings other
// than chunked are all errors.
//
// Bounds, checked as bytes arrive, so nothing past them is ever buffered: the request head (line
// and headers) `max_head_bytes`, and the body `max_body_bytes` however it is framed (a declared
// Content-Length over the limit is refused before any of the body is read; a chunked body the
// moment its chunks pass the limit).
//
// Not thread-safe; one per connection.
#ifndef STAMPEDE_CONTROLLER_HTTP_REQUEST_PARSER_H_
#define STAMPEDE_CONTROLLER_HTTP_REQUEST_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stampede::controller {

struct HttpRequest {
  std::string method;
  std::string target;     // as sent: path and query
  std::string path;       // the target up to '?', percent-decoding left to the router
  std::string query;      // after '?', without it
  int minor_version = 1;  // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, values trimmed
  std::string body;
  bool keep_alive = true;        // what the client asked for (version and Connection)
  bool expect_continue = false;  // "Expect: 100-continue"
  std::string remote;            // the peer's address, set by the server

  // The first header of that name (lowercase), or "".
  const std::string& Header(std::string_view lowercase_name) const;
  // The value of `key` in the query string, percent-decoded, or "".
  std::string QueryParam(std::string_view key) const;
};

class HttpRequestParser {
 public:
  enum class State {
    kHead,   // reading the request line and headers
    kBody,   // the head is complete (see request()); reading the body
    kDone,   // a whole request is in request()
    kError,  // the input is not a request this server takes: answer error_status() and close
  };

  HttpRequestParser(size_t max_head_bytes, size_t max_body_bytes)
      : max_head_bytes_(max_head_bytes), max_body_bytes_(max_body_bytes) {}

  // Consumes bytes of `data` and returns how many it used: all of them, unless a request was
  // completed (the rest belongs to the next request) or an error was found.
  size_t Feed(std::string_view data);
  State state() const { return state_; }
  // Valid from kBody on (the head), and whole at kDone.
  const HttpRequest& request() const { return request_; }
  HttpRequest& request() { return request_; }
  // At kError: 400, 413 (body too large), 431 (head too large), 501 (a coding other than
  // chunked) or 505 (not HTTP/1.x), with a short reason.
  int error_status() const { return error_status_; }
  const std::string& error() const { return error_; }
  // Starts over for the next request on the same connection.
  void Reset();

 private:
  enum class BodyMode { kNone, kLength, kChunked };
  enum class ChunkState { kSize, kData, kDataEnd, kTrailer };

  void Fail(int status, std::string why);
  void ParseHead();  // head_ holds the whole head, up to and including the empty line
  size_t FeedBody(std::string_view data);

  const size_t max_head_bytes_;
  const size_t max_body_bytes_;
  State state_ = State::kHead;
  std::string head_;
  HttpRequest request_;
  int error_status_ = 0;
  std::string error_;
  BodyMode body_mode_ = BodyMode::kNone;
  uint64_t remaining_ = 0;  // kLength: body bytes still due; kChunked kData: of this chunk
  ChunkState chunk_state_ = ChunkState::kSize;
  std::string line_;  // a chunk-size or trailer line being read
  size_t trailer_bytes_ = 0;
  bool skipped_cr_ = false;  // the last byte skipped before a request line was a CR
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_HTTP_REQUEST_PARSER_H_
