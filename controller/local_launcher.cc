#include "controller/local_launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"

extern char** environ;

namespace stampede::controller {
namespace {

bool Executable(const std::string& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0;
}

std::string SelfDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

}  // namespace

std::string FindAgentBinary() {
  if (const char* env = std::getenv("STAMPEDE_AGENT_BINARY"); env != nullptr && Executable(env))
    return env;
  const std::string self = SelfDir();
  for (const std::string& candidate :
       {self + "/stampede-agent", self + "/../agent/stampede-agent"}) {
    if (Executable(candidate)) return candidate;
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      const std::string candidate = absl::StrCat(dir, "/stampede-agent");
      if (Executable(candidate)) return candidate;
    }
  }
  return "";
}

LocalLauncher::LocalLauncher(std::string agent_binary, std::string log_dir)
    : agent_binary_(std::move(agent_binary)), log_dir_(std::move(log_dir)) {}

LocalLauncher::~LocalLauncher() { Stop(); }

std::string LocalLauncher::LogLocation(uint32_t index) const {
  return absl::StrCat(log_dir_, "/agent-", index, ".log");
}

absl::Status LocalLauncher::Launch(const LaunchRequest& request) {
  if (!Executable(agent_binary_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent binary \"", agent_binary_, "\" is not executable"));
  }
  mkdir(log_dir_.c_str(), 0755);
  // The token travels in the environment, not in argv where ps would show it.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "STAMPEDE_TOKEN=", 15) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("STAMPEDE_TOKEN=" + request.token);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  common::MutexLock lock(&mu_);
  for (uint32_t i = 0; i < request.agents; ++i) {
    std::vector<std::string> args = {
        agent_binary_, "connect",      "--controller", request.controller_address,
        "--run",       request.run_id, "--index",      std::to_string(i)};
    if (request.threads_per_agent != 0) {
      args.push_back("--threads");
      args.push_back(std::to_string(request.threads_per_agent));
    }
    const std::string log = LogLocation(i);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return absl::UnavailableError(absl::StrCat("cannot create ", log, ": ", strerror(errno)));
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      close(fd);
      return absl::ResourceExhaustedError(absl::StrCat("fork failed: ", strerror(errno)));
    }
    if (pid == 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      const int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      // Our own process group: a Ctrl-C on the terminal reaches the controller, which stops the
      // agents in order, instead of killing them mid-report.
      setpgid(0, 0);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(fd);
    pids_.push_back(pid);
  }
  return absl::OkStatus();
}

std::vector<pid_t> LocalLauncher::Pids() const {
  common::MutexLock lock(&mu_);
  return pids_;
}

void LocalLauncher::Stop() {
  std::vector<pid_t> pids;
  {
    common::MutexLock lock(&mu_);
    pids.swap(pids_);
  }
  if (pids.empty()) return;
  auto reap = [&pids] {
    for (pid_t& pid : pids) {
      if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == pid) pid = 0;
    }
    for (pid_t pid : pids) {
      if (pid > 0) return false;
    }
    return true;
  };
  if (reap()) return;
  // Agents normally exit by themselves once the controller closes their session; give them a
  // moment, then ask, then insist.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool termed = false;
  while (!reap()) {
    const auto now = std::chrono::steady_clock::now();
    if (!termed && now > deadline - std::chrono::seconds(4)) {
      for (pid_t pid : pids)
        if (pid > 0) kill(pid, SIGTERM);
      termed = true;
    }
    if (now > deadline) {
      for (pid_t pid : pids) {
        if (pid > 0) {
          SLOG(kWarning) << "agent_killed pid=" << pid;
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
        }
      }
      return;
    }
    // Reaping children has no waitable event short of SIGCHLD handling, which the embedding
    // program owns; poll briefly.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

PerRunLocalLauncher::PerRunLocalLauncher(std::string agent_binary, std::string logs_root)
    : agent_binary_(std::move(agent_binary)), logs_root_(std::move(logs_root)) {}

absl::Status PerRunLocalLauncher::Launch(const LaunchRequest& request) {
  LocalLauncher* launcher = nullptr;
  {
    common::MutexLock lock(&mu_);
    if (launcher_ != nullptr) return absl::FailedPreconditionError("agents already launched");
    launcher_ = std::make_unique<LocalLauncher>(agent_binary_,
                                                absl::StrCat(logs_root_, "/", request.run_id));
    launcher = launcher_.get();
  }
  return launcher->Launch(request);
}

void PerRunLocalLauncher::Stop() {
  if (LocalLauncher* launcher = Get(); launcher != nullptr) launcher->Stop();
}

std::string PerRunLocalLauncher::LogLocation(uint32_t index) const {
  LocalLauncher* launcher = Get();
  return launcher == nullptr ? logs_root_ : launcher->LogLocation(index);
}

LocalLauncher* PerRunLocalLauncher::Get() const {
  common::MutexLock lock(&mu_);
  return launcher_.get();
}

}  // namespace stampede::controller
