#include "common/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "common/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stampede::common {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

IpAddress Ip(const std::string& text) {
  std::optional<IpAddress> ip = IpAddress::Parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(IpAddress());
}

AddressRange Range(const std::string& text) {
  absl::StatusOr<AddressRange> r = AddressRange::Parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  return r.ok() ? *r : AddressRange();
}

v1::LoadTest LoadTestIn(const std::string& ns, const std::string& url, const std::string& load,
                        uint32_t agents = 1, const std::string& duration = "10s") {
  absl::StatusOr<v1::LoadTest> test = ParseLoadTest(
      "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: t, "
      "namespace: " +
      ns + "}\nspec:\n  target: {url: \"" + url + "\"}\n  load: " + load +
      "\n  duration: " + duration + "\n  agents: " + std::to_string(agents) + "\n");
  EXPECT_TRUE(test.ok()) << test.status();
  return test.value_or(v1::LoadTest());
}

constexpr char kPolicy[] = R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTestPolicy
deny: ["10.96.0.0/12", "vault.infra.svc"]
rules:
  - name: shop
    namespaces: [shop, "shop-*"]
    hosts: ["*.shop.svc.cluster.local", checkout.shop]
    addresses: ["10.20.0.0/16", "169.254.169.254/32"]
    limits: {agents: 4, users: 500, rate: 2000, duration: 10m, concurrentTests: 2}
  - name: sandbox
    namespaces: ["sandbox"]
    hosts: ["*"]
  - name: loopback
    addresses: ["127.0.0.0/8"]
)yaml";

Policy ThePolicy() {
  absl::StatusOr<Policy> p = Policy::Parse(kPolicy);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : Policy::AllowAll();
}

TEST(IpAddress, ReadsEveryFormTheResolverDials) {
  EXPECT_EQ(Ip("127.1").ToString(), "127.0.0.1");
  EXPECT_EQ(Ip("2852039166").ToString(), "169.254.169.254");
  EXPECT_EQ(Ip("0xa9.0xfe.0xa9.0xfe").ToString(), "169.254.169.254");
  // An IPv4-mapped IPv6 address is its IPv4 address, so it meets the IPv4 ranges.
  EXPECT_FALSE(Ip("::ffff:169.254.169.254").v6);
  EXPECT_EQ(Ip("::ffff:169.254.169.254").ToString(), "169.254.169.254");
  EXPECT_TRUE(Ip("fd00:ec2::254").v6);
  EXPECT_FALSE(IpAddress::Parse("checkout.shop").has_value());
  EXPECT_FALSE(IpAddress::Parse("1.2.3.4.5").has_value());

  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:10.0.0.1", &mapped.sin6_addr);
  EXPECT_EQ(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&mapped))->ToString(), "10.0.0.1");
}

TEST(AddressRange, ContainsAndCovers) {
  const AddressRange link_local = Range("169.254.0.0/16");
  EXPECT_TRUE(link_local.Contains(Ip("169.254.169.254"), 80));
  EXPECT_FALSE(link_local.Contains(Ip("169.255.0.1"), 80));
  EXPECT_TRUE(link_local.Contains(Ip("::ffff:a9fe:1"), 80));         // mapped: still inside
  EXPECT_FALSE(Range("fe80::/10").Contains(Ip("169.254.1.1"), 80));  // families never mix
  const AddressRange api = Range("10.1.2.3:6443");
  EXPECT_TRUE(api.Contains(Ip("10.1.2.3"), 6443));
  EXPECT_FALSE(api.Contains(Ip("10.1.2.3"), 443));
  EXPECT_TRUE(Range("[::1]:9090").Contains(Ip("::1"), 9090));
  EXPECT_TRUE(Range("[fd00::]/8").Contains(Ip("fd12::1"), 1));
  EXPECT_TRUE(Range("0.0.0.0/0").Contains(Ip("8.8.8.8"), 53));

  EXPECT_TRUE(link_local.Covers(Range("169.254.169.254/32")));
  EXPECT_FALSE(Range("169.254.169.254/32").Covers(link_local));
  EXPECT_FALSE(link_local.Covers(Range("0.0.0.0/0")));
  EXPECT_TRUE(api.Covers(Range("10.1.2.3:6443")));
  EXPECT_FALSE(api.Covers(Range("10.1.2.3")));  // every port is more than one
  EXPECT_TRUE(Range("10.1.2.3").Covers(Range("10.1.2.3:6443")));

  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.1:0", "10.0.0.1:70000", "[::1",
                          "example.com", "127.1", "10.0.0.0/", "[::1]x"}) {
    EXPECT_FALSE(AddressRange::Parse(bad).ok()) << bad;
  }
}

TEST(HostMatches, ExactSuffixAndAny) {
  EXPECT_TRUE(HostMatches("*", "anything.example"));
  EXPECT_FALSE(HostMatches("*", "10.0.0.1"));  // addresses are for `addresses`
  EXPECT_TRUE(HostMatches("*.shop.svc", "cart.shop.svc"));
  EXPECT_TRUE(HostMatches("*.shop.svc", "a.b.shop.svc"));
  EXPECT_FALSE(HostMatches("*.shop.svc", "shop.svc"));
  EXPECT_FALSE(HostMatches("*.shop.svc", "evilshop.svc"));
  EXPECT_TRUE(HostMatches("Checkout.Shop", "checkout.shop."));  // case and the root dot
}

TEST(Policy, AdmitsWhatARuleAllows) {
  const Policy p = ThePolicy();
  EXPECT_FALSE(p.Admit(LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{users: 10}"), 0));
  EXPECT_FALSE(p.Admit(LoadTestIn("shop-dev", "http://checkout.shop:8080/api", "{rate: 100}"), 1));
  EXPECT_FALSE(p.Admit(LoadTestIn("shop", "http://10.20.3.4", "{users: 500}", 4, "10m"), 0));
  EXPECT_FALSE(p.Admit(LoadTestIn("sandbox", "https://example.com", "{users: 10}"), 9));
  EXPECT_FALSE(p.Admit(LoadTestIn("other", "http://127.0.0.1:8080", "{users: 10}"), 0));
}

TEST(Policy, RefusesNamingTheRuleAndTheField) {
  const Policy p = ThePolicy();
  struct Case {
    v1::LoadTest test;
    uint32_t running;
    std::string rule, field, reason, says;
  };
  const Case cases[] = {
      {LoadTestIn("shop", "http://vault.infra.svc", "{users: 1}"), 0, "shop", "spec.target.url",
       "target", "is not in the rule's hosts"},
      {LoadTestIn("shop", "http://10.21.0.1", "{users: 1}"), 0, "shop", "spec.target.url",
       "address", "address 10.21.0.1 port 80 is not in the rule's addresses"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{users: 1}", 5), 0, "shop",
       "spec.agents", "agents", "5 agents; at most 4 allowed"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{users: 501}"), 0, "shop",
       "spec.load.users", "users", "501 users; at most 500 allowed"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local",
                  "{users: 0, stages: [{duration: 5s, target: 900}]}"),
       0, "shop", "spec.load.stages", "users", "900 users"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{rate: 2500}"), 0, "shop",
       "spec.load.rate", "rate", "2500 requests/s; at most 2000 allowed"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{users: 1}", 1, "11m"), 0, "shop",
       "spec.duration", "duration", "at most 10m allowed"},
      {LoadTestIn("shop", "http://cart.shop.svc.cluster.local", "{users: 1}"), 2, "shop",
       "metadata.namespace", "concurrentTests", "already runs 2 test(s); at most 2 at once"},
      // Built in: the metadata service, by any spelling of its address; the rule's /32 lifts
      // exactly that one address of the denied /16, and nothing else in it.
      {LoadTestIn("sandbox", "http://metadata.google.internal", "{users: 1}"), 0, "sandbox",
       "spec.target.url", "target", "is denied: the GCP metadata service"},
      {LoadTestIn("loopback", "http://169.254.169.254", "{users: 1}"), 0, "loopback",
       "spec.target.url", "address", "not in the rule's addresses"},
      {LoadTestIn("shop", "http://169.254.170.2", "{users: 1}"), 0, "shop", "spec.target.url",
       "address", "not in the rule's addresses"},
      {LoadTestIn("sandbox", "http://vault.infra.svc", "{users: 1}"), 0, "sandbox",
       "spec.target.url", "target", "is denied: denied by the policy"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.test.spec().target().url() + " in " + c.test.metadata().namespace_());
    const std::optional<Refusal> r = p.Admit(c.test, c.running);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->rule, c.rule);
    EXPECT_EQ(r->field, c.field);
    EXPECT_EQ(r->reason, c.reason);
    EXPECT_THAT(r->message, HasSubstr(c.says));
    EXPECT_THAT(r->message, HasSubstr(c.field + ": "));
    EXPECT_THAT(r->message, HasSubstr("(rule " + c.rule + ")"));
  }
  // The metadata address the shop rule names explicitly is allowed to it.
  EXPECT_FALSE(p.Admit(LoadTestIn("shop", "http://169.254.169.254", "{users: 1}"), 0));
}

TEST(Policy, ANamespaceNoRuleCoversIsRefused) {
  absl::StatusOr<Policy> p = Policy::Parse(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTestPolicy
rules: [{name: a, namespaces: [team-a], hosts: ["*"]}]
)yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  const std::optional<Refusal> r =
      p->Admit(LoadTestIn("team-b", "http://x.team-b", "{users: 1}"), 0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->field, "metadata.namespace");
  EXPECT_EQ(r->rule, "");
  EXPECT_THAT(r->message, HasSubstr("no rule of the policy covers namespace \"team-b\""));
}

TEST(Policy, BuiltInDenialsHoldWithoutAPolicy) {
  const Policy all = Policy::AllowAll();
  EXPECT_FALSE(all.Admit(LoadTestIn("x", "http://example.com", "{users: 1}"), 100));
  EXPECT_FALSE(all.Admit(LoadTestIn("x", "http://10.0.0.1", "{users: 1}"), 0));
  for (const char* url :
       {"http://169.254.169.254/latest/meta-data", "http://2852039166",
        "http://[::ffff:169.254.169.254]", "http://[fd00:ec2::254]", "http://100.100.100.200",
        "http://[fe80::1]", "http://METADATA.google.internal."}) {
    const std::optional<Refusal> r = all.Admit(LoadTestIn("x", url, "{users: 1}"), 0);
    ASSERT_TRUE(r.has_value()) << url;
    EXPECT_EQ(r->rule, "default") << url;
    EXPECT_THAT(r->message, HasSubstr("is denied")) << url;
  }
  const Policy loopback = Policy::LoopbackOnly();
  EXPECT_FALSE(loopback.Admit(LoadTestIn("x", "http://127.0.0.1:8080", "{users: 1}"), 0));
  EXPECT_FALSE(loopback.Admit(LoadTestIn("x", "http://localhost:8080", "{users: 1}"), 0));
  EXPECT_FALSE(loopback.Admit(LoadTestIn("x", "http://[::1]:8080", "{users: 1}"), 0));
  EXPECT_TRUE(loopback.Admit(LoadTestIn("x", "http://example.com", "{users: 1}"), 0));
  EXPECT_TRUE(loopback.Admit(LoadTestIn("x", "http://10.0.0.1", "{users: 1}"), 0));
}

TEST(Policy, DeniedTargetsTheCallerAddsNeedAnExplicitAllow) {
  Policy p = Policy::AllowAll();
  ASSERT_TRUE(p.AddDenied("127.0.0.1:6443", "the Kubernetes API server").ok());
  ASSERT_TRUE(p.AddDenied("kubernetes.default.svc", "the Kubernetes API server").ok());
  EXPECT_FALSE(p.AddDenied("*", "x").ok());
  EXPECT_FALSE(p.AddDenied("not a host", "x").ok());
  const std::optional<Refusal> api =
      p.Admit(LoadTestIn("x", "https://127.0.0.1:6443", "{users: 1}"), 0);
  ASSERT_TRUE(api.has_value());
  EXPECT_THAT(api->message, HasSubstr("127.0.0.1:6443, the Kubernetes API server"));
  EXPECT_TRUE(p.Admit(LoadTestIn("x", "https://KUBERNETES.default.svc", "{users: 1}"), 0));
  // Another port of the same address is another service.
  EXPECT_FALSE(p.Admit(LoadTestIn("x", "http://127.0.0.1:8080", "{users: 1}"), 0));

  absl::StatusOr<Policy> explicit_allow = Policy::Parse(R"yaml(
apiVersion: stampede.dev/v1alpha1
kind: LoadTestPolicy
rules:
  - {name: admins, hosts: [kubernetes.default.svc], addresses: ["127.0.0.1:6443"]}
)yaml");
  ASSERT_TRUE(explicit_allow.ok()) << explicit_allow.status();
  ASSERT_TRUE(explicit_allow->AddDenied("127.0.0.1:6443", "the Kubernetes API server").ok());
  ASSERT_TRUE(explicit_allow->AddDenied("kubernetes.default.svc", "the API server").ok());
  EXPECT_FALSE(explicit_allow->Admit(LoadTestIn("x", "https://127.0.0.1:6443", "{users: 1}"), 0));
  EXPECT_FALSE(
      explicit_allow->Admit(LoadTestIn("x", "https://kubernetes.default.svc", "{users: 1}"), 0));
}

TEST(AddressPolicy, TheAgentChecksTheAddressItDials) {
  const Policy p = ThePolicy();
  // A name the shop rule admits, resolved by (rebound) DNS elsewhere: the rule lists addresses,
  // so only those may be dialled; and never a denied range.
  const v1::TargetRules shop =
      p.TargetRulesFor(LoadTestIn("shop", "http://a.shop.svc.cluster.local", "{users: 1}"));
  EXPECT_EQ(shop.rule(), "shop");
  EXPECT_TRUE(shop.restrict_addresses());
  absl::StatusOr<AddressPolicy> check = AddressPolicy::FromRules(shop);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(check->Check(Ip("10.20.0.9"), 80), IsEmpty());
  EXPECT_THAT(check->Check(Ip("10.30.0.9"), 80), HasSubstr("not in the addresses of rule shop"));
  EXPECT_THAT(check->Check(Ip("169.254.169.254"), 80), IsEmpty());  // the rule's own /32
  EXPECT_THAT(check->Check(Ip("10.96.0.1"), 443), HasSubstr("is in the denied range 10.96.0.0/12"));

  // A rule without addresses: a name may resolve anywhere but the denied ranges.
  const v1::TargetRules sandbox =
      p.TargetRulesFor(LoadTestIn("sandbox", "http://x.io", "{users: 1}"));
  EXPECT_FALSE(sandbox.restrict_addresses());
  check = AddressPolicy::FromRules(sandbox);
  ASSERT_TRUE(check.ok());
  EXPECT_THAT(check->Check(Ip("93.184.216.34"), 443), IsEmpty());
  EXPECT_THAT(check->Check(Ip("169.254.169.254"), 80), HasSubstr("169.254.0.0/16"));
  EXPECT_THAT(check->Check(Ip("::ffff:169.254.169.254"), 80), HasSubstr("169.254.0.0/16"));
  EXPECT_THAT(check->Check(Ip("fd00:ec2::254"), 80), HasSubstr("fd00:ec2::254"));
  EXPECT_THAT(check->Check(Ip("10.100.0.1"), 80), HasSubstr("10.96.0.0/12 (rule sandbox)"));

  v1::TargetRules broken;
  broken.add_deny("not-a-range");
  EXPECT_FALSE(AddressPolicy::FromRules(broken).ok());
}

TEST(Policy, ParseListsEveryProblemWithItsPath) {
  absl::StatusOr<Policy> p = Policy::Parse(R"yaml(
apiVersion: stampede.dev/v1
kind: Policy
deny: ["10.0.0.0/40", "*"]
rules:
  - name: a
    namespaces: ["Team_A"]
    hosts: ["*.*.x", "10.0.0.1"]
    addresses: ["10.0.0.0/8", "nope"]
    limits: {agents: 0, rate: -1, duration: 10, concurrentTests: 0, bogus: 1}
  - name: a
  - hosts: ["*"]
)yaml");
  ASSERT_FALSE(p.ok());
  const std::string m(p.status().message());
  for (const char* want : {
           "apiVersion: must be \"stampede.dev/v1alpha1\"",
           "kind: must be \"LoadTestPolicy\"",
           "deny[0]: \"10.0.0.0/40\" is neither",
           "deny[1]: \"*\" is neither",
           "rules[0].namespaces[0]: \"Team_A\" is not a namespace name",
           "rules[0].hosts[0]: \"*.*.x\" is not a host name",
           "rules[0].hosts[1]: \"10.0.0.1\" is an address: put it in addresses",
           "rules[0].addresses[1]: \"nope\" is not an address",
           "rules[0].limits.agents: must be > 0",
           "rules[0].limits.rate: must be > 0",
           "rules[0].limits.concurrentTests: must be > 0",
           "rules[0].limits.duration: \"10\" has no unit",
           "rules[0].limits.bogus: unknown field",
           "rules[1].name: \"a\" names another rule too",
           "rules[1]: allows no target",
           "rules[2].name: required",
       }) {
    EXPECT_THAT(m, HasSubstr(want));
  }
  EXPECT_THAT(Policy::Parse("").status().message(), HasSubstr("expected a LoadTestPolicy"));
  EXPECT_THAT(
      Policy::Parse("apiVersion: stampede.dev/v1alpha1\nkind: LoadTestPolicy\n").status().message(),
      HasSubstr("rules: at least one rule is needed"));
}

}  // namespace
}  // namespace stampede::common
