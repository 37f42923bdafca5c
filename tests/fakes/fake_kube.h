// An in-memory Kubernetes API for unit tests of code written against kube::Api and
// kube::ObjectCache: objects by path, resourceVersions and 409 conflicts, generateName, merge
// patches of /status, and a log of every write. Failures can be planted per method and path.
// Thread-safe.
#ifndef STAMPEDE_TESTS_FAKES_FAKE_KUBE_H_
#define STAMPEDE_TESTS_FAKES_FAKE_KUBE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/mutex.h"
#include "controller/kube/api.h"

namespace stampede::testing {

using kube::Json;

class FakeApi final : public kube::Api {
 public:
  absl::StatusOr<Json> Get(const std::string& path) override {
    common::MutexLock lock(&mu_);
    if (absl::Status planted = PlantedAnswer("GET", path); !planted.ok()) return planted;
    auto it = objects_.find(path);
    if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("GET ", path, ": 404"));
    return it->second;
  }
  absl::StatusOr<Json> Create(const std::string& collection, const Json& body) override {
    common::MutexLock lock(&mu_);
    writes_.push_back(absl::StrCat("POST ", collection));
    if (absl::Status planted = PlantedAnswer("POST", collection); !planted.ok()) return planted;
    Json object = body;
    std::string name = kube::MetadataField(object, "name");
    if (name.empty())
      name = absl::StrCat(kube::MetadataField(object, "generateName"), ++generated_);
    object["metadata"]["name"] = name;
    const std::string path = absl::StrCat(collection, "/", name);
    if (objects_.count(path) != 0)
      return absl::AlreadyExistsError(absl::StrCat("POST ", path, ": 409"));
    if (kube::MetadataField(object, "uid").empty())
      object["metadata"]["uid"] = absl::StrCat("uid-", name);
    object["metadata"]["resourceVersion"] = std::to_string(++version_);
    objects_[path] = object;
    return object;
  }
  absl::StatusOr<Json> Update(const std::string& path, const Json& body) override {
    common::MutexLock lock(&mu_);
    writes_.push_back(absl::StrCat("PUT ", path));
    if (absl::Status planted = PlantedAnswer("PUT", path); !planted.ok()) return planted;
    auto it = objects_.find(path);
    if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("PUT ", path, ": 404"));
    if (kube::MetadataField(body, "resourceVersion") !=
        kube::MetadataField(it->second, "resourceVersion")) {
      return absl::AbortedError(absl::StrCat("PUT ", path, ": 409 the object has been modified"));
    }
    it->second = body;
    it->second["metadata"]["resourceVersion"] = std::to_string(++version_);
    return it->second;
  }
  absl::StatusOr<Json> MergePatch(const std::string& path, const Json& patch) override {
    common::MutexLock lock(&mu_);
    writes_.push_back(absl::StrCat("PATCH ", path));
    if (absl::Status planted = PlantedAnswer("PATCH", path); !planted.ok()) return planted;
    const std::string object_path =
        absl::EndsWith(path, "/status") ? path.substr(0, path.size() - 7) : path;
    auto it = objects_.find(object_path);
    if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("PATCH ", path, ": 404"));
    it->second.merge_patch(patch);
    it->second["metadata"]["resourceVersion"] = std::to_string(++version_);
    return it->second;
  }
  absl::StatusOr<Json> Delete(const std::string& path, const Json& /*options*/ = Json()) override {
    common::MutexLock lock(&mu_);
    writes_.push_back(absl::StrCat("DELETE ", path));
    if (absl::Status planted = PlantedAnswer("DELETE", path); !planted.ok()) return planted;
    if (objects_.erase(path) == 0)
      return absl::NotFoundError(absl::StrCat("DELETE ", path, ": 404"));
    return Json::object();
  }

  // Test side.
  void Put(const std::string& path, Json object) {
    common::MutexLock lock(&mu_);
    object["metadata"]["resourceVersion"] = std::to_string(++version_);
    objects_[path] = std::move(object);
  }
  std::optional<Json> Object(const std::string& path) const {
    common::MutexLock lock(&mu_);
    auto it = objects_.find(path);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  // Objects directly inside `collection` (e.g. "/api/v1/namespaces/ns/pods").
  std::vector<Json> Objects(const std::string& collection) const {
    common::MutexLock lock(&mu_);
    std::vector<Json> out;
    for (const auto& [path, object] : objects_) {
      if (absl::StartsWith(path, collection + "/") &&
          path.find('/', collection.size() + 1) == std::string::npos) {
        out.push_back(object);
      }
    }
    return out;
  }
  // The next `times` calls of `method` (GET, POST, PUT, PATCH, DELETE) on a path that starts with
  // `path_prefix` answer `status`.
  void Plant(const std::string& method, const std::string& path_prefix, absl::Status status,
             int times = 1) {
    common::MutexLock lock(&mu_);
    planted_.push_back({method, path_prefix, std::move(status), times});
  }
  // Every write so far, as "METHOD path", oldest first.
  std::vector<std::string> Writes() const {
    common::MutexLock lock(&mu_);
    return writes_;
  }
  size_t CountWrites(const std::string& prefix) const {
    size_t n = 0;
    for (const std::string& w : Writes()) n += absl::StartsWith(w, prefix);
    return n;
  }

 private:
  struct PlantedCall {
    std::string method, prefix;
    absl::Status status;
    int times;
  };
  // The planted answer for this call, if any (OK when none).
  absl::Status PlantedAnswer(const std::string& method, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& p : planted_) {
      if (p.times > 0 && p.method == method && absl::StartsWith(path, p.prefix)) {
        --p.times;
        return p.status;
      }
    }
    return absl::OkStatus();
  }

  mutable common::Mutex mu_;
  std::map<std::string, Json> objects_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> writes_ ABSL_GUARDED_BY(mu_);
  std::vector<PlantedCall> planted_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generated_ ABSL_GUARDED_BY(mu_) = 0;
};

// An informer's cache, filled by the test (e.g. from a FakeApi collection). Like an informer, it
// hands out its own objects (ListShared) and replaces an object only when it changed.
class FakeCache final : public kube::ObjectCache {
 public:
  std::optional<Json> Get(const std::string& key) const override {
    common::MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return *it->second;
  }
  std::vector<Json> List() const override {
    common::MutexLock lock(&mu_);
    std::vector<Json> out;
    for (const auto& [key, object] : objects_) out.push_back(*object);
    return out;
  }
  std::vector<std::shared_ptr<const Json>> ListShared() const override {
    common::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<const Json>> out;
    for (const auto& [key, object] : objects_) out.push_back(object);
    return out;
  }
  // Replaces the whole cache, as a relist does: an unchanged object keeps its pointer.
  void Replace(const std::vector<Json>& objects) {
    common::MutexLock lock(&mu_);
    std::map<std::string, std::shared_ptr<const Json>> fresh;
    for (const Json& o : objects) {
      const std::string key =
          absl::StrCat(kube::MetadataField(o, "namespace"), "/", kube::MetadataField(o, "name"));
      auto old = objects_.find(key);
      fresh[key] = old != objects_.end() && *old->second == o ? old->second
                                                              : std::make_shared<const Json>(o);
    }
    objects_ = std::move(fresh);
  }

 private:
  mutable common::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Json>> objects_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_FAKES_FAKE_KUBE_H_
