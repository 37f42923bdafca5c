#include "controller/aggregator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/report.h"
#include "stampede/v1/agent.pb.h"

namespace stampede::controller {
namespace {
// A week of seconds bounds what a garbage interval number can make us allocate.
constexpr int64_t kMaxInterval = 7 * 24 * 3600;
}  // namespace

Aggregator::Aggregator(std::vector<std::string> request_names, uint32_t agents, int window)
    : names_(std::move(request_names)),
      window_(window),
      reported_up_to_(agents, -1),
      gone_(agents, false),
      seen_(agents),
      cumulative_(names_.size()) {}

absl::Status Aggregator::Add(uint32_t agent, const v1::Report& report, int64_t newest) {
  if (agent >= reported_up_to_.size() || report.interval() < 0 ||
      report.interval() > kMaxInterval) {
    ++rejected_reports_;
    return absl::InvalidArgumentError(
        "report from an unknown agent or for an interval out of range");
  }
  if (const int64_t last = std::max(report.interval(), report.folded_through()); last > newest) {
    // Every second up to it would be closed, one point each: a report from far ahead would cost
    // the controller that many seconds' work and memory at the end of the run.
    ++rejected_reports_;
    return absl::InvalidArgumentError(
        absl::StrCat("report for second ", last, ", past second ", newest, " of the test"));
  }
  // A report goes into its pending interval, which joins the cumulative totals when it is
  // finalized; a late one (its interval already closed) goes straight into the totals. Either way
  // each report is merged once, and MergeReport rejects a malformed one whole.
  // An agent that reconnects replays every report since its start; each interval counts once.
  if (report.folded_through() > report.interval()) return AddFolded(agent, report);
  std::vector<bool>& seen = seen_[agent];
  const size_t slot = static_cast<size_t>(report.interval());
  if (slot < seen.size() && seen[slot]) {
    ++duplicate_reports_;
    return absl::OkStatus();
  }
  const bool late = report.interval() < next_to_finalize_;
  common::IntervalStats* target = &cumulative_;
  if (!late) {
    auto it = pending_.find(report.interval());
    if (it == pending_.end())
      it = pending_.emplace(report.interval(), common::IntervalStats(names_.size())).first;
    target = &it->second;
  }
  if (absl::Status s = common::MergeReport(report, target); !s.ok()) {
    ++rejected_reports_;
    return s;
  }
  if (late) {
    ++late_reports_;
    if (const int stage = StageOf(report.interval()); stage >= 0) {
      (void)common::MergeReport(report, &stages_[stage].stats);  // it merged above: it merges
    }
  }
  if (slot >= seen.size()) seen.resize(std::max(slot + 1, seen.size() * 2), false);
  seen[slot] = true;
  reported_up_to_[agent] = std::max(reported_up_to_[agent], report.interval());
  return absl::OkStatus();
}

absl::Status Aggregator::AddFolded(uint32_t agent, const v1::Report& report) {
  const int64_t first = report.interval(), last = report.folded_through();
  if (last > kMaxInterval) {
    ++rejected_reports_;
    return absl::InvalidArgumentError("folded report runs past the interval range");
  }
  std::vector<bool>& seen = seen_[agent];
  if (seen.size() <= static_cast<size_t>(last)) seen.resize(static_cast<size_t>(last) + 1, false);
  int64_t already = 0;
  for (int64_t i = first; i <= last; ++i) already += seen[static_cast<size_t>(i)] ? 1 : 0;
  if (already == last - first + 1) {
    ++duplicate_reports_;
    return absl::OkStatus();
  }
  if (already != 0) {
    // Part of it is counted already and a fold cannot be split: taking it would count those
    // seconds twice. The agent keeps its newest reports whole to make this impossible.
    ++rejected_reports_;
    return absl::InvalidArgumentError(absl::StrCat("folded report of intervals ", first, "..", last,
                                                   " overlaps ", already,
                                                   " interval(s) already counted"));
  }
  // The fold has no per-second detail: it joins the totals at once, and the seconds it covers
  // are closed now (with what other agents sent for them) rather than left waiting for it.
  if (absl::Status s = common::MergeReport(report, &cumulative_); !s.ok()) {
    ++rejected_reports_;
    return s;
  }
  if (const int stage = StageOf(first); stage >= 0) {
    (void)common::MergeReport(report, &stages_[stage].stats);
    if (StageOf(last) != stage) stages_[stage].folded = true;
  }
  for (int64_t i = first; i <= last; ++i) seen[static_cast<size_t>(i)] = true;
  reported_up_to_[agent] = std::max(reported_up_to_[agent], last);
  ++folded_reports_;
  while (next_to_finalize_ <= last) {
    auto it = pending_.find(next_to_finalize_);
    if (it != pending_.end()) {
      AddToTotals(it->second, next_to_finalize_);
      pending_.erase(it);
    }
    ++next_to_finalize_;
  }
  return absl::OkStatus();
}

void Aggregator::AgentGone(uint32_t agent) {
  if (agent < gone_.size()) gone_[agent] = true;
}

std::vector<IntervalPoint> Aggregator::Finalize(int64_t force_before, int64_t now_ns) {
  std::vector<IntervalPoint> out;
  while (true) {
    const int64_t index = next_to_finalize_;
    bool complete = true, anyone = false;
    for (size_t a = 0; a < reported_up_to_.size(); ++a) {
      if (gone_[a]) continue;
      anyone = true;
      if (reported_up_to_[a] < index) complete = false;
    }
    auto it = pending_.find(index);
    // With every agent gone, only intervals someone reported remain to close.
    if (!anyone) complete = it != pending_.end();
    if (!complete && index >= force_before) break;
    if (!complete && it == pending_.end() && pending_.empty()) break;
    common::IntervalStats empty(names_.size());
    common::IntervalStats& stats = it != pending_.end() ? it->second : empty;
    out.push_back(Close(index, stats, now_ns));
    if (it != pending_.end()) pending_.erase(it);
    ++next_to_finalize_;
  }
  return out;
}

std::vector<IntervalPoint> Aggregator::FinalizeAll(int64_t now_ns) {
  std::vector<IntervalPoint> out;
  while (!pending_.empty()) {
    auto more = Finalize(pending_.rbegin()->first + 1, now_ns);
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

void Aggregator::AddToTotals(const common::IntervalStats& stats, int64_t index) {
  // Gauges of the interval (users, in flight) are not sums over time; keep the totals' own.
  const uint32_t users = cumulative_.active_users, in_flight = cumulative_.in_flight;
  cumulative_.Merge(stats);
  cumulative_.active_users = users;
  cumulative_.in_flight = in_flight;
  if (const int stage = StageOf(index); stage >= 0) stages_[stage].stats.Merge(stats);
}

void Aggregator::SetStages(std::vector<int64_t> stage_starts_ns) {
  stage_starts_ns_ = std::move(stage_starts_ns);
  stages_.assign(stage_starts_ns_.size(), StageTotals{common::IntervalStats(names_.size()), false});
}

int Aggregator::StageOf(int64_t index) const {
  if (stage_starts_ns_.empty()) return -1;
  const int64_t at = index * 1'000'000'000;
  const auto it = std::upper_bound(stage_starts_ns_.begin(), stage_starts_ns_.end(), at);
  return it == stage_starts_ns_.begin() ? 0 : static_cast<int>(it - stage_starts_ns_.begin()) - 1;
}

IntervalPoint Aggregator::Close(int64_t index, common::IntervalStats& stats, int64_t now_ns) {
  AddToTotals(stats, index);
  IntervalPoint p;
  p.index = index;
  p.active_users = stats.active_users;
  p.in_flight = stats.in_flight;
  p.busiest_thread_cpu = stats.busiest_thread_cpu;
  p.max_timer_lag_ns = stats.max_timer_lag_ns;
  p.finalized_at_ns = now_ns;
  common::Histogram all;
  auto fill = [](IntervalPoint::Request* r, const common::Histogram& h) {
    r->p50 = h.ValueAtQuantile(0.5);
    r->p90 = h.ValueAtQuantile(0.9);
    r->p95 = h.ValueAtQuantile(0.95);
    r->p99 = h.ValueAtQuantile(0.99);
    r->p999 = h.ValueAtQuantile(0.999);
    r->max = h.max();
    r->timed = h.count();
  };
  WindowEntry entry{index, 0, {}};
  for (common::RequestStats& r : stats.requests) {
    IntervalPoint::Request pr;
    pr.requests = r.Requests();
    pr.errors = r.Errors();
    fill(&pr, r.latency);
    p.per_request.push_back(pr);
    p.requests += pr.requests;
    p.errors += pr.errors;
    all.Merge(r.latency);
    entry.latency.push_back(std::move(r.latency));
  }
  p.total.requests = p.requests;
  p.total.errors = p.errors;
  fill(&p.total, all);
  entry.requests = p.requests;
  window_entries_.push_back(std::move(entry));
  while (static_cast<int>(window_entries_.size()) > window_) window_entries_.pop_front();
  series_.push_back(p);
  return p;
}

common::Histogram Aggregator::WindowLatency(int request) const {
  common::Histogram h;
  for (const WindowEntry& e : window_entries_) {
    for (size_t i = 0; i < e.latency.size(); ++i) {
      if (request < 0 || static_cast<size_t>(request) == i) h.Merge(e.latency[i]);
    }
  }
  return h;
}

double Aggregator::WindowRps() const {
  if (window_entries_.empty()) return 0;
  uint64_t n = 0;
  for (const WindowEntry& e : window_entries_) n += e.requests;
  return static_cast<double>(n) / window_entries_.size();
}

}  // namespace stampede::controller
