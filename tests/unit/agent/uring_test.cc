// The io_uring side of the engine against this kernel, on a TCP connection over 127.0.0.1: what
// the worker relies on from a send that completes only when it fails (Uring::SendNow), and from
// the ordinary send and multishot receive it falls back to.
#include "agent/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stampede::agent {
namespace {

constexpr int64_t kWaitNs = 200 * 1000 * 1000;

class UringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status s = ProbeUring(); !s.ok()) GTEST_SKIP() << "io_uring refused here: " << s;
    auto ring = Uring::Create(64, 8, 4096);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = *std::move(ring);
    // A connected pair: `client_` non-blocking as the worker's, `server_` blocking.
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(listener, 1), 0);
    ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
    client_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(client_, 0);
    ASSERT_TRUE(connect(client_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ||
                errno == EINPROGRESS);
    server_ = accept(listener, nullptr, nullptr);
    close(listener);
    ASSERT_GE(server_, 0);
  }
  void TearDown() override {
    ring_.reset();
    if (client_ >= 0) close(client_);
    if (server_ >= 0) close(server_);
  }

  // Submits what is queued and collects completions until `want` arrived or a wait ran dry.
  std::vector<Uring::Completion> Reap(size_t want) {
    std::vector<Uring::Completion> all;
    Uring::Completion out[16];
    do {
      const int n = ring_->SubmitAndWait(kWaitNs, out, 16);
      if (n == 0) break;
      all.insert(all.end(), out, out + n);
    } while (all.size() < want);
    return all;
  }

  // Reads exactly `n` bytes the client sent.
  std::string ServerRead(size_t n) {
    std::string got;
    char buf[65536];
    while (got.size() < n) {
      const ssize_t r = recv(server_, buf, std::min(sizeof buf, n - got.size()), 0);
      if (r <= 0) break;
      got.append(buf, static_cast<size_t>(r));
    }
    return got;
  }

  std::unique_ptr<Uring> ring_;
  int client_ = -1;
  int server_ = -1;
};

TEST_F(UringTest, ASendNowTheSocketTakesWholePostsNoCompletion) {
  const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ring_->SendNow(1, client_, request.data(), request.size());
  EXPECT_TRUE(Reap(1).empty());  // silence: it went whole
  EXPECT_EQ(ServerRead(request.size()), request);
}

TEST_F(UringTest, AFullQueueHandsWhatItHoldsToTheKernelAndCountsThatSubmit) {
  // The worker counts a silent SendNow's bytes at close only if it reached the kernel, which it
  // decides by Submits(): a full queue's early submit must count, and must carry what it held.
  const timeval bounded{2, 0};
  ASSERT_EQ(setsockopt(server_, SOL_SOCKET, SO_RCVTIMEO, &bounded, sizeof bounded), 0);
  const char byte = 'x';
  for (int i = 0; i < 64; ++i) ring_->SendNow(static_cast<uint64_t>(i), client_, &byte, 1);
  EXPECT_EQ(ring_->Submits(), 0u);
  char probe;
  EXPECT_EQ(recv(server_, &probe, 1, MSG_DONTWAIT), -1);  // queued is not sent
  EXPECT_EQ(errno, EAGAIN);

  ring_->SendNow(64, client_, &byte, 1);  // the queue's 64 slots are taken
  EXPECT_EQ(ring_->Submits(), 1u);
  EXPECT_EQ(ServerRead(64), std::string(64, 'x'));
  EXPECT_TRUE(Reap(1).empty());  // the 65th goes now, silently like the others
  EXPECT_EQ(ring_->Submits(), 2u);
  EXPECT_EQ(ServerRead(1), "x");
}

TEST_F(UringTest, ASendNowTheSocketCannotTakeWholeSaysHowMuchWentAndNeverWaits) {
  // Far more than a socket buffers while its peer reads nothing (a few MiB here).
  const std::string body(64 << 20, 'b');
  ring_->SendNow(2, client_, body.data(), body.size());
  std::vector<Uring::Completion> done = Reap(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 2u);
  ASSERT_GT(done[0].res, 0);  // a part went, and the completion says how much
  const size_t went = static_cast<size_t>(done[0].res);
  EXPECT_LT(went, body.size());

  // The socket is full now: a second SendNow takes nothing and says so at once.
  ring_->SendNow(3, client_, body.data(), 1000);
  done = Reap(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 3u);
  EXPECT_EQ(done[0].res, -EAGAIN);

  // The ordinary send waits for room: it completes once the peer has read what went before.
  ring_->Send(4, client_, body.data() + went, 1000);
  EXPECT_TRUE(Reap(1).empty());
  EXPECT_EQ(ServerRead(went).size(), went);
  done = Reap(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 4u);
  EXPECT_EQ(done[0].res, 1000);
  EXPECT_EQ(ServerRead(1000), body.substr(went, 1000));
}

TEST_F(UringTest, AMultishotReceiveDeliversEachChunkInARingBuffer) {
  ring_->ReceiveMultishot(5, client_);
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(send(server_, response.data(), response.size(), 0),
            static_cast<ssize_t>(response.size()));
  std::vector<Uring::Completion> done = Reap(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 5u);
  ASSERT_EQ(done[0].res, static_cast<int32_t>(response.size()));
  ASSERT_TRUE(ring_->HasBuffer(done[0]));
  EXPECT_TRUE(Uring::More(done[0]));
  EXPECT_EQ(std::string(ring_->BufferOf(done[0]), response.size()), response);
  ring_->ReturnBuffer(done[0]);

  // The peer's close ends it: a last completion of 0 bytes without "more".
  close(server_);
  server_ = -1;
  done = Reap(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].res, 0);
  EXPECT_FALSE(Uring::More(done[0]));
}

}  // namespace
}  // namespace stampede::agent
