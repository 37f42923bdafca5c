// The request parser fed whole, in every 2-way split and byte by byte; its bounds and refusals.
#include "controller/http_request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stampede::controller {
namespace {

using State = HttpRequestParser::State;

constexpr size_t kHead = 1024, kBody = 4096;

// Feeds `wire` in pieces of at most `piece` bytes (0: whole) until a request is done or refused;
// returns the bytes used.
size_t FeedIn(HttpRequestParser& p, const std::string& wire, size_t piece) {
  size_t at = 0;
  while (at < wire.size() && (p.state() == State::kHead || p.state() == State::kBody)) {
    const size_t n = piece == 0 ? wire.size() - at : std::min(piece, wire.size() - at);
    const size_t used = p.Feed(std::string_view(wire).substr(at, n));
    at += used;
    if (used < n) break;
  }
  return at;
}

struct Case {
  std::string wire;
  std::string method, path, query, body;
  bool keep_alive;
};

std::vector<Case> GoodRequests() {
  return {
      {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/healthz", "", "", true},
      {"GET /api/v1/loadtests/a/results?format=csv&x=1 HTTP/1.1\r\nHost: x\r\n\r\n", "GET",
       "/api/v1/loadtests/a/results", "format=csv&x=1", "", true},
      {"POST /api/v1/loadtests HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
       "POST", "/api/v1/loadtests", "", "hello world", true},
      {"POST /p HTTP/1.1\r\nContent-Length: 9\r\n\r\nkind:\n x\n", "POST", "/p", "", "kind:\n x\n",
       true},  // LFs in a body
      {"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n "
       "world\r\n0\r\nX-T: 1\r\n\r\n",
       "POST", "/p", "", "hello world", true},
      {"GET / HTTP/1.0\r\n\r\n", "GET", "/", "", "", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "", "", true},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", "", "", false},
      {"\r\nGET / HTTP/1.1\r\nHost:x\r\n\r\n", "GET", "/", "", "", true},  // a stray CRLF first
  };
}

void ExpectParsed(const Case& c, HttpRequestParser& p, size_t used, const std::string& how) {
  ASSERT_EQ(p.state(), State::kDone) << how << ": " << p.error() << "\n" << c.wire;
  EXPECT_EQ(used, c.wire.size()) << how;
  EXPECT_EQ(p.request().method, c.method) << how;
  EXPECT_EQ(p.request().path, c.path) << how;
  EXPECT_EQ(p.request().query, c.query) << how;
  EXPECT_EQ(p.request().body, c.body) << how;
  EXPECT_EQ(p.request().keep_alive, c.keep_alive) << how;
}

TEST(HttpRequestParserTest, EveryRequestParsesWholeInEverySplitAndByteByByte) {
  for (const Case& c : GoodRequests()) {
    {
      HttpRequestParser p(kHead, kBody);
      ExpectParsed(c, p, FeedIn(p, c.wire, 0), "whole");
    }
    for (size_t split = 1; split < c.wire.size(); ++split) {
      HttpRequestParser p(kHead, kBody);
      size_t used = p.Feed(std::string_view(c.wire).substr(0, split));
      if (used == split) used += p.Feed(std::string_view(c.wire).substr(split));
      ExpectParsed(c, p, used, "split at " + std::to_string(split));
    }
    {
      HttpRequestParser p(kHead, kBody);
      ExpectParsed(c, p, FeedIn(p, c.wire, 1), "byte by byte");
    }
  }
}

TEST(HttpRequestParserTest, HeadersAreLowercasedAndTrimmedAndTheQueryDecodes) {
  HttpRequestParser p(kHead, kBody);
  p.Feed(
      "GET /r?format=c%73v&name=a+b&empty HTTP/1.1\r\nX-Thing:   two words \t\r\nAuthorization: "
      "Bearer t\r\n\r\n");
  ASSERT_EQ(p.state(), State::kDone);
  EXPECT_EQ(p.request().Header("x-thing"), "two words");
  EXPECT_EQ(p.request().Header("authorization"), "Bearer t");
  EXPECT_EQ(p.request().Header("absent"), "");
  EXPECT_EQ(p.request().QueryParam("format"), "csv");
  EXPECT_EQ(p.request().QueryParam("name"), "a b");
  EXPECT_EQ(p.request().QueryParam("empty"), "");
}

TEST(HttpRequestParserTest, APipelinedSecondRequestIsLeftForTheNext) {
  const std::string two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  HttpRequestParser p(kHead, kBody);
  const size_t used = p.Feed(two);
  ASSERT_EQ(p.state(), State::kDone);
  EXPECT_EQ(p.request().path, "/a");
  p.Reset();
  EXPECT_EQ(p.Feed(std::string_view(two).substr(used)), two.size() - used);
  ASSERT_EQ(p.state(), State::kDone);
  EXPECT_EQ(p.request().path, "/b");
}

TEST(HttpRequestParserTest, ExpectContinueIsSeenWhenTheHeadIsIn) {
  HttpRequestParser p(kHead, kBody);
  p.Feed("POST /p HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(p.state(), State::kBody);
  EXPECT_TRUE(p.request().expect_continue);
  p.Feed("abc");
  EXPECT_EQ(p.state(), State::kDone);
}

struct Bad {
  std::string wire;
  int status;
  std::string why;
};

TEST(HttpRequestParserTest, WhatCouldMeanTwoThingsIsRefusedWithAStatus) {
  const std::vector<Bad> bad = {
      {"GET / HTTP/1.1\nHost: x\n\n", 400, "bare LF"},
      {"GET /\r\n\r\n", 400, "request line"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "request line"},
      {"G@T / HTTP/1.1\r\n\r\n", 400, "method"},
      {"GET http://x/ HTTP/1.1\r\n\r\n", 400, "target"},
      {"GET /a b HTTP/1.1\r\n\r\n", 400, "request line"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"},
      {"GET / FTP/1.0\r\n\r\n", 400, "version"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "NAME: VALUE"},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folding"},
      {"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "control character"},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "conflicting"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "not a number"},
      {"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400, "not a number"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "chunked"},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
      {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, "100-continue"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "hexadecimal"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", 400, "CRLF"},
      {"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413, "too large"},
  };
  for (const Bad& b : bad) {
    for (size_t piece : {size_t{0}, size_t{1}}) {
      HttpRequestParser p(kHead, kBody);
      FeedIn(p, b.wire, piece);
      ASSERT_EQ(p.state(), State::kError) << b.wire;
      EXPECT_EQ(p.error_status(), b.status) << b.wire;
      EXPECT_NE(p.error().find(b.why), std::string::npos) << b.wire << " -> " << p.error();
    }
  }
}

TEST(HttpRequestParserTest, AChunkedBodyIsRefusedTheMomentItPassesTheLimitWithoutBufferingMore) {
  HttpRequestParser p(kHead, kBody);
  p.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string chunk = "400\r\n" + std::string(1024, 'x') + "\r\n";
  for (int i = 0; i < 4; ++i) p.Feed(chunk);
  ASSERT_EQ(p.state(), State::kBody);
  EXPECT_EQ(p.request().body.size(), 4096u);
  const size_t used = p.Feed(chunk);
  EXPECT_EQ(p.state(), State::kError);
  EXPECT_EQ(p.error_status(), 413);
  EXPECT_LT(used, chunk.size()) << "it read into the chunk that passes the limit";
  EXPECT_EQ(p.request().body.size(), 4096u);
  // A huge declared chunk is refused from its size line alone.
  HttpRequestParser q(kHead, kBody);
  q.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n");
  EXPECT_EQ(q.error_status(), 413);
}

TEST(HttpRequestParserTest, AHeadOverTheLimitIsRefusedWithoutBufferingMore) {
  HttpRequestParser p(kHead, kBody);
  const std::string big = "GET / HTTP/1.1\r\nX: " + std::string(4 * kHead, 'a');
  const size_t used = p.Feed(big);
  EXPECT_EQ(p.state(), State::kError);
  EXPECT_EQ(p.error_status(), 431);
  EXPECT_LE(used, kHead + 1);
  // Trailers count against the head limit too.
  HttpRequestParser q(kHead, kBody);
  q.Feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
  for (int i = 0; i < 100 && q.state() == State::kBody; ++i)
    q.Feed("X-Trailer: " + std::string(50, 'b') + "\r\n");
  EXPECT_EQ(q.error_status(), 431);
}

}  // namespace
}  // namespace stampede::controller
