#include "common/data_table.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "common/load_plan.h"
#include "common/spec.h"

namespace stampede::common {
namespace {

TEST(ParseCsvTest, QuotesCrLfAndALastEmptyLine) {
  absl::StatusOr<DataTable> t = ParseCsv(
      "email,note\r\na@x,\"say \"\"hi\"\", twice\"\r\nb@x,\"two\nlines\"\r\nc@x,\r\n", "f");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->fields, (std::vector<std::string>{"email", "note"}));
  ASSERT_EQ(t->rows(), 3u);
  EXPECT_EQ(t->Cell(0, 1), "say \"hi\", twice");
  EXPECT_EQ(t->Cell(1, 1), "two\nlines");
  EXPECT_EQ(t->Cell(2, 0), "c@x");
  EXPECT_EQ(t->Cell(2, 1), "");
  EXPECT_EQ(t->FieldIndex("note"), 1);
  EXPECT_EQ(t->FieldIndex("nope"), -1);
}

TEST(ParseCsvTest, ProblemsNameTheLine) {
  EXPECT_EQ(ParseCsv("a,b\n1,2\n3\n", "spec.data.t").status().message(),
            "spec.data.t: line 3: 1 fields, the header has 2");
  EXPECT_EQ(ParseCsv("a,b\n\"1,2\n", "t").status().message(),
            "t: line 2: a quoted field is not closed");
  EXPECT_EQ(ParseCsv("a,b\n1\"x\",2\n", "t").status().message(),
            "t: line 2: a quote inside an unquoted field");
  EXPECT_EQ(ParseCsv("a,a\n1,2\n", "t").status().message(),
            "t: line 1: the field \"a\" is named twice");
  EXPECT_EQ(ParseCsv("a,b\n", "t").status().message(), "t: no rows");
  EXPECT_EQ(ParseCsv("", "t").status().message(), "t: empty (the first line names the fields)");
}

v1::LoadTest Parsed(const std::string& yaml) {
  absl::StatusOr<v1::LoadTest> t = ParseLoadTest(yaml);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : v1::LoadTest();
}

constexpr char kSpec[] = R"(apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {name: t}
spec:
  target: {url: "http://127.0.0.1:1"}
  duration: 10s
  load: {users: 10}
  data:
    user: {file: users.csv}
    code: {inline: [{code: 7}, {code: A1}], split: shared, order: random}
  scenarios:
    - name: s
      flow: [{request: {path: "/u/{{ user.email }}?c={{ code.code }}&k={{ env.KEY }}"}}]
)";

std::string Csv(int rows) {
  std::string csv = "email\n";
  for (int i = 0; i < rows; ++i) csv += "u" + std::to_string(i) + "@x\n";
  return csv;
}

TEST(PrepareTestDataTest, ReadsEveryTableAndTheEnvTheTemplatesUse) {
  const v1::LoadTest test = Parsed(kSpec);
  std::string asked;
  absl::StatusOr<TestData> data = PrepareTestData(
      test.spec(),
      [&](const std::string& name, const v1::DataTable& t) -> absl::StatusOr<std::string> {
        asked += name + ":" + t.file();
        return Csv(10);
      },
      [](const std::string& name) -> std::optional<std::string> {
        if (name == "KEY") return "k1";
        return std::nullopt;
      });
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(asked, "user:users.csv") << "inline tables are not read";
  ASSERT_EQ(data->tables.size(), 2u);
  EXPECT_EQ(data->tables[0].name, "code");
  EXPECT_EQ(data->tables[0].Cell(0, 0), "7") << "a number as its text";
  EXPECT_EQ(data->tables[1].rows(), 10u);
  EXPECT_EQ(data->env, (std::map<std::string, std::string>{{"KEY", "k1"}}));
}

TEST(PrepareTestDataTest, TooFewRowsAFieldNotInTheFileAndAnUnsetVariableAreErrors) {
  const v1::LoadTest test = Parsed(kSpec);
  auto rows = [](int n) {
    return [n](const std::string&, const v1::DataTable&) -> absl::StatusOr<std::string> {
      return Csv(n);
    };
  };
  auto env = [](const std::string&) -> std::optional<std::string> { return "v"; };
  EXPECT_EQ(PrepareTestData(test.spec(), rows(9), env).status().message(),
            "spec.data.user: 9 rows for 10 virtual users (each row goes to one; add rows, or set "
            "onExhausted: wrap)");
  absl::Status field = PrepareTestData(
                           test.spec(),
                           [](const std::string&, const v1::DataTable&) {
                             return absl::StatusOr<std::string>("mail\na\n");
                           },
                           env)
                           .status();
  EXPECT_NE(field.message().find("spec.scenarios[0].flow[0].request.path: {{ user.email }}: table "
                                 "\"user\" has no field \"email\""),
            std::string::npos)
      << field;
  absl::Status unset = PrepareTestData(test.spec(), rows(10), [](const std::string&) {
                         return std::optional<std::string>();
                       }).status();
  EXPECT_NE(unset.message().find("{{ env.KEY }}: KEY is not set"), std::string::npos) << unset;
  EXPECT_FALSE(ServerEnv("HOME").has_value()) << "only LOADTEST_* for servers";
}

// Over the agents of a test, an exact split hands each row to exactly one agent, and each agent
// finds its users' rows where LocalPosition says.
TEST(AgentTablesTest, AnExactSplitGivesEachRowToOneAgent) {
  for (const char* order : {"sequence", "shuffle"}) {
    v1::LoadTest test = Parsed(kSpec);
    (*test.mutable_spec()->mutable_data())["user"].set_order(order);
    DataTable users = *ParseCsv(Csv(10), "users");
    users.name = "user";
    DataTable codes = *ParseCsv("code\n7\nA1\n", "codes");
    codes.name = "code";
    const std::vector<DataTable> tables = {codes, users};
    const LoadPlan plan = *LoadPlanFromSpec(test.spec());
    // 3 agents with 2, 1 and 3 threads: 6 streams.
    const uint32_t threads[] = {2, 1, 3};
    std::multiset<std::string> seen;
    uint32_t first = 0;
    for (uint32_t t : threads) {
      const std::vector<v1::AgentTable> got =
          AgentTables(test.spec(), tables, plan, 42, 6, first, t);
      ASSERT_EQ(got.size(), 2u);
      EXPECT_FALSE(got[0].local()) << "a shared table goes whole";
      EXPECT_EQ(got[0].cells_size(), 2);
      EXPECT_TRUE(got[1].local());
      EXPECT_EQ(got[1].rows(), 10u);
      const DataBinding b = BindingOf(test.spec().data().at("user"), 10, plan, 42);
      const Permutation p(10, 42);
      for (uint64_t u = 0; u < 10; ++u) {
        if (!OnStreams(b, 6, first, t, u)) continue;
        const uint64_t pos = LocalPosition(b, 6, first, t, u);
        ASSERT_LT(pos, static_cast<uint64_t>(got[1].cells_size())) << order << " user " << u;
        EXPECT_EQ(got[1].cells(static_cast<int>(pos)), users.Cell(*RowFor(b, p, u), 0))
            << order << " user " << u;
      }
      for (const std::string& c : got[1].cells()) seen.insert(c);
      first += t;
    }
    EXPECT_EQ(seen.size(), 10u) << order;
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 10u) << order;
  }
}

}  // namespace
}  // namespace stampede::common
