// A target URL as the engine and the policy read it: http or https, a host (name or IP literal),
// a port and a path. Pure and thread-safe.
#ifndef STAMPEDE_COMMON_URL_H_
#define STAMPEDE_COMMON_URL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace stampede::common {

struct Url {
  bool tls = false;
  std::string host;  // without brackets for IPv6 literals
  uint16_t port = 0;
  std::string path;  // starts with '/', query included
  // Value for the Host header: host, bracketed if IPv6, with the port when it is not the default.
  std::string HostHeader() const;
};

// Parses "http://host[:port][/path]" or "https://...". InvalidArgument names what is wrong.
absl::StatusOr<Url> ParseUrl(const std::string& text);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_URL_H_
