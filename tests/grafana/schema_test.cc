// deploy/grafana/stampede.json against Grafana's own dashboard schema (the TypeScript types of npm
// @grafana/schema 13.2.3, scripts/grafana-schema-fetch) compiled by Debian's tsc through
// tests/grafana/schema_check.js: it conforms, the chart ships the same file, and the check itself
// fails, naming the field, on four broken copies (a required field missing, an unknown field, a
// field of the wrong type, a value outside an enum).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using json = nlohmann::json;

const std::string kSource = STAMPEDE_SOURCE_DIR;

std::string SchemaDir() {
  const char* dir = std::getenv("STAMPEDE_GRAFANA_SCHEMA");
  return dir != nullptr && *dir != '\0' ? dir : "/var/cache/stampede/grafana-schema/13.2.3/package";
}

CommandOutput Check(const std::string& dashboard) {
  return RunToEnd({"/usr/bin/node", kSource + "/tests/grafana/schema_check.js", SchemaDir(),
                   "/usr/bin/tsc", dashboard},
                  std::chrono::seconds(120));
}

class GrafanaSchema : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(SchemaDir() + "/package.json").good()) {
      GTEST_FAIL() << SchemaDir()
                   << " is missing: run scripts/grafana-schema-fetch, or point "
                      "STAMPEDE_GRAFANA_SCHEMA at its output";
    }
  }
};

TEST_F(GrafanaSchema, TheDashboardConformsAndTheChartShipsTheSameFile) {
  const CommandOutput out = Check(kSource + "/deploy/grafana/stampede.json");
  EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
  EXPECT_NE(out.out.find("conforms to the schema"), std::string::npos) << out.out;
  std::ifstream a(kSource + "/deploy/grafana/stampede.json");
  std::ifstream b(kSource + "/helm/stampede/files/dashboards/stampede.json");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}),
            std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST_F(GrafanaSchema, BrokenCopiesFailNamingTheField) {
  std::ifstream in(kSource + "/deploy/grafana/stampede.json");
  const json dashboard = json::parse(in);
  const std::string dir = MakeTempDir();
  struct Case {
    std::string name;
    std::function<void(json&)> mutate;
    std::string said;  // in tsc's message
  };
  const Case cases[] = {
      {"required field missing", [](json& d) { d.erase("schemaVersion"); }, "schemaVersion"},
      {"unknown field",
       [](json& d) {
         json& p = d["panels"][0];
         p["gridPoss"] = p["gridPos"];
         p.erase("gridPos");
       },
       "gridPoss"},
      {"wrong type", [](json& d) { d["refresh"] = 5; }, "not assignable to type 'string'"},
      {"value outside an enum",
       [](json& d) {
         for (json& p : d["panels"]) {
           json& defaults = p["fieldConfig"]["defaults"];
           if (defaults.contains("thresholds")) {
             defaults["thresholds"]["mode"] = "relatve";
             return;
           }
         }
       },
       "\"relatve\""},
  };
  for (const Case& c : cases) {
    json broken = dashboard;
    c.mutate(broken);
    const std::string file = dir + "/broken.json";
    std::ofstream(file) << broken.dump(2);
    const CommandOutput out = Check(file);
    EXPECT_EQ(out.exit_code, 1) << c.name << "\n" << out.out << out.err;
    EXPECT_NE(out.out.find(c.said), std::string::npos) << c.name << "\n" << out.out;
    EXPECT_NE(out.out.find(file), std::string::npos) << "names the dashboard file\n" << out.out;
  }
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace stampede::testing
