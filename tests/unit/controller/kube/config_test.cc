#include "controller/kube/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"

namespace stampede::kube {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// A fresh directory per test, removed afterwards; the environment variables the loaders read are
// cleared and restored.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/stampede-kube-config-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    for (const char* name : {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}) {
      const char* value = std::getenv(name);
      if (value != nullptr) saved_.emplace_back(name, value);
      unsetenv(name);
    }
  }
  void TearDown() override {
    fs::remove_all(dir_);
    for (const char* name : {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}) {
      unsetenv(name);
    }
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  std::string dir_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

constexpr char kKubeconfig[] = R"(apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: load
- name: files
  context:
    cluster: file-cluster
    user: file-user
- name: certs
  context:
    cluster: data-cluster
    user: cert-user
- name: lost
  context:
    cluster: nowhere
    user: dev-user
- name: plugin
  context:
    cluster: dev-cluster
    user: exec-user
clusters:
- name: dev-cluster
  cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: true
- name: file-cluster
  cluster:
    server: https://k8s.example:443
    certificate-authority: pki/ca.crt
- name: data-cluster
  cluster:
    server: https://[fd00::1]:6443
    certificate-authority-data: )";

constexpr char kUsers[] = R"(
users:
- name: dev-user
  user:
    token: abc123
- name: file-user
  user:
    tokenFile: tokens/sa-token
- name: exec-user
  user:
    exec:
      command: aws
)";

TEST_F(ConfigTest, KubeconfigCurrentContextWithTokenNamespaceAndInsecure) {
  const std::string path = Write("config", std::string(kKubeconfig) + "Zm9v" + kUsers);
  absl::StatusOr<Config> config = KubeconfigConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  EXPECT_EQ(config->token, "abc123");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->default_namespace, "load");
  EXPECT_EQ(config->ca_file, "");
  EXPECT_EQ(config->owned_files, nullptr);
}

TEST_F(ConfigTest, KubeconfigRelativeFilesAreRelativeToTheKubeconfig) {
  const std::string path = Write("config", std::string(kKubeconfig) + "Zm9v" + kUsers);
  absl::StatusOr<Config> config = KubeconfigConfig(path, "files");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://k8s.example:443");
  EXPECT_EQ(config->token_file, dir_ + "/tokens/sa-token");
  EXPECT_EQ(config->ca_file, dir_ + "/pki/ca.crt");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->default_namespace, "default");
}

TEST_F(ConfigTest, KubeconfigInlineDataGoesToPrivateFilesRemovedWithTheLastCopy) {
  const std::string ca = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
  const std::string cert = "-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n";
  const std::string key = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";
  const std::string users = std::string(kUsers) + "- name: cert-user\n  user:\n" +
                            "    client-certificate-data: " + absl::Base64Escape(cert) + "\n" +
                            "    client-key-data: " + absl::Base64Escape(key) + "\n";
  const std::string path = Write("config", kKubeconfig + absl::Base64Escape(ca) + users);
  std::string ca_file, key_file;
  {
    absl::StatusOr<Config> config = KubeconfigConfig(path, "certs");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->server, "https://[fd00::1]:6443");
    EXPECT_EQ(Slurp(config->ca_file), ca);
    EXPECT_EQ(Slurp(config->client_cert_file), cert);
    EXPECT_EQ(Slurp(config->client_key_file), key);
    struct stat info;
    ASSERT_EQ(stat(config->client_key_file.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    ca_file = config->ca_file;
    key_file = config->client_key_file;
    const Config copy = *config;
    config = absl::UnknownError("dropped");
    EXPECT_TRUE(fs::exists(key_file));  // the copy still owns them
  }
  EXPECT_FALSE(fs::exists(ca_file));
  EXPECT_FALSE(fs::exists(key_file));
}

TEST_F(ConfigTest, KubeconfigErrorsNameTheFileAndTheField) {
  const std::string path = Write("config", std::string(kKubeconfig) + "not*base64" + kUsers);
  const absl::Status missing = KubeconfigConfig(path, "foo").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "kubeconfig " + path + ": context \"foo\" not found");

  const absl::Status no_cluster = KubeconfigConfig(path, "lost").status();
  EXPECT_EQ(no_cluster.message(), "kubeconfig " + path + ": cluster \"nowhere\" not found");

  const absl::Status bad_data = KubeconfigConfig(path, "certs").status();
  EXPECT_EQ(bad_data.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_data.message().find("certificate-authority-data is not valid base64"),
            std::string::npos)
      << bad_data;

  const absl::Status exec = KubeconfigConfig(path, "plugin").status();
  EXPECT_EQ(exec.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(exec.message().find("user \"exec-user\": exec"), std::string::npos) << exec;

  EXPECT_EQ(KubeconfigConfig(dir_ + "/absent").status().code(), absl::StatusCode::kNotFound);
  const std::string broken = Write("broken", "clusters: [unclosed\n");
  EXPECT_EQ(KubeconfigConfig(broken).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string no_current = Write("empty", "apiVersion: v1\nkind: Config\n");
  EXPECT_NE(KubeconfigConfig(no_current).status().message().find("current-context"),
            std::string::npos);
}

TEST_F(ConfigTest, InClusterReadsTheServiceAccountAndBracketsIpv6) {
  Write("token", "sa-token\n");
  Write("ca.crt", "PEM");
  Write("namespace", "stampede-system");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::10", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  absl::StatusOr<Config> config = InClusterConfig(dir_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://[fd00::10]:443");
  EXPECT_EQ(config->token, "sa-token");
  EXPECT_EQ(config->token_file, dir_ + "/token");
  EXPECT_EQ(config->ca_file, dir_ + "/ca.crt");
  EXPECT_EQ(config->default_namespace, "stampede-system");

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  EXPECT_EQ(InClusterConfig(dir_)->server, "https://10.96.0.1:443");
  fs::remove(dir_ + "/token");
  EXPECT_EQ(InClusterConfig(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigTest, InClusterOutsideAPodIsAFailedPrecondition) {
  EXPECT_EQ(InClusterConfig(dir_).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ConfigTest, LoadConfigPrefersTheFlagThenKubeconfigThenInCluster) {
  const std::string flag = Write("flag", std::string(kKubeconfig) + "Zm9v" + kUsers);
  const std::string env = Write("env",
                                "current-context: e\ncontexts:\n- name: e\n  context:\n"
                                "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                                "    server: http://127.0.0.1:8001\n");
  setenv("KUBECONFIG", (env + ":" + flag).c_str(), 1);
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  EXPECT_EQ(LoadConfig(flag)->server, "https://10.0.0.1:6443");
  EXPECT_EQ(LoadConfig("")->server, "http://127.0.0.1:8001");
  unsetenv("KUBECONFIG");
  // In-cluster now; the default service-account directory does not exist here.
  EXPECT_NE(LoadConfig("").status().message().find("in-cluster"), std::string::npos);
}

TEST_F(ConfigTest, ReadTokenFileTrimsAndRejectsEmpty) {
  EXPECT_EQ(*ReadTokenFile(Write("t", "  tok\n")), "tok");
  EXPECT_EQ(ReadTokenFile(Write("e", "\n")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadTokenFile(dir_ + "/absent").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace stampede::kube
