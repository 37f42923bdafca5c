// Every query of deploy/grafana/stampede.json against a real Prometheus (Debian's) that scraped a
// real `stampede run` every second: two requests, two agents, an open-model rate against the test
// target. Each panel's every query, with the variables filled in as Grafana fills them, returns
// data through Prometheus' HTTP API, and the figures agree with the run's results JSON: the
// whole-run counts and exact percentiles equal them, the achieved rate is within 5 % of the run's,
// and the target rate is the spec's.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/grafana/dashboard_queries.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

constexpr double kRate = 200;  // requests per second over both agents

TEST(PrometheusDashboard, EveryQueryReturnsDataThatAgreesWithTheResults) {
  const json dashboard = LoadDashboard();
  TestTarget target;
  const std::string dir = MakeTempDir();
  struct RemoveAtEnd {  // after Prometheus (declared later) has stopped
    std::string dir;
    ~RemoveAtEnd() { (void)!std::system(("rm -rf '" + dir + "'").c_str()); }
  } remove_at_end{dir};
  const int metrics_port = FreeLoopbackPort();
  Prometheus prometheus(dir, absl::StrCat("127.0.0.1:", metrics_port));
  ASSERT_TRUE(prometheus.WaitReady()) << prometheus.Log();

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
                                       "  threadsPerAgent: 1\n"
                                       "  thresholds: [\"p99 < 5s\", \"p95{home} < 5s\", "
                                       "\"error_rate < 1%\", \"rps > 50\"]\n";
  const long start_s = static_cast<long>(std::time(nullptr)) - 1;
  Process run({ControllerBinary(), "run", dir + "/test.yaml", "--metrics-listen",
               absl::StrCat("127.0.0.1:", metrics_port), "--metrics-linger", "2m", "--out",
               dir + "/results.json", "--logs", dir + "/logs"});
  ASSERT_TRUE(WaitUntil(seconds(90), [&] {
    return run.Stderr().find("/metrics stays up") != std::string::npos;
  })) << run.Stderr();
  // The run is over and its results written; Prometheus has the end once it scraped Succeeded.
  long end_s = 0;
  ASSERT_TRUE(WaitUntil(seconds(30), [&] {
    end_s = static_cast<long>(std::time(nullptr));
    const json r =
        prometheus.Instant(R"(stampede_phase{loadtest="promtest",phase="Succeeded"} == 1)", end_s);
    return r.is_array() && !r.empty();
  }));
  run.Signal(SIGTERM);
  EXPECT_EQ(run.Wait(seconds(10)), 0) << run.Stderr();
  end_s = static_cast<long>(std::time(nullptr));
  std::ifstream results_file(dir + "/results.json");
  const json results = json::parse(results_file);

  const DashboardAnswers answers =
      QueryDashboard(prometheus, dashboard, "it", "promtest", {"home", "delayed"}, start_s, end_s);
  EXPECT_GE(answers.queries, 20);
  EXPECT_TRUE(answers.empty.empty()) << "no data: " << json(answers.empty).dump(1);
  // Pending/Starting, Running and Succeeded each begin once.
  EXPECT_TRUE(answers.annotated_phases.count("Running") &&
              answers.annotated_phases.count("Succeeded"))
      << json(answers.annotated_phases).dump();
  EXPECT_EQ(answers.variables.at("namespace"), std::set<std::string>{"it"});
  EXPECT_EQ(answers.variables.at("loadtest"), std::set<std::string>{"promtest"});
  EXPECT_EQ(answers.variables.at("request"), (std::set<std::string>{"home", "delayed"}));

  // The whole-run table: counts and exact percentiles equal the results JSON's.
  auto table = [&](const std::string& ref, const std::string& request) {
    return ValueWhere(answers.panels.at("Whole-run summary per request/" + ref), "request",
                      request);
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
  const double achieved =
      MaxSample(answers.panels.at("Requests per second: achieved and target/A"));
  const double target_rate =
      MaxSample(answers.panels.at("Requests per second: achieved and target/B"));
  const double run_rps = results["summary"]["rps"].get<double>();
  EXPECT_NEAR(achieved, run_rps, 0.05 * run_rps);
  EXPECT_NEAR(run_rps, kRate, 0.05 * kRate);
  EXPECT_EQ(target_rate, kRate);
  // The thresholds: their bounds as drawn, and the verdicts the run wrote.
  EXPECT_EQ(MaxSample(answers.panels.at("Requests per second: achieved and target/D")), 50);
  EXPECT_EQ(MaxSample(answers.panels.at("Error ratio/C")), 0.01);
  EXPECT_EQ(MaxSample(answers.panels.at("Latency percentiles per request (exact, 10 s window)/B")),
            5);
  EXPECT_EQ(
      MaxSample(answers.panels.at("Latency percentiles, all requests (exact, 10 s window)/B")), 5);
  ASSERT_EQ(results["status"]["thresholds"].size(), 4u);
  for (const json& t : results["status"]["thresholds"]) {
    EXPECT_EQ(ValueWhere(answers.panels.at("Thresholds/A"), "threshold", t["expression"]),
              t.value("passed", false) ? 1 : 0)
        << t.dump();
  }
  // The phase panel ends at Succeeded (4).
  const json& phase = answers.panels.at("Phase/A");
  ASSERT_EQ(phase.size(), 1u);
  EXPECT_EQ(phase[0]["values"].back()[1], "4");
}

}  // namespace
}  // namespace stampede::testing
