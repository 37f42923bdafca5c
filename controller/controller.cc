#include "controller/controller.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "controller/grpc_listener.h"

namespace stampede::controller {

std::string RandomToken(size_t bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string raw(bytes, '\0');
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  size_t got = 0;
  while (fd >= 0 && got < bytes) {
    const ssize_t n = read(fd, raw.data() + got, bytes - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (fd >= 0) close(fd);
  if (got < bytes) {
    SLOG(kError) << "urandom_failed";  // no weak fallback: a predictable token is worse
    std::abort();
  }
  std::string out;
  for (unsigned char c : raw) out.push_back(kAlphabet[c & 63]);
  return out;
}

std::string Controller::AgentAddress(const ControllerOptions& options, int port) {
  if (!options.advertise_address.empty()) return options.advertise_address;
  const std::string host = options.grpc_listen.substr(0, options.grpc_listen.rfind(':'));
  return absl::StrCat(host == "0.0.0.0" || host == "[::]" ? "127.0.0.1" : host, ":", port);
}

uint64_t Controller::agent_send_overflows() const { return listener_->send_overflows(); }

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(ControllerOptions options) {
  std::unique_ptr<Controller> c(new Controller());
  Controller* self = c.get();
  auto listener = GrpcListener::Start(
      options.grpc_listen, [self](const std::string& id) { return self->FindRun(id); }, options.tls,
      options.max_queued_messages);
  if (!listener.ok()) return listener.status();
  c->listener_ = std::move(*listener);
  c->grpc_port_ = c->listener_->port();
  c->listen_address_ = absl::StrCat(options.grpc_listen.substr(0, options.grpc_listen.rfind(':')),
                                    ":", c->grpc_port_);
  c->agent_address_ = AgentAddress(options, c->grpc_port_);
  c->run_defaults_ = options.run_defaults;
  c->run_defaults_.controller_address = c->agent_address_;
  c->abort_runs_on_shutdown_ = options.abort_runs_on_shutdown;
  c->ended_metrics_ttl_ns_ = std::chrono::nanoseconds(options.ended_metrics_ttl).count();
  if (c->run_defaults_.clock != nullptr) c->clock_ = c->run_defaults_.clock;
  c->ticker_ = std::thread([self] { self->TickLoop(); });
  return c;
}

Controller::~Controller() {
  stopping_.store(true);
  if (ticker_.joinable()) ticker_.join();
  // Runs still going are aborted so their agents stop rather than wait for the heartbeat timeout.
  if (abort_runs_on_shutdown_) {
    for (const auto& run : Runs()) run->Abort("controller shutting down");
  }
  if (listener_ != nullptr) listener_->Shutdown();
}

std::shared_ptr<Run> Controller::StartRun(v1::LoadTest test,
                                          std::unique_ptr<AgentLauncher> launcher,
                                          std::shared_ptr<const common::TestData> data,
                                          std::shared_ptr<const v1::TargetRules> target_rules) {
  std::string id;
  {
    common::MutexLock lock(&mu_);
    id = absl::StrCat(test.metadata().namespace_(), "-", test.metadata().name(), "-", ++next_run_,
                      "-", RandomToken(6));
  }
  RunOptions options = run_defaults_;
  options.data = std::move(data);
  options.target_rules = std::move(target_rules);
  return StartRun(std::move(test), std::move(launcher), id, RandomToken(), options);
}

std::shared_ptr<Run> Controller::StartRun(v1::LoadTest test,
                                          std::unique_ptr<AgentLauncher> launcher,
                                          const std::string& id, const std::string& token,
                                          const RunOptions& options) {
  RunOptions o = options;
  o.controller_address = agent_address_;
  std::shared_ptr<Run> run;
  {
    common::MutexLock lock(&mu_);
    if (auto it = runs_.find(id); it != runs_.end()) return it->second;
    run = std::make_shared<Run>(id, std::move(test), token, std::move(launcher), o);
    runs_[id] = run;
  }
  run->Start();
  return run;
}

void Controller::RemoveRun(const std::string& id) {
  std::shared_ptr<Run> run;
  {
    common::MutexLock lock(&mu_);
    auto it = runs_.find(id);
    if (it == runs_.end()) return;
    run = it->second;
    runs_.erase(it);
  }
  run->Abort("the test was removed");
  // One still winding down (agents yet to answer the stop) would show a phase it no longer has.
  if (ended_metrics_ttl_ns_ > 0 && IsTerminal(run->phase())) {
    common::MutexLock lock(&mu_);
    ended_.push_back({clock_->MonotonicNanos() + ended_metrics_ttl_ns_, std::move(run)});
  }
}

std::shared_ptr<Run> Controller::FindRun(const std::string& id) const {
  common::MutexLock lock(&mu_);
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Run>> Controller::Runs() const {
  common::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Run>> out;
  for (const auto& [id, run] : runs_) out.push_back(run);
  return out;
}

std::vector<std::shared_ptr<Run>> Controller::RunsForMetrics() const {
  const int64_t now = clock_->MonotonicNanos();
  common::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Run>> out;
  for (const Ended& e : ended_) {
    if (e.until_ns > now) out.push_back(e.run);
  }
  for (const auto& [id, run] : runs_) out.push_back(run);
  return out;
}

void Controller::TickLoop() {
  while (!stopping_.load()) {
    for (const auto& run : Runs()) run->Tick();
    std::vector<std::shared_ptr<Run>> expired;  // destroyed outside the lock
    {
      common::MutexLock lock(&mu_);
      const int64_t now = clock_->MonotonicNanos();
      while (!ended_.empty() && ended_.front().until_ns <= now) {
        expired.push_back(std::move(ended_.front().run));
        ended_.pop_front();
      }
    }
    // The ticker is the run's clock: 100 ms bounds how late a finished interval or a lost agent
    // is noticed.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace stampede::controller
