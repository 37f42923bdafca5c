// Who may aim load where, and how much (proto/stampede/v1/policy.proto): a cluster admin's
// LoadTestPolicy, enforced twice.
//
//   - At admission, before anything runs (the operator before any Pod exists, `stampede serve` on
//     POST, `stampede run` before its agents start): the first rule whose `namespaces` match the
//     test's namespace governs it; its limits bound agents, users, rate, duration and the tests a
//     namespace runs at once; the target URL's host must match its `hosts` (a name) or lie in its
//     `addresses` (an IP literal), and must not be denied.
//   - At the agent, when it connects: the address the target's name resolved to (or the literal)
//     must not lie in a denied range and, when the rule lists `addresses`, must lie in one of them.
//     A name that passed admission cannot be pointed elsewhere by DNS (rebinding, an ExternalName
//     Service, a poisoned record), because the check is on the address actually dialled.
//
// Denied, unless a rule allows them explicitly: the built-in ranges (link-local 169.254.0.0/16 and
// fe80::/10, where the cloud metadata services answer, and the metadata addresses fd00:ec2::254
// and 100.100.100.200, and metadata.google.internal), the policy's own `deny`, and what the caller
// adds (the operator: the API server and its own Service). "Explicitly" means an allowed range
// that lies inside the denied one (allowing 169.254.169.254/32 lifts that address of
// 169.254.0.0/16; allowing 0.0.0.0/0 does not), or, for a denied name, the exact name in `hosts`.
//
// Every refusal names the rule and the field. Pure and thread-safe once built.
#ifndef STAMPEDE_COMMON_POLICY_H_
#define STAMPEDE_COMMON_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "stampede/v1/loadtest.pb.h"
#include "stampede/v1/policy.pb.h"

namespace stampede::common {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are their IPv4 address,
// so a mapped form cannot slip past an IPv4 range.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4

  // Dotted IPv4 in any form inet_aton takes ("127.1", "2130706433", "0x7f.0.0.1": getaddrinfo
  // dials those too) or IPv6 text without brackets. nullopt for anything else (a host name).
  static std::optional<IpAddress> Parse(std::string_view text);
  static std::optional<IpAddress> FromSockaddr(const sockaddr* address);
  std::string ToString() const;
  bool operator==(const IpAddress& other) const { return v6 == other.v6 && bytes == other.bytes; }
};

// A prefix of IPv4 or IPv6 addresses, optionally one port of them: "10.0.0.0/8", "10.1.2.3" (a
// /32), "fd00::/8", "fd00:ec2::254", "10.1.2.3:6443", "[::1]:9090", "[fd00::]/8".
class AddressRange {
 public:
  static absl::StatusOr<AddressRange> Parse(std::string_view text);

  // port 0: any port.
  bool Contains(const IpAddress& address, uint16_t port) const;
  // Every address and port of `inner` is in this range.
  bool Covers(const AddressRange& inner) const;
  const std::string& text() const { return text_; }

 private:
  IpAddress base_;
  int prefix_ = 0;
  uint16_t port_ = 0;  // 0: any
  std::string text_;
};

// "*" alone matches any host name, "*.example.com" any name below example.com, anything else
// that name. Case-insensitive; a trailing dot is ignored. IP literals match no pattern.
bool HostMatches(std::string_view pattern, std::string_view host);

// Why a test may not run: the rule that refused it ("" when no rule covers its namespace), the
// field at fault, and a message "FIELD: why (rule NAME)". `reason` is a short bounded label for
// metrics: namespace, target, address, agents, users, rate, duration or concurrentTests.
struct Refusal {
  std::string rule;
  std::string field;
  std::string reason;
  std::string message;
};

// The agent's check of the address it is about to dial.
class AddressPolicy {
 public:
  // InvalidArgument naming the range when the rules do not parse.
  static absl::StatusOr<AddressPolicy> FromRules(const v1::TargetRules& rules);
  // "" when `address`:`port` may be dialled; otherwise why not, naming the rule.
  std::string Check(const IpAddress& address, uint16_t port) const;

 private:
  std::string rule_;
  std::vector<AddressRange> deny_;
  std::vector<AddressRange> allow_;
  bool restrict_ = false;
};

class Policy {
 public:
  // One rule "default" for every namespace: any host name, any address, no limits (the built-in
  // denials still apply). `stampede run` and the operator without --policy.
  static Policy AllowAll();
  // One rule "loopback" for every namespace: localhost, 127.0.0.0/8 and ::1 only.
  // `stampede serve` without --policy, since any caller of its API could aim it anywhere.
  static Policy LoopbackOnly();
  // A LoadTestPolicy document (YAML or JSON). InvalidArgument listing every problem with its
  // field path ("rules[0].addresses[1]: ...").
  static absl::StatusOr<Policy> Parse(std::string_view text);
  // Parse of a file of at most 1 MiB; errors name the path.
  static absl::StatusOr<Policy> FromFile(const std::string& path);

  // Refuses `address` (a range) or a host-name pattern for every test unless a rule allows it
  // explicitly; `why` says what it is in refusals ("the Kubernetes API server"). InvalidArgument
  // for text that is neither.
  absl::Status AddDenied(std::string_view target, std::string_view why);

  // The admission check of a validated, defaulted test. `running_in_namespace` counts the tests
  // of its namespace that are Pending, Starting or Running besides this one. nullopt: admitted.
  std::optional<Refusal> Admit(const v1::LoadTest& test, uint32_t running_in_namespace) const;
  // What the agents of an admitted test enforce.
  v1::TargetRules TargetRulesFor(const v1::LoadTest& test) const;
  // A line for logs: the rules in order with their namespaces.
  std::string Describe() const;

 private:
  struct Denied {
    std::optional<AddressRange> range;
    std::string host_pattern;
    std::string why;
  };
  struct Rule {
    std::string name;
    std::vector<std::string> namespaces;
    std::vector<std::string> hosts;
    std::vector<AddressRange> addresses;
    v1::PolicyLimits limits;
    int64_t max_duration_ns = 0;  // 0: none
  };
  Policy();
  // A policy of one rule for every namespace: one host pattern and these address ranges.
  static Policy OneRule(std::string name, std::string host, std::vector<std::string> ranges);
  const Rule* RuleFor(const std::string& ns) const;
  std::optional<Refusal> CheckTarget(const Rule& rule, const std::string& url) const;
  std::string DeniedAddress(const Rule& rule, const IpAddress& address, uint16_t port) const;

  std::vector<Denied> denied_;
  std::vector<Rule> rules_;
};

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_POLICY_H_
