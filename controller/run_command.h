// `stampede run test.yaml`: an embedded controller and local agents for one test, with a live
// line per second, a final table, results files, and an exit code for CI.
#ifndef STAMPEDE_CONTROLLER_RUN_COMMAND_H_
#define STAMPEDE_CONTROLLER_RUN_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace stampede::controller {

// Exit codes, stable for CI scripts.
enum ExitCode {
  kExitPassed = 0,
  kExitThresholdsFailed = 1,
  kExitInvalid = 2,   // bad flags or an invalid spec
  kExitRunError = 3,  // agents lost or failed, deadline, launch failure
  kExitAborted = 4,   // interrupted (Ctrl-C / SIGTERM)
};

struct RunCommandOptions {
  std::string file;            // the LoadTest, YAML or JSON
  uint32_t agents = 0;         // --agents; 0: spec.agents
  std::string target;          // --target; empty: spec.target.url
  std::string out_json;        // --out; empty: none
  std::string out_csv;         // --csv; empty: none
  std::string out_report;      // --report; empty: none
  std::string logs;            // --logs; empty: a new folder under /tmp
  std::string metrics_listen;  // --metrics-listen host:port; empty: no /metrics
  // --metrics-linger: /metrics stays up this long after the run, with its final values.
  absl::Duration metrics_linger = absl::ZeroDuration();
  std::string policy_file;  // --policy: a LoadTestPolicy; empty: common::Policy::AllowAll()
  bool quiet = false;       // no per-second lines
  bool help = false;        // -h/--help: print RunUsage(), nothing else
};

// Parses the arguments after "run". InvalidArgument "FLAG: why" names the flag that is wrong or
// missing; the file is only named here, not read.
absl::StatusOr<RunCommandOptions> ParseRunFlags(const std::vector<std::string>& args);

// Runs the test; returns an ExitCode.
int RunCommand(const std::vector<std::string>& args);

std::string RunUsage();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RUN_COMMAND_H_
