#include "tests/target/flow.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

namespace stampede::test_target {
namespace {

using nlohmann::json;

constexpr size_t kMaxUsers = 100000;

struct User {
  std::string token;
  std::string cart;  // one per user, made at the first login
  uint64_t logins = 0;
  std::map<std::string, uint64_t> requests;  // by endpoint
};

struct Cart {
  std::string user;
  uint64_t items = 0;
};

class Flow {
 public:
  FlowReply Handle(const FlowRequest& req) {
    std::lock_guard<std::mutex> lock(mu_);
    if (req.path == "/flow/stats") return Reply(200, Stats());
    if (req.path == "/flow/reset" && req.method == "POST") {
      users_.clear();
      by_token_.clear();
      carts_.clear();
      bad_token_ = bad_login_ = no_cart_ = cart_mismatch_ = 0;
      return Reply(200, json::object());
    }
    if (req.path == "/flow/login" && req.method == "POST") return Login(req);
    const std::string user = AuthorizedUser(req);
    if (user.empty()) {
      ++bad_token_;
      return Reply(401, {{"error", "a token from /flow/login is needed"}});
    }
    if (req.path == "/flow/products" && req.method == "GET") {
      ++users_[user].requests["products"];
      json items = json::array();
      for (int id : {101, 102, 103})
        items.push_back({{"id", id}, {"name", "p" + std::to_string(id)}});
      return Reply(200, {{"items", items}, {"user", user}});
    }
    constexpr std::string_view kProduct = "/flow/products/";
    if (req.method == "GET" && std::string_view(req.path).substr(0, kProduct.size()) == kProduct) {
      const std::string id = req.path.substr(kProduct.size());
      if (id != "101" && id != "102" && id != "103") {
        ++users_[user].requests["product-missing"];
        return Reply(404, {{"error", "no product " + id}});
      }
      ++users_[user].requests["product"];
      return Reply(200, {{"id", std::stoi(id)}, {"inStock", true}});
    }
    if (req.path == "/flow/cart" && req.method == "POST") {
      const std::string cart_id = CookieValue(req.cookie, "cart");
      auto cart = carts_.find(cart_id);
      if (cart_id.empty() || cart == carts_.end()) {
        ++no_cart_;
        return Reply(400, {{"error", "no cart cookie"}});
      }
      if (cart->second.user != user) {
        ++cart_mismatch_;
        return Reply(403, {{"error", "the cart is another user's"}});
      }
      ++users_[user].requests["cart"];
      return Reply(201, {{"user", user}, {"items", ++cart->second.items}});
    }
    return Reply(404, {{"error", "no such flow endpoint"}});
  }

 private:
  static FlowReply Reply(int status, const json& body) {
    FlowReply r;
    r.status = status;
    r.body = body.dump() + "\n";
    return r;
  }

  // "user" and "password" from a JSON object or a form.
  static void Credentials(const FlowRequest& req, std::string* user, std::string* password) {
    if (req.content_type.find("json") != std::string::npos) {
      const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_object()) {
        *user = body.value("user", "");
        *password = body.value("password", "");
      }
      return;
    }
    size_t at = 0;
    while (at <= req.body.size()) {
      size_t amp = req.body.find('&', at);
      if (amp == std::string::npos) amp = req.body.size();
      const std::string pair = req.body.substr(at, amp - at);
      const size_t eq = pair.find('=');
      if (eq != std::string::npos) {
        if (pair.substr(0, eq) == "user") *user = pair.substr(eq + 1);
        if (pair.substr(0, eq) == "password") *password = pair.substr(eq + 1);
      }
      at = amp + 1;
    }
  }

  FlowReply Login(const FlowRequest& req) {
    std::string user, password;
    Credentials(req, &user, &password);
    const bool known = user.size() >= 2 && user[0] == 'u' &&
                       user.find_first_not_of("0123456789", 1) == std::string::npos &&
                       password == "pw-" + user;
    if (!known || (users_.size() >= kMaxUsers && users_.count(user) == 0)) {
      ++bad_login_;
      return Reply(401, {{"error", "bad credentials"}});
    }
    User& u = users_[user];
    ++u.logins;
    if (u.token.empty()) {
      u.token = "tok-" + user + "-" + std::to_string(rng_());
      by_token_[u.token] = user;
      u.cart = "c" + std::to_string(next_cart_++);
      carts_[u.cart] = Cart{user, 0};
    }
    FlowReply r = Reply(200, {{"user", user}, {"token", u.token}});
    r.extra_headers = "Set-Cookie: cart=" + u.cart + "; Path=/flow; HttpOnly\r\n";
    return r;
  }

  // The user whose token the request carries, or "".
  std::string AuthorizedUser(const FlowRequest& req) const {
    constexpr std::string_view kBearer = "Bearer ";
    if (std::string_view(req.authorization).substr(0, kBearer.size()) != kBearer) return "";
    auto it = by_token_.find(req.authorization.substr(kBearer.size()));
    return it == by_token_.end() ? "" : it->second;
  }

  static std::string CookieValue(const std::string& header, const std::string& name) {
    size_t at = 0;
    while (at < header.size()) {
      size_t end = header.find(';', at);
      if (end == std::string::npos) end = header.size();
      std::string pair = header.substr(at, end - at);
      while (!pair.empty() && pair[0] == ' ') pair.erase(0, 1);
      if (pair.compare(0, name.size() + 1, name + "=") == 0) return pair.substr(name.size() + 1);
      at = end + 1;
    }
    return "";
  }

  json Stats() const {
    json logins = json::object(), requests = json::object();
    for (const auto& [name, u] : users_) {
      logins[name] = u.logins;
      requests[name] = u.requests;
    }
    return {{"logins", logins},        {"requests", requests}, {"bad_token", bad_token_},
            {"bad_login", bad_login_}, {"no_cart", no_cart_},  {"cart_mismatch", cart_mismatch_}};
  }

  std::mutex mu_;
  std::map<std::string, User> users_;
  std::map<std::string, std::string> by_token_;
  std::map<std::string, Cart> carts_;
  uint64_t next_cart_ = 1;
  uint64_t bad_token_ = 0, bad_login_ = 0, no_cart_ = 0, cart_mismatch_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace

bool HandleFlow(const FlowRequest& req, FlowReply* reply) {
  if (std::string_view(req.path).substr(0, 6) != "/flow/") return false;
  static Flow* const flow = new Flow();
  *reply = flow->Handle(req);
  return true;
}

}  // namespace stampede::test_target
