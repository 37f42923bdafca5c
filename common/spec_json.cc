// LoadTestToJson: a LoadTest as one line of JSON, written by walking its protobuf descriptor.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/number_format.h"
#include "common/spec.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace stampede::common {
namespace {

using ::google::protobuf::DynamicCastToGenerated;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::ListValue;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::google::protobuf::Struct;
using ::google::protobuf::Value;

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

std::string LoadTestToJson(const v1::LoadTest& test) {
  std::string out;
  AppendMessage(test, &out);
  return out;
}

}  // namespace stampede::common
