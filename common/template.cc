#include "common/template.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace stampede::common {
namespace {

constexpr int64_t kMaxRandomString = 1024;

// A table's field may be any CSV header made of letters, digits, '_' and '-'.
bool IsField(absl::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-')) return false;
  }
  return true;
}

absl::Status At(size_t column, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("column ", column, ": ", what));
}

// The hole `expr` (trimmed, non-empty) that starts at `column`.
absl::StatusOr<TemplateHole> ParseHole(absl::string_view expr, size_t column) {
  TemplateHole hole;
  if (const size_t open = expr.find('('); open != absl::string_view::npos) {
    const absl::string_view name = absl::StripAsciiWhitespace(expr.substr(0, open));
    if (expr.back() != ')') return At(column, absl::StrCat("\"", expr, "\" lacks its \")\""));
    absl::string_view inside = expr.substr(open + 1, expr.size() - open - 2);
    std::vector<absl::string_view> args;
    if (!absl::StripAsciiWhitespace(inside).empty()) {
      for (absl::string_view a : absl::StrSplit(inside, ','))
        args.push_back(absl::StripAsciiWhitespace(a));
    }
    std::vector<int64_t> numbers;
    for (absl::string_view a : args) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(a, &n)) {
        return At(column, absl::StrCat(name, "(): \"", a, "\" is not an integer"));
      }
      numbers.push_back(n);
    }
    auto arity = [&](size_t n) -> absl::Status {
      if (numbers.size() == n) return absl::OkStatus();
      return At(column, absl::StrCat(name, "() takes ", n, " argument", n == 1 ? "" : "s", ", not ",
                                     numbers.size()));
    };
    if (name == "randomInt") {
      if (absl::Status s = arity(2); !s.ok()) return s;
      if (numbers[0] > numbers[1]) {
        return At(column, absl::StrCat("randomInt(", numbers[0], ", ", numbers[1],
                                       "): the first bound is above the second"));
      }
      hole.kind = TemplateHole::Kind::kRandomInt;
      hole.a = numbers[0];
      hole.b = numbers[1];
    } else if (name == "randomString") {
      if (absl::Status s = arity(1); !s.ok()) return s;
      if (numbers[0] < 1 || numbers[0] > kMaxRandomString) {
        return At(column, absl::StrCat("randomString(", numbers[0], "): the length is 1..",
                                       kMaxRandomString));
      }
      hole.kind = TemplateHole::Kind::kRandomString;
      hole.a = numbers[0];
    } else if (name == "uuid" || name == "now") {
      if (absl::Status s = arity(0); !s.ok()) return s;
      hole.kind = name == "uuid" ? TemplateHole::Kind::kUuid : TemplateHole::Kind::kNow;
    } else {
      return At(column, absl::StrCat("unknown function \"", name,
                                     "\" (randomInt, randomString, uuid, now)"));
    }
    hole.name = std::string(name);
    return hole;
  }
  const std::vector<absl::string_view> dotted = absl::StrSplit(expr, '.');
  if (dotted.size() > 2) {
    return At(column,
              absl::StrCat("\"", expr, "\": one dot at most (table.field, vu.id, env.NAME)"));
  }
  if (!IsTemplateName(dotted[0])) {
    return At(column,
              absl::StrCat("\"", expr, "\" is not a name (letters, digits and _; no operators)"));
  }
  if (dotted.size() == 1) {
    hole.kind = TemplateHole::Kind::kCapture;
  } else if (dotted[0] == "vu" || dotted[0] == "agent") {
    if (expr == "vu.id") {
      hole.kind = TemplateHole::Kind::kVuId;
    } else if (expr == "vu.iteration") {
      hole.kind = TemplateHole::Kind::kVuIteration;
    } else if (expr == "agent.index") {
      hole.kind = TemplateHole::Kind::kAgentIndex;
    } else {
      return At(column, absl::StrCat("unknown \"", expr, "\" (vu.id, vu.iteration, agent.index)"));
    }
  } else if (dotted[0] == "env") {
    if (!IsTemplateName(dotted[1])) {
      return At(column, absl::StrCat("\"", expr, "\": env.NAME takes a variable's name"));
    }
    hole.kind = TemplateHole::Kind::kEnv;
    hole.name = std::string(dotted[1]);
    return hole;
  } else {
    if (!IsField(dotted[1])) {
      return At(column, absl::StrCat("\"", expr, "\": a field is letters, digits, _ and -"));
    }
    hole.kind = TemplateHole::Kind::kData;
  }
  hole.name = std::string(expr);
  return hole;
}

}  // namespace

bool IsTemplateName(absl::string_view s) {
  if (s.empty() || !(absl::ascii_isalpha(s[0]) || s[0] == '_')) return false;
  for (const char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_')) return false;
  }
  return true;
}

std::string TemplateHole::Label() const {
  switch (kind) {
    case Kind::kData:
    case Kind::kCapture:
      return ":" + name;
    case Kind::kVuId:
      return ":vu.id";
    case Kind::kVuIteration:
      return ":vu.iteration";
    case Kind::kAgentIndex:
      return ":agent.index";
    case Kind::kEnv:
      return ":env." + name;
    case Kind::kRandomInt:
      return ":randomInt";
    case Kind::kRandomString:
      return ":randomString";
    case Kind::kUuid:
      return ":uuid";
    case Kind::kNow:
      return ":now";
  }
  return ":?";
}

absl::StatusOr<Template> Template::Compile(absl::string_view text) {
  Template t;
  size_t at = 0;
  auto literal = [&t](absl::string_view s) {
    if (s.empty()) return;
    // Adjacent literal text shares one span.
    if (!t.parts_.empty() && t.parts_.back().hole < 0 &&
        t.parts_.back().offset + t.parts_.back().length == t.literals_.size()) {
      t.parts_.back().length += static_cast<uint32_t>(s.size());
    } else {
      t.parts_.push_back(
          {static_cast<uint32_t>(t.literals_.size()), static_cast<uint32_t>(s.size()), -1});
    }
    t.literals_.append(s.data(), s.size());
  };
  while (at < text.size()) {
    const size_t open = text.find("{{", at);
    if (open == absl::string_view::npos) {
      literal(text.substr(at));
      break;
    }
    literal(text.substr(at, open - at));
    const size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) return At(open + 1, "\"{{\" without \"}}\"");
    const absl::string_view expr =
        absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2));
    if (expr.empty()) return At(open + 1, "an empty \"{{ }}\"");
    if (expr.find("{{") != absl::string_view::npos) return At(open + 1, "a \"{{\" inside a hole");
    absl::StatusOr<TemplateHole> hole = ParseHole(expr, open + 1);
    if (!hole.ok()) return hole.status();
    t.parts_.push_back({0, 0, static_cast<int32_t>(t.holes_.size())});
    t.holes_.push_back(*std::move(hole));
    at = close + 2;
  }
  return t;
}

std::string Template::Labelled() const {
  std::string out;
  for (const Part& p : parts_) {
    if (p.hole < 0) {
      out.append(literals_, p.offset, p.length);
    } else {
      out += holes_[p.hole].Label();
    }
  }
  return out;
}

namespace {

// Renders `t` with the context `context_of(hole index)` for each hole; no allocation of its own.
template <typename ContextOf>
bool RenderParts(const Template& t, const ContextOf& context_of,
                 const std::function<absl::string_view(const TemplateHole&)>& value,
                 std::string* out, std::string* why) {
  const size_t before = out->size();
  for (const Template::Part& p : t.parts()) {
    if (p.hole < 0) {
      out->append(t.literals(), p.offset, p.length);
      continue;
    }
    const TemplateHole& hole = t.holes()[p.hole];
    const absl::string_view v = value(hole);
    switch (context_of(static_cast<size_t>(p.hole))) {
      case TemplateContext::kPath:
        AppendPercentEncoded(v, out);
        break;
      case TemplateContext::kJsonString:
        AppendJsonEscaped(v, out);
        break;
      case TemplateContext::kHeader:
        if (v.find_first_of(absl::string_view("\r\n\0", 3)) != absl::string_view::npos) {
          out->resize(before);
          if (why != nullptr) {
            *why = absl::StrCat("the value of {{ ", hole.name.empty() ? hole.Label() : hole.name,
                                " }} holds CR, LF or NUL, which a header cannot");
          }
          return false;
        }
        out->append(v.data(), v.size());
        break;
      case TemplateContext::kRaw:
        out->append(v.data(), v.size());
        break;
    }
  }
  return true;
}

}  // namespace

bool Template::Render(TemplateContext context,
                      const std::function<absl::string_view(const TemplateHole&)>& value,
                      std::string* out, std::string* why) const {
  return RenderParts(
      *this, [context](size_t) { return context; }, value, out, why);
}

bool Template::Render(const std::vector<TemplateContext>& contexts,
                      const std::function<absl::string_view(const TemplateHole&)>& value,
                      std::string* out, std::string* why) const {
  return RenderParts(
      *this,
      [&contexts](size_t i) { return i < contexts.size() ? contexts[i] : TemplateContext::kRaw; },
      value, out, why);
}

void AppendPercentEncoded(absl::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out->push_back('%');
      out->push_back(kHex[b >> 4]);
      out->push_back(kHex[b & 15]);
    }
  }
}

void AppendJsonEscaped(absl::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[(c >> 4) & 15]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(c);
        }
    }
  }
}

}  // namespace stampede::common
