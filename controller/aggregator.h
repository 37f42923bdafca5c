// Merges the agents' one-second reports exactly: per request name and in total, per interval and
// cumulative, plus a sliding window of the last finalized intervals. Histograms are added bucket
// by bucket, so every percentile here is the percentile of the union of all agents' samples.
//
// Not thread-safe: the owning Run serializes access.
#ifndef STAMPEDE_CONTROLLER_AGGREGATOR_H_
#define STAMPEDE_CONTROLLER_AGGREGATOR_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/stats.h"

namespace stampede::v1 {
class Report;
}

namespace stampede::controller {

// One finalized second, as the time series keeps it.
struct IntervalPoint {
  int64_t index = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint32_t active_users = 0;
  uint32_t in_flight = 0;
  double busiest_thread_cpu = 0;
  int64_t max_timer_lag_ns = 0;
  struct Request {
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint64_t p50 = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0;  // ns
    // Requests with a latency (the histogram's count): 0 when every one failed without a
    // response (a timeout, a refused connection), and then the percentiles mean nothing.
    uint64_t timed = 0;
  };
  std::vector<Request> per_request;  // indexed like the spec's requests
  Request total;
  int64_t finalized_at_ns = 0;  // CLOCK_MONOTONIC, to measure reporting lag
};

class Aggregator {
 public:
  // `window` is how many finalized seconds the windowed percentiles cover.
  Aggregator(std::vector<std::string> request_names, uint32_t agents, int window = 10);

  // Adds an agent's report for one interval. InvalidArgument (nothing added) when malformed. A
  // second report from the same agent for the same interval (a replay) is ignored. A folded
  // report (Report.folded_through) goes straight into the totals and closes the seconds it
  // covers without points of their own; one that overlaps seconds already counted is rejected.
  // `newest`: the last second the test can have reached (its elapsed time and some slack); a
  // report for a later one, or a fold reaching past it, is rejected.
  absl::Status Add(uint32_t agent, const v1::Report& report,
                   int64_t newest = std::numeric_limits<int64_t>::max());
  // The agent sends no more reports (finished or lost): intervals stop waiting for it.
  void AgentGone(uint32_t agent);

  // Finalizes, in order, every pending interval that every agent still reporting has reported,
  // and those with index < `force_before` whatever is missing. Returns the new points.
  std::vector<IntervalPoint> Finalize(int64_t force_before, int64_t now_ns);
  // Finalizes everything pending (the run is over).
  std::vector<IntervalPoint> FinalizeAll(int64_t now_ns);

  // Results per load level: totals per span of the plan (LoadPlan::Spans), whose starts
  // `stage_starts_ns` lists, ascending from 0. Second i counts in the span in which it starts,
  // which is exact when stages last whole seconds. Call before the first report.
  void SetStages(std::vector<int64_t> stage_starts_ns);
  struct StageTotals {
    common::IntervalStats stats;
    // A folded replay (no per-second detail) that spans stages was counted in its first one.
    bool folded = false;
  };
  const std::vector<StageTotals>& stages() const { return stages_; }
  // The stage second `index` counts in; -1 without stages.
  int StageOf(int64_t index) const;

  const std::vector<std::string>& request_names() const { return names_; }
  // Every finalized interval plus every report that arrived after its interval was finalized:
  // the exact totals, up to the last finalized second (FinalizeAll makes them complete).
  const common::IntervalStats& cumulative() const { return cumulative_; }
  // Latency over the last `window` finalized intervals; request -1 for all requests.
  common::Histogram WindowLatency(int request) const;
  // Requests per second over the window.
  double WindowRps() const;
  const std::vector<IntervalPoint>& series() const { return series_; }
  uint64_t late_reports() const { return late_reports_; }
  uint64_t rejected_reports() const { return rejected_reports_; }
  uint64_t duplicate_reports() const { return duplicate_reports_; }
  uint64_t folded_reports() const { return folded_reports_; }
  int64_t last_finalized() const { return next_to_finalize_ - 1; }
  // The highest interval `agent` has reported; -1 for none.
  int64_t reported_up_to(uint32_t agent) const {
    return agent < reported_up_to_.size() ? reported_up_to_[agent] : -1;
  }

 private:
  IntervalPoint Close(int64_t index, common::IntervalStats& stats, int64_t now_ns);
  absl::Status AddFolded(uint32_t agent, const v1::Report& report);
  // Adds closed interval `index` to cumulative_ (keeping its gauges) and to its stage.
  void AddToTotals(const common::IntervalStats& stats, int64_t index);

  const std::vector<std::string> names_;
  const int window_;
  std::vector<int64_t> reported_up_to_;  // per agent: highest interval reported, -1 none
  std::vector<bool> gone_;
  std::vector<std::vector<bool>> seen_;  // per agent: intervals already merged
  std::map<int64_t, common::IntervalStats> pending_;
  int64_t next_to_finalize_ = 0;
  common::IntervalStats cumulative_;
  std::vector<int64_t> stage_starts_ns_;
  std::vector<StageTotals> stages_;
  struct WindowEntry {
    int64_t index;
    uint64_t requests;
    std::vector<common::Histogram> latency;  // per request
  };
  std::deque<WindowEntry> window_entries_;
  std::vector<IntervalPoint> series_;
  uint64_t late_reports_ = 0;
  uint64_t rejected_reports_ = 0;
  uint64_t duplicate_reports_ = 0;
  uint64_t folded_reports_ = 0;
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_AGGREGATOR_H_
