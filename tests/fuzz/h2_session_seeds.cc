// Writes h2_session_fuzz's seed corpus (tests/fuzz/corpus/h2_session/) from what the misbehaving
// test server (tests/target/h2_test_server.h) really sends to the fuzz target's client:
// `h2_session_seeds DIR`. Built with the fuzz targets; run it again after a change to h2_fuzz.h or
// the server, and check the files in.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "tests/fuzz/h2_fuzz.h"
#include "tests/target/h2_test_server.h"

namespace {

using stampede::test_target::H2TestServer;

class Ignore : public stampede::agent::H2Session::Listener {
 public:
  void OnStreamEnd(const stampede::agent::H2StreamEnd&) override {}
};

// Everything the server sends in the exchange, after the read-size byte.
std::string ServerBytes(uint8_t read_size, const stampede::h2_fuzz::Requests& requests,
                        const H2TestServer::Options& server_options) {
  Ignore ignore;
  auto client = stampede::h2_fuzz::NewClient(&ignore);
  H2TestServer server(server_options);
  uint64_t submitted = 0;
  std::string seed(1, static_cast<char>(read_size));
  for (int round = 0; round < 50; ++round) {
    stampede::h2_fuzz::SubmitMore(*client, requests, &submitted, 1);
    uint8_t buf[16384];
    std::string out;
    while (size_t n = client->Produce(buf, sizeof(buf), 1))
      out.append(reinterpret_cast<char*>(buf), n);
    server.Receive(reinterpret_cast<const uint8_t*>(out.data()), out.size());
    std::string back;
    server.Produce(&back);
    client->Receive(reinterpret_cast<const uint8_t*>(back.data()), back.size(), 1);
    seed += back;
    if (out.empty() && back.empty()) break;
  }
  return seed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: h2_session_seeds DIR\n";
    return 2;
  }
  H2TestServer::Options normal;
  H2TestServer::Options zero_window;
  zero_window.zero_window = true;
  H2TestServer::Options one_stream;
  one_stream.max_concurrent_streams = 1;
  using stampede::h2_fuzz::Requests;
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"ok-rst-goaway", ServerBytes(0, Requests(), normal)},
      {"ok-rst-goaway-small-reads", ServerBytes(7, Requests(), normal)},
      {"all-ok", ServerBytes(0, Requests("/", "/", "/status/204"), normal)},
      {"status", ServerBytes(3, Requests("/status/503", "/status/201", "/"), normal)},
      {"zero-window", ServerBytes(0, Requests("/", "/", "/"), zero_window)},
      {"one-stream", ServerBytes(0, Requests("/", "/", "/"), one_stream)},
      {"garbage", ServerBytes(0, Requests("/hang", "/", "/garbage"), normal)},
      {"bad-hpack", ServerBytes(1, Requests("/", "/", "/bad-hpack"), normal)},
      {"refuse", ServerBytes(0, Requests("/refuse", "/rst", "/hang"), normal)},
      // Interim 103s, fields, cookies and trailers for the streams that deliver their responses.
      {"session", ServerBytes(0, Requests("/session", "/session", "/"), normal)},
  };
  for (const auto& [name, bytes] : seeds) {
    std::ofstream out(std::string(argv[1]) + "/" + name, std::ios::binary);
    out << bytes;
    if (!out) {
      std::cerr << "cannot write " << argv[1] << "/" << name << "\n";
      return 1;
    }
  }
  return 0;
}
