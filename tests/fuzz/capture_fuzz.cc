// libFuzzer target for the capture paths (common/capture.h): the input's first line is a JSON
// path, the rest a response body. Parsing the path and looking it up never crash; a lookup is
// deterministic; whenever one pick finds a value, every pick does, and without "[*]" they agree;
// the text between boundaries taken from the body itself is found again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/capture.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

using stampede::common::Between;
using stampede::common::JsonFinder;
using stampede::common::JsonPath;
using stampede::common::Pick;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static JsonFinder* finder = new JsonFinder();  // reused, as a worker thread reuses its own
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view path_text = input.substr(0, newline);
  const absl::string_view body =
      newline == absl::string_view::npos ? absl::string_view() : input.substr(newline + 1);
  auto path = JsonPath::Parse(path_text);
  if (path.ok()) {
    const auto first = finder->Find(*path, body, Pick::kFirst);
    CHECK(finder->Find(*path, body, Pick::kFirst) == first);
    const auto last = finder->Find(*path, body, Pick::kLast);
    const auto random = finder->Find(*path, body, Pick::kRandom, size);
    CHECK(first.has_value() == last.has_value());
    CHECK(first.has_value() == random.has_value());
    if (!path->has_each()) CHECK(first == last && first == random);
  } else {
    CHECK(!path.status().message().empty());
  }
  if (body.size() >= 4) {
    const absl::string_view left = body.substr(0, 2);
    const auto between = Between(body, left, "");
    CHECK(between.has_value() && between->size() == body.size() - 2);
  }
  return 0;
}
