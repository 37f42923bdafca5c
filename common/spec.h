// Reading, defaulting and validating LoadTest documents (proto/stampede/v1/loadtest.proto), the one
// schema shared by `stampede run FILE`, the REST API and the Kubernetes custom resource.
//
// Parsing walks the YAML tree against the message's protobuf descriptor, so every field of the
// .proto is accepted under its lowerCamelCase JSON name with no per-field code. It is as strict as
// the Kubernetes API server: unknown and duplicate keys are errors, numbers and booleans must be
// unquoted, google.protobuf.Struct fields take any YAML subtree.
//
// Every problem is reported, not just the first, one per line as "<field path>: <reason>", e.g.
//   spec.load.users: must be > 0
//   spec.requests[1].method: "GE T" is not an HTTP method
//   spec.load.foo: unknown field
// Paths use the YAML names. All functions are pure and thread-safe.
#ifndef STAMPEDE_COMMON_SPEC_H_
#define STAMPEDE_COMMON_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::common {

// Bounds of a document: its size (Kubernetes objects stop at 1.5 MiB); the values in its tree, with
// aliases expanded (a few hundred bytes of nested aliases can expand to billions); and the nesting.
inline constexpr size_t kMaxLoadTestBytes = 2 << 20;
inline constexpr size_t kMaxLoadTestValues = 250'000;
inline constexpr size_t kMaxLoadTestDepth = 64;
// Bounds of the load model (over all agents).
inline constexpr uint32_t kMaxUsers = 1'000'000;
inline constexpr double kMaxRate = 10'000'000;
inline constexpr uint32_t kMaxAgents = 10000;
inline constexpr uint32_t kMaxThreadsPerAgent = 256;
// HTTP/2 streams in flight per connection (spec.target.maxConcurrentStreams). 100 is the
// smallest limit RFC 9113 recommends a server allow and what nghttp2 and many servers advertise
// (nginx: 128), so the default rarely waits on the server's SETTINGS. 1000 bounds the per-stream
// state one connection holds (the client keeps a slot per stream).
inline constexpr uint32_t kDefaultMaxConcurrentStreams = 100;
inline constexpr uint32_t kMaxConcurrentStreams = 1000;
// Agent Pods are named "<name>-agent-<i>", which must stay a 63-character DNS label: 52 + 7 + the 4
// digits of the last index below kMaxAgents.
inline constexpr size_t kMaxNameLength = 52;
static_assert(kMaxAgents - 1 <= 9999, "agent Pod names would pass 63 characters");

// Parses one YAML or JSON document into a LoadTest, applies defaults, validates. On any problem
// returns InvalidArgument whose message lists EVERY problem found, one per line, each
// "<field path>: <reason>", e.g. "spec.load.users: must be > 0", "spec.requests[1].weight: must be
// > 0", "spec.load.foo: unknown field". Paths use the YAML (lowerCamelCase) names. A field that
// fails to parse is left unset, and validation messages that would only repeat that are dropped.
// Input that is not a single YAML map (empty, a syntax error, a list, several documents) gives one
// message, with its line number where there is one.
absl::StatusOr<v1::LoadTest> ParseLoadTest(std::string_view text);

// Defaults then validation of an already-built message (the REST API and operator use this too).
//
// Defaults: metadata.namespace "default"; spec.agents 1; spec.target.timeout "10s";
// spec.target.protocol "http1"; spec.target.maxConcurrentStreams 100 with protocol h2 or h2c;
// spec.onAgentLoss "fail"; no requests: one GET of the target URL itself (path ""); each request:
// method "GET", weight 1 when 0, name "METHOD path" ("/" for an empty path); a thinkTime that is
// present: min "0s" when empty, max = min when empty. The load model (users or rate) is never
// defaulted. Idempotent.
void ApplyDefaults(v1::LoadTest* test);
// Every problem of a defaulted test, as "<field path>: <reason>"; empty = valid. Status is not
// validated (Stampede writes it).
std::vector<std::string> ValidateLoadTest(const v1::LoadTest& test);
// The same messages joined into one InvalidArgument (or OK).
absl::Status ValidationStatus(const v1::LoadTest& test);

// Durations of a validated spec in ns (spec.duration; or the sum of stages when empty).
int64_t RunDurationNs(const v1::LoadTestSpec& spec);

// JSON (lowerCamelCase, as a user would write it) for results and the REST API: one line, fields in
// .proto order, map keys sorted, unset fields omitted, 64-bit integers as numbers (not strings as
// in protobuf's JSON mapping). ParseLoadTest reads it back to an equal message.
std::string LoadTestToJson(const v1::LoadTest& test);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_SPEC_H_
