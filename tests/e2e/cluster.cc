#include "tests/e2e/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "controller/kube/config.h"

namespace stampede::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using kube::Json;
using std::chrono::milliseconds;

constexpr char kViewerGroup[] = "stampede-e2e-viewers";
constexpr char kProbePod[] = "stampede-e2e-probe";
constexpr milliseconds kPollInterval{50};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  chmod(path.c_str(), 0600);  // tokens
  return absl::OkStatus();
}

std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

absl::StatusOr<std::string> MakeTempDir(const std::string& parent, const std::string& prefix) {
  std::string path = absl::StrCat(parent, "/", prefix, "XXXXXX");
  if (mkdtemp(path.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp in ", parent, ": ", strerror(errno)));
  }
  return path;
}

absl::StatusOr<std::string> RandomToken() {
  std::ifstream random("/dev/urandom", std::ios::binary);
  char bytes[16];
  if (!random.read(bytes, sizeof bytes)) return absl::InternalError("cannot read /dev/urandom");
  return absl::BytesToHexString(absl::string_view(bytes, sizeof bytes));
}

// Marks a directory as the running process's, for SweepStale.
absl::Status ClaimDir(const std::string& dir) {
  return WriteFile(dir + "/owner", std::to_string(getpid()));
}

// Removes the directories `parent`/`prefix`* left by clusters whose process died without a Stop
// (a crash, a SIGKILL): the etcd data alone takes 60 MB of /dev/shm. Directories without an owner
// file are left alone (just created, or kept on purpose).
// A node agent killed outright (or before it was done) leaves containers behind in its state
// folder `node`: removes them (runc kills them), then their root file system mounts.
void RemoveContainersLeftBehind(const std::string& node) {
  std::error_code error;
  for (const auto& container : std::filesystem::directory_iterator(node + "/runc", error)) {
    const std::string command =
        absl::StrCat("runc --root '", node, "/runc' delete --force '",
                     container.path().filename().string(), "' >/dev/null 2>&1");
    (void)!std::system(command.c_str());
  }
  for (const auto& bundle : std::filesystem::directory_iterator(node + "/containers", error)) {
    umount2((bundle.path().string() + "/rootfs").c_str(), MNT_DETACH);
  }
}

void SweepStale(const std::string& parent, const std::string& prefix) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(parent, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(ReadFile(entry.path().string() + "/owner"), &pid) || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    RemoveContainersLeftBehind(entry.path().string() + "/node");
    std::filesystem::remove_all(entry.path(), error);
  }
}

// Ports the kernel hands out for 127.0.0.1, all distinct. Another process may take one before
// its user binds it; with ephemeral ports that is rare enough for tests.
absl::StatusOr<std::vector<int>> FreePorts(int count) {
  std::vector<int> sockets, ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      status = absl::UnavailableError(absl::StrCat("no free port: ", strerror(errno)));
    } else {
      ports.push_back(ntohs(address.sin_port));
    }
    if (fd >= 0) sockets.push_back(fd);
  }
  for (int fd : sockets) close(fd);
  if (!status.ok()) return status;
  return ports;
}

// The first executable `name` on $PATH.
std::string FindOnPath(const std::string& name) {
  for (absl::string_view dir : absl::StrSplit(Env("PATH"), ':', absl::SkipEmpty())) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

std::string KubeconfigText(const std::string& server, const std::string& user,
                           const std::string& token) {
  return absl::StrCat(
      "apiVersion: v1\nkind: Config\n"
      "clusters:\n- name: stampede-e2e\n  cluster:\n    server: ",
      server,
      "\n    insecure-skip-tls-verify: true\n"
      "users:\n- name: ",
      user, "\n  user:\n    token: ", token, "\n", "contexts:\n- name: ", user,
      "\n  context:\n    cluster: stampede-e2e\n    user: ", user,
      "\n    namespace: default\n"
      "current-context: ",
      user, "\n");
}

// Calls `done` every kPollInterval until it returns true or an error, or `deadline` passes.
absl::Status Poll(Clock::time_point deadline, const std::string& what,
                  const std::function<absl::StatusOr<bool>()>& done) {
  while (true) {
    absl::StatusOr<bool> finished = done();
    if (!finished.ok()) return finished.status();
    if (*finished) return absl::OkStatus();
    if (Clock::now() + kPollInterval > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("timed out waiting for ", what));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

bool HasCondition(const Json& object, const std::string& type) {
  if (!object.contains("status")) return false;
  for (const Json& condition : object["status"].value("conditions", Json::array())) {
    if (condition.value("type", "") == type && condition.value("status", "") == "True") {
      return true;
    }
  }
  return false;
}

}  // namespace

// A child process in its own process group, its output in files, killed with the group.
class Cluster::Child {
 public:
  // `err_path` may equal `out_path`. argv[0] is looked up on $PATH when it has no slash.
  static absl::StatusOr<std::unique_ptr<Child>> Spawn(std::string name,
                                                      std::vector<std::string> argv,
                                                      const std::string& out_path,
                                                      const std::string& err_path) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = err_path == out_path
                        ? out
                        : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || err < 0) {
      const int error = errno;
      if (out >= 0) close(out);
      return absl::InternalError(absl::StrCat("cannot create ", out_path, ": ", strerror(error)));
    }
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      // Dies with the thread that started it, so a crashed test leaves nothing running.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      const int null_fd = open("/dev/null", O_RDONLY);
      dup2(null_fd, STDIN_FILENO);
      dup2(out, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execvp(args[0], args.data());
      _exit(127);
    }
    const int error = errno;
    close(out);
    if (err != out) close(err);
    if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", strerror(error)));
    setpgid(pid, pid);  // also here, so a signal right after Spawn reaches the group
    return std::unique_ptr<Child>(new Child(std::move(name), pid, err_path));
  }

  ~Child() { Kill(); }

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }

  // The exit code (128+signal when killed), or nullopt while it runs after `timeout`.
  std::optional<int> Wait(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!exit_code_.has_value()) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (Clock::now() >= deadline) break;
      // No event to block on for one child's exit, short of a SIGCHLD handler that would
      // interfere with the test process: poll, bounded by the deadline.
      std::this_thread::sleep_for(milliseconds(5));
    }
    return exit_code_;
  }

  void Signal(int signal) {
    if (!exit_code_.has_value()) kill(-pid_, signal);
  }

  // SIGTERM, then SIGKILL for whatever still runs at `deadline`.
  void Terminate(Clock::time_point deadline) {
    Signal(SIGTERM);
    if (!Wait(std::chrono::duration_cast<milliseconds>(
                  std::max(Clock::duration::zero(), deadline - Clock::now())))
             .has_value()) {
      Kill();
    }
  }

  void Kill() {
    if (exit_code_.has_value()) return;
    kill(-pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = 128 + SIGKILL;
  }

 private:
  Child(std::string name, pid_t pid, std::string log_path)
      : name_(std::move(name)), pid_(pid), log_path_(std::move(log_path)) {}

  const std::string name_;
  const pid_t pid_;
  const std::string log_path_;
  std::optional<int> exit_code_;
};

std::string CommandResult::ToString() const {
  return absl::StrCat("exit ", exit_code, "\nstdout:\n", out, "\nstderr:\n", err);
}

std::string Cluster::K8sBinDir() {
  const std::string dir = Env("STAMPEDE_K8S_BIN");
  return dir.empty() ? "/var/cache/stampede/k8s/bin" : dir;
}

Cluster::Cluster(Options options) : options_(std::move(options)) {}

Cluster::~Cluster() { Stop(); }

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(Options options) {
  const auto started = Clock::now();
  std::unique_ptr<Cluster> cluster(new Cluster(std::move(options)));
  if (absl::Status status = cluster->Boot(); !status.ok()) {
    cluster->Stop();
    return status;
  }
  cluster->start_duration_ = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  return cluster;
}

absl::Status Cluster::Boot() {
  const auto started = Clock::now();
  const auto deadline = started + options_.start_timeout;
  auto milestone = [&](const char* what) {
    absl::StrAppend(&start_timeline_, start_timeline_.empty() ? "" : " ", what, "=",
                    std::chrono::duration_cast<milliseconds>(Clock::now() - started).count(), "ms");
  };
  k8s_bin_ = K8sBinDir();
  for (const char* binary :
       {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}) {
    const std::string path = absl::StrCat(k8s_bin_, "/", binary);
    if (access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          path,
          " is missing: run scripts/k8s-build (it builds Kubernetes 1.20 from Debian's "
          "source once and caches it), or point STAMPEDE_K8S_BIN at its output"));
    }
  }
  const std::string etcd = FindOnPath("etcd");
  const std::string openssl = FindOnPath("openssl");
  if (etcd.empty() || openssl.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        etcd.empty() ? "etcd" : "openssl",
        " is not on $PATH: run scripts/k8s-build (it installs etcd-server), or install openssl"));
  }

  const std::string tmp = Env("TMPDIR").empty() ? "/tmp" : Env("TMPDIR");
  SweepStale(tmp, "stampede-e2e-");
  ASSIGN_OR_RETURN(dir_, MakeTempDir(tmp, "stampede-e2e-"));
  RETURN_IF_ERROR(ClaimDir(dir_));
  // etcd fsyncs every write: on tmpfs the apiserver's first start is much quicker.
  struct stat shm;
  if (stat("/dev/shm", &shm) == 0 && S_ISDIR(shm.st_mode) && access("/dev/shm", W_OK) == 0) {
    SweepStale("/dev/shm", "stampede-e2e-etcd-");
    ASSIGN_OR_RETURN(shm_dir_, MakeTempDir("/dev/shm", "stampede-e2e-etcd-"));
    RETURN_IF_ERROR(ClaimDir(shm_dir_));
    etcd_dir_ = shm_dir_ + "/data";
  } else {
    etcd_dir_ = dir_ + "/etcd";
  }
  node_log_dir_ = dir_ + "/pods";
  for (const std::string& sub : {dir_ + "/logs", dir_ + "/kubectl", node_log_dir_}) {
    if (mkdir(sub.c_str(), 0755) != 0) {
      return absl::InternalError(absl::StrCat("mkdir ", sub, ": ", strerror(errno)));
    }
  }
  ASSIGN_OR_RETURN(const std::vector<int> ports, FreePorts(3));
  const std::string etcd_url = absl::StrCat("http://127.0.0.1:", ports[0]);
  etcd_port_ = ports[0];
  const std::string peer_url = absl::StrCat("http://127.0.0.1:", ports[1]);
  server_ = absl::StrCat("https://127.0.0.1:", ports[2]);
  ASSIGN_OR_RETURN(admin_token_, RandomToken());
  ASSIGN_OR_RETURN(viewer_token_, RandomToken());
  const std::string tokens = dir_ + "/tokens.csv";
  RETURN_IF_ERROR(
      WriteFile(tokens, absl::StrCat(admin_token_, ",admin,admin,system:masters\n", viewer_token_,
                                     ",viewer,viewer,", kViewerGroup, "\n")));
  admin_kubeconfig_ = dir_ + "/admin.kubeconfig";
  viewer_kubeconfig_ = dir_ + "/viewer.kubeconfig";
  RETURN_IF_ERROR(WriteFile(admin_kubeconfig_, KubeconfigText(server_, "admin", admin_token_)));
  RETURN_IF_ERROR(WriteFile(viewer_kubeconfig_, KubeconfigText(server_, "viewer", viewer_token_)));

  auto spawn = [this](const std::string& name,
                      std::vector<std::string> argv) -> absl::StatusOr<std::unique_ptr<Child>> {
    const std::string log = absl::StrCat(dir_, "/logs/", name, ".log");
    return Child::Spawn(name, std::move(argv), log, log);
  };

  // The keys are made while etcd starts: the service account key (an EC key, the file holds
  // both halves) and the apiserver's self-signed certificate (quicker than its own RSA one).
  const std::string sa_key = dir_ + "/sa.key";
  const std::string cert = dir_ + "/apiserver.crt", cert_key = dir_ + "/apiserver.key";
  ASSIGN_OR_RETURN(std::unique_ptr<Child> sa_keygen,
                   spawn("openssl-sa", {openssl, "ecparam", "-name", "prime256v1", "-genkey",
                                        "-noout", "-out", sa_key}));
  ASSIGN_OR_RETURN(
      std::unique_ptr<Child> cert_keygen,
      spawn("openssl-cert",
            {openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "7", "-subj", "/CN=127.0.0.1", "-addext",
             "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", cert_key, "-out", cert}));
  etcd_argv_ = {etcd,
                "--name=e2e",
                "--data-dir=" + etcd_dir_,
                "--listen-client-urls=" + etcd_url,
                "--advertise-client-urls=" + etcd_url,
                "--listen-peer-urls=" + peer_url,
                "--initial-advertise-peer-urls=" + peer_url,
                "--initial-cluster=e2e=" + peer_url};
  ASSIGN_OR_RETURN(etcd_, spawn("etcd", etcd_argv_));
  for (Child* keygen : {sa_keygen.get(), cert_keygen.get()}) {
    if (keygen->Wait(std::chrono::seconds(20)) != 0) {
      return Failure(absl::StatusCode::kInternal, "openssl could not make a key", keygen);
    }
  }
  apiserver_argv_ = {k8s_bin_ + "/kube-apiserver",
                     "--etcd-servers=" + etcd_url,
                     absl::StrCat("--secure-port=", ports[2]),
                     "--bind-address=127.0.0.1",
                     "--advertise-address=127.0.0.1",
                     "--tls-cert-file=" + cert,
                     "--tls-private-key-file=" + cert_key,
                     "--token-auth-file=" + tokens,
                     "--authorization-mode=RBAC",
                     "--service-account-key-file=" + sa_key,
                     "--service-account-signing-key-file=" + sa_key,
                     "--service-account-issuer=https://kubernetes.default.svc",
                     "--service-cluster-ip-range=10.0.0.0/24",
                     options_.workload_controllers ? "--enable-admission-plugins=ServiceAccount"
                                                   : "--disable-admission-plugins=ServiceAccount",
                     "--profiling=false"};
  ASSIGN_OR_RETURN(apiserver_, spawn("kube-apiserver", apiserver_argv_));
  RETURN_IF_ERROR(WaitForApiServer(deadline));
  milestone("apiserver_ready");

  ASSIGN_OR_RETURN(kube::Config config, kube::KubeconfigConfig(admin_kubeconfig_));
  ASSIGN_OR_RETURN(client_, kube::Client::New(std::move(config)));
  // Everything below talks to the apiserver only: start it all at once.
  ASSIGN_OR_RETURN(
      scheduler_,
      spawn("kube-scheduler",
            {k8s_bin_ + "/kube-scheduler", "--kubeconfig=" + admin_kubeconfig_,
             "--leader-elect=false", "--port=0", "--secure-port=0",
             // Its client's default, 50 requests a second, binds at most 50 Pods a second: with
             // 10,000 Pods that, not the operator, set when all were Running (198 s).
             "--kube-api-qps=1000", "--kube-api-burst=1000"}));
  std::vector<std::string> node_argv = {
      STAMPEDE_TEST_NODE_BINARY, "--kubeconfig=" + admin_kubeconfig_,
      "--node-name=" + options_.node_name, "--log-dir=" + node_log_dir_};
  if (!options_.node_bin_dir.empty()) node_argv.push_back("--bin-dir=" + options_.node_bin_dir);
  for (const std::string& archive : options_.node_image_archives) {
    node_argv.push_back("--image-archive=" + archive);
  }
  if (!options_.node_image_archives.empty()) node_argv.push_back("--state-dir=" + dir_ + "/node");
  if (options_.node_simulate) node_argv.push_back("--simulate");
  if (options_.node_max_pods > 0)
    node_argv.push_back(absl::StrCat("--max-pods=", options_.node_max_pods));
  ASSIGN_OR_RETURN(node_, spawn("stampede-test-node", node_argv));

  // The CRDs go in while the node registers; the controller manager waits for them, so that
  // its garbage collector watches them from the start.
  std::future<absl::Status> crds =
      std::async(std::launch::async, [this, deadline] { return InstallCrds(deadline); });
  auto start_controller_manager = [&]() -> absl::Status {
    std::vector<std::string> argv = {k8s_bin_ + "/kube-controller-manager",
                                     "--kubeconfig=" + admin_kubeconfig_,
                                     "--controllers=garbagecollector,namespace",
                                     "--leader-elect=false",
                                     "--use-service-account-credentials=false",
                                     "--port=0",
                                     "--secure-port=0"};
    if (options_.workload_controllers) {
      argv[2] =
          "--controllers=garbagecollector,namespace,deployment,replicaset,serviceaccount,"
          "serviceaccount-token";
      // The token controller signs with the apiserver's service account key and puts the
      // serving certificate (self-signed, so its own CA) in each token Secret as ca.crt.
      argv.push_back("--service-account-private-key-file=" + sa_key);
      argv.push_back("--root-ca-file=" + cert);
    }
    ASSIGN_OR_RETURN(controller_manager_, spawn("kube-controller-manager", argv));
    return absl::OkStatus();
  };
  if (options_.crd_files.empty()) RETURN_IF_ERROR(start_controller_manager());

  // Our own read-only role: the built-in `view` is aggregated by a controller we do not run.
  const Json role = {
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "ClusterRole"},
      {"metadata", {{"name", kViewerGroup}}},
      {"rules",
       {{{"apiGroups", {"", "apps", "stampede.dev", "coordination.k8s.io", "apiextensions.k8s.io"}},
         {"resources",
          {"pods", "pods/log", "services", "endpoints", "configmaps", "events", "namespaces",
           "nodes", "serviceaccounts", "deployments", "replicasets", "loadtests",
           "loadtests/status", "leases", "customresourcedefinitions"}},
         {"verbs", {"get", "list", "watch"}}}}}};
  const Json binding = {
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "ClusterRoleBinding"},
      {"metadata", {{"name", kViewerGroup}}},
      {"roleRef",
       {{"apiGroup", "rbac.authorization.k8s.io"},
        {"kind", "ClusterRole"},
        {"name", kViewerGroup}}},
      {"subjects",
       {{{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Group"}, {"name", kViewerGroup}}}}};
  for (const auto& [kind, object] :
       {std::pair("clusterroles", &role), {"clusterrolebindings", &binding}}) {
    const absl::StatusOr<Json> created =
        client_->Create(absl::StrCat("/apis/rbac.authorization.k8s.io/v1/", kind), *object);
    if (!created.ok()) {
      return Failure(absl::StatusCode::kInternal,
                     absl::StrCat("cannot set up the viewer: ", created.status().message()),
                     apiserver_.get());
    }
  }
  RETURN_IF_ERROR(WaitForNode(deadline));
  milestone("node_ready");
  RETURN_IF_ERROR(RunProbePod(deadline));
  milestone("probe_pod_succeeded");
  RETURN_IF_ERROR(crds.get());
  if (controller_manager_ == nullptr) {
    RETURN_IF_ERROR(start_controller_manager());
    milestone("crds_established");
  }
  return absl::OkStatus();
}

void Cluster::FreezeApiServer(bool frozen) { apiserver_->Signal(frozen ? SIGSTOP : SIGCONT); }

absl::Status Cluster::RestartApiServerAndEtcd(std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  apiserver_->Terminate(Clock::now() + std::chrono::seconds(10));
  etcd_->Terminate(Clock::now() + std::chrono::seconds(10));
  auto spawn = [this](const std::string& name, std::vector<std::string> argv) {
    const std::string log = absl::StrCat(dir_, "/logs/", name, "-restarted.log");
    return Child::Spawn(name, std::move(argv), log, log);
  };
  ASSIGN_OR_RETURN(etcd_, spawn("etcd", etcd_argv_));
  // Compact etcd to its newest revision before the apiserver is back: every resourceVersion a
  // client held is then gone, and a watch resumed from one is answered 410 Gone.
  httplib::Client http("127.0.0.1", etcd_port_);
  http.set_connection_timeout(1, 0);
  int64_t revision = 0;
  RETURN_IF_ERROR(Poll(deadline, "etcd's revision", [&]() -> absl::StatusOr<bool> {
    RETURN_IF_ERROR(CheckAlive(etcd_.get()));
    httplib::Result range = http.Post("/v3/kv/range", R"({"key": "AA=="})", "application/json");
    if (!range || range->status != 200) return false;
    const kube::Json answer = kube::Json::parse(range->body, nullptr, /*allow_exceptions=*/false);
    if (!answer.is_object() || !answer.contains("header")) return false;
    revision = std::stoll(answer["header"].value("revision", "0"));
    return revision > 0;
  }));
  httplib::Result compacted = http.Post(
      "/v3/kv/compaction", absl::StrCat(R"({"revision": ")", revision, R"(", "physical": true})"),
      "application/json");
  if (!compacted || compacted->status != 200) {
    return Failure(
        absl::StatusCode::kInternal,
        absl::StrCat("etcd refused the compaction: ",
                     compacted ? compacted->body : httplib::to_string(compacted.error())),
        etcd_.get());
  }
  ASSIGN_OR_RETURN(apiserver_, spawn("kube-apiserver", apiserver_argv_));
  return WaitForApiServer(deadline);
}

absl::Status Cluster::WaitForApiServer(Clock::time_point deadline) {
  const size_t colon = server_.rfind(':');
  httplib::SSLClient http("127.0.0.1", std::stoi(server_.substr(colon + 1)));
  http.enable_server_certificate_verification(false);
  http.set_connection_timeout(1, 0);
  http.set_read_timeout(5, 0);
  std::string last_answer = "no answer yet";
  const absl::Status status =
      Poll(deadline, "kube-apiserver /readyz", [&]() -> absl::StatusOr<bool> {
        RETURN_IF_ERROR(CheckAlive(etcd_.get()));
        RETURN_IF_ERROR(CheckAlive(apiserver_.get()));
        httplib::Result result =
            http.Get("/readyz?verbose", {{"Authorization", "Bearer " + admin_token_}});
        if (!result) {
          last_answer = httplib::to_string(result.error());
          return false;
        }
        last_answer = absl::StrCat("HTTP ", result->status, ": ", result->body);
        return result->status == 200;
      });
  if (status.ok() || !absl::IsDeadlineExceeded(status)) return status;
  return Failure(status.code(),
                 absl::StrCat(status.message(), "; its last answer: ", Tail(last_answer, 2000)),
                 apiserver_.get());
}

absl::Status Cluster::InstallCrds(Clock::time_point deadline) {
  if (options_.crd_files.empty()) return absl::OkStatus();
  std::vector<std::string> args = {"apply"};
  for (const std::string& file : options_.crd_files) {
    args.push_back("-f");
    args.push_back(file);
  }
  const CommandResult applied = Kubectl(args);
  if (applied.exit_code != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubectl apply of the CRDs failed: ", applied.ToString()));
  }
  // Established: served, so the garbage collector's first discovery sees them.
  return Poll(deadline, "the CRDs to be established", [&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(const Json crds,
                     client_->List("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"));
    for (const Json& crd : crds["items"]) {
      if (!HasCondition(crd, "Established")) return false;
    }
    return true;
  });
}

absl::Status Cluster::WaitForNode(Clock::time_point deadline) {
  const std::string path = "/api/v1/nodes/" + options_.node_name;
  const absl::Status status =
      Poll(deadline, "the Node to be Ready and schedulable", [&]() -> absl::StatusOr<bool> {
        RETURN_IF_ERROR(CheckAlive(node_.get()));
        absl::StatusOr<Json> node = client_->Get(path);
        if (absl::IsNotFound(node.status())) return false;
        if (!node.ok()) return node.status();
        if (!HasCondition(*node, "Ready") || (*node)["spec"].value("unschedulable", false)) {
          return false;
        }
        for (const Json& taint : (*node)["spec"].value("taints", Json::array())) {
          if (taint.value("effect", "") != "PreferNoSchedule") return false;
        }
        return true;
      });
  if (status.ok() || !absl::IsDeadlineExceeded(status)) return status;
  return Failure(status.code(), std::string(status.message()), node_.get());
}

absl::Status Cluster::RunProbePod(Clock::time_point deadline) {
  // Proves scheduler and node agent work before any test relies on them.
  const std::string pods = "/api/v1/namespaces/default/pods";
  const Json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", kProbePod}}},
      {"spec",
       {{"automountServiceAccountToken", false},
        {"restartPolicy", "Never"},
        {"containers",
         {{{"name", "probe"}, {"image", "stampede-e2e/probe"}, {"command", {"/bin/true"}}}}}}}};
  // The apiserver creates the default namespace shortly after it is ready.
  absl::Status status =
      Poll(deadline, "the probe Pod to be created", [&]() -> absl::StatusOr<bool> {
        absl::StatusOr<Json> created = client_->Create(pods, pod);
        if (absl::IsNotFound(created.status())) return false;
        // With the ServiceAccount admission plugin: until the controller made "default".
        if (absl::IsPermissionDenied(created.status()) &&
            absl::StrContains(created.status().message(), "service account")) {
          return false;
        }
        if (!created.ok()) return created.status();
        return true;
      });
  std::string phase;
  if (status.ok()) {
    status = Poll(deadline, "the probe Pod to succeed", [&]() -> absl::StatusOr<bool> {
      RETURN_IF_ERROR(CheckAlive(scheduler_.get()));
      RETURN_IF_ERROR(CheckAlive(node_.get()));
      ASSIGN_OR_RETURN(const Json current, client_->Get(pods + "/" + kProbePod));
      phase = current.contains("status") ? current["status"].value("phase", "") : "";
      if (phase == "Failed") {
        return absl::InternalError(
            absl::StrCat("the probe Pod failed: ", current["status"].dump()));
      }
      return phase == "Succeeded" || (options_.node_simulate && phase == "Running");
    });
  }
  if (!status.ok()) {
    return Failure(status.code(), absl::StrCat(status.message(), " (phase \"", phase, "\")"),
                   nullptr);
  }
  const absl::StatusOr<Json> deleted =
      client_->Delete(pods + "/" + kProbePod, {{"gracePeriodSeconds", 0}});
  return deleted.ok() ? absl::OkStatus() : deleted.status();
}

absl::Status Cluster::CheckAlive(Child* child) const {
  if (child == nullptr) return absl::OkStatus();
  const std::optional<int> exit_code = child->Wait(milliseconds(0));
  if (!exit_code.has_value()) return absl::OkStatus();
  return Failure(absl::StatusCode::kInternal,
                 absl::StrCat(child->name(), " exited with code ", *exit_code), child);
}

absl::Status Cluster::Failure(absl::StatusCode code, const std::string& what,
                              const Child* child) const {
  const bool keep = Env("STAMPEDE_E2E_KEEP") == "1";
  std::string logs;
  if (child != nullptr) {
    logs = absl::StrCat("==== ", child->name(), " (", child->log_path(), ") ====\n",
                        Tail(ReadFile(child->log_path()), 4000));
  } else {
    logs = Logs();
  }
  return absl::Status(
      code, absl::StrCat(what, "\ncluster directory ", dir_,
                         keep ? " (kept)" : " (set STAMPEDE_E2E_KEEP=1 to keep it)", "\n", logs));
}

std::string Cluster::Logs(size_t bytes) const {
  std::string logs;
  for (const Child* child :
       {etcd_.get(), apiserver_.get(), controller_manager_.get(), scheduler_.get(), node_.get()}) {
    if (child == nullptr) continue;
    absl::StrAppend(&logs, "==== ", child->name(), " (", child->log_path(), ") ====\n",
                    Tail(ReadFile(child->log_path()), bytes), "\n");
  }
  return logs;
}

std::string Cluster::PodLog(const std::string& name_space, const std::string& pod) const {
  return ReadFile(absl::StrCat(node_log_dir_, "/", name_space, "_", pod, ".log"));
}

CommandResult Cluster::Kubectl(const std::vector<std::string>& args,
                               std::chrono::seconds timeout) const {
  return KubectlAs("admin", args, timeout);
}

CommandResult Cluster::KubectlAs(const std::string& user, const std::vector<std::string>& args,
                                 std::chrono::seconds timeout) const {
  CommandResult result;
  if (user != "admin" && user != "viewer") {
    result.err = "no user \"" + user + "\": the cluster has admin and viewer";
    return result;
  }
  std::vector<std::string> argv = {
      k8s_bin_ + "/kubectl",
      "--kubeconfig=" + (user == "admin" ? admin_kubeconfig_ : viewer_kubeconfig_),
      "--cache-dir=" + dir_ + "/kubectl/cache"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string base = absl::StrCat(dir_, "/kubectl/", kubectl_runs_++);
  absl::StatusOr<std::unique_ptr<Child>> kubectl =
      Child::Spawn("kubectl", argv, base + ".out", base + ".err");
  if (!kubectl.ok()) {
    result.err = std::string(kubectl.status().message());
    return result;
  }
  const std::optional<int> exit_code = (*kubectl)->Wait(timeout);
  (*kubectl)->Kill();
  result.out = ReadFile(base + ".out");
  result.err = ReadFile(base + ".err");
  if (exit_code.has_value()) {
    result.exit_code = *exit_code;
  } else {
    absl::StrAppend(&result.err, "\n(killed: still running after ", timeout.count(), " s)");
  }
  unlink((base + ".out").c_str());
  unlink((base + ".err").c_str());
  return result;
}

void Cluster::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // The node agent first: it kills the Pods' processes. Then the control plane, etcd last.
  if (node_ != nullptr) node_->Terminate(Clock::now() + std::chrono::seconds(10));
  if (!dir_.empty()) RemoveContainersLeftBehind(dir_ + "/node");
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (Child* child : {scheduler_.get(), controller_manager_.get(), apiserver_.get()}) {
    if (child != nullptr) child->Signal(SIGTERM);
  }
  for (Child* child : {scheduler_.get(), controller_manager_.get(), apiserver_.get()}) {
    if (child != nullptr) child->Terminate(deadline);
  }
  if (etcd_ != nullptr) etcd_->Terminate(Clock::now() + std::chrono::seconds(5));
  node_.reset();
  scheduler_.reset();
  controller_manager_.reset();
  apiserver_.reset();
  etcd_.reset();
  std::error_code ignored;
  for (const std::string& dir : {shm_dir_, dir_}) {
    if (dir.empty()) continue;
    if (Env("STAMPEDE_E2E_KEEP") == "1") {
      std::filesystem::remove(dir + "/owner", ignored);  // kept: not swept either
    } else {
      std::filesystem::remove_all(dir, ignored);
    }
  }
}

}  // namespace stampede::e2e
