#include "common/scenario.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "common/http_syntax.h"

namespace stampede::common {
namespace {

constexpr uint32_t kMaxLoop = 1000;

// Names a template may not capture into: they would shadow the builtins.
bool Reserved(const std::string& name) {
  return name == "vu" || name == "agent" || name == "env" || name == "randomInt" ||
         name == "randomString" || name == "uuid" || name == "now";
}

// A map's keys in order: problems and slots come out the same whatever the map's order.
template <typename Map>
std::vector<std::string> SortedKeys(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// The holes of a JSON body outside strings must be numbers: a captured text there could turn
// into JSON of its own.
bool NumericHole(const TemplateHole& h) {
  using K = TemplateHole::Kind;
  return h.kind == K::kRandomInt || h.kind == K::kNow || h.kind == K::kVuId ||
         h.kind == K::kVuIteration || h.kind == K::kAgentIndex;
}

class Compiler {
 public:
  Compiler(const std::map<std::string, std::set<std::string>>& tables) : tables_(tables) {}

  void Scenario(const v1::Scenario& s, const std::string& at) {
    CompiledScenario c;
    c.name = s.name();
    if (s.name().empty()) Problem(at + ".name", "required");
    if (!names_.insert(s.name()).second && !s.name().empty()) {
      Problem(at + ".name", absl::StrCat("\"", s.name(), "\" is used by another scenario"));
    }
    if (s.has_weight()) {
      if (s.weight() == 0) Problem(at + ".weight", "must be >= 1");
      c.weight = s.weight();
    }
    if (!s.pace().empty()) {
      absl::StatusOr<absl::Duration> d = ParseDuration(s.pace());
      if (!d.ok() || *d <= absl::ZeroDuration()) {
        Problem(at + ".pace", absl::StrCat("\"", s.pace(), "\" is not a duration > 0"));
      } else {
        c.pace_ns = absl::ToInt64Nanoseconds(*d);
      }
    }
    if (s.cookies().empty() || s.cookies() == "user") {
      c.cookies = CompiledScenario::Cookies::kUser;
    } else if (s.cookies() == "iteration") {
      c.cookies = CompiledScenario::Cookies::kIteration;
    } else if (s.cookies() == "off") {
      c.cookies = CompiledScenario::Cookies::kOff;
    } else {
      Problem(at + ".cookies", absl::StrCat("\"", s.cookies(), "\": user, iteration or off"));
    }
    // Captures made once per user are there for every iteration; those of one iteration only
    // after the step that makes them.
    defined_.clear();
    for (int i = 0; i < s.on_start_size(); ++i)
      Step(s.on_start(i), absl::StrCat(at, ".onStart[", i, "]"), &c.on_start);
    if (s.flow_size() == 0) Problem(at + ".flow", "needs at least one step");
    for (int i = 0; i < s.flow_size(); ++i)
      Step(s.flow(i), absl::StrCat(at, ".flow[", i, "]"), &c.flow);
    out_.scenarios.push_back(std::move(c));
  }

  absl::StatusOr<CompiledScenarios> Result() {
    if (!problems_.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems_, "\n"));
    return std::move(out_);
  }

  void Problem(const std::string& at, const std::string& why) {
    problems_.push_back(absl::StrCat(at, ": ", why));
  }

 private:
  template <typename S>
  void Step(const S& s, const std::string& at, std::vector<ScenarioOp>* ops) {
    int kinds = (s.has_request() ? 1 : 0);
    if constexpr (std::is_same_v<S, v1::Step>)
      kinds += (s.has_loop() ? 1 : 0) + (s.has_group() ? 1 : 0);
    if (kinds > 1) {
      Problem(at, "one of request, loop and group");
      return;
    }
    if (kinds == 0 && s.think().empty()) {
      Problem(at, "a step is a request, a think, a loop or a group");
      return;
    }
    if (!s.has_request() && (s.has_expect() || s.capture_size() > 0)) {
      Problem(at, "expect and capture go with a request");
    }
    int64_t think_min = 0, think_max = 0;
    if (!s.think().empty()) {
      if (absl::Status st = ParseThink(s.think(), &think_min, &think_max); !st.ok())
        Problem(at + ".think", std::string(st.message()));
    }
    if constexpr (std::is_same_v<S, v1::Step>) {
      if (s.has_loop()) return Loop(s.loop(), at + ".loop", ops);
      if (s.has_group()) return Group(s.group(), at + ".group", ops);
    }
    ScenarioOp op;
    if (!s.has_request()) {
      op.kind = ScenarioOp::Kind::kThink;
      op.think_min_ns = think_min;
      op.think_max_ns = think_max;
      ops->push_back(op);
      return;
    }
    op.kind = ScenarioOp::Kind::kRequest;
    op.index = static_cast<uint32_t>(out_.requests.size());
    ScenarioRequest r = Request(s.request(), at + ".request");
    r.think_min_ns = think_min;
    r.think_max_ns = think_max;
    if (s.has_expect()) Expect(s.expect(), at + ".expect", &r);
    // Captures after the checks: the step's own captures are not there for its own templates.
    for (const std::string& name : SortedKeys(s.capture()))
      Capture(name, s.capture().at(name), absl::StrCat(at, ".capture.", name), &r);
    r.name = s.name().empty() ? absl::StrCat(r.method, " ", r.path.Labelled()) : s.name();
    auto stat = std::find(out_.stat_names.begin(), out_.stat_names.end(), r.name);
    r.stat = static_cast<uint32_t>(stat - out_.stat_names.begin());
    if (stat == out_.stat_names.end()) out_.stat_names.push_back(r.name);
    out_.requests.push_back(std::move(r));
    ops->push_back(op);
  }

  void Loop(const v1::Loop& l, const std::string& at, std::vector<ScenarioOp>* ops) {
    ScenarioOp op;
    op.kind = ScenarioOp::Kind::kLoop;
    if (l.count() > 0) {
      if (l.min() != 0 || l.max() != 0) Problem(at, "count, or min and max, not both");
      op.loop_min = op.loop_max = l.count();
    } else {
      if (l.max() == 0) Problem(at, "count, or max (and min)");
      if (l.min() > l.max()) Problem(at + ".min", "above max");
      op.loop_min = l.min();
      op.loop_max = l.max();
    }
    if (op.loop_max > kMaxLoop) Problem(at, absl::StrCat("at most ", kMaxLoop, " times"));
    Nested(l.steps(), at, op, ops);
  }

  void Group(const v1::Group& g, const std::string& at, std::vector<ScenarioOp>* ops) {
    ScenarioOp op;
    op.kind = ScenarioOp::Kind::kGroup;
    if (!(g.probability() > 0 && g.probability() <= 100)) {
      Problem(at + ".probability", "a percentage in (0, 100]");
    }
    op.probability = g.probability();
    Nested(g.steps(), at, op, ops);
  }

  void Nested(const google::protobuf::RepeatedPtrField<v1::InnerStep>& steps, const std::string& at,
              ScenarioOp op, std::vector<ScenarioOp>* ops) {
    if (steps.empty()) Problem(at + ".steps", "needs at least one step");
    const size_t head = ops->size();
    ops->push_back(op);
    for (int i = 0; i < steps.size(); ++i) Step(steps[i], absl::StrCat(at, ".steps[", i, "]"), ops);
    (*ops)[head].end = static_cast<uint32_t>(ops->size());
  }

  // The template's literal text with "x" for each hole.
  static std::string Sample(const Template& t) {
    std::string out;
    for (const Template::Part& p : t.parts()) {
      if (p.hole < 0) {
        out.append(t.literals(), p.offset, p.length);
      } else {
        out.push_back('x');
      }
    }
    return out;
  }

  // A template compiled and its names checked; `what` for the messages.
  Template Text(const std::string& text, const std::string& at) {
    absl::StatusOr<Template> t = Template::Compile(text);
    if (!t.ok()) {
      Problem(at, std::string(t.status().message()));
      return Template();
    }
    for (const TemplateHole& h : t->holes()) {
      if (h.kind == TemplateHole::Kind::kEnv) out_.env_names.insert(h.name);
      if (h.kind == TemplateHole::Kind::kCapture && defined_.count(h.name) == 0) {
        Problem(at, absl::StrCat("{{ ", h.name, " }} is not captured by an earlier step"));
      } else if (h.kind == TemplateHole::Kind::kData) {
        const std::string table = h.name.substr(0, h.name.find('.'));
        const std::string field = h.name.substr(h.name.find('.') + 1);
        auto it = tables_.find(table);
        if (it == tables_.end()) {
          Problem(at, absl::StrCat("{{ ", h.name, " }}: no data table \"", table, "\""));
        } else if (it->second.count(field) == 0 && it->second.count("*") == 0) {
          Problem(at, absl::StrCat("{{ ", h.name, " }}: table \"", table, "\" has no field \"",
                                   field, "\""));
        }
      }
    }
    return *std::move(t);
  }

  ScenarioRequest Request(const v1::RequestStep& q, const std::string& at) {
    ScenarioRequest r;
    r.method = q.method().empty() ? "GET" : q.method();
    if (!IsToken(r.method))
      Problem(at + ".method", absl::StrCat("\"", r.method, "\" is not a method"));
    if (q.path().empty() || q.path()[0] != '/') {
      Problem(at + ".path", "starts with /");
    }
    r.path = Text(q.path(), at + ".path");
    // The literal text must be a path as written on the wire (the holes' values are encoded).
    if (const std::string problem = PathProblem(Sample(r.path)); !problem.empty())
      Problem(at + ".path", absl::StrCat("\"", q.path(), "\" ", problem));
    for (const std::string& name : SortedKeys(q.headers())) {
      const std::string where = absl::StrCat(at, ".headers.", name);
      const std::string lower = absl::AsciiStrToLower(name);
      if (!IsToken(name)) Problem(where, "not a header name");
      if (lower == "content-length" || lower == "transfer-encoding")
        Problem(where, "the framing is Stampede's");
      r.headers.emplace_back(name, Text(q.headers().at(name), where));
      if (HasControl(Sample(r.headers.back().second)))
        Problem(where, "the value must not contain CR, LF or other control characters");
    }
    const int bodies =
        (q.body().empty() ? 0 : 1) + (q.has_json() ? 1 : 0) + (q.form().empty() ? 0 : 1);
    if (bodies > 1) Problem(at, "one of body, json and form");
    if (!q.body().empty()) {
      r.body_kind = ScenarioRequest::Body::kRaw;
      r.body = Text(q.body(), at + ".body");
      r.body_contexts.assign(r.body.holes().size(), TemplateContext::kRaw);
    } else if (q.has_json()) {
      r.body_kind = ScenarioRequest::Body::kJson;
      std::string text;
      if (q.json().has_string_value()) {
        text = q.json().string_value();
      } else {
        JsonText(q.json(), &text);
      }
      JsonBody(text, at + ".json", &r);
    } else if (!q.form().empty()) {
      r.body_kind = ScenarioRequest::Body::kForm;
      for (const std::string& name : SortedKeys(q.form()))
        r.form.emplace_back(name, Text(q.form().at(name), absl::StrCat(at, ".form.", name)));
    }
    return r;
  }

  // A YAML-native JSON body as JSON text for JsonBody: strings quoted and escaped, their
  // templates left as they are, except that a string which is one numeric hole stands alone.
  static void JsonText(const google::protobuf::Value& v, std::string* out) {
    switch (v.kind_case()) {
      case google::protobuf::Value::kStructValue: {
        out->push_back('{');
        bool first = true;
        for (const std::string& key : SortedKeys(v.struct_value().fields())) {
          if (!first) out->push_back(',');
          first = false;
          out->append(nlohmann::json(key).dump());
          out->push_back(':');
          JsonText(v.struct_value().fields().at(key), out);
        }
        out->push_back('}');
        return;
      }
      case google::protobuf::Value::kListValue: {
        out->push_back('[');
        for (int i = 0; i < v.list_value().values_size(); ++i) {
          if (i > 0) out->push_back(',');
          JsonText(v.list_value().values(i), out);
        }
        out->push_back(']');
        return;
      }
      case google::protobuf::Value::kStringValue: {
        const std::string& s = v.string_value();
        absl::StatusOr<Template> t = Template::Compile(s);
        if (t.ok() && t->parts().size() == 1 && t->parts()[0].hole >= 0 &&
            NumericHole(t->holes()[0])) {
          out->append(s);
        } else {
          out->append(nlohmann::json(s).dump());
        }
        return;
      }
      case google::protobuf::Value::kNumberValue:
        out->append(nlohmann::json(v.number_value()).dump());
        return;
      case google::protobuf::Value::kBoolValue:
        out->append(v.bool_value() ? "true" : "false");
        return;
      default:
        out->append("null");
        return;
    }
  }

  // A JSON body: holes inside strings are JSON-escaped, holes outside are numbers; the text with
  // sample values in the holes must be JSON.
  void JsonBody(const std::string& text, const std::string& at, ScenarioRequest* r) {
    r->body = Text(text, at);
    // Where each part starts in the text: a hole is inside a string when an odd number of
    // unescaped quotes precede it in the literals.
    bool in_string = false;
    std::string sample;
    r->body_contexts.assign(r->body.holes().size(), TemplateContext::kRaw);
    for (const Template::Part& p : r->body.parts()) {
      if (p.hole < 0) {
        const absl::string_view lit(r->body.literals().data() + p.offset, p.length);
        for (size_t i = 0; i < lit.size(); ++i) {
          if (in_string && lit[i] == '\\') {
            ++i;
            continue;
          }
          if (lit[i] == '"') in_string = !in_string;
        }
        sample.append(lit.data(), lit.size());
        continue;
      }
      const TemplateHole& h = r->body.holes()[p.hole];
      if (in_string) {
        r->body_contexts[p.hole] = TemplateContext::kJsonString;
        sample += "x";
      } else if (NumericHole(h)) {
        sample += "0";
      } else {
        Problem(at, absl::StrCat("{{ ", h.name.empty() ? h.Label().substr(1) : h.name,
                                 " }} outside a JSON string: put it in quotes (only numbers "
                                 "such as randomInt and vu.id may stand alone)"));
        sample += "0";
      }
    }
    if (!nlohmann::json::accept(sample)) Problem(at, "not JSON (with its templates filled in)");
  }

  void Expect(const v1::Expect& e, const std::string& at, ScenarioRequest* r) {
    for (int i = 0; i < e.status_size(); ++i) {
      if (e.status(i) < 100 || e.status(i) > 599)
        Problem(absl::StrCat(at, ".status[", i, "]"), "a code in 100..599");
      r->expect_status.push_back(e.status(i));
    }
    r->expect_body_contains = e.body_contains();
    if (!e.body_contains().empty()) r->keep_body = true;
    for (const std::string& path : SortedKeys(e.json())) {
      absl::StatusOr<JsonPath> p = JsonPath::Parse(path);
      if (!p.ok()) {
        Problem(absl::StrCat(at, ".json.", path), std::string(p.status().message()));
        continue;
      }
      r->expect_json.emplace_back(std::make_shared<const JsonPath>(*std::move(p)),
                                  e.json().at(path));
      r->keep_body = true;
    }
    if (e.on_fail().empty() || e.on_fail() == "continue") {
      r->stop_iteration_on_fail = false;
    } else if (e.on_fail() == "stopIteration") {
      r->stop_iteration_on_fail = true;
    } else {
      Problem(at + ".onFail", absl::StrCat("\"", e.on_fail(), "\": continue or stopIteration"));
    }
  }

  void Capture(const std::string& name, const v1::Capture& c, const std::string& at,
               ScenarioRequest* r) {
    // A capture is used as {{ name }}, so its name is one a template can hold.
    if (!IsTemplateName(name) || Reserved(name)) {
      Problem(at, absl::StrCat("\"", name,
                               "\" cannot name a capture (letters, digits and _, not a builtin)"));
      return;
    }
    const int kinds = (c.json().empty() ? 0 : 1) + (c.header().empty() ? 0 : 1) +
                      (c.regex().empty() ? 0 : 1) + (c.has_between() ? 1 : 0);
    if (kinds != 1) {
      Problem(at, "exactly one of json, header, regex and between");
      return;
    }
    ScenarioCapture k;
    auto slot = std::find(out_.captures.begin(), out_.captures.end(), name);
    k.slot = static_cast<uint32_t>(slot - out_.captures.begin());
    if (slot == out_.captures.end()) out_.captures.push_back(name);
    if (!c.pick().empty() && c.json().empty()) Problem(at + ".pick", "goes with a json capture");
    if (!c.json().empty()) {
      k.kind = ScenarioCapture::Kind::kJson;
      absl::StatusOr<JsonPath> p = JsonPath::Parse(c.json());
      if (!p.ok()) {
        Problem(at + ".json", std::string(p.status().message()));
      } else {
        if (!c.pick().empty() && !p->has_each()) Problem(at + ".pick", "needs a [*] in the path");
        k.json = std::make_shared<const JsonPath>(*std::move(p));
      }
      if (c.pick().empty() || c.pick() == "first") {
        k.pick = Pick::kFirst;
      } else if (c.pick() == "last") {
        k.pick = Pick::kLast;
      } else if (c.pick() == "random") {
        k.pick = Pick::kRandom;
      } else {
        Problem(at + ".pick", absl::StrCat("\"", c.pick(), "\": first, last or random"));
      }
      r->keep_body = true;
    } else if (!c.header().empty()) {
      k.kind = ScenarioCapture::Kind::kHeader;
      if (!IsToken(c.header())) Problem(at + ".header", "not a header name");
      k.header = absl::AsciiStrToLower(c.header());
      r->keep_headers.push_back(k.header);
    } else if (!c.regex().empty()) {
      k.kind = ScenarioCapture::Kind::kRegex;
      absl::StatusOr<RegexCapture> re = RegexCapture::Compile(c.regex());
      if (!re.ok()) {
        Problem(at + ".regex", std::string(re.status().message()));
      } else {
        k.regex = std::make_shared<const RegexCapture>(*std::move(re));
      }
      r->keep_body = true;
    } else {
      k.kind = ScenarioCapture::Kind::kBetween;
      if (c.between().left().empty()) Problem(at + ".between.left", "required");
      k.left = c.between().left();
      k.right = c.between().right();
      r->keep_body = true;
    }
    defined_.insert(name);
    r->captures.push_back(std::move(k));
  }

  const std::map<std::string, std::set<std::string>>& tables_;
  CompiledScenarios out_;
  std::set<std::string> names_;    // scenario names so far
  std::set<std::string> defined_;  // captures an earlier step makes
  std::vector<std::string> problems_;
};

}  // namespace

absl::Status ParseThink(const std::string& text, int64_t* min_ns, int64_t* max_ns) {
  const size_t dots = text.find("..");
  const std::string low = dots == std::string::npos ? text : text.substr(0, dots);
  const std::string high = dots == std::string::npos ? text : text.substr(dots + 2);
  absl::StatusOr<absl::Duration> a = ParseDuration(low), b = ParseDuration(high);
  if (!a.ok() || !b.ok() || *a < absl::ZeroDuration() || *b < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\": a duration (500ms) or a range (1s..3s)"));
  }
  if (*a > *b)
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": the range runs backwards"));
  *min_ns = absl::ToInt64Nanoseconds(*a);
  *max_ns = absl::ToInt64Nanoseconds(*b);
  return absl::OkStatus();
}

absl::StatusOr<CompiledScenarios> CompileScenarios(
    const std::vector<v1::Scenario>& scenarios,
    const std::map<std::string, std::set<std::string>>& tables, const std::string& path) {
  Compiler compiler(tables);
  if (scenarios.empty()) compiler.Problem(path, "needs at least one scenario");
  for (size_t i = 0; i < scenarios.size(); ++i)
    compiler.Scenario(scenarios[i], absl::StrCat(path, "[", i, "]"));
  return compiler.Result();
}

std::vector<std::string> StatNames(const v1::LoadTestSpec& spec) {
  std::vector<std::string> names;
  if (spec.scenarios_size() == 0) {
    for (const v1::Request& r : spec.requests()) names.push_back(r.name());
    return names;
  }
  std::map<std::string, std::set<std::string>> any;
  for (const auto& [name, t] : spec.data()) any[name] = {"*"};
  absl::StatusOr<CompiledScenarios> c = CompileScenarios(
      std::vector<v1::Scenario>(spec.scenarios().begin(), spec.scenarios().end()), any);
  if (c.ok()) names = c->stat_names;
  return names;
}

}  // namespace stampede::common
