// A controller's Assignment (the LoadTest spec and this agent's streams) as the engine's
// configuration.
#ifndef STAMPEDE_AGENT_ENGINE_CONFIG_H_
#define STAMPEDE_AGENT_ENGINE_CONFIG_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "agent/engine.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::agent {

// InvalidArgument naming the field when the spec cannot drive the engine.
absl::StatusOr<EngineConfig> EngineConfigFromAssignment(const v1::Assignment& assignment,
                                                        uint32_t threads);

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_ENGINE_CONFIG_H_
