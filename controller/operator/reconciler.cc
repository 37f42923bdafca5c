#include "controller/operator/reconciler.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/data_table.h"
#include "common/logging.h"
#include "common/spec.h"
#include "common/status_macros.h"
#include "controller/controller.h"

namespace stampede::controller {
namespace {

constexpr char kSpecChangeIgnored[] = "SpecChangeIgnored";

bool Terminal(const std::string& phase) {
  return phase == "Succeeded" || phase == "Failed" || phase == "Aborted";
}

// The string at `path` in `j`, or "": a reference into `j` (or to a static empty string), so that
// reading the Pods of a 10,000-agent test every round copies nothing.
const std::string& StringAt(const kube::Json& j, std::initializer_list<const char*> path) {
  static const std::string kNone;
  const kube::Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return kNone;
    const auto next = at->find(key);
    if (next == at->end()) return kNone;
    at = &*next;
  }
  return at->is_string() ? at->get_ref<const std::string&>() : kNone;
}

bool HasFinalizer(const kube::Json& object) {
  const kube::Json& meta = object["metadata"];
  if (!meta.contains("finalizers") || !meta["finalizers"].is_array()) return false;
  for (const kube::Json& f : meta["finalizers"]) {
    if (f.is_string() && f.get<std::string>() == kFinalizer) return true;
  }
  return false;
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  const size_t slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

// Container waiting reasons after which the Pod will not run without someone changing something.
const char* StuckReason(const std::string& waiting) {
  if (waiting == "ErrImagePull" || waiting == "ImagePullBackOff" || waiting == "InvalidImageName" ||
      waiting == "ErrImageNeverPull") {
    return "ImagePullFailed";
  }
  if (waiting == "CreateContainerConfigError" || waiting == "CreateContainerError" ||
      waiting == "CrashLoopBackOff") {
    return "AgentStartFailed";
  }
  return nullptr;
}

// A Pod status's PodScheduled condition when it says the Pod cannot be scheduled; null otherwise.
const kube::Json* UnschedulableCondition(const kube::Json& status) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return nullptr;
  for (const kube::Json& c : status["conditions"]) {
    if (StringAt(c, {"type"}) == "PodScheduled" && StringAt(c, {"status"}) == "False" &&
        StringAt(c, {"reason"}) == "Unschedulable") {
      return &c;
    }
  }
  return nullptr;
}

}  // namespace

std::string LoadTestOfPod(const kube::Json& pod) {
  return StringAt(pod, {"metadata", "labels", kLoadTestLabel});
}

void TrimAgentPod(kube::Json& pod) {
  if (!pod.is_object()) return;
  pod.erase("spec");
  if (auto meta = pod.find("metadata"); meta != pod.end() && meta->is_object()) {
    meta->erase("managedFields");
  }
}

namespace {

// Whether `pod` is an agent of the LoadTest `ns/name`.
bool PodOf(const kube::Json& pod, const std::string& ns, const std::string& name) {
  return StringAt(pod, {"metadata", "labels", kLoadTestLabel}) == name &&
         StringAt(pod, {"metadata", "namespace"}) == ns;
}

}  // namespace

std::string LoadTestsPath(const std::string& ns) {
  return ns.empty() ? "/apis/stampede.dev/v1alpha1/loadtests"
                    : absl::StrCat("/apis/stampede.dev/v1alpha1/namespaces/", ns, "/loadtests");
}

std::string AgentPodsPath(const std::string& ns) {
  return ns.empty() ? "/api/v1/pods" : absl::StrCat("/api/v1/namespaces/", ns, "/pods");
}

std::string RunIdOf(const std::string& uid, const std::string& run_tag) {
  if (run_tag.empty()) return uid;
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (const unsigned char c : run_tag) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrCat(uid, ".", absl::Hex(h, absl::kZeroPad16));
}

kube::Json StatusJson(const v1::LoadTestStatus& status) {
  v1::LoadTest holder;
  *holder.mutable_status() = status;
  kube::Json j =
      kube::Json::parse(common::LoadTestToJson(holder), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("status")) return kube::Json::object();
  return j["status"];
}

uint32_t Reconciler::RunningIn(const std::string& ns) const {
  uint32_t n = 0;
  for (const auto& [key, active] : active_) {
    if (SplitKey(key).first == ns && !IsTerminal(active.run->phase())) ++n;
  }
  return n;
}

namespace {
ReconcilerOptions WithDefaultPolicy(ReconcilerOptions options) {
  if (options.policy == nullptr) {
    options.policy = std::make_shared<const common::Policy>(common::Policy::AllowAll());
  }
  return options;
}
}  // namespace

Reconciler::Reconciler(ReconcilerWorld world, ReconcilerOptions options)
    : world_(world),
      options_(WithDefaultPolicy(std::move(options))),
      clock_(options_.run.clock != nullptr ? options_.run.clock : &common::SystemClock()) {}

std::vector<std::string> Reconciler::ActiveKeys() const {
  std::vector<std::string> keys;
  for (const auto& [key, active] : active_) keys.push_back(key);
  return keys;
}

void Reconciler::DetachAll() {
  for (auto& [key, active] : active_) active.launcher->Detach();
  active_.clear();
  pods_seen_.clear();
}

void Reconciler::Forget(std::map<std::string, Active>::iterator it) {
  world_.runs->RemoveRun(it->second.run->id());
  active_.erase(it);
  if (active_.empty()) pods_seen_.clear();  // nothing reads them until a test begins
}

absl::Status Reconciler::Reconcile(const std::string& key) {
  const auto [ns, name] = SplitKey(key);
  std::optional<kube::Json> object = world_.loadtests->Get(key);
  auto it = active_.find(key);
  if (!object.has_value()) {
    // Gone without our finalizer running (it was removed by hand): stop what is left.
    if (it != active_.end()) {
      it->second.launcher->Stop();
      Forget(it);
    }
    return absl::OkStatus();
  }
  const std::string uid = kube::MetadataField(*object, "uid");
  if (it != active_.end() && it->second.uid != uid) {
    // A new LoadTest with an old one's name: the old run is over.
    it->second.launcher->Stop();
    Forget(it);
    it = active_.end();
  }
  if (!kube::MetadataField(*object, "deletionTimestamp").empty()) return Finalize(key, *object);

  const std::string phase = StringAt(*object, {"status", "phase"});
  const std::string ran = StringAt(*object, {"status", "runId"});
  const std::string asked = StringAt(*object, {"metadata", "annotations", kRunIdAnnotation});
  // A terminal status of another run than ours is the cache from before our Rerun: ours goes on.
  if (Terminal(phase) && (it == active_.end() || it->second.run_tag == ran)) {
    if (it != active_.end()) Forget(it);
    if (!asked.empty() && asked != ran) return Rerun(key, *object, asked);
    return ReportIgnoredEdit(*object);  // absorbing: an edit starts nothing
  }
  if (!HasFinalizer(*object)) {
    auto updated =
        world_.api->UpdateWithRetry(absl::StrCat(LoadTestsPath(ns), "/", name), [](kube::Json& o) {
          if (!HasFinalizer(o)) o["metadata"]["finalizers"].push_back(kFinalizer);
          return absl::OkStatus();
        });
    if (!updated.ok()) return updated.status();
  }
  if (it == active_.end()) return Begin(key, *object, phase, phase.empty() ? asked : ran);

  Active& active = it->second;
  if (object->contains("spec") && (*object)["spec"].value("abort", false)) {
    active.run->Abort("spec.abort was set to true");
  }
  WatchPods(key, active);
  return SyncStatus(key, active, /*force=*/false);
}

std::string Reconciler::EndedKey(const kube::Json& object, const std::string& run_tag) {
  return absl::StrCat(kube::MetadataField(object, "uid"), "/",
                      object["metadata"].value("generation", int64_t{0}), "/", run_tag);
}

absl::Status Reconciler::EndBeforeStart(const kube::Json& object, const std::string& phase,
                                        const std::string& reason, const std::string& message,
                                        const std::string& run_tag, bool warn) {
  v1::LoadTestStatus status;
  status.set_run_id(run_tag);
  status.set_phase(phase);
  status.set_reason(reason);
  status.set_message(message);
  status.set_observed_generation(object["metadata"].value("generation", int64_t{0}));
  status.set_completion_time(Rfc3339(clock_->RealtimeNanos()));
  SetPhaseConditions(status, status.observed_generation(), status.completion_time());
  if (warn) Event(object, "Warning", reason, message);
  RETURN_IF_ERROR(WriteStatus(kube::MetadataField(object, "namespace"),
                              kube::MetadataField(object, "name"), StatusJson(status)));
  // Until the cache shows this status, the test still looks new: remember that it has ended.
  if (ended_before_start_.size() >= kMaxRemembered) ended_before_start_.clear();
  ended_before_start_.insert(EndedKey(object, run_tag));
  return absl::OkStatus();
}

absl::Status Reconciler::ReportIgnoredEdit(const kube::Json& object) {
  const int64_t generation = object["metadata"].value("generation", int64_t{0});
  const kube::Json status = object.value("status", kube::Json::object());
  if (generation <= status.value("observedGeneration", int64_t{0})) return absl::OkStatus();
  // Said by a condition, so that observedGeneration keeps up and a GitOps tool waiting for it
  // does not wait forever.
  // The other conditions stay; this one keeps its lastTransitionTime while it stays True.
  kube::Json conditions = kube::Json::array();
  std::string since = Rfc3339(clock_->RealtimeNanos());
  bool was_true = false;
  for (const kube::Json& c : status.value("conditions", kube::Json::array())) {
    if (c.value("type", "") != kSpecChangeIgnored) {
      conditions.push_back(c);
    } else if (c.value("status", "") == "True") {
      was_true = true;
      since = c.value("lastTransitionTime", since);
    }
  }
  const kube::Json ignored = {
      {"type", kSpecChangeIgnored},
      {"status", "True"},
      {"reason", "Finished"},
      {"message",
       absl::StrCat("the test has ended and an edit does not run it again; for a new run, set the "
                    "annotation ",
                    kRunIdAnnotation, " to a new value or apply it under a new name")},
      {"lastTransitionTime", since},
      {"observedGeneration", generation}};
  conditions.push_back(ignored);
  if (!was_true) Event(object, "Normal", kSpecChangeIgnored, ignored["message"]);
  return WriteStatus(kube::MetadataField(object, "namespace"), kube::MetadataField(object, "name"),
                     {{"observedGeneration", generation}, {"conditions", conditions}});
}

absl::Status Reconciler::Rerun(const std::string& key, const kube::Json& object,
                               const std::string& run_tag) {
  const auto [ns, name] = SplitKey(key);
  // The new run's Pods take the old ones' names; each deletion brings this test back here.
  bool old_pods = false;
  for (const auto& pod : world_.pods->ListShared()) old_pods |= PodOf(*pod, ns, name);
  if (old_pods) {
    CleanUp(ns, name);
    return absl::OkStatus();
  }
  // Nothing of the old run may survive the merge patches of the new one: each of its fields is
  // removed (null) unless the reset sets it.
  v1::LoadTestStatus pending;
  pending.set_phase("Pending");
  pending.set_reason("RunRequested");
  pending.set_message(absl::StrCat(kRunIdAnnotation, " is \"", run_tag, "\": a new run"));
  pending.set_run_id(run_tag);
  pending.set_observed_generation(object["metadata"].value("generation", int64_t{0}));
  SetPhaseConditions(pending, pending.observed_generation(), Rfc3339(clock_->RealtimeNanos()));
  kube::Json reset = StatusJson(pending);
  const kube::Json old = object.value("status", kube::Json::object());
  for (const auto& [field, value] : old.items()) {
    if (!reset.contains(field)) reset[field] = nullptr;
  }
  RETURN_IF_ERROR(WriteStatus(ns, name, reset));
  Event(object, "Normal", "RunRequested", pending.message());
  return Begin(key, object, "Pending", run_tag);
}

absl::StatusOr<common::TestData> Reconciler::ReadTestData(const v1::LoadTest& test) {
  const std::string& ns = test.metadata().namespace_();
  return common::PrepareTestData(
      test.spec(),
      [&](const std::string& name, const v1::DataTable& t) -> absl::StatusOr<std::string> {
        const std::string at = absl::StrCat("spec.data.", name);
        if (!t.file().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              at, ".file: the operator reads no files; put the CSV in a ConfigMap or Secret"));
        }
        const bool secret = t.has_secret();
        const v1::KeyRef& ref = secret ? t.secret() : t.config_map();
        const std::string field = absl::StrCat(at, secret ? ".secret" : ".configMap");
        absl::StatusOr<kube::Json> object = world_.api->Get(absl::StrCat(
            "/api/v1/namespaces/", ns, secret ? "/secrets/" : "/configmaps/", ref.name()));
        if (!object.ok()) {
          if (object.status().code() == absl::StatusCode::kNotFound ||
              object.status().code() == absl::StatusCode::kPermissionDenied) {
            return absl::InvalidArgumentError(
                absl::StrCat(field, ": ", ns, "/", ref.name(), ": ", object.status().message()));
          }
          return absl::UnavailableError(std::string(object.status().message()));
        }
        // Opt-in by whoever wrote the object: without it, anyone who may create a LoadTest could
        // have the operator send them any Secret of the namespace through their agents.
        const kube::Json labels =
            object->value("metadata", kube::Json::object()).value("labels", kube::Json::object());
        if (labels.value("stampede.dev/data", "") != "true") {
          return absl::InvalidArgumentError(absl::StrCat(
              field, ": ", ns, "/", ref.name(),
              " is not labelled stampede.dev/data: \"true\" (the label says its owner lets "
              "LoadTests read it)"));
        }
        const kube::Json values = object->value("data", kube::Json::object());
        auto it = values.find(ref.key());
        if (it == values.end() || !it->is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(field, ".key: ", ns, "/", ref.name(),
                                                         " has no key \"", ref.key(), "\""));
        }
        std::string text = it->get<std::string>();
        if (secret) {
          std::string decoded;
          if (!absl::Base64Unescape(text, &decoded)) {
            return absl::InvalidArgumentError(absl::StrCat(field, ".key: the value is not base64"));
          }
          text = std::move(decoded);
        }
        return text;
      },
      common::ServerEnv);
}

absl::Status Reconciler::Begin(const std::string& key, const kube::Json& object,
                               const std::string& phase, const std::string& run_tag) {
  // Ended already, but the cache had not caught up with that status when this reconcile began
  // (a second event for the same object): one refusal is one Event and one count, not two.
  if (ended_before_start_.count(EndedKey(object, run_tag)) != 0) return absl::OkStatus();
  kube::Json spec_only = object;
  spec_only.erase("status");
  auto test = common::ParseLoadTest(spec_only.dump());
  if (!test.ok()) {
    // The API server's schema cannot say everything ParseLoadTest checks (see the CRD tests).
    return EndBeforeStart(object, "Failed", "InvalidSpec", std::string(test.status().message()),
                          run_tag, /*warn=*/true);
  }
  if (test->spec().abort()) {
    return EndBeforeStart(object, "Aborted", "Aborted",
                          "spec.abort was set before the test started", run_tag, /*warn=*/false);
  }
  const bool adopting = phase == "Starting" || phase == "Running";
  // A running test was admitted when it began; a policy changed since does not stop it.
  if (!adopting) {
    if (std::optional<common::Refusal> refused =
            options_.policy->Admit(*test, RunningIn(test->metadata().namespace_()))) {
      if (options_.refusals != nullptr) {
        options_.refusals->Count(test->metadata().namespace_(), refused->rule, refused->reason,
                                 "admission");
      }
      return EndBeforeStart(object, "Failed", "PolicyRefused", refused->message, run_tag,
                            /*warn=*/true);
    }
  }
  absl::StatusOr<std::string> token = EnsureToken(*test);
  if (!token.ok()) {
    // Forbidden or refused: retrying will not help, and the user should hear why.
    if (token.status().code() != absl::StatusCode::kPermissionDenied &&
        token.status().code() != absl::StatusCode::kInvalidArgument) {
      return token.status();
    }
    return EndBeforeStart(
        object, "Failed", "AgentSetupFailed",
        absl::StrCat("cannot create the agents' token Secret: ", token.status().message()), run_tag,
        /*warn=*/true);
  }
  absl::StatusOr<common::TestData> data = ReadTestData(*test);
  if (!data.ok() && adopting) {
    // The running agents have their rows already; only an agent still to be assigned would miss
    // them, and it says so when it cannot start.
    SLOG(kWarning) << "adopted_without_data loadtest=" << key << " error=\""
                   << data.status().message() << "\"";
    data = common::TestData();
  }
  if (!data.ok()) {
    if (data.status().code() == absl::StatusCode::kUnavailable) return data.status();  // retried
    return EndBeforeStart(object, "Failed", "InvalidData", std::string(data.status().message()),
                          run_tag, /*warn=*/true);
  }
  auto launcher = std::make_unique<KubeLauncher>(world_.api, *test, options_.pods);
  KubeLauncher* raw = launcher.get();
  const std::string uid = test->metadata().uid();
  Active& active = active_[key];
  active.uid = uid;
  active.run_tag = run_tag;
  active.launcher = raw;
  active.test = *test;
  active.adopted = adopting;
  const std::string run_id = RunIdOf(uid, run_tag);
  RunOptions run_options = options_.run;
  run_options.adopted = adopting;
  run_options.data = std::make_shared<const common::TestData>(*std::move(data));
  run_options.target_rules =
      std::make_shared<const v1::TargetRules>(options_.policy->TargetRulesFor(*test));
  active.run = world_.runs->StartRun(*test, std::move(launcher), run_id, *token, run_options);
  SLOG(kInfo) << "loadtest_" << (adopting ? "adopted" : "started") << " loadtest=" << key
              << " uid=" << uid << " run=" << run_id << " agents=" << test->spec().agents();
  Event(object, "Normal", adopting ? "Adopted" : "Started",
        adopting ? absl::StrCat("taking over the running test; its ", test->spec().agents(),
                                " agent(s) reconnect")
                 : absl::StrCat("launching ", test->spec().agents(), " agent Pod(s)"));
  return SyncStatus(key, active, /*force=*/true);
}

Reconciler::PodSeen Reconciler::ReadPod(std::shared_ptr<const kube::Json> shared) {
  PodSeen seen;
  seen.pod = std::move(shared);
  const kube::Json& pod = *seen.pod;
  const std::string& test = StringAt(pod, {"metadata", "labels", kLoadTestLabel});
  uint32_t index = 0;
  if (test.empty() ||
      !absl::SimpleAtoi(StringAt(pod, {"metadata", "labels", kAgentIndexLabel}), &index)) {
    return seen;
  }
  seen.test = absl::StrCat(StringAt(pod, {"metadata", "namespace"}), "/", test);
  seen.index = index;
  seen.deleted = !StringAt(pod, {"metadata", "deletionTimestamp"}).empty();
  const auto found = pod.find("status");
  if (found == pod.end()) return seen;
  const kube::Json& status = *found;
  seen.failed = StringAt(status, {"phase"}) == "Failed";
  if (status.contains("containerStatuses") && status["containerStatuses"].is_array()) {
    for (const kube::Json& cs : status["containerStatuses"]) {
      if (StuckReason(StringAt(cs, {"state", "waiting", "reason"})) != nullptr) seen.stuck = true;
    }
  }
  seen.unschedulable = UnschedulableCondition(status) != nullptr;
  return seen;
}

void Reconciler::WatchPods(const std::string& key, Active& active) {
  const auto [ns, name] = SplitKey(key);
  Run& run = *active.run;
  const Phase phase = run.phase();
  if (IsTerminal(phase)) return;
  const int64_t now = clock_->MonotonicNanos();
  std::vector<bool> present(active.test.spec().agents(), false);
  const uint64_t round = ++pod_round_;
  // Shared, not copied: with 10,000 Pods, copying them every round was most of the operator's CPU.
  for (const auto& shared : world_.pods->ListShared()) {
    // A cached object never changes (an event replaces it), so what it says is read once; each
    // round then costs a lookup per Pod, and only the Pods that are not quiet are read again.
    auto [seen, fresh] = pods_seen_.try_emplace(shared.get());
    if (fresh) seen->second = ReadPod(shared);
    PodSeen& signals = seen->second;
    signals.round = round;
    if (signals.test != key || signals.index < 0 ||
        static_cast<size_t>(signals.index) >= present.size()) {
      continue;
    }
    const auto index = static_cast<uint32_t>(signals.index);
    present[index] = true;
    if (signals.quiet()) continue;
    const kube::Json& pod = *shared;
    const std::string& pod_name = StringAt(pod, {"metadata", "name"});
    if (signals.deleted) {
      run.AgentGone(index, absl::StrCat("agent Pod ", pod_name, " was deleted"));
      continue;
    }
    // A reference, never a copy (a conditional with an object() temporary would copy it).
    static const kube::Json kNoStatus = kube::Json::object();
    const auto found_status = pod.find("status");
    const kube::Json& status = found_status != pod.end() ? *found_status : kNoStatus;
    if (signals.stuck) {
      for (const kube::Json& cs : status["containerStatuses"]) {
        const std::string& waiting = StringAt(cs, {"state", "waiting", "reason"});
        if (const char* reason = StuckReason(waiting); reason != nullptr) {
          run.Fail(reason, absl::StrCat("agent Pod ", pod_name, ": ", waiting, ": ",
                                        StringAt(cs, {"state", "waiting", "message"})));
        }
      }
    }
    if (signals.failed) {
      int exit_code = -1;
      std::string said;  // with FallbackToLogsOnError, the log's tail: its last line says why
      if (status.contains("containerStatuses") && status["containerStatuses"].is_array() &&
          !status["containerStatuses"].empty()) {
        const kube::Json& first = status["containerStatuses"][0];
        const kube::Json term =
            first.is_object() ? first.value("state", kube::Json::object()) : kube::Json::object();
        if (term.is_object() && term.contains("terminated") && term["terminated"].is_object()) {
          exit_code = term["terminated"].value("exitCode", -1);
          said = StringAt(term, {"terminated", "message"});
        }
      }
      said = std::string(absl::StripAsciiWhitespace(said));
      if (const size_t nl = said.rfind('\n'); nl != std::string::npos) said = said.substr(nl + 1);
      const std::string why = absl::StrCat("agent Pod ", pod_name, " failed (exit code ", exit_code,
                                           ")", said.empty() ? "" : ": ", said,
                                           "; log: kubectl logs -n ", ns, " ", pod_name);
      // An adopted test had started: its agent giving up while the new leader waits for it is a
      // lost agent (onAgentLoss decides), not one that failed to start.
      if (phase == Phase::kStarting && !active.adopted) {
        run.Fail("AgentFailed", why);
      } else {
        run.AgentGone(index, why);
      }
    }
    if (signals.unschedulable && phase == Phase::kStarting) {
      auto [at, inserted] = active.unschedulable_since_ns.emplace(pod_name, now);
      if (now - at->second >= std::chrono::nanoseconds(options_.unschedulable_timeout).count()) {
        run.Fail("Unschedulable",
                 absl::StrCat("agent Pod ", pod_name, " cannot be scheduled: ",
                              StringAt(*UnschedulableCondition(status), {"message"})));
      }
    }
  }
  // Objects the cache no longer holds (replaced by an event, or deleted) are let go.
  for (auto it = pods_seen_.begin(); it != pods_seen_.end();) {
    it = it->second.round == round ? std::next(it) : pods_seen_.erase(it);
  }
  // A Pod that vanished after the launch (deleted with no grace period) is a lost agent too.
  if (phase == Phase::kRunning) {
    for (uint32_t i = 0; i < present.size(); ++i) {
      if (!present[i])
        run.AgentGone(i, absl::StrCat("agent Pod ", AgentPodName(name, i), " is gone"));
    }
  }
}

absl::Status Reconciler::SyncStatus(const std::string& key, Active& active, bool force) {
  const auto [ns, name] = SplitKey(key);
  const Run::Snapshot snap = active.run->TakeSnapshot(false);
  // An adopted test stays Running in the API while its agents come back.
  if (active.adopted && snap.phase == Phase::kStarting) return absl::OkStatus();
  v1::LoadTestStatus run_status = snap.status;
  run_status.set_run_id(active.run_tag);
  kube::Json status = StatusJson(run_status);
  const bool done = IsTerminal(snap.phase);
  const int64_t now = clock_->MonotonicNanos();
  if (status != active.last_status) {
    const bool phase_changed = status.value("phase", "") != active.last_status.value("phase", "");
    if (!force && !phase_changed &&
        now - active.last_write_ns < std::chrono::nanoseconds(options_.status_interval).count()) {
      return absl::OkStatus();  // the next round writes it
    }
    RETURN_IF_ERROR(WriteStatus(ns, name, status));
    if (phase_changed && done) {
      if (snap.status.reason() == "TargetDenied" && options_.refusals != nullptr) {
        options_.refusals->Count(ns, options_.policy->TargetRulesFor(active.test).rule(), "address",
                                 "agent");
      }
      kube::Json object = {{"metadata", {{"name", name}, {"namespace", ns}, {"uid", active.uid}}}};
      Event(object, snap.phase == Phase::kSucceeded ? "Normal" : "Warning", snap.status.reason(),
            absl::StrCat(
                snap.status.message(), "; requests ", snap.status.summary().requests(), ", p95 ",
                snap.status.summary().p95().empty() ? "n/a" : snap.status.summary().p95()));
    }
    active.last_status = std::move(status);
    active.last_write_ns = now;
  }
  if (done) {
    // The final status is written: the Run's own end already deleted the Pods.
    CleanUp(ns, name);
    Forget(active_.find(key));
  }
  return absl::OkStatus();
}

absl::Status Reconciler::WriteStatus(const std::string& ns, const std::string& name,
                                     const kube::Json& status) {
  auto written = world_.api->MergePatch(absl::StrCat(LoadTestsPath(ns), "/", name, "/status"),
                                        {{"status", status}});
  return written.ok() ? absl::OkStatus() : written.status();
}

absl::Status Reconciler::Finalize(const std::string& key, const kube::Json& object) {
  const auto [ns, name] = SplitKey(key);
  auto it = active_.find(key);
  if (it != active_.end()) {
    Active& active = it->second;
    active.run->Abort("the LoadTest was deleted");
    active.run->WaitDone(static_cast<int>(options_.deletion_grace.count()));  // their last reports
    v1::LoadTestStatus final_status = active.run->Status();
    final_status.set_run_id(active.run_tag);
    kube::Json status = StatusJson(final_status);
    status["reason"] = "Deleted";
    if (absl::Status s = WriteStatus(ns, name, status); !s.ok()) {
      SLOG(kWarning) << "final_status_not_written loadtest=" << key << " error=\"" << s.message()
                     << "\"";
    }
    Event(object, "Normal", "Deleted",
          absl::StrCat("stopped by deletion after ", active.run->Status().summary().requests(),
                       " requests"));
    active.launcher->Stop();
    Forget(it);
  }
  CleanUp(ns, name);
  if (!HasFinalizer(object)) return absl::OkStatus();
  auto updated =
      world_.api->UpdateWithRetry(absl::StrCat(LoadTestsPath(ns), "/", name), [](kube::Json& o) {
        kube::Json& finalizers = o["metadata"]["finalizers"];
        if (!finalizers.is_array()) return absl::OkStatus();
        finalizers.erase(std::remove(finalizers.begin(), finalizers.end(), kube::Json(kFinalizer)),
                         finalizers.end());
        return absl::OkStatus();
      });
  if (!updated.ok() && updated.status().code() != absl::StatusCode::kNotFound)
    return updated.status();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Reconciler::EnsureToken(const v1::LoadTest& test) {
  const std::string& ns = test.metadata().namespace_();
  const std::string secret_name = TokenSecretName(test.metadata().name());
  const std::string path = absl::StrCat("/api/v1/namespaces/", ns, "/secrets");
  const std::string token = RandomToken();
  kube::Json secret = {
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata",
       {{"name", secret_name},
        {"namespace", ns},
        {"labels", {{kManagedByLabel, kManagedByValue}, {kLoadTestLabel, test.metadata().name()}}},
        {"ownerReferences", kube::Json::array({OwnerReference(test)})}}},
      {"type", "Opaque"},
      {"data", {{"token", absl::Base64Escape(token)}}},
  };
  if (options_.pods.tls && options_.agent_ca) {
    secret["data"]["ca.crt"] = absl::Base64Escape(options_.agent_ca());
  }
  auto created = world_.api->Create(path, secret);
  if (created.ok()) return token;
  if (created.status().code() != absl::StatusCode::kAlreadyExists) return created.status();
  // Ours from before a restart: the running agents hold this token.
  ASSIGN_OR_RETURN(kube::Json existing, world_.api->Get(absl::StrCat(path, "/", secret_name)));
  std::string decoded;
  if (!absl::Base64Unescape(StringAt(existing, {"data", "token"}), &decoded) || decoded.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Secret ", ns, "/", secret_name, " has no usable token"));
  }
  return decoded;
}

void Reconciler::CleanUp(const std::string& ns, const std::string& name) {
  auto deleted = world_.api->Delete(
      absl::StrCat("/api/v1/namespaces/", ns, "/secrets/", TokenSecretName(name)));
  if (!deleted.ok() && deleted.status().code() != absl::StatusCode::kNotFound) {
    SLOG(kWarning) << "secret_delete_failed loadtest=" << ns << "/" << name << " error=\""
                   << deleted.status().message() << "\"";
  }
  for (const auto& shared : world_.pods->ListShared()) {
    const kube::Json& pod = *shared;
    if (!PodOf(pod, ns, name) || !kube::MetadataField(pod, "deletionTimestamp").empty()) continue;
    auto gone = world_.api->Delete(
        absl::StrCat("/api/v1/namespaces/", ns, "/pods/", kube::MetadataField(pod, "name")));
    if (!gone.ok() && gone.status().code() != absl::StatusCode::kNotFound) {
      SLOG(kWarning) << "agent_pod_delete_failed pod=" << ns << "/"
                     << kube::MetadataField(pod, "name") << " error=\"" << gone.status().message()
                     << "\"";
    }
  }
}

void Reconciler::Event(const kube::Json& object, const std::string& type, const std::string& reason,
                       const std::string& message) {
  const std::string ns = kube::MetadataField(object, "namespace");
  const std::string name = kube::MetadataField(object, "name");
  const std::string now = Rfc3339(clock_->RealtimeNanos());
  kube::Json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", absl::StrCat(name, ".")}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", "stampede.dev/v1alpha1"},
        {"kind", "LoadTest"},
        {"name", name},
        {"namespace", ns},
        {"uid", kube::MetadataField(object, "uid")}}},
      {"type", type},
      {"reason", reason},
      {"message", message.substr(0, 1024)},
      {"source", {{"component", "stampede-operator"}}},
      {"reportingComponent", "stampede-operator"},
      {"reportingInstance", options_.identity.empty() ? "stampede-operator" : options_.identity},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1},
  };
  auto created = world_.api->Create(absl::StrCat("/api/v1/namespaces/", ns, "/events"), event);
  if (!created.ok()) {
    SLOG(kWarning) << "event_not_recorded loadtest=" << ns << "/" << name << " reason=" << reason
                   << " error=\"" << created.status().message() << "\"";
  }
}

}  // namespace stampede::controller
