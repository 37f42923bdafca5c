#include "common/threshold.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

using ::testing::HasSubstr;
using Metric = Threshold::Metric;
using Op = Threshold::Op;

Threshold MustParse(const std::string& text) {
  absl::StatusOr<Threshold> t = ParseThreshold(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.ok() ? *t : Threshold{};
}

TEST(ParseThresholdTest, EachMetric) {
  const struct {
    const char* text;
    Metric metric;
    double quantile;
    Op op;
    double value;
  } cases[] = {
      {"p95 < 500ms", Metric::kQuantile, 0.95, Op::kLess, 500e6},
      {"p99.9 < 2s", Metric::kQuantile, 0.999, Op::kLess, 2e9},
      {"p50 <= 20ms", Metric::kQuantile, 0.5, Op::kLessEqual, 20e6},
      {"p99.99 < 1m", Metric::kQuantile, 0.9999, Op::kLess, 60e9},
      {"p0.001 > 1us", Metric::kQuantile, 0.00001, Op::kGreater, 1e3},
      {"max < 1s", Metric::kMax, 0, Op::kLess, 1e9},
      {"mean < 100ms", Metric::kMean, 0, Op::kLess, 100e6},
      {"min >= 250us", Metric::kMin, 0, Op::kGreaterEqual, 250e3},
      {"error_rate < 1%", Metric::kErrorRate, 0, Op::kLess, 0.01},
      {"error_rate < 0.01", Metric::kErrorRate, 0, Op::kLess, 0.01},
      {"error_rate <= 0.5 %", Metric::kErrorRate, 0, Op::kLessEqual, 0.005},
      {"rps > 100", Metric::kRps, 0, Op::kGreater, 100},
      {"rps >= 1234.5/s", Metric::kRps, 0, Op::kGreaterEqual, 1234.5},
      {"requests >= 1000", Metric::kRequests, 0, Op::kGreaterEqual, 1000},
      {"errors < 1", Metric::kErrors, 0, Op::kLess, 1},
  };
  for (const auto& c : cases) {
    const Threshold t = MustParse(c.text);
    EXPECT_EQ(t.expression, c.text);
    EXPECT_EQ(t.request, "") << c.text;
    EXPECT_EQ(t.metric, c.metric) << c.text;
    EXPECT_EQ(t.quantile, c.quantile) << c.text;
    EXPECT_EQ(t.op, c.op) << c.text;
    EXPECT_DOUBLE_EQ(t.value, c.value) << c.text;
  }
}

TEST(ParseThresholdTest, LatencyUnits) {
  EXPECT_EQ(MustParse("p95 < 250us").value, 250e3);
  EXPECT_EQ(MustParse("p95 < 1.5ms").value, 1.5e6);
  EXPECT_EQ(MustParse("p95 < 2s").value, 2e9);
  EXPECT_EQ(MustParse("p95 < 1m").value, 60e9);
  EXPECT_EQ(MustParse("p95 < 1m30s").value, 90e9);
}

TEST(ParseThresholdTest, SpacesAreOptionalAndTrimmed) {
  const Threshold t = MustParse("  p95<500ms  ");
  EXPECT_EQ(t.expression, "p95<500ms");
  EXPECT_EQ(t.op, Op::kLess);
  EXPECT_EQ(t.value, 500e6);
  EXPECT_EQ(MustParse("rps>=10").op, Op::kGreaterEqual);
}

TEST(ParseThresholdTest, PerRequestNameInBraces) {
  Threshold t = MustParse("p95{home} < 300ms");
  EXPECT_EQ(t.request, "home");
  EXPECT_EQ(t.metric, Metric::kQuantile);
  EXPECT_EQ(t.value, 300e6);

  t = MustParse("p95{GET /api/users} < 1s");
  EXPECT_EQ(t.request, "GET /api/users");
  EXPECT_EQ(t.value, 1e9);

  t = MustParse("error_rate { buy now } < 2%");
  EXPECT_EQ(t.request, "buy now");
  EXPECT_EQ(t.metric, Metric::kErrorRate);
  EXPECT_DOUBLE_EQ(t.value, 0.02);
}

TEST(ParseThresholdTest, ErrorsNameTheExpressionAndTheProblem) {
  const struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"", "threshold is empty"},
      {"   ", "threshold is empty"},
      {"p95 <", "threshold \"p95 <\": missing value"},
      {"p95", "threshold \"p95\": missing operator"},
      {"p95{home}", "threshold \"p95{home}\": missing operator"},
      {"< 5ms", "threshold \"< 5ms\": missing metric"},
      {"p96x < 5ms", "unknown metric \"p96x\""},
      {"latency < 5ms", "unknown metric \"latency\""},
      {"p < 5ms", "unknown metric \"p\""},
      {"p99. < 5ms", "unknown metric \"p99.\""},
      {"P95 < 5ms", "unknown metric \"P95\""},
      {"p0 < 5ms", "must be above p0 and below p100"},
      {"p100 < 5ms", "must be above p0 and below p100"},
      {"p1000 < 5ms", "must be above p0 and below p100"},
      {"p99.9999 < 5ms", "more than 3 decimals"},
      {"errors == 0", "operator \"==\" is not supported; use <, <=, > or >="},
      {"errors = 0", "operator \"=\" is not supported"},
      {"errors != 0", "operator \"!=\" is not supported"},
      {"p95 ~ 5ms", "expected an operator (<, <=, > or >=) after \"p95\", got \"~ 5ms\""},
      {"p95 < 500", "latency \"500\" needs a unit"},
      {"p95 < 0", "latency \"0\" needs a unit"},
      {"p95 < 2.5", "needs a unit"},
      {"p95 < fast", "\"fast\" is not a duration"},
      {"p95 < -5ms", "is negative"},
      {"p95{home < 5ms", "missing } after the request name"},
      {"p95{} < 5ms", "empty request name"},
      {"p95{  } < 5ms", "empty request name"},
      {"error_rate < 150%", "is above 100%"},
      {"error_rate < 5", "is a fraction above 1; write 5% for a percentage"},
      {"error_rate < a%", "is not a percentage like 1%"},
      {"error_rate < 5ms", "is not a percentage (1%) or a fraction (0.01)"},
      {"rps > fast", "is not a number of requests per second"},
      {"rps > -5", "is not a number of requests per second"},
      {"rps > 5/m", "is not a number of requests per second"},
      {"requests >= 10.5", "requests \"10.5\" is not a whole number"},
      {"errors < -1", "errors \"-1\" is not a whole number"},
      {"errors < +1", "is not a whole number"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<Threshold> t = ParseThreshold(c.text);
    ASSERT_FALSE(t.ok()) << "\"" << c.text << "\" parsed";
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message)) << c.text;
  }
}

TEST(ThresholdTest, HoldsForEachOperator) {
  Threshold t;
  t.value = 10;
  t.op = Op::kLess;
  EXPECT_TRUE(t.Holds(9.99));
  EXPECT_FALSE(t.Holds(10));
  EXPECT_FALSE(t.Holds(11));
  t.op = Op::kLessEqual;
  EXPECT_TRUE(t.Holds(9));
  EXPECT_TRUE(t.Holds(10));
  EXPECT_FALSE(t.Holds(10.01));
  t.op = Op::kGreater;
  EXPECT_TRUE(t.Holds(11));
  EXPECT_FALSE(t.Holds(10));
  EXPECT_FALSE(t.Holds(9));
  t.op = Op::kGreaterEqual;
  EXPECT_TRUE(t.Holds(11));
  EXPECT_TRUE(t.Holds(10));
  EXPECT_FALSE(t.Holds(9.99));
}

TEST(ThresholdTest, NanNeverHolds) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const char* text : {"p95 < 1s", "p95 <= 1s", "rps > 1", "rps >= 0"}) {
    EXPECT_FALSE(MustParse(text).Holds(nan)) << text;
  }
}

TEST(ThresholdTest, ParsedRulesHoldOnMeasuredValues) {
  EXPECT_TRUE(MustParse("p95 < 500ms").Holds(499.9e6));
  EXPECT_FALSE(MustParse("p95 < 500ms").Holds(500e6));
  EXPECT_TRUE(MustParse("error_rate < 1%").Holds(0.0099));
  EXPECT_FALSE(MustParse("error_rate < 1%").Holds(0.01));
  EXPECT_TRUE(MustParse("rps > 100").Holds(100.5));
  EXPECT_FALSE(MustParse("errors < 1").Holds(1));
  EXPECT_TRUE(MustParse("errors < 1").Holds(0));
}

TEST(FormatThresholdValueTest, FormatsForTheMetric) {
  EXPECT_EQ(FormatThresholdValue(MustParse("p95 < 1s"), 412e6), "412ms");
  EXPECT_EQ(FormatThresholdValue(MustParse("max < 1s"), 1.2e9), "1.200s");
  EXPECT_EQ(FormatThresholdValue(MustParse("mean < 1s"), 812e3), "812us");
  EXPECT_EQ(FormatThresholdValue(MustParse("error_rate < 1%"), 0.003), "0.3%");
  EXPECT_EQ(FormatThresholdValue(MustParse("error_rate < 1%"), 0), "0%");
  EXPECT_EQ(FormatThresholdValue(MustParse("error_rate < 1%"), 0.125), "12.5%");
  EXPECT_EQ(FormatThresholdValue(MustParse("rps > 1"), 1234.5), "1234.5/s");
  EXPECT_EQ(FormatThresholdValue(MustParse("rps > 1"), 100), "100/s");
  EXPECT_EQ(FormatThresholdValue(MustParse("requests > 1"), 17), "17");
  EXPECT_EQ(FormatThresholdValue(MustParse("errors < 1"), 0), "0");
  EXPECT_EQ(FormatThresholdValue(MustParse("p95 < 1s"), std::nan("")), "n/a");
}

}  // namespace
}  // namespace stampede::common
