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
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", trimmed, "\" is not a duration (examples: 500ms, 10s, 1m30s, 2h)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", trimmed, "\" is negative"));
  }
  return d;
}

std::string FormatNanos(uint64_t ns) {
  char buf[32];
  const double v = static_cast<double>(ns);
  if (ns < 1000) {
    snprintf(buf, sizeof(buf), "%lluns", static_cast<unsigned long long>(ns));
  } else if (ns < 1000000) {
    snprintf(buf, sizeof(buf), v < 1e4 ? "%.2fus" : v < 1e5 ? "%.1fus" : "%.0fus", v / 1e3);
  } else if (ns < 1000000000) {
    snprintf(buf, sizeof(buf), v < 1e7 ? "%.2fms" : v < 1e8 ? "%.1fms" : "%.0fms", v / 1e6);
  } else {
    snprintf(buf, sizeof(buf), "%.3fs", v / 1e9);
  }
  return buf;
}

}  // namespace stampede::common
