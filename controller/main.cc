// stampede: the controller. Wiring only.
#include <iostream>
#include <string>
#include <vector>

#include "controller/operator/operator_command.h"
#include "controller/report.h"
#include "controller/run_command.h"
#include "controller/serve_command.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << "stampede: distributed HTTP load testing\n\ncommands:\n"
                 "  run TEST.yaml   run one LoadTest on local agents and exit with its verdict\n"
                 "  serve           run LoadTests posted to a REST API; Prometheus metrics\n"
                 "  operator        run the LoadTest custom resources of a Kubernetes cluster\n"
                 "  report RESULTS.json  the HTML report of a run's results\n"
                 "  compare A.json B.json  two runs or more side by side, with ratios\n\n"
              << stampede::controller::RunUsage() << "\n"
              << stampede::controller::ServeUsage() << "\n"
              << stampede::controller::OperatorUsage() << "\n"
              << stampede::controller::ReportUsage() << "\n"
              << stampede::controller::CompareUsage();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "stampede 0.1.0\n";
    return 0;
  }
  if (args[0] == "run")
    return stampede::controller::RunCommand(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] == "serve") {
    return stampede::controller::ServeCommand(
        std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "compare") {
    return stampede::controller::CompareCommand(
        std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "report") {
    return stampede::controller::ReportCommand(
        std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "operator") {
    return stampede::controller::OperatorCommand(
        std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::cerr << "stampede: unknown command \"" << args[0] << "\" (try: stampede --help)\n";
  return 2;
}
