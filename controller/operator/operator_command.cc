#include "controller/operator/operator_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/leader_election.h"
#include "controller/operator/reconcile_loop.h"

namespace stampede::controller {

const char kOperatorUsage[] =
    "usage: stampede operator [--kubeconfig FILE] [--namespace NS] [--grpc-listen ADDR]\n"
    "                         [--advertise-address HOST:PORT] [--metrics-listen ADDR] [--leader-elect]\n"
    "                         [--lease-namespace NS] [--lease-name NAME] [--identity ID]\n"
    "                         [--agent-image IMAGE] [--agent-command PATH] [--agent-reconnect DURATION]\n"
    "                         [--lease-duration D] [--renew-deadline D] [--retry-period D]\n"
    "                         [--status-interval D] [--unschedulable-timeout D]\n"
    "  Runs the LoadTest custom resources of a cluster on agent Pods. Flags take `--flag value` or\n"
    "  `--flag=value`.\n"
    "  --kubeconfig FILE        default: $KUBECONFIG, then the in-cluster service account, then\n"
    "                           ~/.kube/config\n"
    "  --namespace NS           watch only NS (default: every namespace)\n"
    "  --grpc-listen ADDR       where agents connect (default 0.0.0.0:7070)\n"
    "  --advertise-address A    what agent Pods dial (default: the listen address; in a cluster, the\n"
    "                           operator's Service, e.g. stampede-controller.stampede-system.svc:7070)\n"
    "  --metrics-listen ADDR    /metrics, /healthz, /readyz (default 0.0.0.0:9090; /readyz is 200 only\n"
    "                           on the leader)\n"
    "  --leader-elect           work only while holding the Lease (default lease: stampede-system/\n"
    "                           stampede-operator; durations 15s / 10s / 2s)\n"
    "  --agent-image IMAGE      agent image when spec.agentTemplate.image is empty\n"
    "  --agent-reconnect D      how long agents keep their load running while the operator is away\n"
    "                           (restart, new leader) and redial it (default 60s)\n"
    "  --status-interval D      least time between two status writes of a running test (default 2s)\n"
    "  --unschedulable-timeout D  a starting test fails when an agent Pod stays unschedulable this\n"
    "                           long (default 30s)\n"
    "  SIGINT/SIGTERM: stop watching and release the Lease; running tests go on and the next leader\n"
    "  adopts them.\n";

namespace {

int Usage(const std::string& problem) {
  std::cerr << "stampede operator: " << problem << "\n\n" << kOperatorUsage;
  return 2;
}

std::string DefaultIdentity() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid());
}

std::string InClusterNamespace() {
  std::ifstream in("/var/run/secrets/kubernetes.io/serviceaccount/namespace");
  std::string ns;
  in >> ns;
  return ns;
}

}  // namespace

int OperatorCommand(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags = {
      {"--kubeconfig", ""},
      {"--namespace", ""},
      {"--grpc-listen", "0.0.0.0:7070"},
      {"--advertise-address", ""},
      {"--metrics-listen", "0.0.0.0:9090"},
      {"--lease-namespace", ""},
      {"--lease-name", "stampede-operator"},
      {"--identity", ""},
      {"--agent-image", AgentPodOptions().default_image},
      {"--agent-command", AgentPodOptions().agent_command},
      {"--agent-reconnect", "60s"},
      {"--lease-duration", "15s"},
      {"--renew-deadline", "10s"},
      {"--retry-period", "2s"},
      {"--status-interval", "2s"},
      {"--unschedulable-timeout", "30s"},
  };
  bool leader_elect = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    if (a == "-h" || a == "--help") {
      std::cout << kOperatorUsage;
      return 0;
    }
    if (a == "--leader-elect" || a == "--leader-elect=true") {
      leader_elect = true;
      continue;
    }
    if (a == "--leader-elect=false") continue;
    const size_t eq = a.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (flags.find(a) == flags.end()) {
      return Usage(absl::StrCat(a, ": unknown ", !a.empty() && a[0] == '-' ? "flag" : "argument"));
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return Usage(absl::StrCat(a, ": needs a value"));
      v = args[++i];
    }
    flags[a] = v;
  }
  std::map<std::string, std::chrono::milliseconds> durations;
  for (const char* name : {"--agent-reconnect", "--lease-duration", "--renew-deadline", "--retry-period",
                           "--status-interval", "--unschedulable-timeout"}) {
    auto d = common::ParseDuration(flags[name]);
    if (!d.ok() || *d <= absl::ZeroDuration()) return Usage(absl::StrCat(name, ": \"", flags[name], "\" is not a duration"));
    durations[name] = std::chrono::milliseconds(absl::ToInt64Milliseconds(*d));
  }
  if (durations["--renew-deadline"] >= durations["--lease-duration"]) {
    return Usage("--renew-deadline must be shorter than --lease-duration");
  }
  for (const char* name : {"--grpc-listen", "--metrics-listen"}) {
    if (!common::SplitHostPort(flags[name]).ok()) return Usage(absl::StrCat(name, ": \"", flags[name], "\" is not host:port"));
  }

  common::BlockStopSignals();
  auto config = kube::LoadConfig(flags["--kubeconfig"]);
  if (!config.ok()) {
    std::cerr << "stampede operator: " << config.status().message() << "\n";
    return 1;
  }
  auto client = kube::Client::New(*config);
  if (!client.ok()) {
    std::cerr << "stampede operator: " << client.status().message() << "\n";
    return 1;
  }
  // Can we reach the API server and read LoadTests at all? Say so now rather than in a loop.
  const std::string probe = flags["--namespace"].empty()
                                ? "/apis/stampede.dev/v1alpha1/loadtests?limit=1"
                                : absl::StrCat("/apis/stampede.dev/v1alpha1/namespaces/", flags["--namespace"], "/loadtests?limit=1");
  if (auto probed = (*client)->Get(probe); !probed.ok()) {
    std::cerr << "stampede operator: cannot list LoadTests (is the CRD installed? kubectl apply -k deploy/): "
              << probed.status().message() << "\n";
    return 1;
  }

  const int reconnect_s = static_cast<int>(durations["--agent-reconnect"].count() / 1000);
  ControllerOptions controller_options;
  controller_options.grpc_listen = flags["--grpc-listen"];
  controller_options.advertise_address = flags["--advertise-address"];
  controller_options.abort_runs_on_shutdown = false;
  controller_options.run_defaults.agent_reconnect_s = std::max(1, reconnect_s);
  // Pods take longer to come up than local processes (scheduling, image pulls).
  controller_options.run_defaults.start_timeout_s = 180;
  auto controller = Controller::Create(controller_options);
  if (!controller.ok()) {
    std::cerr << "stampede operator: agents' gRPC listener: " << controller.status().message() << "\n";
    return 1;
  }

  const std::string identity = flags["--identity"].empty() ? DefaultIdentity() : flags["--identity"];
  std::unique_ptr<kube::LeaderElector> elector;
  std::atomic<bool> stop{false}, lost{false};
  std::mutex mu;
  std::condition_variable cv;
  auto wake = [&] { std::lock_guard<std::mutex> lock(mu); cv.notify_all(); };
  if (leader_elect) {
    kube::LeaderElector::Options lo;
    lo.lease_namespace = flags["--lease-namespace"];
    if (lo.lease_namespace.empty()) lo.lease_namespace = InClusterNamespace();
    if (lo.lease_namespace.empty()) lo.lease_namespace = "stampede-system";
    lo.lease_name = flags["--lease-name"];
    lo.identity = identity;
    lo.lease_duration = durations["--lease-duration"];
    lo.renew_deadline = durations["--renew-deadline"];
    lo.retry_period = durations["--retry-period"];
    lo.renew_period = std::min(durations["--retry-period"], durations["--renew-deadline"] / 3);
    lo.on_lost = [&] {
      lost.store(true);
      wake();
    };
    elector = std::make_unique<kube::LeaderElector>(client->get(), lo);
  }

  HttpApiOptions http;
  http.listen = flags["--metrics-listen"];
  kube::LeaderElector* elector_ptr = elector.get();
  http.ready = [elector_ptr] { return elector_ptr == nullptr || elector_ptr->IsLeader(); };
  auto api = HttpApi::Start(http, controller->get());
  if (!api.ok()) {
    std::cerr << "stampede operator: --metrics-listen: " << api.status().message() << "\n";
    return 1;
  }
  common::WatchStopSignals([&](int sig, int count) {
    SLOG(kInfo) << "shutdown signal=" << (sig == SIGINT ? "SIGINT" : "SIGTERM") << " count=" << count;
    if (count > 1) _exit(1);
    stop.store(true);
    wake();
  });
  SLOG(kInfo) << "operator identity=" << identity << " grpc=" << (*controller)->agent_address()
              << " metrics_port=" << (*api)->port() << " namespace=" << (flags["--namespace"].empty() ? "(all)" : flags["--namespace"])
              << " leader_elect=" << leader_elect;

  if (elector != nullptr) {
    SLOG(kInfo) << "leader_election waiting lease=" << flags["--lease-name"];
    if (!elector->WaitForLeadership(stop)) {
      SLOG(kInfo) << "stopped before leading";
      return 0;
    }
    SLOG(kInfo) << "leader_election leading identity=" << identity;
  }

  ReconcilerOptions ro;
  ro.watch_namespace = flags["--namespace"];
  ro.identity = identity;
  ro.pods.default_image = flags["--agent-image"];
  ro.pods.agent_command = flags["--agent-command"];
  ro.pods.reconnect_s = controller_options.run_defaults.agent_reconnect_s;
  ro.status_interval = durations["--status-interval"];
  ro.unschedulable_timeout = std::chrono::duration_cast<std::chrono::seconds>(durations["--unschedulable-timeout"]);
  ro.run = (*controller)->run_defaults();
  ReconcileLoop reconciler(client->get(), controller->get(), ro);
  if (!reconciler.Start(std::chrono::seconds(60))) {
    SLOG(kError) << "informers_not_synced waited_s=60";
    return 1;
  }
  SLOG(kInfo) << "reconciling";
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stop.load() || lost.load(); });
  }
  if (lost.load()) {
    // Another replica may lead already: stop acting at once, touch nothing, exit.
    SLOG(kError) << "leadership_lost exiting=true";
    _exit(1);
  }
  reconciler.Stop();
  if (elector != nullptr) {
    if (absl::Status s = elector->Release(); !s.ok()) {
      SLOG(kWarning) << "lease_release_failed error=\"" << s.message() << "\"";
    }
  }
  (*api)->Stop();
  SLOG(kInfo) << "stopped";
  return 0;
}

}  // namespace stampede::controller
