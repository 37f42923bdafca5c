// The Argo CD health check and resource actions of a LoadTest (deploy/argocd/, in Argo CD's
// resource_customizations layout), run by Debian's lua5.1 on the fixtures of health_test.yaml and
// actions/action_test.yaml, as Argo CD's own tests of its built-in checks do: each input
// manifest becomes the Lua global `obj`, and the script's result is compared with the expected
// status and message, action list, or changed manifest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/integration/process.h"
#include "yaml-cpp/yaml.h"

namespace stampede {
namespace {

using json = nlohmann::json;

const std::string kDir = std::string(STAMPEDE_SOURCE_DIR) + "/deploy/argocd/stampede.dev/LoadTest";
constexpr char kLua[] = "/usr/bin/lua5.1";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string LuaString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A YAML document as a Lua table constructor: plain scalars that read as numbers or booleans
// become those, quoted ones stay strings.
std::string LuaValue(const YAML::Node& node) {
  if (node.IsMap()) {
    std::string out = "{";
    for (const auto& entry : node) {
      absl::StrAppend(&out, "[", LuaString(entry.first.as<std::string>()),
                      "]=", LuaValue(entry.second), ",");
    }
    return out + "}";
  }
  if (node.IsSequence()) {
    std::string out = "{";
    for (const auto& item : node) absl::StrAppend(&out, LuaValue(item), ",");
    return out + "}";
  }
  if (node.IsNull()) return "nil";
  const std::string text = node.as<std::string>();
  if (node.Tag() != "!") {
    if (text == "true" || text == "false") return text;
    char* end = nullptr;
    std::strtod(text.c_str(), &end);
    if (!text.empty() && end != nullptr && *end == '\0') return text;
  }
  return LuaString(text);
}

// A Lua value as JSON text: tables with keys 1..n are arrays.
constexpr char kToJson[] = R"(
local function to_json(v)
  local t = type(v)
  if t == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n > 0 and #v == n then
      local parts = {}
      for i = 1, n do parts[i] = to_json(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q", k) .. ":" .. to_json(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return string.format("%q", v)
  elseif t == "nil" then
    return "null"
  end
  return tostring(v)
end
)";

// Runs the Lua chunk `script` (a health.lua or an action.lua) with the global `obj` read from
// the manifest `input`; returns what the chunk returns, as JSON.
json RunLua(const std::string& script, const std::string& input) {
  const std::string file = testing::MakeTempDir() + "/run.lua";
  std::ofstream(file) << "obj = " << LuaValue(YAML::LoadFile(input)) << "\n"
                      << kToJson << "local function run()\n"
                      << script << "\nend\nio.write(to_json(run()))\n";
  const testing::CommandOutput r = testing::RunToEnd({kLua, file}, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out.empty() ? "null" : r.out, nullptr, false);
}

TEST(ArgoCdHealth, EveryFixtureGetsItsStatusAndMessage) {
  ASSERT_EQ(access(kLua, X_OK), 0) << kLua << " is missing: run scripts/setup";
  const YAML::Node tests = YAML::LoadFile(kDir + "/health_test.yaml")["tests"];
  ASSERT_GE(tests.size(), 4u);
  std::set<std::string> statuses;
  for (const YAML::Node& test : tests) {
    const std::string input = kDir + "/" + test["inputPath"].as<std::string>();
    const json hs = RunLua(ReadFile(kDir + "/health.lua"), input);
    EXPECT_EQ(hs.value("status", ""), test["healthStatus"]["status"].as<std::string>()) << input;
    EXPECT_EQ(hs.value("message", ""), test["healthStatus"]["message"].as<std::string>()) << input;
    statuses.insert(hs.value("status", ""));
  }
  EXPECT_EQ(statuses, (std::set<std::string>{"Progressing", "Healthy", "Degraded", "Suspended"}));
}

TEST(ArgoCdHealth, AbortIsOfferedWhileRunningAndSetsSpecAbort) {
  ASSERT_EQ(access(kLua, X_OK), 0) << kLua << " is missing: run scripts/setup";
  const std::string actions = kDir + "/actions";
  const YAML::Node tests = YAML::LoadFile(actions + "/action_test.yaml");
  for (const YAML::Node& test : tests["discoveryTests"]) {
    const std::string input = actions + "/" + test["inputPath"].as<std::string>();
    const json found = RunLua(ReadFile(actions + "/discovery.lua"), input);
    for (const YAML::Node& expected : test["result"]) {
      const std::string name = expected["name"].as<std::string>();
      ASSERT_TRUE(found.contains(name)) << input << ": " << found.dump();
      EXPECT_EQ(found[name].value("disabled", false), expected["disabled"].as<bool>()) << input;
    }
  }
  for (const YAML::Node& test : tests["actionTests"]) {
    const std::string input = actions + "/" + test["inputPath"].as<std::string>();
    const json changed =
        RunLua(ReadFile(actions + "/" + test["action"].as<std::string>() + "/action.lua"), input);
    // The expected manifest read the same way, through Lua.
    const json want =
        RunLua("return obj", actions + "/" + test["expectedOutputPath"].as<std::string>());
    EXPECT_EQ(changed, want) << input;
    EXPECT_EQ(changed["spec"].value("abort", false), true);
  }
}

}  // namespace
}  // namespace stampede
