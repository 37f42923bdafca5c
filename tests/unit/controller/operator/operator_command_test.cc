// `stampede operator` flags: defaults, each flag's bounds, the lease's cross-check, and errors
// that name the flag.
#include "controller/operator/operator_command.h"

#include <fstream>
#include <string>
#include <vector>

#include "controller/controller.h"
#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

TEST(OperatorFlagsTest, Defaults) {
  absl::StatusOr<OperatorCommandOptions> o = ParseOperatorFlags({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->kubeconfig, "");
  EXPECT_EQ(o->watch_namespace, "");
  EXPECT_EQ(o->grpc_listen, "0.0.0.0:7070");
  EXPECT_EQ(o->advertise_address, "");
  EXPECT_EQ(o->metrics_listen, "0.0.0.0:9090");
  EXPECT_FALSE(o->leader_elect);
  EXPECT_EQ(o->lease_namespace, "");
  EXPECT_EQ(o->lease_name, "stampede-operator");
  EXPECT_EQ(o->identity, "");
  EXPECT_EQ(o->agent_image, AgentPodOptions().default_image);
  EXPECT_EQ(o->agent_command, AgentPodOptions().agent_command);
  EXPECT_EQ(o->agent_reconnect, absl::Seconds(60));
  EXPECT_EQ(o->lease_duration, absl::Seconds(15));
  EXPECT_EQ(o->renew_deadline, absl::Seconds(10));
  EXPECT_EQ(o->retry_period, absl::Seconds(2));
  EXPECT_EQ(o->status_interval, absl::Seconds(2));
  EXPECT_EQ(o->finished_metrics_ttl, absl::Minutes(5));
  EXPECT_EQ(o->unschedulable_timeout, absl::Seconds(30));
  EXPECT_EQ(o->agent_start_timeout, absl::Minutes(3));
  EXPECT_EQ(ControllerOptionsFor(*o).run_defaults.start_timeout_s, 180);
  EXPECT_FALSE(o->insecure_agents);  // TLS unless asked otherwise
  EXPECT_EQ(o->agent_ca_secret, "stampede-agent-ca");
  EXPECT_EQ(o->tls_names, "");
  EXPECT_EQ(o->tls_dir, "");
  EXPECT_EQ(o->agent_cert_validity, absl::Hours(168));
  EXPECT_EQ(o->agent_ca_days, 365);
  EXPECT_EQ(o->watch_idle_timeout, absl::ZeroDuration());
  EXPECT_EQ(o->pod_create_concurrency, 16);
  EXPECT_FALSE(o->help);
}

TEST(OperatorFlagsTest, TheAgentsChannelAndWatchFlags) {
  absl::StatusOr<OperatorCommandOptions> o = ParseOperatorFlags(
      {"--insecure-agents", "--agent-ca-secret=ca", "--tls-san", "a.example,10.0.0.1",
       "--tls-dir=/run/tls", "--agent-cert-validity=1h", "--agent-ca-days", "30",
       "--watch-idle-timeout=4s", "--pod-create-concurrency", "4"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->insecure_agents);
  EXPECT_EQ(o->agent_ca_secret, "ca");
  EXPECT_EQ(o->tls_names, "a.example,10.0.0.1");
  EXPECT_EQ(o->tls_dir, "/run/tls");
  EXPECT_EQ(o->agent_cert_validity, absl::Hours(1));
  EXPECT_EQ(o->agent_ca_days, 30);
  EXPECT_EQ(o->watch_idle_timeout, absl::Seconds(4));
  EXPECT_EQ(o->pod_create_concurrency, 4);
  EXPECT_EQ(ParseOperatorFlags({"--agent-cert-validity=0s"}).status().message(),
            "--agent-cert-validity: \"0s\" is not a duration > 0");
  EXPECT_EQ(ParseOperatorFlags({"--watch-idle-timeout", "soon"}).status().message(),
            "--watch-idle-timeout: \"soon\" is not a duration (examples: 500ms, 10s, 1m30s, 2h)");
}

// As the e2e test and deploy/operator.yaml start it.
TEST(OperatorFlagsTest, EveryFlagInBothForms) {
  absl::StatusOr<OperatorCommandOptions> o =
      ParseOperatorFlags({"--kubeconfig",
                          "/k",
                          "--namespace=ns",
                          "--grpc-listen=127.0.0.1:7070",
                          "--advertise-address",
                          "svc.ns.svc:7070",
                          "--metrics-listen=127.0.0.1:0",
                          "--leader-elect",
                          "--lease-namespace=stampede-system",
                          "--lease-name",
                          "l",
                          "--identity=op-1",
                          "--agent-image",
                          "img:1",
                          "--agent-command=/bin/agent",
                          "--agent-reconnect=30s",
                          "--lease-duration=6s",
                          "--renew-deadline",
                          "4s",
                          "--retry-period=1s",
                          "--status-interval=500ms",
                          "--finished-metrics-ttl",
                          "90s",
                          "--unschedulable-timeout",
                          "3s",
                          "--agent-start-timeout=15m"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->kubeconfig, "/k");
  EXPECT_EQ(o->watch_namespace, "ns");
  EXPECT_EQ(o->watch_namespaces, std::vector<std::string>{"ns"});
  EXPECT_EQ(o->grpc_listen, "127.0.0.1:7070");
  EXPECT_EQ(o->advertise_address, "svc.ns.svc:7070");
  EXPECT_EQ(o->metrics_listen, "127.0.0.1:0");
  EXPECT_TRUE(o->leader_elect);
  EXPECT_EQ(o->lease_namespace, "stampede-system");
  EXPECT_EQ(o->lease_name, "l");
  EXPECT_EQ(o->identity, "op-1");
  EXPECT_EQ(o->agent_image, "img:1");
  EXPECT_EQ(o->agent_command, "/bin/agent");
  EXPECT_EQ(o->agent_reconnect, absl::Seconds(30));
  EXPECT_EQ(o->lease_duration, absl::Seconds(6));
  EXPECT_EQ(o->renew_deadline, absl::Seconds(4));
  EXPECT_EQ(o->retry_period, absl::Seconds(1));
  EXPECT_EQ(o->status_interval, absl::Milliseconds(500));
  EXPECT_EQ(o->finished_metrics_ttl, absl::Seconds(90));
  EXPECT_EQ(o->unschedulable_timeout, absl::Seconds(3));
  EXPECT_EQ(o->agent_start_timeout, absl::Minutes(15));
  EXPECT_EQ(ControllerOptionsFor(*o).run_defaults.start_timeout_s, 900);
  EXPECT_EQ(ParseOperatorFlags({"--finished-metrics-ttl=0"})->finished_metrics_ttl,
            absl::ZeroDuration());
}

TEST(OperatorFlagsTest, LeaderElectTakesTrueOrFalse) {
  EXPECT_TRUE(ParseOperatorFlags({"--leader-elect=true"})->leader_elect);
  EXPECT_FALSE(ParseOperatorFlags({"--leader-elect", "--leader-elect=false"})->leader_elect);
}

TEST(OperatorFlagsTest, Help) { EXPECT_TRUE(ParseOperatorFlags({"--help"})->help); }

TEST(OperatorFlagsTest, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--renew-deadline=15s"}, "--renew-deadline: must be shorter than --lease-duration"},
      {{"--lease-duration", "5s"}, "--renew-deadline: must be shorter than --lease-duration"},
      {{"--agent-reconnect", "2h"}, "--agent-reconnect: \"2h\" is not a duration > 0 and <= 1h"},
      {{"--agent-reconnect", "0s"}, "--agent-reconnect: \"0s\" is not a duration > 0 and <= 1h"},
      {{"--lease-duration=0"}, "--lease-duration: \"0\" is not a duration > 0"},
      {{"--retry-period", "2"}, "--retry-period: \"2\" has no unit (write 2s or 2ms)"},
      {{"--status-interval", "soon"},
       "--status-interval: \"soon\" is not a duration (examples: 500ms, 10s, 1m30s, 2h)"},
      {{"--unschedulable-timeout", "-1s"}, "--unschedulable-timeout: \"-1s\" is negative"},
      {{"--pod-create-concurrency=0"}, "--pod-create-concurrency: \"0\" is not a count in 1..200"},
      {{"--agent-start-timeout=48h"},
       "--agent-start-timeout: \"48h\" is not a duration > 0 and <= 24h"},
      {{"--finished-metrics-ttl=25h"},
       "--finished-metrics-ttl: \"25h\" is not a duration >= 0 and <= 24h"},
      {{"--grpc-listen", "7070"}, "--grpc-listen: \"7070\" is not host:port"},
      {{"--metrics-listen=x"}, "--metrics-listen: \"x\" is not host:port"},
      {{"--leader-elect=maybe"}, "--leader-elect: \"maybe\" is not true or false"},
      {{"--namespace"}, "--namespace: needs a value"},
      {{"--namespace=team-a,Team_B"}, "--namespace: \"Team_B\" is not a namespace name"},
      {{"--namespace=team-a,"}, "--namespace: \"\" is not a namespace name"},
      {{"--namespace=a,b,a"}, "--namespace: \"a\" twice"},
      {{"--bogus=1"}, "--bogus: unknown flag"},
      {{"stray"}, "stray: unknown argument"},
      {{"--agent-defaults=/nonexistent/defaults.json"},
       "--agent-defaults: cannot read /nonexistent/defaults.json"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<OperatorCommandOptions> o = ParseOperatorFlags(c.args);
    ASSERT_FALSE(o.ok()) << c.message;
    EXPECT_EQ(o.status().message(), c.message);
  }
}

TEST(OperatorFlagsTest, AgentDefaultsAreReadFromTheFile) {
  const std::string file = ::testing::TempDir() + "/agent-defaults.json";
  std::ofstream(file) << R"({"nodeSelector": {"pool": "load"}})";
  absl::StatusOr<OperatorCommandOptions> o = ParseOperatorFlags({"--agent-defaults", file});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->agent_defaults.node_selector["pool"], "load");

  std::ofstream(file) << R"({"nodeSelector": {"pool": 7}})";
  o = ParseOperatorFlags({"--agent-defaults", file});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(),
            "--agent-defaults: " + file + ": nodeSelector.pool: must be a string");
}

TEST(OperatorFlagsTest, NamespaceTakesAList) {
  absl::StatusOr<OperatorCommandOptions> o = ParseOperatorFlags({"--namespace", "team-a,team-b"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->watch_namespaces, (std::vector<std::string>{"team-a", "team-b"}));
  EXPECT_TRUE(ParseOperatorFlags({})->watch_namespaces.empty()) << "every namespace";
}

TEST(OperatorFlagsTest, UsageListsEveryFlag) {
  const std::string usage = OperatorUsage();
  for (const char* flag : {"--kubeconfig FILE",
                           "--namespace NS[,NS...]",
                           "--grpc-listen ADDR",
                           "--advertise-address HOST:PORT",
                           "--metrics-listen ADDR",
                           "--leader-elect",
                           "--lease-namespace NS",
                           "--lease-name NAME",
                           "--identity ID",
                           "--agent-image IMAGE",
                           "--agent-command PATH",
                           "--agent-defaults FILE",
                           "--agent-reconnect D",
                           "--lease-duration D",
                           "--renew-deadline D",
                           "--retry-period D",
                           "--status-interval D",
                           "--finished-metrics-ttl D",
                           "--unschedulable-timeout D",
                           "--agent-start-timeout D",
                           "--insecure-agents",
                           "--agent-ca-secret NAME",
                           "--tls-san NAME[,NAME...]",
                           "--tls-dir DIR",
                           "--agent-cert-validity D",
                           "--agent-ca-days N",
                           "--watch-idle-timeout D",
                           "SIGINT/SIGTERM"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace stampede::controller
