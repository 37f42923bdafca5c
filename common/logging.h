// Minimal leveled logging to stderr: one line per message, `key=value` fields written by the
// caller.
//
//   SLOG(kInfo) << "agent started threads=" << n;
//
// Each message is written with a single write(2), so lines from different threads do not
// interleave. Per-request outcomes never go to the log; they are counted (see agent/stats.h).
#ifndef STAMPEDE_COMMON_LOGGING_H_
#define STAMPEDE_COMMON_LOGGING_H_

#include <sstream>

namespace stampede::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Thread-safe. The default level is kInfo; STAMPEDE_LOG_LEVEL=debug|info|warning|error overrides
// it.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  explicit LogMessage(LogLevel level);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace stampede::common

#define SLOG(level)                                                           \
  if (!::stampede::common::LogEnabled(::stampede::common::LogLevel::level)) { \
  } else                                                                      \
    ::stampede::common::LogMessage(::stampede::common::LogLevel::level).stream()

#endif  // STAMPEDE_COMMON_LOGGING_H_
