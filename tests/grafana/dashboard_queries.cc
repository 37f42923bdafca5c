#include "tests/grafana/dashboard_queries.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace stampede::testing {
namespace {

using json = nlohmann::json;

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

}  // namespace

Prometheus::Prometheus(const std::string& dir, const std::string& target)
    : port_(FreeLoopbackPort()) {
  std::ofstream(dir + "/prometheus.yml") << "global: {scrape_interval: 1s}\n"
                                            "scrape_configs:\n"
                                            "  - job_name: stampede\n"
                                            "    honor_labels: true\n"
                                            "    static_configs: [{targets: [\""
                                         << target << "\"]}]\n";
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                               "--storage.tsdb.path=" + dir + "/data",
                               absl::StrCat("--web.listen-address=127.0.0.1:", port_)});
}

Prometheus::~Prometheus() {
  process_->Signal(SIGTERM);
  process_->Wait(std::chrono::seconds(30));
}

bool Prometheus::WaitReady() {
  return WaitUntil(std::chrono::seconds(60), [&] {
    return HttpGet(absl::StrCat("http://127.0.0.1:", port_, "/-/ready")).has_value();
  });
}

json Prometheus::Api(const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& params) const {
  std::string url = absl::StrCat("http://127.0.0.1:", port_, path, "?");
  for (const auto& [k, v] : params) absl::StrAppend(&url, k, "=", UrlEncode(v), "&");
  const std::optional<std::string> body = HttpGet(url);
  if (!body.has_value()) return nullptr;
  return json::parse(*body, nullptr, /*allow_exceptions=*/false);
}

json Prometheus::Instant(const std::string& expr, long time_s) const {
  json r = Api("/api/v1/query", {{"query", expr}, {"time", absl::StrCat(time_s)}});
  return r.is_object() && r["status"] == "success" ? r["data"]["result"] : json();
}

json Prometheus::Range(const std::string& expr, long start_s, long end_s) const {
  json r = Api("/api/v1/query_range", {{"query", expr},
                                       {"start", absl::StrCat(start_s)},
                                       {"end", absl::StrCat(end_s)},
                                       {"step", "1"}});
  return r.is_object() && r["status"] == "success" ? r["data"]["result"] : json();
}

DashboardAnswers QueryDashboard(const Prometheus& prometheus, const json& dashboard,
                                const std::string& ns, const std::string& loadtests,
                                const std::vector<std::string>& requests, long start_s,
                                long end_s) {
  // As Grafana fills in a multi-value variable inside =~: (a|b).
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"$namespace", ns},
      {"$loadtest", absl::StrCat("(", loadtests, ")")},
      {"$request", absl::StrCat("(", absl::StrJoin(requests, "|"), ")")},
      {"$quantile", "0.99"},
      {"$__rate_interval", "4s"},
      {"$__range", absl::StrCat(end_s - start_s + 1, "s")}};
  auto fill = [&](const std::string& expr) { return absl::StrReplaceAll(expr, vars); };

  DashboardAnswers answers;
  for (const json& p : dashboard["panels"]) {
    for (const json& t : p.value("targets", json::array())) {
      const std::string key =
          absl::StrCat(p["title"].get<std::string>(), "/", t["refId"].get<std::string>());
      const std::string expr = fill(t["expr"]);
      const json result = t.value("instant", false) ? prometheus.Instant(expr, end_s)
                                                    : prometheus.Range(expr, start_s, end_s);
      if (!result.is_array() || result.empty()) answers.empty.push_back(key + ": " + expr);
      answers.panels[key] = result.is_array() ? result : json::array();
      ++answers.queries;
    }
  }
  for (const json& a : dashboard["annotations"]["list"]) {
    if (!a.contains("expr")) continue;
    const json result = prometheus.Range(fill(a["expr"]), start_s, end_s);
    if (!result.is_array() || result.empty()) answers.empty.push_back("annotation: " + a.dump());
    for (const json& s : result.is_array() ? result : json::array()) {
      answers.annotated_phases.insert(s["metric"].value("phase", ""));
    }
    ++answers.queries;
  }
  for (const json& v : dashboard["templating"]["list"]) {
    if (v["type"] != "query") continue;
    // label_values(SELECTOR, LABEL), answered as Grafana does: from /api/v1/series.
    const std::string q = fill(v["query"]["query"]);
    const size_t open = q.find('('), comma = q.rfind(", ");
    const std::string selector = q.substr(open + 1, comma - open - 1);
    const std::string label = q.substr(comma + 2, q.size() - comma - 3);
    const json r = prometheus.Api(
        "/api/v1/series",
        {{"match[]", selector}, {"start", absl::StrCat(start_s)}, {"end", absl::StrCat(end_s)}});
    std::set<std::string>& values = answers.variables[v["name"].get<std::string>()];
    if (r.is_object() && r["data"].is_array()) {
      for (const json& s : r["data"]) values.insert(s.value(label, ""));
    }
    ++answers.queries;
  }
  return answers;
}

double MaxSample(const json& range_result) {
  double best = 0;
  for (const json& s : range_result) {
    for (const json& v : s["values"]) best = std::max(best, std::stod(v[1].get<std::string>()));
  }
  return best;
}

double ValueWhere(const json& instant_result, const std::string& label, const std::string& value) {
  for (const json& s : instant_result) {
    if (s["metric"].value(label, "") == value) return std::stod(s["value"][1].get<std::string>());
  }
  return -1;
}

json LoadDashboard() {
  std::ifstream in(std::string(STAMPEDE_SOURCE_DIR) + "/deploy/grafana/stampede.json");
  return json::parse(in);
}

}  // namespace stampede::testing
