#include "controller/operator/certificates.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::controller {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

KeyAndCert Ca(absl::Duration validity = absl::Hours(24 * 365)) {
  absl::StatusOr<KeyAndCert> ca = MakeCa("test-ca", kNow, validity);
  EXPECT_TRUE(ca.ok()) << ca.status();
  return ca.ok() ? *ca : KeyAndCert{};
}

TEST(CertificatesTest, AServingCertificateVerifiesForItsNamesOnly) {
  const KeyAndCert ca = Ca();
  auto serving = IssueServing(ca, {"stampede-controller.stampede-system.svc", "127.0.0.1", "::1"},
                              kNow, absl::Hours(24));
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(KeyMatches(serving->key_pem, serving->cert_pem));
  EXPECT_FALSE(KeyMatches(ca.key_pem, serving->cert_pem));

  for (const std::string host : {"stampede-controller.stampede-system.svc", "127.0.0.1", "::1"}) {
    EXPECT_TRUE(Verify(serving->cert_pem, ca.cert_pem, host, kNow + absl::Hours(1)).ok()) << host;
  }
  const absl::Status other_name =
      Verify(serving->cert_pem, ca.cert_pem, "kubernetes.default.svc", kNow);
  EXPECT_EQ(other_name.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other_name.message(), "hostname mismatch");
  EXPECT_EQ(Verify(serving->cert_pem, ca.cert_pem, "127.0.0.2", kNow).message(),
            "IP address mismatch");

  const absl::Status stranger = Verify(serving->cert_pem, Ca().cert_pem, "127.0.0.1", kNow);
  EXPECT_EQ(stranger.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(stranger.message(), "unable to get local issuer certificate");
  EXPECT_EQ(Verify(serving->cert_pem, ca.cert_pem, "127.0.0.1", kNow + absl::Hours(25)).message(),
            "certificate has expired");
  // The CA itself is no serving certificate for anyone.
  EXPECT_FALSE(Verify(ca.cert_pem, ca.cert_pem, "127.0.0.1", kNow).ok());
}

TEST(CertificatesTest, WhatACertificateSaysOfItself) {
  const KeyAndCert ca = Ca(absl::Hours(48));
  auto ca_info = ReadCert(ca.cert_pem);
  ASSERT_TRUE(ca_info.ok()) << ca_info.status();
  EXPECT_TRUE(ca_info->is_ca);
  EXPECT_EQ(ca_info->subject, "test-ca");
  EXPECT_EQ(ca_info->not_before, kNow - absl::Minutes(1));  // backdated for clock skew
  EXPECT_EQ(ca_info->not_after, kNow + absl::Hours(48));

  // Asked for more than the CA has left, a certificate ends with the CA.
  auto serving = IssueServing(ca, {"controller.example", "10.1.2.3"}, kNow, absl::Hours(100));
  ASSERT_TRUE(serving.ok()) << serving.status();
  auto info = ReadCert(serving->cert_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->subject, "controller.example");
  EXPECT_EQ(info->names, (std::vector<std::string>{"controller.example", "10.1.2.3"}));
  EXPECT_EQ(info->not_after, ca_info->not_after);
  EXPECT_NE(info->serial, ca_info->serial);
  EXPECT_EQ(info->serial.size(), 32u) << "127 random bits, the top one set";

  auto again = IssueServing(ca, {"controller.example"}, kNow, absl::Hours(1));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(ReadCert(again->cert_pem)->serial, info->serial);

  auto bundle = ReadBundle(ca.cert_pem + serving->cert_pem);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  ASSERT_EQ(bundle->size(), 2u);
  EXPECT_EQ((*bundle)[1].subject, "controller.example");
}

TEST(CertificatesTest, BadInputIsNamed) {
  const KeyAndCert ca = Ca();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "a serving certificate needs a name"},
      {{"bad name"}, "\"bad name\" is neither a DNS name nor an IP address"},
      {{"ok.example", "a..b"}, "\"a..b\" is neither a DNS name nor an IP address"},
      {{"127.1"}, "\"127.1\": write the address in full"},
  };
  for (const auto& [names, message] : cases) {
    auto issued = IssueServing(ca, names, kNow, absl::Hours(1));
    ASSERT_FALSE(issued.ok()) << message;
    EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(issued.status().message(), message);
  }
  EXPECT_EQ(
      IssueServing({ca.key_pem, "junk"}, {"a.example"}, kNow, absl::Hours(1)).status().message(),
      "the CA's certificate: not PEM");
  EXPECT_EQ(
      IssueServing({"junk", ca.cert_pem}, {"a.example"}, kNow, absl::Hours(1)).status().message(),
      "the CA's key: not PEM");
  EXPECT_EQ(
      ReadCert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadBundle("").status().message(), "no PEM certificate");
  EXPECT_FALSE(KeyMatches("junk", ca.cert_pem));
}

}  // namespace
}  // namespace stampede::controller
