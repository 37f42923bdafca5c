// ParseLoadTest: reads YAML (or JSON) into a LoadTest by walking its protobuf descriptor, within
// the document bounds, then hands the message to spec_validation.cc.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/spec.h"
#include "common/spec_internal.h"
#include "common/status_macros.h"
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
using spec_internal::Child;
using spec_internal::Explained;
using spec_internal::Format;
using spec_internal::Index;
using spec_internal::Problem;
using spec_internal::Quote;
using spec_internal::ValidationProblems;

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

// A cheap look at the text before yaml-cpp sees it, for what would make yaml-cpp itself take
// unbounded memory: its scanner queues every token of a flow collection, so a megabyte of "[[[["
// took 250 MB and a megabyte-long flat list 115 MB before any tree was built (eight such bodies
// at once took the REST server from 19 MB to 1.16 GB). Counted outside quoted scalars and
// comments: the nesting of [ and { (at most twice the reader's own bound, which it reports with
// the field's path), and the separators that start values (",", ": ", "- " and line ends), at most
// kMaxScannedSeparators. Brackets inside plain or block scalars count too; a real LoadTest has
// nowhere near that many. Returns the problem, or "".
constexpr size_t kMaxScannedSeparators = 100'000;

std::string LexicalBoundsProblem(absl::string_view text) {
  enum class In { kPlain, kSingle, kDouble, kComment } in = In::kPlain;
  size_t depth = 0, separators = 0, line = 1, column = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
      ++separators;
      if (in == In::kComment) in = In::kPlain;
    }
    switch (in) {
      case In::kComment:
        continue;
      case In::kSingle:
        if (c == '\'') in = In::kPlain;  // '' inside reads as leaving and entering again
        continue;
      case In::kDouble:
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in = In::kPlain;
        }
        continue;
      case In::kPlain:
        break;
    }
    const char next = i + 1 < text.size() ? text[i + 1] : ' ';
    const bool token_start = i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' ||
                             text[i - 1] == '\n' || text[i - 1] == '[' || text[i - 1] == '{' ||
                             text[i - 1] == ',';
    if (c == '#' && token_start) {
      in = In::kComment;
    } else if (c == '\'' && token_start) {
      in = In::kSingle;
    } else if (c == '"' && token_start) {
      in = In::kDouble;
    } else if (c == '[' || c == '{') {
      if (++depth > 2 * kMaxLoadTestDepth) {
        return absl::StrCat("line ", line, ", column ", column, ": nested deeper than ",
                            2 * kMaxLoadTestDepth, " levels");
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    } else if (c == ',' || ((c == ':' || c == '-') && (next == ' ' || next == '\n'))) {
      ++separators;
    }
    if (separators > kMaxScannedSeparators) {
      return absl::StrCat("line ", line, ": the document has more than ", kMaxScannedSeparators,
                          " values");
    }
  }
  return "";
}

// Counts a text's documents from yaml-cpp's events, two at the most, and notes where the second
// begins. YAML::LoadAll is not used: on some inputs ("," alone) HandleNextDocument keeps returning
// true without consuming anything, and LoadAll loops forever, adding a node each time
// (jbeder/yaml-cpp#1319, after 0.7.0) -- a REST body of one comma took a worker and every byte of
// memory.
class DocumentCounter final : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }
  const YAML::Mark& second() const { return second_; }

  void OnDocumentStart(const YAML::Mark&) override {
    ++documents_;
    first_node_ = true;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark) {
    if (first_node_ && documents_ == 2) second_ = mark;
    first_node_ = false;
  }

  int documents_ = 0;
  bool first_node_ = false;
  YAML::Mark second_;
};

}  // namespace

absl::Status spec_internal::ParseDocument(std::string_view text, const std::string& expected,
                                          Message* msg, std::vector<Problem>* problems) {
  if (text.size() > kMaxLoadTestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the document is ", text.size(), " bytes; the limit is ", kMaxLoadTestBytes));
  }
  const absl::string_view view(text.data(), text.size());
  if (const size_t bad = InvalidUtf8Offset(view); bad != absl::string_view::npos) {
    const size_t line = 1 + std::count(view.begin(), view.begin() + bad, '\n');
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": not valid UTF-8"));
  }
  if (std::string problem = LexicalBoundsProblem(view); !problem.empty()) {
    return absl::InvalidArgumentError(problem);
  }
  const std::string kind = msg->GetDescriptor()->name();
  YAML::Node root;
  try {
    std::istringstream stream{std::string(text)};
    YAML::Parser events(stream);
    DocumentCounter counter;
    while (counter.documents() < 2 && events.HandleNextDocument(counter)) {
    }
    if (counter.documents() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("line ", counter.second().line + 1,
                                                     ": expected one document, got more than one "
                                                     "(put each ",
                                                     kind, " in its own file)"));
    }
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  if (root.IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the document is empty; expected a ", kind, " (", expected, ")"));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("line ", root.Mark().line + 1, ": expected a ",
                                                   kind, " map (", expected, "), got ",
                                                   Describe(root)));
  }
  YamlReader reader(problems);
  reader.ReadMessage(root, "", msg);
  if (reader.too_large()) return absl::InvalidArgumentError(Format(problems->back()));
  return absl::OkStatus();
}

absl::StatusOr<v1::LoadTest> ParseLoadTest(std::string_view text) {
  v1::LoadTest test;
  std::vector<Problem> problems;
  RETURN_IF_ERROR(
      spec_internal::ParseDocument(text, "apiVersion, kind, metadata, spec", &test, &problems));
  ApplyDefaults(&test);
  const std::vector<Problem> parse_problems = problems;
  for (Problem& p : ValidationProblems(test)) {
    if (!Explained(p, parse_problems)) problems.push_back(std::move(p));
  }
  if (problems.empty()) return test;
  std::vector<std::string> lines;
  for (const Problem& p : problems) lines.push_back(Format(p));
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

}  // namespace stampede::common
