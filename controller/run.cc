#include "controller/run.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/logging.h"
#include "common/scenario.h"
#include "common/spec.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::controller {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t TimeoutNs(const v1::LoadTestSpec& spec) {
  auto d = common::ParseDuration(spec.target().timeout().empty() ? "10s" : spec.target().timeout());
  return d.ok() ? absl::ToInt64Nanoseconds(*d) : 10 * kSecond;
}

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPending:
      return "Pending";
    case Phase::kStarting:
      return "Starting";
    case Phase::kRunning:
      return "Running";
    case Phase::kSucceeded:
      return "Succeeded";
    case Phase::kFailed:
      return "Failed";
    case Phase::kAborted:
      return "Aborted";
  }
  return "Unknown";
}

std::string Rfc3339(int64_t unix_ns) {
  const time_t secs = static_cast<time_t>(unix_ns / kSecond);
  tm utc;
  gmtime_r(&secs, &utc);
  char buf[40];
  const size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>((unix_ns % kSecond) / 1'000'000));
  return buf;
}

Run::Run(std::string id, v1::LoadTest test, std::string token,
         std::unique_ptr<AgentLauncher> launcher, RunOptions options)
    : id_(std::move(id)),
      test_(std::move(test)),
      token_(std::move(token)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &common::SystemClock()),
      duration_ns_(common::RunDurationNs(test_.spec())),
      timeout_ns_(TimeoutNs(test_.spec())),
      request_names_(common::StatNames(test_.spec())),
      launcher_(std::move(launcher)),
      agents_(test_.spec().agents()),
      aggregator_(request_names_, test_.spec().agents()) {
  for (const std::string& expr : test_.spec().thresholds()) {
    auto t = common::ParseThreshold(expr);
    if (t.ok()) thresholds_.push_back(*t);  // validated before; a bad one cannot get here
  }
  if (auto plan = common::LoadPlanFromSpec(test_.spec()); plan.ok()) plan_ = *plan;
  if (plan_.has_value()) stage_spans_ = plan_->Spans();
  std::vector<int64_t> stage_starts;
  for (const common::LoadPlan::Span& span : stage_spans_) stage_starts.push_back(span.start_ns);
  aggregator_.SetStages(std::move(stage_starts));
  common::MutexLock lock(&mu_);
  status_.set_phase(PhaseName(Phase::kPending));
  status_.set_observed_generation(test_.metadata().generation());
  SetPhaseConditions(status_, test_.metadata().generation(), Rfc3339(WallNow()));
  created_ns_ = Now();
}

Run::~Run() {
  if (launcher_ != nullptr) launcher_->Stop();
}

void Run::SetObserver(std::function<void(const RunEvent&)> observer) {
  common::MutexLock lock(&deliver_mu_);
  observer_ = std::move(observer);
}

void Run::SetPhase(Phase phase) {
  phase_ = phase;
  status_.set_phase(PhaseName(phase));
  SetPhaseConditions(status_, test_.metadata().generation(), Rfc3339(WallNow()));
  events_.push_back({RunEvent::Kind::kPhase, phase, {}});
}

namespace {

// Sets condition `type` (adding it when absent); its lastTransitionTime becomes `now` only when
// its status changes.
void UpsertCondition(v1::LoadTestStatus& status, const std::string& type, bool value,
                     const std::string& reason, const std::string& message, int64_t generation,
                     const std::string& now) {
  v1::Condition* c = nullptr;
  for (v1::Condition& existing : *status.mutable_conditions()) {
    if (existing.type() == type) c = &existing;
  }
  if (c == nullptr) {
    c = status.add_conditions();
    c->set_type(type);
  }
  const std::string text = value ? "True" : "False";
  if (c->status() != text) c->set_last_transition_time(now);
  c->set_status(text);
  c->set_reason(reason);
  c->set_message(message);
  c->set_observed_generation(generation);
}

}  // namespace

void SetPhaseConditions(v1::LoadTestStatus& status, int64_t generation, const std::string& now) {
  const std::string& phase = status.phase();
  const bool done = phase == "Succeeded" || phase == "Failed" || phase == "Aborted";
  const std::string reason = phase.empty() ? "Pending" : phase;
  const struct {
    const char* type;
    bool value;
    const char* message;
  } wanted[] = {
      {"Ready", phase == "Succeeded",
       phase == "Succeeded" ? "the test succeeded" : "not succeeded"},
      {"Reconciling", !done, !done ? "the test has not finished" : "the test has finished"},
      {"Stalled", phase == "Failed" || phase == "Aborted",
       phase == "Failed" || phase == "Aborted" ? "the test ended without succeeding"
                                               : "the test has not failed"},
  };
  for (const auto& w : wanted) {
    UpsertCondition(status, w.type, w.value, reason, w.message, generation, now);
  }
}

void Run::Start() {
  {
    common::MutexLock lock(&mu_);
    if (launch_called_ || DoneLocked()) return;
    launch_called_ = true;
    // Agents of an adopted test may have resumed it already (between registration and this call);
    // it is still launched, so that missing Pods are created.
    if (phase_ == Phase::kPending) {
      SetPhase(Phase::kStarting);
      status_.set_reason("Launching");
      status_.set_message(absl::StrCat("starting ", agents_.size(), " agent(s)"));
      created_ns_ = Now();
      SetCondition("AgentsReady", false, "Launching", "waiting for the agents to connect");
    }
  }
  LaunchRequest request;
  request.run_id = id_;
  request.token = token_;
  request.controller_address = options_.controller_address;
  request.agents = test_.spec().agents();
  request.threads_per_agent = test_.spec().threads_per_agent();
  const absl::Status launched = launcher_->Launch(request);
  if (!launched.ok()) {
    common::MutexLock lock(&mu_);
    Settle(Phase::kFailed, "LaunchFailed", std::string(launched.message()));
  }
}

void Run::Abort(const std::string& reason) {
  common::MutexLock lock(&mu_);
  WindDown({Phase::kAborted, "Aborted", reason}, reason);
  MaybeComplete();
}

void Run::Fail(const std::string& reason, const std::string& message) {
  common::MutexLock lock(&mu_);
  WindDown({Phase::kFailed, reason, message}, message);
  MaybeComplete();
}

void Run::AgentGone(uint32_t index, const std::string& why) {
  common::MutexLock lock(&mu_);
  if (index >= agents_.size() || DoneLocked()) return;
  AgentSlot& slot = agents_[index];
  if (slot.finished || slot.lost) return;
  AgentLost(index, why);
}

void Run::WindDown(Verdict verdict, const std::string& stop_reason) {
  if (DoneLocked() || ending_.has_value()) return;
  SLOG(kInfo) << "run_ending run=" << id_ << " phase=" << PhaseName(verdict.phase)
              << " reason=" << verdict.reason << " message=\"" << verdict.message << "\"";
  ending_ = std::move(verdict);
  StopAgents(/*abort=*/true, stop_reason);
}

bool Run::OnHello(const v1::Hello& hello, std::shared_ptr<AgentConnection> connection,
                  std::string* why) {
  common::MutexLock lock(&mu_);
  if (!ConstantTimeEquals(hello.token(), token_)) {
    *why = "bad token";
    return false;
  }
  if (hello.index() >= agents_.size()) {
    *why = absl::StrCat("index ", hello.index(), " out of range (", agents_.size(), " agents)");
    return false;
  }
  AgentSlot& slot = agents_[hello.index()];
  const bool reconnecting = slot.connected && slot.connection == nullptr;
  if (slot.lost || slot.finished || DoneLocked()) {
    *why = absl::StrCat("agent ", hello.index(), " already counts as ",
                        slot.finished ? "finished" : "lost");
    return false;
  }
  if (slot.connection != nullptr) {
    *why = absl::StrCat("agent ", hello.index(), " is already connected");
    return false;
  }
  const int64_t resume_at = hello.start_unix_nanos();
  if (resume_at != 0) {
    if (!AcceptResumingAgent(slot, hello, why)) return false;
  } else if (started_ || ending_.has_value() || phase_ != Phase::kStarting ||
             (assigned_ && slot.assignment == nullptr)) {
    *why = "the test is no longer accepting agents";
    return false;
  }
  slot.connection = std::move(connection);
  slot.connected = true;
  slot.awaiting_since_ns = 0;
  slot.hostname = hello.hostname();
  slot.threads = std::max(1u, hello.threads());
  slot.last_heard_ns = Now();
  events_.push_back({RunEvent::Kind::kAgents, phase_, {}});
  SLOG(kInfo) << "agent_connected run=" << id_ << " index=" << hello.index()
              << " host=" << hello.hostname() << " threads=" << hello.threads()
              << (resume_at != 0 ? " resumed=true" : "")
              << (reconnecting ? " reconnected=true" : "");
  if (resume_at != 0) {
    if (ending_.has_value()) {
      v1::ControllerMessage msg;
      msg.mutable_stop()->set_abort(true);
      msg.mutable_stop()->set_reason(ending_->message);
      slot.connection->Send(msg);
    }
    return true;
  }
  if (assigned_) {
    // It lost its stream before the start: the same share again, and it says Ready again.
    slot.ready = false;
    slot.connection->Send(*slot.assignment);
    return true;
  }
  const bool all =
      std::all_of(agents_.begin(), agents_.end(), [](const AgentSlot& s) { return s.connected; });
  if (all) SendAssignments();
  return true;
}

bool Run::AcceptResumingAgent(AgentSlot& slot, const v1::Hello& hello, std::string* why) {
  // An agent that already runs its share. A restarted controller takes the test's start from it.
  const int64_t resume_at = hello.start_unix_nanos();
  if (!started_) {
    if (ending_.has_value()) {
      *why = "the test is no longer accepting agents";
      return false;
    }
    MarkStarted(resume_at, "resumed: the agents were already running");
    adopting_until_ns_ = Now() + options_.agent_reconnect_s * kSecond;
    for (AgentSlot& other : agents_) {
      if (other.connection == nullptr && !other.lost && !other.finished)
        other.awaiting_since_ns = Now();
    }
  } else if (resume_at != start_unix_ns_) {
    *why = absl::StrCat("agent ", hello.index(), " started at another time than this test");
    return false;
  }
  slot.ready = true;
  slot.replay_through = static_cast<int64_t>(hello.replayed_reports()) - 1;
  return true;
}

void Run::SendAssignments() {
  assigned_ = true;
  uint32_t streams = 0;
  for (const AgentSlot& s : agents_) streams += s.threads;
  const v1::Load& load = test_.spec().load();
  const uint32_t n = static_cast<uint32_t>(agents_.size());
  uint64_t seed = std::random_device{}();
  uint32_t offset = 0;
  for (uint32_t i = 0; i < n; ++i) {
    AgentSlot& slot = agents_[i];
    v1::ControllerMessage msg;
    v1::Assignment* a = msg.mutable_assignment();
    *a->mutable_spec() = test_.spec();
    a->mutable_spec()->clear_agent_template();
    a->set_stream_offset(offset);
    a->set_stream_count(streams);
    if (load.connections() != 0)
      a->set_connections(static_cast<uint32_t>(common::EvenShare(load.connections(), n, i)));
    a->set_seed(seed + i);
    // For logs only: this agent's share, counted the way the engine splits (by stream).
    if (load.has_rate()) a->set_rate(load.rate() * slot.threads / streams);
    if (load.has_users()) {
      a->set_users(static_cast<uint32_t>(
          common::EvenShareOfRange(load.users(), streams, offset, slot.threads)));
    }
    a->set_heartbeat_timeout_seconds(options_.heartbeat_timeout_s);
    if (options_.target_rules != nullptr) *a->mutable_target_rules() = *options_.target_rules;
    if (options_.data != nullptr && plan_.has_value()) {
      // One seed for every agent: a shuffled table is the same permutation everywhere.
      a->set_data_seed(seed);
      for (v1::AgentTable& t : common::AgentTables(test_.spec(), options_.data->tables, *plan_,
                                                   seed, streams, offset, slot.threads)) {
        *a->add_data() = std::move(t);
      }
      a->mutable_env()->insert(options_.data->env.begin(), options_.data->env.end());
    }
    offset += slot.threads;
    slot.assignment = std::make_unique<v1::ControllerMessage>(msg);
    if (slot.connection != nullptr) slot.connection->Send(msg);
  }
  status_.set_message(absl::StrCat("all ", n, " agent(s) connected; assigning their shares"));
}

void Run::SendStart() {
  const int64_t start = WallNow() + static_cast<int64_t>(options_.start_delay_ms) * 1'000'000;
  v1::ControllerMessage msg;
  msg.mutable_start()->set_start_unix_nanos(start);
  for (AgentSlot& s : agents_) {
    if (s.connection != nullptr) s.connection->Send(msg);
  }
  MarkStarted(start, absl::StrCat(agents_.size(), " agent(s) started together"));
}

void Run::MarkStarted(int64_t start_unix_ns, const std::string& message) {
  started_ = true;
  assigned_ = true;
  start_unix_ns_ = start_unix_ns;
  SetPhase(Phase::kRunning);
  status_.set_reason("Running");
  status_.set_message(message);
  status_.set_start_time(Rfc3339(start_unix_ns_));
  SetCondition("AgentsReady", true, "AllAgentsReady",
               absl::StrCat(agents_.size(), " agent(s) ready"));
  SetCondition("Running", true, "Started", "load is being applied");
  SLOG(kInfo) << "run_started run=" << id_ << " agents=" << agents_.size() << " message=\""
              << message << "\"";
}

void Run::OnMessage(uint32_t index, const v1::AgentMessage& message) {
  common::MutexLock lock(&mu_);
  if (index >= agents_.size()) return;
  AgentSlot& slot = agents_[index];
  slot.last_heard_ns = Now();
  switch (message.body_case()) {
    case v1::AgentMessage::kReady:
      slot.ready = true;
      slot.io_backend = message.ready().io_backend();
      if (!started_ && !ending_.has_value() &&
          std::all_of(agents_.begin(), agents_.end(), [](const AgentSlot& s) { return s.ready; })) {
        SendStart();
      }
      break;
    case v1::AgentMessage::kReport: {
      const v1::Report& r = message.report();
      if (r.started_unix_nanos() != 0) slot.started_unix_ns = r.started_unix_nanos();
      // An agent counts seconds from the broadcast start on its own clock: a minute of slack
      // covers any skew; a report further ahead is malformed.
      const int64_t newest =
          started_ ? std::max<int64_t>(0, WallNow() - start_unix_ns_) / kSecond + 60 : 60;
      if (absl::Status s = aggregator_.Add(index, r, newest); !s.ok()) {
        SLOG(kWarning) << "report_rejected run=" << id_ << " agent=" << index << " error=\""
                       << s.message() << "\"";
      }
      ++reports_;
      if (common::IntervalSaturated(r.busiest_thread_cpu(), r.max_timer_lag_ns()))
        ++saturated_reports_;
      break;
    }
    case v1::AgentMessage::kDone:
      if (slot.finished || slot.lost) break;
      if (!message.done().error().empty()) {
        slot.error = message.done().error();
        const std::string why = absl::StrCat("agent ", index, " failed: ", slot.error);
        if (message.done().reason() == "TargetDenied" && !ending_.has_value()) {
          // The policy refused the target: no other agent may go on against it either.
          WindDown({Phase::kFailed, "TargetDenied", why}, why);
        }
        AgentLost(index, why);
        break;
      }
      slot.finished = true;
      aggregator_.AgentGone(index);
      if (slot.connection != nullptr) slot.connection->Close();
      events_.push_back({RunEvent::Kind::kAgents, phase_, {}});
      MaybeComplete();
      break;
    default:
      break;
  }
}

void Run::OnStreamClosed(uint32_t index, const AgentConnection* connection) {
  common::MutexLock lock(&mu_);
  if (index >= agents_.size()) return;
  AgentSlot& slot = agents_[index];
  if (slot.finished || slot.lost || slot.connection == nullptr ||
      slot.connection.get() != connection)
    return;
  if (options_.agent_reconnect_s > 0 && !ending_.has_value()) {
    // It may come back (a network blip, or it redials after our restart); until then it is
    // neither connected nor lost.
    slot.connection = nullptr;
    slot.awaiting_since_ns = Now();
    SLOG(kWarning) << "agent_disconnected run=" << id_ << " index=" << index
                   << " waiting_s=" << options_.agent_reconnect_s;
    return;
  }
  AgentLost(index, absl::StrCat("agent ", index, " (", slot.hostname,
                                ") closed its stream before it was done; log: ",
                                launcher_->LogLocation(index)));
}

void Run::AgentLost(uint32_t index, const std::string& why) {
  AgentSlot& slot = agents_[index];
  slot.lost = true;
  aggregator_.AgentGone(index);
  if (slot.connection != nullptr) slot.connection->Close();
  events_.push_back({RunEvent::Kind::kAgents, phase_, {}});
  SLOG(kWarning) << "agent_lost run=" << id_ << " index=" << index << " why=\"" << why << "\"";
  if (ending_.has_value() || DoneLocked()) {
    MaybeComplete();
    return;
  }
  const bool began = started_ || options_.adopted;
  const bool keep_going = began && test_.spec().on_agent_loss() == "continue" &&
                          std::any_of(agents_.begin(), agents_.end(),
                                      [](const AgentSlot& s) { return !s.lost && !s.finished; });
  if (keep_going) {
    partial_ = true;
    status_.set_partial(true);
    status_.set_message(why);
  } else {
    WindDown({Phase::kFailed, began ? "AgentLost" : "AgentFailed", why}, why);
  }
  MaybeComplete();
}

void Run::StopAgents(bool abort, const std::string& reason) {
  stop_deadline_ns_ = std::min(stop_deadline_ns_, Now() + options_.stop_timeout_s * kSecond);
  v1::ControllerMessage msg;
  msg.mutable_stop()->set_abort(abort);
  msg.mutable_stop()->set_reason(reason);
  for (AgentSlot& s : agents_) {
    if (s.connection != nullptr && !s.finished && !s.lost) s.connection->Send(msg);
  }
}

void Run::Tick() {
  std::vector<std::shared_ptr<AgentConnection>> beat_to;
  bool stop_launcher = false;
  {
    common::MutexLock lock(&mu_);
    if (DoneLocked()) {
      stop_launcher = !launcher_stopped_;
      launcher_stopped_ = true;
    } else {
      const int64_t now = Now();
      CheckStartTimeout(now);
      beat_to = HeartbeatsDue(now);
      CheckAgentsHeard(now);
      if (started_ && !DoneLocked()) {
        if (CloseIntervals(now) > 0) CheckAbortOnFail();
        CheckDeadline();
      }
      CheckStopDeadline(now);
      MaybeComplete();
    }
  }
  if (!beat_to.empty()) {
    v1::ControllerMessage beat;
    beat.mutable_heartbeat()->set_unix_nanos(WallNow());
    for (const auto& connection : beat_to) connection->Send(beat);
  }
  DeliverEvents();
  if (stop_launcher) launcher_->Stop();
}

void Run::CheckStartTimeout(int64_t now) {
  if (phase_ != Phase::kStarting || ending_.has_value() ||
      now - created_ns_ <= options_.start_timeout_s * kSecond) {
    return;
  }
  uint32_t connected = 0, ready = 0;
  for (const AgentSlot& s : agents_) {
    connected += s.connected;
    ready += s.ready;
  }
  WindDown({Phase::kFailed, "AgentsNotReady",
            absl::StrCat(connected, " of ", agents_.size(), " agent(s) connected and ", ready,
                         " ready within ", options_.start_timeout_s,
                         "s; agent 0 log: ", launcher_->LogLocation(0))},
           "agents not ready in time");
  // Agents that never connected will not say done.
  for (AgentSlot& s : agents_) {
    if (!s.connected) {
      s.lost = true;
      aggregator_.AgentGone(static_cast<uint32_t>(&s - agents_.data()));
    }
  }
}

std::vector<std::shared_ptr<AgentConnection>> Run::HeartbeatsDue(int64_t now) {
  // Agents take any message as a sign of life and give up after heartbeat_timeout_s; two beats
  // per timeout leave a whole beat of slack, and each beat is a write and a completion per agent
  // (with 1000 agents, one per second was a sixth of the controller's CPU, one every 3.3 s about
  // 5 %). Tick sends them after the lock.
  std::vector<std::shared_ptr<AgentConnection>> due;
  if (now - last_heartbeat_ns_ < std::max(1, options_.heartbeat_timeout_s / 2) * kSecond)
    return due;
  last_heartbeat_ns_ = now;
  for (AgentSlot& s : agents_) {
    if (s.connection != nullptr && !s.finished && !s.lost) due.push_back(s.connection);
  }
  return due;
}

void Run::CheckAgentsHeard(int64_t now) {
  for (uint32_t i = 0; i < agents_.size(); ++i) {
    AgentSlot& s = agents_[i];
    if (s.finished || s.lost) continue;
    if (s.connection != nullptr && now - s.last_heard_ns > options_.heartbeat_timeout_s * kSecond) {
      AgentLost(i, absl::StrCat("agent ", i, " (", s.hostname, ") silent for ",
                                options_.heartbeat_timeout_s, "s"));
    } else if (s.connection == nullptr && s.awaiting_since_ns != 0 &&
               now - s.awaiting_since_ns > options_.agent_reconnect_s * kSecond) {
      AgentLost(i, absl::StrCat("agent ", i, " did not reconnect within ",
                                options_.agent_reconnect_s, "s; log: ", launcher_->LogLocation(i)));
    }
  }
}

size_t Run::CloseIntervals(int64_t now) {
  const int64_t since_start = WallNow() - start_unix_ns_;
  int64_t force_before = since_start / kSecond - options_.report_grace_s;
  if (now < adopting_until_ns_) {
    // Agents are still coming back, or replaying what they sent the previous controller: closing
    // seconds now would leave their replayed reports out of the series.
    for (uint32_t i = 0; i < agents_.size(); ++i) {
      const AgentSlot& s = agents_[i];
      if (s.lost || s.finished) continue;
      if (s.connection == nullptr || aggregator_.reported_up_to(i) < s.replay_through)
        force_before = 0;
    }
  }
  std::vector<IntervalPoint> points = aggregator_.Finalize(force_before, now);
  for (IntervalPoint& p : points)
    events_.push_back({RunEvent::Kind::kInterval, phase_, std::move(p)});
  return points.size();
}

void Run::CheckAbortOnFail() {
  if (!test_.spec().abort_on_fail() || ending_.has_value()) return;
  const std::vector<v1::ThresholdResult> results = EvaluateThresholds();
  if (const v1::ThresholdResult* failed = common::FirstFailed(results); failed != nullptr) {
    WindDown(
        {Phase::kFailed, "ThresholdsFailed",
         absl::StrCat("abortOnFail: ", failed->expression(), " (actual ", failed->actual(), ")")},
        "a threshold failed (abortOnFail)");
  }
}

void Run::CheckDeadline() {
  // Agents end on their own at the planned end plus the grace period for requests in flight.
  const int64_t since_start = WallNow() - start_unix_ns_;
  const int64_t deadline = duration_ns_ + timeout_ns_ + 30 * kSecond;
  if (ending_.has_value() || since_start <= deadline) return;
  WindDown({Phase::kFailed, "Deadline",
            absl::StrCat("agents still running ", (since_start - duration_ns_) / kSecond,
                         "s after the planned end")},
           "deadline exceeded");
}

void Run::CheckStopDeadline(int64_t now) {
  // Agents told to stop that have not said done in time are given up on.
  if (!ending_.has_value() || now <= stop_deadline_ns_) return;
  for (uint32_t i = 0; i < agents_.size(); ++i) {
    AgentSlot& s = agents_[i];
    if (!s.finished && !s.lost) {
      s.lost = true;
      aggregator_.AgentGone(i);
      if (s.connection != nullptr) s.connection->Close();
    }
  }
}

void Run::DeliverEvents() {
  common::MutexLock deliver(&deliver_mu_);
  std::vector<PendingEvent> events;
  {
    common::MutexLock lock(&mu_);
    events.swap(events_);
  }
  if (!observer_) return;
  for (const PendingEvent& e : events)
    observer_({e.kind, e.phase, e.kind == RunEvent::Kind::kInterval ? &e.point : nullptr});
}

void Run::MaybeComplete() {
  if (DoneLocked()) return;
  for (const AgentSlot& s : agents_) {
    if (!s.finished && !s.lost && (s.connected || !ending_.has_value())) return;
  }
  // Every agent has finished or is lost.
  for (IntervalPoint& p : aggregator_.FinalizeAll(Now())) {
    events_.push_back({RunEvent::Kind::kInterval, phase_, std::move(p)});
  }
  if (ending_.has_value()) {
    Settle(ending_->phase, ending_->reason, ending_->message);
    return;
  }
  const bool any_lost =
      std::any_of(agents_.begin(), agents_.end(), [](const AgentSlot& s) { return s.lost; });
  if (any_lost && !partial_) {
    Settle(Phase::kFailed, "AgentLost", "agents were lost");
    return;
  }
  std::string failed;
  for (const v1::ThresholdResult& t : EvaluateThresholds()) {
    if (!t.passed())
      absl::StrAppend(&failed, failed.empty() ? "" : "; ", t.expression(), " (actual ", t.actual(),
                      ")");
  }
  if (!failed.empty()) {
    Settle(Phase::kFailed, "ThresholdsFailed", failed);
  } else {
    Settle(Phase::kSucceeded, partial_ ? "SucceededPartial" : "Succeeded",
           partial_ ? "thresholds met, but some agents were lost: results are partial"
                    : "all thresholds met");
  }
}

void Run::Settle(Phase phase, const std::string& reason, const std::string& message) {
  if (DoneLocked()) return;
  end_unix_ns_ = WallNow();
  SetPhase(phase);
  status_.set_reason(reason);
  status_.set_message(message);
  status_.set_completion_time(Rfc3339(end_unix_ns_));
  const std::vector<v1::ThresholdResult> results = EvaluateThresholds();
  status_.clear_thresholds();
  for (const v1::ThresholdResult& t : results) *status_.add_thresholds() = t;
  const bool all_passed = common::FirstFailed(results) == nullptr;
  SetCondition("Running", false, reason, "load is no longer applied");
  if (started_) {
    SetCondition("ThresholdsMet", all_passed, all_passed ? "ThresholdsMet" : "ThresholdsFailed",
                 all_passed ? "every threshold holds" : "at least one threshold failed");
  }
  SetCondition("Complete", true, reason, message);
  events_.push_back({RunEvent::Kind::kEnded, phase, {}});
  SLOG(kInfo) << "run_finished run=" << id_ << " phase=" << PhaseName(phase) << " reason=" << reason
              << " message=\"" << message << "\"";
  done_cv_.SignalAll();
}

std::vector<v1::ThresholdResult> Run::EvaluateThresholds() const {
  return common::EvaluateThresholds(thresholds_, request_names_, aggregator_.cumulative(),
                                    ElapsedSeconds());
}

void Run::SetCondition(const std::string& type, bool value, const std::string& reason,
                       const std::string& message) {
  UpsertCondition(status_, type, value, reason, message, test_.metadata().generation(),
                  Rfc3339(WallNow()));
}

double Run::ElapsedSeconds() const {
  if (!started_) return 0;
  // The clock stops when the run settles (an aborted run's rate is over the time it ran).
  const int64_t now = end_unix_ns_ != 0 ? end_unix_ns_ : WallNow();
  double elapsed = (now - start_unix_ns_) / 1e9;
  return std::clamp(elapsed, 0.0, duration_ns_ / 1e9);
}

Phase Run::phase() const {
  common::MutexLock lock(&mu_);
  return phase_;
}

bool Run::Done() const {
  common::MutexLock lock(&mu_);
  return DoneLocked();
}

bool Run::WaitDone(int timeout_ms) const {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  common::MutexLock lock(&mu_);
  while (!DoneLocked()) {
    if (timeout_ms < 0) {
      done_cv_.Wait(&mu_);
    } else if (!done_cv_.WaitUntil(&mu_, deadline)) {
      return DoneLocked();
    }
  }
  return true;
}

v1::LoadTestStatus Run::Status() const { return TakeSnapshot(false).status; }

void FillSummary(const common::RequestStats& r, double seconds, v1::Summary* sum) {
  sum->set_requests(r.Requests());
  sum->set_errors(r.Errors());
  sum->set_rps(seconds > 0 ? r.Requests() / seconds : 0);
  sum->set_error_rate(r.Requests() == 0 ? 0 : static_cast<double>(r.Errors()) / r.Requests());
  if (r.latency.count() != 0) {
    sum->set_p50(common::FormatNanos(r.latency.ValueAtQuantile(0.5)));
    sum->set_p90(common::FormatNanos(r.latency.ValueAtQuantile(0.9)));
    sum->set_p95(common::FormatNanos(r.latency.ValueAtQuantile(0.95)));
    sum->set_p99(common::FormatNanos(r.latency.ValueAtQuantile(0.99)));
    sum->set_p999(common::FormatNanos(r.latency.ValueAtQuantile(0.999)));
    sum->set_max(common::FormatNanos(r.latency.max()));
  }
}

Run::Snapshot Run::TakeSnapshot(bool with_series) const {
  common::MutexLock lock(&mu_);
  Snapshot snap;
  snap.phase = phase_;
  snap.request_names = request_names_;
  for (const v1::Scenario& s : test_.spec().scenarios()) snap.scenario_names.push_back(s.name());
  snap.cumulative = aggregator_.cumulative();
  for (size_t i = 0; i < snap.request_names.size(); ++i) {
    snap.window_latency.push_back(aggregator_.WindowLatency(static_cast<int>(i)));
  }
  for (const common::Histogram& h : snap.window_latency) snap.window_total.Merge(h);
  snap.window_rps = aggregator_.WindowRps();
  if (with_series) snap.series = aggregator_.series();
  snap.last_interval = aggregator_.last_finalized();
  if (!aggregator_.series().empty()) snap.active_users = aggregator_.series().back().active_users;
  snap.agents_desired = static_cast<uint32_t>(agents_.size());
  int64_t min_start = INT64_MAX, max_start = 0;
  for (const AgentSlot& s : agents_) {
    snap.agents_connected += s.connected && !s.finished && !s.lost;
    snap.agents_finished += s.finished;
    snap.agents_lost += s.lost;
    snap.agents_epoll += s.io_backend == "epoll";
    snap.agents_uring += s.io_backend == "uring";
    if (s.started_unix_ns != 0) {
      min_start = std::min(min_start, s.started_unix_ns);
      max_start = std::max(max_start, s.started_unix_ns);
    }
  }
  snap.saturated = common::RunSaturated(saturated_reports_, reports_);
  snap.elapsed_s = ElapsedSeconds();
  if (plan_.has_value() && plan_->model() == common::LoadPlan::Model::kOpen &&
      phase_ == Phase::kRunning) {
    snap.target_rate = plan_->RateAt(static_cast<int64_t>(snap.elapsed_s * 1e9));
  }

  v1::LoadTestStatus& st = snap.status;
  st = status_;
  st.mutable_agents()->set_desired(snap.agents_desired);
  st.mutable_agents()->set_connected(snap.agents_connected);
  st.mutable_agents()->set_finished(snap.agents_finished);
  st.mutable_agents()->set_lost(snap.agents_lost);
  if (max_start != 0)
    st.set_start_skew(common::FormatNanos(static_cast<uint64_t>(max_start - min_start)));
  FillSummary(snap.cumulative.Total(), snap.elapsed_s, st.mutable_summary());
  snap.stage_spans = stage_spans_;
  snap.stages = aggregator_.stages();
  st.clear_stages();
  for (size_t i = 0; i < snap.stages.size(); ++i) {
    const common::LoadPlan::Span& span = snap.stage_spans[i];
    v1::StageSummary* stage = st.add_stages();
    stage->set_index(static_cast<uint32_t>(i));
    stage->set_kind(span.hold ? "hold" : span.from == span.to ? "steady" : "ramp");
    stage->set_from(span.from);
    stage->set_to(span.to);
    stage->set_start_seconds(span.start_ns / 1e9);
    stage->set_end_seconds(span.end_ns / 1e9);
    stage->set_approximate(snap.stages[i].folded);
    // The rate is over the part of the stage that has run; the last stage also has the seconds
    // after the end in which the requests still in flight then completed (they count in it).
    double ran_s =
        std::clamp(snap.elapsed_s - span.start_ns / 1e9, 0.0, (span.end_ns - span.start_ns) / 1e9);
    if (i + 1 == snap.stages.size()) {
      ran_s = std::max(ran_s, static_cast<double>(snap.last_interval + 1) - span.start_ns / 1e9);
    }
    const common::IntervalStats& stats = snap.stages[i].stats;
    FillSummary(stats.Total(), ran_s, stage->mutable_summary());
    for (size_t r = 0; r < stats.requests.size() && r < request_names_.size(); ++r) {
      v1::RequestSummary* request = stage->add_requests();
      request->set_name(request_names_[r]);
      FillSummary(stats.requests[r], ran_s, request->mutable_summary());
    }
  }
  if (!DoneLocked() && started_) {
    st.clear_thresholds();
    for (const v1::ThresholdResult& t : EvaluateThresholds()) *st.add_thresholds() = t;
  }
  return snap;
}

}  // namespace stampede::controller
