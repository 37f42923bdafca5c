// `stampede-agent bench`: the engine on its own, like wrk — flags in, live progress on stderr,
// a summary (text or JSON) on stdout.
#ifndef STAMPEDE_AGENT_BENCH_COMMAND_H_
#define STAMPEDE_AGENT_BENCH_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/engine.h"

namespace stampede::agent {

struct BenchOptions {
  EngineConfig engine;
  bool json = false;
  bool quiet = false;  // no progress lines
};

// Parses the arguments after "bench". InvalidArgument names the flag that is wrong or missing.
absl::StatusOr<BenchOptions> ParseBenchFlags(const std::vector<std::string>& args);

// Runs the benchmark; returns the process exit code (0 ok, 1 run error). SIGINT/SIGTERM stop the
// run early and still print the summary.
int RunBench(BenchOptions options);

extern const char kBenchUsage[];

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_BENCH_COMMAND_H_
