// Fakes for the run lifecycle's collaborators: a launcher that starts nothing and an agent
// connection that keeps what it was sent. For unit tests; thread-safe.
#ifndef STAMPEDE_TESTS_FAKES_FAKE_AGENTS_H_
#define STAMPEDE_TESTS_FAKES_FAKE_AGENTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/mutex.h"
#include "controller/agent_launcher.h"
#include "controller/run.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::testing {

// What a FakeLauncher saw; shared with the test, since the Run owns the launcher.
struct LauncherLog {
  common::Mutex mu;
  int launches ABSL_GUARDED_BY(mu) = 0;
  int stops ABSL_GUARDED_BY(mu) = 0;
  controller::LaunchRequest request ABSL_GUARDED_BY(mu);
  absl::Status answer ABSL_GUARDED_BY(mu);  // what Launch returns

  int Launches() {
    common::MutexLock lock(&mu);
    return launches;
  }
  int Stops() {
    common::MutexLock lock(&mu);
    return stops;
  }
};

class FakeLauncher final : public controller::AgentLauncher {
 public:
  explicit FakeLauncher(std::shared_ptr<LauncherLog> log) : log_(std::move(log)) {}
  absl::Status Launch(const controller::LaunchRequest& request) override {
    common::MutexLock lock(&log_->mu);
    ++log_->launches;
    log_->request = request;
    return log_->answer;
  }
  void Stop() override {
    common::MutexLock lock(&log_->mu);
    ++log_->stops;
  }
  std::string LogLocation(uint32_t index) const override {
    return "fake-log-" + std::to_string(index);
  }

 private:
  const std::shared_ptr<LauncherLog> log_;
};

class FakeConnection final : public controller::AgentConnection {
 public:
  void Send(const v1::ControllerMessage& message) override {
    common::MutexLock lock(&mu_);
    sent_.push_back(message);
  }
  void Close() override {
    common::MutexLock lock(&mu_);
    closed_ = true;
  }
  bool closed() const {
    common::MutexLock lock(&mu_);
    return closed_;
  }
  // The messages of one kind sent so far, oldest first.
  std::vector<v1::ControllerMessage> Sent(v1::ControllerMessage::BodyCase kind) const {
    common::MutexLock lock(&mu_);
    std::vector<v1::ControllerMessage> out;
    for (const v1::ControllerMessage& m : sent_) {
      if (m.body_case() == kind) out.push_back(m);
    }
    return out;
  }
  size_t Count(v1::ControllerMessage::BodyCase kind) const { return Sent(kind).size(); }

 private:
  mutable common::Mutex mu_;
  std::vector<v1::ControllerMessage> sent_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_FAKES_FAKE_AGENTS_H_
