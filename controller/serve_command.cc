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
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/local_launcher.h"
#include "controller/results.h"
#include "controller/run_command.h"

namespace stampede::controller {

const char kServeUsage[] =
    "usage: stampede serve [--listen 127.0.0.1:8080] [--grpc-listen 127.0.0.1:9090] [--advertise "
    "HOST:PORT]\n"
    "                      [--logs DIR] [--max-runs N] [--keep-runs N] [--port-file FILE]\n"
    "  Runs LoadTests posted to a REST API on local agent processes and exports live Prometheus "
    "metrics.\n"
    "  --listen ADDR       HTTP: /api/v1/loadtests, /metrics, /healthz, /readyz (port 0: any free "
    "port)\n"
    "  --grpc-listen ADDR  where agents connect (port 0: any free port)\n"
    "  --advertise ADDR    the address agents dial (default: the gRPC listen address)\n"
    "  --logs DIR          agent logs go to DIR/<run id>/ (default: a new folder under /tmp)\n"
    "  --max-runs N        at most N LoadTests running at once; more get 429 (default 4)\n"
    "  --keep-runs N       finished LoadTests kept for GET and results; the oldest beyond N are\n"
    "                      forgotten when a new one is posted (default 100)\n"
    "  --port-file FILE    once serving, write the HTTP port to FILE\n"
    "  SIGINT/SIGTERM abort the running tests, then the server exits 0.\n";

namespace {

int Usage(const std::string& problem) {
  std::cerr << "stampede serve: " << problem << "\n\n" << kServeUsage;
  return kExitInvalid;
}

}  // namespace

int ServeCommand(const std::vector<std::string>& args) {
  HttpApiOptions http;
  http.listen = "127.0.0.1:8080";
  http.loadtest_api = true;
  ControllerOptions controller_options;
  controller_options.grpc_listen = "127.0.0.1:9090";
  std::string logs, port_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string v;
    auto value = [&](std::string* into) {
      if (i + 1 >= args.size()) return false;
      *into = args[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      std::cout << kServeUsage;
      return kExitPassed;
    }
    const bool takes_value = a == "--listen" || a == "--grpc-listen" || a == "--advertise" ||
                             a == "--logs" || a == "--max-runs" || a == "--keep-runs" || a == "--port-file";
    if (!takes_value)
      return Usage(absl::StrCat(a, ": unknown ", !a.empty() && a[0] == '-' ? "flag" : "argument"));
    if (!value(&v)) return Usage(absl::StrCat(a, ": needs a value"));
    if (a == "--listen" || a == "--grpc-listen" || a == "--advertise") {
      if (!common::SplitHostPort(v).ok()) return Usage(absl::StrCat(a, ": \"", v, "\" is not host:port"));
    }
    if (a == "--listen") http.listen = v;
    if (a == "--grpc-listen") controller_options.grpc_listen = v;
    if (a == "--advertise") controller_options.advertise_address = v;
    if (a == "--logs") logs = v;
    if (a == "--port-file") port_file = v;
    if (a == "--max-runs" &&
        (!absl::SimpleAtoi(v, &http.max_active_runs) || http.max_active_runs < 1)) {
      return Usage(absl::StrCat("--max-runs: \"", v, "\" is not a count >= 1"));
    }
    if (a == "--keep-runs" &&
        (!absl::SimpleAtoi(v, &http.max_finished_runs) || http.max_finished_runs < 0)) {
      return Usage(absl::StrCat("--keep-runs: \"", v, "\" is not a count >= 0"));
    }
  }

  // Before any thread exists, so every thread inherits the mask and only sigwait sees them.
  common::BlockStopSignals();
  sigset_t signals;  // for the non-blocking check of a second signal below
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);

  const std::string agent_binary = FindAgentBinary();
  if (agent_binary.empty()) {
    std::cerr << "stampede serve: cannot find stampede-agent (set STAMPEDE_AGENT_BINARY)\n";
    return kExitRunError;
  }
  if (logs.empty()) {
    char tmpl[] = "/tmp/stampede-serve-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::cerr << "stampede serve: cannot create a log folder under /tmp\n";
      return kExitRunError;
    }
    logs = tmpl;
  } else if (mkdir(logs.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "stampede serve: --logs: cannot create " << logs << ": " << std::strerror(errno)
              << "\n";
    return kExitRunError;
  }
  http.make_launcher = [agent_binary, logs] {
    return std::make_unique<PerRunLocalLauncher>(agent_binary, logs);
  };

  auto controller = Controller::Create(controller_options);
  if (!controller.ok()) {
    std::cerr << "stampede serve: agents' gRPC listener: " << controller.status().message() << "\n";
    return kExitRunError;
  }
  auto api = HttpApi::Start(http, controller->get());
  if (!api.ok()) {
    std::cerr << "stampede serve: " << api.status().message() << "\n";
    return kExitRunError;
  }
  if (!port_file.empty()) {
    if (absl::Status s = WriteFileAtomically(port_file, absl::StrCat((*api)->port(), "\n"));
        !s.ok()) {
      std::cerr << "stampede serve: --port-file: " << s.message() << "\n";
      return kExitRunError;
    }
  }
  SLOG(kInfo) << "serving http_port=" << (*api)->port()
              << " grpc=" << (*controller)->agent_address() << " logs=" << logs
              << " max_runs=" << http.max_active_runs;

  const int sig = common::WaitForStopSignal();
  const std::string reason =
      absl::StrCat("controller shutting down (", sig == SIGINT ? "SIGINT" : "SIGTERM", ")");
  SLOG(kInfo) << "shutdown signal=" << (sig == SIGINT ? "SIGINT" : "SIGTERM");
  // Aborted runs settle once their agents confirm (bounded by the run's stop timeout); a second
  // signal skips the wait.
  const std::vector<std::shared_ptr<Run>> active = (*api)->BeginShutdown(reason);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(controller_options.run_defaults.stop_timeout_s + 2);
  bool hurry = false;
  for (const std::shared_ptr<Run>& run : active) {
    while (!hurry && !run->WaitDone(100)) {
      const timespec zero{0, 0};
      hurry = std::chrono::steady_clock::now() >= deadline ||
              sigtimedwait(&signals, nullptr, &zero) > 0;
    }
  }
  (*api)->Stop();
  api->reset();
  controller->reset();  // aborts whatever is left and stops the agents
  SLOG(kInfo) << "stopped";
  return kExitPassed;
}

}  // namespace stampede::controller
