#include "controller/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"

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
      absl::StrAppend(&out, "<polyline class=\"s", i, l.dashed ? " dashed" : "", "\" points=\"",
                      points, "\"><title>", Escape(l.label), "</title></polyline>\n");
      absl::StrAppendFormat(&out,
                            "<line class=\"s%d%s\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>"
                            "<text class=\"legend\" x=\"%d\" y=\"%d\">%s</text>\n",
                            i, l.dashed ? " dashed" : "", kLeft + 10 + 150 * static_cast<int>(i),
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
    select.addEventListener('change', function () { show(select.value); });
    show(select.value);
    var drawn = 0;
    document.querySelectorAll('polyline').forEach(function (p) {
      if (p.points.numberOfItems > 1) drawn++;
    });
    document.body.setAttribute('data-drawn-lines', drawn);
    document.body.setAttribute('data-blocked-requests', blocked);
  });
})();
)";

}  // namespace

absl::StatusOr<std::string> ReportHtml(const std::string& results_json) {
  const json r = json::parse(results_json, nullptr, /*allow_exceptions=*/false);
  if (!r.is_object() || r.value("kind", "") != "LoadTestResult") {
    return absl::InvalidArgumentError(
        "not a results file of stampede run --out (kind: LoadTestResult)");
  }
  for (const char* field : {"summary", "requests", "series", "status"}) {
    if (!r.contains(field)) return absl::InvalidArgumentError(absl::StrCat("no \"", field, "\""));
  }
  const json& status = r["status"];
  const json& summary = r["summary"];
  const std::string name = r["metadata"].value("name", "loadtest");
  const std::string ns = r["metadata"].value("namespace", "");
  const std::string phase = status.value("phase", "");

  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>",
      Escape(name), " - Stampede report</title>\n<style>", kStyle, "</style>\n<script>", kScript,
      "</script>\n</head><body>\n");
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

std::string ReportUsage() {
  return "usage: stampede report RESULTS.json [-o REPORT.html]\n"
         "  Writes one self-contained HTML file (no network access when opened) from the results\n"
         "  of stampede run --out: summary, thresholds, per load level, errors, and charts over\n"
         "  time. Default output: RESULTS.html next to RESULTS.json; -o - writes to stdout.\n";
}

int ReportCommand(const std::vector<std::string>& args) {
  std::string in, out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-h" || args[i] == "--help") {
      std::cout << ReportUsage();
      return 0;
    }
    if (args[i] == "-o" || args[i] == "--out") {
      if (i + 1 == args.size()) {
        std::cerr << "stampede report: " << args[i] << ": needs a value\n\n" << ReportUsage();
        return 2;
      }
      out = args[++i];
    } else if (!args[i].empty() && args[i][0] == '-') {
      std::cerr << "stampede report: " << args[i] << ": unknown flag\n\n" << ReportUsage();
      return 2;
    } else if (in.empty()) {
      in = args[i];
    } else {
      std::cerr << "stampede report: one results file at a time (got \"" << in << "\" and \""
                << args[i] << "\")\n";
      return 2;
    }
  }
  if (in.empty()) {
    std::cerr << "stampede report: RESULTS.json: which results?\n\n" << ReportUsage();
    return 2;
  }
  std::ifstream file(in);
  if (!file) {
    std::cerr << "stampede report: cannot read " << in << "\n";
    return 2;
  }
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<std::string> html = ReportHtml(text.str());
  if (!html.ok()) {
    std::cerr << "stampede report: " << in << ": " << html.status().message() << "\n";
    return 2;
  }
  if (out.empty()) {
    const size_t dot = in.rfind(".json");
    out = (dot != std::string::npos && dot + 5 == in.size() ? in.substr(0, dot) : in) + ".html";
  }
  if (out == "-") {
    std::cout << *html;
    return 0;
  }
  std::ofstream dest(out, std::ios::trunc);
  dest << *html;
  dest.close();
  if (!dest) {
    std::cerr << "stampede report: cannot write " << out << "\n";
    return 2;
  }
  std::cerr << "stampede report: wrote " << out << " (" << html->size() / 1024 << " KiB)\n";
  return 0;
}

}  // namespace stampede::controller
