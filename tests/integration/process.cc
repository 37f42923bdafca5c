#include "tests/integration/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace stampede::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// glibc 2.36 declares pidfd_open without C linkage for C++; the system call is the same.
int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int MillisecondsLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Blocks until `fd` is readable or `deadline` passes; true when readable.
bool PollReadable(int fd, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, MillisecondsLeft(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

}  // namespace

bool WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const int fd = PidfdOpen(pid);
  if (fd < 0) return errno == ESRCH;  // already gone
  const bool exited = PollReadable(fd, std::chrono::steady_clock::now() + timeout);
  close(fd);
  return exited;
}

bool WaitUntil(std::chrono::milliseconds timeout, const std::function<bool()>& predicate,
               std::chrono::milliseconds period) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(period);
  }
  return true;
}

std::string MakeTempDir() {
  std::string tmpl = "/tmp/stampede-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

CommandOutput RunToEnd(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  Process p(std::move(argv));
  CommandOutput r;
  if (std::optional<int> code = p.Wait(timeout); code.has_value()) r.exit_code = *code;
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

std::string HelmBinary() {
  const char* helm = std::getenv("STAMPEDE_HELM");
  return helm != nullptr && *helm != '\0' ? helm : "/var/cache/stampede/helm/2.0.4/helm";
}

std::string AgentBinary() { return STAMPEDE_AGENT_BINARY; }
std::string TargetBinary() { return STAMPEDE_TARGET_BINARY; }
std::string ControllerBinary() { return STAMPEDE_CONTROLLER_BINARY; }

std::string AskedIo() {
  const char* io = std::getenv("STAMPEDE_IO");
  return io == nullptr || std::string(io) == "auto" ? "" : io;
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

std::string ImageArchivesProblem() {
  const std::vector<std::string> archives = ImageArchives();
  const std::string binaries[] = {AgentBinary(), ControllerBinary()};
  for (size_t i = 0; i < archives.size(); ++i) {
    struct stat archive, binary;
    if (stat(archives[i].c_str(), &archive) != 0) {
      return archives[i] + " is missing: run scripts/images (or ninja -C build images)";
    }
    if (stat(binaries[i].c_str(), &binary) == 0 && binary.st_mtime > archive.st_mtime) {
      return archives[i] + " is older than " + binaries[i] +
             ": run scripts/images (or ninja -C build images) again";
    }
  }
  return "";
}

std::vector<std::string> ImageArchives() {
  const char* env = std::getenv("STAMPEDE_IMAGES");
  const std::string dir = env != nullptr && *env != '\0' ? env : STAMPEDE_IMAGES_DIR;
  return {dir + "/stampede-agent-" STAMPEDE_VERSION ".tar",
          dir + "/stampede-" STAMPEDE_VERSION ".tar"};
}

Process::Process(std::vector<std::string> argv) : dir_(MakeTempDir()) {
  const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, STDOUT_FILENO);
    dup2(e, STDERR_FILENO);
    // Children start with default signal handling and an empty mask, whatever gtest set up.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  pidfd_ = PidfdOpen(pid_);
  if (pidfd_ < 0) throw std::runtime_error("pidfd_open failed");
}

Process::~Process() {
  if (!exit_code_.has_value() && pid_ > 0) {
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (pidfd_ >= 0) close(pidfd_);
  std::string cmd = "rm -rf '" + dir_ + "'";
  (void)!system(cmd.c_str());
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_.has_value()) return exit_code_;
  // The pidfd turns readable when the child exits; then waitpid reaps it without blocking.
  if (!PollReadable(pidfd_, std::chrono::steady_clock::now() + timeout)) return std::nullopt;
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) return std::nullopt;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

void Process::Signal(int sig) { kill(pid_, sig); }
std::string Process::Stdout() const { return ReadFile(dir_ + "/stdout"); }
std::string Process::Stderr() const { return ReadFile(dir_ + "/stderr"); }

TestTarget::TestTarget(std::vector<std::string> extra_args) : dir_(MakeTempDir()) {
  std::vector<std::string> argv = {TargetBinary(), "--port-file", dir_ + "/port"};
  for (const std::string& a : extra_args) tls_ = tls_ || a == "--tls-cert";
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // The target writes the port file (atomically, by a rename into dir_) once it accepts
  // connections: wait for that rename, or for the target to exit.
  const int watch = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (watch < 0 || inotify_add_watch(watch, dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    throw std::runtime_error("inotify failed");
  }
  process_ = std::make_unique<Process>(argv);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    const std::string text = ReadFile(dir_ + "/port");
    if (!text.empty()) {
      port_ = std::atoi(text.c_str());
      close(watch);
      return;
    }
    pollfd fds[2] = {{watch, POLLIN, 0}, {process_->pidfd(), POLLIN, 0}};
    const int r = poll(fds, 2, MillisecondsLeft(deadline));
    if (r == 0 || (fds[1].revents & POLLIN) != 0) break;  // timed out, or the target exited
    char events[4096];
    while (read(watch, events, sizeof events) > 0) {
    }
  }
  close(watch);
  throw std::runtime_error("test target did not start: " + process_->Stderr());
}

TestTarget::~TestTarget() {
  process_.reset();
  (void)!system(("rm -rf '" + dir_ + "'").c_str());
}

std::string TestTarget::Url(const std::string& path) const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
}

namespace {

// The number after "key": in the target's /stats JSON, or -1.
long StatsField(TestTarget& target, const std::string& key) {
  auto body = HttpGet(target.Url("/stats"));
  if (!body.has_value()) return -1;
  const std::string quoted = "\"" + key + "\":";
  const size_t at = body->find(quoted);
  if (at == std::string::npos) return -1;
  return std::atol(body->c_str() + at + quoted.size());
}

}  // namespace

long TestTarget::Served() { return StatsField(*this, "requests"); }
long TestTarget::OpenConnections() { return StatsField(*this, "open_connections"); }

size_t CountOf(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

std::optional<std::string> HttpGet(const std::string& url) {
  const std::string cmd = "curl -sk --max-time 10 '" + url + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string body;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) body.append(buf, n);
  if (pclose(pipe) != 0) return std::nullopt;
  return body;
}

}  // namespace stampede::testing
