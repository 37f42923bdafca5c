#include "agent/http_response_parser.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::agent {
namespace {

using Result = HttpResponseParser::Result;

const char* ResultName(Result r) {
  switch (r) {
    case Result::kNeedMore:
      return "kNeedMore";
    case Result::kComplete:
      return "kComplete";
    case Result::kError:
      return "kError";
  }
  return "?";
}

// What a caller observes after feeding one response.
struct Observed {
  Result result = Result::kNeedMore;
  int status = 0;
  bool keep_alive = false;
  uint64_t body_bytes = 0;
  size_t consumed = 0;  // total over all Parse calls

  bool operator==(const Observed& o) const {
    return result == o.result && status == o.status && keep_alive == o.keep_alive &&
           body_bytes == o.body_bytes && consumed == o.consumed;
  }
};

std::ostream& operator<<(std::ostream& os, const Observed& o) {
  return os << "{" << ResultName(o.result) << " status=" << o.status
            << " keep_alive=" << o.keep_alive << " body_bytes=" << o.body_bytes
            << " consumed=" << o.consumed << "}";
}

// Feeds `input` cut at `cuts` (ascending offsets), stopping at the first kComplete or kError, and
// then calls OnEof if `eof` and the parser still wants more. Checks the kNeedMore contract on the
// way.
Observed Feed(HttpResponseParser& parser, const std::string& input, const std::vector<size_t>& cuts,
              bool eof) {
  Observed o;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t end : ends) {
    size_t consumed = 0;
    o.result = parser.Parse(input.data() + start, end - start, &consumed);
    if (o.result == Result::kNeedMore) {
      EXPECT_EQ(consumed, end - start);
    }
    EXPECT_LE(consumed, end - start);
    o.consumed += consumed;
    start = end;
    if (o.result != Result::kNeedMore) break;
  }
  if (o.result == Result::kNeedMore && eof) o.result = parser.OnEof();
  o.status = parser.status();
  o.keep_alive = parser.keep_alive();
  o.body_bytes = parser.body_bytes();
  return o;
}

Observed Feed(const std::string& input, const std::vector<size_t>& cuts = {}, bool eof = false,
              bool head = false) {
  HttpResponseParser parser;
  parser.Reset(head);
  return Feed(parser, input, cuts, eof);
}

struct ValidCase {
  const char* name;
  std::string response;
  std::string after;  // bytes that follow the response and are not part of it
  Result result;
  int status;
  bool keep_alive;
  uint64_t body_bytes;
  bool head = false;
  bool eof = false;  // the body ends with the connection

  std::string Input() const { return response + after; }
  Observed Want() const { return {result, status, keep_alive, body_bytes, response.size()}; }
};

std::vector<ValidCase> ValidCases() {
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::string chunked = ok +
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "5;name=value\r\nhello\r\n"
                              "1A ; a=1;b=\"2\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                              "0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n";
  const Result kComplete = Result::kComplete;
  return {
      {"content_length", ok + "Content-Length: 5\r\n\r\nhello", "", kComplete, 200, true, 5},
      {"content_length_then_pipelined", ok + "Content-Length: 5\r\n\r\nhello", next, kComplete, 200,
       true, 5},
      {"content_length_zero", next, next, kComplete, 200, true, 0},
      {"bare_lf_lines", "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", "", kComplete, 200, true, 2},
      {"status_without_reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "", kComplete, 404,
       true, 0},
      {"chunked_extensions_uppercase_hex_trailers", chunked, "", kComplete, 200, true, 5 + 26},
      {"chunked_then_pipelined", chunked, next, kComplete, 200, true, 5 + 26},
      {"chunked_wins_over_content_length",
       ok + "Content-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
       "", kComplete, 200, true, 3},
      {"eof_delimited", ok + "\r\nhello, world", "", kComplete, 200, false, 12, false, true},
      {"eof_delimited_empty", ok + "\r\n", "", kComplete, 200, false, 0, false, true},
      {"head_ignores_content_length", ok + "Content-Length: 1000\r\n\r\n", next, kComplete, 200,
       true, 0, true},
      {"head_ignores_chunked", ok + "Transfer-Encoding: chunked\r\n\r\n", next, kComplete, 200,
       true, 0, true},
      {"no_content", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", next, kComplete, 204,
       true, 0},
      {"not_modified", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", next,
       kComplete, 304, true, 0},
      {"continue_then_created",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc", next,
       kComplete, 201, true, 3},
      {"two_interim_then_head",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok +
           "Content-Length: 9\r\n\r\n",
       next, kComplete, 200, true, 0, true},
      {"switching_protocols",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       "\x81\x05hello", kComplete, 101, false, 0},
      {"http10_closes_by_default", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "", kComplete,
       200, false, 1},
      {"http10_keep_alive",
       "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", next, kComplete,
       200, true, 1},
      {"http10_keep_alive_but_eof_delimited",
       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nxyz", "", kComplete, 200, false, 3, false,
       true},
      {"http10_keep_alive_and_close",
       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: "
       "0\r\n\r\n",
       "", kComplete, 200, false, 0},
      {"connection_close", ok + "Connection: close\r\nContent-Length: 0\r\n\r\n", "", kComplete,
       200, false, 0},
      {"connection_token_list_with_close",
       ok + "connection:  keep-alive , CLOSE\t\r\nContent-Length: 0\r\n\r\n", "", kComplete, 200,
       false, 0},
      {"connection_closed_is_not_close",
       ok + "Connection: closed, upgrade\r\nContent-Length: 0\r\n\r\n", "", kComplete, 200, true,
       0},
      {"repeated_equal_content_length", ok + "Content-Length: 2\r\ncontent-length: 02\r\n\r\nok",
       next, kComplete, 200, true, 2},
  };
}

TEST(HttpResponseParserTest, ValidResponsesWhole) {
  for (const ValidCase& c : ValidCases()) {
    EXPECT_EQ(Feed(c.Input(), {}, c.eof, c.head), c.Want()) << c.name;
  }
}

TEST(HttpResponseParserTest, ValidResponsesInEveryTwoWaySplit) {
  for (const ValidCase& c : ValidCases()) {
    const std::string input = c.Input();
    for (size_t cut = 0; cut <= input.size(); ++cut) {
      ASSERT_EQ(Feed(input, {cut}, c.eof, c.head), c.Want()) << c.name << " cut at " << cut;
    }
  }
}

TEST(HttpResponseParserTest, ValidResponsesByteByByte) {
  for (const ValidCase& c : ValidCases()) {
    const std::string input = c.Input();
    std::vector<size_t> cuts;
    for (size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
    EXPECT_EQ(Feed(input, cuts, c.eof, c.head), c.Want()) << c.name;
  }
}

TEST(HttpResponseParserTest, ReportsStartedOnlyAfterBytes) {
  HttpResponseParser parser;
  parser.Reset(false);
  EXPECT_FALSE(parser.started());
  size_t consumed = 1;
  EXPECT_EQ(parser.Parse("", 0, &consumed), Result::kNeedMore);
  EXPECT_EQ(consumed, 0u);
  EXPECT_FALSE(parser.started());
  EXPECT_EQ(parser.Parse("HTTP/1.1", 8, &consumed), Result::kNeedMore);
  EXPECT_TRUE(parser.started());
}

TEST(HttpResponseParserTest, EofBeforeAnyByteIsAnError) {
  HttpResponseParser parser;
  parser.Reset(false);
  EXPECT_EQ(parser.OnEof(), Result::kError);
  ASSERT_NE(parser.error(), nullptr);
  EXPECT_FALSE(parser.started());
}

TEST(HttpResponseParserTest, TruncatedResponsesThenEofAreErrors) {
  const std::string truncated[] = {
      "H",
      "HTTP/1.1 200 OK\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n",
      "HTTP/1.1 100 Continue\r\n\r\n",
  };
  for (const std::string& input : truncated) {
    HttpResponseParser parser;
    parser.Reset(false);
    size_t consumed = 0;
    ASSERT_EQ(parser.Parse(input.data(), input.size(), &consumed), Result::kNeedMore) << input;
    EXPECT_TRUE(parser.started());
    EXPECT_EQ(parser.OnEof(), Result::kError) << input;
    EXPECT_NE(parser.error(), nullptr) << input;
  }
}

TEST(HttpResponseParserTest, MalformedResponsesAreErrorsInEverySplit) {
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::string malformed[] = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.2 200 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
      ok + "NoColonHere\r\n\r\n",
      ok + ": empty name\r\n\r\n",
      ok + "Content-Length : 5\r\n\r\nhello",
      ok + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      ok + "Content-Length: -1\r\n\r\n",
      ok + "Content-Length: 1e3\r\n\r\n",
      ok + "Content-Length:\r\n\r\n",
      ok + "Content-Length: 5, 5\r\n\r\nhello",
      ok + "Content-Length: 1234567890123456789\r\n\r\n",
      ok + "Transfer-Encoding: gzip\r\n\r\n",
      ok + "Transfer-Encoding: chunked, gzip\r\n\r\n",
      ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
      ok + "Transfer-Encoding: chunked\r\n\r\n\r\n",
      ok + "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n",
      ok + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
      ok + "Transfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
  };
  for (const std::string& input : malformed) {
    const Observed whole = Feed(input, {}, true);
    EXPECT_EQ(whole.result, Result::kError) << input;
    for (size_t cut = 0; cut <= input.size(); ++cut) {
      ASSERT_EQ(Feed(input, {cut}, true).result, Result::kError) << input << " cut at " << cut;
    }
  }
}

TEST(HttpResponseParserTest, ErrorNamesTheReason) {
  HttpResponseParser parser;
  parser.Reset(false);
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
  size_t consumed = 0;
  EXPECT_EQ(parser.Parse(input.data(), input.size(), &consumed), Result::kError);
  ASSERT_NE(parser.error(), nullptr);
  EXPECT_STREQ(parser.error(), "conflicting Content-Length");
  // The parser stays failed until Reset.
  EXPECT_EQ(parser.Parse("x", 1, &consumed), Result::kError);
  EXPECT_EQ(parser.OnEof(), Result::kError);
}

TEST(HttpResponseParserTest, BytesThatCannotBeginAResponseFailAtOnceWithoutALineEnd) {
  // An HTTP/2 SETTINGS frame, a banner, a TLS alert: judged at the first wrong byte, not after a
  // line end that may never come (issue 9: counted as closed, or as a timeout).
  for (const std::string& input :
       {std::string("\x00\x00\x00\x04\x00", 5), std::string("SSH-2.0"), std::string("\x15\x03\x03"),
        std::string("HTTP/2 200"), std::string("HTTZ")}) {
    HttpResponseParser parser;
    parser.Reset(false);
    size_t consumed = 0;
    EXPECT_EQ(parser.Parse(input.data(), input.size(), &consumed), Result::kError) << input;
    EXPECT_STREQ(parser.error(), "not an HTTP/1.x response");
  }
  // A prefix of "HTTP/1." waits for more, split anywhere.
  HttpResponseParser parser;
  parser.Reset(false);
  size_t consumed = 0;
  EXPECT_EQ(parser.Parse("HTT", 3, &consumed), Result::kNeedMore);
  EXPECT_EQ(parser.Parse("P/1", 3, &consumed), Result::kNeedMore);
  EXPECT_EQ(parser.Parse("x", 1, &consumed), Result::kError);
}

TEST(HttpResponseParserTest, LineTooLongIsAnError) {
  const std::string long_line =
      "HTTP/1.1 200 OK\r\nX-Long: " + std::string(HttpResponseParser::kMaxLineBytes, 'a') +
      "\r\n\r\n";
  EXPECT_EQ(Feed(long_line).result, Result::kError);
  EXPECT_EQ(Feed(long_line, {20, 5000}).result, Result::kError);

  // Without a newline the parser must not keep buffering.
  const std::string endless(HttpResponseParser::kMaxLineBytes + 1, 'H');
  EXPECT_EQ(Feed(endless).result, Result::kError);
  std::vector<size_t> cuts;
  for (size_t i = 1000; i < endless.size(); i += 1000) cuts.push_back(i);
  EXPECT_EQ(Feed(endless, cuts).result, Result::kError);
}

TEST(HttpResponseParserTest, LineOfExactlyMaxBytesIsAcceptedInEverySplit) {
  // A header line whose content (without CR LF) is kMaxLineBytes long is within the limit.
  const std::string prefix = "X-Long: ";
  const std::string line =
      prefix + std::string(HttpResponseParser::kMaxLineBytes - prefix.size(), 'a');
  const std::string head = "HTTP/1.1 200 OK\r\n";
  const std::string input = head + line + "\r\nContent-Length: 0\r\n\r\n";
  const Observed want{Result::kComplete, 200, true, 0, input.size()};
  EXPECT_EQ(Feed(input), want);
  const size_t cr = head.size() + line.size();
  for (size_t cut : {head.size() + 1, cr - 1, cr, cr + 1}) {
    EXPECT_EQ(Feed(input, {cut}), want) << "cut at " << cut << " (CR at " << cr << ")";
  }
}

TEST(HttpResponseParserTest, HeadersTooLargeIsAnError) {
  std::string input = "HTTP/1.1 200 OK\r\n";
  const std::string header = "X-Filler: " + std::string(1000, 'b') + "\r\n";
  while (input.size() < HttpResponseParser::kMaxHeaderBytes + 2000) input += header;
  input += "Content-Length: 0\r\n\r\n";
  EXPECT_EQ(Feed(input).result, Result::kError);
  EXPECT_EQ(Feed(input, {7, 30000, 60000}).result, Result::kError);

  std::string trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  while (trailers.size() < HttpResponseParser::kMaxHeaderBytes + 2000) trailers += header;
  trailers += "\r\n";
  EXPECT_EQ(Feed(trailers).result, Result::kError);
}

TEST(HttpResponseParserTest, LargeBodiesAreCountedNotStored) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
  HttpResponseParser parser;
  parser.Reset(false);
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(head.data(), head.size(), &consumed), Result::kNeedMore);
  const std::string block(4096, 'z');
  uint64_t sent = 0;
  Result r = Result::kNeedMore;
  while (r == Result::kNeedMore) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), 1000000 - sent));
    r = parser.Parse(block.data(), n, &consumed);
    sent += consumed;
  }
  EXPECT_EQ(r, Result::kComplete);
  EXPECT_EQ(sent, 1000000u);
  EXPECT_EQ(parser.body_bytes(), 1000000u);
}

TEST(HttpResponseParserTest, ParsesPipelinedResponsesAfterReset) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second =
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  const std::string input = first + second;
  HttpResponseParser parser;
  parser.Reset(false);
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(input.data(), input.size(), &consumed), Result::kComplete);
  EXPECT_EQ(consumed, first.size());
  EXPECT_EQ(parser.status(), 200);
  EXPECT_EQ(parser.body_bytes(), 3u);

  parser.Reset(false);
  EXPECT_FALSE(parser.started());
  ASSERT_EQ(parser.Parse(input.data() + first.size(), second.size(), &consumed), Result::kComplete);
  EXPECT_EQ(consumed, second.size());
  EXPECT_EQ(parser.status(), 404);
  EXPECT_EQ(parser.body_bytes(), 0u);
}

TEST(HttpResponseParserTest, ResetRecoversFromEveryState) {
  // Reset in the middle of any state (including kError and a pending partial line) gives a parser
  // that behaves like a fresh one.
  const std::string poison[] = {
      "HTTP/1.1 200 O",
      "HTTP/1.1 200 OK\r\nContent-Le",
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA",
      "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc",
      "HTTP/1.0 200 OK\r\nX: 1\r\n",
      "garbage\r\n",
  };
  for (const ValidCase& c : ValidCases()) {
    for (const std::string& p : poison) {
      HttpResponseParser parser;
      parser.Reset(!c.head);
      size_t consumed = 0;
      parser.Parse(p.data(), p.size(), &consumed);
      parser.Reset(c.head);
      EXPECT_EQ(Feed(parser, c.Input(), {}, c.eof), c.Want()) << c.name << " after " << p;
    }
  }
}

}  // namespace
}  // namespace stampede::agent

namespace stampede::agent {
namespace {

// A scenario step's response: every way of cutting it gives the same kept body, cookies and
// headers.
TEST(HttpResponseParserKeepTest, KeepsTheBodyCookiesAndHeadersItWasAskedForWhateverTheReads) {
  const std::vector<std::string> headers = {"x-token", "location"};
  HttpResponseParser::Keep keep;
  keep.body_bytes = 1024;
  keep.set_cookies = true;
  keep.headers = &headers;
  const std::string chunked =
      "HTTP/1.1 100 Continue\r\nSet-Cookie: interim=1\r\n\r\n"
      "HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nX-TOKEN: t-1\r\n"
      "set-cookie: theme=dark\r\nX-Token: second\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\n{\"id\"\r\n6\r\n: 42}\n\r\n0\r\n\r\n";
  for (size_t cut = 0; cut <= chunked.size(); ++cut) {
    HttpResponseParser parser;
    parser.Reset(false, &keep);
    std::vector<size_t> cuts;
    if (cut > 0 && cut < chunked.size()) cuts.push_back(cut);
    const Observed o = Feed(parser, chunked, cuts, false);
    ASSERT_EQ(o.result, Result::kComplete) << cut;
    EXPECT_EQ(parser.kept_body(), "{\"id\": 42}\n") << cut;
    EXPECT_FALSE(parser.body_truncated());
    ASSERT_EQ(parser.set_cookie_count(), 2u) << "the interim response's cookie is not kept";
    EXPECT_EQ(parser.set_cookie(0), "session=abc; Path=/");
    EXPECT_EQ(parser.set_cookie(1), "theme=dark");
    ASSERT_NE(parser.kept_header(0), nullptr);
    EXPECT_EQ(*parser.kept_header(0), "t-1") << "the first value";
    EXPECT_EQ(parser.kept_header(1), nullptr) << "no Location";
  }
}

// HTTP/2 hands the parser decoded fields and DATA instead of bytes: the same Keep applies.
TEST(HttpResponseParserKeepTest, DecodedResponsesKeepWhatBytesWould) {
  const std::vector<std::string> headers = {"x-token", "location"};
  HttpResponseParser::Keep keep;
  keep.body_bytes = 8;
  keep.set_cookies = true;
  keep.headers = &headers;
  HttpResponseParser parser;
  parser.Reset(false, &keep);
  EXPECT_FALSE(parser.started());
  parser.DecodedStatus(201);
  auto field = [&](const std::string& name, const std::string& value) {
    parser.DecodedHeader(name.data(), name.size(), value.data(), value.size());
  };
  field("set-cookie", "session=abc; Path=/");
  field("x-token", "t-1");
  field("set-cookie", "theme=dark");
  field("x-token", "second");
  parser.DecodedBody("{\"id\": ", 7);
  parser.DecodedBody("42}", 3);
  EXPECT_TRUE(parser.started());
  EXPECT_EQ(parser.status(), 201);
  EXPECT_EQ(parser.body_bytes(), 10u);
  EXPECT_EQ(parser.kept_body(), "{\"id\": 4");
  EXPECT_TRUE(parser.body_truncated());
  ASSERT_EQ(parser.set_cookie_count(), 2u);
  EXPECT_EQ(parser.set_cookie(0), "session=abc; Path=/");
  EXPECT_EQ(parser.set_cookie(1), "theme=dark");
  ASSERT_NE(parser.kept_header(0), nullptr);
  EXPECT_EQ(*parser.kept_header(0), "t-1") << "the first value";
  EXPECT_EQ(parser.kept_header(1), nullptr) << "no Location";

  // Without Keep only the status and the body's size are known; Reset forgets the last response.
  parser.Reset(false);
  parser.DecodedStatus(200);
  field("set-cookie", "x=1");
  parser.DecodedBody("abc", 3);
  EXPECT_EQ(parser.status(), 200);
  EXPECT_EQ(parser.body_bytes(), 3u);
  EXPECT_EQ(parser.set_cookie_count(), 0u);
  EXPECT_EQ(parser.kept_body(), "");
  EXPECT_FALSE(parser.body_truncated());
}

TEST(HttpResponseParserKeepTest, ABodyLongerThanTheCapIsCutAndSaysSo) {
  HttpResponseParser::Keep keep;
  keep.body_bytes = 4;
  HttpResponseParser parser;
  parser.Reset(false, &keep);
  const Observed o =
      Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", {45}, false);
  ASSERT_EQ(o.result, Result::kComplete);
  EXPECT_EQ(parser.kept_body(), "0123");
  EXPECT_TRUE(parser.body_truncated());
  EXPECT_EQ(parser.body_bytes(), 10u);
  // Until the close, too.
  parser.Reset(false, &keep);
  Feed(parser, "HTTP/1.0 200 OK\r\n\r\nab", {}, true);
  EXPECT_EQ(parser.kept_body(), "ab");
  EXPECT_FALSE(parser.body_truncated());
}

TEST(HttpResponseParserKeepTest, WithoutKeepNothingIsKeptAndAResetForgetsTheLastResponse) {
  const std::string response = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\nhi";
  HttpResponseParser parser;
  parser.Reset(false);
  ASSERT_EQ(Feed(parser, response, {}, false).result, Result::kComplete);
  EXPECT_EQ(parser.kept_body(), "");
  EXPECT_EQ(parser.set_cookie_count(), 0u);
  EXPECT_EQ(parser.kept_header(0), nullptr);
  HttpResponseParser::Keep keep;
  keep.body_bytes = 100;
  keep.set_cookies = true;
  parser.Reset(false, &keep);
  ASSERT_EQ(Feed(parser, response, {}, false).result, Result::kComplete);
  EXPECT_EQ(parser.kept_body(), "hi");
  EXPECT_EQ(parser.set_cookie_count(), 1u);
  parser.Reset(false, &keep);
  EXPECT_EQ(parser.kept_body(), "");
  EXPECT_EQ(parser.set_cookie_count(), 0u);
}

}  // namespace
}  // namespace stampede::agent
