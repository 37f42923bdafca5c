// Scenarios compiled for the engine: each scenario's steps become a flat
// program of ops with jump offsets, each request step a ScenarioRequest whose texts are compiled
// templates, and every name a template uses is checked against the data tables and the captures
// of earlier steps. Every problem is reported with its field path, all of them at once.
#ifndef STAMPEDE_COMMON_SCENARIO_H_
#define STAMPEDE_COMMON_SCENARIO_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/capture.h"
#include "common/template.h"
#include "stampede/v1/loadtest.pb.h"
#include "stampede/v1/scenario.pb.h"

namespace stampede::common {

struct ScenarioCapture {
  uint32_t slot = 0;  // index in CompiledScenarios::captures
  enum class Kind { kJson, kHeader, kRegex, kBetween } kind = Kind::kJson;
  std::shared_ptr<const JsonPath> json;
  Pick pick = Pick::kFirst;
  std::string header;  // lower case
  std::shared_ptr<const RegexCapture> regex;
  std::string left, right;
};

struct ScenarioRequest {
  std::string name;   // the metric name
  uint32_t stat = 0;  // index in CompiledScenarios::stat_names (steps of one name share it)
  std::string method;
  Template path;                                          // holes percent-encoded
  std::vector<std::pair<std::string, Template>> headers;  // holes refused with CR/LF
  enum class Body { kNone, kRaw, kJson, kForm } body_kind = Body::kNone;
  Template body;  // kRaw, kJson (body_contexts per hole)
  std::vector<TemplateContext> body_contexts;
  std::vector<std::pair<std::string, Template>> form;  // kForm: name, value (percent-encoded)
  std::vector<int> expect_status;                      // empty: 100..399
  std::string expect_body_contains;
  std::vector<std::pair<std::shared_ptr<const JsonPath>, std::string>> expect_json;
  bool stop_iteration_on_fail = false;
  std::vector<ScenarioCapture> captures;
  // What the response parser keeps for this step (HttpResponseParser::Keep).
  bool keep_body = false;
  std::vector<std::string> keep_headers;       // lower case
  int64_t think_min_ns = 0, think_max_ns = 0;  // the pause after it
};

struct ScenarioOp {
  enum class Kind {
    kRequest,  // requests[index], then its pause
    kThink,    // a pause of think_min_ns..think_max_ns
    kLoop,     // run the ops up to `end` loop_min..loop_max times
    kGroup,    // run the ops up to `end` in `probability` percent of the iterations
  };
  Kind kind = Kind::kRequest;
  uint32_t index = 0;
  int64_t think_min_ns = 0, think_max_ns = 0;
  uint32_t loop_min = 0, loop_max = 0;
  double probability = 0;
  uint32_t end = 0;  // loop, group: the op after their steps
};

struct CompiledScenario {
  std::string name;
  uint32_t weight = 1;
  std::vector<ScenarioOp> on_start, flow;
  int64_t pace_ns = 0;
  enum class Cookies { kUser, kIteration, kOff } cookies = Cookies::kUser;
};

struct CompiledScenarios {
  std::vector<CompiledScenario> scenarios;
  std::vector<ScenarioRequest> requests;
  std::vector<std::string> captures;    // capture slots, by name
  std::vector<std::string> stat_names;  // one per distinct step name: the stats' request list
  std::set<std::string> env_names;      // the variables {{ env.NAME }} reads
};

// `tables`: each data table's name and fields ({"*"}: any field, for a table not read yet). `path`
// prefixes the field paths of problems. InvalidArgument with one problem per line
// ("spec.scenarios[0].flow[1].request.path: column 15: unknown function ...") when anything is
// wrong.
absl::StatusOr<CompiledScenarios> CompileScenarios(
    const std::vector<v1::Scenario>& scenarios,
    const std::map<std::string, std::set<std::string>>& tables,
    const std::string& path = "spec.scenarios");

// The names results and metrics use for a spec's requests, in the order of the stats the engine
// reports: spec.requests' names, or each distinct step name of spec.scenarios in the order the
// steps first use it. Empty for scenarios that do not compile (validation says why).
std::vector<std::string> StatNames(const v1::LoadTestSpec& spec);

// A pause "500ms" or a uniform range "1s..3s", in ns.
absl::Status ParseThink(const std::string& text, int64_t* min_ns, int64_t* max_ns);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_SCENARIO_H_
