// Turns a LoadTest spec (as the controller assigns it) into the engine's configuration, and the
// engine's interval statistics into the report sent back.
#ifndef STAMPEDE_AGENT_SPEC_CONFIG_H_
#define STAMPEDE_AGENT_SPEC_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/engine.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::agent {

// InvalidArgument naming the field when the spec cannot drive the engine.
absl::StatusOr<EngineConfig> EngineConfigFromAssignment(const v1::Assignment& assignment,
                                                        uint32_t threads);

// The load plan a spec describes (the whole test, before any split).
absl::StatusOr<LoadPlan> LoadPlanFromSpec(const v1::LoadTestSpec& spec);

void IntervalToReport(const common::IntervalStats& stats, v1::Report* report);

// The inverse, for the controller; InvalidArgument on a malformed report (bad histogram, request
// index out of range).
absl::Status MergeReport(const v1::Report& report, common::IntervalStats* into);

// Sums consecutive reports (serialized, oldest first) into one whose `interval` is the first's and
// `folded_through` the last's: exact counts and histograms, gauges (users, in flight) left at 0
// since they are not sums over time. InvalidArgument if one does not parse or merge.
absl::StatusOr<v1::Report> FoldReports(absl::Span<const std::string> serialized);

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_SPEC_CONFIG_H_
