// libFuzzer target for H2Session (agent/h2_session.h): arbitrary bytes from the server, through
// nghttp2's frame and HPACK handling into our callbacks.
//
// Input layout: byte 0 is the read size (0: everything in one read, else 1..255 bytes per read);
// the rest is what the server sent. The client writes its preface and its first request (h2_fuzz.h:
// GET, POST with a body larger than the window, HEAD in turn, stream ids 1, 3, 5...); after every
// read it writes what it has, its clock moves on 300 ms (so deadlines and flow-control stalls
// fire), and it submits while the connection takes streams. The input ends with the connection
// lost. Checked: every stream submitted ends exactly once, with an outcome and
// a status in range, and nothing is left open; streams submitted with `deliver` (odd tags), and
// only they, hand over one final :status, then fields, then DATA that adds up to the end's count,
// all before their end.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "agent/h2_session.h"
#include "tests/fuzz/h2_fuzz.h"

namespace {

using stampede::agent::H2Session;
using stampede::agent::H2StreamEnd;
using stampede::common::Outcome;

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

class Ends : public H2Session::Listener {
 public:
  void OnStreamEnd(const H2StreamEnd& end) override {
    CHECK(end.tag < ended.size());
    CHECK(!ended[end.tag]);
    ended[end.tag] = true;
    CHECK(end.outcome < Outcome::kCount);
    CHECK(end.status == 0 || (end.status >= 100 && end.status <= 999));
    // A stream that asked for its response got all of its DATA, after one final :status.
    if (end.tag % 2 == 1) {
      CHECK(data[end.tag] == end.body_bytes);
      CHECK(statuses[end.tag] <= 1);
      CHECK(statuses[end.tag] == 0 || end.status >= 200);
    }
  }
  void OnResponseStatus(uint64_t tag, int status) override {
    Delivered(tag);
    CHECK(status >= 200 && status <= 999);
    ++statuses[tag];
  }
  void OnResponseHeader(uint64_t tag, std::string_view name, std::string_view) override {
    Delivered(tag);
    CHECK(statuses[tag] == 1);
    CHECK(!name.empty() && name[0] != ':');
  }
  void OnResponseData(uint64_t tag, const uint8_t*, size_t size) override {
    Delivered(tag);
    data[tag] += size;
  }
  // Only streams that asked, and only before their end.
  void Delivered(uint64_t tag) {
    CHECK(tag < ended.size());
    CHECK(tag % 2 == 1);
    CHECK(!ended[tag]);
  }
  std::vector<bool> ended = std::vector<bool>(stampede::h2_fuzz::kMaxRequests, false);
  std::vector<int> statuses = std::vector<int>(stampede::h2_fuzz::kMaxRequests, 0);
  std::vector<uint64_t> data = std::vector<uint64_t>(stampede::h2_fuzz::kMaxRequests, 0);
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t read_size = data[0] == 0 ? size : data[0];
  data += 1;
  size -= 1;

  static const stampede::h2_fuzz::Requests* requests = new stampede::h2_fuzz::Requests();
  Ends ends;
  std::unique_ptr<H2Session> session = stampede::h2_fuzz::NewClient(&ends);
  int64_t now = 1;
  uint64_t submitted = 0;
  stampede::h2_fuzz::SubmitMore(*session, *requests, &submitted, now);
  uint8_t sink[16384];
  while (session->Produce(sink, sizeof(sink), now) > 0) {
  }
  for (size_t offset = 0; offset < size; offset += read_size) {
    const size_t n = std::min(read_size, size - offset);
    session->Receive(data + offset, n, now);
    while (session->Produce(sink, sizeof(sink), now) > 0) {
    }
    now += 300'000'000;
    session->Tick(now);
    CHECK(session->NextDeadlineNs() > now);
    stampede::h2_fuzz::SubmitMore(*session, *requests, &submitted, now);
    CHECK(session->OpenStreams() <= stampede::h2_fuzz::kStreams);
  }
  session->ConnectionLost(Outcome::kClosed);
  CHECK(session->OpenStreams() == 0);
  CHECK(session->Finished());
  for (uint64_t tag = 0; tag < submitted; ++tag) CHECK(ends.ended[tag]);
  return 0;
}
