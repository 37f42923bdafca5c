// Results files: JSON (summary, per request, per-second series) and CSV (per-second rows).
#ifndef STAMPEDE_CONTROLLER_RESULTS_H_
#define STAMPEDE_CONTROLLER_RESULTS_H_

#include <string>

#include "absl/status/status.h"
#include "controller/run.h"

namespace stampede::controller {

std::string ResultsJson(const Run& run, const Run::Snapshot& snapshot);
std::string ResultsCsv(const Run::Snapshot& snapshot);

// The end-of-run table per load level (status.stages), or "" without stages: a row per stage
// (number, kind, level in `level_unit`, seconds, requests, errors, rps, p50..p99.9, max) and,
// when the test has several requests, a row per request under it.
std::string StageTable(const v1::LoadTestStatus& status, const std::string& level_unit);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RESULTS_H_
