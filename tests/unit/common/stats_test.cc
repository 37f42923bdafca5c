#include "common/stats.h"

#include <cstddef>
#include <cstring>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace stampede::common {
namespace {

constexpr size_t Index(Outcome o) { return static_cast<size_t>(o); }

TEST(OutcomeNameTest, EveryOutcomeHasADistinctName) {
  std::set<std::string> names;
  for (size_t i = 0; i < Index(Outcome::kCount); ++i) {
    const char* name = OutcomeName(static_cast<Outcome>(i));
    ASSERT_NE(name, nullptr) << i;
    EXPECT_STRNE(name, "?") << i;
    EXPECT_GT(std::strlen(name), 0u) << i;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), Index(Outcome::kCount));
  EXPECT_STREQ(OutcomeName(Outcome::kOk), "ok");
  EXPECT_STREQ(OutcomeName(Outcome::kCount), "?");
}

// Reports carry outcomes by index (agent.proto): an outcome's index is part of the wire format.
TEST(OutcomeNameTest, IndicesAreStableAndHttpTwoIsAppended) {
  EXPECT_EQ(Index(Outcome::kCapture), 12u);
  EXPECT_EQ(Index(Outcome::kGoaway), 13u);
  EXPECT_EQ(Index(Outcome::kStreamReset), 14u);
  EXPECT_EQ(Index(Outcome::kFlowControl), 15u);
  EXPECT_EQ(Index(Outcome::kCount), 16u);
  EXPECT_STREQ(OutcomeName(Outcome::kGoaway), "goaway");
  EXPECT_STREQ(OutcomeName(Outcome::kStreamReset), "rst_stream");
  EXPECT_STREQ(OutcomeName(Outcome::kFlowControl), "flow_control");
}

TEST(RequestStatsTest, RequestsAndErrorsCountOutcomes) {
  RequestStats s;
  EXPECT_EQ(s.Requests(), 0u);
  EXPECT_EQ(s.Errors(), 0u);
  s.outcomes[Index(Outcome::kOk)] = 7;
  s.outcomes[Index(Outcome::kUnexpectedStatus)] = 2;
  s.outcomes[Index(Outcome::kTimeout)] = 3;
  s.outcomes[Index(Outcome::kCancelled)] = 1;
  EXPECT_EQ(s.Requests(), 13u);
  EXPECT_EQ(s.Errors(), 6u);
}

TEST(RequestStatsTest, MergeAddsEverything) {
  RequestStats a, b;
  a.outcomes[Index(Outcome::kOk)] = 5;
  a.outcomes[Index(Outcome::kConnect)] = 1;
  a.status_classes[2] = 5;
  a.latency.Record(1000);
  a.latency.Record(3000);
  a.service.Record(500);
  b.outcomes[Index(Outcome::kOk)] = 2;
  b.outcomes[Index(Outcome::kMalformed)] = 4;
  b.status_classes[2] = 1;
  b.status_classes[5] = 1;
  b.status_classes[0] = 3;
  b.latency.Record(2000000);
  b.service.Record(700);
  b.service.Record(900);

  common::Histogram latency = a.latency;
  latency.Merge(b.latency);
  a.Merge(b);
  EXPECT_EQ(a.outcomes[Index(Outcome::kOk)], 7u);
  EXPECT_EQ(a.outcomes[Index(Outcome::kConnect)], 1u);
  EXPECT_EQ(a.outcomes[Index(Outcome::kMalformed)], 4u);
  EXPECT_EQ(a.Requests(), 12u);
  EXPECT_EQ(a.Errors(), 5u);
  EXPECT_EQ(a.status_classes[0], 3u);
  EXPECT_EQ(a.status_classes[2], 6u);
  EXPECT_EQ(a.status_classes[5], 1u);
  EXPECT_EQ(a.latency.count(), 3u);
  EXPECT_EQ(a.latency.min(), 1000u);
  EXPECT_EQ(a.latency.max(), 2000000u);
  EXPECT_TRUE(a.latency == latency);
  EXPECT_EQ(a.service.count(), 3u);
  EXPECT_EQ(a.service.sum(), 2100u);
  // The source is left alone.
  EXPECT_EQ(b.Requests(), 6u);
  EXPECT_EQ(b.latency.count(), 1u);
}

TEST(RequestStatsTest, ResetClearsEverything) {
  RequestStats s;
  s.outcomes[Index(Outcome::kReset)] = 3;
  s.status_classes[4] = 2;
  s.latency.Record(10);
  s.service.Record(10);
  s.Reset();
  EXPECT_EQ(s.Requests(), 0u);
  EXPECT_EQ(s.status_classes[4], 0u);
  EXPECT_EQ(s.latency.count(), 0u);
  EXPECT_EQ(s.service.count(), 0u);
}

TEST(IntervalStatsTest, MergeAddsCountersAndKeepsMaxima) {
  IntervalStats a(1), b(2);
  a.requests[0].outcomes[Index(Outcome::kOk)] = 4;
  a.connections_opened = 1;
  a.bytes_read = 100;
  a.bytes_written = 10;
  a.late = 1;
  a.planned = 5;
  a.active_users = 3;
  a.in_flight = 2;
  a.cpu_seconds = 0.25;
  a.busiest_thread_cpu = 0.75;
  a.max_timer_lag_ns = 900;
  b.requests[0].outcomes[Index(Outcome::kTimeout)] = 2;
  b.requests[1].outcomes[Index(Outcome::kOk)] = 1;
  b.requests[1].outcomes[Index(Outcome::kDropped)] = 6;
  b.connections_opened = 2;
  b.bytes_read = 200;
  b.bytes_written = 20;
  b.late = 2;
  b.planned = 7;
  b.active_users = 4;
  b.in_flight = 1;
  b.cpu_seconds = 0.5;
  b.busiest_thread_cpu = 0.5;
  b.max_timer_lag_ns = 1200;

  a.Merge(b);
  ASSERT_EQ(a.requests.size(), 2u);
  EXPECT_EQ(a.Requests(), 13u);
  EXPECT_EQ(a.Errors(), 8u);
  EXPECT_EQ(a.Outcomes(Outcome::kOk), 5u);
  EXPECT_EQ(a.Outcomes(Outcome::kTimeout), 2u);
  EXPECT_EQ(a.Outcomes(Outcome::kDropped), 6u);
  EXPECT_EQ(a.Outcomes(Outcome::kTls), 0u);
  EXPECT_EQ(a.requests[1].outcomes[Index(Outcome::kDropped)], 6u);
  EXPECT_EQ(a.connections_opened, 3u);
  EXPECT_EQ(a.bytes_read, 300u);
  EXPECT_EQ(a.bytes_written, 30u);
  EXPECT_EQ(a.late, 3u);
  EXPECT_EQ(a.planned, 12u);
  EXPECT_EQ(a.active_users, 7u);
  EXPECT_EQ(a.in_flight, 3u);
  EXPECT_DOUBLE_EQ(a.cpu_seconds, 0.75);
  EXPECT_DOUBLE_EQ(a.busiest_thread_cpu, 0.75);
  EXPECT_EQ(a.max_timer_lag_ns, 1200);

  a.Reset();
  EXPECT_EQ(a.requests.size(), 2u);
  EXPECT_EQ(a.Requests(), 0u);
  EXPECT_EQ(a.bytes_read, 0u);
  EXPECT_EQ(a.active_users, 0u);
  EXPECT_EQ(a.busiest_thread_cpu, 0);
  EXPECT_EQ(a.max_timer_lag_ns, 0);
}

}  // namespace
}  // namespace stampede::common
