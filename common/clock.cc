#include "common/clock.h"

namespace stampede::common {
namespace {

class RealClock final : public Clock {
 public:
  int64_t MonotonicNanos() const override { return common::MonotonicNanos(); }
  int64_t RealtimeNanos() const override { return common::RealtimeNanos(); }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace stampede::common
