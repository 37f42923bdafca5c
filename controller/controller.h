// The controller: a gRPC listener for agent sessions, the set of runs, and the ticker that drives
// them. `stampede run` embeds one for a single test; `stampede serve` and `stampede operator`
// keep one for many.
#ifndef STAMPEDE_CONTROLLER_CONTROLLER_H_
#define STAMPEDE_CONTROLLER_CONTROLLER_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "controller/grpc_listener.h"
#include "controller/run.h"
#include "controller/run_registry.h"

namespace stampede::controller {

struct ControllerOptions {
  std::string grpc_listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  // The address agents dial; default: the listen address with the port actually bound.
  std::string advertise_address;
  ListenerTls tls;                                  // the agents' channel; default plaintext
  size_t max_queued_messages = kMaxQueuedMessages;  // per agent stream (see grpc_listener.h)
  RunOptions run_defaults;
  // Abort the runs still going when the controller is destroyed (so their agents stop at once).
  // The operator keeps them running instead: the next leader adopts them.
  bool abort_runs_on_shutdown = true;
  // How long a run that had ended when it was removed stays in RunsForMetrics, so a scrape every
  // few seconds still sees its final counts and phase (the operator's --finished-metrics-ttl); 0:
  // not at all. Its agents are rejected all the same.
  std::chrono::milliseconds ended_metrics_ttl{0};
};

class Controller final : public RunRegistry {
 public:
  static absl::StatusOr<std::unique_ptr<Controller>> Create(ControllerOptions options);
  // The address agents dial for a listener of `options` bound to `port`: --advertise-address, or
  // the listen address (loopback for a wildcard one). The operator's certificate names its host.
  static std::string AgentAddress(const ControllerOptions& options, int port);
  ~Controller() override;  // stops the ticker, then the listener

  // Registers and starts a run. `test` must be valid with defaults applied; `data` its
  // scenarios' data (common::PrepareTestData), null for none; `target_rules` what its agents
  // enforce (common::Policy::TargetRulesFor), null for no check.
  std::shared_ptr<Run> StartRun(v1::LoadTest test, std::unique_ptr<AgentLauncher> launcher,
                                std::shared_ptr<const common::TestData> data = nullptr,
                                std::shared_ptr<const v1::TargetRules> target_rules = nullptr);
  // RunRegistry. The agents of the run dial this controller's address.
  std::shared_ptr<Run> StartRun(v1::LoadTest test, std::unique_ptr<AgentLauncher> launcher,
                                const std::string& id, const std::string& token,
                                const RunOptions& options) override;
  void RemoveRun(const std::string& id) override;
  // The defaults every run starts from, with the address agents dial filled in.
  const RunOptions& run_defaults() const { return run_defaults_; }
  std::shared_ptr<Run> FindRun(const std::string& id) const;
  std::vector<std::shared_ptr<Run>> Runs() const;
  // What /metrics exports: the removed runs still within ended_metrics_ttl (oldest removal
  // first), then Runs().
  std::vector<std::shared_ptr<Run>> RunsForMetrics() const;

  int grpc_port() const { return grpc_port_; }
  const std::string& agent_address() const { return agent_address_; }
  // Agent streams cut off because the agent left kMaxQueuedMessages unread.
  uint64_t agent_send_overflows() const;
  // Where the listener is bound: the --grpc-listen host with the port actually taken.
  const std::string& listen_address() const { return listen_address_; }

 private:
  Controller() = default;
  void TickLoop();

  int grpc_port_ = 0;
  std::string agent_address_;
  std::string listen_address_;
  RunOptions run_defaults_;
  bool abort_runs_on_shutdown_ = true;
  int64_t ended_metrics_ttl_ns_ = 0;
  const common::Clock* clock_ = &common::SystemClock();
  std::unique_ptr<GrpcListener> listener_;

  mutable common::Mutex mu_;
  std::map<std::string, std::shared_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_run_ ABSL_GUARDED_BY(mu_) = 0;
  struct Ended {
    int64_t until_ns;  // monotonic
    std::shared_ptr<Run> run;
  };
  std::deque<Ended> ended_ ABSL_GUARDED_BY(mu_);  // removal order

  std::atomic<bool> stopping_{false};
  std::thread ticker_;
};

// A random URL-safe token (per-test secret), from /dev/urandom.
std::string RandomToken(size_t bytes = 24);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_CONTROLLER_H_
