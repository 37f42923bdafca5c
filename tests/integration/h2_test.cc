// stampede-agent bench speaking HTTP/2: against Debian's nginx with HTTP/2 enabled (h2c by prior
// knowledge, h2 by ALPN over TLS), whose access log must count exactly the requests the agent
// reports, and against the test target's HTTP/2 server misbehaving at the frame level, where each
// misbehaviour must be counted under its own outcome.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct BenchResult {
  int exit_code = -1;
  json summary;
  std::string stderr_text;
};

BenchResult RunBench(std::vector<std::string> args) {
  std::vector<std::string> argv = {AgentBinary(), "bench", "--json", "--quiet"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process agent(argv);
  BenchResult r;
  auto code = agent.Wait(seconds(60));
  r.stderr_text = agent.Stderr();
  if (!code.has_value()) {
    ADD_FAILURE() << "agent did not finish within 60 s";
    return r;
  }
  r.exit_code = *code;
  if (*code == 0) r.summary = json::parse(agent.Stdout());
  return r;
}

uint64_t Errors(const json& s, const std::string& kind) {
  return s["errors"][kind].get<uint64_t>();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// nginx in the foreground, one process, on five free loopback ports: h2c, TLS with h2 (ALPN), TLS
// without it, h2c that ends each connection after 100 requests (GOAWAY), and plain HTTP/1.1 to
// tell when it is up. Its access log has one line "PROTOCOL STATUS" per request.
class Nginx {
 public:
  Nginx() : dir_(MakeTempDir()) {
    const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem";
    const std::string openssl =
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(openssl.c_str()) != 0) {
      ADD_FAILURE() << "openssl could not make a certificate";
      return;
    }
    h2c_port_ = FreeLoopbackPort();
    h2_port_ = FreeLoopbackPort();
    h1_tls_port_ = FreeLoopbackPort();
    const int h1_port = FreeLoopbackPort();
    recycle_port_ = FreeLoopbackPort();
    std::ofstream conf(dir_ + "/nginx.conf");
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
         << "pid " << dir_ << "/nginx.pid;\nerror_log " << dir_ << "/error.log warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http {\n"
         << "  log_format proto '$server_protocol $status';\n"
         << "  access_log " << dir_ << "/access.log proto;\n"
         << "  keepalive_requests 1000000;\n"
         << "  client_body_temp_path " << dir_ << "/body;\n"
         << "  proxy_temp_path " << dir_ << "/proxy;\n"
         << "  fastcgi_temp_path " << dir_ << "/fastcgi;\n"
         << "  uwsgi_temp_path " << dir_ << "/uwsgi;\n"
         << "  scgi_temp_path " << dir_ << "/scgi;\n"
         << "  ssl_certificate " << cert << ";\n  ssl_certificate_key " << key << ";\n"
         << "  server { listen 127.0.0.1:" << h2c_port_ << " http2;\n"
         << "    location / { return 200 \"hello\\n\"; } }\n"
         << "  server { listen 127.0.0.1:" << h2_port_ << " ssl http2;\n"
         << "    location / { return 200 \"hello\\n\"; } }\n"
         << "  server { listen 127.0.0.1:" << h1_tls_port_ << " ssl;\n"
         << "    location / { return 200 \"hello\\n\"; } }\n"
         << "  server { listen 127.0.0.1:" << recycle_port_ << " http2;\n"
         << "    keepalive_requests 100;\n"
         << "    location / { return 200 \"hello\\n\"; } }\n"
         << "  server { listen 127.0.0.1:" << h1_port << ";\n"
         << "    location / { return 200 \"hello\\n\"; } }\n"
         << "}\n";
    conf.close();
    process_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", dir_ + "/", "-e", dir_ + "/error.log",
                                 "-c", dir_ + "/nginx.conf"});
    // Up once it answers on its plain HTTP/1.1 listener (all four open together).
    const bool up = WaitUntil(seconds(10), [&] {
      return HttpGet("http://127.0.0.1:" + std::to_string(h1_port) + "/").has_value();
    });
    if (!up) ADD_FAILURE() << "nginx did not start: " << ReadFile(dir_ + "/error.log");
    // The probe's own line is not one of the test's requests.
    std::ofstream(dir_ + "/access.log", std::ios::trunc).close();
  }
  ~Nginx() {
    if (process_ != nullptr) {
      process_->Signal(SIGQUIT);
      process_->Wait(seconds(10));
    }
    (void)!std::system(("rm -rf " + dir_).c_str());
  }
  std::string H2cUrl() const { return "http://127.0.0.1:" + std::to_string(h2c_port_) + "/"; }
  std::string RecyclingH2cUrl() const {
    return "http://127.0.0.1:" + std::to_string(recycle_port_) + "/";
  }
  std::string H2Url() const { return "https://127.0.0.1:" + std::to_string(h2_port_) + "/"; }
  std::string Http1TlsUrl() const {
    return "https://127.0.0.1:" + std::to_string(h1_tls_port_) + "/";
  }
  std::string AccessLog() const { return ReadFile(dir_ + "/access.log"); }

 private:
  std::string dir_;
  int h2c_port_ = 0, h2_port_ = 0, h1_tls_port_ = 0, recycle_port_ = 0;
  std::unique_ptr<Process> process_;
};

TEST(Http2, H2cAgainstNginxCountsWhatNginxServed) {
  Nginx nginx;
  BenchResult r = RunBench({"--url", nginx.H2cUrl(), "--protocol", "h2c", "--users", "20",
                            "--max-streams", "5", "--threads", "1", "--duration", "1s"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const uint64_t requests = r.summary["requests"];
  EXPECT_GT(requests, 100u);
  EXPECT_EQ(r.summary["errors_total"], 0u) << r.summary.dump();
  EXPECT_EQ(r.summary["status"]["2xx"], requests);
  // 20 users, 5 streams each connection: 4 connections, kept for the whole run.
  EXPECT_EQ(r.summary["connections_opened"], 4u);
  EXPECT_EQ(r.summary["io"], "epoll");  // HTTP/2 runs on epoll
  const std::string log = nginx.AccessLog();
  EXPECT_EQ(CountOf(log, "HTTP/2.0 200\n"), requests);
  EXPECT_EQ(CountOf(log, "\n"), requests) << log.substr(0, 500);
}

// nginx ends a connection after keepalive_requests with a GOAWAY; the streams in flight above its
// last stream id were never processed and go out again on the next connection, as browsers do.
TEST(Http2, ConnectionsTheServerRecyclesCostNoErrors) {
  Nginx nginx;
  BenchResult r = RunBench({"--url", nginx.RecyclingH2cUrl(), "--protocol", "h2c", "--users", "20",
                            "--max-streams", "5", "--threads", "1", "--duration", "1s"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const uint64_t requests = r.summary["requests"];
  EXPECT_GT(requests, 1000u);
  EXPECT_EQ(r.summary["errors_total"], 0u) << r.summary.dump();
  // At most 100 requests per connection.
  EXPECT_GE(r.summary["connections_opened"].get<uint64_t>(), requests / 100);
  EXPECT_EQ(CountOf(nginx.AccessLog(), "HTTP/2.0 200\n"), requests);
}

TEST(Http2, H2OverTlsIsNegotiatedByAlpn) {
  Nginx nginx;
  BenchResult r = RunBench({"--url", nginx.H2Url(), "--protocol", "h2", "--insecure", "--users",
                            "8", "--max-streams", "4", "--duration", "1s"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const uint64_t requests = r.summary["requests"];
  EXPECT_GT(requests, 100u);
  EXPECT_EQ(r.summary["errors_total"], 0u) << r.summary.dump();
  EXPECT_EQ(CountOf(nginx.AccessLog(), "HTTP/2.0 200\n"), requests);

  // A TLS server that does not offer h2 cannot take HTTP/2 frames: every request counts as tls,
  // nothing reaches it as a request.
  BenchResult h1 = RunBench({"--url", nginx.Http1TlsUrl(), "--protocol", "h2", "--insecure",
                             "--users", "2", "--duration", "500ms", "--timeout", "2s"});
  ASSERT_EQ(h1.exit_code, 0) << h1.stderr_text;
  EXPECT_GT(Errors(h1.summary, "tls"), 0u) << h1.summary.dump();
  EXPECT_EQ(Errors(h1.summary, "tls"), h1.summary["requests"].get<uint64_t>()) << h1.summary.dump();
  EXPECT_EQ(CountOf(nginx.AccessLog(), "HTTP/1.1"), 0u);
}

struct H2Case {
  std::string name;
  std::string path;
  std::vector<std::string> kinds;  // the outcomes allowed, the first one required
  std::vector<std::string> extra;
  std::vector<std::string> target_extra;
  std::string users = "4";  // on one thread: streams of one connection
};

class Http2Misbehaving : public ::testing::TestWithParam<H2Case> {};

TEST_P(Http2Misbehaving, EachFrameLevelFaultIsCountedUnderItsOutcome) {
  const H2Case& c = GetParam();
  std::vector<std::string> target_args = {"--h2c"};
  target_args.insert(target_args.end(), c.target_extra.begin(), c.target_extra.end());
  TestTarget target(target_args);
  std::vector<std::string> args = {
      "--url", target.Url(c.path), "--protocol", "h2c",       "--users", c.users,   "--threads",
      "1",     "--duration",       "1s",         "--timeout", "300ms",   "--grace", "0s"};
  args.insert(args.end(), c.extra.begin(), c.extra.end());
  BenchResult r = RunBench(args);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const uint64_t requests = r.summary["requests"];
  ASSERT_GT(requests, 0u) << r.summary.dump();
  uint64_t counted = 0;
  for (const std::string& kind : c.kinds) {
    counted += kind == "ok" ? r.summary["ok"].get<uint64_t>() : Errors(r.summary, kind);
  }
  // Requests still in a stream when the run ends are cancelled; nothing else may appear.
  EXPECT_EQ(counted + Errors(r.summary, "cancelled"), requests) << r.summary.dump();
  const std::string& first = c.kinds.front();
  EXPECT_GT(first == "ok" ? r.summary["ok"].get<uint64_t>() : Errors(r.summary, first), 0u)
      << r.summary.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Faults, Http2Misbehaving,
    ::testing::Values(
        H2Case{"answers", "/", {"ok"}, {}, {}}, H2Case{"status", "/status/503", {"status"}, {}, {}},
        H2Case{"rst_stream", "/rst", {"rst_stream"}, {}, {}},
        H2Case{"refused_stream", "/refuse", {"rst_stream"}, {}, {}},
        // The stream the GOAWAY names is answered; the 7 others in flight are refused, sent again
        // on a new connection, where one is answered and 6 are refused a second time: counted.
        H2Case{"goaway", "/goaway", {"goaway", "ok"}, {}, {}, "8"},
        // A protocol error ends the connection: the faulty stream and those in flight with it are
        // malformed, except streams the server's own GOAWAY then refuses.
        H2Case{"garbage_frame", "/garbage", {"malformed", "goaway"}, {}, {}},
        H2Case{"bad_hpack", "/bad-hpack", {"malformed", "goaway"}, {}, {}},
        H2Case{"bad_status", "/bad-status", {"malformed", "goaway"}, {}, {}},
        H2Case{"no_answer", "/hang", {"timeout"}, {}, {}},
        // A request body the server's window never lets out: flow_control after the stall bound
        // (1 s), before the 2 s timeout. Bodies sent before the server's SETTINGS (with its zero
        // window) arrived still used the default window and are answered.
        H2Case{"zero_window",
               "/",
               {"flow_control", "ok"},
               {"--method", "POST", "--body", "payload", "--timeout", "2s", "--duration", "2500ms"},
               {"--h2-zero-window"}}),
    [](const ::testing::TestParamInfo<H2Case>& info) { return info.param.name; });

TEST(Http2, BadProtocolFlagsAreUsageErrors) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--url", "http://127.0.0.1:1/", "--protocol", "h3"},
       "--protocol: must be http1, h2 or h2c"},
      {{"--url", "http://127.0.0.1:1/", "--protocol", "h2"}, "protocol: h2 needs an https:// URL"},
      {{"--url", "https://127.0.0.1:1/", "--protocol", "h2c"},
       "protocol: h2c needs an http:// URL"},
      {{"--url", "http://127.0.0.1:1/", "--protocol", "h2c", "--max-streams", "0"},
       "--max-streams"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> all = args;
    for (const char* a : {"--users", "2", "--duration", "1s"}) all.push_back(a);
    BenchResult r = RunBench(all);
    EXPECT_EQ(r.exit_code, 2) << message;
    EXPECT_NE(r.stderr_text.find(message), std::string::npos) << r.stderr_text;
  }
}

}  // namespace
}  // namespace stampede::testing
