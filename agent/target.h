// The target of a load test: a parsed base URL and the requests sent to it.
#ifndef STAMPEDE_AGENT_TARGET_H_
#define STAMPEDE_AGENT_TARGET_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/url.h"

namespace stampede::agent {

using common::ParseUrl;
using common::Url;

// One entry of the weighted request mix (Locust's tasks, k6's requests).
struct RequestSpec {
  std::string name;  // label in results; defaults to "METHOD path"
  std::string method = "GET";
  std::string path;  // appended to the target URL's path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint32_t weight = 1;
  // Status codes that count as success; empty means any code from 100 to 399.
  std::vector<int> expect_status;
};

// The status codes that count as success: a bit per code 0..639.
class ExpectedStatus {
 public:
  // `codes` in 100..599 (the callers validate them); empty: any of 100..399.
  static ExpectedStatus Of(const std::vector<int>& codes);
  bool Contains(int status) const {
    return status >= 0 && status < 640 && (mask_[status / 64] >> (status % 64)) & 1;
  }

 private:
  void Add(int status) { mask_[status / 64] |= uint64_t{1} << (status % 64); }
  uint64_t mask_[10] = {};
};

// A request ready to send: bytes serialized once, success test precomputed.
struct PreparedRequest {
  std::string name;
  std::string wire;  // complete HTTP/1.1 request
  bool head = false;
  uint32_t weight = 1;
  ExpectedStatus expected;

  bool Expected(int status) const { return expected.Contains(status); }
};

// Validates and serializes the mix; InvalidArgument names the offending request and field.
absl::StatusOr<std::vector<PreparedRequest>> PrepareRequests(const Url& target,
                                                             const std::vector<RequestSpec>& specs);

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_TARGET_H_
