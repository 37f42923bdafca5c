// libFuzzer target for the scenario template compiler (common/template.h). Whatever the input:
// compiling never crashes; a compiled template's labelled form holds no "{{"; with no holes it
// renders to exactly its input; a path rendering adds only unreserved bytes and %XX escapes for a
// hostile value; a header rendering of a value with CR/LF fails exactly when there is a hole, and
// then appends nothing; a JSON-string rendering leaves no raw quote or control byte of the value.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/template.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace {

using stampede::common::Template;
using stampede::common::TemplateContext;
using stampede::common::TemplateHole;

constexpr char kHostileBytes[] = "a/b?c#d\"e\\f\r\ng\x01h%i j\x7f\xc3\xa9";
constexpr absl::string_view kHostile(kHostileBytes, sizeof(kHostileBytes) - 1);

std::string Render(const Template& t, TemplateContext context, bool* ok) {
  std::string out;
  std::string why;
  *ok = t.Render(
      context, [](const TemplateHole&) { return kHostile; }, &out, &why);
  CHECK(*ok || !why.empty());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto compiled = Template::Compile(text);
  if (!compiled.ok()) {
    CHECK(!compiled.status().message().empty());
    return 0;
  }
  const Template& t = *compiled;
  CHECK(t.Labelled().find("{{") == std::string::npos);
  bool ok = false;
  const std::string raw = Render(t, TemplateContext::kRaw, &ok);
  CHECK(ok);
  if (!t.has_holes()) CHECK(raw == text);
  // Each hole renders as the escaped hostile value; the literals are unchanged.
  std::string expected_path;
  std::string expected_json;
  for (const Template::Part& p : t.parts()) {
    if (p.hole < 0) {
      expected_path.append(t.literals(), p.offset, p.length);
      expected_json.append(t.literals(), p.offset, p.length);
    } else {
      expected_path += "a%2Fb%3Fc%23d%22e%5Cf%0D%0Ag%01h%25i%20j%7F%C3%A9";
      expected_json += "a/b?c#d\\\"e\\\\f\\r\\ng\\u0001h%i j\x7f\xc3\xa9";
    }
  }
  CHECK(Render(t, TemplateContext::kPath, &ok) == expected_path && ok);
  CHECK(Render(t, TemplateContext::kJsonString, &ok) == expected_json && ok);
  const std::string header = Render(t, TemplateContext::kHeader, &ok);
  CHECK(ok == !t.has_holes());
  CHECK(ok ? header == raw : header.empty());
  return 0;
}
