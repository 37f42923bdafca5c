#include "common/spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "common/scenario.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kFull[] = R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata:
  name: checkout
  namespace: shop
  labels: {team: payments, tier: "1"}
  annotations:
    stampede.dev/owner: alice@example.com
spec:
  target:
    url: "http://checkout.shop:8080/v2"
    timeout: 5s
    insecureSkipVerify: true
  requests:
    - {name: home, method: GET, path: /, weight: 3}
    - name: buy
      method: POST
      path: /api/buy?fast=1
      body: '{"sku":1}'
      headers:
        Content-Type: application/json
        X-Retries: 3
      expectStatus: [200, 201]
    - path: /health
  load:
    users: 0
    thinkTime: {min: 100ms, max: 1s}
    stages:
      - {duration: 1m, target: 100}
      - {duration: 3m, target: 1000}
  duration: 5m
  agents: 4
  threadsPerAgent: 2
  thresholds: ["p95 < 500ms", "error_rate < 1%", "rps > 100", "p95{buy} < 300ms"]
  abortOnFail: true
  onAgentLoss: continue
  agentTemplate:
    image: ghcr.io/stampede/agent:0.1
    imagePullPolicy: IfNotPresent
    resources:
      requests: {cpu: 500m, memory: 256Mi}
      limits: {cpu: 2, memory: "1Gi"}
    nodeSelector: {pool: loadgen}
    tolerations:
      - {key: dedicated, operator: Equal, value: loadgen, effect: NoSchedule}
      - {key: spot, operator: Exists, tolerationSeconds: 300}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions:
                - {key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}
    labels: {app: stampede-agent}
)yaml";

constexpr char kMinimal[] = R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: minimal}
spec:
  target: {url: "http://localhost:8080"}
  load: {users: 10}
  duration: 30s
)yaml";

v1::LoadTest MustParse(const std::string& text) {
  absl::StatusOr<v1::LoadTest> test = ParseLoadTest(text);
  EXPECT_TRUE(test.ok()) << test.status();
  return test.ok() ? *test : v1::LoadTest();
}

// The problem lines of a document that must not parse.
std::vector<std::string> Problems(const std::string& text) {
  absl::StatusOr<v1::LoadTest> test = ParseLoadTest(text);
  EXPECT_FALSE(test.ok()) << "parsed:\n" << text;
  if (test.ok()) return {};
  EXPECT_EQ(test.status().code(), absl::StatusCode::kInvalidArgument);
  return absl::StrSplit(test.status().message(), '\n');
}

// kMinimal with `spec.load` replaced.
std::string WithLoad(const std::string& load) {
  std::string text = kMinimal;
  const std::string from = "load: {users: 10}";
  text.replace(text.find(from), from.size(), "load: " + load);
  return text;
}

TEST(ParseLoadTestTest, FullClosedModel) {
  const v1::LoadTest test = MustParse(kFull);
  EXPECT_EQ(test.api_version(), "stampede.dev/v1alpha1");
  EXPECT_EQ(test.kind(), "LoadTest");
  EXPECT_EQ(test.metadata().name(), "checkout");
  EXPECT_EQ(test.metadata().namespace_(), "shop");
  EXPECT_EQ(test.metadata().labels().at("team"), "payments");
  EXPECT_EQ(test.metadata().labels().at("tier"), "1");
  EXPECT_EQ(test.metadata().annotations().at("stampede.dev/owner"), "alice@example.com");

  const v1::LoadTestSpec& spec = test.spec();
  EXPECT_EQ(spec.target().url(), "http://checkout.shop:8080/v2");
  EXPECT_EQ(spec.target().timeout(), "5s");
  EXPECT_TRUE(spec.target().insecure_skip_verify());

  ASSERT_EQ(spec.requests_size(), 3);
  EXPECT_EQ(spec.requests(0).name(), "home");
  EXPECT_EQ(spec.requests(0).method(), "GET");
  EXPECT_EQ(spec.requests(0).path(), "/");
  EXPECT_EQ(spec.requests(0).weight(), 3u);
  const v1::Request& buy = spec.requests(1);
  EXPECT_EQ(buy.name(), "buy");
  EXPECT_EQ(buy.method(), "POST");
  EXPECT_EQ(buy.path(), "/api/buy?fast=1");
  EXPECT_EQ(buy.body(), R"({"sku":1})");
  EXPECT_EQ(buy.headers().at("Content-Type"), "application/json");
  // A plain number is read as written where a string is expected.
  EXPECT_EQ(buy.headers().at("X-Retries"), "3");
  EXPECT_THAT(buy.expect_status(), ElementsAre(200, 201));
  EXPECT_EQ(buy.weight(), 1u);
  EXPECT_EQ(spec.requests(2).name(), "GET /health");
  EXPECT_EQ(spec.requests(2).method(), "GET");

  const v1::Load& load = spec.load();
  ASSERT_TRUE(load.has_users());
  EXPECT_EQ(load.users(), 0u);
  EXPECT_FALSE(load.has_rate());
  EXPECT_EQ(load.think_time().min(), "100ms");
  EXPECT_EQ(load.think_time().max(), "1s");
  ASSERT_EQ(load.stages_size(), 2);
  EXPECT_EQ(load.stages(0).duration(), "1m");
  EXPECT_EQ(load.stages(0).target(), 100);
  EXPECT_EQ(load.stages(1).duration(), "3m");
  EXPECT_EQ(load.stages(1).target(), 1000);

  EXPECT_EQ(spec.duration(), "5m");
  EXPECT_EQ(spec.agents(), 4u);
  EXPECT_EQ(spec.threads_per_agent(), 2u);
  EXPECT_THAT(spec.thresholds(),
              ElementsAre("p95 < 500ms", "error_rate < 1%", "rps > 100", "p95{buy} < 300ms"));
  EXPECT_TRUE(spec.abort_on_fail());
  EXPECT_EQ(spec.on_agent_loss(), "continue");

  const v1::AgentTemplate& agent = spec.agent_template();
  EXPECT_EQ(agent.image(), "ghcr.io/stampede/agent:0.1");
  EXPECT_EQ(agent.image_pull_policy(), "IfNotPresent");
  const auto& requests = agent.resources().fields().at("requests").struct_value().fields();
  EXPECT_EQ(requests.at("cpu").string_value(), "500m");
  EXPECT_EQ(requests.at("memory").string_value(), "256Mi");
  const auto& limits = agent.resources().fields().at("limits").struct_value().fields();
  EXPECT_EQ(limits.at("cpu").number_value(), 2);
  EXPECT_EQ(limits.at("memory").string_value(), "1Gi");
  EXPECT_EQ(agent.node_selector().at("pool"), "loadgen");
  ASSERT_EQ(agent.tolerations_size(), 2);
  EXPECT_EQ(agent.tolerations(0).fields().at("effect").string_value(), "NoSchedule");
  EXPECT_EQ(agent.tolerations(1).fields().at("tolerationSeconds").number_value(), 300);
  const auto& term = agent.affinity()
                         .fields()
                         .at("nodeAffinity")
                         .struct_value()
                         .fields()
                         .at("requiredDuringSchedulingIgnoredDuringExecution")
                         .struct_value()
                         .fields()
                         .at("nodeSelectorTerms")
                         .list_value()
                         .values(0)
                         .struct_value()
                         .fields()
                         .at("matchExpressions")
                         .list_value()
                         .values(0)
                         .struct_value();
  EXPECT_EQ(term.fields().at("key").string_value(), "kubernetes.io/arch");
  const auto& values = term.fields().at("values").list_value();
  ASSERT_EQ(values.values_size(), 2);
  EXPECT_EQ(values.values(1).string_value(), "arm64");
  EXPECT_EQ(agent.labels().at("app"), "stampede-agent");

  EXPECT_FALSE(test.has_status());
}

TEST(ParseLoadTestTest, OpenModel) {
  const v1::LoadTest test = MustParse(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: open}
spec:
  target: {url: "https://api.example.com"}
  requests: [{path: /search, method: GET}]
  load:
    rate: 2000.5
    connections: 300
    stages: [{duration: 30s, target: 4000}]
  duration: 2m
)yaml");
  const v1::Load& load = test.spec().load();
  EXPECT_FALSE(load.has_users());
  ASSERT_TRUE(load.has_rate());
  EXPECT_EQ(load.rate(), 2000.5);
  EXPECT_EQ(load.connections(), 300u);
  ASSERT_EQ(load.stages_size(), 1);
  EXPECT_EQ(load.stages(0).target(), 4000);
  EXPECT_FALSE(load.has_think_time());
  EXPECT_EQ(test.spec().requests(0).name(), "GET /search");
}

TEST(ParseLoadTestTest, Json) {
  const v1::LoadTest test = MustParse(R"json({
    "apiVersion": "stampede.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "from-json", "labels": {"a": "b"}},
    "spec": {
      "target": {"url": "http://127.0.0.1:9000", "timeout": "1s"},
      "requests": [{"name": "x", "method": "PUT", "path": "/x", "body": "{\"k\": \"v\\n\"}",
                    "expectStatus": [204], "weight": 2}],
      "load": {"users": 5, "spawnRate": 2.5},
      "duration": "10s",
      "agents": 2,
      "abortOnFail": false,
      "agentTemplate": {"resources": {"limits": {"cpu": 1.5, "gpu": null, "shared": true}}}
    }
  })json");
  EXPECT_EQ(test.metadata().name(), "from-json");
  EXPECT_EQ(test.metadata().labels().at("a"), "b");
  EXPECT_EQ(test.spec().requests(0).method(), "PUT");
  EXPECT_EQ(test.spec().requests(0).body(), R"({"k": "v\n"})");  // JSON's \\ is one backslash
  EXPECT_THAT(test.spec().requests(0).expect_status(), ElementsAre(204));
  EXPECT_EQ(test.spec().requests(0).weight(), 2u);
  EXPECT_EQ(test.spec().load().users(), 5u);
  EXPECT_EQ(test.spec().load().spawn_rate(), 2.5);
  EXPECT_EQ(test.spec().agents(), 2u);
  const auto& limits =
      test.spec().agent_template().resources().fields().at("limits").struct_value().fields();
  EXPECT_EQ(limits.at("cpu").number_value(), 1.5);
  EXPECT_TRUE(limits.at("gpu").has_null_value());
  EXPECT_TRUE(limits.at("shared").bool_value());
}

TEST(ParseLoadTestTest, StructScalarsAreTypedAsJsonWouldType) {
  const v1::LoadTest test = MustParse(std::string(kMinimal) + R"yaml(
  agentTemplate:
    resources:
      bool: true
      quotedBool: "true"
      nullWord: null
      tilde: ~
      empty:
      int: 42
      float: -1.5e3
      quotedNumber: '42'
      yes: yes
      quantity: 100Mi
      list: [1, x, false, {a: b}, [c]]
      map: {}
)yaml");
  const auto& f = test.spec().agent_template().resources().fields();
  EXPECT_TRUE(f.at("bool").bool_value());
  EXPECT_EQ(f.at("quotedBool").string_value(), "true");
  EXPECT_TRUE(f.at("nullWord").has_null_value());
  EXPECT_TRUE(f.at("tilde").has_null_value());
  EXPECT_TRUE(f.at("empty").has_null_value());
  EXPECT_EQ(f.at("int").number_value(), 42);
  EXPECT_EQ(f.at("float").number_value(), -1500);
  EXPECT_EQ(f.at("quotedNumber").string_value(), "42");
  EXPECT_EQ(f.at("yes").string_value(), "yes");  // YAML 1.2: only true/false are booleans
  EXPECT_EQ(f.at("quantity").string_value(), "100Mi");
  const auto& list = f.at("list").list_value();
  ASSERT_EQ(list.values_size(), 5);
  EXPECT_EQ(list.values(0).number_value(), 1);
  EXPECT_EQ(list.values(1).string_value(), "x");
  EXPECT_FALSE(list.values(2).bool_value());
  EXPECT_TRUE(list.values(2).has_bool_value());
  EXPECT_EQ(list.values(3).struct_value().fields().at("a").string_value(), "b");
  EXPECT_EQ(list.values(4).list_value().values(0).string_value(), "c");
  EXPECT_TRUE(f.at("map").has_struct_value());
  EXPECT_THAT(f.at("map").struct_value().fields(), IsEmpty());
}

TEST(ParseLoadTestTest, NullValuesLeaveFieldsUnset) {
  const v1::LoadTest test = MustParse(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: nulls, labels: ~}
spec:
  target: {url: "http://h", timeout: null}
  load: {users: 3, rate: ~, thinkTime:}
  duration: 1s
  agentTemplate:
  thresholds:
)yaml");
  EXPECT_THAT(test.metadata().labels(), IsEmpty());
  EXPECT_EQ(test.spec().target().timeout(), "10s");  // unset, then defaulted
  EXPECT_FALSE(test.spec().load().has_rate());
  EXPECT_FALSE(test.spec().load().has_think_time());
  EXPECT_FALSE(test.spec().has_agent_template());
  EXPECT_THAT(test.spec().thresholds(), IsEmpty());
}

TEST(ParseLoadTestTest, Defaults) {
  const v1::LoadTest test = MustParse(kMinimal);
  EXPECT_EQ(test.metadata().namespace_(), "default");
  EXPECT_EQ(test.spec().agents(), 1u);
  EXPECT_EQ(test.spec().target().timeout(), "10s");
  EXPECT_EQ(test.spec().on_agent_loss(), "fail");
  EXPECT_EQ(test.spec().threads_per_agent(), 0u);
  ASSERT_EQ(test.spec().requests_size(), 1);
  const v1::Request& r = test.spec().requests(0);
  EXPECT_EQ(r.method(), "GET");
  EXPECT_EQ(r.path(), "");  // the target URL itself
  EXPECT_EQ(r.weight(), 1u);
  EXPECT_EQ(r.name(), "GET /");
  EXPECT_THAT(r.expect_status(), IsEmpty());
  EXPECT_FALSE(test.spec().load().has_think_time());
}

TEST(ApplyDefaultsTest, FillsRequestsAndThinkTimeButNotTheLoadModel) {
  v1::LoadTest test;
  v1::Request* post = test.mutable_spec()->add_requests();
  post->set_method("POST");
  post->set_path("/api");
  v1::Request* named = test.mutable_spec()->add_requests();
  named->set_name("mine");
  named->set_weight(7);
  test.mutable_spec()->mutable_load()->mutable_think_time()->set_max("2s");
  ApplyDefaults(&test);
  EXPECT_EQ(post->name(), "POST /api");
  EXPECT_EQ(post->weight(), 1u);
  EXPECT_EQ(named->name(), "mine");
  EXPECT_EQ(named->method(), "GET");
  EXPECT_EQ(named->weight(), 7u);
  EXPECT_EQ(test.spec().load().think_time().min(), "0s");
  EXPECT_EQ(test.spec().load().think_time().max(), "2s");
  EXPECT_FALSE(test.spec().load().has_users());
  EXPECT_FALSE(test.spec().load().has_rate());
  EXPECT_TRUE(test.api_version().empty());

  v1::LoadTest again = test;
  ApplyDefaults(&again);
  EXPECT_TRUE(MessageDifferencer::Equals(test, again)) << "not idempotent";

  v1::LoadTest constant;
  constant.mutable_spec()->mutable_load()->mutable_think_time()->set_min("1s");
  ApplyDefaults(&constant);
  EXPECT_EQ(constant.spec().load().think_time().max(), "1s");
}

TEST(ParseLoadTestTest, ReportsEveryProblem) {
  const std::vector<std::string> problems = Problems(R"yaml(
apiVersion: v1
kind: LoadTest
metadata: {name: Bad_Name}
spec:
  target: {url: "ftp://x", timeout: "10"}
  requests:
    - {name: a, method: "GE T", path: nope}
    - {name: a, expectStatus: [700]}
  load: {users: 0, rate: 5, foo: 1}
  duration: 10
  agents: 50000
  threadsPerAgent: lots
  onAgentLoss: maybe
  thresholds: ["p95 <", "p95{zzz} < 1s"]
  bogus: true
)yaml");
  const std::vector<std::string> expected = {
      "spec.load.foo: unknown field",
      "spec.threadsPerAgent: expected a whole number, got \"lots\"",
      "spec.bogus: unknown field",
      "apiVersion: must be \"stampede.dev/v1alpha1\", got \"v1\"",
      "metadata.name: \"Bad_Name\" must be lowercase letters, digits and '-', starting and ending "
      "with a letter or digit",
      "spec.target.url: \"ftp://x\" must start with http:// or https://",
      "spec.target.timeout: \"10\" has no unit (write 10s or 10ms)",
      "spec.requests[0].method: \"GE T\" is not an HTTP method (e.g. GET, POST)",
      "spec.requests[0].path: \"nope\" must start with /",
      "spec.requests[1].expectStatus[0]: 700 is not an HTTP status (100..599)",
      "spec.requests[1].name: \"a\" is also the name of spec.requests[0]; names must be unique",
      "spec.load: set exactly one of users (closed model) or rate (open model)",
      "spec.load.users: must be > 0",
      "spec.duration: \"10\" has no unit (write 10s or 10ms)",
      "spec.agents: must be between 1 and 10000, got 50000",
      "spec.onAgentLoss: must be \"fail\" or \"continue\", got \"maybe\"",
      "spec.thresholds[0]: threshold \"p95 <\": missing value",
      "spec.thresholds[1]: no request is named \"zzz\" (requests: \"a\")",
  };
  for (const std::string& line : expected) EXPECT_THAT(problems, Contains(line));
  EXPECT_THAT(problems, SizeIs(expected.size()));
}

TEST(ParseLoadTestTest, UnknownFieldsAtEveryDepth) {
  const std::vector<std::string> problems = Problems(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metdata: {}
metadata: {name: x, nmae: y}
spec:
  target: {url: "http://h", verify: false}
  requests:
    - {path: /, hedaers: {a: b}}
  load:
    users: 1
    spawn_rate: 5
    thinkTime: {min: 1s, maximum: 2s}
    stages: [{duration: 1s, target: 1, foo: 2}]
  duration: 1s
  agentTemplate: {resources: {anything: goes}, Image: x}
status: {phase: Running, bogus: 1}
)yaml");
  EXPECT_THAT(problems,
              ElementsAre("metdata: unknown field (did you mean \"metadata\"?)",
                          "metadata.nmae: unknown field (did you mean \"name\"?)",
                          "spec.target.verify: unknown field",
                          "spec.requests[0].hedaers: unknown field (did you mean \"headers\"?)",
                          "spec.load.spawn_rate: unknown field (did you mean \"spawnRate\"?)",
                          "spec.load.thinkTime.maximum: unknown field",
                          "spec.load.stages[0].foo: unknown field",
                          "spec.agentTemplate.Image: unknown field (did you mean \"image\"?)",
                          "status.bogus: unknown field"));
}

TEST(ParseLoadTestTest, TypeErrors) {
  const std::vector<std::string> problems = Problems(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: [LoadTest]
metadata: {name: types, labels: [a]}
spec:
  target: "http://h"
  requests:
    - {path: {a: 1}, weight: -1, expectStatus: [200, "201", abc, 3000000000, ~]}
    - {weight: 4294967296, headers: {X: {nested: 1}}}
    - just-a-string
  load: {users: 1.5, rate: fast, spawnRate: "2", stages: {duration: 1s}}
  duration: 1s
  agents: abc
  abortOnFail: yes
  abort: "true"
  thresholds: [{p95: 1s}]
)yaml");
  EXPECT_THAT(
      problems,
      ElementsAre(
          "kind: expected a string, got a list", "metadata.labels: expected a map, got a list",
          "spec.target: expected a map, got the string \"http://h\"",
          "spec.requests[0].path: expected a string, got a map",
          "spec.requests[0].weight: expected a whole number from 0 to 4294967295, got \"-1\"",
          "spec.requests[0].expectStatus[1]: expected a whole number, got the string \"201\"",
          "spec.requests[0].expectStatus[2]: expected a whole number, got \"abc\"",
          "spec.requests[0].expectStatus[3]: expected a whole number from -2147483648 to "
          "2147483647, "
          "got \"3000000000\"",
          "spec.requests[0].expectStatus[4]: expected a whole number, got null",
          "spec.requests[1].weight: expected a whole number from 0 to 4294967295, got "
          "\"4294967296\"",
          "spec.requests[1].headers.X: expected a string, got a map",
          "spec.requests[2]: expected a map, got \"just-a-string\"",
          "spec.load.users: expected a whole number, got \"1.5\"",
          "spec.load.rate: expected a number, got \"fast\"",
          "spec.load.spawnRate: expected a number, got the string \"2\"",
          "spec.load.stages: expected a list, got a map",
          "spec.agents: expected a whole number, got \"abc\"",
          "spec.abortOnFail: expected true or false, got \"yes\"",
          "spec.abort: expected true or false, got the string \"true\"",
          "spec.thresholds[0]: expected a string, got a map",
          // Validation does not repeat what the type errors explain (kind and spec.target.url
          // missing, no load model), but still reports what is wrong with what was read.
          "spec.requests[1].name: \"GET /\" is also the name of spec.requests[0]; names must be "
          "unique"));
}

TEST(ParseLoadTestTest, DuplicateKeys) {
  EXPECT_THAT(Problems(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: dup}
spec:
  target: {url: "http://h"}
  load: {users: 1}
  duration: 1s
  agents: 2
  agents: 3
  requests: [{headers: {A: x, A: y}}]
)yaml"),
              ElementsAre("spec.agents: duplicate key (first on line 9)",
                          "spec.requests[0].headers.A: duplicate key (first on line 11)"));
}

TEST(ParseLoadTestTest, DocumentShapeErrorsGiveOneMessageWithTheLine) {
  EXPECT_THAT(Problems("apiVersion: x\nspec:\n  load: [1, 2\n  duration: 1s\n"),
              ElementsAre("line 4, column 11: invalid YAML: end of sequence flow not found"));
  EXPECT_THAT(Problems("a: b\n  c: d\n"),
              ElementsAre(StartsWith("line 2, column 4: invalid YAML: ")));
  EXPECT_THAT(Problems("spec: *missing\n"),
              ElementsAre("line 1, column 7: invalid YAML: the referenced anchor is not defined"));
  for (const char* empty : {"", "   \n", "# only a comment\n", "---\n", "~\n"}) {
    EXPECT_THAT(
        Problems(empty),
        ElementsAre(
            "the document is empty; expected a LoadTest (apiVersion, kind, metadata, spec)"))
        << "\"" << empty << "\"";
  }
  EXPECT_THAT(
      Problems("\n- a\n- b\n"),
      ElementsAre(
          "line 2: expected a LoadTest map (apiVersion, kind, metadata, spec), got a list"));
  EXPECT_THAT(
      Problems("hello"),
      ElementsAre(
          "line 1: expected a LoadTest map (apiVersion, kind, metadata, spec), got \"hello\""));
  EXPECT_THAT(
      Problems("kind: LoadTest\n---\nkind: LoadTest\n"),
      ElementsAre("line 3: expected one document, got more than one (put each LoadTest in its own "
                  "file)"));
  // yaml-cpp 0.7's LoadAll loops forever (allocating) on a lone comma; ParseLoadTest must answer.
  for (const char* comma : {",", ",\n", ",piVersion: x\nkind: LoadTest\n"}) {
    EXPECT_THAT(Problems(comma), SizeIs(1)) << "\"" << comma << "\"";
  }
  EXPECT_THAT(Problems("kind: LoadTest\nmetadata: {name: \"\xff\"}\n"),
              ElementsAre("line 2: not valid UTF-8"));
  EXPECT_THAT(Problems(std::string(kMaxLoadTestBytes + 1, ' ')),
              ElementsAre(HasSubstr("bytes; the limit is 2097152")));
}

TEST(ParseLoadTestTest, AliasesCannotExpandTheDocumentWithoutBound) {
  // Nine levels of nine aliases each: 9^9 (387 million) values from under 1 KB of YAML.
  std::string text =
      std::string(kMinimal) +
      "  agentTemplate:\n    resources:\n      x0: &a0 [l, l, l, l, l, l, l, l, l]\n";
  for (int i = 1; i < 9; ++i) {
    text += "      x" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 9; ++j) text += (j > 0 ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  EXPECT_THAT(
      Problems(text),
      ElementsAre("the document has more than 250000 values (are YAML aliases expanding it?)"));
}

TEST(ParseLoadTestTest, NestingIsBounded) {
  auto nested = [](int depth) {
    return std::string(kMinimal) +
           "  agentTemplate:\n    resources: {a: " + std::string(depth, '[') +
           std::string(depth, ']') + "}\n";
  };
  EXPECT_TRUE(ParseLoadTest(nested(60)).ok());
  const std::vector<std::string> problems = Problems(nested(70));
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], StartsWith("spec.agentTemplate.resources.a[0][0]"));
  EXPECT_THAT(problems[0], HasSubstr("]: nested deeper than 64 levels"));
}

TEST(ParseLoadTestTest, AHostileDocumentIsRefusedBeforeItsTreeIsBuilt) {
  // A megabyte of brackets would be a million queued tokens (issue 9: eight such bodies took the
  // server from 19 MB to 1.16 GB); the text is looked at first, so this fails at level 129.
  EXPECT_THAT(Problems(std::string(1 << 20, '[')),
              ElementsAre("line 1, column 129: nested deeper than 128 levels"));
  const std::string quoted = "a: \"[[[[\"\nb: '{{{{'\n# [[[[\n";
  EXPECT_THAT(Problems(quoted + std::string(126, '[') + std::string(126, ']')),
              Not(Contains(HasSubstr("nested deeper than 128"))))
      << "brackets in quotes and comments are not nesting";
  // A flat list of too many values, too.
  std::string wide = "[";
  for (size_t i = 0; i <= 100'000; ++i) wide += "1,";
  wide += "1]";
  EXPECT_THAT(Problems(wide), ElementsAre("line 1: the document has more than 100000 values"));
}

TEST(ParseLoadTestTest, TypeErrorDoesNotAlsoReportTheFieldMissing) {
  EXPECT_THAT(Problems(WithLoad("{users: abc}")),
              ElementsAre("spec.load.users: expected a whole number, got \"abc\""));
  EXPECT_THAT(Problems(WithLoad("{users: 10, stages: 5}")),
              ElementsAre("spec.load.stages: expected a list, got \"5\""));
}

TEST(ParseLoadTestTest, SpecialNumbers) {
  // YAML's .inf and protobuf JSON's "Infinity" are numbers, so the message is about the range.
  EXPECT_THAT(Problems(WithLoad("{rate: .inf}")),
              ElementsAre("spec.load.rate: must be a finite number"));
  EXPECT_THAT(Problems(WithLoad("{rate: \"-Infinity\"}")),
              ElementsAre("spec.load.rate: must be a finite number"));
  EXPECT_THAT(Problems(WithLoad("{rate: .nan}")),
              ElementsAre("spec.load.rate: must be a finite number"));
  EXPECT_EQ(MustParse(WithLoad("{rate: 1e3}")).spec().load().rate(), 1000);
  EXPECT_EQ(MustParse(WithLoad("{users: +7}")).spec().load().users(), 7u);
}

// One validation rule per case: kMinimal (valid), changed by `mutate`, must give exactly `want`.
struct RuleCase {
  const char* name;
  std::function<void(v1::LoadTest&)> mutate;
  std::vector<std::string> want;
};

void CheckRules(const std::vector<RuleCase>& cases) {
  const v1::LoadTest base = MustParse(kMinimal);
  ASSERT_THAT(ValidateLoadTest(base), IsEmpty());
  for (const RuleCase& c : cases) {
    v1::LoadTest test = base;
    c.mutate(test);
    EXPECT_THAT(ValidateLoadTest(test), ElementsAreArray(c.want)) << c.name;
  }
}

TEST(ValidateLoadTestTest, ObjectRules) {
  CheckRules({
      {"api version",
       [](v1::LoadTest& t) { t.set_api_version("stampede.dev/v1"); },
       {"apiVersion: must be \"stampede.dev/v1alpha1\", got \"stampede.dev/v1\""}},
      {"no api version",
       [](v1::LoadTest& t) { t.clear_api_version(); },
       {"apiVersion: required (stampede.dev/v1alpha1)"}},
      {"kind",
       [](v1::LoadTest& t) { t.set_kind("Loadtest"); },
       {"kind: must be \"LoadTest\", got \"Loadtest\""}},
      {"no kind", [](v1::LoadTest& t) { t.clear_kind(); }, {"kind: required (LoadTest)"}},
      {"no name",
       [](v1::LoadTest& t) { t.mutable_metadata()->clear_name(); },
       {"metadata.name: required"}},
      {"upper case",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name("Checkout"); },
       {"metadata.name: \"Checkout\" must be lowercase letters, digits and '-', starting and "
        "ending "
        "with a letter or digit"}},
      {"leading dash",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name("-a"); },
       {"metadata.name: \"-a\" must be lowercase letters, digits and '-', starting and ending "
        "with a letter or digit"}},
      {"trailing dash",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name("a-"); },
       {"metadata.name: \"a-\" must be lowercase letters, digits and '-', starting and ending "
        "with a letter or digit"}},
      {"dots",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name("a.b"); },
       {"metadata.name: \"a.b\" must be lowercase letters, digits and '-', starting and ending "
        "with a letter or digit"}},
      {"52 characters",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name(std::string(52, 'a')); },
       {}},
      {"53 characters",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_name("x-" + std::string(51, 'a')); },
       {"metadata.name: must be at most 52 characters (agent Pods are named <name>-agent-<i>), got "
        "53"}},
      {"namespace",
       [](v1::LoadTest& t) { t.mutable_metadata()->set_namespace_("My_NS"); },
       {"metadata.namespace: \"My_NS\" is not a Kubernetes namespace name (a DNS label: lowercase "
        "letters, digits and '-', at most 63)"}},
      {"status is ours", [](v1::LoadTest& t) { t.mutable_status()->set_phase("Whatever"); }, {}},
  });
}

TEST(ValidateLoadTestTest, TargetRules) {
  auto url = [](const char* u) {
    return [u](v1::LoadTest& t) { t.mutable_spec()->mutable_target()->set_url(u); };
  };
  CheckRules({
      {"no url", url(""), {"spec.target.url: required"}},
      {"scheme",
       url("ftp://h"),
       {"spec.target.url: \"ftp://h\" must start with http:// or https://"}},
      {"no scheme",
       url("localhost:80"),
       {"spec.target.url: \"localhost:80\" must start with http:// or https://"}},
      {"no host", url("http://"), {"spec.target.url: \"http://\" has no host"}},
      {"only port", url("http://:80/x"), {"spec.target.url: \"http://:80/x\" has no host"}},
      {"port 0",
       url("http://h:0/"),
       {"spec.target.url: \"http://h:0/\": port \"0\" is not in 1..65535"}},
      {"port big",
       url("http://h:65536"),
       {"spec.target.url: \"http://h:65536\": port \"65536\" is not in 1..65535"}},
      {"space",
       url("http://h/a b"),
       {"spec.target.url: \"http://h/a b\" has spaces or control characters"}},
      {"fragment", url("http://h/#top"), {"spec.target.url: \"http://h/#top\" has a #fragment"}},
      {"credentials",
       url("http://u:p@h/"),
       {"spec.target.url: \"http://u:p@h/\": credentials in URLs are not supported"}},
      {"ipv6", url("https://[::1]:8443/api?x=1"), {}},
      {"ipv6 unclosed",
       url("http://[::1/"),
       {"spec.target.url: \"http://[::1/\": unclosed [ in host"}},
      {"timeout unit",
       [](v1::LoadTest& t) { t.mutable_spec()->mutable_target()->set_timeout("10"); },
       {"spec.target.timeout: \"10\" has no unit (write 10s or 10ms)"}},
      {"timeout zero",
       [](v1::LoadTest& t) { t.mutable_spec()->mutable_target()->set_timeout("0s"); },
       {"spec.target.timeout: must be > 0"}},
      {"timeout missing",
       [](v1::LoadTest& t) { t.mutable_spec()->mutable_target()->clear_timeout(); },
       {"spec.target.timeout: required"}},
  });
}

TEST(ValidateLoadTestTest, ProtocolRules) {
  auto target = [](const char* url, const char* protocol, int streams) {
    return [=](v1::LoadTest& t) {
      v1::Target* target = t.mutable_spec()->mutable_target();
      target->set_url(url);
      target->set_protocol(protocol);
      if (streams >= 0) target->set_max_concurrent_streams(static_cast<uint32_t>(streams));
    };
  };
  CheckRules({
      {"http1", target("http://h", "http1", -1), {}},
      {"h2c", target("http://h", "h2c", 1), {}},
      {"h2", target("https://h", "h2", 1000), {}},
      {"unknown",
       target("http://h", "http3", -1),
       {"spec.target.protocol: must be \"http1\", \"h2\" or \"h2c\", got \"http3\""}},
      {"h2 over http",
       target("http://h", "h2", -1),
       {"spec.target.protocol: h2 is HTTP/2 over TLS (negotiated by ALPN) and needs an https:// "
        "url; for cleartext HTTP/2 use h2c"}},
      {"h2c over https",
       target("https://h", "h2c", -1),
       {"spec.target.protocol: h2c is cleartext HTTP/2 and needs an http:// url; for HTTP/2 over "
        "TLS use h2"}},
      {"streams zero",
       target("http://h", "h2c", 0),
       {"spec.target.maxConcurrentStreams: must be in 1..1000, got 0"}},
      {"streams big",
       target("https://h", "h2", 1001),
       {"spec.target.maxConcurrentStreams: must be in 1..1000, got 1001"}},
      {"streams with http1",
       target("http://h", "http1", 10),
       {"spec.target.maxConcurrentStreams: applies to protocol h2 or h2c only (HTTP/1.1 has one "
        "request in flight per connection)"}},
  });
}

TEST(ParseLoadTestTest, ProtocolDefaults) {
  EXPECT_EQ(MustParse(kMinimal).spec().target().protocol(), "http1");
  EXPECT_FALSE(MustParse(kMinimal).spec().target().has_max_concurrent_streams());

  std::string h2c = kMinimal;
  const size_t url = h2c.find("url:");
  ASSERT_NE(url, std::string::npos);
  h2c.insert(url, "protocol: h2c, ");
  const v1::LoadTest test = MustParse(h2c);
  EXPECT_EQ(test.spec().target().protocol(), "h2c");
  EXPECT_EQ(test.spec().target().max_concurrent_streams(), 100u);
}

TEST(ValidateLoadTestTest, RequestRules) {
  auto request = [](std::function<void(v1::Request&)> f) {
    return [f](v1::LoadTest& t) { f(*t.mutable_spec()->mutable_requests(0)); };
  };
  CheckRules({
      {"method",
       request([](v1::Request& r) { r.set_method("GE T"); }),
       {"spec.requests[0].method: \"GE T\" is not an HTTP method (e.g. GET, POST)"}},
      {"odd token method", request([](v1::Request& r) { r.set_method("PURGE"); }), {}},
      {"no method",
       request([](v1::Request& r) { r.clear_method(); }),
       {"spec.requests[0].method: required"}},
      {"relative path",
       request([](v1::Request& r) { r.set_path("api"); }),
       {"spec.requests[0].path: \"api\" must start with /"}},
      // One rule for paths: what RFC 3986 allows unencoded, else percent-encode (issue 9).
      {"path space",
       request([](v1::Request& r) { r.set_path("/a b"); }),
       {"spec.requests[0].path: \"/a b\" has a space (encode it as %20)"}},
      {"path control",
       request([](v1::Request& r) { r.set_path("/a\nb"); }),
       {"spec.requests[0].path: \"/a\\nb\" has control characters (percent-encode them)"}},
      {"path fragment",
       request([](v1::Request& r) { r.set_path("/a#frag"); }),
       {"spec.requests[0].path: \"/a#frag\" has a '#': a fragment is never sent to a server; "
        "remove "
        "it, or write %23"}},
      {"path raw utf-8",
       request([](v1::Request& r) { r.set_path("/caf\xc3\xa9"); }),
       {"spec.requests[0].path: \"/caf\xc3\xa9\" has raw non-ASCII bytes (percent-encode them, "
        "e.g. "
        "\"\xc3\xa9\" as %C3%A9)"}},
      {"path bad percent",
       request([](v1::Request& r) { r.set_path("/a%zz"); }),
       {"spec.requests[0].path: \"/a%zz\" has a % that is not followed by two hex digits (write "
        "%25 "
        "for a percent sign)"}},
      {"path encoded", request([](v1::Request& r) { r.set_path("/caf%C3%A9?q=a%20b&x=1"); }), {}},
      {"content-length header",
       request([](v1::Request& r) { (*r.mutable_headers())["Content-Length"] = "5"; }),
       {"spec.requests[0].headers.Content-Length: is set by Stampede; remove it"}},
      {"name *",
       request([](v1::Request& r) { r.set_name("*"); }),
       {"spec.requests[0].name: \"*\" is reserved for the total over all requests"}},
      {"name total",
       request([](v1::Request& r) { r.set_name("Total"); }),
       {"spec.requests[0].name: \"Total\" is reserved for the total over all requests"}},
      {"name blank",
       request([](v1::Request& r) { r.set_name(" "); }),
       {"spec.requests[0].name: must not be blank"}},
      {"header name",
       request([](v1::Request& r) { (*r.mutable_headers())["Bad Header"] = "x"; }),
       {"spec.requests[0].headers.Bad Header: \"Bad Header\" is not a header name"}},
      {"header value",
       request([](v1::Request& r) { (*r.mutable_headers())["X-A"] = "a\r\nB: c"; }),
       {"spec.requests[0].headers.X-A: the value must not contain CR, LF or other control "
        "characters"}},
      {"header tab", request([](v1::Request& r) { (*r.mutable_headers())["X-A"] = "a\tb"; }), {}},
      {"transfer-encoding",
       request([](v1::Request& r) { (*r.mutable_headers())["transfer-encoding"] = "chunked"; }),
       {"spec.requests[0].headers.transfer-encoding: is set by Stampede; remove it"}},
      {"weight 0 (not defaulted)",
       request([](v1::Request& r) { r.set_weight(0); }),
       {"spec.requests[0].weight: must be > 0"}},
      {"expect status",
       request([](v1::Request& r) {
         r.add_expect_status(200);
         r.add_expect_status(99);
         r.add_expect_status(600);
         r.add_expect_status(599);
       }),
       {"spec.requests[0].expectStatus[1]: 99 is not an HTTP status (100..599)",
        "spec.requests[0].expectStatus[2]: 600 is not an HTTP status (100..599)"}},
      {"braces in name",
       request([](v1::Request& r) { r.set_name("a{b}"); }),
       {"spec.requests[0].name: \"a{b}\" must not contain braces (thresholds use them) or control "
        "characters"}},
      {"duplicate names",
       [](v1::LoadTest& t) {
         t.mutable_spec()->add_requests()->set_name("other");
         t.mutable_spec()->add_requests()->set_path("/");  // named "GET /" by default
         ApplyDefaults(&t);
       },
       {"spec.requests[2].name: \"GET /\" is also the name of spec.requests[0]; names must be "
        "unique"}},
      {"no requests (not defaulted)",
       [](v1::LoadTest& t) { t.mutable_spec()->clear_requests(); },
       {"spec.requests: at least one request is needed"}},
  });
}

TEST(ValidateLoadTestTest, LoadRules) {
  auto load = [](std::function<void(v1::Load&)> f) {
    return [f](v1::LoadTest& t) { f(*t.mutable_spec()->mutable_load()); };
  };
  auto stage = [](v1::Load& l, const char* duration, double target) {
    v1::Stage* s = l.add_stages();
    s->set_duration(duration);
    s->set_target(target);
  };
  const std::string one_model =
      "spec.load: set exactly one of users (closed model) or rate (open model)";
  CheckRules({
      {"neither", load([](v1::Load& l) { l.clear_users(); }), {one_model}},
      {"no load at all", [](v1::LoadTest& t) { t.mutable_spec()->clear_load(); }, {one_model}},
      {"both", load([](v1::Load& l) { l.set_rate(5); }), {one_model}},
      {"zero users", load([](v1::Load& l) { l.set_users(0); }), {"spec.load.users: must be > 0"}},
      {"zero users with stages",
       load([&](v1::Load& l) {
         l.set_users(0);
         stage(l, "1s", 5);
       }),
       {}},
      {"too many users",
       load([](v1::Load& l) { l.set_users(1'000'001); }),
       {"spec.load.users: must be <= 1000000"}},
      {"max users", load([](v1::Load& l) { l.set_users(1'000'000); }), {}},
      {"zero rate",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(0);
       }),
       {"spec.load.rate: must be > 0"}},
      {"zero rate with stages",
       load([&](v1::Load& l) {
         l.clear_users();
         l.set_rate(0);
         stage(l, "1s", 5);
       }),
       {}},
      {"negative rate",
       load([&](v1::Load& l) {
         l.clear_users();
         l.set_rate(-1);
         stage(l, "1s", 5);
       }),
       {"spec.load.rate: must be >= 0"}},
      {"infinite rate",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(std::numeric_limits<double>::infinity());
       }),
       {"spec.load.rate: must be a finite number"}},
      {"NaN rate",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(std::nan(""));
       }),
       {"spec.load.rate: must be a finite number"}},
      {"rate too high",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(10'000'001);
       }),
       {"spec.load.rate: must be <= 10000000"}},
      {"negative spawn rate",
       load([](v1::Load& l) { l.set_spawn_rate(-1); }),
       {"spec.load.spawnRate: must be >= 0"}},
      // .nan said "must be >= 0" (issue 9).
      {"nan spawn rate",
       load([](v1::Load& l) { l.set_spawn_rate(std::nan("")); }),
       {"spec.load.spawnRate: must be a finite number"}},
      {"spawn rate, open model",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(5);
         l.set_spawn_rate(2);
       }),
       {"spec.load.spawnRate: only applies to the closed model (users)"}},
      {"spawn rate with stages",
       load([&](v1::Load& l) {
         l.set_spawn_rate(2);
         stage(l, "1s", 5);
       }),
       {"spec.load.spawnRate: cannot be combined with stages (they set the ramp)"}},
      {"think time, open model",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(5);
         l.mutable_think_time()->set_min("1s");
         l.mutable_think_time()->set_max("1s");
       }),
       {"spec.load.thinkTime: only applies to the closed model (users)"}},
      {"think time min",
       load([](v1::Load& l) {
         l.mutable_think_time()->set_min("x");
         l.mutable_think_time()->set_max("1s");
       }),
       {"spec.load.thinkTime.min: \"x\" is not a duration (examples: 500ms, 10s, 1m30s, 2h)"}},
      {"think time max",
       load([](v1::Load& l) {
         l.mutable_think_time()->set_min("1s");
         l.mutable_think_time()->set_max("5");
       }),
       {"spec.load.thinkTime.max: \"5\" has no unit (write 5s or 5ms)"}},
      {"think time max < min",
       load([](v1::Load& l) {
         l.mutable_think_time()->set_min("2s");
         l.mutable_think_time()->set_max("1500ms");
       }),
       {"spec.load.thinkTime.max: must be >= min (1500ms < 2s)"}},
      {"connections, closed model",
       load([](v1::Load& l) { l.set_connections(10); }),
       {"spec.load.connections: only applies to the open model (rate)"}},
      {"connections, open model",
       load([](v1::Load& l) {
         l.clear_users();
         l.set_rate(5);
         l.set_connections(10);
       }),
       {}},
      {"stage duration missing",
       load([&](v1::Load& l) { stage(l, "", 5); }),
       {"spec.load.stages[0].duration: required"}},
      {"stage duration zero",
       load([&](v1::Load& l) {
         stage(l, "1s", 5);
         stage(l, "0s", 5);
       }),
       {"spec.load.stages[1].duration: must be > 0"}},
      {"stage duration unit",
       load([&](v1::Load& l) { stage(l, "30", 5); }),
       {"spec.load.stages[0].duration: \"30\" has no unit (write 30s or 30ms)"}},
      {"stage target negative",
       load([&](v1::Load& l) { stage(l, "1s", -1); }),
       {"spec.load.stages[0].target: must be >= 0"}},
      {"stage target NaN",
       load([&](v1::Load& l) { stage(l, "1s", std::nan("")); }),
       {"spec.load.stages[0].target: must be a finite number"}},
      {"stage users bound",
       load([&](v1::Load& l) { stage(l, "1s", 1'000'001); }),
       {"spec.load.stages[0].target: must be <= 1000000"}},
      {"stage rate bound",
       load([&](v1::Load& l) {
         l.clear_users();
         l.set_rate(1);
         stage(l, "1s", 10'000'001);
       }),
       {"spec.load.stages[0].target: must be <= 10000000"}},
      {"stage rate within bound",
       load([&](v1::Load& l) {
         l.clear_users();
         l.set_rate(1);
         stage(l, "1s", 2'000'000);
       }),
       {}},
  });
}

TEST(ValidateLoadTestTest, RunRules) {
  auto spec = [](std::function<void(v1::LoadTestSpec&)> f) {
    return [f](v1::LoadTest& t) { f(*t.mutable_spec()); };
  };
  CheckRules({
      {"no duration",
       spec([](v1::LoadTestSpec& s) { s.clear_duration(); }),
       {"spec.duration: required (or give spec.load.stages)"}},
      {"stages instead of duration",
       spec([](v1::LoadTestSpec& s) {
         s.clear_duration();
         s.mutable_load()->add_stages()->set_duration("1m");
       }),
       {}},
      {"duration unit",
       spec([](v1::LoadTestSpec& s) { s.set_duration("10"); }),
       {"spec.duration: \"10\" has no unit (write 10s or 10ms)"}},
      {"duration zero",
       spec([](v1::LoadTestSpec& s) { s.set_duration("0s"); }),
       {"spec.duration: must be > 0"}},
      {"duration negative",
       spec([](v1::LoadTestSpec& s) { s.set_duration("-1s"); }),
       {"spec.duration: \"-1s\" is negative"}},
      {"agents 0 (not defaulted)",
       spec([](v1::LoadTestSpec& s) { s.set_agents(0); }),
       {"spec.agents: must be between 1 and 10000, got 0"}},
      {"agents 10001",
       spec([](v1::LoadTestSpec& s) { s.set_agents(10001); }),
       {"spec.agents: must be between 1 and 10000, got 10001"}},
      {"agents 10000", spec([](v1::LoadTestSpec& s) { s.set_agents(10000); }), {}},
      {"threads 257",
       spec([](v1::LoadTestSpec& s) { s.set_threads_per_agent(257); }),
       {"spec.threadsPerAgent: must be at most 256 (0: one per CPU core), got 257"}},
      {"threads 256", spec([](v1::LoadTestSpec& s) { s.set_threads_per_agent(256); }), {}},
      {"on agent loss",
       spec([](v1::LoadTestSpec& s) { s.set_on_agent_loss("retry"); }),
       {"spec.onAgentLoss: must be \"fail\" or \"continue\", got \"retry\""}},
      {"continue", spec([](v1::LoadTestSpec& s) { s.set_on_agent_loss("continue"); }), {}},
      {"image pull policy",
       spec([](v1::LoadTestSpec& s) {
         s.mutable_agent_template()->set_image_pull_policy("ifNotPresent");
       }),
       {"spec.agentTemplate.imagePullPolicy: must be Always, IfNotPresent or Never, got "
        "\"ifNotPresent\""}},
      {"image pull policy Never",
       spec(
           [](v1::LoadTestSpec& s) { s.mutable_agent_template()->set_image_pull_policy("Never"); }),
       {}},
      {"threshold syntax",
       spec([](v1::LoadTestSpec& s) { s.add_thresholds("p95 <"); }),
       {"spec.thresholds[0]: threshold \"p95 <\": missing value"}},
      {"threshold metric",
       spec([](v1::LoadTestSpec& s) {
         s.add_thresholds("rps > 1");
         s.add_thresholds("p96x < 1s");
       }),
       {"spec.thresholds[1]: threshold \"p96x < 1s\": unknown metric \"p96x\" (use p50..p99.999, "
        "max, mean, "
        "min, error_rate, rps, requests or errors)"}},
      {"threshold request",
       spec([](v1::LoadTestSpec& s) { s.add_thresholds("p95{home} < 1s"); }),
       {"spec.thresholds[0]: no request is named \"home\" (requests: \"GET /\")"}},
      {"threshold known request",
       spec([](v1::LoadTestSpec& s) { s.add_thresholds("p95{GET /} < 1s"); }),
       {}},
  });
}

TEST(ValidationStatusTest, JoinsTheProblems) {
  v1::LoadTest test = MustParse(kMinimal);
  EXPECT_TRUE(ValidationStatus(test).ok());
  test.mutable_spec()->set_agents(0);
  test.set_kind("");
  const absl::Status status = ValidationStatus(test);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "kind: required (LoadTest)\nspec.agents: must be between 1 and 10000, got 0");
}

TEST(RunDurationNsTest, DurationOrSumOfStages) {
  v1::LoadTest test = MustParse(kFull);
  EXPECT_EQ(RunDurationNs(test.spec()), 300'000'000'000);
  test.mutable_spec()->clear_duration();
  EXPECT_EQ(RunDurationNs(test.spec()), 240'000'000'000);  // 1m + 3m
  test = MustParse(WithLoad("{users: 10}"));
  EXPECT_EQ(RunDurationNs(test.spec()), 30'000'000'000);
}

TEST(LoadTestToJsonTest, RoundTripsThroughParseLoadTest) {
  for (const char* text : {kFull, kMinimal}) {
    const v1::LoadTest test = MustParse(text);
    const std::string json = LoadTestToJson(test);
    const v1::LoadTest again = MustParse(json);
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(test, again)) << diff << "\n" << json;
  }
}

TEST(LoadTestToJsonTest, WritesUserFacingJson) {
  v1::LoadTest test = MustParse(kFull);
  test.mutable_metadata()->set_generation(7);
  test.mutable_spec()->mutable_requests(1)->set_body("line1\n\"q\"\\\x01");
  v1::LoadTestStatus* status = test.mutable_status();
  status->set_phase("Succeeded");
  status->mutable_summary()->set_requests(12'345'678'901ULL);
  status->mutable_summary()->set_error_rate(0.0125);
  status->mutable_summary()->set_rps(1234.5);
  const std::string json = LoadTestToJson(test);
  EXPECT_THAT(json, StartsWith("{\"apiVersion\":\"stampede.dev/v1alpha1\",\"kind\":\"LoadTest\","));
  EXPECT_THAT(json, HasSubstr("\"generation\":7"));          // int64 as a number
  EXPECT_THAT(json, HasSubstr("\"requests\":12345678901"));  // uint64 as a number
  EXPECT_THAT(json, HasSubstr("\"errorRate\":0.0125"));
  EXPECT_THAT(json, HasSubstr("\"rps\":1234.5"));
  EXPECT_THAT(json, HasSubstr("\"insecureSkipVerify\":true"));
  EXPECT_THAT(json, HasSubstr("\"users\":0"));  // explicit presence is kept
  EXPECT_THAT(json, HasSubstr("\"expectStatus\":[200,201]"));
  EXPECT_THAT(json, HasSubstr("\"labels\":{\"team\":\"payments\",\"tier\":\"1\"}"));  // sorted
  EXPECT_THAT(json, HasSubstr("\"limits\":{\"cpu\":2,\"memory\":\"1Gi\"}"));
  EXPECT_THAT(json, HasSubstr("\"body\":\"line1\\n\\\"q\\\"\\\\\\u0001\""));
  EXPECT_THAT(json, Not(HasSubstr("abort\":")));  // false is omitted
  EXPECT_THAT(json, Not(HasSubstr("\n")));

  const v1::LoadTest again = MustParse(json);
  EXPECT_TRUE(MessageDifferencer::Equals(test, again)) << json;
}

TEST(ExamplesTest, EveryExampleParses) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(STAMPEDE_EXAMPLES_DIR)) {
    if (entry.path().extension() == ".yaml" || entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> names;
  for (const auto& path : files) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const absl::StatusOr<v1::LoadTest> test = ParseLoadTest(text.str());
    EXPECT_TRUE(test.ok()) << path << ":\n" << test.status();
    names.push_back(path.filename().string());
  }
  for (const char* name : {"django-gunicorn.yaml", "open-model.yaml", "quickstart.yaml"}) {
    EXPECT_THAT(names, Contains(name));
  }
}

TEST(ExamplesTest, QuickstartIsWhatTheReadmeDescribes) {
  std::ifstream in(std::filesystem::path(STAMPEDE_EXAMPLES_DIR) / "quickstart.yaml");
  std::stringstream text;
  text << in.rdbuf();
  const v1::LoadTest test = MustParse(text.str());
  const v1::LoadTestSpec& spec = test.spec();
  EXPECT_EQ(spec.agents(), 2u);
  EXPECT_EQ(spec.load().users(), 100u);
  EXPECT_EQ(spec.load().spawn_rate(), 50);
  EXPECT_EQ(RunDurationNs(spec), 15'000'000'000);
  ASSERT_EQ(spec.requests_size(), 2);
  EXPECT_EQ(spec.requests(0).path(), "/random-delay/1/20");
  EXPECT_EQ(spec.requests(0).weight(), 3u);
  EXPECT_EQ(spec.requests(1).path(), "/delay/5");
  EXPECT_EQ(spec.requests(1).weight(), 1u);
  EXPECT_THAT(spec.thresholds(), SizeIs(3));
}

}  // namespace
}  // namespace stampede::common

namespace stampede::common {
namespace {

TEST(ParseLoadTestTest, ExplicitZeroAgentsOrWeightIsAnErrorNotTheDefault) {
  const auto parsed = ParseLoadTest(R"(apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: zero}
spec:
  target: {url: "http://127.0.0.1:1"}
  requests: [{path: /a, weight: 0}, {path: /b}]
  load: {users: 1}
  duration: 1s
  agents: 0
)");
  ASSERT_FALSE(parsed.ok());
  const std::string message(parsed.status().message());
  EXPECT_NE(message.find("spec.agents: must be between 1 and 10000, got 0"), std::string::npos)
      << message;
  EXPECT_NE(message.find("spec.requests[0].weight: must be > 0"), std::string::npos) << message;
  EXPECT_EQ(message.find("spec.requests[1].weight"), std::string::npos) << message;
}

}  // namespace
}  // namespace stampede::common

namespace stampede::common {
namespace {

constexpr char kScenarioSpec[] = R"yaml(apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: flow}
spec:
  target: {url: "http://localhost:8080"}
  load: {users: 2}
  duration: 30s
  thresholds: ["p95{login} < 1s"]
  data:
    user: {inline: [{email: a@x, pw: 1}, {email: b@x, pw: 2}]}
  scenarios:
    - name: s
      onStart:
        - name: login
          request: {method: POST, path: /login, json: {email: "{{ user.email }}", n: "{{ vu.id }}"}}
          capture: {token: {json: $.token}}
      flow:
        - request: {path: "/items/{{ token }}"}
)yaml";

TEST(ScenarioSpecTest, ScenariosReplaceTheMixAndNameTheStats) {
  const v1::LoadTest test = MustParse(kScenarioSpec);
  EXPECT_EQ(test.spec().requests_size(), 0) << "no default request beside scenarios";
  EXPECT_EQ(StatNames(test.spec()), (std::vector<std::string>{"login", "GET /items/:token"}));
  EXPECT_TRUE(test.spec().scenarios(0).on_start(0).request().json().has_struct_value());
}

std::string ScenarioSpecWith(const std::string& from, const std::string& to) {
  std::string text = kScenarioSpec;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(ScenarioSpecTest, EveryProblemNamesItsField) {
  using ::testing::Contains;
  EXPECT_THAT(Problems(ScenarioSpecWith("load: {users: 2}", "load: {users: 3}")),
              Contains("spec.data.user: 2 rows for 3 virtual users (each row goes to one; add "
                       "rows, or set onExhausted: wrap)"));
  EXPECT_TRUE(ParseLoadTest(ScenarioSpecWith("pw: 2}]}", "pw: 2}], onExhausted: wrap}")).ok());
  EXPECT_THAT(Problems(ScenarioSpecWith("/items/{{ token }}", "/items/{{ user.name }}")),
              Contains("spec.scenarios[0].flow[0].request.path: {{ user.name }}: table \"user\" "
                       "has no field \"name\""));
  EXPECT_THAT(Problems(ScenarioSpecWith("/items/{{ token }}", "/items/{{ tokn }}")),
              Contains("spec.scenarios[0].flow[0].request.path: {{ tokn }} is not captured by "
                       "an earlier step"));
  EXPECT_THAT(Problems(ScenarioSpecWith("pw: 2}]}", "pw: 2}], order: random}")),
              Contains("spec.data.user.order: random draws any row at any time: it needs split: "
                       "shared"));
  EXPECT_THAT(Problems(ScenarioSpecWith("pw: 2}]}", "pw: 2}], bind: vu}")),
              Contains("spec.data.user.bind: must be one of user, iteration, got \"vu\""));
  EXPECT_THAT(Problems(ScenarioSpecWith("{inline: [{email: a@x, pw: 1}, {email: b@x, pw: 2}]}",
                                        "{inline: [{email: a@x}], file: u.csv}")),
              Contains("spec.data.user: exactly one of inline, file, configMap and secret"));
  EXPECT_THAT(Problems(ScenarioSpecWith("{email: b@x, pw: 2}", "{email: b@x}")),
              Contains("spec.data.user.inline[1]: has 1 fields, row 0 has 2 (email, pw)"));
  EXPECT_THAT(Problems(ScenarioSpecWith("  scenarios:", "  requests: [{path: /}]\n  scenarios:")),
              Contains("spec.requests: set requests or scenarios, not both (a request is a "
                       "one-step scenario)"));
  EXPECT_THAT(Problems(ScenarioSpecWith("p95{login}", "p95{logout}")),
              Contains(::testing::HasSubstr("spec.thresholds[0]")));
  EXPECT_THAT(Problems(ScenarioSpecWith("n: \"{{ vu.id }}\"", "n: \"{{ bad(1) }}\"")),
              Contains(::testing::HasSubstr("spec.scenarios[0].onStart[0].request.json: column")));
}

}  // namespace
}  // namespace stampede::common
