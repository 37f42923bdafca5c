// An AgentLauncher that launches nothing: the test starts (or plays) the agents itself, and
// remembers what the last launch asked for (the run id and token agents present).
#ifndef STAMPEDE_TESTS_FAKES_NO_LAUNCHER_H_
#define STAMPEDE_TESTS_FAKES_NO_LAUNCHER_H_

#include <string>

#include "controller/agent_launcher.h"

namespace stampede::testing {

class NoLauncher : public controller::AgentLauncher {
 public:
  absl::Status Launch(const controller::LaunchRequest& request) override {
    last = request;
    return absl::OkStatus();
  }
  void Stop() override {}
  std::string LogLocation(uint32_t) const override { return "(test)"; }
  controller::LaunchRequest last;
};

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_FAKES_NO_LAUNCHER_H_
