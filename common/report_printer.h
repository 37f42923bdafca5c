// What `stampede run` and `stampede-agent bench` show while and after a test runs: the
// per-second progress line and the end-of-run tables, formatted from plain data into strings the
// commands print. One format for both, so the two read alike and the tests that parse the
// output (" rps ", the table's columns) hold for both.
#ifndef STAMPEDE_COMMON_REPORT_PRINTER_H_
#define STAMPEDE_COMMON_REPORT_PRINTER_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/stats.h"

namespace stampede::common {

// One second of a test, over all its requests.
struct ProgressPoint {
  int64_t index = 0;   // the second; the interval covers [index, index + 1) s
  bool drain = false;  // past the planned end: the requests that were still in flight then
  // What the concurrency column counts: "users" (closed model) or "inflight" (open model).
  const char* concurrency_name = "users";
  uint32_t concurrency = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t p50_ns = 0, p95_ns = 0, p99_ns = 0;
  bool saturated = false;  // the generator was saturated in this second
};

// "   3s  users 100     rps 1677     p50 7.23ms    p95 19.2ms    p99 20.2ms    errors 0 (0.0%)",
// with "drain" for the second, and "  [generator saturated]" appended when it was; no newline.
std::string FormatProgressLine(const ProgressPoint& point);

// Prints progress lines: on a terminal each replaces the one before ("\r...\x1b[K"), otherwise
// one line each. Not thread-safe; one per command.
class ProgressPrinter {
 public:
  // `out` must outlive the printer; `terminal` is usually isatty(fileno(out)).
  ProgressPrinter(FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  void Print(const std::string& line);
  // Ends the live line on a terminal; nothing otherwise.
  void Finish();

 private:
  FILE* const out_;
  const bool terminal_;
};

// The end-of-run table: a blank line, the header, one row per request name (requests, errors,
// rps over `elapsed_s`, p50 to p99, max), a "total" row when there are several, then
// FormatErrorCounts of the total. `names` are indexed like `totals.requests`.
std::string FormatRequestTable(const std::vector<std::string>& names, const IntervalStats& totals,
                               double elapsed_s);

// Scenarios: a blank line, the header, one row per scenario (iterations timed, ended early,
// dropped, iterations per second over `elapsed_s`, p50 to p99 and max of their duration).
// `names` are indexed like `totals.iterations`; "" when there are none.
std::string FormatIterationTable(const std::vector<std::string>& names, const IntervalStats& totals,
                                 double elapsed_s);

// "  errors: timeout=3 reset=1\n": the errors by outcome, or "" when every request was ok.
std::string FormatErrorCounts(const RequestStats& total);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_REPORT_PRINTER_H_
