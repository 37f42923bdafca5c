// The gRPC listener for agent sessions (AgentService.Session): the asynchronous API, one session
// object per stream, every completion handled on one polling thread.
// Only this translation unit includes grpcpp.
#ifndef STAMPEDE_CONTROLLER_GRPC_LISTENER_H_
#define STAMPEDE_CONTROLLER_GRPC_LISTENER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/run.h"

namespace stampede::controller {

// TLS for the agents' channel: the serving key and certificate, as files gRPC reads again every
// `refresh_s` seconds (so a renewed certificate is served without a restart). Agents are not
// asked for certificates: they prove themselves with the test's token, which TLS now hides.
struct ListenerTls {
  std::string key_file;  // empty: plaintext
  std::string cert_file;
  unsigned refresh_s = 5;
};

// What the controller may queue for one agent beyond the message being written: a handful is all a
// session ever has in flight (an assignment, a start, a stop, heartbeats). An agent that leaves
// this many unread has stopped reading; its stream is cancelled (a lost agent) and counted.
inline constexpr size_t kMaxQueuedMessages = 64;

class GrpcListener {
 public:
  using FindRun = std::function<std::shared_ptr<Run>(const std::string& run_id)>;

  // Listens on `address` (host:port; port 0: any free port).
  static absl::StatusOr<std::unique_ptr<GrpcListener>> Start(
      const std::string& address, FindRun find_run, const ListenerTls& tls = {},
      size_t max_queued = kMaxQueuedMessages);
  virtual ~GrpcListener() = default;
  virtual int port() const = 0;
  // Agent streams cancelled because their send queue was full.
  virtual uint64_t send_overflows() const = 0;
  // Cancels open sessions and stops; waits for the handlers to finish.
  virtual void Shutdown() = 0;
};

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_GRPC_LISTENER_H_
