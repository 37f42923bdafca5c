#include "agent/bench_command.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/data_table.h"
#include "common/duration.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/histogram_json.h"
#include "common/mutex.h"
#include "common/report_printer.h"
#include "common/spec.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"

namespace stampede::agent {
namespace {

using common::FlagSet;

// The flags as given, before ParseBenchFlags checks them together and makes the load plan.
struct BenchFlagValues {
  int64_t users = -1;  // -1: not given
  double rate = -1;    // -1: not given
  double spawn_rate = 0;
  std::vector<Stage> stages;
  int64_t duration_ns = 0;
  RequestSpec request;
  std::vector<std::string> headers;  // "Name: value"
  std::string scenario_file;
};

absl::Status ParseThink(const std::string& value, EngineConfig* cfg) {
  std::vector<std::string> parts = absl::StrSplit(value, ',');
  if (parts.size() > 2) return absl::InvalidArgumentError("want MIN or MIN,MAX");
  ASSIGN_OR_RETURN(absl::Duration min, common::ParseDuration(parts[0]));
  absl::Duration max = min;
  if (parts.size() == 2) {
    ASSIGN_OR_RETURN(max, common::ParseDuration(parts[1]));
    if (max < min) return absl::InvalidArgumentError("MAX is below MIN");
  }
  cfg->think_min_ns = absl::ToInt64Nanoseconds(min);
  cfg->think_max_ns = absl::ToInt64Nanoseconds(max);
  return absl::OkStatus();
}

absl::Status ParseStages(const std::string& value, std::vector<Stage>* stages) {
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    std::vector<std::string> dt = absl::StrSplit(part, ':');
    Stage s;
    if (dt.size() != 2 || !absl::SimpleAtod(dt[1], &s.target) || s.target < 0) {
      return absl::InvalidArgumentError(absl::StrCat("\"", part, "\" is not DURATION:TARGET"));
    }
    ASSIGN_OR_RETURN(absl::Duration d, common::ParseDuration(dt[0]));
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", part, "\" has no duration"));
    }
    s.duration_ns = absl::ToInt64Nanoseconds(d);
    stages->push_back(s);
  }
  return absl::OkStatus();
}

absl::Status ParseExpectStatus(const std::string& value, std::vector<int>* codes) {
  for (absl::string_view code : absl::StrSplit(value, ',')) {
    int c;
    if (!absl::SimpleAtoi(code, &c) || c < 100 || c > 599) {
      return absl::InvalidArgumentError(absl::StrCat("\"", code, "\" is not a status code"));
    }
    codes->push_back(c);
  }
  return absl::OkStatus();
}

FlagSet BenchFlags(BenchOptions* o, BenchFlagValues* v) {
  EngineConfig& cfg = o->engine;
  FlagSet flags("stampede-agent bench", &o->help);
  flags.Synopsis("--url URL (--users N | --rate R) --duration D [options]");
  flags.Group("load model (exactly one of --users and --rate):");
  flags.Count("--users", "N",
              "closed model: N virtual users, each on its own keep-alive connection", &v->users, 0,
              common::kMaxUsers);
  flags.Number("--spawn-rate", "R", "users started per second (default: all at once)",
               &v->spawn_rate, FlagSet::kPositive, common::kMaxUsers);
  flags.Custom("--think", "MIN[,MAX]",
               "think time between a user's requests, uniform in [MIN, MAX] (default 0s)",
               [&cfg](const std::string& value) { return ParseThink(value, &cfg); });
  flags.Number("--rate", "R",
               "open model: R requests per second, latency measured from the planned send time "
               "(coordinated-omission corrected) and as service time",
               &v->rate, FlagSet::kNonNegative, common::kMaxRate);
  flags.Count("--connections", "N",
              "open model: requests in flight at most (default: rate/10, 100..10000)",
              &cfg.connections, 1, common::kMaxUsers);
  flags.Custom("--stages", "D:T,...",
               "ramp linearly from the --users or --rate value (0 if neither is given: users) "
               "through each target, e.g. 10s:100,30s:100,10s:0",
               [v](const std::string& value) { return ParseStages(value, &v->stages); });
  flags.DurationNanos("--duration", "D",
                      "how long to apply load (e.g. 30s, 1m30s); optional with --stages",
                      &v->duration_ns, FlagSet::kPositive);
  flags.Group("requests:");
  flags.String("--url", "URL", "http:// or https:// target", &cfg.url).Required();
  flags.String("--method", "M", "HTTP method (default GET)", &v->request.method);
  flags.Strings("--header", "'K: V'", "extra request header", &v->headers);
  flags.String("--body", "S", "request body", &v->request.body);
  flags.String("--scenario", "FILE",
               "a LoadTest file whose spec.scenarios (and spec.data) replace the request; its "
               "target and load are the flags'",
               &v->scenario_file);
  flags.Custom("--expect-status", "L",
               "status codes that count as success, e.g. 200,201 (default 100-399)",
               [v](const std::string& value) {
                 return ParseExpectStatus(value, &v->request.expect_status);
               });
  flags.DurationNanos("--timeout", "D", "per-request timeout (default 10s)", &cfg.timeout_ns,
                      FlagSet::kPositive);
  flags.DurationNanos("--grace", "D",
                      "time in-flight requests get after the end (default: the timeout)",
                      &cfg.grace_ns, FlagSet::kNonNegative);
  flags.Custom("--protocol", "P",
               "http1 (default), h2 (HTTP/2 over TLS, by ALPN) or h2c (HTTP/2 over plain TCP, "
               "prior knowledge)",
               [&cfg](const std::string& value) {
                 if (value != "http1" && value != "h2" && value != "h2c")
                   return absl::InvalidArgumentError(
                       absl::StrCat("must be http1, h2 or h2c, got \"", value, "\""));
                 cfg.protocol = value;
                 return absl::OkStatus();
               });
  flags.Count("--max-streams", "N",
              "h2/h2c: requests in flight at once per connection (default 100; the server's "
              "SETTINGS may lower it); users and arrivals share connections N at a time",
              &cfg.max_concurrent_streams, 1, 1000);
  flags.Bool("--insecure", "https: skip certificate verification", &cfg.insecure_skip_verify);
  flags.String("--cacert", "FILE", "https: trust this CA (PEM) as well", &cfg.ca_file);
  flags.Group("engine and output:");
  flags.Count("--threads", "T", "event-loop threads (default: one per core)", &cfg.threads, 1,
              1024);
  flags.Custom("--io", "B",
               "I/O backend: auto (io_uring where the kernel allows it, else epoll), epoll or "
               "uring (default: $STAMPEDE_IO, else auto)",
               [&cfg](const std::string& value) {
                 ASSIGN_OR_RETURN(cfg.io, ParseIoMode(value));
                 return absl::OkStatus();
               });
  flags.Custom("--seed", "N", "random seed for the request mix and think times",
               [&cfg](const std::string& value) {
                 if (absl::SimpleAtoi(value, &cfg.seed)) return absl::OkStatus();
                 return absl::InvalidArgumentError(absl::StrCat("\"", value, "\" is not a number"));
               });
  flags.Bool("--json", "print the summary as JSON", &o->json);
  flags.Bool("--quiet", "no per-second progress lines", &o->quiet);
  return flags;
}

absl::Status FlagError(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

// The checks that span flags, then the load plan they describe.
absl::StatusOr<LoadPlan> MakePlan(const BenchFlagValues& v, const EngineConfig& cfg) {
  if (v.users >= 0 && v.rate >= 0) return FlagError("--users/--rate", "give exactly one of them");
  if (v.users < 0 && v.rate < 0 && v.stages.empty()) {
    return FlagError("--users/--rate", "give exactly one of them");
  }
  if (v.stages.empty() && v.users == 0) {
    return FlagError("--users", "must be > 0 (or start a --stages ramp)");
  }
  if (v.stages.empty() && v.rate == 0) {
    return FlagError("--rate", "must be > 0 (or start a --stages ramp)");
  }
  if (v.duration_ns == 0 && v.stages.empty()) return FlagError("--duration", "is required");
  const bool open = v.rate >= 0;
  if (open && v.spawn_rate > 0) return FlagError("--spawn-rate", "applies to --users only");
  if (open && (cfg.think_min_ns > 0 || cfg.think_max_ns > 0)) {
    return FlagError("--think", "applies to --users only");
  }
  if (!open && cfg.connections != 0) {
    return FlagError("--connections", "applies to --rate only (each user has one connection)");
  }
  if (!v.stages.empty() && v.spawn_rate > 0) {
    return FlagError("--spawn-rate", "cannot be combined with --stages");
  }
  // The same bounds as a LoadTest's (common/spec.h).
  for (const Stage& s : v.stages) {
    const double bound = open ? common::kMaxRate : common::kMaxUsers;
    if (s.target > bound) {
      return FlagError("--stages", absl::StrCat("a target of ", s.target, " is more than ", bound,
                                                open ? " requests per second" : " users"));
    }
  }
  // With --stages alone the model is closed, starting from 0 users.
  absl::StatusOr<LoadPlan> plan =
      open ? LoadPlan::Open(v.rate, v.stages, v.duration_ns)
           : LoadPlan::Closed(static_cast<uint32_t>(std::max<int64_t>(v.users, 0)), v.spawn_rate,
                              v.stages, v.duration_ns);
  if (!plan.ok())
    return FlagError(open ? "--rate" : "--users", std::string(plan.status().message()));
  return plan;
}

double CpuSeconds(const BenchResult& r) { return r.user_cpu_s + r.system_cpu_s; }

bool Saturated(const BenchResult& r) {
  return common::RunSaturated(r.saturated_seconds, r.seconds);
}

// The engine the stop-signal watcher stops. The watcher holds the mutex for the whole Stop call,
// so RunBench, which clears the pointer under it, never destroys an engine that is being stopped.
common::Mutex* EngineMutex() {
  static common::Mutex* mu = new common::Mutex;
  return mu;
}
Engine* g_engine ABSL_GUARDED_BY(EngineMutex()) = nullptr;

double Seconds(const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; }

// Runs the engine to its end, a progress line per second on stderr unless quiet.
BenchResult Measure(Engine* engine, const std::string& url, const std::string& protocol,
                    uint32_t max_streams, bool quiet) {
  const LoadPlan& plan = engine->plan();
  BenchResult r;
  r.url = url;
  if (!protocol.empty()) r.protocol = protocol;
  if (r.protocol != "http1") r.max_streams = max_streams;
  r.open = plan.model() == LoadPlan::Model::kOpen;
  r.threads = engine->threads();
  r.io = IoBackendName(engine->io_backend());
  r.connections = engine->connections();
  r.max_users = plan.MaxUsers();
  r.planned_arrivals = r.open ? plan.TotalArrivals() : 0;
  r.planned_duration_s = plan.duration_ns() / 1e9;
  for (const PreparedRequest& request : engine->requests()) r.request_names.push_back(request.name);
  r.totals = common::IntervalStats(engine->requests().size());

  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  engine->Start();
  if (!quiet) {
    std::fprintf(
        stderr, "stampede-agent bench %s: %s for %.1fs, %u thread(s) on %s, %s%s\n", url.c_str(),
        r.open ? absl::StrCat(std::max(plan.RateAt(0), 0.0), " req/s (open model)").c_str()
               : absl::StrCat(r.max_users, " users (closed model)").c_str(),
        r.planned_duration_s, r.threads, r.io.c_str(),
        r.max_streams == 0
            ? r.protocol.c_str()
            : absl::StrCat(r.protocol, " (", r.max_streams, " streams a connection)").c_str(),
        r.open ? absl::StrCat(", ", r.connections, " connections").c_str() : "");
  }
  common::ProgressPrinter progress(stderr, isatty(STDERR_FILENO));
  while (std::unique_ptr<common::IntervalStats> interval = engine->NextInterval()) {
    r.totals.Merge(*interval);
    r.busiest_thread = std::max(r.busiest_thread, interval->busiest_thread_cpu);
    r.max_timer_lag_ns = std::max(r.max_timer_lag_ns, interval->max_timer_lag_ns);
    const bool saturated =
        common::IntervalSaturated(interval->busiest_thread_cpu, interval->max_timer_lag_ns);
    ++r.seconds;
    if (saturated) ++r.saturated_seconds;
    if (quiet) continue;
    const common::Histogram latency = interval->Total().latency;
    common::ProgressPoint point;
    point.index = interval->index;
    // Requests still finishing after the end land in a last, partial interval.
    point.drain = interval->index * 1'000'000'000LL >= plan.duration_ns();
    point.concurrency_name = r.open ? "inflight" : "users";
    point.concurrency = r.open ? interval->in_flight : interval->active_users;
    point.requests = interval->Requests();
    point.errors = interval->Errors();
    point.p50_ns = latency.ValueAtQuantile(0.5);
    point.p95_ns = latency.ValueAtQuantile(0.95);
    point.p99_ns = latency.ValueAtQuantile(0.99);
    point.saturated = saturated;
    progress.Print(common::FormatProgressLine(point));
  }
  if (!quiet) progress.Finish();
  r.elapsed_s = std::max(1e-9, (common::MonotonicNanos() - engine->start_ns()) / 1e9);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  r.user_cpu_s = Seconds(after.ru_utime) - Seconds(before.ru_utime);
  r.system_cpu_s = Seconds(after.ru_stime) - Seconds(before.ru_stime);
  return r;
}

}  // namespace

// --scenario: the file's scenarios and data; this agent alone, so every table goes whole.
absl::Status LoadScenarios(const BenchFlagValues& v, EngineConfig* cfg) {
  const std::string& file = v.scenario_file;
  if (!v.request.method.empty() && v.request.method != "GET") {
    return FlagError("--method", "a --scenario sends its own requests");
  }
  if (!v.headers.empty() || !v.request.body.empty() || !v.request.expect_status.empty()) {
    return FlagError("--header/--body/--expect-status", "a --scenario sends its own requests");
  }
  absl::StatusOr<std::string> text = common::ReadSmallFile(file, common::kMaxLoadTestBytes);
  if (!text.ok()) return FlagError("--scenario", std::string(text.status().message()));
  absl::StatusOr<v1::LoadTest> test = common::ParseLoadTest(*text);
  if (!test.ok())
    return FlagError("--scenario", absl::StrCat(file, ":\n", test.status().message()));
  if (test->spec().scenarios_size() == 0)
    return FlagError("--scenario", file + " has no spec.scenarios");
  absl::StatusOr<common::TestData> data =
      common::PrepareTestData(test->spec(), common::LocalFileReader(file, "stampede-agent bench"),
                              common::FlagSet::ProcessEnv);
  if (!data.ok()) return FlagError("--scenario", std::string(data.status().message()));
  for (const common::DataTable& t : data->tables) {
    v1::AgentTable a;
    a.set_name(t.name);
    for (const std::string& f : t.fields) a.add_fields(f);
    a.set_rows(t.rows());
    for (const std::string& c : t.cells) a.add_cells(c);
    cfg->data.push_back(std::move(a));
  }
  cfg->env = data->env;
  cfg->scenarios = std::make_shared<const v1::LoadTestSpec>(test->spec());
  return absl::OkStatus();
}

absl::StatusOr<BenchOptions> ParseBenchFlags(const std::vector<std::string>& args) {
  BenchOptions options;
  BenchFlagValues v;
  RETURN_IF_ERROR(BenchFlags(&options, &v).Parse(args));
  if (options.help) return options;
  for (const std::string& header : v.headers) {
    const size_t colon = header.find(':');
    if (colon == std::string::npos || colon == 0) {
      return FlagError("--header", absl::StrCat("\"", header, "\" is not 'Name: value'"));
    }
    std::string name = header.substr(0, colon), value = header.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    v.request.headers.emplace_back(name, value);
  }
  ASSIGN_OR_RETURN(options.engine.plan, MakePlan(v, options.engine));
  // Without --method, --header, --body or --expect-status this is the engine's default request.
  options.engine.requests = {v.request};
  if (!v.scenario_file.empty()) RETURN_IF_ERROR(LoadScenarios(v, &options.engine));
  return options;
}

std::string BenchUsage() {
  BenchOptions options;
  BenchFlagValues values;
  return BenchFlags(&options, &values).Usage();
}

std::string BenchSummaryJson(const BenchResult& r) {
  const common::RequestStats total = r.totals.Total();
  const uint64_t requests = total.Requests();
  const uint64_t dropped = total.outcomes[static_cast<size_t>(common::Outcome::kDropped)];
  nlohmann::json errors = nlohmann::json::object();
  for (size_t o = 1; o < static_cast<size_t>(common::Outcome::kCount); ++o) {
    errors[common::OutcomeName(static_cast<common::Outcome>(o))] = total.outcomes[o];
  }
  nlohmann::json status = nlohmann::json::object();
  for (int c = 1; c <= 5; ++c) status[absl::StrCat(c, "xx")] = total.status_classes[c];
  nlohmann::json out = {
      {"url", r.url},
      {"model", r.open ? "open" : "closed"},
      {"threads", r.threads},
      {"io", r.io},
      {"protocol", r.protocol},
      {"duration_s", r.elapsed_s},
      {"requests", requests},
      {"ok", total.outcomes[0]},
      {"errors_total", total.Errors()},
      {"errors", errors},
      {"status", status},
      {"rps", requests / r.elapsed_s},
      {"latency_ns", common::HistogramSummaryJson(total.latency)},
      {"connections_opened", r.totals.connections_opened},
      {"bytes_read", r.totals.bytes_read},
      {"bytes_written", r.totals.bytes_written},
      {"cpu",
       {{"user_s", r.user_cpu_s},
        {"system_s", r.system_cpu_s},
        {"requests_per_cpu_s", CpuSeconds(r) > 0 ? requests / CpuSeconds(r) : 0.0},
        {"busiest_thread", r.busiest_thread},
        {"max_timer_lag_ns", r.max_timer_lag_ns}}},
      {"saturated", Saturated(r)},
  };
  if (r.max_streams != 0) out["max_streams"] = r.max_streams;
  if (r.open) {
    out["users"] = nullptr;
    out["service_time_ns"] = common::HistogramSummaryJson(total.service);
    out["open"] = {{"target_rate", static_cast<double>(r.planned_arrivals) / r.planned_duration_s},
                   {"connections", r.connections},
                   {"planned", r.totals.planned},
                   {"late", r.totals.late},
                   {"dropped", dropped},
                   {"achieved_rate", (r.totals.planned - dropped) / r.planned_duration_s}};
  } else {
    out["users"] = r.max_users;
  }
  if (r.request_names.size() > 1) {
    nlohmann::json by_name = nlohmann::json::object();
    for (size_t i = 0; i < r.request_names.size(); ++i) {
      const common::RequestStats& s = r.totals.requests[i];
      by_name[r.request_names[i]] = {{"requests", s.Requests()},
                                     {"errors", s.Errors()},
                                     {"latency_ns", common::HistogramSummaryJson(s.latency)}};
    }
    out["by_request"] = by_name;
  }
  return out.dump(2) + "\n";
}

std::string BenchSummaryText(const BenchResult& r) {
  const common::RequestStats total = r.totals.Total();
  const uint64_t requests = total.Requests();
  auto fmt = [](uint64_t ns) { return common::FormatNanos(ns); };
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "\n  %llu requests in %.2fs, %.0f req/s, %llu errors\n",
                static_cast<unsigned long long>(requests), r.elapsed_s, requests / r.elapsed_s,
                static_cast<unsigned long long>(total.Errors()));
  out += line;
  auto latency = [&](const char* title, const common::Histogram& h) {
    std::snprintf(line, sizeof(line), "  %-16s p50 %-9s p90 %-9s p99 %-9s p99.9 %-9s max %s\n",
                  title, fmt(h.ValueAtQuantile(0.5)).c_str(), fmt(h.ValueAtQuantile(0.9)).c_str(),
                  fmt(h.ValueAtQuantile(0.99)).c_str(), fmt(h.ValueAtQuantile(0.999)).c_str(),
                  fmt(h.max()).c_str());
    out += line;
  };
  latency(r.open ? "latency (corr.)" : "latency", total.latency);
  if (r.open) {
    latency("service time", total.service);
    std::snprintf(line, sizeof(line), "  arrivals: %llu planned, %llu late (>1ms), %llu dropped\n",
                  static_cast<unsigned long long>(r.totals.planned),
                  static_cast<unsigned long long>(r.totals.late),
                  static_cast<unsigned long long>(
                      total.outcomes[static_cast<size_t>(common::Outcome::kDropped)]));
    out += line;
  }
  out += "  status:";
  for (int c = 1; c <= 5; ++c) {
    if (total.status_classes[c] != 0) absl::StrAppend(&out, " ", c, "xx=", total.status_classes[c]);
  }
  out += "\n" + common::FormatErrorCounts(total);
  std::snprintf(
      line, sizeof(line),
      "  client cpu: %.2fs user + %.2fs system = %.0f req per cpu-second; busiest thread %.0f%%\n",
      r.user_cpu_s, r.system_cpu_s, CpuSeconds(r) > 0 ? requests / CpuSeconds(r) : 0.0,
      r.busiest_thread * 100);
  out += line;
  if (Saturated(r)) {
    std::snprintf(line, sizeof(line),
                  "  WARNING: the generator was saturated in %llu of %llu seconds (a thread above "
                  "90%% CPU\n  or timers late by >10ms); the figures may describe the client, not "
                  "the target.\n  Add threads or agents.\n",
                  static_cast<unsigned long long>(r.saturated_seconds),
                  static_cast<unsigned long long>(r.seconds));
    out += line;
  }
  return out;
}

int RunBench(BenchOptions options) {
  // Block the stop signals in every thread; one watcher thread turns them into Engine::Stop.
  common::BlockStopSignals();
  const std::string url = options.engine.url;
  const std::string protocol = options.engine.protocol;
  const uint32_t max_streams = options.engine.max_concurrent_streams;
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(std::move(options.engine));
  if (!engine.ok()) {
    std::cerr << "stampede-agent bench: " << engine.status().message() << "\n";
    return 2;
  }
  {
    common::MutexLock lock(EngineMutex());
    g_engine = engine->get();
  }
  common::WatchStopSignals([](int, int count) {
    // A second signal skips the grace period for requests in flight.
    common::MutexLock lock(EngineMutex());
    if (g_engine != nullptr) g_engine->Stop(/*abort=*/count > 1);
  });
  const BenchResult result = Measure(engine->get(), url, protocol, max_streams, options.quiet);
  {
    common::MutexLock lock(EngineMutex());
    g_engine = nullptr;
  }
  std::cout << (options.json ? BenchSummaryJson(result) : BenchSummaryText(result)) << std::flush;
  return 0;
}

}  // namespace stampede::agent
