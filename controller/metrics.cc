#include "controller/metrics.h"

#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/stats.h"
#include "common/threshold.h"
#include "controller/controller.h"
#include "prometheus/text_serializer.h"

namespace stampede::controller {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Family indices, in exposition order.
enum Family {
  kRequests,
  kResponses,
  kDuration,
  kDurationQuantile,
  kRps,
  kActiveUsers,
  kTargetRate,
  kAgents,
  kPhase,
  kSaturated,
  kLastInterval,
  kElapsed,
  kThresholdBound,
  kThresholdMet,
  kIterations,
  kIterationDuration,
  kIoBackend,
  kFamilyCount,
};

struct FamilySpec {
  const char* name;
  MetricType type;
  const char* help;
};

const FamilySpec kFamilies[kFamilyCount] = {
    {"stampede_requests_total", MetricType::Counter,
     "Requests that ended, by outcome (ok, status, connect, dns, tls, timeout, reset, closed, "
     "malformed, dropped, cancelled, expect, capture, goaway, rst_stream, flow_control), over all "
     "agents."},
    {"stampede_responses_total", MetricType::Counter,
     "Complete HTTP responses by status code class."},
    {"stampede_request_duration_seconds", MetricType::Histogram,
     "Request latency (open model: from the planned send time, corrected for coordinated "
     "omission), "
     "from the agents' merged histograms; bucket edges are exact to 0.1%."},
    {"stampede_request_duration_quantile_seconds", MetricType::Summary,
     "Exact latency percentiles of the merged histograms of all agents, over the last 10 finalized "
     "seconds (window=\"10s\") or the whole run (window=\"total\"); request=\"*\" is all requests "
     "together. Never average or sum these across series: use this series or histogram_quantile."},
    {"stampede_requests_per_second", MetricType::Gauge,
     "Requests per second that ended over the last 10 finalized seconds."},
    {"stampede_active_users", MetricType::Gauge,
     "Closed model: virtual users running, at the end of the newest second."},
    {"stampede_target_rate_requests_per_second", MetricType::Gauge,
     "Open model: the arrival rate the plan calls for now, over all agents."},
    {"stampede_agents", MetricType::Gauge,
     "Agents by state: desired, connected (and not done), finished, lost."},
    {"stampede_phase", MetricType::Gauge,
     "1 for the run's current phase (Pending, Starting, Running, Succeeded, Failed, Aborted), 0 "
     "for the others."},
    {"stampede_generator_saturated", MetricType::Gauge,
     "1 when an agent was saturated (a thread above 90% CPU or timers more than 10 ms late): the "
     "figures may describe the load generator rather than the target."},
    {"stampede_last_interval_seconds", MetricType::Gauge,
     "End of the newest finalized one-second interval, in seconds since the start (0: none yet)."},
    {"stampede_elapsed_seconds", MetricType::Gauge,
     "Seconds since the load started, up to the planned duration."},
    {"stampede_threshold_bound", MetricType::Gauge,
     "The bound of each rule in spec.thresholds, in the unit of its metric: seconds for latency "
     "(p95, max, mean, min), a fraction for error_rate, per second for rps, a count for requests "
     "and errors; request=\"*\" is all requests."},
    {"stampede_threshold_met", MetricType::Gauge,
     "1 while a rule of spec.thresholds holds over the run so far (at the end: its verdict), 0 "
     "when it does not."},
    {"stampede_iterations_total", MetricType::Counter,
     "Scenario iterations by result: completed, ended_early (a failed check with stopIteration "
     "or a missing capture) or dropped (open model: could not start in time)."},
    {"stampede_iteration_duration_seconds", MetricType::Histogram,
     "Duration of the scenario iterations that ran to their end (open model: from the planned "
     "start)."},
    {"stampede_agent_io_backend", MetricType::Gauge,
     "Agents that are ready or ran, by the I/O backend of their engine: epoll, or uring "
     "(io_uring; https targets always run on epoll)."},
};

constexpr double kNsPerSecond = 1e9;
const double kQuantiles[] = {0.5, 0.9, 0.95, 0.99, 0.999};
constexpr Phase kPhases[] = {Phase::kPending,   Phase::kStarting, Phase::kRunning,
                             Phase::kSucceeded, Phase::kFailed,   Phase::kAborted};

std::vector<ClientMetric::Label> Labels(const Run& run,
                                        std::vector<std::pair<const char*, std::string>> extra) {
  std::vector<ClientMetric::Label> labels = {{"loadtest", run.name()},
                                             {"namespace", run.name_space()}};
  for (auto& [name, value] : extra) labels.push_back({name, std::move(value)});
  return labels;
}

ClientMetric Gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric Quantiles(std::vector<ClientMetric::Label> labels, const common::Histogram& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.summary.sample_count = h.count();
  m.summary.sample_sum = h.sum() / kNsPerSecond;
  // An empty histogram has no percentiles: 0 would look like a very fast target, and
  // prometheus-cpp spells NaN "Nan".
  if (h.count() == 0) return m;
  for (double q : kQuantiles) {
    m.summary.quantile.push_back({q, h.ValueAtQuantile(q) / kNsPerSecond});
  }
  return m;
}

ClientMetric DurationHistogram(std::vector<ClientMetric::Label> labels,
                               const common::Histogram& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count();
  m.histogram.sample_sum = h.sum() / kNsPerSecond;
  for (double bound : DurationBucketBounds()) {
    m.histogram.bucket.push_back(
        {h.CountAtOrBelow(static_cast<uint64_t>(std::llround(bound * kNsPerSecond))), bound});
  }
  m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
  return m;
}

bool Ended(Phase phase) {
  return phase == Phase::kSucceeded || phase == Phase::kFailed || phase == Phase::kAborted;
}

}  // namespace

const std::vector<double>& DurationBucketBounds() {
  static const std::vector<double> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return bounds;
}

RunMetrics::RunMetrics(RunSource source) : source_(std::move(source)) {}

std::unique_ptr<RunMetrics> RunMetrics::ForController(const Controller* controller) {
  return std::make_unique<RunMetrics>([controller] { return controller->RunsForMetrics(); });
}

std::vector<MetricFamily> RunMetrics::Collect() const {
  // One run per namespace/name: an active one, else the newest.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Run>> chosen;
  for (std::shared_ptr<Run>& run : source_()) {
    std::shared_ptr<Run>& slot = chosen[{run->name_space(), run->name()}];
    if (slot == nullptr || Ended(slot->phase())) slot = std::move(run);
  }
  std::vector<MetricFamily> families;
  for (const auto& [key, run] : chosen) AppendRunMetrics(*run, run->TakeSnapshot(false), &families);
  std::vector<MetricFamily> nonempty;
  for (MetricFamily& f : families) {
    if (!f.metric.empty()) nonempty.push_back(std::move(f));
  }
  return nonempty;
}

void PolicyRefusals::Count(const std::string& ns, const std::string& rule,
                           const std::string& reason, const std::string& stage) {
  common::MutexLock lock(&mu_);
  ++counts_[{ns, rule, reason, stage}];
}

uint64_t PolicyRefusals::Total() const {
  common::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const auto& [labels, n] : counts_) total += n;
  return total;
}

void PolicyRefusals::AppendTo(std::vector<MetricFamily>* families) const {
  common::MutexLock lock(&mu_);
  if (counts_.empty()) return;
  MetricFamily f;
  f.name = "stampede_policy_refusals_total";
  f.help =
      "LoadTests the policy refused, by namespace, rule, reason and stage (admission: before "
      "anything ran; agent: the address an agent resolved).";
  f.type = MetricType::Counter;
  for (const auto& [labels, n] : counts_) {
    ClientMetric m;
    m.label = {
        {"namespace", labels[0]}, {"rule", labels[1]}, {"reason", labels[2]}, {"stage", labels[3]}};
    m.counter.value = static_cast<double>(n);
    f.metric.push_back(std::move(m));
  }
  families->push_back(std::move(f));
}

void AppendChannelMetrics(const Controller& controller, std::vector<MetricFamily>* families) {
  MetricFamily f;
  f.name = "stampede_agent_send_overflows_total";
  f.help =
      "Agent streams the controller cut off because the agent left its send queue full (64 "
      "messages unread: it stopped reading); each is a lost agent.";
  f.type = MetricType::Counter;
  ClientMetric m;
  m.counter.value = static_cast<double>(controller.agent_send_overflows());
  f.metric.push_back(std::move(m));
  families->push_back(std::move(f));
}

void AppendRunMetrics(const Run& run, const Run::Snapshot& snap,
                      std::vector<MetricFamily>* families) {
  if (families->empty()) {
    for (const FamilySpec& spec : kFamilies) {
      MetricFamily f;
      f.name = spec.name;
      f.help = spec.help;
      f.type = spec.type;
      families->push_back(std::move(f));
    }
  }
  auto add = [families](Family family, ClientMetric m) {
    (*families)[family].metric.push_back(std::move(m));
  };

  common::Histogram all_latency;
  for (size_t i = 0; i < snap.request_names.size() && i < snap.cumulative.requests.size(); ++i) {
    const std::string& request = snap.request_names[i];
    const common::RequestStats& r = snap.cumulative.requests[i];
    for (size_t o = 0; o < static_cast<size_t>(common::Outcome::kCount); ++o) {
      add(kRequests,
          Counter(Labels(run, {{"request", request},
                               {"outcome", common::OutcomeName(static_cast<common::Outcome>(o))}}),
                  static_cast<double>(r.outcomes[o])));
    }
    for (int c = 1; c <= 5; ++c) {
      add(kResponses,
          Counter(Labels(run, {{"request", request}, {"code_class", absl::StrCat(c, "xx")}}),
                  static_cast<double>(r.status_classes[c])));
    }
    add(kDuration, DurationHistogram(Labels(run, {{"request", request}}), r.latency));
    if (i < snap.window_latency.size()) {
      add(kDurationQuantile, Quantiles(Labels(run, {{"request", request}, {"window", "10s"}}),
                                       snap.window_latency[i]));
    }
    add(kDurationQuantile,
        Quantiles(Labels(run, {{"request", request}, {"window", "total"}}), r.latency));
    all_latency.Merge(r.latency);
  }
  add(kDurationQuantile,
      Quantiles(Labels(run, {{"request", "*"}, {"window", "10s"}}), snap.window_total));
  add(kDurationQuantile,
      Quantiles(Labels(run, {{"request", "*"}, {"window", "total"}}), all_latency));

  for (size_t i = 0; i < snap.scenario_names.size(); ++i) {
    const common::IterationStats none;
    const common::IterationStats& it =
        i < snap.cumulative.iterations.size() ? snap.cumulative.iterations[i] : none;
    const std::string& scenario = snap.scenario_names[i];
    for (const auto& [result, count] :
         {std::pair<const char*, uint64_t>{"completed", it.duration.count()},
          {"ended_early", it.ended_early},
          {"dropped", it.dropped}}) {
      add(kIterations, Counter(Labels(run, {{"scenario", scenario}, {"result", result}}),
                               static_cast<double>(count)));
    }
    add(kIterationDuration, DurationHistogram(Labels(run, {{"scenario", scenario}}), it.duration));
  }
  add(kRps, Gauge(Labels(run, {{"window", "10s"}}), snap.window_rps));
  add(kActiveUsers, Gauge(Labels(run, {}), snap.active_users));
  if (run.test().spec().load().has_rate())
    add(kTargetRate, Gauge(Labels(run, {}), snap.target_rate));
  for (const auto& [state, count] :
       {std::pair<const char*, uint32_t>{"desired", snap.agents_desired},
        {"connected", snap.agents_connected},
        {"finished", snap.agents_finished},
        {"lost", snap.agents_lost}}) {
    add(kAgents, Gauge(Labels(run, {{"state", state}}), count));
  }
  for (Phase phase : kPhases)
    add(kPhase, Gauge(Labels(run, {{"phase", PhaseName(phase)}}), phase == snap.phase ? 1 : 0));
  add(kSaturated, Gauge(Labels(run, {}), snap.saturated ? 1 : 0));
  add(kIoBackend, Gauge(Labels(run, {{"backend", "epoll"}}), snap.agents_epoll));
  add(kIoBackend, Gauge(Labels(run, {{"backend", "uring"}}), snap.agents_uring));
  add(kLastInterval, Gauge(Labels(run, {}), static_cast<double>(snap.last_interval + 1)));
  add(kElapsed, Gauge(Labels(run, {}), snap.elapsed_s));

  for (const common::Threshold& rule : run.thresholds()) {
    using Metric = common::Threshold::Metric;
    static const std::map<Metric, const char*> kNames = {
        {Metric::kMax, "max"},      {Metric::kMean, "mean"},
        {Metric::kMin, "min"},      {Metric::kErrorRate, "error_rate"},
        {Metric::kRps, "rps"},      {Metric::kRequests, "requests"},
        {Metric::kErrors, "errors"}};
    const bool latency = rule.metric == Metric::kQuantile || rule.metric == Metric::kMax ||
                         rule.metric == Metric::kMean || rule.metric == Metric::kMin;
    add(kThresholdBound,
        Gauge(Labels(run, {{"threshold", rule.expression},
                           {"metric", rule.metric == Metric::kQuantile
                                          ? absl::StrCat("p", rule.quantile * 100)
                                          : kNames.at(rule.metric)},
                           {"request", rule.request.empty() ? "*" : rule.request}}),
              latency ? rule.value / kNsPerSecond : rule.value));
  }
  for (const v1::ThresholdResult& verdict : snap.status.thresholds()) {
    add(kThresholdMet,
        Gauge(Labels(run, {{"threshold", verdict.expression()}}), verdict.passed() ? 1 : 0));
  }
}

std::string SerializeMetrics(const std::vector<MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace stampede::controller
