// `stampede serve`: a long-running controller with the LoadTest REST API, Prometheus /metrics and
// local agents (http_api.h has the routes).
#ifndef STAMPEDE_CONTROLLER_SERVE_COMMAND_H_
#define STAMPEDE_CONTROLLER_SERVE_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace stampede::controller {

struct ServeCommandOptions {
  std::string listen = "127.0.0.1:8080";       // the REST API and /metrics; port 0: any free one
  std::string grpc_listen = "127.0.0.1:9090";  // where agents connect; port 0: any free one
  std::string advertise;                       // the address agents dial; empty: grpc_listen's
  std::string logs;       // agent logs go to logs/<run id>/; empty: a new folder under /tmp
  int max_runs = 4;       // LoadTests running at once; more get 429
  int keep_runs = 100;    // finished LoadTests kept; beyond, a POST forgets the oldest
  std::string port_file;  // once serving, the HTTP port is written here; empty: nowhere
  // The bearer token the API asks for: from token_file (its first line), else token (also
  // $STAMPEDE_API_TOKEN), else a random one printed at the start. At least 16 characters.
  std::string token;
  std::string token_file;
  bool public_metrics = false;  // /metrics without the token (for a Prometheus scrape)
  // A LoadTestPolicy file (common/policy.h); empty: loopback targets only.
  std::string policy_file;
  bool help = false;  // -h/--help: print ServeUsage(), nothing else
};

// Parses the arguments after "serve". InvalidArgument "FLAG: why" names the flag that is wrong.
absl::StatusOr<ServeCommandOptions> ParseServeFlags(const std::vector<std::string>& args);

// Returns when SIGINT or SIGTERM arrived (0; active runs are aborted first) or on a startup error
// (2: bad flags, 3: cannot listen or no agent binary).
int ServeCommand(const std::vector<std::string>& args);

std::string ServeUsage();

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_SERVE_COMMAND_H_
