// Files a user names on the command line: specs and tokens read, results written. Each has a stated
// bound and a clear refusal, whatever the path turns out to be (a directory, a FIFO, a device,
// /dev/zero, a symlink, "-").
#ifndef STAMPEDE_COMMON_FILES_H_
#define STAMPEDE_COMMON_FILES_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stampede::common {

// The contents of the regular file `path`, at most `max_bytes` of them; never reads more than
// max_bytes + 1. InvalidArgument for a directory, anything that is not a regular file (a FIFO, a
// device: /dev/zero would never end) and a file over the limit; NotFound / PermissionDenied /
// Unavailable with the system's reason otherwise. Messages name the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

// Where a result goes (--out, --csv, --port-file):
//   - "-" is standard output;
//   - a regular file, or a name that does not exist yet, is written whole to a temporary file
//     beside it and renamed over it, so a reader never sees half of it (through a symlink, the
//     file it points to is replaced, not the link);
//   - anything else that exists (a FIFO, /dev/stdout, a device) is opened and written in place.
// Check it before the work that produces the content, so a path that cannot be written to is
// known at once, not after a long test.
class OutputFile {
 public:
  // FailedPrecondition naming the path and the reason when it cannot be written.
  static absl::StatusOr<OutputFile> Prepare(const std::string& path);

  // Every error (open, write, short write, rename) with the system's reason; no temporary file is
  // left behind.
  absl::Status Write(const std::string& content) const;
  const std::string& path() const { return path_; }

 private:
  enum class Kind { kStdout, kReplace, kInPlace };
  OutputFile(std::string path, std::string target, Kind kind)
      : path_(std::move(path)), target_(std::move(target)), kind_(kind) {}

  std::string path_;    // as given
  std::string target_;  // the file to write or replace (a symlink resolved)
  Kind kind_;
};

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_FILES_H_
