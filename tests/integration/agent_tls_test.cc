// The agents' TLS channel with real processes: a controller serving the certificate AgentTls
// issued (its CA in a fake API's Secret: the API is not what is tested here; e2e_operator_test
// runs the same over a real API server) and real stampede-agent processes that verify it.
// Promises: agents that trust the CA run a test whose totals equal what the target served; an
// agent given another CA, or dialing a name the certificate lacks, refuses the controller at once
// and says why on its last line; a renewed certificate is served without a restart.
#include "controller/operator/agent_tls.h"

#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/spec.h"
#include "controller/controller.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_kube.h"
#include "tests/fakes/no_launcher.h"
#include "tests/integration/process.h"

namespace stampede::controller {
namespace {

using std::chrono::seconds;

using testing::NoLauncher;

absl::StatusOr<v1::LoadTest> TlsTest(const std::string& url, int agents,
                                     const std::string& duration) {
  auto test = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: tls}\nspec:\n"
      "  target: {url: \"" +
      url +
      "\"}\n  requests: [{name: home, path: /}]\n  load: {users: 2, thinkTime: {min: 5ms, "
      "max: 15ms}}\n  duration: " +
      duration + "\n  agents: " + std::to_string(agents) + "\n");
  if (!test.ok()) return test.status();
  common::ApplyDefaults(&*test);
  if (absl::Status s = common::ValidationStatus(*test); !s.ok()) return s;
  return test;
}

// The serving certificate a TLS handshake with 127.0.0.1:port presents (PEM; empty on failure).
std::string PresentedCertificate(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string pem;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      if (X509* cert = SSL_get1_peer_certificate(ssl)) {
        BIO* out = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(out, cert);
        char* data = nullptr;
        const long n = BIO_get_mem_data(out, &data);
        pem.assign(data, static_cast<size_t>(n));
        BIO_free(out);
        X509_free(cert);
      }
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  close(fd);
  return pem;
}

class AgentTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "agent-tls-it-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    AgentTlsOptions o;
    o.secret_namespace = "stampede-system";
    o.hosts = {"127.0.0.1"};
    o.dir = dir_ + "/serving";
    o.check_interval = std::chrono::hours(1);  // Check is called by the test
    o.now = [this] { return absl::Now() + absl::Seconds(skew_s_.load()); };
    auto tls = AgentTls::Start(&api_, o);
    ASSERT_TRUE(tls.ok()) << tls.status();
    tls_ = std::move(*tls);
    ca_file_ = dir_ + "/ca.crt";
    std::ofstream(ca_file_) << tls_->TrustBundle();

    ControllerOptions options;
    options.grpc_listen = "127.0.0.1:0";
    options.tls = {tls_->key_file(), tls_->cert_file(), 1};
    auto controller = Controller::Create(options);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = std::move(*controller);
    address_ = "127.0.0.1:" + std::to_string(controller_->grpc_port());
  }
  void TearDown() override {
    controller_.reset();
    tls_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<controller::Run> Start(const v1::LoadTest& test, const std::string& id) {
    RunOptions options = controller_->run_defaults();
    options.start_delay_ms = 200;
    return controller_->StartRun(test, std::make_unique<NoLauncher>(), id, "the-token", options);
  }

  std::unique_ptr<testing::Process> Agent(const std::string& address, const std::string& id,
                                          int index, std::vector<std::string> extra) {
    std::vector<std::string> args{testing::AgentBinary(),
                                  "connect",
                                  "--controller",
                                  address,
                                  "--run",
                                  id,
                                  "--token",
                                  "the-token",
                                  "--index",
                                  std::to_string(index),
                                  "--threads",
                                  "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<testing::Process>(args);
  }

  // Runs a two-agent test to its end with agents trusting `ca_file`; its totals equal what the
  // target served.
  void RunVerified(const std::string& id) {
    testing::TestTarget target;
    auto test = TlsTest(target.Url("/"), 2, "2s");
    ASSERT_TRUE(test.ok()) << test.status();
    auto run = Start(*test, id);
    auto a = Agent(address_, id, 0, {"--ca-file", ca_file_});
    auto b = Agent(address_, id, 1, {"--ca-file", ca_file_});
    ASSERT_TRUE(run->WaitDone(30000)) << a->Stderr();
    const v1::LoadTestStatus status = run->Status();
    EXPECT_EQ(status.phase(), "Succeeded") << status.message() << "\n" << a->Stderr();
    for (auto* agent : {a.get(), b.get()}) {
      auto code = agent->Wait(seconds(20));
      ASSERT_TRUE(code.has_value());
      EXPECT_EQ(*code, 0) << agent->Stderr();
    }
    EXPECT_GT(status.summary().requests(), 0u);
    EXPECT_EQ(static_cast<long>(status.summary().requests()), target.Served());
  }

  testing::FakeApi api_;
  std::string dir_, ca_file_, address_;
  // The operator's clock: six days behind at the start, so a test can move it to the present and
  // find the 7-day serving certificate due for renewal (a clock ahead would make certificates
  // that are not valid yet).
  std::atomic<int64_t> skew_s_{-6 * 24 * 3600};
  std::unique_ptr<AgentTls> tls_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(AgentTlsTest, AgentsThatTrustTheCaRunATest) {
  RunVerified("tls-run");
  const std::string presented = PresentedCertificate(controller_->grpc_port());
  EXPECT_EQ(presented, tls_->ServingCert());
}

TEST_F(AgentTlsTest, AnAgentRefusesAControllerItCannotVerifyAndSaysWhy) {
  testing::TestTarget target;
  auto test = TlsTest(target.Url("/"), 1, "2s");
  ASSERT_TRUE(test.ok());
  auto run = Start(*test, "refused-run");
  auto stranger = MakeCa("someone-else", absl::Now(), absl::Hours(24));
  ASSERT_TRUE(stranger.ok());
  const std::string stranger_file = dir_ + "/stranger.crt";
  std::ofstream(stranger_file) << stranger->cert_pem;
  struct Case {
    std::string address, ca_file, reason;
  };
  const std::vector<Case> cases = {
      {address_, stranger_file, "unable to get local issuer certificate"},
      // The certificate names 127.0.0.1, not localhost.
      {"localhost:" + std::to_string(controller_->grpc_port()), ca_file_, "hostname mismatch"},
  };
  for (const Case& c : cases) {
    auto agent = Agent(c.address, "refused-run", 0, {"--ca-file", c.ca_file});
    // Refused at once, not after the 30 s connect timeout.
    const auto code = agent->Wait(seconds(15));
    ASSERT_TRUE(code.has_value()) << c.reason << ": still running\n" << agent->Stderr();
    EXPECT_EQ(*code, 1);
    std::string last = agent->Stderr();
    while (!last.empty() && last.back() == '\n') last.pop_back();
    last = last.substr(last.rfind('\n') + 1);
    EXPECT_EQ(last, "stampede-agent: refusing the controller at " + c.address +
                        ": its certificate does not verify against the CA we were given (" +
                        c.reason + ")");
  }
  // A plaintext agent never gets through either.
  auto plaintext = Agent(address_, "refused-run", 0, {"--connect-timeout", "2"});
  const auto code = plaintext->Wait(seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(plaintext->Stderr().find("controller_unreachable"), std::string::npos)
      << plaintext->Stderr();
  EXPECT_EQ(run->Status().agents().connected(), 0u);
  EXPECT_EQ(target.Served(), 0);
  run->Abort("test over");
}

TEST_F(AgentTlsTest, ARenewedCertificateIsServedWithoutARestart) {
  const std::string before = tls_->ServingCert();
  ASSERT_EQ(PresentedCertificate(controller_->grpc_port()), before);
  skew_s_ = 0;  // six of the seven days gone
  ASSERT_TRUE(tls_->Check().ok());
  const std::string after = tls_->ServingCert();
  ASSERT_NE(after, before);
  // gRPC reads the files again every second (ListenerTls.refresh_s).
  EXPECT_TRUE(testing::WaitUntil(seconds(10), [&] {
    return PresentedCertificate(controller_->grpc_port()) == after;
  })) << "still serving the old certificate";
  RunVerified("renewed-run");  // agents holding the same CA verify the new certificate
}

}  // namespace
}  // namespace stampede::controller
