// What stampede-test-node needs to run a Pod's container as a real OCI container with runc: the
// images it has loaded (the archives scripts/images writes) and the runtime spec (config.json) a
// kubelet with containerd and runc would give a container.
//
// LoadImageArchive extracts an archive once and unpacks its layers in order into one root file
// system, which every container of that image shares read-only (the node mounts an overlay per
// container over it). Whiteout files are not applied: our images have none.
//
// ContainerSpec maps the Pod onto the runtime spec:
//   - process: command/args over the image's entrypoint/cmd (Kubernetes' rules), $(VAR) already
//     expanded by the caller; env (image, then the node's, then the Pod's); workingDir;
//     runAsUser/runAsGroup (container over Pod over image), fsGroup and supplementalGroups as
//     additional groups; runAsNonRoot refuses a container that would run as uid 0, or as a user
//     name it cannot check, with the kubelet's wording; allowPrivilegeEscalation=false gives
//     noNewPrivileges; capabilities: containerd's default set, minus drop (ALL drops all), plus
//     add. Resource limits (rlimits) are the node's own, as runc inherits them.
//   - root: readOnlyRootFilesystem.
//   - seccomp: RuntimeDefault (container over Pod) gives a profile that allows everything except
//     the syscalls Docker's default profile denies to an unprivileged container (kernel modules,
//     kexec, reboot, mount, namespaces, bpf, perf, ptrace, keyrings, clock setting...); it is a
//     deny list, where Docker's is an allow list. io_uring stays allowed here, though containerd
//     2.x denies it by default. Localhost profiles are refused.
//   - mounts: /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only), the host's
//     /etc/hosts and /etc/resolv.conf (read-only, as for hostNetwork Pods), and the volumes the
//     container mounts, from the host folders the caller prepared (secret and configMap volumes
//     read-only; emptyDir read-write, tmpfs for medium Memory).
//   - namespaces: pid, ipc and mount of its own; network and UTS of the host (every Pod is
//     hostNetwork here, so every address stays on loopback).
//   - resources: limits.cpu as a CFS quota (period 100 ms), requests.cpu as shares,
//     limits.memory as the memory limit, in the cgroup `cgroup_path`.
// Refused (CreateContainerConfigError): privileged, Localhost seccomp, unknown capabilities,
// volumes of other kinds, a mount of an undefined volume, malformed quantities.
#ifndef STAMPEDE_TESTS_E2E_OCI_RUNTIME_H_
#define STAMPEDE_TESTS_E2E_OCI_RUNTIME_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/kube/client.h"

namespace stampede::e2e {

struct OciImage {
  std::string ref;              // what a Pod names it by: ghcr.io/stampede-dev/stampede:0.1.0
  std::string manifest_digest;  // sha256:<hex>
  std::string rootfs;           // the unpacked layers
  std::string user;             // the config's User: "", "uid", "uid:gid" or a name
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir;
};

// Loads `archive` (an OCI image layout tar with one image whose index.json names it by
// org.opencontainers.image.ref.name) into a new folder under `state_dir`.
absl::StatusOr<OciImage> LoadImageArchive(const std::string& archive, const std::string& state_dir);

// Whether a Pod's `image` field names `image`: its reference, its repository with the manifest
// digest (repo@sha256:...), or both (repo:tag@sha256:...). A reference without a tag means
// :latest, which no loaded image has.
bool ImageMatches(const OciImage& image, const std::string& pod_image);

// A host folder the node prepared for one of the Pod's volumes.
struct VolumeSource {
  std::string host_path;
  bool read_only = false;  // secret and configMap volumes
  bool memory = false;     // an emptyDir with medium Memory: a tmpfs instead of host_path
  std::optional<int64_t> size_limit;
};

struct ContainerInput {
  const kube::Json* pod = nullptr;
  const kube::Json* container = nullptr;
  const OciImage* image = nullptr;
  // The process's arguments already resolved by the caller, when it has any (command or args);
  // empty: the image's entrypoint and cmd.
  std::vector<std::string> command, args;
  // Set by the node (HOSTNAME, KUBERNETES_SERVICE_HOST...), then the Pod's env, in order.
  std::vector<std::pair<std::string, std::string>> node_env, pod_env;
  std::map<std::string, VolumeSource> volumes;  // by volume name
  std::string cgroup_path;                      // relative to runc's own cgroup
};

// The runtime spec of that container, with root.path "rootfs"; an InvalidArgument error (its
// message names the field) for what a kubelet would refuse or this node does not support.
absl::StatusOr<kube::Json> ContainerSpec(const ContainerInput& input);

// A Kubernetes quantity in its base unit: "500m" cpu is 0.5, "128Mi" is 134217728.
absl::StatusOr<double> ParseQuantity(const std::string& text);

}  // namespace stampede::e2e

#endif  // STAMPEDE_TESTS_E2E_OCI_RUNTIME_H_
