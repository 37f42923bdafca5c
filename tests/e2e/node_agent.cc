// stampede-test-node: the kubelet stand-in of the end-to-end tests (see test_node.h). Wiring only.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "controller/kube/client.h"
#include "controller/kube/config.h"
#include "tests/e2e/test_node.h"

namespace {

constexpr char kUsage[] =
    "usage: stampede-test-node --kubeconfig FILE --node-name NAME --log-dir DIR [--bin-dir DIR]\n"
    "                          [--image-archive FILE]... [--state-dir DIR] [--simulate]\n"
    "                          [--max-pods N]\n"
    "  Registers NAME as a Ready Node and runs the Pods bound to it: as runc containers when\n"
    "  their image was loaded, as local processes otherwise.\n"
    "  --bin-dir DIR        in process mode, a command whose basename is a file in DIR runs\n"
    "                       DIR/basename\n"
    "  --log-dir DIR        each Pod's stdout and stderr go to DIR/<namespace>_<pod>.log\n"
    "  --image-archive FILE an image archive from scripts/images to load (repeatable)\n"
    "  --state-dir DIR      images, container bundles and runc's state (needed with images)\n"
    "  --simulate           start nothing: report every Pod Running at once (operator scale\n"
    "                       tests)\n"
    "  --max-pods N         the Node's pods capacity (default 500)\n";

}  // namespace

int main(int argc, char** argv) {
  std::string kubeconfig;
  stampede::e2e::TestNode::Options options;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];  // --flag value, or --flag=value
    std::optional<std::string> value;
    if (const size_t equals = flag.find('='); equals != std::string::npos) {
      value = flag.substr(equals + 1);
      flag.resize(equals);
    }
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (flag == "--simulate" && !value.has_value()) {
      options.simulate = true;
      continue;
    }
    std::string archive, max_pods;
    std::string* target = flag == "--kubeconfig"      ? &kubeconfig
                          : flag == "--image-archive" ? &archive
                          : flag == "--state-dir"     ? &options.state_dir
                          : flag == "--node-name"     ? &options.node_name
                          : flag == "--bin-dir"       ? &options.bin_dir
                          : flag == "--log-dir"       ? &options.log_dir
                          : flag == "--max-pods"      ? &max_pods
                                                      : nullptr;
    if (target == nullptr || (!value.has_value() && i + 1 == args.size())) {
      std::cerr << "stampede-test-node: bad or incomplete flag \"" << args[i] << "\"\n" << kUsage;
      return 2;
    }
    *target = value.has_value() ? *value : args[++i];
    if (target == &archive) options.image_archives.push_back(archive);
    if (target == &max_pods && (!absl::SimpleAtoi(max_pods, &options.max_pods) ||
                                options.max_pods < 1 || options.max_pods > 1'000'000)) {
      std::cerr << "stampede-test-node: --max-pods: \"" << max_pods
                << "\" is not a count in 1..1000000\n";
      return 2;
    }
  }
  if (kubeconfig.empty() || options.node_name.empty() || options.log_dir.empty()) {
    std::cerr << "stampede-test-node: --kubeconfig, --node-name and --log-dir are required\n"
              << kUsage;
    return 2;
  }

  stampede::common::BlockStopSignals();
  auto config = stampede::kube::KubeconfigConfig(kubeconfig);
  if (!config.ok()) {
    SLOG(kError) << "test_node_config_failed error=\"" << config.status().message() << "\"";
    return 1;
  }
  options.api_server = config->server;
  auto client = stampede::kube::Client::New(*std::move(config));
  if (!client.ok()) {
    SLOG(kError) << "test_node_client_failed error=\"" << client.status().message() << "\"";
    return 1;
  }
  stampede::e2e::TestNode node(client->get(), options);
  if (const absl::Status started = node.Start(); !started.ok()) {
    SLOG(kError) << "test_node_register_failed node=" << options.node_name << " error=\""
                 << started.message() << "\"";
    return 1;
  }
  const int signal = stampede::common::WaitForStopSignal();
  SLOG(kInfo) << "test_node_stopping signal=" << signal;
  node.Stop();
  return 0;
}
