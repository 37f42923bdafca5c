// libFuzzer target for what the controller decodes of its agents: any bytes as a stream of
// AgentMessages (each a protobuf parse, as gRPC hands them over) whose reports go into an
// Aggregator of three agents and two requests, never crash; a report it accepts counts exactly
// once (the totals after FinalizeAll equal the requests of the accepted reports, whatever the
// order, duplicates, late and folded ones), and folding the accepted plain reports gives one
// report that merges whole.
//
// Input: records of [agent byte][length byte][that many bytes of an AgentMessage].
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/report.h"
#include "common/stats.h"
#include "controller/aggregator.h"
#include "google/protobuf/stubs/logging.h"
#include "stampede/v1/agent.pb.h"

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace {

// The requests a report holds, or nothing when it does not merge on its own.
bool RequestsOf(const stampede::v1::Report& report, uint64_t* requests) {
  stampede::common::IntervalStats stats(2);
  if (!stampede::common::MergeReport(report, &stats).ok()) return false;
  *requests = stats.Requests();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // a bad UTF-8 string is a parse failure, not news
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stampede::controller::Aggregator aggregator({"home", "item"}, 3);
  uint64_t accepted = 0;
  std::vector<std::string> plain;  // serialized plain reports accepted, for the fold
  size_t at = 0;
  int64_t now = 0;
  while (at + 2 <= size) {
    const uint32_t agent = data[at] % 4;  // 3 is no agent of this run
    const size_t length = data[at + 1];
    at += 2;
    if (at + length > size) break;
    stampede::v1::AgentMessage message;
    const bool parsed = message.ParseFromArray(data + at, static_cast<int>(length));
    at += length;
    if (!parsed) continue;
    if (message.has_done()) {
      if (agent < 3) aggregator.AgentGone(agent);
      continue;
    }
    if (!message.has_report()) continue;
    const stampede::v1::Report& report = message.report();
    const uint64_t duplicates = aggregator.duplicate_reports();
    // As a run of ten minutes bounds them (Run passes its elapsed seconds and some slack).
    const bool ok = aggregator.Add(agent, report, /*newest=*/600).ok();
    if (!ok) continue;
    CHECK(agent < 3);
    if (aggregator.duplicate_reports() != duplicates) continue;  // a replay: counted before
    uint64_t requests = 0;
    CHECK(RequestsOf(report, &requests));  // what the aggregator took merges on its own
    accepted += requests;
    if (report.folded_through() <= report.interval()) plain.push_back(report.SerializeAsString());
    // Now and then some seconds close, as the run's ticker closes them.
    if ((data[at - 1] & 7) == 0) aggregator.Finalize(report.interval(), ++now);
  }
  aggregator.FinalizeAll(++now);
  CHECK(aggregator.cumulative().Requests() == accepted);
  uint64_t from_series = 0;
  for (const auto& point : aggregator.series()) from_series += point.requests;
  CHECK(from_series <= accepted);

  if (!plain.empty()) {
    absl::StatusOr<stampede::v1::Report> folded = stampede::common::FoldReports(plain);
    if (folded.ok()) {
      stampede::common::IntervalStats merged(2);
      CHECK(stampede::common::MergeReport(*folded, &merged).ok());
    }
  }
  return 0;
}
