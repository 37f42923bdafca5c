// Compiled, not run, by two tests (clang only): as it is, it must pass -Wthread-safety -Werror;
// with STAMPEDE_UNLOCKED_ACCESS defined it must fail, naming the member read without its lock.
// That the second fails is what proves the annotations in the tree are checked at all.
#include "common/mutex.h"

namespace {

class Counter {
 public:
  void Add() {
    stampede::common::MutexLock lock(&mu_);
    ++count_;
  }
  int Read() {
#ifdef STAMPEDE_UNLOCKED_ACCESS
    return count_;
#else
    stampede::common::MutexLock lock(&mu_);
    return count_;
#endif
  }
  void WaitForOne() {
    stampede::common::MutexLock lock(&mu_);
    while (count_ == 0) cv_.Wait(&mu_);
  }

 private:
  stampede::common::Mutex mu_;
  stampede::common::CondVar cv_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

int main() {
  Counter c;
  c.Add();
  c.WaitForOne();
  return c.Read() == 1 ? 0 : 1;
}
