#include "common/capture.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace stampede::common {
namespace {

JsonPath Path(const std::string& text) {
  absl::StatusOr<JsonPath> p = JsonPath::Parse(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status();
  return p.ok() ? *std::move(p) : JsonPath();
}

std::string PathError(const std::string& text) {
  absl::StatusOr<JsonPath> p = JsonPath::Parse(text);
  EXPECT_FALSE(p.ok()) << text << " parsed";
  return p.ok() ? "" : std::string(p.status().message());
}

constexpr char kBody[] = R"({
  "data": {"token": "abc.def", "user": {"id": 42, "admin": false, "nick": null}},
  "items": [{"id": 7, "name": "a\"b \u00e9"}, {"name": "no id"}, {"id": 9}, {"id": "x-11"}],
  "tags": ["red", "green"],
  "weird key": {"a.b": 1}
})";

TEST(JsonPathTest, ParsesTheSubset) {
  const JsonPath p = Path("$.items[*].id");
  ASSERT_EQ(p.segments().size(), 3u);
  EXPECT_EQ(p.segments()[0].field, "items");
  EXPECT_EQ(p.segments()[1].kind, JsonPath::Segment::Kind::kEach);
  EXPECT_TRUE(p.has_each());
  EXPECT_FALSE(Path("$.a[3]['b c'][\"d\"]").has_each());
  EXPECT_EQ(Path("$.a[3]['b c'][\"d\"]").segments()[2].field, "b c");
  EXPECT_TRUE(Path("$").segments().empty());
}

TEST(JsonPathTest, EveryMistakeNamesItsColumn) {
  EXPECT_EQ(PathError("data.token"), "column 1: a JSON path starts with \"$\" ($.data.id)");
  EXPECT_EQ(PathError("$.a..b"), "column 4: a \".\" without a name after it");
  EXPECT_EQ(PathError("$.a[1"), "column 4: a \"[\" without \"]\"");
  EXPECT_EQ(PathError("$.a[*].b[*]"), "column 9: a second \"[*]\": one at most");
  EXPECT_EQ(PathError("$.a[-1]"), "column 4: \"[-1]\": an index, [*] or a quoted name ('name')");
  EXPECT_EQ(PathError("$.a[?(@.x)]"),
            "column 4: \"[?(@.x)]\": an index, [*] or a quoted name ('name')");
  EXPECT_EQ(PathError("$a"), "column 2: \"a\": expected \".\" or \"[\"");
}

TEST(JsonFinderTest, FindsScalarsStringsAndWholeValues) {
  JsonFinder f;
  EXPECT_EQ(f.Find(Path("$.data.token"), kBody), "abc.def");
  EXPECT_EQ(f.Find(Path("$.data.user.id"), kBody), "42");
  EXPECT_EQ(f.Find(Path("$.data.user.admin"), kBody), "false");
  EXPECT_EQ(f.Find(Path("$.data.user.nick"), kBody), "null");
  EXPECT_EQ(f.Find(Path("$.items[0].name"), kBody), "a\"b \xc3\xa9") << "unescaped";
  EXPECT_EQ(f.Find(Path("$.tags[1]"), kBody), "green");
  EXPECT_EQ(f.Find(Path("$.tags"), kBody), "[\"red\", \"green\"]");
  EXPECT_EQ(f.Find(Path("$['weird key']['a.b']"), kBody), "1");
  EXPECT_EQ(f.Find(Path("$.data.user"), kBody), "{\"id\": 42, \"admin\": false, \"nick\": null}");
}

TEST(JsonFinderTest, AMissingPathOrABodyThatIsNotJsonFindsNothing) {
  JsonFinder f;
  EXPECT_EQ(f.Find(Path("$.data.nothing"), kBody), std::nullopt);
  EXPECT_EQ(f.Find(Path("$.tags[5]"), kBody), std::nullopt);
  EXPECT_EQ(f.Find(Path("$.data.token.deeper"), kBody), std::nullopt);
  EXPECT_EQ(f.Find(Path("$.tags[*].id"), kBody), std::nullopt);
  EXPECT_EQ(f.Find(Path("$.a"), "<html>not json</html>"), std::nullopt);
  EXPECT_EQ(f.Find(Path("$.a"), "{\"a\": "), std::nullopt) << "cut short";
  EXPECT_EQ(f.Find(Path("$.a"), ""), std::nullopt);
  // The finder is reused: a good body after bad ones still works.
  EXPECT_EQ(f.Find(Path("$.data.token"), kBody), "abc.def");
}

TEST(JsonFinderTest, EachElementPicksFirstLastOrRandomAndSkipsThoseWithout) {
  JsonFinder f;
  const JsonPath ids = Path("$.items[*].id");
  EXPECT_EQ(f.Find(ids, kBody, Pick::kFirst), "7");
  EXPECT_EQ(f.Find(ids, kBody, Pick::kLast), "x-11");
  std::set<std::string> seen;
  for (uint64_t r = 0; r < 12; ++r) seen.insert(*f.Find(ids, kBody, Pick::kRandom, r));
  EXPECT_EQ(seen, (std::set<std::string>{"7", "9", "x-11"})) << "the item without an id is skipped";
}

// FindInto reuses its output's buffer and the finder's own; a shorter value after a longer one
// (and a long one after short ones) comes out whole, and a miss leaves the output as it was.
TEST(JsonFinderTest, FindIntoReusesBuffersAndKeepsTheOutputOnAMiss) {
  JsonFinder f;
  const JsonPath each = Path("$.v[*]");
  std::string out = "before";
  ASSERT_TRUE(f.FindInto(each, R"({"v": ["a-long-value-past-the-small-string-buffer", "b"]})",
                         Pick::kFirst, 0, &out));
  EXPECT_EQ(out, "a-long-value-past-the-small-string-buffer");
  const char* buffer = out.data();
  ASSERT_TRUE(f.FindInto(each, R"({"v": ["short", "x", "y"]})", Pick::kLast, 0, &out));
  EXPECT_EQ(out, "y");
  EXPECT_EQ(out.data(), buffer) << "the output's buffer is reused";
  ASSERT_TRUE(f.FindInto(each, R"({"v": ["b", "another-long-value-past-the-buffer"]})", Pick::kLast,
                         0, &out));
  EXPECT_EQ(out, "another-long-value-past-the-buffer");
  EXPECT_FALSE(f.FindInto(each, R"({"w": 1})", Pick::kFirst, 0, &out));
  EXPECT_EQ(out, "another-long-value-past-the-buffer");
  EXPECT_EQ(f.Find(each, R"({"v": [1, 2]})", Pick::kRandom, 1), "2");
}

TEST(RegexCaptureTest, TakesTheOneGroup) {
  absl::StatusOr<RegexCapture> csrf = RegexCapture::Compile(R"re(name="csrf" value="([^"]+)")re");
  ASSERT_TRUE(csrf.ok()) << csrf.status();
  EXPECT_EQ(csrf->Find(R"(<input name="csrf" value="t0k3n"><input name="x">)"), "t0k3n");
  EXPECT_EQ(csrf->Find("<form></form>"), std::nullopt);
  EXPECT_EQ(RegexCapture::Compile("no group").status().message(),
            "regex: needs exactly one capturing group (...), the value; it has 0");
  EXPECT_EQ(RegexCapture::Compile("(a)(b)").status().message(),
            "regex: needs exactly one capturing group (...), the value; it has 2");
  EXPECT_EQ(RegexCapture::Compile("(unclosed").status().message(), "regex: missing ): (unclosed");
}

TEST(BetweenTest, TakesTheTextBetweenTheFirstLeftAndTheNextRight) {
  EXPECT_EQ(Between("a=1; token=xyz; b=2", "token=", ";"), "xyz");
  EXPECT_EQ(Between("token=xyz", "token=", ""), "xyz") << "no right: the rest";
  EXPECT_EQ(Between("token=xyz", "token=", ";"), std::nullopt);
  EXPECT_EQ(Between("nothing here", "token=", ";"), std::nullopt);
  EXPECT_EQ(Between("x", "", ";"), std::nullopt);
}

}  // namespace
}  // namespace stampede::common
