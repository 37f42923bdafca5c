// libFuzzer target for HttpResponseParser.
//
// Input layout: byte 0 holds flags (bit 0: the request was HEAD; bit 4: keep the body's first 64
// bytes, the Set-Cookie values and X-Token, as a scenario step does) and, in bits 1..3, how many
// of the following bytes give read sizes; the rest is what the server sent. The bytes are fed in
// reads of those sizes (cycled), as a socket might deliver them, and again in one read; both must
// parse to the same sequence of responses. After each kComplete the parser is Reset for the next
// response on the connection; the input ends with OnEof.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/http_response_parser.h"

namespace {

using stampede::agent::HttpResponseParser;
using Result = HttpResponseParser::Result;

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

struct Response {
  Result result;
  int status;
  bool keep_alive;
  uint64_t body_bytes;
  size_t end;        // offset just past the response in the input
  std::string kept;  // what Keep kept: body, cookies, header
  bool operator==(const Response& o) const {
    return result == o.result && status == o.status && keep_alive == o.keep_alive &&
           body_bytes == o.body_bytes && end == o.end && kept == o.kept;
  }
};

void CheckComplete(const HttpResponseParser& parser) {
  CHECK(parser.status() >= 100 && parser.status() <= 999);
}

// Parses `data` delivered in reads of `sizes` bytes (cycled, not all 0; empty: one read) and
// returns every response that completed, then the final result: the first error, or what OnEof
// said.
constexpr size_t kKeepBody = 64;

// What a complete response kept, checked against what the parser counted.
std::string Kept(const HttpResponseParser& parser, const HttpResponseParser::Keep* keep) {
  if (keep == nullptr) {
    CHECK(parser.kept_body().empty() && parser.set_cookie_count() == 0);
    return "";
  }
  CHECK(parser.kept_body().size() == std::min<uint64_t>(parser.body_bytes(), kKeepBody));
  CHECK(parser.body_truncated() == (parser.body_bytes() > kKeepBody));
  std::string out = parser.kept_body();
  for (size_t i = 0; i < parser.set_cookie_count(); ++i) out += "|" + parser.set_cookie(i);
  if (const std::string* token = parser.kept_header(0)) out += "|x-token:" + *token;
  return out;
}

std::vector<Response> Run(const uint8_t* data, size_t size, bool head,
                          const std::vector<size_t>& sizes, const HttpResponseParser::Keep* keep) {
  std::vector<Response> out;
  HttpResponseParser parser;
  parser.Reset(head, keep);
  size_t pos = 0;       // input offset of the next unparsed byte
  size_t fed = 0;       // bytes given to this response since its Reset
  size_t read_end = 0;  // the current read covers [pos, read_end)
  size_t next_size = 0;
  while (pos < size) {
    if (pos == read_end) {
      const size_t n = sizes.empty() ? size : sizes[next_size++ % sizes.size()];
      read_end = n > size - pos ? size : pos + n;
      if (read_end == pos) {
        // An empty read changes nothing.
        size_t consumed = 0;
        CHECK(parser.Parse(reinterpret_cast<const char*>(data + pos), 0, &consumed) ==
              Result::kNeedMore);
        CHECK(consumed == 0);
        continue;
      }
    }
    const size_t len = read_end - pos;
    size_t consumed = 0;
    const Result r = parser.Parse(reinterpret_cast<const char*>(data + pos), len, &consumed);
    CHECK(consumed <= len);
    if (r == Result::kError) {
      CHECK(parser.error() != nullptr);
      CHECK(parser.body_bytes() <= fed + len);  // *consumed is not promised on kError
      out.push_back({r, parser.status(), parser.keep_alive(), parser.body_bytes(), 0, ""});
      return out;
    }
    fed += consumed;
    pos += consumed;
    CHECK(parser.body_bytes() <= fed);
    if (r == Result::kNeedMore) {
      CHECK(consumed == len);
      continue;
    }
    // A response is at least a status line: a complete one consumed something since Reset.
    CHECK(fed > 0);
    CheckComplete(parser);
    out.push_back(
        {r, parser.status(), parser.keep_alive(), parser.body_bytes(), pos, Kept(parser, keep)});
    parser.Reset(head, keep);
    fed = 0;
  }
  const Result r = parser.OnEof();
  CHECK(r != Result::kNeedMore);
  if (r == Result::kComplete) CheckComplete(parser);
  if (r == Result::kError) CHECK(parser.error() != nullptr);
  CHECK(parser.body_bytes() <= fed);
  out.push_back({r, parser.status(), parser.keep_alive(), parser.body_bytes(), pos,
                 r == Result::kComplete ? Kept(parser, keep) : ""});
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool head = data[0] & 1;
  static const std::vector<std::string> kHeaders = {"x-token"};
  HttpResponseParser::Keep keep_all;
  keep_all.body_bytes = kKeepBody;
  keep_all.set_cookies = true;
  keep_all.headers = &kHeaders;
  const HttpResponseParser::Keep* keep = (data[0] & 16) ? &keep_all : nullptr;
  size_t split_count = (data[0] >> 1) & 7;
  if (split_count > size - 1) split_count = size - 1;
  std::vector<size_t> sizes(data + 1, data + 1 + split_count);
  bool all_empty = true;
  for (size_t n : sizes) all_empty = all_empty && n == 0;
  if (all_empty) sizes.clear();  // reads of 0 bytes only would never finish
  data += 1 + split_count;
  size -= 1 + split_count;

  const std::vector<Response> split = Run(data, size, head, sizes, keep);
  const std::vector<Response> whole = Run(data, size, head, {}, keep);
  CHECK(split == whole);
  return 0;
}
