#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/histogram.h"
#include "stampede/v1/histogram.pb.h"

namespace stampede::common {
namespace {

constexpr double kMedianNs = 5e6;

std::vector<uint64_t> LogNormal(size_t n, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(kMedianNs), sigma);
  std::vector<uint64_t> out(n);
  for (uint64_t& v : out) v = static_cast<uint64_t>(std::llround(dist(rng)));
  return out;
}

Histogram LogNormalHistogram(size_t n, double sigma, uint64_t seed) {
  Histogram h;
  for (uint64_t v : LogNormal(n, sigma, seed)) h.Record(v);
  return h;
}

void BM_Record(benchmark::State& state) {
  constexpr size_t kMask = (size_t{1} << 16) - 1;
  const std::vector<uint64_t> values = LogNormal(kMask + 1, 1.0, 1);
  Histogram h;
  size_t i = 0;
  for (auto _ : state) {
    h.Record(values[i++ & kMask]);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Record);

// Arg: samples per histogram (10,000 is one second of a 10k rps worker).
void BM_Merge(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const Histogram a = LogNormalHistogram(n, 1.0, 2);
  Histogram b = LogNormalHistogram(n, 1.0, 3);
  for (auto _ : state) {
    b.Merge(a);
  }
  benchmark::DoNotOptimize(b.count());
}
BENCHMARK(BM_Merge)->Arg(10000)->Arg(1000000)->Unit(benchmark::kMicrosecond);

// Arg: quantile in units of 1e-4.
void BM_ValueAtQuantile(benchmark::State& state) {
  const double q = static_cast<double>(state.range(0)) / 10000;
  const Histogram h = LogNormalHistogram(10000, 1.0, 4);
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.ValueAtQuantile(q));
  }
}
BENCHMARK(BM_ValueAtQuantile)->Arg(5000)->Arg(9900)->Arg(9999);

void BM_ToProto(benchmark::State& state) {
  const Histogram h = LogNormalHistogram(10000, 0.5, 5);
  v1::Histogram proto;
  for (auto _ : state) {
    h.ToProto(&proto);
    benchmark::DoNotOptimize(proto.counts_size());
  }
  state.counters["bytes"] = static_cast<double>(proto.ByteSizeLong());
}
BENCHMARK(BM_ToProto);

void BM_MergeFromProto(benchmark::State& state) {
  v1::Histogram proto;
  LogNormalHistogram(10000, 0.5, 5).ToProto(&proto);
  Histogram h;
  for (auto _ : state) {
    if (!h.MergeFromProto(proto).ok()) {
      state.SkipWithError("MergeFromProto rejected a valid histogram");
      break;
    }
  }
  benchmark::DoNotOptimize(h.count());
  state.counters["bytes"] = static_cast<double>(proto.ByteSizeLong());
}
BENCHMARK(BM_MergeFromProto);

}  // namespace
}  // namespace stampede::common
