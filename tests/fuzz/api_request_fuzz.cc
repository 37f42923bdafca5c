// libFuzzer target for the REST API's request handling: the request parser (heads and bodies,
// any framing), then what the API does with a whole request before any run exists: the media
// type check and the LoadTest reader with its bounds (common/spec.h).
//
// Input layout: byte 0 gives, in bits 0..2, how many of the following bytes are read sizes; the
// rest is what the client sent. The bytes are fed in reads of those sizes (cycled) and again in
// one read; both must give the same requests and the same final error. The parser is Reset after
// each whole request, as the server does on a kept-alive connection.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_syntax.h"
#include "common/spec.h"
#include "controller/http_request_parser.h"

namespace {

using stampede::controller::HttpRequestParser;
using State = HttpRequestParser::State;

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

constexpr size_t kMaxHead = 16 << 10, kMaxBody = 64 << 10;

struct Seen {
  std::string method, target, body;
  bool keep_alive;
  bool operator==(const Seen& o) const {
    return method == o.method && target == o.target && body == o.body && keep_alive == o.keep_alive;
  }
};

// Every whole request, then the error status (0: none) at which the stream stopped.
std::pair<std::vector<Seen>, int> Run(std::string_view input, const std::vector<size_t>& sizes,
                                      bool handle) {
  std::vector<Seen> seen;
  HttpRequestParser parser(kMaxHead, kMaxBody);
  size_t pos = 0, next = 0;
  while (pos < input.size()) {
    const size_t n = sizes.empty() ? input.size() : sizes[next++ % sizes.size()];
    std::string_view piece = input.substr(pos, n == 0 ? 1 : n);
    while (!piece.empty()) {
      const size_t used = parser.Feed(piece);
      CHECK(used <= piece.size());
      piece.remove_prefix(used);
      pos += used;
      if (parser.state() == State::kError) {
        CHECK(parser.error_status() >= 400 && parser.error_status() <= 505);
        return {seen, parser.error_status()};
      }
      if (parser.state() != State::kDone) {
        CHECK(piece.empty());  // short of a whole request, it takes every byte
        break;
      }
      const auto& r = parser.request();
      CHECK(r.body.size() <= kMaxBody);
      CHECK(!r.method.empty() && !r.path.empty() && r.path[0] == '/');
      for (const auto& [name, value] : r.headers) CHECK(stampede::common::IsToken(name));
      seen.push_back({r.method, r.target, r.body, r.keep_alive});
      if (handle && r.method == "POST") {
        // What the API does with a body before anything runs: it must answer, not crash.
        (void)stampede::common::IsLoadTestMediaType(r.Header("content-type"));
        (void)stampede::common::ParseLoadTest(r.body);
      }
      parser.Reset();
    }
  }
  return {seen, 0};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t count = std::min<size_t>(data[0] & 7, size - 1);
  std::vector<size_t> sizes(data + 1, data + 1 + count);
  const std::string_view input(reinterpret_cast<const char*>(data) + 1 + count, size - 1 - count);
  const auto pieces = Run(input, sizes, /*handle=*/true);
  const auto whole = Run(input, {}, /*handle=*/false);
  CHECK(pieces.first == whole.first);
  CHECK(pieces.second == whole.second);
  return 0;
}
