// The operator's side of the agents' TLS channel: a CA kept in a Secret of the operator's own
// namespace, and the controller's serving certificate, issued by that CA and rotated before it
// expires.
//
// The Secret (type Opaque, default name stampede-agent-ca) holds:
//   tls.crt, tls.key          the current CA
//   previous.crt, previous.key the CA it replaced, while that one is still valid
//   ca.crt                    what agents trust: the current CA, then the previous one
// Every replica reads it; the first to find it missing creates it, a replica that loses that race
// (409) reads the winner's. When the current CA has less than a third of its validity left, a new
// one becomes current and the old one previous; agents started from then on trust both. The
// serving certificate stays signed by the previous CA until the current one has been trusted for
// `ca_overlap`, so an agent started before the rotation still verifies a controller that renewed
// its certificate in the meantime. Writes carry the resourceVersion read: two replicas rotating
// at once cannot both win.
//
// The serving certificate names `hosts` and lives only in this process and in `dir`, as tls.key
// and tls.crt behind the symlink `dir`/current, swapped atomically so a reader (gRPC's file
// watcher) never sees a key of one certificate with another's certificate. It is renewed when
// two thirds of its validity have passed, or when its signer changes.
//
// Thread-safe. Start does the first check synchronously; a thread then checks every
// `check_interval` until Stop (or destruction).
#ifndef STAMPEDE_CONTROLLER_OPERATOR_AGENT_TLS_H_
#define STAMPEDE_CONTROLLER_OPERATOR_AGENT_TLS_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "controller/kube/api.h"
#include "controller/operator/certificates.h"

namespace stampede::controller {

struct AgentTlsOptions {
  std::string secret_namespace;
  std::string secret_name = "stampede-agent-ca";
  std::vector<std::string> hosts;  // what agents dial: DNS names and IP addresses
  std::string dir;                 // where the serving key and certificate are written
  absl::Duration ca_validity = absl::Hours(24 * 365);
  absl::Duration ca_overlap = absl::Hours(24 * 30);
  absl::Duration cert_validity = absl::Hours(24 * 7);
  std::chrono::milliseconds check_interval{60000};
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// The CA Secret's contents (see above).
struct CaSecret {
  KeyAndCert current;
  std::optional<KeyAndCert> previous;
  std::string resource_version;  // empty: not in the API yet
};

// Reads a Secret object; InvalidArgument names the key that is missing or wrong.
absl::StatusOr<CaSecret> ParseCaSecret(const kube::Json& secret);
kube::Json CaSecretObject(const CaSecret& ca, const std::string& ns, const std::string& name);
// What agents trust: the current CA's certificate, then the previous one's.
std::string TrustBundle(const CaSecret& ca);
// Rotates when the current CA has less than a third of `validity` left and drops a previous CA
// that has expired; true when `ca` changed (a new CA is made with MakeCa at `now`).
absl::StatusOr<bool> RotateCa(CaSecret* ca, absl::Time now, absl::Duration validity);
// The CA that signs serving certificates at `now` (see above).
const KeyAndCert& Signer(const CaSecret& ca, absl::Time now, absl::Duration overlap);

class AgentTls {
 public:
  // InvalidArgument for options that cannot work (no hosts, no dir, a host that is not a name);
  // the API's error when the Secret can be neither read nor created.
  static absl::StatusOr<std::unique_ptr<AgentTls>> Start(kube::Api* api, AgentTlsOptions options);
  ~AgentTls();

  const std::string& key_file() const { return key_file_; }
  const std::string& cert_file() const { return cert_file_; }
  // PEM of the CAs agents started now should trust.
  std::string TrustBundle() const;
  // The serving certificate in use (PEM).
  std::string ServingCert() const;
  // One check of the Secret and the serving certificate, as the thread does.
  absl::Status Check();
  void Stop();

 private:
  AgentTls(kube::Api* api, AgentTlsOptions options);
  absl::StatusOr<CaSecret> ReadOrCreate();
  absl::Status WriteServing(const KeyAndCert& serving) ABSL_EXCLUSIVE_LOCKS_REQUIRED(check_mu_);

  kube::Api* const api_;
  const AgentTlsOptions options_;
  const std::string key_file_;
  const std::string cert_file_;

  common::Mutex check_mu_;  // one Check at a time
  std::string replaced_folder_ ABSL_GUARDED_BY(check_mu_);
  mutable common::Mutex mu_;
  std::string bundle_ ABSL_GUARDED_BY(mu_);
  std::string serving_cert_ ABSL_GUARDED_BY(mu_);
  std::string signer_cert_ ABSL_GUARDED_BY(mu_);  // the CA that signed serving_cert_
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_);
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  common::CondVar cv_;
  std::thread thread_;
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_OPERATOR_AGENT_TLS_H_
