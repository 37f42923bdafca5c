#include "common/report.h"

#include <gtest/gtest.h>

#include "common/stats.h"
#include "stampede/v1/agent.pb.h"
#include "stampede/v1/histogram.pb.h"

namespace stampede::common {
namespace {

// Two requests with latency and service samples, as an agent's interval would hold them.
IntervalStats SampleInterval(uint64_t base) {
  IntervalStats stats(2);
  for (uint64_t i = 0; i < 200; ++i) {
    stats.requests[0].latency.Record(base + i * 997);
    stats.requests[0].service.Record(base + i * 13);
    stats.requests[1].latency.Record(base * 3 + i * 7919);
  }
  stats.requests[0].outcomes[0] = 200;
  stats.requests[1].outcomes[0] = 190;
  stats.requests[1].outcomes[static_cast<size_t>(common::Outcome::kUnexpectedStatus)] = 10;
  stats.requests[0].status_classes[2] = 200;
  stats.requests[1].status_classes[5] = 10;
  return stats;
}

void ExpectSame(const IntervalStats& a, const IntervalStats& b) {
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].latency, b.requests[i].latency) << "request " << i;
    EXPECT_EQ(a.requests[i].service, b.requests[i].service) << "request " << i;
    EXPECT_EQ(a.requests[i].outcomes, b.requests[i].outcomes) << "request " << i;
    EXPECT_EQ(a.requests[i].status_classes, b.requests[i].status_classes) << "request " << i;
  }
}

TEST(MergeReportTest, MergingAReportEqualsMergingTheIntervalItCameFrom) {
  IntervalStats first = SampleInterval(1000000), second = SampleInterval(5000000);
  v1::Report report;
  IntervalToReport(second, &report);
  IntervalStats merged = first;
  ASSERT_TRUE(MergeReport(report, &merged).ok());
  IntervalStats expected = first;
  expected.Merge(second);
  ExpectSame(merged, expected);
}

// A report whose last histogram is malformed must leave the totals exactly as they were, though
// the histograms before it were already added while being checked.
TEST(MergeReportTest, ALaterMalformedHistogramTakesBackTheEarlierOnes) {
  const IntervalStats before = SampleInterval(2000000);
  v1::Report good;
  IntervalToReport(SampleInterval(7000000), &good);
  ASSERT_EQ(good.requests_size(), 2);
  for (int broken = 0; broken < 3; ++broken) {
    v1::Report bad = good;
    v1::Histogram* h = broken == 0   ? bad.mutable_requests(0)->mutable_latency()
                       : broken == 1 ? bad.mutable_requests(0)->mutable_service()
                                     : bad.mutable_requests(1)->mutable_latency();
    h->set_total_count(h->total_count() + 1);  // counts no longer add up
    IntervalStats into = before;
    const absl::Status status = MergeReport(bad, &into);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << "broken histogram " << broken;
    ExpectSame(into, before);
  }
}

// Outcomes travel by index: HTTP/2's (goaway, rst_stream, flow_control) are appended after
// capture, so a report from an agent that knows only the first 13 still merges, index by index,
// and one with more outcomes than this controller knows is refused whole.
TEST(MergeReportTest, OutcomesMergeByIndexAndHttpTwoOnesArriveIntact) {
  IntervalStats sent(1);
  sent.requests[0].outcomes[static_cast<size_t>(Outcome::kGoaway)] = 3;
  sent.requests[0].outcomes[static_cast<size_t>(Outcome::kStreamReset)] = 4;
  sent.requests[0].outcomes[static_cast<size_t>(Outcome::kFlowControl)] = 5;
  v1::Report report;
  IntervalToReport(sent, &report);
  IntervalStats into(1);
  ASSERT_TRUE(MergeReport(report, &into).ok());
  EXPECT_EQ(into.requests[0].outcomes, sent.requests[0].outcomes);

  v1::Report older;  // an agent from before HTTP/2: 13 counters
  IntervalStats capture_only(1);
  capture_only.requests[0].outcomes[static_cast<size_t>(Outcome::kCapture)] = 7;
  IntervalToReport(capture_only, &older);
  ASSERT_EQ(older.requests_size(), 1);
  older.mutable_requests(0)->mutable_outcomes()->Truncate(13);
  const absl::Status older_status = MergeReport(older, &into);
  ASSERT_TRUE(older_status.ok()) << older_status;
  EXPECT_EQ(into.requests[0].outcomes[static_cast<size_t>(Outcome::kCapture)], 7u);
  EXPECT_EQ(into.requests[0].outcomes[static_cast<size_t>(Outcome::kGoaway)], 3u);

  v1::Report newer = older;  // one counter more than this build knows
  while (newer.requests(0).outcomes_size() <= static_cast<int>(Outcome::kCount)) {
    newer.mutable_requests(0)->add_outcomes(1);
  }
  const IntervalStats before = into;
  EXPECT_EQ(MergeReport(newer, &into).code(), absl::StatusCode::kInvalidArgument);
  ExpectSame(into, before);
}

TEST(MergeReportTest, UnknownRequestIndexIsRejectedWhole) {
  const IntervalStats before = SampleInterval(3000000);
  v1::Report bad;
  IntervalToReport(SampleInterval(4000000), &bad);
  bad.mutable_requests(1)->set_request(2);
  IntervalStats into = before;
  EXPECT_EQ(MergeReport(bad, &into).code(), absl::StatusCode::kInvalidArgument);
  ExpectSame(into, before);
}

// A fold of consecutive reports equals their intervals merged, covers the first to the last
// interval, keeps the first's start time, and leaves the gauges out; folding a fold again
// extends it.
TEST(MergeReportTest, ScenarioIterationsAndCutBodiesTravelAndABadOneIsRejectedWhole) {
  IntervalStats stats = SampleInterval(1000000);
  stats.iterations.resize(3);
  for (uint64_t i = 0; i < 50; ++i) stats.iterations[2].duration.Record(20000000 + i * 1000);
  stats.iterations[2].ended_early = 4;
  stats.iterations[0].dropped = 7;
  stats.bodies_cut = 2;
  v1::Report report;
  IntervalToReport(stats, &report);
  EXPECT_EQ(report.iterations_size(), 2) << "the empty scenario 1 is not sent";
  IntervalStats merged(2);
  ASSERT_TRUE(MergeReport(report, &merged).ok());
  ExpectSame(merged, stats);
  ASSERT_EQ(merged.iterations.size(), 3u);
  EXPECT_EQ(merged.iterations[2].duration, stats.iterations[2].duration);
  EXPECT_EQ(merged.iterations[2].ended_early, 4u);
  EXPECT_EQ(merged.iterations[0].dropped, 7u);
  EXPECT_EQ(merged.bodies_cut, 2u);

  v1::Report bad = report;
  bad.mutable_iterations(0)->set_scenario(kMaxScenarios);
  IntervalStats untouched(2);
  EXPECT_FALSE(MergeReport(bad, &untouched).ok());
  EXPECT_EQ(untouched.Requests(), 0u) << "nothing of a rejected report is kept";
  EXPECT_TRUE(untouched.iterations.empty());
}

TEST(FoldReportsTest, AFoldEqualsTheMergedIntervalsAndSpansThem) {
  std::vector<std::string> serialized;
  IntervalStats expected(2);
  for (int64_t i = 0; i < 5; ++i) {
    IntervalStats stats = SampleInterval(1000000 + static_cast<uint64_t>(i) * 777);
    stats.index = i;
    stats.active_users = 40;
    expected.Merge(stats);
    v1::Report report;
    IntervalToReport(stats, &report);
    if (i == 0) report.set_started_unix_nanos(123456789);
    serialized.push_back(report.SerializeAsString());
  }
  absl::StatusOr<v1::Report> folded = FoldReports(absl::MakeConstSpan(serialized).subspan(0, 3));
  ASSERT_TRUE(folded.ok()) << folded.status();
  EXPECT_EQ(folded->interval(), 0);
  EXPECT_EQ(folded->folded_through(), 2);
  EXPECT_EQ(folded->started_unix_nanos(), 123456789);
  EXPECT_EQ(folded->active_users(), 0u);
  std::vector<std::string> again{folded->SerializeAsString(), serialized[3], serialized[4]};
  absl::StatusOr<v1::Report> refolded = FoldReports(again);
  ASSERT_TRUE(refolded.ok()) << refolded.status();
  EXPECT_EQ(refolded->interval(), 0);
  EXPECT_EQ(refolded->folded_through(), 4);
  IntervalStats got(2);
  ASSERT_TRUE(MergeReport(*refolded, &got).ok());
  ExpectSame(got, expected);
  EXPECT_EQ(got.Requests(), expected.Requests());
}

TEST(FoldReportsTest, NothingOrGarbageIsAnError) {
  EXPECT_FALSE(FoldReports({}).ok());
  EXPECT_FALSE(FoldReports({std::string("\xff\xff\xff", 3)}).ok());
}

}  // namespace
}  // namespace stampede::common
