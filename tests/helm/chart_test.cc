// The Helm chart (helm/stampede), checked with the real Helm 3.17.1 binary that scripts/helm-fetch
// installs: lint, what each value changes in the rendered objects, the schema's refusals, the CRD
// being deploy/'s, `kubectl kustomize deploy/` giving the same objects as the default install, and
// the README's values table listing exactly the chart's values.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/process.h"
#include "yaml-cpp/yaml.h"

namespace stampede::testing {
namespace {

using nlohmann::json;

const std::string kSource = STAMPEDE_SOURCE_DIR;
const std::string kChart = kSource + "/helm/stampede";

// $STAMPEDE_K8S_BIN's kubectl (scripts/test sets it), else scripts/k8s-build's default folder.
std::string KubectlBinary() {
  const char* dir = std::getenv("STAMPEDE_K8S_BIN");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/var/cache/stampede/k8s/bin") +
         "/kubectl";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandOutput RunCommand(std::vector<std::string> argv) {
  return RunToEnd(std::move(argv), std::chrono::seconds(60));
}

// yaml-cpp's scalars carry no type: every scalar becomes a string, on both sides of a comparison.
json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = ToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const auto& item : node) array.push_back(ToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar:
      return node.as<std::string>();
    default:
      return nullptr;
  }
}

// Objects of a multi-document YAML stream, keyed "Kind namespace/name".
using Objects = std::map<std::string, json>;

Objects ParseObjects(const std::string& stream) {
  Objects objects;
  for (const YAML::Node& doc : YAML::LoadAll(stream)) {
    if (!doc.IsMap()) continue;
    json object = ToJson(doc);
    const json& meta = object["metadata"];
    const std::string key =
        absl::StrCat(object["kind"].get<std::string>(), " ", meta.value("namespace", ""), "/",
                     meta["name"].get<std::string>());
    EXPECT_EQ(objects.count(key), 0u) << "rendered twice: " << key;
    objects[key] = std::move(object);
  }
  return objects;
}

// values_files are under helm/stampede/ci/; sets are --set a=b.
CommandOutput HelmTemplate(const std::vector<std::string>& values_files,
                           const std::vector<std::string>& sets,
                           const std::string& ns = "stampede-system",
                           const std::string& release = "stampede") {
  std::vector<std::string> argv = {HelmBinary(), "template", release, kChart, "--namespace", ns};
  for (const std::string& f : values_files) {
    argv.push_back("--values");
    argv.push_back(kChart + "/ci/" + f);
  }
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  return RunCommand(argv);
}

Objects Rendered(const std::vector<std::string>& values_files = {},
                 const std::vector<std::string>& sets = {},
                 const std::string& ns = "stampede-system",
                 const std::string& release = "stampede") {
  CommandOutput result = HelmTemplate(values_files, sets, ns, release);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return ParseObjects(result.out);
}

std::set<std::string> Kinds(const Objects& objects) {
  std::set<std::string> kinds;
  for (const auto& [key, object] : objects) kinds.insert(object["kind"].get<std::string>());
  return kinds;
}

const json& Container(const json& deployment) {
  return deployment["spec"]["template"]["spec"]["containers"][0];
}

std::vector<std::string> Args(const Objects& objects, const std::string& key) {
  std::vector<std::string> args;
  for (const json& a : Container(objects.at(key))["args"]) args.push_back(a.get<std::string>());
  return args;
}

bool HasArg(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

bool HasArgPrefix(const std::vector<std::string>& args, const std::string& prefix) {
  return std::any_of(args.begin(), args.end(),
                     [&](const std::string& a) { return absl::StartsWith(a, prefix); });
}

class HelmChart : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(HelmBinary()).good()) {
      GTEST_FAIL() << HelmBinary()
                   << " is missing: run scripts/helm-fetch, or point STAMPEDE_HELM at helm";
    }
  }
};

TEST_F(HelmChart, LintsStrictlyWithEveryValueSet) {
  for (const std::string values :
       {"", "namespaced-values.yaml", "ha-values.yaml", "custom-values.yaml"}) {
    std::vector<std::string> argv = {HelmBinary(), "lint", "--strict", kChart};
    if (!values.empty()) argv.insert(argv.end(), {"--values", kChart + "/ci/" + values});
    CommandOutput r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 0) << values << "\n" << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.out, "0 chart(s) failed")) << r.out;
  }
}

TEST_F(HelmChart, DefaultsInstallTheOperatorInTheReleaseNamespaceAndNoNamespace) {
  Objects objects = Rendered({}, {}, "perf-tools");
  EXPECT_EQ(Kinds(objects), (std::set<std::string>{"ClusterRole", "ClusterRoleBinding",
                                                   "CustomResourceDefinition", "Deployment", "Role",
                                                   "RoleBinding", "Service", "ServiceAccount"}));
  for (const auto& [key, object] : objects) {
    const std::string kind = object["kind"];
    if (kind == "ClusterRole" || kind == "ClusterRoleBinding" || kind == "CustomResourceDefinition")
      continue;
    EXPECT_EQ(object["metadata"].value("namespace", ""), "perf-tools") << key;
    EXPECT_EQ(object["metadata"]["labels"]["app.kubernetes.io/version"], "0.1.0") << key;
  }
  const std::string deployment = "Deployment perf-tools/stampede-controller";
  const std::vector<std::string> args = Args(objects, deployment);
  EXPECT_TRUE(HasArg(args, "--advertise-address=stampede-controller.perf-tools.svc:7070"));
  EXPECT_TRUE(HasArg(args, "--lease-namespace=perf-tools"));
  EXPECT_TRUE(HasArg(args, "--lease-name=stampede-operator"));
  EXPECT_TRUE(HasArg(args, "--leader-elect"));
  EXPECT_TRUE(HasArg(args, "--agent-image=ghcr.io/stampede-dev/stampede-agent:0.1.0"));
  EXPECT_FALSE(HasArgPrefix(args, "--namespace"));
  const json& container = Container(objects.at(deployment));
  // The tag follows appVersion; the restricted profile holds by default.
  EXPECT_EQ(container["image"], "ghcr.io/stampede-dev/stampede:0.1.0");
  EXPECT_EQ(container["securityContext"]["readOnlyRootFilesystem"], "true");
  EXPECT_EQ(container["securityContext"]["allowPrivilegeEscalation"], "false");
  EXPECT_EQ(container["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
  const json& pod = objects.at(deployment)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["securityContext"]["runAsUser"], "65532");
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], "true");
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  EXPECT_EQ(pod["serviceAccountName"], "stampede-operator");
  const json& binding = objects.at("ClusterRoleBinding /stampede-operator");
  EXPECT_EQ(binding["subjects"][0]["namespace"], "perf-tools");
  // Another release name gives other object names, so two releases do not collide.
  Objects other = Rendered({}, {}, "perf-tools", "perf");
  EXPECT_EQ(other.count("Deployment perf-tools/perf-stampede-controller"), 1u);
  EXPECT_EQ(other.count("ClusterRole /perf-stampede-operator"), 1u);
}

TEST_F(HelmChart, TheCrdIsDeploysAndKeptOnUninstallUnlessAskedNotTo) {
  const std::string deploy_crd = ReadFile(kSource + "/deploy/crd/loadtests.stampede.dev.yaml");
  ASSERT_FALSE(deploy_crd.empty());
  EXPECT_EQ(ReadFile(kChart + "/files/loadtests.stampede.dev.yaml"), deploy_crd)
      << "the chart's CRD differs from deploy/crd/: run the update-crd target";
  const std::string key = "CustomResourceDefinition /loadtests.stampede.dev";
  Objects objects = Rendered();
  json rendered = objects.at(key);
  EXPECT_EQ(rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
  rendered["metadata"].erase("annotations");
  rendered["metadata"].erase("labels");
  EXPECT_EQ(rendered, ToJson(YAML::Load(deploy_crd)));

  Objects not_kept = Rendered({}, {"crds.keep=false"});
  EXPECT_FALSE(not_kept.at(key)["metadata"].contains("annotations"));
  Objects none = Rendered({}, {"crds.install=false"});
  EXPECT_EQ(none.count(key), 0u);
}

TEST_F(HelmChart, WatchNamespacesGivesRolesThereAndTheSameListToTheOperator) {
  Objects objects = Rendered({"namespaced-values.yaml"});
  EXPECT_EQ(Kinds(objects).count("ClusterRole"), 0u);
  EXPECT_EQ(Kinds(objects).count("ClusterRoleBinding"), 0u);
  const json cluster_rules = Rendered().at("ClusterRole /stampede-operator")["rules"];
  for (const std::string ns : {"team-a", "team-b"}) {
    const std::string role = "Role " + ns + "/stampede-operator";
    ASSERT_EQ(objects.count(role), 1u) << role;
    EXPECT_EQ(objects.at(role)["rules"], cluster_rules) << "the same permissions, namespaced";
    const json& binding = objects.at("RoleBinding " + ns + "/stampede-operator");
    EXPECT_EQ(binding["subjects"][0]["namespace"], "stampede-system");
    EXPECT_EQ(binding["roleRef"]["kind"], "Role");
  }
  const std::vector<std::string> args =
      Args(objects, "Deployment stampede-system/stampede-controller");
  EXPECT_TRUE(HasArg(args, "--namespace=team-a,team-b"));
  // The leader-election Role stays in the release namespace.
  EXPECT_EQ(objects.count("Role stampede-system/stampede-operator-leader-election"), 1u);
}

TEST_F(HelmChart, TwoReplicasElectALeaderAndKeepOneThroughADrain) {
  Objects objects = Rendered({"ha-values.yaml"});
  const std::string deployment = "Deployment stampede-system/stampede-controller";
  EXPECT_EQ(objects.at(deployment)["spec"]["replicas"], "2");
  const std::vector<std::string> args = Args(objects, deployment);
  EXPECT_TRUE(HasArg(args, "--leader-elect"));
  EXPECT_TRUE(HasArg(args, "--lease-name=stampede-leader"));
  EXPECT_TRUE(HasArg(args, "--lease-duration=20s"));
  EXPECT_TRUE(HasArg(args, "--renew-deadline=12s"));
  EXPECT_TRUE(HasArg(args, "--retry-period=3s"));
  const json& pdb = objects.at("PodDisruptionBudget stampede-system/stampede-controller");
  EXPECT_EQ(pdb["spec"]["maxUnavailable"], "1");
  EXPECT_EQ(pdb["spec"]["selector"]["matchLabels"],
            objects.at(deployment)["spec"]["selector"]["matchLabels"]);
  Objects min_available =
      Rendered({}, {"podDisruptionBudget.enabled=true", "podDisruptionBudget.minAvailable=1"});
  const json& spec =
      min_available.at("PodDisruptionBudget stampede-system/stampede-controller")["spec"];
  EXPECT_EQ(spec["minAvailable"], "1");
  EXPECT_FALSE(spec.contains("maxUnavailable"));
  // Without leader election there is no Lease to hold, and no Role for one.
  Objects single = Rendered({}, {"leaderElection.enabled=false"});
  EXPECT_FALSE(HasArg(Args(single, deployment), "--leader-elect"));
  EXPECT_EQ(single.count("Role stampede-system/stampede-operator-leader-election"), 0u);
}

TEST_F(HelmChart, CustomImagesAndSchedulingReachTheObjects) {
  Objects objects = Rendered({"custom-values.yaml"}, {}, "perf");
  const std::string deployment = "Deployment perf/loadgen-controller";
  ASSERT_EQ(objects.count(deployment), 1u);
  const json& pod = objects.at(deployment)["spec"]["template"]["spec"];
  const json& container = Container(objects.at(deployment));
  EXPECT_EQ(container["image"],
            "registry.example.test:5000/perf/stampede:0.1.0-rc1@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(container["imagePullPolicy"], "Always");
  EXPECT_EQ(pod["imagePullSecrets"], json::parse(R"([{"name":"regcred"}])"));
  EXPECT_EQ(pod["nodeSelector"]["kubernetes.io/os"], "linux");
  EXPECT_EQ(pod["tolerations"][0]["key"], "dedicated");
  EXPECT_EQ(pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
               ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
            json::array({"amd64"}));
  EXPECT_EQ(pod["topologySpreadConstraints"][0]["topologyKey"], "kubernetes.io/hostname");
  EXPECT_EQ(pod["priorityClassName"], "system-cluster-critical");
  EXPECT_EQ(pod["serviceAccountName"], "perf-operator");
  EXPECT_EQ(objects.count("ServiceAccount perf/perf-operator"), 0u)
      << "serviceAccount.create=false";
  EXPECT_EQ(objects.at("ClusterRoleBinding /loadgen-operator")["subjects"][0]["name"],
            "perf-operator");
  EXPECT_EQ(container["env"], json::parse(R"([{"name":"TZ","value":"UTC"}])"));
  const json& template_meta = objects.at(deployment)["spec"]["template"]["metadata"];
  EXPECT_EQ(template_meta["labels"]["sidecar.example.test/inject"], "false");
  EXPECT_EQ(template_meta["annotations"]["example.test/owner"], "perf");
  for (const auto& [key, object] : objects) {
    EXPECT_EQ(object["metadata"]["labels"]["team"], "perf") << key << ": commonLabels";
  }

  const std::vector<std::string> args = Args(objects, deployment);
  EXPECT_TRUE(
      HasArg(args, "--agent-image=registry.example.test:5000/perf/stampede-agent:0.1.0-rc1"));
  EXPECT_TRUE(HasArg(args, "--agent-reconnect=2m"));
  EXPECT_TRUE(HasArg(args, "--advertise-address=loadgen-controller.perf.svc:7070"));
  EXPECT_TRUE(HasArg(args, "--status-interval=5s")) << "extraArgs";

  // The agent defaults: a ConfigMap the operator reads, and a Pod template that changes with it.
  const std::string defaults = "ConfigMap perf/loadgen-agent-defaults";
  ASSERT_EQ(objects.count(defaults), 1u);
  const json agent_defaults =
      json::parse(objects.at(defaults)["data"]["agent-defaults.json"].get<std::string>());
  EXPECT_EQ(agent_defaults, json::parse(R"({"resources": {"requests": {"cpu": "500m",
      "memory": "256Mi"}}, "nodeSelector": {"pool": "load"},
      "tolerations": [{"key": "load", "operator": "Exists", "effect": "NoSchedule"}]})"));
  EXPECT_TRUE(HasArg(args, "--agent-defaults=/etc/stampede/agent-defaults.json"));
  EXPECT_EQ(pod["volumes"][1]["configMap"]["name"], "loadgen-agent-defaults");
  EXPECT_EQ(container["volumeMounts"][1]["mountPath"], "/etc/stampede");
  const json& template_annotations =
      objects.at(deployment)["spec"]["template"]["metadata"]["annotations"];
  EXPECT_EQ(template_annotations["checksum/agent-defaults"].get<std::string>().size(), 64u);
  Objects changed = Rendered({"custom-values.yaml"}, {"agent.nodeSelector.pool=other"}, "perf");
  EXPECT_NE(
      changed.at(
          deployment)["spec"]["template"]["metadata"]["annotations"]["checksum/agent-defaults"],
      template_annotations["checksum/agent-defaults"]);
  // None by default.
  EXPECT_EQ(Rendered().count("ConfigMap stampede-system/stampede-agent-defaults"), 0u);

  // An address of one's own replaces the Service's name, and nothing else.
  Objects own = Rendered({}, {"service.advertiseAddress=10.0.0.5:7070"});
  const std::vector<std::string> own_args =
      Args(own, "Deployment stampede-system/stampede-controller");
  EXPECT_TRUE(HasArg(own_args, "--advertise-address=10.0.0.5:7070"));
  EXPECT_TRUE(HasArg(own_args, "--grpc-listen=0.0.0.0:7070"));
}

TEST_F(HelmChart, ThePrometheusRuleCarriesTheAlertsOfDeployPrometheus) {
  for (const std::string file : {"stampede-rules.yaml", "stampede-target-rules.yaml"}) {
    EXPECT_EQ(ReadFile(kChart + "/files/prometheus/" + file),
              ReadFile(kSource + "/deploy/prometheus/" + file))
        << "copy deploy/prometheus/" << file << " to the chart's files/prometheus/";
  }
  EXPECT_EQ(Kinds(Rendered()).count("PrometheusRule"), 0u) << "off by default";
  auto alerts = [](const json& rule) {
    std::vector<std::string> names;
    for (const json& group : rule["spec"]["groups"]) {
      for (const json& r : group["rules"]) names.push_back(r["alert"]);
    }
    return names;
  };
  Objects objects = Rendered(
      {}, {"metrics.prometheusRule.enabled=true", "metrics.prometheusRule.labels.release=prom"},
      "perf-tools", "perf");
  const json& rule = objects.at("PrometheusRule perf-tools/perf-stampede");
  EXPECT_EQ(rule["metadata"]["labels"]["release"], "prom");
  EXPECT_EQ(alerts(rule), (std::vector<std::string>{
                              "StampedeOperatorDown", "StampedeLoadTestStuck", "StampedeAgentsLost",
                              "StampedeGeneratorSaturated", "StampedeRateBelowTarget"}));
  // The operator's job is this release's Service.
  EXPECT_EQ(rule["spec"]["groups"][0]["rules"][0]["expr"],
            "absent(up{job=\"perf-stampede-controller\"} == 1)");
  EXPECT_EQ(rule["spec"]["groups"][0]["rules"][1]["annotations"]["summary"],
            "LoadTest {{ $labels.namespace }}/{{ $labels.loadtest }} has not started for 5 minutes")
      << "Prometheus' templates pass through Helm untouched";
  Objects with_target = Rendered(
      {}, {"metrics.prometheusRule.enabled=true", "metrics.prometheusRule.targetAlerts=true"});
  const std::vector<std::string> all =
      alerts(with_target.at("PrometheusRule stampede-system/stampede"));
  EXPECT_EQ(all.size(), 7u);
  EXPECT_EQ(all.back(), "StampedeTargetP99High");
}

TEST_F(HelmChart, OptionalMonitoringObjectsAreOffUntilEnabled) {
  Objects objects = Rendered(
      {}, {"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom",
           "metrics.serviceMonitor.interval=30s"});
  const json& monitor = objects.at("ServiceMonitor stampede-system/stampede-controller");
  EXPECT_EQ(monitor["metadata"]["labels"]["release"], "prom");
  EXPECT_EQ(monitor["spec"]["endpoints"][0]["port"], "metrics");
  EXPECT_EQ(monitor["spec"]["endpoints"][0]["interval"], "30s");
  // It selects the controller's Service, whose labels are the Pods' selector labels.
  EXPECT_EQ(
      monitor["spec"]["selector"]["matchLabels"],
      objects.at(
          "Deployment stampede-system/stampede-controller")["spec"]["selector"]["matchLabels"]);
  EXPECT_EQ(monitor["spec"]["namespaceSelector"]["matchNames"], json::array({"stampede-system"}));
  EXPECT_EQ(monitor["spec"]["endpoints"][0]["honorLabels"], "true") << "our namespace label wins";
  EXPECT_EQ(Rendered().count("ConfigMap stampede-system/stampede-dashboard"), 0u)
      << "off by default";
}

TEST_F(HelmChart, TheDashboardConfigMapIsWhatTheGrafanaSidecarLoads) {
  Objects objects =
      Rendered({}, {"grafanaDashboard.enabled=true", "grafanaDashboard.labels.team=perf"},
               "perf-tools", "perf");
  const json& map = objects.at("ConfigMap perf-tools/perf-stampede-dashboard");
  EXPECT_EQ(map["metadata"]["labels"]["grafana_dashboard"], "1");
  EXPECT_EQ(map["metadata"]["labels"]["team"], "perf");
  EXPECT_FALSE(map["metadata"].contains("annotations")) << "no folder: the sidecar's default";
  EXPECT_EQ(map["data"]["stampede.json"], ReadFile(kSource + "/deploy/grafana/stampede.json"));
  EXPECT_TRUE(json::parse(map["data"]["stampede.json"].get<std::string>())["panels"].is_array());

  Objects foldered =
      Rendered({}, {"grafanaDashboard.enabled=true", "grafanaDashboard.folder=Load tests",
                    "grafanaDashboard.folderAnnotation=k8s-sidecar-target-directory",
                    "grafanaDashboard.annotations.owner=perf"});
  const json& annotations =
      foldered.at("ConfigMap stampede-system/stampede-dashboard")["metadata"]["annotations"];
  EXPECT_EQ(annotations["k8s-sidecar-target-directory"], "Load tests");
  EXPECT_EQ(annotations["owner"], "perf");
}

// The policy values become the operator's --policy file, which the operator's own parser takes
// (stampede run reads the same format and refuses with the rule's words).
TEST_F(HelmChart, ThePolicyValuesBecomeTheOperatorsPolicyFile) {
  Objects objects = Rendered({"custom-values.yaml"}, {}, "perf");
  const std::string deployment = "Deployment perf/loadgen-controller";
  const std::string config_map = "ConfigMap perf/loadgen-policy";
  ASSERT_EQ(objects.count(config_map), 1u);
  EXPECT_TRUE(HasArg(Args(objects, deployment), "--policy=/etc/stampede-policy/policy.yaml"));
  const json& pod = objects.at(deployment)["spec"]["template"]["spec"];
  bool mounted = false;
  for (const json& v : pod["volumes"]) {
    mounted |= v["name"] == "policy" && v["configMap"]["name"] == "loadgen-policy";
  }
  EXPECT_TRUE(mounted) << pod["volumes"].dump();
  const std::string checksum =
      objects.at(deployment)["spec"]["template"]["metadata"]["annotations"].value("checksum/policy",
                                                                                  "");
  EXPECT_EQ(checksum.size(), 64u);
  Objects changed = Rendered({"custom-values.yaml"}, {"policy.rules[0].limits.agents=20"}, "perf");
  EXPECT_NE(changed.at(deployment)["spec"]["template"]["metadata"]["annotations"].value(
                "checksum/policy", ""),
            checksum)
      << "a new policy restarts the operator";

  const std::string dir = MakeTempDir();
  std::ofstream(dir + "/policy.yaml")
      << objects.at(config_map)["data"]["policy.yaml"].get<std::string>();
  const auto refusal = [&](const std::string& ns, int agents) {
    std::ofstream(dir + "/test.yaml")
        << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: t, namespace: "
        << ns << "}\nspec:\n  target: {url: \"http://cart.shop.svc.cluster.local\"}\n"
        << "  load: {users: 1}\n  duration: 1s\n  agents: " << agents << "\n";
    return RunCommand(
        {ControllerBinary(), "run", dir + "/test.yaml", "--policy", dir + "/policy.yaml"});
  };
  CommandOutput r = refusal("shop-dev", 11);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "spec.agents: 11 agents; at most 10 allowed (rule shop)"))
      << r.err;
  r = refusal("payments", 1);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "no rule of the policy covers namespace \"payments\""))
      << r.err;
  (void)!std::system(("rm -rf '" + dir + "'").c_str());

  // No rules, no file: the operator's built-in denials only.
  Objects defaults = Rendered();
  EXPECT_EQ(defaults.count("ConfigMap stampede-system/stampede-policy"), 0u);
  EXPECT_FALSE(
      HasArgPrefix(Args(defaults, "Deployment stampede-system/stampede-controller"), "--policy"));
}

TEST_F(HelmChart, BadValuesAreRefusedNamingTheValue) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"replicaCount=2", "leaderElection.enabled=false"}, "leaderElection.enabled"},
      {{"grafanaDashboard.folderAnnotation=has space"}, "grafanaDashboard.folderAnnotation"},
      {{"image.pullPolicy=Sometimes"}, "image.pullPolicy"},
      {{"image.digest=latest"}, "image.digest"},
      {{"agent.image.tag=has space"}, "agent.image.tag"},
      {{"watchNamespaces[0]=Team_A"}, "watchNamespaces.0"},
      {{"watchNamespaces={a,b,a}"}, "watchNamespaces"},
      {{"service.grpcPort=70000"}, "service.grpcPort"},
      {{"leaderElection.leaseDuration=15"}, "leaderElection.leaseDuration"},
      {{"agent.reconnect=soon"}, "agent.reconnect"},
      {{"imagePullSecret[0].name=regcred"}, "imagePullSecret"},
      {{"extraArgs[0]=status-interval=5s"}, "extraArgs.0"},
      {{"serviceAccount.create=false"}, "serviceAccount.name"},
      {{"crds.keep=maybe"}, "crds.keep"},
      {{"service.advertiseAddress=http://10.0.0.5:7070"}, "service.advertiseAddress"},
      {{"agent.tolerations=dedicated"}, "agent.tolerations"},
      {{"policy.rules[0].name=a", "policy.rules[0].limits.agents=0"},
       "policy.rules.0.limits.agents"},
      {{"policy.rules[0].hosts[0]=x"}, "name"},
      {{"policy.rules[0].name=a", "policy.rules[0].limits.duration=30"},
       "policy.rules.0.limits.duration"},
  };
  for (const auto& [sets, field] : cases) {
    CommandOutput r = HelmTemplate({}, sets);
    EXPECT_NE(r.exit_code, 0) << absl::StrJoin(sets, " ") << " was accepted";
    EXPECT_TRUE(absl::StrContains(r.err, field))
        << absl::StrJoin(sets, " ") << ": the error does not name " << field << ":\n"
        << r.err;
  }
}

// Removes Helm's own labels wherever a label map sits (metadata, selectors, Pod templates).
void DropHelmLabels(json& node) {
  static const std::set<std::string> kHelmLabels = {"app.kubernetes.io/instance",
                                                    "app.kubernetes.io/managed-by",
                                                    "app.kubernetes.io/version", "helm.sh/chart"};
  if (node.is_object()) {
    for (const std::string& label : kHelmLabels) node.erase(label);
    for (auto& [key, value] : node.items()) DropHelmLabels(value);
  } else if (node.is_array()) {
    for (json& item : node) DropHelmLabels(item);
  }
}

TEST_F(HelmChart, KustomizeAndTheDefaultInstallGiveTheSameObjects) {
  CommandOutput kustomize = RunCommand({KubectlBinary(), "kustomize", kSource + "/deploy"});
  ASSERT_EQ(kustomize.exit_code, 0) << kustomize.err << " (kubectl from scripts/k8s-build)";
  Objects from_kustomize = ParseObjects(kustomize.out);
  // The chart never creates a Namespace: `helm install --create-namespace` does.
  ASSERT_EQ(from_kustomize.erase("Namespace /stampede-system"), 1u);
  Objects from_helm = Rendered();
  // The CRD file has no labels or annotations; the chart labels it and marks it kept.
  json& crd = from_helm.at("CustomResourceDefinition /loadtests.stampede.dev")["metadata"];
  crd.erase("labels");
  crd.erase("annotations");
  std::set<std::string> helm_keys, kustomize_keys;
  for (auto& [key, object] : from_helm) {
    DropHelmLabels(object);
    helm_keys.insert(key);
  }
  for (auto& [key, object] : from_kustomize) kustomize_keys.insert(key);
  ASSERT_EQ(helm_keys, kustomize_keys);
  for (const std::string& key : helm_keys) {
    EXPECT_EQ(from_helm.at(key), from_kustomize.at(key))
        << key << "\nhelm:      " << from_helm.at(key).dump()
        << "\nkustomize: " << from_kustomize.at(key).dump();
  }
}

// The values the README documents: a schema object with additionalProperties false is opened up
// into its keys; anything else (Kubernetes objects passed through, lists, scalars) is one row.
void SchemaLeaves(const json& schema, const std::string& prefix, std::set<std::string>* leaves) {
  for (const auto& [key, sub] : schema["properties"].items()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    if (sub.value("additionalProperties", json(true)) == json(false) &&
        sub.contains("properties")) {
      SchemaLeaves(sub, path, leaves);
    } else {
      leaves->insert(path);
    }
  }
}

bool ValuesHave(const YAML::Node& values, const std::string& path) {
  YAML::Node node = YAML::Clone(values);
  for (const std::string& part : std::vector<std::string>(absl::StrSplit(path, '.'))) {
    if (!node.IsMap() || !node[part]) return false;
    node = node[part];
  }
  return true;
}

TEST_F(HelmChart, TheReadmeValuesTableListsEveryValue) {
  const json schema = json::parse(ReadFile(kChart + "/values.schema.json"));
  std::set<std::string> leaves;
  SchemaLeaves(schema, "", &leaves);
  leaves.erase("global");  // open for umbrella charts; the chart reads nothing from it
  const YAML::Node values = YAML::LoadFile(kChart + "/values.yaml");
  for (const std::string& leaf : leaves) EXPECT_TRUE(ValuesHave(values, leaf)) << leaf;
  // Rows of the table under "### Helm values" look like "| `image.tag` | ... |".
  const std::string readme = ReadFile(kSource + "/README.md");
  const size_t start = readme.find("### Helm values");
  ASSERT_NE(start, std::string::npos) << "README.md has no \"### Helm values\" section";
  std::set<std::string> documented;
  std::istringstream lines(readme.substr(start));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line) && !absl::StartsWith(line, "#")) {
    if (!absl::StartsWith(line, "| `")) continue;
    const size_t end = line.find('`', 3);
    documented.insert(line.substr(3, end - 3));
  }
  EXPECT_EQ(documented, leaves);
}

}  // namespace
}  // namespace stampede::testing
