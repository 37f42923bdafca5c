// The clocks Stampede reads: CLOCK_MONOTONIC (ns) for every duration and deadline, CLOCK_REALTIME
// only to agree on wall-clock instants across machines (the start time, timestamps), and a
// thread's CPU time for self-monitoring. Inline: the engine reads the monotonic clock per request.
//
// Code whose decisions depend on time (the run lifecycle, the reconciler, the agent's session)
// reads it through a Clock, so that tests drive time by hand (tests/fakes/fake_clock.h) and never
// sleep.
#ifndef STAMPEDE_COMMON_CLOCK_H_
#define STAMPEDE_COMMON_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace stampede::common {

inline int64_t ReadClockNanos(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t MonotonicNanos() { return ReadClockNanos(CLOCK_MONOTONIC); }
inline int64_t RealtimeNanos() { return ReadClockNanos(CLOCK_REALTIME); }
inline int64_t ThreadCpuNanos() { return ReadClockNanos(CLOCK_THREAD_CPUTIME_ID); }

// Both clocks, injectable. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t MonotonicNanos() const = 0;
  virtual int64_t RealtimeNanos() const = 0;
};

// The system's clocks; lives forever.
const Clock& SystemClock();

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_CLOCK_H_
