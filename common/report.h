// An agent's one-second statistics on the wire (v1::Report): the engine's IntervalStats turned into
// a report, a report merged back into IntervalStats (the controller's side), and many reports
// folded into one (the agent's bounded replay log). Pure and thread-safe.
#ifndef STAMPEDE_COMMON_REPORT_H_
#define STAMPEDE_COMMON_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::common {

// Requests with no activity in the interval are left out (they cost nothing on the wire).
void IntervalToReport(const IntervalStats& stats, v1::Report* report);

// Adds `report` to `into`, all or nothing: InvalidArgument, with `into` unchanged, on a malformed
// report (a bad histogram, a request index out of range, too many counters).
absl::Status MergeReport(const v1::Report& report, IntervalStats* into);

// Sums consecutive reports (serialized, oldest first) into one whose `interval` is the first's and
// `folded_through` the last's: exact counts and histograms, gauges (users, in flight) left at 0
// since they are not sums over time. InvalidArgument if one does not parse or merge.
absl::StatusOr<v1::Report> FoldReports(absl::Span<const std::string> serialized);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_REPORT_H_
