#include "agent/session.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/engine.h"
#include "agent/spec_config.h"
#include "common/clock.h"
#include "common/logging.h"
#include "stampede/v1/agent.grpc.pb.h"

namespace stampede::agent {

const char kConnectUsage[] =
    "usage: stampede-agent connect --controller HOST:PORT --run ID --index I [--token T] [--threads N]\n"
    "  Joins a test as one of its agents. Every flag has an environment fallback:\n"
    "  STAMPEDE_CONTROLLER, STAMPEDE_RUN, STAMPEDE_AGENT_INDEX, STAMPEDE_TOKEN (preferred over\n"
    "  --token, which other users can see in ps), STAMPEDE_THREADS.\n";

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

absl::StatusOr<SessionOptions> ParseConnectFlags(const std::vector<std::string>& args) {
  SessionOptions opt;
  opt.controller = Env("STAMPEDE_CONTROLLER");
  opt.run = Env("STAMPEDE_RUN");
  opt.token = Env("STAMPEDE_TOKEN");
  std::string index = Env("STAMPEDE_AGENT_INDEX"), threads = Env("STAMPEDE_THREADS");
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat(flag, ": needs a value"));
    const std::string& value = args[++i];
    if (flag == "--controller") {
      opt.controller = value;
    } else if (flag == "--run") {
      opt.run = value;
    } else if (flag == "--token") {
      opt.token = value;
    } else if (flag == "--index") {
      index = value;
    } else if (flag == "--threads") {
      threads = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown flag"));
    }
  }
  if (opt.controller.empty()) return absl::InvalidArgumentError("--controller (or STAMPEDE_CONTROLLER): is required");
  if (opt.run.empty()) return absl::InvalidArgumentError("--run (or STAMPEDE_RUN): is required");
  if (index.empty() || !absl::SimpleAtoi(index, &opt.index)) {
    return absl::InvalidArgumentError("--index (or STAMPEDE_AGENT_INDEX): a number is required");
  }
  if (!threads.empty() && (!absl::SimpleAtoi(threads, &opt.threads) || opt.threads > 1024)) {
    return absl::InvalidArgumentError("--threads (or STAMPEDE_THREADS): not a thread count");
  }
  return opt;
}

namespace {

// Messages from the controller, handed from the reader thread to the session loop.
class Inbox {
 public:
  void Push(v1::ControllerMessage msg) {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(std::move(msg));
    last_heard_ = std::chrono::steady_clock::now();
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  void Wake() { cv_.notify_all(); }
  // Waits up to `timeout` for a message; false when none came.
  bool Pop(std::chrono::milliseconds timeout, v1::ControllerMessage* out, bool* closed,
           std::chrono::steady_clock::time_point* last_heard, const std::atomic<bool>& wake) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !messages_.empty() || closed_ || wake.load(); });
    *closed = closed_;
    *last_heard = last_heard_;
    if (messages_.empty()) return false;
    *out = std::move(messages_.front());
    messages_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::ControllerMessage> messages_;
  bool closed_ = false;
  std::chrono::steady_clock::time_point last_heard_ = std::chrono::steady_clock::now();
};

}  // namespace

int RunSession(const SessionOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  const uint32_t threads = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  auto channel = grpc::CreateChannel(options.controller, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(options.connect_timeout_s))) {
    SLOG(kError) << "controller_unreachable address=" << options.controller << " waited_s=" << options.connect_timeout_s;
    return 1;
  }
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream = stub->Session(&context);

  std::mutex write_mu;
  std::atomic<int64_t> last_write_ns{0};
  auto write = [&](const v1::AgentMessage& msg) {
    std::lock_guard<std::mutex> lock(write_mu);
    last_write_ns.store(common::MonotonicNanos());
    return stream->Write(msg);
  };

  v1::AgentMessage hello;
  hello.mutable_hello()->set_run(options.run);
  hello.mutable_hello()->set_token(options.token);
  hello.mutable_hello()->set_index(options.index);
  hello.mutable_hello()->set_version("0.1.0");
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  hello.mutable_hello()->set_hostname(host);
  hello.mutable_hello()->set_threads(threads);
  if (!write(hello)) {
    SLOG(kError) << "controller_closed_stream phase=hello";
    stream->Finish();
    return 1;
  }

  Inbox inbox;
  std::thread reader([&] {
    v1::ControllerMessage msg;
    while (stream->Read(&msg)) inbox.Push(std::move(msg));
    inbox.Close();
  });

  std::unique_ptr<Engine> engine;
  std::thread reporter;
  std::atomic<bool> reporter_done{false};
  std::atomic<bool> wake{false};  // set by the reporter so the loop sends Done at once
  bool done_sent = false, failed = false;
  auto heartbeat_timeout = std::chrono::seconds(10);
  auto send_done = [&](const std::string& error) {
    v1::AgentMessage done;
    done.mutable_done()->set_error(error);
    write(done);
    std::lock_guard<std::mutex> lock(write_mu);
    stream->WritesDone();
    done_sent = true;
  };

  while (true) {
    v1::ControllerMessage msg;
    bool closed = false;
    std::chrono::steady_clock::time_point last_heard;
    const bool got = inbox.Pop(std::chrono::milliseconds(500), &msg, &closed, &last_heard, wake);
    wake.store(false);
    if (got) {
      switch (msg.body_case()) {
        case v1::ControllerMessage::kAssignment: {
          const v1::Assignment& a = msg.assignment();
          if (a.heartbeat_timeout_seconds() != 0) heartbeat_timeout = std::chrono::seconds(a.heartbeat_timeout_seconds());
          auto cfg = EngineConfigFromAssignment(a, threads);
          absl::StatusOr<std::unique_ptr<Engine>> created =
              cfg.ok() ? Engine::Create(std::move(*cfg)) : absl::StatusOr<std::unique_ptr<Engine>>(cfg.status());
          if (!created.ok()) {
            SLOG(kError) << "assignment_rejected error=\"" << created.status().message() << "\"";
            send_done(std::string(created.status().message()));
            failed = true;
            break;
          }
          engine = std::move(*created);
          SLOG(kInfo) << "assigned run=" << options.run << " index=" << options.index << " users=" << a.users()
                      << " rate=" << a.rate() << " streams=" << a.stream_offset() << "+" << threads << "/"
                      << a.stream_count();
          v1::AgentMessage ready;
          ready.mutable_ready();
          write(ready);
          break;
        }
        case v1::ControllerMessage::kStart: {
          if (engine == nullptr || reporter.joinable()) break;
          const int64_t delay = msg.start().start_unix_nanos() - common::RealtimeNanos();
          const int64_t start_mono = common::MonotonicNanos() + std::max<int64_t>(delay, 0);
          const int64_t start_real = common::RealtimeNanos() + std::max<int64_t>(delay, 0);
          engine->Start(start_mono);
          reporter = std::thread([&, start_real, start_mono] {
            bool first = true;
            while (auto interval = engine->NextInterval()) {
              v1::AgentMessage report;
              IntervalToReport(*interval, report.mutable_report());
              if (first) {
                // The actual start, not the planned one: the difference across agents is the skew.
                const int64_t actual = engine->ActualStartNs();
                report.mutable_report()->set_started_unix_nanos(start_real + (actual != 0 ? actual - start_mono : 0));
              }
              first = false;
              if (!write(report)) break;
            }
            reporter_done.store(true);
            wake.store(true);
            inbox.Wake();
          });
          break;
        }
        case v1::ControllerMessage::kStop:
          SLOG(kInfo) << "stop_requested abort=" << msg.stop().abort() << " reason=\"" << msg.stop().reason() << "\"";
          if (engine != nullptr && reporter.joinable()) {
            engine->Stop(msg.stop().abort());
          } else if (!done_sent) {
            send_done("");
          }
          break;
        case v1::ControllerMessage::kReject:
          SLOG(kError) << "rejected reason=\"" << msg.reject().reason() << "\"";
          failed = true;
          if (!done_sent) send_done("rejected");
          break;
        default:
          break;
      }
    }
    if (reporter_done.load() && !done_sent) send_done("");
    if (closed) {
      if (!done_sent || !reporter_done.load()) {
        SLOG(kError) << "controller_gone stopping=true";
        failed = true;
        if (engine != nullptr) engine->Stop(/*abort=*/true);
      }
      break;
    }
    if (std::chrono::steady_clock::now() - last_heard > heartbeat_timeout) {
      SLOG(kError) << "controller_silent seconds=" << heartbeat_timeout.count() << " stopping=true";
      failed = true;
      if (engine != nullptr) engine->Stop(/*abort=*/true);
      context.TryCancel();
      break;
    }
    if (!done_sent && common::MonotonicNanos() - last_write_ns.load() >= 1'000'000'000) {
      v1::AgentMessage beat;
      beat.mutable_heartbeat()->set_unix_nanos(common::RealtimeNanos());
      write(beat);
    }
  }
  if (reporter.joinable()) reporter.join();
  if (!done_sent) context.TryCancel();
  reader.join();
  const grpc::Status status = stream->Finish();
  if (!status.ok() && !failed && status.error_code() != grpc::StatusCode::CANCELLED) {
    SLOG(kWarning) << "session_finished status=" << status.error_code() << " message=\"" << status.error_message() << "\"";
  }
  return failed ? 1 : 0;
}

}  // namespace stampede::agent
