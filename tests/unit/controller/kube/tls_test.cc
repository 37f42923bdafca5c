// The client over TLS: server verification with a CA file, insecure mode, and client
// certificates, against an httplib::SSLServer on 127.0.0.1 with throwaway certificates.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "controller/kube/client.h"
#include "tests/unit/controller/kube/fake_api_server.h"

namespace stampede::kube {
namespace {

using testing::FakeApiServer;

struct KeyPair {
  std::string cert_file;
  std::string key_file;
};

// A self-signed certificate for 127.0.0.1 that can serve as its own trust anchor.
KeyPair SelfSigned(const std::string& dir, const std::string& name, long serial) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair<int, const char*>{NID_subject_alt_name, "IP:127.0.0.1"},
        {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
    X509_add_ext(cert, extension, -1);
    X509_EXTENSION_free(extension);
  }
  X509_sign(cert, key, EVP_sha256());

  KeyPair pair{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  FILE* out = fopen(pair.cert_file.c_str(), "w");
  PEM_write_X509(out, cert);
  fclose(out);
  out = fopen(pair.key_file.c_str(), "w");
  PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(out);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pair;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/stampede-kube-tls-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    server_pair_ = SelfSigned(dir_, "server", 1);
    client_pair_ = SelfSigned(dir_, "client", 2);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // An HTTPS fake that answers every request with an object; with `client_ca` it demands a
  // client certificate signed by it.
  std::unique_ptr<FakeApiServer> Serve(const std::string& client_ca) {
    auto server = std::make_unique<FakeApiServer>(
        std::make_unique<httplib::SSLServer>(server_pair_.cert_file.c_str(),
                                             server_pair_.key_file.c_str(),
                                             client_ca.empty() ? nullptr : client_ca.c_str()),
        "https");
    server->SetHandler([](const httplib::Request&, httplib::Response& response) {
      testing::ReplyJson(response, 200, testing::Object("x", "1"));
    });
    return server;
  }

  absl::Status Get(const Config& config) {
    Client::Options options;
    options.max_attempts = 1;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::New(config, options);
    if (!client.ok()) return client.status();
    return (*client)->Get("/api/v1/namespaces/ns/pods/x").status();
  }

  std::string dir_;
  KeyPair server_pair_, client_pair_;
};

TEST_F(TlsTest, VerifiesTheServerAgainstTheCaFile) {
  std::unique_ptr<FakeApiServer> server = Serve("");
  Config config;
  config.server = server->url();
  config.ca_file = server_pair_.cert_file;
  EXPECT_TRUE(Get(config).ok()) << Get(config);

  config.ca_file = client_pair_.cert_file;  // the wrong CA
  const absl::Status wrong_ca = Get(config);
  EXPECT_EQ(wrong_ca.code(), absl::StatusCode::kUnavailable) << wrong_ca;
  EXPECT_NE(std::string(wrong_ca.message()).find("SSL"), std::string::npos) << wrong_ca;

  config.ca_file.clear();
  config.insecure_skip_tls_verify = true;
  EXPECT_TRUE(Get(config).ok()) << Get(config);
}

TEST_F(TlsTest, PresentsTheClientCertificate) {
  std::unique_ptr<FakeApiServer> server = Serve(client_pair_.cert_file);
  Config config;
  config.server = server->url();
  config.ca_file = server_pair_.cert_file;
  EXPECT_EQ(Get(config).code(), absl::StatusCode::kUnavailable);  // no certificate: refused
  EXPECT_TRUE(server->requests().empty());
  config.client_cert_file = client_pair_.cert_file;
  config.client_key_file = client_pair_.key_file;
  EXPECT_TRUE(Get(config).ok()) << Get(config);
  EXPECT_EQ(server->requests().size(), 1u);
}

}  // namespace
}  // namespace stampede::kube
