#include "controller/kube/watch_stream.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controller/kube/api_status.h"

namespace stampede::kube {

bool WatchStream::Receive(const char* data, size_t size) {
  last_byte_ = std::chrono::steady_clock::now();
  if (http_status != 200) {
    if (error_body.size() < kMaxErrorBody) {
      error_body.append(data, std::min(size, kMaxErrorBody - error_body.size()));
    }
    return true;
  }
  const size_t old_size = buffer_.size();  // holds no newline: look only at the new bytes
  buffer_.append(data, size);
  size_t start = 0;
  for (size_t newline = buffer_.find('\n', old_size); newline != std::string::npos;
       newline = buffer_.find('\n', start)) {
    // A view, not a copy: a line is a whole object, often many KiB.
    const bool go_on = Line(absl::string_view(buffer_).substr(start, newline - start));
    start = newline + 1;
    if (!go_on) return false;
  }
  buffer_.erase(0, start);
  if (buffer_.size() > kMaxWatchLine) {
    result = absl::InternalError(
        absl::StrCat("watch ", path_, ": an event over ", kMaxWatchLine, " bytes"));
    return false;
  }
  return true;
}

void WatchStream::Finish() {
  if (!buffer_.empty()) Line(buffer_);
  buffer_.clear();
}

bool WatchStream::Line(absl::string_view line) {
  if (absl::StripAsciiWhitespace(line).empty()) return true;
  Json event = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
      !event.contains("object")) {
    result = absl::InternalError(
        absl::StrCat("watch ", path_, ": not a watch event: ", line.substr(0, 200)));
    return false;
  }
  WatchEvent watch_event{event["type"].get<std::string>(), std::move(event["object"])};
  if (watch_event.type == "ERROR") {
    const Json& status = watch_event.object;
    const int code =
        status.is_object() && status.contains("code") && status["code"].is_number_integer()
            ? status["code"].get<int>()
            : 500;
    result = StatusFromHttp("WATCH", path_, code, status.dump());
    return false;
  }
  if (!on_event_(watch_event)) {
    stopped = true;
    return false;
  }
  return true;
}

}  // namespace stampede::kube
