#include "common/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/duration.h"
#include "common/files.h"
#include "common/spec.h"
#include "common/spec_internal.h"
#include "common/status_macros.h"
#include "common/url.h"

namespace stampede::common {
namespace {

using spec_internal::Problem;
using spec_internal::Quote;

constexpr char kApiVersion[] = "stampede.dev/v1alpha1";
constexpr char kKind[] = "LoadTestPolicy";
constexpr size_t kMaxPolicyBytes = 1 << 20;

// What no test may reach unless a rule allows it explicitly.
struct BuiltIn {
  const char* target;
  const char* why;
};
constexpr BuiltIn kBuiltInDenied[] = {
    {"169.254.0.0/16", "link-local, where cloud metadata services answer"},
    {"fe80::/10", "IPv6 link-local"},
    {"fd00:ec2::254", "the AWS metadata service over IPv6"},
    {"100.100.100.200", "the Alibaba Cloud metadata service"},
    {"metadata.google.internal", "the GCP metadata service"},
};

// Debian's abseil has a string_view of its own.
absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string NormalizedHost(std::string_view host) {
  std::string h = absl::AsciiStrToLower(View(host));
  while (!h.empty() && h.back() == '.') h.pop_back();
  return h;
}

// "*" any run of characters (namespace names hold no other special characters).
bool GlobMatches(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// A host pattern's problem, or "".
std::string HostPatternProblem(std::string_view pattern) {
  if (pattern == "*") return "";
  absl::string_view name = View(pattern);
  absl::ConsumePrefix(&name, "*.");
  if (name.empty()) return "is empty";
  if (IpAddress::Parse(std::string_view(name.data(), name.size())).has_value()) {
    return "is an address: put it in addresses";
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
      return "is not a host name, \"*.\" followed by one, or \"*\"";
    }
  }
  return "";
}

// The highest level a load model reaches: the start value or any stage's target.
double PeakLevel(double start, const v1::Load& load) {
  double peak = start;
  for (const v1::Stage& s : load.stages()) peak = std::max(peak, static_cast<double>(s.target()));
  return peak;
}

// Whether an allowed range inside `denied` holds the address: the only way past a denial.
bool Lifted(const AddressRange& denied, const std::vector<AddressRange>& allowed,
            const IpAddress& address, uint16_t port) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const AddressRange& a) {
    return denied.Covers(a) && a.Contains(address, port);
  });
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  const std::string s(text);
  IpAddress a;
  in_addr v4{};
  // inet_aton, not inet_pton: getaddrinfo resolves "127.1" and "2130706433" to addresses as well,
  // so the policy must see them as the addresses they are.
  if (s.find(':') == std::string::npos && inet_aton(s.c_str(), &v4) == 1) {
    std::memcpy(a.bytes.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(a.bytes.data(), &v6.s6_addr[12], 4);
    return a;
  }
  a.v6 = true;
  std::memcpy(a.bytes.data(), &v6, 16);
  return a;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* address) {
  if (address == nullptr) return std::nullopt;
  IpAddress a;
  if (address->sa_family == AF_INET) {
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, 4);
    return a;
  }
  if (address->sa_family != AF_INET6) return std::nullopt;
  const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(a.bytes.data(), &v6.s6_addr[12], 4);
    return a;
  }
  a.v6 = true;
  std::memcpy(a.bytes.data(), &v6, 16);
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf));
  return buf;
}

absl::StatusOr<AddressRange> AddressRange::Parse(std::string_view input) {
  const absl::string_view text = View(input);
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " ", why));
  };
  absl::string_view rest = text;
  absl::string_view address, prefix, port;
  if (absl::ConsumePrefix(&rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) return bad("has an unclosed [");
    address = rest.substr(0, close);
    rest.remove_prefix(close + 1);
    if (absl::ConsumePrefix(&rest, "/")) {
      prefix = rest;
    } else if (absl::ConsumePrefix(&rest, ":")) {
      port = rest;
    } else if (!rest.empty()) {
      return bad("has text after ]");
    }
  } else {
    const size_t slash = rest.find('/');
    address = rest.substr(0, slash);
    if (slash != absl::string_view::npos) prefix = rest.substr(slash + 1);
    // One colon is IPv4 with a port; IPv6 with a port is written in brackets.
    if (std::count(address.begin(), address.end(), ':') == 1) {
      port = address.substr(address.find(':') + 1);
      address = address.substr(0, address.find(':'));
    }
  }
  AddressRange r;
  std::optional<IpAddress> ip;
  // Ranges are written in the plain forms only; "127.1" is a host the check resolves, not a range.
  if (in6_addr probe{}; inet_pton(AF_INET, std::string(address).c_str(), &probe) == 1 ||
                        inet_pton(AF_INET6, std::string(address).c_str(), &probe) == 1) {
    ip = IpAddress::Parse(std::string_view(address.data(), address.size()));
  }
  if (!ip.has_value())
    return bad("is not an address or address range (\"10.0.0.0/8\", \"fd00::/8\")");
  r.base_ = *ip;
  const int bits = r.base_.v6 ? 128 : 32;
  r.prefix_ = bits;
  if (!prefix.empty() || absl::EndsWith(text, "/")) {
    if (!absl::SimpleAtoi(prefix, &r.prefix_) || r.prefix_ < 0 || r.prefix_ > bits) {
      return bad(absl::StrCat("has a prefix length that is not in 0..", bits));
    }
  }
  if (!port.empty() || absl::EndsWith(text, ":")) {
    uint32_t p = 0;
    if (!absl::SimpleAtoi(port, &p) || p == 0 || p > 65535)
      return bad("has a port not in 1..65535");
    r.port_ = static_cast<uint16_t>(p);
  }
  // The bits past the prefix are zero, so that equal ranges compare equal in Covers.
  for (int i = r.prefix_; i < bits; ++i) r.base_.bytes[i / 8] &= ~(0x80 >> (i % 8));
  r.text_ = std::string(text);
  return r;
}

bool AddressRange::Contains(const IpAddress& address, uint16_t port) const {
  if (address.v6 != base_.v6) return false;
  if (port_ != 0 && port != port_) return false;
  for (int i = 0; i < prefix_; ++i) {
    const int mask = 0x80 >> (i % 8);
    if ((address.bytes[i / 8] & mask) != (base_.bytes[i / 8] & mask)) return false;
  }
  return true;
}

bool AddressRange::Covers(const AddressRange& inner) const {
  if (inner.base_.v6 != base_.v6 || inner.prefix_ < prefix_) return false;
  if (port_ != 0 && inner.port_ != port_) return false;
  return Contains(inner.base_, port_ != 0 ? port_ : inner.port_);
}

bool HostMatches(std::string_view pattern, std::string_view host) {
  const std::string h = NormalizedHost(host);
  if (h.empty() || IpAddress::Parse(h).has_value()) return false;
  if (pattern == "*") return true;
  const std::string p = NormalizedHost(pattern);
  if (absl::StartsWith(p, "*.")) return absl::EndsWith(h, p.substr(1));
  return h == p;
}

absl::StatusOr<AddressPolicy> AddressPolicy::FromRules(const v1::TargetRules& rules) {
  AddressPolicy p;
  p.rule_ = rules.rule();
  p.restrict_ = rules.restrict_addresses();
  for (const std::string& text : rules.deny()) {
    ASSIGN_OR_RETURN(AddressRange r, AddressRange::Parse(text));
    p.deny_.push_back(std::move(r));
  }
  for (const std::string& text : rules.allow()) {
    ASSIGN_OR_RETURN(AddressRange r, AddressRange::Parse(text));
    p.allow_.push_back(std::move(r));
  }
  return p;
}

std::string AddressPolicy::Check(const IpAddress& address, uint16_t port) const {
  for (const AddressRange& denied : deny_) {
    if (!denied.Contains(address, port)) continue;
    if (!Lifted(denied, allow_, address, port)) {
      return absl::StrCat("address ", address.ToString(), " port ", port,
                          " is in the denied range ", denied.text(), " (rule ", rule_, ")");
    }
  }
  if (restrict_ && std::none_of(allow_.begin(), allow_.end(),
                                [&](const AddressRange& a) { return a.Contains(address, port); })) {
    return absl::StrCat("address ", address.ToString(), " port ", port,
                        " is not in the addresses of rule ", rule_);
  }
  return "";
}

Policy::Policy() {
  for (const BuiltIn& b : kBuiltInDenied) {
    absl::Status s = AddDenied(b.target, b.why);
    (void)s;  // constants that parse
  }
}

Policy Policy::OneRule(std::string name, std::string host, std::vector<std::string> ranges) {
  Policy p;
  Rule rule;
  rule.name = std::move(name);
  rule.hosts = {std::move(host)};
  for (const std::string& r : ranges) rule.addresses.push_back(*AddressRange::Parse(r));
  p.rules_.push_back(std::move(rule));
  return p;
}

Policy Policy::AllowAll() { return OneRule("default", "*", {"0.0.0.0/0", "::/0"}); }

Policy Policy::LoopbackOnly() { return OneRule("loopback", "localhost", {"127.0.0.0/8", "::1"}); }

absl::StatusOr<Policy> Policy::Parse(std::string_view text) {
  v1::LoadTestPolicy doc;
  std::vector<Problem> problems;
  RETURN_IF_ERROR(
      spec_internal::ParseDocument(text, "apiVersion, kind, deny, rules", &doc, &problems));
  const auto add = [&problems](std::string path, std::string reason) {
    problems.push_back({std::move(path), std::move(reason)});
  };
  if (doc.api_version() != kApiVersion) {
    add("apiVersion", absl::StrCat("must be \"", kApiVersion, "\""));
  }
  if (doc.kind() != kKind) add("kind", absl::StrCat("must be \"", kKind, "\""));
  Policy p;
  for (int i = 0; i < doc.deny_size(); ++i) {
    if (absl::Status s = p.AddDenied(doc.deny(i), "denied by the policy"); !s.ok()) {
      add(spec_internal::Index("deny", i), std::string(s.message()));
    }
  }
  if (doc.rules_size() == 0) add("rules", "at least one rule is needed");
  std::vector<std::string> names;
  for (int i = 0; i < doc.rules_size(); ++i) {
    const v1::PolicyRule& in = doc.rules(i);
    const std::string path = spec_internal::Index("rules", i);
    Rule rule;
    rule.name = in.name();
    if (rule.name.empty()) {
      add(path + ".name", "required");
    } else if (std::find(names.begin(), names.end(), rule.name) != names.end()) {
      add(path + ".name", absl::StrCat(Quote(rule.name), " names another rule too"));
    }
    names.push_back(rule.name);
    for (int j = 0; j < in.namespaces_size(); ++j) {
      const std::string& ns = in.namespaces(j);
      if (ns.empty() || !std::all_of(ns.begin(), ns.end(), [](char c) {
            return absl::ascii_islower(static_cast<unsigned char>(c)) ||
                   absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '*';
          })) {
        add(spec_internal::Index(path + ".namespaces", j),
            absl::StrCat(Quote(ns), " is not a namespace name or pattern (a-z, 0-9, -, *)"));
      }
      rule.namespaces.push_back(ns);
    }
    for (int j = 0; j < in.hosts_size(); ++j) {
      if (std::string problem = HostPatternProblem(in.hosts(j)); !problem.empty()) {
        add(spec_internal::Index(path + ".hosts", j),
            absl::StrCat(Quote(in.hosts(j)), " ", problem));
      }
      rule.hosts.push_back(NormalizedHost(in.hosts(j)));
    }
    for (int j = 0; j < in.addresses_size(); ++j) {
      absl::StatusOr<AddressRange> r = AddressRange::Parse(in.addresses(j));
      if (!r.ok()) {
        add(spec_internal::Index(path + ".addresses", j), std::string(r.status().message()));
      } else {
        rule.addresses.push_back(*std::move(r));
      }
    }
    if (in.hosts_size() == 0 && in.addresses_size() == 0) {
      add(path, "allows no target: give hosts, addresses or both");
    }
    rule.limits = in.limits();
    const v1::PolicyLimits& limits = in.limits();
    if (limits.has_agents() && limits.agents() == 0) add(path + ".limits.agents", "must be > 0");
    if (limits.has_users() && limits.users() == 0) add(path + ".limits.users", "must be > 0");
    if (limits.has_rate() && !(limits.rate() > 0)) add(path + ".limits.rate", "must be > 0");
    if (limits.has_concurrent_tests() && limits.concurrent_tests() == 0) {
      add(path + ".limits.concurrentTests", "must be > 0");
    }
    if (!limits.duration().empty()) {
      absl::StatusOr<int64_t> ns = ParseDurationNanos(path + ".limits.duration", limits.duration());
      if (!ns.ok()) {
        problems.push_back({"", std::string(ns.status().message())});
      } else if (*ns <= 0) {
        add(path + ".limits.duration", "must be > 0");
      } else {
        rule.max_duration_ns = *ns;
      }
    }
    p.rules_.push_back(std::move(rule));
  }
  if (problems.empty()) return p;
  std::vector<std::string> lines;
  for (const Problem& problem : problems) lines.push_back(spec_internal::Format(problem));
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

absl::StatusOr<Policy> Policy::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxPolicyBytes));
  absl::StatusOr<Policy> p = Parse(text);
  if (!p.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":\n", p.status().message()));
  }
  return p;
}

absl::Status Policy::AddDenied(std::string_view target, std::string_view why) {
  Denied d;
  d.why = std::string(why);
  if (absl::StatusOr<AddressRange> r = AddressRange::Parse(target); r.ok()) {
    d.range = *std::move(r);
  } else if (HostPatternProblem(target).empty() && target != "*") {
    d.host_pattern = NormalizedHost(target);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(View(target)),
                     " is neither an address range (\"10.0.0.0/8\", \"10.1.2.3:6443\") nor a "
                     "host name (\"vault.infra.svc\", \"*.internal\")"));
  }
  denied_.push_back(std::move(d));
  return absl::OkStatus();
}

const Policy::Rule* Policy::RuleFor(const std::string& ns) const {
  for (const Rule& rule : rules_) {
    if (rule.namespaces.empty()) return &rule;
    for (const std::string& pattern : rule.namespaces) {
      if (GlobMatches(pattern, ns)) return &rule;
    }
  }
  return nullptr;
}

std::string Policy::DeniedAddress(const Rule& rule, const IpAddress& address, uint16_t port) const {
  for (const Denied& d : denied_) {
    if (!d.range.has_value() || !d.range->Contains(address, port)) continue;
    const bool lifted = std::any_of(
        rule.addresses.begin(), rule.addresses.end(),
        [&](const AddressRange& a) { return d.range->Covers(a) && a.Contains(address, port); });
    if (!lifted) return absl::StrCat(d.range->text(), ", ", d.why);
  }
  return "";
}

std::optional<Refusal> Policy::CheckTarget(const Rule& rule, const std::string& url_text) const {
  constexpr char kField[] = "spec.target.url";
  const auto refuse = [&](std::string reason, std::string why) {
    return Refusal{rule.name, kField, std::move(reason),
                   absl::StrCat(kField, ": ", why, " (rule ", rule.name, ")")};
  };
  absl::StatusOr<Url> url = ParseUrl(url_text);
  if (!url.ok()) return refuse("target", std::string(url.status().message()));
  if (const std::optional<IpAddress> ip = IpAddress::Parse(url->host); ip.has_value()) {
    const bool allowed =
        std::any_of(rule.addresses.begin(), rule.addresses.end(),
                    [&](const AddressRange& a) { return a.Contains(*ip, url->port); });
    if (!allowed) {
      return refuse("address", absl::StrCat("address ", ip->ToString(), " port ", url->port,
                                            " is not in the rule's addresses"));
    }
    if (std::string denied = DeniedAddress(rule, *ip, url->port); !denied.empty()) {
      return refuse("address", absl::StrCat("address ", ip->ToString(), " port ", url->port,
                                            " is denied: ", denied));
    }
    return std::nullopt;
  }
  if (url->host.find(':') != std::string::npos) {
    return refuse("address", absl::StrCat(Quote(url->host), " is not an address the policy reads"));
  }
  const std::string host = NormalizedHost(url->host);
  if (std::none_of(rule.hosts.begin(), rule.hosts.end(),
                   [&](const std::string& p) { return HostMatches(p, host); })) {
    return refuse("target", absl::StrCat("host ", Quote(host), " is not in the rule's hosts"));
  }
  for (const Denied& d : denied_) {
    if (d.host_pattern.empty() || !HostMatches(d.host_pattern, host)) continue;
    if (std::find(rule.hosts.begin(), rule.hosts.end(), host) != rule.hosts.end()) continue;
    return refuse("target", absl::StrCat("host ", Quote(host), " is denied: ", d.why));
  }
  return std::nullopt;
}

std::optional<Refusal> Policy::Admit(const v1::LoadTest& test,
                                     uint32_t running_in_namespace) const {
  const std::string& ns = test.metadata().namespace_();
  const Rule* rule = RuleFor(ns);
  if (rule == nullptr) {
    return Refusal{
        "", "metadata.namespace", "namespace",
        absl::StrCat("metadata.namespace: no rule of the policy covers namespace ", Quote(ns))};
  }
  const auto refuse = [rule](const char* field, const char* reason, std::string why) {
    return Refusal{rule->name, field, reason,
                   absl::StrCat(field, ": ", why, " (rule ", rule->name, ")")};
  };
  const v1::LoadTestSpec& spec = test.spec();
  const v1::PolicyLimits& limits = rule->limits;
  if (limits.has_agents() && spec.agents() > limits.agents()) {
    return refuse("spec.agents", "agents",
                  absl::StrCat(spec.agents(), " agents; at most ", limits.agents(), " allowed"));
  }
  const v1::Load& load = spec.load();
  const bool staged = load.stages_size() > 0;
  if (limits.has_users() && load.has_users()) {
    const double users = PeakLevel(load.users(), load);
    if (users > limits.users()) {
      return refuse(staged ? "spec.load.stages" : "spec.load.users", "users",
                    absl::StrCat(users, " users; at most ", limits.users(), " allowed"));
    }
  }
  if (limits.has_rate() && load.has_rate()) {
    const double rate = PeakLevel(load.rate(), load);
    if (rate > limits.rate()) {
      return refuse(staged ? "spec.load.stages" : "spec.load.rate", "rate",
                    absl::StrCat(rate, " requests/s; at most ", limits.rate(), " allowed"));
    }
  }
  if (rule->max_duration_ns > 0) {
    const int64_t duration = RunDurationNs(spec);
    if (duration > rule->max_duration_ns) {
      return refuse(
          "spec.duration", "duration",
          absl::StrCat(FormatNanos(duration), "; at most ", limits.duration(), " allowed"));
    }
  }
  if (limits.has_concurrent_tests() && running_in_namespace >= limits.concurrent_tests()) {
    return refuse("metadata.namespace", "concurrentTests",
                  absl::StrCat("namespace ", Quote(ns), " already runs ", running_in_namespace,
                               " test(s); at most ", limits.concurrent_tests(), " at once"));
  }
  return CheckTarget(*rule, spec.target().url());
}

v1::TargetRules Policy::TargetRulesFor(const v1::LoadTest& test) const {
  v1::TargetRules out;
  const Rule* rule = RuleFor(test.metadata().namespace_());
  if (rule == nullptr) return out;
  out.set_rule(rule->name);
  for (const Denied& d : denied_) {
    if (d.range.has_value()) out.add_deny(d.range->text());
  }
  for (const AddressRange& a : rule->addresses) out.add_allow(a.text());
  out.set_restrict_addresses(!rule->addresses.empty());
  return out;
}

std::string Policy::Describe() const {
  std::vector<std::string> parts;
  for (const Rule& rule : rules_) {
    parts.push_back(absl::StrCat(
        rule.name, "[", rule.namespaces.empty() ? "*" : absl::StrJoin(rule.namespaces, ","), "]"));
  }
  return absl::StrCat("rules=", absl::StrJoin(parts, ";"), " denied=", denied_.size());
}

}  // namespace stampede::common
