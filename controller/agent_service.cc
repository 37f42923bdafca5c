#include "controller/agent_service.h"

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>

#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "stampede/v1/agent.grpc.pb.h"

namespace stampede::controller {
namespace {

class SessionReactor;

// What a Run holds: survives the reactor, forwards to it while the stream lives.
class Connection : public AgentConnection {
 public:
  explicit Connection(SessionReactor* reactor) : reactor_(reactor) {}
  void Send(const v1::ControllerMessage& message) override;
  void Close() override;
  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = nullptr;
  }

 private:
  std::mutex mu_;
  SessionReactor* reactor_;
};

// One agent's stream. One read and one write in flight at a time; reactions never block. gRPC
// calls (StartWrite, Finish) are made outside mu_, since a reaction may run inline from them.
class SessionReactor : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage> {
 public:
  explicit SessionReactor(GrpcListener::FindRun find_run)
      : find_run_(std::move(find_run)), connection_(std::make_shared<Connection>(this)), arena_(ArenaOptions()) {
    in_ = google::protobuf::Arena::CreateMessage<v1::AgentMessage>(&arena_);
    StartRead(in_);
  }

  void Enqueue(const v1::ControllerMessage& message) {
    Step step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_) return;
      queue_.push_back(message);
      step = NextLocked();
    }
    Do(step);
  }

  void RequestClose() {
    Step step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      step = NextLocked();
    }
    Do(step);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent half-closed or the stream broke: either way it sends nothing more.
      if (run_ != nullptr) run_->OnStreamClosed(index_, connection_.get());
      RequestClose();
      return;
    }
    if (run_ == nullptr) {
      if (in_->body_case() != v1::AgentMessage::kHello) {
        Reject(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Hello");
        return;
      }
      std::shared_ptr<Run> run = find_run_(in_->hello().run());
      if (run == nullptr) {
        Reject(grpc::StatusCode::NOT_FOUND, absl::StrCat("no test with run id \"", in_->hello().run(), "\""));
        return;
      }
      index_ = in_->hello().index();
      std::string why;
      if (!run->OnHello(in_->hello(), connection_, &why)) {
        SLOG(kWarning) << "agent_rejected run=" << in_->hello().run() << " index=" << index_ << " why=\"" << why << "\"";
        Reject(grpc::StatusCode::PERMISSION_DENIED, why);
        return;
      }
      run_ = std::move(run);
    } else {
      run_->OnMessage(index_, *in_);
    }
    // Nothing keeps the message: start the next one on a clean arena.
    arena_.Reset();
    in_ = google::protobuf::Arena::CreateMessage<v1::AgentMessage>(&arena_);
    StartRead(in_);
  }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        queue_.clear();
        closing_ = true;
      }
      step = NextLocked();
    }
    Do(step);
  }

  void OnCancel() override {
    Step step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.clear();
      closing_ = true;
      step = NextLocked();
    }
    Do(step);
  }

  void OnDone() override {
    connection_->Detach();
    if (run_ != nullptr) run_->OnStreamClosed(index_, connection_.get());
    delete this;
  }

 private:
  enum class Step { kNothing, kWrite, kFinish };

  // What to do next, decided under mu_ and done after releasing it.
  Step NextLocked() {
    if (writing_ || finish_called_) return Step::kNothing;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      return Step::kWrite;
    }
    if (closing_) {
      finish_called_ = true;
      return Step::kFinish;
    }
    return Step::kNothing;
  }

  void Do(Step step) {
    if (step == Step::kWrite) StartWrite(&current_);
    if (step == Step::kFinish) Finish(grpc::Status::OK);
  }

  void Reject(grpc::StatusCode code, const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_) return;
      finish_called_ = true;
    }
    Finish(grpc::Status(code, why));
  }

  // Reports arrive every second from every agent: parsing each into an arena, reset after it is
  // merged, replaces a few hundred heap allocations and frees per report with a few blocks.
  static google::protobuf::ArenaOptions ArenaOptions() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 16 * 1024;
    options.max_block_size = 64 * 1024;
    return options;
  }

  const GrpcListener::FindRun find_run_;
  const std::shared_ptr<Connection> connection_;
  google::protobuf::Arena arena_;
  v1::AgentMessage* in_;  // on arena_; read reactions run one at a time
  // Set once by the read reactions, which gRPC runs one at a time.
  std::shared_ptr<Run> run_;
  uint32_t index_ = 0;

  std::mutex mu_;
  std::deque<v1::ControllerMessage> queue_;
  v1::ControllerMessage current_;  // the message being written; untouched while writing_
  bool writing_ = false;
  bool closing_ = false;
  bool finish_called_ = false;
};

void Connection::Send(const v1::ControllerMessage& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (reactor_ != nullptr) reactor_->Enqueue(message);
}

void Connection::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (reactor_ != nullptr) reactor_->RequestClose();
}

class Service final : public v1::AgentService::CallbackService {
 public:
  explicit Service(GrpcListener::FindRun find_run) : find_run_(std::move(find_run)) {}
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* Session(grpc::CallbackServerContext*) override {
    return new SessionReactor(find_run_);
  }

 private:
  GrpcListener::FindRun find_run_;
};

class Listener final : public GrpcListener {
 public:
  Listener(std::unique_ptr<Service> service, std::unique_ptr<grpc::Server> server, int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~Listener() override { Shutdown(); }
  int port() const override { return port_; }
  void Shutdown() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }

 private:
  std::unique_ptr<Service> service_;
  std::mutex mu_;
  std::unique_ptr<grpc::Server> server_;
  const int port_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcListener>> GrpcListener::Start(const std::string& address, FindRun find_run) {
  // Debian builds abseil without NDEBUG, which turns on absl::Mutex deadlock detection: a global
  // lock-order graph updated on gRPC's hot paths (a few % of the controller's CPU with 1000 agents).
  // Our own locks are std::mutex; gRPC's are tested upstream.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto service = std::make_unique<Service>(std::move(find_run));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service.get());
  // Reports are small; a generous limit still bounds what a misbehaving agent can make us hold.
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  // Notice dead peers (a killed agent on another node) even when the stream is idle.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for agents on ", address));
  }
  return std::unique_ptr<GrpcListener>(new Listener(std::move(service), std::move(server), port));
}

}  // namespace stampede::controller
