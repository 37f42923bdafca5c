// The client side h2_session_fuzz and its seed writer share, so that the seeds' stream ids match.
#ifndef STAMPEDE_TESTS_FUZZ_H2_FUZZ_H_
#define STAMPEDE_TESTS_FUZZ_H2_FUZZ_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "agent/h2_session.h"

namespace stampede::h2_fuzz {

inline constexpr uint64_t kMaxRequests = 64;
inline constexpr uint32_t kStreams = 4;

inline agent::H2Request Make(const std::string& wire) {
  absl::StatusOr<agent::H2Request> r =
      agent::H2Request::FromHttp1(wire, false, agent::ExpectedStatus::Of({}));
  if (!r.ok()) std::abort();
  return std::move(*r);
}

// A GET, a POST whose body (70000 bytes) is larger than the initial window, and a HEAD. The fuzz
// target uses the default paths; the seed writer varies them to make the server misbehave.
struct Requests {
  explicit Requests(const std::string& get_path = "/", const std::string& post_path = "/rst",
                    const std::string& head_path = "/goaway")
      : get(Make("GET " + get_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")),
        post(Make("POST " + post_path +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n" +
                  std::string(70000, 'x'))),
        head(Make("HEAD " + head_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) {}
  agent::H2Request get, post, head;
};

inline std::unique_ptr<agent::H2Session> NewClient(agent::H2Session::Listener* listener) {
  agent::H2SessionOptions options;
  options.max_concurrent_streams = kStreams;
  options.flow_control_stall_ns = 1'000'000'000;
  absl::StatusOr<std::unique_ptr<agent::H2Session>> s = agent::H2Session::Create(options, listener);
  if (!s.ok()) std::abort();
  return std::move(*s);
}

// Submits the next requests (GET, POST, HEAD in turn, tags from *submitted on; odd tags with
// `deliver`) while the session takes them: one before the server's SETTINGS, then up to its limit.
inline void SubmitMore(agent::H2Session& session, const Requests& r, uint64_t* submitted,
                       int64_t now) {
  while (*submitted < kMaxRequests) {
    const agent::H2Request& next = *submitted % 3 == 0   ? r.get
                                   : *submitted % 3 == 1 ? r.post
                                                         : r.head;
    const bool deliver = *submitted % 2 == 1;  // odd tags hand their responses over
    if (!session.Submit(next, *submitted, now + 5'000'000'000, now, deliver)) return;
    ++*submitted;
  }
}

}  // namespace stampede::h2_fuzz

#endif  // STAMPEDE_TESTS_FUZZ_H2_FUZZ_H_
