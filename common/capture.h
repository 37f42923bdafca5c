// What a scenario step takes from a response (capture) and checks in it (expect): a JSON path, a
// regular expression, or the text between two boundaries, over a response body the engine kept
// (only steps that declare one keep their bodies). Each is compiled once per test; finding is
// linear in the body and, once warmed up, allocates nothing but the value it returns.
//
// JSON paths are a small subset of JSONPath: "$" then ".name", "['name']" / "[\"name\"]", "[N]"
// and at most one "[*]" (every element of an array, one of which `pick` chooses). Lookups use
// simdjson's On-Demand API (Debian's libsimdjson-dev): it parses only the part of the document the
// path walks.
#ifndef STAMPEDE_COMMON_CAPTURE_H_
#define STAMPEDE_COMMON_CAPTURE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace stampede::common {

class JsonPath {
 public:
  struct Segment {
    enum class Kind { kField, kIndex, kEach };
    Kind kind = Kind::kField;
    std::string field;
    uint64_t index = 0;
  };

  // InvalidArgument naming the column (from 1) and the cause.
  static absl::StatusOr<JsonPath> Parse(absl::string_view text);

  const std::vector<Segment>& segments() const { return segments_; }
  bool has_each() const;
  const std::string& text() const { return text_; }

 private:
  std::vector<Segment> segments_;
  std::string text_;
};

// Which of the values a "[*]" matched a capture takes.
enum class Pick { kFirst, kLast, kRandom };

// Finds JSON paths in bodies. One per worker thread: it keeps simdjson's parser and a padded copy
// of the body between calls, so a warmed-up one does not allocate for them.
class JsonFinder {
 public:
  JsonFinder();
  ~JsonFinder();
  JsonFinder(const JsonFinder&) = delete;
  JsonFinder& operator=(const JsonFinder&) = delete;

  // The value at `path` in `body`: a string unescaped, any other scalar as its JSON text (42,
  // true, null), an object or array as its JSON text. nullopt when the path is not there or the
  // body is not JSON. `random` (any 64-bit value) chooses for Pick::kRandom.
  std::optional<std::string> Find(const JsonPath& path, absl::string_view body,
                                  Pick pick = Pick::kFirst, uint64_t random = 0);
  // The same into `*out` (its buffer reused: no allocation once it is large enough); false, and
  // `*out` as it was, when there is no value.
  bool FindInto(const JsonPath& path, absl::string_view body, Pick pick, uint64_t random,
                std::string* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An RE2 expression with exactly one capturing group, whose match is the value.
class RegexCapture {
 public:
  // InvalidArgument with RE2's reason, or when the expression has no group or more than one.
  static absl::StatusOr<RegexCapture> Compile(absl::string_view pattern);
  RegexCapture(RegexCapture&&) noexcept;
  RegexCapture& operator=(RegexCapture&&) noexcept;
  ~RegexCapture();

  // The group's text at the first match in `body`, or nullopt.
  std::optional<absl::string_view> Find(absl::string_view body) const;

 private:
  explicit RegexCapture(std::unique_ptr<re2::RE2> re);
  std::unique_ptr<re2::RE2> re_;
};

// The text after the first `left` and before the next `right` (left non-empty; an empty right
// takes the rest of the body), or nullopt.
std::optional<absl::string_view> Between(absl::string_view body, absl::string_view left,
                                         absl::string_view right);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_CAPTURE_H_
