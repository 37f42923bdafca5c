#include "controller/kube/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/controller/kube/fake_api_server.h"

namespace stampede::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using testing::FakeApiServer;
using testing::Object;
using testing::Reply;
using testing::ReplyJson;
using testing::StatusBody;

constexpr char kPath[] = "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests/x";
constexpr char kCollection[] = "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests";

// Records the injected sleeps instead of sleeping, and drives an injected clock.
struct FakeTime {
  std::mutex mu;
  std::vector<nanoseconds> sleeps;
  std::chrono::steady_clock::time_point now{};

  Client::Options Options() {
    Client::Options options;
    options.request_timeout = seconds(5);
    options.backoff_base = milliseconds(100);
    options.backoff_max = seconds(10);
    options.jitter = [] { return 0.5; };
    options.sleep = [this](nanoseconds d) {
      std::lock_guard<std::mutex> lock(mu);
      sleeps.push_back(d);
      now += d;
    };
    options.now = [this] {
      std::lock_guard<std::mutex> lock(mu);
      return now;
    };
    return options;
  }
  void Advance(nanoseconds d) {
    std::lock_guard<std::mutex> lock(mu);
    now += d;
  }
};

class ClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<Client> NewClient(Config config = Config()) {
    config.server = server_.url();
    absl::StatusOr<std::unique_ptr<Client>> client = Client::New(config, time_.Options());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // A watch that answers 200 and then sends nothing until the server shuts down.
  void ServeSilentWatch() {
    server_.SetHandler([this](const httplib::Request&, httplib::Response& response) {
      response.status = 200;
      response.set_chunked_content_provider("application/json", [this](size_t, httplib::DataSink&) {
        server_.BlockUntilShutdown();
        return false;
      });
    });
  }

  FakeApiServer server_;
  FakeTime time_;
};

std::string TempFile(const std::string& content) {
  char path[] = "/tmp/stampede-kube-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

TEST_F(ClientTest, GetReturnsTheObjectAndSendsTheBearerToken) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "7"));
  });
  Config config;
  config.token = "secret";
  std::unique_ptr<Client> client = NewClient(config);
  absl::StatusOr<Json> object = client->Get(kPath);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(MetadataField(*object, "resourceVersion"), "7");
  EXPECT_EQ(ObjectKey(*object), "ns/x");
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].method, "GET");
  EXPECT_EQ(server_.requests()[0].path, kPath);
  EXPECT_EQ(server_.requests()[0].authorization, "Bearer secret");
}

TEST_F(ClientTest, ServerPathPrefixIsKept) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "1"));
  });
  Config config;
  config.server = server_.url() + "/k8s/clusters/c-1/";
  absl::StatusOr<std::unique_ptr<Client>> client = Client::New(config, time_.Options());
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Get(kPath).ok());
  EXPECT_EQ(server_.requests()[0].path, std::string("/k8s/clusters/c-1") + kPath);
}

TEST(ClientNewTest, RejectsBadServerUrls) {
  for (const char* server : {"", "ftp://h:1", "https://", "https://h:99999", "https://[::1"}) {
    Config config;
    config.server = server;
    EXPECT_EQ(Client::New(config).status().code(), absl::StatusCode::kInvalidArgument) << server;
  }
  Config config;
  config.server = "https://[::1]:6443";
  EXPECT_TRUE(Client::New(config).ok());
  config.ca_file = "/nonexistent/ca.crt";
  EXPECT_EQ(Client::New(config).status().code(), absl::StatusCode::kNotFound);
}

struct MappingCase {
  int http_status;
  std::string reason;
  absl::StatusCode code;
};

class StatusMappingTest : public ClientTest, public ::testing::WithParamInterface<MappingCase> {};

TEST_P(StatusMappingTest, MapsHttpStatusToCodeWithTheServerMessage) {
  const MappingCase c = GetParam();
  const std::string message = "the apiserver says " + std::to_string(c.http_status);
  server_.SetHandler([&](const httplib::Request&, httplib::Response& response) {
    Reply(response, c.http_status, StatusBody(c.http_status, c.reason, message));
  });
  std::unique_ptr<Client> client = NewClient();
  for (const auto& [method, status] : std::vector<std::pair<std::string, absl::Status>>{
           {"GET", client->Get(kPath).status()},
           {"POST", client->Create(kCollection, Object("x", "")).status()},
           {"DELETE", client->Delete(kPath).status()}}) {
    EXPECT_EQ(status.code(), c.code) << method << " " << status;
    const std::string text(status.message());
    EXPECT_NE(text.find(method), std::string::npos) << text;
    EXPECT_NE(text.find("/loadtests"), std::string::npos) << text;
    EXPECT_NE(text.find(std::to_string(c.http_status)), std::string::npos) << text;
    EXPECT_NE(text.find(message), std::string::npos) << text;
  }
  EXPECT_TRUE(time_.sleeps.empty());  // none of these is retried
}

INSTANTIATE_TEST_SUITE_P(
    Codes, StatusMappingTest,
    ::testing::Values(MappingCase{400, "BadRequest", absl::StatusCode::kInvalidArgument},
                      MappingCase{401, "Unauthorized", absl::StatusCode::kUnauthenticated},
                      MappingCase{403, "Forbidden", absl::StatusCode::kPermissionDenied},
                      MappingCase{404, "NotFound", absl::StatusCode::kNotFound},
                      MappingCase{409, "AlreadyExists", absl::StatusCode::kAlreadyExists},
                      MappingCase{409, "Conflict", absl::StatusCode::kAborted},
                      MappingCase{410, "Expired", absl::StatusCode::kFailedPrecondition},
                      MappingCase{415, "UnsupportedMediaType", absl::StatusCode::kInvalidArgument},
                      MappingCase{422, "Invalid", absl::StatusCode::kInvalidArgument}));

TEST_F(ClientTest, ExpiredAndConflictHelpers) {
  server_.SetHandler([](const httplib::Request& request, httplib::Response& response) {
    if (request.method == "GET") {
      Reply(response, 410, StatusBody(410, "Expired", "too old resource version: 1 (3171407)"));
    } else {
      Reply(response, 409, StatusBody(409, "Conflict", "the object has been modified"));
    }
  });
  std::unique_ptr<Client> client = NewClient();
  const absl::Status gone = client->Get(kPath).status();
  EXPECT_TRUE(IsExpired(gone)) << gone;
  EXPECT_NE(std::string(gone.message()).find("expired"), std::string::npos) << gone;
  EXPECT_TRUE(IsConflict(client->Update(kPath, Object("x", "1")).status()));
}

TEST_F(ClientTest, WritesUseTheRightMethodsAndContentTypes) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "2"));
  });
  std::unique_ptr<Client> client = NewClient();
  ASSERT_TRUE(client->Create(kCollection, Object("x", "")).ok());
  ASSERT_TRUE(client->Update(kPath, Object("x", "1")).ok());
  ASSERT_TRUE(client->MergePatch(kPath, {{"spec", {{"paused", true}}}}).ok());
  ASSERT_TRUE(client->Delete(kPath, {{"propagationPolicy", "Background"}}).ok());
  ASSERT_TRUE(client->Delete(kPath).ok());
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, kCollection);
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_EQ(Json::parse(seen[0].body), Object("x", ""));
  EXPECT_EQ(seen[1].method, "PUT");
  EXPECT_EQ(Json::parse(seen[1].body)["metadata"]["resourceVersion"], "1");
  EXPECT_EQ(seen[2].method, "PATCH");
  EXPECT_EQ(seen[2].content_type, "application/merge-patch+json");
  EXPECT_EQ(Json::parse(seen[2].body), Json({{"spec", {{"paused", true}}}}));
  EXPECT_EQ(seen[3].method, "DELETE");
  EXPECT_EQ(Json::parse(seen[3].body), Json({{"propagationPolicy", "Background"}}));
  EXPECT_EQ(seen[4].method, "DELETE");
  EXPECT_EQ(seen[4].body, "");
}

// A one-object store with optimistic concurrency, as the API server does it.
struct VersionedObject {
  std::mutex mu;
  Json object = Object("x", "1", {{"replicas", 1}});
  int version = 1;
  int conflicts_to_inject = 0;  // PUTs answered 409 although their version matches

  void Serve(const httplib::Request& request, httplib::Response& response) {
    std::lock_guard<std::mutex> lock(mu);
    if (request.method == "GET") return ReplyJson(response, 200, object);
    Json wanted = Json::parse(request.body);
    if (conflicts_to_inject > 0 ||
        wanted["metadata"]["resourceVersion"] != std::to_string(version)) {
      if (conflicts_to_inject > 0) {
        --conflicts_to_inject;
        object["spec"]["touched_by"] = "someone else";  // the concurrent write
        object["metadata"]["resourceVersion"] = std::to_string(++version);
      }
      return Reply(response, 409,
                   StatusBody(409, "Conflict",
                              "Operation cannot be fulfilled on loadtests.stampede.dev \"x\": the "
                              "object has been modified; please apply your changes to the latest "
                              "version and try again"));
    }
    wanted["metadata"]["resourceVersion"] = std::to_string(++version);
    object = wanted;
    ReplyJson(response, 200, object);
  }
};

TEST_F(ClientTest, UpdateWithRetryRereadsAfterConflictAndConverges) {
  VersionedObject store;
  store.conflicts_to_inject = 1;
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    store.Serve(request, response);
  });
  std::unique_ptr<Client> client = NewClient();
  int mutations = 0;
  absl::StatusOr<Json> updated = client->UpdateWithRetry(kPath, [&](Json& object) {
    ++mutations;
    object["spec"]["replicas"] = 3;
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(mutations, 2);
  EXPECT_EQ(server_.Count("GET"), 2u);
  EXPECT_EQ(server_.Count("PUT"), 2u);
  // Both the concurrent write and ours survive: the retry started from the re-read object.
  EXPECT_EQ((*updated)["spec"]["replicas"], 3);
  EXPECT_EQ((*updated)["spec"]["touched_by"], "someone else");
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  EXPECT_EQ(Json::parse(seen[1].body)["metadata"]["resourceVersion"], "1");
  EXPECT_EQ(Json::parse(seen[3].body)["metadata"]["resourceVersion"], "2");
}

TEST_F(ClientTest, UpdateWithRetryWritesNothingWhenUnchanged) {
  VersionedObject store;
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    store.Serve(request, response);
  });
  std::unique_ptr<Client> client = NewClient();
  absl::StatusOr<Json> result = client->UpdateWithRetry(kPath, [](Json& object) {
    object["spec"]["replicas"] = 1;  // already so
    return absl::OkStatus();
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(server_.Count("GET"), 1u);
  EXPECT_EQ(server_.Count("PUT"), 0u);
}

TEST_F(ClientTest, UpdateWithRetryGivesUpAfterItsAttemptsAndPassesMutateErrors) {
  VersionedObject store;
  store.conflicts_to_inject = 100;
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    store.Serve(request, response);
  });
  std::unique_ptr<Client> client = NewClient();
  auto bump = [](Json& object) {
    object["spec"]["replicas"] = 5;
    return absl::OkStatus();
  };
  EXPECT_TRUE(IsConflict(client->UpdateWithRetry(kPath, bump, 3).status()));
  EXPECT_EQ(server_.Count("PUT"), 3u);
  const absl::Status refused =
      client
          ->UpdateWithRetry(
              kPath, [](Json&) { return absl::InvalidArgumentError("no"); }, 3)
          .status();
  EXPECT_EQ(refused, absl::InvalidArgumentError("no"));
  EXPECT_EQ(server_.Count("PUT"), 3u);
}

TEST_F(ClientTest, OverloadIsRetriedWithBackoffHonouringRetryAfter) {
  std::atomic<int> calls{0};
  server_.SetHandler([&](const httplib::Request&, httplib::Response& response) {
    switch (calls++) {
      case 0:
        response.set_header("Retry-After", "2");
        return Reply(response, 429, StatusBody(429, "TooManyRequests", "slow down"));
      case 1:
        return Reply(response, 503, "upstream connect error");
      default:
        return ReplyJson(response, 200, Object("x", "3"));
    }
  });
  std::unique_ptr<Client> client = NewClient();
  absl::StatusOr<Json> object = client->Get(kPath);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(calls.load(), 3);
  // Retry-After: 2 s; then full jitter (0.5) of base * 2 = 200 ms.
  EXPECT_EQ(time_.sleeps, (std::vector<nanoseconds>{seconds(2), milliseconds(100)}));
}

TEST_F(ClientTest, PersistentOverloadEndsUnavailableAfterMaxAttempts) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    Reply(response, 503, StatusBody(503, "ServiceUnavailable", "etcd is down"));
  });
  Client::Options options = time_.Options();
  options.max_attempts = 4;
  options.backoff_max = milliseconds(300);
  Config config;
  config.server = server_.url();
  std::unique_ptr<Client> client = *Client::New(config, options);
  const absl::Status status = client->Get(kPath).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(std::string(status.message()).find("etcd is down"), std::string::npos) << status;
  EXPECT_EQ(server_.Count("GET"), 4u);
  // 0.5 * min(300 ms, 100 ms * 2^(n-1)).
  EXPECT_EQ(time_.sleeps,
            (std::vector<nanoseconds>{milliseconds(50), milliseconds(100), milliseconds(150)}));
}

TEST_F(ClientTest, TransportErrorsAreRetriedThenUnavailable) {
  Config config;
  {
    FakeApiServer gone;  // a port that refuses connections once this server is stopped
    config.server = gone.url();
  }
  std::unique_ptr<Client> client = *Client::New(config, time_.Options());
  const absl::Status status = client->Get(kPath).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(time_.sleeps.size(), 4u);  // 5 attempts
}

TEST_F(ClientTest, Unauthorized401RereadsTheRotatedTokenFileAndRetries) {
  const std::string token_file = TempFile("old-token\n");
  std::atomic<bool> accept_new_token{true};
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (!accept_new_token || request.get_header_value("Authorization") != "Bearer new-token") {
      return Reply(response, 401, StatusBody(401, "Unauthorized", "Unauthorized"));
    }
    ReplyJson(response, 200, Object("x", "1"));
  });
  Config config;
  config.token_file = token_file;
  std::unique_ptr<Client> client = NewClient(config);
  std::ofstream(token_file) << "new-token\n";  // the kubelet rotated it
  absl::StatusOr<Json> object = client->Get(kPath);
  ASSERT_TRUE(object.ok()) << object.status();
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].authorization, "Bearer old-token");
  EXPECT_EQ(seen[1].authorization, "Bearer new-token");
  EXPECT_TRUE(time_.sleeps.empty());

  // Refused again: one re-read and retry (with whatever the file holds), then Unauthenticated.
  accept_new_token = false;
  std::ofstream(token_file) << "revoked-token\n";
  EXPECT_EQ(client->Get(kPath).status().code(), absl::StatusCode::kUnauthenticated);
  const std::vector<FakeApiServer::Seen> again = server_.requests();
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[2].authorization, "Bearer new-token");
  EXPECT_EQ(again[3].authorization, "Bearer revoked-token");
  unlink(token_file.c_str());
}

TEST_F(ClientTest, WatchRetriesOnceAfter401WithTheRereadToken) {
  const std::string token_file = TempFile("old-token");
  server_.SetHandler([](const httplib::Request& request, httplib::Response& response) {
    if (request.get_header_value("Authorization") != "Bearer new-token") {
      return Reply(response, 401, StatusBody(401, "Unauthorized", "Unauthorized"));
    }
    testing::ReplyChunks(response, {testing::WatchLine("ADDED", Object("a", "1"))});
  });
  Config config;
  config.token_file = token_file;
  std::unique_ptr<Client> client = NewClient(config);
  std::ofstream(token_file) << "new-token";
  int events = 0;
  const absl::Status status = client->Watch(kCollection, WatchOptions(), [&](const WatchEvent&) {
    ++events;
    return true;
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(events, 1);
  EXPECT_EQ(server_.requests().size(), 2u);
  unlink(token_file.c_str());
}

TEST_F(ClientTest, OneClientServesSeveralThreadsAtOnce) {
  server_.SetHandler([](const httplib::Request& request, httplib::Response& response) {
    ReplyJson(response, 200, Object(request.get_param_value("n"), "1"));
  });
  std::unique_ptr<Client> client = NewClient();
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string name = std::to_string(t * 100 + i);
        absl::StatusOr<Json> object = client->Get(std::string(kPath) + "?n=" + name);
        if (object.ok() && MetadataField(*object, "name") == name) ++right;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(right.load(), 40);
}

TEST_F(ClientTest, RequestsOneAfterAnotherShareOneConnection) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "1"));
  });
  std::unique_ptr<Client> client = NewClient();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Get(kPath).ok());
  ASSERT_TRUE(client->Create(kCollection, Object("x", "")).ok());
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  ASSERT_EQ(seen.size(), 4u);
  for (const FakeApiServer::Seen& s : seen) EXPECT_EQ(s.remote_port, seen[0].remote_port);
}

TEST_F(ClientTest, AConnectionIdleForHalfAMinuteIsNotUsedAgain) {
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "1"));
  });
  std::unique_ptr<Client> client = NewClient();
  ASSERT_TRUE(client->Get(kPath).ok());
  time_.Advance(seconds(29));
  ASSERT_TRUE(client->Get(kPath).ok());
  time_.Advance(seconds(30));
  ASSERT_TRUE(client->Get(kPath).ok());
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);
  EXPECT_NE(seen[1].remote_port, seen[2].remote_port);
}

TEST(ClientConnectionTest, AConnectionTheServerClosesIsNotUsedAgain) {
  // The server ends each connection after its second request ("Connection: close").
  auto closing = std::make_unique<httplib::Server>();
  closing->set_keep_alive_max_count(2);
  FakeApiServer server(std::move(closing));
  server.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "1"));
  });
  Config config;
  config.server = server.url();
  FakeTime time;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::New(config, time.Options());
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*client)->Get(kPath).ok()) << "request " << i;
  EXPECT_TRUE(time.sleeps.empty());  // no request failed and was retried
  const std::vector<FakeApiServer::Seen> seen = server.requests();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);
  EXPECT_NE(seen[1].remote_port, seen[2].remote_port);
  EXPECT_EQ(seen[2].remote_port, seen[3].remote_port);
  EXPECT_NE(seen[3].remote_port, seen[4].remote_port);
}

TEST_F(ClientTest, TokenFileIsRereadEveryMinuteKeepingTheLastGoodToken) {
  const std::string token_file = TempFile("a");
  server_.SetHandler([](const httplib::Request&, httplib::Response& response) {
    ReplyJson(response, 200, Object("x", "1"));
  });
  Config config;
  config.token_file = token_file;
  std::unique_ptr<Client> client = NewClient(config);
  auto last_token = [&] { return server_.requests().back().authorization; };

  ASSERT_TRUE(client->Get(kPath).ok());
  EXPECT_EQ(last_token(), "Bearer a");
  std::ofstream(token_file) << "b";
  time_.Advance(seconds(59));
  ASSERT_TRUE(client->Get(kPath).ok());
  EXPECT_EQ(last_token(), "Bearer a");  // not due yet
  time_.Advance(seconds(1));
  ASSERT_TRUE(client->Get(kPath).ok());
  EXPECT_EQ(last_token(), "Bearer b");
  unlink(token_file.c_str());  // a failed re-read keeps the last good token
  time_.Advance(seconds(60));
  ASSERT_TRUE(client->Get(kPath).ok());
  EXPECT_EQ(last_token(), "Bearer b");
}

Json Page(const std::vector<std::string>& names, const std::string& resource_version,
          const std::string& continue_token) {
  Json page = {{"kind", "LoadTestList"},
               {"apiVersion", "stampede.dev/v1alpha1"},
               {"metadata", {{"resourceVersion", resource_version}}},
               {"items", Json::array()}};
  if (!continue_token.empty()) page["metadata"]["continue"] = continue_token;
  for (const std::string& name : names) page["items"].push_back(Object(name, "1"));
  return page;
}

TEST_F(ClientTest, ListFollowsContinueTokensAndMergesPages) {
  server_.SetHandler([](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("continue").empty()) {
      return ReplyJson(response, 200, Page({"a", "b"}, "10", "token-1"));
    }
    ReplyJson(response, 200, Page({"c"}, "10", ""));
  });
  Client::Options options = time_.Options();
  options.list_page_size = 2;
  Config config;
  config.server = server_.url();
  std::unique_ptr<Client> client = *Client::New(config, options);
  const std::string selector = "app=web,tier in (a,b)";
  absl::StatusOr<Json> list = client->List(kCollection, selector);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ((*list)["items"].size(), 3u);
  EXPECT_EQ(ObjectKey((*list)["items"][2]), "ns/c");
  EXPECT_EQ(MetadataField(*list, "resourceVersion"), "10");
  EXPECT_EQ(MetadataField(*list, "continue"), "");
  EXPECT_EQ((*list)["kind"], "LoadTestList");
  const std::vector<FakeApiServer::Seen> seen = server_.requests();
  ASSERT_EQ(seen.size(), 2u);
  for (const FakeApiServer::Seen& page : seen) {
    EXPECT_EQ(page.path, kCollection);
    EXPECT_EQ(page.params.find("limit")->second, "2");
    EXPECT_EQ(page.params.find("labelSelector")->second, selector);
  }
  EXPECT_EQ(seen[0].params.count("continue"), 0u);
  EXPECT_EQ(seen[1].params.find("continue")->second, "token-1");
}

TEST_F(ClientTest, ListRestartsWhenTheContinueTokenExpired) {
  std::atomic<int> first_pages{0};
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (!request.get_param_value("continue").empty()) {
      return Reply(response, 410,
                   StatusBody(410, "Expired",
                              "The provided continue parameter is too old to display a "
                              "consistent list result."));
    }
    if (first_pages++ == 0) return ReplyJson(response, 200, Page({"a"}, "10", "token-1"));
    ReplyJson(response, 200, Page({"a", "b"}, "20", ""));
  });
  std::unique_ptr<Client> client = NewClient();
  absl::StatusOr<Json> list = client->List(kCollection);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(server_.requests().size(), 3u);
  ASSERT_EQ((*list)["items"].size(), 2u);  // from the restarted list only, no duplicates
  EXPECT_EQ(MetadataField(*list, "resourceVersion"), "20");
}

// --- Watch ---

TEST_F(ClientTest, WatchDeliversEventsInOrderReassemblingLinesSplitAcrossChunks) {
  const std::string second = testing::WatchLine("MODIFIED", Object("b", "12"));
  const size_t half = second.size() / 2;
  server_.SetHandler([&](const httplib::Request&, httplib::Response& response) {
    testing::ReplyChunks(
        response,
        {testing::WatchLine("ADDED", Object("a", "11")) + second.substr(0, half),
         second.substr(half, second.size() - half - 1),  // without its newline
         "\n" + testing::WatchLine("DELETED", Object("c", "13")) +
             testing::WatchLine("BOOKMARK", {{"metadata", {{"resourceVersion", "14"}}}})});
  });
  std::unique_ptr<Client> client = NewClient();
  WatchOptions options;
  options.resource_version = "10";
  options.label_selector = "app=web";
  std::vector<std::string> seen;
  const absl::Status status = client->Watch(kCollection, options, [&](const WatchEvent& event) {
    seen.push_back(event.type + " " + MetadataField(event.object, "name") + " " +
                   MetadataField(event.object, "resourceVersion"));
    return true;
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED a 11", "MODIFIED b 12", "DELETED c 13",
                                            "BOOKMARK  14"}));
  const FakeApiServer::Seen request = server_.requests().at(0);
  EXPECT_EQ(request.path, kCollection);
  EXPECT_EQ(request.params.find("watch")->second, "1");
  EXPECT_EQ(request.params.find("resourceVersion")->second, "10");
  EXPECT_EQ(request.params.find("labelSelector")->second, "app=web");
  EXPECT_EQ(request.params.find("allowWatchBookmarks")->second, "true");
  EXPECT_EQ(request.params.find("timeoutSeconds")->second, "290");
}

TEST_F(ClientTest, WatchEndsOkWhenTheCallbackSaysStop) {
  server_.SetHandler([&](const httplib::Request&, httplib::Response& response) {
    testing::ReplyChunks(response, {testing::WatchLine("ADDED", Object("a", "1")),
                                    testing::WatchLine("ADDED", Object("b", "2"))});
  });
  std::unique_ptr<Client> client = NewClient();
  int events = 0;
  const absl::Status status = client->Watch(kCollection, WatchOptions(), [&](const WatchEvent&) {
    ++events;
    return false;
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(events, 1);
}

TEST_F(ClientTest, WatchReportsExpiryFromHttp410AndFromAnInStreamErrorEvent) {
  std::atomic<int> calls{0};
  server_.SetHandler([&](const httplib::Request&, httplib::Response& response) {
    if (calls++ == 0) {
      return Reply(response, 410, StatusBody(410, "Expired", "too old resource version: 1 (5)"));
    }
    testing::ReplyChunks(
        response,
        {testing::WatchLine("ADDED", Object("a", "6")),
         testing::WatchLine(
             "ERROR", Json::parse(StatusBody(410, "Expired", "too old resource version: 6 (9)"))),
         testing::WatchLine("ADDED", Object("never", "10"))});
  });
  std::unique_ptr<Client> client = NewClient();
  std::vector<std::string> names;
  auto collect = [&](const WatchEvent& event) {
    names.push_back(MetadataField(event.object, "name"));
    return true;
  };
  const absl::Status http = client->Watch(kCollection, WatchOptions(), collect);
  EXPECT_TRUE(IsExpired(http)) << http;
  const absl::Status in_stream = client->Watch(kCollection, WatchOptions(), collect);
  EXPECT_TRUE(IsExpired(in_stream)) << in_stream;
  EXPECT_NE(std::string(in_stream.message()).find("too old resource version: 6"),
            std::string::npos);
  EXPECT_EQ(names, std::vector<std::string>{"a"});
}

TEST_F(ClientTest, SilentWatchEndsWithIdleTimeoutInBoundedTime) {
  ServeSilentWatch();
  std::unique_ptr<Client> client = NewClient();
  WatchOptions options;
  options.idle_timeout = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status =
      client->Watch(kCollection, options, [](const WatchEvent&) { return true; });
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(std::string(status.message()).find("idle timeout"), std::string::npos) << status;
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, seconds(5));
  server_.Shutdown();
}

TEST_F(ClientTest, CancelEndsASilentWatchPromptly) {
  ServeSilentWatch();
  std::unique_ptr<Client> client = NewClient();
  WatchCanceler canceler;
  absl::Status status;
  std::thread watcher([&] {
    status = client->Watch(
        kCollection, WatchOptions(), [](const WatchEvent&) { return true; }, &canceler);
  });
  ASSERT_TRUE(server_.WaitForRequests(1));
  const auto start = std::chrono::steady_clock::now();
  canceler.Cancel();
  watcher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2));
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  // Later watches with a cancelled canceler do not even connect.
  EXPECT_EQ(client
                ->Watch(
                    kCollection, WatchOptions(), [](const WatchEvent&) { return true; }, &canceler)
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(server_.requests().size(), 1u);
  server_.Shutdown();
}

}  // namespace
}  // namespace stampede::kube
