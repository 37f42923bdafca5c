#include "controller/operator/kube_launcher.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace stampede::controller {
namespace {

std::string PodsPath(const std::string& ns) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/pods");
}

// A google.protobuf.Struct (free-form Kubernetes object in the spec) as JSON.
kube::Json StructToJson(const google::protobuf::Message& message) {
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text).ok())
    return kube::Json::object();
  return kube::Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

std::string AgentPodName(const std::string& loadtest, uint32_t index) {
  return absl::StrCat(loadtest, "-agent-", index);
}

std::string TokenSecretName(const std::string& loadtest) {
  return absl::StrCat(loadtest, "-agent-token");
}

kube::Json OwnerReference(const v1::LoadTest& test) {
  return {{"apiVersion", "stampede.dev/v1alpha1"},
          {"kind", "LoadTest"},
          {"name", test.metadata().name()},
          {"uid", test.metadata().uid()},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

kube::Json AgentPod(const v1::LoadTest& test, uint32_t index, const std::string& controller_address,
                    const AgentPodOptions& options) {
  const v1::AgentTemplate& t = test.spec().agent_template();
  const std::string& name = test.metadata().name();
  kube::Json labels = kube::Json::object();
  for (const auto& [k, v] : t.labels()) labels[k] = v;
  // Ours last: a user label cannot take a Pod out of its test's selector.
  labels["app.kubernetes.io/name"] = "stampede-agent";
  labels[kManagedByLabel] = kManagedByValue;
  labels[kLoadTestLabel] = name;
  labels[kAgentIndexLabel] = std::to_string(index);
  kube::Json annotations = kube::Json::object();
  for (const auto& [k, v] : t.annotations()) annotations[k] = v;

  kube::Json env = kube::Json::array({
      {{"name", "STAMPEDE_CONTROLLER"}, {"value", controller_address}},
      {{"name", "STAMPEDE_RUN"}, {"value", test.metadata().uid()}},
      {{"name", "STAMPEDE_AGENT_INDEX"}, {"value", std::to_string(index)}},
      {{"name", "STAMPEDE_TOKEN"},
       {"valueFrom", {{"secretKeyRef", {{"name", TokenSecretName(name)}, {"key", "token"}}}}}},
      {{"name", "STAMPEDE_RECONNECT_SECONDS"}, {"value", std::to_string(options.reconnect_s)}},
  });
  if (test.spec().threads_per_agent() != 0) {
    env.push_back(
        {{"name", "STAMPEDE_THREADS"}, {"value", std::to_string(test.spec().threads_per_agent())}});
  }
  kube::Json container = {
      {"name", "agent"},
      {"image", t.image().empty() ? options.default_image : t.image()},
      {"command", {options.agent_command, "connect"}},
      {"env", env},
      // Pod Security "restricted", container level.
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"capabilities", {{"drop", {"ALL"}}}},
        {"readOnlyRootFilesystem", true},
        {"runAsNonRoot", true}}},
  };
  if (!t.image_pull_policy().empty()) container["imagePullPolicy"] = t.image_pull_policy();
  if (t.has_resources()) container["resources"] = StructToJson(t.resources());

  kube::Json spec = {
      {"restartPolicy", "Never"},
      {"automountServiceAccountToken", false},
      {"enableServiceLinks", false},
      {"terminationGracePeriodSeconds", 15},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", 65532},
        {"runAsGroup", 65532},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"containers", kube::Json::array({container})},
  };
  if (!t.node_selector().empty()) {
    kube::Json selector = kube::Json::object();
    for (const auto& [k, v] : t.node_selector()) selector[k] = v;
    spec["nodeSelector"] = selector;
  }
  if (t.tolerations_size() != 0) {
    kube::Json tolerations = kube::Json::array();
    for (const auto& s : t.tolerations()) tolerations.push_back(StructToJson(s));
    spec["tolerations"] = tolerations;
  }
  if (t.has_affinity()) spec["affinity"] = StructToJson(t.affinity());

  kube::Json metadata = {{"name", AgentPodName(name, index)},
                         {"namespace", test.metadata().namespace_()},
                         {"labels", labels},
                         {"ownerReferences", kube::Json::array({OwnerReference(test)})}};
  if (!annotations.empty()) metadata["annotations"] = annotations;
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}, {"spec", spec}};
}

KubeLauncher::KubeLauncher(kube::Api* api, v1::LoadTest test, AgentPodOptions options)
    : api_(api), test_(std::move(test)), options_(std::move(options)) {}

absl::Status KubeLauncher::Launch(const LaunchRequest& request) {
  const std::string& ns = test_.metadata().namespace_();
  int created = 0, adopted = 0;
  for (uint32_t i = 0; i < request.agents; ++i) {
    auto pod = api_->Create(PodsPath(ns), AgentPod(test_, i, request.controller_address, options_));
    if (pod.ok()) {
      ++created;
    } else if (pod.status().code() == absl::StatusCode::kAlreadyExists) {
      ++adopted;  // deterministic names: a retry or a restarted operator finds its own Pods
    } else {
      return absl::Status(
          pod.status().code(),
          absl::StrCat("creating agent Pod ", AgentPodName(test_.metadata().name(), i), ": ",
                       pod.status().message()));
    }
  }
  SLOG(kInfo) << "agent_pods loadtest=" << ns << "/" << test_.metadata().name()
              << " created=" << created << " adopted=" << adopted;
  return absl::OkStatus();
}

void KubeLauncher::Stop() {
  if (detached_.load() || stopped_.exchange(true)) return;
  const std::string& ns = test_.metadata().namespace_();
  for (uint32_t i = 0; i < test_.spec().agents(); ++i) {
    const std::string name = AgentPodName(test_.metadata().name(), i);
    auto deleted =
        api_->Delete(absl::StrCat(PodsPath(ns), "/", name), {{"propagationPolicy", "Background"}});
    if (!deleted.ok() && deleted.status().code() != absl::StatusCode::kNotFound) {
      SLOG(kWarning) << "agent_pod_delete_failed pod=" << ns << "/" << name << " error=\""
                     << deleted.status().message() << "\"";
    }
  }
}

std::string KubeLauncher::LogLocation(uint32_t index) const {
  return absl::StrCat("kubectl logs -n ", test_.metadata().namespace_(), " ",
                      AgentPodName(test_.metadata().name(), index));
}

}  // namespace stampede::controller
