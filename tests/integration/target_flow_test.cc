// The test target's user flow (tests/target/flow.h), over real HTTP: what the scenario tests of
// issue 13 will count on. A login issues each user a token and a cart cookie; the endpoints refuse
// a missing token, a missing cart and another user's cart, each under its own count; /flow/stats
// has every count per user and per endpoint.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using nlohmann::json;

struct Session {
  std::string token, cookie;
};

Session Login(httplib::Client& http, const std::string& user, bool form = false) {
  auto r = form
               ? http.Post("/flow/login", "user=" + user + "&password=pw-" + user,
                           "application/x-www-form-urlencoded")
               : http.Post("/flow/login", json({{"user", user}, {"password", "pw-" + user}}).dump(),
                           "application/json");
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  const std::string set_cookie = r->get_header_value("Set-Cookie");
  EXPECT_EQ(set_cookie.rfind("cart=", 0), 0u) << set_cookie;
  EXPECT_NE(set_cookie.find("Path=/flow"), std::string::npos) << set_cookie;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["user"], user);
  return {body["token"].get<std::string>(), set_cookie.substr(0, set_cookie.find(';'))};
}

TEST(TargetFlowTest, TokensAndCartsBelongToTheirUsersAndEveryRefusalIsCounted) {
  TestTarget target;
  httplib::Client http("127.0.0.1", target.port());
  ASSERT_EQ(http.Post("/flow/reset", "", "text/plain")->status, 200);
  const Session u1 = Login(http, "u1"), u2 = Login(http, "u2", /*form=*/true);
  ASSERT_FALSE(u1.token.empty());
  EXPECT_NE(u1.token, u2.token);
  EXPECT_EQ(Login(http, "u1").token, u1.token) << "a second login keeps the token";

  const httplib::Headers auth1 = {{"Authorization", "Bearer " + u1.token}, {"Cookie", u1.cookie}};
  auto products = http.Get("/flow/products", auth1);
  ASSERT_TRUE(products);
  ASSERT_EQ(products->status, 200);
  EXPECT_EQ(json::parse(products->body)["items"][1]["id"], 102);
  EXPECT_EQ(http.Get("/flow/products/102", auth1)->status, 200);
  EXPECT_EQ(http.Get("/flow/products/999", auth1)->status, 404);
  auto cart = http.Post("/flow/cart", auth1, "{}", "application/json");
  ASSERT_TRUE(cart);
  EXPECT_EQ(cart->status, 201);
  EXPECT_EQ(json::parse(cart->body)["items"], 1);
  EXPECT_EQ(json::parse(http.Post("/flow/cart", auth1, "{}", "application/json")->body)["items"],
            2);

  // Refusals, each counted under its own name.
  EXPECT_EQ(http.Get("/flow/products")->status, 401);
  EXPECT_EQ(http.Get("/flow/products", {{"Authorization", "Bearer forged"}})->status, 401);
  EXPECT_EQ(
      http.Post("/flow/cart", {{"Authorization", "Bearer " + u1.token}}, "{}", "application/json")
          ->status,
      400);
  EXPECT_EQ(
      http.Post("/flow/cart", {{"Authorization", "Bearer " + u2.token}, {"Cookie", u1.cookie}},
                "{}", "application/json")
          ->status,
      403);
  EXPECT_EQ(http.Post("/flow/login", json({{"user", "u3"}, {"password", "wrong"}}).dump(),
                      "application/json")
                ->status,
            401);

  auto stats = http.Get("/flow/stats");
  ASSERT_TRUE(stats);
  const json s = json::parse(stats->body);
  EXPECT_EQ(s["logins"], json({{"u1", 2}, {"u2", 1}}));
  EXPECT_EQ(s["requests"]["u1"],
            json({{"products", 1}, {"product", 1}, {"product-missing", 1}, {"cart", 2}}));
  EXPECT_EQ(s["bad_token"], 2);
  EXPECT_EQ(s["no_cart"], 1);
  EXPECT_EQ(s["cart_mismatch"], 1);
  EXPECT_EQ(s["bad_login"], 1);
}

}  // namespace
}  // namespace stampede::testing
