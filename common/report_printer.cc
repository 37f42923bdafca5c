#include "common/report_printer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"

namespace stampede::common {

std::string FormatProgressLine(const ProgressPoint& p) {
  const std::string when = p.drain ? "drain" : absl::StrFormat("%4ds", p.index + 1);
  const double error_pct = p.requests == 0 ? 0 : 100.0 * p.errors / p.requests;
  return absl::StrFormat("%5s  %s %-7u rps %-8u p50 %-9s p95 %-9s p99 %-9s errors %u (%.1f%%)%s",
                         when, p.concurrency_name, p.concurrency, p.requests, FormatNanos(p.p50_ns),
                         FormatNanos(p.p95_ns), FormatNanos(p.p99_ns), p.errors, error_pct,
                         p.saturated ? "  [generator saturated]" : "");
}

void ProgressPrinter::Print(const std::string& line) {
  std::fprintf(out_, terminal_ ? "\r%s\x1b[K" : "%s\n", line.c_str());
}

void ProgressPrinter::Finish() {
  if (terminal_) std::fputc('\n', out_);
}

std::string FormatRequestTable(const std::vector<std::string>& names, const IntervalStats& totals,
                               double elapsed_s) {
  std::string out = absl::StrFormat("\n  %-28s %10s %8s %9s %9s %9s %9s %9s %9s\n", "request",
                                    "requests", "errors", "rps", "p50", "p90", "p95", "p99", "max");
  auto row = [&](const std::string& name, const RequestStats& r) {
    const double rps = elapsed_s > 0 ? r.Requests() / elapsed_s : 0;
    absl::StrAppendFormat(
        &out, "  %-28s %10u %8u %9.1f %9s %9s %9s %9s %9s\n", name.substr(0, 28), r.Requests(),
        r.Errors(), rps, FormatNanos(r.latency.ValueAtQuantile(0.5)),
        FormatNanos(r.latency.ValueAtQuantile(0.9)), FormatNanos(r.latency.ValueAtQuantile(0.95)),
        FormatNanos(r.latency.ValueAtQuantile(0.99)), FormatNanos(r.latency.max()));
  };
  for (size_t i = 0; i < names.size() && i < totals.requests.size(); ++i) {
    row(names[i], totals.requests[i]);
  }
  const RequestStats total = totals.Total();
  if (names.size() > 1) row("total", total);
  absl::StrAppend(&out, FormatErrorCounts(total));
  return out;
}

std::string FormatIterationTable(const std::vector<std::string>& names, const IntervalStats& totals,
                                 double elapsed_s) {
  if (names.empty()) return "";
  std::string out =
      absl::StrFormat("\n  %-28s %10s %8s %8s %9s %9s %9s %9s %9s\n", "scenario", "iterations",
                      "ended", "dropped", "it/s", "p50", "p95", "p99", "max");
  for (size_t i = 0; i < names.size(); ++i) {
    const IterationStats none;
    const IterationStats& it = i < totals.iterations.size() ? totals.iterations[i] : none;
    const Histogram& d = it.duration;
    absl::StrAppendFormat(&out, "  %-28s %10u %8u %8u %9.1f %9s %9s %9s %9s\n",
                          names[i].substr(0, 28), d.count(), it.ended_early, it.dropped,
                          elapsed_s > 0 ? d.count() / elapsed_s : 0,
                          FormatNanos(d.ValueAtQuantile(0.5)), FormatNanos(d.ValueAtQuantile(0.95)),
                          FormatNanos(d.ValueAtQuantile(0.99)), FormatNanos(d.max()));
  }
  return out;
}

std::string FormatErrorCounts(const RequestStats& total) {
  if (total.Errors() == 0) return "";
  std::string out = "  errors:";
  for (size_t o = 1; o < static_cast<size_t>(Outcome::kCount); ++o) {
    if (total.outcomes[o] != 0) {
      absl::StrAppend(&out, " ", OutcomeName(static_cast<Outcome>(o)), "=", total.outcomes[o]);
    }
  }
  return out + "\n";
}

}  // namespace stampede::common
