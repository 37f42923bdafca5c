// stampede-agent: wiring only.
#include <iostream>
#include <string>
#include <vector>

#include "agent/bench_command.h"
#include "agent/session.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << "stampede-agent: Stampede's load generator\n\ncommands:\n"
                 "  bench     run a load test from flags and print a summary (like wrk)\n"
                 "  connect   join a distributed test as one of its agents (started by the "
                 "controller)\n\n"
              << stampede::agent::BenchUsage();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "stampede-agent 0.1.0\n";
    return 0;
  }
  if (args[0] == "connect") {
    auto options =
        stampede::agent::ParseConnectFlags(std::vector<std::string>(args.begin() + 1, args.end()));
    if (!options.ok()) {
      std::cerr << "stampede-agent connect: " << options.status().message() << "\n\n"
                << stampede::agent::ConnectUsage();
      return 2;
    }
    if (options->help) {
      std::cout << stampede::agent::ConnectUsage();
      return 0;
    }
    return stampede::agent::RunSession(*options);
  }
  if (args[0] != "bench") {
    std::cerr << "stampede-agent: unknown command \"" << args[0]
              << "\" (try: stampede-agent bench --help)\n";
    return 2;
  }
  auto options =
      stampede::agent::ParseBenchFlags(std::vector<std::string>(args.begin() + 1, args.end()));
  if (!options.ok()) {
    std::cerr << "stampede-agent bench: " << options.status().message() << "\n\n"
              << stampede::agent::BenchUsage();
    return 2;
  }
  if (options->help) {
    std::cout << stampede::agent::BenchUsage();
    return 0;
  }
  return stampede::agent::RunBench(std::move(*options));
}
