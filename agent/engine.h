// The load engine: resolves the target, prepares the requests, runs one Worker per thread and
// merges their one-second IntervalStats for the reader. The CLI (`stampede-agent bench`) and the
// controller's agent session drive the same engine.
//
// Thread safety: Start, NextInterval and the destructor belong to one owner thread; Stop may be
// called from any thread (e.g. a signal-handling thread).
#ifndef STAMPEDE_AGENT_ENGINE_H_
#define STAMPEDE_AGENT_ENGINE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "agent/target.h"
#include "agent/worker.h"
#include "common/load_plan.h"
#include "common/mutex.h"
#include "common/policy.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::agent {

struct EngineConfig {
  std::string url;                    // base URL; requests' paths are appended to its path
  std::vector<RequestSpec> requests;  // empty: one GET of the URL itself
  LoadPlan plan;
  int64_t think_min_ns = 0;
  int64_t think_max_ns = 0;
  uint32_t threads = 0;      // 0: one per core (never more than the closed model's users)
  uint32_t connections = 0;  // open model: requests in flight at most, over all threads; 0: auto
  int64_t timeout_ns = 10'000'000'000;
  int64_t grace_ns = -1;  // after the end, in-flight requests may finish this long; -1: timeout
  bool insecure_skip_verify = false;
  std::string ca_file;  // extra trusted CA (PEM) for https targets
  uint64_t seed = 0;    // 0: random
  // Distributed runs: this engine's threads are streams [stream_offset, stream_offset + threads)
  // of stream_count over all agents (see LoadPlan). 0: the engine has the whole plan.
  uint32_t stream_offset = 0;
  uint32_t stream_count = 0;
  // Scenarios instead of `requests`: the spec that holds them (null: the mix), this agent's rows
  // of its data tables, the run's data seed, the env values its templates read, and this agent's
  // index ({{ agent.index }}).
  std::shared_ptr<const v1::LoadTestSpec> scenarios;
  std::vector<v1::AgentTable> data;
  uint64_t data_seed = 0;
  std::map<std::string, std::string> env;
  uint32_t agent_index = 0;
  // The policy's address rules (an Assignment's target_rules): the resolved target must pass
  // them, or Create fails with PermissionDenied. Null: no check (stampede-agent bench).
  std::shared_ptr<const common::AddressPolicy> address_policy;
  // The I/O backend. kAuto reads STAMPEDE_IO (auto|epoll|uring) and otherwise takes io_uring
  // when the probe passes, epoll when it does not (one log line says why). https targets always
  // run on epoll: TLS over io_uring is not built.
  IoMode io = IoMode::kAuto;
  // "http1" (or empty), "h2" (https:// only, ALPN) or "h2c" (http:// only, prior knowledge); with
  // HTTP/2 each connection carries up to max_concurrent_streams requests at once.
  std::string protocol;
  uint32_t max_concurrent_streams = 100;
};

class Engine {
 public:
  // InvalidArgument for a bad URL or request (or STAMPEDE_IO); PermissionDenied naming the address
  // and the rule when the address policy refuses the target's address; FailedPrecondition when
  // `io` demands io_uring and the probe refuses it. The target's name not resolving is not
  // an error here (it is counted per request, as the "dns" outcome).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(EngineConfig config);
  ~Engine();

  // Starts the workers. Load begins at `start_ns` on CLOCK_MONOTONIC (0: 20 ms from now) so all
  // threads begin together.
  void Start(int64_t start_ns = 0);
  // Blocks until the next one-second interval is complete on every worker and returns it merged;
  // nullptr once all workers have finished and every interval was returned.
  std::unique_ptr<IntervalStats> NextInterval();
  // Ends the run early; `abort` skips the grace period for requests in flight.
  void Stop(bool abort);

  const std::vector<PreparedRequest>& requests() const { return shared_.requests; }
  uint32_t threads() const { return static_cast<uint32_t>(workers_.size()); }
  uint32_t connections() const { return connections_; }
  const LoadPlan& plan() const { return shared_.plan; }
  bool dns_failed() const { return shared_.dns_failed; }
  // The backend chosen at Create; a worker whose ring cannot be set up runs epoll (and logs it).
  IoBackend io_backend() const { return shared_.io; }
  int64_t start_ns() const { return start_ns_; }
  // When the last worker actually began (CLOCK_MONOTONIC): the start time plus wakeup latency.
  // 0 until all have.
  int64_t ActualStartNs() const;

 private:
  struct Outbox {
    std::deque<std::unique_ptr<IntervalStats>> intervals;
    bool finished = false;
  };

  Engine() = default;
  void OnPublish(size_t worker, std::unique_ptr<IntervalStats> stats, bool final);

  WorkerShared shared_;
  uint32_t connections_ = 0;
  int64_t start_ns_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;

  common::Mutex mu_;
  common::CondVar cv_;
  std::deque<Outbox> outboxes_ ABSL_GUARDED_BY(mu_);  // deque: Outbox is move-only
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_ENGINE_H_
