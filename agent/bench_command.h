// `stampede-agent bench`: the engine on its own, like wrk — flags in, live progress on stderr,
// a summary (text or JSON) on stdout.
#ifndef STAMPEDE_AGENT_BENCH_COMMAND_H_
#define STAMPEDE_AGENT_BENCH_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/engine.h"
#include "common/stats.h"

namespace stampede::agent {

struct BenchOptions {
  EngineConfig engine;  // the load plan, the request, the engine's settings
  bool json = false;    // the summary as JSON
  bool quiet = false;   // no progress lines
  bool help = false;    // -h/--help: print BenchUsage(), nothing else
};

// Parses the arguments after "bench" and checks them together (exactly one of --users and
// --rate, --spawn-rate and --think only with --users...). InvalidArgument "FLAG: why" names the
// flag that is wrong or missing.
absl::StatusOr<BenchOptions> ParseBenchFlags(const std::vector<std::string>& args);

// What a finished run measured: everything its summary shows.
struct BenchResult {
  std::string url;
  bool open = false;  // open model (--rate)
  uint32_t threads = 0;
  std::string io = "epoll";        // the I/O backend: epoll or uring
  std::string protocol = "http1";  // http1, h2 or h2c
  uint32_t max_streams = 0;        // h2/h2c: requests in flight per connection at most
  uint32_t connections = 0;        // open model
  uint32_t max_users = 0;          // closed model
  uint64_t planned_arrivals = 0;   // open model: over the planned duration
  double planned_duration_s = 0;
  std::vector<std::string> request_names;
  common::IntervalStats totals;  // every second merged
  double elapsed_s = 0;
  double user_cpu_s = 0, system_cpu_s = 0;
  double busiest_thread = 0;  // the highest single thread's CPU share in any second, 0..1
  int64_t max_timer_lag_ns = 0;
  uint64_t seconds = 0, saturated_seconds = 0;
};

// The summary as --json prints it (its keys are what scripts read) and as text.
std::string BenchSummaryJson(const BenchResult& result);
std::string BenchSummaryText(const BenchResult& result);

// Runs the benchmark; returns the process exit code (0 ok, 2 when the engine rejects the
// configuration). SIGINT/SIGTERM stop the run early and still print the summary.
int RunBench(BenchOptions options);

std::string BenchUsage();

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_BENCH_COMMAND_H_
