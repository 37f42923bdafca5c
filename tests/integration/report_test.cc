// The HTML report in a real browser: a real `stampede run` (staged open model, two requests, two
// agents, against the test target) writes its results and its report; Debian's headless Chromium
// opens the report and the DOM it leaves shows every chart line drawn, the tables' numbers equal
// to the results JSON, and no request blocked by the page's policy. A copy with an image on the
// target shows that the policy blocks it and that the page counts it; the target saw no request.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr char kChromium[] = "/usr/bin/chromium";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The DOM after the page's scripts ran.
std::string RenderedDom(const std::string& file) {
  const CommandOutput out =
      RunToEnd({kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--user-data-dir=" + MakeTempDir(), "--dump-dom", "file://" + file},
               seconds(90));
  EXPECT_EQ(out.exit_code, 0) << out.err;
  return out.out;
}

std::string BodyAttribute(const std::string& dom, const std::string& name) {
  const std::smatch m = [&] {
    std::smatch found;
    std::regex_search(dom, found, std::regex("<body[^>]*\\b" + name + "=\"([^\"]*)\""));
    return found;
  }();
  return m.empty() ? "" : m[1].str();
}

TEST(ReportInABrowser, EveryChartIsDrawnTheTablesMatchTheResultsAndNothingIsFetched) {
  if (access(kChromium, X_OK) != 0) GTEST_FAIL() << kChromium << " is missing: run scripts/setup";
  TestTarget target;
  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/t.yaml")
      << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: report}\nspec:\n"
         "  target: {url: \""
      << target.Url("") << "\"}\n"
      << "  requests: [{name: home, path: /, weight: 3}, {name: slow, path: /delay/2}]\n"
         "  load: {rate: 0, connections: 16,\n"
         "         stages: [{duration: 2s, target: 100}, {duration: 2s, target: 100}]}\n"
         "  agents: 2\n  threadsPerAgent: 1\n"
         "  thresholds: [\"p95 < 2s\", \"error_rate < 1%\"]\n";
  const CommandOutput run = RunToEnd({ControllerBinary(), "run", dir + "/t.yaml", "--quiet",
                                      "--out", dir + "/r.json", "--report", dir + "/r.html"},
                                     seconds(90));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json results = json::parse(Read(dir + "/r.json"));
  // stampede report makes the same file from the results.
  const CommandOutput report = RunToEnd(
      {ControllerBinary(), "report", dir + "/r.json", "-o", dir + "/again.html"}, seconds(30));
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_EQ(Read(dir + "/again.html"), Read(dir + "/r.html"));
  const long served = target.Served();

  const std::string dom = RenderedDom(dir + "/r.html");
  // Per request group (all, home, slow): rate 2 lines (+ the plan's target for all), latency 4,
  // concurrency 1.
  const size_t groups = 1 + results["requests"].size();
  EXPECT_EQ(BodyAttribute(dom, "data-drawn-lines"), std::to_string(groups * 7 + 1))
      << dom.substr(0, 2000);
  EXPECT_EQ(BodyAttribute(dom, "data-blocked-requests"), "0");
  // The summary row and each stage's requests are the results'.
  auto cell = [&](const std::string& row_id) {
    std::smatch m;
    std::regex_search(dom, m,
                      std::regex("<tr id=\"" + row_id + "\">.*?<td class=\"requests\">(\\d+)<"));
    return m.empty() ? std::string() : m[1].str();
  };
  EXPECT_EQ(cell("total"), std::to_string(results["summary"]["requests"].get<uint64_t>()));
  for (const json& stage : results["stages"]) {
    EXPECT_NE(dom.find("<td class=\"requests\">" +
                       std::to_string(stage["summary"]["requests"].get<uint64_t>()) + "</td>"),
              std::string::npos)
        << stage.dump();
  }
  EXPECT_NE(dom.find("p95 &lt; 2s"), std::string::npos);
  // Only the first group is shown; choosing a request is the page's one job.
  EXPECT_EQ(dom.find("<g data-request=\"*\" style=\"display: none;\">"), std::string::npos);
  EXPECT_NE(dom.find("<g data-request=\"home\" style=\"display: none;\">"), std::string::npos);

  // The policy is what keeps the page offline: a copy with an image on the target is blocked,
  // counted, and the target sees nothing.
  std::string leaky = Read(dir + "/r.html");
  leaky.insert(leaky.find("</body>"), "<img src=\"" + target.Url("/leak.png") + "\">");
  std::ofstream(dir + "/leaky.html") << leaky;
  const std::string blocked = RenderedDom(dir + "/leaky.html");
  EXPECT_EQ(BodyAttribute(blocked, "data-blocked-requests"), "1") << blocked.substr(0, 800);
  EXPECT_EQ(target.Served(), served) << "the page reached the network";
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

// The same test against a fast and a slow system: stampede compare prints each figure of both
// with the ratio, per stage too, and its HTML overlays both runs' charts.
TEST(CompareInABrowser, TheSlowerSystemsPercentilesShowAsARatioAboveOne) {
  if (access(kChromium, X_OK) != 0) GTEST_FAIL() << kChromium << " is missing: run scripts/setup";
  TestTarget target;
  const std::string dir = MakeTempDir();
  for (const auto& [name, delay] : {std::pair<std::string, int>{"fast", 1}, {"slow", 20}}) {
    std::ofstream(dir + "/" + name + ".yaml")
        << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: cmp}\nspec:\n"
           "  target: {url: \""
        << target.Url("") << "\"}\n"
        << "  requests: [{name: api, path: /delay/" << delay << "}]\n"
        << "  load: {rate: 0, connections: 16,\n"
           "         stages: [{duration: 1s, target: 50}, {duration: 2s, target: 50}]}\n";
    const CommandOutput run = RunToEnd({ControllerBinary(), "run", dir + "/" + name + ".yaml",
                                        "--quiet", "--out", dir + "/" + name + ".json"},
                                       seconds(60));
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }
  const CommandOutput cmp = RunToEnd({ControllerBinary(), "compare", dir + "/fast.json",
                                      dir + "/slow.json", "-o", dir + "/cmp.html"},
                                     seconds(30));
  ASSERT_EQ(cmp.exit_code, 0) << cmp.err;
  // "  p95   1.23ms   21.4ms   17.40x": the ratio is the slow run's p95 over the fast run's, from
  // the two files, and the slow system shows as slower (how much depends on how loaded this
  // machine is: the fast system's tail is mostly scheduling).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(cmp.out, m, std::regex("\n  p95 +\\S+ +\\S+ +([0-9.]+)x")))
      << cmp.out;
  const auto p95 = [&](const std::string& name) {
    return json::parse(Read(dir + "/" + name + ".json"))["summary"]["latencyNs"]["p95"]
        .get<double>();
  };
  EXPECT_NEAR(std::stod(m[1].str()), p95("slow") / p95("fast"), 0.006) << cmp.out;
  EXPECT_GT(std::stod(m[1].str()), 1.0) << cmp.out;
  EXPECT_NE(cmp.out.find("slow/fast"), std::string::npos) << cmp.out;
  EXPECT_NE(cmp.out.find("stage 2 steady 50"), std::string::npos) << cmp.out;
  const std::string dom = RenderedDom(dir + "/cmp.html");
  EXPECT_EQ(BodyAttribute(dom, "data-drawn-lines"), "8") << "4 charts, a line per run";
  EXPECT_EQ(BodyAttribute(dom, "data-blocked-requests"), "0");
  // Bad input is named.
  std::ofstream(dir + "/bad.json") << "{\"kind\": \"Other\"}";
  const CommandOutput bad =
      RunToEnd({ControllerBinary(), "compare", dir + "/fast.json", dir + "/bad.json"}, seconds(30));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad: not a results file"), std::string::npos) << bad.err;
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace stampede::testing
