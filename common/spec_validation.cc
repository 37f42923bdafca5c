// Defaults and validation of a LoadTest (ApplyDefaults, ValidateLoadTest, ValidationStatus,
// RunDurationNs), and the filter that drops validation problems a parse problem already explains.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/data_table.h"
#include "common/duration.h"
#include "common/http_syntax.h"
#include "common/load_plan.h"
#include "common/scenario.h"
#include "common/spec.h"
#include "common/spec_internal.h"
#include "common/threshold.h"

namespace stampede::common {
namespace {

using spec_internal::Child;
using spec_internal::Format;
using spec_internal::Index;
using spec_internal::Problem;
using spec_internal::Quote;

constexpr char kApiVersion[] = "stampede.dev/v1alpha1";
constexpr char kKind[] = "LoadTest";

bool IsDnsLabel(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

// A simple check of "http[s]://host[:port][/path]"; the agent parses the URL fully.
std::string UrlProblem(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return absl::StrCat(Quote(url), " must start with http:// or https://");
  }
  if (HasControl(std::string_view(url.data(), url.size())) || absl::StrContains(url, ' ')) {
    return absl::StrCat(Quote(url), " has spaces or control characters");
  }
  if (absl::StrContains(url, '#')) return absl::StrCat(Quote(url), " has a #fragment");
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (absl::StrContains(authority, '@')) {
    return absl::StrCat(Quote(url), ": credentials in URLs are not supported");
  }
  absl::string_view host = authority, port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::StrCat(Quote(url), ": unclosed [ in host");
    host = authority.substr(1, close - 1);
    port = authority.substr(close + 1);
    has_port = !port.empty();
    if (has_port && !absl::ConsumePrefix(&port, ":")) return absl::StrCat(Quote(url), ": bad host");
  } else if (const size_t colon = authority.find(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty()) return absl::StrCat(Quote(url), " has no host");
  uint32_t port_number = 0;
  if (has_port &&
      (!absl::SimpleAtoi(port, &port_number) || port_number == 0 || port_number > 65535)) {
    return absl::StrCat(Quote(url), ": port ", Quote(port), " is not in 1..65535");
  }
  const absl::string_view path = rest.substr(authority.size());
  if (std::string problem = PathProblem(std::string_view(path.data(), path.size()));
      !problem.empty()) {
    return absl::StrCat(Quote(url), ": the path ", problem);
  }
  return "";
}

std::string DefaultRequestName(const v1::Request& r) {
  return absl::StrCat(r.method().empty() ? "GET" : r.method(), " ",
                      r.path().empty() ? "/" : r.path());
}

class Validator {
 public:
  std::vector<Problem> Run(const v1::LoadTest& test) {
    if (test.api_version() != kApiVersion) {
      Add("apiVersion",
          test.api_version().empty()
              ? absl::StrCat("required (", kApiVersion, ")")
              : absl::StrCat("must be \"", kApiVersion, "\", got ", Quote(test.api_version())));
    }
    if (test.kind() != kKind) {
      Add("kind", test.kind().empty()
                      ? absl::StrCat("required (", kKind, ")")
                      : absl::StrCat("must be \"", kKind, "\", got ", Quote(test.kind())));
    }
    Metadata(test.metadata());
    const v1::LoadTestSpec& spec = test.spec();
    Target(spec.target());
    const std::vector<std::string> names = Requests(spec);
    Load(spec);
    if (spec.duration().empty()) {
      if (spec.load().stages_size() == 0)
        Add("spec.duration", "required (or give spec.load.stages)");
    } else {
      Duration(spec.duration(), "spec.duration");
    }
    if (spec.agents() < 1 || spec.agents() > kMaxAgents) {
      Add("spec.agents",
          absl::StrCat("must be between 1 and ", kMaxAgents, ", got ", spec.agents()));
    }
    if (spec.threads_per_agent() > kMaxThreadsPerAgent) {
      Add("spec.threadsPerAgent",
          absl::StrCat("must be at most ", kMaxThreadsPerAgent, " (0: one per CPU core), got ",
                       spec.threads_per_agent()));
    }
    if (spec.on_agent_loss() != "fail" && spec.on_agent_loss() != "continue") {
      Add("spec.onAgentLoss",
          absl::StrCat("must be \"fail\" or \"continue\", got ", Quote(spec.on_agent_loss())));
    }
    const std::string& pull_policy = spec.agent_template().image_pull_policy();
    if (!pull_policy.empty() && pull_policy != "Always" && pull_policy != "IfNotPresent" &&
        pull_policy != "Never") {
      Add("spec.agentTemplate.imagePullPolicy",
          absl::StrCat("must be Always, IfNotPresent or Never, got ", Quote(pull_policy)));
    }
    if (spec.secret_headers_size() > 64) {
      Add("spec.secretHeaders", absl::StrCat("at most 64 names, got ", spec.secret_headers_size()));
    }
    for (int i = 0; i < spec.secret_headers_size(); ++i) {
      if (!IsToken(spec.secret_headers(i))) {
        Add(Index("spec.secretHeaders", i),
            absl::StrCat(Quote(spec.secret_headers(i)), " is not a header name"));
      }
    }
    for (int i = 0; i < spec.thresholds_size(); ++i) {
      const std::string path = Index("spec.thresholds", i);
      absl::StatusOr<Threshold> t = ParseThreshold(spec.thresholds(i));
      if (!t.ok()) {
        Add(path, std::string(t.status().message()));
      } else if (!t->request.empty() &&
                 std::find(names.begin(), names.end(), t->request) == names.end()) {
        std::vector<std::string> quoted;
        for (const std::string& name : names) {
          if (std::find(quoted.begin(), quoted.end(), Quote(name)) == quoted.end()) {
            quoted.push_back(Quote(name));
          }
        }
        Add(path, absl::StrCat("no request is named ", Quote(t->request),
                               " (requests: ", absl::StrJoin(quoted, ", "), ")"));
      }
    }
    return std::move(problems_);
  }

 private:
  void Add(std::string path, std::string reason) {
    problems_.push_back({std::move(path), std::move(reason), false});
  }

  // A duration that must be given and be > 0.
  void Duration(const std::string& text, const std::string& path) {
    if (text.empty()) {
      Add(path, "required");
      return;
    }
    absl::StatusOr<absl::Duration> d = ParseDuration(text);
    if (!d.ok()) {
      Add(path, std::string(d.status().message()));
    } else if (*d <= absl::ZeroDuration()) {
      Add(path, "must be > 0");
    }
  }

  void Metadata(const v1::ObjectMeta& meta) {
    const std::string& name = meta.name();
    if (name.empty()) {
      Add("metadata.name", "required");
    } else {
      if (!IsDnsLabel(name)) {
        Add("metadata.name", absl::StrCat(Quote(name),
                                          " must be lowercase letters, digits and '-', "
                                          "starting and ending with a letter or digit"));
      }
      if (name.size() > kMaxNameLength) {
        Add("metadata.name",
            absl::StrCat("must be at most ", kMaxNameLength,
                         " characters (agent Pods are named <name>-agent-<i>), got ", name.size()));
      }
    }
    if (!meta.namespace_().empty() &&
        (!IsDnsLabel(meta.namespace_()) || meta.namespace_().size() > 63)) {
      Add("metadata.namespace", absl::StrCat(Quote(meta.namespace_()),
                                             " is not a Kubernetes namespace name (a DNS label: "
                                             "lowercase letters, digits and '-', at most 63)"));
    }
  }

  void Target(const v1::Target& target) {
    if (target.url().empty()) {
      Add("spec.target.url", "required");
    } else if (std::string problem = UrlProblem(target.url()); !problem.empty()) {
      Add("spec.target.url", problem);
    }
    Duration(target.timeout(), "spec.target.timeout");
    const std::string& protocol = target.protocol();
    const bool h2 = protocol == "h2" || protocol == "h2c";
    if (protocol != "http1" && !h2) {
      Add("spec.target.protocol",
          absl::StrCat("must be \"http1\", \"h2\" or \"h2c\", got ", Quote(protocol)));
    } else if (protocol == "h2" && absl::StartsWith(target.url(), "http://")) {
      Add("spec.target.protocol",
          "h2 is HTTP/2 over TLS (negotiated by ALPN) and needs an https:// url; for cleartext "
          "HTTP/2 use h2c");
    } else if (protocol == "h2c" && absl::StartsWith(target.url(), "https://")) {
      Add("spec.target.protocol",
          "h2c is cleartext HTTP/2 and needs an http:// url; for HTTP/2 over TLS use h2");
    }
    if (target.has_max_concurrent_streams()) {
      const uint32_t streams = target.max_concurrent_streams();
      if (protocol == "http1") {
        Add("spec.target.maxConcurrentStreams",
            "applies to protocol h2 or h2c only (HTTP/1.1 has one request in flight per "
            "connection)");
      } else if (streams < 1 || streams > kMaxConcurrentStreams) {
        Add("spec.target.maxConcurrentStreams",
            absl::StrCat("must be in 1..", kMaxConcurrentStreams, ", got ", streams));
      }
    }
  }

  // Returns the request names (defaulted where empty).
  std::vector<std::string> Requests(const v1::LoadTestSpec& spec) {
    std::vector<std::string> names;
    if (spec.scenarios_size() > 0) {
      if (spec.requests_size() > 0)
        Add("spec.requests",
            "set requests or scenarios, not both (a request is a one-step scenario)");
      return Scenarios(spec);
    }
    if (spec.data_size() > 0) Add("spec.data", "data tables are read by spec.scenarios");
    if (spec.requests_size() == 0) Add("spec.requests", "at least one request is needed");
    for (int i = 0; i < spec.requests_size(); ++i) {
      const v1::Request& r = spec.requests(i);
      const std::string path = Index("spec.requests", i);
      if (r.method().empty()) {
        Add(path + ".method", "required");
      } else if (!IsToken(r.method())) {
        Add(path + ".method",
            absl::StrCat(Quote(r.method()), " is not an HTTP method (e.g. GET, POST)"));
      }
      if (!r.path().empty() && r.path()[0] != '/') {
        Add(path + ".path", absl::StrCat(Quote(r.path()), " must start with /"));
      } else if (std::string problem = PathProblem(r.path()); !problem.empty()) {
        Add(path + ".path", absl::StrCat(Quote(r.path()), " ", problem));
      }
      std::map<std::string, std::string> sorted_headers(r.headers().begin(), r.headers().end());
      for (const auto& [header, value] : sorted_headers) {
        const std::string header_path = Child(path + ".headers", header);
        if (!IsToken(header)) {
          Add(header_path, absl::StrCat(Quote(header), " is not a header name"));
        } else if (absl::EqualsIgnoreCase(header, "Transfer-Encoding") ||
                   absl::EqualsIgnoreCase(header, "Content-Length")) {
          // The body's framing is Stampede's: a user's Content-Length would misframe every
          // request on a kept-alive connection.
          Add(header_path, "is set by Stampede; remove it");
        }
        if (HasControl(value))
          Add(header_path, "the value must not contain CR, LF or other control characters");
      }
      if (r.weight() == 0) Add(path + ".weight", "must be > 0");
      for (int j = 0; j < r.expect_status_size(); ++j) {
        const int status = r.expect_status(j);
        if (status < 100 || status > 599) {
          Add(Index(path + ".expectStatus", j),
              absl::StrCat(status, " is not an HTTP status (100..599)"));
        }
      }
      const std::string name = r.name().empty() ? DefaultRequestName(r) : r.name();
      if (HasControl(name) || absl::StrContains(name, '{') || absl::StrContains(name, '}')) {
        Add(path + ".name",
            absl::StrCat(Quote(name),
                         " must not contain braces (thresholds use them) or control characters"));
      } else if (absl::StripAsciiWhitespace(name).empty()) {
        Add(path + ".name", "must not be blank");
      } else if (name == "*" || absl::EqualsIgnoreCase(name, "total")) {
        // The aggregate rows: request="*" in /metrics, "total" in the table and the CSV.
        Add(path + ".name",
            absl::StrCat(Quote(name), " is reserved for the total over all requests"));
      }
      const auto previous = std::find(names.begin(), names.end(), name);
      if (previous != names.end()) {
        Add(path + ".name", absl::StrCat(Quote(name), " is also the name of spec.requests[",
                                         previous - names.begin(), "]; names must be unique"));
      }
      names.push_back(name);
    }
    return names;
  }

  // Compiles the scenarios against the tables' declared fields; returns their step names.
  std::vector<std::string> Scenarios(const v1::LoadTestSpec& spec) {
    DataTables(spec);
    std::vector<v1::Scenario> scenarios(spec.scenarios().begin(), spec.scenarios().end());
    absl::StatusOr<CompiledScenarios> c = CompileScenarios(scenarios, DeclaredDataFields(spec));
    if (!c.ok()) {
      for (absl::string_view line : absl::StrSplit(c.status().message(), '\n')) {
        const size_t colon = line.find(": ");
        Add(std::string(line.substr(0, colon)),
            colon == absl::string_view::npos ? "" : std::string(line.substr(colon + 2)));
      }
      return {};
    }
    for (size_t i = 0; i < c->requests.size(); ++i) {
      const std::string& name = c->requests[i].name;
      if (HasControl(name) || absl::StrContains(name, '{') || absl::StrContains(name, '}') ||
          name == "*" || absl::EqualsIgnoreCase(name, "total")) {
        Add("spec.scenarios", absl::StrCat("the step name ", Quote(name),
                                           " must not contain braces or control characters, or "
                                           "be * or total; name the step"));
      }
    }
    return c->stat_names;
  }

  void DataTables(const v1::LoadTestSpec& spec) {
    std::map<std::string, const v1::DataTable*> sorted;
    for (const auto& [name, t] : spec.data()) sorted[name] = &t;
    for (const auto& [name, t] : sorted) {
      const std::string at = Child("spec.data", name);
      if (!IsTemplateName(name)) {
        Add(at, "a table's name is letters, digits and _ (templates read {{ name.field }})");
      }
      const int sources = (t->inline__size() > 0 ? 1 : 0) + (t->file().empty() ? 0 : 1) +
                          (t->has_config_map() ? 1 : 0) + (t->has_secret() ? 1 : 0);
      if (sources != 1) Add(at, "exactly one of inline, file, configMap and secret");
      for (const auto* ref : {t->has_config_map() ? &t->config_map() : nullptr,
                              t->has_secret() ? &t->secret() : nullptr}) {
        if (ref == nullptr) continue;
        const std::string where = at + (ref == &t->secret() ? ".secret" : ".configMap");
        if (ref->name().empty()) Add(where + ".name", "required");
        if (ref->key().empty()) Add(where + ".key", "required");
      }
      if (t->inline__size() > 0) {
        absl::StatusOr<std::vector<common::DataTable>> loaded =
            LoadDataTables(InlineOnly(spec, name), [](const std::string&, const v1::DataTable&) {
              return absl::StatusOr<std::string>(absl::InternalError("not inline"));
            });
        if (!loaded.ok()) {
          const std::string message(loaded.status().message());
          const size_t colon = message.find(": ");
          Add(message.substr(0, colon), message.substr(colon + 2));
        } else if (absl::StatusOr<LoadPlan> plan = LoadPlanFromSpec(spec); plan.ok()) {
          // (A plan that does not build has its own problems reported under spec.load.)
          if (std::string why = RowsProblem(spec, loaded->front(), *plan); !why.empty())
            Add(at, why);
        }
      }
      Enum(t->bind(), at + ".bind", {"user", "iteration"});
      Enum(t->order(), at + ".order", {"sequence", "shuffle", "random"});
      Enum(t->split(), at + ".split", {"exact", "shared"});
      Enum(t->on_exhausted(), at + ".onExhausted", {"fail", "wrap"});
      if (t->order() == "random" && t->split() != "shared") {
        Add(at + ".order", "random draws any row at any time: it needs split: shared");
      }
    }
  }

  // A spec with only table `name` (for reading it alone).
  static v1::LoadTestSpec InlineOnly(const v1::LoadTestSpec& spec, const std::string& name) {
    v1::LoadTestSpec one;
    (*one.mutable_data())[name] = spec.data().at(name);
    return one;
  }

  void Enum(const std::string& value, const std::string& at,
            std::initializer_list<const char*> allowed) {
    if (value.empty()) return;
    for (const char* a : allowed) {
      if (value == a) return;
    }
    Add(at, absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "), ", got ", Quote(value)));
  }

  void Load(const v1::LoadTestSpec& spec) {
    const v1::Load& load = spec.load();
    const bool users = load.has_users();
    const bool rate = load.has_rate();
    const bool stages = load.stages_size() > 0;
    if (users == rate)
      Add("spec.load", "set exactly one of users (closed model) or rate (open model)");
    if (users) {
      if (load.users() > kMaxUsers) {
        Add("spec.load.users", absl::StrCat("must be <= ", kMaxUsers));
      } else if (load.users() == 0 && !stages) {
        Add("spec.load.users", "must be > 0");
      }
    }
    if (rate) Level(load.rate(), "spec.load.rate", kMaxRate, !stages);
    if (!std::isfinite(load.spawn_rate())) {
      Add("spec.load.spawnRate", "must be a finite number");
    } else if (load.spawn_rate() < 0) {
      Add("spec.load.spawnRate", "must be >= 0");
    } else if (load.spawn_rate() > 0 && !users) {
      Add("spec.load.spawnRate", "only applies to the closed model (users)");
    } else if (load.spawn_rate() > 0 && stages) {
      Add("spec.load.spawnRate", "cannot be combined with stages (they set the ramp)");
    }
    if (load.has_think_time()) {
      if (!users) Add("spec.load.thinkTime", "only applies to the closed model (users)");
      const v1::ThinkTime& think = load.think_time();
      absl::StatusOr<absl::Duration> min = ParseDuration(think.min().empty() ? "0" : think.min());
      absl::StatusOr<absl::Duration> max =
          ParseDuration(think.max().empty() ? think.min() : think.max());
      if (!min.ok()) Add("spec.load.thinkTime.min", std::string(min.status().message()));
      if (!max.ok() && think.max() != think.min()) {  // the same text is reported once, as min
        Add("spec.load.thinkTime.max", std::string(max.status().message()));
      }
      if (min.ok() && max.ok() && *max < *min) {
        Add("spec.load.thinkTime.max",
            absl::StrCat("must be >= min (", think.max(), " < ", think.min(), ")"));
      }
    }
    if (load.connections() > 0 && !rate) {
      Add("spec.load.connections", "only applies to the open model (rate)");
    }
    for (int i = 0; i < load.stages_size(); ++i) {
      const v1::Stage& stage = load.stages(i);
      const std::string path = Index("spec.load.stages", i);
      Duration(stage.duration(), path + ".duration");
      const double bound = users && !rate ? kMaxUsers : kMaxRate;
      Level(stage.target(), path + ".target", bound, false);
    }
  }

  // A user count or rate: finite, >= 0 (> 0 when `positive`), <= `max`.
  void Level(double value, const std::string& path, double max, bool positive) {
    if (!std::isfinite(value)) {
      Add(path, "must be a finite number");
    } else if (value < 0) {
      Add(path, "must be >= 0");
    } else if (positive && value == 0) {
      Add(path, "must be > 0");
    } else if (value > max) {
      Add(path, absl::StrCat("must be <= ", static_cast<uint64_t>(max)));
    }
  }

  std::vector<Problem> problems_;
};

// Whether `path` is `base` or lies inside it ("spec.load.users" is inside "spec.load").
bool Within(const std::string& path, const std::string& base) {
  if (!absl::StartsWith(path, base)) return false;
  return path.size() == base.size() || path[base.size()] == '.' || path[base.size()] == '[';
}

}  // namespace

namespace spec_internal {

std::vector<Problem> ValidationProblems(const v1::LoadTest& test) { return Validator().Run(test); }

bool Explained(const Problem& p, const std::vector<Problem>& parse_problems) {
  for (const Problem& parse : parse_problems) {
    if (Within(p.path, parse.path)) return true;
    if (parse.value_dropped && Within(parse.path, p.path)) return true;
  }
  return false;
}

}  // namespace spec_internal

void ApplyDefaults(v1::LoadTest* test) {
  v1::ObjectMeta* meta = test->mutable_metadata();
  if (meta->namespace_().empty()) meta->set_namespace_("default");
  v1::LoadTestSpec* spec = test->mutable_spec();
  if (!spec->has_agents()) spec->set_agents(1);
  if (spec->target().timeout().empty()) spec->mutable_target()->set_timeout("10s");
  v1::Target* target = spec->mutable_target();
  if (target->protocol().empty()) target->set_protocol("http1");
  if ((target->protocol() == "h2" || target->protocol() == "h2c") &&
      !target->has_max_concurrent_streams()) {
    target->set_max_concurrent_streams(kDefaultMaxConcurrentStreams);
  }
  if (spec->on_agent_loss().empty()) spec->set_on_agent_loss("fail");
  // No requests and no scenarios: one GET of the target URL itself (path "").
  if (spec->requests_size() == 0 && spec->scenarios_size() == 0) spec->add_requests();
  for (v1::Request& r : *spec->mutable_requests()) {
    if (r.method().empty()) r.set_method("GET");
    if (!r.has_weight()) r.set_weight(1);
    if (r.name().empty()) r.set_name(DefaultRequestName(r));
  }
  if (spec->has_load() && spec->load().has_think_time()) {
    v1::ThinkTime* think = spec->mutable_load()->mutable_think_time();
    if (think->min().empty()) think->set_min("0s");
    if (think->max().empty()) think->set_max(think->min());
  }
}

std::vector<std::string> ValidateLoadTest(const v1::LoadTest& test) {
  std::vector<std::string> out;
  for (const Problem& p : Validator().Run(test)) out.push_back(Format(p));
  return out;
}

absl::Status ValidationStatus(const v1::LoadTest& test) {
  const std::vector<std::string> problems = ValidateLoadTest(test);
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

int64_t RunDurationNs(const v1::LoadTestSpec& spec) {
  if (!spec.duration().empty()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(spec.duration());
    return d.ok() ? absl::ToInt64Nanoseconds(*d) : 0;
  }
  int64_t total = 0;
  for (const v1::Stage& stage : spec.load().stages()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(stage.duration());
    if (d.ok()) total += absl::ToInt64Nanoseconds(*d);
  }
  return total;
}

}  // namespace stampede::common
