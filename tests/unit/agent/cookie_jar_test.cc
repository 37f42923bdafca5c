#include "agent/cookie_jar.h"

#include <gtest/gtest.h>

#include <string>

namespace stampede::agent {
namespace {

using Stored = CookieJar::Stored;
constexpr int64_t kNow = 1'790'000'000;  // 2026-09-21

std::string Cookies(const CookieJar& jar, const std::string& path, bool secure = false,
                    int64_t now = kNow) {
  std::string out;
  const bool any = jar.AppendCookies(path, secure, now, &out);
  EXPECT_EQ(any, !out.empty());
  return out;
}

TEST(CookieJarTest, ASessionCookieGoesBackOnEveryLaterRequest) {
  CookieJar jar;
  EXPECT_EQ(jar.Set("session=abc123; Path=/; HttpOnly; SameSite=Lax", "/api/login", kNow),
            Stored::kStored);
  EXPECT_EQ(Cookies(jar, "/api/cart"), "session=abc123");
  EXPECT_EQ(Cookies(jar, "/"), "session=abc123");
  // The same name and path replaces it.
  EXPECT_EQ(jar.Set("session=def456; Path=/", "/api/refresh", kNow), Stored::kStored);
  EXPECT_EQ(Cookies(jar, "/api/cart"), "session=def456");
  EXPECT_EQ(jar.size(), 1u);
}

TEST(CookieJarTest, PathsFollowRfc6265) {
  EXPECT_EQ(DefaultCookiePath("/api/login"), "/api");
  EXPECT_EQ(DefaultCookiePath("/login"), "/");
  EXPECT_EQ(DefaultCookiePath(""), "/");
  EXPECT_TRUE(CookiePathMatches("/api", "/api"));
  EXPECT_TRUE(CookiePathMatches("/api", "/api/cart"));
  EXPECT_TRUE(CookiePathMatches("/api/", "/api/cart"));
  EXPECT_FALSE(CookiePathMatches("/api", "/apix"));
  EXPECT_FALSE(CookiePathMatches("/api/cart", "/api"));

  CookieJar jar;
  jar.Set("a=1", "/api/login", kNow);  // default path /api
  jar.Set("b=2; Path=/api/cart", "/", kNow);
  jar.Set("c=3; Path=nonsense", "/shop/x", kNow);  // a bad Path: the default, /shop
  EXPECT_EQ(Cookies(jar, "/api/cart/items"), "b=2; a=1") << "the longer path first";
  EXPECT_EQ(Cookies(jar, "/api/other"), "a=1");
  EXPECT_EQ(Cookies(jar, "/shop/y"), "c=3");
  EXPECT_EQ(Cookies(jar, "/"), "");
}

TEST(CookieJarTest, MaxAgeAndExpiresEndACookieAndMaxAgeWins) {
  CookieJar jar;
  EXPECT_EQ(jar.Set("short=1; Max-Age=60", "/", kNow), Stored::kStored);
  EXPECT_EQ(jar.Set("dated=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "/", kNow), Stored::kStored);
  EXPECT_EQ(jar.Set("both=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=3600", "/", kNow),
            Stored::kStored)
      << "Max-Age wins over a past Expires";
  EXPECT_EQ(Cookies(jar, "/"), "short=1; dated=1; both=1");
  EXPECT_EQ(Cookies(jar, "/", false, kNow + 61), "dated=1; both=1");
  EXPECT_EQ(Cookies(jar, "/", false, kNow + 3601), "dated=1");
  EXPECT_EQ(Cookies(jar, "/", false, 1'795'000'000), "") << "past 2026-10-21";
  // Deleting: Max-Age=0, or an Expires in the past.
  EXPECT_EQ(jar.Set("short=; Max-Age=0", "/", kNow), Stored::kDeleted);
  EXPECT_EQ(jar.Set("dated=x; Expires=Thu, 01-Jan-1970 00:00:01 GMT", "/", kNow), Stored::kDeleted);
  EXPECT_EQ(Cookies(jar, "/"), "both=1");
  EXPECT_EQ(jar.size(), 1u);
  // An Expires that does not parse is left out, as browsers do.
  EXPECT_EQ(jar.Set("odd=1; Expires=tomorrow", "/", kNow), Stored::kStored);
  EXPECT_EQ(Cookies(jar, "/", false, kNow + 1'000'000'000), "odd=1") << "no expiry: kept";
}

TEST(CookieJarTest, SecureCookiesGoOnlyOverTls) {
  CookieJar jar;
  jar.Set("s=1; Secure", "/", kNow);
  jar.Set("p=2", "/", kNow);
  EXPECT_EQ(Cookies(jar, "/x", /*secure=*/false), "p=2");
  EXPECT_EQ(Cookies(jar, "/x", /*secure=*/true), "s=1; p=2");
}

TEST(CookieJarTest, WhatIsNotACookieIsIgnoredAndNothingCanInjectAHeader) {
  CookieJar jar;
  EXPECT_EQ(jar.Set("no-equals-sign", "/", kNow), Stored::kIgnored);
  EXPECT_EQ(jar.Set("=value", "/", kNow), Stored::kIgnored);
  EXPECT_EQ(jar.Set("bad name=1", "/", kNow), Stored::kIgnored);
  EXPECT_EQ(jar.Set("a=1\r\nX-Admin: yes", "/", kNow), Stored::kIgnored);
  EXPECT_EQ(jar.Set("a=1,b=2", "/", kNow), Stored::kIgnored);
  EXPECT_EQ(jar.size(), 0u);
  EXPECT_EQ(Cookies(jar, "/"), "");
}

TEST(CookieJarTest, TheJarIsBoundedInCountAndBytes) {
  CookieJar jar;
  for (size_t i = 0; i < CookieJar::kMaxCookies; ++i) {
    EXPECT_EQ(jar.Set("c" + std::to_string(i) + "=v", "/", kNow), Stored::kStored);
  }
  EXPECT_EQ(jar.Set("one-more=v", "/", kNow), Stored::kFull);
  EXPECT_EQ(jar.Set("c3=replaced", "/", kNow), Stored::kStored) << "a replacement still fits";
  jar.Clear();
  EXPECT_EQ(jar.size(), 0u);
  const std::string big(CookieJar::kMaxBytes - 10, 'x');
  EXPECT_EQ(jar.Set("big=" + big, "/", kNow), Stored::kStored);
  EXPECT_EQ(jar.Set("more=" + std::string(20, 'y'), "/", kNow), Stored::kFull);
  EXPECT_EQ(jar.Set("big=small", "/", kNow), Stored::kStored);
  EXPECT_EQ(jar.Set("more=" + std::string(20, 'y'), "/", kNow), Stored::kStored)
      << "the smaller value freed the bytes";
}

}  // namespace
}  // namespace stampede::agent
