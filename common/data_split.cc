#include "common/data_split.h"

#include <algorithm>

#include "common/load_plan.h"

namespace stampede::common {
namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Whether indices count a user's iterations (x = user + U * j) rather than users or arrivals.
bool PerIteration(const DataBinding& b) {
  return !b.open_model && b.bind == DataBinding::Bind::kIteration && b.max_users > 0;
}

// The user (or arrival) an index belongs to.
uint64_t UserOf(const DataBinding& b, uint64_t x) { return PerIteration(b) ? x % b.max_users : x; }

}  // namespace

Permutation::Permutation(uint64_t rows, uint64_t seed) : rows_(std::max<uint64_t>(rows, 1)) {
  // The smallest even bit count covering the rows: the domain is under 4x the rows, so the cycle
  // walk below takes fewer than 4 steps on average.
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < rows_) bits += 2;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  uint64_t k = seed;
  for (uint64_t& key : keys_) key = k = SplitMix(k);
}

uint64_t Permutation::Round(uint64_t half, int round) const {
  return SplitMix(half ^ keys_[round]) & half_mask_;
}

uint64_t Permutation::operator()(uint64_t k) const {
  uint64_t x = k;
  do {
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (int r = 0; r < 4; ++r) {
      const uint64_t next = left ^ Round(right, r);
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= rows_);  // cycle-walking: a bijection of the domain restricted to [0, rows)
  return x;
}

uint64_t DataIndex(const DataBinding& b, uint64_t user, uint64_t iteration) {
  return PerIteration(b) ? user + b.max_users * iteration : user;
}

std::optional<uint64_t> RowFor(const DataBinding& b, const Permutation& p, uint64_t index) {
  if (b.rows == 0) return std::nullopt;
  if (index >= b.rows) {
    if (!b.wrap) return std::nullopt;
    index %= b.rows;
  }
  return b.order == DataBinding::Order::kShuffle ? p(index) : index;
}

std::optional<uint64_t> RowsNeeded(const DataBinding& b, const LoadPlan& plan) {
  if (plan.model() == LoadPlan::Model::kOpen) return plan.TotalArrivals();
  if (b.bind == DataBinding::Bind::kUser) return plan.MaxUsers();
  return std::nullopt;
}

bool OnStreams(const DataBinding& b, uint32_t streams, uint32_t first, uint32_t count, uint64_t x) {
  const uint64_t stream = UserOf(b, x) % std::max<uint32_t>(streams, 1);
  return stream >= first && stream < uint64_t{first} + count;
}

uint64_t LocalPosition(const DataBinding& b, uint32_t streams, uint32_t first, uint32_t count,
                       uint64_t x) {
  const uint64_t s = std::max<uint32_t>(streams, 1);
  if (PerIteration(b)) {
    // x = user + U * j: j whole blocks of U users before it, then the users below it.
    const uint64_t per_block = EvenShareOfRange(b.max_users, s, first, count);
    const uint64_t user = x % b.max_users, block = x / b.max_users;
    return block * per_block + EvenShareOfRange(user, s, first, count);
  }
  return (x / s) * count + (x % s - first);
}

std::vector<uint64_t> RowsOfStreams(const DataBinding& b, const Permutation& p, uint64_t reach,
                                    uint32_t streams, uint32_t first, uint32_t count) {
  std::vector<uint64_t> rows;
  const auto row = [&](uint64_t x) { return b.order == DataBinding::Order::kShuffle ? p(x) : x; };
  if (b.wrap) {
    for (uint64_t x = 0; x < b.rows; ++x) rows.push_back(row(x));
    return rows;
  }
  // The indices on these streams in ascending order, visited without the other streams' (one
  // agent of many would otherwise walk the whole table, and every agent does this).
  const uint64_t end = std::min(reach, b.rows);
  const uint64_t s = std::max<uint32_t>(streams, 1);
  // Users offset.. offset + users - 1 on these streams, while below `end`; false at `end`.
  auto users_on_streams = [&](uint64_t offset, uint64_t users) {
    for (uint64_t base = 0; base < users; base += s) {
      for (uint64_t k = first; k < uint64_t{first} + count && base + k < users; ++k) {
        const uint64_t x = offset + base + k;
        if (x >= end) return false;
        rows.push_back(row(x));
      }
    }
    return true;
  };
  if (PerIteration(b)) {
    // x = user + U * j: block j holds every user's j-th iteration.
    for (uint64_t offset = 0; offset < end; offset += b.max_users) {
      if (!users_on_streams(offset, b.max_users)) break;
    }
  } else {
    users_on_streams(0, end);
  }
  return rows;
}

}  // namespace stampede::common
