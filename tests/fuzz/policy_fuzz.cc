// libFuzzer target for the policy (common/policy.h): any bytes as an address, an address range, a
// host pattern and a LoadTestPolicy document give a value or an error, never a crash; what parses
// reads back the same (an address through its text, a range through its text), a range covers
// itself, and an admitted policy's agent rules always parse at the agent.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/policy.h"
#include "common/spec.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace {

using stampede::common::AddressPolicy;
using stampede::common::AddressRange;
using stampede::common::IpAddress;
using stampede::common::Policy;

const stampede::v1::LoadTest& FixedTest() {
  static const stampede::v1::LoadTest* test = [] {
    auto* t = new stampede::v1::LoadTest(*stampede::common::ParseLoadTest(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: t, namespace: "
        "shop}\nspec:\n  target: {url: \"http://cart.shop.svc:8080\"}\n  load: {users: 5}\n"
        "  duration: 1m\n"));
    return t;
  }();
  return *test;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (std::optional<IpAddress> ip = IpAddress::Parse(input)) {
    const std::optional<IpAddress> again = IpAddress::Parse(ip->ToString());
    CHECK(again.has_value() && *again == *ip);
  }
  if (absl::StatusOr<AddressRange> r = AddressRange::Parse(input); r.ok()) {
    CHECK(r->Covers(*r));
    absl::StatusOr<AddressRange> again = AddressRange::Parse(r->text());
    CHECK(again.ok() && again->Covers(*r) && r->Covers(*again));
  }
  (void)stampede::common::HostMatches(input, "a.shop.svc");
  (void)stampede::common::HostMatches("*.shop.svc", input);
  absl::StatusOr<Policy> policy = Policy::Parse(input);
  if (!policy.ok()) {
    CHECK(!policy.status().message().empty());
    return 0;
  }
  for (uint32_t running : {0u, 1000u}) (void)policy->Admit(FixedTest(), running);
  CHECK(AddressPolicy::FromRules(policy->TargetRulesFor(FixedTest())).ok());
  return 0;
}
