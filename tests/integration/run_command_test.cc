// `stampede run` end to end: the controller process, its local agent processes and the test
// target, all real, on 127.0.0.1. Totals must equal what the target served; lost agents and a
// lost controller must end things in bounded time.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

std::string Controller() { return STAMPEDE_CONTROLLER_BINARY_PATH; }

class RunCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { (void)!std::system(("rm -rf " + dir_).c_str()); }

  std::string WriteSpec(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name + ".yaml";
    std::ofstream(path) << "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: "
                        << name << "}\nspec:\n"
                        << body;
    return path;
  }
  json ReadJson(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }
  std::unique_ptr<Process> StartRun(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {Controller(), "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Process>(argv);
  }
  // The same, with TMPDIR set to a new folder of the test's, `tmp`.
  std::unique_ptr<Process> StartRunWithTmpdir(const std::vector<std::string>& args,
                                              std::string* tmp) {
    *tmp = dir_ + "/tmp";
    (void)!std::system(("mkdir -p " + *tmp).c_str());
    std::vector<std::string> argv = {"/usr/bin/env", "TMPDIR=" + *tmp, Controller(), "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Process>(argv);
  }

  std::string dir_;
};

// Children of `pid` (the agents of a `stampede run`).
std::vector<int> Children(int pid) {
  std::vector<int> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  int child;
  while (in >> child) out.push_back(child);
  return out;
}

// Waits until the run's stderr shows `lines` progress lines (the load is running).
void WaitForProgress(Process& run, int lines) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (true) {
    const std::string err = run.Stderr();
    int n = 0;
    for (size_t at = err.find(" rps "); at != std::string::npos; at = err.find(" rps ", at + 1))
      ++n;
    if (n >= lines) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << err;
    ASSERT_FALSE(run.Wait(std::chrono::milliseconds(20)).has_value()) << err;
  }
}

// The agents' log folder a run printed at its start ("agent logs in DIR").
std::string LogFolder(const std::string& err) {
  const std::string tag = "agent logs in ";
  const size_t at = err.find(tag);
  if (at == std::string::npos) return "";
  const size_t begin = at + tag.size();
  return err.substr(begin, err.find_first_of(" \n", begin) - begin);
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

TEST_F(RunCommandTest, ThreeAgentsTotalsEqualWhatTheTargetServed) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "three", "  target: {url: \"" + target.Url("") +
                   "\"}\n"
                   "  requests:\n    - {name: home, path: /, weight: 3}\n    - {name: slow, path: "
                   "/delay/3}\n"
                   "  load: {users: 12}\n  duration: 3s\n  agents: 3\n  threadsPerAgent: 1\n"
                   "  thresholds: [\"p95 < 1s\", \"error_rate < 1%\"]\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json", "--csv", dir_ + "/r.csv"});
  auto code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  ASSERT_EQ(*code, 0) << run->Stderr() << run->Stdout();
  json r = ReadJson(dir_ + "/r.json");
  const uint64_t total = r["summary"]["requests"];
  EXPECT_GT(total, 100u);
  EXPECT_EQ(static_cast<long>(total), target.Served());
  EXPECT_EQ(r["summary"]["errors"], 0u);
  auto stats = json::parse(*HttpGet(target.Url("/stats")));
  EXPECT_EQ(r["requests"][0]["name"], "home");
  EXPECT_EQ(r["requests"][0]["requests"], stats["by_path"]["/"]);
  EXPECT_EQ(r["requests"][1]["requests"], stats["by_path"]["/delay/3"]);
  EXPECT_EQ(r["status"]["phase"], "Succeeded");
  EXPECT_EQ(r["status"]["agents"]["finished"], 3u);
  // The per-second series adds up to the total.
  uint64_t series_total = 0;
  for (const json& p : r["series"]) series_total += p["requests"].get<uint64_t>();
  EXPECT_EQ(series_total, total);
  std::ifstream csv(dir_ + "/r.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("second,request,requests,errors", 0), 0u);
}

// A log folder the run made itself is there while the agents run, and goes when the run passes.
TEST_F(RunCommandTest, APassedRunRemovesTheLogFolderItMade) {
  TestTarget target;
  const std::string spec = WriteSpec("tidy", "  target: {url: \"" + target.Url("") +
                                                 "\"}\n  load: {users: 2}\n  duration: 2s\n"
                                                 "  agents: 2\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec});
  WaitForProgress(*run, 1);
  const std::string logs = LogFolder(run->Stderr());
  ASSERT_EQ(logs.rfind("/tmp/stampede-run-", 0), 0u) << run->Stderr();
  EXPECT_TRUE(Exists(logs + "/agent-0.log"));
  EXPECT_TRUE(Exists(logs + "/agent-1.log"));
  auto code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  ASSERT_EQ(*code, 0) << run->Stderr();
  EXPECT_FALSE(Exists(logs)) << logs;
  EXPECT_EQ(run->Stderr().find("agent logs kept"), std::string::npos) << run->Stderr();
}

// Results per load level: a summary per stage (and for the hold after them) in the results JSON,
// the status and the printed table, each the requests of exactly its seconds.
TEST_F(RunCommandTest, EachStageGetsASummaryOfExactlyItsSeconds) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "levels", "  target: {url: \"" + target.Url("") +
                    "\"}\n"
                    "  requests:\n    - {name: home, path: /, weight: 3}\n    - {name: slow, path: "
                    "/delay/2}\n"
                    "  load: {rate: 0, connections: 32,\n"
                    "         stages: [{duration: 2s, target: 100}, {duration: 2s, target: 100}]}\n"
                    "  duration: 5s\n  agents: 2\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json"});
  auto code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  ASSERT_EQ(*code, 0) << run->Stderr() << run->Stdout();
  const json r = ReadJson(dir_ + "/r.json");
  const json& stages = r["stages"];
  ASSERT_EQ(stages.size(), 3u) << stages.dump(1);
  const std::vector<std::string> kinds = {"ramp", "steady", "hold"};
  const std::vector<double> starts = {0, 2, 4}, ends = {2, 4, 5}, froms = {0, 100, 100};
  uint64_t sum = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    const json& st = stages[i];
    EXPECT_EQ(st["kind"], kinds[i]);
    EXPECT_EQ(st["startSeconds"], starts[i]);
    EXPECT_EQ(st["endSeconds"], ends[i]);
    EXPECT_EQ(st["from"], froms[i]);
    EXPECT_EQ(st["to"], 100);
    // Exactly the requests of its seconds in the per-second series (the drain after the end
    // counts in the last).
    uint64_t of_seconds = 0;
    for (const json& p : r["series"]) {
      const double second = p["second"].get<double>();
      if (second >= starts[i] && (second < ends[i] || i + 1 == stages.size()))
        of_seconds += p["requests"].get<uint64_t>();
    }
    const uint64_t requests = st["summary"]["requests"];
    EXPECT_EQ(requests, of_seconds) << "stage " << i;
    uint64_t by_request = 0;
    for (const json& q : st["requests"]) by_request += q["requests"].get<uint64_t>();
    EXPECT_EQ(by_request, requests);
    EXPECT_GT(st["summary"]["latencyNs"]["p95"].get<uint64_t>(), 0u);
    sum += requests;
  }
  EXPECT_EQ(sum, r["summary"]["requests"].get<uint64_t>()) << "the stages add up to the run";
  // The steady 100 req/s for 2 s, and the status says the same per stage.
  EXPECT_NEAR(stages[1]["summary"]["rps"].get<double>(), 100, 10);
  ASSERT_EQ(r["status"]["stages"].size(), 3u);
  EXPECT_EQ(r["status"]["stages"][1]["summary"]["requests"], stages[1]["summary"]["requests"]);
  EXPECT_FALSE(r["status"]["stages"][1]["summary"].value("p95", "").empty());
  // The printed table: a row per stage, a row per request under each.
  const std::string out = run->Stdout();
  EXPECT_NE(out.find("stage"), std::string::npos) << out;
  EXPECT_NE(out.find("req/s"), std::string::npos) << out;
  EXPECT_NE(out.find("0 -> 100"), std::string::npos) << out;
  for (const char* kind : {"ramp", "steady", "hold"})
    EXPECT_NE(out.find(kind), std::string::npos) << kind << "\n" << out;
}

// A second in which a request only timed out has no latency for it: its series entry carries the
// counts and no percentiles (a chart shows a gap, not a drop to 0 ns), while the request that
// answered keeps them.
TEST_F(RunCommandTest, ASecondOfOnlyTimeoutsHasNoPercentiles) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "stuck", "  target: {url: \"" + target.Url("") +
                   "\", timeout: 300ms}\n"
                   "  requests: [{name: fast, path: /delay/1}, {name: stuck, path: /delay/5000}]\n"
                   "  load: {users: 4}\n  duration: 3s\n");
  auto run = StartRun({spec, "--quiet", "--out", dir_ + "/r.json"});
  auto code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  const json r = ReadJson(dir_ + "/r.json");
  int stuck_seconds = 0;
  for (const json& p : r["series"]) {
    const json& stuck = p["byRequest"]["stuck"];
    if (stuck["requests"].get<uint64_t>() > 0) {
      ++stuck_seconds;
      EXPECT_EQ(stuck["errors"], stuck["requests"]) << p.dump();
      EXPECT_FALSE(stuck.contains("p50")) << p.dump();
      EXPECT_FALSE(stuck.contains("max")) << p.dump();
    }
    const json& fast = p["byRequest"]["fast"];
    if (fast["requests"].get<uint64_t>() > 0) {
      EXPECT_TRUE(fast.contains("p95")) << p.dump();
      EXPECT_TRUE(p.contains("p95")) << "the total has the fast request's latencies";
    }
  }
  EXPECT_GE(stuck_seconds, 2) << r["series"].dump();
  EXPECT_EQ(r["requests"][1]["outcomes"]["timeout"], r["requests"][1]["requests"]);
}

TEST_F(RunCommandTest, FailedThresholdExitsOne) {
  TestTarget target;
  const std::string spec =
      WriteSpec("slow", "  target: {url: \"" + target.Url("/delay/20") +
                            "\"}\n"
                            "  load: {users: 2}\n  duration: 1s\n  thresholds: [\"p50 < 5ms\", "
                            "\"error_rate < 1%\"]\n");
  std::string tmp;
  auto run = StartRunWithTmpdir({spec}, &tmp);
  auto code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1) << run->Stdout() << run->Stderr();
  EXPECT_NE(run->Stdout().find("FAIL p50 < 5ms"), std::string::npos) << run->Stdout();
  EXPECT_NE(run->Stdout().find("PASS error_rate < 1%"), std::string::npos) << run->Stdout();
  // A run that did not pass keeps its agents' logs (under $TMPDIR), and says where.
  const std::string logs = LogFolder(run->Stderr());
  ASSERT_EQ(logs.rfind(tmp + "/stampede-run-", 0), 0u) << run->Stderr();
  EXPECT_NE(run->Stderr().find("agent logs kept in " + logs + "\n"), std::string::npos)
      << run->Stderr();
  EXPECT_TRUE(Exists(logs + "/agent-0.log")) << logs;
}

// A run whose set-up fails (here --metrics-listen on a taken port) makes no log folder at all.
TEST_F(RunCommandTest, ASetUpThatFailsLeavesNoLogFolder) {
  TestTarget target;
  const std::string spec = WriteSpec("nosetup", "  target: {url: \"" + target.Url("") +
                                                    "\"}\n  load: {users: 1}\n  duration: 1s\n");
  std::string tmp;
  auto run = StartRunWithTmpdir(
      {spec, "--metrics-listen", "127.0.0.1:" + std::to_string(target.port())}, &tmp);
  auto code = run->Wait(seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 3) << run->Stderr();
  EXPECT_NE(run->Stderr().find("--metrics-listen"), std::string::npos) << run->Stderr();
  const CommandOutput listing = RunToEnd({"/bin/ls", "-A", tmp}, seconds(10));
  EXPECT_EQ(listing.exit_code, 0);
  EXPECT_EQ(listing.out, "") << "left behind in " << tmp;
}

TEST_F(RunCommandTest, InvalidSpecExitsTwoNamingEveryField) {
  const std::string spec = WriteSpec("bad",
                                     "  target: {url: \"ftp://x\"}\n  load: {users: 0, bogus: 1}\n"
                                     "  duration: 10\n  agents: 50000\n");
  auto run = StartRun({spec});
  auto code = run->Wait(seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  const std::string err = run->Stderr();
  for (const char* field : {"spec.target.url", "spec.load.bogus", "spec.duration", "spec.agents"}) {
    EXPECT_NE(err.find(field), std::string::npos) << field << "\n" << err;
  }
}

// Issue 14: the policy at admission (nothing starts) and at the agent, which checks the address
// it resolved: "localhost" passes the hosts rule, but the policy denies 127.0.0.0/8, so no agent
// may dial it, however the name was admitted (DNS rebinding's stand-in).
TEST_F(RunCommandTest, APolicyRefusesAtAdmissionAndAgentsRefuseADeniedAddress) {
  TestTarget target;
  const std::string port = std::to_string(target.port());
  std::ofstream(dir_ + "/policy.yaml") << "apiVersion: stampede.dev/v1alpha1\n"
                                          "kind: LoadTestPolicy\n"
                                          "deny: [\"127.0.0.0/8\"]\n"
                                          "rules:\n"
                                          "  - name: names-only\n"
                                          "    hosts: [localhost]\n"
                                          "    limits: {users: 10}\n";
  const std::string too_many = WriteSpec("many", "  target: {url: \"http://localhost:" + port +
                                                     "\"}\n  load: {users: 11}\n"
                                                     "  duration: 1s\n");
  auto refused = StartRun({too_many, "--policy", dir_ + "/policy.yaml"});
  std::optional<int> code = refused->Wait(seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2) << refused->Stderr();
  EXPECT_NE(refused->Stderr().find("spec.load.users: 11 users; at most 10 allowed (rule "
                                   "names-only)"),
            std::string::npos)
      << refused->Stderr();

  const std::string literal = WriteSpec("literal", "  target: {url: \"http://127.0.0.1:" + port +
                                                       "\"}\n  load: {users: 2}\n"
                                                       "  duration: 1s\n");
  refused = StartRun({literal, "--policy", dir_ + "/policy.yaml"});
  code = refused->Wait(seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_NE(refused->Stderr().find("spec.target.url: address 127.0.0.1 port " + port +
                                   " is not in the rule's addresses (rule names-only)"),
            std::string::npos)
      << refused->Stderr();

  const std::string by_name = WriteSpec("rebound", "  target: {url: \"http://localhost:" + port +
                                                       "\"}\n  load: {users: 2}\n"
                                                       "  duration: 2s\n  agents: 2\n");
  auto run = StartRun({by_name, "--policy", dir_ + "/policy.yaml", "--out", dir_ + "/r.json"});
  code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 3) << run->Stdout() << run->Stderr();
  const json results = ReadJson(dir_ + "/r.json");
  EXPECT_EQ(results["status"]["phase"], "Failed") << results["status"].dump();
  EXPECT_EQ(results["status"]["reason"], "TargetDenied");
  EXPECT_NE(results["status"]["message"].get<std::string>().find(
                "is in the denied range 127.0.0.0/8 (rule names-only)"),
            std::string::npos)
      << results["status"].dump();
  EXPECT_EQ(target.Served(), 0) << "no agent sent a request";

  // Without --policy the same test runs: 127.0.0.1 is not denied by default.
  run = StartRun({by_name});
  code = run->Wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << run->Stderr();
  EXPECT_GT(target.Served(), 0);
}

// Issue 9: what is not a spec file is refused at once, without reading it, and an output that
// cannot be written is known before the test starts, not after it.
TEST_F(RunCommandTest, WhatIsNotASpecFileOrCannotBeWrittenIsRefusedBeforeTheTest) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"/dev/zero"}, "/dev/zero is a character device, not a file to read"},
      {{dir_}, dir_ + " is a directory, not a file to read"},
      {{WriteSpec("out",
                  "  target: {url: \"http://127.0.0.1:1\"}\n  load: {users: 1}\n  duration: 1h\n"),
        "--out", dir_ + "/no/such/dir/r.json"},
       "--out: cannot write in " + dir_ + "/no/such/dir: No such file or directory"},
      {{WriteSpec("csv",
                  "  target: {url: \"http://127.0.0.1:1\"}\n  load: {users: 1}\n  duration: 1h\n"),
        "--csv", dir_},
       "--csv: " + dir_ + " is a directory"},
  };
  for (const auto& c : cases) {
    auto run = StartRun(c.args);
    auto code = run->Wait(seconds(10));
    ASSERT_TRUE(code.has_value()) << c.args[0] << " was read or run";
    EXPECT_EQ(*code, 2) << run->Stderr();
    EXPECT_NE(run->Stderr().find(c.message), std::string::npos) << run->Stderr();
    EXPECT_EQ(run->Stderr().find("agent(s)"), std::string::npos)
        << "the test started: " << run->Stderr();
  }
}

TEST_F(RunCommandTest, KilledAgentFailsTheRunWithAReason) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "kill", "  target: {url: \"" + target.Url("/delay/2") +
                  "\"}\n"
                  "  load: {users: 6}\n  duration: 60s\n  agents: 3\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json"});
  WaitForProgress(*run, 1);
  const std::vector<int> agents = Children(run->pid());
  ASSERT_EQ(agents.size(), 3u);
  kill(agents[1], SIGKILL);
  auto code = run->Wait(seconds(20));
  ASSERT_TRUE(code.has_value()) << "the run did not end after an agent was killed";
  EXPECT_EQ(*code, 3) << run->Stdout();
  json r = ReadJson(dir_ + "/r.json");
  EXPECT_EQ(r["status"]["phase"], "Failed");
  EXPECT_EQ(r["status"]["reason"], "AgentLost");
  EXPECT_NE(r["status"]["message"].get<std::string>().find("agent"), std::string::npos);
  EXPECT_EQ(r["status"]["agents"]["lost"], 1u);
  // The other agents were stopped, and what they did is all in the totals.
  for (int pid : agents)
    EXPECT_TRUE(WaitForExit(pid, seconds(10))) << "agent " << pid << " still running";
  EXPECT_LE(static_cast<long>(r["summary"]["requests"].get<uint64_t>()), target.Served());
}

TEST_F(RunCommandTest, LostAgentWithContinuePolicyGivesPartialSuccess) {
  TestTarget target;
  const std::string spec =
      WriteSpec("cont", "  target: {url: \"" + target.Url("/delay/2") +
                            "\"}\n"
                            "  load: {users: 6}\n  duration: 4s\n  agents: 3\n  threadsPerAgent: "
                            "1\n  onAgentLoss: continue\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json"});
  WaitForProgress(*run, 1);
  const std::vector<int> agents = Children(run->pid());
  ASSERT_EQ(agents.size(), 3u);
  kill(agents[0], SIGKILL);
  auto code = run->Wait(seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << run->Stdout();
  json r = ReadJson(dir_ + "/r.json");
  EXPECT_EQ(r["status"]["phase"], "Succeeded");
  EXPECT_EQ(r["status"]["partial"], true);
  EXPECT_EQ(r["status"]["agents"]["lost"], 1u);
  EXPECT_EQ(r["status"]["agents"]["finished"], 2u);
}

TEST_F(RunCommandTest, AgentsStopOnTheirOwnWhenTheControllerIsKilled) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "orphan", "  target: {url: \"" + target.Url("/delay/2") +
                    "\"}\n"
                    "  load: {users: 4}\n  duration: 120s\n  agents: 2\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec});
  WaitForProgress(*run, 1);
  const std::vector<int> agents = Children(run->pid());
  ASSERT_EQ(agents.size(), 2u);
  run->Signal(SIGKILL);
  ASSERT_TRUE(run->Wait(seconds(5)).has_value());
  // The agents were reparented; they must notice the closed stream and exit well before the
  // heartbeat timeout (10 s) would force them.
  for (int pid : agents) {
    const bool exited = WaitForExit(pid, seconds(15));
    EXPECT_TRUE(exited) << "agent " << pid << " kept running without its controller";
    if (!exited) kill(pid, SIGKILL);
  }
  // And nothing is left that could send a request: every connection to the target is closed.
  EXPECT_TRUE(WaitUntil(seconds(5), [&] { return target.OpenConnections() == 0; }))
      << target.OpenConnections() << " connection(s) still open";
}

TEST_F(RunCommandTest, InterruptAbortsAndWritesPartialResults) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "ctrlc", "  target: {url: \"" + target.Url("/delay/2") +
                   "\"}\n"
                   "  load: {users: 4}\n  duration: 120s\n  agents: 2\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json"});
  WaitForProgress(*run, 2);
  run->Signal(SIGINT);
  auto code = run->Wait(seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 4) << run->Stdout() << run->Stderr();
  json r = ReadJson(dir_ + "/r.json");
  EXPECT_EQ(r["status"]["phase"], "Aborted");
  EXPECT_GT(r["summary"]["requests"].get<uint64_t>(), 0u);
  // Aborted agents cancel what was in flight, so the totals can trail what was served by at most
  // the users' in-flight requests.
  const long served = target.Served();
  const long counted = static_cast<long>(r["summary"]["requests"].get<uint64_t>() -
                                         r["summary"]["outcomes"]["cancelled"].get<uint64_t>());
  EXPECT_LE(counted, served);
  EXPECT_GE(counted + 4, served);
}

// Ctrl-C during the run means "stop": the metrics linger, which is for the scrape after a run
// that ended by itself, is skipped (it used to keep the process up for the whole linger).
TEST_F(RunCommandTest, AnInterruptedRunDoesNotLingerForMetrics) {
  TestTarget target;
  const std::string spec = WriteSpec(
      "ctrlc-linger", "  target: {url: \"" + target.Url("/delay/2") +
                          "\"}\n  load: {users: 2}\n  duration: 120s\n  threadsPerAgent: 1\n");
  auto run = StartRun({spec, "--out", dir_ + "/r.json", "--metrics-listen", "127.0.0.1:0",
                       "--metrics-linger", "10m"});
  WaitForProgress(*run, 2);
  run->Signal(SIGINT);
  auto code = run->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << "still lingering: " << run->Stderr();
  EXPECT_EQ(*code, 4) << run->Stderr();
  EXPECT_EQ(ReadJson(dir_ + "/r.json")["status"]["phase"], "Aborted");
  EXPECT_EQ(run->Stderr().find("stays up"), std::string::npos) << run->Stderr();
}

}  // namespace
}  // namespace stampede::testing
