#include "common/stats.h"

#include <algorithm>

namespace stampede::common {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kUnexpectedStatus:
      return "status";
    case Outcome::kConnect:
      return "connect";
    case Outcome::kDns:
      return "dns";
    case Outcome::kTls:
      return "tls";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kReset:
      return "reset";
    case Outcome::kClosed:
      return "closed";
    case Outcome::kMalformed:
      return "malformed";
    case Outcome::kDropped:
      return "dropped";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kExpectation:
      return "expect";
    case Outcome::kCapture:
      return "capture";
    case Outcome::kGoaway:
      return "goaway";
    case Outcome::kStreamReset:
      return "rst_stream";
    case Outcome::kFlowControl:
      return "flow_control";
    case Outcome::kCount:
      break;
  }
  return "?";
}

uint64_t RequestStats::Requests() const {
  uint64_t n = 0;
  for (uint64_t c : outcomes) n += c;
  return n;
}

void RequestStats::Merge(const RequestStats& other) {
  latency.Merge(other.latency);
  service.Merge(other.service);
  for (size_t i = 0; i < outcomes.size(); ++i) outcomes[i] += other.outcomes[i];
  for (size_t i = 0; i < status_classes.size(); ++i) status_classes[i] += other.status_classes[i];
}

void RequestStats::Reset() {
  latency.Reset();
  service.Reset();
  outcomes.fill(0);
  status_classes.fill(0);
}

void IterationStats::Merge(const IterationStats& other) {
  duration.Merge(other.duration);
  ended_early += other.ended_early;
  dropped += other.dropped;
}

void IterationStats::Reset() {
  duration.Reset();
  ended_early = dropped = 0;
}

void IntervalStats::Merge(const IntervalStats& other) {
  if (requests.size() < other.requests.size()) requests.resize(other.requests.size());
  for (size_t i = 0; i < other.requests.size(); ++i) requests[i].Merge(other.requests[i]);
  if (iterations.size() < other.iterations.size()) iterations.resize(other.iterations.size());
  for (size_t i = 0; i < other.iterations.size(); ++i) iterations[i].Merge(other.iterations[i]);
  connections_opened += other.connections_opened;
  bytes_read += other.bytes_read;
  bytes_written += other.bytes_written;
  late += other.late;
  planned += other.planned;
  bodies_cut += other.bodies_cut;
  active_users += other.active_users;
  in_flight += other.in_flight;
  cpu_seconds += other.cpu_seconds;
  busiest_thread_cpu = std::max(busiest_thread_cpu, other.busiest_thread_cpu);
  max_timer_lag_ns = std::max(max_timer_lag_ns, other.max_timer_lag_ns);
}

void IntervalStats::Reset() {
  for (RequestStats& r : requests) r.Reset();
  for (IterationStats& i : iterations) i.Reset();
  connections_opened = bytes_read = bytes_written = late = planned = bodies_cut = 0;
  active_users = in_flight = 0;
  cpu_seconds = busiest_thread_cpu = 0;
  max_timer_lag_ns = 0;
}

uint64_t IntervalStats::Requests() const {
  uint64_t n = 0;
  for (const RequestStats& r : requests) n += r.Requests();
  return n;
}

uint64_t IntervalStats::Errors() const {
  uint64_t n = 0;
  for (const RequestStats& r : requests) n += r.Errors();
  return n;
}

uint64_t IntervalStats::Outcomes(Outcome o) const {
  uint64_t n = 0;
  for (const RequestStats& r : requests) n += r.outcomes[static_cast<size_t>(o)];
  return n;
}

RequestStats IntervalStats::Total() const {
  RequestStats total;
  for (const RequestStats& r : requests) total.Merge(r);
  return total;
}

}  // namespace stampede::common
