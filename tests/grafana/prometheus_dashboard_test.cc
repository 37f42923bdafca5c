// Every query of deploy/grafana/stampede.json against a real Prometheus (Debian's) that scraped a
// real `stampede run` every second: two requests, two agents, an open-model rate against the test
// target. Each panel's every query, with the variables filled in as Grafana fills them, returns
// data through Prometheus' HTTP API, and the figures agree with the run's results JSON: the
// whole-run counts and exact percentiles equal them, the achieved rate is within 5 % of the run's,
// and the target rate is the spec's.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

const std::string kSource = STAMPEDE_SOURCE_DIR;
constexpr double kRate = 200;  // requests per second over both agents

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool WaitFor(const std::function<bool()>& done, seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

class PrometheusDashboard : public ::testing::Test {
 protected:
  // Prometheus' answer to `path?params` as JSON (null when it did not answer 200).
  json Api(const std::string& path,
           const std::vector<std::pair<std::string, std::string>>& params) {
    std::string url = absl::StrCat("http://127.0.0.1:", prometheus_port_, path, "?");
    for (const auto& [k, v] : params) absl::StrAppend(&url, k, "=", UrlEncode(v), "&");
    const std::optional<std::string> body = HttpGet(url);
    if (!body.has_value()) return nullptr;
    return json::parse(*body, nullptr, /*allow_exceptions=*/false);
  }
  json Instant(const std::string& expr) {
    json r = Api("/api/v1/query", {{"query", expr}, {"time", absl::StrCat(end_s_)}});
    return r.is_object() && r["status"] == "success" ? r["data"]["result"] : json();
  }
  json Range(const std::string& expr) {
    json r = Api("/api/v1/query_range", {{"query", expr},
                                         {"start", absl::StrCat(start_s_)},
                                         {"end", absl::StrCat(end_s_)},
                                         {"step", "1"}});
    return r.is_object() && r["status"] == "success" ? r["data"]["result"] : json();
  }

  int prometheus_port_ = 0;
  long start_s_ = 0, end_s_ = 0;
};

TEST_F(PrometheusDashboard, EveryQueryReturnsDataThatAgreesWithTheResults) {
  const json dashboard = json::parse(ReadFile(kSource + "/deploy/grafana/stampede.json"));
  TestTarget target;
  const std::string dir = MakeTempDir();
  prometheus_port_ = FreeLoopbackPort();
  const int metrics_port = FreeLoopbackPort();
  std::ofstream(dir + "/prometheus.yml") << "global: {scrape_interval: 1s}\n"
                                            "scrape_configs:\n"
                                            "  - job_name: stampede-controller\n"
                                            "    honor_labels: true\n"
                                            "    static_configs: [{targets: [\"127.0.0.1:"
                                         << metrics_port << "\"]}]\n";
  Process prometheus({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                      "--storage.tsdb.path=" + dir + "/data",
                      absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)});
  ASSERT_TRUE(WaitFor(
      [&] {
        return HttpGet(absl::StrCat("http://127.0.0.1:", prometheus_port_, "/-/ready")).has_value();
      },
      seconds(60)))
      << prometheus.Stderr();

  std::ofstream(dir + "/test.yaml") << "apiVersion: stampede.dev/v1alpha1\n"
                                       "kind: LoadTest\n"
                                       "metadata: {name: promtest, namespace: it}\n"
                                       "spec:\n"
                                       "  target: {url: \""
                                    << target.Url("") << "\"}\n"
                                    << "  requests:\n"
                                       "    - {name: home, path: /, weight: 3}\n"
                                       "    - {name: delayed, path: /delay/2}\n"
                                       "  load: {rate: "
                                    << kRate
                                    << ", connections: 64}\n"
                                       "  duration: 12s\n"
                                       "  agents: 2\n"
                                       "  threadsPerAgent: 1\n";
  start_s_ = static_cast<long>(std::time(nullptr)) - 1;
  Process run({ControllerBinary(), "run", dir + "/test.yaml", "--metrics-listen",
               absl::StrCat("127.0.0.1:", metrics_port), "--metrics-linger", "2m", "--out",
               dir + "/results.json", "--logs", dir + "/logs"});
  ASSERT_TRUE(WaitFor([&] { return run.Stderr().find("/metrics stays up") != std::string::npos; },
                      seconds(90)))
      << run.Stderr();
  // The run is over and its results written; Prometheus has the end once it scraped Succeeded.
  ASSERT_TRUE(WaitFor(
      [&] {
        end_s_ = static_cast<long>(std::time(nullptr));
        const json r = Instant(R"(stampede_phase{loadtest="promtest",phase="Succeeded"} == 1)");
        return r.is_array() && !r.empty();
      },
      seconds(30)));
  run.Signal(SIGTERM);
  EXPECT_EQ(run.Wait(seconds(10)), 0) << run.Stderr();
  end_s_ = static_cast<long>(std::time(nullptr));
  const json results = json::parse(ReadFile(dir + "/results.json"));

  const std::vector<std::pair<std::string, std::string>> vars = {
      {"$namespace", "it"},           {"$loadtest", "(promtest)"},
      {"$request", "(home|delayed)"}, {"$quantile", "0.99"},
      {"$__rate_interval", "4s"},     {"$__range", absl::StrCat(end_s_ - start_s_ + 1, "s")}};
  auto fill = [&](std::string expr) { return absl::StrReplaceAll(expr, vars); };

  std::map<std::string, json> answers;  // "title/refId" -> result
  int queries = 0;
  for (const json& p : dashboard["panels"]) {
    for (const json& t : p["targets"]) {
      const std::string key =
          absl::StrCat(p["title"].get<std::string>(), "/", t["refId"].get<std::string>());
      const std::string expr = fill(t["expr"]);
      const json result = t.value("instant", false) ? Instant(expr) : Range(expr);
      ASSERT_TRUE(result.is_array()) << key << ": " << expr;
      EXPECT_FALSE(result.empty()) << key << " returned no data: " << expr;
      answers[key] = result;
      ++queries;
    }
  }
  for (const json& a : dashboard["annotations"]["list"]) {
    if (!a.contains("expr")) continue;
    const json result = Range(fill(a["expr"]));
    ASSERT_TRUE(result.is_array());
    // Pending/Starting, Running and Succeeded each begin once.
    std::set<std::string> phases;
    for (const json& s : result) phases.insert(s["metric"]["phase"]);
    EXPECT_TRUE(phases.count("Running") && phases.count("Succeeded")) << result.dump();
    ++queries;
  }
  for (const json& v : dashboard["templating"]["list"]) {
    if (v["type"] != "query") continue;
    const std::string q = fill(v["query"]["query"]);  // label_values(SELECTOR, LABEL)
    const size_t comma = q.rfind(", ");
    const std::string selector = q.substr(13, comma - 13);
    const std::string label = q.substr(comma + 2, q.size() - comma - 3);
    const json r = Api(
        "/api/v1/series",
        {{"match[]", selector}, {"start", absl::StrCat(start_s_)}, {"end", absl::StrCat(end_s_)}});
    std::set<std::string> values;
    for (const json& s : r["data"]) values.insert(s.value(label, ""));
    const std::set<std::string> want = label == "namespace" ? std::set<std::string>{"it"}
                                       : label == "loadtest"
                                           ? std::set<std::string>{"promtest"}
                                           : std::set<std::string>{"home", "delayed"};
    EXPECT_EQ(values, want) << v["name"];
    ++queries;
  }
  EXPECT_GE(queries, 20);

  // The whole-run table: counts and exact percentiles equal the results JSON's.
  auto table = [&](const std::string& ref, const std::string& request) {
    for (const json& s : answers.at("Whole-run summary per request/" + ref)) {
      if (s["metric"]["request"] == request) return std::stod(s["value"][1].get<std::string>());
    }
    return -1.0;
  };
  ASSERT_EQ(results["requests"].size(), 2u);
  for (const json& r : results["requests"]) {
    const std::string name = r["name"];
    EXPECT_EQ(table("A", name), r["requests"].get<double>()) << name;
    EXPECT_EQ(table("B", name), r["errors"].get<double>()) << name;
    for (const auto& [ref, p] :
         {std::pair<std::string, std::string>{"C", "p50"}, {"D", "p95"}, {"E", "p99"}}) {
      EXPECT_NEAR(table(ref, name), r["latencyNs"][p].get<double>() / 1e9, 1e-9)
          << name << " " << p;
    }
  }
  // Rates: the achieved 10 s rate at its highest within 5 % of the run's, the target the spec's.
  double achieved = 0, target_rate = 0;
  for (const json& s : answers.at("Requests per second: achieved and target/A")) {
    for (const json& v : s["values"])
      achieved = std::max(achieved, std::stod(v[1].get<std::string>()));
  }
  for (const json& s : answers.at("Requests per second: achieved and target/B")) {
    for (const json& v : s["values"])
      target_rate = std::max(target_rate, std::stod(v[1].get<std::string>()));
  }
  const double run_rps = results["summary"]["rps"].get<double>();
  EXPECT_NEAR(achieved, run_rps, 0.05 * run_rps);
  EXPECT_NEAR(run_rps, kRate, 0.05 * kRate);
  EXPECT_EQ(target_rate, kRate);
  // The phase panel ends at Succeeded (4).
  const json& phase = answers.at("Phase/A");
  ASSERT_EQ(phase.size(), 1u);
  EXPECT_EQ(phase[0]["values"].back()[1], "4");
  prometheus.Signal(SIGTERM);
  prometheus.Wait(seconds(30));
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace stampede::testing
