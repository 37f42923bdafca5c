#include "controller/kube/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace stampede::kube {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Unlinks the temporary files of one loaded kubeconfig when the last Config copy goes.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& path : paths) unlink(path.c_str());
  }
};

// Writes `data` to a new file only we can read: httplib takes certificates and keys by path.
absl::StatusOr<std::string> WriteTempFile(const std::string& data, TempFiles& files) {
  std::string dir = Env("TMPDIR");
  if (dir.empty()) dir = "/tmp";
  std::string path = dir + "/stampede-kube-XXXXXX";
  const int fd = mkstemp(path.data());  // mode 0600
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create a file in ", dir, ": ", strerror(errno)));
  }
  files.paths.push_back(path);
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
    }
    written += static_cast<size_t>(n);
  }
  close(fd);
  return path;
}

// The kubeconfig being parsed: its path (for messages and relative paths) and root node.
class Kubeconfig {
 public:
  Kubeconfig(std::string path, YAML::Node root) : path_(std::move(path)), root_(std::move(root)) {}

  absl::Status Error(absl::StatusCode code, const std::string& what) const {
    return absl::Status(code, absl::StrCat("kubeconfig ", path_, ": ", what));
  }

  // The `field` map of the entry named `name` in the list `list` ("contexts", "clusters", ...).
  absl::StatusOr<YAML::Node> Find(const char* list, const char* field, const std::string& kind,
                                  const std::string& name) const {
    const YAML::Node entries = root_[list];
    if (entries.IsSequence()) {
      for (const YAML::Node& entry : entries) {
        if (entry["name"] && entry["name"].as<std::string>() == name) {
          const YAML::Node value = entry[field];
          if (value && !value.IsMap() && !value.IsNull()) {
            return Error(absl::StatusCode::kInvalidArgument,
                         absl::StrCat(kind, " \"", name, "\": ", field, " must be a map"));
          }
          return value;
        }
      }
    }
    return Error(absl::StatusCode::kNotFound, absl::StrCat(kind, " \"", name, "\" not found"));
  }

  // A path from the file, made absolute against the kubeconfig's directory.
  std::string Resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/') return file;
    const size_t slash = path_.rfind('/');
    return slash == std::string::npos ? file : path_.substr(0, slash + 1) + file;
  }

  // `file_key` as a resolved path, or `data_key` (base64, preferred) written to a private file.
  absl::StatusOr<std::string> FileOrData(const YAML::Node& node, const std::string& owner,
                                         const char* file_key, const char* data_key,
                                         TempFiles& files) const {
    const std::string data = Str(node, data_key);
    if (!data.empty()) {
      std::string decoded;
      if (!absl::Base64Unescape(data, &decoded)) {
        return Error(absl::StatusCode::kInvalidArgument,
                     absl::StrCat(owner, ": ", data_key, " is not valid base64"));
      }
      return WriteTempFile(decoded, files);
    }
    return Resolve(Str(node, file_key));
  }

  static std::string Str(const YAML::Node& node, const char* key) {
    if (!node || !node[key] || node[key].IsNull()) return "";
    return node[key].as<std::string>();
  }

  const YAML::Node& root() const { return root_; }

 private:
  const std::string path_;
  const YAML::Node root_;
};

absl::StatusOr<Config> ParseKubeconfig(const Kubeconfig& file, const std::string& wanted_context) {
  const std::string context_name =
      wanted_context.empty() ? Kubeconfig::Str(file.root(), "current-context") : wanted_context;
  if (context_name.empty()) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      "no current-context is set and no context was given");
  }
  ASSIGN_OR_RETURN(const YAML::Node context,
                   file.Find("contexts", "context", "context", context_name));
  const std::string cluster_name = Kubeconfig::Str(context, "cluster");
  if (cluster_name.empty()) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("context \"", context_name, "\" has no cluster"));
  }
  ASSIGN_OR_RETURN(const YAML::Node cluster,
                   file.Find("clusters", "cluster", "cluster", cluster_name));
  const std::string cluster_label = absl::StrCat("cluster \"", cluster_name, "\"");

  Config config;
  auto files = std::make_shared<TempFiles>();
  config.server = Kubeconfig::Str(cluster, "server");
  if (config.server.empty()) {
    return file.Error(absl::StatusCode::kInvalidArgument, cluster_label + " has no server");
  }
  ASSIGN_OR_RETURN(config.ca_file, file.FileOrData(cluster, cluster_label, "certificate-authority",
                                                   "certificate-authority-data", *files));
  if (cluster["insecure-skip-tls-verify"]) {
    config.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"].as<bool>();
  }
  const std::string name_space = Kubeconfig::Str(context, "namespace");
  if (!name_space.empty()) config.default_namespace = name_space;

  const std::string user_name = Kubeconfig::Str(context, "user");
  if (!user_name.empty()) {
    ASSIGN_OR_RETURN(const YAML::Node user, file.Find("users", "user", "user", user_name));
    const std::string user_label = absl::StrCat("user \"", user_name, "\"");
    for (const char* unsupported : {"exec", "auth-provider", "username"}) {
      if (user && user[unsupported]) {
        return file.Error(absl::StatusCode::kUnimplemented,
                          absl::StrCat(user_label, ": ", unsupported,
                                       " credentials are not supported (use a token or a "
                                       "client certificate)"));
      }
    }
    config.token = Kubeconfig::Str(user, "token");
    config.token_file = file.Resolve(Kubeconfig::Str(user, "tokenFile"));
    ASSIGN_OR_RETURN(
        config.client_cert_file,
        file.FileOrData(user, user_label, "client-certificate", "client-certificate-data", *files));
    ASSIGN_OR_RETURN(config.client_key_file,
                     file.FileOrData(user, user_label, "client-key", "client-key-data", *files));
    if (config.client_cert_file.empty() != config.client_key_file.empty()) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        user_label + ": client-certificate and client-key go together");
    }
  }
  if (!files->paths.empty()) config.owned_files = std::move(files);
  return config;
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string content, ReadFile(path));
  std::string token(absl::StripAsciiWhitespace(content));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  return token;
}

absl::StatusOr<Config> InClusterConfig(const std::string& sa_dir) {
  std::string host = Env("KUBERNETES_SERVICE_HOST");
  const std::string port = Env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return absl::FailedPreconditionError(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
        "(not running in a pod?)");
  }
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  Config config;
  config.server = absl::StrCat("https://", host, ":", port);
  config.token_file = sa_dir + "/token";
  absl::StatusOr<std::string> token = ReadTokenFile(config.token_file);
  if (!token.ok()) {
    return absl::Status(token.status().code(),
                        absl::StrCat("in-cluster config: ", token.status().message()));
  }
  config.token = *std::move(token);
  config.ca_file = sa_dir + "/ca.crt";
  if (access(config.ca_file.c_str(), R_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("in-cluster config: cannot read ", config.ca_file, ": ", strerror(errno)));
  }
  absl::StatusOr<std::string> name_space = ReadFile(sa_dir + "/namespace");
  if (name_space.ok() && !absl::StripAsciiWhitespace(*name_space).empty()) {
    config.default_namespace = std::string(absl::StripAsciiWhitespace(*name_space));
  }
  return config;
}

absl::StatusOr<Config> KubeconfigConfig(const std::string& path, const std::string& context) {
  try {
    return ParseKubeconfig(Kubeconfig(path, YAML::LoadFile(path)), context);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("kubeconfig ", path, ": cannot read the file"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": ", e.what()));
  }
}

absl::StatusOr<Config> LoadConfig(const std::string& kubeconfig_flag) {
  if (!kubeconfig_flag.empty()) return KubeconfigConfig(kubeconfig_flag);
  const std::vector<std::string> paths = absl::StrSplit(Env("KUBECONFIG"), ':', absl::SkipEmpty());
  if (!paths.empty()) return KubeconfigConfig(paths.front());
  if (!Env("KUBERNETES_SERVICE_HOST").empty()) return InClusterConfig();
  const std::string home = Env("HOME");
  if (home.empty()) {
    return absl::NotFoundError(
        "no kubeconfig: --kubeconfig, $KUBECONFIG, in-cluster and $HOME are all unset");
  }
  return KubeconfigConfig(home + "/.kube/config");
}

}  // namespace stampede::kube
