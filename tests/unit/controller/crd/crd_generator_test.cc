#include "controller/crd/crd_generator.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/controller/crd/yaml_to_json.h"

namespace stampede::controller {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

google::protobuf::FileDescriptorSet SampleFiles() {
  std::ifstream in(STAMPEDE_SAMPLE_DESCRIPTOR_SET, std::ios::binary);
  google::protobuf::FileDescriptorSet files;
  EXPECT_TRUE(in && files.ParseFromIstream(&in)) << STAMPEDE_SAMPLE_DESCRIPTOR_SET;
  return files;
}

CrdOptions Options(const std::string& root) {
  CrdOptions options;
  options.root_message = "stampede.crdtest." + root;
  options.group = "example.dev";
  options.version = "v1";
  options.kind = "Thing";
  options.plural = "things";
  options.singular = "thing";
  return options;
}

absl::StatusOr<std::string> Generate(const std::string& root) {
  return GenerateCrd(SampleFiles(), Options(root));
}

// The CRD of `root` read back as YAML; fails the test if generation fails.
YAML::Node Crd(const std::string& root) {
  absl::StatusOr<std::string> text = Generate(root);
  EXPECT_TRUE(text.ok()) << text.status();
  return YAML::Load(text.ok() ? *text : "{}");
}

YAML::Node Schema(const YAML::Node& crd) {
  return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
}

// Compares a generated node with the JSON it should read as.
void ExpectJson(const YAML::Node& node, const char* json) {
  EXPECT_EQ(YamlToJson(node), nlohmann::json::parse(json)) << json;
}

TEST(GenerateCrdTest, NamesAndVersion) {
  CrdOptions options = Options("Everything");
  options.short_names = {"th"};
  options.categories = {"all-things"};
  options.header = {"made by a test", "second line"};
  absl::StatusOr<std::string> text = GenerateCrd(SampleFiles(), options);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, StartsWith("# made by a test\n# second line\napiVersion: "));
  const YAML::Node crd = YAML::Load(*text);
  EXPECT_EQ(crd["apiVersion"].as<std::string>(), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd["kind"].as<std::string>(), "CustomResourceDefinition");
  EXPECT_EQ(crd["metadata"]["name"].as<std::string>(), "things.example.dev");
  ExpectJson(crd["spec"]["names"],
             R"({"kind": "Thing", "listKind": "ThingList", "plural": "things", "singular": "thing",
                 "shortNames": ["th"], "categories": ["all-things"]})");
  EXPECT_EQ(crd["spec"]["scope"].as<std::string>(), "Namespaced");
  const YAML::Node version = crd["spec"]["versions"][0];
  EXPECT_EQ(version["name"].as<std::string>(), "v1");
  EXPECT_TRUE(version["served"].as<bool>());
  EXPECT_TRUE(version["storage"].as<bool>());
  EXPECT_TRUE(version["subresources"]["status"].IsMap());
  EXPECT_EQ(version["subresources"]["status"].size(), 0u);
}

TEST(GenerateCrdTest, MapsEveryFieldKind) {
  const YAML::Node p = Schema(Crd("Everything"))["properties"];
  ExpectJson(p["text"], R"({"description": "A string.", "type": "string"})");
  ExpectJson(p["raw"], R"({"description": "Raw bytes.", "type": "string"})");
  ExpectJson(p["flag"], R"({"description": "A flag.", "type": "boolean"})");
  ExpectJson(p["small"],
             R"({"description": "Signed, 32 bits.", "type": "integer", "format": "int32"})");
  ExpectJson(p["big"],
             R"({"description": "Signed, 64 bits.", "type": "integer", "format": "int64"})");
  ExpectJson(p["count"], R"({"description": "Unsigned, 32 bits.", "type": "integer",
                             "format": "int64", "minimum": 0, "maximum": 4294967295})");
  ExpectJson(p["total"], R"({"description": "Unsigned, 64 bits.", "type": "integer",
                             "format": "int64", "minimum": 0})");
  ExpectJson(p["ratio"], R"({"description": "A double.", "type": "number"})");
  ExpectJson(p["fraction"], R"({"description": "A float.", "type": "number"})");
  ExpectJson(p["color"], R"({"description": "An enum.", "type": "string",
                             "enum": ["COLOR_UNSPECIFIED", "RED"]})");
  ExpectJson(p["labels"], R"({"description": "Strings by name.", "type": "object",
                              "additionalProperties": {"type": "string"}})");
  ExpectJson(p["inners"], R"({"description": "Messages by name.", "type": "object",
                              "additionalProperties": {"type": "object", "properties": {
                                "value": {"description": "Kept.", "type": "string"}}}})");
  ExpectJson(p["numbers"], R"({"description": "Whole numbers.", "type": "array",
                               "items": {"type": "integer", "format": "int64"}})");
  ExpectJson(p["object"], R"({"description": "Any object.", "type": "object",
                              "x-kubernetes-preserve-unknown-fields": true})");
  ExpectJson(p["anything"],
             R"({"description": "Any value.", "x-kubernetes-preserve-unknown-fields": true})");
  ExpectJson(p["list"], R"({"description": "Any list.", "type": "array",
                            "items": {"x-kubernetes-preserve-unknown-fields": true}})");
  ExpectJson(p["objects"], R"({"description": "A trailing comment.", "type": "array",
      "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})");
  // No comment on the field: the message's comment describes it.
  EXPECT_EQ(p["inner"]["description"].as<std::string>(),
            "Used where a field has no comment of its own.");
  EXPECT_TRUE(p["snakeCaseName"].IsMap());
  EXPECT_FALSE(p["snake_case_name"].IsDefined());
  EXPECT_EQ(Schema(Crd("Everything"))["description"].as<std::string>(), "One field of every kind.");
}

TEST(GenerateCrdTest, MarkersBecomeValidationsAndLeaveTheDescription) {
  const YAML::Node marked = Schema(Crd("Marked"));
  const YAML::Node p = marked["properties"];
  ExpectJson(marked["required"], R"(["a"])");
  ExpectJson(marked["oneOf"], R"([{"required": ["a"]}, {"required": ["b"]}])");
  ExpectJson(p["a"], R"({"description": "A number.", "type": "integer", "format": "int64",
                         "default": 3, "minimum": 1, "maximum": 10})");
  ExpectJson(p["b"], R"({"description": "A word.", "type": "string", "enum": ["x", "y"],
                         "default": "y", "minLength": 1, "maxLength": 1, "pattern": "^[xy]$"})");
  // List markers on the list; value markers on each item.
  ExpectJson(p["items"], R"({"description": "Bounded items.", "type": "array", "minItems": 1,
      "maxItems": 3, "items": {"type": "integer", "format": "int32", "minimum": -5}})");
  ExpectJson(p["values"], R"({"description": "Bounded values.", "type": "object",
      "additionalProperties": {"type": "string", "maxLength": 8}})");
  EXPECT_EQ(p["ratio"]["description"].as<std::string>(),
            "First paragraph, still the first.\nSecond paragraph.");
  // Defaults are typed by the field.
  ExpectJson(p["on"]["default"], "true");
  ExpectJson(p["color"]["default"], R"("RED")");
  ExpectJson(p["quarter"]["default"], "0.25");
}

TEST(GenerateCrdTest, PrintColumnsFollowTheFieldsThenAge) {
  const YAML::Node columns = Crd("Resource")["spec"]["versions"][0]["additionalPrinterColumns"];
  ASSERT_EQ(columns.size(), 3u);
  ExpectJson(columns[0], R"({"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio",
      "description": "First paragraph, still the first.\nSecond paragraph."})");
  ExpectJson(columns[1], R"({"name": "Quarter", "type": "number", "jsonPath": ".spec.quarter",
      "description": "A quarter."})");
  ExpectJson(columns[2],
             R"({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})");
}

TEST(GenerateCrdTest, RootMetadataIsLeftToKubernetes) {
  const YAML::Node schema = Schema(Crd("Resource"));
  ExpectJson(schema["properties"]["metadata"], R"({"type": "object"})");
  ExpectJson(schema["required"], R"(["spec"])");
  EXPECT_EQ(schema["properties"]["apiVersion"]["description"].as<std::string>(), "API version.");
  EXPECT_EQ(schema["properties"]["spec"]["description"].as<std::string>(), "Every marker.");
}

TEST(GenerateCrdTest, OutputIsStable) {
  absl::StatusOr<std::string> first = Generate("Resource");
  absl::StatusOr<std::string> second = Generate("Resource");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

TEST(GenerateCrdTest, RecursionIsAnError) {
  absl::StatusOr<std::string> crd = Generate("Recursive");
  ASSERT_FALSE(crd.ok());
  EXPECT_THAT(crd.status().message(),
              HasSubstr("stampede.crdtest.Recursive: contains itself; a structural schema cannot "
                        "be recursive"));
}

TEST(GenerateCrdTest, EveryUndocumentedFieldIsListed) {
  absl::StatusOr<std::string> crd = Generate("Undocumented");
  ASSERT_FALSE(crd.ok());
  EXPECT_EQ(crd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(crd.status().message(),
            "stampede.crdtest.Undocumented.first: no description; add a leading comment to the "
            "field\n"
            "stampede.crdtest.Undocumented.second: no description; add a leading comment to the "
            "field");
}

TEST(GenerateCrdTest, EveryBadMarkerIsListed) {
  absl::StatusOr<std::string> crd = Generate("BadMarkers");
  ASSERT_FALSE(crd.ok());
  const std::string message(crd.status().message());
  EXPECT_THAT(message, HasSubstr("BadMarkers.typo: +minimun: unknown marker"));
  EXPECT_THAT(message, HasSubstr("BadMarkers.number: +minimum: \"abc\" is not a whole number"));
  EXPECT_THAT(message, HasSubstr("BadMarkers.not_string: +pattern: applies to strings only"));
  EXPECT_THAT(message,
              HasSubstr("BadMarkers.list: +default: is not supported on repeated or map fields"));
  EXPECT_THAT(
      message,
      HasSubstr("BadMarkers.shown: +printcolumn: cannot show a field inside a list or map"));
  EXPECT_THAT(message, HasSubstr("BadMarkers.flag_with_value: +required: takes no value"));
  EXPECT_THAT(message,
              HasSubstr("BadMarkers.color: +enum: \"GREEN\" does not fit the field's type"));
  EXPECT_THAT(message,
              HasSubstr("BadMarkers.map_items: +maxItems: applies to repeated fields only"));
}

// A message with a column may be reused in a list (the status summary, and each stage's): the
// column is the one outside; reached only inside a list, it is an error.
TEST(GenerateCrdTest, AColumnOfAMessageReusedInAListComesFromOutsideIt) {
  const YAML::Node columns = Crd("ReusedColumn")["spec"]["versions"][0]["additionalPrinterColumns"];
  ASSERT_EQ(columns.size(), 2u) << "Count, then Age";
  EXPECT_EQ(columns[0]["name"].as<std::string>(), "Count");
  EXPECT_EQ(columns[0]["jsonPath"].as<std::string>(), ".total.count");
  absl::StatusOr<std::string> crd = Generate("ColumnOnlyInList");
  ASSERT_FALSE(crd.ok());
  EXPECT_THAT(crd.status().message(),
              HasSubstr("Figures.count: +printcolumn: cannot show a field inside a list or map"));
}

TEST(GenerateCrdTest, ExactlyOneOfMustNameFields) {
  absl::StatusOr<std::string> crd = Generate("BadOneOf");
  ASSERT_FALSE(crd.ok());
  EXPECT_THAT(crd.status().message(),
              AllOf(HasSubstr("stampede.crdtest.BadOneOf: +exactlyOneOf names \"missing\""),
                    Not(HasSubstr("\"a\""))));
}

TEST(GenerateCrdTest, UnknownRootOrMissingImports) {
  absl::StatusOr<std::string> crd = Generate("NoSuchMessage");
  ASSERT_FALSE(crd.ok());
  EXPECT_THAT(crd.status().message(), HasSubstr("stampede.crdtest.NoSuchMessage is not in"));

  google::protobuf::FileDescriptorSet without_imports = SampleFiles();
  without_imports.mutable_file()->erase(without_imports.mutable_file()->begin());  // struct.proto
  crd = GenerateCrd(without_imports, Options("Everything"));
  ASSERT_FALSE(crd.ok());
  EXPECT_THAT(crd.status().message(), HasSubstr("--include_imports"));
}

TEST(GenerateCrdTest, QuotesStringsThatYamlWouldReadAsSomethingElse) {
  // enum [x, y] and default y: "y" is a YAML 1.1 boolean, so it must be quoted in the file.
  absl::StatusOr<std::string> text = Generate("Marked");
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("enum: [x, 'y']"));
  EXPECT_THAT(*text, HasSubstr("default: 'y'"));
  EXPECT_THAT(*text, HasSubstr("pattern: '^[xy]$'"));
}

}  // namespace
}  // namespace stampede::controller
