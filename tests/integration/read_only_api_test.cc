// The operator's port with --ui: a real controller runs a real test (local agent processes against
// the test target) and an HttpApi in read-only mode shows it, over real HTTP: the list, the
// results (whole, and only the seconds after `since`), the report and the UI's files, while every
// way of changing a test is refused with 405 and the LoadTest itself with 403. Without --ui the
// same port has none of it.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/spec.h"
#include "controller/controller.h"
#include "controller/http_api.h"
#include "controller/local_launcher.h"
#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::controller {
namespace {

using nlohmann::json;
class ReadOnlyApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControllerOptions options;
    options.grpc_listen = "127.0.0.1:0";
    auto c = Controller::Create(options);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = std::move(*c);
    auto test = common::ParseLoadTest(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: shown, namespace: "
        "team}\nspec:\n  target: {url: \"" +
        target_.Url("") +
        "\"}\n  requests: [{name: home, path: /, headers: {Authorization: Bearer secret}}]\n"
        "  load: {users: 2, thinkTime: {min: 5ms, max: 10ms}}\n  duration: 3s\n");
    ASSERT_TRUE(test.ok()) << test.status();
    common::ApplyDefaults(&*test);
    run_ = controller_->StartRun(
        *test, std::make_unique<LocalLauncher>(testing::AgentBinary(), testing::MakeTempDir()));
    ASSERT_TRUE(run_->WaitDone(60'000));
  }

  std::unique_ptr<HttpApi> Serve(bool ui) {
    HttpApiOptions http;
    http.listen = "127.0.0.1:0";
    http.read_only_api = ui;
    auto api = HttpApi::Start(http, controller_.get());
    EXPECT_TRUE(api.ok()) << api.status();
    return api.ok() ? std::move(*api) : nullptr;
  }

  testing::TestTarget target_;
  std::unique_ptr<Controller> controller_;
  std::shared_ptr<stampede::controller::Run> run_;
};

TEST_F(ReadOnlyApiTest, ShowsTheControllersRunsAndRefusesEveryChange) {
  std::unique_ptr<HttpApi> api = Serve(/*ui=*/true);
  ASSERT_NE(api, nullptr);
  httplib::Client http("127.0.0.1", api->port());
  const std::string base = "/api/v1/loadtests/" + run_->id();

  auto info = http.Get("/api/v1/info");
  ASSERT_TRUE(info);
  EXPECT_EQ(json::parse(info->body), json({{"readOnly", true}, {"tokenRequired", false}}));

  auto list = http.Get("/api/v1/loadtests");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  const json items = json::parse(list->body)["items"];
  ASSERT_EQ(items.size(), 1u) << list->body;
  EXPECT_EQ(items[0]["id"], run_->id());
  EXPECT_EQ(items[0]["namespace"], "team");
  EXPECT_EQ(items[0]["phase"], "Succeeded");

  auto whole = http.Get(base + "/results");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const json all = json::parse(whole->body);
  ASSERT_GE(all["series"].size(), 3u);
  const int64_t cut = all["series"][1]["second"].get<int64_t>();
  auto since = http.Get(base + "/results?since=" + std::to_string(cut));
  ASSERT_TRUE(since);
  const json later = json::parse(since->body);
  EXPECT_EQ(later["series"].size(), all["series"].size() - 2);
  for (const json& p : later["series"]) EXPECT_GT(p["second"].get<int64_t>(), cut);
  EXPECT_EQ(later["summary"], all["summary"]) << "since trims only the series";
  auto bad_since = http.Get(base + "/results?since=soon");
  ASSERT_TRUE(bad_since);
  EXPECT_EQ(bad_since->status, 400);
  EXPECT_NE(bad_since->body.find("since \\\"soon\\\""), std::string::npos) << bad_since->body;

  auto report = http.Get(base + "/report.html");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 200);
  EXPECT_NE(report->body.find("<svg"), std::string::npos);

  auto page = http.Get("/ui/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'none'"),
            std::string::npos);
  for (const char* path : {"/", "/ui"}) {
    auto root = http.Get(path);
    ASSERT_TRUE(root);
    EXPECT_EQ(root->status, 302) << path;
    EXPECT_EQ(root->get_header_value("Location"), "/ui/") << path;
  }

  // Nothing changes a test here, and the spec (its headers) is not shown.
  auto create = http.Post("/api/v1/loadtests", "{}", "application/json");
  ASSERT_TRUE(create);
  EXPECT_EQ(create->status, 405);
  EXPECT_NE(create->body.find("read-only"), std::string::npos) << create->body;
  auto abort = http.Post(base + "/abort", "", "application/json");
  ASSERT_TRUE(abort);
  EXPECT_EQ(abort->status, 405);
  for (const std::string& path : {base, std::string("/api/v1/namespaces/team/loadtests/shown")}) {
    auto spec = http.Get(path);
    ASSERT_TRUE(spec);
    EXPECT_EQ(spec->status, 403) << path;
    EXPECT_EQ(spec->body.find("secret"), std::string::npos);
  }
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("loadtest=\"shown\""), std::string::npos);
}

TEST_F(ReadOnlyApiTest, WithoutTheUiThePortServesOnlyMetricsAndHealth) {
  std::unique_ptr<HttpApi> api = Serve(/*ui=*/false);
  ASSERT_NE(api, nullptr);
  httplib::Client http("127.0.0.1", api->port());
  for (const std::string path : {"/ui/", "/api/v1/info", "/api/v1/loadtests", "/"}) {
    auto r = http.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
  }
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
}

}  // namespace
}  // namespace stampede::controller
