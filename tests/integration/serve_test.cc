// `stampede serve` as a real process on 127.0.0.1 with real agents against the test target: the
// REST API's answers, the run's counts against what the target served, and /metrics checked by
// promtool. `stampede run --metrics-listen` is covered at the end.
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `done` every 50 ms until it holds or `limit` passes.
bool WaitFor(const std::function<bool()>& done, seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return true;
}

struct Response {
  int status = -1;
  std::string body;
  std::string content_type;
  std::string location;
  json Json() const { return json::parse(body, nullptr, /*allow_exceptions=*/false); }
};

Response Convert(const httplib::Result& r) {
  Response out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  out.location = r->get_header_value("Location");
  return out;
}

constexpr char kToken[] = "serve-test-token-0123456789";

// `stampede serve` on free ports; the HTTP port comes from --port-file, written once it listens.
// The API token is kToken (from --token-file) unless `with_token` is false; the client sends it.
class Server {
 public:
  explicit Server(const std::vector<std::string>& extra_args = {}, bool with_token = true)
      : dir_(MakeTempDir()) {
    std::vector<std::string> args{ControllerBinary(), "serve",       "--listen",    "127.0.0.1:0",
                                  "--grpc-listen",    "127.0.0.1:0", "--port-file", dir_ + "/port",
                                  "--logs",           dir_ + "/logs"};
    if (with_token) {
      std::ofstream(dir_ + "/token") << kToken << "\n";
      args.insert(args.end(), {"--token-file", dir_ + "/token"});
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Process>(args);
    const bool up = WaitFor(
        [&] {
          port_ = std::atoi(ReadFile(dir_ + "/port").c_str());
          return port_ > 0 || process_->Wait(milliseconds(0)).has_value();
        },
        seconds(10));
    if (!up || port_ <= 0)
      throw std::runtime_error("stampede serve did not start: " + process_->Stderr());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10, 0);
    if (with_token) client_->set_bearer_token_auth(kToken);
  }
  ~Server() {
    process_.reset();
    (void)!std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  Process& process() { return *process_; }

  Response Get(const std::string& path) { return Convert(client_->Get(path.c_str())); }
  // Any method, with exactly these headers (no token unless given).
  Response Send(const std::string& method, const std::string& path, const httplib::Headers& headers,
                const std::string& body = "", const std::string& type = "") {
    httplib::Client bare("127.0.0.1", port_);
    bare.set_read_timeout(10, 0);
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.headers = headers;
    req.body = body;
    if (!type.empty()) req.set_header("Content-Type", type);
    return Convert(bare.send(req));
  }
  Response Post(const std::string& path, const std::string& body, const std::string& type) {
    return Convert(client_->Post(path.c_str(), body, type.c_str()));
  }
  Response PostLoadTest(const std::string& yaml) {
    return Post("/api/v1/loadtests", yaml, "application/yaml");
  }

  // Polls the run until it has ended; its LoadTest JSON (status.phase set), or null on timeout.
  json WaitEnded(const std::string& id, seconds limit) {
    json last;
    const bool ended = WaitFor(
        [&] {
          last = Get("/api/v1/loadtests/" + id).Json();
          const std::string phase = last.is_object() ? last["status"].value("phase", "") : "";
          return phase == "Succeeded" || phase == "Failed" || phase == "Aborted";
        },
        limit);
    return ended ? last : json();
  }

 private:
  std::string dir_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

std::string LoadTest(const std::string& name, const std::string& target,
                     const std::string& duration) {
  return "apiVersion: stampede.dev/v1alpha1\n"
         "kind: LoadTest\n"
         "metadata: {name: " +
         name +
         ", namespace: it}\n"
         "spec:\n"
         "  target: {url: \"" +
         target +
         "\"}\n"
         "  requests:\n"
         "    - {name: home, path: /, weight: 3}\n"
         "    - {name: delayed, path: /delay/1}\n"
         "  load: {users: 8}\n"
         "  duration: " +
         duration +
         "\n"
         "  agents: 2\n"
         "  threadsPerAgent: 1\n"
         "  thresholds: [\"p95 < 2s\", \"error_rate < 1%\"]\n";
}

// promtool's verdict on an exposition: its output (empty when clean) and exit code.
std::pair<std::string, int> Promtool(const std::string& text) {
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/metrics.txt") << text;
  FILE* p = popen(("promtool check metrics < '" + dir + "/metrics.txt' 2>&1").c_str(), "r");
  std::string out;
  int code = -1;
  if (p != nullptr) {
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    code = pclose(p);
  }
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
  return {out, code};
}

// Sum of the values of the samples whose line starts with `prefix` and contains `part`.
double SumSamples(const std::string& text, const std::string& prefix, const std::string& part = "",
                  int* matched = nullptr) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0 || line.find(part) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    ++count;
  }
  if (matched != nullptr) *matched = count;
  return sum;
}

// The status code curl gets for a bodiless POST (no Content-Length header at all), with the token.
int CurlPost(const std::string& url) {
  FILE* p =
      popen(("curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Authorization: Bearer " +
             std::string(kToken) + "' -X POST '" + url + "'")
                .c_str(),
            "r");
  if (p == nullptr) return -1;
  char buf[16] = {0};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, p);
  pclose(p);
  return n == 0 ? -1 : std::atoi(buf);
}

TEST(Serve, RunsAPostedLoadTestAndItsCountsMatchTheTarget) {
  TestTarget target;
  Server server;
  EXPECT_EQ(server.Get("/healthz").status, 200);
  EXPECT_EQ(server.Get("/readyz").status, 200);

  const Response created = server.PostLoadTest(LoadTest("checkout", target.Url(""), "3s"));
  ASSERT_EQ(created.status, 201) << created.body;
  const json c = created.Json();
  const std::string id = c.value("id", "");
  ASSERT_FALSE(id.empty()) << created.body;
  EXPECT_EQ(c["name"], "checkout");
  EXPECT_EQ(c["namespace"], "it");
  EXPECT_TRUE(c["status"].contains("phase")) << created.body;
  EXPECT_EQ(created.location, "/api/v1/loadtests/" + id);

  const json ended = server.WaitEnded(id, seconds(60));
  ASSERT_TRUE(ended.is_object()) << "no end within 60 s; last: "
                                 << server.Get("/api/v1/loadtests/" + id).body;
  ASSERT_EQ(ended["status"]["phase"], "Succeeded") << ended.dump();
  const long served = target.Served();
  const uint64_t requests = ended["status"]["summary"].value("requests", uint64_t{0});
  EXPECT_GT(requests, 100u);
  EXPECT_EQ(static_cast<long>(requests), served);
  EXPECT_EQ(ended["spec"]["agents"], 2);
  EXPECT_EQ(ended["metadata"]["annotations"]["stampede.dev/run-id"], id);

  // The same run by namespace/name, and in the list.
  EXPECT_EQ(server.Get("/api/v1/namespaces/it/loadtests/checkout")
                .Json()["metadata"]["annotations"]["stampede.dev/run-id"],
            id);
  const json list = server.Get("/api/v1/loadtests").Json();
  ASSERT_EQ(list["items"].size(), 1u) << list.dump();
  EXPECT_EQ(list["items"][0]["id"], id);
  EXPECT_EQ(list["items"][0]["phase"], "Succeeded");
  EXPECT_EQ(list["items"][0]["summary"]["requests"], requests);

  const Response results = server.Get("/api/v1/loadtests/" + id + "/results");
  ASSERT_EQ(results.status, 200);
  EXPECT_EQ(results.content_type, "application/json");
  const json r = results.Json();
  EXPECT_EQ(r["summary"]["requests"], requests) << results.body.substr(0, 500);
  EXPECT_EQ(r["runId"], id);
  EXPECT_GE(r["series"].size(), 3u);
  const Response csv = server.Get("/api/v1/loadtests/" + id + "/results.csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("second,request,requests,", 0), 0u) << csv.body.substr(0, 200);
  // One "*" row per second, whose counts add up to the run's.
  std::istringstream lines(csv.body);
  std::string line;
  uint64_t csv_requests = 0;
  int rows = 0;
  while (std::getline(lines, line)) {
    const size_t star = line.find(",\"*\",");
    if (star == std::string::npos) continue;
    csv_requests += std::stoull(line.substr(star + 5));
    ++rows;
  }
  EXPECT_EQ(csv_requests, requests);
  EXPECT_GE(rows, 3);
  EXPECT_EQ(server.Get("/api/v1/loadtests/" + id + "/results?format=csv").body, csv.body);
  // The HTML report of the finished run, the same as stampede report makes from the results.
  const Response report = server.Get("/api/v1/loadtests/" + id + "/report.html");
  ASSERT_EQ(report.status, 200);
  EXPECT_EQ(report.content_type, "text/html; charset=utf-8");
  EXPECT_NE(report.body.find("<svg"), std::string::npos);
  EXPECT_NE(report.body.find("<td class=\"requests\">" + std::to_string(requests) + "</td>"),
            std::string::npos)
      << report.body.substr(0, 3000);

  const Response metrics = server.Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << metrics.content_type;
  const auto [lint, code] = Promtool(metrics.body);
  EXPECT_EQ(code, 0) << lint;
  EXPECT_EQ(lint, "");
  const std::string counter =
      R"(stampede_requests_total{loadtest="checkout",namespace="it",request=)";
  int series = 0;
  EXPECT_EQ(SumSamples(metrics.body, counter, R"(,outcome="ok"})"), static_cast<double>(served));
  EXPECT_EQ(SumSamples(metrics.body, counter, "", &series),
            static_cast<double>(served));  // no errors
  EXPECT_EQ(series, 2 * 16);               // 2 requests x 16 outcomes (common/stats.h)
  EXPECT_NE(metrics.body.find(
                R"(stampede_phase{loadtest="checkout",namespace="it",phase="Succeeded"} 1)"),
            std::string::npos);
  // Both agents said which I/O backend they ran: the one the kernel allowed (io_uring here unless
  // it is refused) for this plain-HTTP target.
  const std::string backend = R"(stampede_agent_io_backend{loadtest="checkout",namespace="it",)";
  int backends = 0;
  EXPECT_EQ(SumSamples(metrics.body, backend, "", &backends), 2.0) << metrics.body;
  EXPECT_EQ(backends, 2);  // epoll and uring
  EXPECT_NE(
      metrics.body.find(
          R"(stampede_request_duration_quantile_seconds{loadtest="checkout",namespace="it",request="*",window="total",quantile="0.99"})"),
      std::string::npos);
}

TEST(Serve, RejectsBadRequestsWithJsonErrors) {
  Server server;
  const Response invalid = server.PostLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: bad}\n"
      "spec:\n  target: {url: \"http://127.0.0.1:1\"}\n  load: {users: 0, foo: 1}\n  duration: "
      "3q\n");
  ASSERT_EQ(invalid.status, 400) << invalid.body;
  const json e = invalid.Json();
  EXPECT_EQ(e["error"], "invalid LoadTest");
  // One entry per problem, each "<field path>: <reason>".
  const std::vector<std::string> problems = e["problems"];
  ASSERT_EQ(problems.size(), 3u) << invalid.body;
  for (const std::string field : {"spec.load.foo: ", "spec.load.users: ", "spec.duration: "}) {
    EXPECT_EQ(std::count_if(problems.begin(), problems.end(),
                            [&](const std::string& p) { return p.rfind(field, 0) == 0; }),
              1)
        << field << " in " << invalid.body;
  }

  const Response syntax =
      server.Post("/api/v1/loadtests", "{\"kind\": \"LoadTest\"", "application/json");
  EXPECT_EQ(syntax.status, 400);
  EXPECT_EQ(syntax.Json()["problems"].size(), 1u) << syntax.body;
  EXPECT_EQ(server.Post("/api/v1/loadtests", "<html/>", "text/html").status, 415);
  // A lone comma made yaml-cpp's LoadAll loop forever, allocating (a worker and all memory gone).
  const Response comma = server.Post("/api/v1/loadtests", ",", "application/yaml");
  EXPECT_EQ(comma.status, 400) << comma.body;
  const Response big =
      server.Post("/api/v1/loadtests", std::string(2 << 20, 'a'), "application/yaml");
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.Json()["error"], "request body too large");

  for (const std::string path :
       {"/api/v1/loadtests/nope", "/api/v1/loadtests/nope/results",
        "/api/v1/loadtests/nope/report.html", "/api/v1/namespaces/it/loadtests/nope", "/nope"}) {
    const Response r = server.Get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_TRUE(r.Json().contains("error")) << path << ": " << r.body;
  }
  EXPECT_EQ(CurlPost(server.Url("/api/v1/loadtests/nope/abort")), 404);
  EXPECT_EQ(server.Get("/api/v1/loadtests").Json()["items"].size(), 0u);
}

TEST(Serve, ASecondPostWhileRunningConflictsAndAbortEndsTheRun) {
  TestTarget target;
  Server server;
  const Response first = server.PostLoadTest(LoadTest("long", target.Url(""), "2m"));
  ASSERT_EQ(first.status, 201) << first.body;
  const std::string id = first.Json()["id"];
  const Response again = server.PostLoadTest(LoadTest("long", target.Url(""), "2m"));
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(again.Json()["id"], id);

  // Abort once load is flowing, with a bodiless POST as curl sends it.
  ASSERT_TRUE(WaitFor([&] { return target.Served() > 0; }, seconds(30)))
      << server.process().Stderr();
  EXPECT_EQ(CurlPost(server.Url("/api/v1/loadtests/" + id + "/abort")), 202);
  const json ended = server.WaitEnded(id, seconds(20));
  ASSERT_TRUE(ended.is_object()) << server.Get("/api/v1/loadtests/" + id).body;
  EXPECT_EQ(ended["status"]["phase"], "Aborted");
  EXPECT_EQ(ended["status"]["reason"], "Aborted");
  EXPECT_GT(ended["status"]["summary"].value("requests", uint64_t{0}), 0u);
  EXPECT_EQ(CurlPost(server.Url("/api/v1/loadtests/" + id + "/abort")), 409);

  // Ended, the name is free again; SIGTERM then aborts the new run and the server exits 0.
  const Response rerun = server.PostLoadTest(LoadTest("long", target.Url(""), "2m"));
  ASSERT_EQ(rerun.status, 201) << rerun.body;
  EXPECT_NE(rerun.Json()["id"], id);
  ASSERT_TRUE(WaitFor(
      [&] { return server.Get("/api/v1/loadtests").Json()["items"][1]["phase"] == "Running"; },
      seconds(30)));
  server.process().Signal(SIGTERM);
  EXPECT_EQ(server.process().Wait(seconds(20)), 0) << server.process().Stderr();
  EXPECT_NE(server.process().Stderr().find(
                "phase=Aborted reason=Aborted message=\"controller shutting down (SIGTERM)\""),
            std::string::npos)
      << server.process().Stderr();
}

// A long-lived server keeps a bounded number of finished runs: with --keep-runs 1, posting a
// third test forgets the oldest finished one, and keeps the newer one and the active one.
// Issue 9: a web page must not be able to drive a developer's local server, and nothing is served
// without the token but health.
TEST(Serve, EveryRouteButHealthNeedsTheToken) {
  Server server;
  const std::string lt = LoadTest("guarded", "http://127.0.0.1:1", "1s");
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/loadtests"},
                                                        {"POST", "/api/v1/loadtests"},
                                                        {"GET", "/metrics"},
                                                        {"GET", "/api/v1/loadtests/x/results"},
                                                        {"POST", "/api/v1/loadtests/x/abort"}}) {
    const Response none = server.Send(method, path, {}, lt, "application/yaml");
    EXPECT_EQ(none.status, 401) << method << " " << path << ": " << none.body;
    const Response wrong = server.Send(
        method, path, {{"Authorization", "Bearer not-the-token-at-all"}}, lt, "application/yaml");
    EXPECT_EQ(wrong.status, 401) << method << " " << path;
  }
  EXPECT_EQ(server.Send("GET", "/healthz", {}).status, 200);
  EXPECT_EQ(server.Send("GET", "/readyz", {}).status, 200);
  EXPECT_EQ(
      server.Send("GET", "/api/v1/loadtests", {{"Authorization", std::string("Bearer ") + kToken}})
          .status,
      200);
  EXPECT_EQ(server.Get("/api/v1/loadtests").Json()["items"].size(), 0u)
      << "a refused POST started a test";
}

TEST(Serve, PublicMetricsNeedNoTokenAndAGeneratedTokenIsPrinted) {
  Server server({"--public-metrics"}, /*with_token=*/false);
  EXPECT_EQ(server.Send("GET", "/metrics", {}).status, 200);
  EXPECT_EQ(server.Send("GET", "/api/v1/loadtests", {}).status, 401);
  const std::string err = server.process().Stderr();
  const size_t at = err.find("API token");
  ASSERT_NE(at, std::string::npos) << err;
  const size_t line = err.find("\n  ", at);
  ASSERT_NE(line, std::string::npos) << err;
  const std::string token = err.substr(line + 3, err.find('\n', line + 3) - line - 3);
  EXPECT_GE(token.size(), 16u) << err;
  EXPECT_EQ(server.Send("GET", "/api/v1/loadtests", {{"Authorization", "Bearer " + token}}).status,
            200);
}

TEST(Serve, OnlyYamlOrJsonBodiesAreTaken) {
  Server server;
  const std::string lt = LoadTest("types", "http://127.0.0.1:1", "1s");
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  // What a browser sends from any page without a preflight, and what curl -d sends.
  for (const std::string type :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
        "application/octet-stream", "", "text/yaml"}) {
    EXPECT_EQ(server.Send("POST", "/api/v1/loadtests", auth, lt, type).status, 415)
        << "\"" << type << "\"";
  }
  EXPECT_EQ(server.Send("POST", "/api/v1/loadtests", auth, lt, "application/x-yaml; charset=utf-8")
                .status,
            201);
}

TEST(Serve, RequestsFromWebPagesAndOtherHostsAreRefused) {
  Server server;
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  auto with = [&](std::initializer_list<std::pair<const std::string, std::string>> extra) {
    httplib::Headers h = auth;
    for (const auto& e : extra) h.insert(e);
    return h;
  };
  const std::string self = "127.0.0.1:" + std::to_string(server.port());
  // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
  const Response rebound =
      server.Send("GET", "/api/v1/loadtests",
                  with({{"Host", "evil.example:" + std::to_string(server.port())}}));
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  EXPECT_NE(rebound.Json()["error"].get<std::string>().find("is not this server"),
            std::string::npos);
  const Response cross = server.Send("GET", "/api/v1/loadtests",
                                     with({{"Host", self}, {"Origin", "http://evil.example"}}));
  EXPECT_EQ(cross.status, 403) << cross.body;
  EXPECT_EQ(
      server.Send("GET", "/api/v1/loadtests", with({{"Host", self}, {"Origin", "http://" + self}}))
          .status,
      200)
      << "a same-origin page (a web UI served here) is not refused";
  EXPECT_EQ(server
                .Send("GET", "/api/v1/loadtests",
                      with({{"Host", "localhost:" + std::to_string(server.port())}}))
                .status,
            200);
}

TEST(Serve, AKnownRouteWithAnotherMethodIs405) {
  Server server;
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  for (const auto& [method, path, allow] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"DELETE", "/api/v1/loadtests/x", "GET"},
           {"PUT", "/api/v1/loadtests", "GET, POST"},
           {"OPTIONS", "/api/v1/loadtests", "GET, POST"},
           {"GET", "/api/v1/loadtests/x/abort", "POST"},
           {"POST", "/metrics", "GET"},
           {"DELETE", "/healthz", "GET"}}) {
    httplib::Client c("127.0.0.1", server.port());
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.headers = auth;
    const httplib::Result r = c.send(req);
    ASSERT_TRUE(r) << method << " " << path;
    EXPECT_EQ(r->status, 405) << method << " " << path;
    EXPECT_EQ(r->get_header_value("Allow"), allow) << method << " " << path;
  }
}

TEST(Serve, SecretRequestHeadersAreRedactedWhenATestIsRead) {
  TestTarget target;
  Server server;
  const std::string lt =
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: secrets, namespace: "
      "it}\nspec:\n"
      "  target: {url: \"" +
      target.Url("") +
      "\"}\n"
      "  requests:\n    - {path: /, headers: {Authorization: Bearer s3cret, X-Api-Key: k3y, "
      "Cookie: c00kie, X-Plain: shown}}\n"
      "  secretHeaders: [x-api-key]\n  load: {users: 1}\n  duration: 1s\n";
  const Response created = server.PostLoadTest(lt);
  ASSERT_EQ(created.status, 201) << created.body;
  const Response got = server.Get("/api/v1/loadtests/" + created.Json()["id"].get<std::string>());
  ASSERT_EQ(got.status, 200);
  for (const char* secret : {"s3cret", "k3y", "c00kie"}) {
    EXPECT_EQ(got.body.find(secret), std::string::npos) << secret << " echoed back: " << got.body;
  }
  const json headers = got.Json()["spec"]["requests"][0]["headers"];
  EXPECT_EQ(headers["Authorization"], "<redacted>");
  EXPECT_EQ(headers["X-Api-Key"], "<redacted>");
  EXPECT_EQ(headers["X-Plain"], "shown");
}

// The body limit holds however the body is framed, without buffering past it.
TEST(Serve, AChunkedUploadIsRefusedAtTheLimitWithoutBeingBuffered) {
  Server server;
  const int pid = server.process().pid();
  auto peak_kb = [pid] {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return -1L;
  };
  const long before = peak_kb();
  // 64 MiB in 64 KiB chunks; curl streams it with Transfer-Encoding: chunked.
  const std::string dir = MakeTempDir();
  FILE* p = popen(("head -c 67108864 /dev/zero | curl -s -o " + dir +
                   "/body -w '%{http_code}' --max-time 30 -H "
                   "'Authorization: Bearer " +
                   std::string(kToken) +
                   "' -H 'Content-Type: application/yaml' "
                   "-H 'Transfer-Encoding: chunked' --data-binary @- " +
                   server.Url("/api/v1/loadtests"))
                      .c_str(),
                  "r");
  ASSERT_NE(p, nullptr);
  char code[16] = {0};
  const size_t n = std::fread(code, 1, sizeof(code) - 1, p);
  pclose(p);
  ASSERT_GT(n, 0u);
  EXPECT_STREQ(code, "413");
  EXPECT_NE(ReadFile(dir + "/body").find("request body too large"), std::string::npos);
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
  const long after = peak_kb();
  EXPECT_LT(after - before, 8 * 1024)
      << "peak RSS grew by " << (after - before) << " KB for a refused upload";
  RecordProperty("chunked_upload_peak_rss_growth_kb", std::to_string(after - before));
}

TEST(Serve, KeepsAtMostKeepRunsFinishedRuns) {
  TestTarget target;
  Server server({"--keep-runs", "1"});
  std::vector<std::string> ids;
  for (const char* name : {"first", "second"}) {
    const Response created = server.PostLoadTest(LoadTest(name, target.Url(""), "1s"));
    ASSERT_EQ(created.status, 201) << created.body;
    ids.push_back(created.Json()["id"]);
    ASSERT_FALSE(server.WaitEnded(ids.back(), seconds(60)).is_null()) << name << " did not end";
  }
  // Both finished, nothing posted since: both still there.
  EXPECT_EQ(server.Get("/api/v1/loadtests/" + ids[0]).status, 200);
  const Response third = server.PostLoadTest(LoadTest("third", target.Url(""), "1s"));
  ASSERT_EQ(third.status, 201) << third.body;
  EXPECT_EQ(server.Get("/api/v1/loadtests/" + ids[0]).status, 404);
  EXPECT_EQ(server.Get("/api/v1/loadtests/" + ids[0] + "/results").status, 404);
  EXPECT_EQ(server.Get("/api/v1/loadtests/" + ids[1]).status, 200);
  const json list = server.Get("/api/v1/loadtests").Json();
  ASSERT_TRUE(list.is_object()) << "list is not JSON";
  EXPECT_EQ(list["items"].size(), 2u);
  EXPECT_FALSE(server.WaitEnded(third.Json()["id"], seconds(60)).is_null());
  // A bad value is a usage error naming the flag.
  Process bad({ControllerBinary(), "serve", "--keep-runs", "-1"});
  const std::optional<int> rc = bad.Wait(seconds(10));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 2);
  EXPECT_NE(bad.Stderr().find("--keep-runs"), std::string::npos) << bad.Stderr();
}

TEST(Serve, WithoutAPolicyOnlyLoopbackTargetsAreTakenAndRefusalsAreCounted) {
  TestTarget target;
  Server server;
  for (const std::string url : {"http://10.0.0.1:8080", "http://example.com",
                                "http://169.254.169.254", "http://[::ffff:10.0.0.1]"}) {
    const Response refused = server.PostLoadTest(LoadTest("far", url, "1s"));
    EXPECT_EQ(refused.status, 403) << url << ": " << refused.body;
    const json body = refused.Json();
    ASSERT_TRUE(body.is_object()) << refused.body;
    EXPECT_EQ(body["rule"], "loopback") << url;
    EXPECT_EQ(body["field"], "spec.target.url") << url;
    EXPECT_NE(body["problems"][0].get<std::string>().find("spec.target.url: "), std::string::npos)
        << refused.body;
  }
  EXPECT_EQ(server.Get("/api/v1/loadtests").Json()["items"].size(), 0u) << "nothing was created";
  const std::string metrics = server.Get("/metrics").body;
  EXPECT_EQ(
      SumSamples(metrics, "stampede_policy_refusals_total{", "namespace=\"it\",rule=\"loopback\""),
      4)
      << metrics;
  const auto [problems, code] = Promtool(metrics);
  EXPECT_EQ(code, 0) << problems;
  // A name that resolves to loopback is taken, as is the literal.
  const Response created = server.PostLoadTest(
      LoadTest("near", "http://localhost:" + std::to_string(target.port()), "1s"));
  ASSERT_EQ(created.status, 201) << created.body;
  const json ended = server.WaitEnded(created.Json()["id"], seconds(60));
  EXPECT_EQ(ended["status"]["phase"], "Succeeded") << ended.dump();
}

TEST(Serve, APolicyFileSetsTheLimitsAndABadOneIsAUsageError) {
  TestTarget target;
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/policy.yaml") << "apiVersion: stampede.dev/v1alpha1\n"
                                         "kind: LoadTestPolicy\n"
                                         "rules:\n"
                                         "  - name: it\n"
                                         "    namespaces: [it]\n"
                                         "    addresses: [\"127.0.0.0/8\"]\n"
                                         "    limits: {agents: 1, duration: 2s}\n";
  Server server({"--policy", dir + "/policy.yaml"});
  const Response two = server.PostLoadTest(LoadTest("two", target.Url(""), "1s"));  // 2 agents
  EXPECT_EQ(two.status, 403) << two.body;
  EXPECT_EQ(two.Json()["field"], "spec.agents");
  EXPECT_EQ(two.Json()["problems"][0], "spec.agents: 2 agents; at most 1 allowed (rule it)");
  std::string one = LoadTest("one", target.Url(""), "3s");
  one.replace(one.find("agents: 2"), 9, "agents: 1");
  const Response long_one = server.PostLoadTest(one);
  EXPECT_EQ(long_one.status, 403) << long_one.body;
  EXPECT_EQ(long_one.Json()["field"], "spec.duration");

  std::ofstream(dir + "/bad.yaml") << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTestPolicy\n"
                                      "rules: [{name: x, addresses: [\"10.0.0.0/99\"]}]\n";
  Process bad({ControllerBinary(), "serve", "--listen", "127.0.0.1:0", "--grpc-listen",
               "127.0.0.1:0", "--policy", dir + "/bad.yaml", "--token", kToken});
  const std::optional<int> rc = bad.Wait(seconds(10));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 2);
  EXPECT_NE(bad.Stderr().find("rules[0].addresses[0]: \"10.0.0.0/99\""), std::string::npos)
      << bad.Stderr();
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(RunMetricsListen, ServesMetricsWhileTheTestRuns) {
  TestTarget target;
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/test.yaml") << LoadTest("cli", target.Url(""), "3s");
  Process run({ControllerBinary(), "run", dir + "/test.yaml", "--metrics-listen", "127.0.0.1:0",
               "--logs", dir + "/logs"});
  // The bound port is printed as "metrics on http://127.0.0.1:PORT/metrics".
  std::string err, url;
  ASSERT_TRUE(WaitFor(
      [&] {
        err = run.Stderr();
        const size_t at = err.find("metrics on http://127.0.0.1:");
        const size_t end = err.find("/metrics\n", at);
        if (at == std::string::npos || end == std::string::npos) return false;
        url = err.substr(at + 11, end + 8 - (at + 11));
        return true;
      },
      seconds(10)))
      << err;
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = HttpGet(url).value_or("");
        return SumSamples(
                   text,
                   R"(stampede_requests_total{loadtest="cli",namespace="it",request="home",outcome="ok"})") >
               0;
      },
      seconds(20)))
      << text;
  EXPECT_NE(text.find(R"(stampede_phase{loadtest="cli",namespace="it",phase="Running"} 1)"),
            std::string::npos)
      << text;
  const auto [lint, code] = Promtool(text);
  EXPECT_EQ(code, 0) << lint;
  EXPECT_EQ(lint, "");
  EXPECT_EQ(run.Wait(seconds(60)), 0) << run.Stderr();
  EXPECT_FALSE(HttpGet(url).has_value());  // only for the run's duration
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(RunMetricsListen, LingersWithTheFinalValuesUntilAStopSignal) {
  // Without the linger, a scrape every few seconds misses the end of the run: its last counts and
  // its final phase.
  TestTarget target;
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/test.yaml") << LoadTest("linger", target.Url(""), "2s");
  Process run({ControllerBinary(), "run", dir + "/test.yaml", "--metrics-listen", "127.0.0.1:0",
               "--metrics-linger", "5m", "--out", dir + "/results.json", "--logs", dir + "/logs"});
  std::string err;
  ASSERT_TRUE(WaitFor(
      [&] {
        err = run.Stderr();
        return err.find("/metrics stays up for 5m") != std::string::npos;
      },
      seconds(60)))
      << err;
  const size_t at = err.find("metrics on http://127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << err;
  const std::string url = err.substr(at + 11, err.find("/metrics\n", at) + 8 - (at + 11));
  const json results = json::parse(ReadFile(dir + "/results.json"));
  const std::string text = HttpGet(url).value_or("");
  EXPECT_NE(text.find(R"(stampede_phase{loadtest="linger",namespace="it",phase="Succeeded"} 1)"),
            std::string::npos)
      << text;
  for (const json& r : results["requests"]) {
    const std::string name = r["name"];
    EXPECT_EQ(
        SumSamples(text, R"(stampede_requests_total{loadtest="linger",namespace="it",request=")" +
                             name + "\""),
        r["requests"].get<double>())
        << name;
  }
  EXPECT_GT(results["summary"]["requests"].get<double>(), 0);
  run.Signal(SIGTERM);  // ends the linger long before its 5 minutes
  EXPECT_EQ(run.Wait(seconds(10)), 0) << run.Stderr();
  EXPECT_FALSE(HttpGet(url).has_value());
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace stampede::testing
