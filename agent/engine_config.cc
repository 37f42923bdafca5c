// A controller's Assignment (the spec plus this agent's share) as the engine's configuration.
#include "agent/engine_config.h"

#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/status_macros.h"

namespace stampede::agent {

absl::StatusOr<EngineConfig> EngineConfigFromAssignment(const v1::Assignment& assignment,
                                                        uint32_t threads) {
  const v1::LoadTestSpec& spec = assignment.spec();
  EngineConfig cfg;
  cfg.url = spec.target().url();
  cfg.protocol = spec.target().protocol();
  if (spec.target().has_max_concurrent_streams())
    cfg.max_concurrent_streams = spec.target().max_concurrent_streams();
  if (!spec.target().timeout().empty()) {
    ASSIGN_OR_RETURN(cfg.timeout_ns,
                     common::ParseDurationNanos("spec.target.timeout", spec.target().timeout()));
  }
  cfg.insecure_skip_verify = spec.target().insecure_skip_verify();
  for (const v1::Request& r : spec.requests()) {
    RequestSpec req;
    req.name = r.name();
    if (!r.method().empty()) req.method = r.method();
    req.path = r.path();
    for (const auto& [k, v] : r.headers()) req.headers.emplace_back(k, v);
    req.body = r.body();
    req.weight = r.weight() == 0 ? 1 : r.weight();
    req.expect_status.assign(r.expect_status().begin(), r.expect_status().end());
    cfg.requests.push_back(std::move(req));
  }
  const v1::Load& load = spec.load();
  if (!load.has_rate()) {
    if (!load.think_time().min().empty()) {
      ASSIGN_OR_RETURN(cfg.think_min_ns, common::ParseDurationNanos("spec.load.thinkTime.min",
                                                                    load.think_time().min()));
    }
    if (!load.think_time().max().empty()) {
      ASSIGN_OR_RETURN(cfg.think_max_ns, common::ParseDurationNanos("spec.load.thinkTime.max",
                                                                    load.think_time().max()));
    }
  }
  if (spec.scenarios_size() > 0) {
    cfg.scenarios = std::make_shared<const v1::LoadTestSpec>(spec);
    cfg.data.assign(assignment.data().begin(), assignment.data().end());
    cfg.data_seed = assignment.data_seed();
    cfg.env.insert(assignment.env().begin(), assignment.env().end());
  }
  if (assignment.has_target_rules()) {
    absl::StatusOr<common::AddressPolicy> policy =
        common::AddressPolicy::FromRules(assignment.target_rules());
    if (!policy.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("target_rules: ", policy.status().message()));
    }
    cfg.address_policy = std::make_shared<const common::AddressPolicy>(*std::move(policy));
  }
  ASSIGN_OR_RETURN(cfg.plan, common::LoadPlanFromSpec(spec));
  cfg.threads = threads;
  cfg.connections = assignment.connections();
  cfg.seed = assignment.seed();
  cfg.stream_offset = assignment.stream_offset();
  cfg.stream_count = assignment.stream_count();
  return cfg;
}

}  // namespace stampede::agent
