#include "common/template.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace stampede::common {
namespace {

using Kind = TemplateHole::Kind;

Template Compiled(const std::string& text) {
  absl::StatusOr<Template> t = Template::Compile(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.ok() ? *std::move(t) : Template();
}

std::string Error(const std::string& text) {
  absl::StatusOr<Template> t = Template::Compile(text);
  EXPECT_FALSE(t.ok()) << text << " compiled";
  return t.ok() ? "" : std::string(t.status().message());
}

// Renders with each hole's value looked up by its name (or label, for builtins).
std::string Rendered(const Template& t, TemplateContext context,
                     const std::map<std::string, std::string>& values, bool* ok = nullptr,
                     std::string* why = nullptr) {
  std::string out = "prefix:";
  const bool rendered = t.Render(
      context,
      [&](const TemplateHole& h) -> absl::string_view {
        const auto it = values.find(h.name.empty() ? h.Label() : h.name);
        return it == values.end() ? absl::string_view("?") : absl::string_view(it->second);
      },
      &out, why);
  if (ok != nullptr) *ok = rendered;
  return out;
}

TEST(TemplateTest, TextWithoutHolesIsOneLiteralSpan) {
  const Template t = Compiled("/api/products?page=1&q=shoes}}");
  EXPECT_FALSE(t.has_holes());
  ASSERT_EQ(t.parts().size(), 1u);
  EXPECT_EQ(t.literals(), "/api/products?page=1&q=shoes}}");
  EXPECT_EQ(Rendered(t, TemplateContext::kPath, {}), "prefix:/api/products?page=1&q=shoes}}");
  EXPECT_TRUE(Compiled("").parts().empty());
}

TEST(TemplateTest, EachKindOfHoleIsRecognized) {
  const Template t = Compiled(
      "{{user.email}}{{ token }}{{vu.id}}{{ vu.iteration }}{{agent.index}}{{ env.API_KEY }}"
      "{{ randomInt(1, 5) }}{{randomString(8)}}{{ uuid() }}{{ now( ) }}{{ user.first-name }}");
  ASSERT_EQ(t.holes().size(), 11u);
  const Kind kinds[] = {Kind::kData,       Kind::kCapture, Kind::kVuId,      Kind::kVuIteration,
                        Kind::kAgentIndex, Kind::kEnv,     Kind::kRandomInt, Kind::kRandomString,
                        Kind::kUuid,       Kind::kNow,     Kind::kData};
  for (size_t i = 0; i < 11; ++i) EXPECT_EQ(t.holes()[i].kind, kinds[i]) << i;
  EXPECT_EQ(t.holes()[0].name, "user.email");
  EXPECT_EQ(t.holes()[1].name, "token");
  EXPECT_EQ(t.holes()[5].name, "API_KEY");
  EXPECT_EQ(t.holes()[6].a, 1);
  EXPECT_EQ(t.holes()[6].b, 5);
  EXPECT_EQ(t.holes()[7].a, 8);
  EXPECT_EQ(t.holes()[10].name, "user.first-name");
}

TEST(TemplateTest, TheLabelledFormNamesHolesNotValues) {
  EXPECT_EQ(Compiled("/api/products/{{ productId }}/reviews?page={{ randomInt(1,5) }}").Labelled(),
            "/api/products/:productId/reviews?page=:randomInt");
  EXPECT_EQ(Compiled("/u/{{user.id}}/{{vu.id}}").Labelled(), "/u/:user.id/:vu.id");
}

TEST(TemplateTest, LiteralsAndHolesInterleaveInOrder) {
  const Template t = Compiled("/a/{{x}}/b/{{y}}");
  ASSERT_EQ(t.parts().size(), 4u);
  EXPECT_LT(t.parts()[0].hole, 0);
  EXPECT_EQ(t.parts()[1].hole, 0);
  EXPECT_LT(t.parts()[2].hole, 0);
  EXPECT_EQ(t.parts()[3].hole, 1);
  EXPECT_EQ(Rendered(t, TemplateContext::kRaw, {{"x", "1"}, {"y", "2"}}), "prefix:/a/1/b/2");
}

TEST(TemplateTest, APathValueIsPercentEncodedSoItCannotAddSegmentsOrAQuery) {
  const Template t = Compiled("/api/products/{{ id }}");
  EXPECT_EQ(Rendered(t, TemplateContext::kPath, {{"id", "../admin?x=1#f é"}}),
            "prefix:/api/products/..%2Fadmin%3Fx%3D1%23f%20%C3%A9");
  EXPECT_EQ(Rendered(t, TemplateContext::kPath, {{"id", "AZaz09-._~"}}),
            "prefix:/api/products/AZaz09-._~");
}

TEST(TemplateTest, AJsonStringValueIsEscapedSoItCannotEndTheString) {
  const Template t = Compiled("{\"email\": \"{{ user.email }}\"}");
  EXPECT_EQ(Rendered(t, TemplateContext::kJsonString,
                     {{"user.email",
                       "a\"b\\c\n\t\x01\x1f"
                       "é"}}),
            "prefix:{\"email\": \"a\\\"b\\\\c\\n\\t\\u0001\\u001fé\"}");
}

TEST(TemplateTest, AHeaderValueWithCrLfOrNulIsRefusedAndNothingIsAppended) {
  const Template t = Compiled("Bearer {{ token }}");
  bool ok = true;
  std::string why;
  EXPECT_EQ(Rendered(t, TemplateContext::kHeader, {{"token", "abc\r\nX-Admin: 1"}}, &ok, &why),
            "prefix:");
  EXPECT_FALSE(ok);
  EXPECT_NE(why.find("{{ token }}"), std::string::npos) << why;
  EXPECT_NE(why.find("CR, LF or NUL"), std::string::npos) << why;
  EXPECT_EQ(Rendered(t, TemplateContext::kHeader, {{"token", std::string("a\0b", 3)}}, &ok),
            "prefix:");
  EXPECT_FALSE(ok);
  EXPECT_EQ(Rendered(t, TemplateContext::kHeader, {{"token", "abc.def"}}, &ok),
            "prefix:Bearer abc.def");
  EXPECT_TRUE(ok);
}

TEST(TemplateTest, EveryMistakeNamesItsColumnAndCause) {
  EXPECT_EQ(Error("/a/{{ id"), "column 4: \"{{\" without \"}}\"");
  EXPECT_EQ(Error("x{{ }}"), "column 2: an empty \"{{ }}\"");
  EXPECT_EQ(Error("{{ a {{ b }}"), "column 1: a \"{{\" inside a hole");
  EXPECT_EQ(Error("{{ a + b }}"),
            "column 1: \"a + b\" is not a name (letters, digits and _; no operators)");
  EXPECT_EQ(Error("{{ a.b.c }}"),
            "column 1: \"a.b.c\": one dot at most (table.field, vu.id, env.NAME)");
  EXPECT_EQ(Error("{{ vu.name }}"),
            "column 1: unknown \"vu.name\" (vu.id, vu.iteration, agent.index)");
  EXPECT_EQ(Error("{{ env.1X }}"), "column 1: \"env.1X\": env.NAME takes a variable's name");
  EXPECT_EQ(Error("{{ random(1) }}"),
            "column 1: unknown function \"random\" (randomInt, randomString, uuid, now)");
  EXPECT_EQ(Error("{{ randomInt(5, 1) }}"),
            "column 1: randomInt(5, 1): the first bound is above the second");
  EXPECT_EQ(Error("{{ randomInt(1) }}"), "column 1: randomInt() takes 2 arguments, not 1");
  EXPECT_EQ(Error("{{ randomInt(1, x) }}"), "column 1: randomInt(): \"x\" is not an integer");
  EXPECT_EQ(Error("{{ randomString(0) }}"), "column 1: randomString(0): the length is 1..1024");
  EXPECT_EQ(Error("{{ uuid(1) }}"), "column 1: uuid() takes 0 arguments, not 1");
  EXPECT_EQ(Error("{{ uuid( }}"), "column 1: \"uuid(\" lacks its \")\"");
  EXPECT_EQ(Error("{{ user.e mail }}"),
            "column 1: \"user.e mail\": a field is letters, digits, _ and -");
}

}  // namespace
}  // namespace stampede::common
