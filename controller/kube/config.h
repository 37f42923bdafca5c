// Where the Kubernetes API server is and how to authenticate to it: from the pod's service
// account (in-cluster), from a kubeconfig file, or chosen the way kubectl chooses.
//
// A Config is a plain value; copies share the private temporary files written for inline
// kubeconfig data (`*-data` fields), which are removed when the last copy is destroyed.
// The loaders read the environment and the file system; they are safe to call from any thread
// that does not modify the environment at the same time.
// Errors name the file and the field: InvalidArgument for a malformed or incomplete file,
// NotFound for a missing file or context, Unimplemented for credentials we do not support
// (exec plugins, auth providers, basic auth), FailedPrecondition when not running in a cluster.
#ifndef STAMPEDE_CONTROLLER_KUBE_CONFIG_H_
#define STAMPEDE_CONTROLLER_KUBE_CONFIG_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace stampede::kube {

struct Config {
  std::string server;  // "https://host:port" or "http://host:port", optionally with a path prefix
  std::string token;   // bearer token; the initial value when token_file is also set
  std::string token_file;  // re-read periodically (projected tokens rotate); wins over `token`
  std::string ca_file;     // PEM bundle that verifies the server; empty: the system's CAs
  std::string client_cert_file, client_key_file;  // PEM client certificate and key (mTLS)
  bool insecure_skip_tls_verify = false;
  std::string default_namespace = "default";
  // Owns temporary files the paths above may point to (kubeconfig *-data fields).
  std::shared_ptr<const void> owned_files;
};

// The pod's service account: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with
// `sa_dir`/token, ca.crt and namespace.
absl::StatusOr<Config> InClusterConfig(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// One context of a kubeconfig file: `context`, or the file's current-context when empty.
// Relative file paths in the kubeconfig are relative to the kubeconfig's directory.
absl::StatusOr<Config> KubeconfigConfig(const std::string& path, const std::string& context = "");

// As kubectl: the flag's file, else the first file in $KUBECONFIG, else in-cluster when
// KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
absl::StatusOr<Config> LoadConfig(const std::string& kubeconfig_flag);

// The token in a file, without surrounding whitespace; an empty file is an error.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_CONFIG_H_
