#include "agent/engine_config.h"

#include <gtest/gtest.h>

#include "stampede/v1/agent.pb.h"

namespace stampede::agent {
namespace {

v1::Assignment ClosedAssignment() {
  v1::Assignment a;
  v1::LoadTestSpec* spec = a.mutable_spec();
  spec->mutable_target()->set_url("http://127.0.0.1:1/base");
  spec->mutable_target()->set_timeout("2s");
  spec->mutable_load()->set_users(10);
  spec->mutable_load()->mutable_think_time()->set_min("10ms");
  spec->mutable_load()->mutable_think_time()->set_max("20ms");
  spec->set_duration("5s");
  v1::Request* r = spec->add_requests();
  r->set_name("buy");
  r->set_method("POST");
  r->set_path("/buy");
  r->set_body("{}");
  r->set_weight(3);
  r->add_expect_status(201);
  a.set_stream_offset(2);
  a.set_stream_count(6);
  a.set_seed(42);
  return a;
}

TEST(EngineConfigTest, AnAssignmentBecomesTheEnginesShareOfTheTest) {
  absl::StatusOr<EngineConfig> cfg = EngineConfigFromAssignment(ClosedAssignment(), 2);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->url, "http://127.0.0.1:1/base");
  EXPECT_EQ(cfg->timeout_ns, 2'000'000'000);
  EXPECT_EQ(cfg->think_min_ns, 10'000'000);
  EXPECT_EQ(cfg->think_max_ns, 20'000'000);
  ASSERT_EQ(cfg->requests.size(), 1u);
  EXPECT_EQ(cfg->requests[0].name, "buy");
  EXPECT_EQ(cfg->requests[0].method, "POST");
  EXPECT_EQ(cfg->requests[0].weight, 3u);
  EXPECT_EQ(cfg->requests[0].expect_status, std::vector<int>({201}));
  EXPECT_EQ(cfg->plan.model(), LoadPlan::Model::kClosed);
  EXPECT_EQ(cfg->plan.MaxUsers(), 10u);  // the whole test's plan: the streams pick their share
  EXPECT_EQ(cfg->threads, 2u);
  EXPECT_EQ(cfg->stream_offset, 2u);
  EXPECT_EQ(cfg->stream_count, 6u);
  EXPECT_EQ(cfg->seed, 42u);
}

TEST(EngineConfigTest, ABadDurationIsNamedByItsField) {
  v1::Assignment a = ClosedAssignment();
  a.mutable_spec()->mutable_load()->mutable_think_time()->set_max("soon");
  absl::StatusOr<EngineConfig> cfg = EngineConfigFromAssignment(a, 1);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cfg.status().message().find("spec.load.thinkTime.max"), std::string::npos)
      << cfg.status();

  a = ClosedAssignment();
  a.mutable_spec()->mutable_load()->add_stages()->set_duration("10");
  cfg = EngineConfigFromAssignment(a, 1);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("spec.load.stages[0].duration"), std::string::npos)
      << cfg.status();
}

// HTTP/2 reaches the engine with its stream limit, with the request mix and with scenarios.
TEST(EngineConfigTest, HttpTwoCarriesItsStreamLimitWithRequestsOrScenarios) {
  for (const char* protocol : {"h2", "h2c"}) {
    v1::Assignment a = ClosedAssignment();
    a.mutable_spec()->mutable_target()->set_protocol(protocol);
    a.mutable_spec()->mutable_target()->set_max_concurrent_streams(7);
    absl::StatusOr<EngineConfig> cfg = EngineConfigFromAssignment(a, 1);
    ASSERT_TRUE(cfg.ok()) << protocol << ": " << cfg.status();
    EXPECT_EQ(cfg->protocol, protocol);
    EXPECT_EQ(cfg->max_concurrent_streams, 7u);
    EXPECT_EQ(cfg->scenarios, nullptr);

    a.mutable_spec()->add_scenarios()->set_name("browse");
    cfg = EngineConfigFromAssignment(a, 1);
    ASSERT_TRUE(cfg.ok()) << protocol << ": " << cfg.status();
    EXPECT_EQ(cfg->protocol, protocol);
    EXPECT_EQ(cfg->max_concurrent_streams, 7u);
    EXPECT_NE(cfg->scenarios, nullptr);
  }
  v1::Assignment a = ClosedAssignment();
  a.mutable_spec()->mutable_target()->set_protocol("http1");
  absl::StatusOr<EngineConfig> cfg = EngineConfigFromAssignment(a, 1);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->protocol, "http1");
}

}  // namespace
}  // namespace stampede::agent
