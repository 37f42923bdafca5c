#include "controller/results.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/histogram_json.h"
#include "common/load_plan.h"
#include "common/spec.h"
#include "common/stats.h"

namespace stampede::controller {
namespace {

using nlohmann::json;

json Counts(const common::RequestStats& r) {
  json outcomes = json::object(), status = json::object();
  for (size_t o = 0; o < static_cast<size_t>(common::Outcome::kCount); ++o) {
    outcomes[common::OutcomeName(static_cast<common::Outcome>(o))] = r.outcomes[o];
  }
  for (int c = 1; c <= 5; ++c) status[absl::StrCat(c, "xx")] = r.status_classes[c];
  return {{"requests", r.Requests()},
          {"errors", r.Errors()},
          {"outcomes", outcomes},
          {"status", status}};
}

// A second's figures; the percentiles only when some request of it had a latency, so that a
// second of nothing but timeouts is a gap in a latency chart rather than a drop to 0.
json Point(const IntervalPoint::Request& r) {
  json p = {{"requests", r.requests}, {"errors", r.errors}};
  if (r.timed == 0) return p;
  p.update({{"p50", r.p50},
            {"p90", r.p90},
            {"p95", r.p95},
            {"p99", r.p99},
            {"p999", r.p999},
            {"max", r.max}});
  return p;
}

}  // namespace

std::string ResultsJson(const Run& run, const Run::Snapshot& snap) {
  // LoadTestToJson writes 64-bit numbers as numbers (protobuf's own JSON quotes them), the way
  // Kubernetes and people read them.
  v1::LoadTest holder;
  *holder.mutable_status() = snap.status;
  const json status = json::parse(common::LoadTestToJson(holder))["status"];

  const common::RequestStats total = snap.cumulative.Total();
  json summary = Counts(total);
  summary["durationSeconds"] = snap.elapsed_s;
  summary["rps"] = snap.elapsed_s > 0 ? total.Requests() / snap.elapsed_s : 0.0;
  summary["errorRate"] =
      total.Requests() == 0 ? 0.0 : static_cast<double>(total.Errors()) / total.Requests();
  summary["latencyNs"] = common::HistogramSummaryJson(total.latency);
  if (total.service.count() != 0)
    summary["serviceTimeNs"] = common::HistogramSummaryJson(total.service);
  summary["late"] = snap.cumulative.late;
  summary["planned"] = snap.cumulative.planned;
  if (!snap.scenario_names.empty()) summary["bodiesCut"] = snap.cumulative.bodies_cut;
  summary["connectionsOpened"] = snap.cumulative.connections_opened;
  summary["generatorSaturated"] = snap.saturated;

  json requests = json::array();
  for (size_t i = 0; i < snap.request_names.size(); ++i) {
    const common::RequestStats& r = snap.cumulative.requests[i];
    json entry = Counts(r);
    entry["name"] = snap.request_names[i];
    entry["latencyNs"] = common::HistogramSummaryJson(r.latency);
    if (r.service.count() != 0) entry["serviceTimeNs"] = common::HistogramSummaryJson(r.service);
    requests.push_back(entry);
  }
  // Scenarios: each one's iterations (timed when they ran to their end).
  json scenarios = json::array();
  for (size_t i = 0; i < snap.scenario_names.size(); ++i) {
    const common::IterationStats none;
    const common::IterationStats& it =
        i < snap.cumulative.iterations.size() ? snap.cumulative.iterations[i] : none;
    scenarios.push_back({{"name", snap.scenario_names[i]},
                         {"iterations", it.duration.count()},
                         {"endedEarly", it.ended_early},
                         {"dropped", it.dropped},
                         {"durationNs", common::HistogramSummaryJson(it.duration)}});
  }
  // Per load level: the same figures from the merged histograms of each stage's seconds.
  json stages = json::array();
  for (size_t i = 0; i < snap.stages.size() && i < snap.stage_spans.size(); ++i) {
    const v1::StageSummary& said = snap.status.stages(static_cast<int>(i));
    const common::IntervalStats& stats = snap.stages[i].stats;
    const common::RequestStats stage_total = stats.Total();
    json stage_summary = Counts(stage_total);
    stage_summary["rps"] = said.summary().rps();
    stage_summary["errorRate"] = said.summary().error_rate();
    stage_summary["latencyNs"] = common::HistogramSummaryJson(stage_total.latency);
    json by_request = json::array();
    for (size_t r = 0; r < stats.requests.size() && r < snap.request_names.size(); ++r) {
      json entry = Counts(stats.requests[r]);
      entry["name"] = snap.request_names[r];
      entry["rps"] = said.requests(static_cast<int>(r)).summary().rps();
      entry["latencyNs"] = common::HistogramSummaryJson(stats.requests[r].latency);
      by_request.push_back(entry);
    }
    stages.push_back({{"index", i},
                      {"kind", said.kind()},
                      {"from", said.from()},
                      {"to", said.to()},
                      {"startSeconds", said.start_seconds()},
                      {"endSeconds", said.end_seconds()},
                      {"approximate", said.approximate()},
                      {"summary", stage_summary},
                      {"requests", by_request}});
  }
  // The open model's plan: the arrivals due in each second, drawn against what was achieved.
  std::optional<common::LoadPlan> plan;
  if (run.test().spec().load().has_rate()) {
    if (auto p = common::LoadPlanFromSpec(run.test().spec()); p.ok()) plan = *p;
  }
  json series = json::array();
  for (const IntervalPoint& p : snap.series) {
    json by_request = json::object();
    for (size_t i = 0; i < p.per_request.size() && i < snap.request_names.size(); ++i) {
      by_request[snap.request_names[i]] = Point(p.per_request[i]);
    }
    json entry = Point(p.total);
    entry["second"] = p.index;
    entry["activeUsers"] = p.active_users;
    entry["inFlight"] = p.in_flight;
    entry["byRequest"] = by_request;
    if (plan.has_value() && (p.index + 1) * 1'000'000'000 <= plan->duration_ns()) {
      entry["targetRps"] = plan->ArrivalsBefore((p.index + 1) * 1'000'000'000) -
                           plan->ArrivalsBefore(p.index * 1'000'000'000);
    }
    series.push_back(entry);
  }
  json out = {{"apiVersion", "stampede.dev/v1alpha1"},
              {"kind", "LoadTestResult"},
              {"metadata", {{"name", run.name()}, {"namespace", run.name_space()}}},
              {"runId", run.id()},
              {"status", status},
              {"summary", summary},
              {"requests", requests},
              {"stages", stages},
              {"series", series}};
  if (!snap.scenario_names.empty()) out["scenarios"] = scenarios;
  return out.dump(2) + "\n";
}

std::string StageTable(const v1::LoadTestStatus& status, const std::string& level_unit) {
  if (status.stages().empty()) return "";
  std::string out = absl::StrFormat("\n  %-5s %-6s %-18s %-11s %10s %8s %9s %9s %9s %9s %9s %9s\n",
                                    "stage", "kind", level_unit, "seconds", "requests", "errors",
                                    "rps", "p50", "p95", "p99", "p99.9", "max");
  auto fmt = [](double level) { return absl::StrFormat("%g", level); };
  auto row = [&out](const std::string& stage, const std::string& kind, const std::string& level,
                    const std::string& seconds, const v1::Summary& s) {
    auto or_dash = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
    absl::StrAppendFormat(&out, "  %-5s %-6s %-18s %-11s %10u %8u %9.1f %9s %9s %9s %9s %9s\n",
                          stage, kind, level.substr(0, 18), seconds, s.requests(), s.errors(),
                          s.rps(), or_dash(s.p50()), or_dash(s.p95()), or_dash(s.p99()),
                          or_dash(s.p999()), or_dash(s.max()));
  };
  for (const v1::StageSummary& stage : status.stages()) {
    const std::string level = stage.from() == stage.to()
                                  ? fmt(stage.to())
                                  : absl::StrCat(fmt(stage.from()), " -> ", fmt(stage.to()));
    row(absl::StrCat(stage.index() + 1), stage.kind() + (stage.approximate() ? "~" : ""), level,
        absl::StrCat(fmt(stage.start_seconds()), "-", fmt(stage.end_seconds()), "s"),
        stage.summary());
    if (stage.requests_size() > 1) {
      for (const v1::RequestSummary& r : stage.requests())
        row("", "", absl::StrCat("  ", r.name()), "", r.summary());
    }
  }
  return out;
}

std::string ResultsCsv(const Run::Snapshot& snap) {
  std::string out =
      "second,request,requests,errors,p50_ms,p90_ms,p95_ms,p99_ms,p999_ms,max_ms,active_users\n";
  auto row = [&out](int64_t second, const std::string& name, const IntervalPoint::Request& r,
                    uint32_t users) {
    std::string quoted = "\"";
    for (char c : name) {
      if (c == '"') quoted += '"';
      quoted += c;
    }
    quoted += '"';
    char buf[256];
    snprintf(buf, sizeof(buf), "%lld,%s,%llu,%llu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%u\n",
             static_cast<long long>(second), quoted.c_str(),
             static_cast<unsigned long long>(r.requests), static_cast<unsigned long long>(r.errors),
             r.p50 / 1e6, r.p90 / 1e6, r.p95 / 1e6, r.p99 / 1e6, r.p999 / 1e6, r.max / 1e6, users);
    out += buf;
  };
  for (const IntervalPoint& p : snap.series) {
    row(p.index, "*", p.total, p.active_users);
    for (size_t i = 0; i < p.per_request.size() && i < snap.request_names.size(); ++i) {
      row(p.index, snap.request_names[i], p.per_request[i], p.active_users);
    }
  }
  return out;
}

}  // namespace stampede::controller
