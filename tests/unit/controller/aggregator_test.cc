// The aggregator's handling of folded reports: counted once in the totals, the seconds they cover
// closed without points of their own, replays of them ignored, overlaps rejected; and its totals
// per stage of the plan, each exactly the merge of its seconds.
#include "controller/aggregator.h"

#include <gtest/gtest.h>

#include <random>

#include "common/load_plan.h"
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

// A report for a second far past what the test can have reached would make the end of the run
// close every second up to it (report_fuzz found one for second 588,417: seven seconds of work
// and a point per second). The run passes its elapsed time with slack, and past it is rejected.
TEST(AggregatorBoundTest, AReportPastTheNewestSecondIsRejected) {
  Aggregator agg({"home"}, 1);
  EXPECT_TRUE(agg.Add(0, ReportOf(60, 1), /*newest=*/60).ok());
  const absl::Status ahead = agg.Add(0, ReportOf(588'417, 1), /*newest=*/60);
  EXPECT_EQ(ahead.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ahead.message(), "report for second 588417, past second 60 of the test");
  v1::Report fold = Fold(58, 61, 1);
  EXPECT_FALSE(agg.Add(0, fold, /*newest=*/60).ok()) << "a fold reaching past it too";
  EXPECT_EQ(agg.rejected_reports(), 2u);
  agg.FinalizeAll(0);
  EXPECT_EQ(agg.series().size(), 61u) << "seconds 0..60, not 588,418";
  EXPECT_EQ(agg.cumulative().Requests(), 1u);
}

// Stages of 10 s ramp, 20 s steady, 5 s ramp down, then a 5 s hold (duration 40 s).
std::vector<common::LoadPlan::Span> TestSpans() {
  absl::StatusOr<common::LoadPlan> plan = common::LoadPlan::Closed(
      0, 0, {{10'000'000'000, 100}, {20'000'000'000, 100}, {5'000'000'000, 0}}, 40'000'000'000);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan->Spans();
}

std::vector<int64_t> Starts(const std::vector<common::LoadPlan::Span>& spans) {
  std::vector<int64_t> starts;
  for (const common::LoadPlan::Span& s : spans) starts.push_back(s.start_ns);
  return starts;
}

TEST(AggregatorStageTest, EachStageIsExactlyTheMergeOfTheSecondsItCovers) {
  const std::vector<common::LoadPlan::Span> spans = TestSpans();
  ASSERT_EQ(spans.size(), 4u);
  Aggregator agg({"home", "cart"}, 2);
  agg.SetStages(Starts(spans));
  // Two agents, seconds 0..40 (40: the drain after the end), random latencies and errors; every
  // report also goes into the recomputation of the second's stage by the spans' bounds.
  std::mt19937_64 rng(7);
  std::vector<common::IntervalStats> expected(spans.size(), common::IntervalStats(2));
  auto stage_by_bounds = [&](int64_t second) {
    for (size_t i = 0; i < spans.size(); ++i) {
      if (second * 1'000'000'000 >= spans[i].start_ns && second * 1'000'000'000 < spans[i].end_ns)
        return i;
    }
    return spans.size() - 1;  // the drain counts in the last
  };
  std::vector<v1::Report> late;
  for (int64_t second = 0; second <= 40; ++second) {
    for (uint32_t agent = 0; agent < 2; ++agent) {
      common::IntervalStats stats(2);
      stats.index = second;
      for (size_t r = 0; r < 2; ++r) {
        const uint64_t n = rng() % 50;
        for (uint64_t i = 0; i < n; ++i)
          stats.requests[r].latency.Record(1000 + rng() % 50'000'000);
        stats.requests[r].outcomes[0] = n;
        stats.requests[r].outcomes[static_cast<size_t>(common::Outcome::kTimeout)] = rng() % 3;
      }
      v1::Report report;
      common::IntervalToReport(stats, &report);
      expected[stage_by_bounds(second)].Merge(stats);
      // Agent 1's second 20 arrives after the second was closed (a late report).
      if (agent == 1 && second == 20) {
        late.push_back(report);
        continue;
      }
      ASSERT_TRUE(agg.Add(agent, report).ok());
    }
    agg.Finalize(second, 0);  // closes what both agents sent; 20 without agent 1's
  }
  for (const v1::Report& r : late) ASSERT_TRUE(agg.Add(1, r).ok());
  agg.FinalizeAll(0);
  EXPECT_EQ(agg.late_reports(), 1u);

  ASSERT_EQ(agg.stages().size(), spans.size());
  uint64_t sum = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const common::IntervalStats& got = agg.stages()[i].stats;
    EXPECT_FALSE(agg.stages()[i].folded);
    for (size_t r = 0; r < 2; ++r) {
      const common::RequestStats &g = got.requests[r], &e = expected[i].requests[r];
      EXPECT_EQ(g.Requests(), e.Requests()) << "stage " << i << " request " << r;
      EXPECT_EQ(g.Errors(), e.Errors()) << "stage " << i;
      EXPECT_EQ(g.latency.count(), e.latency.count());
      EXPECT_EQ(g.latency.max(), e.latency.max());
      EXPECT_EQ(g.latency.min(), e.latency.min());
      for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
        EXPECT_EQ(g.latency.ValueAtQuantile(q), e.latency.ValueAtQuantile(q))
            << "stage " << i << " q " << q;
      }
    }
    sum += got.Requests();
  }
  EXPECT_EQ(sum, agg.cumulative().Requests()) << "the stages add up to the run";
  // The bounds are the stages': 9 | 10, 29 | 30, 34 | 35, and past the end the last.
  EXPECT_EQ(agg.StageOf(9), 0);
  EXPECT_EQ(agg.StageOf(10), 1);
  EXPECT_EQ(agg.StageOf(29), 1);
  EXPECT_EQ(agg.StageOf(30), 2);
  EXPECT_EQ(agg.StageOf(34), 2);
  EXPECT_EQ(agg.StageOf(35), 3);
  EXPECT_EQ(agg.StageOf(40), 3);
}

TEST(AggregatorStageTest, AFoldAcrossAStageBoundaryIsCountedInItsFirstAndSaidToBe) {
  const std::vector<common::LoadPlan::Span> spans = TestSpans();
  Aggregator agg({"home"}, 1);
  agg.SetStages(Starts(spans));
  ASSERT_TRUE(agg.Add(0, Fold(0, 4, 3)).ok());  // within stage 0: exact
  EXPECT_FALSE(agg.stages()[0].folded);
  ASSERT_TRUE(agg.Add(0, Fold(5, 12, 3)).ok());  // seconds 5..12 cross into stage 1
  EXPECT_TRUE(agg.stages()[0].folded);
  EXPECT_EQ(agg.stages()[0].stats.Requests(), 13 * 3u);
  EXPECT_EQ(agg.stages()[1].stats.Requests(), 0u);
}

TEST(AggregatorStageTest, WithoutStagesNothingIsKeptPerStage) {
  Aggregator agg({"home"}, 1);
  ASSERT_TRUE(agg.Add(0, ReportOf(0, 5)).ok());
  agg.FinalizeAll(0);
  EXPECT_TRUE(agg.stages().empty());
  EXPECT_EQ(agg.StageOf(0), -1);
}

}  // namespace
}  // namespace stampede::controller
