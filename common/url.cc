#include "common/url.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_syntax.h"

namespace stampede::common {
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
  if (const std::string problem = PathProblem(url.path); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("url \"", text, "\": the path ", problem));
  }
  return url;
}

}  // namespace stampede::common
