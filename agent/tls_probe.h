// Why a TLS controller cannot be verified, in words a person can act on. gRPC says only that it
// could not connect; this dials the controller once more with OpenSSL, trusting exactly `ca_pem`
// and checking the name or address in `host_port`, as gRPC does, and reports OpenSSL's verdict.
//
// OK: the handshake verified (the failure was elsewhere). PermissionDenied: the certificate did
// not verify, with the reason ("unable to get local issuer certificate", "hostname mismatch",
// "certificate has expired"). Unavailable: no TLS handshake happened (not listening, plaintext
// peer, timeout). InvalidArgument: `ca_pem` holds no certificate. Thread-safe.
#ifndef STAMPEDE_AGENT_TLS_PROBE_H_
#define STAMPEDE_AGENT_TLS_PROBE_H_

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace stampede::agent {

absl::Status ProbeTls(const std::string& host_port, const std::string& ca_pem,
                      std::chrono::milliseconds timeout);

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_TLS_PROBE_H_
