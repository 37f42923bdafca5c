#include "controller/operator/operator_command.h"

#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/policy.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "common/url.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "controller/kube/leader_election.h"
#include "controller/operator/agent_tls.h"
#include "controller/operator/reconcile_loop.h"

namespace stampede::controller {
namespace {

common::FlagSet OperatorFlags(OperatorCommandOptions* o) {
  using common::FlagSet;
  FlagSet flags("stampede operator", &o->help);
  flags.Description(
      "Runs the LoadTest custom resources of a cluster on agent Pods. Flags take `--flag value` or "
      "`--flag=value`.");
  flags.String("--kubeconfig", "FILE",
               "default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config",
               &o->kubeconfig);
  flags.String("--namespace", "NS[,NS...]",
               "watch only these namespaces, comma-separated (default: every namespace)",
               &o->watch_namespace);
  flags.HostPort("--grpc-listen", "ADDR", "where agents connect (default 0.0.0.0:7070)",
                 &o->grpc_listen);
  flags.String("--advertise-address", "HOST:PORT",
               "what agent Pods dial (default: the listen address; in a cluster, the operator's "
               "Service, e.g. stampede-controller.stampede-system.svc:7070)",
               &o->advertise_address);
  flags.HostPort("--metrics-listen", "ADDR",
                 "/metrics, /healthz, /readyz (default 0.0.0.0:9090; /readyz is 200 only on the "
                 "leader)",
                 &o->metrics_listen);
  flags.Bool("--ui",
             "also serve the read-only web UI and results API on --metrics-listen (/ui/, GET "
             "/api/v1/loadtests, .../results, .../report.html): figures, as /metrics shows, "
             "without the LoadTests' specs",
             &o->ui);
  flags.Bool("--leader-elect",
             "work only while holding the Lease (default lease: stampede-system/"
             "stampede-operator; durations 15s / 10s / 2s)",
             &o->leader_elect);
  flags.String("--lease-namespace", "NS",
               "the Lease's namespace (default: the operator's own in a cluster, else "
               "stampede-system)",
               &o->lease_namespace);
  flags.String("--lease-name", "NAME", "the Lease's name (default stampede-operator)",
               &o->lease_name);
  flags.String("--identity", "ID", "this replica's name in the Lease (default: host name-pid)",
               &o->identity);
  flags.String("--agent-image", "IMAGE",
               absl::StrCat("agent image when spec.agentTemplate.image is empty (default ",
                            AgentPodOptions().default_image, ")"),
               &o->agent_image);
  flags.String("--agent-command", "PATH",
               absl::StrCat("stampede-agent's path in the image (default ",
                            AgentPodOptions().agent_command, ")"),
               &o->agent_command);
  flags.String("--agent-defaults", "FILE",
               "JSON with the resources, nodeSelector and tolerations agent Pods get where the "
               "LoadTest's agentTemplate sets none (the chart mounts it from a ConfigMap)",
               &o->agent_defaults_file);
  flags.String("--policy", "FILE",
               "a LoadTestPolicy: which namespaces may aim load at which hosts and addresses, "
               "and how much (default: any target but link-local and cloud metadata addresses, "
               "the API server and this operator's Service)",
               &o->policy_file);
  flags.Bool("--insecure-agents",
             "agents speak plaintext gRPC, their token readable on the network (default: TLS, "
             "the controller's certificate issued by a CA this operator keeps in a Secret)",
             &o->insecure_agents);
  flags.String("--agent-ca-secret", "NAME",
               "the Secret, in the Lease's namespace, holding the agents' CA (default "
               "stampede-agent-ca; made when missing)",
               &o->agent_ca_secret);
  flags.String("--tls-san", "NAME[,NAME...]",
               "more DNS names or IP addresses for the controller's certificate, besides the host "
               "of --advertise-address",
               &o->tls_names);
  flags.String("--tls-dir", "DIR",
               "where the controller's key and certificate are written for gRPC to read (default: "
               "a new folder under $TMPDIR or /tmp, removed at exit)",
               &o->tls_dir);
  flags.Duration("--agent-cert-validity", "D",
                 "the controller's certificate is valid this long and renewed after two thirds "
                 "of it (default 168h)",
                 &o->agent_cert_validity, FlagSet::kPositive);
  flags.Count("--agent-ca-days", "N",
              "a CA is valid N days and replaced when a third is left (default 365)",
              &o->agent_ca_days, 3, 3650);
  flags.Duration("--agent-reconnect", "D",
                 "how long agents keep their load running while the operator is away (restart, "
                 "new leader) and redial it (default 60s, at most 1h)",
                 &o->agent_reconnect, FlagSet::kPositive, absl::Hours(1));
  flags.Duration("--lease-duration", "D", "how long the Lease holds unrenewed (default 15s)",
                 &o->lease_duration, FlagSet::kPositive);
  flags.Duration("--renew-deadline", "D",
                 "the leader steps down when it could not renew for this long; shorter than "
                 "--lease-duration (default 10s)",
                 &o->renew_deadline, FlagSet::kPositive);
  flags.Duration("--retry-period", "D",
                 "how often a candidate tries to take the Lease (default 2s)", &o->retry_period,
                 FlagSet::kPositive);
  flags.Duration("--status-interval", "D",
                 "least time between two status writes of a running test (default 2s)",
                 &o->status_interval, FlagSet::kPositive);
  flags.Duration("--finished-metrics-ttl", "D",
                 "how long a finished test's series stay on /metrics with their final values, so "
                 "Prometheus scrapes its last counts and phase (default 5m, at most 24h; 0: they "
                 "go when it ends)",
                 &o->finished_metrics_ttl, FlagSet::kNonNegative, absl::Hours(24));
  flags.Duration("--unschedulable-timeout", "D",
                 "a starting test fails when an agent Pod stays unschedulable this long (default "
                 "30s)",
                 &o->unschedulable_timeout, FlagSet::kPositive);
  flags.Duration("--agent-start-timeout", "D",
                 "a starting test fails when its agents are not all connected and ready this "
                 "long after it started: Pods are created, scheduled, pulled and started in that "
                 "time (default 3m, at most 24h; thousands of agents need more)",
                 &o->agent_start_timeout, FlagSet::kPositive, absl::Hours(24));
  flags.Count("--pod-create-concurrency", "N",
              "agent Pod creates (and deletes) in flight at once per test; an overloaded API "
              "server (429) pauses them all (default 16)",
              &o->pod_create_concurrency, 1, 200);
  flags.Duration("--watch-idle-timeout", "D",
                 "a watch of the API server that delivers no byte for this long is dropped and "
                 "started again: its connection died without a word (default 295s)",
                 &o->watch_idle_timeout, FlagSet::kPositive);
  flags.Footer(
      "SIGINT/SIGTERM: stop watching and release the Lease; running tests go on and the next "
      "leader adopts them.");
  return flags;
}

int Fail(const std::string& message) {
  std::cerr << "stampede operator: " << message << "\n";
  return 1;
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

// A client of an API server on which LoadTests can be listed (the CRD is installed): said now
// rather than in a loop.
absl::StatusOr<std::unique_ptr<kube::Client>> ConnectToCluster(
    const OperatorCommandOptions& options, const kube::Config& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<kube::Client> client, kube::Client::New(config));
  std::vector<std::string> probes;
  for (const std::string& ns : options.watch_namespaces) {
    probes.push_back(
        absl::StrCat("/apis/stampede.dev/v1alpha1/namespaces/", ns, "/loadtests?limit=1"));
  }
  if (probes.empty()) probes.push_back("/apis/stampede.dev/v1alpha1/loadtests?limit=1");
  for (const std::string& probe : probes) {
    if (absl::StatusOr<kube::Json> probed = client->Get(probe); !probed.ok()) {
      return absl::Status(
          probed.status().code(),
          absl::StrCat("cannot list LoadTests (is the CRD installed? kubectl apply -k deploy/): ",
                       probed.status().message()));
    }
  }
  return client;
}

// Denies host:port, by name and by each address the name resolves to here (agents resolve it
// the same way, in the cluster's DNS).
void DenyHostPort(common::Policy* policy, const std::string& host, int port,
                  const std::string& why) {
  const auto deny = [&](const std::string& target) {
    if (absl::Status s = policy->AddDenied(target, why); !s.ok()) {
      SLOG(kWarning) << "policy_deny_skipped target=" << target << " error=\"" << s.message()
                     << "\"";
    }
  };
  const auto deny_address = [&](const common::IpAddress& ip) {
    deny(ip.v6 ? absl::StrCat("[", ip.ToString(), "]:", port)
               : absl::StrCat(ip.ToString(), ":", port));
  };
  if (host.empty() || port <= 0) return;
  if (std::optional<common::IpAddress> ip = common::IpAddress::Parse(host)) {
    // 0.0.0.0 and :: listen everywhere, so every address of this host reaches them; a test
    // cannot name "every address", but it can name 127.0.0.1.
    const bool any = ip->v6 ? *ip == *common::IpAddress::Parse("::")
                            : *ip == *common::IpAddress::Parse("0.0.0.0");
    if (any) {
      deny_address(*common::IpAddress::Parse("127.0.0.1"));
      deny_address(*common::IpAddress::Parse("::1"));
    }
    deny_address(*ip);
    return;
  }
  deny(host);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0) return;
  for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
    if (std::optional<common::IpAddress> ip = common::IpAddress::FromSockaddr(a->ai_addr)) {
      deny_address(*ip);
    }
  }
  freeaddrinfo(result);
}

// The policy the reconciler enforces: --policy's (or any target), with the API server and this
// operator's own endpoints denied unless a rule allows them explicitly.
absl::StatusOr<common::Policy> OperatorPolicy(const OperatorCommandOptions& options,
                                              const kube::Config& config,
                                              const Controller& controller, int metrics_port) {
  common::Policy policy = common::Policy::AllowAll();
  if (!options.policy_file.empty()) {
    absl::StatusOr<common::Policy> read = common::Policy::FromFile(options.policy_file);
    if (!read.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--policy: ", read.status().message()));
    }
    policy = *std::move(read);
  }
  constexpr char kApiServer[] = "the Kubernetes API server";
  for (const char* name : {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
                           "kubernetes.default.svc.cluster.local"}) {
    (void)policy.AddDenied(name, kApiServer);
  }
  if (absl::StatusOr<common::Url> server = common::ParseUrl(config.server); server.ok()) {
    DenyHostPort(&policy, server->host, server->port, kApiServer);
  }
  const char* service_host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* service_port = std::getenv("KUBERNETES_SERVICE_PORT");
  int port = 0;
  if (service_host != nullptr && service_port != nullptr && absl::SimpleAtoi(service_port, &port)) {
    DenyHostPort(&policy, service_host, port, kApiServer);
  }
  constexpr char kSelf[] = "the Stampede operator itself";
  if (auto agents = common::SplitHostPort(controller.agent_address()); agents.ok()) {
    DenyHostPort(&policy, agents->first, agents->second, kSelf);
    DenyHostPort(&policy, agents->first, metrics_port, kSelf);
  }
  if (auto grpc = common::SplitHostPort(controller.listen_address()); grpc.ok()) {
    DenyHostPort(&policy, grpc->first, grpc->second, kSelf);
  }
  if (auto metrics = common::SplitHostPort(options.metrics_listen); metrics.ok()) {
    DenyHostPort(&policy, metrics->first, metrics_port, kSelf);
  }
  return policy;
}

// Why the operator stops: a stop signal, or the Lease lost. Either ends Wait.
class StopOrLoss {
 public:
  void Stop() {
    stop_.store(true);
    common::MutexLock lock(&mu_);
    cv_.SignalAll();
  }
  void Lost() {
    common::MutexLock lock(&mu_);
    lost_ = true;
    cv_.SignalAll();
  }
  // True when the Lease was lost.
  bool Wait() {
    common::MutexLock lock(&mu_);
    while (!stop_.load() && !lost_) cv_.Wait(&mu_);
    return lost_;
  }
  // For LeaderElector::WaitForLeadership.
  const std::atomic<bool>& stop() const { return stop_; }

 private:
  std::atomic<bool> stop_{false};
  common::Mutex mu_;
  common::CondVar cv_;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
};

// The operator's own namespace: the Lease's and the agents' CA Secret's.
std::string OperatorNamespace(const OperatorCommandOptions& options) {
  if (!options.lease_namespace.empty()) return options.lease_namespace;
  if (std::string ns = InClusterNamespace(); !ns.empty()) return ns;
  return "stampede-system";
}

// The agents' CA and the controller's certificate, for the host agents dial and --tls-san.
absl::StatusOr<std::unique_ptr<AgentTls>> StartAgentTls(const OperatorCommandOptions& options,
                                                        const ControllerOptions& controller,
                                                        kube::Api* api, std::string* made_dir) {
  AgentTlsOptions o;
  o.secret_namespace = OperatorNamespace(options);
  o.secret_name = options.agent_ca_secret;
  // The host agents dial; the port does not go into a certificate.
  absl::StatusOr<std::pair<std::string, int>> dialed =
      common::SplitHostPort(Controller::AgentAddress(controller, /*port=*/1));
  if (!dialed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the address agents dial: ", dialed.status().message()));
  }
  o.hosts.push_back(dialed->first);
  for (absl::string_view name : absl::StrSplit(options.tls_names, ',', absl::SkipEmpty())) {
    o.hosts.emplace_back(name);
  }
  o.dir = options.tls_dir;
  if (o.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/stampede-tls-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot create ", pattern));
    }
    o.dir = pattern;
    *made_dir = pattern;
  }
  o.ca_validity = absl::Hours(24) * options.agent_ca_days;
  o.cert_validity = options.agent_cert_validity;
  o.ca_overlap = std::min(absl::Hours(24 * 30), o.ca_validity / 6);
  o.check_interval = std::clamp(absl::ToChronoMilliseconds(options.agent_cert_validity / 6),
                                std::chrono::milliseconds(1000), std::chrono::milliseconds(60000));
  return AgentTls::Start(api, std::move(o));
}

std::unique_ptr<kube::LeaderElector> MakeElector(const OperatorCommandOptions& options,
                                                 kube::Client* client, const std::string& identity,
                                                 StopOrLoss* stop) {
  kube::LeaderElector::Options lo;
  lo.lease_namespace = OperatorNamespace(options);
  lo.lease_name = options.lease_name;
  lo.identity = identity;
  lo.lease_duration = absl::ToChronoMilliseconds(options.lease_duration);
  lo.renew_deadline = absl::ToChronoMilliseconds(options.renew_deadline);
  lo.retry_period = absl::ToChronoMilliseconds(options.retry_period);
  lo.renew_period = std::min(lo.retry_period, lo.renew_deadline / 3);
  lo.on_lost = [stop] { stop->Lost(); };
  return std::make_unique<kube::LeaderElector>(client, lo);
}

// Waits to lead (with an elector), then reconciles until stopped; returns the exit code.
int LeadAndReconcile(const OperatorCommandOptions& options, const std::string& identity,
                     kube::Client* client, Controller* controller, kube::LeaderElector* elector,
                     StopOrLoss* stop, std::shared_ptr<const common::Policy> policy,
                     std::shared_ptr<PolicyRefusals> refusals, const AgentTls* tls) {
  if (elector != nullptr) {
    SLOG(kInfo) << "leader_election waiting lease=" << options.lease_name;
    if (!elector->WaitForLeadership(stop->stop())) {
      SLOG(kInfo) << "stopped before leading";
      return 0;
    }
    SLOG(kInfo) << "leader_election leading identity=" << identity;
  }
  ReconcilerOptions ro;
  ro.watch_namespaces = options.watch_namespaces;
  ro.identity = identity;
  ro.pods.default_image = options.agent_image;
  ro.pods.agent_command = options.agent_command;
  ro.pods.defaults = options.agent_defaults;
  ro.pods.reconnect_s = controller->run_defaults().agent_reconnect_s;
  ro.pods.create_concurrency = options.pod_create_concurrency;
  if (tls != nullptr) {
    ro.pods.tls = true;
    ro.agent_ca = [tls] { return tls->TrustBundle(); };
  }
  ro.status_interval = absl::ToChronoMilliseconds(options.status_interval);
  ro.unschedulable_timeout = absl::ToChronoSeconds(options.unschedulable_timeout);
  ro.watch_idle_timeout = absl::ToChronoMilliseconds(options.watch_idle_timeout);
  // A leader frozen past its renew deadline (a pause, a partition) writes nothing once it runs
  // again, even before its renew thread notices the loss and the process exits.
  if (elector != nullptr) ro.may_write = [elector] { return elector->HoldsLease(); };
  ro.run = controller->run_defaults();
  ro.policy = std::move(policy);
  ro.refusals = std::move(refusals);
  ReconcileLoop reconciler(client, controller, ro);
  if (!reconciler.Start(std::chrono::seconds(60))) {
    SLOG(kError) << "informers_not_synced waited_s=60";
    return 1;
  }
  SLOG(kInfo) << "reconciling";
  if (stop->Wait()) {
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
  return 0;
}

// A DNS-1123 label, as Kubernetes requires of a namespace's name.
bool IsNamespaceName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<OperatorCommandOptions> ParseOperatorFlags(const std::vector<std::string>& args) {
  OperatorCommandOptions options;
  RETURN_IF_ERROR(OperatorFlags(&options).Parse(args));
  if (!options.help && options.renew_deadline >= options.lease_duration) {
    return absl::InvalidArgumentError("--renew-deadline: must be shorter than --lease-duration");
  }
  if (!options.watch_namespace.empty()) {
    for (absl::string_view ns : absl::StrSplit(options.watch_namespace, ',')) {
      if (!IsNamespaceName(ns)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--namespace: \"", ns, "\" is not a namespace name"));
      }
      if (std::find(options.watch_namespaces.begin(), options.watch_namespaces.end(), ns) !=
          options.watch_namespaces.end()) {
        return absl::InvalidArgumentError(absl::StrCat("--namespace: \"", ns, "\" twice"));
      }
      options.watch_namespaces.emplace_back(ns);
    }
  }
  if (!options.help && !options.agent_defaults_file.empty()) {
    std::ifstream in(options.agent_defaults_file);
    if (!in.is_open()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--agent-defaults: cannot read ", options.agent_defaults_file));
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<AgentDefaults> defaults = ParseAgentDefaults(text.str());
    if (!defaults.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--agent-defaults: ", options.agent_defaults_file, ": ", defaults.status().message()));
    }
    options.agent_defaults = *std::move(defaults);
  }
  return options;
}

ControllerOptions ControllerOptionsFor(const OperatorCommandOptions& options) {
  ControllerOptions c;
  c.grpc_listen = options.grpc_listen;
  c.advertise_address = options.advertise_address;
  c.abort_runs_on_shutdown = false;
  c.ended_metrics_ttl = absl::ToChronoMilliseconds(options.finished_metrics_ttl);
  c.run_defaults.agent_reconnect_s =
      std::max<int>(1, absl::ToInt64Seconds(options.agent_reconnect));
  // Pods take longer to come up than local processes (scheduling, image pulls): 3 minutes
  // unless --agent-start-timeout says otherwise.
  c.run_defaults.start_timeout_s =
      static_cast<int>(std::max<int64_t>(1, absl::ToInt64Seconds(options.agent_start_timeout)));
  return c;
}

std::string OperatorUsage() {
  OperatorCommandOptions unused;
  return OperatorFlags(&unused).Usage();
}

int OperatorCommand(const std::vector<std::string>& args) {
  absl::StatusOr<OperatorCommandOptions> options = ParseOperatorFlags(args);
  if (!options.ok()) {
    std::cerr << "stampede operator: " << options.status().message() << "\n\n" << OperatorUsage();
    return 2;
  }
  if (options->help) {
    std::cout << OperatorUsage();
    return 0;
  }
  common::BlockStopSignals();
  absl::StatusOr<kube::Config> config = kube::LoadConfig(options->kubeconfig);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  absl::StatusOr<std::unique_ptr<kube::Client>> client = ConnectToCluster(*options, *config);
  if (!client.ok()) return Fail(std::string(client.status().message()));
  ControllerOptions controller_options = ControllerOptionsFor(*options);
  std::unique_ptr<AgentTls> tls;
  std::string made_tls_dir;
  if (!options->insecure_agents) {
    absl::StatusOr<std::unique_ptr<AgentTls>> started =
        StartAgentTls(*options, controller_options, client->get(), &made_tls_dir);
    if (!started.ok()) return Fail(absl::StrCat("agents' TLS: ", started.status().message()));
    tls = *std::move(started);
    controller_options.tls.key_file = tls->key_file();
    controller_options.tls.cert_file = tls->cert_file();
  }
  absl::StatusOr<std::unique_ptr<Controller>> controller = Controller::Create(controller_options);
  if (!controller.ok()) {
    return Fail(absl::StrCat("agents' gRPC listener: ", controller.status().message()));
  }
  const std::string identity = options->identity.empty() ? DefaultIdentity() : options->identity;
  StopOrLoss stop;
  std::unique_ptr<kube::LeaderElector> elector =
      options->leader_elect ? MakeElector(*options, client->get(), identity, &stop) : nullptr;

  HttpApiOptions http;
  http.listen = options->metrics_listen;
  http.read_only_api = options->ui;
  http.ready = [elector = elector.get()] { return elector == nullptr || elector->IsLeader(); };
  http.refusals = std::make_shared<PolicyRefusals>();
  absl::StatusOr<std::unique_ptr<HttpApi>> api = HttpApi::Start(http, controller->get());
  if (!api.ok()) return Fail(absl::StrCat("--metrics-listen: ", api.status().message()));
  absl::StatusOr<common::Policy> policy =
      OperatorPolicy(*options, *config, **controller, (*api)->port());
  if (!policy.ok()) {
    std::cerr << "stampede operator: " << policy.status().message() << "\n";
    return 2;
  }
  SLOG(kInfo) << "policy file=\"" << options->policy_file << "\" " << policy->Describe();
  common::WatchStopSignals([&stop](int sig, int count) {
    SLOG(kInfo) << "shutdown signal=" << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << " count=" << count;
    if (count > 1) _exit(1);
    stop.Stop();
  });
  SLOG(kInfo) << "operator identity=" << identity
              << " grpc_listen=" << (*controller)->listen_address()
              << " agents_dial=" << (*controller)->agent_address()
              << " metrics_port=" << (*api)->port() << " namespace="
              << (options->watch_namespaces.empty() ? "(all)" : options->watch_namespace)
              << " leader_elect=" << options->leader_elect
              << " agent_channel=" << (tls != nullptr ? "tls" : "plaintext");

  const int code = LeadAndReconcile(
      *options, identity, client->get(), controller->get(), elector.get(), &stop,
      std::make_shared<const common::Policy>(*std::move(policy)), http.refusals, tls.get());
  (*api)->Stop();
  if (tls != nullptr) tls->Stop();
  if (!made_tls_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(made_tls_dir, ignored);
  }
  SLOG(kInfo) << "stopped";
  return code;
}

}  // namespace stampede::controller
