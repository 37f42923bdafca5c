#include "controller/operator/kube_launcher.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/mutex.h"

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

// Runs `call(i)` for i in [0, count) on at most `concurrency` threads. An Unavailable answer
// (the API server overloaded) pauses every thread and retries the same index; any other error
// stops handing out indices and is returned (the first one). `call` is thread-safe.
absl::Status ForEachBounded(uint32_t count, const AgentPodOptions& options,
                            const std::function<absl::Status(uint32_t)>& call) {
  common::Mutex mu;  // guards the four below
  uint32_t next = 0;
  absl::Status first_error;
  int64_t paused_until = 0;  // monotonic ns
  int overloads = 0;         // pauses in a row without progress
  auto sleep = options.sleep ? options.sleep
                             : [](std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); };
  const common::Clock& clock = options.clock ? *options.clock : common::SystemClock();
  auto now = [&clock] { return clock.MonotonicNanos(); };
  auto worker = [&] {
    std::optional<uint32_t> retry;
    while (true) {
      uint32_t index = 0;
      int64_t wait = 0;
      {
        common::MutexLock lock(&mu);
        if (!first_error.ok()) return;
        if (retry) {
          index = *retry;
        } else if (next < count) {
          index = next++;
        } else {
          return;
        }
        wait = paused_until - now();
      }
      if (wait > 0) sleep(std::chrono::nanoseconds(wait));
      const absl::Status status = call(index);
      common::MutexLock lock(&mu);
      if (status.ok()) {
        overloads = 0;
        retry.reset();
      } else if (status.code() == absl::StatusCode::kUnavailable &&
                 overloads < options.overload_retries) {
        // Several workers meeting one overload extend one pause instead of stacking theirs.
        if (paused_until <= now()) {
          const auto pause = std::min<std::chrono::nanoseconds>(
              options.overload_pause * (int64_t{1} << std::min(overloads, 20)),
              options.overload_pause_max);
          ++overloads;
          paused_until = now() + pause.count();
          SLOG(kWarning) << "kube_overloaded pause_ms=" << pause.count() / 1'000'000
                         << " pauses_in_a_row=" << overloads << " error=\"" << status.message()
                         << "\"";
        }
        retry = index;
      } else {
        if (first_error.ok()) first_error = status;
        return;
      }
    }
  };
  const auto threads =
      static_cast<uint32_t>(std::clamp<int64_t>(options.create_concurrency, 1, count));
  std::vector<std::thread> pool;
  for (uint32_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  common::MutexLock lock(&mu);
  return first_error;
}

}  // namespace

absl::StatusOr<AgentDefaults> ParseAgentDefaults(const std::string& text) {
  const kube::Json json = kube::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!json.is_object()) return absl::InvalidArgumentError("must be a JSON object");
  AgentDefaults defaults;
  for (const auto& [key, value] : json.items()) {
    if (key == "resources") {
      if (!value.is_object()) return absl::InvalidArgumentError("resources: must be an object");
      for (const auto& [kind, quantities] : value.items()) {
        if (kind != "limits" && kind != "requests") {
          return absl::InvalidArgumentError(
              absl::StrCat("resources.", kind, ": only limits and requests are known"));
        }
        if (!quantities.is_object()) {
          return absl::InvalidArgumentError(
              absl::StrCat("resources.", kind, ": must be an object"));
        }
        for (const auto& [name, quantity] : quantities.items()) {
          if (!quantity.is_string() && !quantity.is_number()) {
            return absl::InvalidArgumentError(
                absl::StrCat("resources.", kind, ".", name, ": must be a quantity"));
          }
        }
      }
      if (!value.empty()) defaults.resources = value;
    } else if (key == "nodeSelector") {
      if (!value.is_object()) return absl::InvalidArgumentError("nodeSelector: must be an object");
      for (const auto& [label, wanted] : value.items()) {
        if (!wanted.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("nodeSelector.", label, ": must be a string"));
        }
      }
      if (!value.empty()) defaults.node_selector = value;
    } else if (key == "tolerations") {
      if (!value.is_array()) return absl::InvalidArgumentError("tolerations: must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_object()) {
          return absl::InvalidArgumentError(
              absl::StrCat("tolerations[", i, "]: must be an object"));
        }
      }
      if (!value.empty()) defaults.tolerations = value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": unknown field (known: resources, nodeSelector, tolerations)"));
    }
  }
  return defaults;
}

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

kube::Json AgentPod(const v1::LoadTest& test, uint32_t index, const std::string& run_id,
                    const std::string& controller_address, const AgentPodOptions& options) {
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
      {{"name", "STAMPEDE_RUN"}, {"value", run_id}},
      {{"name", "STAMPEDE_AGENT_INDEX"}, {"value", std::to_string(index)}},
      {{"name", "STAMPEDE_TOKEN"},
       {"valueFrom", {{"secretKeyRef", {{"name", TokenSecretName(name)}, {"key", "token"}}}}}},
      {{"name", "STAMPEDE_RECONNECT_SECONDS"}, {"value", std::to_string(options.reconnect_s)}},
  });
  if (options.tls) {
    env.push_back(
        {{"name", "STAMPEDE_CA"},
         {"valueFrom", {{"secretKeyRef", {{"name", TokenSecretName(name)}, {"key", "ca.crt"}}}}}});
  }
  if (test.spec().threads_per_agent() != 0) {
    env.push_back(
        {{"name", "STAMPEDE_THREADS"}, {"value", std::to_string(test.spec().threads_per_agent())}});
  }
  kube::Json container = {
      {"name", "agent"},
      {"image", t.image().empty() ? options.default_image : t.image()},
      {"command", {options.agent_command, "connect"}},
      {"env", env},
      // An agent that exits with an error says why on its last log line (an unverifiable
      // controller, say): the Pod's status shows it.
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
      // Pod Security "restricted", container level.
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"capabilities", {{"drop", {"ALL"}}}},
        {"readOnlyRootFilesystem", true},
        {"runAsNonRoot", true}}},
  };
  if (!t.image_pull_policy().empty()) container["imagePullPolicy"] = t.image_pull_policy();
  if (t.has_resources()) {
    container["resources"] = StructToJson(t.resources());
  } else if (!options.defaults.resources.is_null()) {
    container["resources"] = options.defaults.resources;
  }

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
  } else if (!options.defaults.node_selector.is_null()) {
    spec["nodeSelector"] = options.defaults.node_selector;
  }
  if (t.tolerations_size() != 0) {
    kube::Json tolerations = kube::Json::array();
    for (const auto& s : t.tolerations()) tolerations.push_back(StructToJson(s));
    spec["tolerations"] = tolerations;
  } else if (!options.defaults.tolerations.is_null()) {
    spec["tolerations"] = options.defaults.tolerations;
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
  std::atomic<int> created{0}, adopted{0};
  const absl::Status status = ForEachBounded(request.agents, options_, [&](uint32_t i) {
    auto pod = api_->Create(
        PodsPath(ns), AgentPod(test_, i, request.run_id, request.controller_address, options_));
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
    return absl::OkStatus();
  });
  SLOG(kInfo) << "agent_pods loadtest=" << ns << "/" << test_.metadata().name()
              << " created=" << created.load() << " adopted=" << adopted.load();
  return status;
}

void KubeLauncher::Stop() {
  if (detached_.load() || stopped_.exchange(true)) return;
  const std::string& ns = test_.metadata().namespace_();
  const absl::Status status = ForEachBounded(test_.spec().agents(), options_, [&](uint32_t i) {
    const std::string name = AgentPodName(test_.metadata().name(), i);
    auto deleted =
        api_->Delete(absl::StrCat(PodsPath(ns), "/", name), {{"propagationPolicy", "Background"}});
    if (!deleted.ok() && deleted.status().code() != absl::StatusCode::kNotFound &&
        deleted.status().code() != absl::StatusCode::kUnavailable) {
      SLOG(kWarning) << "agent_pod_delete_failed pod=" << ns << "/" << name << " error=\""
                     << deleted.status().message() << "\"";
    }
    // Unavailable pauses and retries; anything else was logged and the next Pod goes on.
    if (!deleted.ok() && deleted.status().code() == absl::StatusCode::kUnavailable)
      return deleted.status();
    return absl::OkStatus();
  });
  if (!status.ok()) {
    SLOG(kWarning) << "agent_pods_delete_failed loadtest=" << ns << "/" << test_.metadata().name()
                   << " error=\"" << status.message() << "\"";
  }
}

std::string KubeLauncher::LogLocation(uint32_t index) const {
  return absl::StrCat("kubectl logs -n ", test_.metadata().namespace_(), " ",
                      AgentPodName(test_.metadata().name(), index));
}

}  // namespace stampede::controller
