#include "tests/integration/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace

std::string MakeTempDir() {
  std::string tmpl = "/tmp/stampede-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string AgentBinary() { return STAMPEDE_AGENT_BINARY; }
std::string TargetBinary() { return STAMPEDE_TARGET_BINARY; }
std::string ControllerBinary() { return STAMPEDE_CONTROLLER_BINARY; }

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
}

Process::~Process() {
  if (!exit_code_.has_value() && pid_ > 0) {
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::string cmd = "rm -rf '" + dir_ + "'";
  (void)!system(cmd.c_str());
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_.has_value()) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    // Polling the child's state: there is no portable event for "child exited" we can block on
    // with a timeout, short of a signalfd that would interfere with gtest.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Process::Signal(int sig) { kill(pid_, sig); }
std::string Process::Stdout() const { return ReadFile(dir_ + "/stdout"); }
std::string Process::Stderr() const { return ReadFile(dir_ + "/stderr"); }

TestTarget::TestTarget(std::vector<std::string> extra_args) : dir_(MakeTempDir()) {
  std::vector<std::string> argv = {TargetBinary(), "--port-file", dir_ + "/port"};
  for (const std::string& a : extra_args) tls_ = tls_ || a == "--tls-cert";
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<Process>(argv);
  // The target writes the port file (atomically) once it accepts connections.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = ReadFile(dir_ + "/port");
    if (!text.empty()) {
      port_ = std::atoi(text.c_str());
      return;
    }
    if (process_->Wait(std::chrono::milliseconds(0)).has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  throw std::runtime_error("test target did not start: " + process_->Stderr());
}

TestTarget::~TestTarget() {
  process_.reset();
  (void)!system(("rm -rf '" + dir_ + "'").c_str());
}

std::string TestTarget::Url(const std::string& path) const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
}

long TestTarget::Served() {
  auto body = HttpGet(Url("/stats"));
  if (!body.has_value()) return -1;
  const size_t at = body->find("\"requests\":");
  if (at == std::string::npos) return -1;
  return std::atol(body->c_str() + at + 11);
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
