// A sans-I/O HTTP/2 server connection (nghttp2's server session) that answers well or misbehaves at
// the frame level, chosen by the request's :path. The h2c test target and the unit tests of
// agent/h2_session.h both drive it.
//
//   /status/N    status N (200..599; else 400) with body "status N"
//   /rst         RST_STREAM INTERNAL_ERROR instead of a response
//   /refuse      RST_STREAM REFUSED_STREAM
//   /goaway      GOAWAY (NO_ERROR, last stream id = this stream), then a 200 to this stream; any
//                later stream is left unanswered, as RFC 9113 allows
//   /garbage     a DATA frame on stream 0 (a connection PROTOCOL_ERROR) instead of a response
//   /bad-hpack   a HEADERS frame for this stream whose block HPACK cannot decode
//   /bad-status  a response whose :status is "099" (three digits, which nghttp2 lets through)
//   /session     an interim 103, then 200 with two Set-Cookies, x-request-id, a JSON body
//                {"token":"tok-ID","items":[{"id":7},{"id":8}]} (ID the stream id) and a trailer
//   /hang        no answer at all
//   anything else: 200 with body "ok"
// Options::zero_window advertises SETTINGS_INITIAL_WINDOW_SIZE 0 and never sends WINDOW_UPDATE, so
// a request body can never be sent. Options::wide_window advertises 16 MiB windows (stream and
// connection) instead, so a body of less goes without a WINDOW_UPDATE: nothing comes back to the
// client until it has sent it all. Responses go out when the request has ended (END_STREAM).
//
// Not thread-safe: one thread owns a connection.
#ifndef STAMPEDE_TESTS_TARGET_H2_TEST_SERVER_H_
#define STAMPEDE_TESTS_TARGET_H2_TEST_SERVER_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stampede::test_target {

class H2TestServer {
 public:
  struct Options {
    bool zero_window = false;
    bool wide_window = false;
    uint32_t max_concurrent_streams = 100;
  };
  explicit H2TestServer(const Options& options);
  ~H2TestServer();
  H2TestServer(const H2TestServer&) = delete;
  H2TestServer& operator=(const H2TestServer&) = delete;

  // False when the session is over (a protocol error it detected, or a fatal library error).
  bool Receive(const uint8_t* data, size_t size);
  // Appends what there is to send to *out; false on a fatal library error.
  bool Produce(std::string* out);
  // Nothing more to read or write.
  bool Finished() const;

  // Streams whose request has arrived, by path; requests answered in total.
  const std::map<std::string, uint64_t>& requests_by_path() const { return by_path_; }
  uint64_t answered() const { return answered_; }

 private:
  struct Stream {
    std::string path;
    std::string body;
    size_t sent = 0;
    bool trailers = false;  // a trailer field follows the body
  };
  void OnRequest(int32_t stream_id);
  void Respond(int32_t stream_id, int status, std::string body);
  void Respond(int32_t stream_id, const std::string& status_text, std::string body,
               const std::vector<std::pair<const char*, std::string>>& extra = {},
               bool trailers = false);

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user);

  const Options options_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  std::map<std::string, uint64_t> by_path_;
  std::string raw_;  // bytes to send after nghttp2's, outside its framing
  int32_t goaway_last_ = INT32_MAX;
  uint64_t answered_ = 0;
  bool broken_ = false;
};

}  // namespace stampede::test_target

#endif  // STAMPEDE_TESTS_TARGET_H2_TEST_SERVER_H_
