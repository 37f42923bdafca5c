// One load-generating event loop: a thread's share of the users (closed model) or arrivals (open
// model), its connections, and its own statistics. Nothing on the request path takes a lock or
// allocates; the only cross-thread traffic is one hand-off of an IntervalStats per second.
#ifndef STAMPEDE_AGENT_WORKER_H_
#define STAMPEDE_AGENT_WORKER_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/h2_session.h"
#include "agent/http_response_parser.h"
#include "agent/scenario_program.h"
#include "agent/target.h"
#include "agent/uring.h"
#include "common/load_plan.h"
#include "common/stats.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace stampede::agent {

// The engine fills the shared statistics types (common/stats.h).
using common::IntervalStats;
using common::IterationStats;
using common::kLateNs;
using common::LoadPlan;
using common::Outcome;
using common::OutcomeName;
using common::RequestStats;
using common::Stage;

// What all workers of a run share; constant while they run.
struct WorkerShared {
  // The request mix; with scenarios, one entry per stat name (name only: the program sends).
  std::vector<PreparedRequest> requests;
  // Scenarios instead of the mix: what each virtual user runs (null for the mix).
  std::shared_ptr<const ScenarioProgram> program;
  // For the weighted pick: of the requests, or with scenarios of the scenarios.
  std::vector<uint64_t> cumulative_weights;
  LoadPlan plan;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  bool dns_failed = false;     // every connection attempt then counts as a DNS error
  SSL_CTX* ssl_ctx = nullptr;  // null for plain HTTP
  std::string sni;
  int64_t think_min_ns = 0;  // closed model: uniform think time between requests
  int64_t think_max_ns = 0;
  int64_t timeout_ns = 0;
  int64_t grace_ns = 0;              // how long in-flight requests may finish after the end
  uint32_t stream_count = 1;         // workers sharing the plan, over all agents
  IoBackend io = IoBackend::kEpoll;  // chosen by the engine (never io_uring for https)
  // HTTP/2 (target.protocol h2 or h2c): the mix's requests as HTTP/2
  // headers (scenarios convert each request they render), and the sessions' options.
  bool h2 = false;
  std::vector<H2Request> h2_requests;
  H2SessionOptions h2_options;
};

class Worker {
 public:
  // Called from the worker's thread once per second with that interval's stats, and a last time
  // with `final` set when the worker has finished.
  using Publish = std::function<void(std::unique_ptr<IntervalStats>, bool final)>;

  // `stream_index` in [0, shared.stream_count) selects this worker's share of the plan.
  // `connections`: open model only, the most requests this worker keeps in flight.
  Worker(const WorkerShared& shared, uint32_t stream_index, uint32_t connections, uint64_t seed,
         Publish publish);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs the load from `start_ns` (CLOCK_MONOTONIC) to the end of the plan, then lets requests in
  // flight finish for up to the grace period. Call once, on the worker's own thread.
  void Run(int64_t start_ns);

  // Thread-safe. Ends the run now; `abort` also skips the grace period.
  void Stop(bool abort);

  // CLOCK_MONOTONIC time the worker actually began after waiting for the start; 0 before.
  int64_t started_ns() const { return started_ns_.load(); }
  // The backend the worker ran on; set by Run (epoll when io_uring could not be set up).
  IoBackend backend() const { return backend_.load(); }

 private:
  struct Connection;
  enum class State : uint8_t;
  struct H2Connection;
  friend struct H2Connection;

  void Loop();
  // The io_uring backend's loop: one io_uring_enter per turn submits the turn's sends and waits.
  void LoopUring();
  void OnCompletion(const Uring::Completion& done);
  // io_uring: tags name an operation on one socket of one connection; a socket closed since makes
  // its late completions stale.
  uint64_t Tag(uint8_t op, const Connection& c) const;
  void Housekeeping(int64_t now);
  int64_t NextDeadline() const;
  void ArmTimer(int64_t deadline);
  void PublishInterval(bool final);
  void BeginStop(int64_t now, bool abort);

  void UpdateUsers(int64_t now);
  void DispatchArrivals(int64_t now);
  uint32_t PickRequest();
  // Counts `n` dropped arrivals of pick `pick` (a request, or a scenario: its first step).
  void CountDropped(uint32_t pick, uint64_t n);
  std::unique_ptr<IntervalStats> NewStats() const;
  // Counts `count` arrivals as dropped, shared over the requests by weight.
  void DropByWeight(uint64_t count);
  uint64_t Random();

  void StartRequest(Connection& c, int64_t now);
  // Scenarios: runs the user's program on until it sends a request, pauses or is done.
  void Proceed(Connection& c, int64_t now);
  void StartStep(Connection& c, uint32_t step, int64_t now);
  void Pause(Connection& c, int64_t until);
  // Scenarios: the user or arrival is done (open model: its connection is free again).
  void EndUser(Connection& c, int64_t now);
  // Scenarios: counts the iteration the user just ended (timed, or ended early).
  void CountIteration(const UserState& u, int64_t now);
  void ResetParser(Connection& c);
  // Tracks the request's timeout and sends it, on a new connection if needed.
  void Launch(Connection& c, int64_t now);
  void OpenSocket(Connection& c, int64_t now);
  void OnEvent(Connection& c, uint32_t events);
  void OnConnected(Connection& c);
  void Handshake(Connection& c);
  void Send(Connection& c);
  // io_uring: counts a SendNow that posted no failure as written (see Connection::send_now).
  void ConfirmSendNow(Connection& c);
  void Receive(Connection& c, uint32_t events);
  // Feeds response bytes to the parser; true when they ended the request (complete or failed).
  bool Consume(Connection& c, const char* data, size_t n);
  // The peer closed, or receiving failed with `error`, while a request was in flight.
  void OnPeerClosed(Connection& c);
  void OnReceiveError(Connection& c);
  void Complete(Connection& c, int64_t now, bool close_after);
  // Scenarios: a whole response is in c.parser; runs the step's checks and captures on it, counts
  // a cut body, and notes whether the result ends the iteration. Both protocols use it.
  Outcome CheckStep(Connection& c, bool expected_status);
  void Fail(Connection& c, Outcome outcome);
  bool RetryOnFreshConnection(Connection& c);
  void AfterRequest(Connection& c, int64_t now, int64_t backoff_ns);
  void CloseSocket(Connection& c);
  void Track(Connection& c, int64_t deadline);
  void Untrack(Connection& c);

  // HTTP/2: user slots (Connection) are streams on a few shared connections; slot i belongs to
  // connection i / maxConcurrentStreams, so a slot always finds a stream free on its own one.
  H2Connection& HomeOf(const Connection& c);
  // Queues the slot's request on its connection and sends what can go.
  void H2Enqueue(Connection& c, int64_t now);
  // Opens, submits, writes and closes as the connection's state allows; re-entrant calls (from
  // a stream's end inside the session) only mark it for another pass.
  void H2Pump(H2Connection& h, int64_t now);
  void H2Open(H2Connection& h, int64_t now);
  void H2Connected(H2Connection& h, int64_t now);
  void H2Handshake(H2Connection& h, int64_t now);
  void H2Flush(H2Connection& h, int64_t now);
  // Registers EPOLLOUT only while a write waits for room (and while connecting).
  void H2WantWritable(H2Connection& h, bool want);
  void H2Read(H2Connection& h, uint32_t events, int64_t now);
  void OnH2Event(H2Connection& h, uint32_t events);
  // The socket failed before it carried a stream: every waiting slot fails with `outcome`.
  void H2ConnectFailed(H2Connection& h, Outcome outcome);
  // The connection is gone under its streams: they end with `outcome`, and it closes.
  void H2Lost(H2Connection& h, Outcome outcome);
  void H2Close(H2Connection& h);
  // io_uring (h2c): tags name an operation on one connection's socket, as Tag does for slots.
  uint64_t H2Tag(uint8_t op, const H2Connection& h) const;
  void OnH2Completion(H2Connection& h, uint8_t op, const Uring::Completion& done);
  // io_uring (h2c): at the end of a turn, each connection with frames to write sends them as one
  // SendNow; after the next turn's completions, those that did not fail are confirmed.
  void H2FlushTurn();
  void ConfirmH2SendNow();
  void OnH2StreamEnd(H2Connection& h, const H2StreamEnd& end);
  // Ends a slot's request that is waiting or in a stream, counting `outcome`.
  void H2Abandon(Connection& c, Outcome outcome);

  // Constant after construction.
  const WorkerShared& shared_;
  const uint32_t stream_index_;
  const bool open_model_;
  Publish publish_;

  std::atomic<int> stop_request_{0};  // 1 = stop, 2 = abort
  std::atomic<int64_t> started_ns_{0};
  std::atomic<IoBackend> backend_{IoBackend::kEpoll};

  // Created by the constructor, closed by the destructor; -1 if creation failed.
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int wake_fd_ = -1;
  int64_t armed_ns_ = INT64_MAX;
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t drain_deadline_ns_ = INT64_MAX;
  bool stopping_ = false;
  bool finished_ = false;

  std::vector<Connection> connections_;
  std::vector<Connection*> free_;  // open model: connections ready for the next arrival
  std::vector<std::pair<int64_t, Connection*>> wakeups_;  // min-heap of think-time ends
  Connection* timeout_head_ = nullptr;  // requests in flight, oldest deadline first
  Connection* timeout_tail_ = nullptr;
  uint32_t in_flight_ = 0;
  bool dispatching_ = false;  // open model: DispatchArrivals is on the stack

  // Closed model.
  uint32_t active_users_ = 0;
  int64_t next_ramp_ns_ = INT64_MAX;
  // Open model.
  uint64_t next_arrival_ = 0;
  int64_t next_arrival_ns_ = INT64_MAX;

  uint64_t rng_state_;
  int64_t next_interval_ns_ = 0;
  int64_t interval_index_ = 0;
  int64_t thread_cpu_ns_ = 0;
  std::unique_ptr<IntervalStats> current_;
  std::unique_ptr<char[]> read_buffer_;
  std::unique_ptr<common::JsonFinder> finder_;     // scenarios that check or capture JSON
  std::vector<std::unique_ptr<H2Connection>> h2_;  // HTTP/2 only
  uint32_t h2_per_connection_ = 0;
  std::vector<H2Connection*> h2_flush_due_, h2_flushing_;   // io_uring: written at the turn's end
  std::vector<H2Connection*> h2_sent_now_, h2_confirming_;  // io_uring: SendNows to confirm
  std::unique_ptr<Uring> ring_;                             // the io_uring backend; null on epoll
  uint64_t wake_value_ = 0;  // io_uring: where the wake eventfd's read lands
};

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_WORKER_H_
