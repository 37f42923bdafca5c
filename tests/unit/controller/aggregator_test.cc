// The aggregator's handling of folded reports: counted once in the totals, the seconds they cover
// closed without points of their own, replays of them ignored, overlaps rejected.
#include "controller/aggregator.h"

#include <gtest/gtest.h>

#include "common/report.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::controller {
namespace {

// One agent's report for `interval`: `n` ok requests of request 0, latencies from 1 ms up.
v1::Report ReportOf(int64_t interval, uint64_t n) {
  common::IntervalStats stats(1);
  stats.index = interval;
  for (uint64_t i = 0; i < n; ++i) stats.requests[0].latency.Record(1000000 + i * 1000);
  stats.requests[0].outcomes[0] = n;
  stats.requests[0].status_classes[2] = n;
  v1::Report r;
  common::IntervalToReport(stats, &r);
  return r;
}

v1::Report Fold(int64_t first, int64_t last, uint64_t n_each) {
  std::vector<std::string> serialized;
  for (int64_t i = first; i <= last; ++i)
    serialized.push_back(ReportOf(i, n_each).SerializeAsString());
  absl::StatusOr<v1::Report> folded = common::FoldReports(serialized);
  EXPECT_TRUE(folded.ok()) << folded.status();
  return *folded;
}

TEST(AggregatorFoldTest, AFoldCountsOnceAndClosesItsSecondsWithoutPoints) {
  Aggregator agg({"home"}, 2);
  // Agent 1 sent seconds 0..3 one by one; agent 0, reconnecting, sends 0..2 folded, then 3.
  for (int64_t i = 0; i <= 3; ++i) ASSERT_TRUE(agg.Add(1, ReportOf(i, 10)).ok());
  ASSERT_TRUE(agg.Add(0, Fold(0, 2, 7)).ok());
  EXPECT_EQ(agg.folded_reports(), 1u);
  EXPECT_EQ(agg.last_finalized(), 2);  // seconds 0..2 are closed, with agent 1's counts in
  EXPECT_TRUE(agg.series().empty());
  ASSERT_TRUE(agg.Add(0, ReportOf(3, 7)).ok());
  std::vector<IntervalPoint> points = agg.Finalize(0, 0);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].index, 3);
  EXPECT_EQ(points[0].requests, 17u);
  // A replay of the same fold and seconds changes nothing.
  ASSERT_TRUE(agg.Add(0, Fold(0, 2, 7)).ok());
  ASSERT_TRUE(agg.Add(0, ReportOf(3, 7)).ok());
  EXPECT_EQ(agg.duplicate_reports(), 2u);
  agg.FinalizeAll(0);
  EXPECT_EQ(agg.cumulative().Requests(), 4 * 10u + 4 * 7u);
  EXPECT_EQ(agg.cumulative().requests[0].latency.count(), 4 * 10u + 4 * 7u);
}

TEST(AggregatorFoldTest, AFoldOverlappingSecondsAlreadyCountedIsRejectedWhole) {
  Aggregator agg({"home"}, 1);
  ASSERT_TRUE(agg.Add(0, ReportOf(1, 5)).ok());
  const absl::Status s = agg.Add(0, Fold(0, 2, 5));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("overlaps"), absl::string_view::npos) << s.message();
  EXPECT_EQ(agg.rejected_reports(), 1u);
  agg.FinalizeAll(0);
  EXPECT_EQ(agg.cumulative().Requests(), 5u);
}

TEST(AggregatorFoldTest, AFoldPastTheIntervalRangeIsRejected) {
  Aggregator agg({"home"}, 1);
  v1::Report r = ReportOf(0, 1);
  r.set_folded_through(int64_t{1} << 40);
  EXPECT_FALSE(agg.Add(0, r).ok());
  EXPECT_EQ(agg.rejected_reports(), 1u);
}

}  // namespace
}  // namespace stampede::controller
