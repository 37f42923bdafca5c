// Runs a LoadTest's agents as Kubernetes Pods named <loadtest>-agent-<i>, owned by the LoadTest
// (deleting it deletes them), that dial the controller's gRPC address and authenticate with the
// test's token from a Secret the operator owns. The Pods meet the Pod Security "restricted"
// profile and mount no service-account token.
//
// Launch creates every Pod that does not exist yet; one that exists (a restarted operator, or a
// retry) is adopted, never duplicated. At most `create_concurrency` creates are in flight; an
// overloaded API server pauses them all (see AgentPodOptions). Stop deletes them, unless Detach was
// called first (the operator is shutting down and the next leader takes the agents over).
//
// Thread-safe. `api` must outlive the launcher.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_KUBE_LAUNCHER_H_
#define STAMPEDE_CONTROLLER_OPERATOR_KUBE_LAUNCHER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "controller/agent_launcher.h"
#include "controller/kube/api.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::controller {

// What agent Pods get where a LoadTest's agentTemplate leaves a field unset (the operator's
// --agent-defaults, the chart's agent.resources, agent.nodeSelector and agent.tolerations). A
// field the template sets wins whole: its nodeSelector is not merged key by key with these.
struct AgentDefaults {
  kube::Json resources;      // null, or {limits: {...}, requests: {...}}
  kube::Json node_selector;  // null, or an object of strings
  kube::Json tolerations;    // null, or an array of objects
};

// Reads defaults from JSON text: an object with any of resources, nodeSelector and tolerations.
// InvalidArgument names the field that is wrong.
absl::StatusOr<AgentDefaults> ParseAgentDefaults(const std::string& text);

struct AgentPodOptions {
  AgentDefaults defaults;
  std::string default_image = "ghcr.io/stampede-dev/stampede-agent:0.1.0";
  std::string agent_command = "/usr/local/bin/stampede-agent";
  int reconnect_s = 60;  // the agents' reconnect window (STAMPEDE_RECONNECT_SECONDS)
  // Agents speak TLS, trusting the CAs in key ca.crt of the test's token Secret (STAMPEDE_CA).
  bool tls = false;
  // Pod creates (and deletes) in flight at once, per test. The API server's default budget is 200
  // mutating requests in flight; a few tests launching together stay well inside it.
  int create_concurrency = 16;
  // A create the API server still refuses as overloaded (429 or 5xx: Unavailable, after the
  // client's own retries, which honour Retry-After) pauses every worker of the launch: first
  // `overload_pause`, doubling up to `overload_pause_max`; after `overload_retries` such pauses
  // in a row without a Pod created, the launch fails.
  std::chrono::milliseconds overload_pause{1000};
  std::chrono::milliseconds overload_pause_max{30'000};
  int overload_retries = 8;
  // The clock pauses are timed on and how they are waited out; tests give fakes (null and empty:
  // the system's).
  const common::Clock* clock = nullptr;
  std::function<void(std::chrono::nanoseconds)> sleep;
};

// Labels every agent Pod carries; `stampede.dev/loadtest=<name>` selects one test's Pods.
inline constexpr char kLoadTestLabel[] = "stampede.dev/loadtest";
inline constexpr char kAgentIndexLabel[] = "stampede.dev/agent-index";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kManagedByValue[] = "stampede-operator";

// <loadtest>-agent-<index>
std::string AgentPodName(const std::string& loadtest, uint32_t index);
// The Secret holding a test's token (key "token") and, with TLS, the CAs its agents trust (key
// "ca.crt").
std::string TokenSecretName(const std::string& loadtest);
// The ownerReference that ties a child to its LoadTest (controller, blockOwnerDeletion).
kube::Json OwnerReference(const v1::LoadTest& test);
// The Pod manifest of agent `index` of the run `run_id` (what its agents present in Hello).
kube::Json AgentPod(const v1::LoadTest& test, uint32_t index, const std::string& run_id,
                    const std::string& controller_address, const AgentPodOptions& options);

class KubeLauncher : public AgentLauncher {
 public:
  KubeLauncher(kube::Api* api, v1::LoadTest test, AgentPodOptions options);

  absl::Status Launch(const LaunchRequest& request) override;
  void Stop() override;
  std::string LogLocation(uint32_t index) const override;
  // From now on Stop leaves the Pods alone.
  void Detach() { detached_.store(true); }

 private:
  kube::Api* const api_;
  const v1::LoadTest test_;
  const AgentPodOptions options_;
  std::atomic<bool> detached_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_KUBE_LAUNCHER_H_
