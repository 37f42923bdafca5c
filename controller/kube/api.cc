#include "controller/kube/api.h"

#include <algorithm>

#include "common/status_macros.h"

namespace stampede::kube {

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

}  // namespace stampede::kube
