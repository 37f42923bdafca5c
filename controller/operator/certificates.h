// The X.509 pieces of the agents' TLS channel, on OpenSSL: a self-signed CA, serving certificates
// it signs for the controller's names and addresses, and what a certificate says about itself.
// Keys are ECDSA P-256, signatures SHA-256, serial numbers 128 random bits. Everything is PEM text
// in and out; nothing here touches files or the network.
//
// Thread-safe (no shared state). Errors: InvalidArgument for PEM that does not parse or a name
// that is neither a DNS name nor an IP address; Internal when OpenSSL fails to make a key or sign.
#ifndef STAMPEDE_CONTROLLER_OPERATOR_CERTIFICATES_H_
#define STAMPEDE_CONTROLLER_OPERATOR_CERTIFICATES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace stampede::controller {

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

struct CertInfo {
  std::string subject;  // the common name
  std::string serial;   // hex
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::vector<std::string> names;  // subjectAltName entries: DNS names and IP addresses
};

// A self-signed CA valid from `now` (backdated a minute for clock skew) for `validity`.
absl::StatusOr<KeyAndCert> MakeCa(const std::string& common_name, absl::Time now,
                                  absl::Duration validity);

// A serving certificate for `names` (DNS names or IP literals; the first is also the common name),
// signed by `ca`, valid from `now` for `validity` but never past the CA's own expiry.
absl::StatusOr<KeyAndCert> IssueServing(const KeyAndCert& ca, const std::vector<std::string>& names,
                                        absl::Time now, absl::Duration validity);

// The first certificate of `pem`, or of each certificate in a bundle.
absl::StatusOr<CertInfo> ReadCert(const std::string& pem);
absl::StatusOr<std::vector<CertInfo>> ReadBundle(const std::string& pem);

// OK when `leaf_pem` chains to a CA in `bundle_pem` at time `at` and names `host` (a DNS name or
// an IP literal; empty: any). Otherwise PermissionDenied with OpenSSL's reason.
absl::Status Verify(const std::string& leaf_pem, const std::string& bundle_pem,
                    const std::string& host, absl::Time at);

// True when `key_pem` is the private key of `cert_pem`.
bool KeyMatches(const std::string& key_pem, const std::string& cert_pem);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_CERTIFICATES_H_
