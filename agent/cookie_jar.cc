#include "agent/cookie_jar.h"

#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/http_syntax.h"

namespace stampede::agent {
namespace {

// A cookie value: no controls, no separators that would end it in a Cookie header.
bool IsCookieValue(absl::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f || c == ';' || c == ',') return false;
  }
  return true;
}

// An HTTP date (IMF-fixdate, or the old dashed form browsers still accept).
bool ParseHttpDate(absl::string_view text, int64_t* unix_s) {
  absl::Time t;
  std::string error;
  const std::string s(text);
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%a, %d-%b-%Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT"}) {
    if (absl::ParseTime(format, s, absl::UTCTimeZone(), &t, &error)) {
      *unix_s = absl::ToUnixSeconds(t);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string DefaultCookiePath(absl::string_view request_path) {
  if (request_path.empty() || request_path[0] != '/') return "/";
  const size_t last = request_path.rfind('/');
  if (last == 0) return "/";
  return std::string(request_path.substr(0, last));
}

bool CookiePathMatches(absl::string_view cookie_path, absl::string_view request_path) {
  if (cookie_path == request_path) return true;
  if (!absl::StartsWith(request_path, cookie_path)) return false;
  return cookie_path.back() == '/' || request_path[cookie_path.size()] == '/';
}

CookieJar::Stored CookieJar::Set(absl::string_view set_cookie, absl::string_view request_path,
                                 int64_t now_s) {
  const size_t semi = set_cookie.find(';');
  const absl::string_view pair = set_cookie.substr(0, semi);
  const size_t eq = pair.find('=');
  if (eq == absl::string_view::npos) return Stored::kIgnored;
  const absl::string_view name = absl::StripAsciiWhitespace(pair.substr(0, eq));
  const absl::string_view value = absl::StripAsciiWhitespace(pair.substr(eq + 1));
  // A cookie name is a token (RFC 6265 4.1.1).
  if (!common::IsToken(std::string_view(name.data(), name.size())) || !IsCookieValue(value))
    return Stored::kIgnored;

  std::string path = DefaultCookiePath(request_path);
  bool secure = false, has_max_age = false;
  int64_t expires = INT64_MAX;
  if (semi != absl::string_view::npos) {
    for (absl::string_view attribute : absl::StrSplit(set_cookie.substr(semi + 1), ';')) {
      const size_t aeq = attribute.find('=');
      const absl::string_view key = absl::StripAsciiWhitespace(attribute.substr(0, aeq));
      const absl::string_view v = aeq == absl::string_view::npos
                                      ? absl::string_view()
                                      : absl::StripAsciiWhitespace(attribute.substr(aeq + 1));
      if (absl::EqualsIgnoreCase(key, "max-age")) {
        int64_t seconds = 0;
        if (!v.empty() && (absl::ascii_isdigit(v[0]) || v[0] == '-') &&
            absl::SimpleAtoi(v, &seconds)) {
          has_max_age = true;  // it wins over Expires, wherever it is
          expires = seconds <= 0 ? INT64_MIN : now_s + seconds;
        }
      } else if (absl::EqualsIgnoreCase(key, "expires") && !has_max_age) {
        int64_t at = 0;
        if (ParseHttpDate(v, &at)) expires = at;
      } else if (absl::EqualsIgnoreCase(key, "path")) {
        path = !v.empty() && v[0] == '/' ? std::string(v) : DefaultCookiePath(request_path);
      } else if (absl::EqualsIgnoreCase(key, "secure")) {
        secure = true;
      }
    }
  }

  size_t found = cookies_.size();
  for (size_t i = 0; i < cookies_.size(); ++i) {
    if (cookies_[i].name == name && cookies_[i].path == path) found = i;
  }
  if (expires <= now_s) {
    if (found < cookies_.size()) {
      bytes_ -= cookies_[found].name.size() + cookies_[found].value.size();
      cookies_.erase(cookies_.begin() + static_cast<std::ptrdiff_t>(found));
    }
    return Stored::kDeleted;
  }
  const size_t old =
      found < cookies_.size() ? cookies_[found].name.size() + cookies_[found].value.size() : 0;
  if (bytes_ - old + name.size() + value.size() > kMaxBytes) return Stored::kFull;
  if (found == cookies_.size()) {
    if (cookies_.size() >= kMaxCookies) return Stored::kFull;
    cookies_.emplace_back();
    cookies_.back().name.assign(name.data(), name.size());
    cookies_.back().path = std::move(path);
  }
  Cookie& c = cookies_[found];
  c.value.assign(value.data(), value.size());  // reuses its capacity
  c.expires_s = expires;
  c.secure = secure;
  bytes_ = bytes_ - old + name.size() + value.size();
  return Stored::kStored;
}

bool CookieJar::AppendCookies(absl::string_view request_path, bool secure, int64_t now_s,
                              std::string* out) const {
  // Longer paths first, then in the order they were stored (RFC 6265 5.4), without allocating.
  std::array<uint8_t, kMaxCookies> order{};
  size_t n = 0;
  for (size_t i = 0; i < cookies_.size(); ++i) {
    const Cookie& c = cookies_[i];
    if (c.expires_s <= now_s || (c.secure && !secure) || !CookiePathMatches(c.path, request_path))
      continue;
    size_t at = n++;
    while (at > 0 && cookies_[order[at - 1]].path.size() < c.path.size()) {
      order[at] = order[at - 1];
      --at;
    }
    order[at] = static_cast<uint8_t>(i);
  }
  for (size_t k = 0; k < n; ++k) {
    if (k > 0) out->append("; ");
    const Cookie& c = cookies_[order[k]];
    out->append(c.name).append("=").append(c.value);
  }
  return n > 0;
}

void CookieJar::Clear() {
  cookies_.clear();
  bytes_ = 0;
}

}  // namespace stampede::agent
