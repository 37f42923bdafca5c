// `stampede run test.yaml`: an embedded controller and local agents for one test, with a live
// line per second, a final table, results files, and an exit code for CI.
#ifndef STAMPEDE_CONTROLLER_RUN_COMMAND_H_
#define STAMPEDE_CONTROLLER_RUN_COMMAND_H_

#include <string>
#include <vector>

namespace stampede::controller {

// Exit codes, stable for CI scripts.
enum ExitCode {
  kExitPassed = 0,
  kExitThresholdsFailed = 1,
  kExitInvalid = 2,      // bad flags or an invalid spec
  kExitRunError = 3,     // agents lost or failed, deadline, launch failure
  kExitAborted = 4,      // interrupted (Ctrl-C / SIGTERM)
};

int RunCommand(const std::vector<std::string>& args);

extern const char kRunUsage[];

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RUN_COMMAND_H_
