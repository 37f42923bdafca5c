// stampede-fake-agents: plays N agents against one controller over real gRPC, for the controller
// benchmark (scripts/bench-controller). Each agent is one bidirectional stream driven by one
// callback reactor; a handful of channels carry the streams, and gRPC's own few threads run the
// reactions. The agents follow the protocol of agent/session.cc (Hello, Ready, one Report per
// second at the wall-clock boundary after Start, Done) but measure nothing: their reports are
// drawn from a few precomputed one-second results with log-normal latencies, so the simulator
// costs little next to the controller it loads. The streams carry raw bytes (a generic stub): each
// result is serialized once, and a report is that shared slice followed by a few bytes with its
// interval and users; protobuf merges the two Report fields when the controller parses them. At
// 10,000 agents, serializing every report anew took most of the simulator's CPU and delayed the
// last reports of each second by up to 2 s, which the controller's lag then included.
//
// Prints one JSON line with its own counters at the end; exits 0 when every stream finished OK.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/mutex.h"
#include "common/report.h"
#include "common/stats.h"
#include "stampede/v1/agent.grpc.pb.h"

namespace stampede::bench {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int kVariants = 64;  // distinct one-second reports the agents rotate through

const char kUsage[] =
    "usage: stampede-fake-agents --controller HOST:PORT --run ID [--token T] --agents N "
    "[--requests R]\n"
    "                            --duration D [--samples-per-second S] [--channels C] [--seed X]\n"
    "                            [--metrics-url http://HOST:PORT/metrics [--poll-ms 50]]\n"
    "  Plays N agents of one run over real gRPC (one stream each, C channels, default 10).\n"
    "  Each reports R request names (default 5) every second, S samples in all (default 2000).\n"
    "  The token may come from STAMPEDE_TOKEN instead of --token.\n"
    "  --metrics-url: poll the controller's /metrics and time when each interval appears there\n"
    "  (stampede_last_interval_seconds) after its end.\n";

int64_t RealNs() { return common::RealtimeNanos(); }
int64_t MonoNs() { return common::MonotonicNanos(); }

void SleepUntilReal(int64_t unix_ns) {
  timespec ts{static_cast<time_t>(unix_ns / kSecond), static_cast<long>(unix_ns % kSecond)};
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

struct Options {
  std::string controller;
  std::string run;
  std::string token;
  uint32_t agents = 0;
  uint32_t requests = 5;
  int64_t duration_ns = 0;
  uint32_t samples_per_second = 2000;
  uint32_t channels = 10;
  uint64_t seed = 1;
  std::string metrics_url;  // empty: no polling
  uint32_t poll_ms = 50;
};

absl::StatusOr<Options> ParseFlags(int argc, char** argv) {
  Options opt;
  if (const char* t = std::getenv("STAMPEDE_TOKEN"); t != nullptr) opt.token = t;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, ": needs a value"));
    const std::string value = argv[++i];
    auto number = [&](auto* into, uint64_t min, uint64_t max) {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(value, &v) || v < min || v > max) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": \"", value, "\" is not a number in ", min, "..", max));
      }
      *into = static_cast<std::remove_pointer_t<decltype(into)>>(v);
      return absl::OkStatus();
    };
    absl::Status s;
    if (flag == "--controller") {
      opt.controller = value;
    } else if (flag == "--run") {
      opt.run = value;
    } else if (flag == "--token") {
      opt.token = value;
    } else if (flag == "--agents") {
      s = number(&opt.agents, 1, 100000);
    } else if (flag == "--requests") {
      s = number(&opt.requests, 1, 1000);
    } else if (flag == "--samples-per-second") {
      s = number(&opt.samples_per_second, 0, 10'000'000);
    } else if (flag == "--channels") {
      s = number(&opt.channels, 1, 10000);
    } else if (flag == "--metrics-url") {
      opt.metrics_url = value;
    } else if (flag == "--poll-ms") {
      s = number(&opt.poll_ms, 1, 60000);
    } else if (flag == "--seed") {
      s = number(&opt.seed, 0, UINT64_MAX);
    } else if (flag == "--duration") {
      auto d = common::ParseDuration(value);
      if (!d.ok())
        return absl::InvalidArgumentError(absl::StrCat("--duration: ", d.status().message()));
      opt.duration_ns = absl::ToInt64Nanoseconds(*d);
      if (opt.duration_ns < kSecond || opt.duration_ns % kSecond != 0) {
        return absl::InvalidArgumentError("--duration: whole seconds, at least 1s");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown flag"));
    }
    if (!s.ok()) return s;
  }
  if (opt.controller.empty()) return absl::InvalidArgumentError("--controller: is required");
  if (opt.run.empty()) return absl::InvalidArgumentError("--run: is required");
  if (opt.token.empty())
    return absl::InvalidArgumentError("--token (or STAMPEDE_TOKEN): is required");
  if (opt.agents == 0) return absl::InvalidArgumentError("--agents: is required");
  if (opt.duration_ns == 0) return absl::InvalidArgumentError("--duration: is required");
  opt.channels = std::min(opt.channels, opt.agents);
  return opt;
}

// The Session method's full name, for the generic stub.
const char kSessionMethod[] = "/stampede.v1.AgentService/Session";

// One second of one agent's results, serialized once as an AgentMessage holding that Report (with
// no interval or users), and how many requests it counts.
struct ReportVariant {
  grpc::Slice bytes;
  uint64_t requests = 0;
};

grpc::ByteBuffer ToBytes(const google::protobuf::MessageLite& message) {
  const std::string s = message.SerializeAsString();
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

// Request r's latencies are log-normal around a median that grows with r (2 ms, 5 ms, 12 ms, ...),
// the share of samples falls with r, and 0.5 % of responses are 5xx: roughly a web API's mix.
std::vector<ReportVariant> MakeVariants(const Options& opt) {
  std::mt19937_64 rng(opt.seed);
  std::vector<double> weights;
  double weight_sum = 0;
  for (uint32_t r = 0; r < opt.requests; ++r) weight_sum += weights.emplace_back(1.0 / (1 + r));
  std::vector<ReportVariant> variants(kVariants);
  for (ReportVariant& v : variants) {
    common::IntervalStats stats(opt.requests);
    std::uniform_real_distribution<double> jitter(0.95, 1.05);
    for (uint32_t r = 0; r < opt.requests; ++r) {
      const double median_ns = 2e6 * std::pow(2.5, r % 6);
      std::lognormal_distribution<double> latency(std::log(median_ns), 0.6);
      std::bernoulli_distribution server_error(0.005);
      const auto n = static_cast<uint64_t>(
          std::llround(opt.samples_per_second * weights[r] / weight_sum * jitter(rng)));
      common::RequestStats& rs = stats.requests[r];
      for (uint64_t i = 0; i < n; ++i) {
        rs.latency.Record(static_cast<uint64_t>(latency(rng)));
        const bool error = server_error(rng);
        ++rs.outcomes[static_cast<size_t>(error ? common::Outcome::kUnexpectedStatus
                                                : common::Outcome::kOk)];
        ++rs.status_classes[error ? 5 : 2];
      }
      v.requests += n;
    }
    stats.in_flight = 20;
    stats.cpu_seconds = 0.2;
    stats.busiest_thread_cpu = 0.2;
    stats.max_timer_lag_ns = 300'000;
    stats.bytes_read = v.requests * 300;
    stats.bytes_written = v.requests * 120;
    v1::AgentMessage m;
    common::IntervalToReport(stats, m.mutable_report());
    v.bytes = grpc::Slice(m.SerializeAsString());
  }
  return variants;
}

// Counters shared by all agents; the main thread waits on `cv` for them to move.
struct Fleet {
  common::Mutex mu;
  common::CondVar cv;
  uint32_t assigned ABSL_GUARDED_BY(mu) = 0;
  uint32_t started ABSL_GUARDED_BY(mu) = 0;
  uint32_t finished ABSL_GUARDED_BY(mu) = 0;
  uint32_t finished_ok ABSL_GUARDED_BY(mu) = 0;
  uint32_t stopped_by_controller ABSL_GUARDED_BY(mu) = 0;
  int64_t start_unix_ns ABSL_GUARDED_BY(mu) = 0;
  uint32_t start_disagreements ABSL_GUARDED_BY(mu) = 0;
  std::string first_error ABSL_GUARDED_BY(mu);

  std::atomic<uint64_t> reports_written{0};
  std::atomic<uint64_t> requests_written{0};
  std::atomic<uint64_t> heartbeats_written{0};
  std::atomic<uint64_t> write_failures{0};
  std::atomic<uint64_t> heartbeats_received{0};
  std::atomic<uint64_t> max_queue{0};

  void Error(const std::string& what) {
    common::MutexLock lock(&mu);
    if (first_error.empty()) first_error = what;
  }
};

// One agent's stream. One read and one write in flight; reactions never block. Writes are started
// from reactions and from the main thread, so a hold keeps the call alive until this agent has
// written its last message (or the stream broke); gRPC calls are made outside mu_.
class AgentReactor final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  AgentReactor(Fleet* fleet, uint32_t index) : fleet_(fleet), index_(index) {}

  void Begin(grpc::GenericStub* stub, const Options& opt) {
    context_.set_wait_for_ready(true);
    stub->PrepareBidiStreamingCall(&context_, kSessionMethod, grpc::StubOptions(), this);
    AddHold();
    StartRead(&in_bytes_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_run(opt.run);
    hello.mutable_hello()->set_token(opt.token);
    hello.mutable_hello()->set_index(index_);
    hello.mutable_hello()->set_version("fake");
    hello.mutable_hello()->set_hostname(absl::StrCat("fake-", index_));
    hello.mutable_hello()->set_threads(1);
    Send(ToBytes(hello), Kind::kOther, 0);
    StartCall();
  }

  enum class Kind { kOther, kReport, kDone };

  // Queues one serialized AgentMessage; false when the stream takes no more writes. `requests` is
  // what a report counts, added to the fleet's total once it is written.
  bool Send(grpc::ByteBuffer message, Kind kind, uint64_t requests) {
    Step step;
    {
      common::MutexLock lock(&mu_);
      if (writes_closed_) return false;
      writes_closed_ = kind == Kind::kDone;
      queue_.push_back({std::move(message), kind, requests});
      uint64_t depth = queue_.size(), seen = fleet_->max_queue.load();
      while (depth > seen && !fleet_->max_queue.compare_exchange_weak(seen, depth)) {
      }
      last_queued_ns_ = MonoNs();
      step = NextLocked();
    }
    Do(step);
    return true;
  }

  // The variant's shared bytes, then an AgentMessage whose Report has only this second's interval
  // and users: parsed together they are one Report with both.
  bool SendReport(int64_t interval, const ReportVariant& variant) {
    v1::AgentMessage m;
    m.mutable_report()->set_interval(interval);
    m.mutable_report()->set_active_users(users_.load());
    if (interval == 0) m.mutable_report()->set_started_unix_nanos(start_unix_ns_.load());
    grpc::Slice parts[2] = {variant.bytes, grpc::Slice(m.SerializeAsString())};
    return Send(grpc::ByteBuffer(parts, 2), Kind::kReport, variant.requests);
  }

  void SendDone() {
    v1::AgentMessage m;
    m.mutable_done();
    Send(ToBytes(m), Kind::kDone, 0);
  }

  // A heartbeat, when nothing was queued for a second and the stream still takes writes.
  void MaybeHeartbeat(int64_t now_mono) {
    {
      common::MutexLock lock(&mu_);
      if (writes_closed_ || now_mono - last_queued_ns_ < kSecond) return;
    }
    v1::AgentMessage m;
    m.mutable_heartbeat()->set_unix_nanos(RealNs());
    if (Send(ToBytes(m), Kind::kOther, 0)) fleet_->heartbeats_written.fetch_add(1);
  }

  bool started() const { return start_unix_ns_.load() != 0 && !stopped_.load(); }
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    v1::ControllerMessage message;
    if (ok &&
        !grpc::SerializationTraits<v1::ControllerMessage>::Deserialize(&in_bytes_, &message).ok()) {
      fleet_->Error(absl::StrCat("agent ", index_, ": a controller message did not parse"));
      Cancel();
      ok = false;  // as though the stream ended: reads stop, and Done is never written
    }
    if (!ok) {
      Step step;
      {
        common::MutexLock lock(&mu_);
        // The controller ended the stream. Before our Done was written that is a failure; a write
        // still in flight (the Done, perhaps) is judged when it completes.
        read_closed_ = true;
        writes_closed_ = true;
        queue_.clear();
        if (!writing_ && !done_written_) broken_ = true;
        step = NextLocked();
      }
      Do(step);
      return;
    }
    switch (message.body_case()) {
      case v1::ControllerMessage::kAssignment: {
        users_.store(message.assignment().users());
        {
          common::MutexLock lock(&fleet_->mu);
          ++fleet_->assigned;
        }
        fleet_->cv.SignalAll();
        v1::AgentMessage ready;
        ready.mutable_ready();
        Send(ToBytes(ready), Kind::kOther, 0);
        break;
      }
      case v1::ControllerMessage::kStart: {
        const int64_t start = message.start().start_unix_nanos();
        start_unix_ns_.store(start);
        {
          common::MutexLock lock(&fleet_->mu);
          ++fleet_->started;
          if (fleet_->start_unix_ns == 0) fleet_->start_unix_ns = start;
          if (fleet_->start_unix_ns != start) ++fleet_->start_disagreements;
        }
        fleet_->cv.SignalAll();
        break;
      }
      case v1::ControllerMessage::kStop:
        // As a real agent: stop reporting and say done.
        if (!stopped_.exchange(true)) {
          {
            common::MutexLock lock(&fleet_->mu);
            ++fleet_->stopped_by_controller;
          }
          fleet_->Error(
              absl::StrCat("agent ", index_, ": controller sent Stop: ", message.stop().reason()));
          SendDone();
        }
        break;
      case v1::ControllerMessage::kReject:
        stopped_.store(true);
        fleet_->Error(absl::StrCat("agent ", index_, ": rejected: ", message.reject().reason()));
        SendDone();
        break;
      case v1::ControllerMessage::kHeartbeat:
        fleet_->heartbeats_received.fetch_add(1, std::memory_order_relaxed);
        break;
      default:
        break;
    }
    StartRead(&in_bytes_);
  }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      common::MutexLock lock(&mu_);
      writing_ = false;
      if (ok) {
        if (current_.kind == Kind::kReport) {
          fleet_->reports_written.fetch_add(1, std::memory_order_relaxed);
          fleet_->requests_written.fetch_add(current_.requests, std::memory_order_relaxed);
        }
        if (current_.kind == Kind::kDone) done_written_ = true;
        if (read_closed_ && !done_written_) broken_ = true;
      } else {
        fleet_->write_failures.fetch_add(1 + queue_.size(), std::memory_order_relaxed);
        broken_ = true;
        writes_closed_ = true;
        queue_.clear();
      }
      step = NextLocked();
    }
    Do(step);
  }

  void OnDone(const grpc::Status& status) override {
    bool ok;
    {
      common::MutexLock lock(&mu_);
      ok = status.ok() && done_written_ && !broken_;
    }
    if (!status.ok()) {
      fleet_->Error(absl::StrCat("agent ", index_, ": stream ended with status ",
                                 status.error_code(), " \"", status.error_message(), "\""));
    } else if (!ok) {
      fleet_->Error(absl::StrCat("agent ", index_,
                                 ": the controller closed the stream before Done was written"));
    }
    {
      common::MutexLock lock(&fleet_->mu);
      ++fleet_->finished;
      fleet_->finished_ok += ok;
    }
    fleet_->cv.SignalAll();
  }

 private:
  struct Outgoing {
    grpc::ByteBuffer message;
    Kind kind = Kind::kOther;
    uint64_t requests = 0;
  };
  enum class Step { kNothing, kWrite, kWritesDone, kRelease };

  Step NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || released_) return Step::kNothing;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      return Step::kWrite;
    }
    if (done_written_) {
      released_ = true;
      return Step::kWritesDone;
    }
    if (broken_) {
      released_ = true;
      return Step::kRelease;
    }
    return Step::kNothing;
  }

  void Do(Step step) {
    switch (step) {
      case Step::kWrite:
        StartWrite(&current_.message);
        break;
      case Step::kWritesDone:
        StartWritesDone();
        RemoveHold();
        break;
      case Step::kRelease:
        RemoveHold();
        break;
      case Step::kNothing:
        break;
    }
  }

  Fleet* const fleet_;
  const uint32_t index_;
  grpc::ClientContext context_;
  grpc::ByteBuffer in_bytes_;  // read reactions run one at a time
  std::atomic<int64_t> start_unix_ns_{0};
  std::atomic<uint32_t> users_{0};
  std::atomic<bool> stopped_{false};

  common::Mutex mu_;
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  Outgoing current_ ABSL_GUARDED_BY(mu_);  // being written; untouched while writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_closed_ ABSL_GUARDED_BY(mu_) = false;  // Done queued, or the stream broke
  bool done_written_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;  // the controller ended the stream
  bool released_ ABSL_GUARDED_BY(mu_) = false;     // the hold is gone: no more gRPC calls
  int64_t last_queued_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

// Polls /metrics on a fixed schedule and notes when stampede_last_interval_seconds (how many
// intervals are finalized) first covers each interval: the lag from an interval's end to its
// appearance where Prometheus would scrape it. The lag is taken when the response has arrived, so
// it includes the scrape itself and up to one poll period.
class MetricsPoller {
 public:
  MetricsPoller(const std::string& url, uint32_t poll_ms, int64_t intervals)
      : poll_ns_(poll_ms * 1'000'000LL), intervals_(intervals) {
    const size_t scheme = url.find("://");
    const size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    host_ = url.substr(0, path);
    path_ = path == std::string::npos ? "/metrics" : url.substr(path);
    thread_ = std::thread([this] { Loop(); });
  }
  ~MetricsPoller() { Stop(); }

  void SetStart(int64_t start_unix_ns) { start_unix_ns_.store(start_unix_ns); }
  // Waits up to `timeout_ms` for every interval to appear, then stops polling.
  void Finish(int timeout_ms) {
    {
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      common::MutexLock lock(&mu_);
      while (seen_ < intervals_ && !stop_ && cv_.WaitUntil(&mu_, deadline)) {
      }
    }
    Stop();
  }
  void Stop() {
    {
      common::MutexLock lock(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    if (thread_.joinable()) thread_.join();
  }

  // After Stop.
  std::vector<double> lag_ms() const { return lag_ms_; }
  std::vector<double> scrape_ms() const { return scrape_ms_; }
  uint64_t failures() const { return failures_; }
  int64_t seen() const { return seen_; }
  const std::string& error() const { return error_; }

 private:
  static double LastInterval(const std::string& body) {
    static const std::string kName = "stampede_last_interval_seconds";
    for (size_t at = body.find(kName); at != std::string::npos; at = body.find(kName, at + 1)) {
      if (at != 0 && body[at - 1] != '\n') continue;
      const char next = body[at + kName.size()];
      if (next != '{' && next != ' ') continue;  // another family with this prefix
      const size_t eol = body.find('\n', at);
      const std::string line =
          body.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
      return std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    }
    return -1;
  }

  void Loop() {
    httplib::Client client(host_);
    client.set_keep_alive(true);
    client.set_read_timeout(5, 0);
    auto next = std::chrono::steady_clock::now();
    while (true) {
      const int64_t sent = RealNs();
      httplib::Result res = client.Get(path_.c_str());
      const int64_t got = RealNs();
      scrape_ms_.push_back((got - sent) / 1e6);
      const double value = res && res->status == 200 ? LastInterval(res->body) : -1;
      if (value < 0) {
        ++failures_;
        if (error_.empty()) {
          error_ = !res ? absl::StrCat("GET ", path_, ": ", httplib::to_string(res.error()))
                   : res->status != 200
                       ? absl::StrCat("GET ", path_, ": status ", res->status)
                       : absl::StrCat("GET ", path_, ": no stampede_last_interval_seconds gauge");
        }
      }
      const int64_t start = start_unix_ns_.load();
      if (start != 0 && value > 0) {
        common::MutexLock lock(&mu_);
        for (; seen_ < static_cast<int64_t>(value) && seen_ < intervals_; ++seen_) {
          lag_ms_.push_back((got - (start + (seen_ + 1) * kSecond)) / 1e6);
        }
        if (seen_ >= intervals_) cv_.SignalAll();
      }
      next = std::max(next + std::chrono::nanoseconds(poll_ns_),
                      std::chrono::steady_clock::now());  // no catch-up bursts
      common::MutexLock lock(&mu_);
      while (!stop_ && cv_.WaitUntil(&mu_, next)) {
      }
      if (stop_) return;
    }
  }

  const int64_t poll_ns_;
  const int64_t intervals_;
  std::string host_, path_;
  std::atomic<int64_t> start_unix_ns_{0};
  // Written by the polling thread only; read after Stop.
  std::vector<double> scrape_ms_;
  uint64_t failures_ = 0;
  std::string error_;
  std::vector<double> lag_ms_;
  common::Mutex mu_;
  common::CondVar cv_;  // wakes Finish when every interval was seen, and the poller on Stop
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t seen_ = 0;    // intervals seen finalized; written under mu_ while polling
  std::thread thread_;  // last: starts after the members above exist
};

// p in [0, 1] of sorted values; 0 when empty.
double Quantile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double ProcessCpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

int Main(int argc, char** argv) {
  absl::StatusOr<Options> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "stampede-fake-agents: " << parsed.status().message() << "\n\n" << kUsage;
    return 2;
  }
  const Options opt = *parsed;
  const std::vector<ReportVariant> variants = MakeVariants(opt);

  // Separate subchannel pools give each channel its own TCP connection (otherwise channels with
  // equal arguments share one), so the streams spread over `channels` HTTP/2 connections.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (uint32_t c = 0; c < opt.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("stampede.fake_agents.channel", static_cast<int>(c));
    args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
    channels.push_back(
        grpc::CreateCustomChannel(opt.controller, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }

  const int64_t intervals = opt.duration_ns / kSecond;
  std::unique_ptr<MetricsPoller> poller;
  if (!opt.metrics_url.empty())
    poller = std::make_unique<MetricsPoller>(opt.metrics_url, opt.poll_ms, intervals);

  Fleet fleet;
  const int64_t begin_mono = MonoNs();
  std::vector<std::unique_ptr<AgentReactor>> agents;
  for (uint32_t i = 0; i < opt.agents; ++i) {
    agents.push_back(std::make_unique<AgentReactor>(&fleet, i));
    agents.back()->Begin(stubs[i % opt.channels].get(), opt);
  }

  // Until Start: heartbeats once a second (the controller counts a silent agent as lost), and give
  // up when the controller does not start us in time.
  const int64_t give_up = MonoNs() + 120 * kSecond;
  int64_t start_unix_ns = 0;
  double connect_s = 0;
  {
    fleet.mu.Lock();
    while (true) {
      const auto second = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while (fleet.started != opt.agents && fleet.finished != opt.agents &&
             fleet.cv.WaitUntil(&fleet.mu, second)) {
      }
      if (fleet.started == opt.agents || fleet.finished == opt.agents || MonoNs() > give_up) break;
      fleet.mu.Unlock();
      for (auto& a : agents) a->MaybeHeartbeat(MonoNs());
      fleet.mu.Lock();
    }
    start_unix_ns = fleet.start_unix_ns;
    connect_s = (MonoNs() - begin_mono) / 1e9;
    fleet.mu.Unlock();
  }

  if (poller != nullptr) poller->SetStart(start_unix_ns);

  // One report per agent at every wall-clock second boundary after the start, as a real agent
  // sends its interval right after the interval ends; then Done.
  std::vector<double> burst_ms;
  uint64_t reports_queued = 0;
  if (start_unix_ns != 0) {
    for (int64_t k = 0; k < intervals; ++k) {
      SleepUntilReal(start_unix_ns + (k + 1) * kSecond);
      const int64_t t0 = MonoNs();
      for (uint32_t i = 0; i < opt.agents; ++i) {
        if (agents[i]->started() &&
            agents[i]->SendReport(k, variants[(i * 7 + k) % variants.size()])) {
          ++reports_queued;
        }
      }
      burst_ms.push_back((MonoNs() - t0) / 1e6);
      bool all_finished;
      {
        common::MutexLock lock(&fleet.mu);
        all_finished = fleet.finished == opt.agents;
      }
      if (all_finished) break;
    }
  }
  for (auto& a : agents) a->SendDone();

  {
    // Waits up to `seconds` for every stream to finish; true when they all did.
    auto all_finished_within = [&](int seconds) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fleet.mu) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
      while (fleet.finished != opt.agents && fleet.cv.WaitUntil(&fleet.mu, deadline)) {
      }
      return fleet.finished == opt.agents;
    };
    fleet.mu.Lock();
    if (!all_finished_within(30)) {
      if (fleet.first_error.empty())
        fleet.first_error = "streams still open 30s after Done; cancelled";
      fleet.mu.Unlock();
      for (auto& a : agents) a->Cancel();
      fleet.mu.Lock();
      all_finished_within(10);
    }
    fleet.mu.Unlock();
  }

  std::vector<double> lag_ms, scrape_ms;
  std::string poll_error;
  if (poller != nullptr) {
    poller->Finish(5000);
    lag_ms = poller->lag_ms();
    scrape_ms = poller->scrape_ms();
    if (poller->seen() < intervals) {
      poll_error = absl::StrCat(poller->seen(), " of ", intervals,
                                " intervals appeared on /metrics; ", poller->error());
    } else if (poller->failures() != 0) {
      poll_error = poller->error();
    }
  }
  std::sort(lag_ms.begin(), lag_ms.end());
  std::sort(scrape_ms.begin(), scrape_ms.end());
  std::sort(burst_ms.begin(), burst_ms.end());
  common::MutexLock lock(&fleet.mu);
  const bool ok = fleet.finished_ok == opt.agents && fleet.finished == opt.agents &&
                  fleet.write_failures.load() == 0 &&
                  fleet.reports_written.load() == opt.agents * static_cast<uint64_t>(intervals);
  if (fleet.finished != opt.agents) {
    // Reactors still referenced by gRPC must outlive this function; exit without destroying them.
    std::cerr << "stampede-fake-agents: " << (opt.agents - fleet.finished)
              << " stream(s) did not finish\n";
  }
  std::cout << "{\"agents\":" << opt.agents << ",\"channels\":" << opt.channels
            << ",\"requests_per_report\":" << opt.requests << ",\"intervals\":" << intervals
            << ",\"assigned\":" << fleet.assigned << ",\"started\":" << fleet.started
            << ",\"start_unix_nanos\":" << start_unix_ns
            << ",\"start_disagreements\":" << fleet.start_disagreements
            << ",\"connect_to_start_s\":" << connect_s << ",\"reports_queued\":" << reports_queued
            << ",\"reports_sent\":" << fleet.reports_written.load()
            << ",\"requests_sent\":" << fleet.requests_written.load()
            << ",\"heartbeats_sent\":" << fleet.heartbeats_written.load()
            << ",\"heartbeats_received\":" << fleet.heartbeats_received.load()
            << ",\"write_failures\":" << fleet.write_failures.load()
            << ",\"max_queue\":" << fleet.max_queue.load()
            << ",\"burst_ms_p50\":" << (burst_ms.empty() ? 0 : burst_ms[burst_ms.size() / 2])
            << ",\"burst_ms_max\":" << (burst_ms.empty() ? 0 : burst_ms.back())
            << ",\"streams_ok\":" << fleet.finished_ok
            << ",\"streams_failed\":" << (fleet.finished - fleet.finished_ok)
            << ",\"streams_unfinished\":" << (opt.agents - fleet.finished)
            << ",\"stopped_by_controller\":" << fleet.stopped_by_controller
            << ",\"metrics_polled\":" << (poller != nullptr ? "true" : "false")
            << ",\"metrics_intervals_seen\":" << lag_ms.size()
            << ",\"metrics_lag_ms_p50\":" << Quantile(lag_ms, 0.5)
            << ",\"metrics_lag_ms_p99\":" << Quantile(lag_ms, 0.99)
            << ",\"metrics_lag_ms_max\":" << (lag_ms.empty() ? 0 : lag_ms.back())
            << ",\"metrics_scrapes\":" << scrape_ms.size()
            << ",\"metrics_scrape_ms_p50\":" << Quantile(scrape_ms, 0.5)
            << ",\"metrics_scrape_ms_p99\":" << Quantile(scrape_ms, 0.99)
            << ",\"metrics_scrape_ms_max\":" << (scrape_ms.empty() ? 0 : scrape_ms.back())
            << ",\"metrics_error\":" << JsonString(poll_error)
            << ",\"cpu_seconds\":" << ProcessCpuSeconds() << ",\"ok\":" << (ok ? "true" : "false")
            << ",\"first_error\":" << JsonString(fleet.first_error) << "}" << std::endl;
  if (fleet.finished != opt.agents) std::_Exit(1);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace stampede::bench

int main(int argc, char** argv) { return stampede::bench::Main(argc, argv); }
