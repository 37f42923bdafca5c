// The floor client of scripts/bench (tests/bench/floor_client.cc) against the real test target:
// the requests it counts must be ones the target served, on either backend, and a server it cannot
// measure must stop it with the reason. Its figure bounds what any client reaches in part 1, so a
// floor that counted responses it never got would make every other client look worse than it is.
#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace stampede::testing {
namespace {

using std::chrono::seconds;

// "requests=N errors=E response_bytes=L": the value after `key=`, or -1.
long Field(const std::string& out, const std::string& key) {
  const size_t at = out.find(key + "=");
  if (at == std::string::npos) return -1;
  return std::stol(out.substr(at + key.size() + 1));
}

CommandOutput RunFloor(int port, const std::string& io, const std::string& path = "/") {
  return RunToEnd({STAMPEDE_FLOOR_CLIENT, "--port", std::to_string(port), "--path", path,
                   "--connections", "8", "--seconds", "1", "--io", io},
                  seconds(30));
}

class FloorClient : public ::testing::TestWithParam<std::string> {};

TEST_P(FloorClient, CountsOnlyResponsesTheTargetServed) {
  TestTarget target;
  const CommandOutput out = RunFloor(target.port(), GetParam());
  ASSERT_EQ(out.exit_code, 0) << out.err;
  const long requests = Field(out.out, "requests");
  EXPECT_EQ(Field(out.out, "errors"), 0) << out.out;
  EXPECT_GT(requests, 100) << out.out;
  // The target counts every request it answered: the first one, which told the client the
  // response's length, then each one the client counted, and at most one per connection that was
  // still on its way when the client stopped.
  const long served = target.Served();
  EXPECT_LE(requests + 1, served);
  EXPECT_GE(requests + 1 + 8, served);
}

TEST_P(FloorClient, StopsWhenTheFirstResponseIsNotA200) {
  TestTarget target;
  const CommandOutput out = RunFloor(target.port(), GetParam(), "/no-such-page");
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("the first response is not a 200"), std::string::npos) << out.err;
  EXPECT_EQ(Field(out.out, "requests"), -1) << out.out;
}

TEST_P(FloorClient, StopsWhenTheServerGoesAway) {
  TestTarget target;
  // /close answers, then closes the connection: the next request meets a closed socket.
  const CommandOutput out = RunFloor(target.port(), GetParam(), "/close");
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("a connection failed or closed"), std::string::npos) << out.err;
}

INSTANTIATE_TEST_SUITE_P(Backends, FloorClient, ::testing::Values("epoll", "uring"));

}  // namespace
}  // namespace stampede::testing
