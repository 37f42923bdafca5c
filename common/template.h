// Templates of a scenario's request steps: "/api/products/{{ productId }}?page={{ randomInt(1,5)
// }}". A template compiles once per test into literal spans and holes; rendering appends the spans
// and each hole's value, escaped for where the template sits (a path, a header, a JSON string), so
// no value can break out of its place. A template without holes renders to its literal text.
//
// A hole holds one of (no operators, no nesting):
//   table.field           a column of the virtual user's row of a data table
//   name                  a value captured by an earlier step
//   vu.id, vu.iteration   the virtual user's global index, its iteration number (from 0)
//   agent.index           the agent's index in the test
//   env.NAME              an environment variable of the controller, fixed when the test starts
//   randomInt(a, b)       an integer in [a, b], both inclusive (integer literals)
//   randomString(n)       n characters of [A-Za-z0-9], 1 <= n <= 1024
//   uuid()                a random RFC 4122 version 4 UUID
//   now()                 milliseconds since the Unix epoch
#ifndef STAMPEDE_COMMON_TEMPLATE_H_
#define STAMPEDE_COMMON_TEMPLATE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stampede::common {

struct TemplateHole {
  enum class Kind {
    kData,     // `name` is "table.field"
    kCapture,  // `name` is the capture's name
    kVuId,
    kVuIteration,
    kAgentIndex,
    kEnv,           // `name` is the variable's name
    kRandomInt,     // in [a, b]
    kRandomString,  // `a` characters
    kUuid,
    kNow,
  };
  Kind kind = Kind::kCapture;
  std::string name;
  int64_t a = 0, b = 0;
  // What it reads as in a step's default name: ":productId", ":user.email", ":randomInt".
  std::string Label() const;
};

// Where a rendered value goes, which decides its escaping.
enum class TemplateContext {
  kPath,        // percent-encoded: everything but RFC 3986's unreserved characters
  kHeader,      // as is; a value holding CR, LF or NUL is refused
  kJsonString,  // inside a JSON string: JSON-escaped
  kRaw,         // as is (a body the user wrote whole)
};

class Template {
 public:
  // One literal span or one hole.
  struct Part {
    uint32_t offset = 0, length = 0;  // in literals(), when hole < 0
    int32_t hole = -1;                // index in holes(), or -1
  };

  // Compiles `text`. Errors name the column (from 1) and the cause: an unclosed "{{", an empty
  // hole, an unknown function or builtin, bad arguments.
  static absl::StatusOr<Template> Compile(absl::string_view text);

  bool has_holes() const { return !holes_.empty(); }
  const std::vector<TemplateHole>& holes() const { return holes_; }
  const std::vector<Part>& parts() const { return parts_; }
  const std::string& literals() const { return literals_; }

  // The text with each hole as its label: "GET /api/products/:productId" is a step's default
  // name, so metric labels stay bounded whatever values the holes take.
  std::string Labelled() const;

  // Appends the rendering to `out`: the literal spans as they are, each hole's value from
  // `value(hole)` escaped for `context`. False (and `out` as it was, `why` set) when a value
  // cannot go there (CR, LF or NUL in a header).
  bool Render(TemplateContext context,
              const std::function<absl::string_view(const TemplateHole&)>& value, std::string* out,
              std::string* why) const;
  // The same with a context per hole (contexts[i] for holes()[i]): a JSON body has holes inside
  // strings and holes that are whole values.
  bool Render(const std::vector<TemplateContext>& contexts,
              const std::function<absl::string_view(const TemplateHole&)>& value, std::string* out,
              std::string* why) const;

 private:
  std::string literals_;
  std::vector<Part> parts_;
  std::vector<TemplateHole> holes_;
};

// Whether `s` can be named in a hole: a letter or '_', then letters, digits and '_' (a capture's
// name, a table's, an env variable's).
bool IsTemplateName(absl::string_view s);

// Escapers, also for the values the engine renders itself.
void AppendPercentEncoded(absl::string_view value, std::string* out);
void AppendJsonEscaped(absl::string_view value, std::string* out);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_TEMPLATE_H_
