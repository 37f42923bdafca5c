#include "common/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace stampede::common {
namespace {

TEST(CondVarTest, WaitForTimesOutWithoutASignal) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_FALSE(cv.WaitFor(&mu, std::chrono::milliseconds(1)));
  EXPECT_FALSE(cv.WaitUntil(&mu, std::chrono::steady_clock::now()));
}

TEST(CondVarTest, AWaiterWakesWhenTheConditionIsSignalled) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread signaller([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!ready && cv.WaitUntil(&mu, deadline)) {
    }
    EXPECT_TRUE(ready);
  }
  signaller.join();
}

}  // namespace
}  // namespace stampede::common
