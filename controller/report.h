// The HTML report of a run: one self-contained file made from the results JSON (ResultsJson) that
// `stampede report`, `stampede run --report` and the REST API (GET .../report.html) write. It
// holds the summary, the thresholds, the table per load level and per request, the errors by
// outcome, and charts over time of the rate (achieved, and the plan's target in the open model),
// the errors, the users or requests in flight, and p50/p95/p99/max latency, per request name
// selectable. The charts are SVG we draw here, not a charting library: the file needs nothing
// else, stays small (tens of KB for a 10-minute run), and opens offline. A Content-Security-Policy
// forbids every network request; the page's few lines of script only switch the request shown.
//
// Pure and thread-safe.
#ifndef STAMPEDE_CONTROLLER_REPORT_H_
#define STAMPEDE_CONTROLLER_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace stampede::controller {

// InvalidArgument when `results_json` is not a results document (names what is missing).
absl::StatusOr<std::string> ReportHtml(const std::string& results_json);

// `stampede report RESULTS.json [-o REPORT.html]`: exit 0, or 2 with a message on bad input.
int ReportCommand(const std::vector<std::string>& args);
std::string ReportUsage();

// The same test's results from several systems side by side (labels[i] names results_json[i]):
// every figure of the whole run, and of each stage when all have the same stages, with its
// ratio to the first; as text, or as an HTML page with the charts overlaid.
absl::StatusOr<std::string> CompareText(const std::vector<std::string>& labels,
                                        const std::vector<std::string>& results_json, bool html);
// `stampede compare A.json B.json [...] [-o COMPARE.html]`.
int CompareCommand(const std::vector<std::string>& args);
std::string CompareUsage();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_REPORT_H_
