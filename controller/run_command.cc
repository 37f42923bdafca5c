#include "controller/run_command.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/data_table.h"
#include "common/duration.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/policy.h"
#include "common/report_printer.h"
#include "common/spec.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/local_launcher.h"
#include "controller/report.h"
#include "controller/results.h"

namespace stampede::controller {
namespace {

common::FlagSet RunFlags(RunCommandOptions* o) {
  common::FlagSet flags("stampede run", &o->help);
  flags.Description(
      "Runs one LoadTest on local agent processes, exactly as in a cluster minus the Pods.");
  flags.Positional("TEST.yaml", &o->file);
  flags.Count("--agents", "N", "override spec.agents", &o->agents, 1);
  flags.String("--target", "URL", "override spec.target.url", &o->target);
  flags.String("--out", "FILE", "results as JSON (summary, per request, per-second series)",
               &o->out_json);
  flags.String("--csv", "FILE", "per-second results as CSV", &o->out_csv);
  flags.String("--report", "FILE",
               "the HTML report (as stampede report writes it from --out): one file, no network",
               &o->out_report);
  flags.String(
      "--logs", "DIR",
      "where the agents' logs go (default: a new folder under $TMPDIR or /tmp, removed if the run "
      "passes)",
      &o->logs);
  flags.HostPort("--metrics-listen", "ADDR",
                 "serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9464) while the test runs",
                 &o->metrics_listen);
  flags.Duration("--metrics-linger", "D",
                 "after the run, keep serving /metrics with the final values this long, so that "
                 "the last scrape sees the end (Ctrl-C ends it sooner; at most 10m)",
                 &o->metrics_linger, common::FlagSet::kNonNegative, absl::Minutes(10));
  flags.String("--policy", "FILE",
               "a LoadTestPolicy the test must pass: allowed targets and limits (default: any "
               "target but link-local and cloud metadata addresses)",
               &o->policy_file);
  flags.Bool("--quiet", "no per-second lines", &o->quiet);
  flags.Footer(
      "exit codes: 0 passed, 1 thresholds failed, 2 invalid spec or flags, 3 run error, 4 aborted");
  return flags;
}

int UsageError(const absl::Status& status) {
  std::cerr << "stampede run: " << status.message() << "\n\n" << RunUsage();
  return kExitInvalid;
}

int Fail(int code, const std::string& message) {
  std::cerr << "stampede run: " << message << "\n";
  return code;
}

// The test file with the overrides of the flags, validated.
absl::StatusOr<v1::LoadTest> ReadTest(const RunCommandOptions& options) {
  // At most what ParseLoadTest takes, plus one byte to tell a larger file.
  absl::StatusOr<std::string> text = common::ReadSmallFile(options.file, common::kMaxLoadTestBytes);
  if (!text.ok()) return absl::InvalidArgumentError(std::string(text.status().message()));
  absl::StatusOr<v1::LoadTest> test = common::ParseLoadTest(*text);
  if (!test.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.file, " is not a valid LoadTest:\n", test.status().message()));
  }
  if (options.agents > 0) test->mutable_spec()->set_agents(options.agents);
  if (!options.target.empty()) test->mutable_spec()->mutable_target()->set_url(options.target);
  if (absl::Status s = common::ValidationStatus(*test); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.file, " with the overrides is not valid:\n", s.message()));
  }
  return test;
}

// What a run needs besides its test; the metrics server stops before the controller.
struct LocalSetUp {
  std::string agent_binary;
  std::string logs;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<HttpApi> metrics_server;  // with --metrics-listen
};

// Failures here are run errors (exit 3): the machine, not the test.
absl::StatusOr<LocalSetUp> SetUp(const RunCommandOptions& options) {
  LocalSetUp s;
  s.agent_binary = FindAgentBinary();
  if (s.agent_binary.empty()) {
    return absl::FailedPreconditionError("cannot find stampede-agent (set STAMPEDE_AGENT_BINARY)");
  }
  ASSIGN_OR_RETURN(s.controller, Controller::Create(ControllerOptions()));
  if (!options.metrics_listen.empty()) {
    HttpApiOptions http;
    http.listen = options.metrics_listen;
    http.threads = 2;
    absl::StatusOr<std::unique_ptr<HttpApi>> started = HttpApi::Start(http, s.controller.get());
    if (!started.ok()) {
      return absl::Status(started.status().code(),
                          absl::StrCat("--metrics-listen: ", started.status().message()));
    }
    s.metrics_server = std::move(*started);
  }
  // Last, so that a set-up that fails leaves no folder behind.
  s.logs = options.logs;
  if (s.logs.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    const std::string base = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    std::string folder = base + "/stampede-run-XXXXXX";
    if (mkdtemp(folder.data()) == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot create a log folder under ", base, ": ", strerror(errno)));
    }
    s.logs = std::move(folder);
  }
  return s;
}

// A one-way flag to wait on.
class RunEnd {
 public:
  void Notify() {
    common::MutexLock lock(&mu_);
    ended_ = true;
    cv_.SignalAll();
  }
  void Wait() {
    common::MutexLock lock(&mu_);
    while (!ended_) cv_.Wait(&mu_);
  }
  // Until notified or `deadline`.
  void WaitUntil(std::chrono::steady_clock::time_point deadline) {
    common::MutexLock lock(&mu_);
    while (!ended_ && cv_.WaitUntil(&mu_, deadline)) {
    }
  }

 private:
  common::Mutex mu_;
  common::CondVar cv_;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

std::atomic<Run*> g_run{nullptr};
// A stop signal aborted the run: the user wants out, so there is no metrics linger after it.
std::atomic<bool> g_interrupted{false};

// A stop signal came after the run: the metrics linger ends. Never destroyed, since the signal
// watcher thread may use it until the process is gone.
RunEnd& StopAsked() {
  static RunEnd* const stop = new RunEnd;
  return *stop;
}

// Ctrl-C and SIGTERM abort the run (it still ends in order and writes its results, and then
// skips the metrics linger); after it, they end the metrics linger.
void AbortOnStopSignals(Run* run) {
  g_run.store(run);
  common::WatchStopSignals([](int sig, int count) {
    if (count > 2) _exit(kExitAborted);  // a third signal: the user really wants out
    if (Run* r = g_run.load(); r != nullptr) {
      g_interrupted.store(true);
      r->Abort(absl::StrCat("interrupted by ", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    } else {
      StopAsked().Notify();
    }
  });
}

// Prints a progress line per second (unless quiet) until the run has ended.
void FollowRun(Run* run, bool quiet) {
  common::ProgressPrinter progress(stderr, isatty(STDERR_FILENO));
  RunEnd end;
  const int64_t duration_ns = common::RunDurationNs(run->test().spec());
  run->SetObserver([&](const RunEvent& e) {
    if (e.kind != RunEvent::Kind::kInterval && e.kind != RunEvent::Kind::kEnded) return;
    const IntervalPoint* p = e.point;
    if (p == nullptr) {
      if (!quiet) progress.Finish();
      end.Notify();
      return;
    }
    if (quiet) return;
    common::ProgressPoint point;
    point.index = p->index;
    // Requests finishing after the planned end land in a last, partial "drain" second.
    point.drain = p->index * 1'000'000'000LL >= duration_ns;
    point.concurrency = p->active_users;
    point.requests = p->requests;
    point.errors = p->errors;
    point.p50_ns = p->total.p50;
    point.p95_ns = p->total.p95;
    point.p99_ns = p->total.p99;
    progress.Print(common::FormatProgressLine(point));
  });
  end.Wait();
  run->SetObserver(nullptr);  // waits for the observer to return: it uses this frame
}

void PrintSummary(const Run::Snapshot& snap, const std::string& level_unit, FILE* out) {
  std::fputs(
      common::FormatRequestTable(snap.request_names, snap.cumulative, snap.elapsed_s).c_str(), out);
  std::fputs(
      common::FormatIterationTable(snap.scenario_names, snap.cumulative, snap.elapsed_s).c_str(),
      out);
  std::fputs(StageTable(snap.status, level_unit).c_str(), out);
  const v1::LoadTestStatus& st = snap.status;
  for (const v1::ThresholdResult& t : st.thresholds()) {
    std::fprintf(out, "  %s %-30s actual %s\n", t.passed() ? "PASS" : "FAIL",
                 t.expression().c_str(), t.actual().c_str());
  }
  if (snap.saturated) {
    std::fprintf(
        out,
        "  WARNING: an agent was saturated (a thread above 90%% CPU or timers >10ms late); the "
        "figures may\n  describe the generator rather than the target. Add agents or threads.\n");
  }
  if (!st.start_skew().empty()) {
    std::fprintf(out, "  agents started within %s of each other\n", st.start_skew().c_str());
  }
  std::fprintf(out, "  %s: %s%s%s\n", st.phase().c_str(), st.reason().c_str(),
               st.message().empty() ? "" : " - ", st.message().c_str());
}

int ExitCodeFor(const v1::LoadTestStatus& st) {
  if (st.phase() == "Succeeded") return kExitPassed;
  if (st.phase() == "Aborted") return kExitAborted;
  if (st.phase() == "Failed" && st.reason() == "ThresholdsFailed") return kExitThresholdsFailed;
  return kExitRunError;
}

// --out and --csv, checked before the test starts.
struct Outputs {
  std::optional<common::OutputFile> json, csv, report;
  bool to_stdout = false;  // one of them is "-": the summary goes to stderr instead
};

absl::StatusOr<Outputs> PrepareOutputs(const RunCommandOptions& options) {
  Outputs out;
  for (const auto& [flag, path, dest] :
       {std::tuple<const char*, const std::string&, std::optional<common::OutputFile>*>{
            "--out", options.out_json, &out.json},
        {"--csv", options.out_csv, &out.csv},
        {"--report", options.out_report, &out.report}}) {
    if (path.empty()) continue;
    absl::StatusOr<common::OutputFile> file = common::OutputFile::Prepare(path);
    if (!file.ok())
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", file.status().message()));
    *dest = std::move(*file);
    out.to_stdout = out.to_stdout || path == "-";
  }
  if ((options.out_json == "-") + (options.out_csv == "-") + (options.out_report == "-") > 1) {
    return absl::InvalidArgumentError(
        "--out, --csv and --report: only one of them can be \"-\" (standard output)");
  }
  return out;
}

// Writes --out, --csv and --report; a file that cannot be written turns a pass into a run error.
int WriteResults(const Outputs& outputs, const Run& run, const Run::Snapshot& snap, int code) {
  const std::string json =
      outputs.json.has_value() || outputs.report.has_value() ? ResultsJson(run, snap) : "";
  std::string report;
  if (outputs.report.has_value()) {
    absl::StatusOr<std::string> html = ReportHtml(json);
    report = html.ok() ? *html : "";  // from our own results: always a results document
  }
  for (const auto& [file, content] :
       {std::pair<const std::optional<common::OutputFile>&, std::string>{outputs.json, json},
        {outputs.csv, outputs.csv.has_value() ? ResultsCsv(snap) : ""},
        {outputs.report, report}}) {
    if (!file.has_value()) continue;
    if (absl::Status s = file->Write(content); !s.ok()) {
      std::cerr << "stampede run: " << s.message() << "\n";
      if (code == kExitPassed) code = kExitRunError;
    }
  }
  return code;
}

}  // namespace

absl::StatusOr<RunCommandOptions> ParseRunFlags(const std::vector<std::string>& args) {
  RunCommandOptions options;
  RETURN_IF_ERROR(RunFlags(&options).Parse(args));
  if (!options.help && options.file.empty()) {
    return absl::InvalidArgumentError("TEST.yaml: which test? (a LoadTest YAML or JSON file)");
  }
  if (options.metrics_linger > absl::ZeroDuration() && options.metrics_listen.empty()) {
    return absl::InvalidArgumentError(
        "--metrics-linger: there is no /metrics without --metrics-listen");
  }
  return options;
}

std::string RunUsage() {
  RunCommandOptions unused;
  return RunFlags(&unused).Usage();
}

int RunCommand(const std::vector<std::string>& args) {
  absl::StatusOr<RunCommandOptions> options = ParseRunFlags(args);
  if (!options.ok()) return UsageError(options.status());
  if (options->help) {
    std::cout << RunUsage();
    return kExitPassed;
  }
  // Per-agent chatter stays out of the progress lines unless asked for.
  if (std::getenv("STAMPEDE_LOG_LEVEL") == nullptr) common::SetLogLevel(common::LogLevel::kWarning);
  absl::StatusOr<v1::LoadTest> test = ReadTest(*options);
  if (!test.ok()) return Fail(kExitInvalid, std::string(test.status().message()));
  // Its data tables, CSV files relative to the test file's folder.
  absl::StatusOr<common::TestData> data =
      common::PrepareTestData(test->spec(), common::LocalFileReader(options->file, "stampede run"),
                              common::FlagSet::ProcessEnv);
  if (!data.ok()) {
    return Fail(kExitInvalid, absl::StrCat(options->file, ": ", data.status().message()));
  }
  absl::StatusOr<common::Policy> policy = options->policy_file.empty()
                                              ? common::Policy::AllowAll()
                                              : common::Policy::FromFile(options->policy_file);
  if (!policy.ok()) {
    return Fail(kExitInvalid, absl::StrCat("--policy: ", policy.status().message()));
  }
  if (std::optional<common::Refusal> refused = policy->Admit(*test, 0)) {
    return Fail(kExitInvalid,
                absl::StrCat(options->file, ": the policy refuses it:\n", refused->message));
  }
  auto target_rules = std::make_shared<const v1::TargetRules>(policy->TargetRulesFor(*test));
  // Before the test, not after it: an output that cannot be written is known at once.
  absl::StatusOr<Outputs> outputs = PrepareOutputs(*options);
  if (!outputs.ok()) return Fail(kExitInvalid, std::string(outputs.status().message()));

  common::BlockStopSignals();
  absl::StatusOr<LocalSetUp> local = SetUp(*options);
  if (!local.ok()) return Fail(kExitRunError, std::string(local.status().message()));
  if (!options->quiet) {
    std::fprintf(stderr, "stampede run %s: %u agent(s), controller %s, agent logs in %s\n",
                 test->metadata().name().c_str(), test->spec().agents(),
                 local->controller->agent_address().c_str(), local->logs.c_str());
    if (local->metrics_server != nullptr) {
      std::fprintf(stderr, "stampede run %s: metrics on http://%s:%d/metrics\n",
                   test->metadata().name().c_str(),
                   common::SplitHostPort(options->metrics_listen)->first.c_str(),
                   local->metrics_server->port());
    }
  }

  std::shared_ptr<Run> run = local->controller->StartRun(
      std::move(*test), std::make_unique<LocalLauncher>(local->agent_binary, local->logs),
      std::make_shared<const common::TestData>(*std::move(data)), std::move(target_rules));
  AbortOnStopSignals(run.get());
  FollowRun(run.get(), options->quiet);
  const Run::Snapshot snap = run->TakeSnapshot(true);
  g_run.store(nullptr);

  PrintSummary(snap, run->test().spec().load().has_rate() ? "req/s" : "users",
               outputs->to_stdout ? stderr : stdout);
  const int code = WriteResults(*outputs, *run, snap, ExitCodeFor(snap.status));
  if (local->metrics_server != nullptr) {
    if (options->metrics_linger > absl::ZeroDuration() && !g_interrupted.load()) {
      if (!options->quiet) {
        std::fprintf(stderr, "stampede run %s: /metrics stays up for %s (Ctrl-C ends it)\n",
                     run->name().c_str(), absl::FormatDuration(options->metrics_linger).c_str());
      }
      StopAsked().WaitUntil(std::chrono::steady_clock::now() +
                            absl::ToChronoNanoseconds(options->metrics_linger));
    }
    local->metrics_server->Stop();
  }
  // A log folder of our own making goes with a run that passed: nobody reads it then, and runs
  // would otherwise pile folders up under /tmp. After anything else it stays, and says where
  // (even with --quiet, which did not print it at the start).
  if (options->logs.empty()) {
    if (code == kExitPassed) {
      std::error_code ignored;
      std::filesystem::remove_all(local->logs, ignored);
    } else {
      std::fprintf(stderr, "stampede run %s: agent logs kept in %s\n", run->name().c_str(),
                   local->logs.c_str());
    }
  }
  return code;
}

}  // namespace stampede::controller
