#include "controller/operator/reconcile_loop.h"

#include <algorithm>
#include <exception>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace stampede::controller {

ReconcileLoop::ReconcileLoop(kube::Client* client, RunRegistry* runs, ReconcilerOptions options)
    : client_(client), runs_(runs), options_(std::move(options)) {}

ReconcileLoop::~ReconcileLoop() { Stop(); }

void ReconcileLoop::Caches::Add(std::string name_space, std::unique_ptr<kube::Informer> informer) {
  informers_.emplace_back(std::move(name_space), std::move(informer));
}

std::optional<kube::Json> ReconcileLoop::Caches::Get(const std::string& key) const {
  const std::string name_space = key.substr(0, key.find('/'));
  for (const auto& [watched, informer] : informers_) {
    if (watched.empty() || watched == name_space) return informer->Get(key);
  }
  return std::nullopt;  // a namespace not watched
}

std::vector<kube::Json> ReconcileLoop::Caches::List() const {
  std::vector<kube::Json> all;
  for (const auto& [watched, informer] : informers_) {
    std::vector<kube::Json> some = informer->List();
    all.insert(all.end(), std::make_move_iterator(some.begin()),
               std::make_move_iterator(some.end()));
  }
  return all;
}

std::vector<std::shared_ptr<const kube::Json>> ReconcileLoop::Caches::ListShared() const {
  std::vector<std::shared_ptr<const kube::Json>> all;
  for (const auto& [watched, informer] : informers_) {
    std::vector<std::shared_ptr<const kube::Json>> some = informer->ListShared();
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

void ReconcileLoop::Caches::Start() {
  for (const auto& [watched, informer] : informers_) informer->Start();
}

bool ReconcileLoop::Caches::WaitForSync(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& [watched, informer] : informers_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!informer->WaitForSync(std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

void ReconcileLoop::Caches::Stop() {
  for (const auto& [watched, informer] : informers_) informer->Stop();
}

bool ReconcileLoop::Start(std::chrono::milliseconds sync_timeout) {
  kube::Informer::Options loadtest_options;
  loadtest_options.idle_timeout = options_.watch_idle_timeout;
  kube::Informer::Options pod_options = loadtest_options;
  pod_options.label_selector = absl::StrCat(kManagedByLabel, "=", kManagedByValue);
  pod_options.transform = TrimAgentPod;  // 10,000 whole Pods were most of the operator's memory
  std::vector<std::string> namespaces = options_.watch_namespaces;
  if (namespaces.empty()) namespaces.push_back("");  // the whole cluster
  for (const std::string& ns : namespaces) {
    loadtests_.Add(ns,
                   std::make_unique<kube::Informer>(
                       client_, LoadTestsPath(ns),
                       [this](const kube::Json& object, bool) { Enqueue(kube::ObjectKey(object)); },
                       loadtest_options));
    pods_.Add(ns, std::make_unique<kube::Informer>(
                      client_, AgentPodsPath(ns),
                      [this](const kube::Json& pod, bool) {
                        const std::string test = LoadTestOfPod(pod);
                        if (!test.empty()) {
                          Enqueue(absl::StrCat(kube::MetadataField(pod, "namespace"), "/", test));
                        }
                      },
                      pod_options));
  }
  loadtests_.Start();
  pods_.Start();
  if (!loadtests_.WaitForSync(sync_timeout) || !pods_.WaitForSync(sync_timeout)) return false;
  kube::Api* api = client_;
  if (options_.may_write) {
    fenced_ = std::make_unique<kube::FencedApi>(client_, options_.may_write);
    api = fenced_.get();
  }
  reconciler_ =
      std::make_unique<Reconciler>(ReconcilerWorld{api, &loadtests_, &pods_, runs_}, options_);
  for (const kube::Json& object : loadtests_.List()) Enqueue(kube::ObjectKey(object));
  worker_ = std::thread([this] { Work(); });
  return true;
}

void ReconcileLoop::Stop() {
  {
    common::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.SignalAll();
  if (worker_.joinable()) worker_.join();
  loadtests_.Stop();
  pods_.Stop();
  // The tests go on without us; whoever leads next adopts them.
  if (reconciler_ != nullptr) reconciler_->DetachAll();
}

void ReconcileLoop::Enqueue(const std::string& key) {
  {
    common::MutexLock lock(&mu_);
    queue_.insert(key);
    if (spacing_) return;  // the next round takes it; no need to wake Work for each event
  }
  cv_.SignalAll();
}

void ReconcileLoop::Work() {
  // Pod events come in bursts (10,000 Pods change status within a minute), and each round walks
  // every cached Pod of a test: rounds at most every 100 ms take a burst's events together
  // instead of one round after another for as long as it lasts.
  constexpr auto kMinRoundGap = std::chrono::milliseconds(100);
  std::set<std::string> failed;  // queued again on the next round
  auto last_round = std::chrono::steady_clock::time_point();
  while (true) {
    std::set<std::string> keys;
    {
      common::MutexLock lock(&mu_);
      const auto round = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while (!stopping_ && queue_.empty()) {
        if (!cv_.WaitUntil(&mu_, round)) break;
      }
      const auto earliest = last_round + kMinRoundGap;
      spacing_ = true;
      while (!stopping_ && std::chrono::steady_clock::now() < earliest) {
        cv_.WaitUntil(&mu_, earliest);
      }
      spacing_ = false;
      if (stopping_) return;
      keys.swap(queue_);
    }
    last_round = std::chrono::steady_clock::now();
    // Failed keys wait for the next round rather than spin (a 403 is not retried by the client).
    keys.insert(failed.begin(), failed.end());
    failed.clear();
    // Running tests are looked at every second whatever happens: their status comes from the
    // Run, not from the API server.
    for (const std::string& key : reconciler_->ActiveKeys()) keys.insert(key);
    for (const std::string& key : keys) {
      absl::Status s;
      try {
        s = reconciler_->Reconcile(key);
      } catch (const std::exception& e) {
        // An object of an unexpected shape (a JSON type error): never take the operator down.
        s = absl::InternalError(absl::StrCat("unexpected object: ", e.what()));
      }
      if (!s.ok()) {
        SLOG(kWarning) << "reconcile_failed loadtest=" << key << " error=\"" << s.message() << "\"";
        failed.insert(key);
      }
    }
  }
}

}  // namespace stampede::controller
