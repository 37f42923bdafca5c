#include "controller/grpc_listener.h"

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "stampede/v1/agent.grpc.pb.h"

namespace stampede::controller {
namespace {

// gRPC's asynchronous (completion-queue) API with one thread that polls the queue and runs every
// reaction. With 1000 agents each sending a report a second, the callback API's hand-offs between
// its polling and callback threads cost more CPU than the reports themselves; here the thread that
// reads the bytes off the socket also merges the report.

class AgentStream;

// The listener's count of live sessions, and whether they may still ask for the next call.
// Nothing may be started on the queue once it is shut down, so Shutdown first stops accepting,
// then waits until every session has seen its call end and deleted itself, and only then shuts
// the queue down.
struct StreamRegistry {
  common::Mutex mu;
  common::CondVar cv;
  bool open ABSL_GUARDED_BY(mu) = true;
  int live ABSL_GUARDED_BY(mu) = 0;
  size_t max_queued = kMaxQueuedMessages;  // per stream; set before the first stream
  std::atomic<uint64_t> overflows{0};      // streams cut off for a full queue
};

// What a completion on the queue means. Tags live inside their AgentStream.
struct Tag {
  enum Kind { kAccept, kRead, kWrite, kFinish, kDone };
  AgentStream* stream;
  Kind kind;
};

// What a Run holds: outlives the AgentStream, forwards to it while the stream lives.
class Connection : public AgentConnection {
 public:
  explicit Connection(AgentStream* stream) : stream_(stream) {}
  void Send(const v1::ControllerMessage& message) override;
  void Close() override;
  void Detach() {
    common::MutexLock lock(&mu_);
    stream_ = nullptr;
  }

 private:
  common::Mutex mu_;
  AgentStream* stream_ ABSL_GUARDED_BY(mu_);
};

// One agent's stream. Reads are started and completed on the queue's thread only; writes may be
// started from any thread (under mu_), one in flight at a time, and Finish only when none is. The
// stream deletes itself on the queue's thread once the call is done and no operation it started
// is still outstanding.
class AgentStream {
 public:
  AgentStream(v1::AgentService::AsyncService* service, grpc::ServerCompletionQueue* cq,
              StreamRegistry* gate, GrpcListener::FindRun find_run)
      : service_(service),
        cq_(cq),
        gate_(gate),
        find_run_(std::move(find_run)),
        connection_(std::make_shared<Connection>(this)),
        arena_(ArenaOptions()) {
    {
      common::MutexLock lock(&gate_->mu);
      ++gate_->live;
    }
    context_.AsyncNotifyWhenDone(&done_tag_);
    service_->RequestSession(&context_, &stream_, cq_, cq_, &accept_tag_);
  }

  // Runs on the queue's thread for every completion of this session's operations.
  void Proceed(Tag::Kind kind, bool ok) {
    switch (kind) {
      case Tag::kAccept:
        if (!ok) {
          // The server is shutting down before a call came: the done tag never comes.
          delete this;
          return;
        }
        {
          // Keep one session waiting for the next agent. This one stays live meanwhile, so a
          // Shutdown that closed the gate just now still waits for the new one.
          bool open;
          {
            common::MutexLock lock(&gate_->mu);
            open = gate_->open;
          }
          if (open) new AgentStream(service_, cq_, gate_, find_run_);
        }
        StartRead();
        return;
      case Tag::kRead:
        reading_ = false;
        OnRead(ok);
        break;
      case Tag::kWrite:
        OnWriteDone(ok);
        break;
      case Tag::kFinish: {
        common::MutexLock lock(&mu_);
        finish_pending_ = false;
        break;
      }
      case Tag::kDone:
        done_ = true;
        // No other thread may start anything from here on, and nothing queued is worth sending.
        connection_->Detach();
        {
          common::MutexLock lock(&mu_);
          queue_.clear();
        }
        if (run_ != nullptr && !closed_reported_) {
          closed_reported_ = true;
          run_->OnStreamClosed(index_, connection_.get());
        }
        RequestClose();
        break;
    }
    MaybeDelete();
  }

  ~AgentStream() {
    common::MutexLock lock(&gate_->mu);
    if (--gate_->live == 0) gate_->cv.SignalAll();
  }

  void Enqueue(const v1::ControllerMessage& message) {
    common::MutexLock lock(&mu_);
    if (finish_called_ || closing_) return;
    if (queue_.size() >= gate_->max_queued) {
      // The agent has stopped reading (stuck, or cut off without the connection breaking): what
      // is queued would only grow. Cut it off; it is a lost agent, and with a reconnect window it
      // may dial again and resume.
      ++gate_->overflows;
      SLOG(kWarning) << "agent_send_queue_full queued=" << queue_.size() << " action=cancel";
      queue_.clear();
      closing_ = true;
      context_.TryCancel();
      return;
    }
    queue_.push_back(message);
    NextLocked();
  }

  void RequestClose() {
    common::MutexLock lock(&mu_);
    closing_ = true;
    NextLocked();
  }

 private:
  void StartRead() {
    reading_ = true;
    stream_.Read(in_, &read_tag_);
  }

  void OnRead(bool ok) {
    if (!ok) {
      // The agent half-closed or the stream broke: either way it sends nothing more.
      if (run_ != nullptr && !closed_reported_) {
        closed_reported_ = true;
        run_->OnStreamClosed(index_, connection_.get());
      }
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
        // A restarted operator answers this until it has read its tests back; say so in its log.
        SLOG(kWarning) << "agent_rejected run=" << in_->hello().run()
                       << " index=" << in_->hello().index() << " why=\"unknown run\"";
        Reject(grpc::StatusCode::NOT_FOUND,
               absl::StrCat("no test with run id \"", in_->hello().run(), "\""));
        return;
      }
      index_ = in_->hello().index();
      std::string why;
      if (!run->OnHello(in_->hello(), connection_, &why)) {
        SLOG(kWarning) << "agent_rejected run=" << in_->hello().run() << " index=" << index_
                       << " why=\"" << why << "\"";
        Reject(grpc::StatusCode::PERMISSION_DENIED, why);
        return;
      }
      run_ = std::move(run);
    } else {
      run_->OnMessage(index_, *in_);
    }
    // Nothing keeps the message: read the next one into a clean arena.
    arena_.Reset();
    in_ = google::protobuf::Arena::CreateMessage<v1::AgentMessage>(&arena_);
    StartRead();
  }

  void OnWriteDone(bool ok) {
    common::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      closing_ = true;
    }
    NextLocked();
  }

  void Reject(grpc::StatusCode code, const std::string& why) {
    common::MutexLock lock(&mu_);
    if (finish_called_) return;
    queue_.clear();
    closing_ = true;
    reject_ = grpc::Status(code, why);
    NextLocked();
  }

  // Starts the next write, or Finish once the queue is drained and the stream is closing. A
  // started operation never completes inline, so holding mu_ here cannot re-enter.
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finish_called_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      stream_.Write(current_, &write_tag_);
      return;
    }
    if (closing_) {
      finish_called_ = true;
      finish_pending_ = true;
      stream_.Finish(reject_, &finish_tag_);
    }
  }

  void MaybeDelete() {
    if (!done_ || reading_) return;
    {
      common::MutexLock lock(&mu_);
      if (writing_ || finish_pending_) return;
    }
    delete this;
  }

  // Reports arrive every second from every agent: parsing each into an arena, reset after it is
  // merged, replaces a few hundred heap allocations and frees per report with a few blocks.
  static google::protobuf::ArenaOptions ArenaOptions() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 16 * 1024;
    options.max_block_size = 64 * 1024;
    return options;
  }

  v1::AgentService::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  StreamRegistry* const gate_;
  const GrpcListener::FindRun find_run_;
  const std::shared_ptr<Connection> connection_;
  Tag accept_tag_{this, Tag::kAccept};
  Tag read_tag_{this, Tag::kRead};
  Tag write_tag_{this, Tag::kWrite};
  Tag finish_tag_{this, Tag::kFinish};
  Tag done_tag_{this, Tag::kDone};
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::ControllerMessage, v1::AgentMessage> stream_{&context_};
  google::protobuf::Arena arena_;

  // Touched on the queue's thread only.
  v1::AgentMessage* in_ = google::protobuf::Arena::CreateMessage<v1::AgentMessage>(&arena_);
  std::shared_ptr<Run> run_;
  uint32_t index_ = 0;
  bool reading_ = false;
  bool done_ = false;
  bool closed_reported_ = false;

  common::Mutex mu_;
  std::deque<v1::ControllerMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::ControllerMessage current_
      ABSL_GUARDED_BY(mu_);                   // the message being written; untouched while writing_
  grpc::Status reject_ ABSL_GUARDED_BY(mu_);  // how Finish ends the stream: OK unless rejected
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
};

void Connection::Send(const v1::ControllerMessage& message) {
  common::MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->Enqueue(message);
}

void Connection::Close() {
  common::MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->RequestClose();
}

class Listener final : public GrpcListener {
 public:
  Listener(std::unique_ptr<v1::AgentService::AsyncService> service,
           std::unique_ptr<grpc::ServerCompletionQueue> cq, std::unique_ptr<grpc::Server> server,
           int port, GrpcListener::FindRun find_run, size_t max_queued)
      : service_(std::move(service)), cq_(std::move(cq)), server_(std::move(server)), port_(port) {
    gate_.max_queued = std::max<size_t>(1, max_queued);
    new AgentStream(service_.get(), cq_.get(), &gate_, std::move(find_run));
    poller_ = std::thread([this] { Poll(); });
  }
  ~Listener() override { Shutdown(); }
  int port() const override { return port_; }
  uint64_t send_overflows() const override { return gate_.overflows.load(); }
  void Shutdown() override {
    common::MutexLock lock(&mu_);
    if (server_ == nullptr) return;
    // Open calls are cancelled after the deadline; each session then sees its call end on the
    // queue (the poller keeps running) and deletes itself.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    {
      common::MutexLock gate_lock(&gate_.mu);
      gate_.open = false;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (gate_.live != 0 && gate_.cv.WaitUntil(&gate_.mu, deadline)) {
      }
      if (gate_.live != 0) {
        SLOG(kError) << "grpc_shutdown sessions_still_open=" << gate_.live;
      }
    }
    cq_->Shutdown();
    poller_.join();
    server_.reset();
  }

 private:
  void Poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) {
      Tag* t = static_cast<Tag*>(tag);
      t->stream->Proceed(t->kind, ok);
    }
  }

  std::unique_ptr<v1::AgentService::AsyncService> service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  StreamRegistry gate_;
  common::Mutex mu_;
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(mu_);
  const int port_;
  std::thread poller_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcListener>> GrpcListener::Start(const std::string& address,
                                                                  FindRun find_run,
                                                                  const ListenerTls& tls,
                                                                  size_t max_queued) {
  // Debian builds abseil without NDEBUG, which turns on absl::Mutex deadlock detection: a global
  // lock-order graph updated on gRPC's hot paths (a few % of the controller's CPU with 1000
  // agents). Our own locks are common::Mutex (std::mutex underneath); gRPC's are tested upstream.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto service = std::make_unique<v1::AgentService::AsyncService>();
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!tls.key_file.empty()) {
    auto files = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.refresh_s);
    grpc::experimental::TlsServerCredentialsOptions options(files);
    options.watch_identity_key_cert_pairs();
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    credentials = grpc::experimental::TlsServerCredentials(options);
  }
  builder.AddListeningPort(address, credentials, &port);
  builder.RegisterService(service.get());
  // Reports are small; a generous limit still bounds what a misbehaving agent can make us hold.
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  // Notice dead peers (a killed agent on another node) even when the stream is idle.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for agents on ", address));
  }
  return std::unique_ptr<GrpcListener>(new Listener(
      std::move(service), std::move(cq), std::move(server), port, std::move(find_run), max_queued));
}

}  // namespace stampede::controller
