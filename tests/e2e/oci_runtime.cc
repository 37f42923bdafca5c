#include "tests/e2e/oci_runtime.h"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace stampede::e2e {
namespace {

using kube::Json;

absl::StatusOr<Json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

// Runs a tool to its end. Only for Start, before the node's reaper waits for every child.
absl::Status RunTool(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid;
  if (const int error = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ)) {
    return absl::UnavailableError(absl::StrCat("cannot run ", argv[0], ": ", strerror(error)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " failed"));
  }
  return absl::OkStatus();
}

std::string BlobPath(const std::string& layout, const std::string& digest) {
  return absl::StrCat(layout, "/blobs/", absl::StrReplaceAll(digest, {{":", "/"}}));
}

std::vector<std::string> Strings(const Json& value) {
  std::vector<std::string> out;
  if (value.is_array()) {
    for (const Json& item : value) {
      if (item.is_string()) out.push_back(item.get<std::string>());
    }
  }
  return out;
}

const Json* Field(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// The securityContext field `key` of the container, else of the Pod.
const Json* Security(const Json& pod, const Json& container, const char* key) {
  if (const Json* context = Field(container, "securityContext")) {
    if (const Json* value = Field(*context, key)) return value;
  }
  if (const Json* spec = Field(pod, "spec")) {
    if (const Json* context = Field(*spec, "securityContext")) return Field(*context, key);
  }
  return nullptr;
}

// containerd's default capability set.
const std::vector<std::string>& DefaultCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return *caps;
}

const std::set<std::string>& KnownCapabilities() {
  static const auto* caps =
      new std::set<std::string>{"CAP_AUDIT_CONTROL",   "CAP_AUDIT_READ",   "CAP_AUDIT_WRITE",
                                "CAP_BLOCK_SUSPEND",   "CAP_BPF",          "CAP_CHECKPOINT_RESTORE",
                                "CAP_CHOWN",           "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                                "CAP_FOWNER",          "CAP_FSETID",       "CAP_IPC_LOCK",
                                "CAP_IPC_OWNER",       "CAP_KILL",         "CAP_LEASE",
                                "CAP_LINUX_IMMUTABLE", "CAP_MAC_ADMIN",    "CAP_MAC_OVERRIDE",
                                "CAP_MKNOD",           "CAP_NET_ADMIN",    "CAP_NET_BIND_SERVICE",
                                "CAP_NET_BROADCAST",   "CAP_NET_RAW",      "CAP_PERFMON",
                                "CAP_SETFCAP",         "CAP_SETGID",       "CAP_SETPCAP",
                                "CAP_SETUID",          "CAP_SYS_ADMIN",    "CAP_SYS_BOOT",
                                "CAP_SYS_CHROOT",      "CAP_SYS_MODULE",   "CAP_SYS_NICE",
                                "CAP_SYS_PACCT",       "CAP_SYS_PTRACE",   "CAP_SYS_RAWIO",
                                "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",     "CAP_SYS_TTY_CONFIG",
                                "CAP_SYSLOG",          "CAP_WAKE_ALARM"};
  return *caps;
}

absl::StatusOr<std::vector<std::string>> Capabilities(const Json& container) {
  std::vector<std::string> caps = DefaultCapabilities();
  const Json* context = Field(container, "securityContext");
  const Json* wanted = context != nullptr ? Field(*context, "capabilities") : nullptr;
  if (wanted == nullptr) return caps;
  auto name = [&](const std::string& entry) -> absl::StatusOr<std::string> {
    std::string cap = absl::AsciiStrToUpper(entry);
    if (cap == "ALL") return cap;
    if (!absl::StartsWith(cap, "CAP_")) cap = "CAP_" + cap;
    if (KnownCapabilities().count(cap) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("securityContext.capabilities: unknown capability \"", entry, "\""));
    }
    return cap;
  };
  for (const std::string& entry : Strings(wanted->value("drop", Json()))) {
    absl::StatusOr<std::string> cap = name(entry);
    if (!cap.ok()) return cap.status();
    if (*cap == "ALL") {
      caps.clear();
    } else {
      caps.erase(std::remove(caps.begin(), caps.end(), *cap), caps.end());
    }
  }
  for (const std::string& entry : Strings(wanted->value("add", Json()))) {
    absl::StatusOr<std::string> cap = name(entry);
    if (!cap.ok()) return cap.status();
    const std::vector<std::string> added =
        *cap == "ALL"
            ? std::vector<std::string>(KnownCapabilities().begin(), KnownCapabilities().end())
            : std::vector<std::string>{*cap};
    for (const std::string& one : added) {
      if (std::find(caps.begin(), caps.end(), one) == caps.end()) caps.push_back(one);
    }
  }
  return caps;
}

// The syscalls Docker's default seccomp profile keeps from a container without extra
// capabilities; everything else is allowed.
Json RuntimeDefaultSeccomp() {
  const std::vector<std::string> denied = {"acct",
                                           "add_key",
                                           "bpf",
                                           "clock_adjtime",
                                           "clock_settime",
                                           "create_module",
                                           "delete_module",
                                           "finit_module",
                                           "fsconfig",
                                           "fsmount",
                                           "fsopen",
                                           "fspick",
                                           "get_kernel_syms",
                                           "get_mempolicy",
                                           "init_module",
                                           "ioperm",
                                           "iopl",
                                           "kcmp",
                                           "kexec_file_load",
                                           "kexec_load",
                                           "keyctl",
                                           "lookup_dcookie",
                                           "mbind",
                                           "mount",
                                           "mount_setattr",
                                           "move_mount",
                                           "move_pages",
                                           "name_to_handle_at",
                                           "nfsservctl",
                                           "open_by_handle_at",
                                           "open_tree",
                                           "perf_event_open",
                                           "personality",
                                           "pivot_root",
                                           "process_vm_readv",
                                           "process_vm_writev",
                                           "ptrace",
                                           "query_module",
                                           "quotactl",
                                           "quotactl_fd",
                                           "reboot",
                                           "request_key",
                                           "set_mempolicy",
                                           "setns",
                                           "settimeofday",
                                           "stime",
                                           "swapoff",
                                           "swapon",
                                           "sysfs",
                                           "syslog",
                                           "_sysctl",
                                           "umount",
                                           "umount2",
                                           "unshare",
                                           "uselib",
                                           "userfaultfd",
                                           "ustat",
                                           "vm86",
                                           "vm86old",
                                           "vhangup"};
  return {{"defaultAction", "SCMP_ACT_ALLOW"},
          {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
          {"syscalls", {{{"names", denied}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 1}}}}};
}

// uid[:gid] of the image's User; nullopt for a name.
struct ImageUser {
  std::optional<int64_t> uid, gid;
  std::string name;  // when not numeric
};

ImageUser ParseImageUser(const std::string& user) {
  ImageUser out;
  if (user.empty()) {
    out.uid = 0;
    return out;
  }
  const std::vector<std::string> parts = absl::StrSplit(user, absl::MaxSplits(':', 1));
  int64_t value;
  if (absl::SimpleAtoi(parts[0], &value)) {
    out.uid = value;
  } else {
    out.name = parts[0];
  }
  if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &value)) out.gid = value;
  return out;
}

}  // namespace

absl::StatusOr<double> ParseQuantity(const std::string& text) {
  static const std::vector<std::pair<std::string, double>> suffixes = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"m", 1e-3},    {"k", 1e3},        {"M", 1e6},           {"G", 1e9},
      {"T", 1e12}};
  std::string number = text;
  double scale = 1;
  for (const auto& [suffix, factor] : suffixes) {
    if (absl::EndsWith(text, suffix)) {
      number = text.substr(0, text.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value;
  if (number.empty() || !absl::SimpleAtod(number, &value) || value < 0 || !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat("bad quantity \"", text, "\""));
  }
  return value * scale;
}

absl::StatusOr<OciImage> LoadImageArchive(const std::string& archive,
                                          const std::string& state_dir) {
  static int loaded = 0;
  const std::string dir = absl::StrCat(state_dir, "/image-", ++loaded);
  const std::string layout = dir + "/layout", rootfs = dir + "/rootfs";
  for (const std::string& path : {dir, layout, rootfs}) {
    if (mkdir(path.c_str(), 0755) != 0) {
      return absl::InternalError(absl::StrCat("mkdir ", path, ": ", strerror(errno)));
    }
  }
  if (absl::Status s = RunTool({"tar", "-xf", archive, "-C", layout}); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("image archive ", archive, ": ", s.message()));
  }
  absl::StatusOr<Json> index = ReadJson(layout + "/index.json");
  if (!index.ok()) return index.status();
  OciImage image;
  try {
    const Json& descriptor = index->at("manifests").at(0);
    image.manifest_digest = descriptor.at("digest").get<std::string>();
    image.ref = descriptor.at("annotations").at("org.opencontainers.image.ref.name");
    absl::StatusOr<Json> manifest = ReadJson(BlobPath(layout, image.manifest_digest));
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<Json> config =
        ReadJson(BlobPath(layout, manifest->at("config").at("digest").get<std::string>()));
    if (!config.ok()) return config.status();
    const Json settings = config->value("config", Json::object());
    image.user = settings.value("User", "");
    image.entrypoint = Strings(settings.value("Entrypoint", Json()));
    image.cmd = Strings(settings.value("Cmd", Json()));
    image.env = Strings(settings.value("Env", Json()));
    image.working_dir = settings.value("WorkingDir", "");
    for (const Json& layer : manifest->at("layers")) {
      const std::string blob = BlobPath(layout, layer.at("digest").get<std::string>());
      if (absl::Status s =
              RunTool({"tar", "-xzf", blob, "-C", rootfs, "--numeric-owner", "--same-owner", "-p"});
          !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("image ", image.ref, ": ", s.message()));
      }
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image archive ", archive, ": not an OCI layout scripts/images wrote (", e.what(), ")"));
  }
  image.rootfs = rootfs;
  return image;
}

bool ImageMatches(const OciImage& image, const std::string& pod_image) {
  if (pod_image == image.ref) return true;
  const size_t at = pod_image.find('@');
  if (at == std::string::npos) return false;
  if (pod_image.substr(at + 1) != image.manifest_digest) return false;
  const std::string name = pod_image.substr(0, at);
  const std::string repository = image.ref.substr(0, image.ref.rfind(':'));
  return name == repository || name == image.ref;
}

absl::StatusOr<Json> ContainerSpec(const ContainerInput& in) {
  const Json& pod = *in.pod;
  const Json& container = *in.container;
  const OciImage& image = *in.image;
  const std::string where = absl::StrCat("pod \"", kube::ObjectKey(pod), "\", container \"",
                                         container.value("name", ""), "\"");
  auto refuse = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(what, " (", where, ")"));
  };
  if (const Json* privileged = Security(pod, container, "privileged");
      privileged != nullptr && privileged->is_boolean() && privileged->get<bool>()) {
    return refuse("securityContext.privileged is not supported by stampede-test-node");
  }

  // The user.
  const ImageUser image_user = ParseImageUser(image.user);
  std::optional<int64_t> uid = image_user.uid, gid = image_user.gid;
  if (const Json* v = Security(pod, container, "runAsUser"); v && v->is_number_integer()) {
    uid = v->get<int64_t>();
  }
  if (const Json* v = Security(pod, container, "runAsGroup"); v && v->is_number_integer()) {
    gid = v->get<int64_t>();
  }
  if (const Json* v = Security(pod, container, "runAsNonRoot");
      v != nullptr && v->is_boolean() && v->get<bool>()) {
    if (!uid.has_value()) {
      return refuse(absl::StrCat("container has runAsNonRoot and image has non-numeric user (",
                                 image_user.name, "), cannot verify user is non-root"));
    }
    if (*uid == 0) return refuse("container has runAsNonRoot and image will run as root");
  }
  if (!uid.has_value()) {
    return refuse(absl::StrCat("image user \"", image.user,
                               "\" is a name; stampede-test-node runs numeric users only"));
  }
  Json additional = Json::array();
  if (const Json* spec = Field(pod, "spec")) {
    if (const Json* context = Field(*spec, "securityContext")) {
      if (const Json* fs_group = Field(*context, "fsGroup")) additional.push_back(*fs_group);
      if (const Json* groups = Field(*context, "supplementalGroups")) {
        for (const Json& group : *groups) additional.push_back(group);
      }
    }
  }

  // Arguments: Kubernetes' rules over the image's entrypoint and cmd.
  std::vector<std::string> argv;
  if (!in.command.empty()) {
    argv = in.command;
    argv.insert(argv.end(), in.args.begin(), in.args.end());
  } else {
    argv = image.entrypoint;
    const std::vector<std::string>& rest = container.contains("args") ? in.args : image.cmd;
    argv.insert(argv.end(), rest.begin(), rest.end());
  }
  if (argv.empty()) return refuse("no command: neither the container nor the image has one");

  // Environment: later entries win.
  std::vector<std::string> env;
  std::map<std::string, size_t> position;
  auto set_env = [&](const std::string& name, const std::string& value) {
    auto [it, inserted] = position.emplace(name, env.size());
    if (inserted) {
      env.push_back(name + "=" + value);
    } else {
      env[it->second] = name + "=" + value;
    }
  };
  for (const std::string& entry : image.env) {
    const size_t equals = entry.find('=');
    if (equals != std::string::npos) set_env(entry.substr(0, equals), entry.substr(equals + 1));
  }
  for (const auto& [name, value] : in.node_env) set_env(name, value);
  for (const auto& [name, value] : in.pod_env) set_env(name, value);

  absl::StatusOr<std::vector<std::string>> caps = Capabilities(container);
  if (!caps.ok()) return refuse(std::string(caps.status().message()));
  const Json* escalation = Security(pod, container, "allowPrivilegeEscalation");
  const bool no_new_privileges =
      escalation != nullptr && escalation->is_boolean() && !escalation->get<bool>();
  const Json* read_only = Security(pod, container, "readOnlyRootFilesystem");

  std::string cwd = container.value("workingDir", "");
  if (cwd.empty()) cwd = image.working_dir.empty() ? "/" : image.working_dir;

  Json process = {
      {"terminal", false},
      {"user", {{"uid", *uid}, {"gid", gid.value_or(0)}, {"additionalGids", additional}}},
      {"args", argv},
      {"env", env},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", *caps},
        {"effective", *caps},
        {"permitted", *caps},
        {"inheritable", Json::array()}}},
      {"noNewPrivileges", no_new_privileges}};

  Json mounts = {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
                 {{"destination", "/dev"},
                  {"type", "tmpfs"},
                  {"source", "tmpfs"},
                  {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
                 {{"destination", "/dev/pts"},
                  {"type", "devpts"},
                  {"source", "devpts"},
                  {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
                 {{"destination", "/dev/shm"},
                  {"type", "tmpfs"},
                  {"source", "shm"},
                  {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
                 {{"destination", "/dev/mqueue"},
                  {"type", "mqueue"},
                  {"source", "mqueue"},
                  {"options", {"nosuid", "noexec", "nodev"}}},
                 {{"destination", "/sys"},
                  {"type", "sysfs"},
                  {"source", "sysfs"},
                  {"options", {"nosuid", "noexec", "nodev", "ro"}}},
                 {{"destination", "/etc/hosts"},
                  {"type", "bind"},
                  {"source", "/etc/hosts"},
                  {"options", {"rbind", "ro"}}},
                 {{"destination", "/etc/resolv.conf"},
                  {"type", "bind"},
                  {"source", "/etc/resolv.conf"},
                  {"options", {"rbind", "ro"}}}};
  for (const Json& mount : container.value("volumeMounts", Json::array())) {
    const std::string name = mount.value("name", "");
    const std::string path = mount.value("mountPath", "");
    auto volume = in.volumes.find(name);
    if (volume == in.volumes.end()) {
      return refuse(absl::StrCat("volumeMounts ", name, ": no such volume in the Pod"));
    }
    if (path.empty() || path[0] != '/') {
      return refuse(absl::StrCat("volumeMounts ", name, ": mountPath must be absolute"));
    }
    const bool ro = volume->second.read_only || mount.value("readOnly", false);
    if (volume->second.memory) {
      Json options = {"nosuid", "nodev", "mode=1777"};
      if (volume->second.size_limit.has_value()) {
        options.push_back(absl::StrCat("size=", *volume->second.size_limit));
      }
      if (ro) options.push_back("ro");
      mounts.push_back(
          {{"destination", path}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", options}});
    } else {
      mounts.push_back({{"destination", path},
                        {"type", "bind"},
                        {"source", volume->second.host_path},
                        {"options", {"rbind", ro ? "ro" : "rw"}}});
    }
  }

  Json resources = Json::object();
  const Json limits = container.value("resources", Json::object()).value("limits", Json::object());
  const Json requests =
      container.value("resources", Json::object()).value("requests", Json::object());
  auto quantity = [&](const Json& from, const char* key) -> absl::StatusOr<std::optional<double>> {
    if (!from.contains(key)) return std::optional<double>();
    const Json& value = from[key];
    absl::StatusOr<double> parsed =
        value.is_number() ? value.get<double>()
                          : ParseQuantity(value.is_string() ? value.get<std::string>() : "");
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("resources ", key, ": ", parsed.status().message()));
    }
    return std::optional<double>(*parsed);
  };
  absl::StatusOr<std::optional<double>> cpu_limit = quantity(limits, "cpu");
  absl::StatusOr<std::optional<double>> cpu_request = quantity(requests, "cpu");
  absl::StatusOr<std::optional<double>> memory_limit = quantity(limits, "memory");
  for (const auto* q : {&cpu_limit, &cpu_request, &memory_limit}) {
    if (!q->ok()) return refuse(std::string(q->status().message()));
  }
  if (cpu_limit->has_value()) {
    resources["cpu"]["period"] = 100000;
    resources["cpu"]["quota"] = std::max<int64_t>(1000, std::llround(**cpu_limit * 100000));
  }
  const std::optional<double> shares_from = cpu_request->has_value() ? *cpu_request : *cpu_limit;
  if (shares_from.has_value()) {
    resources["cpu"]["shares"] = std::max<int64_t>(2, std::llround(*shares_from * 1024));
  }
  if (memory_limit->has_value()) resources["memory"]["limit"] = std::llround(**memory_limit);

  Json linux = {{"namespaces", {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "mount"}}}},
                {"cgroupsPath", in.cgroup_path},
                {"resources", resources},
                {"maskedPaths",
                 {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                  "/proc/scsi"}},
                {"readonlyPaths",
                 {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}};
  if (const Json* seccomp = Security(pod, container, "seccompProfile")) {
    const std::string type = seccomp->value("type", "");
    if (type == "RuntimeDefault") {
      linux["seccomp"] = RuntimeDefaultSeccomp();
    } else if (type != "Unconfined") {
      return refuse(
          absl::StrCat("seccompProfile type ", type, " is not supported by stampede-test-node"));
    }
  }
  return Json{{"ociVersion", "1.0.2"},
              {"process", process},
              {"root",
               {{"path", "rootfs"},
                {"readonly", read_only && read_only->is_boolean() && read_only->get<bool>()}}},
              {"mounts", mounts},
              {"linux", linux}};
}

}  // namespace stampede::e2e
