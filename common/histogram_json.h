// A histogram's summary as JSON, the one shape results files and `stampede-agent bench --json`
// share: count, min, mean, p50, p90, p95, p99, p999 and max, in ns (mean rounded).
// Header-only: nlohmann-json is, and only the binaries that write JSON need it.
#ifndef STAMPEDE_COMMON_HISTOGRAM_JSON_H_
#define STAMPEDE_COMMON_HISTOGRAM_JSON_H_

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "common/histogram.h"

namespace stampede::common {

inline nlohmann::json HistogramSummaryJson(const Histogram& h) {
  return {{"count", h.count()},
          {"min", h.min()},
          {"mean", static_cast<uint64_t>(std::llround(h.Mean()))},
          {"p50", h.ValueAtQuantile(0.5)},
          {"p90", h.ValueAtQuantile(0.9)},
          {"p95", h.ValueAtQuantile(0.95)},
          {"p99", h.ValueAtQuantile(0.99)},
          {"p999", h.ValueAtQuantile(0.999)},
          {"max", h.max()}};
}

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_HISTOGRAM_JSON_H_
