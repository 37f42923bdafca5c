// Where runs live: the embedded Controller implements it; the reconciler starts and forgets runs
// through it, so its unit tests can hold runs without a gRPC listener or a ticker.
#ifndef STAMPEDE_CONTROLLER_RUN_REGISTRY_H_
#define STAMPEDE_CONTROLLER_RUN_REGISTRY_H_

#include <memory>
#include <string>

#include "controller/agent_launcher.h"
#include "controller/run.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::controller {

// Thread-safe.
class RunRegistry {
 public:
  virtual ~RunRegistry() = default;
  // Registers and starts a run with a given id and token (the operator keeps them in the cluster,
  // so a restarted controller can take its agents back). An id already registered returns that
  // run. `test` must be valid with defaults applied.
  virtual std::shared_ptr<Run> StartRun(v1::LoadTest test, std::unique_ptr<AgentLauncher> launcher,
                                        const std::string& id, const std::string& token,
                                        const RunOptions& options) = 0;
  // Forgets a run (agents of it are rejected from then on). Aborts it first if it is still going.
  // The Controller keeps exporting its final metrics for ControllerOptions::ended_metrics_ttl.
  virtual void RemoveRun(const std::string& id) = 0;
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RUN_REGISTRY_H_
