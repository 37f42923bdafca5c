#include "agent/session.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/engine.h"
#include "agent/engine_config.h"
#include "agent/tls_probe.h"
#include "common/clock.h"
#include "common/data_table.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/report.h"
#include "common/status_macros.h"
#include "stampede/v1/agent.grpc.pb.h"

namespace stampede::agent {

namespace {

constexpr int64_t kSecondNs = 1'000'000'000;
constexpr size_t kMaxCaBytes = 1 << 20;  // a CA bundle of a few certificates is a few KB

common::FlagSet ConnectFlags(SessionOptions* o) {
  common::FlagSet flags("stampede-agent connect", &o->help);
  flags.Description(
      "Joins a test as one of its agents. Every flag but --replay-log-max has an environment "
      "fallback (in brackets); prefer STAMPEDE_TOKEN to --token, which other users can see in ps.");
  flags.String("--controller", "HOST:PORT", "the controller's gRPC address", &o->controller)
      .Env("STAMPEDE_CONTROLLER")
      .Required();
  flags.String("--run", "ID", "the test's run id", &o->run).Env("STAMPEDE_RUN").Required();
  flags.Count("--index", "I", "this agent's index in the test", &o->index, 0)
      .Env("STAMPEDE_AGENT_INDEX")
      .Required();
  flags.String("--token", "T", "the test's secret", &o->token).Env("STAMPEDE_TOKEN");
  flags
      .String("--ca", "PEM",
              "speak TLS and trust only these CA certificates (PEM text) for the controller's "
              "name or address in --controller (default: plaintext)",
              &o->ca_pem)
      .Env("STAMPEDE_CA");
  flags.String("--ca-file", "FILE", "as --ca, read from FILE", &o->ca_file).Env("STAMPEDE_CA_FILE");
  flags
      .Count("--threads", "N", "event-loop threads (default 0: one per core)", &o->threads, 0, 1024)
      .Env("STAMPEDE_THREADS");
  flags.Custom("--io", "B",
               "I/O backend: auto (io_uring where the kernel allows it, else epoll), epoll or "
               "uring (default: $STAMPEDE_IO, else auto)",
               [o](const std::string& value) {
                 ASSIGN_OR_RETURN(o->io, ParseIoMode(value));
                 return absl::OkStatus();
               });
  flags
      .Count("--connect-timeout", "SECONDS",
             "give up when the controller cannot be reached for this long at the start (default "
             "30)",
             &o->connect_timeout_s, 1, 3600)
      .Env("STAMPEDE_CONNECT_TIMEOUT_SECONDS");
  flags
      .Count("--reconnect", "SECONDS",
             "when the controller goes away, keep the load running and redial it for up to "
             "SECONDS, then hand the new controller every report since the start (default 0: "
             "stop at once)",
             &o->reconnect_s, 0, 3600)
      .Env("STAMPEDE_RECONNECT_SECONDS");
  flags.Count(
      "--replay-log-max", "BYTES",
      "with --reconnect, the reports kept for a replay may take BYTES (default 64 MiB); past "
      "it the oldest are folded into one, which keeps the totals exact but not those "
      "seconds' own figures",
      &o->replay_log_max_bytes, 1024);
  return flags;
}

}  // namespace

absl::StatusOr<SessionOptions> ParseConnectFlags(const std::vector<std::string>& args,
                                                 const common::FlagSet::EnvLookup& env) {
  SessionOptions options;
  RETURN_IF_ERROR(ConnectFlags(&options).Parse(args, env));
  if (!options.ca_file.empty()) {
    if (!options.ca_pem.empty()) {
      return absl::InvalidArgumentError("--ca-file: give --ca or --ca-file, not both");
    }
    absl::StatusOr<std::string> text = common::ReadSmallFile(options.ca_file, kMaxCaBytes);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--ca-file: ", text.status().message()));
    }
    options.ca_pem = *std::move(text);
  }
  if (!options.ca_pem.empty() &&
      options.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        options.ca_file.empty()
            ? "--ca: no PEM certificate in it"
            : absl::StrCat("--ca-file: no PEM certificate in ", options.ca_file));
  }
  return options;
}

absl::StatusOr<SessionOptions> ParseConnectFlags(const std::vector<std::string>& args) {
  return ParseConnectFlags(args, common::FlagSet::ProcessEnv);
}

std::string ConnectUsage() {
  SessionOptions unused;
  return ConnectFlags(&unused).Usage();
}

namespace {

// Messages from the controller, handed from the reader thread to the session loop. At most
// kMaxInbox wait: past that the reader waits too, reads no more, and gRPC's flow control holds the
// controller back, whose own bounded queue then cuts this agent off (and counts it).
class Inbox {
 public:
  static constexpr size_t kMaxInbox = 64;

  explicit Inbox(const common::Clock* clock)
      : clock_(clock), last_heard_ns_(clock->MonotonicNanos()) {}

  void Push(v1::ControllerMessage msg) {
    common::MutexLock lock(&mu_);
    while (messages_.size() >= kMaxInbox && !closed_) cv_.Wait(&mu_);
    if (closed_) return;
    messages_.push_back(std::move(msg));
    last_heard_ns_ = clock_->MonotonicNanos();
    cv_.SignalAll();
  }
  void Close() {
    common::MutexLock lock(&mu_);
    closed_ = true;
    cv_.SignalAll();
  }
  void Wake() { cv_.SignalAll(); }
  // Waits up to `timeout` (real time) for a message; false when none came. `last_heard_ns`: when
  // the controller last sent anything, on the clock's monotonic time.
  bool Pop(std::chrono::milliseconds timeout, v1::ControllerMessage* out, bool* closed,
           int64_t* last_heard_ns, const std::atomic<bool>& wake) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    common::MutexLock lock(&mu_);
    while (messages_.empty() && !closed_ && !wake.load()) {
      if (!cv_.WaitUntil(&mu_, deadline)) break;
    }
    *closed = closed_;
    *last_heard_ns = last_heard_ns_;
    if (messages_.empty()) return false;
    *out = std::move(messages_.front());
    messages_.pop_front();
    cv_.SignalAll();  // a reader waiting for room
    return true;
  }

 private:
  const common::Clock* const clock_;
  common::Mutex mu_;
  common::CondVar cv_;
  std::deque<v1::ControllerMessage> messages_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_heard_ns_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

namespace {

using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>;

// The agent's side of a test across one or more streams: the engine and its reporter live as long
// as the test; a stream lives as long as the controller it reaches. Every report is kept, so a
// controller that restarted (and lost its state) can be given the whole test again; the
// controller ignores intervals it already has.
class Session {
 public:
  Session(const SessionOptions& options, uint32_t threads, std::shared_ptr<grpc::Channel> channel)
      : options_(options),
        clock_(options.clock != nullptr ? options.clock : &common::SystemClock()),
        threads_(threads),
        channel_(channel),
        stub_(v1::AgentService::NewStub(channel)) {}

  ~Session() {
    if (engine_ != nullptr) engine_->Stop(/*abort=*/true);
    if (reporter_.joinable()) reporter_.join();
  }

  int Run() {
    bool lost = false;  // since the last accepted stream
    int64_t deadline_ns = 0;
    auto backoff = std::chrono::milliseconds(200);
    while (true) {
      const End end = Converse();
      if (end == End::kFinished) return 0;
      if (end == End::kFailed || options_.reconnect_s == 0) break;
      // The controller is gone, or (restarted) does not know the test yet. Keep the load going
      // (the reporter keeps every report) and redial until the window closes; the window runs from
      // the first loss, not from each failed attempt.
      const int64_t now = clock_->MonotonicNanos();
      if (!lost) {
        lost = true;
        deadline_ns = now + options_.reconnect_s * kSecondNs;
        SLOG(kWarning) << "controller_lost reconnect_window_s=" << options_.reconnect_s;
      }
      if (now >= deadline_ns) {
        SLOG(kError) << "controller_gone waited_s=" << options_.reconnect_s << " stopping=true";
        break;
      }
      const std::chrono::nanoseconds left(deadline_ns - now);
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(backoff, left));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      if (!channel_->WaitForConnected(std::chrono::system_clock::now() + left)) continue;
      if (heard_) {  // the last stream was accepted before it broke: a new loss, a new window
        lost = false;
        backoff = std::chrono::milliseconds(200);
        heard_ = false;
      }
    }
    if (engine_ != nullptr) engine_->Stop(/*abort=*/true);
    return 1;
  }

 private:
  enum class End { kFinished, kFailed, kLost };

  // Writes on the current stream, if there is one; reports are kept whether or not it works.
  bool Write(const v1::AgentMessage& msg) {
    common::MutexLock lock(&mu_);
    if (stream_ == nullptr) return false;
    last_write_ns_.store(clock_->MonotonicNanos());
    return stream_->Write(msg);
  }

  // Bounds log_: past the byte budget, every report but the newest ones is folded into one. A
  // replay comes at most reconnect_s after the stream broke, so keeping more seconds than that
  // whole means a report a controller missed is never inside a fold it partly saw already.
  // A fold itself can be large (its histograms hold every bucket any second used), so another
  // fold waits until half the budget of new reports has come in: folding stays an occasional cost.
  void MaybeFoldLogLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (log_bytes_ <= options_.replay_log_max_bytes) return;
    if (log_bytes_ - folded_bytes_ <= options_.replay_log_max_bytes / 2) return;
    const size_t keep = static_cast<size_t>(options_.reconnect_s) + 2;
    if (log_.size() <= keep + 1) return;
    const size_t fold = log_.size() - keep;
    absl::StatusOr<v1::Report> folded =
        common::FoldReports(absl::MakeConstSpan(log_).subspan(0, fold));
    if (!folded.ok()) {
      SLOG(kError) << "replay_log_fold_failed error=\"" << folded.status().message() << "\"";
      return;
    }
    std::vector<std::string> rest;
    rest.reserve(keep + 1);
    rest.push_back(folded->SerializeAsString());
    for (size_t i = fold; i < log_.size(); ++i) rest.push_back(std::move(log_[i]));
    const int64_t before = log_bytes_;
    log_ = std::move(rest);
    folded_bytes_ = static_cast<int64_t>(log_.front().size());
    log_bytes_ = 0;
    for (const std::string& r : log_) log_bytes_ += static_cast<int64_t>(r.size());
    SLOG(kInfo) << "replay_log_folded reports=" << fold << " through=" << folded->folded_through()
                << " bytes_before=" << before << " bytes_after=" << log_bytes_;
  }

  void StartEngine(int64_t start_unix_ns) {
    start_unix_ns_ = start_unix_ns;
    // The engine's timers run on this machine's CLOCK_MONOTONIC, whatever clock the session reads.
    const int64_t delay = start_unix_ns - common::RealtimeNanos();
    const int64_t start_mono = common::MonotonicNanos() + std::max<int64_t>(delay, 0);
    const int64_t start_real = common::RealtimeNanos() + std::max<int64_t>(delay, 0);
    engine_->Start(start_mono);
    reporter_ = std::thread([this, start_real, start_mono] {
      bool first = true;
      while (auto interval = engine_->NextInterval()) {
        v1::AgentMessage report;
        common::IntervalToReport(*interval, report.mutable_report());
        if (first) {
          // The actual start, not the planned one: the difference across agents is the skew.
          const int64_t actual = engine_->ActualStartNs();
          report.mutable_report()->set_started_unix_nanos(start_real +
                                                          (actual != 0 ? actual - start_mono : 0));
        }
        first = false;
        common::MutexLock lock(&mu_);
        if (options_.reconnect_s > 0) {  // without a reconnect window there is never a replay
          log_.push_back(report.report().SerializeAsString());
          log_bytes_ += static_cast<int64_t>(log_.back().size());
          logged_through_ = report.report().interval();
          MaybeFoldLogLocked();
        }
        if (stream_ != nullptr) {
          last_write_ns_.store(clock_->MonotonicNanos());
          stream_->Write(report);
        }
      }
      reporter_done_.store(true);
      wake_.store(true);
      common::MutexLock lock(&mu_);
      if (inbox_ != nullptr) inbox_->Wake();
    });
  }

  // One stream, from Hello to its end.
  End Converse() {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Session(&context);
    Inbox inbox(clock_);
    bool done_sent = false, failed = false, rejected = false;
    auto send_done = [&](const std::string& error, const std::string& reason = "") {
      v1::AgentMessage done;
      done.mutable_done()->set_error(error);
      done.mutable_done()->set_reason(reason);
      Write(done);
      common::MutexLock lock(&mu_);
      if (stream_ != nullptr) stream_->WritesDone();
      done_sent = true;
    };
    {
      v1::AgentMessage hello;
      v1::Hello* h = hello.mutable_hello();
      h->set_run(options_.run);
      h->set_token(options_.token);
      h->set_index(options_.index);
      h->set_version("0.1.0");
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      h->set_hostname(host);
      h->set_threads(threads_);
      h->set_start_unix_nanos(start_unix_ns_);
      // Hello, then (when resuming) every report so far, before the reporter may add one.
      common::MutexLock lock(&mu_);
      if (start_unix_ns_ != 0) h->set_replayed_reports(static_cast<uint32_t>(logged_through_ + 1));
      bool ok = stream->Write(hello);
      v1::AgentMessage report;
      for (size_t i = 0; ok && i < log_.size(); ++i) {
        report.mutable_report()->ParseFromString(log_[i]);
        ok = stream->Write(report);
      }
      last_write_ns_.store(clock_->MonotonicNanos());
      if (!ok) {
        SLOG(kWarning) << "controller_closed_stream phase=hello";
        context.TryCancel();
        stream->Finish();
        return End::kLost;
      }
      stream_ = stream.get();
      inbox_ = &inbox;
      if (start_unix_ns_ != 0) {
        SLOG(kInfo) << "resumed_session reports_replayed=" << log_.size();
      }
    }
    std::thread reader([&] {
      v1::ControllerMessage msg;
      while (stream->Read(&msg)) inbox.Push(std::move(msg));
      inbox.Close();
    });

    bool lost = false, server_closed = false;
    while (true) {
      v1::ControllerMessage msg;
      bool closed = false;
      int64_t last_heard_ns = 0;
      const bool got =
          inbox.Pop(std::chrono::milliseconds(500), &msg, &closed, &last_heard_ns, wake_);
      wake_.store(false);
      if (got) {
        heard_ = true;
        switch (msg.body_case()) {
          case v1::ControllerMessage::kAssignment: {
            if (start_unix_ns_ != 0) break;  // already running: the assignment cannot change
            const v1::Assignment& a = msg.assignment();
            if (a.heartbeat_timeout_seconds() != 0)
              heartbeat_timeout_s_ = a.heartbeat_timeout_seconds();
            auto cfg = EngineConfigFromAssignment(a, threads_);
            if (cfg.ok()) {
              cfg->agent_index = options_.index;
              cfg->io = options_.io;
            }
            absl::StatusOr<std::unique_ptr<Engine>> created =
                cfg.ok() ? Engine::Create(std::move(*cfg))
                         : absl::StatusOr<std::unique_ptr<Engine>>(cfg.status());
            if (!created.ok()) {
              SLOG(kError) << "assignment_rejected error=\"" << created.status().message() << "\"";
              send_done(std::string(created.status().message()),
                        created.status().code() == absl::StatusCode::kPermissionDenied
                            ? "TargetDenied"
                            : "");
              failed = true;
              break;
            }
            engine_ = std::move(*created);
            SLOG(kInfo) << "assigned run=" << options_.run << " index=" << options_.index
                        << " users=" << a.users() << " rate=" << a.rate()
                        << " streams=" << a.stream_offset() << "+" << threads_ << "/"
                        << a.stream_count();
            v1::AgentMessage ready;
            ready.mutable_ready()->set_io_backend(IoBackendName(engine_->io_backend()));
            Write(ready);
            break;
          }
          case v1::ControllerMessage::kStart:
            if (engine_ == nullptr || start_unix_ns_ != 0) break;
            StartEngine(msg.start().start_unix_nanos());
            break;
          case v1::ControllerMessage::kStop:
            SLOG(kInfo) << "stop_requested abort=" << msg.stop().abort() << " reason=\""
                        << msg.stop().reason() << "\"";
            if (engine_ != nullptr && start_unix_ns_ != 0) {
              engine_->Stop(msg.stop().abort());
            } else if (!done_sent) {
              send_done("");
              stopped_before_start_ = true;
            }
            break;
          case v1::ControllerMessage::kReject:
            SLOG(kError) << "rejected reason=\"" << msg.reject().reason() << "\"";
            failed = rejected = true;
            if (!done_sent) send_done("rejected");
            break;
          default:
            break;
        }
      }
      if (reporter_done_.load() && !done_sent) send_done("");
      if (closed) {
        // After our Done the controller closes the stream with OK: that is the normal end
        // (checked below, with the status).
        server_closed = true;
        if (!done_sent || (!reporter_done_.load() && !stopped_before_start_)) lost = true;
        break;
      }
      if (clock_->MonotonicNanos() - last_heard_ns > heartbeat_timeout_s_ * kSecondNs) {
        SLOG(kError) << "controller_silent seconds=" << heartbeat_timeout_s_;
        lost = true;
        break;
      }
      if (!done_sent && clock_->MonotonicNanos() - last_write_ns_.load() >= kSecondNs) {
        v1::AgentMessage beat;
        beat.mutable_heartbeat()->set_unix_nanos(clock_->RealtimeNanos());
        Write(beat);
      }
    }
    // Cancel first: the reporter may be blocked in a Write under mu_ (a hung controller stops
    // reading, flow control stops us), and only the cancel lets it go.
    if (!server_closed) context.TryCancel();
    {
      common::MutexLock lock(&mu_);
      stream_ = nullptr;
      inbox_ = nullptr;
    }
    inbox.Close();  // a reader waiting for room in the inbox stops waiting
    reader.join();
    const grpc::Status status = stream->Finish();
    if (rejected || failed) return End::kFailed;
    // The controller refused us (a bad token, a taken index, a run it has not got): that is not a
    // lost controller. An unknown run is worth redialling in a reconnect window (a restarted
    // operator reads its tests back after it listens); a refusal never is.
    const bool refused =
        status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        (status.error_code() == grpc::StatusCode::NOT_FOUND && options_.reconnect_s == 0);
    if (refused) {
      SLOG(kError) << "rejected status=" << status.error_code() << " reason=\""
                   << status.error_message() << "\" stopping=true";
      return End::kFailed;
    }
    // A controller that ends the stream with an error did not take our Done (say, a restarted
    // one that does not know the test yet): the reports are not delivered.
    if (!status.ok()) lost = true;
    if (lost && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      SLOG(kWarning) << "stream_ended status=" << status.error_code() << " message=\""
                     << status.error_message() << "\"";
    }
    if (lost) {
      if (options_.reconnect_s == 0) {
        SLOG(kError) << "controller_gone stopping=true";
      }
      return End::kLost;
    }
    if (reporter_.joinable()) reporter_.join();
    return End::kFinished;
  }

  const SessionOptions options_;
  const common::Clock* const clock_;
  const uint32_t threads_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::AgentService::Stub> stub_;

  // Owned by the session loop (the thread in Run).
  std::unique_ptr<Engine> engine_;
  std::thread reporter_;
  int64_t start_unix_ns_ = 0;  // the broadcast start; 0 until started
  bool stopped_before_start_ = false;
  bool heard_ = false;  // the controller sent something on the current stream
  int64_t heartbeat_timeout_s_ = 10;

  std::atomic<bool> reporter_done_{false};
  std::atomic<bool> wake_{false};  // set by the reporter so the loop sends Done at once
  std::atomic<int64_t> last_write_ns_{0};

  common::Mutex mu_;  // one writer at a time on the stream
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  Inbox* inbox_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::string> log_
      ABSL_GUARDED_BY(mu_);  // every report since the start, serialized (old ones folded)
  int64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;        // the sizes in log_ added up
  int64_t folded_bytes_ ABSL_GUARDED_BY(mu_) = 0;     // the size of log_[0] when it is a fold
  int64_t logged_through_ ABSL_GUARDED_BY(mu_) = -1;  // the newest interval in log_
};

}  // namespace

int RunSession(const SessionOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  const uint32_t threads =
      options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  // An assignment carries the agent's rows of the test's data tables (up to
  // common::kMaxDataBytes), far past gRPC's default 4 MiB.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(2 * common::kMaxDataBytes));
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  auto channel = grpc::CreateCustomChannel(options.controller, credentials, args);
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::seconds(options.connect_timeout_s);
  bool connected = false;
  while (std::chrono::system_clock::now() < deadline) {
    const grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) {
      connected = true;
      break;
    }
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && !options.ca_pem.empty()) {
      // gRPC says only that it failed; a certificate that does not verify will not verify on
      // the next attempt either, so say why and stop now.
      const absl::Status verified =
          ProbeTls(options.controller, options.ca_pem, std::chrono::seconds(5));
      if (verified.code() == absl::StatusCode::kPermissionDenied) {
        SLOG(kError) << "controller_unverified address=" << options.controller << " error=\""
                     << verified.message() << "\"";
        // The last line of the log: the Pod's termination message (FallbackToLogsOnError).
        std::cerr << "stampede-agent: refusing the controller at " << options.controller
                  << ": its certificate does not verify against the CA we were given ("
                  << verified.message() << ")" << std::endl;
        return 1;
      }
    }
    channel->WaitForStateChange(
        state, std::min(deadline, std::chrono::system_clock::now() + std::chrono::seconds(1)));
  }
  if (!connected) {
    SLOG(kError) << "controller_unreachable address=" << options.controller
                 << " waited_s=" << options.connect_timeout_s;
    return 1;
  }
  Session session(options, threads, channel);
  return session.Run();
}

}  // namespace stampede::agent
