#include "controller/kube/leader_election.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>

#include "absl/time/civil_time.h"
#include "tests/unit/controller/kube/fake_api_server.h"

namespace stampede::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeApiServer;
using testing::Reply;
using testing::ReplyJson;
using testing::StatusBody;

constexpr char kLeases[] = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
constexpr char kLease[] = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/stampede-controller";

// One Lease with the API server's optimistic concurrency.
class LeaseStore {
 public:
  void Serve(const httplib::Request& request, httplib::Response& response) {
    std::lock_guard<std::mutex> lock(mu_);
    if (request.method == "GET") {
      if (lease_.is_null() || hide_next_get_) {
        hide_next_get_ = false;
        return Reply(response, 404, StatusBody(404, "NotFound", "not found"));
      }
      return ReplyJson(response, 200, lease_);
    }
    if (request.method == "POST" && request.path == kLeases) {
      if (!lease_.is_null()) {
        return Reply(response, 409, StatusBody(409, "AlreadyExists", "already exists"));
      }
      lease_ = Json::parse(request.body);
      lease_["metadata"]["resourceVersion"] = std::to_string(++version_);
      return ReplyJson(response, 201, lease_);
    }
    if (request.method == "PUT" && request.path == kLease) {
      if (put_failure_ != 0) {
        ++failed_puts_;
        cv_.notify_all();
        return Reply(response, put_failure_, StatusBody(put_failure_, "", "injected failure"));
      }
      Json wanted = Json::parse(request.body);
      if (conflicts_ > 0 || wanted["metadata"]["resourceVersion"] != std::to_string(version_)) {
        if (conflicts_ > 0) --conflicts_;
        return Reply(response, 409, StatusBody(409, "Conflict", "the object has been modified"));
      }
      lease_ = wanted;
      lease_["metadata"]["resourceVersion"] = std::to_string(++version_);
      ++puts_;
      cv_.notify_all();
      return ReplyJson(response, 200, lease_);
    }
    Reply(response, 405, StatusBody(405, "MethodNotAllowed", request.method));
  }

  Json spec() {
    std::lock_guard<std::mutex> lock(mu_);
    return lease_.is_null() ? Json() : lease_["spec"];
  }
  void InjectConflicts(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    conflicts_ = n;
  }
  // The next GET answers 404 as if the lease did not exist yet (a read before a rival's create).
  void HideNextGet() {
    std::lock_guard<std::mutex> lock(mu_);
    hide_next_get_ = true;
  }
  void FailPuts(int http_status) {
    std::lock_guard<std::mutex> lock(mu_);
    put_failure_ = http_status;
  }
  // Waits until `n` PUTs have succeeded.
  bool WaitForPuts(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10), [&] { return puts_ >= n; });
  }
  // Waits until `n` PUTs have been answered with the injected failure.
  bool WaitForFailedPuts(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10), [&] { return failed_puts_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Json lease_;
  int version_ = 0;
  int conflicts_ = 0;
  int put_failure_ = 0;
  int puts_ = 0;
  int failed_puts_ = 0;
  bool hide_next_get_ = false;
};

// A steady clock and a wall clock the test moves by hand.
struct ManualClock {
  std::mutex mu;
  std::chrono::steady_clock::time_point steady{};
  absl::Time wall = absl::FromUnixSeconds(1'800'000'000);

  void Advance(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu);
    steady += d;
    wall += absl::FromChrono(d);
  }
  void Inject(LeaderElector::Options& options) {
    options.now = [this] {
      std::lock_guard<std::mutex> lock(mu);
      return steady;
    };
    options.wall_now = [this] {
      std::lock_guard<std::mutex> lock(mu);
      return wall;
    };
  }
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.SetHandler([this](const httplib::Request& request, httplib::Response& response) {
      store_.Serve(request, response);
    });
    Config config;
    config.server = server_.url();
    Client::Options options;
    options.max_attempts = 1;
    client_ = *Client::New(config, options);
  }

  LeaderElector::Options Options(const std::string& identity) {
    LeaderElector::Options options;
    options.lease_namespace = "ns";
    options.lease_name = "stampede-controller";
    options.identity = identity;
    return options;
  }

  FakeApiServer server_;
  LeaseStore store_;
  std::unique_ptr<Client> client_;
};

TEST(MicroTimeTest, FormatsRfc3339WithMicrosecondsInUtc) {
  const absl::Time time =
      absl::FromCivil(absl::CivilSecond(2026, 11, 27, 5, 31, 18), absl::UTCTimeZone()) +
      absl::Microseconds(123456);
  EXPECT_EQ(FormatMicroTime(time), "2026-11-27T05:31:18.123456Z");
  EXPECT_EQ(FormatMicroTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000000Z");
}

TEST_F(LeaderElectionTest, CreatesAMissingLeaseAndRenewsIt) {
  ManualClock clock;
  LeaderElector::Options options = Options("replica-a");
  clock.Inject(options);
  LeaderElector elector(client_.get(), options);
  EXPECT_FALSE(elector.IsLeader());
  ASSERT_TRUE(*elector.TryAcquireOrRenew());
  EXPECT_TRUE(elector.IsLeader());
  const Json created = store_.spec();
  EXPECT_EQ(created["holderIdentity"], "replica-a");
  EXPECT_EQ(created["leaseDurationSeconds"], 15);
  EXPECT_EQ(created["leaseTransitions"], 0);
  EXPECT_EQ(created["renewTime"], "2027-01-15T08:00:00.000000Z");  // the injected wall clock
  EXPECT_EQ(created["acquireTime"], created["renewTime"]);

  clock.Advance(milliseconds(2000));
  ASSERT_TRUE(*elector.TryAcquireOrRenew());
  const Json renewed = store_.spec();
  EXPECT_EQ(renewed["renewTime"], "2027-01-15T08:00:02.000000Z");
  EXPECT_EQ(renewed["holderIdentity"], "replica-a");
  EXPECT_NE(renewed["renewTime"], created["renewTime"]);
  EXPECT_EQ(renewed["acquireTime"], created["acquireTime"]);
  EXPECT_EQ(renewed["leaseTransitions"], 0);
  EXPECT_EQ(server_.Count("POST"), 1u);
  EXPECT_EQ(server_.Count("PUT"), 1u);
}

// A leader frozen past its renew deadline (SIGSTOP, a long pause) must not write on waking, even
// before its renew thread has run and noticed: HoldsLease turns false by the clock alone, and a
// FencedApi sends nothing.
TEST_F(LeaderElectionTest, AFrozenLeaderStopsHoldingTheLeaseByTheClockAlone) {
  ManualClock clock;
  LeaderElector::Options options = Options("replica-a");
  clock.Inject(options);
  LeaderElector elector(client_.get(), options);
  EXPECT_FALSE(elector.HoldsLease());
  ASSERT_TRUE(*elector.TryAcquireOrRenew());
  EXPECT_TRUE(elector.HoldsLease());
  clock.Advance(milliseconds(9'999));
  EXPECT_TRUE(elector.HoldsLease());
  clock.Advance(milliseconds(1));  // renew_deadline (10 s) without a renewal
  EXPECT_TRUE(elector.IsLeader()) << "the renew thread has not run yet";
  EXPECT_FALSE(elector.HoldsLease());

  FencedApi fenced(client_.get(), [&elector] { return elector.HoldsLease(); });
  const size_t puts = server_.Count("PUT");
  const absl::StatusOr<Json> write = fenced.Update(
      "/apis/coordination.k8s.io/v1/namespaces/ns/leases/stampede-controller", Json::object());
  EXPECT_EQ(write.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(write.status().message(),
            "PUT /apis/coordination.k8s.io/v1/namespaces/ns/leases/stampede-controller: not sent; "
            "this replica no longer holds the Lease");
  for (const absl::Status& s :
       {fenced.Create("/api/v1/namespaces/ns/pods", Json::object()).status(),
        fenced.MergePatch("/x", Json::object()).status(), fenced.Delete("/x").status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  EXPECT_EQ(server_.Count("PUT"), puts) << "nothing was sent";
  EXPECT_EQ(server_.Count("POST"), 1u) << "only the Lease's creation";
  EXPECT_TRUE(
      fenced.Get("/apis/coordination.k8s.io/v1/namespaces/ns/leases/stampede-controller").ok())
      << "reads pass";
  // Renewed again (say the freeze was short of the lease's expiry): it writes again.
  ASSERT_TRUE(*elector.TryAcquireOrRenew());
  EXPECT_TRUE(elector.HoldsLease());
}

TEST_F(LeaderElectionTest, CandidateWaitsWhileTheLeaderRenewsAndTakesOverOnceItStops) {
  ManualClock clock_a, clock_b;  // two nodes; B's clock alone decides when A's lease expired
  LeaderElector::Options options_a = Options("replica-a");
  clock_a.Inject(options_a);
  LeaderElector::Options options_b = Options("replica-b");
  clock_b.Inject(options_b);
  clock_b.Advance(milliseconds(3'600'000));  // skew does not matter
  LeaderElector a(client_.get(), options_a);
  LeaderElector b(client_.get(), options_b);

  ASSERT_TRUE(*a.TryAcquireOrRenew());
  EXPECT_FALSE(*b.TryAcquireOrRenew());  // B first sees the lease now
  clock_b.Advance(milliseconds(10'000));
  ASSERT_TRUE(*a.TryAcquireOrRenew());  // A renews...
  clock_b.Advance(milliseconds(10'000));
  EXPECT_FALSE(*b.TryAcquireOrRenew());  // ...so 20 s on B's clock is not an expiry
  clock_b.Advance(milliseconds(14'000));
  EXPECT_FALSE(*b.TryAcquireOrRenew());  // 14 s since B saw the renewal: still valid
  EXPECT_EQ(store_.spec()["holderIdentity"], "replica-a");
  clock_b.Advance(milliseconds(1'000));  // A stopped renewing 15 s ago
  ASSERT_TRUE(*b.TryAcquireOrRenew());
  EXPECT_TRUE(b.IsLeader());
  const Json spec = store_.spec();
  EXPECT_EQ(spec["holderIdentity"], "replica-b");
  EXPECT_EQ(spec["leaseTransitions"], 1);
  EXPECT_EQ(spec["acquireTime"], FormatMicroTime(clock_b.wall));

  EXPECT_FALSE(*a.TryAcquireOrRenew());  // A comes back: B holds a valid lease now
  EXPECT_FALSE(a.IsLeader());
}

TEST_F(LeaderElectionTest, ConflictOnUpdateLosesTheRaceAndTheNextTryWins) {
  ManualClock clock;
  LeaderElector::Options options = Options("replica-a");
  clock.Inject(options);
  LeaderElector elector(client_.get(), options);
  ASSERT_TRUE(*elector.TryAcquireOrRenew());
  store_.InjectConflicts(1);
  absl::StatusOr<bool> raced = elector.TryAcquireOrRenew();
  ASSERT_TRUE(raced.ok()) << raced.status();  // a 409 is not an error, just a lost round
  EXPECT_FALSE(*raced);
  EXPECT_TRUE(*elector.TryAcquireOrRenew());
  EXPECT_EQ(store_.spec()["holderIdentity"], "replica-a");
}

TEST_F(LeaderElectionTest, RaceToCreateTheLeaseHasOneWinner) {
  LeaderElector a(client_.get(), Options("replica-a"));
  ASSERT_TRUE(*a.TryAcquireOrRenew());
  // B read "no lease" before A created it; its POST then meets AlreadyExists.
  LeaderElector b(client_.get(), Options("replica-b"));
  store_.HideNextGet();
  absl::StatusOr<bool> raced = b.TryAcquireOrRenew();
  ASSERT_TRUE(raced.ok()) << raced.status();
  EXPECT_FALSE(*raced);
  EXPECT_FALSE(b.IsLeader());
  EXPECT_EQ(server_.Count("POST"), 2u);
  EXPECT_EQ(store_.spec()["holderIdentity"], "replica-a");
}

TEST_F(LeaderElectionTest, ReleaseLetsTheOtherReplicaTakeOverAtOnce) {
  LeaderElector::Options options_a = Options("replica-a");
  options_a.renew_period = milliseconds(20);
  LeaderElector a(client_.get(), options_a);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(a.WaitForLeadership(stop));
  ASSERT_TRUE(store_.WaitForPuts(2));  // the renew loop runs

  LeaderElector::Options options_b = Options("replica-b");
  options_b.lease_duration = seconds(60);  // B cannot win by expiry within this test
  options_b.retry_period = milliseconds(20);
  LeaderElector b(client_.get(), options_b);
  std::promise<bool> b_won;
  std::future<bool> b_result = b_won.get_future();
  std::thread candidate([&] { b_won.set_value(b.WaitForLeadership(stop)); });
  struct JoinOnExit {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinOnExit() {
      stop.store(true);
      thread.join();
    }
  } join_on_exit{stop, candidate};
  // B has tried at least twice (two GETs beyond A's) without winning.
  const size_t gets_before = server_.Count("GET");
  ASSERT_TRUE(server_.WaitFor([&](const std::vector<FakeApiServer::Seen>& seen) {
    size_t gets = 0;
    for (const FakeApiServer::Seen& request : seen) gets += request.method == "GET" ? 1 : 0;
    return gets >= gets_before + 2;
  }));
  EXPECT_FALSE(b.IsLeader());
  EXPECT_EQ(b_result.wait_for(milliseconds(0)), std::future_status::timeout);

  ASSERT_TRUE(a.Release().ok());
  EXPECT_FALSE(a.IsLeader());
  ASSERT_EQ(b_result.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_TRUE(b_result.get());
  EXPECT_TRUE(b.IsLeader());
  const Json spec = store_.spec();
  EXPECT_EQ(spec["holderIdentity"], "replica-b");
  EXPECT_EQ(spec["leaseTransitions"], 1);
}

TEST_F(LeaderElectionTest, WaitForLeadershipReturnsFalseWhenStopped) {
  LeaderElector holder(client_.get(), Options("replica-a"));
  ASSERT_TRUE(*holder.TryAcquireOrRenew());
  LeaderElector::Options options = Options("replica-b");
  options.retry_period = milliseconds(20);
  LeaderElector candidate(client_.get(), options);
  std::atomic<bool> stop{false};
  std::future<bool> result =
      std::async(std::launch::async, [&] { return candidate.WaitForLeadership(stop); });
  ASSERT_TRUE(server_.WaitForRequests(3));  // the candidate is trying
  stop.store(true);
  ASSERT_EQ(result.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_FALSE(result.get());
  EXPECT_FALSE(candidate.IsLeader());
}

TEST_F(LeaderElectionTest, LeaderStepsDownWhenRenewalsFailPastTheDeadline) {
  ManualClock clock;  // the renew deadline passes only when the test says so
  LeaderElector::Options options = Options("replica-a");
  clock.Inject(options);
  options.renew_period = milliseconds(20);
  options.renew_deadline = seconds(10);
  std::mutex mu;
  std::condition_variable cv;
  int lost = 0;
  options.on_lost = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++lost;
    cv.notify_all();
  };
  LeaderElector elector(client_.get(), options);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(elector.WaitForLeadership(stop));
  ASSERT_TRUE(store_.WaitForPuts(3));  // renewals succeed meanwhile
  EXPECT_TRUE(elector.IsLeader());

  store_.FailPuts(500);
  ASSERT_TRUE(store_.WaitForFailedPuts(3));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(lost, 0);  // failed renewals within the deadline keep the leadership
  }
  EXPECT_TRUE(elector.IsLeader());
  clock.Advance(seconds(10));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return lost > 0; }));
  }
  EXPECT_FALSE(elector.IsLeader());
  EXPECT_EQ(lost, 1);
}

}  // namespace
}  // namespace stampede::kube
