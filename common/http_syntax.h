// The HTTP syntax rules Stampede checks in more than one place (the spec validator, the engine's
// request preparation, the controller's request parser), written once. Header-only and
// dependency-free, so the fuzzed parsers can use it too. Pure.
#ifndef STAMPEDE_COMMON_HTTP_SYNTAX_H_
#define STAMPEDE_COMMON_HTTP_SYNTAX_H_

#include <string>
#include <string_view>

namespace stampede::common {

// RFC 9110 tchar: what methods and header names are made of.
inline bool IsTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

inline bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// ASCII lowercase (header names, tokens); other bytes unchanged.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Without the spaces and tabs around it (HTTP's optional white space).
inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Control characters other than tab (what a header value must not hold).
inline bool HasControl(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return true;
  }
  return false;
}

// One rule for request paths (and their query): only what RFC 3986 allows unencoded there,
// unreserved, sub-delims, ':', '@', '/', '?', and '%' with two hex digits. A space, a control
// character, a '#' (a fragment never goes on the wire), '"', '<', '>', '\', '^', '`', '{', '|',
// '}' and any byte of raw UTF-8 must be percent-encoded. Returns what is wrong, or "" when the
// path is fine.
inline std::string PathProblem(std::string_view path) {
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  for (size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '%') {
      if (i + 2 >= path.size() || !hex(path[i + 1]) || !hex(path[i + 2])) {
        return "has a % that is not followed by two hex digits (write %25 for a percent sign)";
      }
      i += 2;
      continue;
    }
    const bool allowed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                         (c >= 'A' && c <= 'Z') ||
                         std::string_view("-._~!$&'()*+,;=:@/?").find(static_cast<char>(c)) !=
                             std::string_view::npos;
    if (allowed) continue;
    if (c == '#') return "has a '#': a fragment is never sent to a server; remove it, or write %23";
    if (c == ' ') return "has a space (encode it as %20)";
    if (c >= 0x80) return "has raw non-ASCII bytes (percent-encode them, e.g. \"é\" as %C3%A9)";
    if (c < 0x20 || c == 0x7f) return "has control characters (percent-encode them)";
    return std::string("has '") + static_cast<char>(c) + "', which must be percent-encoded";
  }
  return "";
}

// Whether `content_type` (a Content-Type header) is one a LoadTest may come as:
// application/json, application/yaml, application/x-yaml, or an application/*+json or *+yaml type
// (RFC 6839), with any parameters, any case.
inline bool IsLoadTestMediaType(std::string_view content_type) {
  const std::string type = AsciiLower(TrimOws(content_type.substr(0, content_type.find(';'))));
  if (type == "application/json" || type == "application/yaml" || type == "application/x-yaml")
    return true;
  constexpr std::string_view kPrefix = "application/";
  if (type.compare(0, kPrefix.size(), kPrefix) != 0 ||
      type.find('/', kPrefix.size()) != std::string::npos) {
    return false;
  }
  auto ends_with = [&](std::string_view suffix) {
    return type.size() > kPrefix.size() + suffix.size() &&
           type.compare(type.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("+json") || ends_with("+yaml");
}

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_HTTP_SYNTAX_H_
