#include "agent/target.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_syntax.h"

namespace stampede::agent {
namespace {

// Host names (RFC 1123 letters, digits, '-', '.', and '_' seen in the wild) or IPv6 literals.
bool ValidHost(const std::string& host, bool ipv6) {
  for (unsigned char c : host) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_') continue;
    if (ipv6 && (c == ':' || c == '%')) continue;
    return false;
  }
  return true;
}

using common::HasControl;
using common::IsToken;

}  // namespace

std::string Url::HostHeader() const {
  std::string h = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
  if ((tls && port != 443) || (!tls && port != 80)) absl::StrAppend(&h, ":", port);
  return h;
}

absl::StatusOr<Url> ParseUrl(const std::string& text) {
  Url url;
  std::string rest;
  if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else if (text.rfind("https://", 0) == 0) {
    url.tls = true;
    rest = text.substr(8);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("url \"", text, "\" must start with http:// or https://"));
  }
  const size_t slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  url.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (url.path[0] == '?') url.path = "/" + url.path;
  if (authority.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("url \"", text, "\": credentials in URLs are not supported"));
  }
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\": unclosed [ in host"));
    }
    url.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\": bad host"));
      }
      port_text = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.find(':');
    url.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty())
    return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\" has no host"));
  if (!ValidHost(url.host, !authority.empty() && authority[0] == '[')) {
    return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\": host \"", url.host,
                                                   "\" has characters a host name cannot have"));
  }
  if (port_text.empty()) {
    url.port = url.tls ? 443 : 80;
  } else {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("url \"", text, "\": port \"", port_text, "\" is not in 1..65535"));
    }
    url.port = static_cast<uint16_t>(port);
  }
  if (const std::string problem = common::PathProblem(url.path); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\": the path ", problem));
  }
  return url;
}

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
