#include "common/histogram.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "stampede/v1/histogram.pb.h"

namespace stampede::common {
namespace {

constexpr size_t kBytes = Histogram::BucketCount() * sizeof(uint64_t);

// Anonymous mappings are zero-filled on first touch, so untouched buckets cost no memory; a calloc
// from the heap may memset the whole array instead.
uint64_t* AllocateCounts() {
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<uint64_t*>(p);
}

}  // namespace

uint64_t Histogram::BucketLowest(size_t index) {
  if (index < 2048) return index;
  const int shift = static_cast<int>(index >> kSubBucketBits) - 1;
  return static_cast<uint64_t>(index - (static_cast<size_t>(shift) << kSubBucketBits)) << shift;
}

uint64_t Histogram::BucketWidth(size_t index) {
  if (index < 2048) return 1;
  return uint64_t{1} << ((index >> kSubBucketBits) - 1);
}

Histogram::Histogram() : counts_(AllocateCounts()) {}

Histogram::~Histogram() {
  if (counts_ != nullptr) munmap(counts_, kBytes);
}

Histogram::Histogram(const Histogram& other) : Histogram() { Merge(other); }

Histogram& Histogram::operator=(const Histogram& other) {
  if (this != &other) {
    Reset();
    Merge(other);
  }
  return *this;
}

Histogram::Histogram(Histogram&& other) noexcept
    : counts_(std::exchange(other.counts_, nullptr)),
      count_(other.count_),
      sum_(other.sum_),
      min_(other.min_),
      max_(other.max_) {
  // A moved-from histogram stays usable (and empty).
  other.counts_ = AllocateCounts();
  other.count_ = other.sum_ = other.max_ = 0;
  other.min_ = UINT64_MAX;
}

Histogram& Histogram::operator=(Histogram&& other) noexcept {
  if (this != &other) {
    std::swap(counts_, other.counts_);
    std::swap(count_, other.count_);
    std::swap(sum_, other.sum_);
    std::swap(min_, other.min_);
    std::swap(max_, other.max_);
    other.Reset();
  }
  return *this;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  const size_t lo = other.LowIndex(), hi = other.HighIndex();
  for (size_t i = lo; i <= hi; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::Reset() {
  if (count_ != 0) {
    const size_t lo = LowIndex(), hi = HighIndex();
    std::memset(counts_ + lo, 0, (hi - lo + 1) * sizeof(uint64_t));
  }
  count_ = sum_ = max_ = 0;
  min_ = UINT64_MAX;
}

uint64_t Histogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  if (!(q > 0)) return min_;
  if (q >= 1) return max_;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  const size_t lo = LowIndex(), hi = HighIndex();
  uint64_t seen = 0;
  for (size_t i = lo; i <= hi; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = BucketLowest(i) + (BucketWidth(i) - 1) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

uint64_t Histogram::CountAtOrBelow(uint64_t value) const {
  if (count_ == 0 || value < min_) return 0;
  if (value >= max_) return count_;
  const size_t lo = LowIndex(), hi = std::min(HighIndex(), BucketIndex(value));
  uint64_t seen = 0;
  for (size_t i = lo; i <= hi; ++i) seen += counts_[i];
  return seen;
}

void Histogram::ForEachBucket(const std::function<void(uint64_t, uint64_t, uint64_t)>& fn) const {
  if (count_ == 0) return;
  const size_t lo = LowIndex(), hi = HighIndex();
  for (size_t i = lo; i <= hi; ++i) {
    if (counts_[i] != 0) fn(BucketLowest(i), BucketWidth(i), counts_[i]);
  }
}

void Histogram::ToProto(v1::Histogram* out) const {
  out->Clear();
  out->set_layout_version(kLayoutVersion);
  out->set_total_count(count_);
  if (count_ == 0) return;
  out->set_min_ns(min_);
  out->set_max_ns(max_);
  out->set_sum_ns(sum_);
  const size_t lo = LowIndex(), hi = HighIndex();
  out->set_first_index(static_cast<uint32_t>(lo));
  auto* counts = out->mutable_counts();
  int64_t zeros = 0;
  for (size_t i = lo; i <= hi; ++i) {
    if (counts_[i] == 0) {
      ++zeros;
      continue;
    }
    if (zeros != 0) {
      counts->Add(-zeros);
      zeros = 0;
    }
    counts->Add(static_cast<int64_t>(counts_[i]));
  }
}

absl::Status Histogram::MergeFromProto(const v1::Histogram& in) {
  RETURN_IF_ERROR(AddProtoCounts(in));
  AddProtoSummary(in);
  return absl::OkStatus();
}

// One pass that checks and adds: a report's histograms are the controller's main cost, and
// malformed ones are rare, so undoing on failure beats reading every message twice.
absl::Status Histogram::AddProtoCounts(const v1::Histogram& in) {
  if (in.layout_version() != kLayoutVersion) {
    return absl::InvalidArgumentError(absl::StrCat("histogram layout_version ", in.layout_version(),
                                                   " is not supported (want ", kLayoutVersion,
                                                   ")"));
  }
  if (in.total_count() == 0) {
    if (in.counts_size() != 0) return absl::InvalidArgumentError("empty histogram has counts");
    return absl::OkStatus();
  }
  if (in.min_ns() > in.max_ns()) return absl::InvalidArgumentError("histogram min_ns > max_ns");
  // Every counted bucket must lie between min's and max's buckets: Reset and Merge rely on that,
  // and it keeps every write inside the counters.
  const uint64_t lo = BucketIndex(in.min_ns()), hi = BucketIndex(in.max_ns());
  uint64_t index = in.first_index(), total = 0;
  const char* error = nullptr;
  int done = 0;
  for (; done < in.counts_size(); ++done) {
    const int64_t c = in.counts(done);
    if (c < 0) {
      if (c < -static_cast<int64_t>(BucketCount())) {
        error = "histogram gap out of range";
        break;
      }
      index += static_cast<uint64_t>(-c);
      continue;
    }
    if (c > 0 && (index < lo || index > hi)) {
      error = "histogram bucket outside [min_ns, max_ns]";
      break;
    }
    // No single count may exceed the total; that also keeps the running sum from wrapping.
    if (static_cast<uint64_t>(c) > in.total_count() - total) {
      error = "histogram counts exceed total_count";
      break;
    }
    total += static_cast<uint64_t>(c);
    counts_[index] += static_cast<uint64_t>(c);
    ++index;
  }
  if (error == nullptr && total != in.total_count()) {
    UndoProtoCounts(in, done);
    return absl::InvalidArgumentError(absl::StrCat("histogram counts add up to ", total,
                                                   ", total_count says ", in.total_count()));
  }
  if (error != nullptr) {
    UndoProtoCounts(in, done);
    return absl::InvalidArgumentError(error);
  }
  return absl::OkStatus();
}

void Histogram::UndoProtoCounts(const v1::Histogram& in, int entries) {
  if (in.total_count() == 0) return;
  uint64_t index = in.first_index();
  const int n = std::min(entries, in.counts_size());
  for (int i = 0; i < n; ++i) {
    const int64_t c = in.counts(i);
    if (c < 0) {
      index += static_cast<uint64_t>(-c);
    } else {
      counts_[index] -= static_cast<uint64_t>(c);
      ++index;
    }
  }
}

void Histogram::AddProtoSummary(const v1::Histogram& in) {
  if (in.total_count() == 0) return;
  count_ += in.total_count();
  sum_ += in.sum_ns();
  min_ = std::min<uint64_t>(min_, in.min_ns());
  max_ = std::max<uint64_t>(max_, in.max_ns());
}

absl::Status Histogram::ValidateProto(const v1::Histogram& in) {
  Histogram scratch;
  return scratch.AddProtoCounts(in);
}

bool Histogram::operator==(const Histogram& other) const {
  if (count_ != other.count_ || sum_ != other.sum_ || min() != other.min() || max_ != other.max_) {
    return false;
  }
  if (count_ == 0) return true;
  const size_t lo = LowIndex(), hi = HighIndex();
  return std::memcmp(counts_ + lo, other.counts_ + lo, (hi - lo + 1) * sizeof(uint64_t)) == 0;
}

}  // namespace stampede::common
