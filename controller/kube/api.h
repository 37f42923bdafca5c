// What a controller needs of the Kubernetes API, as interfaces: the REST verbs on API paths
// (kube::Client talks to a real API server) and a read-only cached collection (kube::Informer).
// The reconciler is written against these, so its unit tests give it fakes.
#ifndef STAMPEDE_CONTROLLER_KUBE_API_H_
#define STAMPEDE_CONTROLLER_KUBE_API_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stampede::kube {

using Json = nlohmann::json;

// Paths look like "/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests/x". Errors: the codes
// kube::Client documents (NotFound, AlreadyExists, Aborted for a conflict, ...). Thread-safe.
class Api {
 public:
  virtual ~Api() = default;
  virtual absl::StatusOr<Json> Get(const std::string& path) = 0;
  virtual absl::StatusOr<Json> Create(const std::string& path, const Json& body) = 0;  // POST
  virtual absl::StatusOr<Json> Update(const std::string& path, const Json& body) = 0;  // PUT
  virtual absl::StatusOr<Json> MergePatch(const std::string& path, const Json& patch) = 0;
  // `options` is a DeleteOptions body ({"propagationPolicy": "Background"}); null sends none.
  virtual absl::StatusOr<Json> Delete(const std::string& path, const Json& options = Json()) = 0;

  // GET, mutate, PUT with the resourceVersion read; on a conflict, again from the GET, up to
  // `attempts` times (then Aborted). When `mutate` leaves the object as it was, nothing is
  // written and the object read is returned. An error from `mutate` is returned as is.
  absl::StatusOr<Json> UpdateWithRetry(const std::string& path,
                                       const std::function<absl::Status(Json& object)>& mutate,
                                       int attempts = 5);
};

// A local copy of one collection, keyed "namespace/name" ("name" when cluster-scoped).
// Thread-safe.
class ObjectCache {
 public:
  virtual ~ObjectCache() = default;
  virtual std::optional<Json> Get(const std::string& key) const = 0;
  virtual std::vector<Json> List() const = 0;
  // The same objects without copying them where the cache can (an informer hands out its own,
  // which it never changes in place): each stays valid and unchanged while it is held. This
  // default copies List().
  virtual std::vector<std::shared_ptr<const Json>> ListShared() const;
};

// An Api that writes only while `may_write` says so (the leader still holds its Lease), and
// otherwise answers Unavailable without sending anything; reads pass through. `api` must outlive
// it. Thread-safe when `api` is.
class FencedApi final : public Api {
 public:
  FencedApi(Api* api, std::function<bool()> may_write)
      : api_(api), may_write_(std::move(may_write)) {}
  absl::StatusOr<Json> Get(const std::string& path) override { return api_->Get(path); }
  absl::StatusOr<Json> Create(const std::string& path, const Json& body) override;
  absl::StatusOr<Json> Update(const std::string& path, const Json& body) override;
  absl::StatusOr<Json> MergePatch(const std::string& path, const Json& patch) override;
  absl::StatusOr<Json> Delete(const std::string& path, const Json& options = Json()) override;

 private:
  absl::Status Fence(const char* method, const std::string& path) const;
  Api* const api_;
  const std::function<bool()> may_write_;
};

// A 409 Conflict on a write: re-read the object and retry.
bool IsConflict(const absl::Status& status);
// metadata.<field> of an object as a string; empty when absent.
std::string MetadataField(const Json& object, const char* field);

}  // namespace stampede::kube

#endif  // STAMPEDE_CONTROLLER_KUBE_API_H_
