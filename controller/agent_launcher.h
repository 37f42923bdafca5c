// Launchers start a test's agents somewhere: local processes (LocalLauncher) or Kubernetes Pods.
// The run lifecycle does not care which; agents always dial back over gRPC.
#ifndef STAMPEDE_CONTROLLER_AGENT_LAUNCHER_H_
#define STAMPEDE_CONTROLLER_AGENT_LAUNCHER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace stampede::controller {

struct LaunchRequest {
  std::string run_id;
  std::string token;               // per-test secret the agents present in Hello
  std::string controller_address;  // host:port the agents dial
  uint32_t agents = 1;
  uint32_t threads_per_agent = 0;  // 0: the agent's core count
};

// Implementations are thread-safe.
class AgentLauncher {
 public:
  virtual ~AgentLauncher() = default;
  // Starts every agent; an error means none should be counted on (the run fails with it).
  virtual absl::Status Launch(const LaunchRequest& request) = 0;
  // Stops the agents still running and reclaims them; returns within a bounded time.
  virtual void Stop() = 0;
  // Where a person finds agent `index`'s logs, for error messages.
  virtual std::string LogLocation(uint32_t index) const = 0;
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_AGENT_LAUNCHER_H_
