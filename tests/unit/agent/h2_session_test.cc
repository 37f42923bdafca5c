// The HTTP/2 client session against nghttp2's server session (tests/target/h2_test_server.h), bytes
// moved in memory: every outcome the client counts, produced by a server that causes it.
#include "agent/h2_session.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/target.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/target/h2_test_server.h"

namespace stampede::agent {
namespace {

using common::Outcome;
using test_target::H2TestServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr int64_t kSecond = 1'000'000'000;

H2TestServer::Options ServerOptions(bool zero_window, uint32_t max_concurrent_streams) {
  H2TestServer::Options o;
  o.zero_window = zero_window;
  o.max_concurrent_streams = max_concurrent_streams;
  return o;
}

class Recorder : public H2Session::Listener {
 public:
  void OnStreamEnd(const H2StreamEnd& end) override {
    ends.push_back(end);
    events.push_back("end " + std::to_string(end.tag));
  }
  void OnResponseStatus(uint64_t tag, int status) override {
    events.push_back("status " + std::to_string(tag) + " " + std::to_string(status));
  }
  void OnResponseHeader(uint64_t tag, std::string_view name, std::string_view value) override {
    events.push_back("header " + std::to_string(tag) + " " + std::string(name) + ": " +
                     std::string(value));
  }
  void OnResponseData(uint64_t tag, const uint8_t* data, size_t size) override {
    bodies[tag].append(reinterpret_cast<const char*>(data), size);
    events.push_back("data " + std::to_string(tag));
  }
  const H2StreamEnd* Find(uint64_t tag) const {
    for (const H2StreamEnd& e : ends)
      if (e.tag == tag) return &e;
    return nullptr;
  }
  std::vector<H2StreamEnd> ends;
  std::vector<std::string> events;  // every callback in order, data chunks one line each
  std::map<uint64_t, std::string> bodies;
};

H2Request Request(const std::string& method, const std::string& path, const std::string& body = "",
                  std::vector<int> expect = {}) {
  RequestSpec spec;
  spec.method = method;
  spec.path = path;
  spec.body = body;
  spec.headers = {{"X-Test", "yes"}, {"Connection", "keep-alive"}};
  absl::StatusOr<Url> url = ParseUrl("http://127.0.0.1:8080");
  EXPECT_TRUE(url.ok());
  absl::StatusOr<std::vector<PreparedRequest>> prepared = PrepareRequests(*url, {spec});
  EXPECT_TRUE(prepared.ok()) << prepared.status();
  absl::StatusOr<H2Request> r =
      H2Request::FromHttp1((*prepared)[0].wire, false, ExpectedStatus::Of(expect));
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

class H2SessionTest : public ::testing::Test {
 protected:
  // Creates both sides and, with `handshake`, exchanges the prefaces and SETTINGS (until the
  // server's SETTINGS arrive the client opens one stream only).
  void Start(H2SessionOptions options = {}, H2TestServer::Options server_options = {},
             bool handshake = true) {
    server_ = std::make_unique<H2TestServer>(server_options);
    absl::StatusOr<std::unique_ptr<H2Session>> s = H2Session::Create(options, &recorder_);
    ASSERT_TRUE(s.ok()) << s.status();
    client_ = std::move(*s);
    if (handshake) {
      handshake_bytes_ = Pump();
      ASSERT_TRUE(client_->PeerSettingsReceived());
    }
  }

  // Moves bytes both ways until neither side has anything to send. Returns the client's bytes.
  std::string Pump(int64_t now_ns = 1) {
    std::string client_sent;
    for (int round = 0; round < 100; ++round) {
      uint8_t buf[4096];
      std::string out;
      while (size_t n = client_->Produce(buf, sizeof(buf), now_ns)) {
        out.append(reinterpret_cast<char*>(buf), n);
      }
      client_sent += out;
      if (!out.empty()) server_->Receive(reinterpret_cast<const uint8_t*>(out.data()), out.size());
      std::string back;
      server_->Produce(&back);
      if (!back.empty()) {
        client_->Receive(reinterpret_cast<const uint8_t*>(back.data()), back.size(), now_ns);
      }
      if (out.empty() && back.empty()) return client_sent;
    }
    ADD_FAILURE() << "the sessions kept talking";
    return client_sent;
  }

  Recorder recorder_;
  std::string handshake_bytes_;  // what the client sent in Start's handshake
  std::unique_ptr<H2TestServer> server_;
  std::unique_ptr<H2Session> client_;
};

TEST_F(H2SessionTest, RequestsCompleteWithStatusAndBody) {
  Start();
  const H2Request get = Request("GET", "/");
  const H2Request post = Request("POST", "/status/201", "{\"sku\":1}");
  const H2Request bad = Request("GET", "/status/503");
  ASSERT_TRUE(client_->Submit(get, 1, 0, 1));
  ASSERT_TRUE(client_->Submit(post, 2, 0, 1));
  ASSERT_TRUE(client_->Submit(bad, 3, 0, 1));
  EXPECT_EQ(client_->OpenStreams(), 3u);
  EXPECT_EQ(handshake_bytes_.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0), 0u);  // prior knowledge
  Pump();

  ASSERT_EQ(recorder_.ends.size(), 3u);
  const H2StreamEnd* ok = recorder_.Find(1);
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->outcome, Outcome::kOk);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body_bytes, 2u);
  EXPECT_EQ(ok->stream_id, 1);
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kOk);
  EXPECT_EQ(recorder_.Find(2)->status, 201);
  EXPECT_EQ(recorder_.Find(3)->outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(recorder_.Find(3)->status, 503);
  EXPECT_EQ(client_->OpenStreams(), 0u);
  EXPECT_THAT(server_->requests_by_path(),
              ElementsAre(Pair("/", 1u), Pair("/status/201", 1u), Pair("/status/503", 1u)));
  EXPECT_FALSE(client_->Finished());
  EXPECT_TRUE(client_->AcceptsStreams());
}

TEST_F(H2SessionTest, TheServersStreamLimitLowersOurs) {
  Start({}, ServerOptions(false, 2), /*handshake=*/false);
  EXPECT_FALSE(client_->PeerSettingsReceived());
  EXPECT_EQ(client_->StreamLimit(), 1u);  // before the server's SETTINGS
  const H2Request first = Request("GET", "/");
  EXPECT_TRUE(client_->Submit(first, 0, 0, 1));
  EXPECT_FALSE(client_->Submit(first, 5, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 1u);
  recorder_.ends.clear();
  EXPECT_EQ(client_->StreamLimit(), 2u);
  const H2Request hang = Request("GET", "/hang");
  EXPECT_TRUE(client_->Submit(hang, 1, 0, 1));
  EXPECT_TRUE(client_->Submit(hang, 2, 0, 1));
  EXPECT_FALSE(client_->Submit(hang, 3, 0, 1));
  Pump();
  EXPECT_TRUE(recorder_.ends.empty());
  ASSERT_TRUE(client_->Cancel(1, Outcome::kCancelled));
  ASSERT_EQ(recorder_.ends.size(), 1u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kCancelled);
  EXPECT_FALSE(client_->Cancel(1, Outcome::kCancelled));
  const H2Request get = Request("GET", "/");
  EXPECT_TRUE(client_->Submit(get, 4, 0, 1));  // the cancelled stream's place
  Pump();
  ASSERT_NE(recorder_.Find(4), nullptr);
  EXPECT_EQ(recorder_.Find(4)->outcome, Outcome::kOk);
}

TEST_F(H2SessionTest, OurOwnLimitHolds) {
  H2SessionOptions options;
  options.max_concurrent_streams = 1;
  Start(options);
  const H2Request hang = Request("GET", "/hang");
  EXPECT_TRUE(client_->Submit(hang, 1, 0, 1));
  EXPECT_FALSE(client_->Submit(hang, 2, 0, 1));
  EXPECT_EQ(client_->StreamLimit(), 1u);
}

TEST_F(H2SessionTest, GoawayFailsOnlyTheStreamsAboveItsLastStreamId) {
  Start();
  const H2Request get = Request("GET", "/");
  const H2Request goaway = Request("GET", "/goaway");
  ASSERT_TRUE(client_->Submit(get, 1, 0, 1));     // stream 1
  ASSERT_TRUE(client_->Submit(goaway, 2, 0, 1));  // stream 3: GOAWAY last_stream_id 3
  ASSERT_TRUE(client_->Submit(get, 3, 0, 1));     // stream 5
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 3u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kOk);
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kOk);
  EXPECT_EQ(recorder_.Find(3)->outcome, Outcome::kGoaway);
  EXPECT_EQ(recorder_.Find(3)->stream_id, 5);
  EXPECT_FALSE(client_->AcceptsStreams());
  EXPECT_FALSE(client_->Submit(get, 4, 0, 1));
  EXPECT_TRUE(client_->Finished());
}

TEST_F(H2SessionTest, AConnectionLostAfterGoawayKeepsBothOutcomes) {
  Start();
  const H2Request hang = Request("GET", "/hang");
  const H2Request goaway = Request("GET", "/goaway");
  ASSERT_TRUE(client_->Submit(hang, 1, 0, 1));    // stream 1: below last_stream_id, unanswered
  ASSERT_TRUE(client_->Submit(goaway, 2, 0, 1));  // stream 3
  ASSERT_TRUE(client_->Submit(hang, 3, 0, 1));    // stream 5: above
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.Find(3)->outcome, Outcome::kGoaway);
  EXPECT_FALSE(client_->Finished());  // stream 1 may still be answered
  client_->ConnectionLost(Outcome::kClosed);
  ASSERT_EQ(recorder_.ends.size(), 3u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kClosed);
  EXPECT_TRUE(client_->Finished());
}

TEST_F(H2SessionTest, RstStreamIsCountedAndTheConnectionGoesOn) {
  Start();
  const H2Request rst = Request("GET", "/rst");
  const H2Request refuse = Request("GET", "/refuse");
  const H2Request get = Request("GET", "/");
  ASSERT_TRUE(client_->Submit(rst, 1, 0, 1));
  ASSERT_TRUE(client_->Submit(refuse, 2, 0, 1));
  ASSERT_TRUE(client_->Submit(get, 3, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 3u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kStreamReset);
  EXPECT_EQ(recorder_.Find(1)->reset_code, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kStreamReset);
  EXPECT_EQ(recorder_.Find(2)->reset_code, static_cast<uint32_t>(NGHTTP2_REFUSED_STREAM));
  EXPECT_EQ(recorder_.Find(3)->outcome, Outcome::kOk);
  EXPECT_TRUE(client_->AcceptsStreams());
}

TEST_F(H2SessionTest, ABodyStuckOnAZeroWindowEndsAsFlowControl) {
  H2SessionOptions options;
  options.flow_control_stall_ns = kSecond;
  Start(options, ServerOptions(true, 100));  // the server's SETTINGS: initial window 0
  const H2Request post = Request("POST", "/", "body that never goes");
  const H2Request get = Request("GET", "/");
  ASSERT_TRUE(client_->Submit(post, 1, 0, 10 * kSecond));
  ASSERT_TRUE(client_->Submit(get, 2, 0, 10 * kSecond));
  Pump(10 * kSecond);
  ASSERT_EQ(recorder_.ends.size(), 1u);  // the GET needs no window
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kOk);
  EXPECT_EQ(client_->NextDeadlineNs(), 11 * kSecond);
  client_->Tick(11 * kSecond - 1);
  EXPECT_EQ(recorder_.ends.size(), 1u);
  client_->Tick(11 * kSecond);
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kFlowControl);
  EXPECT_EQ(client_->NextDeadlineNs(), INT64_MAX);
  Pump(11 * kSecond);  // the RST_STREAM goes out; nothing else ends
  EXPECT_EQ(recorder_.ends.size(), 2u);
  EXPECT_TRUE(client_->AcceptsStreams());
}

TEST_F(H2SessionTest, ABodyThatFitsTheWindowIsNeverStalled) {
  Start();
  Pump();
  const H2Request post = Request("POST", "/", std::string(100'000, 'x'));  // > 65535: two windows
  ASSERT_TRUE(client_->Submit(post, 1, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 1u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kOk);
}

TEST_F(H2SessionTest, DeadlinesEndStreamsAsTimeouts) {
  Start();
  const H2Request hang = Request("GET", "/hang");
  ASSERT_TRUE(client_->Submit(hang, 1, 5 * kSecond, 1));
  ASSERT_TRUE(client_->Submit(hang, 2, 7 * kSecond, 1));
  Pump();
  EXPECT_EQ(client_->NextDeadlineNs(), 5 * kSecond);
  client_->Tick(5 * kSecond - 1);
  EXPECT_TRUE(recorder_.ends.empty());
  client_->Tick(5 * kSecond);
  ASSERT_EQ(recorder_.ends.size(), 1u);
  EXPECT_EQ(recorder_.ends[0].tag, 1u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kTimeout);
  EXPECT_EQ(client_->NextDeadlineNs(), 7 * kSecond);
  Pump();
  EXPECT_EQ(recorder_.ends.size(), 1u);

  // A stream without a deadline adds none; once the last one with a deadline has ended, none is
  // left, though a stream is still open.
  ASSERT_TRUE(client_->Submit(hang, 3, 0, 1));
  Pump();
  EXPECT_EQ(client_->NextDeadlineNs(), 7 * kSecond);
  client_->Tick(7 * kSecond);
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.ends[1].tag, 2u);
  EXPECT_EQ(client_->OpenStreams(), 1u);
  EXPECT_EQ(client_->NextDeadlineNs(), INT64_MAX);
}

TEST_F(H2SessionTest, GarbageFramesEndEveryStreamAsMalformed) {
  Start();
  const H2Request hang = Request("GET", "/hang");
  const H2Request garbage = Request("GET", "/garbage");
  ASSERT_TRUE(client_->Submit(hang, 1, 0, 1));
  ASSERT_TRUE(client_->Submit(garbage, 2, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kMalformed);
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kMalformed);
  EXPECT_TRUE(client_->Finished());
  EXPECT_FALSE(client_->AcceptsStreams());
}

TEST_F(H2SessionTest, AHeaderBlockHpackCannotDecodeIsMalformed) {
  Start();
  const H2Request bad = Request("GET", "/bad-hpack");
  ASSERT_TRUE(client_->Submit(bad, 1, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 1u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kMalformed);
  EXPECT_TRUE(client_->Finished());
}

// Found by h2_session_fuzz: nghttp2 accepts ":status: 006"; the session must not count it.
TEST_F(H2SessionTest, AStatusBelowOneHundredIsMalformed) {
  Start();
  const H2Request bad = Request("GET", "/bad-status");
  const H2Request get = Request("GET", "/");
  ASSERT_TRUE(client_->Submit(bad, 1, 0, 1));
  ASSERT_TRUE(client_->Submit(get, 2, 0, 1));
  Pump();
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.Find(1)->outcome, Outcome::kMalformed);
  EXPECT_EQ(recorder_.Find(1)->status, 0);
  EXPECT_EQ(recorder_.Find(2)->outcome, Outcome::kOk);  // a stream error: the connection goes on
}

TEST_F(H2SessionTest, ConnectionLostEndsEveryOpenStreamOnce) {
  Start();
  const H2Request hang = Request("GET", "/hang");
  ASSERT_TRUE(client_->Submit(hang, 1, 0, 1));
  ASSERT_TRUE(client_->Submit(hang, 2, 0, 1));
  Pump();
  client_->ConnectionLost(Outcome::kReset);
  ASSERT_EQ(recorder_.ends.size(), 2u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kReset);
  EXPECT_EQ(recorder_.ends[1].outcome, Outcome::kReset);
  client_->ConnectionLost(Outcome::kReset);
  client_->Tick(100 * kSecond);
  EXPECT_EQ(recorder_.ends.size(), 2u);
  EXPECT_TRUE(client_->Finished());
  EXPECT_FALSE(client_->Submit(hang, 3, 0, 1));
}

TEST_F(H2SessionTest, ProduceHandsOutBytesInPiecesOfAnySize) {
  Start();
  const H2Request get = Request("GET", "/");
  ASSERT_TRUE(client_->Submit(get, 1, 0, 1));
  std::string all;
  uint8_t byte;
  while (client_->Produce(&byte, 1, 1) == 1) all.push_back(static_cast<char>(byte));
  EXPECT_FALSE(client_->WantsWrite());
  server_->Receive(reinterpret_cast<const uint8_t*>(all.data()), all.size());
  EXPECT_THAT(server_->requests_by_path(), ElementsAre(Pair("/", 1u)));
  std::string back;
  server_->Produce(&back);
  for (char c : back) {  // and the server's bytes one at a time
    client_->Receive(reinterpret_cast<const uint8_t*>(&c), 1, 1);
  }
  ASSERT_EQ(recorder_.ends.size(), 1u);
  EXPECT_EQ(recorder_.ends[0].outcome, Outcome::kOk);
}

// nghttp2 allocates per stream; the session's block pool gives those blocks back in steady state,
// so a request takes nothing from malloc once the connection has warmed up (without the pool: 4
// blocks per GET here, measured with nghttp2 1.52).
TEST_F(H2SessionTest, SteadyStateRequestsTakeNothingFromMalloc) {
  if (!H2Session::BlockPoolEnabled()) GTEST_SKIP() << "the pool is off under AddressSanitizer";
  Start();
  const H2Request get = Request("GET", "/");
  const H2Request post = Request("POST", "/", std::string(3000, 'x'));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client_->Submit(get, 2 * i, 0, 1));
    ASSERT_TRUE(client_->Submit(post, 2 * i + 1, 0, 1));
  }
  Pump();
  const uint64_t before = client_->allocations();
  EXPECT_GT(before, 0u);
  constexpr int kRounds = 100;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(client_->Submit(get, 100 + 2 * i, 0, 1));
    ASSERT_TRUE(client_->Submit(post, 101 + 2 * i, 0, 1));
    Pump();
  }
  ASSERT_EQ(recorder_.ends.size(), 20u + 2 * kRounds);
  for (const H2StreamEnd& e : recorder_.ends) EXPECT_EQ(e.outcome, Outcome::kOk) << e.tag;
  EXPECT_EQ(client_->allocations(), before);
}

// A stream submitted with `deliver` hands the final response over as it arrives, before its end:
// its :status once (not the interim 103's), its own fields (not the 103's, not the trailer), and
// its body. A stream submitted without it hands over nothing but its end.
TEST_F(H2SessionTest, DeliveredStreamsHandOverTheFinalResponseOnly) {
  Start();
  const H2Request session = Request("GET", "/session");
  ASSERT_TRUE(client_->Submit(session, 1, 0, 1, /*deliver=*/true));
  ASSERT_TRUE(client_->Submit(session, 2, 0, 1));
  Pump();

  ASSERT_EQ(recorder_.ends.size(), 2u);
  for (const H2StreamEnd& e : recorder_.ends) {
    EXPECT_EQ(e.outcome, Outcome::kOk) << e.tag;
    EXPECT_EQ(e.status, 200) << e.tag;
  }
  std::vector<std::string> first;  // stream 1's events, a run of DATA chunks as one
  for (const std::string& e : recorder_.events) {
    EXPECT_EQ(e.find(" 2 "), std::string::npos) << "stream 2 did not ask for its response: " << e;
    if (e.find(" 1") == std::string::npos) continue;
    if (e == "data 1" && !first.empty() && first.back() == e) continue;
    first.push_back(e);
  }
  const std::string body = R"({"token":"tok-1","items":[{"id":7},{"id":8}]})";
  EXPECT_THAT(first,
              ElementsAre("status 1 200", "header 1 content-length: " + std::to_string(body.size()),
                          "header 1 set-cookie: sid=s1; Path=/", "header 1 set-cookie: theme=dark",
                          "header 1 x-request-id: r1", "data 1", "end 1"));
  EXPECT_EQ(recorder_.bodies[1], body);
  EXPECT_EQ(recorder_.bodies.count(2), 0u);
  EXPECT_EQ(recorder_.Find(2)->body_bytes, body.size());
}

// A scenario renders each request anew: Assign reuses the buffers of the one before, and a wire
// it refuses leaves the request empty rather than half-built.
TEST(H2RequestTest, AssignReusesItsBuffersAndEmptiesOnError) {
  H2Request r;
  EXPECT_TRUE(r.headers().empty());
  ASSERT_TRUE(r.Assign("POST /login HTTP/1.1\r\nHost: h:1\r\nContent-Length: 9\r\n\r\nuser=u1&x",
                       false, ExpectedStatus::Of({200}))
                  .ok());
  ASSERT_EQ(r.headers().size(), 5u);
  const uint8_t* buffer = r.headers()[0].name;
  EXPECT_EQ(r.body(), "user=u1&x");
  EXPECT_TRUE(r.Expected(200));
  EXPECT_FALSE(r.Expected(201));

  ASSERT_TRUE(r.Assign("HEAD /me HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t\r\n\r\n", false,
                       ExpectedStatus::Of({}))
                  .ok());
  EXPECT_EQ(r.headers()[0].name, buffer);  // the same buffer, refilled
  std::vector<std::pair<std::string, std::string>> fields;
  for (const nghttp2_nv& nv : r.headers()) {
    fields.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                        std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
  }
  EXPECT_THAT(fields, ElementsAre(Pair(":method", "HEAD"), Pair(":scheme", "http"),
                                  Pair(":authority", "h:1"), Pair(":path", "/me"),
                                  Pair("authorization", "Bearer t")));
  EXPECT_TRUE(r.head());
  EXPECT_EQ(r.body(), "");
  EXPECT_TRUE(r.Expected(200));  // the default: any of 100..399

  const absl::Status bad =
      r.Assign("GET /x HTTP/1.1\r\nX: y\r\n\r\n", false, ExpectedStatus::Of({}));
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), HasSubstr("no Host header"));
  EXPECT_TRUE(r.headers().empty());
  EXPECT_FALSE(r.head());
}

TEST(H2RequestTest, FromHttp1MapsTheRequestLineAndHeaders) {
  absl::StatusOr<H2Request> r = H2Request::FromHttp1(
      "POST /api?x=1 HTTP/1.1\r\nHost: example.com:8443\r\nX-Trace: A b\r\nConnection: "
      "close\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\nbody",
      true, ExpectedStatus::Of({201}));
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::pair<std::string, std::string>> fields;
  for (const nghttp2_nv& nv : r->headers()) {
    fields.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                        std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
  }
  EXPECT_THAT(fields, ElementsAre(Pair(":method", "POST"), Pair(":scheme", "https"),
                                  Pair(":authority", "example.com:8443"), Pair(":path", "/api?x=1"),
                                  Pair("x-trace", "A b"), Pair("content-length", "4")));
  EXPECT_EQ(r->body(), "body");
  EXPECT_TRUE(r->Expected(201));
  EXPECT_FALSE(r->Expected(200));
  EXPECT_FALSE(r->head());
  H2Request moved = std::move(*r);  // the pairs point into a buffer the move keeps
  EXPECT_EQ(
      std::string(reinterpret_cast<char*>(moved.headers()[3].value), moved.headers()[3].valuelen),
      "/api?x=1");
}

TEST(H2RequestTest, FromHttp1RefusesWhatIsNotAPreparedRequest) {
  for (const char* wire : {"GET / HTTP/1.1\r\nHost: h\r\n", "GET /\r\nHost: h\r\n\r\n",
                           "GET / HTTP/1.1\r\nX: y\r\n\r\n", "GET / HTTP/1.1\r\nnocolon\r\n\r\n"}) {
    absl::StatusOr<H2Request> r = H2Request::FromHttp1(wire, false, ExpectedStatus::Of({}));
    ASSERT_FALSE(r.ok()) << wire;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("HTTP/2 request: ")) << wire;
  }
}

TEST(H2SessionOptionsTest, OutOfRangeOptionsAreNamed) {
  Recorder recorder;
  H2SessionOptions options;
  options.max_concurrent_streams = 0;
  absl::StatusOr<std::unique_ptr<H2Session>> s = H2Session::Create(options, &recorder);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("maxConcurrentStreams"));
  options.max_concurrent_streams = 1001;
  EXPECT_FALSE(H2Session::Create(options, &recorder).ok());
  options = {};
  options.flow_control_stall_ns = 0;
  s = H2Session::Create(options, &recorder);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("flow_control_stall_ns"));
  EXPECT_FALSE(H2Session::Create({}, nullptr).ok());
}

}  // namespace
}  // namespace stampede::agent
