// A Clock that moves only when a test says so. Thread-safe.
#ifndef STAMPEDE_TESTS_FAKES_FAKE_CLOCK_H_
#define STAMPEDE_TESTS_FAKES_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace stampede::testing {

class FakeClock final : public common::Clock {
 public:
  // Arbitrary but realistic starting points: both clocks are far from 0, as real ones are.
  static constexpr int64_t kStartMonotonic = 1'000'000'000'000;         // 1000 s after boot
  static constexpr int64_t kStartRealtime = 1'796'000'000'000'000'000;  // late 2026

  int64_t MonotonicNanos() const override { return mono_.load(); }
  int64_t RealtimeNanos() const override { return real_.load(); }
  // Both clocks move together.
  void Advance(int64_t ns) {
    mono_ += ns;
    real_ += ns;
  }
  void AdvanceMs(int64_t ms) { Advance(ms * 1'000'000); }
  void AdvanceSeconds(int64_t s) { Advance(s * 1'000'000'000); }

 private:
  std::atomic<int64_t> mono_{kStartMonotonic};
  std::atomic<int64_t> real_{kStartRealtime};
};

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_FAKES_FAKE_CLOCK_H_
