// The decoder of a watch's body: newline-delimited JSON events ({"type": ..., "object": ...}) that
// arrive in chunks cut anywhere. Each whole line becomes a WatchEvent handed to `on_event`; an
// ERROR event (a Status, such as 410 Gone) ends the stream with the status it carries; a line that
// is not an event, or one longer than kMaxWatchLine, ends it with Internal. A non-200 answer's
// body is kept (up to kMaxErrorBody) for the caller's error instead.
//
// One stream per watch; not thread-safe. `path` and `on_event` must outlive it.
#ifndef STAMPEDE_CONTROLLER_KUBE_WATCH_STREAM_H_
#define STAMPEDE_CONTROLLER_KUBE_WATCH_STREAM_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "controller/kube/client.h"

namespace stampede::kube {

inline constexpr size_t kMaxErrorBody = 64 << 10;
inline constexpr size_t kMaxWatchLine = 16 << 20;  // larger than any object etcd accepts

class WatchStream {
 public:
  // `on_event` may take the event's object: the stream is done with it.
  WatchStream(const std::string& path, const std::function<bool(WatchEvent&)>& on_event)
      : path_(path), on_event_(on_event) {}

  // The next bytes of the body. Returns false to end the stream (see `result` and `stopped`).
  bool Receive(const char* data, size_t size);
  // The server ended the stream: a last line without a newline still counts.
  void Finish();

  std::chrono::steady_clock::time_point last_byte() const { return last_byte_; }
  // Bytes held of a line not yet whole (at most kMaxWatchLine between calls).
  size_t buffered() const { return buffer_.size(); }

  int http_status = 0;
  std::string error_body;
  absl::Status result;   // an error seen in the stream
  bool stopped = false;  // on_event returned false

 private:
  bool Line(absl::string_view line);

  const std::string& path_;
  const std::function<bool(WatchEvent&)>& on_event_;
  std::string buffer_;
  std::chrono::steady_clock::time_point last_byte_ = std::chrono::steady_clock::now();
};

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_WATCH_STREAM_H_
