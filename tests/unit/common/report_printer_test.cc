// The progress line and the end-of-run table, to the character: integration tests and users'
// scripts read them.
#include "common/report_printer.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace stampede::common {
namespace {

TEST(ReportPrinterTest, ProgressLineOfAClosedModelSecond) {
  ProgressPoint p;
  p.index = 14;
  p.concurrency = 100;
  p.requests = 1677;
  p.errors = 0;
  p.p50_ns = 7'230'000;
  p.p95_ns = 19'200'000;
  p.p99_ns = 20'200'000;
  EXPECT_EQ(FormatProgressLine(p),
            "  15s  users 100     rps 1677     p50 7.23ms    p95 19.2ms    p99 20.2ms    errors 0 "
            "(0.0%)");
}

TEST(ReportPrinterTest, ProgressLineOfADrainSecondWithErrorsInAnOpenModel) {
  ProgressPoint p;
  p.index = 3;
  p.drain = true;
  p.concurrency_name = "inflight";
  p.concurrency = 12;
  p.requests = 8;
  p.errors = 2;
  p.p50_ns = 900;
  p.p95_ns = 1'500'000'000;
  p.p99_ns = 1'500'000'000;
  p.saturated = true;
  EXPECT_EQ(FormatProgressLine(p),
            "drain  inflight 12      rps 8        p50 900ns     p95 1.500s    p99 1.500s    errors "
            "2 (25.0%)  [generator saturated]");
}

TEST(ReportPrinterTest, ProgressLinesReplaceEachOtherOnlyOnATerminal) {
  for (const bool terminal : {false, true}) {
    char* buf = nullptr;
    size_t size = 0;
    FILE* out = open_memstream(&buf, &size);
    ProgressPrinter printer(out, terminal);
    printer.Print("one");
    printer.Print("two");
    printer.Finish();
    std::fclose(out);
    EXPECT_EQ(std::string(buf, size), terminal ? "\rone\x1b[K\rtwo\x1b[K\n" : "one\ntwo\n");
    std::free(buf);
  }
}

IntervalStats TwoRequests() {
  IntervalStats totals(2);
  for (int i = 0; i < 30; ++i) totals.requests[0].latency.Record(1000 + i);
  totals.requests[0].outcomes[static_cast<size_t>(Outcome::kOk)] = 30;
  totals.requests[1].latency.Record(2'000'000);
  totals.requests[1].outcomes[static_cast<size_t>(Outcome::kOk)] = 1;
  totals.requests[1].outcomes[static_cast<size_t>(Outcome::kTimeout)] = 3;
  totals.requests[1].outcomes[static_cast<size_t>(Outcome::kReset)] = 1;
  return totals;
}

TEST(ReportPrinterTest, TableHasARowPerRequestAndATotalThenTheErrors) {
  EXPECT_EQ(
      FormatRequestTable({"home", "a-request-name-longer-than-the-column"}, TwoRequests(), 2),
      "\n"
      "  request                        requests   errors       rps       p50       p90       "
      "p95       p99       max\n"
      "  home                                 30        0      15.0    1.01us    1.03us    "
      "1.03us    1.03us    1.03us\n"
      "  a-request-name-longer-than-t          5        4       2.5    2.00ms    2.00ms    "
      "2.00ms    2.00ms    2.00ms\n"
      "  total                                35        4      17.5    1.01us    1.03us    "
      "1.03us    2.00ms    2.00ms\n"
      "  errors: timeout=3 reset=1\n");
}

TEST(ReportPrinterTest, OneRequestHasNoTotalRowAndNoErrorsNoErrorLine) {
  IntervalStats totals(1);
  totals.requests[0].latency.Record(5'000'000);
  totals.requests[0].outcomes[0] = 10;
  EXPECT_EQ(
      FormatRequestTable({"only"}, totals, 0),
      "\n"
      "  request                        requests   errors       rps       p50       p90       "
      "p95       p99       max\n"
      "  only                                 10        0       0.0    5.00ms    5.00ms    "
      "5.00ms    5.00ms    5.00ms\n");
  EXPECT_EQ(FormatErrorCounts(totals.requests[0]), "");
}

}  // namespace
}  // namespace stampede::common
