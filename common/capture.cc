#include "common/capture.h"

#include <re2/re2.h>
#include <simdjson.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stampede::common {
namespace {

namespace od = simdjson::ondemand;

absl::Status At(size_t column, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("column ", column, ": ", what));
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '$'; }

absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The value's text: a string unescaped, any other JSON as written.
bool ValueText(od::value v, std::string* out) {
  od::json_type type;
  if (v.type().get(type)) return false;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return false;
      out->assign(s.data(), s.size());
      return true;
    }
    case od::json_type::object: {
      od::object o;
      std::string_view raw;
      if (v.get_object().get(o) || o.raw_json().get(raw)) return false;
      out->assign(raw.data(), raw.size());
      return true;
    }
    case od::json_type::array: {
      od::array a;
      std::string_view raw;
      if (v.get_array().get(a) || a.raw_json().get(raw)) return false;
      out->assign(raw.data(), raw.size());
      return true;
    }
    default: {
      const absl::string_view token = absl::StripTrailingAsciiWhitespace(View(v.raw_json_token()));
      out->assign(token.data(), token.size());
      return true;
    }
  }
}

using Segments = std::vector<JsonPath::Segment>;

// The values a walk found: the first `count` of `values`, whose strings are reused from one
// lookup to the next, so that a warmed-up finder does not allocate for them.
struct Found {
  std::vector<std::string> values;
  size_t count = 0;
};

// Walks segments[i..] from `v`, adding each value found (several after a "[*]").
bool Walk(od::value v, const Segments& segments, size_t i, Found* found) {
  if (i == segments.size()) {
    if (found->count == found->values.size()) found->values.emplace_back();
    if (!ValueText(v, &found->values[found->count])) return false;
    ++found->count;
    return true;
  }
  const JsonPath::Segment& s = segments[i];
  switch (s.kind) {
    case JsonPath::Segment::Kind::kField: {
      od::value next;
      if (v.find_field_unordered(std::string_view(s.field.data(), s.field.size())).get(next))
        return false;
      return Walk(next, segments, i + 1, found);
    }
    case JsonPath::Segment::Kind::kIndex: {
      od::value next;
      if (v.at(s.index).get(next)) return false;
      return Walk(next, segments, i + 1, found);
    }
    case JsonPath::Segment::Kind::kEach: {
      od::array array;
      if (v.get_array().get(array)) return false;
      bool any = false;
      for (auto element : array) {
        od::value e;
        if (element.get(e)) return any;
        // An element without the rest of the path is skipped: "[*].id" over mixed objects.
        any = Walk(e, segments, i + 1, found) || any;
      }
      return any;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<JsonPath> JsonPath::Parse(absl::string_view text) {
  JsonPath path;
  path.text_ = std::string(text);
  if (text.empty() || text[0] != '$') return At(1, "a JSON path starts with \"$\" ($.data.id)");
  size_t at = 1;
  bool each = false;
  while (at < text.size()) {
    const size_t column = at + 1;
    Segment s;
    if (text[at] == '.') {
      size_t end = at + 1;
      while (end < text.size() && IsNameChar(text[end])) ++end;
      if (end == at + 1) return At(column, "a \".\" without a name after it");
      s.field = std::string(text.substr(at + 1, end - at - 1));
      at = end;
    } else if (text[at] == '[') {
      const size_t close = text.find(']', at);
      if (close == absl::string_view::npos) return At(column, "a \"[\" without \"]\"");
      const absl::string_view inside = text.substr(at + 1, close - at - 1);
      if (inside == "*") {
        if (each) return At(column, "a second \"[*]\": one at most");
        each = true;
        s.kind = Segment::Kind::kEach;
      } else if (inside.size() >= 2 && (inside.front() == '\'' || inside.front() == '"') &&
                 inside.back() == inside.front()) {
        s.field = std::string(inside.substr(1, inside.size() - 2));
      } else if (uint64_t n = 0; absl::SimpleAtoi(inside, &n) && absl::ascii_isdigit(inside[0])) {
        s.kind = Segment::Kind::kIndex;
        s.index = n;
      } else {
        return At(column,
                  absl::StrCat("\"[", inside, "]\": an index, [*] or a quoted name ('name')"));
      }
      at = close + 1;
    } else {
      return At(column, absl::StrCat("\"", text.substr(at, 1), "\": expected \".\" or \"[\""));
    }
    path.segments_.push_back(std::move(s));
  }
  return path;
}

bool JsonPath::has_each() const {
  for (const Segment& s : segments_) {
    if (s.kind == Segment::Kind::kEach) return true;
  }
  return false;
}

struct JsonFinder::Impl {
  od::parser parser;
  std::string padded;
  Found found;
};

JsonFinder::JsonFinder() : impl_(std::make_unique<Impl>()) {}
JsonFinder::~JsonFinder() = default;

std::optional<std::string> JsonFinder::Find(const JsonPath& path, absl::string_view body, Pick pick,
                                            uint64_t random) {
  std::string value;
  if (!FindInto(path, body, pick, random, &value)) return std::nullopt;
  return value;
}

bool JsonFinder::FindInto(const JsonPath& path, absl::string_view body, Pick pick, uint64_t random,
                          std::string* out) {
  Impl& m = *impl_;
  m.padded.assign(body.data(), body.size());
  m.padded.resize(body.size() + simdjson::SIMDJSON_PADDING, '\0');
  m.found.count = 0;
  od::document doc;
  if (m.parser.iterate(m.padded.data(), body.size(), m.padded.size()).get(doc)) return false;
  if (path.segments().empty()) {
    std::string_view raw;
    if (doc.raw_json().get(raw)) return false;
    const absl::string_view text = absl::StripAsciiWhitespace(View(raw));
    out->assign(text.data(), text.size());
    return true;
  }
  od::value root;
  if (doc.get_value().get(root)) return false;
  if (!Walk(root, path.segments(), 0, &m.found) || m.found.count == 0) return false;
  size_t index = 0;
  switch (pick) {
    case Pick::kFirst:
      index = 0;
      break;
    case Pick::kLast:
      index = m.found.count - 1;
      break;
    case Pick::kRandom:
      index = random % m.found.count;
      break;
  }
  out->assign(m.found.values[index]);
  return true;
}

RegexCapture::RegexCapture(std::unique_ptr<re2::RE2> re) : re_(std::move(re)) {}
RegexCapture::RegexCapture(RegexCapture&&) noexcept = default;
RegexCapture& RegexCapture::operator=(RegexCapture&&) noexcept = default;
RegexCapture::~RegexCapture() = default;

absl::StatusOr<RegexCapture> RegexCapture::Compile(absl::string_view pattern) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) return absl::InvalidArgumentError(absl::StrCat("regex: ", re->error()));
  if (re->NumberOfCapturingGroups() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex: needs exactly one capturing group (...), the value; it has ",
                     re->NumberOfCapturingGroups()));
  }
  return RegexCapture(std::move(re));
}

std::optional<absl::string_view> RegexCapture::Find(absl::string_view body) const {
  re2::StringPiece group;
  if (!re2::RE2::PartialMatch(re2::StringPiece(body.data(), body.size()), *re_, &group))
    return std::nullopt;
  return absl::string_view(group.data(), group.size());
}

std::optional<absl::string_view> Between(absl::string_view body, absl::string_view left,
                                         absl::string_view right) {
  if (left.empty()) return std::nullopt;
  const size_t l = body.find(left);
  if (l == absl::string_view::npos) return std::nullopt;
  const size_t start = l + left.size();
  if (right.empty()) return body.substr(start);
  const size_t r = body.find(right, start);
  if (r == absl::string_view::npos) return std::nullopt;
  return body.substr(start, r - start);
}

}  // namespace stampede::common
