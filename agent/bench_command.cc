#include "agent/bench_command.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/duration.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "common/status_macros.h"

namespace stampede::agent {

const char kBenchUsage[] =
    "usage: stampede-agent bench --url URL (--users N | --rate R) --duration D [options]\n"
    "\n"
    "load model (exactly one of --users and --rate):\n"
    "  --users N            closed model: N virtual users, each on its own keep-alive connection\n"
    "  --spawn-rate R       users started per second (default: all at once)\n"
    "  --think MIN[,MAX]    think time between a user's requests, uniform in [MIN, MAX] (default 0s)\n"
    "  --rate R             open model: R requests per second, latency measured from the planned\n"
    "                       send time (coordinated-omission corrected) and as service time\n"
    "  --connections N      open model: requests in flight at most (default: rate/10, 100..10000)\n"
    "  --stages D:T,...     ramp linearly from the --users or --rate value (0 if neither is given:\n"
    "                       users) through each target, e.g. 10s:100,30s:100,10s:0\n"
    "  --duration D         how long to apply load (e.g. 30s, 1m30s); optional with --stages\n"
    "\n"
    "requests:\n"
    "  --url URL            http:// or https:// target\n"
    "  --method M           HTTP method (default GET)\n"
    "  --header 'K: V'      extra request header (repeatable)\n"
    "  --body S             request body\n"
    "  --expect-status L    status codes that count as success, e.g. 200,201 (default 100-399)\n"
    "  --timeout D          per-request timeout (default 10s)\n"
    "  --grace D            time in-flight requests get after the end (default: the timeout)\n"
    "  --insecure           https: skip certificate verification\n"
    "  --cacert FILE        https: trust this CA (PEM) as well\n"
    "\n"
    "engine and output:\n"
    "  --threads T          event-loop threads (default: one per core)\n"
    "  --seed N             random seed for the request mix and think times\n"
    "  --json               print the summary as JSON\n"
    "  --quiet              no per-second progress lines\n";

namespace {

absl::Status FlagError(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

absl::StatusOr<int64_t> DurationFlag(const std::string& flag, const std::string& value) {
  auto d = common::ParseDuration(value);
  if (!d.ok()) return FlagError(flag, std::string(d.status().message()));
  return absl::ToInt64Nanoseconds(*d);
}

}  // namespace

absl::StatusOr<BenchOptions> ParseBenchFlags(const std::vector<std::string>& args) {
  BenchOptions opt;
  EngineConfig& cfg = opt.engine;
  RequestSpec request;
  bool request_customized = false;
  int64_t users = -1, duration = 0;
  double rate = -1, spawn_rate = 0;
  std::vector<Stage> stages;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    auto value = [&]() -> absl::StatusOr<std::string> {
      if (i + 1 >= args.size()) return FlagError(flag, "needs a value");
      return args[++i];
    };
    if (flag == "--json") {
      opt.json = true;
    } else if (flag == "--quiet") {
      opt.quiet = true;
    } else if (flag == "--insecure") {
      cfg.insecure_skip_verify = true;
    } else if (flag == "--url") {
      ASSIGN_OR_RETURN(cfg.url, value());
    } else if (flag == "--users") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtoi(v, &users) || users < 0 || users > 10'000'000) {
        return FlagError(flag, absl::StrCat("\"", v, "\" is not a user count"));
      }
    } else if (flag == "--rate") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtod(v, &rate) || !(rate >= 0) || !std::isfinite(rate)) {
        return FlagError(flag, absl::StrCat("\"", v, "\" is not a rate"));
      }
    } else if (flag == "--spawn-rate") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtod(v, &spawn_rate) || !(spawn_rate > 0) || !std::isfinite(spawn_rate)) {
        return FlagError(flag, absl::StrCat("\"", v, "\" is not a rate > 0"));
      }
    } else if (flag == "--think") {
      ASSIGN_OR_RETURN(std::string v, value());
      std::vector<std::string> parts = absl::StrSplit(v, ',');
      if (parts.size() > 2) return FlagError(flag, "want MIN or MIN,MAX");
      ASSIGN_OR_RETURN(cfg.think_min_ns, DurationFlag(flag, parts[0]));
      cfg.think_max_ns = cfg.think_min_ns;
      if (parts.size() == 2) {
        ASSIGN_OR_RETURN(cfg.think_max_ns, DurationFlag(flag, parts[1]));
        if (cfg.think_max_ns < cfg.think_min_ns) return FlagError(flag, "MAX is below MIN");
      }
    } else if (flag == "--stages") {
      ASSIGN_OR_RETURN(std::string v, value());
      for (absl::string_view part : absl::StrSplit(v, ',')) {
        std::vector<std::string> dt = absl::StrSplit(part, ':');
        Stage s;
        if (dt.size() != 2 || !absl::SimpleAtod(dt[1], &s.target) || s.target < 0) {
          return FlagError(flag, absl::StrCat("\"", part, "\" is not DURATION:TARGET"));
        }
        ASSIGN_OR_RETURN(s.duration_ns, DurationFlag(flag, dt[0]));
        if (s.duration_ns <= 0) return FlagError(flag, absl::StrCat("\"", part, "\" has no duration"));
        stages.push_back(s);
      }
    } else if (flag == "--duration") {
      ASSIGN_OR_RETURN(std::string v, value());
      ASSIGN_OR_RETURN(duration, DurationFlag(flag, v));
      if (duration <= 0) return FlagError(flag, "must be > 0");
    } else if (flag == "--timeout") {
      ASSIGN_OR_RETURN(std::string v, value());
      ASSIGN_OR_RETURN(cfg.timeout_ns, DurationFlag(flag, v));
      if (cfg.timeout_ns <= 0) return FlagError(flag, "must be > 0");
    } else if (flag == "--grace") {
      ASSIGN_OR_RETURN(std::string v, value());
      ASSIGN_OR_RETURN(cfg.grace_ns, DurationFlag(flag, v));
    } else if (flag == "--threads") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtoi(v, &cfg.threads) || cfg.threads == 0 || cfg.threads > 1024) {
        return FlagError(flag, absl::StrCat("\"", v, "\" is not a thread count in 1..1024"));
      }
    } else if (flag == "--connections") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtoi(v, &cfg.connections) || cfg.connections == 0) {
        return FlagError(flag, absl::StrCat("\"", v, "\" is not a count > 0"));
      }
    } else if (flag == "--seed") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (!absl::SimpleAtoi(v, &cfg.seed)) return FlagError(flag, absl::StrCat("\"", v, "\" is not a number"));
    } else if (flag == "--method") {
      ASSIGN_OR_RETURN(request.method, value());
      request_customized = true;
    } else if (flag == "--header") {
      ASSIGN_OR_RETURN(std::string v, value());
      const size_t colon = v.find(':');
      if (colon == std::string::npos || colon == 0) return FlagError(flag, absl::StrCat("\"", v, "\" is not 'Name: value'"));
      std::string name = v.substr(0, colon), val = v.substr(colon + 1);
      while (!val.empty() && val.front() == ' ') val.erase(0, 1);
      request.headers.emplace_back(name, val);
      request_customized = true;
    } else if (flag == "--body") {
      ASSIGN_OR_RETURN(request.body, value());
      request_customized = true;
    } else if (flag == "--expect-status") {
      ASSIGN_OR_RETURN(std::string v, value());
      for (absl::string_view code : absl::StrSplit(v, ',')) {
        int c;
        if (!absl::SimpleAtoi(code, &c) || c < 100 || c > 599) {
          return FlagError(flag, absl::StrCat("\"", code, "\" is not a status code"));
        }
        request.expect_status.push_back(c);
      }
      request_customized = true;
    } else if (flag == "--cacert") {
      ASSIGN_OR_RETURN(cfg.ca_file, value());
    } else if (flag == "-h" || flag == "--help") {
      return absl::InvalidArgumentError("help");
    } else {
      return FlagError(flag, "unknown flag");
    }
  }
  if (cfg.url.empty()) return FlagError("--url", "is required");
  if (users >= 0 && rate >= 0) return FlagError("--users/--rate", "give exactly one of them");
  if (users < 0 && rate < 0 && stages.empty()) return FlagError("--users/--rate", "give exactly one of them");
  if (stages.empty() && users == 0) return FlagError("--users", "must be > 0 (or start a --stages ramp)");
  if (stages.empty() && rate == 0) return FlagError("--rate", "must be > 0 (or start a --stages ramp)");
  if (duration == 0 && stages.empty()) return FlagError("--duration", "is required");
  const bool open = rate >= 0;
  if (open && spawn_rate > 0) return FlagError("--spawn-rate", "applies to --users only");
  if (open && (cfg.think_min_ns > 0 || cfg.think_max_ns > 0)) return FlagError("--think", "applies to --users only");
  if (!open && cfg.connections != 0) {
    return FlagError("--connections", "applies to --rate only (each user has one connection)");
  }
  if (!stages.empty() && spawn_rate > 0) return FlagError("--spawn-rate", "cannot be combined with --stages");
  // With --stages alone the model is closed, starting from 0 users.
  absl::StatusOr<LoadPlan> plan =
      open ? LoadPlan::Open(rate, stages, duration)
           : LoadPlan::Closed(static_cast<uint32_t>(std::max<int64_t>(users, 0)), spawn_rate, stages, duration);
  if (!plan.ok()) return FlagError(open ? "--rate" : "--users", std::string(plan.status().message()));
  cfg.plan = *plan;
  if (request_customized) cfg.requests.push_back(request);
  return opt;
}

namespace {

struct Totals {
  IntervalStats all;
  double busiest_thread = 0;
  int64_t max_lag_ns = 0;
  bool saturated = false;
  uint64_t intervals = 0;
  uint64_t saturated_intervals = 0;
};

nlohmann::json Percentiles(const common::Histogram& h) {
  return {{"count", h.count()},
          {"min", h.min()},
          {"mean", static_cast<uint64_t>(std::llround(h.Mean()))},
          {"p50", h.ValueAtQuantile(0.5)},
          {"p90", h.ValueAtQuantile(0.9)},
          {"p95", h.ValueAtQuantile(0.95)},
          {"p99", h.ValueAtQuantile(0.99)},
          {"p999", h.ValueAtQuantile(0.999)},
          {"max", h.max()}};
}

std::atomic<Engine*> g_engine{nullptr};

}  // namespace

int RunBench(BenchOptions options) {
  // Block the stop signals in every thread; one watcher thread turns them into Engine::Stop.
  common::BlockStopSignals();

  const bool open = options.engine.plan.model() == LoadPlan::Model::kOpen;
  const std::string url = options.engine.url;
  auto created = Engine::Create(std::move(options.engine));
  if (!created.ok()) {
    std::cerr << "stampede-agent bench: " << created.status().message() << "\n";
    return 2;
  }
  std::unique_ptr<Engine> engine = std::move(*created);
  g_engine.store(engine.get());
  common::WatchStopSignals([](int, int count) {
    // A second signal skips the grace period for requests in flight.
    if (Engine* e = g_engine.load(); e != nullptr) e->Stop(/*abort=*/count > 1);
  });
  const LoadPlan& plan = engine->plan();

  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  engine->Start();
  const bool tty = isatty(STDERR_FILENO);
  if (!options.quiet) {
    std::fprintf(stderr, "stampede-agent bench %s: %s for %.1fs, %u thread(s)%s\n", url.c_str(),
                 open ? absl::StrCat(plan.RateAt(0) > 0 ? plan.RateAt(0) : 0, " req/s (open model)").c_str()
                      : absl::StrCat(plan.MaxUsers(), " users (closed model)").c_str(),
                 plan.duration_ns() / 1e9, engine->threads(),
                 open ? absl::StrCat(", ", engine->connections(), " connections").c_str() : "");
  }

  Totals totals;
  totals.all = IntervalStats(engine->requests().size());
  while (auto interval = engine->NextInterval()) {
    totals.all.Merge(*interval);
    totals.busiest_thread = std::max(totals.busiest_thread, interval->busiest_thread_cpu);
    totals.max_lag_ns = std::max(totals.max_lag_ns, interval->max_timer_lag_ns);
    const bool saturated_now = common::IntervalSaturated(interval->busiest_thread_cpu, interval->max_timer_lag_ns);
    ++totals.intervals;
    if (saturated_now) ++totals.saturated_intervals;
    totals.saturated = common::RunSaturated(totals.saturated_intervals, totals.intervals);
    if (options.quiet) continue;
    common::Histogram latency;
    for (const RequestStats& r : interval->requests) latency.Merge(r.latency);
    char line[256];
    // Requests still finishing after the end land in a last, partial interval.
    const bool drain = interval->index * 1'000'000'000LL >= plan.duration_ns();
    char when[16];
    std::snprintf(when, sizeof(when), drain ? "drain" : "%4llds", static_cast<long long>(interval->index + 1));
    std::snprintf(line, sizeof(line),
                  "%5s  %s %-7u %s %-9llu p50 %-9s p95 %-9s p99 %-9s errors %llu%s", when,
                  open ? "inflight" : "users",
                  open ? interval->in_flight : interval->active_users, drain ? "done" : "rps ",
                  static_cast<unsigned long long>(interval->Requests()),
                  common::FormatNanos(latency.ValueAtQuantile(0.5)).c_str(),
                  common::FormatNanos(latency.ValueAtQuantile(0.95)).c_str(),
                  common::FormatNanos(latency.ValueAtQuantile(0.99)).c_str(),
                  static_cast<unsigned long long>(interval->Errors()),
                  saturated_now ? "  [generator saturated]" : "");
    std::fprintf(stderr, tty ? "\r%s\x1b[K" : "%s\n", line);
  }
  if (!options.quiet && tty) std::fputc('\n', stderr);
  const double elapsed_s = std::max(1e-9, (common::MonotonicNanos() - engine->start_ns()) / 1e9);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  auto seconds = [](const timeval& a, const timeval& b) {
    return (b.tv_sec - a.tv_sec) + (b.tv_usec - a.tv_usec) / 1e6;
  };
  const double user_s = seconds(before.ru_utime, after.ru_utime);
  const double sys_s = seconds(before.ru_stime, after.ru_stime);

  RequestStats total;
  for (const RequestStats& r : totals.all.requests) total.Merge(r);
  const uint64_t requests = total.Requests();
  nlohmann::json errors = nlohmann::json::object();
  for (size_t o = 1; o < static_cast<size_t>(Outcome::kCount); ++o) {
    errors[OutcomeName(static_cast<Outcome>(o))] = total.outcomes[o];
  }
  nlohmann::json status = nlohmann::json::object();
  for (int c = 1; c <= 5; ++c) status[absl::StrCat(c, "xx")] = total.status_classes[c];
  nlohmann::json out = {
      {"url", url},
      {"model", open ? "open" : "closed"},
      {"threads", engine->threads()},
      {"duration_s", elapsed_s},
      {"requests", requests},
      {"ok", total.outcomes[0]},
      {"errors_total", total.Errors()},
      {"errors", errors},
      {"status", status},
      {"rps", requests / elapsed_s},
      {"latency_ns", Percentiles(total.latency)},
      {"connections_opened", totals.all.connections_opened},
      {"bytes_read", totals.all.bytes_read},
      {"bytes_written", totals.all.bytes_written},
      {"cpu", {{"user_s", user_s},
               {"system_s", sys_s},
               {"requests_per_cpu_s", (user_s + sys_s) > 0 ? requests / (user_s + sys_s) : 0.0},
               {"busiest_thread", totals.busiest_thread},
               {"max_timer_lag_ns", totals.max_lag_ns}}},
      {"saturated", totals.saturated},
  };
  if (open) {
    out["users"] = nullptr;
    out["service_time_ns"] = Percentiles(total.service);
    out["open"] = {{"target_rate", static_cast<double>(plan.TotalArrivals()) / (plan.duration_ns() / 1e9)},
                   {"connections", engine->connections()},
                   {"planned", totals.all.planned},
                   {"late", totals.all.late},
                   {"dropped", total.outcomes[static_cast<size_t>(Outcome::kDropped)]},
                   {"achieved_rate", (totals.all.planned - total.outcomes[static_cast<size_t>(Outcome::kDropped)]) / (plan.duration_ns() / 1e9)}};
  } else {
    out["users"] = plan.MaxUsers();
  }
  if (engine->requests().size() > 1) {
    nlohmann::json by_name = nlohmann::json::object();
    for (size_t i = 0; i < engine->requests().size(); ++i) {
      const RequestStats& r = totals.all.requests[i];
      by_name[engine->requests()[i].name] = {{"requests", r.Requests()}, {"errors", r.Errors()},
                                             {"latency_ns", Percentiles(r.latency)}};
    }
    out["by_request"] = by_name;
  }

  if (options.json) {
    std::cout << out.dump(2) << std::endl;
  } else {
    auto fmt = [](uint64_t ns) { return common::FormatNanos(ns); };
    std::printf("\n  %llu requests in %.2fs, %.0f req/s, %llu errors\n",
                static_cast<unsigned long long>(requests), elapsed_s, requests / elapsed_s,
                static_cast<unsigned long long>(total.Errors()));
    auto print_latency = [&](const char* title, const common::Histogram& h) {
      std::printf("  %-16s p50 %-9s p90 %-9s p99 %-9s p99.9 %-9s max %s\n", title,
                  fmt(h.ValueAtQuantile(0.5)).c_str(), fmt(h.ValueAtQuantile(0.9)).c_str(),
                  fmt(h.ValueAtQuantile(0.99)).c_str(), fmt(h.ValueAtQuantile(0.999)).c_str(),
                  fmt(h.max()).c_str());
    };
    print_latency(open ? "latency (corr.)" : "latency", total.latency);
    if (open) {
      print_latency("service time", total.service);
      std::printf("  arrivals: %llu planned, %llu late (>1ms), %llu dropped\n",
                  static_cast<unsigned long long>(totals.all.planned),
                  static_cast<unsigned long long>(totals.all.late),
                  static_cast<unsigned long long>(total.outcomes[static_cast<size_t>(Outcome::kDropped)]));
    }
    std::printf("  status:");
    for (int c = 1; c <= 5; ++c) {
      if (total.status_classes[c] != 0) std::printf(" %dxx=%llu", c, static_cast<unsigned long long>(total.status_classes[c]));
    }
    std::printf("\n");
    if (total.Errors() != 0) {
      std::printf("  errors:");
      for (size_t o = 1; o < static_cast<size_t>(Outcome::kCount); ++o) {
        if (total.outcomes[o] != 0) {
          std::printf(" %s=%llu", OutcomeName(static_cast<Outcome>(o)), static_cast<unsigned long long>(total.outcomes[o]));
        }
      }
      std::printf("\n");
    }
    std::printf("  client cpu: %.2fs user + %.2fs system = %.0f req per cpu-second; busiest thread %.0f%%\n",
                user_s, sys_s, (user_s + sys_s) > 0 ? requests / (user_s + sys_s) : 0.0,
                totals.busiest_thread * 100);
    if (totals.saturated) {
      std::printf("  WARNING: the generator was saturated in %llu of %llu seconds (a thread above 90%% CPU\n"
                  "  or timers late by >10ms); the figures may describe the client, not the target.\n"
                  "  Add threads or agents.\n",
                  static_cast<unsigned long long>(totals.saturated_intervals),
                  static_cast<unsigned long long>(totals.intervals));
    }
  }
  g_engine.store(nullptr);
  return 0;
}

}  // namespace stampede::agent
