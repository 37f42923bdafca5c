// Checks deploy/crd/loadtests.stampede.dev.yaml the way kube-apiserver 1.20 would, with a minimal
// validator for the OpenAPI subset the CRD uses (types, required, enum, bounds, pattern, oneOf,
// unknown fields, defaults), and checks that the CRD agrees with ParseLoadTest
// (common/spec_reader.cc and spec_validation.cc): whatever it accepts the CRD accepts, and the
// listed invalid documents both reject. The real API server's verdict comes from the e2e suite.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/controller/crd/yaml_to_json.h"

namespace stampede::controller {
namespace {

using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The OpenAPI v3 subset of a structural schema, validated as the API server does after defaulting.
// Unknown fields are errors, as kubectl's client-side validation reports them; the API server
// itself silently drops them (pruning).
class SchemaValidator {
 public:
  std::vector<std::string> Validate(const Json& schema, const Json& value) {
    errors_.clear();
    Check(schema, value, "");
    return errors_;
  }

 private:
  void Error(const std::string& path, const std::string& what) {
    errors_.push_back((path.empty() ? "<root>" : path.substr(1)) + ": " + what);
  }

  void Check(const Json& s, const Json& v, const std::string& path) {
    if (v.is_null()) return;  // the API server drops nulls of fields that are not nullable
    const bool preserve = s.value("x-kubernetes-preserve-unknown-fields", false);
    const std::string type = s.value("type", "");
    if (type == "object") {
      if (!v.is_object()) return Error(path, "must be an object");
      for (const Json& name : s.value("required", Json::array())) {
        const std::string key = name.get<std::string>();
        if (!v.contains(key) || v[key].is_null()) Error(path + "." + key, "required");
      }
      for (const auto& [key, item] : v.items()) {
        const std::string child = path + "." + key;
        if (s.contains("properties") && s["properties"].contains(key)) {
          Check(s["properties"][key], item, child);
        } else if (s.contains("additionalProperties")) {
          Check(s["additionalProperties"], item, child);
        } else if (!preserve) {
          Error(child, "unknown field");
        }
      }
      const Json branches = s.value("oneOf", Json::array());
      if (!branches.empty()) {
        int matching = 0;
        for (const Json& branch : branches) {
          bool all = true;
          for (const Json& name : branch["required"]) {
            const std::string key = name.get<std::string>();
            all = all && v.contains(key) && !v[key].is_null();
          }
          matching += all;
        }
        if (matching != 1) Error(path, "must set exactly one of " + branches.dump());
      }
    } else if (type == "array") {
      if (!v.is_array()) return Error(path, "must be a list");
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) {
        Error(path, "too few items");
      }
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) {
        Error(path, "too many items");
      }
      for (size_t i = 0; i < v.size(); ++i) {
        Check(s["items"], v[i], path + "[" + std::to_string(i) + "]");
      }
    } else if (type == "string") {
      if (!v.is_string()) return Error(path, "must be a string, got " + v.dump());
      const std::string text = v.get<std::string>();
      if (s.contains("pattern") &&
          !std::regex_search(text, std::regex(s["pattern"].get<std::string>()))) {
        Error(path, "\"" + text + "\" does not match " + s["pattern"].get<std::string>());
      }
      if (s.contains("minLength") && text.size() < s["minLength"].get<size_t>()) {
        Error(path, "too short");
      }
      if (s.contains("maxLength") && text.size() > s["maxLength"].get<size_t>()) {
        Error(path, "too long");
      }
    } else if (type == "integer") {
      if (!v.is_number_integer()) return Error(path, "must be an integer, got " + v.dump());
    } else if (type == "number") {
      if (!v.is_number()) return Error(path, "must be a number, got " + v.dump());
    } else if (type == "boolean") {
      if (!v.is_boolean()) return Error(path, "must be a boolean, got " + v.dump());
    } else if (!(type.empty() && preserve)) {
      return Error(path, "the schema has no type");
    }
    if (v.is_number() && s.contains("minimum") && v.get<double>() < s["minimum"].get<double>()) {
      Error(path, v.dump() + " is less than the minimum " + s["minimum"].dump());
    }
    if (v.is_number() && s.contains("maximum") && v.get<double>() > s["maximum"].get<double>()) {
      Error(path, v.dump() + " is more than the maximum " + s["maximum"].dump());
    }
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) {
      Error(path, v.dump() + " is not one of " + s["enum"].dump());
    }
  }

  std::vector<std::string> errors_;
};

// Fills in the schema's defaults where a field is absent (or null), as the API server does.
void ApplySchemaDefaults(const Json& s, Json* v) {
  if (v->is_object() && s.contains("properties")) {
    for (const auto& [name, property] : s["properties"].items()) {
      if ((!v->contains(name) || (*v)[name].is_null()) && property.contains("default")) {
        (*v)[name] = property["default"];
      }
      if (v->contains(name)) ApplySchemaDefaults(property, &(*v)[name]);
    }
  }
  if (v->is_object() && s.contains("additionalProperties")) {
    for (auto& [key, item] : v->items()) ApplySchemaDefaults(s["additionalProperties"], &item);
  }
  if (v->is_array() && s.contains("items")) {
    for (Json& item : *v) ApplySchemaDefaults(s["items"], &item);
  }
}

const Json& Crd() {
  static const Json* crd = new Json(YamlToJson(YAML::LoadFile(STAMPEDE_CHECKED_IN_CRD)));
  return *crd;
}
const Json& Version() { return Crd()["spec"]["versions"][0]; }
const Json& Schema() { return Version()["schema"]["openAPIV3Schema"]; }

// What the API server would say about a LoadTest: empty when it would store it.
std::vector<std::string> Admit(Json document) {
  document.erase("metadata");  // the API server checks ObjectMeta itself, not with this schema
  ApplySchemaDefaults(Schema(), &document);
  return SchemaValidator().Validate(Schema(), document);
}

TEST(CrdSchemaTest, IsALoadTestCrdWithStatusAndColumns) {
  const Json& crd = Crd();
  EXPECT_EQ(crd["apiVersion"], "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd["kind"], "CustomResourceDefinition");
  EXPECT_EQ(crd["metadata"]["name"], "loadtests.stampede.dev");
  EXPECT_EQ(crd["spec"]["group"], "stampede.dev");
  EXPECT_EQ(crd["spec"]["scope"], "Namespaced");
  EXPECT_EQ(crd["spec"]["names"], Json::parse(R"({"kind": "LoadTest", "listKind": "LoadTestList",
      "plural": "loadtests", "singular": "loadtest", "shortNames": ["lt"],
      "categories": ["stampede"]})"));
  ASSERT_EQ(crd["spec"]["versions"].size(), 1u);
  EXPECT_EQ(Version()["name"], "v1alpha1");
  EXPECT_EQ(Version()["served"], true);
  EXPECT_EQ(Version()["storage"], true);
  EXPECT_EQ(Version()["subresources"], Json::parse(R"({"status": {}})"));

  std::vector<std::string> columns;
  for (const Json& c : Version()["additionalPrinterColumns"]) {
    columns.push_back(c["name"].get<std::string>() + " " + c["type"].get<std::string>() + " " +
                      c["jsonPath"].get<std::string>());
    // Each column's path leads to a schema property of the column's type.
    const std::string path = c["jsonPath"];
    if (path.rfind(".metadata.", 0) == 0) continue;
    const Json* s = &Schema();
    std::stringstream parts(path.substr(1));
    for (std::string part; std::getline(parts, part, '.');) {
      ASSERT_TRUE((*s)["properties"].contains(part)) << path;
      s = &(*s)["properties"][part];
    }
    EXPECT_EQ((*s)["type"], c["type"]) << path;
    EXPECT_TRUE(c.contains("description")) << path;
  }
  EXPECT_THAT(
      columns,
      ElementsAre("Phase string .status.phase", "Agents integer .status.agents.connected",
                  "RPS number .status.summary.rps", "Errors number .status.summary.errorRate",
                  "P95 string .status.summary.p95", "Age date .metadata.creationTimestamp"));
}

// The rules kube-apiserver applies to a v1 CRD schema that this CRD could break.
void CheckStructural(const Json& s, const std::string& path, bool in_free_form,
                     bool needs_description, std::vector<std::string>* problems) {
  const bool free_form = s.value("x-kubernetes-preserve-unknown-fields", false);
  if (!s.contains("type") && !free_form && !s.value("x-kubernetes-int-or-string", false)) {
    problems->push_back(path + ": no type");
  }
  if (needs_description && !s.contains("description")) {
    problems->push_back(path + ": no description");
  }
  if (s.contains("properties") && s.contains("additionalProperties")) {
    problems->push_back(path + ": both properties and additionalProperties");
  }
  if (s.contains("default")) {
    if (in_free_form) problems->push_back(path + ": default inside a free-form object");
    Json without_default = s;
    without_default.erase("default");
    for (const std::string& e : SchemaValidator().Validate(without_default, s["default"])) {
      problems->push_back(path + ": the default is invalid: " + e);
    }
  }
  for (const char* junctor : {"oneOf", "anyOf", "allOf"}) {
    for (const Json& branch : s.value(junctor, Json::array())) {
      for (const auto& [key, unused] : branch.items()) {
        if (key != "required") problems->push_back(path + ": " + junctor + " sets " + key);
      }
      for (const Json& name : branch.value("required", Json::array())) {
        if (!s.value("properties", Json::object()).contains(name.get<std::string>())) {
          problems->push_back(path + ": " + junctor + " requires unknown " + name.dump());
        }
      }
    }
  }
  if (s.contains("not")) problems->push_back(path + ": not is unused and unchecked here");
  const bool inner_free_form = in_free_form || free_form;
  const Json properties = s.value("properties", Json::object());
  for (const auto& [name, property] : properties.items()) {
    const std::string child = path + "." + name;
    CheckStructural(property, child, inner_free_form,
                    child.rfind(".spec", 0) == 0 || child.rfind(".status", 0) == 0, problems);
  }
  if (s.contains("items")) {
    CheckStructural(s["items"], path + "[]", inner_free_form, false, problems);
  }
  if (s.contains("additionalProperties")) {
    CheckStructural(s["additionalProperties"], path + ".*", inner_free_form, false, problems);
  }
}

TEST(CrdSchemaTest, SchemaIsStructuralAndDocumented) {
  std::vector<std::string> problems;
  CheckStructural(Schema(), "", false, false, &problems);
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_EQ(Schema()["type"], "object");
  EXPECT_EQ(Schema()["required"], Json::array({"spec"}));
  // Kubernetes owns ObjectMeta's schema; a CRD may only say it is an object.
  EXPECT_EQ(Schema()["properties"]["metadata"], Json::parse(R"({"type": "object"})"));
  // Free-form Kubernetes objects inside the spec.
  const Json& agent = Schema()["properties"]["spec"]["properties"]["agentTemplate"]["properties"];
  EXPECT_EQ(agent["resources"]["x-kubernetes-preserve-unknown-fields"], true);
  EXPECT_EQ(agent["affinity"]["x-kubernetes-preserve-unknown-fields"], true);
  EXPECT_EQ(agent["tolerations"]["items"]["x-kubernetes-preserve-unknown-fields"], true);
}

TEST(CrdSchemaTest, TheCheckerCatchesBrokenSchemas) {
  // The structural check would notice what it claims to.
  const Json broken = Json::parse(R"({"type": "object", "properties": {
      "spec": {"type": "object", "properties": {
        "untyped": {"description": "x"},
        "bare": {"type": "string"},
        "bad": {"description": "x", "type": "integer", "minimum": 1, "default": 0},
        "free": {"description": "x", "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                 "properties": {"inner": {"description": "x", "type": "string", "default": "a"}}}},
        "oneOf": [{"required": ["nope"]}, {"type": "object"}]}}})");
  std::vector<std::string> problems;
  CheckStructural(broken, "", false, false, &problems);
  EXPECT_THAT(problems,
              ElementsAre(".spec: no description", ".spec: oneOf requires unknown \"nope\"",
                          ".spec: oneOf sets type",
                          ".spec.bad: the default is invalid: <root>: 0 "
                          "is less than the minimum 1",
                          ".spec.bare: no description",
                          ".spec.free.inner: default inside a "
                          "free-form object",
                          ".spec.untyped: no type"));
}

TEST(CrdSchemaTest, EveryExampleIsAcceptedByBoth) {
  std::vector<std::filesystem::path> examples;
  for (const auto& entry : std::filesystem::directory_iterator(STAMPEDE_EXAMPLES_DIR)) {
    if (entry.path().extension() == ".yaml") examples.push_back(entry.path());
  }
  std::sort(examples.begin(), examples.end());
  ASSERT_GE(examples.size(), 4u);
  for (const std::filesystem::path& path : examples) {
    const std::string text = ReadFile(path.string());
    const absl::StatusOr<v1::LoadTest> parsed = common::ParseLoadTest(text);
    EXPECT_TRUE(parsed.ok()) << path << ": ParseLoadTest: " << parsed.status().message();
    EXPECT_THAT(Admit(YamlToJson(YAML::Load(text))), IsEmpty()) << path;
  }
}

// A valid LoadTest; each case merges a JSON patch (RFC 7386: null removes a key) into it.
constexpr char kBase[] = R"({
  "apiVersion": "stampede.dev/v1alpha1", "kind": "LoadTest", "metadata": {"name": "cases"},
  "spec": {"target": {"url": "http://svc.ns:8080"}, "requests": [{"name": "home", "path": "/"}],
           "load": {"users": 10}, "duration": "30s"}})";

// The two verdicts on kBase merged with `patch`.
struct Verdicts {
  std::string parse;             // ParseLoadTest's problems; empty: accepted
  std::vector<std::string> crd;  // the CRD's problems; empty: accepted
};

Verdicts Judge(const std::string& patch) {
  Json document = Json::parse(kBase);
  document.merge_patch(Json::parse(patch));
  const absl::StatusOr<v1::LoadTest> parsed = common::ParseLoadTest(document.dump());
  return {parsed.ok() ? "" : std::string(parsed.status().message()), Admit(document)};
}

std::string Explain(const std::string& patch, const Verdicts& v) {
  std::string out = patch + "\n  ParseLoadTest: " + (v.parse.empty() ? "accepted" : v.parse);
  out += "\n  CRD: ";
  if (v.crd.empty()) out += "accepted";
  for (const std::string& e : v.crd) out += e + "; ";
  return out;
}

TEST(CrdSchemaTest, WhatParseLoadTestAcceptsTheCrdAccepts) {
  for (const char* patch : {
           R"({})",
           R"({"spec": {"duration": "1m30s"}})",
           R"({"spec": {"duration": "1.5h"}})",
           R"({"spec": {"duration": ".5s"}})",
           R"({"spec": {"duration": "250us"}})",
           R"({"spec": {"duration": "1h2m3s4ms5us6ns"}})",
           R"({"spec": {"target": {"url": "https://[::1]:8443/api?x=1", "timeout": "2.5s",
                                   "insecureSkipVerify": true}}})",
           R"({"spec": {"target": {"url": "http://h?x=1"}}})",
           R"({"spec": {"target": {"url": "http://h", "protocol": "h2c",
                                   "maxConcurrentStreams": 1000}}})",
           R"({"spec": {"target": {"url": "https://h", "protocol": "h2"}}})",
           R"({"spec": {"target": {"url": "https://h", "protocol": "http1"}}})",
           R"({"spec": {"requests": [{"method": "PURGE", "path": ""},
                                     {"name": "GET /x", "path": "/x?y=a%20b", "weight": 5,
                                      "expectStatus": [100, 599], "headers": {"Accept": "*/*"},
                                      "body": "{}"}]}})",
           R"({"spec": {"requests": null}})",
           R"({"spec": {"load": {"users": 1000000, "spawnRate": 2.5,
                                 "thinkTime": {"min": "0", "max": "1s"}}}})",
           R"({"spec": {"load": {"users": 1, "thinkTime": {"max": "100ms"}}}})",
           R"({"spec": {"load": {"users": null, "rate": 10000000, "connections": 100}}})",
           R"({"spec": {"load": {"users": 0, "stages": [{"duration": "1m", "target": 100}]},
                        "duration": null}})",
           R"({"spec": {"load": {"users": null, "rate": 0,
                                 "stages": [{"duration": "30s", "target": 10000000}]}}})",
           R"({"spec": {"agents": 10000, "threadsPerAgent": 256, "onAgentLoss": "continue",
                        "abortOnFail": true, "abort": false}})",
           R"({"spec": {"agents": 1, "threadsPerAgent": 0, "onAgentLoss": "fail"}})",
           R"({"spec": {"thresholds": ["p95 < 500ms", "error_rate < 1%", "p99{home} < 1s"]}})",
           R"({"spec": {"agentTemplate": {"image": "x:1", "imagePullPolicy": "IfNotPresent",
               "resources": {"limits": {"cpu": 2, "memory": "1Gi"}},
               "nodeSelector": {"pool": "load"}, "tolerations": [{"key": "k", "operator": "Exists"}],
               "affinity": {"nodeAffinity": {}}, "labels": {"a": "b"}, "annotations": {"c": "d"}}}})",
           R"({"metadata": {"namespace": "shop", "labels": {"team": "x"}}})",
           R"({"status": {"phase": "Running", "agents": {"desired": 3, "connected": 2},
                          "summary": {"requests": 10, "rps": 1.5, "errorRate": 0, "p95": "12ms"},
                          "conditions": [{"type": "Running", "status": "True"}]}})",
       }) {
    const Verdicts v = Judge(patch);
    EXPECT_TRUE(v.parse.empty() && v.crd.empty()) << Explain(patch, v);
  }
}

TEST(CrdSchemaTest, BothRejectWhatTheCrdCanExpress) {
  for (const char* patch : {
           R"({"spec": {"agents": 0}})",
           R"({"spec": {"agents": 10001}})",
           R"({"spec": {"agents": "3"}})",
           R"({"spec": {"onAgentLoss": "maybe"}})",
           R"({"spec": {"threadsPerAgent": 257}})",
           R"({"spec": {"abortOnFail": "yes"}})",
           R"({"spec": {"target": {"url": "localhost:8080"}}})",
           R"({"spec": {"target": {"url": "ftp://h"}}})",
           R"({"spec": {"target": {"url": "http://"}}})",
           R"({"spec": {"target": {"url": "http://u:p@h/"}}})",
           R"({"spec": {"target": {"url": "http://h/#top"}}})",
           R"({"spec": {"target": {"url": "http://h/a b"}}})",
           R"({"spec": {"target": {"url": null}}})",
           R"({"spec": {"target": {"timeout": "10"}}})",
           R"({"spec": {"target": {"protocol": "http3"}}})",
           R"({"spec": {"target": {"protocol": "h2c", "maxConcurrentStreams": 0}}})",
           R"({"spec": {"target": {"protocol": "h2c", "maxConcurrentStreams": 1001}}})",
           R"({"spec": {"duration": "10"}})",
           R"({"spec": {"duration": "1d"}})",
           R"({"spec": {"duration": "1µs"}})",
           R"({"spec": {"duration": "5 m"}})",
           R"({"spec": {"requests": [{"path": "/", "weight": 0}]}})",
           R"({"spec": {"requests": [{"path": "/", "expectStatus": [200, 99]}]}})",
           R"({"spec": {"requests": [{"path": "/", "expectStatus": [600]}]}})",
           R"({"spec": {"requests": [{"method": "GE T"}]}})",
           R"({"spec": {"requests": [{"path": "api"}]}})",
           R"({"spec": {"requests": [{"path": "/a b"}]}})",
           R"({"spec": {"requests": [{"name": "a{b}"}]}})",
           R"({"spec": {"load": {"users": 1000001}}})",
           R"({"spec": {"load": {"users": null, "rate": 10000001}}})",
           R"({"spec": {"load": {"rate": 5}}})",
           R"({"spec": {"load": {"users": null}}})",
           R"({"spec": {"load": null}})",
           R"({"spec": {"load": {"spawnRate": -1}}})",
           R"({"spec": {"load": {"thinkTime": {"min": "x"}}}})",
           R"({"spec": {"load": {"users": 0, "stages": [{"target": 5}]}}})",
           R"({"spec": {"load": {"users": 0, "stages": [{"duration": "1m", "target": -1}]}}})",
           R"({"spec": {"agentTemplate": {"imagePullPolicy": "Sometimes"}}})",
           R"({"spec": {"load": {"userz": 1}}})",
           R"({"spec": {"foo": 1}})",
           R"({"spec": null})",
       }) {
    const Verdicts v = Judge(patch);
    EXPECT_FALSE(v.parse.empty()) << Explain(patch, v);
    EXPECT_FALSE(v.crd.empty()) << Explain(patch, v);
  }
}

// Rules across fields, or beyond what an OpenAPI schema can say: only ParseLoadTest (the operator,
// which reports them in the LoadTest's status) rejects these. A CRD that starts catching one should
// move it to the list above.
TEST(CrdSchemaTest, OnlyParseLoadTestRejectsRulesTheSchemaCannotExpress) {
  for (const char* patch : {
           R"({"spec": {"duration": "0s"}})",
           R"({"spec": {"duration": null}})",
           R"({"spec": {"load": {"users": 0}}})",
           R"({"spec": {"load": {"users": 0, "stages": [{"duration": "1m", "target": 2000000}]}}})",
           R"({"spec": {"load": {"users": null, "rate": 5, "spawnRate": 1}}})",
           R"({"spec": {"load": {"thinkTime": {"min": "2s", "max": "1s"}}}})",
           R"({"spec": {"requests": [{"name": "a"}, {"name": "a"}]}})",
           R"({"spec": {"requests": [{"headers": {"Transfer-Encoding": "chunked"}}]}})",
           R"({"spec": {"thresholds": ["p95 <"]}})",
           R"({"spec": {"target": {"url": "http://h:0/"}}})",
           R"({"spec": {"target": {"url": "http://h", "protocol": "h2"}}})",
           R"({"spec": {"target": {"url": "https://h", "protocol": "h2c"}}})",
           R"({"spec": {"target": {"url": "http://h", "maxConcurrentStreams": 10}}})",
           R"({"metadata": {"name": "a.b"}})",
           R"({"metadata": {"name": "a-name-that-is-longer-than-fifty-two-characters-in-all"}})",
       }) {
    const Verdicts v = Judge(patch);
    EXPECT_FALSE(v.parse.empty()) << Explain(patch, v);
    EXPECT_TRUE(v.crd.empty()) << Explain(patch, v);
  }
}

// Known differences the other way: ParseLoadTest is laxer than the API server. A plain YAML number
// or boolean where a string is expected is text to ParseLoadTest but a type error to Kubernetes;
// ParseLoadTest trims blanks around durations and takes a leading "+". If it is tightened, move the
// case to BothRejectWhatTheCrdCanExpress.
TEST(CrdSchemaTest, OnlyTheCrdRejectsTheseKnownDifferences) {
  for (const char* patch : {
           R"({"spec": {"requests": [{"headers": {"X-Retries": 3}}]}})",
           R"({"spec": {"duration": " 30s"}})",
           R"({"spec": {"duration": "+30s"}})",
       }) {
    const Verdicts v = Judge(patch);
    EXPECT_TRUE(v.parse.empty()) << Explain(patch, v);
    EXPECT_FALSE(v.crd.empty()) << Explain(patch, v);
  }
}

TEST(CrdSchemaTest, DefaultsMatchApplyDefaults) {
  Json document = Json::parse(kBase);
  document["spec"]["load"]["thinkTime"] = Json::object();
  ApplySchemaDefaults(Schema(), &document);
  const absl::StatusOr<v1::LoadTest> parsed = common::ParseLoadTest(kBase);
  ASSERT_TRUE(parsed.ok());
  const v1::LoadTestSpec& spec = parsed->spec();
  EXPECT_EQ(document["spec"]["agents"], spec.agents());
  EXPECT_EQ(document["spec"]["onAgentLoss"], spec.on_agent_loss());
  EXPECT_EQ(document["spec"]["target"]["timeout"], spec.target().timeout());
  EXPECT_EQ(document["spec"]["target"]["protocol"], spec.target().protocol());
  EXPECT_EQ(document["spec"]["requests"][0]["method"], spec.requests(0).method());
  EXPECT_EQ(document["spec"]["requests"][0]["weight"], spec.requests(0).weight());
  EXPECT_EQ(document["spec"]["load"]["thinkTime"]["min"], "0s");
}

}  // namespace
}  // namespace stampede::controller
