#include "common/scenario.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stampede::common {
namespace {

using Op = ScenarioOp::Kind;

// Scenarios written as JSON (the spec's field names), as the spec reader will give them.
std::vector<v1::Scenario> Scenarios(const std::vector<std::string>& json) {
  std::vector<v1::Scenario> out;
  for (const std::string& j : json) {
    v1::Scenario s;
    const auto status = google::protobuf::util::JsonStringToMessage(j, &s);
    EXPECT_TRUE(status.ok()) << j << ": " << status.ToString();
    out.push_back(s);
  }
  return out;
}

const std::map<std::string, std::set<std::string>> kTables = {{"user", {"email", "password"}}};

constexpr char kBuyer[] = R"js({
  "name": "buyer", "weight": 3,
  "onStart": [{"name": "login",
               "request": {"method": "POST", "path": "/api/login",
                           "json": "{\"email\": \"{{ user.email }}\", \"password\": \"{{ user.password }}\"}"},
               "expect": {"status": [200]},
               "capture": {"token": {"json": "$.data.token"}}}],
  "flow": [
    {"request": {"path": "/api/products?page={{ randomInt(1,5) }}"},
     "capture": {"productId": {"json": "$.items[*].id", "pick": "random"}}},
    {"request": {"path": "/api/products/{{ productId }}"},
     "expect": {"bodyContains": "\"inStock\":true", "onFail": "stopIteration"}, "think": "1s..3s"},
    {"loop": {"min": 1, "max": 3, "steps": [
      {"name": "add-to-cart",
       "request": {"method": "POST", "path": "/api/cart",
                   "headers": {"Authorization": "Bearer {{ token }}"},
                   "json": "{\"productId\": \"{{ productId }}\", \"quantity\": {{ randomInt(1,3) }}}"},
       "expect": {"status": [200, 201]}, "think": "500ms"}]}},
    {"group": {"probability": 40, "steps": [
      {"name": "checkout", "request": {"method": "POST", "path": "/api/checkout",
                                       "headers": {"Authorization": "Bearer {{ token }}"}},
       "capture": {"orderId": {"header": "Location"}}}]}},
    {"think": "2s"}
  ]})js";

TEST(ScenarioTest, AFlowCompilesIntoAFlatProgram) {
  absl::StatusOr<CompiledScenarios> c = CompileScenarios(Scenarios({kBuyer}), kTables);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->scenarios.size(), 1u);
  const CompiledScenario& s = c->scenarios[0];
  EXPECT_EQ(s.weight, 3u);
  ASSERT_EQ(s.on_start.size(), 1u);
  std::vector<Op> kinds;
  for (const ScenarioOp& op : s.flow) kinds.push_back(op.kind);
  EXPECT_EQ(kinds, (std::vector<Op>{Op::kRequest, Op::kRequest, Op::kLoop, Op::kRequest, Op::kGroup,
                                    Op::kRequest, Op::kThink}));
  EXPECT_EQ(s.flow[2].end, 4u) << "the loop's one step, then the group";
  EXPECT_EQ(s.flow[2].loop_min, 1u);
  EXPECT_EQ(s.flow[2].loop_max, 3u);
  EXPECT_EQ(s.flow[4].end, 6u);
  EXPECT_EQ(s.flow[4].probability, 40);
  EXPECT_EQ(s.flow[6].think_min_ns, 2'000'000'000);
  // Names: given, or the method and the path's template (bounded, whatever the values).
  EXPECT_EQ(c->stat_names,
            (std::vector<std::string>{"login", "GET /api/products?page=:randomInt",
                                      "GET /api/products/:productId", "add-to-cart", "checkout"}));
  const ScenarioRequest& product = c->requests[s.flow[1].index];
  EXPECT_TRUE(product.stop_iteration_on_fail);
  EXPECT_TRUE(product.keep_body) << "bodyContains reads the body";
  EXPECT_EQ(product.think_min_ns, 1'000'000'000);
  EXPECT_EQ(product.think_max_ns, 3'000'000'000);
  // The JSON body: holes in strings are escaped as strings, the number stands alone.
  const ScenarioRequest& add = c->requests[s.flow[3].index];
  ASSERT_EQ(add.body_kind, ScenarioRequest::Body::kJson);
  EXPECT_EQ(add.body_contexts,
            (std::vector<TemplateContext>{TemplateContext::kJsonString, TemplateContext::kRaw}));
  std::string body, why;
  ASSERT_TRUE(add.body.Render(
      add.body_contexts,
      [](const TemplateHole& h) -> absl::string_view {
        return h.kind == TemplateHole::Kind::kCapture ? "7\", \"admin\": \"1" : "2";
      },
      &body, &why));
  EXPECT_EQ(body, R"js({"productId": "7\", \"admin\": \"1", "quantity": 2})js")
      << "a captured quote cannot end the string";
  // Captures get slots; what a step keeps of its response follows from what it reads.
  EXPECT_EQ(c->captures, (std::vector<std::string>{"token", "productId", "orderId"}));
  const ScenarioRequest& checkout = c->requests[s.flow[5].index];
  EXPECT_FALSE(checkout.keep_body);
  EXPECT_EQ(checkout.keep_headers, (std::vector<std::string>{"location"}));
  EXPECT_EQ(c->requests[s.on_start[0].index].captures.at(0).slot, 0u);
}

TEST(ScenarioTest, EveryProblemIsReportedWithItsFieldPath) {
  absl::StatusOr<CompiledScenarios> c =
      CompileScenarios(Scenarios({R"js({"name": "a", "flow": [
          {"request": {"path": "/u/{{ orderId }}"}},
          {"request": {"path": "/x/{{ user.phone }}/{{ account.id }}"}},
          {"request": {"path": "/y", "body": "a", "form": {"b": "c"}}},
          {"request": {"path": "/z", "json": "{\"a\": {{ token }}}"},
           "capture": {"token": {"json": "data.token"}, "vu": {"header": "X"},
                       "re": {"regex": "no group"}, "two": {"header": "X", "regex": "(a)"}}},
          {"loop": {"count": 2, "max": 3, "steps": []}},
          {"group": {"probability": 120, "steps": [{"think": "soon"}]}},
          {"expect": {"status": [99]}},
          {"request": {"path": "/a b/{{ vu.id }}", "headers": {"X-Evil": "a\r\nHost: other"}}}
        ]})js",
                                  R"js({"name": "a", "cookies": "sometimes", "flow": []})js"}),
                       kTables);
  ASSERT_FALSE(c.ok());
  const std::string m(c.status().message());
  for (const char* want : {
           "spec.scenarios[0].flow[0].request.path: {{ orderId }} is not captured by an earlier "
           "step",
           "spec.scenarios[0].flow[1].request.path: {{ user.phone }}: table \"user\" has no field "
           "\"phone\"",
           "spec.scenarios[0].flow[1].request.path: {{ account.id }}: no data table \"account\"",
           "spec.scenarios[0].flow[2].request: one of body, json and form",
           "spec.scenarios[0].flow[3].request.json: {{ token }} outside a JSON string",
           "spec.scenarios[0].flow[3].capture.token.json: column 1: a JSON path starts with \"$\"",
           "spec.scenarios[0].flow[3].capture.vu: \"vu\" cannot name a capture",
           "spec.scenarios[0].flow[3].capture.re.regex: regex: needs exactly one capturing group",
           "spec.scenarios[0].flow[3].capture.two: exactly one of json, header, regex and between",
           "spec.scenarios[0].flow[4].loop: count, or min and max, not both",
           "spec.scenarios[0].flow[4].loop.steps: needs at least one step",
           "spec.scenarios[0].flow[5].group.probability: a percentage in (0, 100]",
           "spec.scenarios[0].flow[5].group.steps[0].think: \"soon\": a duration (500ms) or a "
           "range (1s..3s)",
           "spec.scenarios[0].flow[6]: a step is a request, a think, a loop or a group",
           "spec.scenarios[0].flow[7].request.path: \"/a b/{{ vu.id }}\" ",
           "spec.scenarios[0].flow[7].request.headers.X-Evil: the value must not contain CR, LF",
           "spec.scenarios[1].name: \"a\" is used by another scenario",
           "spec.scenarios[1].cookies: \"sometimes\": user, iteration or off",
           "spec.scenarios[1].flow: needs at least one step",
       }) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << m;
  }
}

TEST(ScenarioTest, OnStartCapturesServeEveryIterationAndAStepsOwnCaptureIsNotYetThere) {
  EXPECT_TRUE(CompileScenarios(Scenarios({R"js({"name": "a",
      "onStart": [{"request": {"path": "/login"}, "capture": {"token": {"header": "X-Token"}}}],
      "flow": [{"request": {"path": "/me", "headers": {"Authorization": "Bearer {{ token }}"}}}]})js"}),
                               kTables)
                  .ok());
  absl::StatusOr<CompiledScenarios> own = CompileScenarios(Scenarios({R"js({"name": "a", "flow": [
          {"request": {"path": "/next/{{ cursor }}"}, "capture": {"cursor": {"json": "$.next"}}}]})js"}),
                                                           kTables);
  ASSERT_FALSE(own.ok());
  EXPECT_NE(own.status().message().find("{{ cursor }} is not captured by an earlier step"),
            std::string::npos);
}

TEST(ScenarioTest, ThinkTimesAreADurationOrARange) {
  int64_t lo = 0, hi = 0;
  ASSERT_TRUE(ParseThink("500ms", &lo, &hi).ok());
  EXPECT_EQ(lo, 500'000'000);
  EXPECT_EQ(hi, 500'000'000);
  ASSERT_TRUE(ParseThink("1s..2.5s", &lo, &hi).ok());
  EXPECT_EQ(hi, 2'500'000'000);
  EXPECT_EQ(ParseThink("3s..1s", &lo, &hi).message(), "\"3s..1s\": the range runs backwards");
  EXPECT_FALSE(ParseThink("1s..", &lo, &hi).ok());
}

}  // namespace
}  // namespace stampede::common
