// A log-linear latency histogram of nanosecond values, in the spirit of HdrHistogram.
//
// Values below 2048 ns are counted exactly; above that, every power-of-two range [2^k, 2^(k+1)) is
// split into 1024 equal buckets, so a bucket is at most 1/1024 of its lowest value wide and any
// value reported from a bucket (its midpoint) is within 0.05 % of every value counted in it. The
// range is 0 ns .. 2^42-1 ns (about 73 minutes); larger values are counted in the last bucket,
// while min and max stay exact. Because all histograms share one bucket layout, merging adds counts
// bucket by bucket and is exact: merge(A, B) is the histogram of A's and B's samples together.
//
// Memory: the 33,792 counters (264 KiB of address space) are mapped lazily by the kernel, so only
// the pages that hold recorded values become resident; Reset, Merge and serialization touch only
// the range between the smallest and largest recorded value.
//
// Not thread-safe: one histogram per thread, merged when read (see agent/worker.h).
#ifndef STAMPEDE_COMMON_HISTOGRAM_H_
#define STAMPEDE_COMMON_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace stampede::v1 {
class Histogram;
}

namespace stampede::common {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 10;
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 42) - 1;
  static constexpr uint32_t kLayoutVersion = 1;

  Histogram();
  ~Histogram();
  Histogram(const Histogram& other);
  Histogram& operator=(const Histogram& other);
  Histogram(Histogram&& other) noexcept;
  Histogram& operator=(Histogram&& other) noexcept;

  // Index of the bucket that counts `value` (clamped to kMaxValue). Branch-free.
  static size_t BucketIndex(uint64_t value) {
    if (value > kMaxValue) value = kMaxValue;
    const int shift = 53 - __builtin_clzll(value | 2047);
    return (static_cast<size_t>(shift) << kSubBucketBits) + (value >> shift);
  }
  static uint64_t BucketLowest(size_t index);
  static uint64_t BucketWidth(size_t index);
  static constexpr size_t BucketCount() { return (31u << kSubBucketBits) + 2048; }

  void Record(uint64_t value) { RecordN(value, 1); }
  void RecordN(uint64_t value, uint64_t n) {
    if (n == 0) return;  // folded away for Record's constant 1
    counts_[BucketIndex(value)] += n;
    count_ += n;
    sum_ += value * n;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // Exact smallest / largest recorded value; 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  uint64_t sum() const { return sum_; }
  double Mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The value at quantile q in [0, 1]: the midpoint of the bucket holding the ceil(q*count)-th
  // smallest sample, clamped to [min, max]. q = 0 gives min, q = 1 gives max; 0 when empty.
  uint64_t ValueAtQuantile(double q) const;

  // Number of samples <= value's bucket upper edge; used to export cumulative buckets.
  uint64_t CountAtOrBelow(uint64_t value) const;

  // Calls fn(lowest_value, width, count) for every non-empty bucket, in ascending order.
  void ForEachBucket(const std::function<void(uint64_t, uint64_t, uint64_t)>& fn) const;

  // Sparse protobuf form (see proto/stampede/v1/histogram.proto).
  void ToProto(v1::Histogram* out) const;
  // Adds a serialized histogram to this one. InvalidArgument (and no change) when `in` is
  // malformed: another layout version, indices out of range, or counts that do not add up to
  // total_count.
  absl::Status MergeFromProto(const v1::Histogram& in);
  // MergeFromProto in two steps, for callers that merge several messages all or nothing (a
  // report): AddProtoCounts checks `in` while adding its bucket counts and leaves no trace when it
  // fails; UndoProtoCounts takes back a successful AddProtoCounts; AddProtoSummary then adds the
  // count, sum, min and max. Between the steps, count() disagrees with the buckets.
  absl::Status AddProtoCounts(const v1::Histogram& in);
  void UndoProtoCounts(const v1::Histogram& in, int entries = INT32_MAX);
  void AddProtoSummary(const v1::Histogram& in);
  // The checks MergeFromProto makes, without merging (into a scratch histogram).
  static absl::Status ValidateProto(const v1::Histogram& in);

  bool operator==(const Histogram& other) const;
  bool operator!=(const Histogram& other) const { return !(*this == other); }

 private:
  size_t LowIndex() const { return BucketIndex(min_); }
  size_t HighIndex() const { return BucketIndex(max_); }

  uint64_t* counts_;  // BucketCount() counters, mmap'ed; never null
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_HISTOGRAM_H_
