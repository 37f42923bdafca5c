#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace stampede::common {
namespace {

absl::Status Errno(const std::string& what, const std::string& path, int error) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM || error == EROFS)
    return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Writes all of `content` to `fd`; the errno of the first failure, or 0.
int WriteAll(int fd, const std::string& content) {
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? EIO : errno;
    done += static_cast<size_t>(n);
  }
  return 0;
}

std::string Directory(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Errno("cannot read", path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const mode_t mode = st.st_mode;
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", KindOf(mode), ", not a file to read"));
  }
  std::string content;
  content.resize(max_bytes + 1);
  size_t got = 0;
  while (got < content.size()) {
    const ssize_t n = read(fd, content.data() + got, content.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      return Errno("cannot read", path, error);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  content.resize(got);
  return content;
}

absl::StatusOr<OutputFile> OutputFile::Prepare(const std::string& path) {
  if (path == "-") return OutputFile(path, path, Kind::kStdout);
  if (path.empty()) return absl::FailedPreconditionError("an empty path");
  std::string target = path;
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    // Replace the file the link points to; a dangling link's target is created.
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) != nullptr) {
      target = resolved;
    } else {
      char link[PATH_MAX];
      const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
      if (n <= 0)
        return absl::FailedPreconditionError(Errno("cannot follow", path, errno).message());
      link[n] = '\0';
      target = link[0] == '/' ? std::string(link) : absl::StrCat(Directory(path), "/", link);
    }
  }
  if (stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return absl::FailedPreconditionError(absl::StrCat(path, " is a directory"));
    if (access(target.c_str(), W_OK) != 0) {
      return absl::FailedPreconditionError(Errno("cannot write", path, errno).message());
    }
    if (!S_ISREG(st.st_mode)) return OutputFile(path, target, Kind::kInPlace);
  } else if (errno != ENOENT) {
    return absl::FailedPreconditionError(Errno("cannot write", path, errno).message());
  }
  // A new file, or one to replace: its directory must take the temporary file and the rename.
  const std::string dir = Directory(target);
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(Errno("cannot write in", dir, errno).message());
  }
  return OutputFile(path, target, Kind::kReplace);
}

absl::Status OutputFile::Write(const std::string& content) const {
  if (kind_ == Kind::kStdout) {
    if (const int error = WriteAll(STDOUT_FILENO, content); error != 0)
      return Errno("cannot write", "standard output", error);
    return absl::OkStatus();
  }
  if (kind_ == Kind::kInPlace) {
    const int fd = open(target_.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return Errno("cannot open", path_, errno);
    const int error = WriteAll(fd, content);
    const int close_error = close(fd) == 0 ? 0 : errno;
    if (error != 0 || close_error != 0)
      return Errno("cannot write", path_, error != 0 ? error : close_error);
    return absl::OkStatus();
  }
  std::string tmp = absl::StrCat(target_, ".tmp-XXXXXX");
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return Errno("cannot create a temporary file for", path_, errno);
  fchmod(fd, 0644);
  int error = WriteAll(fd, content);
  if (error == 0 && fsync(fd) != 0) error = errno;
  if (close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && rename(tmp.c_str(), target_.c_str()) != 0) error = errno;
  if (error != 0) {
    unlink(tmp.c_str());
    return Errno("cannot write", path_, error);
  }
  return absl::OkStatus();
}

}  // namespace stampede::common
