#include "controller/operator/agent_tls.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_kube.h"

namespace stampede::controller {
namespace {

using testing::FakeApi;

constexpr char kSecretPath[] = "/api/v1/namespaces/stampede-system/secrets/stampede-agent-ca";
const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class AgentTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "agent-tls-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  AgentTlsOptions Options(const std::string& dir_suffix = "") {
    AgentTlsOptions o;
    o.secret_namespace = "stampede-system";
    o.hosts = {"stampede-controller.stampede-system.svc", "127.0.0.1"};
    o.dir = dir_ + dir_suffix;
    o.ca_validity = absl::Hours(24 * 90);
    o.ca_overlap = absl::Hours(24 * 10);
    o.cert_validity = absl::Hours(24 * 3);
    o.check_interval = std::chrono::hours(1);  // the tests call Check themselves
    o.now = [this] { return kStart + absl::Seconds(elapsed_s_.load()); };
    return o;
  }
  void Advance(absl::Duration d) { elapsed_s_ += absl::ToInt64Seconds(d); }
  absl::Time Now() const { return kStart + absl::Seconds(elapsed_s_.load()); }

  // The serving certificate on disk chains to `bundle` for both hosts, with its key beside it.
  void ExpectServingVerifies(const AgentTls& tls, const std::string& bundle) {
    const std::string cert = ReadFile(tls.cert_file());
    EXPECT_EQ(cert, tls.ServingCert());
    EXPECT_TRUE(KeyMatches(ReadFile(tls.key_file()), cert));
    for (const char* host : {"stampede-controller.stampede-system.svc", "127.0.0.1"}) {
      EXPECT_TRUE(Verify(cert, bundle, host, Now()).ok())
          << host << ": " << Verify(cert, bundle, host, Now());
    }
  }

  std::string Serial(const std::string& pem) {
    auto info = ReadCert(pem);
    return info.ok() ? info->serial : "";
  }

  FakeApi api_;
  std::string dir_;
  std::atomic<int64_t> elapsed_s_{0};
};

TEST_F(AgentTlsTest, TheFirstReplicaMakesTheCaAndTheOthersUseIt) {
  auto first = AgentTls::Start(&api_, Options("/a"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto secret = api_.Object(kSecretPath);
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ((*secret)["type"], "Opaque");
  auto ca = ParseCaSecret(*secret);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_FALSE(ca->previous.has_value());
  std::string bundle;
  ASSERT_TRUE(absl::Base64Unescape((*secret)["data"]["ca.crt"].get<std::string>(), &bundle));
  EXPECT_EQ(bundle, ca->current.cert_pem);
  EXPECT_EQ((*first)->TrustBundle(), bundle);
  ExpectServingVerifies(**first, bundle);
  EXPECT_EQ(std::filesystem::status((*first)->key_file()).permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none)
      << "the key is for this process only";

  // A second replica that loses the race to create it (it read 404, then its POST is a 409)
  // uses the winner's CA: agents of either verify either.
  api_.Plant("GET", kSecretPath, absl::NotFoundError("404"));
  auto second = AgentTls::Start(&api_, Options("/b"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(api_.CountWrites("POST"), 2u);
  EXPECT_EQ(api_.CountWrites("PUT"), 0u);
  EXPECT_EQ((*second)->TrustBundle(), bundle);
  ExpectServingVerifies(**second, bundle);
  EXPECT_NE(Serial((*second)->ServingCert()), Serial((*first)->ServingCert()))
      << "each replica has its own key";
}

TEST_F(AgentTlsTest, TheServingCertificateIsRenewedAfterTwoThirdsOfItsLife) {
  auto tls = AgentTls::Start(&api_, Options());
  ASSERT_TRUE(tls.ok()) << tls.status();
  const std::string first = (*tls)->ServingCert();
  Advance(absl::Hours(47));
  ASSERT_TRUE((*tls)->Check().ok());
  EXPECT_EQ((*tls)->ServingCert(), first) << "renewed too early";
  Advance(absl::Hours(2));  // 49h of 72h
  ASSERT_TRUE((*tls)->Check().ok());
  EXPECT_NE(Serial((*tls)->ServingCert()), Serial(first));
  ExpectServingVerifies(**tls, (*tls)->TrustBundle());
  EXPECT_EQ(api_.CountWrites("PUT"), 0u) << "the CA did not change";
  // The files moved to a new folder; the one replaced is kept for a reader still in it, no more.
  int folders = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    folders += entry.path().filename().string().rfind("gen-", 0) == 0;
  }
  EXPECT_EQ(folders, 2);
}

TEST_F(AgentTlsTest, ACaIsRotatedWithAnOverlapThatKeepsRunningAgentsVerifying) {
  auto tls = AgentTls::Start(&api_, Options());
  ASSERT_TRUE(tls.ok()) << tls.status();
  const std::string old_bundle = (*tls)->TrustBundle();  // what an agent started now holds
  auto old_ca = ParseCaSecret(*api_.Object(kSecretPath));
  ASSERT_TRUE(old_ca.ok());

  // 61 of 90 days: less than a third left. A new CA, trusted from now on, but not signing yet.
  Advance(absl::Hours(24 * 61));
  ASSERT_TRUE((*tls)->Check().ok());
  auto rotated = ParseCaSecret(*api_.Object(kSecretPath));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  ASSERT_TRUE(rotated->previous.has_value());
  EXPECT_EQ(rotated->previous->cert_pem, old_ca->current.cert_pem);
  EXPECT_NE(rotated->current.cert_pem, old_ca->current.cert_pem);
  EXPECT_EQ((*tls)->TrustBundle(), rotated->current.cert_pem + old_ca->current.cert_pem);
  ExpectServingVerifies(**tls, old_bundle);  // an agent from before the rotation still verifies

  // Past the overlap the new CA signs: agents started since the rotation trust it.
  Advance(absl::Hours(24 * 11));
  ASSERT_TRUE((*tls)->Check().ok());
  ExpectServingVerifies(**tls, rotated->current.cert_pem);
  EXPECT_FALSE(Verify((*tls)->ServingCert(), old_bundle, "127.0.0.1", Now()).ok());

  // Once the old CA has expired it leaves the Secret and the bundle.
  Advance(absl::Hours(24 * 20));
  ASSERT_TRUE((*tls)->Check().ok());
  auto later = ParseCaSecret(*api_.Object(kSecretPath));
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(later->previous.has_value());
  EXPECT_EQ((*tls)->TrustBundle(), rotated->current.cert_pem);
  EXPECT_EQ(api_.CountWrites("PUT"), 2u);
}

TEST_F(AgentTlsTest, TwoReplicasRotatingAtOnceMakeOneNewCa) {
  auto a = AgentTls::Start(&api_, Options("/a"));
  auto b = AgentTls::Start(&api_, Options("/b"));
  ASSERT_TRUE(a.ok() && b.ok());
  Advance(absl::Hours(24 * 61));
  // b's write loses to a's (409): b reads a's new CA rather than making a third.
  ASSERT_TRUE((*a)->Check().ok());
  const std::string after_a = (*a)->TrustBundle();
  api_.Plant("PUT", kSecretPath, absl::AbortedError("409 the object has been modified"));
  ASSERT_TRUE((*b)->Check().ok());
  EXPECT_EQ((*b)->TrustBundle(), after_a);
  auto ca = ParseCaSecret(*api_.Object(kSecretPath));
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(TrustBundle(*ca), after_a);
}

TEST_F(AgentTlsTest, AnUnusableSecretOrApiIsSaid) {
  auto made = AgentTls::Start(&api_, Options("/a"));
  ASSERT_TRUE(made.ok());
  (*made)->Stop();
  kube::Json secret = *api_.Object(kSecretPath);
  // Someone pasted another key.
  auto other = MakeCa("other", kStart, absl::Hours(24));
  ASSERT_TRUE(other.ok());
  secret["data"]["tls.key"] = absl::Base64Escape(other->key_pem);
  api_.Put(kSecretPath, secret);
  auto refused = AgentTls::Start(&api_, Options("/b"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "Secret stampede-system/stampede-agent-ca: tls.key: not the key of tls.crt (delete "
            "it and the operator makes a new CA)");

  api_.Plant("GET", kSecretPath, absl::UnavailableError("GET: 500 etcdserver: request timed out"));
  auto unavailable = AgentTls::Start(&api_, Options("/c"));
  ASSERT_FALSE(unavailable.ok());
  EXPECT_EQ(unavailable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(unavailable.status().message(),
            "reading Secret stampede-system/stampede-agent-ca: GET: 500 etcdserver: request "
            "timed out");

  AgentTlsOptions no_hosts = Options("/d");
  no_hosts.hosts.clear();
  EXPECT_EQ(AgentTls::Start(&api_, no_hosts).status().message(), "no host to certify");
  AgentTlsOptions bad_host = Options("/e");
  bad_host.hosts = {"not a host"};
  secret["data"].erase("tls.key");
  api_.Put(kSecretPath, secret);
  EXPECT_EQ(AgentTls::Start(&api_, bad_host).status().message(),
            "Secret stampede-system/stampede-agent-ca: no tls.key (delete it and the operator "
            "makes a new CA)");
  ASSERT_TRUE(api_.Delete(kSecretPath).ok());
  EXPECT_EQ(AgentTls::Start(&api_, bad_host).status().message(),
            "the serving certificate: \"not a host\" is neither a DNS name nor an IP address");
}

}  // namespace
}  // namespace stampede::controller
