#include "controller/serve_command.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/local_launcher.h"
#include "controller/results.h"
#include "controller/run_command.h"

namespace stampede::controller {
namespace {

common::FlagSet ServeFlags(ServeCommandOptions* o) {
  common::FlagSet flags("stampede serve", &o->help);
  flags.Description(
      "Runs LoadTests posted to a REST API on local agent processes and exports live Prometheus "
      "metrics.");
  flags.HostPort("--listen", "ADDR",
                 "HTTP: /api/v1/loadtests, /metrics, /healthz, /readyz (default 127.0.0.1:8080; "
                 "port 0: any free port)",
                 &o->listen);
  flags.HostPort("--grpc-listen", "ADDR",
                 "where agents connect (default 127.0.0.1:9090; port 0: any free port)",
                 &o->grpc_listen);
  flags.HostPort("--advertise", "ADDR",
                 "the address agents dial (default: the gRPC listen address)", &o->advertise);
  flags.String("--logs", "DIR", "agent logs go to DIR/<run id>/ (default: a new folder under /tmp)",
               &o->logs);
  flags.Count("--max-runs", "N", "at most N LoadTests running at once; more get 429 (default 4)",
              &o->max_runs, 1);
  flags.Count("--keep-runs", "N",
              "finished LoadTests kept for GET and results; the oldest beyond N are forgotten when "
              "a new one is posted (default 100)",
              &o->keep_runs, 0);
  flags.String("--port-file", "FILE", "once serving, write the HTTP port to FILE", &o->port_file);
  flags.Group("access");
  flags.String(
      "--token-file", "FILE",
      "the bearer token every route but /healthz and /readyz needs, from the first line of "
      "FILE (at least 16 characters)",
      &o->token_file);
  flags
      .String("--token", "TOKEN",
              "the same token given directly (others can read it in ps; prefer --token-file or "
              "$STAMPEDE_API_TOKEN). With neither, a random token is printed at the start",
              &o->token)
      .Env("STAMPEDE_API_TOKEN");
  flags.Bool("--public-metrics", "serve /metrics without the token", &o->public_metrics);
  flags.String("--policy", "FILE",
               "a LoadTestPolicy: who may aim load where, and how much (default: loopback targets "
               "only)",
               &o->policy_file);
  flags.Footer("SIGINT/SIGTERM abort the running tests, then the server exits 0.");
  return flags;
}

int UsageError(const absl::Status& status) {
  std::cerr << "stampede serve: " << status.message() << "\n\n" << ServeUsage();
  return kExitInvalid;
}

// --logs, created if need be, or a new folder under /tmp.
absl::StatusOr<std::string> LogsRoot(const std::string& logs) {
  if (logs.empty()) {
    char tmpl[] = "/tmp/stampede-serve-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::UnavailableError("cannot create a log folder under /tmp");
    }
    return std::string(tmpl);
  }
  if (mkdir(logs.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("--logs: cannot create ", logs, ": ", std::strerror(errno)));
  }
  return logs;
}

struct Server {
  std::string logs;
  ControllerOptions controller_options;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<HttpApi> api;
};

constexpr size_t kMinTokenLength = 16;

// The API's token: --token-file's first line, --token, or a new random one (printed).
absl::StatusOr<std::string> ApiToken(const ServeCommandOptions& options) {
  if (!options.token_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, common::ReadSmallFile(options.token_file, 4096));
    std::string token = text.substr(0, text.find('\n'));
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
      token.pop_back();
    if (token.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file: the token in ",
                                                     options.token_file, " is shorter than ",
                                                     kMinTokenLength, " characters"));
    }
    return token;
  }
  if (!options.token.empty()) {
    if (options.token.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token: shorter than ", kMinTokenLength, " characters"));
    }
    return options.token;
  }
  const std::string token = RandomToken(24);
  std::cerr << "stampede serve: API token (send \"Authorization: Bearer TOKEN\"; fix one with "
               "--token-file):\n  "
            << token << "\n";
  return token;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Everything the server needs: InvalidArgument for a policy file or token that is wrong (exit 2);
// any other failure is a run error (exit 3): the agent binary, the log folder, the two
// listeners, the port file.
absl::StatusOr<Server> Start(const ServeCommandOptions& options) {
  Server server;
  const std::string agent_binary = FindAgentBinary();
  if (agent_binary.empty()) {
    return absl::FailedPreconditionError("cannot find stampede-agent (set STAMPEDE_AGENT_BINARY)");
  }
  ASSIGN_OR_RETURN(server.logs, LogsRoot(options.logs));
  server.controller_options.grpc_listen = options.grpc_listen;
  server.controller_options.advertise_address = options.advertise;
  absl::StatusOr<std::unique_ptr<Controller>> controller =
      Controller::Create(server.controller_options);
  if (!controller.ok()) {
    return absl::Status(controller.status().code(),
                        absl::StrCat("agents' gRPC listener: ", controller.status().message()));
  }
  server.controller = std::move(*controller);

  HttpApiOptions http;
  http.listen = options.listen;
  http.loadtest_api = true;
  if (options.policy_file.empty()) {
    http.policy = std::make_shared<const common::Policy>(common::Policy::LoopbackOnly());
  } else {
    absl::StatusOr<common::Policy> policy = common::Policy::FromFile(options.policy_file);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--policy: ", policy.status().message()));
    }
    http.policy = std::make_shared<const common::Policy>(*std::move(policy));
  }
  http.refusals = std::make_shared<PolicyRefusals>();
  ASSIGN_OR_RETURN(http.token, ApiToken(options));
  http.public_metrics = options.public_metrics;
  for (const auto& [flag, address] :
       {std::pair<const char*, std::string>{"--listen", options.listen},
        {"--grpc-listen", options.grpc_listen}}) {
    const std::string host = common::SplitHostPort(address)->first;
    if (!IsLoopbackHost(host)) {
      std::cerr << "stampede serve: WARNING: " << flag << " " << address
                << " listens beyond this machine: anyone who can reach it and has the token can "
                   "start load tests from here\n";
      SLOG(kWarning) << "listening_beyond_loopback flag=" << flag << " address=" << address;
    }
  }
  http.max_active_runs = options.max_runs;
  http.max_finished_runs = options.keep_runs;
  http.make_launcher = [agent_binary, logs = server.logs] {
    return std::make_unique<PerRunLocalLauncher>(agent_binary, logs);
  };
  ASSIGN_OR_RETURN(server.api, HttpApi::Start(http, server.controller.get()));
  if (!options.port_file.empty()) {
    absl::StatusOr<common::OutputFile> file = common::OutputFile::Prepare(options.port_file);
    absl::Status s =
        file.ok() ? file->Write(absl::StrCat(server.api->port(), "\n")) : file.status();
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("--port-file: ", s.message()));
  }
  SLOG(kInfo) << "serving http_port=" << server.api->port()
              << " grpc_listen=" << server.controller->listen_address()
              << " agents_dial=" << server.controller->agent_address() << " logs=" << server.logs
              << " max_runs=" << options.max_runs << " policy=\""
              << (options.policy_file.empty() ? "loopback only" : options.policy_file) << "\" "
              << http.policy->Describe();
  return server;
}

// Aborts the active runs and waits until they settle, once their agents confirm (bounded by the
// run's stop timeout); a second signal skips the wait. Then stops the API and the controller.
void ShutDown(Server* server, int sig) {
  const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  SLOG(kInfo) << "shutdown signal=" << name;
  const std::vector<std::shared_ptr<Run>> active =
      server->api->BeginShutdown(absl::StrCat("controller shutting down (", name, ")"));
  sigset_t signals;  // for the non-blocking check of a second signal
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::seconds(server->controller_options.run_defaults.stop_timeout_s + 2);
  bool hurry = false;
  for (const std::shared_ptr<Run>& run : active) {
    while (!hurry && !run->WaitDone(100)) {
      const timespec zero{0, 0};
      hurry = std::chrono::steady_clock::now() >= deadline ||
              sigtimedwait(&signals, nullptr, &zero) > 0;
    }
  }
  server->api->Stop();
  server->api.reset();
  server->controller.reset();  // aborts whatever is left and stops the agents
  SLOG(kInfo) << "stopped";
}

}  // namespace

absl::StatusOr<ServeCommandOptions> ParseServeFlags(const std::vector<std::string>& args) {
  ServeCommandOptions options;
  RETURN_IF_ERROR(ServeFlags(&options).Parse(args));
  return options;
}

std::string ServeUsage() {
  ServeCommandOptions unused;
  return ServeFlags(&unused).Usage();
}

int ServeCommand(const std::vector<std::string>& args) {
  absl::StatusOr<ServeCommandOptions> options = ParseServeFlags(args);
  if (!options.ok()) return UsageError(options.status());
  if (options->help) {
    std::cout << ServeUsage();
    return kExitPassed;
  }
  // Before any thread exists, so every thread inherits the mask and only sigwait sees them.
  common::BlockStopSignals();
  absl::StatusOr<Server> server = Start(*options);
  if (!server.ok()) {
    std::cerr << "stampede serve: " << server.status().message() << "\n";
    // A policy file or token that is wrong is the user's to fix, like a bad flag.
    return server.status().code() == absl::StatusCode::kInvalidArgument ? kExitInvalid
                                                                        : kExitRunError;
  }
  ShutDown(&*server, common::WaitForStopSignal());
  return kExitPassed;
}

}  // namespace stampede::controller
