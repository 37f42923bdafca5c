// The runtime spec stampede-test-node gives a container (unit test: no runc, no cluster): what
// each securityContext field, volume and limit becomes, and what is refused with the field named.
// e2e_container_test checks the same settings in the kernel, on real containers.
#include "tests/e2e/oci_runtime.h"

#include <gtest/gtest.h>

#include <string>

namespace stampede::e2e {
namespace {

using kube::Json;

OciImage AgentImage() {
  OciImage image;
  image.ref = "ghcr.io/stampede-dev/stampede-agent:0.1.0";
  image.manifest_digest = "sha256:" + std::string(64, 'a');
  image.user = "65532:65532";
  image.entrypoint = {"/usr/local/bin/stampede-agent"};
  image.cmd = {"--help"};
  image.env = {"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"};
  image.working_dir = "/home/nonroot";
  return image;
}

struct Fixture {
  Json pod;
  Json container;
  OciImage image = AgentImage();

  explicit Fixture(const std::string& container_json, const std::string& pod_spec_extra = "{}") {
    container = Json::parse(container_json);
    pod = {{"metadata", {{"name", "p"}, {"namespace", "ns"}}},
           {"spec", Json::parse(pod_spec_extra)}};
    pod["spec"]["containers"] = Json::array({container});
  }
  absl::StatusOr<Json> Spec(std::map<std::string, VolumeSource> volumes = {}) {
    ContainerInput input;
    input.pod = &pod;
    input.container = &container;
    input.image = &image;
    input.volumes = std::move(volumes);
    input.cgroup_path = "stampede-test-node/x";
    input.pod_env = {{"PATH", "/bin"}};
    for (const char* part : {"command", "args"}) {
      for (const Json& arg : container.value(part, Json::array())) {
        (std::string(part) == "command" ? input.command : input.args).push_back(arg);
      }
    }
    return ContainerSpec(input);
  }
};

TEST(ContainerSpecTest, TheImageDecidesWhatThePodLeavesOpen) {
  Fixture f(R"({"name": "agent", "image": "x"})");
  absl::StatusOr<Json> spec = f.Spec();
  ASSERT_TRUE(spec.ok()) << spec.status();
  const Json& process = (*spec)["process"];
  EXPECT_EQ(process["args"], Json::parse(R"(["/usr/local/bin/stampede-agent", "--help"])"));
  EXPECT_EQ(process["user"]["uid"], 65532);
  EXPECT_EQ(process["user"]["gid"], 65532);
  EXPECT_EQ(process["cwd"], "/home/nonroot");
  // The Pod's PATH wins over the image's; the image's other variables stay.
  EXPECT_EQ(process["env"][0], "PATH=/bin");
  EXPECT_EQ(process["env"][1], "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt");
  EXPECT_EQ(process["noNewPrivileges"], false);
  EXPECT_EQ((*spec)["root"]["readonly"], false);
  EXPECT_FALSE((*spec)["linux"].contains("seccomp")) << "Unconfined unless asked, as in 1.20";
  EXPECT_EQ(process["capabilities"]["bounding"].size(), 14u) << "containerd's default set";
  // Args without a command replace the image's cmd, not its entrypoint.
  Fixture args(R"({"name": "agent", "image": "x", "args": ["bench"]})");
  EXPECT_EQ(args.Spec()->at("process")["args"],
            Json::parse(R"(["/usr/local/bin/stampede-agent", "bench"])"));
}

TEST(ContainerSpecTest, SecurityContextContainerOverPod) {
  Fixture f(R"({"name": "agent", "image": "x", "securityContext": {
                  "runAsUser": 1000, "allowPrivilegeEscalation": false,
                  "readOnlyRootFilesystem": true,
                  "capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]}}})",
            R"({"securityContext": {"runAsUser": 2000, "runAsGroup": 3000, "fsGroup": 4000,
                "supplementalGroups": [5000], "seccompProfile": {"type": "RuntimeDefault"}}})");
  absl::StatusOr<Json> spec = f.Spec();
  ASSERT_TRUE(spec.ok()) << spec.status();
  const Json& process = (*spec)["process"];
  EXPECT_EQ(process["user"]["uid"], 1000);
  EXPECT_EQ(process["user"]["gid"], 3000);
  EXPECT_EQ(process["user"]["additionalGids"], Json::parse("[4000, 5000]"));
  EXPECT_EQ(process["noNewPrivileges"], true);
  EXPECT_EQ(process["capabilities"]["bounding"], Json::parse(R"(["CAP_NET_BIND_SERVICE"])"));
  EXPECT_EQ((*spec)["root"]["readonly"], true);
  EXPECT_EQ((*spec)["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
  const std::string denied = (*spec)["linux"]["seccomp"]["syscalls"][0]["names"].dump();
  for (const char* syscall : {"\"mount\"", "\"kexec_load\"", "\"bpf\"", "\"unshare\""}) {
    EXPECT_NE(denied.find(syscall), std::string::npos) << syscall;
  }
}

TEST(ContainerSpecTest, VolumesAndLimits) {
  Fixture f(R"({"name": "agent", "image": "x",
                "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"},
                              "requests": {"cpu": "250m"}},
                "volumeMounts": [{"name": "token", "mountPath": "/var/run/token"},
                                 {"name": "scratch", "mountPath": "/tmp"},
                                 {"name": "shm", "mountPath": "/cache", "readOnly": true}]})");
  std::map<std::string, VolumeSource> volumes;
  volumes["token"] = {"/state/volumes/uid/token", /*read_only=*/true, false, std::nullopt};
  volumes["scratch"] = {"/state/volumes/uid/scratch", false, false, std::nullopt};
  volumes["shm"] = {"", false, /*memory=*/true, int64_t{8 << 20}};
  absl::StatusOr<Json> spec = f.Spec(volumes);
  ASSERT_TRUE(spec.ok()) << spec.status();
  std::map<std::string, Json> mounts;
  for (const Json& mount : (*spec)["mounts"]) mounts[mount["destination"]] = mount;
  EXPECT_EQ(mounts["/var/run/token"]["source"], "/state/volumes/uid/token");
  EXPECT_EQ(mounts["/var/run/token"]["options"], Json::parse(R"(["rbind", "ro"])"));
  EXPECT_EQ(mounts["/tmp"]["options"], Json::parse(R"(["rbind", "rw"])"));
  EXPECT_EQ(mounts["/cache"]["type"], "tmpfs");
  EXPECT_EQ(mounts["/cache"]["options"],
            Json::parse(R"(["nosuid", "nodev", "mode=1777", "size=8388608", "ro"])"));
  const Json& resources = (*spec)["linux"]["resources"];
  EXPECT_EQ(resources["cpu"]["quota"], 150000);
  EXPECT_EQ(resources["cpu"]["period"], 100000);
  EXPECT_EQ(resources["cpu"]["shares"], 256);
  EXPECT_EQ(resources["memory"]["limit"], int64_t{1} << 30);
  EXPECT_EQ((*spec)["linux"]["cgroupsPath"], "stampede-test-node/x");
  std::string namespaces = (*spec)["linux"]["namespaces"].dump();
  EXPECT_EQ(namespaces.find("network"), std::string::npos) << "host network";
}

TEST(ContainerSpecTest, RefusalsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}})",
       "container has runAsNonRoot and image will run as root (pod \"ns/p\", container \"c\")"},
      {R"({"securityContext": {"privileged": true}})", "securityContext.privileged"},
      {R"({"securityContext": {"capabilities": {"add": ["CAP_TIME_TRAVEL"]}}})",
       "unknown capability \"CAP_TIME_TRAVEL\""},
      {R"({"securityContext": {"seccompProfile": {"type": "Localhost"}}})",
       "seccompProfile type Localhost"},
      {R"({"resources": {"limits": {"memory": "lots"}}})", "resources memory: bad quantity"},
      {R"({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]})",
       "volumeMounts nope: no such volume"},
  };
  for (const auto& [extra, message] : cases) {
    Json container = Json::parse(extra);
    container["name"] = "c";
    container["image"] = "x";
    Fixture f(container.dump());
    absl::StatusOr<Json> spec = f.Spec();
    ASSERT_FALSE(spec.ok()) << extra;
    EXPECT_NE(spec.status().message().find(message), std::string::npos)
        << extra << ": " << spec.status().message();
  }
  // A named image user cannot be checked against runAsNonRoot.
  Fixture named(R"({"name": "c", "image": "x", "securityContext": {"runAsNonRoot": true}})");
  named.image.user = "nobody";
  EXPECT_NE(named.Spec().status().message().find("non-numeric user (nobody)"), std::string::npos);
}

TEST(ContainerSpecTest, ImageReferencesAndQuantities) {
  const OciImage image = AgentImage();
  EXPECT_TRUE(ImageMatches(image, "ghcr.io/stampede-dev/stampede-agent:0.1.0"));
  EXPECT_TRUE(ImageMatches(image, "ghcr.io/stampede-dev/stampede-agent@" + image.manifest_digest));
  EXPECT_TRUE(
      ImageMatches(image, "ghcr.io/stampede-dev/stampede-agent:0.1.0@" + image.manifest_digest));
  EXPECT_FALSE(ImageMatches(image, "ghcr.io/stampede-dev/stampede-agent"))
      << "no tag means :latest";
  EXPECT_FALSE(
      ImageMatches(image, "ghcr.io/stampede-dev/stampede-agent@sha256:" + std::string(64, 'b')));
  EXPECT_DOUBLE_EQ(*ParseQuantity("500m"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("128Mi"), 134217728);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2"), 2);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1G"), 1e9);
  EXPECT_FALSE(ParseQuantity("").ok());
  EXPECT_FALSE(ParseQuantity("-1").ok());
  EXPECT_FALSE(ParseQuantity("1Xi").ok());
}

}  // namespace
}  // namespace stampede::e2e
