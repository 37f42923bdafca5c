#include "controller/kube/api_status.h"

#include "absl/strings/str_cat.h"
#include "controller/kube/api.h"

namespace stampede::kube {
namespace {

// The apiserver's Status.message when the body is a Status, else the body itself (shortened).
std::string ServerMessage(const std::string& body) {
  Json status = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object() && status.contains("message") && status["message"].is_string()) {
    return status["message"].get<std::string>();
  }
  return body.size() > 200 ? body.substr(0, 200) + "..." : body;
}

std::string ServerReason(const std::string& body) {
  Json status = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object() && status.contains("reason") && status["reason"].is_string()) {
    return status["reason"].get<std::string>();
  }
  return "";
}

}  // namespace

bool Retryable(int http_status) { return http_status == 429 || http_status >= 500; }

absl::Status StatusFromHttp(const std::string& method, const std::string& path, int http_status,
                            const std::string& body) {
  const std::string message = ServerMessage(body);
  auto make = [&](absl::StatusCode code, const char* what) {
    return absl::Status(code, absl::StrCat(method, " ", path, ": HTTP ", http_status, " ", what,
                                           message.empty() ? "" : ": ", message));
  };
  switch (http_status) {
    case 401:
      return make(absl::StatusCode::kUnauthenticated, "Unauthorized");
    case 403:
      return make(absl::StatusCode::kPermissionDenied, "Forbidden");
    case 404:
      return make(absl::StatusCode::kNotFound, "Not Found");
    case 409:
      return ServerReason(body) == "AlreadyExists"
                 ? make(absl::StatusCode::kAlreadyExists, "AlreadyExists")
                 : make(absl::StatusCode::kAborted, "Conflict");
    case 410:
      return make(absl::StatusCode::kFailedPrecondition, "Gone (expired, list again)");
    default:
      break;
  }
  if (Retryable(http_status)) return make(absl::StatusCode::kUnavailable, "(overloaded or down)");
  if (http_status >= 400 && http_status < 500) {
    return make(absl::StatusCode::kInvalidArgument, "(invalid request)");
  }
  return make(absl::StatusCode::kUnknown, "(unexpected)");
}

}  // namespace stampede::kube
