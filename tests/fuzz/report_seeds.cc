// Writes report_fuzz's seed corpus (tests/fuzz/corpus/report/) from real reports, so the seeds
// follow the proto: `report_seeds DIR`. Built with the fuzz targets; run it again after a change
// to agent.proto's Report, and check the files in.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/report.h"
#include "common/stats.h"
#include "stampede/v1/agent.pb.h"

namespace {

using stampede::common::IntervalStats;

// A second of `n` successful requests of 2 ms and one of 40 ms, and one error, for request 0.
std::string Report(int64_t interval, uint64_t n, int64_t folded_through = 0) {
  IntervalStats stats(2);
  stats.index = interval;
  stats.requests[0].latency.RecordN(2'000'000, n);
  stats.requests[0].latency.Record(40'000'000);
  stats.requests[0].outcomes[0] = n + 1;
  stats.requests[1].outcomes[1] = 1;  // an error without a response
  stats.active_users = 4;
  stampede::v1::AgentMessage message;
  stampede::common::IntervalToReport(stats, message.mutable_report());
  message.mutable_report()->set_interval(interval);
  if (folded_through != 0) message.mutable_report()->set_folded_through(folded_through);
  return message.SerializeAsString();
}

std::string Done() {
  stampede::v1::AgentMessage message;
  message.mutable_done();
  return message.SerializeAsString();
}

// One record of report_fuzz's input: [agent][length][bytes]; skipped when over 255 bytes.
void Add(std::string& out, uint8_t agent, const std::string& message) {
  if (message.size() > 255) {
    std::cerr << "report_seeds: a message of " << message.size() << " bytes does not fit\n";
    return;
  }
  out.push_back(static_cast<char>(agent));
  out.push_back(static_cast<char>(message.size()));
  out += message;
}

bool Write(const std::string& dir, const std::string& name, const std::string& data) {
  std::ofstream file(dir + "/" + name, std::ios::binary);
  file << data;
  return static_cast<bool>(file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: report_seeds DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::string steady;  // three agents, two seconds each, one replayed, then done
  for (uint8_t agent = 0; agent < 3; ++agent) Add(steady, agent, Report(0, 10 + agent));
  for (uint8_t agent = 0; agent < 3; ++agent) Add(steady, agent, Report(1, 20));
  Add(steady, 1, Report(0, 11));  // a replay after a reconnect
  for (uint8_t agent = 0; agent < 3; ++agent) Add(steady, agent, Done());

  std::string folded;  // a fold of seconds 0..3, then the newest seconds whole, then a late one
  Add(folded, 0, Report(0, 50, 3));
  Add(folded, 0, Report(4, 5));
  Add(folded, 1, Report(5, 5));
  Add(folded, 2, Report(0, 7));
  Add(folded, 0, Report(2, 9));  // overlaps the fold: rejected

  std::string odd;  // an unknown agent, an interval out of range, a truncated message
  Add(odd, 3, Report(0, 1));
  Add(odd, 0, Report(-1, 1));
  Add(odd, 1, Report(7 * 24 * 3600 + 1, 1));
  const std::string whole = Report(2, 3);
  Add(odd, 2, whole.substr(0, whole.size() / 2));

  const bool ok =
      Write(dir, "steady", steady) && Write(dir, "folded", folded) && Write(dir, "odd", odd);
  return ok ? 0 : 1;
}
