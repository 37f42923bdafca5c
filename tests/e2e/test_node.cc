#include "tests/e2e/test_node.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/status_macros.h"

extern char** environ;

namespace stampede::e2e {
namespace {

using kube::Json;
using Clock = std::chrono::steady_clock;

constexpr char kHostIp[] = "127.0.0.1";
constexpr char kNotReadyTaint[] = "node.kubernetes.io/not-ready";
constexpr char kImagePullFailurePrefix[] = "invalid.example/";
constexpr char kIdPrefix[] = "stampede-test-node://";
constexpr char kRuncIdPrefix[] = "runc://";
// Container mode: how often `runc state` is asked whether `runc run` has made the container.
constexpr std::chrono::milliseconds kCreatePoll{20};

std::string Now3339() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

std::string Str(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string PodPath(const Json& pod) {
  return absl::StrCat("/api/v1/namespaces/", kube::MetadataField(pod, "namespace"), "/pods/",
                      kube::MetadataField(pod, "name"));
}

// Kubernetes' $(VAR) expansion: $(NAME) becomes the value of a defined NAME and stays as written
// otherwise; $$ is a literal $.
std::string Expand(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 == text.size()) {
      out += text[i];
    } else if (text[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (const size_t close = text.find(')', i + 2);
               text[i + 1] == '(' && close != std::string::npos) {
      auto var = vars.find(text.substr(i + 2, close - i - 2));
      out += var != vars.end() ? var->second : text.substr(i, close - i + 1);
      i = close;
    } else {
      out += '$';
    }
  }
  return out;
}

absl::StatusOr<std::string> FieldValue(const Json& pod, const std::string& field_path) {
  if (field_path == "metadata.name") return kube::MetadataField(pod, "name");
  if (field_path == "metadata.namespace") return kube::MetadataField(pod, "namespace");
  if (field_path == "metadata.uid") return kube::MetadataField(pod, "uid");
  if (field_path == "spec.nodeName") return Str(pod.at("spec"), "nodeName");
  if (field_path == "spec.serviceAccountName") return Str(pod.at("spec"), "serviceAccountName");
  if (field_path == "status.podIP" || field_path == "status.hostIP") return std::string(kHostIp);
  return absl::InvalidArgumentError(
      absl::StrCat("fieldRef ", field_path, " is not supported by stampede-test-node"));
}

// The container's env in order, each value resolved and expanded against the ones before it.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ResolveEnv(kube::Client& client,
                                                                            const Json& pod,
                                                                            const Json& container) {
  if (container.contains("envFrom")) {
    return absl::InvalidArgumentError("envFrom is not supported by stampede-test-node");
  }
  std::vector<std::pair<std::string, std::string>> env;
  std::map<std::string, std::string> vars;
  const std::string name_space = kube::MetadataField(pod, "namespace");
  for (const Json& var : container.value("env", Json::array())) {
    const std::string name = Str(var, "name");
    std::string value;
    if (!var.contains("valueFrom")) {
      value = Expand(Str(var, "value"), vars);
    } else if (const Json& from = var["valueFrom"]; from.contains("fieldRef")) {
      absl::StatusOr<std::string> field = FieldValue(pod, Str(from["fieldRef"], "fieldPath"));
      if (!field.ok()) return field.status();
      value = *std::move(field);
    } else if (from.contains("secretKeyRef") || from.contains("configMapKeyRef")) {
      const bool secret = from.contains("secretKeyRef");
      const Json& ref = from[secret ? "secretKeyRef" : "configMapKeyRef"];
      const bool optional = ref.value("optional", false);
      const std::string key = Str(ref, "key");
      const std::string path =
          absl::StrCat("/api/v1/namespaces/", name_space, secret ? "/secrets/" : "/configmaps/",
                       Str(ref, "name"));
      absl::StatusOr<Json> object = client.Get(path);
      if (!object.ok()) {
        if (optional && absl::IsNotFound(object.status())) continue;
        return absl::Status(object.status().code(),
                            absl::StrCat("env ", name, ": ", object.status().message()));
      }
      const Json data = object->value("data", Json::object());
      if (!data.contains(key) || !data[key].is_string()) {
        if (optional) continue;
        return absl::NotFoundError(absl::StrCat("env ", name, ": no key \"", key, "\" in ", path));
      }
      value = data[key].get<std::string>();
      if (secret && !absl::Base64Unescape(data[key].get<std::string>(), &value)) {
        return absl::InvalidArgumentError(absl::StrCat("env ", name, ": bad base64 in ", path));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "env ", name, ": this kind of valueFrom is not supported by stampede-test-node"));
    }
    vars[name] = value;
    env.emplace_back(name, std::move(value));
  }
  return env;
}

// Starts `argv` (PATH is searched when argv[0] has no slash) in its own process group with
// stdout and stderr on `log_fd`; the exec error if it could not start. The child dies with the
// calling thread (PR_SET_PDEATHSIG), so a node agent killed outright leaves no orphans.
absl::StatusOr<pid_t> Spawn(std::vector<std::string> argv, std::vector<std::string> env,
                            const std::string& working_dir, int log_fd) {
  std::vector<char*> args, envp;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  int exec_error_pipe[2];
  if (pipe2(exec_error_pipe, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(exec_error_pipe[0]);
    close(exec_error_pipe[1]);
    return absl::UnavailableError(absl::StrCat("fork: ", strerror(error)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);  // an ignored signal would stay ignored across exec
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    // Sockets of the node agent must not leak into the Pod's process.
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < 4096; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (working_dir.empty() || chdir(working_dir.c_str()) == 0) {
      execvpe(args[0], args.data(), envp.data());
    }
    const int error = errno;
    (void)!write(exec_error_pipe[1], &error, sizeof error);
    _exit(127);
  }
  close(exec_error_pipe[1]);
  int error = 0;
  ssize_t n;
  do {
    n = read(exec_error_pipe[0], &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  close(exec_error_pipe[0]);
  if (n == sizeof error) {
    waitpid(pid, nullptr, 0);  // ECHILD when the reaper was quicker: fine either way
    return absl::FailedPreconditionError(
        absl::StrCat(working_dir.empty() ? "" : absl::StrCat("in ", working_dir, ": "), "exec ",
                     argv[0], ": ", strerror(error)));
  }
  return pid;
}

absl::Status WriteFileAs(const std::string& path, const std::string& content, mode_t mode) {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out || chmod(path.c_str(), mode) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// Fills `dir` with the keys of a Secret or ConfigMap volume, as the kubelet lays them out
// (items map keys to paths; defaultMode and each item's mode, 0644 by default).
absl::Status FillKeyVolume(kube::Client& client, const Json& pod, const Json& volume,
                           const std::string& dir) {
  const bool secret = volume.contains("secret");
  const Json& source = volume[secret ? "secret" : "configMap"];
  const std::string object_name = Str(source, secret ? "secretName" : "name");
  const std::string path =
      absl::StrCat("/api/v1/namespaces/", kube::MetadataField(pod, "namespace"),
                   secret ? "/secrets/" : "/configmaps/", object_name);
  const bool optional = source.value("optional", false);
  absl::StatusOr<Json> object = client.Get(path);
  if (!object.ok()) {
    if (optional && absl::IsNotFound(object.status())) return absl::OkStatus();
    return absl::Status(object.status().code(), absl::StrCat("volume ", Str(volume, "name"), ": ",
                                                             object.status().message()));
  }
  const Json data = object->value("data", Json::object());
  const mode_t default_mode = source.value("defaultMode", 0644);
  std::vector<std::tuple<std::string, std::string, mode_t>> files;  // key, path, mode
  if (source.contains("items")) {
    for (const Json& item : source["items"]) {
      files.emplace_back(Str(item, "key"), Str(item, "path"), item.value("mode", default_mode));
    }
  } else {
    for (const auto& [key, value] : data.items()) files.emplace_back(key, key, default_mode);
  }
  for (const auto& [key, relative, mode] : files) {
    if (!data.contains(key) || !data[key].is_string()) {
      return absl::NotFoundError(
          absl::StrCat("volume ", Str(volume, "name"), ": no key \"", key, "\" in ", path));
    }
    if (relative.empty() || relative[0] == '/' || absl::StrContains(relative, "..")) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume ", Str(volume, "name"), ": bad item path \"", relative, "\""));
    }
    std::string content = data[key].get<std::string>();
    if (secret && !absl::Base64Unescape(data[key].get<std::string>(), &content)) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume ", Str(volume, "name"), ": bad base64 in ", path));
    }
    RETURN_IF_ERROR(WriteFileAs(dir + "/" + relative, content, mode));
  }
  return absl::OkStatus();
}

// "https://127.0.0.1:6443" -> {"127.0.0.1", "6443"}.
std::pair<std::string, std::string> HostAndPort(const std::string& url) {
  std::string rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
  rest = rest.substr(0, rest.find('/'));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "443"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

Json Condition(const char* type, bool status, const char* reason = "") {
  Json condition = {{"type", type},
                    {"status", status ? "True" : "False"},
                    {"lastProbeTime", nullptr},
                    {"lastTransitionTime", Now3339()}};
  if (*reason != '\0') condition["reason"] = reason;
  return condition;
}

}  // namespace

TestNode::TestNode(kube::Client* client, Options options)
    : client_(client), options_(std::move(options)) {}

TestNode::~TestNode() { Stop(); }

absl::Status TestNode::Start() {
  const std::string& name = options_.node_name;
  const Json node = {{"apiVersion", "v1"},
                     {"kind", "Node"},
                     {"metadata",
                      {{"name", name},
                       {"labels",
                        {{"kubernetes.io/hostname", name},
                         {"kubernetes.io/os", "linux"},
                         {"kubernetes.io/arch", "amd64"},
                         {"stampede.dev/test-node", "true"}}}}},
                     {"spec", Json::object()}};
  absl::StatusOr<Json> created = client_->Create("/api/v1/nodes", node);
  if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  registered_at_ = Now3339();
  if (!options_.image_archives.empty()) {
    if (options_.state_dir.empty() || options_.api_server.empty()) {
      return absl::InvalidArgumentError("container mode needs a state_dir and the api_server");
    }
    for (const char* sub : {"/runc", "/containers", "/volumes"}) {
      std::error_code error;
      std::filesystem::create_directories(options_.state_dir + sub, error);
      if (error) {
        return absl::InternalError(
            absl::StrCat("mkdir ", options_.state_dir, sub, ": ", error.message()));
      }
    }
    for (const std::string& archive : options_.image_archives) {
      absl::StatusOr<OciImage> image = LoadImageArchive(archive, options_.state_dir);
      if (!image.ok()) return image.status();
      SLOG(kInfo) << "test_node_image_loaded image=" << image->ref
                  << " digest=" << image->manifest_digest << " archive=" << archive;
      images_.push_back(*std::move(image));
    }
  }
  const bool ready = Heartbeat();
  // Orphans of a Pod's processes come to us, so its process group can be waited for.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return absl::InternalError(absl::StrCat("PR_SET_CHILD_SUBREAPER: ", strerror(errno)));
  }

  kube::Informer::Options watch;
  watch.field_selector = "spec.nodeName=" + name;
  informer_ = std::make_unique<kube::Informer>(
      client_, "/api/v1/pods",
      [this](const Json& pod, bool) {
        common::MutexLock lock(&mu_);
        dirty_.insert(kube::ObjectKey(pod));
        cv_.SignalAll();
      },
      watch);
  sync_thread_ = std::thread([this, ready] { SyncLoop(ready); });
  reap_thread_ = std::thread([this] { ReapLoop(); });
  if (options_.simulate) {
    for (int i = 0; i < std::max(options_.api_writers, 1); ++i) {
      writers_.emplace_back([this] { WriteLoop(); });
    }
  }
  informer_->Start();
  SLOG(kInfo) << "test_node_started node=" << name << " bin_dir=" << options_.bin_dir
              << " log_dir=" << options_.log_dir;
  return absl::OkStatus();
}

void TestNode::Stop() {
  {
    common::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.SignalAll();
  if (informer_ != nullptr) informer_->Stop();
  if (sync_thread_.joinable()) sync_thread_.join();
  for (std::thread& writer : writers_) writer.join();
  writers_.clear();
  {
    // No process starts any more: kill what runs; the reaper returns once all are reaped.
    common::MutexLock lock(&mu_);
    for (const auto& [group, key] : groups_) {
      SLOG(kInfo) << "test_node_kill pod=" << key << " pid=" << group << " reason=shutdown";
      kill(-group, SIGKILL);
    }
  }
  cv_.SignalAll();
  if (reap_thread_.joinable()) reap_thread_.join();
  // The reaper is gone, so these are waited for here. Every container whose runc was killed is
  // deleted at once: one after the other takes seconds with 50.
  std::vector<pid_t> deletes;
  for (auto& [key, run] : runs_) {
    if (run.bundle.empty()) continue;
    absl::StatusOr<pid_t> pid = Spawn({options_.runc, "--root", options_.state_dir + "/runc",
                                       "delete", "--force", run.container_id},
                                      {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "", STDERR_FILENO);
    if (pid.ok()) deletes.push_back(*pid);
  }
  for (const pid_t pid : deletes) waitpid(pid, nullptr, 0);
  for (auto& [key, run] : runs_) CleanUpContainer(run, /*runc_delete=*/false);
}

bool TestNode::Heartbeat() {
  const std::string& name = options_.node_name;
  const Json resources = {
      {"cpu", "64"}, {"memory", "256Gi"}, {"pods", std::to_string(options_.max_pods)}};
  const Json status = {
      {"capacity", resources},
      {"allocatable", resources},
      {"conditions",
       {{{"type", "Ready"},
         {"status", "True"},
         {"reason", "KubeletReady"},
         {"message", "stampede-test-node is posting ready status"},
         {"lastHeartbeatTime", Now3339()},
         {"lastTransitionTime", registered_at_}}}},
      {"addresses",
       {{{"type", "InternalIP"}, {"address", kHostIp}}, {{"type", "Hostname"}, {"address", name}}}},
      {"nodeInfo",
       {{"kubeletVersion", "v1.20.2-stampede-test-node"},
        {"kubeProxyVersion", ""},
        {"containerRuntimeVersion", "stampede-test-node://0.1"},
        {"operatingSystem", "linux"},
        {"architecture", "amd64"}}}};
  absl::StatusOr<Json> patched =
      client_->MergePatch("/api/v1/nodes/" + name + "/status", {{"status", status}});
  if (!patched.ok()) {
    SLOG(kWarning) << "test_node_heartbeat_failed node=" << name << " error=\""
                   << patched.status().message() << "\"";
    return false;
  }
  // The TaintNodesByCondition admission adds the not-ready taint to a new Node; without a node
  // lifecycle controller nobody else would take it off.
  const Json taints =
      patched->contains("spec") ? (*patched)["spec"].value("taints", Json::array()) : Json::array();
  Json kept = Json::array();
  for (const Json& taint : taints) {
    if (Str(taint, "key") != kNotReadyTaint) kept.push_back(taint);
  }
  if (kept.size() == taints.size()) return true;
  absl::StatusOr<Json> untainted =
      client_->MergePatch("/api/v1/nodes/" + name, {{"spec", {{"taints", kept}}}});
  if (!untainted.ok()) {
    SLOG(kWarning) << "test_node_untaint_failed node=" << name << " error=\""
                   << untainted.status().message() << "\"";
    return false;
  }
  SLOG(kInfo) << "test_node_ready node=" << name << " removed_taint=" << kNotReadyTaint;
  return true;
}

void TestNode::SyncLoop(bool ready) {
  auto next_heartbeat = Clock::now() + (ready ? options_.heartbeat_period : options_.retry_period);
  mu_.Lock();
  while (!stopping_) {
    const auto now = Clock::now();
    if (now >= next_heartbeat) {
      mu_.Unlock();
      const bool ok = Heartbeat();
      mu_.Lock();
      next_heartbeat = now + (ok ? options_.heartbeat_period : options_.retry_period);
      continue;
    }
    RetryFailedWrites();
    std::set<std::string> keys;
    keys.swap(dirty_);
    auto wake = next_heartbeat;
    for (const auto& [key, run] : runs_) {
      if (!run.retry_at.has_value()) continue;
      if (*run.retry_at <= now) {
        keys.insert(key);
      } else {
        wake = std::min(wake, *run.retry_at);
      }
    }
    if (keys.empty()) {
      cv_.WaitUntil(&mu_, wake);
      continue;
    }
    mu_.Unlock();
    for (const std::string& key : keys) {
      try {
        SyncPod(key);
      } catch (const std::exception& e) {  // a Pod shaped unlike the API's own
        SLOG(kError) << "test_node_sync_failed pod=" << key << " error=\"" << e.what() << "\"";
      }
    }
    mu_.Lock();
  }
  mu_.Unlock();
}

void TestNode::WriteLoop() {
  mu_.Lock();
  while (true) {
    while (writes_.empty() && !stopping_) cv_.Wait(&mu_);
    if (stopping_) break;
    ApiWrite write = std::move(writes_.front());
    writes_.pop_front();
    mu_.Unlock();
    const bool failed = !Send(write);
    mu_.Lock();
    if (failed) {
      failed_writes_.push_back(std::move(write));
      cv_.SignalAll();
    }
  }
  mu_.Unlock();
}

void TestNode::Queue(ApiWrite write) {
  common::MutexLock lock(&mu_);
  writes_.push_back(std::move(write));
  cv_.SignalAll();
}

bool TestNode::Send(const ApiWrite& write) {
  absl::StatusOr<Json> done = write.is_delete ? client_->Delete(write.path, write.body)
                                              : client_->MergePatch(write.path, write.body);
  // A Pod gone needs no write any more, nor does a delete whose uid precondition failed (the Pod
  // was replaced by a new one of that name).
  if (done.ok() || absl::IsNotFound(done.status()) ||
      (write.is_delete && kube::IsConflict(done.status()))) {
    if (write.is_delete) {
      SLOG(kInfo) << "test_node_deleted pod=" << write.key;
    }
    return true;
  }
  SLOG(kWarning) << (write.is_delete ? "test_node_delete_failed" : "test_node_status_failed")
                 << " pod=" << write.key << " error=\"" << done.status().message() << "\"";
  return false;
}

void TestNode::RetryFailedWrites() {
  for (const ApiWrite& write : failed_writes_) {
    auto found = runs_.find(write.key);
    if (found == runs_.end()) continue;
    if (write.is_delete) {
      found->second.delete_queued = false;
    } else {
      found->second.reported = false;
    }
    found->second.retry_at = Clock::now() + options_.retry_period;
  }
  failed_writes_.clear();
}

void TestNode::ReapLoop() {
  mu_.Lock();
  uint64_t seen = spawned_;
  while (!stopping_ || !children_.empty()) {
    mu_.Unlock();
    // Peek before reaping: a zombie's process group can still be read, a reaped process's not.
    siginfo_t info{};
    const int peeked = waitid(P_ALL, 0, &info, WEXITED | WNOWAIT);
    const int error = errno;
    pid_t pid = -1, group = -1;
    int status = 0;
    if (peeked == 0) {
      group = getpgid(info.si_pid);
      pid = waitpid(info.si_pid, &status, 0);  // -1 when a failed exec's waitpid was quicker
    }
    mu_.Lock();
    if (peeked != 0) {
      if (error != ECHILD) continue;  // EINTR
      if (stopping_) break;
      while (spawned_ == seen && !stopping_) cv_.Wait(&mu_);  // no child at all
      seen = spawned_;
      continue;
    }
    if (pid < 0) continue;
    auto tracked = groups_.find(group);
    if (children_.erase(pid) > 0 && (groups_.count(pid) > 0 || helpers_.count(pid) > 0)) {
      exits_[pid] = status;
      if (helpers_.erase(pid) > 0) cv_.SignalAll();
    }
    if (tracked != groups_.end()) {
      dirty_.insert(tracked->second);
      cv_.SignalAll();
    }
  }
  mu_.Unlock();
}

std::optional<int> TestNode::TakeExit(pid_t pid) {
  common::MutexLock lock(&mu_);
  auto exit = exits_.find(pid);
  if (exit == exits_.end()) return std::nullopt;
  const int status = exit->second;
  exits_.erase(exit);
  return status;
}

void TestNode::SyncPod(const std::string& key) {
  const std::optional<Json> pod = informer_->Get(key);
  auto found = runs_.find(key);
  if (found != runs_.end() &&
      (!pod.has_value() || kube::MetadataField(*pod, "uid") != found->second.uid)) {
    // Deleted outright (grace period 0), or replaced by a new Pod of the same name.
    const pid_t group = found->second.pid;
    if (group > 0 && !found->second.drained) {
      SLOG(kInfo) << "test_node_kill pod=" << key << " pid=" << group << " reason=pod_gone";
      kill(-group, SIGKILL);
      common::MutexLock lock(&mu_);
      groups_.erase(group);
      exits_.erase(group);
    }
    CleanUpContainer(found->second);
    if (!options_.state_dir.empty()) {  // the Pod's volumes go with it
      std::error_code error;
      std::filesystem::remove_all(absl::StrCat(options_.state_dir, "/volumes/", found->second.uid),
                                  error);
    }
    runs_.erase(found);
    found = runs_.end();
  }
  if (!pod.has_value()) return;

  const auto now = Clock::now();
  if (found == runs_.end()) {
    found = runs_.emplace(key, Run()).first;
    Run& run = found->second;
    run.uid = kube::MetadataField(*pod, "uid");
    run.accepted_at = Now3339();
    const std::string phase = pod->contains("status") ? Str((*pod)["status"], "phase") : "";
    if (phase == "Succeeded" || phase == "Failed") {
      run.state = State::kExited;
      run.reported = true;
    } else if (phase == "Running") {
      // Started by an earlier node agent, whose processes died with it.
      run.state = State::kExited;
      run.exit_code = 137;
      run.terminated_reason = "Error";
      run.terminated_message = "stampede-test-node restarted";
      run.finished_at = run.accepted_at;
    }
    run.drained = run.state == State::kExited;
  }
  Run& run = found->second;
  const bool retry_due = run.retry_at.has_value() && *run.retry_at <= now;
  if (retry_due) run.retry_at.reset();

  if (run.state == State::kRunning) {
    if (const std::optional<int> status = TakeExit(run.pid)) {
      run.state = State::kExited;
      run.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
      run.terminated_reason = run.exit_code == 0 ? "Completed" : "Error";
      run.finished_at = Now3339();
      if (!run.container_id.empty() && run.exit_code != 0) {
        // runc's own failure (the container never ran) is a StartError, as the kubelet reports.
        std::string line;
        for (std::ifstream log(run.log_path); std::getline(log, line);) {
          if (absl::StrContains(line, "runc run failed")) {
            run.exit_code = 128;
            run.terminated_reason = "StartError";
            run.terminated_message = line.substr(line.find("runc run failed"));
          }
        }
      }
      const Json& container = (*pod)["spec"]["containers"][0];
      if (run.exit_code != 0 && run.terminated_message.empty() &&
          Str(container, "terminationMessagePolicy") == "FallbackToLogsOnError") {
        // As the kubelet: the log's last 80 lines or 2048 bytes, whichever is less.
        std::ifstream log(run.log_path);
        std::stringstream text;
        text << log.rdbuf();
        std::string tail = text.str();
        if (tail.size() > 2048) tail = tail.substr(tail.size() - 2048);
        size_t start = 0;
        int newlines = 0;
        for (size_t i = tail.size(); i > 0; --i) {
          if (tail[i - 1] == '\n' && i != tail.size() && ++newlines == 80) {
            start = i;
            break;
          }
        }
        tail = tail.substr(start);
        run.terminated_message = tail;
      }
      run.reported = false;
      kill(-run.pid, SIGKILL);  // what is left of the group, as when a container ends
      SLOG(kInfo) << "test_node_exited pod=" << key << " pid=" << run.pid
                  << " exit_code=" << run.exit_code;
    }
  }
  if (run.state == State::kRunning && !run.created && retry_due) {
    if (RunHelper({options_.runc, "--root", options_.state_dir + "/runc", "state",
                   run.container_id}) == 0) {
      run.created = true;
      run.reported = false;
    } else {
      run.retry_at = now + kCreatePoll;
    }
  }
  if (run.state == State::kExited && !run.drained) {
    // Each process of the group reaped syncs this Pod again.
    if (run.pid > 0 && kill(-run.pid, 0) == 0) return;
    run.drained = true;
    {
      common::MutexLock lock(&mu_);
      groups_.erase(run.pid);
    }
    CleanUpContainer(run);
  }
  if (!kube::MetadataField(*pod, "deletionTimestamp").empty()) {
    Terminate(*pod, run);
    return;
  }
  if (run.state == State::kExited && run.drained && RestartDue(*pod, run)) {
    // Back to waiting, as the kubelet's CrashLoopBackOff: the Pod stays Running meanwhile.
    run.last_terminated = {{"exitCode", run.exit_code},
                           {"reason", run.terminated_reason},
                           {"startedAt", run.started_at.empty() ? run.finished_at : run.started_at},
                           {"finishedAt", run.finished_at}};
    if (!run.terminated_message.empty()) run.last_terminated["message"] = run.terminated_message;
    const auto backoff = options_.restart_backoff * (1 << std::min(run.restart_count, 4));
    ++run.restart_count;
    run.state = State::kWaiting;
    run.pid = -1;
    run.drained = false;
    run.kill_at.reset();
    run.killed = false;
    run.terminated_message.clear();
    run.retry_at = now + backoff;
    SLOG(kInfo) << "test_node_restart_due pod=" << key << " restart_count=" << run.restart_count
                << " backoff_ms=" << backoff.count();
    ReportWaiting(*pod, run, "CrashLoopBackOff",
                  absl::StrCat("back-off ", backoff.count(), "ms restarting failed container"));
    return;
  }
  if (run.state == State::kWaiting && (!run.attempted || retry_due)) {
    run.attempted = true;
    StartPod(*pod, run);
  } else if (run.state != State::kWaiting && !run.reported &&
             (run.state != State::kRunning || run.created)) {
    Report(*pod, run);
  }
}

void TestNode::StartPod(const Json& pod, Run& run) {
  const std::string key = kube::ObjectKey(pod);
  if (options_.simulate) {
    run.started_at = Now3339();
    run.state = State::kRunning;  // pid stays -1: nothing to signal or reap
    run.reported = false;
    Report(pod, run);
    return;
  }
  const Json& container = pod.at("spec").at("containers").at(0);
  const std::string image = Str(container, "image");
  if (absl::StartsWith(image, kImagePullFailurePrefix)) {
    ReportWaiting(pod, run, "ErrImagePull",
                  absl::StrCat("pull access denied for ", image, " (stampede-test-node)"));
    return;
  }
  const OciImage* oci_image = nullptr;
  for (const OciImage& loaded : images_) {
    if (ImageMatches(loaded, image)) oci_image = &loaded;
  }
  std::vector<std::string> argv;
  for (const char* part : {"command", "args"}) {
    for (const Json& arg : container.value(part, Json::array()))
      argv.push_back(arg.get<std::string>());
  }
  if (oci_image == nullptr && (!container.contains("command") || argv.empty())) {
    ReportWaiting(pod, run, "CreateContainerConfigError",
                  "the container has no command, and stampede-test-node cannot read an image's "
                  "entrypoint");
    return;
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pod_env =
      ResolveEnv(*client_, pod, container);
  if (!pod_env.ok()) {
    ReportWaiting(pod, run, "CreateContainerConfigError", std::string(pod_env.status().message()));
    run.retry_at = Clock::now() + options_.retry_period;  // the Secret may come later
    return;
  }
  std::map<std::string, std::string> vars(pod_env->begin(), pod_env->end());
  for (std::string& arg : argv) arg = Expand(arg, vars);
  if (oci_image != nullptr) {
    absl::StatusOr<std::vector<std::string>> runc =
        PrepareContainer(pod, *oci_image, *pod_env, run);
    if (!runc.ok()) {
      CleanUpContainer(run);
      ReportWaiting(pod, run, "CreateContainerConfigError", std::string(runc.status().message()));
      // A missing Secret may come later; a refused securityContext will not, but retrying is cheap.
      run.retry_at = Clock::now() + options_.retry_period;
      return;
    }
    argv = *std::move(runc);
  } else if (!options_.bin_dir.empty()) {
    const std::string local = options_.bin_dir + "/" + argv[0].substr(argv[0].rfind('/') + 1);
    if (access(local.c_str(), X_OK) == 0) argv[0] = local;
  }
  std::map<std::string, std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const char* equals = strchr(*entry, '=');
    if (equals != nullptr) merged[std::string(*entry, equals - *entry)] = equals + 1;
  }
  merged["HOSTNAME"] = kube::MetadataField(pod, "name");
  if (oci_image == nullptr) {
    for (const auto& [name, value] : *pod_env) merged[name] = value;
  }
  std::vector<std::string> env;
  for (const auto& [name, value] : merged) env.push_back(name + "=" + value);

  const std::string log_path =
      absl::StrCat(options_.log_dir, "/", kube::MetadataField(pod, "namespace"), "_",
                   kube::MetadataField(pod, "name"), ".log");
  const int log_fd = open(
      log_path.c_str(),
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (run.restart_count == 0 ? O_TRUNC : 0), 0644);
  if (log_fd < 0) {
    ReportWaiting(pod, run, "CreateContainerError",
                  absl::StrCat("cannot open ", log_path, ": ", strerror(errno)));
    run.retry_at = Clock::now() + options_.retry_period;
    return;
  }
  run.started_at = Now3339();
  run.log_path = log_path;
  absl::StatusOr<pid_t> pid;
  {
    // Held across fork and record, so the reaper cannot see the exit before the pid is known.
    common::MutexLock lock(&mu_);
    pid = Spawn(argv, env, oci_image != nullptr ? "" : Str(container, "workingDir"), log_fd);
    if (pid.ok()) {
      children_.insert(*pid);
      groups_[*pid] = key;
      ++spawned_;
      cv_.SignalAll();
    }
  }
  close(log_fd);
  run.reported = false;
  if (pid.ok()) {
    run.state = State::kRunning;
    run.pid = *pid;
    SLOG(kInfo) << "test_node_started_pod pod=" << key << " pid=" << run.pid
                << " program=" << argv[0] << " container=" << run.container_id;
    if (oci_image != nullptr) {
      // Running once runc has made the container (SyncPod asks `runc state`), as the kubelet
      // reports Running once the runtime has started it.
      run.created = false;
      run.retry_at = Clock::now() + kCreatePoll;
      ReportWaiting(pod, run, "ContainerCreating", "runc is creating the container");
      return;
    }
  } else {
    run.state = State::kExited;
    run.exit_code = 128;
    run.terminated_reason = "StartError";
    run.terminated_message = std::string(pid.status().message());
    run.finished_at = run.started_at;
    SLOG(kWarning) << "test_node_start_failed pod=" << key << " error=\"" << pid.status().message()
                   << "\"";
  }
  Report(pod, run);
}

absl::StatusOr<std::vector<std::string>> TestNode::PrepareContainer(
    const Json& pod, const OciImage& image,
    const std::vector<std::pair<std::string, std::string>>& pod_env, Run& run) {
  const Json& container = pod.at("spec").at("containers").at(0);
  const std::string uid = kube::MetadataField(pod, "uid");
  run.container_id = absl::StrCat(uid.substr(0, 8), "-", run.restart_count);
  run.bundle = absl::StrCat(options_.state_dir, "/containers/", run.container_id);
  run.image_id =
      absl::StrCat(image.ref.substr(0, image.ref.rfind(':')), "@", image.manifest_digest);
  std::error_code error;
  std::filesystem::remove_all(run.bundle, error);
  for (const char* sub : {"/rootfs", "/upper", "/work"}) {
    std::filesystem::create_directories(run.bundle + sub, error);
    if (error)
      return absl::InternalError(absl::StrCat("mkdir ", run.bundle, sub, ": ", error.message()));
  }
  // The image stays untouched: each container writes to an overlay of its own.
  const std::string overlay = absl::StrCat("lowerdir=", image.rootfs, ",upperdir=", run.bundle,
                                           "/upper,workdir=", run.bundle, "/work");
  if (mount("overlay", (run.bundle + "/rootfs").c_str(), "overlay", 0, overlay.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("mount overlay on ", run.bundle, "/rootfs: ", strerror(errno)));
  }

  // Volumes live as long as the Pod: an emptyDir keeps its files across restarts.
  ContainerInput input;
  const std::string volumes = absl::StrCat(options_.state_dir, "/volumes/", uid);
  for (const Json& volume : pod.at("spec").value("volumes", Json::array())) {
    const std::string name = Str(volume, "name");
    VolumeSource source;
    source.host_path = volumes + "/" + name;
    if (volume.contains("emptyDir")) {
      const Json& empty_dir = volume["emptyDir"];
      source.memory = Str(empty_dir, "medium") == "Memory";
      if (empty_dir.contains("sizeLimit")) {
        const Json& limit = empty_dir["sizeLimit"];
        absl::StatusOr<double> bytes =
            ParseQuantity(limit.is_string() ? limit.get<std::string>() : limit.dump());
        if (!bytes.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("volume ", name, ": sizeLimit: ", bytes.status().message()));
        }
        source.size_limit = static_cast<int64_t>(*bytes);
      }
      std::filesystem::create_directories(source.host_path, error);
      chmod(source.host_path.c_str(), 0777);  // as the kubelet makes an emptyDir
    } else if (volume.contains("secret") || volume.contains("configMap")) {
      source.read_only = true;
      if (!std::filesystem::exists(source.host_path)) {
        const std::string partial = source.host_path + ".partial";
        std::filesystem::remove_all(partial, error);
        std::filesystem::create_directories(partial, error);
        RETURN_IF_ERROR(FillKeyVolume(*client_, pod, volume, partial));
        std::filesystem::rename(partial, source.host_path, error);
        if (error) return absl::InternalError(absl::StrCat("volume ", name, ": ", error.message()));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("volume ", name,
                       ": only emptyDir, secret and configMap volumes are supported by "
                       "stampede-test-node"));
    }
    input.volumes[name] = source;
  }

  const auto [api_host, api_port] = HostAndPort(options_.api_server);
  input.pod = &pod;
  input.container = &container;
  input.image = &image;
  std::map<std::string, std::string> vars(pod_env.begin(), pod_env.end());
  for (const char* part : {"command", "args"}) {
    std::vector<std::string>& into = std::string(part) == "command" ? input.command : input.args;
    for (const Json& arg : container.value(part, Json::array())) {
      into.push_back(Expand(arg.get<std::string>(), vars));
    }
  }
  input.node_env = {{"HOSTNAME", kube::MetadataField(pod, "name")},
                    {"KUBERNETES_SERVICE_HOST", api_host},
                    {"KUBERNETES_SERVICE_PORT", api_port},
                    {"KUBERNETES_SERVICE_PORT_HTTPS", api_port}};
  input.pod_env = pod_env;
  input.cgroup_path = "stampede-test-node/" + run.container_id;
  absl::StatusOr<Json> spec = ContainerSpec(input);
  if (!spec.ok()) return spec.status();
  const std::string config = run.bundle + "/config.json";
  RETURN_IF_ERROR(WriteFileAs(config, spec->dump(2), 0600));
  return std::vector<std::string>{options_.runc,   "--root",   options_.state_dir + "/runc",
                                  "run",           "--bundle", run.bundle,
                                  run.container_id};
}

void TestNode::CleanUpContainer(Run& run, bool runc_delete) {
  if (run.bundle.empty()) return;  // process mode, or cleaned up already
  // `runc run` removes its container when it ends on its own; not when it was killed.
  const int deleted = !runc_delete
                          ? 0
                          : RunHelper({options_.runc, "--root", options_.state_dir + "/runc",
                                       "delete", "--force", run.container_id});
  if (umount2((run.bundle + "/rootfs").c_str(), MNT_DETACH) != 0 && errno != EINVAL &&
      errno != ENOENT) {
    SLOG(kWarning) << "test_node_umount_failed bundle=" << run.bundle << " error=\""
                   << strerror(errno) << "\"";
  }
  std::error_code error;
  std::filesystem::remove_all(run.bundle, error);
  SLOG(kInfo) << "test_node_container_removed container=" << run.container_id
              << " runc_delete_exit=" << deleted;
  run.bundle.clear();  // the id stays for the status report
}

int TestNode::RunHelper(std::vector<std::string> argv) {
  const int log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  absl::StatusOr<pid_t> pid;
  common::MutexLock lock(&mu_);
  pid = Spawn(argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "", log_fd);
  close(log_fd);
  if (!pid.ok()) return -1;
  // The reaper collects its exit status.
  children_.insert(*pid);
  helpers_.insert(*pid);
  ++spawned_;
  cv_.SignalAll();
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (helpers_.count(*pid) > 0 && Clock::now() < deadline) cv_.WaitUntil(&mu_, deadline);
  if (helpers_.count(*pid) > 0) {
    kill(-*pid, SIGKILL);
    return -1;
  }
  const int status = exits_[*pid];
  exits_.erase(*pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool TestNode::RestartDue(const Json& pod, const Run& run) const {
  const std::string policy = Str(pod.at("spec"), "restartPolicy");
  if (policy == "Always") return true;
  return policy == "OnFailure" && run.exit_code != 0;
}

void TestNode::Terminate(const Json& pod, Run& run) {
  const std::string key = kube::ObjectKey(pod);
  const auto now = Clock::now();
  if (run.state == State::kRunning && run.pid <= 0) {  // simulated: nothing runs
    run.state = State::kExited;
    run.drained = true;
  }
  if (run.state == State::kRunning) {
    if (!run.kill_at.has_value()) {
      const Json& metadata = pod.at("metadata");
      int64_t seconds = pod.at("spec").value("terminationGracePeriodSeconds", int64_t{30});
      if (metadata.contains("deletionGracePeriodSeconds")) {
        seconds = metadata["deletionGracePeriodSeconds"].get<int64_t>();
      }
      const auto grace =
          std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds), options_.max_grace);
      run.kill_at = now + grace;
      run.retry_at = run.kill_at;
      kill(-run.pid, SIGTERM);
      SLOG(kInfo) << "test_node_terminate pod=" << key << " pid=" << run.pid
                  << " grace_ms=" << grace.count();
    } else if (*run.kill_at <= now && !run.killed) {
      run.killed = true;
      kill(-run.pid, SIGKILL);
      SLOG(kInfo) << "test_node_kill pod=" << key << " pid=" << run.pid << " reason=grace_expired";
    }
    return;  // the exit syncs this Pod again
  }
  // Gone already, or never started: finish the deletion the kubelet's way.
  ApiWrite write{key,
                 PodPath(pod),
                 {{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", run.uid}}}},
                 /*is_delete=*/true};
  if (options_.simulate) {
    if (run.delete_queued) return;
    run.delete_queued = true;
    Queue(std::move(write));
    return;
  }
  if (!Send(write)) run.retry_at = now + options_.retry_period;
}

void TestNode::Report(const Json& pod, Run& run) {
  const Json& container = pod.at("spec").at("containers").at(0);
  const std::string image = Str(container, "image");
  const std::string container_id = run.container_id.empty()
                                       ? absl::StrCat(kIdPrefix, run.pid)
                                       : absl::StrCat(kRuncIdPrefix, run.container_id);
  Json container_status = {
      {"name", Str(container, "name")},
      {"image", image},
      {"imageID", run.image_id.empty() ? absl::StrCat(kIdPrefix, image) : run.image_id},
      {"containerID", container_id},
      {"restartCount", run.restart_count}};
  if (!run.last_terminated.is_null()) {
    container_status["lastState"] = {{"terminated", run.last_terminated}};
  }
  Json status = {{"hostIP", kHostIp},
                 {"podIP", kHostIp},
                 {"podIPs", {{{"ip", kHostIp}}}},
                 {"startTime", run.accepted_at}};
  if (run.state == State::kRunning) {
    container_status["ready"] = true;
    container_status["started"] = true;
    container_status["state"] = {{"running", {{"startedAt", run.started_at}}}};
    status["phase"] = "Running";
    status["conditions"] = {Condition("Initialized", true), Condition("Ready", true),
                            Condition("ContainersReady", true), Condition("PodScheduled", true)};
  } else {
    Json terminated = {{"exitCode", run.exit_code},
                       {"reason", run.terminated_reason},
                       {"startedAt", run.started_at.empty() ? run.finished_at : run.started_at},
                       {"finishedAt", run.finished_at}};
    if (run.pid > 0) terminated["containerID"] = container_id;
    if (!run.terminated_message.empty()) terminated["message"] = run.terminated_message;
    container_status["ready"] = false;
    container_status["started"] = false;
    container_status["state"] = {{"terminated", terminated}};
    if (run.pid <= 0) container_status.erase("containerID");
    status["phase"] = run.exit_code == 0 ? "Succeeded" : "Failed";
    status["conditions"] = {
        Condition("Initialized", true), Condition("Ready", false, "PodCompleted"),
        Condition("ContainersReady", false, "PodCompleted"), Condition("PodScheduled", true)};
  }
  status["containerStatuses"] = {container_status};
  if (Patch(pod, run, status)) run.reported = true;
}

void TestNode::ReportWaiting(const Json& pod, Run& run, const std::string& reason,
                             const std::string& message) {
  const std::string what = reason + ": " + message;
  if (run.waiting_reported == what) return;
  const Json& container = pod.at("spec").at("containers").at(0);
  Json container_status = {{"name", Str(container, "name")},
                           {"image", Str(container, "image")},
                           {"imageID", run.image_id},
                           {"restartCount", run.restart_count},
                           {"ready", false},
                           {"started", false},
                           {"state", {{"waiting", {{"reason", reason}, {"message", message}}}}}};
  if (!run.last_terminated.is_null()) {
    container_status["lastState"] = {{"terminated", run.last_terminated}};
  }
  // A container waiting to be restarted leaves its Pod Running.
  const Json status = {
      {"phase", run.restart_count > 0 ? "Running" : "Pending"},
      {"hostIP", kHostIp},
      {"podIP", kHostIp},
      {"podIPs", {{{"ip", kHostIp}}}},
      {"startTime", run.accepted_at},
      {"conditions",
       {Condition("Initialized", true), Condition("Ready", false, "ContainersNotReady"),
        Condition("ContainersReady", false, "ContainersNotReady"),
        Condition("PodScheduled", true)}},
      {"containerStatuses", {container_status}}};
  SLOG(kInfo) << "test_node_waiting pod=" << kube::ObjectKey(pod) << " reason=" << reason
              << " message=\"" << message << "\"";
  if (Patch(pod, run, status)) run.waiting_reported = what;
}

bool TestNode::Patch(const Json& pod, Run& run, const Json& status) {
  // The uid makes the patch fail rather than land on a new Pod of the same name.
  ApiWrite write{kube::ObjectKey(pod),
                 PodPath(pod) + "/status",
                 {{"metadata", {{"uid", run.uid}}}, {"status", status}},
                 /*is_delete=*/false};
  if (options_.simulate) {
    Queue(std::move(write));
    return true;  // a failed write is reported again (RetryFailedWrites)
  }
  if (Send(write)) return true;
  run.retry_at = Clock::now() + options_.retry_period;
  return false;
}

}  // namespace stampede::e2e
