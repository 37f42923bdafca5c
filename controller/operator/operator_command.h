// `stampede operator`: the controller as a Kubernetes operator. Watches LoadTest custom resources,
// runs each on agent Pods (reconciler.h), serves /metrics, /healthz and /readyz, and with
// --leader-elect works only while it holds a coordination.k8s.io Lease, so replicas can run side
// by side.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_
#define STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_

#include <string>
#include <vector>

namespace stampede::controller {

extern const char kOperatorUsage[];
// Exit code: 0 after SIGINT/SIGTERM, 1 when leadership was lost or the API server is unusable,
// 2 for bad flags.
int OperatorCommand(const std::vector<std::string>& args);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_
