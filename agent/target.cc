#include "agent/target.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "common/http_syntax.h"

namespace stampede::agent {

using common::HasControl;
using common::IsToken;

ExpectedStatus ExpectedStatus::Of(const std::vector<int>& codes) {
  ExpectedStatus e;
  if (codes.empty()) {
    for (int s = 100; s < 400; ++s) e.Add(s);
  }
  for (int s : codes) e.Add(s);
  return e;
}

absl::StatusOr<std::vector<PreparedRequest>> PrepareRequests(
    const Url& target, const std::vector<RequestSpec>& specs) {
  if (specs.empty()) return absl::InvalidArgumentError("requests: at least one request is needed");
  std::vector<PreparedRequest> out;
  const std::string host = target.HostHeader();
  for (size_t i = 0; i < specs.size(); ++i) {
    const RequestSpec& spec = specs[i];
    const std::string where = absl::StrCat("requests[", i, "]");
    if (!IsToken(spec.method)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".method: \"", spec.method, "\" is not an HTTP method"));
    }
    std::string path = target.path;
    if (!spec.path.empty()) {
      if (spec.path[0] != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".path: \"", spec.path, "\" must start with /"));
      }
      // The target URL's path is a prefix and its query is kept:
      // "http://h/api?v=2" + "/users?id=1" = "/api/users?id=1&v=2".
      const size_t q = path.find('?');
      const std::string query = q == std::string::npos ? "" : path.substr(q + 1);
      if (q != std::string::npos) path.resize(q);
      if (!path.empty() && path.back() == '/') path.pop_back();
      path += spec.path;
      if (!query.empty())
        absl::StrAppend(&path, spec.path.find('?') == std::string::npos ? "?" : "&", query);
    }
    if (const std::string problem = common::PathProblem(path); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".path: \"", path, "\" ", problem));
    }
    PreparedRequest req;
    req.name = spec.name.empty() ? absl::StrCat(spec.method, " ", path) : spec.name;
    req.head = spec.method == "HEAD";
    bool has_host = false;
    std::string headers;
    for (const auto& [name, value] : spec.headers) {
      if (!IsToken(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".headers: \"", name, "\" is not a header name"));
      }
      if (HasControl(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".headers.", name, ": control characters in value"));
      }
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "host") has_host = true;
      // The body's framing is ours: a user's value would make every request on a kept-alive
      // connection misframed.
      if (lower == "transfer-encoding" || lower == "content-length") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".headers: ", name, " is set by stampede"));
      }
      absl::StrAppend(&headers, name, ": ", value, "\r\n");
    }
    req.wire = absl::StrCat(spec.method, " ", path, " HTTP/1.1\r\n");
    if (!has_host) absl::StrAppend(&req.wire, "Host: ", host, "\r\n");
    absl::StrAppend(&req.wire, "User-Agent: stampede/0.1\r\n", headers);
    if ((!spec.body.empty() || spec.method == "POST" || spec.method == "PUT" ||
         spec.method == "PATCH")) {
      absl::StrAppend(&req.wire, "Content-Length: ", spec.body.size(), "\r\n");
    }
    absl::StrAppend(&req.wire, "\r\n", spec.body);
    for (int s : spec.expect_status) {
      if (s < 100 || s > 599) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".expectStatus: ", s, " is not in 100..599"));
      }
    }
    req.expected = ExpectedStatus::Of(spec.expect_status);
    if (spec.weight == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".weight: must be > 0"));
    }
    req.weight = spec.weight;
    out.push_back(std::move(req));
  }
  return out;
}

}  // namespace stampede::agent
