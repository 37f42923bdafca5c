// `stampede operator` launching one LoadTest with many agents against a real control plane
// whose node agent only simulates Pods (stampede-test-node --simulate: each Pod is reported
// Running, nothing starts, so no agent ever connects). What is checked is the operator's load on
// the API server: every Pod created with one POST, none read one by one (its informer tracks
// them), status written at most every --status-interval, and with the LoadTest deleted every Pod
// gone. (No 429 here: kube-apiserver 1.20 exempts system:masters, the user every component of
// this cluster runs as, from its max-in-flight limits; the launcher's pauses are unit-tested.)
//
// STAMPEDE_SCALE_AGENTS (default 300), STAMPEDE_SCALE_CONCURRENCY (default 16) and
// STAMPEDE_SCALE_TIMEOUT_S (each wait; default agents / 5, at least 120) size the first test;
// scripts/bench-operator runs it with 10,000. Each test prints one line `scale_result {json}` with
// its figures: times, Pods per second, apiserver_request_total by verb and resource, 429s, the
// operator's CPU and peak RSS.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/mutex.h"
#include "controller/kube/informer.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/integration/process.h"

namespace stampede::e2e {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) && n > 0 ? n : fallback;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// apiserver_request_total summed by "VERB resource[/subresource] code".
std::map<std::string, double> RequestCounts(const Cluster& cluster) {
  std::map<std::string, double> counts;
  const CommandResult raw = cluster.Kubectl({"get", "--raw", "/metrics"});
  EXPECT_EQ(raw.exit_code, 0) << raw.ToString();
  for (absl::string_view line : absl::StrSplit(raw.out, '\n')) {
    if (!absl::StartsWith(line, "apiserver_request_total{")) continue;
    const size_t open = line.find('{') + 1, close = line.rfind('}');
    std::map<std::string, std::string> labels;
    for (absl::string_view pair : absl::StrSplit(line.substr(open, close - open), "\",")) {
      std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits("=\"", 1));
      if (kv.size() == 2) labels[kv[0]] = std::string(absl::StripSuffix(kv[1], "\""));
    }
    double value = 0;
    if (!absl::SimpleAtod(line.substr(close + 2), &value)) continue;
    std::string key = absl::StrCat(labels["verb"], " ", labels["resource"]);
    if (!labels["subresource"].empty()) absl::StrAppend(&key, "/", labels["subresource"]);
    counts[absl::StrCat(key, " ", labels["code"])] += value;
  }
  return counts;
}

// after - before, only what moved.
std::map<std::string, double> Delta(const std::map<std::string, double>& before,
                                    const std::map<std::string, double>& after) {
  std::map<std::string, double> out;
  for (const auto& [key, value] : after) {
    const auto it = before.find(key);
    const double d = value - (it == before.end() ? 0 : it->second);
    if (d > 0) out[key] = d;
  }
  return out;
}

// Sum of the counts whose key starts with `prefix` ("POST pods ") or ends with `suffix`.
double Sum(const std::map<std::string, double>& counts, const std::string& prefix,
           const std::string& suffix = "") {
  double n = 0;
  for (const auto& [key, value] : counts) {
    if (absl::StartsWith(key, prefix) && absl::EndsWith(key, suffix)) n += value;
  }
  return n;
}

// CPU seconds (utime + stime) and peak RSS in MB of a process.
std::pair<double, double> CpuAndPeakRss(pid_t pid) {
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields = absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ');
  double ticks = 0;
  if (fields.size() > 12) ticks = std::stod(fields[11]) + std::stod(fields[12]);
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  double hwm_kb = 0;
  for (std::string line; std::getline(status, line);) {
    if (absl::StartsWith(line, "VmHWM:")) hwm_kb = std::stod(line.substr(6));
  }
  return {ticks / static_cast<double>(sysconf(_SC_CLK_TCK)), hwm_kb / 1024};
}

// The agent Pods of one LoadTest, as a watch sees them: how many exist and how many are Running.
class PodCounter {
 public:
  PodCounter(kube::Client* client, const std::string& loadtest)
      : informer_(
            client, "/api/v1/namespaces/default/pods",
            [this](const json& pod, bool deleted) { OnEvent(pod, deleted); },
            [&] {
              kube::Informer::Options o;
              o.label_selector = "stampede.dev/loadtest=" + loadtest;
              return o;
            }()) {}
  void Start() {
    informer_.Start();
    ASSERT_TRUE(informer_.WaitForSync(seconds(30)));
  }
  // Waits for `done(existing, running)` to hold; false after `timeout`.
  bool WaitFor(Clock::duration timeout, const std::function<bool(size_t, size_t)>& done) {
    common::MutexLock lock(&mu_);
    const auto deadline = Clock::now() + timeout;
    while (!done(phase_.size(), running_)) {
      if (!cv_.WaitUntil(&mu_, deadline)) return done(phase_.size(), running_);
    }
    return true;
  }
  // Pods existing and Running now.
  std::pair<size_t, size_t> Counts() {
    common::MutexLock lock(&mu_);
    return {phase_.size(), running_};
  }

 private:
  void OnEvent(const json& pod, bool deleted) {
    const std::string name = pod["metadata"].value("name", "");
    const std::string phase =
        pod.contains("status") ? pod["status"].value("phase", "") : std::string();
    common::MutexLock lock(&mu_);
    auto it = phase_.find(name);
    if (it != phase_.end() && it->second == "Running") --running_;
    if (deleted) {
      if (it != phase_.end()) phase_.erase(it);
    } else {
      phase_[name] = phase;
      if (phase == "Running") ++running_;
    }
    cv_.SignalAll();
  }

  common::Mutex mu_;
  common::CondVar cv_;
  std::map<std::string, std::string> phase_;  // guarded by mu_
  size_t running_ = 0;                        // guarded by mu_
  kube::Informer informer_;
};

struct ScaleRun {
  int agents = 300;
  int concurrency = 16;
  Clock::duration timeout = seconds(120);
};

// One cluster, one operator, one LoadTest of `run.agents` agents: created, all Running, deleted,
// all gone. Returns the figures (empty when the cluster did not start).
json RunAtScale(const ScaleRun& run) {
  signal(SIGPIPE, SIG_IGN);  // a TLS write on a connection the API server closed must not kill us
  Cluster::Options options;
  options.node_simulate = true;
  options.node_max_pods = run.agents + 10;
  options.crd_files = {std::string(STAMPEDE_SOURCE_DIR) +
                       "/deploy/crd/loadtests.stampede.dev.yaml"};
  auto started = Cluster::Start(options);
  EXPECT_TRUE(started.ok()) << started.status();
  if (!started.ok()) return json();
  std::unique_ptr<Cluster> cluster = *std::move(started);

  const int grpc_port = testing::FreeLoopbackPort();
  testing::Process op(
      {testing::ControllerBinary(), "operator", "--kubeconfig", cluster->admin_kubeconfig(),
       absl::StrCat("--grpc-listen=127.0.0.1:", grpc_port),
       absl::StrCat("--advertise-address=127.0.0.1:", grpc_port), "--metrics-listen=127.0.0.1:0",
       "--insecure-agents", "--status-interval=2s", "--unschedulable-timeout=10m",
       absl::StrCat("--pod-create-concurrency=", run.concurrency),
       // No agent ever connects: the test must not fail (and lose its Pods) before every Pod
       // could be created and reported Running.
       absl::StrCat("--agent-start-timeout=",
                    2 * std::chrono::duration_cast<seconds>(run.timeout).count() + 60, "s")});
  EXPECT_TRUE(testing::WaitUntil(seconds(30), [&] {
    return op.Stderr().find("msg=reconciling") != std::string::npos;
  })) << op.Stderr();

  PodCounter pods(&cluster->client(), "scale");
  pods.Start();
  const auto [cpu0, rss0] = CpuAndPeakRss(op.pid());
  const std::map<std::string, double> before = RequestCounts(*cluster);

  const auto t0 = Clock::now();
  const std::string lt = "/apis/stampede.dev/v1alpha1/namespaces/default/loadtests";
  auto created = cluster->client().Create(lt, {{"apiVersion", "stampede.dev/v1alpha1"},
                                               {"kind", "LoadTest"},
                                               {"metadata", {{"name", "scale"}}},
                                               {"spec",
                                                {{"target", {{"url", "http://127.0.0.1:9/"}}},
                                                 {"load", {{"users", run.agents}}},
                                                 {"duration", "10m"},
                                                 {"agents", run.agents}}}});
  EXPECT_TRUE(created.ok()) << created.status();
  const size_t n = static_cast<size_t>(run.agents);
  const bool all_created =
      pods.WaitFor(run.timeout, [n](size_t existing, size_t) { return existing == n; });
  const auto t_created = Clock::now();
  const size_t existing_at_created = pods.Counts().first;
  const bool all_running = all_created && pods.WaitFor(run.timeout, [n](size_t, size_t running) {
    return running == n;
  });
  const auto t_running = Clock::now();
  const auto [existing_at_running, running_at_running] = pods.Counts();
  const std::map<std::string, double> launched = Delta(before, RequestCounts(*cluster));
  const auto [cpu1, rss1] = CpuAndPeakRss(op.pid());

  auto deleted = cluster->client().Delete(lt + "/scale", {{"propagationPolicy", "Background"}});
  EXPECT_TRUE(deleted.ok()) << deleted.status();
  const auto t_delete = Clock::now();
  const bool all_gone =
      pods.WaitFor(run.timeout, [](size_t existing, size_t) { return existing == 0; });
  const auto t_gone = Clock::now();
  const std::map<std::string, double> total = Delta(before, RequestCounts(*cluster));
  const auto [cpu2, rss2] = CpuAndPeakRss(op.pid());

  EXPECT_TRUE(all_created) << "not every agent Pod was created in time\n" << op.Stderr();
  EXPECT_TRUE(all_running) << "not every agent Pod reached Running in time";
  EXPECT_TRUE(all_gone) << "agent Pods were left after the LoadTest was deleted";
  json result = {{"agents", run.agents},
                 {"create_concurrency", run.concurrency},
                 {"pods_existing", existing_at_running},
                 {"pods_running", running_at_running},
                 {"all_created_s", Seconds(t_created - t0)},
                 {"all_running_s", Seconds(t_running - t0)},
                 {"pods_created_per_s", existing_at_created / Seconds(t_created - t0)},
                 {"all_gone_after_delete_s", Seconds(t_gone - t_delete)},
                 {"operator_cpu_s_launch", cpu1 - cpu0},
                 {"operator_cpu_s_total", cpu2 - cpu0},
                 {"operator_peak_rss_mb", rss2},
                 {"requests_until_running", launched},
                 {"requests_total", total},
                 {"http_429_total", Sum(total, "", " 429")},
                 {"operator_log_overloaded", testing::CountOf(op.Stderr(), "kube_overloaded")}};
  // The operator's own account: how many Pods it created, and when and why the run ended (with
  // no agent ever connecting it would fail after --agent-start-timeout and delete its Pods).
  std::vector<std::string> said;
  for (absl::string_view line : absl::StrSplit(op.Stderr(), '\n')) {
    if (absl::StrContains(line, "msg=agent_pods") || absl::StrContains(line, "msg=run_ending") ||
        absl::StrContains(line, "msg=loadtest_started")) {
      said.emplace_back(line.substr(0, 300));
    }
  }
  result["operator_said"] = said;
  std::cout << "scale_result " << result.dump() << std::endl;
  return result;
}

TEST(OperatorScaleTest, CreatesAndTracksManyPodsWithoutReadingThemOneByOne) {
  ScaleRun run;
  run.agents = EnvInt("STAMPEDE_SCALE_AGENTS", 300);
  run.concurrency = EnvInt("STAMPEDE_SCALE_CONCURRENCY", 16);
  run.timeout = seconds(EnvInt("STAMPEDE_SCALE_TIMEOUT_S", std::max(120, run.agents / 5)));
  const json r = RunAtScale(run);
  if (r.is_null()) return;
  const auto& launched = r["requests_until_running"].get<std::map<std::string, double>>();
  // One POST per Pod, each answered 201; no GET of a single Pod (the informer tracks them).
  EXPECT_EQ(Sum(launched, "POST pods 201"), run.agents) << r.dump(1);
  EXPECT_EQ(Sum(launched, "GET pods "), 0) << r.dump(1);
  // Status: at most one write per 2 s, plus one per phase change (a few).
  const double status_writes =
      Sum(launched, "PATCH loadtests/status ") + Sum(launched, "PUT loadtests/status ");
  EXPECT_LE(status_writes, r["all_running_s"].get<double>() / 2 + 6) << r.dump(1);
}

}  // namespace
}  // namespace stampede::e2e
