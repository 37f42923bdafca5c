// Pass/fail rules of a load test, as users write them in spec.thresholds:
//
//   p95 < 500ms        p99.9 < 2s         max < 1s          mean <= 100ms      min > 1us
//   error_rate < 1%    error_rate < 0.01  rps > 100         requests >= 1000   errors < 1
//   p95{home} < 300ms  p95{GET /api} < 1s    (per request name, between braces)
//
// Grammar: METRIC [ "{" REQUEST "}" ] OP VALUE, spaces optional around OP. METRIC is pQ (0 < Q <
// 100, at most 3 decimals), max, mean, min, error_rate, rps, requests or errors; OP is <, <=, > or
// >=
// (== is rejected: a measured value is never exactly a number worth testing for equality; write
// `errors < 1`). Latency values need a unit (us, ms, s, m, ... as in common/duration.h);
// error_rate is a percentage ("1%") or a fraction ("0.01"); rps may end in "/s"; requests and
// errors are whole numbers. The request name is trimmed of surrounding spaces; it may contain
// spaces and slashes but not braces.
//
// Pure functions; thread-safe.
#ifndef STAMPEDE_COMMON_THRESHOLD_H_
#define STAMPEDE_COMMON_THRESHOLD_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/stats.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::common {

struct Threshold {
  std::string expression;  // as written
  std::string request;     // empty: all requests; else the request name in braces
  enum class Metric { kQuantile, kMax, kMean, kMin, kErrorRate, kRps, kRequests, kErrors };
  Metric metric = Metric::kQuantile;
  double quantile = 0;  // for kQuantile, e.g. 0.95, 0.999
  enum class Op { kLess, kLessEqual, kGreater, kGreaterEqual };
  Op op = Op::kLess;
  // ns for latency metrics, fraction for error_rate (1% -> 0.01), per second for rps, count for
  // requests/errors.
  double value = 0;

  // Whether `actual` (in the unit of `value`) satisfies the rule. NaN never holds.
  bool Holds(double actual) const;
};

// InvalidArgument names the expression and the problem, e.g. `threshold "p95 <": missing value`.
absl::StatusOr<Threshold> ParseThreshold(std::string_view expression);

// "412ms", "0.3%", "1234.5/s", "17" — the actual value formatted for the metric.
std::string FormatThresholdValue(const Threshold& t, double actual);

// The verdict of each threshold over a run's statistics so far: `names[i]` is the name of
// `totals.requests[i]`, `elapsed_s` how long the load has run (for rps). No data never passes a
// latency threshold (an empty run must not look healthy: its actual value reads "no data"), and
// a threshold on a request name the test does not have fails.
std::vector<v1::ThresholdResult> EvaluateThresholds(const std::vector<Threshold>& thresholds,
                                                    const std::vector<std::string>& names,
                                                    const IntervalStats& totals, double elapsed_s);
// The first failed result, or null when all passed.
const v1::ThresholdResult* FirstFailed(const std::vector<v1::ThresholdResult>& results);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_THRESHOLD_H_
