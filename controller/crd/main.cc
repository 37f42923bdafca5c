// stampede-crdgen: prints the LoadTest CustomResourceDefinition generated from a descriptor set of
// proto/stampede/v1/loadtest.proto (see crd_generator.h). The build runs it for the `update-crd`
// target and the unit tests; nobody needs to call it by hand.
//
//   stampede-crdgen --descriptor_set=loadtest.desc [--output=FILE]
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "controller/crd/crd_generator.h"
#include "google/protobuf/descriptor.pb.h"

int main(int argc, char** argv) {
  std::string descriptor_set, output;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--descriptor_set=")) {
      descriptor_set = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--output=")) {
      output = std::string(arg);
    } else {
      descriptor_set.clear();
      break;
    }
  }
  if (descriptor_set.empty()) {
    std::cerr << "usage: stampede-crdgen --descriptor_set=FILE [--output=FILE]\n"
                 "FILE comes from protoc --include_imports --include_source_info "
                 "--descriptor_set_out=FILE\n";
    return 2;
  }
  std::ifstream in(descriptor_set, std::ios::binary);
  google::protobuf::FileDescriptorSet files;
  if (!in || !files.ParseFromIstream(&in)) {
    std::cerr << "stampede-crdgen: cannot read a FileDescriptorSet from " << descriptor_set << "\n";
    return 1;
  }
  absl::StatusOr<std::string> crd =
      stampede::controller::GenerateCrd(files, stampede::controller::LoadTestCrdOptions());
  if (!crd.ok()) {
    std::cerr << "stampede-crdgen: " << crd.status().message() << "\n";
    return 1;
  }
  if (output.empty()) {
    std::cout << *crd;
    return std::cout.good() ? 0 : 1;
  }
  std::ofstream out(output, std::ios::binary | std::ios::trunc);
  out << *crd;
  out.close();
  if (!out) {
    std::cerr << "stampede-crdgen: cannot write " << output << "\n";
    return 1;
  }
  return 0;
}
