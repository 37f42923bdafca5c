#include "agent/scenario_program.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/load_plan.h"
#include "common/status_macros.h"

namespace stampede::agent {
namespace {

using common::Outcome;
using common::ScenarioOp;
using common::ScenarioRequest;
using common::Template;
using common::TemplateContext;
using common::TemplateHole;

constexpr size_t kKeepBodyBytes = 64 * 1024;        // what a checking step keeps of a body
constexpr int64_t kNoRequestPauseNs = 10'000'000;   // an iteration that sent nothing waits 10 ms
constexpr int64_t kOnStartRetryNs = 1'000'000'000;  // a failed onStart is tried again after 1 s

int64_t Uniform(int64_t lo, int64_t hi, uint64_t* rng) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(NextRandom(rng) % static_cast<uint64_t>(hi - lo + 1));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ScenarioProgram>> ScenarioProgram::Create(
    const v1::LoadTestSpec& spec, const Url& target, const std::vector<v1::AgentTable>& tables,
    const common::LoadPlan& plan, const Options& options) {
  std::shared_ptr<ScenarioProgram> p(new ScenarioProgram());
  std::map<std::string, std::set<std::string>> fields;
  for (const v1::AgentTable& t : tables)
    fields[t.name()].insert(t.fields().begin(), t.fields().end());
  ASSIGN_OR_RETURN(
      p->compiled_,
      common::CompileScenarios(
          std::vector<v1::Scenario>(spec.scenarios().begin(), spec.scenarios().end()), fields));
  p->open_model_ = plan.model() == common::LoadPlan::Model::kOpen;
  p->agent_index_ = options.agent_index;
  p->stream_count_ = std::max<uint32_t>(options.stream_count, 1);
  p->stream_first_ = options.stream_first;
  p->stream_local_ = std::max<uint32_t>(options.stream_local, 1);
  p->env_ = options.env;
  p->tls_ = target.tls;
  p->host_line_ = absl::StrCat("Host: ", target.HostHeader(), "\r\n");
  p->base_path_ = target.path;
  if (const size_t q = p->base_path_.find('?'); q != std::string::npos) {
    p->base_query_ = p->base_path_.substr(q + 1);
    p->base_path_.resize(q);
  }
  if (!p->base_path_.empty() && p->base_path_.back() == '/') p->base_path_.pop_back();
  if (!p->open_model_) {
    p->think_min_ns_ = options.think_min_ns;
    p->think_max_ns_ = std::max(options.think_max_ns, options.think_min_ns);
  }

  std::map<std::string, int> table_index;
  for (const v1::AgentTable& t : tables) {
    auto def = spec.data().find(t.name());
    if (def == spec.data().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("data table \"", t.name(), "\" is not in spec.data"));
    }
    Table table;
    table.fields = static_cast<size_t>(t.fields_size());
    table.cells.assign(t.cells().begin(), t.cells().end());
    table.local = t.local();
    table.random = def->second.order() == "random";
    table.binding = common::BindingOf(def->second, t.rows(), plan, options.data_seed);
    table.per_iteration = table.binding.bind == common::DataBinding::Bind::kIteration;
    table.permutation = std::make_unique<common::Permutation>(t.rows(), options.data_seed);
    if (table.fields == 0 || table.cells.size() % table.fields != 0 || t.rows() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("data table \"", t.name(), "\": its cells do not make whole rows"));
    }
    table_index[t.name()] = static_cast<int>(p->tables_.size());
    p->tables_.push_back(std::move(table));
  }

  // Each request step: which scenario's jar it uses, its holes, its fixed bytes.
  std::vector<int> scenario_of(p->compiled_.requests.size(), 0);
  p->scenario_tables_.resize(p->compiled_.scenarios.size());
  p->first_stat_.assign(p->compiled_.scenarios.size(), 0);
  for (size_t s = 0; s < p->compiled_.scenarios.size(); ++s) {
    const common::CompiledScenario& sc = p->compiled_.scenarios[s];
    bool first = true;
    for (const auto* ops : {&sc.on_start, &sc.flow}) {
      for (const ScenarioOp& op : *ops) {
        if (op.kind != ScenarioOp::Kind::kRequest) continue;
        scenario_of[op.index] = static_cast<int>(s);
        if (first) p->first_stat_[s] = p->compiled_.requests[op.index].stat;
        first = false;
      }
    }
    p->scenario_cumulative_.push_back(
        (p->scenario_cumulative_.empty() ? 0 : p->scenario_cumulative_.back()) + sc.weight);
  }
  auto refs = [&](const Template& t, uint32_t scenario, std::vector<HoleRef>* out) -> absl::Status {
    for (const TemplateHole& h : t.holes()) {
      HoleRef r;
      if (h.kind == TemplateHole::Kind::kData) {
        const std::string table = h.name.substr(0, h.name.find('.'));
        const std::string field = h.name.substr(h.name.find('.') + 1);
        auto it = table_index.find(table);
        if (it == table_index.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("{{ ", h.name, " }}: no rows for table \"", table, "\""));
        }
        const v1::AgentTable& at = tables[static_cast<size_t>(it->second)];
        r.table = it->second;
        for (int f = 0; f < at.fields_size(); ++f) {
          if (at.fields(f) == field) r.field = f;
        }
        std::vector<uint32_t>& used = p->scenario_tables_[scenario];
        if (std::find(used.begin(), used.end(), static_cast<uint32_t>(r.table)) == used.end())
          used.push_back(static_cast<uint32_t>(r.table));
      } else if (h.kind == TemplateHole::Kind::kCapture) {
        const auto& caps = p->compiled_.captures;
        r.capture = static_cast<int>(std::find(caps.begin(), caps.end(), h.name) - caps.begin());
      } else if (h.kind == TemplateHole::Kind::kEnv) {
        auto it = p->env_.find(h.name);
        if (it == p->env_.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("{{ env.", h.name, " }}: the controller sent no such variable"));
        }
        r.env = &it->second;
      }
      out->push_back(r);
    }
    return absl::OkStatus();
  };
  for (size_t i = 0; i < p->compiled_.requests.size(); ++i) {
    const ScenarioRequest& r = p->compiled_.requests[i];
    const uint32_t scenario = static_cast<uint32_t>(scenario_of[i]);
    Step step;
    StepHoles holes;
    RETURN_IF_ERROR(refs(r.path, scenario, &holes.path));
    step.dynamic = r.path.has_holes() || r.body.has_holes();
    for (const auto& [name, value] : r.headers) {
      holes.headers.emplace_back();
      RETURN_IF_ERROR(refs(value, scenario, &holes.headers.back()));
      step.dynamic |= value.has_holes();
    }
    RETURN_IF_ERROR(refs(r.body, scenario, &holes.body));
    for (const auto& [name, value] : r.form) {
      holes.form.emplace_back();
      RETURN_IF_ERROR(refs(value, scenario, &holes.form.back()));
      step.dynamic |= value.has_holes();
    }
    step.stat = r.stat;
    step.head = r.method == "HEAD";
    step.expected = ExpectedStatus::Of(r.expect_status);
    step.cookies =
        p->compiled_.scenarios[scenario].cookies != common::CompiledScenario::Cookies::kOff;
    step.keep.body_bytes = r.keep_body ? kKeepBodyBytes : 0;
    step.keep.set_cookies = step.cookies;
    step.keep.headers = &r.keep_headers;
    for (const common::ScenarioCapture& c : r.captures) {
      int index = -1;
      if (c.kind == common::ScenarioCapture::Kind::kHeader) {
        index = static_cast<int>(std::find(r.keep_headers.begin(), r.keep_headers.end(), c.header) -
                                 r.keep_headers.begin());
      }
      step.capture_header.push_back(index);
    }
    step.has_checks =
        !r.expect_body_contains.empty() || !r.expect_json.empty() || !r.captures.empty();
    step.ends_on_fail = r.stop_iteration_on_fail || !r.captures.empty();
    p->steps_.push_back(std::move(step));
    p->holes_.push_back(std::move(holes));
  }
  for (size_t i = 0; i < p->steps_.size(); ++i) {
    Step& step = p->steps_[i];
    if (step.dynamic) continue;
    std::string why;
    if (!p->Build(nullptr, static_cast<uint32_t>(i), nullptr, nullptr, &step.wire,
                  &step.cookie_path, &why)) {
      return absl::InvalidArgumentError(why);
    }
    step.head_end = step.wire.find("\r\n\r\n") + 2;
  }
  return std::shared_ptr<const ScenarioProgram>(std::move(p));
}

uint32_t ScenarioProgram::PickScenario(uint64_t* rng) const {
  if (scenario_cumulative_.size() == 1) return 0;
  const uint64_t r = NextRandom(rng) % scenario_cumulative_.back();
  return static_cast<uint32_t>(
      std::upper_bound(scenario_cumulative_.begin(), scenario_cumulative_.end(), r) -
      scenario_cumulative_.begin());
}

const std::string* ScenarioProgram::RowOf(const Table& t, uint64_t index, uint64_t* rng) const {
  const uint64_t rows = t.cells.size() / t.fields;
  if (t.random) return &t.cells[(NextRandom(rng) % rows) * t.fields];
  if (t.local) {
    if (!common::OnStreams(t.binding, stream_count_, stream_first_, stream_local_, index))
      return nullptr;
    const uint64_t pos =
        common::LocalPosition(t.binding, stream_count_, stream_first_, stream_local_, index);
    return pos < rows ? &t.cells[pos * t.fields] : nullptr;
  }
  const std::optional<uint64_t> row = common::RowFor(t.binding, *t.permutation, index);
  if (!row.has_value() || *row >= rows) return nullptr;
  return &t.cells[*row * t.fields];
}

bool ScenarioProgram::BindRows(UserState& u, bool iteration_only, uint64_t* rng) const {
  for (uint32_t t : scenario_tables_[u.scenario]) {
    const Table& table = tables_[t];
    if (iteration_only && !table.per_iteration) continue;
    const uint64_t index = common::DataIndex(table.binding, u.vu, u.iteration);
    u.rows[t] = RowOf(table, index, rng);
    if (u.rows[t] == nullptr) return false;
  }
  return true;
}

bool ScenarioProgram::BeginUser(UserState& u, uint64_t vu, uint64_t* rng, int64_t now_ns) const {
  u.started = true;
  u.scenario = PickScenario(rng);
  u.in_flow = compiled_.scenarios[u.scenario].on_start.empty();
  u.pc = 0;
  u.loop_head = UINT32_MAX;
  u.loop_left = 0;
  u.vu = vu;
  u.iteration = 0;
  u.iteration_start_ns = now_ns;
  u.sent_in_iteration = 0;
  u.ended_early = false;
  u.first_request = true;
  u.captures.assign(compiled_.captures.size(), std::string());
  u.rows.assign(tables_.size(), nullptr);
  u.jar.Clear();
  u.exhausted = !BindRows(u, false, rng);
  return !u.exhausted;
}

ScenarioProgram::Action ScenarioProgram::Next(UserState& u, uint64_t* rng, int64_t now_ns) const {
  const common::CompiledScenario& sc = compiled_.scenarios[u.scenario];
  while (true) {
    const std::vector<ScenarioOp>& ops = u.in_flow ? sc.flow : sc.on_start;
    if (u.loop_head != UINT32_MAX && u.pc >= ops[u.loop_head].end) {
      if (u.loop_left > 0) {
        --u.loop_left;
        u.pc = u.loop_head + 1;
        continue;
      }
      u.loop_head = UINT32_MAX;
    }
    if (u.pc >= ops.size()) {
      if (!u.in_flow) {
        u.in_flow = true;
        u.pc = 0;
        // Closed model: the first iteration starts after onStart. An arrival's one iteration
        // is the whole of it, from its planned time.
        if (!open_model_) u.iteration_start_ns = now_ns;
        continue;
      }
      return {Action::Kind::kIterationEnd, 0, 0};
    }
    const ScenarioOp& op = ops[u.pc];
    switch (op.kind) {
      case ScenarioOp::Kind::kRequest:
        ++u.pc;
        ++u.sent_in_iteration;
        return {Action::Kind::kRequest, op.index, 0};
      case ScenarioOp::Kind::kThink: {
        ++u.pc;
        const int64_t pause = Uniform(op.think_min_ns, op.think_max_ns, rng);
        if (pause > 0) return {Action::Kind::kPause, 0, pause};
        continue;
      }
      case ScenarioOp::Kind::kLoop: {
        const int64_t n = Uniform(op.loop_min, op.loop_max, rng);
        if (n == 0) {
          u.pc = op.end;
          continue;
        }
        u.loop_head = u.pc;
        u.loop_left = static_cast<uint32_t>(n - 1);
        ++u.pc;
        continue;
      }
      case ScenarioOp::Kind::kGroup:
        // In hundredths of a percent: 12.5 % runs 1250 times in 10000.
        if (static_cast<double>(NextRandom(rng) % 10000) < op.probability * 100) {
          ++u.pc;
        } else {
          u.pc = op.end;
        }
        continue;
    }
  }
}

int64_t ScenarioProgram::ThinkAfter(uint32_t i, uint64_t* rng) const {
  const ScenarioRequest& r = compiled_.requests[i];
  return Uniform(r.think_min_ns, r.think_max_ns, rng);
}

bool ScenarioProgram::NextIteration(UserState& u, int64_t now_ns, uint64_t* rng,
                                    int64_t* wait_ns) const {
  const common::CompiledScenario& sc = compiled_.scenarios[u.scenario];
  int64_t wait = Uniform(think_min_ns_, think_max_ns_, rng);
  if (sc.pace_ns > 0) wait = std::max(wait, u.iteration_start_ns + sc.pace_ns - now_ns);
  if (u.sent_in_iteration == 0) wait = std::max(wait, kNoRequestPauseNs);
  *wait_ns = std::max<int64_t>(wait, 0);
  ++u.iteration;
  u.in_flow = true;
  u.pc = 0;
  u.loop_head = UINT32_MAX;
  u.sent_in_iteration = 0;
  u.ended_early = false;
  u.iteration_start_ns = now_ns + *wait_ns;
  if (sc.cookies == common::CompiledScenario::Cookies::kIteration) u.jar.Clear();
  u.exhausted = !BindRows(u, true, rng);
  return !u.exhausted;
}

int64_t ScenarioProgram::AbortIteration(UserState& u) const {
  u.loop_head = UINT32_MAX;
  if (!u.in_flow && !open_model_) {
    u.pc = 0;  // onStart again, after a pause
    return kOnStartRetryNs;
  }
  // In the flow, or an arrival's onStart (an arrival runs once: it ends, counted).
  u.in_flow = true;
  u.pc = static_cast<uint32_t>(compiled_.scenarios[u.scenario].flow.size());
  u.ended_early = true;
  return 0;
}

absl::string_view ScenarioProgram::HoleValue(UserState* u, const TemplateHole& h,
                                             const HoleRef& ref, uint64_t* rng) const {
  std::string& v = u->value;
  switch (h.kind) {
    case TemplateHole::Kind::kData:
      return u->rows[static_cast<size_t>(ref.table)][static_cast<size_t>(ref.field)];
    case TemplateHole::Kind::kCapture:
      return u->captures[static_cast<size_t>(ref.capture)];
    case TemplateHole::Kind::kVuId:
      v = absl::StrCat(u->vu);
      return v;
    case TemplateHole::Kind::kVuIteration:
      v = absl::StrCat(u->iteration);
      return v;
    case TemplateHole::Kind::kAgentIndex:
      v = absl::StrCat(agent_index_);
      return v;
    case TemplateHole::Kind::kEnv:
      return *ref.env;
    case TemplateHole::Kind::kRandomInt:
      v = absl::StrCat(Uniform(h.a, h.b, rng));
      return v;
    case TemplateHole::Kind::kRandomString: {
      static constexpr char kChars[] =
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
      v.resize(static_cast<size_t>(h.a));
      for (char& c : v) c = kChars[NextRandom(rng) % 62];
      return v;
    }
    case TemplateHole::Kind::kUuid: {
      static constexpr char kHex[] = "0123456789abcdef";
      const uint64_t hi = NextRandom(rng), lo = NextRandom(rng);
      v.resize(36);
      int bit = 0;
      for (size_t i = 0; i < 36; ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
          v[i] = '-';
          continue;
        }
        const uint64_t word = bit < 64 ? hi : lo;
        uint64_t nibble = (word >> (bit % 64)) & 15;
        if (i == 14) nibble = 4;                 // version 4
        if (i == 19) nibble = 8 | (nibble & 3);  // variant 10xx
        v[i] = kHex[nibble];
        bit += 4;
      }
      return v;
    }
    case TemplateHole::Kind::kNow:
      v = absl::StrCat(absl::ToUnixMillis(absl::Now()));
      return v;
  }
  return {};
}

bool ScenarioProgram::RenderTemplate(UserState* u, const Template& t,
                                     const std::vector<HoleRef>& refs, TemplateContext context,
                                     const std::vector<TemplateContext>* contexts, uint64_t* rng,
                                     std::string* out, std::string* why) const {
  if (!t.has_holes()) {
    out->append(t.literals());
    return true;
  }
  // One pointer captured, so that the std::function holds it in place instead of allocating.
  struct Context {
    const ScenarioProgram* program;
    UserState* u;
    const std::vector<HoleRef>* refs;
    const TemplateHole* first;
    uint64_t* rng;
  } context_of_holes{this, u, &refs, t.holes().data(), rng};
  auto value = [c = &context_of_holes](const TemplateHole& h) {
    return c->program->HoleValue(c->u, h, (*c->refs)[static_cast<size_t>(&h - c->first)], c->rng);
  };
  return contexts != nullptr ? t.Render(*contexts, value, out, why)
                             : t.Render(context, value, out, why);
}

bool ScenarioProgram::Build(UserState* u, uint32_t i, uint64_t* rng, const CookieJar* jar,
                            std::string* out, std::string* path, std::string* why) const {
  const ScenarioRequest& r = compiled_.requests[i];
  const StepHoles& holes = holes_[i];
  out->clear();
  absl::StrAppend(out, r.method, " ", base_path_);
  const size_t path_start = r.method.size() + 1;
  if (!RenderTemplate(u, r.path, holes.path, TemplateContext::kPath, nullptr, rng, out, why))
    return false;
  const size_t query = out->find('?', path_start);
  path->assign(*out, path_start, (query == std::string::npos ? out->size() : query) - path_start);
  if (path->empty()) *path = "/";
  if (!base_query_.empty()) {
    absl::StrAppend(out, query == std::string::npos ? "?" : "&", base_query_);
  }
  out->append(" HTTP/1.1\r\n");
  bool has_host = false, has_type = false;
  for (size_t h = 0; h < r.headers.size(); ++h) {
    const std::string& name = r.headers[h].first;
    has_host |= absl::EqualsIgnoreCase(name, "host");
    has_type |= absl::EqualsIgnoreCase(name, "content-type");
  }
  if (!has_host) out->append(host_line_);
  out->append("User-Agent: stampede/0.1\r\n");
  for (size_t h = 0; h < r.headers.size(); ++h) {
    absl::StrAppend(out, r.headers[h].first, ": ");
    if (!RenderTemplate(u, r.headers[h].second, holes.headers[h], TemplateContext::kHeader, nullptr,
                        rng, out, why)) {
      return false;
    }
    out->append("\r\n");
  }
  std::string local_body;
  std::string* body = u != nullptr ? &u->body : &local_body;
  body->clear();
  switch (r.body_kind) {
    case ScenarioRequest::Body::kNone:
      break;
    case ScenarioRequest::Body::kRaw:
      RenderTemplate(u, r.body, holes.body, TemplateContext::kRaw, nullptr, rng, body, why);
      break;
    case ScenarioRequest::Body::kJson:
      if (!has_type) out->append("Content-Type: application/json\r\n");
      RenderTemplate(u, r.body, holes.body, TemplateContext::kRaw, &r.body_contexts, rng, body,
                     why);
      break;
    case ScenarioRequest::Body::kForm:
      if (!has_type) out->append("Content-Type: application/x-www-form-urlencoded\r\n");
      for (size_t f = 0; f < r.form.size(); ++f) {
        if (f > 0) body->push_back('&');
        common::AppendPercentEncoded(r.form[f].first, body);
        body->push_back('=');
        RenderTemplate(u, r.form[f].second, holes.form[f], TemplateContext::kPath, nullptr, rng,
                       body, why);
      }
      break;
  }
  if (jar != nullptr && jar->size() > 0) {
    const size_t before = out->size();
    out->append("Cookie: ");
    if (jar->AppendCookies(*path, tls_, absl::ToUnixSeconds(absl::Now()), out)) {
      out->append("\r\n");
    } else {
      out->resize(before);
    }
  }
  if (!body->empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH")
    absl::StrAppend(out, "Content-Length: ", body->size(), "\r\n");
  out->append("\r\n");
  out->append(*body);
  return true;
}

bool ScenarioProgram::Render(UserState& u, uint32_t i, uint64_t* rng, const char** wire,
                             size_t* len, std::string* why) const {
  const Step& step = steps_[i];
  const CookieJar* jar = step.cookies ? &u.jar : nullptr;
  if (!step.dynamic) {
    u.request_path = step.cookie_path;
    if (jar == nullptr || jar->size() == 0) {
      *wire = step.wire.data();
      *len = step.wire.size();
      return true;
    }
    // The fixed bytes with the user's cookies before the blank line.
    u.wire.assign(step.wire, 0, step.head_end);
    const size_t before = u.wire.size();
    u.wire.append("Cookie: ");
    if (jar->AppendCookies(step.cookie_path, tls_, absl::ToUnixSeconds(absl::Now()), &u.wire)) {
      u.wire.append("\r\n");
    } else {
      u.wire.resize(before);
    }
    u.wire.append(step.wire, step.head_end, std::string::npos);
  } else if (!Build(&u, i, rng, jar, &u.wire, &u.request_path, why)) {
    return false;
  }
  *wire = u.wire.data();
  *len = u.wire.size();
  return true;
}

Outcome ScenarioProgram::Check(UserState& u, uint32_t i, const HttpResponseParser& response,
                               bool status_ok, common::JsonFinder& finder, uint64_t* rng) const {
  const Step& step = steps_[i];
  const ScenarioRequest& r = compiled_.requests[i];
  if (step.cookies && response.set_cookie_count() > 0) {
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    for (size_t c = 0; c < response.set_cookie_count(); ++c)
      u.jar.Set(response.set_cookie(c), u.request_path, now_s);
  }
  if (!status_ok) return Outcome::kUnexpectedStatus;
  if (!step.has_checks) return Outcome::kOk;
  const std::string& body = response.kept_body();
  if (!r.expect_body_contains.empty() && !absl::StrContains(body, r.expect_body_contains))
    return Outcome::kExpectation;
  for (const auto& [path, want] : r.expect_json) {
    const std::optional<std::string> got = finder.Find(*path, body);
    if (!got.has_value() || *got != want) return Outcome::kExpectation;
  }
  Outcome outcome = Outcome::kOk;
  for (size_t c = 0; c < r.captures.size(); ++c) {
    const common::ScenarioCapture& cap = r.captures[c];
    std::string& slot = u.captures[cap.slot];
    // Every value is copied into the slot's own buffer: no allocation once it is large enough.
    std::optional<absl::string_view> text;
    switch (cap.kind) {
      case common::ScenarioCapture::Kind::kJson:
        if (cap.json != nullptr &&
            finder.FindInto(*cap.json, body, cap.pick, NextRandom(rng), &slot)) {
          continue;
        }
        break;
      case common::ScenarioCapture::Kind::kHeader:
        if (const std::string* h =
                response.kept_header(static_cast<size_t>(step.capture_header[c])))
          text = *h;
        break;
      case common::ScenarioCapture::Kind::kRegex:
        if (cap.regex != nullptr) text = cap.regex->Find(body);
        break;
      case common::ScenarioCapture::Kind::kBetween:
        text = common::Between(body, cap.left, cap.right);
        break;
    }
    if (!text.has_value()) {
      outcome = Outcome::kCapture;
      continue;
    }
    slot.assign(text->data(), text->size());
  }
  return outcome;
}

}  // namespace stampede::agent
