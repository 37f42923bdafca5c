// The install in deploy/ (kubectl apply -k deploy/): what it contains, least-privilege RBAC, and a
// controller Pod that meets the "restricted" Pod Security profile. `kubectl kustomize deploy/`
// and a real API server check the rest (the e2e suite).
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

const std::string kDeploy = STAMPEDE_DEPLOY_DIR;

std::vector<std::string> Strings(const YAML::Node& list) {
  std::vector<std::string> out;
  for (const YAML::Node& item : list) out.push_back(item.as<std::string>());
  return out;
}

// Every document of every resource the kustomization lists.
std::vector<YAML::Node> Install() {
  std::vector<YAML::Node> docs;
  for (const std::string& file :
       Strings(YAML::LoadFile(kDeploy + "/kustomization.yaml")["resources"])) {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(kDeploy + "/" + file)) docs.push_back(doc);
  }
  return docs;
}

YAML::Node Find(const std::string& kind, const std::string& name) {
  for (const YAML::Node& doc : Install()) {
    if (doc["kind"].as<std::string>() == kind &&
        doc["metadata"]["name"].as<std::string>() == name) {
      return doc;
    }
  }
  ADD_FAILURE() << "no " << kind << " " << name;
  return YAML::Node();
}

// "group/resource" -> verbs, for a Role or ClusterRole.
std::map<std::string, std::set<std::string>> Grants(const YAML::Node& role) {
  std::map<std::string, std::set<std::string>> grants;
  for (const YAML::Node& rule : role["rules"]) {
    for (const std::string& group : Strings(rule["apiGroups"])) {
      for (const std::string& resource : Strings(rule["resources"])) {
        for (const std::string& verb : Strings(rule["verbs"])) {
          grants[group + "/" + resource].insert(verb);
        }
      }
    }
  }
  return grants;
}

TEST(DeployTest, KustomizationInstallsTheOperatorButNoExamples) {
  const YAML::Node k = YAML::LoadFile(kDeploy + "/kustomization.yaml");
  EXPECT_THAT(Strings(k["resources"]),
              ElementsAre("namespace.yaml", "crd/loadtests.stampede.dev.yaml", "rbac.yaml",
                          "operator.yaml"));
  std::multiset<std::string> kinds;
  for (const YAML::Node& doc : Install()) {
    kinds.insert(doc["kind"].as<std::string>());
    const std::string kind = doc["kind"].as<std::string>();
    const bool cluster_scoped = kind == "Namespace" || kind == "CustomResourceDefinition" ||
                                kind == "ClusterRole" || kind == "ClusterRoleBinding";
    if (!cluster_scoped) {
      EXPECT_EQ(doc["metadata"]["namespace"].as<std::string>(), "stampede-system") << kind;
    }
  }
  EXPECT_EQ(kinds,
            (std::multiset<std::string>{"Namespace", "CustomResourceDefinition", "ServiceAccount",
                                        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                        "Role", "RoleBinding", "Deployment", "Service"}));
}

TEST(DeployTest, OperatorRbacIsLeastPrivilege) {
  using Verbs = std::set<std::string>;
  EXPECT_EQ(Grants(Find("ClusterRole", "stampede-operator")),
            (std::map<std::string, Verbs>{
                {"stampede.dev/loadtests", {"get", "list", "watch", "update", "patch"}},
                {"stampede.dev/loadtests/status", {"get", "update", "patch"}},
                {"stampede.dev/loadtests/finalizers", {"update"}},
                {"/pods", {"get", "list", "watch", "create", "delete"}},
                // No list or watch: they would reveal every Secret in the cluster.
                {"/secrets", {"create", "get", "delete"}},
                {"/configmaps", {"get"}},
                {"/events", {"create", "patch"}},
            }));
  const YAML::Node election = Find("Role", "stampede-operator-leader-election");
  EXPECT_EQ(election["metadata"]["namespace"].as<std::string>(), "stampede-system");
  EXPECT_EQ(
      Grants(election),
      (std::map<std::string, Verbs>{{"coordination.k8s.io/leases", {"get", "create", "update"}}}));
  // The agents' CA: any Secret may be created (create takes no resourceNames), but only that one
  // read and rewritten.
  const YAML::Node ca = Find("Role", "stampede-operator-agent-ca");
  EXPECT_EQ(ca["metadata"]["namespace"].as<std::string>(), "stampede-system");
  ASSERT_EQ(ca["rules"].size(), 2u);
  EXPECT_THAT(Strings(ca["rules"][0]["resources"]), ElementsAre("secrets"));
  EXPECT_THAT(Strings(ca["rules"][0]["verbs"]), ElementsAre("create"));
  EXPECT_FALSE(ca["rules"][0]["resourceNames"].IsDefined());
  EXPECT_THAT(Strings(ca["rules"][1]["resources"]), ElementsAre("secrets"));
  EXPECT_THAT(Strings(ca["rules"][1]["resourceNames"]), ElementsAre("stampede-agent-ca"));
  EXPECT_THAT(Strings(ca["rules"][1]["verbs"]), ElementsAre("get", "update"));
  for (const auto& [kind, name] : std::vector<std::pair<std::string, std::string>>{
           {"ClusterRoleBinding", "stampede-operator"},
           {"RoleBinding", "stampede-operator-leader-election"},
           {"RoleBinding", "stampede-operator-agent-ca"}}) {
    const YAML::Node binding = Find(kind, name);
    ASSERT_EQ(binding["subjects"].size(), 1u) << kind;
    EXPECT_EQ(binding["subjects"][0]["kind"].as<std::string>(), "ServiceAccount");
    EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(), "stampede-operator");
    EXPECT_EQ(binding["subjects"][0]["namespace"].as<std::string>(), "stampede-system");
  }
}

TEST(DeployTest, ControllerPodIsRestricted) {
  const YAML::Node deployment = Find("Deployment", "stampede-controller");
  EXPECT_EQ(deployment["spec"]["replicas"].as<int>(), 1);
  const YAML::Node pod = deployment["spec"]["template"]["spec"];
  EXPECT_EQ(pod["serviceAccountName"].as<std::string>(), "stampede-operator");
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"].as<std::string>(), "RuntimeDefault");
  ASSERT_EQ(pod["containers"].size(), 1u);
  const YAML::Node c = pod["containers"][0];
  EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"].as<bool>(true));
  EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  EXPECT_THAT(Strings(c["securityContext"]["capabilities"]["drop"]), Contains("ALL"));
  EXPECT_FALSE(c["securityContext"]["capabilities"]["add"].IsDefined());
  // The Lease and the agents' address are in the operator's own namespace.
  EXPECT_THAT(
      Strings(c["args"]),
      ElementsAre("operator", "--grpc-listen=0.0.0.0:7070",
                  "--advertise-address=stampede-controller.stampede-system.svc:7070",
                  "--metrics-listen=0.0.0.0:9090",
                  "--agent-image=ghcr.io/stampede-dev/stampede-agent:0.1.0",
                  "--agent-reconnect=60s", "--agent-ca-secret=stampede-agent-ca", "--leader-elect",
                  "--lease-namespace=stampede-system", "--lease-name=stampede-operator",
                  "--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s"));
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["port"].as<std::string>(), "metrics");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["port"].as<std::string>(), "metrics");
  EXPECT_TRUE(c["resources"]["requests"].IsMap());
  EXPECT_TRUE(c["resources"]["limits"].IsMap());
  for (const YAML::Node& volume : pod["volumes"]) {
    EXPECT_TRUE(volume["emptyDir"].IsDefined()) << "restricted allows only a few volume types";
  }

  // The Service reaches this Pod on both named ports.
  std::map<std::string, int> container_ports;
  for (const YAML::Node& p : c["ports"]) {
    container_ports[p["name"].as<std::string>()] = p["containerPort"].as<int>();
  }
  EXPECT_EQ(container_ports, (std::map<std::string, int>{{"grpc", 7070}, {"metrics", 9090}}));
  const YAML::Node service = Find("Service", "stampede-controller");
  std::map<std::string, int> service_ports;
  for (const YAML::Node& p : service["spec"]["ports"]) {
    service_ports[p["targetPort"].as<std::string>()] = p["port"].as<int>();
  }
  EXPECT_EQ(service_ports, container_ports);
  for (const auto& label : service["spec"]["selector"]) {
    EXPECT_EQ(deployment["spec"]["template"]["metadata"]["labels"][label.first.as<std::string>()]
                  .as<std::string>(""),
              label.second.as<std::string>());
  }
}

YAML::Node LoadPrometheus(const std::string& file) {
  return YAML::LoadFile(kDeploy + "/prometheus/" + file);
}

std::string Emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

// kubectl apply -k deploy/prometheus: a ServiceMonitor that finds deploy/'s Service and a
// PrometheusRule with exactly the alerts of the rule file promtool tests.
TEST(DeployTest, PrometheusOperatorObjectsScrapeTheServiceAndCarryTheTestedRules) {
  EXPECT_THAT(Strings(LoadPrometheus("kustomization.yaml")["resources"]),
              ElementsAre("servicemonitor.yaml", "prometheusrule.yaml"));
  const YAML::Node monitor = LoadPrometheus("servicemonitor.yaml");
  EXPECT_EQ(monitor["kind"].as<std::string>(), "ServiceMonitor");
  const YAML::Node service = Find("Service", "stampede-controller");
  EXPECT_EQ(monitor["metadata"]["namespace"].as<std::string>(),
            service["metadata"]["namespace"].as<std::string>());
  for (const auto& entry : monitor["spec"]["selector"]["matchLabels"]) {
    const std::string key = entry.first.as<std::string>();
    ASSERT_TRUE(service["metadata"]["labels"][key]) << key;
    EXPECT_EQ(service["metadata"]["labels"][key].as<std::string>(), entry.second.as<std::string>())
        << key;
  }
  std::vector<std::string> ports;
  for (const YAML::Node& p : service["spec"]["ports"]) ports.push_back(p["name"].as<std::string>());
  const YAML::Node endpoint = monitor["spec"]["endpoints"][0];
  EXPECT_THAT(ports, Contains(endpoint["port"].as<std::string>()));
  EXPECT_TRUE(endpoint["honorLabels"].as<bool>()) << "our series carry their own namespace";

  const YAML::Node rule = LoadPrometheus("prometheusrule.yaml");
  EXPECT_EQ(rule["kind"].as<std::string>(), "PrometheusRule");
  EXPECT_EQ(Emit(rule["spec"]["groups"]), Emit(LoadPrometheus("stampede-rules.yaml")["groups"]));
}

}  // namespace
}  // namespace stampede
