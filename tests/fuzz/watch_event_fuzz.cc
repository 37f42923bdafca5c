// libFuzzer target for the Kubernetes watch decoder (controller/kube/watch_stream.h): any bytes,
// cut into chunks anywhere, give events, an error, or the end, never a crash; every event handed
// on has a type and an object; an ERROR event ends the stream with a status that is not OK; and
// what is held of a line never grows past the stated bound.
//
// Input: a header byte (bits 0..2: how many chunk sizes follow, one byte each, cycled), then the
// body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "controller/kube/watch_stream.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t sizes = data[0] & 7;
  if (size < 1 + sizes) return 0;
  std::vector<size_t> cuts;
  for (size_t i = 0; i < sizes; ++i) cuts.push_back(data[1 + i] == 0 ? 1 : data[1 + i]);
  if (cuts.empty()) cuts.push_back(size);
  const char* body = reinterpret_cast<const char*>(data) + 1 + sizes;
  const size_t length = size - 1 - sizes;

  const std::string path = "/api/v1/namespaces/default/pods";
  size_t events = 0;
  const bool stop_early = (data[0] & 8) != 0;  // the consumer ends the watch at the 2nd event
  const std::function<bool(stampede::kube::WatchEvent&)> on_event =
      [&](const stampede::kube::WatchEvent& event) {
        CHECK(event.type != "ERROR");
        ++events;
        return !(stop_early && events == 2);
      };
  stampede::kube::WatchStream stream(path, on_event);
  stream.http_status = (data[0] & 16) != 0 ? 410 : 200;
  size_t at = 0, cut = 0;
  bool open = true;
  while (open && at < length) {
    const size_t n = std::min(cuts[cut++ % cuts.size()], length - at);
    open = stream.Receive(body + at, n);
    at += n;
    CHECK(stream.buffered() <= stampede::kube::kMaxWatchLine);
  }
  if (open) stream.Finish();
  if (stream.http_status != 200) {
    CHECK(events == 0);
    CHECK(stream.error_body.size() <= stampede::kube::kMaxErrorBody);
  }
  if (stream.stopped) CHECK(stop_early && events == 2 && stream.result.ok());
  return 0;
}
