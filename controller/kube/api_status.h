// What an API server's answer means to the caller: an HTTP status and its body (a Status object
// or anything else) as an absl::Status whose code says what to do (NotFound, AlreadyExists,
// Aborted for a conflict, FailedPrecondition for 410 Gone, Unavailable for 429 and 5xx...) and
// whose message names the method, the path and the server's own words. Shared by the REST calls
// and the watch stream. Thread-safe (no state).
#ifndef STAMPEDE_CONTROLLER_KUBE_API_STATUS_H_
#define STAMPEDE_CONTROLLER_KUBE_API_STATUS_H_

#include <string>

#include "absl/status/status.h"

namespace stampede::kube {

absl::Status StatusFromHttp(const std::string& method, const std::string& path, int http_status,
                            const std::string& body);
// 429 and 5xx: worth another try after a backoff.
bool Retryable(int http_status);

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_API_STATUS_H_
