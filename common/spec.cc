#include "common/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/duration.h"
#include "common/number_format.h"
#include "common/threshold.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace stampede::common {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::DynamicCastToGenerated;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::ListValue;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::google::protobuf::Struct;
using ::google::protobuf::Value;

constexpr char kApiVersion[] = "stampede.dev/v1alpha1";
constexpr char kKind[] = "LoadTest";

struct Problem {
  std::string path;
  std::string reason;
  // The document gave a value for `path` that could not be stored, so the field is unset; a
  // validation message about that field or an enclosing one would only repeat the problem.
  bool value_dropped = false;
};

std::string Format(const Problem& p) {
  return p.path.empty() ? p.reason : absl::StrCat(p.path, ": ", p.reason);
}

std::string Child(const std::string& path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

std::string Index(const std::string& path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

// A user's text in a message: quoted, control characters escaped, long text cut.
std::string Quote(absl::string_view s) {
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

// Offset of the first byte that is not part of valid UTF-8, or npos.
size_t InvalidUtf8Offset(absl::string_view s) {
  static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + n >= s.size()) return i;
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < kMinForLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return absl::string_view::npos;
}

// yaml-cpp tags plain scalars "?" and quoted or block scalars "!"; only plain ones are numbers,
// booleans or null.
bool IsPlain(const YAML::Node& node) { return node.Tag() == "?"; }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return IsPlain(node) ? Quote(node.Scalar())
                           : absl::StrCat("the string ", Quote(node.Scalar()));
    default:
      return "null";
  }
}

// YAML 1.2 / JSON decimal number: -12, 3.5, .5, 1e6.
bool LooksLikeNumber(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponent_digits = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      ++i, ++exponent_digits;
    }
    if (exponent_digits == 0) return false;
  }
  return i == s.size();
}

bool ParseNumber(const YAML::Node& node, double* out) {
  const std::string& s = node.Scalar();
  if (!IsPlain(node)) {
    // The spellings protobuf's JSON mapping uses for values JSON has no number for.
    if (s == "Infinity") return *out = std::numeric_limits<double>::infinity(), true;
    if (s == "-Infinity") return *out = -std::numeric_limits<double>::infinity(), true;
    if (s == "NaN") return *out = std::numeric_limits<double>::quiet_NaN(), true;
    return false;
  }
  for (const char* inf : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}) {
    if (s == inf) return *out = std::numeric_limits<double>::infinity(), true;
  }
  for (const char* inf : {"-.inf", "-.Inf", "-.INF"}) {
    if (s == inf) return *out = -std::numeric_limits<double>::infinity(), true;
  }
  for (const char* nan : {".nan", ".NaN", ".NAN"}) {
    if (s == nan) return *out = std::numeric_limits<double>::quiet_NaN(), true;
  }
  return LooksLikeNumber(s) && absl::SimpleAtod(s, out);
}

bool IsWholeNumber(absl::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1,
           diagonal + (absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]) ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const FieldDescriptor* FindField(const Descriptor* d, absl::string_view json_name) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == json_name) return d->field(i);
  }
  return nullptr;
}

std::string UnknownField(const Descriptor* d, absl::string_view key) {
  // Suggest the field meant by snake_case, other capitalisation or a small typo.
  std::string squashed = absl::AsciiStrToLower(key);
  squashed.erase(
      std::remove_if(squashed.begin(), squashed.end(), [](char c) { return c == '_' || c == '-'; }),
      squashed.end());
  const FieldDescriptor* best = nullptr;
  size_t best_distance = key.size() < 4 ? 1 : 3;
  for (int i = 0; i < d->field_count(); ++i) {
    const std::string& name = d->field(i)->json_name();
    const size_t distance = squashed == absl::AsciiStrToLower(name) ? 0 : EditDistance(key, name);
    if (distance < best_distance) best = d->field(i), best_distance = distance;
  }
  if (best == nullptr) return "unknown field";
  return absl::StrCat("unknown field (did you mean \"", best->json_name(), "\"?)");
}

const char* Expected(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return "expected a string";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "expected true or false";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "expected a number";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "expected one of the listed names";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "expected a map";
    default:
      return "expected a whole number";
  }
}

// Walks a YAML tree against a message's descriptor, recording every problem and going on.
class YamlReader {
 public:
  explicit YamlReader(std::vector<Problem>* problems) : problems_(problems) {}

  // Whether the walk stopped because the tree has more than kMaxLoadTestValues values.
  bool too_large() const { return too_large_; }

  // `node` must be a map unless the message is a google.protobuf.Value or ListValue.
  void ReadMessage(const YAML::Node& node, const std::string& path, Message* msg) {
    const DepthGuard depth(&depth_);
    if (!InBounds(path)) return;
    if (Value* value = DynamicCastToGenerated<Value>(msg)) return ReadValue(node, path, value);
    if (ListValue* list = DynamicCastToGenerated<ListValue>(msg)) {
      return ReadList(node, path, list);
    }
    if (Struct* s = DynamicCastToGenerated<Struct>(msg)) return ReadStruct(node, path, s);
    const Descriptor* d = msg->GetDescriptor();
    const Reflection* refl = msg->GetReflection();
    std::map<std::string, int> lines;  // key -> line, to find duplicates
    // Range-for keeps each entry alive; `it->second` would refer into a temporary.
    for (const auto& entry : node) {
      if (too_large_) return;
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        Fail(path, absl::StrCat("keys must be strings, got ", Describe(key)), false);
        continue;
      }
      const std::string field_path = Child(path, key.Scalar());
      if (!Unique(key, field_path, &lines)) continue;
      const FieldDescriptor* f = FindField(d, key.Scalar());
      if (f == nullptr) {
        Fail(field_path, UnknownField(d, key.Scalar()), false);
        continue;
      }
      const YAML::Node& value = entry.second;
      if (value.IsNull()) continue;  // `key:` or `key: ~` leaves the field unset
      const auto* oneof = f->real_containing_oneof();
      if (oneof != nullptr && refl->HasOneof(*msg, oneof)) {
        Fail(field_path,
             absl::StrCat("cannot be set together with ",
                          refl->GetOneofFieldDescriptor(*msg, oneof)->json_name()),
             true);
        continue;
      }
      if (f->is_map()) {
        ReadMap(value, field_path, f, msg);
      } else if (f->is_repeated()) {
        ReadRepeated(value, field_path, f, msg);
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (Accepts(f->message_type(), value, field_path)) {
          ReadMessage(value, field_path, refl->MutableMessage(msg, f));
        }
      } else {
        StoreScalar(value, field_path, f, msg, false);
      }
    }
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(size_t* depth) : depth(depth) { ++*depth; }
    ~DepthGuard() { --*depth; }
    size_t* depth;
  };

  // Counts one value and checks the bounds. Aliases let a small document expand exponentially
  // ("billion laughs"), so the count, not the size in bytes, bounds the work.
  bool InBounds(const std::string& path) {
    if (too_large_) return false;
    if (++values_ > kMaxLoadTestValues) {
      too_large_ = true;
      Fail("",
           absl::StrCat("the document has more than ", kMaxLoadTestValues,
                        " values (are YAML aliases expanding it?)"),
           true);
      return false;
    }
    if (depth_ > kMaxLoadTestDepth) {
      Fail(path, absl::StrCat("nested deeper than ", kMaxLoadTestDepth, " levels"), true);
      return false;
    }
    return true;
  }

  void Fail(const std::string& path, std::string reason, bool value_dropped) {
    problems_->push_back({path, std::move(reason), value_dropped});
  }

  bool Unique(const YAML::Node& key, const std::string& path, std::map<std::string, int>* lines) {
    const auto [it, inserted] = lines->emplace(key.Scalar(), key.Mark().line + 1);
    if (!inserted)
      Fail(path, absl::StrCat("duplicate key (first on line ", it->second, ")"), false);
    return inserted;
  }

  // Whether `node` has the YAML shape of message type `d`; records the problem if not.
  bool Accepts(const Descriptor* d, const YAML::Node& node, const std::string& path) {
    if (d == Value::descriptor()) return true;
    if (d == ListValue::descriptor()) {
      if (node.IsSequence()) return true;
      Fail(path, absl::StrCat("expected a list, got ", Describe(node)), true);
      return false;
    }
    if (node.IsMap()) return true;
    Fail(path, absl::StrCat("expected a map, got ", Describe(node)), true);
    return false;
  }

  void ReadRepeated(const YAML::Node& node, const std::string& path, const FieldDescriptor* f,
                    Message* msg) {
    if (!node.IsSequence()) {
      Fail(path, absl::StrCat("expected a list, got ", Describe(node)), true);
      return;
    }
    const Reflection* refl = msg->GetReflection();
    size_t i = 0;
    for (const YAML::Node& item : node) {
      if (too_large_) return;
      const std::string item_path = Index(path, i++);
      // Elements that fail still take their place, so later indexes match the document.
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        Message* element = refl->AddMessage(msg, f);
        if (!item.IsNull() && Accepts(f->message_type(), item, item_path)) {
          ReadMessage(item, item_path, element);
        }
      } else if (item.IsNull()) {
        Fail(item_path, absl::StrCat(Expected(f), ", got null"), true);
        AddDefault(f, msg);
      } else if (!StoreScalar(item, item_path, f, msg, false)) {
        AddDefault(f, msg);
      }
    }
  }

  void ReadMap(const YAML::Node& node, const std::string& path, const FieldDescriptor* f,
               Message* msg) {
    if (!node.IsMap()) {
      Fail(path, absl::StrCat("expected a map, got ", Describe(node)), true);
      return;
    }
    const Reflection* refl = msg->GetReflection();
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    std::map<std::string, int> lines;
    for (const auto& item : node) {
      if (too_large_) return;
      if (!item.first.IsScalar()) {
        Fail(path, absl::StrCat("keys must be strings, got ", Describe(item.first)), false);
        continue;
      }
      const std::string entry_path = Child(path, item.first.Scalar());
      if (!Unique(item.first, entry_path, &lines)) continue;
      Message* entry = refl->AddMessage(msg, f);
      bool ok = StoreScalar(item.first, entry_path, key_field, entry, true);
      const YAML::Node& value = item.second;
      if (ok && !value.IsNull()) {
        if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          ok = Accepts(value_field->message_type(), value, entry_path);
          if (ok)
            ReadMessage(value, entry_path,
                        entry->GetReflection()->MutableMessage(entry, value_field));
        } else {
          ok = StoreScalar(value, entry_path, value_field, entry, false);
        }
      }
      if (!ok) refl->RemoveLast(msg, f);
    }
  }

  // Converts a scalar to the field's type and sets it (singular) or appends it (repeated).
  // Map keys may be quoted whatever their type, as JSON writes every key quoted.
  bool StoreScalar(const YAML::Node& node, const std::string& path, const FieldDescriptor* f,
                   Message* msg, bool is_key) {
    if (!InBounds(path)) return false;
    if (!node.IsScalar()) {
      Fail(path, absl::StrCat(Expected(f), ", got ", Describe(node)), true);
      return false;
    }
    const Reflection* refl = msg->GetReflection();
    const bool repeated = f->is_repeated();
    const std::string& text = node.Scalar();
    const bool plain = IsPlain(node) || is_key;
    auto type_error = [&] {
      Fail(path, absl::StrCat(Expected(f), ", got ", Describe(node)), true);
      return false;
    };
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        repeated ? refl->AddString(msg, f, text) : refl->SetString(msg, f, text);
        return true;
      case FieldDescriptor::CPPTYPE_BOOL: {
        if (!plain || (text != "true" && text != "false")) return type_error();
        repeated ? refl->AddBool(msg, f, text == "true") : refl->SetBool(msg, f, text == "true");
        return true;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v = 0;
        if (!ParseNumber(node, &v)) return type_error();
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          repeated ? refl->AddDouble(msg, f, v) : refl->SetDouble(msg, f, v);
        } else {
          const float fv = static_cast<float>(v);
          repeated ? refl->AddFloat(msg, f, fv) : refl->SetFloat(msg, f, fv);
        }
        return true;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = f->enum_type()->FindValueByName(text);
        if (value == nullptr) {
          std::vector<std::string> names;
          for (int i = 0; i < f->enum_type()->value_count(); ++i) {
            names.push_back(f->enum_type()->value(i)->name());
          }
          Fail(path,
               absl::StrCat("expected one of ", absl::StrJoin(names, ", "), ", got ", Quote(text)),
               true);
          return false;
        }
        repeated ? refl->AddEnum(msg, f, value) : refl->SetEnum(msg, f, value);
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return type_error();
      default:
        break;
    }
    // Integers: whole numbers within the type's range.
    if (!plain || !IsWholeNumber(text)) return type_error();
    int64_t min = 0;
    uint64_t max = 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        min = std::numeric_limits<int32_t>::min(), max = std::numeric_limits<int32_t>::max();
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        min = std::numeric_limits<int64_t>::min(), max = std::numeric_limits<int64_t>::max();
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        max = std::numeric_limits<uint32_t>::max();
        break;
      default:
        max = std::numeric_limits<uint64_t>::max();
        break;
    }
    int64_t negative = 0;
    uint64_t positive = 0;
    const bool in_range = text[0] == '-' ? absl::SimpleAtoi(text, &negative) && negative >= min
                                         : absl::SimpleAtoi(text, &positive) && positive <= max;
    if (!in_range) {
      Fail(path,
           absl::StrCat("expected a whole number from ", min, " to ", max, ", got ", Quote(text)),
           true);
      return false;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        const auto v =
            static_cast<int32_t>(text[0] == '-' ? negative : static_cast<int64_t>(positive));
        repeated ? refl->AddInt32(msg, f, v) : refl->SetInt32(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        const int64_t v = text[0] == '-' ? negative : static_cast<int64_t>(positive);
        repeated ? refl->AddInt64(msg, f, v) : refl->SetInt64(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        const auto v = static_cast<uint32_t>(positive);
        repeated ? refl->AddUInt32(msg, f, v) : refl->SetUInt32(msg, f, v);
        break;
      }
      default:
        repeated ? refl->AddUInt64(msg, f, positive) : refl->SetUInt64(msg, f, positive);
        break;
    }
    return true;
  }

  static void AddDefault(const FieldDescriptor* f, Message* msg) {
    const Reflection* refl = msg->GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return refl->AddString(msg, f, "");
      case FieldDescriptor::CPPTYPE_BOOL:
        return refl->AddBool(msg, f, false);
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return refl->AddDouble(msg, f, 0);
      case FieldDescriptor::CPPTYPE_FLOAT:
        return refl->AddFloat(msg, f, 0);
      case FieldDescriptor::CPPTYPE_ENUM:
        return refl->AddEnumValue(msg, f, 0);
      case FieldDescriptor::CPPTYPE_INT32:
        return refl->AddInt32(msg, f, 0);
      case FieldDescriptor::CPPTYPE_INT64:
        return refl->AddInt64(msg, f, 0);
      case FieldDescriptor::CPPTYPE_UINT32:
        return refl->AddUInt32(msg, f, 0);
      case FieldDescriptor::CPPTYPE_UINT64:
        return refl->AddUInt64(msg, f, 0);
      case FieldDescriptor::CPPTYPE_MESSAGE:
        refl->AddMessage(msg, f);
        return;
    }
  }

  // google.protobuf.Struct and friends take any YAML: maps, lists, and scalars as JSON would type
  // them (quoted scalars are always strings).
  void ReadStruct(const YAML::Node& node, const std::string& path, Struct* s) {
    std::map<std::string, int> lines;
    for (const auto& item : node) {
      if (too_large_) return;
      if (!item.first.IsScalar()) {
        Fail(path, absl::StrCat("keys must be strings, got ", Describe(item.first)), false);
        continue;
      }
      const std::string entry_path = Child(path, item.first.Scalar());
      if (!Unique(item.first, entry_path, &lines)) continue;
      ReadValue(item.second, entry_path, &(*s->mutable_fields())[item.first.Scalar()]);
    }
  }

  void ReadList(const YAML::Node& node, const std::string& path, ListValue* list) {
    size_t i = 0;
    for (const YAML::Node& item : node) {
      if (too_large_) return;
      ReadValue(item, Index(path, i++), list->add_values());
    }
  }

  void ReadValue(const YAML::Node& node, const std::string& path, Value* value) {
    const DepthGuard depth(&depth_);
    if (!InBounds(path)) return;
    switch (node.Type()) {
      case YAML::NodeType::Map:
        return ReadStruct(node, path, value->mutable_struct_value());
      case YAML::NodeType::Sequence:
        return ReadList(node, path, value->mutable_list_value());
      case YAML::NodeType::Scalar: {
        const std::string& text = node.Scalar();
        double number = 0;
        if (IsPlain(node) && (text == "true" || text == "false")) {
          value->set_bool_value(text == "true");
        } else if (IsPlain(node) && LooksLikeNumber(text) && absl::SimpleAtod(text, &number) &&
                   std::isfinite(number)) {
          value->set_number_value(number);
        } else {
          value->set_string_value(text);
        }
        return;
      }
      default:
        value->set_null_value(::google::protobuf::NULL_VALUE);
        return;
    }
  }

  std::vector<Problem>* problems_;
  size_t values_ = 0;
  size_t depth_ = 0;
  bool too_large_ = false;
};

// RFC 7230 token: methods and header names.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("!#$%&'*+-.^_`|~").find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool HasControl(absl::string_view s) {
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return true;
  }
  return false;
}

bool IsDnsLabel(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

// A simple check of "http[s]://host[:port][/path]"; the agent parses the URL fully.
std::string UrlProblem(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return absl::StrCat(Quote(url), " must start with http:// or https://");
  }
  if (HasControl(url) || absl::StrContains(url, ' ')) {
    return absl::StrCat(Quote(url), " has spaces or control characters");
  }
  if (absl::StrContains(url, '#')) return absl::StrCat(Quote(url), " has a #fragment");
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (absl::StrContains(authority, '@')) {
    return absl::StrCat(Quote(url), ": credentials in URLs are not supported");
  }
  absl::string_view host = authority, port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::StrCat(Quote(url), ": unclosed [ in host");
    host = authority.substr(1, close - 1);
    port = authority.substr(close + 1);
    has_port = !port.empty();
    if (has_port && !absl::ConsumePrefix(&port, ":")) return absl::StrCat(Quote(url), ": bad host");
  } else if (const size_t colon = authority.find(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty()) return absl::StrCat(Quote(url), " has no host");
  uint32_t port_number = 0;
  if (has_port &&
      (!absl::SimpleAtoi(port, &port_number) || port_number == 0 || port_number > 65535)) {
    return absl::StrCat(Quote(url), ": port ", Quote(port), " is not in 1..65535");
  }
  return "";
}

std::string DefaultRequestName(const v1::Request& r) {
  return absl::StrCat(r.method().empty() ? "GET" : r.method(), " ",
                      r.path().empty() ? "/" : r.path());
}

class Validator {
 public:
  std::vector<Problem> Run(const v1::LoadTest& test) {
    if (test.api_version() != kApiVersion) {
      Add("apiVersion",
          test.api_version().empty()
              ? absl::StrCat("required (", kApiVersion, ")")
              : absl::StrCat("must be \"", kApiVersion, "\", got ", Quote(test.api_version())));
    }
    if (test.kind() != kKind) {
      Add("kind", test.kind().empty()
                      ? absl::StrCat("required (", kKind, ")")
                      : absl::StrCat("must be \"", kKind, "\", got ", Quote(test.kind())));
    }
    Metadata(test.metadata());
    const v1::LoadTestSpec& spec = test.spec();
    Target(spec.target());
    const std::vector<std::string> names = Requests(spec);
    Load(spec);
    if (spec.duration().empty()) {
      if (spec.load().stages_size() == 0)
        Add("spec.duration", "required (or give spec.load.stages)");
    } else {
      Duration(spec.duration(), "spec.duration");
    }
    if (spec.agents() < 1 || spec.agents() > kMaxAgents) {
      Add("spec.agents",
          absl::StrCat("must be between 1 and ", kMaxAgents, ", got ", spec.agents()));
    }
    if (spec.threads_per_agent() > kMaxThreadsPerAgent) {
      Add("spec.threadsPerAgent",
          absl::StrCat("must be at most ", kMaxThreadsPerAgent, " (0: one per CPU core), got ",
                       spec.threads_per_agent()));
    }
    if (spec.on_agent_loss() != "fail" && spec.on_agent_loss() != "continue") {
      Add("spec.onAgentLoss",
          absl::StrCat("must be \"fail\" or \"continue\", got ", Quote(spec.on_agent_loss())));
    }
    const std::string& pull_policy = spec.agent_template().image_pull_policy();
    if (!pull_policy.empty() && pull_policy != "Always" && pull_policy != "IfNotPresent" &&
        pull_policy != "Never") {
      Add("spec.agentTemplate.imagePullPolicy",
          absl::StrCat("must be Always, IfNotPresent or Never, got ", Quote(pull_policy)));
    }
    for (int i = 0; i < spec.thresholds_size(); ++i) {
      const std::string path = Index("spec.thresholds", i);
      absl::StatusOr<Threshold> t = ParseThreshold(spec.thresholds(i));
      if (!t.ok()) {
        Add(path, std::string(t.status().message()));
      } else if (!t->request.empty() &&
                 std::find(names.begin(), names.end(), t->request) == names.end()) {
        std::vector<std::string> quoted;
        for (const std::string& name : names) {
          if (std::find(quoted.begin(), quoted.end(), Quote(name)) == quoted.end()) {
            quoted.push_back(Quote(name));
          }
        }
        Add(path, absl::StrCat("no request is named ", Quote(t->request),
                               " (requests: ", absl::StrJoin(quoted, ", "), ")"));
      }
    }
    return std::move(problems_);
  }

 private:
  void Add(std::string path, std::string reason) {
    problems_.push_back({std::move(path), std::move(reason), false});
  }

  // A duration that must be given and be > 0.
  void Duration(const std::string& text, const std::string& path) {
    if (text.empty()) {
      Add(path, "required");
      return;
    }
    absl::StatusOr<absl::Duration> d = ParseDuration(text);
    if (!d.ok()) {
      Add(path, std::string(d.status().message()));
    } else if (*d <= absl::ZeroDuration()) {
      Add(path, "must be > 0");
    }
  }

  void Metadata(const v1::ObjectMeta& meta) {
    const std::string& name = meta.name();
    if (name.empty()) {
      Add("metadata.name", "required");
    } else {
      if (!IsDnsLabel(name)) {
        Add("metadata.name", absl::StrCat(Quote(name),
                                          " must be lowercase letters, digits and '-', "
                                          "starting and ending with a letter or digit"));
      }
      if (name.size() > kMaxNameLength) {
        Add("metadata.name",
            absl::StrCat("must be at most ", kMaxNameLength,
                         " characters (agent Pods are named <name>-agent-<i>), got ", name.size()));
      }
    }
    if (!meta.namespace_().empty() &&
        (!IsDnsLabel(meta.namespace_()) || meta.namespace_().size() > 63)) {
      Add("metadata.namespace", absl::StrCat(Quote(meta.namespace_()),
                                             " is not a Kubernetes namespace name (a DNS label: "
                                             "lowercase letters, digits and '-', at most 63)"));
    }
  }

  void Target(const v1::Target& target) {
    if (target.url().empty()) {
      Add("spec.target.url", "required");
    } else if (std::string problem = UrlProblem(target.url()); !problem.empty()) {
      Add("spec.target.url", problem);
    }
    Duration(target.timeout(), "spec.target.timeout");
  }

  // Returns the request names (defaulted where empty).
  std::vector<std::string> Requests(const v1::LoadTestSpec& spec) {
    std::vector<std::string> names;
    if (spec.requests_size() == 0) Add("spec.requests", "at least one request is needed");
    for (int i = 0; i < spec.requests_size(); ++i) {
      const v1::Request& r = spec.requests(i);
      const std::string path = Index("spec.requests", i);
      if (r.method().empty()) {
        Add(path + ".method", "required");
      } else if (!IsToken(r.method())) {
        Add(path + ".method",
            absl::StrCat(Quote(r.method()), " is not an HTTP method (e.g. GET, POST)"));
      }
      if (!r.path().empty() && r.path()[0] != '/') {
        Add(path + ".path", absl::StrCat(Quote(r.path()), " must start with /"));
      } else if (HasControl(r.path()) || absl::StrContains(r.path(), ' ')) {
        Add(path + ".path",
            absl::StrCat(Quote(r.path()),
                         " has spaces or control characters (encode them, e.g. %20)"));
      }
      std::map<std::string, std::string> sorted_headers(r.headers().begin(), r.headers().end());
      for (const auto& [header, value] : sorted_headers) {
        const std::string header_path = Child(path + ".headers", header);
        if (!IsToken(header)) {
          Add(header_path, absl::StrCat(Quote(header), " is not a header name"));
        } else if (absl::EqualsIgnoreCase(header, "Transfer-Encoding")) {
          Add(header_path, "is set by Stampede; remove it");
        }
        if (HasControl(value))
          Add(header_path, "the value must not contain CR, LF or other control characters");
      }
      if (r.weight() == 0) Add(path + ".weight", "must be > 0");
      for (int j = 0; j < r.expect_status_size(); ++j) {
        const int status = r.expect_status(j);
        if (status < 100 || status > 599) {
          Add(Index(path + ".expectStatus", j),
              absl::StrCat(status, " is not an HTTP status (100..599)"));
        }
      }
      const std::string name = r.name().empty() ? DefaultRequestName(r) : r.name();
      if (HasControl(name) || absl::StrContains(name, '{') || absl::StrContains(name, '}')) {
        Add(path + ".name",
            absl::StrCat(Quote(name),
                         " must not contain braces (thresholds use them) or control characters"));
      }
      const auto previous = std::find(names.begin(), names.end(), name);
      if (previous != names.end()) {
        Add(path + ".name", absl::StrCat(Quote(name), " is also the name of spec.requests[",
                                         previous - names.begin(), "]; names must be unique"));
      }
      names.push_back(name);
    }
    return names;
  }

  void Load(const v1::LoadTestSpec& spec) {
    const v1::Load& load = spec.load();
    const bool users = load.has_users();
    const bool rate = load.has_rate();
    const bool stages = load.stages_size() > 0;
    if (users == rate)
      Add("spec.load", "set exactly one of users (closed model) or rate (open model)");
    if (users) {
      if (load.users() > kMaxUsers) {
        Add("spec.load.users", absl::StrCat("must be <= ", kMaxUsers));
      } else if (load.users() == 0 && !stages) {
        Add("spec.load.users", "must be > 0");
      }
    }
    if (rate) Level(load.rate(), "spec.load.rate", kMaxRate, !stages);
    if (!std::isfinite(load.spawn_rate()) || load.spawn_rate() < 0) {
      Add("spec.load.spawnRate", "must be >= 0");
    } else if (load.spawn_rate() > 0 && !users) {
      Add("spec.load.spawnRate", "only applies to the closed model (users)");
    } else if (load.spawn_rate() > 0 && stages) {
      Add("spec.load.spawnRate", "cannot be combined with stages (they set the ramp)");
    }
    if (load.has_think_time()) {
      if (!users) Add("spec.load.thinkTime", "only applies to the closed model (users)");
      const v1::ThinkTime& think = load.think_time();
      absl::StatusOr<absl::Duration> min = ParseDuration(think.min().empty() ? "0" : think.min());
      absl::StatusOr<absl::Duration> max =
          ParseDuration(think.max().empty() ? think.min() : think.max());
      if (!min.ok()) Add("spec.load.thinkTime.min", std::string(min.status().message()));
      if (!max.ok() && think.max() != think.min()) {  // the same text is reported once, as min
        Add("spec.load.thinkTime.max", std::string(max.status().message()));
      }
      if (min.ok() && max.ok() && *max < *min) {
        Add("spec.load.thinkTime.max",
            absl::StrCat("must be >= min (", think.max(), " < ", think.min(), ")"));
      }
    }
    if (load.connections() > 0 && !rate) {
      Add("spec.load.connections", "only applies to the open model (rate)");
    }
    for (int i = 0; i < load.stages_size(); ++i) {
      const v1::Stage& stage = load.stages(i);
      const std::string path = Index("spec.load.stages", i);
      Duration(stage.duration(), path + ".duration");
      const double bound = users && !rate ? kMaxUsers : kMaxRate;
      Level(stage.target(), path + ".target", bound, false);
    }
  }

  // A user count or rate: finite, >= 0 (> 0 when `positive`), <= `max`.
  void Level(double value, const std::string& path, double max, bool positive) {
    if (!std::isfinite(value)) {
      Add(path, "must be a finite number");
    } else if (value < 0) {
      Add(path, "must be >= 0");
    } else if (positive && value == 0) {
      Add(path, "must be > 0");
    } else if (value > max) {
      Add(path, absl::StrCat("must be <= ", static_cast<uint64_t>(max)));
    }
  }

  std::vector<Problem> problems_;
};

// Whether `path` is `base` or lies inside it ("spec.load.users" is inside "spec.load").
bool Within(const std::string& path, const std::string& base) {
  if (!absl::StartsWith(path, base)) return false;
  return path.size() == base.size() || path[base.size()] == '.' || path[base.size()] == '[';
}

// Validation problems that a parse problem already explains: about a field whose value was
// dropped (or inside it), or about a message containing it ("set exactly one of users or rate"
// after `users: abc`).
bool Explained(const Problem& p, const std::vector<Problem>& parse_problems) {
  for (const Problem& parse : parse_problems) {
    if (Within(p.path, parse.path)) return true;
    if (parse.value_dropped && Within(parse.path, p.path)) return true;
  }
  return false;
}

// JSON output.

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", u);
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}


void AppendDouble(double v, std::string* out) {
  if (std::isnan(v)) {
    *out += "\"NaN\"";
  } else if (std::isinf(v)) {
    *out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    *out += ShortestDouble(v);
  }
}

void AppendMessage(const Message& msg, std::string* out);

void AppendValue(const Value& v, std::string* out) {
  switch (v.kind_case()) {
    case Value::kNumberValue:
      *out += std::isfinite(v.number_value()) ? ShortestDouble(v.number_value()) : "null";
      break;
    case Value::kStringValue:
      AppendJsonString(v.string_value(), out);
      break;
    case Value::kBoolValue:
      *out += v.bool_value() ? "true" : "false";
      break;
    case Value::kStructValue:
      AppendMessage(v.struct_value(), out);
      break;
    case Value::kListValue:
      AppendMessage(v.list_value(), out);
      break;
    default:
      *out += "null";
      break;
  }
}

// One scalar of `f`: element `index` of a repeated field, or the singular value when index < 0.
void AppendScalar(const Message& msg, const FieldDescriptor* f, int index, std::string* out) {
  const Reflection* refl = msg.GetReflection();
  const bool r = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return AppendJsonString(r ? refl->GetRepeatedString(msg, f, index) : refl->GetString(msg, f),
                              out);
    case FieldDescriptor::CPPTYPE_BOOL:
      *out += (r ? refl->GetRepeatedBool(msg, f, index) : refl->GetBool(msg, f)) ? "true" : "false";
      return;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return AppendDouble(r ? refl->GetRepeatedDouble(msg, f, index) : refl->GetDouble(msg, f),
                          out);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return AppendDouble(r ? refl->GetRepeatedFloat(msg, f, index) : refl->GetFloat(msg, f), out);
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrAppend(out,
                             r ? refl->GetRepeatedInt32(msg, f, index) : refl->GetInt32(msg, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrAppend(out,
                             r ? refl->GetRepeatedInt64(msg, f, index) : refl->GetInt64(msg, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrAppend(out,
                             r ? refl->GetRepeatedUInt32(msg, f, index) : refl->GetUInt32(msg, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrAppend(out,
                             r ? refl->GetRepeatedUInt64(msg, f, index) : refl->GetUInt64(msg, f));
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = r ? refl->GetRepeatedEnumValue(msg, f, index) : refl->GetEnumValue(msg, f);
      const auto* value = f->enum_type()->FindValueByNumber(number);
      if (value == nullptr) return absl::StrAppend(out, number);
      return AppendJsonString(value->name(), out);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return AppendMessage(r ? refl->GetRepeatedMessage(msg, f, index) : refl->GetMessage(msg, f),
                           out);
  }
}

void AppendMessage(const Message& msg, std::string* out) {
  if (const Value* value = DynamicCastToGenerated<Value>(&msg)) return AppendValue(*value, out);
  if (const ListValue* list = DynamicCastToGenerated<ListValue>(&msg)) {
    out->push_back('[');
    for (int i = 0; i < list->values_size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendValue(list->values(i), out);
    }
    out->push_back(']');
    return;
  }
  if (const Struct* s = DynamicCastToGenerated<Struct>(&msg)) {
    const std::map<std::string, Value> sorted(s->fields().begin(), s->fields().end());
    out->push_back('{');
    for (const auto& [key, v] : sorted) {
      if (out->back() != '{') out->push_back(',');
      AppendJsonString(key, out);
      out->push_back(':');
      AppendValue(v, out);
    }
    out->push_back('}');
    return;
  }
  const Reflection* refl = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  refl->ListFields(msg, &fields);
  out->push_back('{');
  for (const FieldDescriptor* f : fields) {
    if (out->back() != '{') out->push_back(',');
    AppendJsonString(f->json_name(), out);
    out->push_back(':');
    if (f->is_map()) {
      const FieldDescriptor* key_field = f->message_type()->map_key();
      const FieldDescriptor* value_field = f->message_type()->map_value();
      std::map<std::string, std::string> sorted;
      for (int i = 0; i < refl->FieldSize(msg, f); ++i) {
        const Message& entry = refl->GetRepeatedMessage(msg, f, i);
        std::string key, value;
        AppendScalar(entry, key_field, -1, &key);
        if (key.front() != '"') key = absl::StrCat("\"", key, "\"");
        AppendScalar(entry, value_field, -1, &value);
        sorted[key] = value;
      }
      out->push_back('{');
      for (const auto& [key, value] : sorted) {
        if (out->back() != '{') out->push_back(',');
        absl::StrAppend(out, key, ":", value);
      }
      out->push_back('}');
    } else if (f->is_repeated()) {
      out->push_back('[');
      for (int i = 0; i < refl->FieldSize(msg, f); ++i) {
        if (i > 0) out->push_back(',');
        AppendScalar(msg, f, i, out);
      }
      out->push_back(']');
    } else {
      AppendScalar(msg, f, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

absl::StatusOr<v1::LoadTest> ParseLoadTest(std::string_view text) {
  if (text.size() > kMaxLoadTestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the document is ", text.size(), " bytes; the limit is ", kMaxLoadTestBytes));
  }
  const absl::string_view view(text.data(), text.size());
  if (const size_t bad = InvalidUtf8Offset(view); bad != absl::string_view::npos) {
    const size_t line = 1 + std::count(view.begin(), view.begin() + bad, '\n');
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": not valid UTF-8"));
  }
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  if (documents.empty() || (documents.size() == 1 && documents[0].IsNull())) {
    return absl::InvalidArgumentError(
        "the document is empty; expected a LoadTest (apiVersion, kind, metadata, spec)");
  }
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", documents[1].Mark().line + 1, ": expected one document, got ",
                     documents.size(), " (put each LoadTest in its own file)"));
  }
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", root.Mark().line + 1,
        ": expected a LoadTest map (apiVersion, kind, metadata, spec), got ", Describe(root)));
  }
  v1::LoadTest test;
  std::vector<Problem> problems;
  YamlReader reader(&problems);
  reader.ReadMessage(root, "", &test);
  if (reader.too_large()) return absl::InvalidArgumentError(Format(problems.back()));
  ApplyDefaults(&test);
  const std::vector<Problem> parse_problems = problems;
  for (Problem& p : Validator().Run(test)) {
    if (!Explained(p, parse_problems)) problems.push_back(std::move(p));
  }
  if (problems.empty()) return test;
  std::vector<std::string> lines;
  for (const Problem& p : problems) lines.push_back(Format(p));
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

void ApplyDefaults(v1::LoadTest* test) {
  v1::ObjectMeta* meta = test->mutable_metadata();
  if (meta->namespace_().empty()) meta->set_namespace_("default");
  v1::LoadTestSpec* spec = test->mutable_spec();
  if (!spec->has_agents()) spec->set_agents(1);
  if (spec->target().timeout().empty()) spec->mutable_target()->set_timeout("10s");
  if (spec->on_agent_loss().empty()) spec->set_on_agent_loss("fail");
  if (spec->requests_size() == 0) spec->add_requests();  // path "": the target URL itself
  for (v1::Request& r : *spec->mutable_requests()) {
    if (r.method().empty()) r.set_method("GET");
    if (!r.has_weight()) r.set_weight(1);
    if (r.name().empty()) r.set_name(DefaultRequestName(r));
  }
  if (spec->has_load() && spec->load().has_think_time()) {
    v1::ThinkTime* think = spec->mutable_load()->mutable_think_time();
    if (think->min().empty()) think->set_min("0s");
    if (think->max().empty()) think->set_max(think->min());
  }
}

std::vector<std::string> ValidateLoadTest(const v1::LoadTest& test) {
  std::vector<std::string> out;
  for (const Problem& p : Validator().Run(test)) out.push_back(Format(p));
  return out;
}

absl::Status ValidationStatus(const v1::LoadTest& test) {
  const std::vector<std::string> problems = ValidateLoadTest(test);
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

int64_t RunDurationNs(const v1::LoadTestSpec& spec) {
  if (!spec.duration().empty()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(spec.duration());
    return d.ok() ? absl::ToInt64Nanoseconds(*d) : 0;
  }
  int64_t total = 0;
  for (const v1::Stage& stage : spec.load().stages()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(stage.duration());
    if (d.ok()) total += absl::ToInt64Nanoseconds(*d);
  }
  return total;
}

std::string LoadTestToJson(const v1::LoadTest& test) {
  std::string out;
  AppendMessage(test, &out);
  return out;
}

}  // namespace stampede::common
