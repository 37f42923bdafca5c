#include "common/data_table.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/load_plan.h"
#include "common/scenario.h"

namespace stampede::common {
namespace {

// A Struct value as a table cell: strings as they are, numbers without a needless ".0".
std::string CellText(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kStringValue:
      return v.string_value();
    case google::protobuf::Value::kNumberValue: {
      const double d = v.number_value();
      if (d == static_cast<double>(static_cast<int64_t>(d))) {
        return absl::StrCat(static_cast<int64_t>(d));
      }
      return absl::StrCat(d);
    }
    case google::protobuf::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    default:
      return "";
  }
}

absl::StatusOr<DataTable> InlineTable(const std::string& name, const v1::DataTable& t,
                                      const std::string& at) {
  DataTable table;
  table.name = name;
  for (const auto& [field, value] : t.inline_(0).fields()) table.fields.push_back(field);
  std::sort(table.fields.begin(), table.fields.end());
  for (int r = 0; r < t.inline__size(); ++r) {
    const auto& row = t.inline_(r).fields();
    if (row.size() != table.fields.size()) {
      return absl::InvalidArgumentError(absl::StrCat(at, ".inline[", r, "]: has ", row.size(),
                                                     " fields, row 0 has ", table.fields.size(),
                                                     " (", absl::StrJoin(table.fields, ", "), ")"));
    }
    for (const std::string& field : table.fields) {
      auto it = row.find(field);
      if (it == row.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".inline[", r, "]: no field \"", field, "\" (row 0 has it)"));
      }
      if (it->second.has_struct_value() || it->second.has_list_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".inline[", r, "].", field, ": a value is a string or a number"));
      }
      table.cells.push_back(CellText(it->second));
    }
  }
  return table;
}

}  // namespace

int DataTable::FieldIndex(absl::string_view field) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i] == field) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<DataTable> ParseCsv(absl::string_view text, const std::string& where) {
  DataTable table;
  std::vector<std::string> record;
  std::string field;
  size_t line = 1, record_line = 1;
  size_t i = 0;
  bool any = false;  // the record has a character (an empty last line is no record)
  auto end_record = [&]() -> absl::Status {
    record.push_back(std::move(field));
    field.clear();
    if (table.fields.empty()) {
      if (record.size() > kMaxDataFields) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": more than ", kMaxDataFields, " fields"));
      }
      for (const std::string& f : record) {
        if (f.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": line 1: a field name is empty"));
        }
        if (std::count(record.begin(), record.end(), f) > 1) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": line 1: the field \"", f, "\" is named twice"));
        }
      }
      table.fields = std::move(record);
    } else {
      if (record.size() != table.fields.size()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": line ", record_line, ": ",
                                                       record.size(), " fields, the header has ",
                                                       table.fields.size()));
      }
      for (std::string& f : record) table.cells.push_back(std::move(f));
      if (table.rows() > kMaxDataRows) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": more than ", kMaxDataRows, " rows"));
      }
    }
    record.clear();
    any = false;
    record_line = line;
    return absl::OkStatus();
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && field.empty()) {
      // A quoted field: up to the lone closing quote; "" is a quote.
      any = true;
      const size_t open_line = line;
      size_t j = i + 1;
      while (true) {
        if (j >= text.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": line ", open_line, ": a quoted field is not closed"));
        }
        if (text[j] == '"') {
          if (j + 1 < text.size() && text[j + 1] == '"') {
            field.push_back('"');
            j += 2;
            continue;
          }
          break;
        }
        if (text[j] == '\n') ++line;
        field.push_back(text[j++]);
      }
      i = j + 1;
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": line ", line, ": text after a quoted field's closing quote"));
      }
      continue;
    }
    if (c == ',') {
      any = true;
      record.push_back(std::move(field));
      field.clear();
      ++i;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && (i + 1 >= text.size() || text[i + 1] != '\n')) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": line ", line, ": a CR not followed by LF"));
      }
      i += c == '\r' ? 2 : 1;
      ++line;
      if (any || !field.empty() || !record.empty()) {
        if (absl::Status s = end_record(); !s.ok()) return s;
      }
      record_line = line;
      continue;
    }
    if (c == '"') {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": line ", line, ": a quote inside an unquoted field"));
    }
    any = true;
    field.push_back(c);
    ++i;
  }
  if (any || !field.empty() || !record.empty()) {
    if (absl::Status s = end_record(); !s.ok()) return s;
  }
  if (table.fields.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": empty (the first line names the fields)"));
  }
  if (table.rows() == 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no rows"));
  return table;
}

absl::StatusOr<std::vector<DataTable>> LoadDataTables(const v1::LoadTestSpec& spec,
                                                      const DataSourceReader& read) {
  std::vector<std::string> names;
  for (const auto& [name, t] : spec.data()) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<DataTable> tables;
  size_t bytes = 0;
  for (const std::string& name : names) {
    const v1::DataTable& t = spec.data().at(name);
    const std::string at = absl::StrCat("spec.data.", name);
    absl::StatusOr<DataTable> table;
    if (t.inline__size() > 0) {
      table = InlineTable(name, t, at);
    } else {
      absl::StatusOr<std::string> text = read(name, t);
      if (!text.ok()) return text.status();
      table = ParseCsv(*text, at);
      if (table.ok()) table->name = name;
    }
    if (!table.ok()) return table.status();
    for (const std::string& c : table->cells) bytes += c.size() + 2;
    if (bytes > kMaxDataBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, ": the test's data is over ", kMaxDataBytes >> 20, " MiB (what agents can receive)"));
    }
    tables.push_back(*std::move(table));
  }
  return tables;
}

std::map<std::string, std::set<std::string>> DeclaredDataFields(const v1::LoadTestSpec& spec) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& [name, t] : spec.data()) {
    std::set<std::string>& fields = out[name];
    if (t.inline__size() == 0) {
      fields.insert("*");
      continue;
    }
    for (const auto& [field, value] : t.inline_(0).fields()) fields.insert(field);
  }
  return out;
}

std::string RowsProblem(const v1::LoadTestSpec& spec, const DataTable& table,
                        const LoadPlan& plan) {
  const v1::DataTable& def = spec.data().at(table.name);
  const DataBinding b = BindingOf(def, table.rows(), plan, 0);
  const std::optional<uint64_t> needed = RowsNeeded(b, plan);
  if (b.wrap || def.order() == "random" || !needed.has_value() || *needed <= table.rows())
    return "";
  return absl::StrCat(
      table.rows(), " rows for ", *needed,
      plan.model() == LoadPlan::Model::kOpen ? " planned arrivals" : " virtual users",
      " (each row goes to one; add rows, or set onExhausted: wrap)");
}

DataSourceReader LocalFileReader(const std::string& spec_file, const std::string& mode) {
  const std::string dir =
      spec_file.find('/') == std::string::npos ? "." : spec_file.substr(0, spec_file.rfind('/'));
  return
      [dir, mode](const std::string& name, const v1::DataTable& t) -> absl::StatusOr<std::string> {
        if (t.file().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "spec.data.", name, ": ", mode,
              " reads inline rows or a file; a ConfigMap or Secret is for the operator"));
        }
        const std::string path = t.file()[0] == '/' ? t.file() : dir + "/" + t.file();
        absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxDataBytes);
        if (!text.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("spec.data.", name, ".file: ", text.status().message()));
        }
        return text;
      };
}

std::optional<std::string> ServerEnv(const std::string& name) {
  if (name.rfind("LOADTEST_", 0) != 0) return std::nullopt;
  return FlagSet::ProcessEnv(name);
}

absl::StatusOr<TestData> PrepareTestData(const v1::LoadTestSpec& spec, const DataSourceReader& read,
                                         const EnvLookup& env) {
  TestData data;
  if (spec.scenarios_size() == 0) return data;
  absl::StatusOr<std::vector<DataTable>> tables = LoadDataTables(spec, read);
  if (!tables.ok()) return tables.status();
  data.tables = *std::move(tables);
  // The scenarios against the tables' real fields (validation only knew an inline table's).
  std::map<std::string, std::set<std::string>> fields;
  for (const DataTable& t : data.tables) fields[t.name].insert(t.fields.begin(), t.fields.end());
  absl::StatusOr<CompiledScenarios> compiled = CompileScenarios(
      std::vector<v1::Scenario>(spec.scenarios().begin(), spec.scenarios().end()), fields);
  std::vector<std::string> problems;
  if (!compiled.ok()) problems.push_back(std::string(compiled.status().message()));
  if (absl::StatusOr<LoadPlan> plan = LoadPlanFromSpec(spec); plan.ok()) {
    for (const DataTable& t : data.tables) {
      if (std::string why = RowsProblem(spec, t, *plan); !why.empty())
        problems.push_back(absl::StrCat("spec.data.", t.name, ": ", why));
    }
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  for (const std::string& name : compiled->env_names) {
    std::optional<std::string> value = env(name);
    if (!value.has_value()) {
      problems.push_back(absl::StrCat(
          "spec.scenarios: {{ env.", name, " }}: ", name,
          " is not set in the controller's environment (stampede serve and the operator "
          "show templates only LOADTEST_* variables)"));
    } else {
      data.env[name] = *std::move(value);
    }
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return data;
}

DataBinding BindingOf(const v1::DataTable& table, uint64_t rows, const LoadPlan& plan,
                      uint64_t seed) {
  DataBinding b;
  b.bind = table.bind() == "iteration" ? DataBinding::Bind::kIteration : DataBinding::Bind::kUser;
  b.order =
      table.order() == "shuffle" ? DataBinding::Order::kShuffle : DataBinding::Order::kSequence;
  // A shared table's rows are for everyone: past the last, users start again from the first.
  b.wrap = table.on_exhausted() == "wrap" || table.split() == "shared";
  b.rows = rows;
  b.seed = seed;
  b.open_model = plan.model() == LoadPlan::Model::kOpen;
  b.max_users = b.open_model ? 0 : plan.MaxUsers();
  return b;
}

std::vector<v1::AgentTable> AgentTables(const v1::LoadTestSpec& spec,
                                        const std::vector<DataTable>& tables, const LoadPlan& plan,
                                        uint64_t seed, uint32_t streams, uint32_t first,
                                        uint32_t count) {
  std::vector<v1::AgentTable> out;
  for (const DataTable& t : tables) {
    const v1::DataTable& def = spec.data().at(t.name);
    v1::AgentTable a;
    a.set_name(t.name);
    for (const std::string& f : t.fields) a.add_fields(f);
    a.set_rows(t.rows());
    const DataBinding b = BindingOf(def, t.rows(), plan, seed);
    // A shared table wraps (BindingOf), and a random draw may take any row.
    const bool whole = b.wrap || def.order() == "random";
    if (whole) {
      for (const std::string& c : t.cells) a.add_cells(c);
    } else {
      a.set_local(true);
      const Permutation p(t.rows(), seed);
      const uint64_t reach = RowsNeeded(b, plan).value_or(t.rows());
      for (uint64_t row : RowsOfStreams(b, p, reach, streams, first, count)) {
        for (size_t f = 0; f < t.fields.size(); ++f) a.add_cells(std::string(t.Cell(row, f)));
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace stampede::common
