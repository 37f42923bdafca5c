// Scenarios as the engine runs them: compiled once per test (common/scenario.h) against this
// agent's data rows, with each request step's fixed bytes serialized ahead. A worker keeps one
// UserState per virtual user and asks the program what the user does next (Next), for the bytes
// of its request (Render), and what its response means (Check). A step with no template sends
// pre-serialized bytes, as the request mix does; only steps that check or capture keep a body.
//
// Immutable once built and shared by the workers; a UserState and a JsonFinder belong to one
// worker thread.
#ifndef STAMPEDE_AGENT_SCENARIO_PROGRAM_H_
#define STAMPEDE_AGENT_SCENARIO_PROGRAM_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/cookie_jar.h"
#include "agent/http_response_parser.h"
#include "agent/target.h"
#include "common/capture.h"
#include "common/data_split.h"
#include "common/data_table.h"
#include "common/scenario.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::agent {

// A virtual user's place in its scenario and what it has collected; lives in its slot.
struct UserState {
  bool started = false;    // BeginUser ran
  bool exhausted = false;  // its data ran out: it sends nothing more
  uint32_t scenario = 0;
  bool in_flow = false;             // false: still in onStart
  uint32_t pc = 0;                  // the next op of the phase
  uint32_t loop_head = UINT32_MAX;  // the running loop's op, or none
  uint32_t loop_left = 0;           // its passes still to run after this one
  uint64_t vu = 0;                  // global user index (closed) or arrival index (open)
  uint64_t iteration = 0;
  int64_t iteration_start_ns = 0;
  uint32_t sent_in_iteration = 0;
  bool ended_early = false;   // this iteration was cut short (it is counted, not timed)
  bool first_request = true;  // open model: the arrival's first request is timed from its plan
  std::vector<std::string> captures;
  std::vector<const std::string*> rows;  // per table: the row's first cell, or null
  CookieJar jar;
  std::string wire;          // a rendered request
  std::string request_path;  // its path without the query: what cookies match
  std::string body;          // its body, while rendering
  std::string value;         // one hole's value, while rendering
};

class ScenarioProgram {
 public:
  struct Options {
    uint64_t data_seed = 0;
    uint32_t agent_index = 0;
    uint32_t stream_count = 1;  // over all agents
    uint32_t stream_first = 0;  // this agent's streams
    uint32_t stream_local = 1;
    std::map<std::string, std::string> env;
    // Closed model: the pause between iterations (load.thinkTime, or bench's --think).
    int64_t think_min_ns = 0, think_max_ns = 0;
  };

  // `spec` holds the scenarios (validated by the controller; compiled again here against the
  // tables' real fields). InvalidArgument names what does not fit.
  static absl::StatusOr<std::shared_ptr<const ScenarioProgram>> Create(
      const v1::LoadTestSpec& spec, const Url& target, const std::vector<v1::AgentTable>& tables,
      const common::LoadPlan& plan, const Options& options);

  const std::vector<std::string>& stat_names() const { return compiled_.stat_names; }
  size_t scenario_count() const { return compiled_.scenarios.size(); }
  // The scenarios' weights, cumulated: what the engine picks from (and drops by).
  const std::vector<uint64_t>& scenario_cumulative() const { return scenario_cumulative_; }
  // The stat of a scenario's first request: where a dropped arrival of it counts.
  uint32_t first_stat(uint32_t scenario) const { return first_stat_[scenario]; }
  bool open_model() const { return open_model_; }

  // A fresh user (or arrival) `vu`: picks its scenario, its rows; the jar empty. False when its
  // data has run out (it should stay idle).
  bool BeginUser(UserState& u, uint64_t vu, uint64_t* rng, int64_t now_ns) const;

  struct Action {
    enum class Kind { kRequest, kPause, kIterationEnd } kind = Kind::kRequest;
    uint32_t step = 0;     // kRequest: the request step
    int64_t pause_ns = 0;  // kPause
  };
  // Moves the user to its next request, pause or the end of its iteration.
  Action Next(UserState& u, uint64_t* rng, int64_t now_ns) const;
  // The pause after request step `i`.
  int64_t ThinkAfter(uint32_t i, uint64_t* rng) const;
  // After kIterationEnd: the next iteration begins (rows of bind-iteration tables, cookies).
  // False when its data has run out. `*wait_ns`: how long to wait first (pace, think time).
  bool NextIteration(UserState& u, int64_t now_ns, uint64_t* rng, int64_t* wait_ns) const;
  // Ends the user's iteration now (a failed check with stopIteration, a missing capture): in
  // onStart a closed-model user starts over (returns the pause before it does); an arrival's
  // iteration ends, counted as ended early.
  int64_t AbortIteration(UserState& u) const;

  struct Step {
    uint32_t stat = 0;
    bool head = false;
    ExpectedStatus expected;
    bool dynamic = false;     // has templates: rendered at every send
    bool cookies = true;      // its scenario keeps a cookie jar
    std::string wire;         // !dynamic: the request, no Cookie header
    size_t head_end = 0;      // !dynamic: where the blank line starts in wire
    std::string cookie_path;  // !dynamic: the path cookies are matched against
    HttpResponseParser::Keep keep;
    std::vector<int> capture_header;  // per capture: its index in keep.headers, or -1
    bool has_checks = false;          // body or JSON expectations, or captures
    bool ends_on_fail = false;        // stopIteration, or it captures something
    bool Expected(int status) const { return expected.Contains(status); }
  };
  const Step& step(uint32_t i) const { return steps_[i]; }

  // The request of step `i` for user `u`: `*wire` points at bytes valid until the user's next
  // Render. False (with `why`) when a value cannot be sent (CR/LF in a header).
  bool Render(UserState& u, uint32_t i, uint64_t* rng, const char** wire, size_t* len,
              std::string* why) const;

  // What the response means beside its status: kOk, kExpectation or kCapture; takes its
  // captures and cookies. `status_ok`: the status was expected (nothing else is checked when not).
  common::Outcome Check(UserState& u, uint32_t i, const HttpResponseParser& response,
                        bool status_ok, common::JsonFinder& finder, uint64_t* rng) const;

 private:
  struct Table {
    size_t fields = 0;
    std::vector<std::string> cells;
    bool local = false;
    bool random = false;
    bool per_iteration = false;
    common::DataBinding binding;
    std::unique_ptr<common::Permutation> permutation;
  };
  struct HoleRef {
    int table = -1, field = -1;  // kData
    int capture = -1;            // kCapture
    const std::string* env = nullptr;
  };
  // Per step: what each template hole reads.
  struct StepHoles {
    std::vector<HoleRef> path;
    std::vector<std::vector<HoleRef>> headers;
    std::vector<HoleRef> body;
    std::vector<std::vector<HoleRef>> form;
  };

  ScenarioProgram() = default;
  const std::string* RowOf(const Table& t, uint64_t index, uint64_t* rng) const;
  bool BindRows(UserState& u, bool iteration_only, uint64_t* rng) const;
  absl::string_view HoleValue(UserState* u, const common::TemplateHole& h, const HoleRef& ref,
                              uint64_t* rng) const;
  bool RenderTemplate(UserState* u, const common::Template& t, const std::vector<HoleRef>& refs,
                      common::TemplateContext context,
                      const std::vector<common::TemplateContext>* contexts, uint64_t* rng,
                      std::string* out, std::string* why) const;
  // The request of step `i` (u null: a step without templates), with u's cookies when given.
  bool Build(UserState* u, uint32_t i, uint64_t* rng, const CookieJar* jar, std::string* out,
             std::string* path, std::string* why) const;
  uint32_t PickScenario(uint64_t* rng) const;

  common::CompiledScenarios compiled_;
  std::vector<Step> steps_;
  std::vector<StepHoles> holes_;
  std::vector<Table> tables_;
  std::vector<std::vector<uint32_t>> scenario_tables_;  // tables each scenario reads
  std::vector<uint64_t> scenario_cumulative_;
  std::vector<uint32_t> first_stat_;
  std::map<std::string, std::string> env_;
  std::string base_path_, base_query_, host_line_;
  bool tls_ = false;
  bool open_model_ = false;
  int64_t think_min_ns_ = 0, think_max_ns_ = 0;  // load.thinkTime: between iterations
  uint32_t agent_index_ = 0;
  uint32_t stream_count_ = 1, stream_first_ = 0, stream_local_ = 1;
};

// splitmix64, the engine's generator.
inline uint64_t NextRandom(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace stampede::agent

#endif  // STAMPEDE_AGENT_SCENARIO_PROGRAM_H_
