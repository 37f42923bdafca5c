// RETURN_IF_ERROR and ASSIGN_OR_RETURN, named as in newer abseil so an upgrade is a swap.
// Debian 12's abseil (20220623) ships neither.
#ifndef STAMPEDE_COMMON_STATUS_MACROS_H_
#define STAMPEDE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STAMPEDE_CONCAT_INNER_(a, b) a##b
#define STAMPEDE_CONCAT_(a, b) STAMPEDE_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::absl::Status stampede_status_ = (expr);            \
    if (!stampede_status_.ok()) return stampede_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(STAMPEDE_CONCAT_(stampede_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // STAMPEDE_COMMON_STATUS_MACROS_H_
