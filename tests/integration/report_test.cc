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

}  // namespace
}  // namespace stampede::testing
