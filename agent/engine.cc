#include "agent/engine.h"

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace stampede::agent {

namespace {

// Every user holds a socket: lift the soft descriptor limit to the hard one.
void RaiseFileLimit() {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// OpenSSL decodes a certificate's extensions the first time a verification looks at them and
// caches them in the shared X509. Worker threads verifying their first handshakes at once would
// race on that cache (ThreadSanitizer sees one thread decode while another compares key ids), so
// decode the trusted certificates here, before any worker starts.
void WarmCertificateCache(X509_STORE* store) {
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
    if (cert != nullptr) X509_check_purpose(cert, -1, 0);
  }
}

absl::StatusOr<IoBackend> ChooseBackend(IoMode mode, bool tls) {
  if (mode == IoMode::kAuto) {
    if (const char* env = std::getenv("STAMPEDE_IO"); env != nullptr && *env != '\0') {
      auto parsed = ParseIoMode(env);
      if (!parsed.ok())
        return absl::InvalidArgumentError(absl::StrCat("STAMPEDE_IO: ", parsed.status().message()));
      mode = *parsed;
    }
  }
  if (mode == IoMode::kEpoll) {
    SLOG(kInfo) << "io_backend=epoll why=\"asked for\"";
    return IoBackend::kEpoll;
  }
  if (tls) {
    SLOG(kInfo) << "io_backend=epoll why=\"https targets run on epoll: TLS over io_uring is not "
                   "built\"";
    return IoBackend::kEpoll;
  }
  if (absl::Status probe = ProbeUring(); !probe.ok()) {
    if (mode == IoMode::kUring) {
      return absl::FailedPreconditionError(
          absl::StrCat("io: uring was asked for, but io_uring is refused here: ", probe.message()));
    }
    SLOG(kWarning) << "io_backend=epoll why=\"io_uring is refused here: " << probe.message()
                   << "\"";
    return IoBackend::kEpoll;
  }
  SLOG(kInfo) << "io_backend=uring";
  return IoBackend::kUring;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineConfig config) {
  ASSIGN_OR_RETURN(Url url, ParseUrl(config.url));
  if (config.requests.empty()) config.requests.push_back(RequestSpec{});
  std::unique_ptr<Engine> engine(new Engine());
  WorkerShared& shared = engine->shared_;
  if (config.scenarios == nullptr) {
    ASSIGN_OR_RETURN(shared.requests, PrepareRequests(url, config.requests));
    uint64_t total = 0;
    for (const PreparedRequest& r : shared.requests)
      shared.cumulative_weights.push_back(total += r.weight);
  }
  shared.plan = config.plan;
  if (config.timeout_ns <= 0) return absl::InvalidArgumentError("timeout: must be > 0");
  if (config.think_min_ns < 0 || config.think_max_ns < 0) {
    return absl::InvalidArgumentError("thinkTime: must be >= 0");
  }
  if (config.think_max_ns != 0 && config.think_max_ns < config.think_min_ns) {
    return absl::InvalidArgumentError("thinkTime: max must be >= min");
  }
  shared.think_min_ns = config.think_min_ns;
  shared.think_max_ns = std::max(config.think_max_ns, config.think_min_ns);
  shared.timeout_ns = config.timeout_ns;
  shared.grace_ns = config.grace_ns < 0 ? config.timeout_ns : config.grace_ns;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(url.port);
  const int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    shared.dns_failed = true;
    SLOG(kWarning) << "dns_failed host=" << url.host << " error=\"" << gai_strerror(rc)
                   << "\" every request will count as a dns error";
  } else {
    std::memcpy(&shared.address, result->ai_addr, result->ai_addrlen);
    shared.address_len = result->ai_addrlen;
    freeaddrinfo(result);
    // The check is on the address every connection dials, resolved here once: what the name
    // resolved to at admission, or resolves to for another agent, does not matter.
    if (config.address_policy != nullptr) {
      const auto address =
          common::IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&shared.address));
      const std::string refused =
          address.has_value() ? config.address_policy->Check(*address, url.port)
                              : std::string("the target's address family is not IPv4 or IPv6");
      if (!refused.empty()) {
        return absl::PermissionDeniedError(
            absl::StrCat("target ", url.host, ": ", refused, "; no request was sent"));
      }
    }
  }

  if (url.tls) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr) return absl::InternalError("cannot create a TLS context");
    shared.ssl_ctx = ctx;
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
    if (config.insecure_skip_verify) {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    } else {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      SSL_CTX_set_default_verify_paths(ctx);
      if (!config.ca_file.empty() &&
          SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cacert: cannot load \"", config.ca_file, "\""));
      }
      WarmCertificateCache(SSL_CTX_get_cert_store(ctx));
    }
    shared.sni = url.host;
  }
  const bool h2 = config.protocol == "h2" || config.protocol == "h2c";
  if (!config.protocol.empty() && config.protocol != "http1" && !h2) {
    return absl::InvalidArgumentError(
        absl::StrCat("protocol: must be http1, h2 or h2c, got \"", config.protocol, "\""));
  }
  if (config.protocol == "h2" && !url.tls) {
    return absl::InvalidArgumentError("protocol: h2 needs an https:// URL (use h2c for http://)");
  }
  if (config.protocol == "h2c" && url.tls) {
    return absl::InvalidArgumentError("protocol: h2c needs an http:// URL (use h2 for https://)");
  }
  if (h2) {
    shared.h2 = true;
    if (config.max_concurrent_streams < 1 || config.max_concurrent_streams > 1000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "maxConcurrentStreams: must be between 1 and 1000, got ", config.max_concurrent_streams));
    }
    shared.h2_options.max_concurrent_streams = config.max_concurrent_streams;
    // Scenarios render each request as they go (shared.requests then only names the stats).
    if (config.scenarios == nullptr) {
      for (const PreparedRequest& r : shared.requests) {
        ASSIGN_OR_RETURN(H2Request request, H2Request::FromHttp1(r.wire, url.tls, r.expected));
        shared.h2_requests.push_back(std::move(request));
      }
    }
    if (shared.ssl_ctx != nullptr) {
      static const unsigned char kH2Alpn[] = {2, 'h', '2'};
      SSL_CTX_set_alpn_protos(shared.ssl_ctx, kH2Alpn, sizeof(kH2Alpn));
    }
  }
  ASSIGN_OR_RETURN(shared.io, ChooseBackend(config.io, url.tls));

  const bool open = shared.plan.model() == LoadPlan::Model::kOpen;
  uint32_t threads =
      config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  if (config.stream_count == 0) {
    // Alone, threads beyond the user count would idle.
    if (!open) threads = std::max(1u, std::min(threads, shared.plan.MaxUsers()));
    shared.stream_count = threads;
  } else {
    if (config.stream_offset + threads > config.stream_count) {
      return absl::InvalidArgumentError("stream_offset + threads exceeds stream_count");
    }
    shared.stream_count = config.stream_count;
  }
  if (config.scenarios != nullptr) {
    ScenarioProgram::Options options;
    options.data_seed = config.data_seed;
    options.agent_index = config.agent_index;
    options.stream_count = shared.stream_count;
    options.stream_first = config.stream_offset;
    options.stream_local = threads;
    options.env = config.env;
    options.think_min_ns = shared.think_min_ns;
    options.think_max_ns = shared.think_max_ns;
    ASSIGN_OR_RETURN(shared.program, ScenarioProgram::Create(*config.scenarios, url, config.data,
                                                             shared.plan, options));
    // The stats are the step names; picks (of dropped arrivals) are of scenarios.
    for (const std::string& name : shared.program->stat_names()) {
      PreparedRequest r;
      r.name = name;
      shared.requests.push_back(std::move(r));
    }
    shared.cumulative_weights = shared.program->scenario_cumulative();
  }
  if (open) {
    // Enough connections for the rate at 100 ms latency, at least 100; the rest queue (and count
    // as late) rather than opening unbounded connections while the target stalls.
    double peak = 0;
    for (int64_t t = 0; t < shared.plan.duration_ns(); t += 100'000'000)
      peak = std::max(peak, shared.plan.RateAt(t));
    engine->connections_ = config.connections != 0
                               ? config.connections
                               : static_cast<uint32_t>(std::clamp(peak / 10, 100.0, 10000.0));
    engine->connections_ = std::max(engine->connections_, threads);
  }
  RaiseFileLimit();

  uint64_t seed = config.seed != 0 ? config.seed : std::random_device{}();
  common::MutexLock lock(&engine->mu_);
  engine->outboxes_.resize(threads);
  for (uint32_t i = 0; i < threads; ++i) {
    const uint32_t share =
        open ? static_cast<uint32_t>(common::EvenShare(engine->connections_, threads, i)) : 0;
    Engine* self = engine.get();
    engine->workers_.push_back(
        std::make_unique<Worker>(shared, config.stream_offset + i, share, seed + i,
                                 [self, i](std::unique_ptr<IntervalStats> stats, bool final) {
                                   self->OnPublish(i, std::move(stats), final);
                                 }));
  }
  return engine;
}

Engine::~Engine() {
  Stop(true);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  if (shared_.ssl_ctx != nullptr) SSL_CTX_free(shared_.ssl_ctx);
}

void Engine::Start(int64_t start_ns) {
  start_ns_ = start_ns != 0 ? start_ns : common::MonotonicNanos() + 20'000'000;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    const int64_t at = start_ns_;
    threads_.emplace_back([worker, at] { worker->Run(at); });
  }
}

int64_t Engine::ActualStartNs() const {
  int64_t latest = 0;
  for (const auto& w : workers_) {
    const int64_t t = w->started_ns();
    if (t == 0) return 0;
    latest = std::max(latest, t);
  }
  return latest;
}

void Engine::Stop(bool abort) {
  for (auto& w : workers_) w->Stop(abort);
}

void Engine::OnPublish(size_t worker, std::unique_ptr<IntervalStats> stats, bool final) {
  {
    common::MutexLock lock(&mu_);
    Outbox& box = outboxes_[worker];
    box.intervals.push_back(std::move(stats));
    box.finished = final;
  }
  cv_.SignalAll();
}

std::unique_ptr<IntervalStats> Engine::NextInterval() {
  common::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const Outbox& box : outboxes_) {
      if (box.intervals.empty() && !box.finished) return false;
    }
    return true;
  };
  while (!ready()) cv_.Wait(&mu_);
  int64_t index = INT64_MAX;
  for (const Outbox& box : outboxes_) {
    if (!box.intervals.empty()) index = std::min(index, box.intervals.front()->index);
  }
  if (index == INT64_MAX) return nullptr;
  auto merged = std::make_unique<IntervalStats>(shared_.requests.size());
  merged->index = index;
  for (Outbox& box : outboxes_) {
    if (!box.intervals.empty() && box.intervals.front()->index == index) {
      merged->Merge(*box.intervals.front());
      box.intervals.pop_front();
    }
  }
  return merged;
}

}  // namespace stampede::agent
