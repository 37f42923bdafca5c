#include "agent/target.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede::agent {
namespace {

using ::testing::HasSubstr;

Url MustParse(const std::string& text) {
  const absl::StatusOr<Url> url = ParseUrl(text);
  EXPECT_TRUE(url.ok()) << text << ": " << url.status();
  return url.ok() ? *url : Url{};
}

TEST(ParseUrlTest, AcceptsValidUrls) {
  const struct {
    const char* text;
    bool tls;
    const char* host;
    uint16_t port;
    const char* path;
    const char* host_header;
  } cases[] = {
      {"http://example.com", false, "example.com", 80, "/", "example.com"},
      {"https://example.com", true, "example.com", 443, "/", "example.com"},
      {"http://example.com:8080", false, "example.com", 8080, "/", "example.com:8080"},
      {"https://example.com:8443/", true, "example.com", 8443, "/", "example.com:8443"},
      {"http://example.com:443/", false, "example.com", 443, "/", "example.com:443"},
      {"https://example.com:80/", true, "example.com", 80, "/", "example.com:80"},
      {"http://example.com:80/", false, "example.com", 80, "/", "example.com"},
      {"http://10.0.0.1:65535/a/b?c=d&e", false, "10.0.0.1", 65535, "/a/b?c=d&e", "10.0.0.1:65535"},
      {"http://example.com?q=1", false, "example.com", 80, "/?q=1", "example.com"},
      {"http://[::1]:8080/x", false, "::1", 8080, "/x", "[::1]:8080"},
      {"https://[2001:db8::1]/", true, "2001:db8::1", 443, "/", "[2001:db8::1]"},
  };
  for (const auto& c : cases) {
    const Url url = MustParse(c.text);
    EXPECT_EQ(url.tls, c.tls) << c.text;
    EXPECT_EQ(url.host, c.host) << c.text;
    EXPECT_EQ(url.port, c.port) << c.text;
    EXPECT_EQ(url.path, c.path) << c.text;
    EXPECT_EQ(url.HostHeader(), c.host_header) << c.text;
  }
}

TEST(ParseUrlTest, RejectsInvalidUrlsNamingThem) {
  const struct {
    const char* text;
    const char* reason;
  } cases[] = {
      {"example.com/x", "http://"},          {"ftp://example.com/", "http://"},
      {"//example.com/", "http://"},         {"http://", "no host"},
      {"http:///path", "no host"},           {"http://:8080/", "no host"},
      {"http://[]:80/", "no host"},          {"http://example.com:0/", "port"},
      {"http://example.com:65536/", "port"}, {"http://example.com:http/", "port"},
      {"http://example.com:-1/", "port"},    {"http://[::1/", "["},
      {"http://[::1]8080/", "host"},         {"http://user:pw@example.com/", "credentials"},
      {"http://example.com/a b", "path"},    {"http://example.com/a\r\nX: y", "path"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<Url> url = ParseUrl(c.text);
    ASSERT_FALSE(url.ok()) << c.text;
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(url.status().message()), HasSubstr(c.text));
    EXPECT_THAT(std::string(url.status().message()), HasSubstr(c.reason)) << c.text;
  }
}

TEST(ParseUrlTest, RejectsSpacesAndControlCharactersInTheHost) {
  // The host goes into the Host header verbatim: CR LF there would inject header lines.
  for (const char* text :
       {"http://evil\r\nX-Injected: 1/", "http://exa mple.com/", "http://[::1\n]:80/"}) {
    const absl::StatusOr<Url> url = ParseUrl(text);
    EXPECT_FALSE(url.ok()) << "accepted host \"" << (url.ok() ? url->host : "") << "\"";
    if (!url.ok()) {
      EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

std::vector<PreparedRequest> MustPrepare(const std::string& url,
                                         const std::vector<RequestSpec>& specs) {
  const absl::StatusOr<std::vector<PreparedRequest>> prepared =
      PrepareRequests(MustParse(url), specs);
  EXPECT_TRUE(prepared.ok()) << prepared.status();
  return prepared.ok() ? *prepared : std::vector<PreparedRequest>{};
}

TEST(PrepareRequestsTest, SerializesAGet) {
  RequestSpec spec;
  spec.path = "/users?id=7";
  const auto prepared = MustPrepare("http://example.com:8080/api", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_EQ(prepared[0].wire,
            "GET /api/users?id=7 HTTP/1.1\r\n"
            "Host: example.com:8080\r\n"
            "User-Agent: stampede/0.1\r\n"
            "\r\n");
  EXPECT_EQ(prepared[0].name, "GET /api/users?id=7");
  EXPECT_FALSE(prepared[0].head);
  EXPECT_EQ(prepared[0].weight, 1u);
}

TEST(PrepareRequestsTest, SerializesAPostWithHeadersAndBody) {
  RequestSpec spec;
  spec.name = "create";
  spec.method = "POST";
  spec.path = "/items";
  spec.headers = {{"Content-Type", "application/json"}, {"X-Trace", "a\tb"}};
  spec.body = R"({"n":1})";
  spec.weight = 3;
  const auto prepared = MustPrepare("https://example.com/", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_EQ(prepared[0].wire,
            "POST /items HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "User-Agent: stampede/0.1\r\n"
            "Content-Type: application/json\r\n"
            "X-Trace: a\tb\r\n"
            "Content-Length: 7\r\n"
            "\r\n"
            R"({"n":1})");
  EXPECT_EQ(prepared[0].name, "create");
  EXPECT_EQ(prepared[0].weight, 3u);
}

TEST(PrepareRequestsTest, EmptyPostStillSendsContentLength) {
  RequestSpec spec;
  spec.method = "PUT";
  const auto prepared = MustPrepare("http://h/", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_EQ(prepared[0].wire,
            "PUT / HTTP/1.1\r\nHost: h\r\nUser-Agent: stampede/0.1\r\nContent-Length: 0\r\n\r\n");
}

TEST(PrepareRequestsTest, AGivenHostIsNotDuplicated) {
  RequestSpec spec;
  spec.method = "POST";
  spec.headers = {{"host", "virtual.example"}};
  spec.body = "hi";
  const auto prepared = MustPrepare("http://10.0.0.1:8080/", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_EQ(prepared[0].wire,
            "POST / HTTP/1.1\r\n"
            "User-Agent: stampede/0.1\r\n"
            "host: virtual.example\r\n"
            "Content-Length: 2\r\n"
            "\r\n"
            "hi");
}

TEST(PrepareRequestsTest, TheBodysFramingIsStampedesAlone) {
  // A user's Content-Length (like Transfer-Encoding) would misframe every request on a kept-alive
  // connection once the body differs (issue 9).
  for (const char* header : {"CONTENT-LENGTH", "Transfer-Encoding"}) {
    RequestSpec spec;
    spec.method = "POST";
    spec.headers = {{header, "2"}};
    spec.body = "hi";
    const auto prepared = PrepareRequests(MustParse("http://h/"), {spec});
    ASSERT_FALSE(prepared.ok()) << header;
    EXPECT_EQ(prepared.status().message(),
              absl::StrCat("requests[0].headers: ", header, " is set by stampede"));
  }
}

TEST(PrepareRequestsTest, OnePathRuleForFragmentsSpacesAndRawUtf8) {
  for (const char* path : {"/a#frag", "/a b", "/caf\xc3\xa9", "/a%zz"}) {
    RequestSpec spec;
    spec.path = path;
    const auto prepared = PrepareRequests(MustParse("http://h/"), {spec});
    EXPECT_FALSE(prepared.ok()) << path << " went out on the wire";
  }
  EXPECT_FALSE(ParseUrl("http://h/x#top").ok());
  RequestSpec encoded;
  encoded.path = "/caf%C3%A9?q=a%20b";
  EXPECT_EQ(MustPrepare("http://h/", {encoded}).size(), 1u);
}

TEST(PrepareRequestsTest, HeadRequestsAreMarked) {
  RequestSpec spec;
  spec.method = "HEAD";
  const auto prepared = MustPrepare("http://h/", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_TRUE(prepared[0].head);
}

TEST(PrepareRequestsTest, TargetPathIsAPrefix) {
  const struct {
    const char* url;
    const char* path;
    const char* want;
  } cases[] = {
      {"http://h/api", "/users", "GET /api/users HTTP/1.1\r\n"},
      {"http://h/api/", "/users", "GET /api/users HTTP/1.1\r\n"},
      {"http://h", "/users", "GET /users HTTP/1.1\r\n"},
      {"http://h/", "/", "GET / HTTP/1.1\r\n"},
      {"http://h/api", "", "GET /api HTTP/1.1\r\n"},
      {"http://h/api/", "", "GET /api/ HTTP/1.1\r\n"},
  };
  for (const auto& c : cases) {
    RequestSpec spec;
    spec.path = c.path;
    const auto prepared = MustPrepare(c.url, {spec});
    ASSERT_EQ(prepared.size(), 1u);
    EXPECT_EQ(prepared[0].wire.rfind(c.want, 0), 0u)
        << c.url << " + " << c.path << " gave " << prepared[0].wire;
  }
}

TEST(PrepareRequestsTest, ExpectedDefaultsTo100To399) {
  const auto prepared = MustPrepare("http://h/", {RequestSpec{}});
  ASSERT_EQ(prepared.size(), 1u);
  const PreparedRequest& r = prepared[0];
  for (int status : {100, 101, 200, 204, 302, 304, 399}) EXPECT_TRUE(r.Expected(status)) << status;
  for (int status : {-1, 0, 99, 400, 404, 500, 599, 639, 640, 999}) {
    EXPECT_FALSE(r.Expected(status)) << status;
  }
}

TEST(PrepareRequestsTest, ExpectedHonoursExpectStatus) {
  RequestSpec spec;
  spec.expect_status = {200, 404, 599};
  const auto prepared = MustPrepare("http://h/", {spec});
  ASSERT_EQ(prepared.size(), 1u);
  const PreparedRequest& r = prepared[0];
  for (int status : {200, 404, 599}) EXPECT_TRUE(r.Expected(status)) << status;
  for (int status : {100, 201, 204, 302, 400, 500, 598}) EXPECT_FALSE(r.Expected(status)) << status;
}

TEST(PrepareRequestsTest, PreparesEveryRequestInOrder) {
  RequestSpec a, b;
  a.path = "/a";
  b.path = "/b";
  b.weight = 5;
  const auto prepared = MustPrepare("http://h/", {a, b});
  ASSERT_EQ(prepared.size(), 2u);
  EXPECT_EQ(prepared[0].name, "GET /a");
  EXPECT_EQ(prepared[1].name, "GET /b");
  EXPECT_EQ(prepared[1].weight, 5u);
}

TEST(PrepareRequestsTest, ErrorsNameTheRequestAndField) {
  const struct {
    const char* what;
    void (*spoil)(RequestSpec&);
    const char* field;
  } cases[] = {
      {"method with a space", [](RequestSpec& r) { r.method = "GE T"; }, "requests[1].method"},
      {"empty method", [](RequestSpec& r) { r.method = ""; }, "requests[1].method"},
      {"header name with a space",
       [](RequestSpec& r) {
         r.headers = {{"X Bad", "1"}};
       },
       "requests[1].headers"},
      {"empty header name",
       [](RequestSpec& r) {
         r.headers = {{"", "1"}};
       },
       "requests[1].headers"},
      {"CR LF in a header value",
       [](RequestSpec& r) {
         r.headers = {{"X-Inject", "a\r\nEvil: 1"}};
       },
       "requests[1].headers.X-Inject"},
      {"LF in a header value",
       [](RequestSpec& r) {
         r.headers = {{"X-Inject", "a\nb"}};
       },
       "requests[1].headers.X-Inject"},
      {"Transfer-Encoding header",
       [](RequestSpec& r) {
         r.headers = {{"Transfer-Encoding", "chunked"}};
       },
       "requests[1].headers"},
      {"path without /", [](RequestSpec& r) { r.path = "users"; }, "requests[1].path"},
      {"path with a space", [](RequestSpec& r) { r.path = "/a b"; }, "requests[1].path"},
      {"weight 0", [](RequestSpec& r) { r.weight = 0; }, "requests[1].weight"},
      {"expect_status 700",
       [](RequestSpec& r) {
         r.expect_status = {200, 700};
       },
       "requests[1].expectStatus"},
      {"expect_status 99", [](RequestSpec& r) { r.expect_status = {99}; },
       "requests[1].expectStatus"},
  };
  for (const auto& c : cases) {
    RequestSpec bad;
    c.spoil(bad);
    const auto prepared = PrepareRequests(MustParse("http://h/"), {RequestSpec{}, bad});
    ASSERT_FALSE(prepared.ok()) << c.what;
    EXPECT_EQ(prepared.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(prepared.status().message()), HasSubstr(c.field)) << c.what;
  }
}

TEST(PrepareRequestsTest, NoRequestsIsAnError) {
  const auto prepared = PrepareRequests(MustParse("http://h/"), {});
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(prepared.status().message()), HasSubstr("requests"));
}

}  // namespace
}  // namespace stampede::agent
