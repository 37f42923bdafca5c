// Runs agents as local `stampede-agent connect` processes, with their output in log files.
// PerRunLocalLauncher does the same with a log folder per run (stampede serve).
#ifndef STAMPEDE_CONTROLLER_LOCAL_LAUNCHER_H_
#define STAMPEDE_CONTROLLER_LOCAL_LAUNCHER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"
#include "controller/agent_launcher.h"

namespace stampede::controller {

class LocalLauncher : public AgentLauncher {
 public:
  // `agent_binary`: path of stampede-agent; `log_dir`: created if missing, one file per agent.
  LocalLauncher(std::string agent_binary, std::string log_dir);
  ~LocalLauncher() override;

  absl::Status Launch(const LaunchRequest& request) override;
  // SIGTERM, then SIGKILL after 5 s for any agent still running; reaps all.
  void Stop() override;
  std::string LogLocation(uint32_t index) const override;

  // Pids of the agents (for tests that kill one).
  std::vector<pid_t> Pids() const;

 private:
  const std::string agent_binary_;
  const std::string log_dir_;
  mutable common::Mutex mu_;
  std::vector<pid_t> pids_ ABSL_GUARDED_BY(mu_);
};

// A LocalLauncher whose log folder, `logs_root`/<run id>/, is named after the run, which is only
// known at Launch. One run per launcher: a second Launch is FailedPrecondition.
class PerRunLocalLauncher : public AgentLauncher {
 public:
  PerRunLocalLauncher(std::string agent_binary, std::string logs_root);

  absl::Status Launch(const LaunchRequest& request) override;
  void Stop() override;
  // `logs_root` until Launch.
  std::string LogLocation(uint32_t index) const override;

 private:
  LocalLauncher* Get() const;

  const std::string agent_binary_;
  const std::string logs_root_;
  mutable common::Mutex mu_;
  // Set once; LocalLauncher is thread-safe, so it is used outside mu_ (Stop may take seconds).
  std::unique_ptr<LocalLauncher> launcher_ ABSL_GUARDED_BY(mu_);
};

// Finds stampede-agent: $STAMPEDE_AGENT_BINARY, next to this executable, ../agent/ (build tree),
// then $PATH. Empty when not found.
std::string FindAgentBinary();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_LOCAL_LAUNCHER_H_
