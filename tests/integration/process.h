// Test support: real child processes (the agent, the test target) with captured output, and an
// HTTP GET (through curl) for the target's /stats. Waits are bounded and block on events (a
// pidfd for a process's exit, inotify for a file appearing), never on a sleep.
#ifndef STAMPEDE_TESTS_INTEGRATION_PROCESS_H_
#define STAMPEDE_TESTS_INTEGRATION_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stampede::testing {

class Process {
 public:
  // Starts argv[0] with the given arguments; stdout and stderr go to files in a temp dir.
  explicit Process(std::vector<std::string> argv);
  ~Process();  // kills (SIGKILL) and reaps the process if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for the exit; the exit code, 128+signal if killed, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // A pidfd of the process (readable once it has exited), for waits on it and something else.
  int pidfd() const { return pidfd_; }
  void Signal(int sig);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> exit_code_;
  std::string dir_;
};

// The test target on an ephemeral port of 127.0.0.1; extra arguments (e.g. TLS) appended.
class TestTarget {
 public:
  explicit TestTarget(std::vector<std::string> extra_args = {});
  ~TestTarget();
  int port() const { return port_; }
  std::string Url(const std::string& path) const;  // http:// or https://
  // GET /stats: served request count, or -1 on failure.
  long Served();
  // GET /stats: connections accepted and not yet closed, or -1 on failure.
  long OpenConnections();
  Process& process() { return *process_; }

 private:
  std::string dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
  bool tls_ = false;
};

// Waits until process `pid` (any process, not only a child) has exited; true when it has within
// `timeout`. Blocks on a pidfd.
bool WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

// Waits until `predicate` holds, checking it again every `period` (a condition another process
// changes, like a counter behind an HTTP endpoint or an object in the API server); true when it
// held within `timeout`.
bool WaitUntil(std::chrono::milliseconds timeout, const std::function<bool()>& predicate,
               std::chrono::milliseconds period = std::chrono::milliseconds(100));

// How many times `needle` occurs in `haystack` (lines in a log, say).
size_t CountOf(const std::string& haystack, const std::string& needle);

// GET with curl (certificates not verified); the body, or nullopt on any failure.
std::optional<std::string> HttpGet(const std::string& url);

// What a finished command printed, and how it ended.
struct CommandOutput {
  int exit_code = -1;  // -1: killed when it outlived its timeout
  std::string out;
  std::string err;
};

// Runs argv to its end, killing it (SIGKILL) when it outlives `timeout`.
CommandOutput RunToEnd(std::vector<std::string> argv, std::chrono::milliseconds timeout);

// The Helm binary: $STAMPEDE_HELM, else where scripts/helm-fetch installs it by default.
std::string HelmBinary();

// Paths of the built binaries (set by CMake as compile definitions).
std::string AgentBinary();
std::string TargetBinary();
std::string ControllerBinary();  // stampede

// The backend a plain-HTTP (or h2c) agent run must report when the suite runs with STAMPEDE_IO
// set (ctest runs the engine's suites twice: with STAMPEDE_IO=epoll and =uring); empty when the
// engine may choose.
std::string AskedIo();

// The image archives scripts/images wrote (stampede-agent, then stampede): in $STAMPEDE_IMAGES,
// else in the build tree's images/ folder. Paths only; they may not exist.
std::vector<std::string> ImageArchives();
// Empty when every archive exists and is newer than the binaries it packs; otherwise what to do.
std::string ImageArchivesProblem();

// A port of 127.0.0.1 that was free a moment ago (another process may take it before its user
// binds it: rare enough for tests).
int FreeLoopbackPort();

// A fresh temporary directory.
std::string MakeTempDir();

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_INTEGRATION_PROCESS_H_
