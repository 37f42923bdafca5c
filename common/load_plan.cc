#include "common/load_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/status_macros.h"
#include "stampede/v1/loadtest.pb.h"

namespace stampede::common {
namespace {

constexpr double kNanos = 1e9;

absl::Status CheckStages(const std::vector<Stage>& stages, const char* what) {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].duration_ns <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("stages[", i, "].duration: must be > 0"));
    }
    if (!(stages[i].target >= 0) || !std::isfinite(stages[i].target)) {
      return absl::InvalidArgumentError(
          absl::StrCat("stages[", i, "].target: must be >= 0 ", what));
    }
  }
  return absl::OkStatus();
}

int64_t StagesDuration(const std::vector<Stage>& stages) {
  int64_t total = 0;
  for (const Stage& s : stages) total += s.duration_ns;
  return total;
}

}  // namespace

void LoadPlan::BuildSegments(double initial, const std::vector<Stage>& stages) {
  segments_.clear();
  int64_t t = 0;
  double level = initial, arrivals = 0;
  // A stage keeps its slope when the run's duration cuts it short.
  auto add = [&](int64_t stage_ns, double stage_target) {
    if (t >= duration_ns_) return;
    const double slope = (stage_target - level) / (static_cast<double>(stage_ns) / kNanos);
    const int64_t duration = std::min(stage_ns, duration_ns_ - t);
    const double secs = duration / kNanos;
    const double end_level = duration == stage_ns ? stage_target : level + slope * secs;
    const double end_arrivals = arrivals + level * secs + slope * secs * secs / 2;
    segments_.push_back({t, duration, level, slope, arrivals, end_arrivals, end_level});
    arrivals = end_arrivals;
    t += duration;
    level = end_level;
  };
  for (const Stage& s : stages) add(s.duration_ns, s.target);
  stage_segments_ = stages.empty() ? 0 : segments_.size();
  if (t < duration_ns_) add(duration_ns_ - t, level);  // hold the last level
  total_arrivals_ = arrivals;
  double max = initial;
  for (const Segment& s : segments_) {
    max = std::max(max, s.start_level + s.slope * (s.duration_ns / kNanos));
  }
  max_users_ = static_cast<uint32_t>(std::floor(max + 1e-9));
}

std::vector<LoadPlan::Span> LoadPlan::Spans() const {
  std::vector<Span> spans;
  if (stage_segments_ == 0) return spans;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    spans.push_back(
        {s.start_ns, s.start_ns + s.duration_ns, s.start_level, s.end_level, i >= stage_segments_});
  }
  return spans;
}

absl::StatusOr<LoadPlan> LoadPlan::Closed(uint32_t users, double spawn_rate,
                                          std::vector<Stage> stages, int64_t duration_ns) {
  LoadPlan plan;
  plan.model_ = Model::kClosed;
  if (auto s = CheckStages(stages, "users"); !s.ok()) return s;
  if (!(spawn_rate >= 0) || !std::isfinite(spawn_rate)) {
    return absl::InvalidArgumentError("spawnRate: must be >= 0");
  }
  if (duration_ns == 0) duration_ns = StagesDuration(stages);
  if (duration_ns <= 0) return absl::InvalidArgumentError("duration: must be > 0");
  if (stages.empty() && users == 0) return absl::InvalidArgumentError("users: must be > 0");
  plan.duration_ns_ = duration_ns;
  plan.users_ = users;
  plan.spawn_rate_ = spawn_rate;
  if (stages.empty()) {
    plan.max_users_ = users;
    plan.ramp_end_ns_ =
        spawn_rate > 0 ? static_cast<int64_t>(std::ceil((users - 1) / spawn_rate * kNanos)) : 0;
  } else {
    plan.BuildSegments(users, stages);
    plan.ramp_end_ns_ = std::min(StagesDuration(stages), duration_ns);
  }
  return plan;
}

absl::StatusOr<LoadPlan> LoadPlan::Open(double rate, std::vector<Stage> stages,
                                        int64_t duration_ns) {
  LoadPlan plan;
  plan.model_ = Model::kOpen;
  if (auto s = CheckStages(stages, "requests per second"); !s.ok()) return s;
  if (duration_ns == 0) duration_ns = StagesDuration(stages);
  if (duration_ns <= 0) return absl::InvalidArgumentError("duration: must be > 0");
  if (stages.empty() && !(rate > 0 && std::isfinite(rate))) {
    return absl::InvalidArgumentError("rate: must be > 0");
  }
  plan.duration_ns_ = duration_ns;
  if (!(rate >= 0 && std::isfinite(rate))) return absl::InvalidArgumentError("rate: must be >= 0");
  plan.BuildSegments(rate, stages);
  return plan;
}

double LoadPlan::LevelAt(int64_t t_ns) const {
  if (segments_.empty()) return 0;
  auto it = std::upper_bound(segments_.begin(), segments_.end(), t_ns,
                             [](int64_t t, const Segment& s) { return t < s.start_ns; });
  const Segment& s = it == segments_.begin() ? segments_.front() : *(it - 1);
  const int64_t into = std::clamp<int64_t>(t_ns - s.start_ns, 0, s.duration_ns);
  return s.start_level + s.slope * (into / kNanos);
}

uint32_t LoadPlan::UsersAt(int64_t t_ns) const {
  if (t_ns < 0 || t_ns >= duration_ns_) return 0;
  if (segments_.empty()) {
    if (spawn_rate_ <= 0) return users_;
    const double started = std::floor(t_ns / kNanos * spawn_rate_) + 1;
    return static_cast<uint32_t>(std::min<double>(users_, started));
  }
  // A tiny epsilon keeps exact stage targets (e.g. 10.0 computed as 9.9999999) whole.
  return static_cast<uint32_t>(std::floor(LevelAt(t_ns) + 1e-9));
}

double LoadPlan::RateAt(int64_t t_ns) const {
  if (t_ns < 0 || t_ns >= duration_ns_) return 0;
  return LevelAt(t_ns);
}

int64_t LoadPlan::PlannedTime(uint64_t n) const {
  const double target = static_cast<double>(n);
  // Floating-point sums land a hair above or below whole numbers at stage boundaries; compare
  // with a tolerance so an arrival due exactly at a boundary is neither lost nor duplicated.
  const double tolerance = 1e-9 * std::max(1.0, target);
  if (target >= total_arrivals_ - tolerance) return INT64_MAX;
  // The first segment whose cumulative arrivals pass n holds arrival n.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), target + tolerance,
                             [](double v, const Segment& s) { return v < s.arrivals_end; });
  if (it == segments_.end()) return INT64_MAX;
  const Segment& s = *it;
  const double d = target - s.arrivals_before;
  const double a = s.start_level, b = s.slope;
  double tau = 0;  // seconds into the segment where cumulative arrivals reach n
  if (d > 0) {
    const double denom = a + std::sqrt(std::max(0.0, a * a + 2 * b * d));
    if (denom > 0) tau = 2 * d / denom;
  }
  const int64_t into = std::min<int64_t>(static_cast<int64_t>(tau * kNanos), s.duration_ns - 1);
  return s.start_ns + std::max<int64_t>(into, 0);
}

double LoadPlan::CumulativeAt(int64_t t_ns) const {
  if (segments_.empty() || t_ns <= 0) return 0;
  auto it = std::upper_bound(segments_.begin(), segments_.end(), t_ns,
                             [](int64_t t, const Segment& s) { return t < s.start_ns; });
  const Segment& s = *(it - 1);
  const double secs = std::clamp<int64_t>(t_ns - s.start_ns, 0, s.duration_ns) / kNanos;
  return s.arrivals_before + s.start_level * secs + s.slope * secs * secs / 2;
}

uint64_t LoadPlan::ArrivalsBefore(int64_t t_ns) const {
  if (t_ns <= 0) return 0;
  if (t_ns >= duration_ns_) return TotalArrivals();
  // The integral gives it to within rounding; PlannedTime, which the workers follow, settles it.
  uint64_t n = static_cast<uint64_t>(std::max(0.0, std::ceil(CumulativeAt(t_ns))));
  while (n > 0 && PlannedTime(n - 1) >= t_ns) --n;
  while (PlannedTime(n) < t_ns) ++n;
  return n;
}

uint64_t LoadPlan::TotalArrivals() const {
  uint64_t n = static_cast<uint64_t>(std::max(0.0, std::ceil(total_arrivals_)));
  while (n > 0 && PlannedTime(n - 1) == INT64_MAX) --n;
  return n;
}

absl::StatusOr<LoadPlan> LoadPlanFromSpec(const v1::LoadTestSpec& spec) {
  int64_t duration = 0;
  if (!spec.duration().empty()) {
    ASSIGN_OR_RETURN(duration, ParseDurationNanos("spec.duration", spec.duration()));
  }
  std::vector<Stage> stages;
  for (int i = 0; i < spec.load().stages_size(); ++i) {
    const v1::Stage& s = spec.load().stages(i);
    Stage stage;
    ASSIGN_OR_RETURN(
        stage.duration_ns,
        ParseDurationNanos(absl::StrCat("spec.load.stages[", i, "].duration"), s.duration()));
    stage.target = s.target();
    stages.push_back(stage);
  }
  const v1::Load& load = spec.load();
  absl::StatusOr<LoadPlan> plan =
      load.has_rate() ? LoadPlan::Open(load.rate(), stages, duration)
                      : LoadPlan::Closed(load.users(), load.spawn_rate(), stages, duration);
  if (!plan.ok())
    return absl::InvalidArgumentError(absl::StrCat("spec.load: ", plan.status().message()));
  return plan;
}

}  // namespace stampede::common
