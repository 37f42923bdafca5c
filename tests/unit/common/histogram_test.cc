#include "common/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stampede/v1/histogram.pb.h"

namespace stampede::common {

// Found by argument-dependent lookup, so gtest failures show a summary instead of raw bytes.
void PrintTo(const Histogram& h, std::ostream* os) {
  *os << "{count=" << h.count() << " min=" << h.min() << " max=" << h.max() << " sum=" << h.sum()
      << " buckets=[";
  int shown = 0;
  h.ForEachBucket([&](uint64_t lowest, uint64_t width, uint64_t count) {
    if (shown++ < 8) *os << " " << lowest << "+" << width << ":" << count;
  });
  if (shown > 8) *os << " ... (" << shown << " buckets)";
  *os << " ]}";
}

namespace {

using Samples = std::vector<uint64_t>;

constexpr uint64_t kMicrosecond = 1000;
constexpr uint64_t kMillisecond = 1000 * kMicrosecond;
constexpr uint64_t kSecond = 1000 * kMillisecond;
constexpr uint64_t kHour = 3600 * kSecond;

Samples Uniform(std::mt19937_64& rng, size_t n, uint64_t lo, uint64_t hi) {
  std::uniform_int_distribution<uint64_t> dist(lo, hi);
  Samples out(n);
  for (uint64_t& v : out) v = dist(rng);
  return out;
}

Samples LogNormal(std::mt19937_64& rng, size_t n, double median_ns, double sigma) {
  std::lognormal_distribution<double> dist(std::log(median_ns), sigma);
  Samples out(n);
  for (uint64_t& v : out) v = static_cast<uint64_t>(std::llround(dist(rng)));
  return out;
}

Samples Exponential(std::mt19937_64& rng, size_t n, double mean_ns) {
  std::exponential_distribution<double> dist(1.0 / mean_ns);
  Samples out(n);
  for (uint64_t& v : out) v = static_cast<uint64_t>(std::llround(dist(rng)));
  return out;
}

// 90 % fast responses around 1 ms, 10 % slow ones around 200 ms.
Samples Bimodal(std::mt19937_64& rng, size_t n) {
  std::bernoulli_distribution slow(0.1);
  std::normal_distribution<double> fast_dist(1.0 * kMillisecond, 100.0 * kMicrosecond);
  std::normal_distribution<double> slow_dist(200.0 * kMillisecond, 20.0 * kMillisecond);
  Samples out(n);
  for (uint64_t& v : out) {
    const double x = slow(rng) ? slow_dist(rng) : fast_dist(rng);
    v = static_cast<uint64_t>(std::llround(std::max(x, 1.0)));
  }
  return out;
}

Histogram FromSamples(const Samples& samples) {
  Histogram h;
  for (uint64_t v : samples) h.Record(v);
  return h;
}

Samples Concat(const Samples& a, const Samples& b) {
  Samples out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// The sample a histogram should report for quantile q, with the same rank rule.
uint64_t ExactQuantile(const Samples& sorted, double q) {
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<uint64_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

uint64_t ExactCountAtOrBelow(const Samples& sorted, uint64_t value) {
  return static_cast<uint64_t>(std::upper_bound(sorted.begin(), sorted.end(), value) -
                               sorted.begin());
}

// operator== and copies only look between min's and max's buckets; recording both ends of the range
// into both sides makes the comparison cover every bucket, so stale counts anywhere show up.
void ExpectEqualOverWholeRange(Histogram& a, Histogram& b) {
  for (Histogram* h : {&a, &b}) {
    h->Record(0);
    h->Record(Histogram::kMaxValue);
  }
  EXPECT_EQ(a, b);
}

::testing::AssertionResult InItsBucket(uint64_t v) {
  const size_t i = Histogram::BucketIndex(v);
  if (i >= Histogram::BucketCount()) {
    return ::testing::AssertionFailure() << "value " << v << " -> index " << i << " out of range";
  }
  const uint64_t lowest = Histogram::BucketLowest(i), width = Histogram::BucketWidth(i);
  if (v < lowest || v - lowest >= width) {
    return ::testing::AssertionFailure() << "value " << v << " -> bucket " << i << " = [" << lowest
                                         << ", " << lowest + width << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(HistogramLayoutTest, EveryValueBelow70000IsInItsBucket) {
  for (uint64_t v = 0; v < 70000; ++v) ASSERT_TRUE(InItsBucket(v));
}

TEST(HistogramLayoutTest, RandomValuesUpToMaxAreInTheirBucket) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> linear(0, Histogram::kMaxValue);
  std::uniform_int_distribution<int> bits(1, 42);
  for (int i = 0; i < 500000; ++i) {
    ASSERT_TRUE(InItsBucket(linear(rng)));
    // Uniform over magnitudes too, or nearly every value would fall in the top two octaves.
    ASSERT_TRUE(InItsBucket(rng() >> (64 - bits(rng))));
  }
}

TEST(HistogramLayoutTest, PowersOfTwoAndNeighboursAreInTheirBucket) {
  for (int k = 0; k <= 42; ++k) {
    const uint64_t p = uint64_t{1} << k;
    for (uint64_t v : {p - 1, p, p + 1}) {
      if (v <= Histogram::kMaxValue) {
        ASSERT_TRUE(InItsBucket(v)) << "k=" << k;
      }
    }
  }
}

TEST(HistogramLayoutTest, BucketsTileTheRangeAndAreNarrow) {
  uint64_t next_lowest = 0;
  for (size_t i = 0; i < Histogram::BucketCount(); ++i) {
    const uint64_t lowest = Histogram::BucketLowest(i), width = Histogram::BucketWidth(i);
    ASSERT_EQ(lowest, next_lowest) << "gap or overlap before bucket " << i;
    ASSERT_GE(width, 1u);
    ASSERT_EQ(Histogram::BucketIndex(lowest), i);
    ASSERT_EQ(Histogram::BucketIndex(lowest + width - 1), i);
    if (lowest >= 2048) {
      ASSERT_LE(width * 1024, lowest) << "bucket " << i << " is wider than 1/1024 of its lowest";
    } else {
      ASSERT_EQ(width, 1u) << "values below 2048 must be exact";
    }
    next_lowest = lowest + width;
  }
  EXPECT_EQ(next_lowest, Histogram::kMaxValue + 1);
}

TEST(HistogramLayoutTest, ValuesAboveMaxLandInLastBucket) {
  const size_t last = Histogram::BucketCount() - 1;
  EXPECT_EQ(Histogram::BucketIndex(Histogram::kMaxValue), last);
  for (uint64_t v : {Histogram::kMaxValue + 1, uint64_t{1} << 42, uint64_t{1} << 50,
                     std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(Histogram::BucketIndex(v), last) << v;
  }
}

TEST(HistogramTest, EmptyHistogramReportsZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.sum(), 0u);
  EXPECT_EQ(h.Mean(), 0.0);
  for (double q : {0.0, 0.5, 1.0}) EXPECT_EQ(h.ValueAtQuantile(q), 0u) << q;
  EXPECT_EQ(h.CountAtOrBelow(0), 0u);
  EXPECT_EQ(h.CountAtOrBelow(Histogram::kMaxValue), 0u);
  int buckets = 0;
  h.ForEachBucket([&](uint64_t, uint64_t, uint64_t) { ++buckets; });
  EXPECT_EQ(buckets, 0);
  EXPECT_EQ(h, Histogram());
}

TEST(HistogramTest, EqualityComparesBucketsNotJustSummaries) {
  // Same count, sum, min and max; different buckets in between.
  const Histogram a = FromSamples({100, 200, 200, 300});
  const Histogram b = FromSamples({100, 150, 250, 300});
  EXPECT_NE(a, b);
  EXPECT_EQ(a, FromSamples({300, 200, 100, 200}));
}

TEST(HistogramTest, ForEachBucketMatchesSamples) {
  std::mt19937_64 rng(2);
  const Samples samples = LogNormal(rng, 20000, 5.0 * kMillisecond, 1.0);
  std::map<size_t, uint64_t> want;
  for (uint64_t v : samples) ++want[Histogram::BucketIndex(v)];

  std::map<size_t, uint64_t> got;
  uint64_t previous_lowest = 0;
  bool first = true;
  FromSamples(samples).ForEachBucket([&](uint64_t lowest, uint64_t width, uint64_t count) {
    EXPECT_TRUE(first || lowest > previous_lowest) << "not ascending at " << lowest;
    first = false;
    previous_lowest = lowest;
    const size_t i = Histogram::BucketIndex(lowest);
    EXPECT_EQ(Histogram::BucketLowest(i), lowest);
    EXPECT_EQ(Histogram::BucketWidth(i), width);
    got[i] = count;
  });
  EXPECT_EQ(got, want);
}

TEST(HistogramTest, ValuesAboveMaxKeepExactMinMaxAndSum) {
  const uint64_t huge = uint64_t{1} << 50;
  Histogram h = FromSamples({kMillisecond, Histogram::kMaxValue + 1, huge});
  EXPECT_EQ(h.min(), kMillisecond);
  EXPECT_EQ(h.max(), huge);
  EXPECT_EQ(h.sum(), kMillisecond + Histogram::kMaxValue + 1 + huge);
  EXPECT_EQ(h.ValueAtQuantile(1.0), huge);
  const uint64_t p99 = h.ValueAtQuantile(0.99);
  EXPECT_GE(p99, Histogram::BucketLowest(Histogram::BucketCount() - 1));
  EXPECT_LE(p99, huge);

  v1::Histogram proto;
  h.ToProto(&proto);
  EXPECT_EQ(proto.max_ns(), huge);
  Histogram back;
  ASSERT_TRUE(back.MergeFromProto(proto).ok());
  EXPECT_EQ(back, h);
}

// A fixed-seed distribution of latencies, generated fresh for each test.
struct Distribution {
  const char* name;
  Samples (*generate)(std::mt19937_64& rng, size_t n);
};

void PrintTo(const Distribution& d, std::ostream* os) { *os << d.name; }

const Distribution kDistributions[] = {
    {"Uniform1usTo1s",
     [](std::mt19937_64& rng, size_t n) { return Uniform(rng, n, kMicrosecond, kSecond); }},
    {"LogNormal5ms",
     [](std::mt19937_64& rng, size_t n) { return LogNormal(rng, n, 5.0 * kMillisecond, 1.0); }},
    {"Exponential2ms",
     [](std::mt19937_64& rng, size_t n) { return Exponential(rng, n, 2.0 * kMillisecond); }},
    {"Bimodal1msAnd200ms", [](std::mt19937_64& rng, size_t n) { return Bimodal(rng, n); }},
    {"SingleValue", [](std::mt19937_64&, size_t n) { return Samples(n, 4 * kMillisecond + 321); }},
    {"AboutOneHour",
     [](std::mt19937_64& rng, size_t n) {
       return Uniform(rng, n, kHour - 5 * 60 * kSecond, kHour + 5 * 60 * kSecond);
     }},
    {"ExactRangeBelow3000ns",
     [](std::mt19937_64& rng, size_t n) { return Uniform(rng, n, 0, 3000); }},
};

class HistogramDistributionTest : public ::testing::TestWithParam<Distribution> {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(20240601);
    samples_ = GetParam().generate(rng, 100000);
    sorted_ = samples_;
    std::sort(sorted_.begin(), sorted_.end());
    histogram_ = FromSamples(samples_);
  }

  Samples samples_;
  Samples sorted_;
  Histogram histogram_;
};

TEST_P(HistogramDistributionTest, SummariesAreExact) {
  EXPECT_EQ(histogram_.count(), samples_.size());
  EXPECT_EQ(histogram_.min(), sorted_.front());
  EXPECT_EQ(histogram_.max(), sorted_.back());
  uint64_t sum = 0;
  for (uint64_t v : samples_) sum += v;
  EXPECT_EQ(histogram_.sum(), sum);
  const long double exact_mean = static_cast<long double>(sum) / samples_.size();
  EXPECT_LE(std::fabs(histogram_.Mean() - exact_mean), exact_mean * 1e-9L);
}

TEST_P(HistogramDistributionTest, QuantilesAreWithinBoundOfExact) {
  EXPECT_EQ(histogram_.ValueAtQuantile(0.0), sorted_.front());
  EXPECT_EQ(histogram_.ValueAtQuantile(1.0), sorted_.back());
  for (double q : {0.5, 0.9, 0.99, 0.999, 0.9999}) {
    const uint64_t exact = ExactQuantile(sorted_, q);
    const uint64_t reported = histogram_.ValueAtQuantile(q);
    const double error = std::fabs(static_cast<double>(reported) - static_cast<double>(exact));
    EXPECT_LE(error, exact * 0.001) << "q=" << q << " exact=" << exact << " got=" << reported;
    EXPECT_LE(error, exact * 0.0005 + 1) << "q=" << q << " exact=" << exact << " got=" << reported;
    EXPECT_GE(reported, sorted_.front());
    EXPECT_LE(reported, sorted_.back());
  }
}

TEST_P(HistogramDistributionTest, CountAtOrBelowIsWithinTheValuesBucket) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<size_t> pick(0, sorted_.size() - 1);
  Samples probes;
  for (int i = 0; i < 200; ++i) {
    const uint64_t v = sorted_[pick(rng)];
    const size_t b = Histogram::BucketIndex(v);
    probes.insert(probes.end(), {v, Histogram::BucketLowest(b),
                                 Histogram::BucketLowest(b) + Histogram::BucketWidth(b) - 1});
  }
  for (double q : {0.5, 0.99}) probes.push_back(ExactQuantile(sorted_, q));

  for (uint64_t v : probes) {
    const uint64_t reported = histogram_.CountAtOrBelow(v);
    const uint64_t exact = ExactCountAtOrBelow(sorted_, v);
    const size_t b = Histogram::BucketIndex(v);
    const uint64_t upper_edge = Histogram::BucketLowest(b) + Histogram::BucketWidth(b) - 1;
    const uint64_t through_bucket = ExactCountAtOrBelow(sorted_, upper_edge);
    EXPECT_GE(reported, exact) << "v=" << v;
    EXPECT_LE(reported, through_bucket) << "v=" << v << " counted past its bucket";
  }
  if (sorted_.front() > 0) {
    EXPECT_EQ(histogram_.CountAtOrBelow(sorted_.front() - 1), 0u);
  }
  EXPECT_EQ(histogram_.CountAtOrBelow(sorted_.back()), sorted_.size());
  EXPECT_EQ(histogram_.CountAtOrBelow(Histogram::kMaxValue), sorted_.size());
}

TEST_P(HistogramDistributionTest, ProtoRoundTripIsExact) {
  v1::Histogram proto;
  histogram_.ToProto(&proto);
  v1::Histogram parsed;
  ASSERT_TRUE(parsed.ParseFromString(proto.SerializeAsString()));
  Histogram back;
  const absl::Status status = back.MergeFromProto(parsed);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(back, histogram_);
  ExpectEqualOverWholeRange(back, histogram_);
}

INSTANTIATE_TEST_SUITE_P(Distributions, HistogramDistributionTest,
                         ::testing::ValuesIn(kDistributions),
                         [](const ::testing::TestParamInfo<Distribution>& info) {
                           return std::string(info.param.name);
                         });

TEST(HistogramMergeTest, DisjointRangesMergeToCombinedSamples) {
  std::mt19937_64 rng(4);
  const Samples a = Uniform(rng, 30000, kMicrosecond, kMillisecond);
  const Samples b = Uniform(rng, 30000, 10 * kMillisecond, kSecond);
  Histogram ab = FromSamples(a);
  ab.Merge(FromSamples(b));
  Histogram ba = FromSamples(b);
  ba.Merge(FromSamples(a));
  Histogram together = FromSamples(Concat(a, b));
  EXPECT_EQ(ab, together);
  EXPECT_EQ(ba, together);
  ExpectEqualOverWholeRange(ab, together);
}

TEST(HistogramMergeTest, OverlappingRangesMergeToCombinedSamples) {
  std::mt19937_64 rng(5);
  const Samples a = LogNormal(rng, 50000, 5.0 * kMillisecond, 1.0);
  const Samples b = Exponential(rng, 50000, 2.0 * kMillisecond);
  Histogram merged = FromSamples(a);
  merged.Merge(FromSamples(b));
  Histogram together = FromSamples(Concat(a, b));
  EXPECT_EQ(merged, together);
  EXPECT_EQ(merged.ValueAtQuantile(0.99), together.ValueAtQuantile(0.99));
  ExpectEqualOverWholeRange(merged, together);
}

TEST(HistogramMergeTest, MergingEmptyIsIdentity) {
  std::mt19937_64 rng(6);
  const Histogram a = FromSamples(LogNormal(rng, 10000, 5.0 * kMillisecond, 1.0));
  Histogram a_plus_empty = a;
  a_plus_empty.Merge(Histogram());
  EXPECT_EQ(a_plus_empty, a);
  Histogram empty_plus_a;
  empty_plus_a.Merge(a);
  EXPECT_EQ(empty_plus_a, a);
  EXPECT_EQ(empty_plus_a.min(), a.min());
  Histogram empty;
  empty.Merge(Histogram());
  EXPECT_EQ(empty, Histogram());
}

TEST(HistogramMergeTest, MergeIsCommutativeAndAssociative) {
  std::mt19937_64 rng(7);
  const std::vector<Samples> parts = {LogNormal(rng, 10000, 5.0 * kMillisecond, 1.0),
                                      Exponential(rng, 10000, kMillisecond),
                                      Uniform(rng, 10000, 0, 5000), Bimodal(rng, 10000)};
  std::vector<Histogram> h;
  Samples all;
  for (const Samples& p : parts) {
    h.push_back(FromSamples(p));
    all = Concat(all, p);
  }
  const Histogram together = FromSamples(all);

  Histogram left_to_right;
  for (const Histogram& x : h) left_to_right.Merge(x);
  Histogram right_to_left;
  for (auto it = h.rbegin(); it != h.rend(); ++it) right_to_left.Merge(*it);
  // (h0 + h2) + (h3 + h1)
  Histogram pairs = h[0];
  pairs.Merge(h[2]);
  Histogram other_pair = h[3];
  other_pair.Merge(h[1]);
  pairs.Merge(other_pair);

  EXPECT_EQ(left_to_right, together);
  EXPECT_EQ(right_to_left, together);
  EXPECT_EQ(pairs, together);
}

TEST(HistogramMergeTest, MergeWithItselfDoublesCounts) {
  const Samples s = {5, 5000, 70000, 3 * kSecond};
  Histogram h = FromSamples(s);
  const Histogram& alias = h;
  h.Merge(alias);
  EXPECT_EQ(h, FromSamples(Concat(s, s)));
}

TEST(HistogramTest, ResetEqualsFresh) {
  std::mt19937_64 rng(8);
  Histogram h = FromSamples(Uniform(rng, 10000, 1, kHour));
  h.Reset();
  EXPECT_EQ(h, Histogram());
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0u);
  v1::Histogram proto;
  h.ToProto(&proto);
  EXPECT_EQ(proto.counts_size(), 0);
  EXPECT_EQ(proto.total_count(), 0u);
}

TEST(HistogramTest, ReuseAfterResetRecordsCorrectly) {
  std::mt19937_64 rng(9);
  Histogram reused = FromSamples(Uniform(rng, 50000, 1, kHour));
  reused.Reset();
  const Samples narrow = LogNormal(rng, 10000, 5.0 * kMillisecond, 0.2);
  for (uint64_t v : narrow) reused.Record(v);
  Histogram fresh = FromSamples(narrow);
  EXPECT_EQ(reused, fresh);
  EXPECT_EQ(reused.min(), fresh.min());
  EXPECT_EQ(reused.ValueAtQuantile(0.999), fresh.ValueAtQuantile(0.999));
  ExpectEqualOverWholeRange(reused, fresh);
}

TEST(HistogramTest, ResetAfterMergeFromProtoClearsEverything) {
  std::mt19937_64 rng(10);
  v1::Histogram proto;
  FromSamples(Bimodal(rng, 10000)).ToProto(&proto);
  Histogram h;
  ASSERT_TRUE(h.MergeFromProto(proto).ok());
  h.Reset();
  Histogram fresh;
  ExpectEqualOverWholeRange(h, fresh);
}

// RecordN(v, 0) records nothing, so it should leave min and max alone. Today it sets min_/max_:
// an "empty" histogram then reports max() == v and compares unequal to a fresh one, and a later
// Record(x > v) reports min() == v, a value never recorded. Enable with the fix in histogram.h.
TEST(HistogramTest, RecordNWithZeroCountChangesNothing) {
  Histogram h;
  h.RecordN(5000, 0);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h, Histogram());
  h.Record(7000);
  EXPECT_EQ(h.min(), 7000u);
  EXPECT_EQ(h, FromSamples({7000}));
}

TEST(HistogramTest, CopiesAreEqualAndIndependent) {
  std::mt19937_64 rng(11);
  const Histogram original = FromSamples(LogNormal(rng, 10000, 5.0 * kMillisecond, 1.0));
  Histogram copy(original);
  EXPECT_EQ(copy, original);
  copy.Record(42);
  EXPECT_NE(copy, original);
  EXPECT_EQ(original.count(), 10000u);

  Histogram assigned = FromSamples(Uniform(rng, 1000, 1, kHour));
  assigned = original;
  EXPECT_EQ(assigned, original);
  Histogram expected = original;
  ExpectEqualOverWholeRange(assigned, expected);

  Histogram self = original;
  const Histogram& alias = self;
  self = alias;
  EXPECT_EQ(self, original);
}

TEST(HistogramTest, MovedFromIsEmptyAndUsable) {
  std::mt19937_64 rng(12);
  const Samples samples = LogNormal(rng, 10000, 5.0 * kMillisecond, 1.0);
  const Histogram snapshot = FromSamples(samples);

  Histogram source = FromSamples(samples);
  Histogram constructed(std::move(source));
  EXPECT_EQ(constructed, snapshot);
  EXPECT_EQ(source, Histogram());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  source.Record(123);
  EXPECT_EQ(source, FromSamples({123}));

  // The target's old buckets go to the moved-from side, which must clear them.
  Histogram assigned = FromSamples(Uniform(rng, 10000, 1, kHour));
  assigned = std::move(constructed);
  EXPECT_EQ(assigned, snapshot);
  EXPECT_EQ(constructed, Histogram());  // NOLINT(bugprone-use-after-move)
  constructed.Record(456);
  Histogram expected = FromSamples({456});
  ExpectEqualOverWholeRange(constructed, expected);
}

TEST(HistogramProtoTest, EmptyRoundTrips) {
  v1::Histogram proto;
  Histogram().ToProto(&proto);
  EXPECT_EQ(proto.layout_version(), Histogram::kLayoutVersion);
  Histogram back;
  ASSERT_TRUE(back.MergeFromProto(proto).ok());
  EXPECT_EQ(back, Histogram());
}

TEST(HistogramProtoTest, MergeFromProtoAddsToExistingCounts) {
  std::mt19937_64 rng(13);
  const Samples a = LogNormal(rng, 10000, 5.0 * kMillisecond, 1.0);
  const Samples b = Exponential(rng, 10000, 20.0 * kMillisecond);
  v1::Histogram proto;
  FromSamples(b).ToProto(&proto);
  Histogram h = FromSamples(a);
  ASSERT_TRUE(h.MergeFromProto(proto).ok());
  EXPECT_EQ(h, FromSamples(Concat(a, b)));
}

TEST(HistogramProtoTest, TenThousandLogNormalSamplesSerializeSmall) {
  std::mt19937_64 rng(14);
  v1::Histogram proto;
  FromSamples(LogNormal(rng, 10000, 5.0 * kMillisecond, 0.5)).ToProto(&proto);
  const size_t bytes = proto.ByteSizeLong();
  RecordProperty("serialized_bytes", std::to_string(bytes));
  EXPECT_LT(bytes, 4096u);
}

class MalformedProtoTest : public ::testing::Test {
 protected:
  MalformedProtoTest() {
    std::mt19937_64 rng(15);
    target_ = FromSamples(LogNormal(rng, 1000, 5.0 * kMillisecond, 1.0));
    // Values in the exact range, so indices are easy to reason about: buckets 1000, 1001, 1002.
    FromSamples({1000, 1001, 1001, 1002}).ToProto(&valid_);
  }

  void ExpectRejected(const v1::Histogram& bad) {
    const Histogram before = target_;
    const absl::Status status = target_.MergeFromProto(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status << "\n"
                                                                 << bad.DebugString();
    EXPECT_EQ(target_, before);
    Histogram expected = before;
    ExpectEqualOverWholeRange(target_, expected);
  }

  Histogram target_;
  v1::Histogram valid_;
};

TEST_F(MalformedProtoTest, ValidBaseIsAccepted) {
  ASSERT_EQ(valid_.first_index(), 1000u);
  ASSERT_EQ(valid_.counts_size(), 3);
  Histogram h;
  EXPECT_TRUE(h.MergeFromProto(valid_).ok());
  EXPECT_EQ(h, FromSamples({1000, 1001, 1001, 1002}));
}

TEST_F(MalformedProtoTest, WrongLayoutVersion) {
  for (uint32_t version : {0u, Histogram::kLayoutVersion + 1}) {
    v1::Histogram bad = valid_;
    bad.set_layout_version(version);
    ExpectRejected(bad);
  }
}

TEST_F(MalformedProtoTest, CountsNotSummingToTotal) {
  for (uint64_t total : {valid_.total_count() - 1, valid_.total_count() + 1}) {
    v1::Histogram bad = valid_;
    bad.set_total_count(total);
    ExpectRejected(bad);
  }
}

TEST_F(MalformedProtoTest, EmptyWithCounts) {
  v1::Histogram bad;
  bad.set_layout_version(Histogram::kLayoutVersion);
  bad.add_counts(1);
  ExpectRejected(bad);
}

TEST_F(MalformedProtoTest, IndexOutOfRange) {
  const uint32_t n = static_cast<uint32_t>(Histogram::BucketCount());
  for (const uint32_t first_index : {n - 1, n, n + 5, std::numeric_limits<uint32_t>::max()}) {
    v1::Histogram bad;
    bad.set_layout_version(Histogram::kLayoutVersion);
    bad.set_first_index(first_index);
    // Two buckets from first_index: the second is past the end even for n - 1.
    bad.add_counts(1);
    bad.add_counts(1);
    bad.set_total_count(2);
    bad.set_min_ns(0);
    bad.set_max_ns(std::numeric_limits<uint64_t>::max());
    ExpectRejected(bad);
  }
}

TEST_F(MalformedProtoTest, GapPastTheEnd) {
  v1::Histogram bad;
  bad.set_layout_version(Histogram::kLayoutVersion);
  bad.add_counts(1);
  bad.add_counts(-static_cast<int64_t>(Histogram::BucketCount()));
  bad.add_counts(1);
  bad.set_total_count(2);
  bad.set_max_ns(std::numeric_limits<uint64_t>::max());
  ExpectRejected(bad);
}

TEST_F(MalformedProtoTest, HugeNegativeGap) {
  v1::Histogram bad = valid_;
  bad.clear_counts();
  bad.add_counts(1);
  bad.add_counts(std::numeric_limits<int64_t>::min());
  bad.add_counts(3);
  ExpectRejected(bad);
}

TEST_F(MalformedProtoTest, BucketBelowMinBucket) {
  v1::Histogram bad = valid_;
  bad.set_min_ns(1001);
  ExpectRejected(bad);
}

TEST_F(MalformedProtoTest, BucketAboveMaxBucket) {
  v1::Histogram bad = valid_;
  bad.set_max_ns(1001);
  ExpectRejected(bad);
}

TEST_F(MalformedProtoTest, MinAboveMax) {
  v1::Histogram bad = valid_;
  bad.set_min_ns(1002);
  bad.set_max_ns(1000);
  ExpectRejected(bad);
}

// Counts whose sum wraps around 2^64 to total_count: (2^63-1) + (2^63-1) + 3 = 2^64 + 1 -> 1.
// Today this is accepted and adds ~2^64 to the buckets while count() grows by 1. Enable with the
// fix in Histogram::MergeFromProto (check each addition for overflow).
TEST_F(MalformedProtoTest, CountsWhoseSumOverflows) {
  v1::Histogram bad = valid_;
  bad.clear_counts();
  bad.add_counts(std::numeric_limits<int64_t>::max());
  bad.add_counts(std::numeric_limits<int64_t>::max());
  bad.add_counts(3);
  bad.set_total_count(1);
  ExpectRejected(bad);
}

}  // namespace
}  // namespace stampede::common
