// Private to common/spec*.cc: what the YAML reader (spec_reader.cc) and the validator
// (spec_validation.cc) share. Everyone else uses common/spec.h.
#ifndef STAMPEDE_COMMON_SPEC_INTERNAL_H_
#define STAMPEDE_COMMON_SPEC_INTERNAL_H_

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::common::spec_internal {

struct Problem {
  std::string path;
  std::string reason;
  // The document gave a value for `path` that could not be stored, so the field is unset; a
  // validation message about that field or an enclosing one would only repeat the problem.
  bool value_dropped = false;
};

inline std::string Format(const Problem& p) {
  return p.path.empty() ? p.reason : absl::StrCat(p.path, ": ", p.reason);
}

inline std::string Child(const std::string& path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

inline std::string Index(const std::string& path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

// A user's text in a message: quoted, control characters escaped, long text cut.
inline std::string Quote(absl::string_view s) {
  constexpr size_t kMaxShown = 64;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, static_cast<char>(c)));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return absl::StrCat(out, s.size() > kMaxShown ? "...\"" : "\"");
}

// Reads one YAML or JSON document into `msg` (a map, walked against its descriptor: unknown and
// duplicate keys, wrong types and values are added to `problems` with their paths). An error for
// input that is not one bounded map; `expected` lists the top-level keys for that message.
absl::Status ParseDocument(std::string_view text, const std::string& expected,
                           google::protobuf::Message* msg, std::vector<Problem>* problems);

// ValidateLoadTest before formatting: ParseLoadTest needs the paths to drop what Explained covers.
std::vector<Problem> ValidationProblems(const v1::LoadTest& test);

// Validation problems that a parse problem already explains: about a field whose value was
// dropped (or inside it), or about a message containing it ("set exactly one of users or rate"
// after `users: abc`).
bool Explained(const Problem& p, const std::vector<Problem>& parse_problems);

}  // namespace stampede::common::spec_internal

#endif  // STAMPEDE_COMMON_SPEC_INTERNAL_H_
