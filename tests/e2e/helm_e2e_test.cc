// The chart on a real control plane with the real Helm 3.17.1: `helm install` creates the CRD and
// the operator's objects, `helm upgrade` with a changed value and a CRD that gained an optional
// field changes both without losing a LoadTest, and `helm uninstall` leaves the CRD and the
// LoadTests (crds.keep). This cluster runs no deployment controller, so the operator's Pod is not
// created here; container_e2e_test installs the chart where it runs, in a real container.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/integration/process.h"
#include "yaml-cpp/yaml.h"

namespace stampede::e2e {
namespace {

constexpr char kSourceDir[] = STAMPEDE_SOURCE_DIR;

class HelmE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // No CRD up front: the chart installs it.
    absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(Cluster::Options{});
    if (!cluster.ok()) {
      start_error_ = cluster.status().ToString();
      return;
    }
    cluster_ = *std::move(cluster);
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << start_error_;
    ASSERT_TRUE(std::ifstream(testing::HelmBinary()).good())
        << testing::HelmBinary()
        << " is missing: run scripts/helm-fetch, or point STAMPEDE_HELM at helm";
  }
  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) std::fprintf(stderr, "%s\n", cluster_->Logs().c_str());
  }

  CommandResult Helm(std::vector<std::string> args) {
    args.insert(args.begin(), testing::HelmBinary());
    args.insert(args.end(), {"--kubeconfig", cluster_->admin_kubeconfig()});
    testing::CommandOutput r = testing::RunToEnd(std::move(args), std::chrono::seconds(120));
    return CommandResult{r.exit_code, std::move(r.out), std::move(r.err)};
  }

  std::string Get(const std::vector<std::string>& args) {
    const CommandResult r = cluster_->Kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.ToString();
    return r.out;
  }

  static inline std::unique_ptr<Cluster> cluster_;
  static inline std::string start_error_;
};

// A copy of the chart whose CRD has one more optional field, spec.e2eNote.
std::string ChartWithANewCrdField() {
  const std::string dir = testing::MakeTempDir() + "/stampede";
  std::filesystem::copy(std::string(kSourceDir) + "/helm/stampede", dir,
                        std::filesystem::copy_options::recursive);
  const std::string crd_file = dir + "/files/loadtests.stampede.dev.yaml";
  YAML::Node crd = YAML::LoadFile(crd_file);
  crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
     ["e2eNote"]["type"] = "string";
  std::ofstream(crd_file) << YAML::Dump(crd) << "\n";
  return dir;
}

TEST_F(HelmE2eTest, InstallUpgradeAndUninstallKeepTheCrdAndTheLoadTests) {
  const std::string chart = std::string(kSourceDir) + "/helm/stampede";
  const CommandResult installed =
      Helm({"install", "stampede", chart, "-n", "stampede-system", "--create-namespace"});
  ASSERT_EQ(installed.exit_code, 0) << installed.ToString();
  EXPECT_TRUE(absl::StrContains(installed.out, "kubectl get loadtests -w")) << "NOTES.txt";
  ASSERT_EQ(cluster_
                ->Kubectl({"wait", "--for=condition=Established", "crd/loadtests.stampede.dev",
                           "--timeout=60s"})
                .exit_code,
            0);
  EXPECT_EQ(Get({"get", "deployment", "stampede-controller", "-n", "stampede-system", "-o",
                 "jsonpath={.spec.replicas}"}),
            "1");
  EXPECT_EQ(Get({"get", "clusterrole", "stampede-operator", "-o", "name"}),
            "clusterrole.rbac.authorization.k8s.io/stampede-operator\n");
  EXPECT_EQ(Get({"get", "crd", "loadtests.stampede.dev", "-o",
                 "jsonpath={.metadata.annotations.helm\\.sh/resource-policy}"}),
            "keep");

  // A LoadTest that must survive everything below.
  ASSERT_EQ(cluster_->Kubectl({"create", "namespace", "shop"}).exit_code, 0);
  const CommandResult applied = cluster_->Kubectl(
      {"apply", "-f", std::string(kSourceDir) + "/deploy/examples/k8s-loadtest.yaml"});
  ASSERT_EQ(applied.exit_code, 0) << applied.ToString();
  const std::string uid =
      Get({"get", "lt", "checkout-k8s", "-n", "shop", "-o", "jsonpath={.metadata.uid}"});
  ASSERT_FALSE(uid.empty());
  // Before the upgrade the API server prunes a field the CRD does not know.
  ASSERT_EQ(cluster_
                ->Kubectl({"patch", "lt", "checkout-k8s", "-n", "shop", "--type=merge", "-p",
                           R"({"spec":{"e2eNote":"before"}})"})
                .exit_code,
            0);
  EXPECT_EQ(Get({"get", "lt", "checkout-k8s", "-n", "shop", "-o", "jsonpath={.spec.e2eNote}"}), "");

  const CommandResult upgraded = Helm({"upgrade", "stampede", ChartWithANewCrdField(), "-n",
                                       "stampede-system", "--set", "replicaCount=2"});
  ASSERT_EQ(upgraded.exit_code, 0) << upgraded.ToString();
  EXPECT_EQ(Get({"get", "deployment", "stampede-controller", "-n", "stampede-system", "-o",
                 "jsonpath={.spec.replicas}"}),
            "2");
  EXPECT_EQ(Get({"get", "crd", "loadtests.stampede.dev", "-o",
                 "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties."
                 "e2eNote.type}"}),
            "string");
  EXPECT_EQ(Get({"get", "lt", "checkout-k8s", "-n", "shop", "-o", "jsonpath={.metadata.uid}"}),
            uid);
  // The upgraded CRD keeps the new field.
  ASSERT_EQ(cluster_
                ->Kubectl({"patch", "lt", "checkout-k8s", "-n", "shop", "--type=merge", "-p",
                           R"({"spec":{"e2eNote":"after"}})"})
                .exit_code,
            0);
  EXPECT_EQ(Get({"get", "lt", "checkout-k8s", "-n", "shop", "-o", "jsonpath={.spec.e2eNote}"}),
            "after");

  const CommandResult uninstalled = Helm({"uninstall", "stampede", "-n", "stampede-system"});
  ASSERT_EQ(uninstalled.exit_code, 0) << uninstalled.ToString();
  EXPECT_NE(cluster_->Kubectl({"get", "deployment", "stampede-controller", "-n", "stampede-system"})
                .exit_code,
            0)
      << "the Deployment should be gone";
  EXPECT_NE(cluster_->Kubectl({"get", "clusterrole", "stampede-operator"}).exit_code, 0);
  EXPECT_EQ(Get({"get", "crd", "loadtests.stampede.dev", "-o", "name"}),
            "customresourcedefinition.apiextensions.k8s.io/loadtests.stampede.dev\n");
  EXPECT_EQ(Get({"get", "lt", "checkout-k8s", "-n", "shop", "-o", "jsonpath={.metadata.uid}"}),
            uid);
}

}  // namespace
}  // namespace stampede::e2e
