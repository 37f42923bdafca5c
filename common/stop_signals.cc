#include "common/stop_signals.h"

#include <signal.h>

#include <thread>

namespace stampede::common {
namespace {

sigset_t StopSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForStopSignal() {
  const sigset_t set = StopSet();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

void WatchStopSignals(std::function<void(int signal, int count)> on_signal) {
  std::thread([on_signal = std::move(on_signal)] {
    for (int count = 1;; ++count) on_signal(WaitForStopSignal(), count);
  }).detach();
}

}  // namespace stampede::common
