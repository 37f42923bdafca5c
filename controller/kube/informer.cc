#include "controller/kube/informer.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "common/logging.h"

namespace stampede::kube {
namespace {

double DefaultJitter() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

}  // namespace

Informer::Informer(Client* client, std::string path, Handler handler, Options options)
    : client_(client),
      path_(std::move(path)),
      handler_(std::move(handler)),
      options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  if (thread_.joinable() || stopping_.load()) return;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  {
    common::MutexLock lock(&mu_);
    stopping_.store(true);
  }
  cv_.SignalAll();
  canceler_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::HasSynced() const {
  common::MutexLock lock(&mu_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  common::MutexLock lock(&mu_);
  while (!synced_) {
    if (!cv_.WaitUntil(&mu_, deadline)) return synced_;
  }
  return true;
}

std::optional<Json> Informer::Get(const std::string& key) const {
  common::MutexLock lock(&mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return *it->second;
}

std::vector<Json> Informer::List() const {
  common::MutexLock lock(&mu_);
  std::vector<Json> objects;
  objects.reserve(cache_.size());
  for (const auto& [key, object] : cache_) objects.push_back(*object);
  return objects;
}

std::vector<std::shared_ptr<const Json>> Informer::ListShared() const {
  common::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Json>> objects;
  objects.reserve(cache_.size());
  for (const auto& [key, object] : cache_) objects.push_back(object);
  return objects;
}

std::string Informer::ResourceVersion() const {
  common::MutexLock lock(&mu_);
  return resource_version_;
}

void Informer::Run() {
  int failures = 0;
  bool listed = false;
  while (!stopping_.load()) {
    if (!listed) {
      const absl::Status status = Relist();
      if (stopping_.load()) break;
      if (!status.ok()) {
        SLOG(kWarning) << "kube_informer_list_failed path=" << path_ << " error=\""
                       << status.message() << "\"";
        if (!Backoff(++failures)) break;
        continue;
      }
      listed = true;
    }

    WatchOptions watch;
    watch.resource_version = ResourceVersion();
    watch.label_selector = options_.label_selector;
    watch.field_selector = options_.field_selector;
    watch.timeout_seconds = options_.watch_timeout_seconds;
    watch.idle_timeout = options_.idle_timeout;
    int events = 0;
    const absl::Status status = client_->Watch(
        path_, watch,
        [&](WatchEvent& event) {
          ++events;
          Apply(event);
          return !stopping_.load();
        },
        &canceler_);
    if (stopping_.load()) break;
    if (events > 0) failures = 0;
    if (IsExpired(status)) {
      SLOG(kInfo) << "kube_informer_relist path=" << path_ << " reason=\"" << status.message()
                  << "\"";
      listed = false;
    } else if (!status.ok()) {
      SLOG(kWarning) << "kube_informer_watch_failed path=" << path_ << " error=\""
                     << status.message() << "\"";
    } else if (events > 0) {
      continue;  // the server ended a healthy stream: watch on from the last resourceVersion
    }
    if (!Backoff(++failures)) break;
  }
}

absl::Status Informer::Relist() {
  absl::StatusOr<Json> list =
      client_->List(path_, options_.label_selector, options_.field_selector);
  if (!list.ok()) return list.status();
  // Items of built-in lists carry no kind/apiVersion; give them the list's, as watch events do.
  std::string kind = list->value("kind", "");
  if (absl::EndsWith(kind, "List")) kind.resize(kind.size() - 4);
  const std::string api_version = list->value("apiVersion", "");

  std::map<std::string, std::shared_ptr<const Json>> fresh;
  for (Json& item : (*list)["items"]) {
    if (!item.contains("kind") && !kind.empty()) item["kind"] = kind;
    if (!item.contains("apiVersion") && !api_version.empty()) item["apiVersion"] = api_version;
    if (options_.transform) options_.transform(item);
    std::string key = ObjectKey(item);
    fresh.emplace(std::move(key), std::make_shared<const Json>(std::move(item)));
  }
  std::vector<std::pair<std::shared_ptr<const Json>, bool>> changes;  // object, deleted
  {
    common::MutexLock lock(&mu_);
    for (const auto& [key, object] : cache_) {
      if (fresh.count(key) == 0) changes.emplace_back(object, true);
    }
    for (const auto& [key, object] : fresh) {
      auto old = cache_.find(key);
      if (old == cache_.end() || *old->second != *object) changes.emplace_back(object, false);
    }
    cache_ = std::move(fresh);
    resource_version_ = MetadataField(*list, "resourceVersion");
    synced_ = true;
  }
  cv_.SignalAll();
  for (const auto& [object, deleted] : changes) handler_(*object, deleted);
  return absl::OkStatus();
}

void Informer::Apply(WatchEvent& event) {
  const std::string resource_version = MetadataField(event.object, "resourceVersion");
  const bool deleted = event.type == "DELETED";
  if (event.type != "ADDED" && event.type != "MODIFIED" && !deleted) {
    if (event.type == "BOOKMARK" && !resource_version.empty()) {
      common::MutexLock lock(&mu_);
      resource_version_ = resource_version;
    }
    return;
  }
  // Moved, not copied: the stream is done with it (a Pod is many KiB).
  auto object = std::make_shared<Json>(std::move(event.object));
  if (options_.transform) options_.transform(*object);
  {
    common::MutexLock lock(&mu_);
    if (deleted) {
      cache_.erase(ObjectKey(*object));
    } else {
      cache_[ObjectKey(*object)] = object;
    }
    if (!resource_version.empty()) resource_version_ = resource_version;
  }
  handler_(*object, deleted);
}

bool Informer::Backoff(int failures) {
  const double cap = std::min(static_cast<double>(options_.backoff_max.count()),
                              options_.backoff_initial.count() * std::pow(2.0, failures - 1));
  const double jitter = std::clamp(options_.jitter ? options_.jitter() : DefaultJitter(), 0.0, 1.0);
  const auto delay =
      std::chrono::microseconds(static_cast<int64_t>(cap * (0.5 + jitter / 2) * 1e3));
  const auto deadline = std::chrono::steady_clock::now() + delay;
  common::MutexLock lock(&mu_);
  while (!stopping_.load()) {
    if (!cv_.WaitUntil(&mu_, deadline)) return !stopping_.load();
  }
  return false;
}

}  // namespace stampede::kube
