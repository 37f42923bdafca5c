#include "controller/kube/informer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/unit/controller/kube/fake_api_server.h"

namespace stampede::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeApiServer;
using testing::Object;
using testing::ReplyChunks;
using testing::ReplyJson;
using testing::StatusBody;
using testing::WatchLine;

constexpr char kCollection[] = "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests";

Json List(const std::vector<Json>& items, const std::string& resource_version) {
  return {{"kind", "LoadTestList"},
          {"apiVersion", "stampede.dev/v1alpha1"},
          {"metadata", {{"resourceVersion", resource_version}}},
          {"items", items}};
}

bool IsWatch(const FakeApiServer::Seen& seen) { return seen.params.count("watch") > 0; }

// What the informer's handler saw, as "name rv" or "-name" for deletions.
class Recorder {
 public:
  Informer::Handler Handler() {
    return [this](const Json& object, bool deleted) {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back((deleted ? "-" : "") + MetadataField(object, "name") + " " +
                       MetadataField(object, "resourceVersion"));
      cv_.notify_all();
    };
  }
  std::vector<std::string> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, seconds(10), [&] { return calls_.size() >= n; });
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> calls_;
};

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config;
    config.server = server_.url();
    Client::Options options;
    options.max_attempts = 1;
    client_ = *Client::New(config, options);
    Informer::Options informer_options;
    informer_options.backoff_initial = milliseconds(1);
    informer_options.backoff_max = milliseconds(5);
    informer_ = std::make_unique<Informer>(client_.get(), kCollection, recorder_.Handler(),
                                           informer_options);
  }
  void TearDown() override {
    StopPromptly();
    // The client's kept connections close first: the server would wait out their keep-alive.
    informer_.reset();
    client_.reset();
    server_.Shutdown();
  }

  // A watch that stays open and silent until the server shuts down.
  void ReplySilently(httplib::Response& response) {
    response.status = 200;
    response.set_chunked_content_provider("application/json", [this](size_t, httplib::DataSink&) {
      server_.BlockUntilShutdown();
      return false;
    });
  }

  // The n-th (0-based) watch request, once it has arrived.
  FakeApiServer::Seen WaitForWatch(size_t n) {
    FakeApiServer::Seen found;
    EXPECT_TRUE(server_.WaitFor([&](const std::vector<FakeApiServer::Seen>& seen) {
      size_t watches = 0;
      for (const FakeApiServer::Seen& request : seen) {
        if (IsWatch(request) && watches++ == n) {
          found = request;
          return true;
        }
      }
      return false;
    }));
    return found;
  }

  size_t Lists() const {
    size_t lists = 0;
    for (const FakeApiServer::Seen& seen : server_.requests()) lists += IsWatch(seen) ? 0 : 1;
    return lists;
  }

  // Stop must end a silent watch at once, not after its idle timeout.
  void StopPromptly() {
    const auto start = std::chrono::steady_clock::now();
    informer_->Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2));
  }

  FakeApiServer server_;
  std::unique_ptr<Client> client_;
  Recorder recorder_;
  std::unique_ptr<Informer> informer_;
  std::atomic<int> watches_{0};
  std::atomic<int> lists_{0};
};

TEST_F(InformerTest, ListsThenWatchesAppliesEventsAndRewatchesFromTheLastVersion) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      return ReplyJson(response, 200, List({Object("a", "2"), Object("b", "3")}, "5"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    // A stream the server ends cleanly after three events.
    ReplyChunks(response, {WatchLine("ADDED", Object("c", "6")),
                           WatchLine("MODIFIED", Object("a", "7", {{"replicas", 2}})),
                           WatchLine("DELETED", Object("b", "8"))});
  });
  EXPECT_FALSE(informer_->HasSynced());
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(seconds(10)));
  EXPECT_EQ(recorder_.WaitFor(5), (std::vector<std::string>{"a 2", "b 3", "c 6", "a 7", "-b 8"}));

  EXPECT_EQ(WaitForWatch(0).params.find("resourceVersion")->second, "5");
  // The clean end is followed by a watch from the last event's version, not by a new LIST.
  EXPECT_EQ(WaitForWatch(1).params.find("resourceVersion")->second, "8");
  EXPECT_EQ(Lists(), 1u);
  EXPECT_EQ(informer_->ResourceVersion(), "8");
  ASSERT_TRUE(informer_->Get("ns/a").has_value());
  EXPECT_EQ((*informer_->Get("ns/a"))["spec"]["replicas"], 2);
  EXPECT_FALSE(informer_->Get("ns/b").has_value());
  EXPECT_TRUE(informer_->Get("ns/c").has_value());
  EXPECT_EQ(informer_->List().size(), 2u);
}

TEST_F(InformerTest, ListSharedHandsOutObjectsThatLaterEventsLeaveAlone) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  server_.SetHandler([&, released](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      return ReplyJson(response, 200, List({Object("a", "2")}, "5"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    released.wait_for(seconds(10));  // until the test holds the listed object
    ReplyChunks(response, {WatchLine("MODIFIED", Object("a", "7", {{"replicas", 2}}))});
  });
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(seconds(10)));
  const std::vector<std::shared_ptr<const Json>> held = informer_->ListShared();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(*held[0], informer_->List()[0]);
  release.set_value();
  EXPECT_EQ(recorder_.WaitFor(2), (std::vector<std::string>{"a 2", "a 7"}));
  EXPECT_EQ(MetadataField(*held[0], "resourceVersion"), "2");
  EXPECT_TRUE(held[0]->at("spec").empty());
  ASSERT_EQ(informer_->ListShared().size(), 1u);
  EXPECT_EQ(MetadataField(*informer_->ListShared()[0], "resourceVersion"), "7");
}

TEST_F(InformerTest, TransformShapesWhatIsCachedAndWhatTheHandlerSees) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      return ReplyJson(response, 200, List({Object("a", "2", {{"replicas", 1}})}, "5"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    ReplyChunks(response, {WatchLine("ADDED", Object("b", "6", {{"replicas", 3}})),
                           WatchLine("DELETED", Object("a", "7", {{"replicas", 1}}))});
  });
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Json> handled;
  Informer::Options options;
  options.transform = [](Json& object) {
    object.erase("spec");
    object["metadata"]["labels"]["trimmed"] = "yes";
  };
  informer_ = std::make_unique<Informer>(
      client_.get(), kCollection,
      [&](const Json& object, bool) {
        std::lock_guard<std::mutex> lock(mu);
        handled.push_back(object);
        cv.notify_all();
      },
      options);
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(seconds(10)));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return handled.size() >= 3; }));
    for (const Json& object : handled) {  // the listed a, the added b, the deleted a
      EXPECT_FALSE(object.contains("spec")) << object.dump();
      EXPECT_EQ(object["metadata"]["labels"]["trimmed"], "yes") << object.dump();
    }
  }
  EXPECT_FALSE(informer_->Get("ns/a").has_value());
  const std::optional<Json> b = informer_->Get("ns/b");
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(b->contains("spec"));
  EXPECT_EQ(MetadataField(*b, "resourceVersion"), "6");
  EXPECT_EQ(informer_->ResourceVersion(), "7");
  informer_->Stop();  // before the handler's locals go
}

TEST_F(InformerTest, BookmarkOnlyAdvancesTheResourceVersion) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      return ReplyJson(response, 200, List({Object("a", "2")}, "5"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    ReplyChunks(response, {WatchLine("BOOKMARK", {{"kind", "LoadTest"},
                                                  {"apiVersion", "stampede.dev/v1alpha1"},
                                                  {"metadata", {{"resourceVersion", "9"}}}})});
  });
  informer_->Start();
  EXPECT_EQ(WaitForWatch(1).params.find("resourceVersion")->second, "9");
  EXPECT_EQ(recorder_.WaitFor(1), std::vector<std::string>{"a 2"});  // nothing for the bookmark
  EXPECT_EQ(informer_->List().size(), 1u);
  EXPECT_EQ(MetadataField(*informer_->Get("ns/a"), "resourceVersion"), "2");
  EXPECT_EQ(Lists(), 1u);
}

TEST_F(InformerTest, InStreamExpiryRelistsAndReplacesTheCache) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      if (lists_++ == 0) {
        return ReplyJson(response, 200, List({Object("a", "1"), Object("b", "2")}, "5"));
      }
      // Meanwhile a changed, b went away, d appeared; c is as the watch reported it.
      return ReplyJson(response, 200,
                       List({Object("a", "10"), Object("c", "6"), Object("d", "11")}, "20"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    ReplyChunks(response,
                {WatchLine("ADDED", Object("c", "6")),
                 WatchLine("ERROR", Json::parse(StatusBody(410, "Expired",
                                                           "too old resource version: 5 (15)")))});
  });
  informer_->Start();
  EXPECT_EQ(recorder_.WaitFor(6),
            (std::vector<std::string>{"a 1", "b 2", "c 6", "-b 2", "a 10", "d 11"}));
  EXPECT_EQ(WaitForWatch(1).params.find("resourceVersion")->second, "20");
  EXPECT_EQ(Lists(), 2u);
  std::vector<std::string> cached;
  for (const Json& object : informer_->List()) {
    cached.push_back(ObjectKey(object) + " " + MetadataField(object, "resourceVersion"));
  }
  EXPECT_EQ(cached, (std::vector<std::string>{"ns/a 10", "ns/c 6", "ns/d 11"}));
}

TEST_F(InformerTest, Http410OnWatchRelists) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      if (lists_++ == 0) return ReplyJson(response, 200, List({Object("a", "1")}, "5"));
      return ReplyJson(response, 200, List({}, "8"));
    }
    if (watches_++ > 0) return ReplySilently(response);
    testing::Reply(response, 410, StatusBody(410, "Expired", "too old resource version: 5 (7)"));
  });
  informer_->Start();
  EXPECT_EQ(recorder_.WaitFor(2), (std::vector<std::string>{"a 1", "-a 1"}));
  EXPECT_EQ(WaitForWatch(1).params.find("resourceVersion")->second, "8");
  EXPECT_EQ(Lists(), 2u);
  EXPECT_TRUE(informer_->List().empty());
}

TEST_F(InformerTest, FailedListIsRetriedAfterBackoffBeforeSyncing) {
  server_.SetHandler([&](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("watch").empty()) {
      if (lists_++ == 0) {
        return testing::Reply(response, 403, StatusBody(403, "Forbidden", "RBAC says no"));
      }
      return ReplyJson(response, 200, List({Object("a", "1")}, "5"));
    }
    ReplySilently(response);
  });
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(seconds(10)));
  EXPECT_EQ(lists_.load(), 2);
  EXPECT_TRUE(informer_->Get("ns/a").has_value());
}

}  // namespace
}  // namespace stampede::kube
