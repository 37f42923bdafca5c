// The Grafana dashboard deploy/grafana/stampede.json, as Grafana's sidecar would load it from the
// chart's ConfigMap: no __inputs, one datasource variable that every panel and query uses, every
// $variable defined, ids unique, units on every panel, every query valid PromQL once the variables
// are substituted (promtool parses them), and no exact-quantile series averaged or summed.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace stampede {
namespace {

using json = nlohmann::json;

const std::string kSource = STAMPEDE_SOURCE_DIR;
const std::string kDashboard = kSource + "/deploy/grafana/stampede.json";
constexpr char kQuantileSeries[] = "stampede_request_duration_quantile_seconds";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The spans [open paren, close paren] of every aggregation or over-time function call in `expr`
// that may not take a quantile series: summing, averaging or picking among quantiles of different
// series (or of one series over time) gives numbers no request had. last_over_time is allowed: it
// reads the newest sample and computes nothing.
std::vector<std::pair<size_t, size_t>> AggregatingSpans(const std::string& expr) {
  static const std::regex call(
      R"(\b(sum|avg|min|max|count|stddev|stdvar|quantile|topk|bottomk|group|)"
      R"(avg_over_time|sum_over_time|min_over_time|max_over_time|quantile_over_time|)"
      R"(stddev_over_time|stdvar_over_time)\s*(\b(by|without)\s*\([^)]*\)\s*)?\()");
  std::vector<std::pair<size_t, size_t>> spans;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), call); it != std::sregex_iterator();
       ++it) {
    const size_t open = it->position() + it->length() - 1;
    int depth = 0;
    for (size_t i = open; i < expr.size(); ++i) {
      if (expr[i] == '(') ++depth;
      if (expr[i] == ')' && --depth == 0) {
        spans.push_back({open, i});
        break;
      }
    }
  }
  return spans;
}

// Whether `expr` aggregates the exact-quantile series anywhere.
bool AggregatesQuantiles(const std::string& expr) {
  for (size_t at = expr.find(kQuantileSeries); at != std::string::npos;
       at = expr.find(kQuantileSeries, at + 1)) {
    for (const auto& [open, close] : AggregatingSpans(expr)) {
      if (open < at && at < close) return true;
    }
  }
  return false;
}

TEST(QuantileRule, FlagsEveryWayOfAggregatingQuantiles) {
  // The checker itself, so that a dashboard that passes it has passed something.
  for (const std::string bad : {
           "avg(stampede_request_duration_quantile_seconds)",
           "sum by (request) (stampede_request_duration_quantile_seconds{window=\"10s\"})",
           "max without (agent) (x or stampede_request_duration_quantile_seconds)",
           "avg_over_time(stampede_request_duration_quantile_seconds[5m])",
           "quantile(0.9, stampede_request_duration_quantile_seconds)",
       }) {
    EXPECT_TRUE(AggregatesQuantiles(bad)) << bad;
  }
  for (const std::string good : {
           "stampede_request_duration_quantile_seconds{window=\"10s\"}",
           "last_over_time(stampede_request_duration_quantile_seconds[1h])",
           "histogram_quantile(0.99, sum by (le) "
           "(rate(stampede_request_duration_seconds_bucket[1m])))",
           "sum(rate(stampede_requests_total[1m])) and stampede_request_duration_quantile_seconds",
       }) {
    EXPECT_FALSE(AggregatesQuantiles(good)) << good;
  }
}

class Dashboard : public ::testing::Test {
 protected:
  void SetUp() override {
    dashboard_ = json::parse(ReadFile(kDashboard), nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(dashboard_.is_object()) << kDashboard << " is not JSON";
    for (const json& p : dashboard_["panels"]) panels_.push_back(p);
    for (const json& v : dashboard_["templating"]["list"]) variables_.insert(v["name"]);
  }

  // Every query of the dashboard: the panels' targets, the variables' and the annotations'.
  std::vector<std::pair<std::string, std::string>> Queries() const {
    std::vector<std::pair<std::string, std::string>> out;  // {where, expr}
    for (const json& p : panels_) {
      for (const json& t : p["targets"]) {
        out.push_back(
            {absl::StrCat("panel \"", p["title"].get<std::string>(), "\" ", t.value("refId", "?")),
             t.value("expr", "")});
      }
    }
    for (const json& a : dashboard_["annotations"]["list"]) {
      if (a.contains("expr"))
        out.push_back({absl::StrCat("annotation ", a["name"].dump()), a["expr"]});
    }
    return out;
  }

  json dashboard_;
  std::vector<json> panels_;
  std::set<std::string> variables_;
};

TEST_F(Dashboard, LoadsFromAConfigMapWithoutImportInputs) {
  EXPECT_FALSE(dashboard_.contains("__inputs")) << "the sidecar does not fill __inputs";
  EXPECT_FALSE(dashboard_.contains("id")) << "a fixed id collides between Grafana instances";
  EXPECT_EQ(dashboard_["uid"], "stampede-loadtests");
  EXPECT_GE(dashboard_["schemaVersion"].get<int>(), 36);
  EXPECT_EQ(variables_,
            (std::set<std::string>{"datasource", "namespace", "loadtest", "request", "quantile"}));
  for (const json& v : dashboard_["templating"]["list"]) {
    if (v["name"] == "datasource") {
      EXPECT_EQ(v["type"], "datasource");
      EXPECT_EQ(v["query"], "prometheus");
    }
    if (v["name"] == "loadtest" || v["name"] == "request") {
      EXPECT_TRUE(v["multi"].get<bool>()) << v["name"] << ": several at once";
      EXPECT_TRUE(v["includeAll"].get<bool>()) << v["name"];
    }
    if (v["type"] == "query") {
      EXPECT_EQ(v["datasource"]["uid"], "${datasource}") << v["name"];
      EXPECT_EQ(v["query"]["query"].get<std::string>().rfind("label_values(", 0), 0u) << v["name"];
    }
  }
}

TEST_F(Dashboard, EveryPanelAndQueryUsesTheDatasourceVariable) {
  std::set<int> ids;
  ASSERT_GE(panels_.size(), 12u);
  for (const json& p : panels_) {
    const std::string title = p["title"];
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << title << ": duplicate id";
    EXPECT_EQ(p["datasource"], json({{"type", "prometheus"}, {"uid", "${datasource}"}})) << title;
    ASSERT_FALSE(p["targets"].empty()) << title;
    std::set<std::string> refs;
    for (const json& t : p["targets"]) {
      EXPECT_EQ(t["datasource"], p["datasource"]) << title;
      EXPECT_TRUE(refs.insert(t["refId"].get<std::string>()).second)
          << title << ": duplicate refId";
      EXPECT_FALSE(t.value("expr", "").empty()) << title;
    }
    for (const char* key : {"x", "y", "w", "h"}) EXPECT_TRUE(p["gridPos"].contains(key)) << title;
    EXPECT_LE(p["gridPos"]["x"].get<int>() + p["gridPos"]["w"].get<int>(), 24) << title;
  }
}

TEST_F(Dashboard, EveryVariableUsedIsDefined) {
  const std::set<std::string> builtin = {"__rate_interval", "__range", "__interval"};
  const std::regex use(R"(\$\{?([A-Za-z_][A-Za-z0-9_]*))");
  auto check = [&](const std::string& where, const std::string& text) {
    for (auto it = std::sregex_iterator(text.begin(), text.end(), use);
         it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1];
      EXPECT_TRUE(variables_.count(name) || builtin.count(name)) << where << " uses $" << name;
    }
  };
  for (const auto& [where, expr] : Queries()) check(where, expr);
  for (const json& p : panels_) check(p["title"], p["title"]);
  for (const json& v : dashboard_["templating"]["list"]) {
    if (v["type"] == "query") check(v["name"], v["query"]["query"]);
  }
}

TEST_F(Dashboard, NoPanelAggregatesAQuantileSeries) {
  int quantile_queries = 0;
  for (const auto& [where, expr] : Queries()) {
    EXPECT_FALSE(AggregatesQuantiles(expr)) << where << ": " << expr;
    if (expr.find(kQuantileSeries) != std::string::npos) ++quantile_queries;
  }
  EXPECT_GE(quantile_queries, 5) << "the exact percentiles are shown";
}

TEST_F(Dashboard, PanelsCarryTheUnitOfWhatTheyShow) {
  for (const json& p : panels_) {
    const std::string title = p["title"];
    if (p["type"] == "table" || p["type"] == "state-timeline") continue;
    const std::string unit = p["fieldConfig"]["defaults"].value("unit", "");
    const std::string expr = p["targets"][0]["expr"];
    if (expr.find("duration") != std::string::npos) {
      EXPECT_EQ(unit, "s") << title;
    } else if (expr.find(" / ") != std::string::npos) {
      EXPECT_EQ(unit, "percentunit") << title;
    } else if (expr.find("rate(") != std::string::npos ||
               expr.find("requests_per_second") != std::string::npos) {
      EXPECT_EQ(unit, "reqps") << title;
    } else {
      EXPECT_FALSE(unit.empty()) << title;
    }
  }
}

TEST_F(Dashboard, EveryQueryIsValidPromQL) {
  // promtool parses rule expressions: each query, with the variables as Grafana fills them
  // (a multi-select becomes an alternation), becomes a recording rule.
  const std::string dir = testing::MakeTempDir();
  std::string rules = "groups:\n- name: dashboard\n  rules:\n";
  int n = 0;
  for (const auto& [where, expr] : Queries()) {
    const std::string filled = absl::StrReplaceAll(expr, {{"$namespace", "default"},
                                                          {"$loadtest", "(checkout|search)"},
                                                          {"$request", "(home|login)"},
                                                          {"$quantile", "0.99"},
                                                          {"$__rate_interval", "4s"},
                                                          {"$__range", "1h"}});
    rules +=
        absl::StrCat("  - record: dashboard:q", n++, "\n    expr: ", json(filled).dump(), "\n");
  }
  std::ofstream(dir + "/rules.yaml") << rules;
  const testing::CommandOutput out = testing::RunToEnd(
      {"/usr/bin/promtool", "check", "rules", dir + "/rules.yaml"}, std::chrono::seconds(60));
  EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
  EXPECT_NE(out.out.find(absl::StrCat("SUCCESS: ", n, " rules found")), std::string::npos)
      << out.out;
}

TEST_F(Dashboard, TheChartShipsThisDashboard) {
  EXPECT_EQ(ReadFile(kSource + "/helm/stampede/files/dashboards/stampede.json"),
            ReadFile(kDashboard))
      << "copy deploy/grafana/stampede.json to helm/stampede/files/dashboards/";
}

}  // namespace
}  // namespace stampede
