// A virtual user's cookies (issue 13's scenarios): what the target's Set-Cookie headers store,
// sent back in a Cookie header on the user's later requests, as a browser would for one host
// (RFC 6265: path matching, Max-Age and Expires, Secure; a test has one target host, so Domain
// is accepted as it is). Bounded: at most kMaxCookies cookies of at most kMaxBytes in all; past
// that a new cookie is refused and counted by the caller. A jar lives in its user's slot on one
// worker thread: not thread-safe, and once its cookies are set, updating one of the same size
// does not allocate.
#ifndef STAMPEDE_AGENT_COOKIE_JAR_H_
#define STAMPEDE_AGENT_COOKIE_JAR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace stampede::agent {

class CookieJar {
 public:
  static constexpr size_t kMaxCookies = 16;
  static constexpr size_t kMaxBytes = 4096;  // names and values together

  enum class Stored {
    kStored,   // new, or replacing one of the same name and path
    kDeleted,  // Max-Age <= 0 or an Expires in the past removed it (or there was none)
    kIgnored,  // not a cookie: no "=", an empty name, a name that is not a token
    kFull,     // over kMaxCookies or kMaxBytes: refused
  };

  // Takes one Set-Cookie header value from the answer to a request for `request_path` (its path,
  // without the query), received at `now_s` (Unix seconds).
  Stored Set(absl::string_view set_cookie, absl::string_view request_path, int64_t now_s);

  // Appends "a=1; b=2" (no header name) of the cookies a request for `request_path` carries at
  // `now_s`, over TLS or not, most specific path first; false (nothing appended) when none.
  bool AppendCookies(absl::string_view request_path, bool secure, int64_t now_s,
                     std::string* out) const;

  void Clear();
  size_t size() const { return cookies_.size(); }

 private:
  struct Cookie {
    std::string name, value, path;
    int64_t expires_s = INT64_MAX;
    bool secure = false;
  };
  std::vector<Cookie> cookies_;
  size_t bytes_ = 0;
};

// RFC 6265 5.1.4: whether a cookie of path `cookie_path` goes with a request for `request_path`.
bool CookiePathMatches(absl::string_view cookie_path, absl::string_view request_path);
// RFC 6265 5.1.4: the path a cookie without a Path attribute gets from its request's path.
std::string DefaultCookiePath(absl::string_view request_path);

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_COOKIE_JAR_H_
