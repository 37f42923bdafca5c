// "host:port" addresses as flags and listeners take them.
#ifndef STAMPEDE_COMMON_HOST_PORT_H_
#define STAMPEDE_COMMON_HOST_PORT_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace stampede::common {

// "host:port", "[v6]:port" or ":port" (all interfaces: the host is then "0.0.0.0"); the port is
// 0..65535, 0 meaning any free one. InvalidArgument `"x" is not host:port` when malformed.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_HOST_PORT_H_
