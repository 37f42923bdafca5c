// One load test's lifecycle, the same in every mode (one-shot, service, operator): launch the
// agents, wait until all have said hello, assign each its exact share, start them together,
// merge their reports, watch for lost agents and deadlines, evaluate the thresholds, and settle
// on a phase: Succeeded, Failed or Aborted, each with a reason.
//
// Time comes from RunOptions::clock, and nothing happens on its own: the owner calls Tick about
// every 100 ms (the Controller's ticker; a test, by hand, after moving a fake clock). Tick applies
// the timed rules (start timeout, heartbeats, silent agents, reconnect windows, closing seconds,
// abortOnFail, the duration deadline, the stop deadline) and delivers the events to the observer.
//
// Thread-safe: gRPC sessions, the ticker and API callers all call in concurrently; one mutex
// guards the state. Calls to agents (AgentConnection::Send) never block.
#ifndef STAMPEDE_CONTROLLER_RUN_H_
#define STAMPEDE_CONTROLLER_RUN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/data_table.h"
#include "common/load_plan.h"
#include "common/mutex.h"
#include "common/threshold.h"
#include "controller/agent_launcher.h"
#include "controller/aggregator.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::v1 {
class AgentMessage;
class ControllerMessage;
class Hello;
}  // namespace stampede::v1

namespace stampede::controller {

// The controller's end of one agent's stream. Thread-safe and non-blocking.
class AgentConnection {
 public:
  virtual ~AgentConnection() = default;
  virtual void Send(const v1::ControllerMessage& message) = 0;
  // Ends the stream (after queued messages are written).
  virtual void Close() = 0;
};

struct RunOptions {
  int start_timeout_s = 60;      // all agents must connect and be ready within this
  int heartbeat_timeout_s = 10;  // an agent silent this long is lost (and agents use the same)
  int report_grace_s = 3;        // an interval is closed this long after its end at the latest
  int start_delay_ms = 1000;     // the broadcast start time lies this far ahead
  int stop_timeout_s = 10;       // after a stop/abort, agents must say done within this
  // How long an agent whose stream broke may take to reconnect before it counts as lost; also how
  // long a restarted controller waits for a running test's agents. 0: lost at once. Agents must be
  // started with at least this reconnect window (operator mode).
  int agent_reconnect_s = 0;
  // The test ran under another controller before (a restarted operator adopts it): it has
  // started, even while none of its agents has come back yet, so an agent lost then is lost
  // (AgentLost, onAgentLoss decides), not one that failed to start.
  bool adopted = false;
  std::string controller_address;  // what the agents dial
  // A test with scenarios: its data rows and env values (common::PrepareTestData); each agent
  // receives its share in its assignment. Null: none.
  std::shared_ptr<const common::TestData> data;
  // The policy's address rules the agents enforce (common::Policy::TargetRulesFor). Null: none.
  std::shared_ptr<const v1::TargetRules> target_rules;
  const common::Clock* clock = &common::SystemClock();  // must outlive the run
};

enum class Phase { kPending, kStarting, kRunning, kSucceeded, kFailed, kAborted };
const char* PhaseName(Phase phase);
inline bool IsTerminal(Phase phase) {
  return phase == Phase::kSucceeded || phase == Phase::kFailed || phase == Phase::kAborted;
}

// What the observer hears, in the order it happened.
struct RunEvent {
  enum class Kind {
    kPhase,     // the run entered `phase`
    kAgents,    // an agent connected, finished or was lost (Status().agents() moved)
    kInterval,  // a second was closed: `point`
    kEnded,     // the last event: every interval is in and the phase is final
  };
  Kind kind;
  Phase phase;
  const IntervalPoint* point = nullptr;  // kInterval only; valid during the call
};

class Run {
 public:
  // `test` must be validated (common::ValidationStatus) and have defaults applied.
  Run(std::string id, v1::LoadTest test, std::string token, std::unique_ptr<AgentLauncher> launcher,
      RunOptions options);
  ~Run();

  const std::string& id() const { return id_; }
  const std::string& name() const { return test_.metadata().name(); }
  const std::string& name_space() const { return test_.metadata().namespace_(); }
  const v1::LoadTest& test() const { return test_; }
  // spec.thresholds, parsed once at construction (immutable, so no lock).
  const std::vector<common::Threshold>& thresholds() const { return thresholds_; }

  // Launches the agents (phase Starting).
  void Start();
  // Ends the run as Aborted: agents are told to stop at once; results so far are kept.
  void Abort(const std::string& reason);
  // Ends the run as Failed with `reason` (e.g. ImagePullFailed, seen by the operator).
  void Fail(const std::string& reason, const std::string& message);
  // Agent `index` is gone for good (its Pod was deleted or failed): lost now, without waiting
  // for it to reconnect; the spec's onAgentLoss decides what that does to the run.
  void AgentGone(uint32_t index, const std::string& why);

  // From the gRPC service. OnHello returns false (and the stream should be rejected) when the
  // token is wrong or the index is taken or out of range. A Hello with a start time is an agent
  // that already runs, reconnecting (to this controller, or to a restarted one, which then
  // adopts that start instead of starting the test a second time).
  bool OnHello(const v1::Hello& hello, std::shared_ptr<AgentConnection> connection,
               std::string* why);
  void OnMessage(uint32_t index, const v1::AgentMessage& message);
  // `connection` tells a stream that was replaced by a reconnection from the current one.
  void OnStreamClosed(uint32_t index, const AgentConnection* connection);
  // Applies the timed rules at the clock's current time and delivers pending events.
  void Tick();

  Phase phase() const;
  bool Done() const;
  // Waits until the run has ended, up to `timeout_ms` of real time (-1: forever); true when it has.
  bool WaitDone(int timeout_ms) const;
  // The status as the LoadTest's .status shows it.
  v1::LoadTestStatus Status() const;

  // A consistent copy of what observers need, taken under the lock.
  struct Snapshot {
    Phase phase;
    std::vector<std::string> request_names;
    std::vector<std::string> scenario_names;  // spec.scenarios, indexed like cumulative.iterations
    common::IntervalStats cumulative{0};
    std::vector<common::Histogram> window_latency;  // per request
    common::Histogram window_total;
    double window_rps = 0;
    std::vector<IntervalPoint> series;
    uint32_t agents_desired = 0, agents_connected = 0, agents_finished = 0, agents_lost = 0;
    // Agents that reported Ready, by the I/O backend their engine runs.
    uint32_t agents_epoll = 0, agents_uring = 0;
    uint32_t active_users = 0;
    double target_rate = 0;  // open model, now
    bool saturated = false;
    double elapsed_s = 0;
    int64_t last_interval = -1;
    // With stages: the plan's spans and the totals of each (Aggregator::SetStages), alike indexed.
    std::vector<common::LoadPlan::Span> stage_spans;
    std::vector<Aggregator::StageTotals> stages;
    v1::LoadTestStatus status;  // its stages summarize the two above
  };
  // `with_series`: include the whole per-second series (for results files).
  Snapshot TakeSnapshot(bool with_series) const;

  // Called from Tick, without the run's lock, once per event. Once SetObserver returns, the
  // previous observer is not running and is never called again. It must not call SetObserver.
  void SetObserver(std::function<void(const RunEvent&)> observer);

 private:
  struct AgentSlot {
    std::shared_ptr<AgentConnection> connection;  // null while disconnected
    std::unique_ptr<v1::ControllerMessage>
        assignment;  // resent when it reconnects before the start
    std::string hostname;
    uint32_t threads = 0;
    std::string io_backend;  // from its Ready: "epoll" or "uring"
    bool connected = false, ready = false, finished = false, lost = false;
    std::string error;
    int64_t last_heard_ns = 0;
    int64_t started_unix_ns = 0;
    int64_t awaiting_since_ns = 0;  // waiting for it to (re)connect since; 0: not waiting
    int64_t replay_through = -1;    // a resumed agent replays its reports up to this interval
  };
  // The verdict of a run that is winding down (agents stopping), applied when all are done.
  struct Verdict {
    Phase phase;
    std::string reason;
    std::string message;
  };
  struct PendingEvent {
    RunEvent::Kind kind;
    Phase phase;
    IntervalPoint point;
  };

  int64_t Now() const { return clock_->MonotonicNanos(); }
  int64_t WallNow() const { return clock_->RealtimeNanos(); }
  bool DoneLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return IsTerminal(phase_); }
  void SetPhase(Phase phase) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void SendAssignments() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendStart() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkStarted(int64_t start_unix_ns, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AcceptResumingAgent(AgentSlot& slot, const v1::Hello& hello, std::string* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Begins winding down towards `verdict` (agents are told to stop), unless the run is already.
  void WindDown(Verdict verdict, const std::string& stop_reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AgentLost(uint32_t index, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopAgents(bool abort, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Settle(Phase phase, const std::string& reason, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeComplete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<v1::ThresholdResult> EvaluateThresholds() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetCondition(const std::string& type, bool status, const std::string& reason,
                    const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double ElapsedSeconds() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Tick's rules, one each, in the order Tick applies them.
  void CheckStartTimeout(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::shared_ptr<AgentConnection>> HeartbeatsDue(int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckAgentsHeard(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns how many seconds were closed.
  size_t CloseIntervals(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckAbortOnFail() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckDeadline() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckStopDeadline(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeliverEvents() ABSL_LOCKS_EXCLUDED(mu_, deliver_mu_);

  // Constant after construction.
  const std::string id_;
  const v1::LoadTest test_;
  const std::string token_;
  const RunOptions options_;
  const common::Clock* const clock_;
  const int64_t duration_ns_;
  const int64_t timeout_ns_;  // spec.target.timeout
  const std::vector<std::string> request_names_;
  std::vector<common::Threshold> thresholds_;
  std::vector<common::LoadPlan::Span> stage_spans_;  // empty without stages
  std::optional<common::LoadPlan> plan_;  // the whole test's load over time (for the target rate)
  std::unique_ptr<AgentLauncher> launcher_;

  // Held while the observer runs (taken before mu_, never inside it).
  common::Mutex deliver_mu_;
  std::function<void(const RunEvent&)> observer_ ABSL_GUARDED_BY(deliver_mu_);

  mutable common::Mutex mu_;
  mutable common::CondVar done_cv_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kPending;
  std::optional<Verdict> ending_ ABSL_GUARDED_BY(mu_);
  v1::LoadTestStatus status_ ABSL_GUARDED_BY(mu_);
  std::vector<AgentSlot> agents_ ABSL_GUARDED_BY(mu_);
  Aggregator aggregator_ ABSL_GUARDED_BY(mu_);
  bool launch_called_ ABSL_GUARDED_BY(mu_) = false;
  bool assigned_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool partial_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t reports_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t saturated_reports_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t created_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t start_unix_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t end_unix_ns_ ABSL_GUARDED_BY(mu_) = 0;  // when the run settled; 0 while it runs
  int64_t stop_deadline_ns_ ABSL_GUARDED_BY(mu_) = INT64_MAX;
  int64_t last_heartbeat_ns_ ABSL_GUARDED_BY(mu_) = 0;
  // A restarted controller adopted a running test: intervals are not closed early while its agents
  // are still coming back with their reports (up to this time).
  int64_t adopting_until_ns_ ABSL_GUARDED_BY(mu_) = 0;
  bool launcher_stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<PendingEvent> events_ ABSL_GUARDED_BY(mu_);  // for DeliverEvents, oldest first
};

// RFC 3339 UTC with millisecond precision, as Kubernetes writes times.
std::string Rfc3339(int64_t unix_ns);

// The conditions kstatus reads (Flux, kubectl wait, kpt), from status.phase: Ready (True only
// when Succeeded), Reconciling (True while Pending, Starting or Running) and Stalled (True when
// Failed or Aborted), each False otherwise, with the phase's reason. A condition's
// lastTransitionTime changes only when its status does (`now`, RFC 3339).
void SetPhaseConditions(v1::LoadTestStatus& status, int64_t generation, const std::string& now);

// Requests, errors, their rate over `seconds`, and the percentiles of `r`, as the status has them.
void FillSummary(const common::RequestStats& r, double seconds, v1::Summary* summary);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_RUN_H_
