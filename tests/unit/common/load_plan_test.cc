#include "common/load_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMs = 1000000;
constexpr int64_t kSec = 1000000000;

TEST(LoadPlanClosedTest, SpawnRateStartsUserIAtIOverRate) {
  constexpr uint32_t kUsers = 50;
  for (int64_t rate : {1, 3, 7, 10, 1000}) {
    const auto plan = LoadPlan::Closed(kUsers, static_cast<double>(rate), {}, 3600 * kSec);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->model(), LoadPlan::Model::kClosed);
    EXPECT_EQ(plan->MaxUsers(), kUsers);
    EXPECT_EQ(plan->UsersAt(0), 1u) << "rate " << rate;
    for (uint32_t i = 1; i < kUsers; ++i) {
      const int64_t starts = (i * kSec + rate - 1) / rate;  // ceil(i / rate) in ns
      EXPECT_EQ(plan->UsersAt(starts), i + 1) << "rate " << rate << " user " << i;
      EXPECT_EQ(plan->UsersAt(starts - 1), i) << "rate " << rate << " user " << i;
    }
    const int64_t last = ((kUsers - 1) * kSec + rate - 1) / rate;
    EXPECT_EQ(plan->RampEnd(), last) << "rate " << rate;
    EXPECT_EQ(plan->UsersAt(last + 100 * kSec), kUsers);
    EXPECT_EQ(plan->UsersAt(3600 * kSec - 1), kUsers);
    EXPECT_EQ(plan->UsersAt(3600 * kSec), 0u);
    EXPECT_EQ(plan->UsersAt(-1), 0u);
  }
}

TEST(LoadPlanClosedTest, ZeroSpawnRateStartsEveryoneAtOnce) {
  const auto plan = LoadPlan::Closed(25, 0, {}, 10 * kSec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->duration_ns(), 10 * kSec);
  EXPECT_EQ(plan->RampEnd(), 0);
  EXPECT_EQ(plan->UsersAt(0), 25u);
  EXPECT_EQ(plan->UsersAt(5 * kSec), 25u);
  EXPECT_EQ(plan->UsersAt(10 * kSec - 1), 25u);
  EXPECT_EQ(plan->UsersAt(10 * kSec), 0u);
  EXPECT_EQ(plan->UsersAt(100 * kSec), 0u);
}

TEST(LoadPlanClosedTest, StagesRampHoldAndRampDownWithFloor) {
  const auto plan = LoadPlan::Closed(0, 0, {{10 * kSec, 10}, {20 * kSec, 10}, {10 * kSec, 0}}, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->duration_ns(), 40 * kSec);
  EXPECT_EQ(plan->MaxUsers(), 10u);
  EXPECT_EQ(plan->RampEnd(), 40 * kSec);
  const struct {
    int64_t t;
    uint32_t users;
  } cases[] = {
      {0, 0},          {999 * kMs, 0},
      {1000 * kMs, 1}, {1500 * kMs, 1},
      {5 * kSec, 5},   {10 * kSec - kMs, 9},
      {10 * kSec, 10}, {25 * kSec, 10},
      {30 * kSec, 10}, {30 * kSec + 100 * kMs, 9},
      {35 * kSec, 5},  {39 * kSec + 900 * kMs, 0},
      {40 * kSec, 0},
  };
  for (const auto& c : cases) EXPECT_EQ(plan->UsersAt(c.t), c.users) << "t=" << c.t;
  // Floor semantics on the whole ramp up: user k is active from k seconds on.
  for (int64_t t = 0; t < 10 * kSec; t += 10 * kMs) {
    EXPECT_EQ(plan->UsersAt(t), static_cast<uint32_t>(t / kSec)) << "t=" << t;
  }
}

TEST(LoadPlanClosedTest, StagesHoldTheLastTargetAndStopAtTheDuration) {
  const auto longer = LoadPlan::Closed(0, 0, {{5 * kSec, 4}}, 10 * kSec);
  ASSERT_TRUE(longer.ok()) << longer.status();
  EXPECT_EQ(longer->RampEnd(), 5 * kSec);
  EXPECT_EQ(longer->UsersAt(5 * kSec), 4u);
  EXPECT_EQ(longer->UsersAt(10 * kSec - 1), 4u);
  EXPECT_EQ(longer->UsersAt(10 * kSec), 0u);
}

TEST(LoadPlanClosedTest, StagesCutShortByTheDurationKeepTheirSlope) {
  // The run ends halfway through the first stage: the ramp is cut, not compressed.
  const auto plan = LoadPlan::Closed(0, 0, {{10 * kSec, 10}, {10 * kSec, 20}}, 5 * kSec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->RampEnd(), 5 * kSec);
  EXPECT_EQ(plan->UsersAt(2 * kSec), 2u);
  EXPECT_EQ(plan->UsersAt(4900 * kMs), 4u);
  EXPECT_EQ(plan->UsersAt(5 * kSec), 0u);
  EXPECT_LE(plan->MaxUsers(), 5u);
}

// The spans results per load level are kept for: the stages, cut at the duration, then a hold.
TEST(LoadPlanSpansTest, TheStagesThenTheHoldAndNoneWithoutStages) {
  const auto plan = LoadPlan::Open(0, {{10 * kSec, 100}, {20 * kSec, 100}}, 40 * kSec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<LoadPlan::Span> spans = plan->Spans();
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].start_ns, 0);
  EXPECT_EQ(spans[0].end_ns, 10 * kSec);
  EXPECT_EQ(spans[0].from, 0);
  EXPECT_EQ(spans[0].to, 100);
  EXPECT_FALSE(spans[0].hold);
  EXPECT_EQ(spans[1].start_ns, 10 * kSec);
  EXPECT_EQ(spans[1].end_ns, 30 * kSec);
  EXPECT_EQ(spans[1].from, 100);
  EXPECT_EQ(spans[1].to, 100);
  EXPECT_TRUE(spans[2].hold);
  EXPECT_EQ(spans[2].start_ns, 30 * kSec);
  EXPECT_EQ(spans[2].end_ns, 40 * kSec);
  // Cut short: the stage ends at the duration, at the level it had reached.
  const auto cut = LoadPlan::Closed(0, 0, {{10 * kSec, 10}, {10 * kSec, 20}}, 5 * kSec);
  ASSERT_TRUE(cut.ok());
  ASSERT_EQ(cut->Spans().size(), 1u);
  EXPECT_EQ(cut->Spans()[0].end_ns, 5 * kSec);
  EXPECT_DOUBLE_EQ(cut->Spans()[0].to, 5);
  EXPECT_TRUE(LoadPlan::Open(100, {}, 10 * kSec)->Spans().empty());
  EXPECT_TRUE(LoadPlan::Closed(10, 0, {}, 10 * kSec)->Spans().empty());
}

TEST(LoadPlanClosedTest, UsersSplitExactlyOverStreams) {
  // Stream s of k runs the users u < UsersAt(t) with u % k == s.
  const auto plan = LoadPlan::Closed(0, 0, {{10 * kSec, 23}, {10 * kSec, 0}}, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int64_t t = 0; t < plan->duration_ns(); t += 250 * kMs) {
    const uint32_t users = plan->UsersAt(t);
    for (uint32_t k : {1u, 2u, 3u, 7u}) {
      uint32_t sum = 0, most = 0, least = UINT32_MAX;
      for (uint32_t s = 0; s < k; ++s) {
        const uint32_t share = static_cast<uint32_t>(EvenShare(users, k, s));
        sum += share;
        most = std::max(most, share);
        least = std::min(least, share);
      }
      EXPECT_EQ(sum, users) << "t=" << t << " k=" << k;
      EXPECT_LE(most - least, 1u) << "t=" << t << " k=" << k;
    }
  }
}

TEST(EvenShareTest, IsTheCountOfIndicesCongruentToThePartAndAddsUp) {
  for (uint64_t total : {0u, 1u, 5u, 7u, 23u, 100u}) {
    for (uint64_t parts : {1u, 2u, 3u, 7u, 10u}) {
      uint64_t sum = 0;
      for (uint64_t k = 0; k < parts; ++k) {
        uint64_t congruent = 0;
        for (uint64_t u = 0; u < total; ++u) congruent += u % parts == k;
        EXPECT_EQ(EvenShare(total, parts, k), congruent) << total << "/" << parts << " part " << k;
        sum += EvenShare(total, parts, k);
      }
      EXPECT_EQ(sum, total);
      // Any run of consecutive parts adds up to the parts one by one (an agent's streams).
      for (uint64_t first = 0; first < parts; ++first) {
        for (uint64_t count = 0; first + count <= parts; ++count) {
          uint64_t one_by_one = 0;
          for (uint64_t k = first; k < first + count; ++k) one_by_one += EvenShare(total, parts, k);
          EXPECT_EQ(EvenShareOfRange(total, parts, first, count), one_by_one)
              << total << "/" << parts << " parts " << first << "+" << count;
        }
      }
    }
  }
}

TEST(LoadPlanOpenTest, ConstantRateIsExact) {
  for (int64_t rate : {1, 3, 7, 100, 1000, 12345}) {
    const auto plan = LoadPlan::Open(static_cast<double>(rate), {}, 10 * kSec);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->model(), LoadPlan::Model::kOpen);
    const uint64_t total = plan->TotalArrivals();
    EXPECT_EQ(total, static_cast<uint64_t>(rate * 10)) << "rate " << rate;
    for (uint64_t n = 0; n < total; ++n) {
      const int64_t want = static_cast<int64_t>(n) * kSec / rate;  // floor(n / rate) in ns
      const int64_t got = plan->PlannedTime(n);
      ASSERT_LE(std::abs(got - want), 1) << "rate " << rate << " n=" << n << " got " << got;
    }
    EXPECT_EQ(plan->PlannedTime(total), INT64_MAX) << "rate " << rate;
    EXPECT_EQ(plan->PlannedTime(total + 1), INT64_MAX);
    EXPECT_EQ(plan->PlannedTime(total * 10), INT64_MAX);
    EXPECT_DOUBLE_EQ(plan->RateAt(0), static_cast<double>(rate));
    EXPECT_DOUBLE_EQ(plan->RateAt(10 * kSec - 1), static_cast<double>(rate));
    EXPECT_EQ(plan->RateAt(10 * kSec), 0);
  }
}

TEST(LoadPlanOpenTest, FractionalConstantRate) {
  // 2.5/s: arrivals at 0, 0.4 s, 0.8 s; the one at 1.2 s is after the end.
  const auto plan = LoadPlan::Open(2.5, {}, 1200 * kMs);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->TotalArrivals(), 3u);
  EXPECT_EQ(plan->PlannedTime(0), 0);
  EXPECT_NEAR(plan->PlannedTime(1), 400 * kMs, 1);
  EXPECT_NEAR(plan->PlannedTime(2), 800 * kMs, 1);
  EXPECT_EQ(plan->PlannedTime(3), INT64_MAX);
}

TEST(LoadPlanOpenTest, RampFromZero) {
  // Rate 10 t/s: cumulative arrivals 5 t^2, so arrival n is due at sqrt(n / 5) s.
  const auto plan = LoadPlan::Open(0, {{10 * kSec, 100}}, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->TotalArrivals(), 500u);
  EXPECT_EQ(plan->RateAt(0), 0);
  EXPECT_DOUBLE_EQ(plan->RateAt(5 * kSec), 50);
  for (uint64_t n = 0; n < 500; ++n) {
    const double want = std::sqrt(static_cast<double>(n) / 5) * kSec;
    EXPECT_NEAR(static_cast<double>(plan->PlannedTime(n)), want, 1000) << "n=" << n;
  }
  EXPECT_EQ(plan->PlannedTime(500), INT64_MAX);
}

struct StageCase {
  const char* name;
  std::vector<Stage> stages;
  int64_t duration_ns;  // 0: the stages' sum
};

// Arrivals expected in [from, to): the integral of the piecewise linear rate.
double Integral(const StageCase& c, int64_t from, int64_t to) {
  int64_t duration = c.duration_ns;
  if (duration == 0) {
    for (const Stage& s : c.stages) duration += s.duration_ns;
  }
  auto rate = [&](double t_ns) {
    double start = 0, level = 0;
    for (const Stage& s : c.stages) {
      if (t_ns < start + s.duration_ns) {
        return level + (s.target - level) * (t_ns - start) / s.duration_ns;
      }
      start += s.duration_ns;
      level = s.target;
    }
    return level;
  };
  to = std::min(to, duration);
  double sum = 0;
  constexpr int kSteps = 100000;  // exact for piecewise linear rates up to rounding (midpoint rule)
  const double h = static_cast<double>(to - from) / kSteps;
  for (int i = 0; i < kSteps; ++i) sum += rate(from + (i + 0.5) * h) * h / kSec;
  return sum;
}

std::vector<StageCase> StageCases() {
  return {
      {"ramp_hold_down", {{10 * kSec, 100}, {10 * kSec, 100}, {10 * kSec, 0}}, 0},
      {"ramp_then_hold_past_stages", {{2 * kSec, 50}}, 5 * kSec},
      {"idle_gap", {{5 * kSec, 100}, {5 * kSec, 0}, {5 * kSec, 0}, {5 * kSec, 100}}, 0},
      {"fractional", {{1500 * kMs, 7.5}, {2300 * kMs, 2.2}, {700 * kMs, 13.1}}, 0},
  };
}

// PlannedTime is monotone, finite exactly for the first TotalArrivals arrivals, and puts as many
// arrivals in each stage as the rate's integral over it.
void ExpectArrivalsFollowTheRate(const StageCase& c) {
  const auto plan = LoadPlan::Open(0, c.stages, c.duration_ns);
  ASSERT_TRUE(plan.ok()) << c.name << ": " << plan.status();
  const uint64_t total = plan->TotalArrivals();
  EXPECT_NEAR(static_cast<double>(total), Integral(c, 0, plan->duration_ns()), 1) << c.name;

  int64_t previous = 0;
  for (uint64_t n = 0; n < total + 100; ++n) {
    const int64_t t = plan->PlannedTime(n);
    ASSERT_GE(t, previous) << c.name << ": PlannedTime(" << n << ")";
    if (n < total) {
      ASSERT_LT(t, plan->duration_ns()) << c.name << ": PlannedTime(" << n << ") of " << total;
    } else {
      ASSERT_EQ(t, INT64_MAX) << c.name << ": PlannedTime(" << n << ") of " << total;
    }
    previous = t;
  }

  // Arrivals in each stage match the stage's integral of the rate.
  int64_t from = 0;
  for (size_t i = 0; i <= c.stages.size(); ++i) {
    const int64_t to = i < c.stages.size() ? from + c.stages[i].duration_ns : plan->duration_ns();
    if (to <= from) break;
    uint64_t count = 0;
    for (uint64_t n = 0; n < total; ++n) {
      const int64_t t = plan->PlannedTime(n);
      if (t >= from && t < to) ++count;
    }
    EXPECT_NEAR(static_cast<double>(count), Integral(c, from, to), 1)
        << c.name << " stage " << i << " [" << from << ", " << to << ")";
    from = to;
  }
}

TEST(LoadPlanOpenTest, StagedPlannedTimeIsMonotoneAndFollowsTheRate) {
  for (const StageCase& c : StageCases()) ExpectArrivalsFollowTheRate(c);
}

TEST(LoadPlanOpenTest, StagesCutShortByTheDurationKeepTheirSlope) {
  // 500 arrivals in the first stage, then 5 s ramping from 100/s towards 300/s (at 20/s^2): 750.
  ExpectArrivalsFollowTheRate({"cut_short", {{10 * kSec, 100}, {10 * kSec, 300}}, 15 * kSec});
}

// Where the float sum of earlier stages' arrivals lands just above a whole number.
std::vector<StageCase> StageBoundaryCases() {
  return {
      {"ramp_1100ms_to_100_then_hold", {{1100 * kMs, 100}}, 2100 * kMs},
      {"ramp_600ms_to_170_then_hold", {{600 * kMs, 170}}, 1600 * kMs},
  };
}

TEST(LoadPlanOpenTest, NoArrivalIsLostAtAStageBoundary) {
  for (const StageCase& c : StageBoundaryCases()) ExpectArrivalsFollowTheRate(c);
}

TEST(LoadPlanOpenTest, IdleStageHasNoArrivals) {
  const auto plan = LoadPlan::Open(0, {{5 * kSec, 100}, {5 * kSec, 0}, {5 * kSec, 0}}, 20 * kSec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const uint64_t total = plan->TotalArrivals();
  EXPECT_NEAR(static_cast<double>(total), 500, 1);
  // Cumulative arrivals reach 500 at 10 s and stay there: nothing is due later.
  for (uint64_t n = 0; n < total; ++n) ASSERT_LE(plan->PlannedTime(n), 10 * kSec) << n;
  EXPECT_EQ(plan->RateAt(12 * kSec), 0);
}

// TotalArrivals counts exactly the arrivals due before the end, and k streams that each send
// s, s+k, s+2k, ... until PlannedTime says the run is over share them within one of each other.
void ExpectExactSplit(const StageCase& c) {
  const auto plan = c.stages.empty() ? LoadPlan::Open(7, {}, c.duration_ns)
                                     : LoadPlan::Open(0, c.stages, c.duration_ns);
  ASSERT_TRUE(plan.ok()) << c.name << ": " << plan.status();
  const uint64_t total = plan->TotalArrivals();
  uint64_t due = 0;
  for (uint64_t n = 0; n < 2 * total + 100; ++n) {
    if (plan->PlannedTime(n) < plan->duration_ns()) ++due;
  }
  EXPECT_EQ(total, due) << c.name;

  for (uint64_t k : {1, 2, 3, 7}) {
    // As a worker does: stream s sends s, s+k, s+2k, ... until PlannedTime says the run is over.
    uint64_t sum = 0, most = 0, least = UINT64_MAX;
    for (uint64_t s = 0; s < k; ++s) {
      uint64_t sent = 0;
      for (uint64_t n = s; plan->PlannedTime(n) != INT64_MAX; n += k) ++sent;
      sum += sent;
      most = std::max(most, sent);
      least = std::min(least, sent);
    }
    EXPECT_EQ(sum, total) << c.name << " k=" << k;
    EXPECT_LE(most - least, 1u) << c.name << " k=" << k;
  }
}

TEST(LoadPlanOpenTest, ArrivalsSplitExactlyOverStreams) {
  for (const StageCase& c : StageCases()) ExpectExactSplit(c);
  ExpectExactSplit({"constant_7_per_s", {}, 3 * kSec});
}

TEST(LoadPlanOpenTest, ArrivalsSplitExactlyOverStreamsAtAStageBoundary) {
  for (const StageCase& c : StageBoundaryCases()) ExpectExactSplit(c);
}

// ArrivalsBefore(t) is what counting PlannedTime one by one gives, at any t (issue 9: a stopping
// worker counted its unsent arrivals one by one, which at --rate 1e12 took hours).
TEST(LoadPlanOpenTest, ArrivalsBeforeATimeAreCountedByArithmetic) {
  std::vector<StageCase> cases = StageCases();
  for (const StageCase& c : StageBoundaryCases()) cases.push_back(c);
  cases.push_back({"constant_7_per_s", {}, 3 * kSec});
  for (const StageCase& c : cases) {
    const absl::StatusOr<LoadPlan> plan =
        LoadPlan::Open(c.name == std::string("constant_7_per_s") ? 7 : 0, c.stages, c.duration_ns);
    ASSERT_TRUE(plan.ok()) << c.name << ": " << plan.status();
    uint64_t counted = 0;  // arrivals n with PlannedTime(n) < t, by walking
    for (int64_t t = -kMs; t <= plan->duration_ns() + kSec; t += 37 * kMs) {
      while (plan->PlannedTime(counted) < t) ++counted;
      EXPECT_EQ(plan->ArrivalsBefore(t), counted) << c.name << " t=" << t;
    }
    EXPECT_EQ(plan->ArrivalsBefore(plan->duration_ns()), plan->TotalArrivals()) << c.name;
  }
  // A rate far beyond what any target takes: still a handful of operations.
  const absl::StatusOr<LoadPlan> huge = LoadPlan::Open(1e7, {}, 3600 * kSec);
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(huge->ArrivalsBefore(1800 * kSec), 18'000'000'000u);
}

void ExpectInvalid(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

TEST(LoadPlanValidationTest, ErrorsNameTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  ExpectInvalid(LoadPlan::Closed(0, 1, {}, 10 * kSec).status(), "users");
  ExpectInvalid(LoadPlan::Closed(10, -1, {}, 10 * kSec).status(), "spawnRate");
  ExpectInvalid(LoadPlan::Closed(10, nan, {}, 10 * kSec).status(), "spawnRate");
  ExpectInvalid(LoadPlan::Closed(10, inf, {}, 10 * kSec).status(), "spawnRate");
  ExpectInvalid(LoadPlan::Closed(10, 1, {}, 0).status(), "duration");
  ExpectInvalid(LoadPlan::Closed(10, 1, {}, -kSec).status(), "duration");
  ExpectInvalid(LoadPlan::Closed(0, 0, {{kSec, 5}, {0, 5}}, 0).status(), "stages[1].duration");
  ExpectInvalid(LoadPlan::Closed(0, 0, {{kSec, -1}}, 0).status(), "stages[0].target");
  ExpectInvalid(LoadPlan::Closed(0, 0, {{kSec, 5}, {kSec, nan}}, 0).status(), "stages[1].target");

  ExpectInvalid(LoadPlan::Open(0, {}, 10 * kSec).status(), "rate");
  ExpectInvalid(LoadPlan::Open(-5, {}, 10 * kSec).status(), "rate");
  ExpectInvalid(LoadPlan::Open(nan, {}, 10 * kSec).status(), "rate");
  ExpectInvalid(LoadPlan::Open(inf, {}, 10 * kSec).status(), "rate");
  ExpectInvalid(LoadPlan::Open(10, {}, 0).status(), "duration");
  ExpectInvalid(LoadPlan::Open(0, {{kSec, 5}, {-kSec, 5}}, 0).status(), "stages[1].duration");
  ExpectInvalid(LoadPlan::Open(0, {{kSec, inf}}, 0).status(), "stages[0].target");
}

TEST(LoadPlanValidationTest, StagesMakeUsersAndRateOptional) {
  EXPECT_TRUE(LoadPlan::Closed(0, 0, {{kSec, 5}}, 0).ok());
  EXPECT_TRUE(LoadPlan::Open(0, {{kSec, 5}}, 0).ok());
}

}  // namespace
}  // namespace stampede::common
