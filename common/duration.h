// Durations as users write them: "1m30s", "500ms", "2h", "1.5s", "250us". Go's syntax, via abseil.
#ifndef STAMPEDE_COMMON_DURATION_H_
#define STAMPEDE_COMMON_DURATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace stampede::common {

// The longest duration anything takes (a test, a timeout, a ramp): 7 days. One bound for all, so
// that every sum and deadline built from durations stays far inside int64 nanoseconds.
inline constexpr absl::Duration kMaxDuration = absl::Hours(7 * 24);

// Parses a non-negative duration with a unit ("0" alone is allowed), at most kMaxDuration. Errors
// are InvalidArgument and say what was expected, e.g. `"10" has no unit (write 10s or 10ms)`.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);
// The same in nanoseconds, with the error prefixed by `field` ("spec.duration: ...").
absl::StatusOr<int64_t> ParseDurationNanos(std::string_view field, std::string_view text);

// Formats nanoseconds for people: "812us", "3.25ms", "1.200s", with about four significant digits.
std::string FormatNanos(uint64_t ns);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_DURATION_H_
