// `stampede operator`: the controller as a Kubernetes operator. Watches LoadTest custom resources,
// runs each on agent Pods (reconciler.h), serves /metrics, /healthz and /readyz, and with
// --leader-elect works only while it holds a coordination.k8s.io Lease, so replicas can run side
// by side.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_
#define STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/operator/kube_launcher.h"

namespace stampede::controller {

struct OperatorCommandOptions {
  std::string kubeconfig;       // empty: $KUBECONFIG, the service account, ~/.kube/config
  std::string watch_namespace;  // --namespace as given: NS or NS,NS,...; empty: every namespace
  std::vector<std::string> watch_namespaces;  // the same, split and checked by the parser
  std::string grpc_listen = "0.0.0.0:7070";   // where agents connect
  std::string advertise_address;              // what agent Pods dial; empty: the listen address
  std::string metrics_listen = "0.0.0.0:9090";
  bool ui = false;  // --ui: the read-only web UI and results API on the metrics port
  bool leader_elect = false;
  std::string lease_namespace;  // empty: the in-cluster namespace, then stampede-system
  std::string lease_name = "stampede-operator";
  std::string identity;  // empty: host name and pid
  std::string agent_image = AgentPodOptions().default_image;
  std::string agent_command = AgentPodOptions().agent_command;
  std::string agent_defaults_file;  // --agent-defaults; read into agent_defaults by the parser
  AgentDefaults agent_defaults;
  // --policy: a LoadTestPolicy (common/policy.h); empty: any target but the built-in denials. The
  // API server and this operator's own Service are denied either way unless a rule allows them.
  std::string policy_file;
  // The agents' channel: TLS with a CA kept in this Secret (in the Lease's namespace), unless
  // insecure_agents.
  bool insecure_agents = false;
  std::string agent_ca_secret = "stampede-agent-ca";
  std::string tls_dir;    // empty: a fresh folder under $TMPDIR (or /tmp)
  std::string tls_names;  // --tls-san: more names for the serving certificate
  absl::Duration agent_cert_validity = absl::Hours(24 * 7);
  int agent_ca_days = 365;                             // a Duration flag stops at 168h
  absl::Duration agent_reconnect = absl::Seconds(60);  // at most 1h, the agents' own bound
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);  // shorter than lease_duration
  absl::Duration retry_period = absl::Seconds(2);
  absl::Duration status_interval = absl::Seconds(2);
  absl::Duration finished_metrics_ttl = absl::Minutes(5);  // at most 24h
  absl::Duration unschedulable_timeout = absl::Seconds(30);
  absl::Duration agent_start_timeout = absl::Minutes(3);     // at most 24h
  absl::Duration watch_idle_timeout = absl::ZeroDuration();  // zero: the informers' default
  int pod_create_concurrency = 16;  // agent Pod creates (and deletes) in flight per test
  bool help = false;                // -h/--help: print OperatorUsage(), nothing else
};

struct ControllerOptions;  // controller/controller.h

// The embedded controller's options for these flags (the agents' channel, the start timeout).
ControllerOptions ControllerOptionsFor(const OperatorCommandOptions& options);

// Parses the arguments after "operator". InvalidArgument "FLAG: why" names the flag that is wrong.
absl::StatusOr<OperatorCommandOptions> ParseOperatorFlags(const std::vector<std::string>& args);

// Exit code: 0 after SIGINT/SIGTERM, 1 when leadership was lost or the API server is unusable,
// 2 for bad flags.
int OperatorCommand(const std::vector<std::string>& args);

std::string OperatorUsage();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_OPERATOR_COMMAND_H_
