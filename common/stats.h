// What the engine counts: outcomes, status classes and latency histograms per request name, per
// one-second interval. Workers fill their own IntervalStats without locks; readers merge them.
#ifndef STAMPEDE_COMMON_STATS_H_
#define STAMPEDE_COMMON_STATS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "common/histogram.h"

namespace stampede::common {

// How one request ended. Every request the engine starts ends in exactly one of these.
enum class Outcome : uint8_t {
  kOk = 0,            // a response with an expected status code
  kUnexpectedStatus,  // a complete response with another status code
  kConnect,           // the TCP connection could not be made (refused, unreachable)
  kDns,               // the target's host name did not resolve
  kTls,               // the TLS handshake failed (certificate, protocol)
  kTimeout,           // no complete response within the request timeout
  kReset,             // the connection was reset or broken while the request was in flight
  kClosed,            // the server closed the connection before the response was complete
  kMalformed,         // the response was not valid HTTP/1.x
  kDropped,           // open model: could not be sent within the timeout of its planned time
  kCancelled,         // still in flight when the run ended and its grace period ran out
  kExpectation,       // scenarios: the response failed the step's expect (body, JSON path)
  kCapture,           // scenarios: a value the step captures was not in the response
  // HTTP/2 only. Appended after the HTTP/1 outcomes so every earlier index (and so every Report
  // an older agent sends) keeps its meaning.
  kGoaway,       // the server's GOAWAY excluded the stream (its id above last_stream_id)
  kStreamReset,  // the server reset the stream (RST_STREAM), REFUSED_STREAM included
  kFlowControl,  // the response stalled with a zero flow-control window past the stall bound
  kCount,
};

const char* OutcomeName(Outcome outcome);

struct RequestStats {
  // Closed model: response end - request start. Open model: response end - planned send time
  // (corrected for coordinated omission). Recorded for every complete response.
  Histogram latency;
  // Open model only: response end - actual send start (service time, as an uncorrected client
  // sees).
  Histogram service;
  std::array<uint64_t, static_cast<size_t>(Outcome::kCount)> outcomes{};
  std::array<uint64_t, 6> status_classes{};  // [1] = 1xx ... [5] = 5xx; [0] other

  uint64_t Requests() const;
  uint64_t Errors() const { return Requests() - outcomes[0]; }
  void Merge(const RequestStats& other);
  void Reset();
};

// Scenarios: one scenario's iterations.
struct IterationStats {
  // The iterations that ran to their end, from their start (open model: the arrival's planned
  // time) to the end of their last step.
  Histogram duration;
  uint64_t ended_early = 0;  // a failed check with stopIteration, or a missing capture
  uint64_t dropped = 0;      // open model: could not start within the timeout of its plan

  bool empty() const { return duration.count() == 0 && ended_early == 0 && dropped == 0; }
  void Merge(const IterationStats& other);
  void Reset();
};

// Most scenarios a test has (spec.scenarios' maxItems): a bound for reports from the network.
inline constexpr size_t kMaxScenarios = 100;

struct IntervalStats {
  int64_t index = 0;  // seconds since the start; the interval covers [index, index+1) s
  std::vector<RequestStats> requests;      // indexed like the request mix
  std::vector<IterationStats> iterations;  // scenarios: indexed like spec.scenarios
  uint64_t connections_opened = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t late = 0;              // open model: sent more than kLateNs after the planned time
  uint64_t planned = 0;           // open model: arrivals that came due
  uint64_t bodies_cut = 0;        // scenarios: kept bodies longer than the cap
  uint32_t active_users = 0;      // closed model, at the end of the interval
  uint32_t in_flight = 0;         // at the end of the interval
  double cpu_seconds = 0;         // CPU the worker threads used in this interval
  double busiest_thread_cpu = 0;  // the highest single worker's CPU share, 0..1
  int64_t max_timer_lag_ns = 0;   // how late the event loops woke for timers, worst case

  explicit IntervalStats(size_t request_count = 0) : requests(request_count) {}
  void Merge(const IntervalStats& other);
  void Reset();
  uint64_t Requests() const;
  uint64_t Errors() const;
  uint64_t Outcomes(Outcome o) const;
  // Every request name's statistics merged: the "total" row.
  RequestStats Total() const;
};

constexpr int64_t kLateNs = 1000000;  // 1 ms

// A second in which a generator thread ran above 90 % CPU or its timers fired more than 10 ms
// late: its latencies may include the generator's own queueing.
inline bool IntervalSaturated(double busiest_thread_cpu, int64_t max_timer_lag_ns) {
  return busiest_thread_cpu > 0.9 || max_timer_lag_ns > 10'000'000;
}
// A run is flagged when more than a tenth of its seconds (and at least two) were saturated: a
// single late wakeup (a VM's stolen time, say) does not discredit a run; a steady overload does.
inline bool RunSaturated(uint64_t saturated_seconds, uint64_t seconds) {
  return saturated_seconds >= 2 && saturated_seconds * 10 > seconds;
}

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_STATS_H_
