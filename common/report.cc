// The wire form of an agent's second (v1::Report) and back, and folding many into one.
#include "common/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::common {

void IntervalToReport(const common::IntervalStats& stats, v1::Report* report) {
  report->set_interval(stats.index);
  for (size_t i = 0; i < stats.requests.size(); ++i) {
    const common::RequestStats& r = stats.requests[i];
    if (r.Requests() == 0) continue;  // quiet request names cost nothing on the wire
    v1::RequestReport* out = report->add_requests();
    out->set_request(static_cast<uint32_t>(i));
    r.latency.ToProto(out->mutable_latency());
    if (r.service.count() != 0) r.service.ToProto(out->mutable_service());
    for (uint64_t c : r.outcomes) out->add_outcomes(c);
    for (uint64_t c : r.status_classes) out->add_status_classes(c);
  }
  for (size_t i = 0; i < stats.iterations.size(); ++i) {
    const common::IterationStats& it = stats.iterations[i];
    if (it.empty()) continue;
    v1::IterationReport* out = report->add_iterations();
    out->set_scenario(static_cast<uint32_t>(i));
    it.duration.ToProto(out->mutable_duration());
    out->set_ended_early(it.ended_early);
    out->set_dropped(it.dropped);
  }
  report->set_active_users(stats.active_users);
  report->set_in_flight(stats.in_flight);
  report->set_cpu_seconds(stats.cpu_seconds);
  report->set_busiest_thread_cpu(stats.busiest_thread_cpu);
  report->set_max_timer_lag_ns(stats.max_timer_lag_ns);
  report->set_connections_opened(stats.connections_opened);
  report->set_bytes_read(stats.bytes_read);
  report->set_bytes_written(stats.bytes_written);
  report->set_late(stats.late);
  report->set_planned(stats.planned);
  report->set_bodies_cut(stats.bodies_cut);
}

absl::Status MergeReport(const v1::Report& report, common::IntervalStats* into) {
  // All or nothing: a bad report is rejected whole. Histograms are checked while their bucket
  // counts are added (one pass) and taken back if a later part of the report is bad.
  for (const v1::RequestReport& r : report.requests()) {
    if (r.request() >= into->requests.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("report names request ", r.request(), " of ", into->requests.size()));
    }
    if (r.outcomes_size() > static_cast<int>(common::Outcome::kCount) ||
        r.status_classes_size() > 6) {
      return absl::InvalidArgumentError("report has too many outcome or status counters");
    }
  }
  // Iteration histograms are checked into copies first, so that nothing is added to `into`
  // unless the whole report is good.
  std::vector<std::pair<uint32_t, common::IterationStats>> iterations;
  for (const v1::IterationReport& r : report.iterations()) {
    if (r.scenario() >= common::kMaxScenarios) {
      return absl::InvalidArgumentError(absl::StrCat("report names scenario ", r.scenario()));
    }
    common::IterationStats it;
    RETURN_IF_ERROR(it.duration.AddProtoCounts(r.duration()));
    it.duration.AddProtoSummary(r.duration());
    it.ended_early = r.ended_early();
    it.dropped = r.dropped();
    iterations.emplace_back(r.scenario(), std::move(it));
  }
  int added = 0;  // histograms whose counts are in, in report order: latency, then service
  absl::Status status;
  for (const v1::RequestReport& r : report.requests()) {
    common::RequestStats& s = into->requests[r.request()];
    status = s.latency.AddProtoCounts(r.latency());
    if (!status.ok()) break;
    ++added;
    if (r.has_service()) {
      status = s.service.AddProtoCounts(r.service());
      if (!status.ok()) break;
    }
    ++added;
  }
  if (!status.ok()) {
    for (const v1::RequestReport& r : report.requests()) {
      if (added == 0) break;
      common::RequestStats& s = into->requests[r.request()];
      s.latency.UndoProtoCounts(r.latency());
      if (--added == 0) break;
      if (r.has_service()) s.service.UndoProtoCounts(r.service());
      --added;
    }
    return status;
  }
  for (const v1::RequestReport& r : report.requests()) {
    common::RequestStats& s = into->requests[r.request()];
    s.latency.AddProtoSummary(r.latency());
    if (r.has_service()) s.service.AddProtoSummary(r.service());
    for (int i = 0; i < r.outcomes_size(); ++i) s.outcomes[i] += r.outcomes(i);
    for (int i = 0; i < r.status_classes_size(); ++i) s.status_classes[i] += r.status_classes(i);
  }
  for (auto& [scenario, it] : iterations) {
    if (into->iterations.size() <= scenario) into->iterations.resize(scenario + 1);
    into->iterations[scenario].Merge(it);
  }
  into->active_users += report.active_users();
  into->in_flight += report.in_flight();
  into->cpu_seconds += report.cpu_seconds();
  into->busiest_thread_cpu = std::max(into->busiest_thread_cpu, report.busiest_thread_cpu());
  into->max_timer_lag_ns = std::max(into->max_timer_lag_ns, report.max_timer_lag_ns());
  into->connections_opened += report.connections_opened();
  into->bytes_read += report.bytes_read();
  into->bytes_written += report.bytes_written();
  into->late += report.late();
  into->planned += report.planned();
  into->bodies_cut += report.bodies_cut();
  return absl::OkStatus();
}

absl::StatusOr<v1::Report> FoldReports(absl::Span<const std::string> serialized) {
  if (serialized.empty()) return absl::InvalidArgumentError("no reports to fold");
  // One report parsed at a time: the log being folded can be tens of MB.
  common::IntervalStats sum;
  v1::Report report;
  int64_t first_interval = 0, started_unix_nanos = 0, last_interval = 0;
  for (size_t i = 0; i < serialized.size(); ++i) {
    if (!report.ParseFromString(serialized[i]))
      return absl::InvalidArgumentError("a kept report does not parse");
    for (const v1::RequestReport& r : report.requests()) {
      if (r.request() >= sum.requests.size())
        sum.requests.resize(static_cast<size_t>(r.request()) + 1);
    }
    RETURN_IF_ERROR(MergeReport(report, &sum));
    if (i == 0) {
      first_interval = report.interval();
      started_unix_nanos = report.started_unix_nanos();
    }
    last_interval = std::max(report.interval(), report.folded_through());
  }
  sum.active_users = 0;
  sum.in_flight = 0;
  v1::Report out;
  IntervalToReport(sum, &out);
  out.set_interval(first_interval);
  out.set_folded_through(last_interval);
  out.set_started_unix_nanos(started_unix_nanos);
  return out;
}

}  // namespace stampede::common
