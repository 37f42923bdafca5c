// Test support: a real Prometheus (Debian's) on loopback that scrapes one target every second, and
// deploy/grafana/stampede.json's queries run through its HTTP API the way Grafana runs them, with
// the dashboard's variables filled in. Used against `stampede run` (grafana_prometheus_test) and
// against the operator on a real control plane (e2e_operator_test).
#ifndef STAMPEDE_TESTS_GRAFANA_DASHBOARD_QUERIES_H_
#define STAMPEDE_TESTS_GRAFANA_DASHBOARD_QUERIES_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace stampede::testing {

class Prometheus {
 public:
  // Starts /usr/bin/prometheus with its data in `dir`, scraping `target` (host:port) every 1 s
  // with honor_labels, as deploy/prometheus/ configures it.
  Prometheus(const std::string& dir, const std::string& target);
  ~Prometheus();  // SIGTERM, then waits for the exit
  // True once /-/ready answers (within 60 s).
  bool WaitReady();
  std::string Log() const { return process_->Stderr(); }

  // The answer to `path?params` as JSON; null when Prometheus did not answer 200.
  nlohmann::json Api(const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& params) const;
  // data.result of an instant query at `time_s`, or of a range query at a 1 s step; null on an
  // error.
  nlohmann::json Instant(const std::string& expr, long time_s) const;
  nlohmann::json Range(const std::string& expr, long start_s, long end_s) const;

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// What the dashboard showed for the LoadTests chosen over [start_s, end_s].
struct DashboardAnswers {
  std::map<std::string, nlohmann::json> panels;  // "panel title/refId" -> data.result
  std::vector<std::string> empty;                // "panel title/refId: expr" that had no data
  std::set<std::string> annotated_phases;        // the phases the annotation query marks
  std::map<std::string, std::set<std::string>> variables;  // query variable -> its values
  int queries = 0;
};

// Every panel query (instant or range, as the panel asks), the annotation query and each query
// variable's label_values, with $namespace, $loadtest (`loadtests`: one name, or several joined
// by '|', as a multi-select), $request (all of `requests`), $quantile (0.99), $__rate_interval
// (4s) and $__range filled in.
DashboardAnswers QueryDashboard(const Prometheus& prometheus, const nlohmann::json& dashboard,
                                const std::string& ns, const std::string& loadtests,
                                const std::vector<std::string>& requests, long start_s, long end_s);

// The highest sample of a range result (0 when it has none).
double MaxSample(const nlohmann::json& range_result);
// The value of the instant-result series whose `label` is `value`; -1 when none is.
double ValueWhere(const nlohmann::json& instant_result, const std::string& label,
                  const std::string& value);

// deploy/grafana/stampede.json, parsed.
nlohmann::json LoadDashboard();

}  // namespace stampede::testing

#endif  // STAMPEDE_TESTS_GRAFANA_DASHBOARD_QUERIES_H_
