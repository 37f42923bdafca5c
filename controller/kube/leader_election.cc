#include "controller/kube/leader_election.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace stampede::kube {
namespace {

LeaderElector::Options WithDefaults(LeaderElector::Options options) {
  if (!options.now) options.now = [] { return std::chrono::steady_clock::now(); };
  if (!options.wall_now) options.wall_now = [] { return absl::Now(); };
  return options;
}

std::string SpecString(const Json& spec, const char* field) {
  auto value = spec.find(field);
  return value != spec.end() && value->is_string() ? value->get<std::string>() : "";
}

int64_t SpecInt(const Json& spec, const char* field) {
  auto value = spec.find(field);
  return value != spec.end() && value->is_number_integer() ? value->get<int64_t>() : 0;
}

}  // namespace

std::string FormatMicroTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

LeaderElector::LeaderElector(Client* client, Options options)
    : client_(client),
      options_(WithDefaults(std::move(options))),
      collection_path_(absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/",
                                    options_.lease_namespace, "/leases")),
      path_(absl::StrCat(collection_path_, "/", options_.lease_name)) {}

LeaderElector::~LeaderElector() {
  {
    common::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (renewer_.joinable()) renewer_.join();
}

absl::StatusOr<bool> LeaderElector::TryAcquireOrRenew() {
  common::MutexLock lock(&round_mu_);
  const auto now = options_.now();
  const std::string stamp = FormatMicroTime(options_.wall_now());
  const int64_t duration_s = std::max<int64_t>(
      1, (options_.lease_duration.count() + 999) / 1000);  // whole seconds, rounded up

  absl::StatusOr<Json> lease = client_->Get(path_);
  if (absl::IsNotFound(lease.status())) {
    const Json fresh = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", options_.lease_name}, {"namespace", options_.lease_namespace}}},
        {"spec",
         {{"holderIdentity", options_.identity},
          {"leaseDurationSeconds", duration_s},
          {"acquireTime", stamp},
          {"renewTime", stamp},
          {"leaseTransitions", 0}}}};
    absl::StatusOr<Json> created = client_->Create(collection_path_, fresh);
    if (absl::IsAlreadyExists(created.status()) || IsConflict(created.status())) return false;
    if (!created.ok()) return created.status();
    observed_version_ = MetadataField(*created, "resourceVersion");
    observed_at_ = now;
    held_lease_ = *std::move(created);
    renewed_at_ns_.store(now.time_since_epoch().count());
    leader_.store(true);
    return true;
  }
  if (!lease.ok()) return lease.status();

  const std::string version = MetadataField(*lease, "resourceVersion");
  if (version != observed_version_) {
    observed_version_ = version;
    observed_at_ = now;
  }
  Json wanted = *std::move(lease);
  if (!wanted["spec"].is_object()) wanted["spec"] = Json::object();
  Json& spec = wanted["spec"];
  const std::string holder = SpecString(spec, "holderIdentity");
  const int64_t held_for_s = SpecInt(spec, "leaseDurationSeconds");
  const auto valid_for = std::chrono::seconds(held_for_s > 0 ? held_for_s : duration_s);
  if (!holder.empty() && holder != options_.identity && now < observed_at_ + valid_for) {
    leader_.store(false);
    return false;
  }

  if (holder != options_.identity) {
    spec["acquireTime"] = stamp;
    spec["leaseTransitions"] = SpecInt(spec, "leaseTransitions") + 1;
  }
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = duration_s;
  spec["renewTime"] = stamp;
  absl::StatusOr<Json> updated = client_->Update(path_, wanted);
  if (IsConflict(updated.status())) return false;  // another replica wrote first
  if (!updated.ok()) return updated.status();
  observed_version_ = MetadataField(*updated, "resourceVersion");
  observed_at_ = now;
  held_lease_ = *std::move(updated);
  renewed_at_ns_.store(now.time_since_epoch().count());
  leader_.store(true);
  return true;
}

bool LeaderElector::HoldsLease() const {
  if (!leader_.load()) return false;
  const auto renewed_at = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(renewed_at_ns_.load()));
  return options_.now() - renewed_at < options_.renew_deadline;
}

bool LeaderElector::WaitForLeadership(const std::atomic<bool>& stop) {
  if (renewer_.joinable()) renewer_.join();  // the renew loop of a leadership since lost
  while (!stop.load()) {
    {
      common::MutexLock lock(&mu_);
      if (stopping_) return false;
    }
    absl::StatusOr<bool> acquired = TryAcquireOrRenew();
    if (acquired.ok() && *acquired) {
      SLOG(kInfo) << "kube_leader_acquired lease=" << options_.lease_namespace << "/"
                  << options_.lease_name << " identity=" << options_.identity;
      renewer_ = std::thread([this] { RenewLoop(); });
      return true;
    }
    if (!acquired.ok()) {
      SLOG(kWarning) << "kube_leader_try_failed lease=" << options_.lease_name << " error=\""
                     << acquired.status().message() << "\"";
    }
    if (!Pause(options_.retry_period, &stop)) return false;
  }
  return false;
}

void LeaderElector::RenewLoop() {
  auto last_renewal = options_.now();
  while (Pause(options_.renew_period, nullptr)) {
    absl::StatusOr<bool> renewed = TryAcquireOrRenew();
    if (renewed.ok() && *renewed) {
      last_renewal = options_.now();
      continue;
    }
    if (!renewed.ok()) {
      SLOG(kWarning) << "kube_leader_renew_failed lease=" << options_.lease_name << " error=\""
                     << renewed.status().message() << "\"";
    }
    const bool taken = renewed.ok() && !leader_.load();  // someone else holds a valid lease
    if (taken || options_.now() - last_renewal >= options_.renew_deadline) {
      leader_.store(false);
      SLOG(kWarning) << "kube_leader_lost lease=" << options_.lease_name
                     << " identity=" << options_.identity << " taken=" << taken;
      if (options_.on_lost) options_.on_lost();
      return;
    }
  }
}

bool LeaderElector::Pause(std::chrono::milliseconds period, const std::atomic<bool>* stop) {
  const auto end = std::chrono::steady_clock::now() + period;
  common::MutexLock lock(&mu_);
  while (!stopping_) {
    if (stop != nullptr && stop->load()) return false;
    const auto left = end - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return true;
    // `stop` cannot notify us: look at it at least every 50 ms.
    cv_.WaitFor(&mu_,
                std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return false;
}

absl::Status LeaderElector::Release() {
  {
    common::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (renewer_.joinable()) renewer_.join();
  if (!leader_.exchange(false)) return absl::OkStatus();

  common::MutexLock lock(&round_mu_);
  Json released = held_lease_;
  released["spec"]["holderIdentity"] = "";
  released["spec"]["leaseDurationSeconds"] = 1;
  released["spec"]["renewTime"] = FormatMicroTime(options_.wall_now());
  absl::StatusOr<Json> updated = client_->Update(path_, released);
  // A conflict means someone else wrote the lease since: it is not ours to release any more.
  if (IsConflict(updated.status()) || absl::IsNotFound(updated.status())) return absl::OkStatus();
  if (!updated.ok()) return updated.status();
  SLOG(kInfo) << "kube_leader_released lease=" << options_.lease_name
              << " identity=" << options_.identity;
  return absl::OkStatus();
}

}  // namespace stampede::kube
