// Results files: JSON (summary, per request, per-second series) and CSV (per-second rows).
#ifndef STAMPEDE_CONTROLLER_RESULTS_H_
#define STAMPEDE_CONTROLLER_RESULTS_H_

#include <string>

#include "absl/status/status.h"
#include "controller/run.h"

namespace stampede::controller {

std::string ResultsJson(const Run& run, const Run::Snapshot& snapshot);
std::string ResultsCsv(const Run::Snapshot& snapshot);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RESULTS_H_
