// SIGINT/SIGTERM handling for the command-line programs: the signals are blocked in every thread
// and taken synchronously by one watcher, so stopping runs as ordinary code, not in a handler.
#ifndef STAMPEDE_COMMON_STOP_SIGNALS_H_
#define STAMPEDE_COMMON_STOP_SIGNALS_H_

#include <functional>

namespace stampede::common {

// Blocks SIGINT and SIGTERM in the calling thread and ignores SIGPIPE. Call before creating
// threads, so that they all inherit the mask.
void BlockStopSignals();

// Starts a detached thread that waits for SIGINT/SIGTERM and calls `on_signal(signal, count)`,
// count being 1 for the first signal, 2 for the second... The program ends by other means.
void WatchStopSignals(std::function<void(int signal, int count)> on_signal);

// Blocks the calling thread until SIGINT or SIGTERM arrives; returns the signal.
int WaitForStopSignal();

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_STOP_SIGNALS_H_
