#include "controller/crd/crd_generator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/number_format.h"
#include "google/protobuf/descriptor.h"
#include "nlohmann/json.hpp"

namespace stampede::controller {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::DescriptorPool;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::SourceLocation;
// Keys keep the order they were added in, so the output is stable and readable.
using Json = nlohmann::ordered_json;

struct Marker {
  std::string name;
  std::string value;
  bool has_value = false;
};

struct Comment {
  std::string description;
  std::vector<Marker> markers;
};

// Lines join into one paragraph; an empty line starts a new one.
Comment ParseComment(const std::string& text) {
  Comment c;
  bool paragraph_break = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.size() >= 2 && line[0] == '+' &&
        absl::ascii_isalpha(static_cast<unsigned char>(line[1]))) {
      Marker m;
      const size_t eq = line.find('=');
      m.name = std::string(line.substr(1, eq == absl::string_view::npos ? eq : eq - 1));
      if (eq != absl::string_view::npos)
        m.value = std::string(line.substr(eq + 1)), m.has_value = true;
      c.markers.push_back(std::move(m));
      continue;
    }
    if (line.empty()) {
      paragraph_break = !c.description.empty();
      continue;
    }
    if (!c.description.empty()) c.description += paragraph_break ? "\n" : " ";
    paragraph_break = false;
    absl::StrAppend(&c.description, line);
  }
  return c;
}

template <typename D>
Comment CommentOf(const D* d) {
  SourceLocation loc;
  if (!d->GetSourceLocation(&loc)) return {};
  return ParseComment(loc.leading_comments.empty() ? loc.trailing_comments : loc.leading_comments);
}

bool IsFreeForm(const Descriptor* d) {
  const std::string& n = d->full_name();
  return n == "google.protobuf.Struct" || n == "google.protobuf.Value" ||
         n == "google.protobuf.ListValue";
}

bool IsInteger(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

bool IsNumber(const FieldDescriptor* f) {
  return IsInteger(f) || f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE ||
         f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
}

bool IsString(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_STRING ||
         f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM;
}

// Schema keys in the order they are written; anything else goes last.
void Canonicalize(Json* schema) {
  static const char* const kOrder[] = {"description",
                                       "type",
                                       "format",
                                       "enum",
                                       "default",
                                       "minimum",
                                       "maximum",
                                       "minLength",
                                       "maxLength",
                                       "pattern",
                                       "minItems",
                                       "maxItems",
                                       "x-kubernetes-preserve-unknown-fields",
                                       "required",
                                       "oneOf",
                                       "items",
                                       "additionalProperties",
                                       "properties"};
  Json sorted = Json::object();
  for (const char* key : kOrder) {
    if (schema->contains(key)) sorted[key] = std::move((*schema)[key]);
  }
  for (auto& [key, value] : schema->items()) {
    if (!sorted.contains(key)) sorted[key] = std::move(value);
  }
  for (const char* child : {"items", "additionalProperties"}) {
    if (sorted.contains(child)) Canonicalize(&sorted[child]);
  }
  if (sorted.contains("properties")) {
    for (auto& [name, property] : sorted["properties"].items()) Canonicalize(&property);
  }
  *schema = std::move(sorted);
}

class SchemaBuilder {
 public:
  explicit SchemaBuilder(std::vector<std::string>* problems) : problems_(problems) {}

  Json Root(const Descriptor* root) {
    Json schema = Object(root, "", true);
    // A message with a column may also appear in a list (status.summary, and each stage's): the
    // column is the one outside, and there must be one.
    for (const auto& [name, where] : columns_in_lists_) {
      bool shown = false;
      for (const Json& c : columns_) shown |= c["name"] == name;
      if (!shown) Problem(where, "cannot show a field inside a list or map");
    }
    const std::string description = CommentOf(root).description;
    if (!description.empty()) schema["description"] = description;
    Canonicalize(&schema);
    return schema;
  }

  const std::vector<Json>& columns() const { return columns_; }

 private:
  void Problem(absl::string_view where, absl::string_view what) {
    problems_->push_back(absl::StrCat(where, ": ", what));
  }

  // `path` is the field's JSONPath (".spec.load.users"); "[*]" marks a list item, ".*" a map value.
  Json Object(const Descriptor* d, const std::string& path, bool is_root) {
    for (const Descriptor* open : open_) {
      if (open == d) {
        Problem(d->full_name(), "contains itself; a structural schema cannot be recursive");
        return {{"type", "object"}};
      }
    }
    open_.push_back(d);
    Json properties = Json::object();
    Json required = Json::array();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (is_root && f->json_name() == "metadata" &&
          f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        properties["metadata"] = {{"type", "object"}};  // Kubernetes owns ObjectMeta's schema
        continue;
      }
      bool is_required = false;
      properties[f->json_name()] = Field(f, absl::StrCat(path, ".", f->json_name()), &is_required);
      if (is_required) required.push_back(f->json_name());
    }
    Json schema = {{"type", "object"}};
    if (!required.empty()) schema["required"] = std::move(required);
    for (const Marker& m : CommentOf(d).markers) {
      if (m.name != "exactlyOneOf") {
        Problem(d->full_name(), absl::StrCat("+", m.name, " is not a message marker"));
        continue;
      }
      Json choices = Json::array();
      for (absl::string_view name : absl::StrSplit(m.value, ',')) {
        name = absl::StripAsciiWhitespace(name);
        if (!properties.contains(std::string(name))) {
          Problem(d->full_name(), absl::StrCat("+exactlyOneOf names \"", name,
                                               "\", which is not a field (use JSON names)"));
        }
        choices.push_back({{"required", Json::array({std::string(name)})}});
      }
      if (choices.size() < 2) {
        Problem(d->full_name(), "+exactlyOneOf needs at least two fields, comma-separated");
      }
      schema["oneOf"] = std::move(choices);
    }
    schema["properties"] = std::move(properties);
    open_.pop_back();
    return schema;
  }

  Json Field(const FieldDescriptor* f, const std::string& path, bool* required) {
    const Comment comment = CommentOf(f);
    std::string description = comment.description;
    if (description.empty() && !f->is_map() && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        !IsFreeForm(f->message_type())) {
      description = CommentOf(f->message_type()).description;
    }
    if (description.empty()) {
      Problem(f->full_name(), "no description; add a leading comment to the field");
    }
    const FieldDescriptor* value_field = f->is_map() ? f->message_type()->map_value() : f;
    const bool is_list = f->is_repeated() && !f->is_map();
    Json item = Value(value_field, f->is_map() ? path + ".*" : is_list ? path + "[*]" : path);
    Json schema = Json::object();
    for (const Marker& m : comment.markers) {
      const std::string where = absl::StrCat(f->full_name(), ": +", m.name);
      const bool wants_value = m.name != "required";
      if (wants_value != m.has_value) {
        Problem(where, wants_value ? "needs a value (+name=value)" : "takes no value");
        continue;
      }
      if (m.name == "required") {
        *required = true;
      } else if (m.name == "minimum" || m.name == "maximum") {
        if (!IsNumber(value_field)) {
          Problem(where, "applies to numbers only");
        } else if (std::optional<Json> v = Number(value_field, m.value)) {
          item[m.name] = *v;
        } else {
          Problem(where, absl::StrCat("\"", m.value, "\" is not a ",
                                      IsInteger(value_field) ? "whole number" : "number"));
        }
      } else if (m.name == "enum") {
        Json values = Json::array();
        for (absl::string_view v : absl::StrSplit(m.value, ',')) {
          if (std::optional<Json> typed = Typed(value_field, absl::StripAsciiWhitespace(v))) {
            values.push_back(*typed);
          } else {
            Problem(where, absl::StrCat("\"", v, "\" does not fit the field's type"));
          }
        }
        item["enum"] = std::move(values);
      } else if (m.name == "default") {
        if (f->is_repeated()) {
          Problem(where, "is not supported on repeated or map fields");
        } else if (std::optional<Json> typed = Typed(value_field, m.value)) {
          item["default"] = *typed;
        } else {
          Problem(where, absl::StrCat("\"", m.value, "\" does not fit the field's type"));
        }
      } else if (m.name == "pattern") {
        if (!IsString(value_field)) Problem(where, "applies to strings only");
        item["pattern"] = m.value;
      } else if (m.name == "minLength" || m.name == "maxLength" || m.name == "minItems" ||
                 m.name == "maxItems") {
        const bool for_list = absl::EndsWith(m.name, "Items");
        uint64_t n = 0;
        if (!absl::SimpleAtoi(m.value, &n)) {
          Problem(where, absl::StrCat("\"", m.value, "\" is not a whole number >= 0"));
        } else if (for_list && !is_list) {
          Problem(where, "applies to repeated fields only");
        } else if (!for_list && !IsString(value_field)) {
          Problem(where, "applies to strings only");
        } else {
          (for_list ? schema : item)[m.name] = n;
        }
      } else if (m.name == "printcolumn") {
        Column(f, m.value, path, description);
      } else {
        Problem(where, "unknown marker");
      }
    }
    if (f->is_map()) {
      schema["type"] = "object";
      schema["additionalProperties"] = std::move(item);
    } else if (is_list) {
      schema["type"] = "array";
      schema["items"] = std::move(item);
    } else {
      for (auto& [key, value] : item.items()) schema[key] = std::move(value);
    }
    if (!description.empty()) schema["description"] = description;
    return schema;
  }

  // The schema of one value of `f` (one item, for a repeated field).
  Json Value(const FieldDescriptor* f, const std::string& path) {
    switch (f->type()) {
      case FieldDescriptor::TYPE_STRING:
      case FieldDescriptor::TYPE_BYTES:
        return {{"type", "string"}};
      case FieldDescriptor::TYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
        return {{"type", "integer"}, {"format", "int64"}};
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        // int64: a uint32 above 2^31 would not fit int32.
        return {{"type", "integer"},
                {"format", "int64"},
                {"minimum", 0},
                {"maximum", std::numeric_limits<uint32_t>::max()}};
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        return {{"type", "integer"}, {"format", "int64"}, {"minimum", 0}};
      case FieldDescriptor::TYPE_FLOAT:
      case FieldDescriptor::TYPE_DOUBLE:
        return {{"type", "number"}};
      case FieldDescriptor::TYPE_ENUM: {
        Json names = Json::array();
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names.push_back(f->enum_type()->value(i)->name());
        }
        return {{"type", "string"}, {"enum", std::move(names)}};
      }
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        break;
    }
    const Descriptor* d = f->message_type();
    if (d->full_name() == "google.protobuf.Struct") {
      return {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
    }
    if (d->full_name() == "google.protobuf.Value") {
      return {{"x-kubernetes-preserve-unknown-fields", true}};
    }
    if (d->full_name() == "google.protobuf.ListValue") {
      return {{"type", "array"}, {"items", {{"x-kubernetes-preserve-unknown-fields", true}}}};
    }
    return Object(d, path, false);
  }

  // A marker value as a value of `f`'s type, or nullopt if it does not fit.
  static std::optional<Json> Typed(const FieldDescriptor* f, absl::string_view text) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return Json(std::string(text));
      case FieldDescriptor::CPPTYPE_ENUM:
        if (f->enum_type()->FindValueByName(std::string(text)) == nullptr) return std::nullopt;
        return Json(std::string(text));
      case FieldDescriptor::CPPTYPE_BOOL:
        if (text != "true" && text != "false") return std::nullopt;
        return Json(text == "true");
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return std::nullopt;
      default:
        return Number(f, text);
    }
  }

  static std::optional<Json> Number(const FieldDescriptor* f, absl::string_view text) {
    if (IsInteger(f)) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return std::nullopt;
      return Json(v);
    }
    double v = 0;
    if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) return std::nullopt;
    return Json(v);
  }

  void Column(const FieldDescriptor* f, const std::string& name, const std::string& path,
              const std::string& description) {
    const std::string where = absl::StrCat(f->full_name(), ": +printcolumn");
    if (f->is_repeated()) {
      Problem(where, "cannot show a field inside a list or map");
      return;
    }
    if (absl::StrContains(path, "*")) {
      columns_in_lists_.emplace(name, where);
      return;
    }
    const char* type = "string";
    if (IsInteger(f)) {
      type = "integer";
    } else if (IsNumber(f)) {
      type = "number";
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      type = "boolean";
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Problem(where, "cannot show a message; mark one of its fields");
      return;
    }
    for (const Json& c : columns_) {
      if (c["name"] == name) Problem(where, absl::StrCat("column \"", name, "\" is defined twice"));
    }
    Json column = {{"name", name}, {"type", type}, {"jsonPath", path}};
    if (!description.empty()) column["description"] = description;
    columns_.push_back(std::move(column));
  }

  std::vector<std::string>* problems_;
  std::vector<const Descriptor*> open_;  // the messages being expanded, outermost first
  std::vector<Json> columns_;
  std::map<std::string, std::string> columns_in_lists_;  // column name -> where it was marked
};

// YAML output. Block style; lists of scalars in flow style ("[a, b]").

bool IsScalar(const Json& v) { return !v.is_object() && !v.is_array(); }

// Plain (unquoted) only when YAML 1.1 and 1.2 readers both see the same string: starts with a
// letter, is not a boolean or null word, and has nothing YAML would read as structure.
bool CanBePlain(const std::string& s, bool flow) {
  if (s.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) return false;
  static const char* const kWords[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"};
  for (const char* word : kWords) {
    if (absl::EqualsIgnoreCase(s, word)) return false;
  }
  if (s.back() == ' ' || s.back() == ':') return false;
  if (absl::StrContains(s, ": ") || absl::StrContains(s, " #")) return false;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
    if (flow && absl::string_view(",[]{}").find(c) != absl::string_view::npos) return false;
  }
  return true;
}

std::string QuoteString(const std::string& s, bool flow) {
  if (CanBePlain(s, flow)) return s;
  bool has_control = false;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    has_control = has_control || u < 0x20 || u == 0x7f;
  }
  if (has_control) return Json(s).dump();  // a JSON string is a YAML double-quoted scalar
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "''"}}), "'");
}

std::string Inline(const Json& v, bool flow) {
  if (v.is_string()) return QuoteString(v.get<std::string>(), flow);
  if (v.is_number_float()) return common::ShortestDouble(v.get<double>());
  if (v.is_object()) return "{}";  // only called for empty ones
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const Json& item : v) items.push_back(Inline(item, true));
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  return v.dump();  // integers, booleans, null
}

void WriteMap(const Json& map, int indent, bool first_inline, std::string* out);

// After "key:" or "-": the value inline, or on the following lines.
void WriteValue(const Json& v, int indent, std::string* out) {
  const bool block_list =
      v.is_array() && !v.empty() &&
      std::any_of(v.begin(), v.end(), [](const Json& item) { return !IsScalar(item); });
  if (v.is_object() && !v.empty()) {
    out->push_back('\n');
    WriteMap(v, indent + 2, false, out);
  } else if (block_list) {
    out->push_back('\n');
    for (const Json& item : v) {
      absl::StrAppend(out, std::string(indent + 2, ' '), "-");
      if (item.is_object() && !item.empty()) {
        out->push_back(' ');
        WriteMap(item, indent + 4, true, out);
      } else {
        WriteValue(item, indent + 2, out);
      }
    }
  } else {
    absl::StrAppend(out, " ", Inline(v, false), "\n");
  }
}

void WriteMap(const Json& map, int indent, bool first_inline, std::string* out) {
  bool first = true;
  for (const auto& [key, value] : map.items()) {
    if (!(first && first_inline)) out->append(indent, ' ');
    first = false;
    absl::StrAppend(out, QuoteString(key, false), ":");
    WriteValue(value, indent, out);
  }
}

}  // namespace

CrdOptions LoadTestCrdOptions() {
  CrdOptions o;
  o.root_message = "stampede.v1.LoadTest";
  o.group = "stampede.dev";
  o.version = "v1alpha1";
  o.kind = "LoadTest";
  o.plural = "loadtests";
  o.singular = "loadtest";
  o.short_names = {"lt"};
  o.categories = {"stampede"};
  o.header = {
      "Generated from proto/stampede/v1/loadtest.proto by stampede-crdgen (controller/crd). Do not "
      "edit:",
      "change the .proto's comments and markers, then run",
      "  cmake --build <build dir> --target update-crd",
  };
  return o;
}

absl::StatusOr<std::string> GenerateCrd(const google::protobuf::FileDescriptorSet& files,
                                        const CrdOptions& options) {
  DescriptorPool pool;
  for (const auto& file : files.file()) {
    if (pool.BuildFile(file) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(),
                       ": not a valid descriptor (was the set built with "
                       "--include_imports?)"));
    }
  }
  const Descriptor* root = pool.FindMessageTypeByName(options.root_message);
  if (root == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("message ", options.root_message, " is not in the descriptor set"));
  }
  std::vector<std::string> problems;
  SchemaBuilder builder(&problems);
  Json schema = builder.Root(root);
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));

  Json columns = Json::array();
  for (const Json& c : builder.columns()) columns.push_back(c);
  columns.push_back(
      {{"name", "Age"}, {"type", "date"}, {"jsonPath", ".metadata.creationTimestamp"}});
  Json names = {{"kind", options.kind},
                {"listKind", options.kind + "List"},
                {"plural", options.plural},
                {"singular", options.singular}};
  if (!options.short_names.empty()) names["shortNames"] = options.short_names;
  if (!options.categories.empty()) names["categories"] = options.categories;
  Json version = {{"name", options.version},
                  {"served", true},
                  {"storage", true},
                  {"subresources", {{"status", Json::object()}}},
                  {"additionalPrinterColumns", std::move(columns)},
                  {"schema", {{"openAPIV3Schema", std::move(schema)}}}};
  const Json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
                    {"kind", "CustomResourceDefinition"},
                    {"metadata", {{"name", absl::StrCat(options.plural, ".", options.group)}}},
                    {"spec",
                     {{"group", options.group},
                      {"names", std::move(names)},
                      {"scope", "Namespaced"},
                      {"versions", Json::array({std::move(version)})}}}};
  std::string out;
  for (const std::string& line : options.header) absl::StrAppend(&out, "# ", line, "\n");
  WriteMap(crd, 0, false, &out);
  return out;
}

}  // namespace stampede::controller
