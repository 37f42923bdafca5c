// Renders a Kubernetes CustomResourceDefinition (apiextensions.k8s.io/v1) from a protobuf message,
// so the LoadTest CRD and proto/stampede/v1/loadtest.proto cannot disagree.
//
// Input is a FileDescriptorSet written by `protoc --include_imports --include_source_info`: the
// source info carries the comments. The schema mirrors how common/spec_reader.cc reads YAML into
// the message: fields under their lowerCamelCase JSON names; string and bytes -> string; bool ->
// boolean; 32/64-bit integers -> integer (unsigned ones with minimum 0); float and double ->
// number; enum -> string limited to the value names; repeated -> array; map -> object with
// additionalProperties; message -> object with properties; google.protobuf.Struct / Value /
// ListValue -> free-form (x-kubernetes-preserve-unknown-fields). The root message's `metadata`
// field becomes a bare `type: object`, since Kubernetes owns ObjectMeta's schema.
//
// Each field's leading comment (else its trailing one; for a message-typed field without one, the
// message's comment) becomes its description. Lines of a comment that start with "+" are markers
// and are left out of the description:
//   +required                      field: listed in its parent's `required`
//   +minimum=N  +maximum=N         field: numeric bounds
//   +enum=a,b,c                    field: allowed values
//   +default=V                     field: value the API server fills in when the field is absent
//   +pattern=RE                    field: regular expression (RE2, as the API server uses)
//   +minLength=N  +maxLength=N     field: string length bounds
//   +minItems=N  +maxItems=N       repeated field: list length bounds
//   +exactlyOneOf=a,b              message: exactly one of these fields (JSON names) must be set
//   +printcolumn=NAME              field: an additionalPrinterColumn; JSONPath, type and
//                                  description come from the field
// On a repeated or map field the value markers (minimum, maximum, enum, pattern, min/maxLength)
// constrain each item. Values are typed by the field: `+default=1` is the integer 1 on an integer
// field and the string "1" on a string field.
//
// Generation fails, listing every problem, on: an unknown or malformed marker, a field reachable
// from the root without a description, a recursive message (structural schemas cannot recurse), a
// printcolumn inside a list or map. Pure functions; thread-safe.
#ifndef STAMPEDE_CONTROLLER_CRD_CRD_GENERATOR_H_
#define STAMPEDE_CONTROLLER_CRD_CRD_GENERATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"

namespace stampede::controller {

struct CrdOptions {
  // Full name of the message that is the whole object, e.g. "stampede.v1.LoadTest".
  std::string root_message;
  std::string group;
  std::string version;
  std::string kind;
  std::string plural;
  std::string singular;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  // Written first, each line prefixed with "# ".
  std::vector<std::string> header;
};

// The options of Stampede's LoadTest CRD (loadtests.stampede.dev).
CrdOptions LoadTestCrdOptions();

// The CRD as a YAML document. InvalidArgument lists every problem found, one per line.
absl::StatusOr<std::string> GenerateCrd(const google::protobuf::FileDescriptorSet& files,
                                        const CrdOptions& options);

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_CRD_CRD_GENERATOR_H_
