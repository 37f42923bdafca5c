// `stampede serve`: a long-running controller with the LoadTest REST API, Prometheus /metrics and
// local agents (http_api.h has the routes).
#ifndef STAMPEDE_CONTROLLER_SERVE_COMMAND_H_
#define STAMPEDE_CONTROLLER_SERVE_COMMAND_H_

#include <string>
#include <vector>

namespace stampede::controller {

// Returns when SIGINT or SIGTERM arrived (0; active runs are aborted first) or on a startup error
// (2: bad flags, 3: cannot listen or no agent binary).
int ServeCommand(const std::vector<std::string>& args);

extern const char kServeUsage[];

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_SERVE_COMMAND_H_
