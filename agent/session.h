// `stampede-agent connect`: one agent's session with the controller. Dials the controller, says
// hello, takes its assignment, starts at the broadcast time, streams a report every second, and
// says done. Stops on its own when the controller goes away or stays silent past the heartbeat
// timeout, unless a reconnect window is set: then it keeps the load running, redials for up to
// that long, and gives the controller it reaches every report since the start (a restarted
// operator rebuilds the test's results from them). Those reports are kept, serialized, only with a
// reconnect window, within --replay-log-max bytes: past that the oldest are folded into one.
#ifndef STAMPEDE_AGENT_SESSION_H_
#define STAMPEDE_AGENT_SESSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/uring.h"
#include "common/clock.h"
#include "common/flags.h"

namespace stampede::agent {

struct SessionOptions {
  std::string controller;  // host:port of the controller's gRPC listener
  std::string run;         // the test's run id
  std::string token;       // the test's secret
  // The CA certificates (PEM) the controller's certificate must chain to, for its name or address
  // in `controller`; empty: plaintext (loopback modes).
  std::string ca_pem;
  std::string ca_file;  // --ca-file: read into ca_pem by ParseConnectFlags
  uint32_t index = 0;
  uint32_t threads = 0;       // 0: one per core
  IoMode io = IoMode::kAuto;  // the engine's I/O backend (kAuto also reads STAMPEDE_IO)
  int connect_timeout_s = 30;
  int reconnect_s = 0;  // how long to redial a lost controller; 0: stop at once
  // With reconnect_s: the reports kept for a replay may take this many bytes; past it the oldest
  // are folded into one (exact totals, no per-second detail for those seconds).
  int64_t replay_log_max_bytes = 64 << 20;
  // What the session's decisions read (heartbeats, silence, the reconnect window). The engine
  // keeps to the machine's clocks: its start is set on CLOCK_MONOTONIC.
  const common::Clock* clock = &common::SystemClock();
  bool help = false;  // -h/--help: print ConnectUsage(), nothing else
};

// Flags, with environment fallbacks STAMPEDE_CONTROLLER, STAMPEDE_RUN, STAMPEDE_TOKEN,
// STAMPEDE_CA, STAMPEDE_CA_FILE, STAMPEDE_AGENT_INDEX, STAMPEDE_THREADS,
// STAMPEDE_RECONNECT_SECONDS (a flag on the command line
// wins). InvalidArgument "FLAG: why" names the missing or bad one, and the variable when the bad
// value came from it. The first form reads the process environment.
absl::StatusOr<SessionOptions> ParseConnectFlags(const std::vector<std::string>& args);
absl::StatusOr<SessionOptions> ParseConnectFlags(const std::vector<std::string>& args,
                                                 const common::FlagSet::EnvLookup& env);

// Runs the session to its end. Exit code: 0 when the agent finished its share (or was stopped by
// the controller), 1 when the session failed (controller unreachable, gone, silent, or rejected
// us, or the engine could not start, or a TLS controller's certificate did not verify: then the
// last line on stderr says why, for the Pod's termination message).
int RunSession(const SessionOptions& options);

std::string ConnectUsage();

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_SESSION_H_
