#include "controller/run_command.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/spec.h"
#include "common/stop_signals.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/local_launcher.h"
#include "controller/results.h"

namespace stampede::controller {

const char kRunUsage[] =
    "usage: stampede run TEST.yaml [--agents N] [--target URL] [--out results.json] [--csv results.csv]\n"
    "                    [--logs DIR] [--metrics-listen ADDR] [--quiet]\n"
    "  Runs one LoadTest on local agent processes, exactly as in a cluster minus the Pods.\n"
    "  --agents N     override spec.agents\n"
    "  --target URL   override spec.target.url\n"
    "  --out FILE     results as JSON (summary, per request, per-second series)\n"
    "  --csv FILE     per-second results as CSV\n"
    "  --logs DIR     where the agents' logs go (default: a new folder under /tmp)\n"
    "  --metrics-listen ADDR  serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9464) while the test runs\n"
    "  --quiet        no per-second lines\n"
    "  exit codes: 0 passed, 1 thresholds failed, 2 invalid spec or flags, 3 run error, 4 aborted\n";

namespace {

std::atomic<Run*> g_run{nullptr};


std::string Pad(const std::string& s, size_t width) { return s.size() >= width ? s : s + std::string(width - s.size(), ' '); }

void PrintTable(const Run::Snapshot& snap) {
  std::printf("\n  %-28s %10s %8s %9s %9s %9s %9s %9s %9s\n", "request", "requests", "errors", "rps", "p50", "p90",
              "p95", "p99", "max");
  auto line = [&](const std::string& name, const common::RequestStats& r) {
    const double rps = snap.elapsed_s > 0 ? r.Requests() / snap.elapsed_s : 0;
    std::printf("  %-28s %10llu %8llu %9.1f %9s %9s %9s %9s %9s\n", Pad(name.substr(0, 28), 28).c_str(),
                static_cast<unsigned long long>(r.Requests()), static_cast<unsigned long long>(r.Errors()), rps,
                common::FormatNanos(r.latency.ValueAtQuantile(0.5)).c_str(),
                common::FormatNanos(r.latency.ValueAtQuantile(0.9)).c_str(),
                common::FormatNanos(r.latency.ValueAtQuantile(0.95)).c_str(),
                common::FormatNanos(r.latency.ValueAtQuantile(0.99)).c_str(),
                common::FormatNanos(r.latency.max()).c_str());
  };
  common::RequestStats total;
  for (size_t i = 0; i < snap.request_names.size(); ++i) {
    line(snap.request_names[i], snap.cumulative.requests[i]);
    total.Merge(snap.cumulative.requests[i]);
  }
  if (snap.request_names.size() > 1) line("total", total);
  if (total.Errors() != 0) {
    std::printf("  errors:");
    for (size_t o = 1; o < static_cast<size_t>(common::Outcome::kCount); ++o) {
      if (total.outcomes[o] != 0) {
        std::printf(" %s=%llu", common::OutcomeName(static_cast<common::Outcome>(o)),
                    static_cast<unsigned long long>(total.outcomes[o]));
      }
    }
    std::printf("\n");
  }
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  std::string file, out_json, out_csv, target, logs, metrics_listen;
  int agents = 0;
  bool quiet = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* into) {
      if (i + 1 >= args.size()) {
        std::cerr << "stampede run: " << a << ": needs a value\n\n" << kRunUsage;
        return false;
      }
      *into = args[++i];
      return true;
    };
    std::string v;
    if (a == "--out") {
      if (!value(&out_json)) return kExitInvalid;
    } else if (a == "--csv") {
      if (!value(&out_csv)) return kExitInvalid;
    } else if (a == "--target") {
      if (!value(&target)) return kExitInvalid;
    } else if (a == "--logs") {
      if (!value(&logs)) return kExitInvalid;
    } else if (a == "--metrics-listen") {
      if (!value(&metrics_listen)) return kExitInvalid;
      if (!common::SplitHostPort(metrics_listen).ok()) {
        std::cerr << "stampede run: --metrics-listen: \"" << metrics_listen << "\" is not host:port\n";
        return kExitInvalid;
      }
    } else if (a == "--agents") {
      if (!value(&v)) return kExitInvalid;
      if (!absl::SimpleAtoi(v, &agents) || agents < 1) {
        std::cerr << "stampede run: --agents: \"" << v << "\" is not a count >= 1\n";
        return kExitInvalid;
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << kRunUsage;
      return kExitPassed;
    } else if (!a.empty() && a[0] == '-') {
      std::cerr << "stampede run: " << a << ": unknown flag\n\n" << kRunUsage;
      return kExitInvalid;
    } else if (file.empty()) {
      file = a;
    } else {
      std::cerr << "stampede run: one test file at a time (got \"" << file << "\" and \"" << a << "\")\n";
      return kExitInvalid;
    }
  }
  if (file.empty()) {
    std::cerr << "stampede run: which test? (a LoadTest YAML or JSON file)\n\n" << kRunUsage;
    return kExitInvalid;
  }
  // Per-agent chatter stays out of the progress lines unless asked for.
  if (std::getenv("STAMPEDE_LOG_LEVEL") == nullptr) common::SetLogLevel(common::LogLevel::kWarning);
  std::ifstream in(file);
  if (!in) {
    std::cerr << "stampede run: cannot read " << file << "\n";
    return kExitInvalid;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = common::ParseLoadTest(text.str());
  if (!parsed.ok()) {
    std::cerr << "stampede run: " << file << " is not a valid LoadTest:\n" << parsed.status().message() << "\n";
    return kExitInvalid;
  }
  v1::LoadTest test = std::move(*parsed);
  if (agents > 0) test.mutable_spec()->set_agents(static_cast<uint32_t>(agents));
  if (!target.empty()) test.mutable_spec()->mutable_target()->set_url(target);
  if (absl::Status s = common::ValidationStatus(test); !s.ok()) {
    std::cerr << "stampede run: " << file << " with the overrides is not valid:\n" << s.message() << "\n";
    return kExitInvalid;
  }

  common::BlockStopSignals();

  const std::string agent_binary = FindAgentBinary();
  if (agent_binary.empty()) {
    std::cerr << "stampede run: cannot find stampede-agent (set STAMPEDE_AGENT_BINARY)\n";
    return kExitRunError;
  }
  if (logs.empty()) {
    char tmpl[] = "/tmp/stampede-run-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::cerr << "stampede run: cannot create a log folder under /tmp\n";
      return kExitRunError;
    }
    logs = tmpl;
  }
  ControllerOptions options;
  auto controller = Controller::Create(options);
  if (!controller.ok()) {
    std::cerr << "stampede run: " << controller.status().message() << "\n";
    return kExitRunError;
  }
  std::unique_ptr<HttpApi> metrics_server;
  if (!metrics_listen.empty()) {
    HttpApiOptions http;
    http.listen = metrics_listen;
    http.threads = 2;
    auto started = HttpApi::Start(http, controller->get());
    if (!started.ok()) {
      std::cerr << "stampede run: --metrics-listen: " << started.status().message() << "\n";
      return kExitRunError;
    }
    metrics_server = std::move(*started);
  }
  const std::string name = test.metadata().name();
  const uint32_t agent_count = test.spec().agents();
  std::shared_ptr<Run> run =
      (*controller)->StartRun(std::move(test), std::make_unique<LocalLauncher>(agent_binary, logs));
  g_run.store(run.get());
  common::WatchStopSignals([](int sig, int count) {
    if (count > 2) _exit(kExitAborted);  // a third signal: the user really wants out
    if (Run* r = g_run.load(); r != nullptr) {
      r->Abort(absl::StrCat("interrupted by ", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    }
  });

  const bool tty = isatty(STDERR_FILENO);
  if (!quiet) {
    std::fprintf(stderr, "stampede run %s: %u agent(s), controller %s, agent logs in %s\n", name.c_str(), agent_count,
                 (*controller)->agent_address().c_str(), logs.c_str());
    if (metrics_server != nullptr) {
      std::fprintf(stderr, "stampede run %s: metrics on http://%s:%d/metrics\n", name.c_str(),
                   common::SplitHostPort(metrics_listen)->first.c_str(), metrics_server->port());
    }
  }
  std::mutex ended_mu;
  std::condition_variable ended_cv;
  bool ended = false;
  const int64_t duration_ns = common::RunDurationNs(run->test().spec());
  run->SetObserver([&, tty, quiet, duration_ns](const RunEvent& e) {
    if (e.kind == RunEvent::Kind::kPhase) return;
    const IntervalPoint* p = e.point;
    if (p == nullptr) {
      if (tty && !quiet) std::fputc('\n', stderr);
      std::lock_guard<std::mutex> lock(ended_mu);
      ended = true;
      ended_cv.notify_all();
      return;
    }
    if (quiet) return;
    const double error_pct = p->requests == 0 ? 0 : 100.0 * p->errors / p->requests;
    char line[256], when[16];
    // Requests finishing after the planned end land in a last, partial "drain" second.
    std::snprintf(when, sizeof(when), p->index * 1'000'000'000LL >= duration_ns ? "drain" : "%4llds",
                  static_cast<long long>(p->index + 1));
    std::snprintf(line, sizeof(line), "%5s  users %-7u rps %-8llu p50 %-9s p95 %-9s p99 %-9s errors %llu (%.1f%%)",
                  when, p->active_users,
                  static_cast<unsigned long long>(p->requests), common::FormatNanos(p->total.p50).c_str(),
                  common::FormatNanos(p->total.p95).c_str(), common::FormatNanos(p->total.p99).c_str(),
                  static_cast<unsigned long long>(p->errors), error_pct);
    std::fprintf(stderr, tty ? "\r%s\x1b[K" : "%s\n", line);
  });
  {
    // The observer's last call (after the final intervals) marks the end.
    std::unique_lock<std::mutex> lock(ended_mu);
    ended_cv.wait(lock, [&] { return ended; });
  }
  const Run::Snapshot snap = run->TakeSnapshot(true);
  g_run.store(nullptr);
  if (metrics_server != nullptr) metrics_server->Stop();

  PrintTable(snap);
  const v1::LoadTestStatus& st = snap.status;
  for (const v1::ThresholdResult& t : st.thresholds()) {
    std::printf("  %s %-30s actual %s\n", t.passed() ? "PASS" : "FAIL", t.expression().c_str(), t.actual().c_str());
  }
  if (snap.saturated) {
    std::printf("  WARNING: an agent was saturated (a thread above 90%% CPU or timers >10ms late); the figures may\n"
                "  describe the generator rather than the target. Add agents or threads.\n");
  }
  if (!st.start_skew().empty()) std::printf("  agents started within %s of each other\n", st.start_skew().c_str());
  std::printf("  %s: %s%s%s\n", st.phase().c_str(), st.reason().c_str(), st.message().empty() ? "" : " - ",
              st.message().c_str());

  int code = kExitRunError;
  if (st.phase() == "Succeeded") code = kExitPassed;
  if (st.phase() == "Aborted") code = kExitAborted;
  if (st.phase() == "Failed" && st.reason() == "ThresholdsFailed") code = kExitThresholdsFailed;
  for (const auto& [path, content] : {std::pair<std::string, std::string>{out_json, out_json.empty() ? "" : ResultsJson(*run, snap)},
                                      {out_csv, out_csv.empty() ? "" : ResultsCsv(snap)}}) {
    if (path.empty()) continue;
    if (absl::Status s = WriteFileAtomically(path, content); !s.ok()) {
      std::cerr << "stampede run: " << s.message() << "\n";
      if (code == kExitPassed) code = kExitRunError;
    }
  }
  return code;
}

}  // namespace stampede::controller
