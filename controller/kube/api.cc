#include "controller/kube/api.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace stampede::kube {

absl::Status FencedApi::Fence(const char* method, const std::string& path) const {
  if (may_write_()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(method, " ", path, ": not sent; this replica no longer holds the Lease"));
}

absl::StatusOr<Json> FencedApi::Create(const std::string& path, const Json& body) {
  RETURN_IF_ERROR(Fence("POST", path));
  return api_->Create(path, body);
}

absl::StatusOr<Json> FencedApi::Update(const std::string& path, const Json& body) {
  RETURN_IF_ERROR(Fence("PUT", path));
  return api_->Update(path, body);
}

absl::StatusOr<Json> FencedApi::MergePatch(const std::string& path, const Json& patch) {
  RETURN_IF_ERROR(Fence("PATCH", path));
  return api_->MergePatch(path, patch);
}

absl::StatusOr<Json> FencedApi::Delete(const std::string& path, const Json& options) {
  RETURN_IF_ERROR(Fence("DELETE", path));
  return api_->Delete(path, options);
}

bool IsConflict(const absl::Status& status) { return status.code() == absl::StatusCode::kAborted; }

std::string MetadataField(const Json& object, const char* field) {
  if (!object.is_object()) return "";
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  auto value = metadata->find(field);
  return value != metadata->end() && value->is_string() ? value->get<std::string>() : "";
}

absl::StatusOr<Json> Api::UpdateWithRetry(const std::string& path,
                                          const std::function<absl::Status(Json& object)>& mutate,
                                          int attempts) {
  absl::Status conflict;
  for (int attempt = 0; attempt < std::max(1, attempts); ++attempt) {
    ASSIGN_OR_RETURN(Json current, Get(path));
    Json wanted = current;
    RETURN_IF_ERROR(mutate(wanted));
    if (wanted == current) return current;
    wanted["metadata"]["resourceVersion"] = MetadataField(current, "resourceVersion");
    absl::StatusOr<Json> updated = Update(path, wanted);
    if (!IsConflict(updated.status())) return updated;
    conflict = updated.status();
  }
  return conflict;
}

std::vector<std::shared_ptr<const Json>> ObjectCache::ListShared() const {
  std::vector<std::shared_ptr<const Json>> out;
  for (Json& object : List()) out.push_back(std::make_shared<const Json>(std::move(object)));
  return out;
}

}  // namespace stampede::kube
