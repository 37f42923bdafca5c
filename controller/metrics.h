// Prometheus metrics of load-test runs, computed at scrape time from one Run::TakeSnapshot per run
// (nothing is updated on the report path). Every series carries the labels `loadtest` and
// `namespace`; per-request series also `request`. The families:
//
//   stampede_requests_total{request,outcome}              counter, outcome = common::OutcomeName
//   stampede_responses_total{request,code_class}          counter, "1xx".."5xx"
//   stampede_request_duration_seconds{request}            histogram, fixed buckets 0.5 ms .. 10 s
//   stampede_request_duration_quantile_seconds{request,window,quantile}
//                                                         summary: exact percentiles of the merged
//                                                         histograms, window "10s" or "total";
//                                                         request "*" is all requests merged
//   stampede_requests_per_second{window="10s"}            gauge
//   stampede_active_users, stampede_target_rate_requests_per_second (open model only),
//   stampede_agents{state}, stampede_phase{phase}, stampede_generator_saturated,
//   stampede_last_interval_seconds, stampede_elapsed_seconds  gauges
//   stampede_threshold_bound{threshold,metric,request}    gauge: each spec.thresholds rule's bound
//                                                         (seconds, fraction, per second, count)
//   stampede_threshold_met{threshold}                     gauge: 1 while the rule holds, else 0
//
// Apart from the runs, PolicyRefusals counts the tests the policy refused:
//   stampede_policy_refusals_total{namespace,rule,reason,stage}  counter; stage "admission" (the
//                                                         test never ran) or "agent" (an agent
//                                                         refused the address it resolved)
//
// The percentiles are a summary rather than a gauge because `promtool check metrics` rejects a
// `quantile` label on anything else; while a histogram is empty its quantile series are left out.
//
// When several runs share a namespace and name (a test posted again after it ended), only one is
// exported, so series never collide: the one still active, else the newest.
//
// Thread-safe: Collect may run on any number of threads; it takes each run's lock once.
#ifndef STAMPEDE_CONTROLLER_METRICS_H_
#define STAMPEDE_CONTROLLER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "controller/run.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace stampede::controller {

class Controller;

class RunMetrics : public prometheus::Collectable {
 public:
  // Returns the runs to export, oldest first (the order decides which of two runs with the same
  // namespace/name is the newest).
  using RunSource = std::function<std::vector<std::shared_ptr<Run>>()>;

  explicit RunMetrics(RunSource source);
  // Controller::RunsForMetrics of `controller` (which must outlive this).
  static std::unique_ptr<RunMetrics> ForController(const Controller* controller);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const RunSource source_;
};

// Refusals by the policy (common/policy.h), counted as they happen. Thread-safe.
class PolicyRefusals {
 public:
  // `reason` is a common::Refusal's (a handful of values) or "address" for an agent's refusal.
  void Count(const std::string& ns, const std::string& rule, const std::string& reason,
             const std::string& stage);
  // The family, appended when anything was counted.
  void AppendTo(std::vector<prometheus::MetricFamily>* families) const;
  uint64_t Total() const;

 private:
  mutable common::Mutex mu_;
  std::map<std::vector<std::string>, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// The agents' channel: stampede_agent_send_overflows_total, streams cut off for a full send queue.
void AppendChannelMetrics(const Controller& controller,
                          std::vector<prometheus::MetricFamily>* families);

// The families of one run, appended to `families` (as returned by Collect, same order).
void AppendRunMetrics(const Run& run, const Run::Snapshot& snapshot,
                      std::vector<prometheus::MetricFamily>* families);

// The text exposition format 0.0.4.
std::string SerializeMetrics(const std::vector<prometheus::MetricFamily>& families);
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// The histogram buckets' upper bounds in seconds (+Inf comes on top).
const std::vector<double>& DurationBucketBounds();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_METRICS_H_
