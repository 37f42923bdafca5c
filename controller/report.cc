#include "controller/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/files.h"

namespace stampede::controller {
namespace {

using json = nlohmann::json;

std::string Escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Ns(const json& v) {
  return v.is_number() ? common::FormatNanos(v.get<uint64_t>()) : std::string("-");
}
std::string Count(double v) { return absl::StrFormat("%.0f", v); }
std::string Tick(double v) { return absl::StrFormat("%.4g", v); }
std::string Rate(double v) { return absl::StrFormat("%.1f", v); }

// The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `v` (an axis' top).
double NiceTop(double v) {
  if (!(v > 0)) return 1;
  const double p = std::pow(10, std::floor(std::log10(v)));
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= v * (1 - 1e-12)) return m * p;
  }
  return 10 * p;
}

struct Line {
  std::string label;
  std::vector<double> y;  // one per second of `Chart::xs`; NaN: no point
  bool dashed = false;
};

// One chart per request group ("*" for all requests), each with its own scale; the page shows the
// group chosen in the selector.
struct Group {
  std::string request;
  std::vector<Line> lines;
};

constexpr int kWidth = 760, kHeight = 230, kLeft = 72, kRight = 12, kTop = 14, kBottom = 26;

std::string Chart(const std::string& title, const std::vector<double>& xs,
                  const std::vector<Group>& groups,
                  const std::function<std::string(double)>& format_y) {
  std::string out = absl::StrCat("<section class=\"chart\"><h3>", Escape(title), "</h3>\n");
  absl::StrAppend(&out, "<svg viewBox=\"0 0 ", kWidth, " ", kHeight, "\" role=\"img\">\n");
  const double x_max = xs.empty() ? 1 : std::max(1.0, xs.back() + 1);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + plot_w * x / x_max; };
  for (const Group& g : groups) {
    double top = 0;
    for (const Line& l : g.lines) {
      for (const double v : l.y) {
        if (std::isfinite(v)) top = std::max(top, v);
      }
    }
    top = NiceTop(top);
    auto py = [&](double y) { return kTop + plot_h * (1 - y / top); };
    absl::StrAppend(&out, "<g data-request=\"", Escape(g.request), "\">\n");
    for (int t = 0; t <= 4; ++t) {
      const double v = top * t / 4;
      absl::StrAppendFormat(&out,
                            "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                            "<text class=\"tick\" x=\"%d\" y=\"%.1f\">%s</text>\n",
                            kLeft, kWidth - kRight, py(v), py(v), kLeft - 6, py(v) + 4,
                            Escape(format_y(v)));
    }
    const int step = std::max(1, static_cast<int>(NiceTop(x_max / 8)));
    for (int x = 0; x <= static_cast<int>(x_max); x += step) {
      absl::StrAppendFormat(&out, "<text class=\"xtick\" x=\"%.1f\" y=\"%d\">%ds</text>\n", px(x),
                            kHeight - 8, x);
    }
    for (size_t i = 0; i < g.lines.size(); ++i) {
      const Line& l = g.lines[i];
      std::string points;
      for (size_t k = 0; k < xs.size() && k < l.y.size(); ++k) {
        if (!std::isfinite(l.y[k])) continue;
        // A second's figure is drawn at its end.
        absl::StrAppendFormat(&points, "%.1f,%.1f ", px(xs[k] + 1), py(l.y[k]));
      }
      absl::StrAppend(&out, "<polyline class=\"s", i % 4, l.dashed ? " dashed" : "", "\" points=\"",
                      points, "\"><title>", Escape(l.label), "</title></polyline>\n");
      absl::StrAppendFormat(&out,
                            "<line class=\"s%d%s\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>"
                            "<text class=\"legend\" x=\"%d\" y=\"%d\">%s</text>\n",
                            static_cast<int>(i % 4), l.dashed ? " dashed" : "",
                            kLeft + 10 + 150 * static_cast<int>(i),
                            kLeft + 30 + 150 * static_cast<int>(i), kTop + 4, kTop + 4,
                            kLeft + 34 + 150 * static_cast<int>(i), kTop + 8, Escape(l.label));
    }
    absl::StrAppend(&out, "</g>\n");
  }
  absl::StrAppend(&out, "</svg></section>\n");
  return out;
}

// A row of a figures table from a Counts-and-latencyNs entry of the results.
std::string FiguresRow(const std::string& name, const json& e, double rps,
                       const std::string& id = "") {
  const json& l = e.value("latencyNs", json::object());
  const double requests = e.value("requests", 0.0), errors = e.value("errors", 0.0);
  return absl::StrCat(
      "<tr", id.empty() ? "" : absl::StrCat(" id=\"", id, "\""), "><td>", Escape(name),
      "</td><td class=\"requests\">", Count(requests), "</td><td class=\"errors\">", Count(errors),
      "</td><td>", requests > 0 ? absl::StrFormat("%.2f%%", 100 * errors / requests) : "-",
      "</td><td class=\"rps\">", Rate(rps), "</td><td>", Ns(l.value("p50", json())), "</td><td>",
      Ns(l.value("p90", json())), "</td><td class=\"p95\">", Ns(l.value("p95", json())),
      "</td><td>", Ns(l.value("p99", json())), "</td><td>", Ns(l.value("p999", json())),
      "</td><td>", Ns(l.value("max", json())), "</td></tr>\n");
}

constexpr char kFiguresHeader[] =
    "<tr><th></th><th>requests</th><th>errors</th><th>error rate</th><th>rps</th><th>p50</th>"
    "<th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n";

// Counts a chart line may be missing in a second (a request with no activity is left out).
double At(const json& point, const std::string& key) {
  return point.contains(key) && point[key].is_number() ? point[key].get<double>() : NAN;
}

constexpr char kStyle[] = R"(
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
h3 { font-size: 14px; margin: 18px 0 4px; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
.phase { font-weight: 600; } .Succeeded { color: #1a7f37; } .Failed, .Aborted { color: #c62828; }
.pass { color: #1a7f37; } .fail { color: #c62828; font-weight: 600; }
svg { width: 100%; max-width: 760px; background: #fcfcfc; border: 1px solid #eee; }
.grid { stroke: #e4e4e4; } .tick { font-size: 10px; text-anchor: end; fill: #666; }
.xtick { font-size: 10px; text-anchor: middle; fill: #666; } .legend { font-size: 11px; }
polyline { fill: none; stroke-width: 1.6; } line.s0, line.s1, line.s2, line.s3 { stroke-width: 2; }
.s0 { stroke: #1f77b4; } .s1 { stroke: #ff7f0e; } .s2 { stroke: #2ca02c; } .s3 { stroke: #d62728; }
.dashed { stroke-dasharray: 6 4; }
)";

// Switches the request shown, counts the drawn lines, and records any request the policy blocked,
// so a test (or a curious reader) sees in the DOM that the page rendered and fetched nothing.
constexpr char kScript[] = R"(
(function () {
  var blocked = 0;
  document.addEventListener('securitypolicyviolation', function () {
    blocked++;
    if (document.body) document.body.setAttribute('data-blocked-requests', blocked);
  });
  function show(request) {
    document.querySelectorAll('g[data-request]').forEach(function (g) {
      g.style.display = g.getAttribute('data-request') === request ? '' : 'none';
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    var select = document.getElementById('request');
    if (select) {
      select.addEventListener('change', function () { show(select.value); });
      show(select.value);
    }
    var drawn = 0;
    document.querySelectorAll('polyline').forEach(function (p) {
      if (p.points.numberOfItems > 1) drawn++;
    });
    document.body.setAttribute('data-drawn-lines', drawn);
    document.body.setAttribute('data-blocked-requests', blocked);
  });
})();
)";

absl::StatusOr<json> ParseResults(const std::string& results_json) {
  json r = json::parse(results_json, nullptr, /*allow_exceptions=*/false);
  if (!r.is_object() || r.value("kind", "") != "LoadTestResult") {
    return absl::InvalidArgumentError(
        "not a results file of stampede run --out (kind: LoadTestResult)");
  }
  for (const char* field : {"summary", "requests", "series", "status"}) {
    if (!r.contains(field)) return absl::InvalidArgumentError(absl::StrCat("no \"", field, "\""));
  }
  return r;
}

std::string PageHead(const std::string& title) {
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>",
      Escape(title), "</title>\n<style>", kStyle, "</style>\n<script>", kScript,
      "</script>\n</head><body>\n");
}

}  // namespace

absl::StatusOr<std::string> ReportHtml(const std::string& results_json) {
  absl::StatusOr<json> parsed = ParseResults(results_json);
  if (!parsed.ok()) return parsed.status();
  const json& r = *parsed;
  const json& status = r["status"];
  const json& summary = r["summary"];
  const std::string name = r["metadata"].value("name", "loadtest");
  const std::string ns = r["metadata"].value("namespace", "");
  const std::string phase = status.value("phase", "");

  std::string html = PageHead(absl::StrCat(name, " - Stampede report"));
  absl::StrAppend(&html, "<h1>", Escape(ns.empty() ? name : absl::StrCat(ns, "/", name)),
                  "</h1>\n<p><span class=\"phase ", Escape(phase), "\" id=\"phase\">",
                  Escape(phase), "</span> ", Escape(status.value("reason", "")), " &middot; ",
                  Escape(status.value("message", "")), "<br>run ", Escape(r.value("runId", "")),
                  " &middot; ", Escape(status.value("startTime", "")), " to ",
                  Escape(status.value("completionTime", "")), " &middot; ",
                  absl::StrFormat("%.1f", summary.value("durationSeconds", 0.0)), " s of load",
                  summary.value("generatorSaturated", false)
                      ? " &middot; <b>the load generator was saturated</b>"
                      : "",
                  "</p>\n");

  // Summary and per request.
  absl::StrAppend(&html, "<h2>Summary</h2>\n<table id=\"figures\">", kFiguresHeader,
                  FiguresRow("all requests", summary, summary.value("rps", 0.0), "total"));
  const double seconds = summary.value("durationSeconds", 0.0);
  std::vector<std::string> names;
  for (const json& q : r["requests"]) {
    names.push_back(q.value("name", ""));
    absl::StrAppend(
        &html, FiguresRow(names.back(), q, seconds > 0 ? q.value("requests", 0.0) / seconds : 0));
  }
  absl::StrAppend(&html, "</table>\n");

  // Scenarios: each one's iterations.
  if (r.contains("scenarios") && !r["scenarios"].empty()) {
    absl::StrAppend(&html,
                    "<h2>Scenarios</h2>\n<table id=\"scenarios\"><tr><th>scenario</th>"
                    "<th>iterations</th><th>ended early</th><th>dropped</th><th>per s</th>"
                    "<th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>\n");
    for (const json& sc : r["scenarios"]) {
      const json d = sc.value("durationNs", json::object());
      const double n = sc.value("iterations", 0.0);
      absl::StrAppend(
          &html, "<tr><td>", Escape(sc.value("name", "")), "</td><td>", Count(n), "</td><td>",
          Count(sc.value("endedEarly", 0.0)), "</td><td>", Count(sc.value("dropped", 0.0)),
          "</td><td>", Rate(seconds > 0 ? n / seconds : 0), "</td><td>", Ns(d.value("p50", json())),
          "</td><td>", Ns(d.value("p95", json())), "</td><td>", Ns(d.value("p99", json())),
          "</td><td>", Ns(d.value("max", json())), "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table>\n");
  }

  // Errors by outcome and responses by status class.
  const json outcomes = summary.value("outcomes", json::object());
  const json status_classes = summary.value("status", json::object());
  std::string errors;
  for (const auto& [outcome, n] : outcomes.items()) {
    if (outcome != "ok" && n.is_number() && n.get<double>() > 0)
      absl::StrAppend(&errors, "<tr><td>", Escape(outcome), "</td><td>", Count(n.get<double>()),
                      "</td></tr>");
  }
  std::string classes;
  for (const auto& [cls, n] : status_classes.items()) {
    if (n.is_number() && n.get<double>() > 0)
      absl::StrAppend(&classes, "<tr><td>", Escape(cls), "</td><td>", Count(n.get<double>()),
                      "</td></tr>");
  }
  absl::StrAppend(&html, "<h2>Errors</h2>\n",
                  errors.empty() ? "<p>Every request succeeded.</p>\n"
                                 : absl::StrCat("<table id=\"errors\"><tr><th>outcome</th>"
                                                "<th>requests</th></tr>",
                                                errors, "</table>\n"),
                  classes.empty() ? ""
                                  : absl::StrCat("<table><tr><th>responses</th><th></th></tr>",
                                                 classes, "</table>\n"));

  // Thresholds.
  if (status.contains("thresholds") && !status["thresholds"].empty()) {
    absl::StrAppend(&html,
                    "<h2>Thresholds</h2>\n<table id=\"thresholds\"><tr><th>rule</th>"
                    "<th>verdict</th><th>actual</th></tr>\n");
    for (const json& t : status["thresholds"]) {
      const bool passed = t.value("passed", false);
      absl::StrAppend(&html, "<tr><td>", Escape(t.value("expression", "")), "</td><td class=\"",
                      passed ? "pass\">pass" : "fail\">FAIL", "</td><td>",
                      Escape(t.value("actual", "")), "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table>\n");
  }

  // Per load level.
  if (r.contains("stages") && !r["stages"].empty()) {
    absl::StrAppend(&html, "<h2>Per load level</h2>\n<table id=\"stages\">",
                    "<tr><th>stage</th><th>kind</th><th>level</th><th>seconds</th>",
                    std::string(kFiguresHeader).substr(13));
    for (const json& st : r["stages"]) {
      const double from = st.value("from", 0.0), to = st.value("to", 0.0);
      const std::string level =
          from == to ? absl::StrFormat("%g", to) : absl::StrFormat("%g &rarr; %g", from, to);
      std::string row = FiguresRow("", st["summary"], st["summary"].value("rps", 0.0));
      row = row.substr(row.find("</td>") + 5);  // the figures without the empty name cell
      absl::StrAppend(
          &html, "<tr><td>", st.value("index", 0) + 1, "</td><td>", Escape(st.value("kind", "")),
          st.value("approximate", false) ? "~" : "", "</td><td>", level, "</td><td>",
          absl::StrFormat("%g-%g s", st.value("startSeconds", 0.0), st.value("endSeconds", 0.0)),
          "</td>", row);
    }
    absl::StrAppend(&html, "</table>\n");
  }

  // Charts over time.
  std::vector<double> xs;
  for (const json& p : r["series"]) xs.push_back(p.value("second", 0.0));
  std::vector<std::string> groups = {"*"};
  groups.insert(groups.end(), names.begin(), names.end());
  absl::StrAppend(&html, "<h2>Over time</h2>\n<p><label>Request: <select id=\"request\">");
  for (const std::string& g : groups) {
    absl::StrAppend(&html, "<option value=\"", Escape(g), "\">",
                    g == "*" ? "all requests" : Escape(g), "</option>");
  }
  absl::StrAppend(&html, "</select></label></p>\n");
  auto point_of = [&](const json& p, const std::string& g) -> const json& {
    static const json kEmpty = json::object();
    if (g == "*") return p;
    return p.contains("byRequest") && p["byRequest"].contains(g) ? p["byRequest"][g] : kEmpty;
  };
  // A count missing from a second is 0 (a request with no activity is left out); a second
  // without requests has no latency (no point, rather than a drop to 0); the plan has a target
  // only within the test's duration.
  enum class Kind { kCount, kLatency, kPlan };
  auto line = [&](const std::string& label, const std::string& g, const std::string& key,
                  Kind kind) {
    Line l{label, {}, kind == Kind::kPlan};
    for (const json& p : r["series"]) {
      const json& at = point_of(p, g);
      const double v = At(at, key);
      if (kind == Kind::kCount) {
        l.y.push_back(std::isfinite(v) ? v : 0);
      } else if (kind == Kind::kLatency && !(At(at, "requests") > 0)) {
        l.y.push_back(NAN);
      } else {
        l.y.push_back(v);
      }
    }
    return l;
  };
  const bool has_target =
      !r["series"].empty() && std::any_of(r["series"].begin(), r["series"].end(),
                                          [](const json& p) { return p.contains("targetRps"); });
  std::vector<Group> rate, latency;
  for (const std::string& g : groups) {
    Group gr{
        g,
        {line("achieved", g, "requests", Kind::kCount), line("errors", g, "errors", Kind::kCount)}};
    if (has_target && g == "*")
      gr.lines.push_back(line("target (plan)", g, "targetRps", Kind::kPlan));
    rate.push_back(gr);
    latency.push_back(
        {g,
         {line("p50", g, "p50", Kind::kLatency), line("p95", g, "p95", Kind::kLatency),
          line("p99", g, "p99", Kind::kLatency), line("max", g, "max", Kind::kLatency)}});
  }
  absl::StrAppend(&html, Chart("Requests per second", xs, rate, Tick));
  absl::StrAppend(&html, Chart("Latency", xs, latency, [](double v) {
    return common::FormatNanos(static_cast<uint64_t>(std::llround(v)));
  }));
  const bool open_model = has_target;
  std::vector<Group> concurrency;
  for (const std::string& g : groups) {
    // Users and requests in flight are counted for the whole test only.
    concurrency.push_back(
        {g,
         {line(open_model ? "in flight (all requests)" : "active users (all requests)", "*",
               open_model ? "inFlight" : "activeUsers", Kind::kCount)}});
  }
  absl::StrAppend(&html,
                  Chart(open_model ? "Requests in flight" : "Active users", xs, concurrency, Tick));
  absl::StrAppend(&html, "<p><small>Written by stampede report from the results of ", Escape(name),
                  ".</small></p>\n</body></html>\n");
  return html;
}

namespace {

struct Compared {
  std::string label;
  json results;
};

// One figure of a run: its summary's (stage < 0) or a stage's.
double Figure(const json& r, int stage, const std::string& key) {
  const json& s = stage < 0 ? r["summary"] : r["stages"][stage]["summary"];
  if (key == "requests" || key == "errors" || key == "rps" || key == "errorRate")
    return s.value(key, 0.0);
  const json l = s.value("latencyNs", json::object());
  return l.value(key, 0.0);
}

const std::vector<std::pair<std::string, std::string>> kFigures = {
    {"requests", "requests"}, {"rps", "rps"}, {"errors", "errors"}, {"errorRate", "error rate"},
    {"p50", "p50"},           {"p90", "p90"}, {"p95", "p95"},       {"p99", "p99"},
    {"p999", "p99.9"},        {"max", "max"}};

std::string Formatted(const std::string& key, double v) {
  if (key == "requests" || key == "errors") return Count(v);
  if (key == "rps") return Rate(v);
  if (key == "errorRate") return absl::StrFormat("%.2f%%", 100 * v);
  return common::FormatNanos(static_cast<uint64_t>(std::llround(v)));
}

std::string Ratio(double base, double v) {
  if (!(base > 0)) return "-";
  return absl::StrFormat("%.2fx", v / base);
}

// Whether every run has stages, as many as the first.
bool SameStages(const std::vector<Compared>& runs) {
  const size_t n = runs[0].results.value("stages", json::array()).size();
  if (n == 0) return false;
  for (const Compared& c : runs) {
    if (c.results.value("stages", json::array()).size() != n) return false;
  }
  return true;
}

// Rows: [label, value per run..., ratio of each run after the first to the first...].
std::vector<std::vector<std::string>> CompareRows(const std::vector<Compared>& runs, int stage) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, label] : kFigures) {
    std::vector<std::string> row = {label};
    for (const Compared& c : runs) row.push_back(Formatted(key, Figure(c.results, stage, key)));
    const double base = Figure(runs[0].results, stage, key);
    for (size_t i = 1; i < runs.size(); ++i)
      row.push_back(Ratio(base, Figure(runs[i].results, stage, key)));
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> CompareHeader(const std::vector<Compared>& runs) {
  std::vector<std::string> h = {""};
  for (const Compared& c : runs) h.push_back(c.label);
  for (size_t i = 1; i < runs.size(); ++i)
    h.push_back(absl::StrCat(runs[i].label, "/", runs[0].label));
  return h;
}

std::string StageTitle(const json& stage) {
  const double from = stage.value("from", 0.0), to = stage.value("to", 0.0);
  return absl::StrFormat(
      "stage %d %s %s, %g-%g s", stage.value("index", 0) + 1, stage.value("kind", ""),
      from == to ? absl::StrFormat("%g", to) : absl::StrFormat("%g -> %g", from, to),
      stage.value("startSeconds", 0.0), stage.value("endSeconds", 0.0));
}

std::string TextTable(const std::vector<std::string>& header,
                      const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    absl::StrAppend(&out, "  ");
    for (size_t i = 0; i < cells.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? absl::StrFormat("%-*s", width[i], cells[i])
                                   : absl::StrFormat("  %*s", width[i], cells[i]));
    }
    absl::StrAppend(&out, "\n");
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string HtmlTable(const std::string& id, const std::vector<std::string>& header,
                      const std::vector<std::vector<std::string>>& rows) {
  std::string out = absl::StrCat("<table id=\"", id, "\"><tr>");
  for (const std::string& h : header) absl::StrAppend(&out, "<th>", Escape(h), "</th>");
  absl::StrAppend(&out, "</tr>\n");
  for (const auto& row : rows) {
    absl::StrAppend(&out, "<tr>");
    for (const std::string& c : row) absl::StrAppend(&out, "<td>", Escape(c), "</td>");
    absl::StrAppend(&out, "</tr>\n");
  }
  return out + "</table>\n";
}

}  // namespace

absl::StatusOr<std::string> CompareText(const std::vector<std::string>& labels,
                                        const std::vector<std::string>& results_json, bool html) {
  if (results_json.size() < 2 || labels.size() != results_json.size()) {
    return absl::InvalidArgumentError("compare needs two results files or more");
  }
  std::vector<Compared> runs;
  for (size_t i = 0; i < results_json.size(); ++i) {
    absl::StatusOr<json> r = ParseResults(results_json[i]);
    if (!r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(labels[i], ": ", r.status().message()));
    }
    runs.push_back({labels[i], *std::move(r)});
  }
  const std::vector<std::string> header = CompareHeader(runs);
  const bool stages = SameStages(runs);
  const size_t n_stages = stages ? runs[0].results["stages"].size() : 0;
  if (!html) {
    std::string out = absl::StrCat("\n  whole run\n", TextTable(header, CompareRows(runs, -1)));
    for (size_t s = 0; s < n_stages; ++s) {
      absl::StrAppend(&out, "\n  ", StageTitle(runs[0].results["stages"][s]), "\n",
                      TextTable(header, CompareRows(runs, static_cast<int>(s))));
    }
    return out;
  }
  std::string out = PageHead("Stampede comparison");
  absl::StrAppend(&out, "<h1>Comparison</h1>\n<p>");
  for (const Compared& c : runs) {
    absl::StrAppend(&out, "<b>", Escape(c.label),
                    "</b>: ", Escape(c.results["metadata"].value("name", "")), " ",
                    Escape(c.results["status"].value("phase", "")), ", run ",
                    Escape(c.results.value("runId", "")), "<br>");
  }
  absl::StrAppend(&out, "</p>\n<h2>Whole run</h2>\n",
                  HtmlTable("whole", header, CompareRows(runs, -1)));
  for (size_t s = 0; s < n_stages; ++s) {
    absl::StrAppend(
        &out, "<h2>", Escape(StageTitle(runs[0].results["stages"][s])), "</h2>\n",
        HtmlTable(absl::StrCat("stage", s + 1), header, CompareRows(runs, static_cast<int>(s))));
  }
  // Overlaid over time: one line per run, by second since each run's start.
  double last = 0;
  for (const Compared& c : runs) {
    for (const json& p : c.results["series"]) last = std::max(last, p.value("second", 0.0));
  }
  std::vector<double> xs;
  for (int x = 0; x <= static_cast<int>(last); ++x) xs.push_back(x);
  auto lines = [&](const std::string& key, bool latency) {
    Group g{"*", {}};
    for (const Compared& c : runs) {
      Line l{c.label, std::vector<double>(xs.size(), latency ? NAN : 0.0), false};
      for (const json& p : c.results["series"]) {
        const size_t at = static_cast<size_t>(p.value("second", 0.0));
        if (at >= xs.size() || (latency && !(At(p, "requests") > 0))) continue;
        l.y[at] = At(p, key);
      }
      g.lines.push_back(l);
    }
    return std::vector<Group>{g};
  };
  auto ns = [](double v) { return common::FormatNanos(static_cast<uint64_t>(std::llround(v))); };
  absl::StrAppend(&out, "<h2>Over time</h2>\n",
                  Chart("Requests per second", xs, lines("requests", false), Tick),
                  Chart("p95 latency", xs, lines("p95", true), ns),
                  Chart("p99 latency", xs, lines("p99", true), ns),
                  Chart("Errors per second", xs, lines("errors", false), Tick));
  return out + "</body></html>\n";
}

std::string CompareUsage() {
  return "usage: stampede compare A.json B.json [C.json...] [-o COMPARE.html]\n"
         "  The same test against several systems, side by side: each figure of the whole run and\n"
         "  of each load level for every results file, and its ratio to the first; -o also writes\n"
         "  an HTML page with the tables and their rates and latencies over time overlaid.\n";
}

namespace {

// The arguments of report and compare: files, and -o/--out FILE. An exit code when the command
// is done (help, or a usage error said on stderr), nullopt to go on.
std::optional<int> ParseFilesAndOut(const std::vector<std::string>& args, const char* command,
                                    const std::string& usage, std::vector<std::string>* files,
                                    std::string* out) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-h" || args[i] == "--help") {
      std::cout << usage;
      return 0;
    }
    if (args[i] == "-o" || args[i] == "--out") {
      if (i + 1 == args.size()) {
        std::cerr << "stampede " << command << ": " << args[i] << ": needs a value\n\n" << usage;
        return 2;
      }
      *out = args[++i];
    } else if (!args[i].empty() && args[i][0] == '-' && args[i] != "-") {
      std::cerr << "stampede " << command << ": " << args[i] << ": unknown flag\n\n" << usage;
      return 2;
    } else {
      files->push_back(args[i]);
    }
  }
  return std::nullopt;
}

// The whole file, or nullopt (said on stderr) when it cannot be read.
std::optional<std::string> ReadOrSay(const char* command, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "stampede " << command << ": cannot read " << path << "\n";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `content` to `path` ("-": standard output) through common::OutputFile; false, said on
// stderr with the system's reason, when it cannot.
bool WriteOrSay(const char* command, const std::string& path, const std::string& content) {
  absl::StatusOr<common::OutputFile> file = common::OutputFile::Prepare(path);
  absl::Status written = file.ok() ? file->Write(content) : file.status();
  if (!written.ok()) std::cerr << "stampede " << command << ": " << written.message() << "\n";
  return written.ok();
}

}  // namespace

int CompareCommand(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string out;
  if (auto done = ParseFilesAndOut(args, "compare", CompareUsage(), &files, &out)) return *done;
  if (files.size() < 2) {
    std::cerr << "stampede compare: needs two results files or more\n\n" << CompareUsage();
    return 2;
  }
  std::vector<std::string> labels, texts;
  for (const std::string& f : files) {
    std::optional<std::string> text = ReadOrSay("compare", f);
    if (!text.has_value()) return 2;
    texts.push_back(*std::move(text));
    std::string label = f.substr(f.rfind('/') + 1);
    if (label.size() > 5 && label.substr(label.size() - 5) == ".json")
      label = label.substr(0, label.size() - 5);
    labels.push_back(label);
  }
  absl::StatusOr<std::string> text = CompareText(labels, texts, /*html=*/false);
  if (!text.ok()) {
    std::cerr << "stampede compare: " << text.status().message() << "\n";
    return 2;
  }
  std::cout << *text;
  if (out.empty()) return 0;
  absl::StatusOr<std::string> html = CompareText(labels, texts, /*html=*/true);
  if (!html.ok()) {
    std::cerr << "stampede compare: " << html.status().message() << "\n";
    return 2;
  }
  return WriteOrSay("compare", out, *html) ? 0 : 2;
}

std::string ReportUsage() {
  return "usage: stampede report RESULTS.json [-o REPORT.html]\n"
         "  Writes one self-contained HTML file (no network access when opened) from the results\n"
         "  of stampede run --out: summary, thresholds, per load level, errors, and charts over\n"
         "  time. Default output: RESULTS.html next to RESULTS.json; -o - writes to stdout.\n";
}

int ReportCommand(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string out;
  if (auto done = ParseFilesAndOut(args, "report", ReportUsage(), &files, &out)) return *done;
  if (files.size() > 1) {
    std::cerr << "stampede report: one results file at a time (got \"" << files[0] << "\" and \""
              << files[1] << "\")\n";
    return 2;
  }
  const std::string in = files.empty() ? "" : files[0];
  if (in.empty()) {
    std::cerr << "stampede report: RESULTS.json: which results?\n\n" << ReportUsage();
    return 2;
  }
  std::optional<std::string> text = ReadOrSay("report", in);
  if (!text.has_value()) return 2;
  absl::StatusOr<std::string> html = ReportHtml(*text);
  if (!html.ok()) {
    std::cerr << "stampede report: " << in << ": " << html.status().message() << "\n";
    return 2;
  }
  if (out.empty()) {
    const size_t dot = in.rfind(".json");
    out = (dot != std::string::npos && dot + 5 == in.size() ? in.substr(0, dot) : in) + ".html";
  }
  if (!WriteOrSay("report", out, *html)) return 2;
  if (out == "-") return 0;
  std::cerr << "stampede report: wrote " << out << " (" << html->size() / 1024 << " KiB)\n";
  return 0;
}

}  // namespace stampede::controller
