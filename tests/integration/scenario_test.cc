// Scenarios end to end: `stampede run` with three agent processes against the test target's user
// flow (tests/target/flow.h). The target counts every login, token and cart per user, so these
// tests check what the engine did from the outside: each data row logged in by exactly one
// virtual user of the whole test, every later request carrying that user's token and cookie,
// captured ids in the paths, and the run's per-step counts equal to what the target served.
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

class ScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_EQ(http_.Post("/flow/reset", "", "text/plain")->status, 200);
  }
  void TearDown() override { (void)!std::system(("rm -rf " + dir_).c_str()); }

  std::string Write(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << body;
    return path;
  }
  // A LoadTest against the target's /flow/ with `spec` under spec: (indented two spaces).
  std::string Spec(const std::string& name, const std::string& spec) {
    return Write(name + ".yaml",
                 "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: " + name +
                     "}\nspec:\n  target: {url: \"http://127.0.0.1:" +
                     std::to_string(target_.port()) + "/flow\"}\n" + spec);
  }
  CommandOutput Run(const std::string& spec, const std::string& out,
                    const std::vector<std::string>& more = {}) {
    std::vector<std::string> argv = {ControllerBinary(), "run", spec, "--quiet", "--out", out};
    argv.insert(argv.end(), more.begin(), more.end());
    return RunToEnd(argv, seconds(90));
  }
  std::string ReadText(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  json ReadJson(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }
  json Stats() { return json::parse(http_.Get("/flow/stats")->body); }
  static const json& Step(const json& results, const std::string& name) {
    for (const json& r : results["requests"]) {
      if (r["name"] == name) return r;
    }
    static const json none;
    ADD_FAILURE() << "no step " << name << " in " << results["requests"].dump();
    return none;
  }

  TestTarget target_;
  httplib::Client http_{"127.0.0.1", target_.port()};
  std::string dir_;
};

// The shop flow: log in once with the row's user (JSON body from YAML), keep the token and the
// cart cookie, list products, open a random one by its captured id, sometimes add it to the cart.
constexpr char kShop[] = R"(  agents: 3
  threadsPerAgent: 2
  duration: 3s
  load: {users: 30}
  data:
    user: {file: users.csv, order: shuffle}
  scenarios:
    - name: buyer
      onStart:
        - name: login
          request:
            method: POST
            path: /login
            json: {user: "{{ user.name }}", password: "{{ user.password }}"}
          expect: {status: [200]}
          capture:
            token: {json: $.token}
      flow:
        - request: {path: /products, headers: {Authorization: "Bearer {{ token }}"}}
          capture:
            productId: {json: "$.items[*].id", pick: random}
        - request:
            path: "/products/{{ productId }}"
            headers: {Authorization: "Bearer {{ token }}"}
          expect: {json: {"$.inStock": "true"}, onFail: stopIteration}
        - group:
            probability: 50
            steps:
              - name: add to cart
                request:
                  method: POST
                  path: /cart
                  headers: {Authorization: "Bearer {{ token }}"}
                  json: {id: "{{ productId }}", agent: "{{ agent.index }}"}
                expect: {status: [201]}
        - think: 5ms..15ms
)";

std::string Users(int n) {
  std::string csv = "name,password\n";
  for (int i = 0; i < n; ++i) csv += "u" + std::to_string(i) + ",pw-u" + std::to_string(i) + "\n";
  return csv;
}

TEST_F(ScenarioTest, EachRowIsOneUserOfTheWholeTestAndEveryRequestCarriesItsTokenAndCookie) {
  Write("users.csv", Users(30));
  const std::string out = dir_ + "/out.json";
  const std::string report = dir_ + "/report.html";
  const CommandOutput run = Run(Spec("shop", kShop), out, {"--report", report});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json stats = Stats();
  const json results = ReadJson(out);

  // 30 rows, 30 users over 3 agents x 2 threads: each row logged in exactly once.
  ASSERT_EQ(stats["logins"].size(), 30u) << stats.dump();
  for (int i = 0; i < 30; ++i) EXPECT_EQ(stats["logins"]["u" + std::to_string(i)], 1) << i;
  EXPECT_EQ(stats["bad_login"], 0);
  EXPECT_EQ(stats["bad_token"], 0) << "a request without its user's token";
  EXPECT_EQ(stats["no_cart"], 0) << "a cart request without the cookie";
  EXPECT_EQ(stats["cart_mismatch"], 0) << "a cookie of another user";

  // The run counted what the target served, step by step, under the templates' names.
  uint64_t products = 0, product = 0, cart = 0;
  for (const auto& [user, counts] : stats["requests"].items()) {
    products += counts.value("products", 0);
    product += counts.value("product", 0);
    cart += counts.value("cart", 0);
    EXPECT_GT(counts.value("products", 0), 0) << user << " never browsed";
  }
  EXPECT_EQ(Step(results, "login")["requests"], 30);
  EXPECT_EQ(Step(results, "GET /products")["requests"], products);
  EXPECT_EQ(Step(results, "GET /products/:productId")["requests"], product);
  EXPECT_EQ(Step(results, "add to cart")["requests"], cart);
  EXPECT_EQ(results["summary"]["errors"], 0) << results["summary"].dump();
  // Iterations: every one ran to its end but those the run's end cut short (at most one a user).
  ASSERT_EQ(results["scenarios"].size(), 1u) << results.dump();
  const json& buyer = results["scenarios"][0];
  EXPECT_EQ(buyer["name"], "buyer");
  EXPECT_EQ(buyer["endedEarly"], 0);
  EXPECT_LE(buyer["iterations"].get<uint64_t>(), product);
  EXPECT_GE(buyer["iterations"].get<uint64_t>() + 30, product);
  EXPECT_GT(buyer["durationNs"]["p50"].get<uint64_t>(), 5'000'000u)
      << "each ends with a 5-15 ms think";
  // The HTML report has the scenario's row, with the same count.
  const std::string html = ReadText(report);
  EXPECT_NE(html.find("<table id=\"scenarios\">"), std::string::npos);
  EXPECT_NE(html.find("<tr><td>buyer</td><td>" +
                      std::to_string(buyer["iterations"].get<uint64_t>()) + "</td>"),
            std::string::npos);
  // The group runs in about half of the iterations: far from 0 and from all.
  EXPECT_GT(cart, product / 4) << cart << " of " << product;
  EXPECT_LT(cart, product * 3 / 4) << cart << " of " << product;
}

TEST_F(ScenarioTest, FailedExpectationsAndMissingCapturesAreCountedAndFailTheRun) {
  const std::string spec = Spec("strict", R"(  duration: 2s
  load: {users: 2}
  thresholds: ["error_rate < 1%"]
  data:
    user:
      inline: [{name: u1, password: pw-u1}, {name: u2, password: pw-u2}]
  scenarios:
    - name: strict
      onStart:
        - name: login
          request: {method: POST, path: /login, form: {user: "{{ user.name }}", password: "{{ user.password }}"}}
          capture: {token: {json: $.token}}
      flow:
        - think: 10ms
        - name: wrong body
          request: {path: /products, headers: {Authorization: "Bearer {{ token }}"}}
          expect: {bodyContains: "no such text"}
        - name: no capture
          request: {path: /products, headers: {Authorization: "Bearer {{ token }}"}}
          capture: {missing: {json: $.nothing.here}}
        - name: never reached
          request: {path: "/products/{{ missing }}", headers: {Authorization: "Bearer {{ token }}"}}
)");
  const std::string out = dir_ + "/out.json";
  const CommandOutput run = Run(spec, out);
  EXPECT_EQ(run.exit_code, 1) << "the error_rate threshold fails\n" << run.err;
  const json results = ReadJson(out);
  const json& wrong = Step(results, "wrong body");
  EXPECT_GT(wrong["requests"].get<uint64_t>(), 10u);
  EXPECT_LT(wrong["requests"].get<uint64_t>(), 2 * 2 * 100u) << "2 users, 10 ms a pass, 2 s";
  EXPECT_EQ(wrong["outcomes"]["expect"], wrong["requests"]);
  const json& capture = Step(results, "no capture");
  EXPECT_EQ(capture["outcomes"]["capture"], capture["requests"]);
  // onFail continue: the failed expectation did not end the iteration (each of the 2 users may
  // have been stopped between the two steps); the missing capture did.
  EXPECT_LE(capture["requests"], wrong["requests"]);
  EXPECT_GE(capture["requests"].get<uint64_t>() + 2, wrong["requests"].get<uint64_t>());
  EXPECT_EQ(Step(results, "never reached")["requests"], 0);
  const json& strict = results["scenarios"][0];
  EXPECT_EQ(strict["iterations"], 0) << "none ran to its end";
  EXPECT_LE(strict["endedEarly"], capture["requests"]);
  EXPECT_GE(strict["endedEarly"].get<uint64_t>() + 2, capture["requests"].get<uint64_t>());
  EXPECT_EQ(Stats()["logins"].size(), 2u);
}

// Open model: each arrival is a new virtual user with its own row, split exactly over two agents.
TEST_F(ScenarioTest, OpenModelArrivalsEachLogInOnceWithTheirOwnRow) {
  Write("users.csv", Users(200));
  const std::string out = dir_ + "/out.json";
  const CommandOutput run = Run(Spec("arrivals", R"(  agents: 2
  duration: 2s
  load: {rate: 100}
  data:
    user: {file: users.csv}
  scenarios:
    - name: visit
      onStart:
        - name: login
          request: {method: POST, path: /login, json: {user: "{{ user.name }}", password: "{{ user.password }}"}}
          capture: {token: {json: $.token}}
      flow:
        - request: {path: /products, headers: {Authorization: "Bearer {{ token }}"}}
)"),
                                out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json stats = Stats();
  ASSERT_EQ(stats["logins"].size(), 200u) << "100/s for 2 s, one row each";
  for (const auto& [user, n] : stats["logins"].items()) EXPECT_EQ(n, 1) << user;
  EXPECT_EQ(stats["bad_token"], 0);
  const json results = ReadJson(out);
  EXPECT_EQ(results["scenarios"][0]["iterations"], 200);
  EXPECT_EQ(results["scenarios"][0]["dropped"], 0);
  EXPECT_EQ(Step(results, "GET /products")["requests"], 200);
}

// A shared table goes whole to every agent, in its assignment: 8 MB is past gRPC's default 4 MiB
// message limit, which the agents' channel raises (this run failed before it did).
TEST_F(ScenarioTest, ATableLargerThanGrpcsDefaultMessageReachesTheAgents) {
  std::string csv = "name,password,pad\n";
  const std::string pad(40, 'x');
  for (int i = 0; i < 150000; ++i) {
    csv += "u" + std::to_string(i % 1000) + ",pw-u" + std::to_string(i % 1000) + "," + pad + "\n";
  }
  ASSERT_GT(csv.size(), size_t{7} << 20);
  Write("big.csv", csv);
  const std::string out = dir_ + "/out.json";
  const CommandOutput run = Run(Spec("big", R"(  duration: 1s
  load: {users: 3}
  data:
    user: {file: big.csv, split: shared}
  scenarios:
    - name: s
      onStart:
        - request: {method: POST, path: /login, json: {user: "{{ user.name }}", password: "{{ user.password }}"}}
          capture: {token: {json: $.token}}
      flow:
        - request: {path: /products, headers: {Authorization: "Bearer {{ token }}"}}
          think: 20ms
)"),
                                out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Stats()["logins"].size(), 3u);
  EXPECT_EQ(ReadJson(out)["summary"]["errors"], 0);
}

TEST_F(ScenarioTest, DataProblemsAreRefusedBeforeAnythingStartsNamingTheTable) {
  Write("few.csv", Users(3));
  struct Case {
    const char* name;
    int users;
    const char* file;
    const char* field;
    const char* problem;
  };
  for (const Case& c : {
           Case{"few", 5, "few.csv", "name", "spec.data.user: 3 rows for 5 virtual users"},
           Case{"field", 1, "few.csv", "email",
                "spec.scenarios[0].flow[0].request.path: {{ user.email }}: table \"user\" has "
                "no field \"email\""},
           Case{"missing", 1, "nowhere.csv", "name", "spec.data.user.file:"},
       }) {
    const std::string spec =
        Spec(c.name, "  duration: 1s\n  load: {users: " + std::to_string(c.users) +
                         "}\n  data: {user: {file: " + c.file +
                         "}}\n  scenarios:\n    - name: s\n      flow: [{request: {path: "
                         "\"/login?u={{ user." +
                         c.field + " }}\"}}]\n");
    const CommandOutput run = Run(spec, dir_ + "/" + c.name + ".json");
    EXPECT_EQ(run.exit_code, 2) << c.name << "\n" << run.err;
    EXPECT_NE(run.err.find(c.problem), std::string::npos) << c.name << "\n" << run.err;
  }
  EXPECT_EQ(Stats()["requests"].size(), 0u) << "nothing was sent";
}

}  // namespace
}  // namespace stampede::testing
