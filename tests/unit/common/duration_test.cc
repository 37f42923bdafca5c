#include "common/duration.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

using ::testing::HasSubstr;

TEST(ParseDurationTest, AcceptsGoSyntax) {
  const struct {
    const char* text;
    absl::Duration want;
  } cases[] = {
      {"1m30s", absl::Seconds(90)},
      {"500ms", absl::Milliseconds(500)},
      {"1.5s", absl::Milliseconds(1500)},
      {"2h", absl::Hours(2)},
      {"250us", absl::Microseconds(250)},
      {"0", absl::ZeroDuration()},
      {" 10s ", absl::Seconds(10)},
      {"\t1h2m3.5s\n", absl::Hours(1) + absl::Minutes(2) + absl::Milliseconds(3500)},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<absl::Duration> got = ParseDuration(c.text);
    ASSERT_TRUE(got.ok()) << "\"" << c.text << "\": " << got.status();
    EXPECT_EQ(*got, c.want) << "\"" << c.text << "\"";
  }
}

TEST(ParseDurationTest, SevenDaysIsTheLongest) {
  EXPECT_EQ(*ParseDuration("168h"), absl::Hours(168));
  EXPECT_EQ(*ParseDuration("7h59m"), absl::Hours(7) + absl::Minutes(59));
}

TEST(ParseDurationTest, EmptyIsInvalid) {
  for (const char* text : {"", "   "}) {
    const absl::StatusOr<absl::Duration> got = ParseDuration(text);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << "\"" << text << "\"";
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("empty"));
  }
}

TEST(ParseDurationTest, RejectsBadInputNamingIt) {
  const struct {
    const char* text;
    const char* quoted;  // how the message names the (trimmed) input
    const char* reason;
  } cases[] = {
      {"10", "\"10\"", "no unit"},
      {" 10 ", "\"10\"", "no unit"},
      {"abc", "\"abc\"", "not a duration"},
      {"-5s", "\"-5s\"", "negative"},
      {"inf", "\"inf\"", "not a duration"},
      // Near the int64 range (issue 9): one bound for every duration, in the parser.
      {"2562048h", "\"2562048h\"", "longer than 168h"},
      {"168h1ns", "\"168h1ns\"", "longer than 168h"},
      {"9223372036s", "\"9223372036s\"", "longer than 168h"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<absl::Duration> got = ParseDuration(c.text);
    ASSERT_FALSE(got.ok()) << "\"" << c.text << "\" parsed as " << *got;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    const std::string message(got.status().message());
    EXPECT_THAT(message, HasSubstr(c.quoted)) << c.text;
    EXPECT_THAT(message, HasSubstr(c.reason)) << c.text;
  }
}

TEST(FormatNanosTest, PicksUnitAndPrecision) {
  const struct {
    uint64_t ns;
    const char* want;
  } cases[] = {
      {0, "0ns"},
      {999, "999ns"},
      {1000, "1.00us"},
      {1500, "1.50us"},
      {12345, "12.3us"},
      {812000, "812us"},
      {2500000, "2.50ms"},
      {3250000, "3.25ms"},
      {45600000, "45.6ms"},
      {1200000000, "1.200s"},
      {90000000000, "90.000s"},
      // Rounding up to 1000 of a unit moves to the next unit.
      {9999, "10.0us"},
      {999999, "1.00ms"},
      {999999999, "1.000s"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatNanos(c.ns), c.want) << c.ns;
}

}  // namespace
}  // namespace stampede::common
