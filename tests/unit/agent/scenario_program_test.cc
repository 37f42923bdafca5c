#include "agent/scenario_program.h"

#include <gtest/gtest.h>

#include <string>

#include "common/load_plan.h"
#include "common/spec.h"

namespace stampede::agent {
namespace {

using Kind = ScenarioProgram::Action::Kind;

v1::LoadTestSpec Spec(const std::string& scenarios) {
  absl::StatusOr<v1::LoadTest> t = common::ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: t}\nspec:\n"
      "  target: {url: \"http://127.0.0.1:8080/api?v=2\"}\n  duration: 10s\n"
      "  load: {users: 4}\n" +
      scenarios);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? t->spec() : v1::LoadTestSpec();
}

std::shared_ptr<const ScenarioProgram> Program(const v1::LoadTestSpec& spec,
                                               std::vector<v1::AgentTable> tables = {},
                                               int64_t think_ns = 0) {
  auto plan = common::LoadPlanFromSpec(spec);
  EXPECT_TRUE(plan.ok());
  ScenarioProgram::Options options;
  options.think_min_ns = options.think_max_ns = think_ns;
  options.agent_index = 2;
  options.env = {{"KEY", "k\"1"}};
  auto p = ScenarioProgram::Create(spec, *ParseUrl(spec.target().url()), tables, *plan, options);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : nullptr;
}

std::string Rendered(const ScenarioProgram& p, UserState& u, uint32_t step, uint64_t* rng) {
  const char* wire = nullptr;
  size_t len = 0;
  std::string why;
  EXPECT_TRUE(p.Render(u, step, rng, &wire, &len, &why)) << why;
  return std::string(wire, len);
}

TEST(ScenarioProgramTest, EscapesEachValueForWhereItGoes) {
  const v1::LoadTestSpec spec = Spec(R"(  data:
    user: {inline: [{name: "a b/c", pw: "x\"y"}, {name: n2, pw: p2}, {name: n3, pw: p3}, {name: n4, pw: p4}]}
  scenarios:
    - name: s
      flow:
        - request:
            method: POST
            path: "/u/{{ user.name }}?q={{ vu.id }}"
            headers: {X-Agent: "{{ agent.index }}"}
            json: {pw: "{{ user.pw }}", key: "{{ env.KEY }}", n: "{{ vu.iteration }}"}
)");
  v1::AgentTable users;
  users.set_name("user");
  users.add_fields("name");
  users.add_fields("pw");
  users.set_rows(4);
  for (const char* c : {"a b/c", "x\"y", "n2", "p2", "n3", "p3", "n4", "p4"}) users.add_cells(c);
  auto p = Program(spec, {users});
  ASSERT_NE(p, nullptr);
  UserState u;
  uint64_t rng = 1;
  ASSERT_TRUE(p->BeginUser(u, 0, &rng, 0));
  const ScenarioProgram::Action a = p->Next(u, &rng, 0);
  ASSERT_EQ(a.kind, Kind::kRequest);
  const std::string body = R"({"key":"k\"1","n":0,"pw":"x\"y"})";
  EXPECT_EQ(Rendered(*p, u, a.step, &rng),
            "POST /api/u/a%20b%2Fc?q=0&v=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            "User-Agent: stampede/0.1\r\nX-Agent: 2\r\nContent-Type: application/json\r\n"
            "Content-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body);
}

TEST(ScenarioProgramTest, CookiesCapturesAndAHeaderThatWouldBreakOut) {
  const v1::LoadTestSpec spec = Spec(R"(  scenarios:
    - name: s
      onStart:
        - request: {method: POST, path: /login}
          capture: {token: {json: $.token}, sid: {header: X-Sid}}
      flow:
        - request: {path: /static}
        - request: {path: /me, headers: {Authorization: "Bearer {{ token }}"}}
)");
  auto p = Program(spec);
  ASSERT_NE(p, nullptr);
  UserState u;
  uint64_t rng = 1;
  ASSERT_TRUE(p->BeginUser(u, 3, &rng, 0));
  const ScenarioProgram::Action login = p->Next(u, &rng, 0);
  ASSERT_EQ(login.kind, Kind::kRequest);
  HttpResponseParser parser;
  parser.Reset(false, &p->step(login.step).keep);
  const std::string response =
      "HTTP/1.1 200 OK\r\nSet-Cookie: cart=c3; Path=/api\r\nX-Sid: s9\r\n"
      "Content-Length: 16\r\n\r\n{\"token\": \"a\\r\"}";
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(response.data(), response.size(), &consumed),
            HttpResponseParser::Result::kComplete);
  common::JsonFinder finder;
  Rendered(*p, u, login.step, &rng);  // the login's path is what its cookie is matched against
  EXPECT_EQ(p->Check(u, login.step, parser, true, finder, &rng), common::Outcome::kOk);
  // Slots in the order of their names: sid, token.
  EXPECT_EQ(u.captures, (std::vector<std::string>{"s9", "a\r"}));

  const ScenarioProgram::Action fixed = p->Next(u, &rng, 0);
  ASSERT_EQ(fixed.kind, Kind::kRequest);
  EXPECT_EQ(Rendered(*p, u, fixed.step, &rng),
            "GET /api/static?v=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: stampede/0.1\r\n"
            "Cookie: cart=c3\r\n\r\n")
      << "a step without templates gets the user's cookie too";

  const ScenarioProgram::Action me = p->Next(u, &rng, 0);
  ASSERT_EQ(me.kind, Kind::kRequest);
  const char* wire = nullptr;
  size_t len = 0;
  std::string why;
  EXPECT_FALSE(p->Render(u, me.step, &rng, &wire, &len, &why));
  EXPECT_EQ(why, "the value of {{ token }} holds CR, LF or NUL, which a header cannot");
  EXPECT_EQ(p->Next(u, &rng, 0).kind, Kind::kIterationEnd);

  // A response without the token: the capture is missing.
  HttpResponseParser empty;
  empty.Reset(false, &p->step(login.step).keep);
  const std::string no_token = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_EQ(empty.Parse(no_token.data(), no_token.size(), &consumed),
            HttpResponseParser::Result::kComplete);
  EXPECT_EQ(p->Check(u, login.step, empty, true, finder, &rng), common::Outcome::kCapture);
  EXPECT_EQ(p->Check(u, login.step, empty, false, finder, &rng),
            common::Outcome::kUnexpectedStatus);
}

TEST(ScenarioProgramTest, LoopsGroupsAndPauses) {
  const v1::LoadTestSpec spec = Spec(R"(  scenarios:
    - name: s
      pace: 1s
      flow:
        - loop: {count: 3, steps: [{request: {path: /a}}]}
        - think: 20ms
        - group: {probability: 100, steps: [{request: {path: /b}}, {think: 5ms}]}
        - group: {probability: 0.01, steps: [{request: {path: /rare}}]}
)");
  auto p = Program(spec);
  ASSERT_NE(p, nullptr);
  UserState u;
  uint64_t rng = 7;
  ASSERT_TRUE(p->BeginUser(u, 0, &rng, 0));
  std::string trace;
  int rare = 0;
  for (int iteration = 0; iteration < 100; ++iteration) {
    std::string one;
    while (true) {
      const ScenarioProgram::Action a = p->Next(u, &rng, 0);
      if (a.kind == Kind::kIterationEnd) break;
      if (a.kind == Kind::kPause) {
        one += "(" + std::to_string(a.pause_ns / 1000000) + "ms)";
        continue;
      }
      const std::string wire = Rendered(*p, u, a.step, &rng);
      const std::string path = wire.substr(8, wire.find('?') - 8);
      if (path == "/rare") {
        ++rare;
        continue;
      }
      one += path;
    }
    EXPECT_EQ(one, "/a/a/a(20ms)/b(5ms)") << iteration;
    int64_t wait = 0;
    ASSERT_TRUE(p->NextIteration(u, 200'000'000, &rng, &wait));
    EXPECT_EQ(wait, 800'000'000) << "pace 1s, 200 ms of it spent";
    u.iteration_start_ns = 0;
  }
  EXPECT_LT(rare, 5) << "a 0.01 % group";
}

// The pause between iterations is the engine's think time (load.thinkTime, bench's --think),
// and pace only lengthens it.
TEST(ScenarioProgramTest, TheThinkTimeIsThePauseBetweenIterations) {
  const v1::LoadTestSpec spec = Spec(R"(  scenarios:
    - name: s
      pace: 500ms
      flow: [{request: {path: /a}}]
)");
  auto p = Program(spec, {}, 300'000'000);
  ASSERT_NE(p, nullptr);
  UserState u;
  uint64_t rng = 5;
  ASSERT_TRUE(p->BeginUser(u, 0, &rng, 0));
  ASSERT_EQ(p->Next(u, &rng, 0).kind, Kind::kRequest);
  ASSERT_EQ(p->Next(u, &rng, 0).kind, Kind::kIterationEnd);
  int64_t wait = 0;
  ASSERT_TRUE(p->NextIteration(u, 100'000'000, &rng, &wait));
  EXPECT_EQ(wait, 400'000'000) << "pace: 500 ms from the start, 100 ms gone";
  ASSERT_EQ(p->Next(u, &rng, 0).kind, Kind::kRequest);
  ASSERT_EQ(p->Next(u, &rng, 0).kind, Kind::kIterationEnd);
  ASSERT_TRUE(p->NextIteration(u, u.iteration_start_ns + 450'000'000, &rng, &wait));
  EXPECT_EQ(wait, 300'000'000) << "the think time, longer than what pace leaves";
}

TEST(ScenarioProgramTest, AFailedOnStartIsTriedAgainByAUserAndEndsAnArrival) {
  for (const char* load : {"{users: 1}", "{rate: 10}"}) {
    std::string text = R"(  scenarios:
    - name: s
      onStart: [{request: {method: POST, path: /login}, capture: {t: {json: $.t}}}]
      flow: [{request: {path: "/x/{{ t }}"}}]
)";
    v1::LoadTestSpec spec = Spec(text);
    const bool open = std::string(load) != "{users: 1}";
    if (open) {
      spec.mutable_load()->clear_users();
      spec.mutable_load()->set_rate(10);
    }
    auto p = Program(spec);
    ASSERT_NE(p, nullptr);
    UserState u;
    uint64_t rng = 3;
    ASSERT_TRUE(p->BeginUser(u, 0, &rng, 0));
    ASSERT_EQ(p->Next(u, &rng, 0).kind, Kind::kRequest);
    const int64_t pause = p->AbortIteration(u);
    const ScenarioProgram::Action next = p->Next(u, &rng, 0);
    if (open) {
      EXPECT_EQ(next.kind, Kind::kIterationEnd) << "an arrival ends";
      EXPECT_TRUE(u.ended_early);
    } else {
      EXPECT_EQ(pause, 1'000'000'000) << "a user logs in again a second later";
      EXPECT_EQ(next.kind, Kind::kRequest);
      EXPECT_FALSE(u.in_flow) << "onStart again";
    }
  }
}

}  // namespace
}  // namespace stampede::agent
