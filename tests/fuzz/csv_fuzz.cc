// libFuzzer target for the data tables' CSV reader (common/data_table.h): any bytes give a table
// or an error naming a line, never a crash; a table has whole rows of its header's width, and
// writing it back as CSV (every field quoted) reads back to the same table.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/data_table.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace {

std::string Quoted(const std::string& field) {
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<stampede::common::DataTable> t = stampede::common::ParseCsv(input, "t");
  if (!t.ok()) {
    CHECK(t.status().message().rfind("t: ", 0) == 0);
    return 0;
  }
  CHECK(!t->fields.empty());
  CHECK(t->rows() > 0);
  CHECK(t->cells.size() == t->rows() * t->fields.size());
  std::string again;
  auto line = [&again](const std::string* fields, size_t n) {
    for (size_t i = 0; i < n; ++i) again += (i > 0 ? "," : "") + Quoted(fields[i]);
    again += "\r\n";
  };
  line(t->fields.data(), t->fields.size());
  for (uint64_t r = 0; r < t->rows(); ++r) line(&t->cells[r * t->fields.size()], t->fields.size());
  absl::StatusOr<stampede::common::DataTable> back = stampede::common::ParseCsv(again, "t");
  CHECK(back.ok());
  CHECK(back->fields == t->fields);
  CHECK(back->cells == t->cells);
  return 0;
}
