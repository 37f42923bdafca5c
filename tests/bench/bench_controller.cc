// stampede-bench-controller: the controller side of scripts/bench-controller. Starts one
// Controller in this process, serves its /metrics (when the library has the HTTP API), and starts
// one run whose "launcher" execs a single stampede-fake-agents process playing all the agents.
// While the run goes it samples its own /proc/self/stat and /proc/self/status, so the CPU and
// memory it reports are the controller's alone (the fake agents are another process); it records
// when each interval is finalized through Run::SetObserver. Prints one JSON object at the end.
//
// Exit: 0 when the run succeeded and the fake agents exited 0; 1 otherwise; 2 on bad flags.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/spec.h"
#include "controller/controller.h"
#include "controller/http_api.h"

extern char** environ;

namespace stampede::bench {
namespace {

using controller::AgentLauncher;
using controller::IntervalPoint;
using controller::LaunchRequest;

constexpr int64_t kSecond = 1'000'000'000;
// Each agent's share of the users: reports carry it as active_users, so a finalized interval's
// active_users divided by this is how many reports it merged.
constexpr uint32_t kUsersPerAgent = 50;

const char kUsage[] =
    "usage: stampede-bench-controller [--agents N] [--requests R] [--duration D] "
    "[--samples-per-second S]\n"
    "                                 [--channels C] [--poll-ms P] [--fake-agents PATH] "
    "[--fake-agents-cpus LIST]\n"
    "                                 [--logs DIR]\n"
    "  One controller in this process against one stampede-fake-agents process playing N agents\n"
    "  (default 1000 agents, 5 requests, 30s, 2000 samples/s per agent, one channel per 100 "
    "agents).\n"
    "  --poll-ms P            the fake agents poll this process's /metrics every P ms (default 50; "
    "0: never)\n"
    "  --fake-agents PATH     default: stampede-fake-agents next to this executable\n"
    "  --fake-agents-cpus L   pin the fake agents to CPUs L (e.g. 0 or 0,2-3)\n"
    "  --logs DIR             the fake agents' stdout (JSON) and stderr go to "
    "DIR/fake-agents.{json,log}\n"
    "  Prints one JSON object: controller CPU and memory, finalization lag, totals.\n";

int64_t RealNs() { return common::RealtimeNanos(); }
int64_t MonoNs() { return common::MonotonicNanos(); }

struct Options {
  uint32_t agents = 1000;
  uint32_t requests = 5;
  int64_t duration_s = 30;
  uint32_t samples_per_second = 2000;
  uint32_t channels = 0;  // 0: one per 100 agents, so each connection carries 100 streams
  uint32_t poll_ms = 50;
  std::string fake_agents;
  std::vector<int> fake_agents_cpus;
  std::string logs;
};

absl::StatusOr<std::vector<int>> ParseCpuList(const std::string& text) {
  std::vector<int> cpus;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::vector<std::string> range = absl::StrSplit(part, '-');
    int lo = 0, hi = 0;
    if (range.size() > 2 || !absl::SimpleAtoi(range[0], &lo) ||
        !absl::SimpleAtoi(range.back(), &hi) || lo < 0 || hi < lo || hi >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fake-agents-cpus: \"", text, "\" is not a CPU list like 0,2-3"));
    }
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

std::string SelfDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  const std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

absl::StatusOr<Options> ParseFlags(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, ": needs a value"));
    const std::string value = argv[++i];
    auto number = [&](uint32_t* into, uint32_t min, uint32_t max) {
      if (!absl::SimpleAtoi(value, into) || *into < min || *into > max) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": \"", value, "\" is not a number in ", min, "..", max));
      }
      return absl::OkStatus();
    };
    absl::Status s;
    if (flag == "--agents") {
      // The spec's limit on agents is the product's; the benchmark goes no further.
      s = number(&opt.agents, 1, common::kMaxAgents);
    } else if (flag == "--requests") {
      s = number(&opt.requests, 1, 100);
    } else if (flag == "--samples-per-second") {
      s = number(&opt.samples_per_second, 0, 10'000'000);
    } else if (flag == "--channels") {
      s = number(&opt.channels, 1, 10000);
    } else if (flag == "--poll-ms") {
      s = number(&opt.poll_ms, 0, 60000);
    } else if (flag == "--duration") {
      auto d = common::ParseDuration(value);
      if (!d.ok())
        return absl::InvalidArgumentError(absl::StrCat("--duration: ", d.status().message()));
      const int64_t ns = absl::ToInt64Nanoseconds(*d);
      if (ns < 2 * kSecond || ns % kSecond != 0)
        return absl::InvalidArgumentError("--duration: whole seconds, at least 2s");
      opt.duration_s = ns / kSecond;
    } else if (flag == "--fake-agents") {
      opt.fake_agents = value;
    } else if (flag == "--fake-agents-cpus") {
      auto cpus = ParseCpuList(value);
      if (!cpus.ok()) return cpus.status();
      opt.fake_agents_cpus = *cpus;
    } else if (flag == "--logs") {
      opt.logs = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown flag"));
    }
    if (!s.ok()) return s;
  }
  if (opt.channels == 0) opt.channels = (opt.agents + 99) / 100;
  if (opt.fake_agents.empty()) opt.fake_agents = SelfDir() + "/stampede-fake-agents";
  if (access(opt.fake_agents.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--fake-agents: \"", opt.fake_agents, "\" is not executable"));
  }
  return opt;
}

// Starts every agent of the run as one stampede-fake-agents process; Stop lets it finish (its
// streams have all closed by the time the run ends) before it resorts to signals.
class FakeAgentsLauncher : public AgentLauncher {
 public:
  FakeAgentsLauncher(std::vector<std::string> args, std::vector<int> cpus, std::string out_path,
                     std::string log_path)
      : args_(std::move(args)),
        cpus_(std::move(cpus)),
        out_path_(std::move(out_path)),
        log_path_(std::move(log_path)) {}
  ~FakeAgentsLauncher() override { Stop(); }

  absl::Status Launch(const LaunchRequest& request) override {
    std::vector<std::string> args = args_;
    for (const std::string& a :
         {std::string("--controller"), request.controller_address, std::string("--run"),
          request.run_id, std::string("--agents"), std::to_string(request.agents)}) {
      args.push_back(a);
    }
    // The token goes through the environment, as LocalLauncher passes it.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "STAMPEDE_TOKEN=", 15) != 0) env.emplace_back(*e);
    }
    env.push_back("STAMPEDE_TOKEN=" + request.token);
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus_) CPU_SET(c, &set);

    const int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || log < 0) {
      if (out >= 0) close(out);
      if (log >= 0) close(log);
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write ", out_path_, " or ", log_path_));
    }
    common::MutexLock lock(&mu_);
    const pid_t pid = fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec: this process has gRPC threads.
      if (!cpus_.empty()) sched_setaffinity(0, sizeof(set), &set);
      dup2(out, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out);
    close(log);
    if (pid < 0) return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(errno)));
    pid_ = pid;
    return absl::OkStatus();
  }

  void Stop() override {
    if (Wait(15000).has_value()) return;
    Signal(SIGTERM);
    if (Wait(5000).has_value()) return;
    Signal(SIGKILL);
    Wait(-1);
  }

  std::string LogLocation(uint32_t) const override { return log_path_; }

  // The exit status (as waitpid gives it) once the process has ended, waiting up to `timeout_ms`
  // (-1: forever); nullopt if it is still running or was never started.
  std::optional<int> Wait(int timeout_ms) {
    const int64_t deadline = MonoNs() + static_cast<int64_t>(timeout_ms) * 1'000'000;
    while (true) {
      {
        common::MutexLock lock(&mu_);
        if (status_.has_value() || pid_ <= 0) return status_;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          status_ = status;
          return status_;
        }
      }
      if (timeout_ms >= 0 && MonoNs() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  void Signal(int sig) {
    common::MutexLock lock(&mu_);
    if (pid_ > 0 && !status_.has_value()) kill(pid_, sig);
  }

  const std::vector<std::string> args_;
  const std::vector<int> cpus_;
  const std::string out_path_, log_path_;
  common::Mutex mu_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<int> status_ ABSL_GUARDED_BY(mu_);
};

// What /proc says about this process at one moment.
struct ProcSample {
  int64_t real_ns = 0;
  int64_t mono_ns = 0;
  int64_t cpu_ticks = 0;  // utime + stime, in clock ticks
  int64_t rss_kb = 0;
};

ProcSample ReadSelf() {
  ProcSample s;
  s.real_ns = RealNs();
  s.mono_ns = MonoNs();
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are
  // fields 14 and 15.
  const size_t paren = text.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream in(text.substr(paren + 2));
    std::string field;
    int64_t utime = 0, stime = 0;
    for (int f = 3; f <= 15 && in >> field; ++f) {
      if (f == 14) (void)absl::SimpleAtoi(field, &utime);
      if (f == 15) (void)absl::SimpleAtoi(field, &stime);
    }
    s.cpu_ticks = utime + stime;
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0)
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)),
                             &s.rss_kb);
  }
  return s;
}

int64_t StatusFieldKb(const char* name) {
  std::ifstream status("/proc/self/status");
  const std::string prefix = absl::StrCat(name, ":");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(prefix, 0) == 0) {
      int64_t kb = 0;
      (void)absl::SimpleAtoi(
          absl::StripAsciiWhitespace(line.substr(prefix.size(), line.size() - prefix.size() - 3)),
          &kb);
      return kb;
    }
  }
  return 0;
}

// Samples this process every 100 ms until destroyed.
class Sampler {
 public:
  Sampler() : thread_([this] { Loop(); }) {}
  ~Sampler() {
    {
      common::MutexLock lock(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    thread_.join();
  }
  std::vector<ProcSample> samples() const {
    common::MutexLock lock(&mu_);
    return samples_;
  }

 private:
  void Loop() {
    mu_.Lock();
    while (!stop_) {
      mu_.Unlock();
      ProcSample s = ReadSelf();
      mu_.Lock();
      samples_.push_back(s);
      const auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      while (!stop_ && cv_.WaitUntil(&mu_, next)) {
      }
    }
    mu_.Unlock();
  }

  mutable common::Mutex mu_;
  common::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<ProcSample> samples_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: starts once the members above exist
};

// CPU % of one core between the last sample at or before `from` and the first at or after `to`
// (realtime ns); -1 when the samples do not cover the span.
double CpuPercent(const std::vector<ProcSample>& samples, int64_t from, int64_t to) {
  const ProcSample* a = nullptr;
  const ProcSample* b = nullptr;
  for (const ProcSample& s : samples) {
    if (s.real_ns <= from) a = &s;
    if (s.real_ns >= to && b == nullptr) b = &s;
  }
  if (a == nullptr || b == nullptr || b->mono_ns <= a->mono_ns) return -1;
  static const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return 100.0 * (b->cpu_ticks - a->cpu_ticks) / hz / ((b->mono_ns - a->mono_ns) / 1e9);
}

double Quantile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * values.size()));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string SpecYaml(const Options& opt) {
  std::string yaml = absl::StrCat(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: "
      "controller-bench}\nspec:\n"
      "  target: {url: \"http://127.0.0.1:1\"}\n  load: {users: ",
      kUsersPerAgent * opt.agents, "}\n  duration: ", opt.duration_s, "s\n  agents: ", opt.agents,
      "\n  threadsPerAgent: 1\n  thresholds: [\"p99 < 10s\", \"error_rate < 5%\"]\n  requests:\n");
  for (uint32_t r = 0; r < opt.requests; ++r)
    absl::StrAppend(&yaml, "    - {name: request-", r, ", path: /r", r, "}\n");
  return yaml;
}

struct Finalized {
  int64_t index;
  uint64_t requests;
  uint32_t active_users;
  int64_t finalized_real_ns;
};

int Main(int argc, char** argv) {
  absl::StatusOr<Options> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "stampede-bench-controller: " << parsed.status().message() << "\n\n" << kUsage;
    return 2;
  }
  const Options opt = *parsed;
  signal(SIGPIPE, SIG_IGN);
  // One line per agent at connect time otherwise; warnings (rejected reports, lost agents) stay.
  if (std::getenv("STAMPEDE_LOG_LEVEL") == nullptr) common::SetLogLevel(common::LogLevel::kWarning);
  std::string logs = opt.logs;
  if (logs.empty()) {
    char tmpl[] = "/tmp/stampede-bench-controller-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::cerr << "stampede-bench-controller: cannot create a folder under /tmp\n";
      return 1;
    }
    logs = tmpl;
  } else if (mkdir(logs.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "stampede-bench-controller: --logs: cannot create " << logs << ": "
              << std::strerror(errno) << "\n";
    return 2;
  }

  auto test = common::ParseLoadTest(SpecYaml(opt));
  if (!test.ok()) {
    std::cerr << "stampede-bench-controller: bad spec: " << test.status().message() << "\n";
    return 1;
  }

  Sampler sampler;  // from before the controller exists: the setup's CPU counts too
  controller::ControllerOptions options;
  options.run_defaults.start_timeout_s = 120;
  auto created = controller::Controller::Create(options);
  if (!created.ok()) {
    std::cerr << "stampede-bench-controller: " << created.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<controller::Controller> ctl = std::move(*created);

  std::string metrics_url;
  controller::HttpApiOptions http_options;
  http_options.listen = "127.0.0.1:0";
  auto http = controller::HttpApi::Start(http_options, ctl.get());
  if (!http.ok()) {
    std::cerr << "stampede-bench-controller: " << http.status().message() << "\n";
    return 1;
  }
  metrics_url = absl::StrCat("http://127.0.0.1:", (*http)->port(), "/metrics");

  std::vector<std::string> fake_args = {opt.fake_agents,
                                        "--requests",
                                        std::to_string(opt.requests),
                                        "--duration",
                                        absl::StrCat(opt.duration_s, "s"),
                                        "--samples-per-second",
                                        std::to_string(opt.samples_per_second),
                                        "--channels",
                                        std::to_string(opt.channels)};
  if (!metrics_url.empty() && opt.poll_ms > 0) {
    for (const std::string& a : {std::string("--metrics-url"), metrics_url,
                                 std::string("--poll-ms"), std::to_string(opt.poll_ms)}) {
      fake_args.push_back(a);
    }
  }
  const std::string fake_out = logs + "/fake-agents.json", fake_log = logs + "/fake-agents.log";
  auto launcher_owned =
      std::make_unique<FakeAgentsLauncher>(fake_args, opt.fake_agents_cpus, fake_out, fake_log);
  FakeAgentsLauncher* launcher = launcher_owned.get();

  common::Mutex points_mu;
  common::CondVar points_cv;
  std::vector<Finalized> points;
  bool points_ended = false;  // the observer's last call came: every interval is in `points`
  const int64_t launched_real = RealNs();
  std::shared_ptr<controller::Run> run = ctl->StartRun(std::move(*test), std::move(launcher_owned));
  // No interval can be finalized before every agent has connected, so no point is missed here.
  run->SetObserver([&](const controller::RunEvent& e) {
    if (e.kind != controller::RunEvent::Kind::kInterval &&
        e.kind != controller::RunEvent::Kind::kEnded)
      return;
    const IntervalPoint* p = e.point;
    const int64_t real = p == nullptr ? 0 : RealNs() - (MonoNs() - p->finalized_at_ns);
    common::MutexLock lock(&points_mu);
    if (p == nullptr) {
      points_ended = true;
      points_cv.SignalAll();
      return;
    }
    points.push_back({p->index, p->requests, p->active_users, real});
  });
  std::fprintf(stderr,
               "bench-controller: run %s, %u agents, controller %s%s%s, fake agents log %s\n",
               run->id().c_str(), opt.agents, ctl->agent_address().c_str(),
               metrics_url.empty() ? "" : ", metrics ", metrics_url.c_str(), fake_log.c_str());

  const bool ended = run->WaitDone(static_cast<int>((opt.duration_s + 180) * 1000));
  if (!ended) run->Abort("benchmark timed out");
  run->WaitDone(30000);
  {
    // The last intervals reach the observer on the tick after the run ended.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    common::MutexLock lock(&points_mu);
    while (!points_ended && points_cv.WaitUntil(&points_mu, deadline)) {
    }
  }
  run->SetObserver(nullptr);  // `points` dies before the controller's ticker stops
  const std::optional<int> fake_status = launcher->Wait(30000);
  const int64_t vm_hwm_kb = StatusFieldKb("VmHWM");
  const std::vector<ProcSample> samples = sampler.samples();
  const controller::Run::Snapshot snap = run->TakeSnapshot(true);

  nlohmann::json fake = nlohmann::json::object();
  {
    std::ifstream in(fake_out);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    fake = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
    if (fake.is_discarded()) fake = nlohmann::json::object();
  }
  const int64_t start = fake.value("start_unix_nanos", int64_t{0});
  const int64_t end = start + opt.duration_s * kSecond;

  // The steady middle: skip the first and last tenth (at least 2 s each) of the load.
  const int64_t skip = std::max<int64_t>(2, opt.duration_s / 10) * kSecond;
  const double cpu_steady = start != 0 ? CpuPercent(samples, start + skip, end - skip) : -1;
  const double cpu_setup = start != 0 ? CpuPercent(samples, launched_real, start) : -1;
  std::vector<double> cpu_per_second;
  for (int64_t t = start + skip; start != 0 && t + kSecond <= end - skip; t += kSecond) {
    cpu_per_second.push_back(CpuPercent(samples, t, t + kSecond));
  }
  // RSS when the steady middle begins and ends: growth between them would be a leak per report.
  int64_t rss_begin_kb = 0, rss_end_kb = 0;
  for (const ProcSample& s : samples) {
    if (s.real_ns <= start + skip) rss_begin_kb = s.rss_kb;
    if (s.real_ns <= end - skip) rss_end_kb = s.rss_kb;
  }

  std::vector<double> lag_ms;
  uint64_t series_requests = 0, reports_merged = 0, reports_merged_steady = 0, intervals_short = 0;
  int64_t steady_intervals = 0;
  {
    common::MutexLock lock(&points_mu);
    for (const Finalized& p : points) {
      series_requests += p.requests;
      const uint64_t merged = p.active_users / kUsersPerAgent;
      reports_merged += merged;
      if (p.index >= opt.duration_s) continue;  // a stray interval past the end would show here
      if (merged < opt.agents) ++intervals_short;
      if (start != 0)
        lag_ms.push_back((p.finalized_real_ns - (start + (p.index + 1) * kSecond)) / 1e6);
      if ((p.index + 1) * kSecond > skip &&
          (p.index + 1) * kSecond <= opt.duration_s * kSecond - skip) {
        reports_merged_steady += merged;
        ++steady_intervals;
      }
    }
  }

  const v1::LoadTestStatus& st = snap.status;
  const uint64_t fake_requests = fake.value("requests_sent", uint64_t{0});
  const bool fake_ok =
      fake_status.has_value() && WIFEXITED(*fake_status) && WEXITSTATUS(*fake_status) == 0;
  nlohmann::json out = {
      {"agents", opt.agents},
      {"requests_per_agent", opt.requests},
      {"duration_s", opt.duration_s},
      {"samples_per_second_per_agent", opt.samples_per_second},
      {"channels", opt.channels},
      {"run", run->id()},
      {"phase", st.phase()},
      {"reason", st.reason()},
      {"message", st.message()},
      {"controller_requests", st.summary().requests()},
      {"fake_requests_sent", fake_requests},
      {"requests_match", st.summary().requests() == fake_requests && fake_requests != 0},
      {"series_requests", series_requests},
      {"late_requests",
       st.summary().requests() - std::min<uint64_t>(series_requests, st.summary().requests())},
      {"agents_finished", snap.agents_finished},
      {"agents_lost", snap.agents_lost},
      {"intervals_finalized", points.size()},
      {"intervals_short", intervals_short},
      {"reports_merged", reports_merged},
      {"reports_per_second_steady",
       steady_intervals == 0 ? 0.0 : static_cast<double>(reports_merged_steady) / steady_intervals},
      {"steady_window_s", {skip / kSecond, opt.duration_s - skip / kSecond}},
      {"cpu_percent_steady", cpu_steady},
      {"cpu_percent_max_1s", cpu_per_second.empty()
                                 ? -1
                                 : *std::max_element(cpu_per_second.begin(), cpu_per_second.end())},
      {"cpu_percent_setup", cpu_setup},
      {"setup_s", start != 0 ? (start - launched_real) / 1e9 : -1},
      {"cpu_seconds_total",
       samples.empty() ? 0 : samples.back().cpu_ticks / static_cast<double>(sysconf(_SC_CLK_TCK))},
      {"rss_mb_steady_begin", rss_begin_kb / 1024.0},
      {"rss_mb_steady_end", rss_end_kb / 1024.0},
      {"vm_hwm_mb", vm_hwm_kb / 1024.0},
      {"finalize_lag_ms_p50", Quantile(lag_ms, 0.5)},
      {"finalize_lag_ms_p99", Quantile(lag_ms, 0.99)},
      {"finalize_lag_ms_max", Quantile(lag_ms, 1)},
      {"metrics_url", metrics_url},
      {"fake_agents_exit",
       fake_status.has_value()
           ? (WIFEXITED(*fake_status) ? WEXITSTATUS(*fake_status) : 128 + WTERMSIG(*fake_status))
           : -1},
      {"fake_agents", fake},
      {"logs", logs},
  };
  std::cout << out.dump() << std::endl;
  return st.phase() == "Succeeded" && fake_ok ? 0 : 1;
}

}  // namespace
}  // namespace stampede::bench

int main(int argc, char** argv) { return stampede::bench::Main(argc, argv); }
