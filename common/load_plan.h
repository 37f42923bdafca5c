// How much load to apply over time: the closed model (virtual users) or the open model (arrivals
// per second), optionally shaped by linear stages.
//
// The plan is a pure function of time, so any share of it is exact: worker k of n streams runs the
// users u with u % n == k, and sends the arrivals i with i % n == k, at PlannedTime(i). Summed over
// all streams that is exactly the plan, whether or not the numbers divide evenly. The controller
// (which assigns streams to agents) and the engine (which runs them) both split with EvenShare.
//
// Shared by the agent and the controller; pure and thread-safe.
#ifndef STAMPEDE_COMMON_LOAD_PLAN_H_
#define STAMPEDE_COMMON_LOAD_PLAN_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace stampede::v1 {
class LoadTestSpec;
}  // namespace stampede::v1

namespace stampede::common {

struct Stage {
  int64_t duration_ns = 0;
  double target = 0;  // users (closed) or requests per second (open) at the end of the stage
};

class LoadPlan {
 public:
  enum class Model { kClosed, kOpen };

  // Closed model. Without stages, users start at `spawn_rate` per second (all at once when 0) up to
  // `users`. With stages, the user count starts at `users` (0 allowed) and ramps linearly through
  // each stage's target, then holds the last one. duration_ns 0 means the sum of the stages.
  static absl::StatusOr<LoadPlan> Closed(uint32_t users, double spawn_rate,
                                         std::vector<Stage> stages, int64_t duration_ns);
  // Open model. Without stages, a constant `rate`; with stages, the rate starts at `rate` (0
  // allowed) and ramps linearly through each stage's target, then holds the last one.
  static absl::StatusOr<LoadPlan> Open(double rate, std::vector<Stage> stages, int64_t duration_ns);

  Model model() const { return model_; }
  int64_t duration_ns() const { return duration_ns_; }

  // Closed model: users that should be active `t_ns` after the start.
  uint32_t UsersAt(int64_t t_ns) const;
  // Closed model: the largest user count the plan reaches.
  uint32_t MaxUsers() const { return max_users_; }
  // Closed model: the time after which UsersAt no longer changes.
  int64_t RampEnd() const { return ramp_end_ns_; }

  // Open model: the rate at t_ns, and when arrival n (0-based) is due, in ns after the start:
  // the first time the cumulative arrivals (the integral of the rate) reach n. Arrivals n with
  // n < the cumulative total at the end are sent; for the others this returns INT64_MAX.
  double RateAt(int64_t t_ns) const;
  int64_t PlannedTime(uint64_t n) const;
  // A stretch of the plan at one slope, for results per load level: each of the stages (cut short
  // by the duration), then the hold of the last level when the duration outlasts them. Empty for
  // a plan without stages.
  struct Span {
    int64_t start_ns = 0, end_ns = 0;
    double from = 0, to = 0;  // users or requests per second at its start and at its end
    bool hold = false;        // the hold after the last stage
  };
  std::vector<Span> Spans() const;

  // Open model: arrivals due in [0, duration).
  uint64_t TotalArrivals() const;
  // Open model: how many arrivals are due before `t_ns` (those n with PlannedTime(n) < t_ns), by
  // arithmetic: a stopping worker counts what it never sent without visiting each one.
  uint64_t ArrivalsBefore(int64_t t_ns) const;

 private:
  struct Segment {
    int64_t start_ns;
    int64_t duration_ns;
    double start_level;      // users or rate at the segment's start
    double slope;            // per second
    double arrivals_before;  // open model: cumulative arrivals at the segment's start...
    double arrivals_end;     // ...and at its end
    double end_level;        // users or rate at its end (the stage's target when not cut short)
  };
  double LevelAt(int64_t t_ns) const;
  double CumulativeAt(int64_t t_ns) const;  // open model: the integral of the rate up to t_ns
  void BuildSegments(double initial, const std::vector<Stage>& stages);

  Model model_ = Model::kClosed;
  int64_t duration_ns_ = 0;
  uint32_t users_ = 0;
  double spawn_rate_ = 0;
  uint32_t max_users_ = 0;
  double total_arrivals_ = 0;  // cumulative arrivals at the end of the run (not rounded)
  int64_t ramp_end_ns_ = 0;
  std::vector<Segment> segments_;  // cover [0, duration_ns_)
  size_t stage_segments_ = 0;      // the first ones, one per stage; a hold may follow
};

// Part `index` of `total` split into `parts` (> 0) as evenly as possible: the first
// total % parts parts get one more. It is also how many of 0..total-1 are congruent to `index`
// modulo `parts`, so stream k of n runs EvenShare(users, n, k) users. The parts add up to total.
inline uint64_t EvenShare(uint64_t total, uint64_t parts, uint64_t index) {
  return total / parts + (index < total % parts ? 1 : 0);
}
// The parts first .. first+count-1 of that split, added up (an agent's streams).
inline uint64_t EvenShareOfRange(uint64_t total, uint64_t parts, uint64_t first, uint64_t count) {
  const uint64_t rest = total % parts;
  const uint64_t extra = rest > first ? std::min(rest, first + count) - first : 0;
  return count * (total / parts) + extra;
}

// The load plan a validated spec describes (the whole test, before any split). InvalidArgument
// naming the field when a duration does not parse.
absl::StatusOr<LoadPlan> LoadPlanFromSpec(const v1::LoadTestSpec& spec);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_LOAD_PLAN_H_
