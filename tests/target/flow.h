// The test target's user flow (/flow/...), for the scenario tests of issue 13: a login that
// issues each user its own token and cart cookie, endpoints that need them, ids in JSON lists,
// and counts per endpoint and per user, so a test can check that every authenticated request
// carried the right user's token and cookie and that each data row was used by one user.
//
//   POST /flow/login        {"user": "u7", "password": "pw-u7"} (JSON, or a form): 200
//                           {"user": "u7", "token": "..."} and Set-Cookie: cart=...; Path=/flow.
//                           Any user uN with password pw-uN exists; else 401 (bad_login).
//   GET  /flow/products     {"items": [{"id": 101, ...}, {"id": 102, ...}, {"id": 103, ...}]}
//   GET  /flow/products/ID  {"id": ID, "inStock": true}; 404 for another id
//   POST /flow/cart         201 {"user": "u7", "items": N}: the cart of the cookie, which must be
//                           the token's user's (403 cart_mismatch; 400 no_cart without one)
//   GET  /flow/stats        {"logins": {user: n}, "requests": {user: {endpoint: n}},
//                            "bad_token": n, "bad_login": n, "no_cart": n, "cart_mismatch": n}
//   POST /flow/reset        forgets every user, token, cart and count
//
// Every endpoint but login, stats and reset needs "Authorization: Bearer TOKEN" with a token
// login issued (401 bad_token otherwise). Thread-safe; at most 100,000 users.
#ifndef STAMPEDE_TESTS_TARGET_FLOW_H_
#define STAMPEDE_TESTS_TARGET_FLOW_H_

#include <string>

namespace stampede::test_target {

struct FlowRequest {
  std::string method;
  std::string path;  // without the query
  std::string authorization;
  std::string cookie;
  std::string content_type;
  std::string body;
};

struct FlowReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string extra_headers;  // complete "Name: value\r\n" lines
};

// Answers a /flow/ request; false (reply untouched) for any other path.
bool HandleFlow(const FlowRequest& req, FlowReply* reply);

}  // namespace stampede::test_target

#endif  // STAMPEDE_TESTS_TARGET_FLOW_H_
