// The data tables of a LoadTest (spec.data): read from their source (inline rows, a CSV file, a
// ConfigMap or Secret key), checked against the scenarios that use them and the load plan, and
// cut into the rows each agent receives. The controller does all of it before a test starts;
// agents only look rows up (DataRows), so a test's data never needs a volume on an agent.
#ifndef STAMPEDE_COMMON_DATA_TABLE_H_
#define STAMPEDE_COMMON_DATA_TABLE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data_split.h"
#include "stampede/v1/agent.pb.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::common {

class LoadPlan;

// Bounds of a test's data: what one Assignment can carry to an agent.
inline constexpr size_t kMaxDataBytes = 32 << 20;
inline constexpr size_t kMaxDataRows = 10'000'000;
inline constexpr size_t kMaxDataFields = 256;

struct DataTable {
  std::string name;
  std::vector<std::string> fields;
  std::vector<std::string> cells;  // row after row: cells[r * fields.size() + f]

  uint64_t rows() const { return fields.empty() ? 0 : cells.size() / fields.size(); }
  absl::string_view Cell(uint64_t row, size_t field) const {
    return cells[row * fields.size() + field];
  }
  int FieldIndex(absl::string_view field) const;  // -1 when absent
};

// RFC 4180 CSV: the first record names the fields; fields may be quoted ("a ""b"", c"), records
// end with LF or CRLF, a last empty line is ignored. InvalidArgument names `where` and the line.
absl::StatusOr<DataTable> ParseCsv(absl::string_view text, const std::string& where);

// The text of a table whose rows are not inline: a file, a ConfigMap key or a Secret key. The
// mode decides which it can read; a source it cannot gives an error that says so.
using DataSourceReader =
    std::function<absl::StatusOr<std::string>(const std::string& name, const v1::DataTable&)>;

// Every table of spec.data, in name order, read and parsed; errors name "spec.data.NAME".
absl::StatusOr<std::vector<DataTable>> LoadDataTables(const v1::LoadTestSpec& spec,
                                                      const DataSourceReader& read);

// "3 rows for 5 virtual users (...)" when `table` (spec.data[table.name]) has fewer rows than
// the plan reaches and does not wrap; "" when it has enough.
std::string RowsProblem(const v1::LoadTestSpec& spec, const DataTable& table, const LoadPlan& plan);

// The fields of each table of spec.data, as CompileScenarios takes them: an inline table's
// fields, or {"*"} (any field) for one read later.
std::map<std::string, std::set<std::string>> DeclaredDataFields(const v1::LoadTestSpec& spec);

// What a test with scenarios needs besides its spec, gathered by the controller before it
// starts: the tables' rows and the values of the environment variables its templates read.
struct TestData {
  std::vector<DataTable> tables;
  std::map<std::string, std::string> env;
};
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Local modes (stampede run, stampede-agent bench): tables from inline rows or CSV files, a
// relative path taken from `spec_file`'s folder; a ConfigMap or Secret is an error naming `mode`.
// Their templates see the whole environment (common::FlagSet::ProcessEnv).
DataSourceReader LocalFileReader(const std::string& spec_file, const std::string& mode);

// The environment as `stampede serve` and the operator show it to templates: only variables
// named LOADTEST_*, so a test's author cannot read the server's own secrets. `stampede run` (a
// user's own shell) passes its whole environment.
std::optional<std::string> ServerEnv(const std::string& name);

// LoadDataTables, then the tables against what the test needs (every field its scenarios read,
// problems naming the step as validation does; enough rows: RowsProblem) and the env values
// (an unset variable is an error naming it). All problems at once.
absl::StatusOr<TestData> PrepareTestData(const v1::LoadTestSpec& spec, const DataSourceReader& read,
                                         const EnvLookup& env);

// How a table of `rows` rows is bound for the spec's plan (spec.data[name]).
DataBinding BindingOf(const v1::DataTable& table, uint64_t rows, const LoadPlan& plan,
                      uint64_t seed);

// What one agent of streams [first, first + count) of `streams` receives of each table: with an
// exact split only its users' rows, otherwise the whole table.
std::vector<v1::AgentTable> AgentTables(const v1::LoadTestSpec& spec,
                                        const std::vector<DataTable>& tables, const LoadPlan& plan,
                                        uint64_t seed, uint32_t streams, uint32_t first,
                                        uint32_t count);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_DATA_TABLE_H_
