#include "common/duration.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace stampede::common {

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  std::string trimmed(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  if (trimmed.empty()) return absl::InvalidArgumentError("empty duration");
  if (trimmed != "0" && absl::ascii_isdigit(static_cast<unsigned char>(trimmed.back()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", trimmed, "\" has no unit (write ", trimmed, "s or ", trimmed, "ms)"));
  }
  absl::Duration d;
  if (!absl::ParseDuration(trimmed, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", trimmed, "\" is not a duration (examples: 500ms, 10s, 1m30s, 2h)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", trimmed, "\" is negative"));
  }
  if (d > kMaxDuration) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", trimmed, "\" is longer than 168h (7 days), the longest Stampede takes"));
  }
  return d;
}

absl::StatusOr<int64_t> ParseDurationNanos(std::string_view field, std::string_view text) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(field.data(), field.size()), ": ", d.status().message()));
  }
  return absl::ToInt64Nanoseconds(*d);
}

std::string FormatNanos(uint64_t ns) {
  // Four significant digits at most; a value that rounds up to 1000 of a unit moves to the next.
  static const struct {
    double scale;
    const char* unit;
  } kUnits[] = {{1e3, "us"}, {1e6, "ms"}, {1e9, "s"}};
  char buf[32];
  if (ns < 1000) {
    snprintf(buf, sizeof(buf), "%lluns", static_cast<unsigned long long>(ns));
    return buf;
  }
  for (size_t i = 0; i < 3; ++i) {
    const double v = static_cast<double>(ns) / kUnits[i].scale;
    if (i < 2 && v >= 999.5) continue;
    if (i == 2) {
      snprintf(buf, sizeof(buf), "%.3fs", v);
    } else {
      const int decimals = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
      snprintf(buf, sizeof(buf), "%.*f%s", decimals, v, kUnits[i].unit);
    }
    break;
  }
  return buf;
}

}  // namespace stampede::common
