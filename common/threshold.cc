#include "common/threshold.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/duration.h"

namespace stampede::common {
namespace {

constexpr char kMetrics[] = "p50..p99.999, max, mean, min, error_rate, rps, requests or errors";

bool IsLatency(Threshold::Metric m) {
  return m == Threshold::Metric::kQuantile || m == Threshold::Metric::kMax ||
         m == Threshold::Metric::kMean || m == Threshold::Metric::kMin;
}

// Unsigned decimal: "12", "12.5", ".5". No sign or exponent: thresholds are written by hand.
bool ParseDecimal(absl::string_view text, double* out) {
  size_t digits = 0, dots = 0;
  for (char c : text) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      ++digits;
    } else if (c == '.') {
      ++dots;
    } else {
      return false;
    }
  }
  return digits > 0 && dots <= 1 && absl::SimpleAtod(text, out) && std::isfinite(*out);
}

// "p95" -> 0.95, "p99.9" -> 0.999. Returns an error reason, empty when parsed; sets *is_quantile
// when the word has the shape of a quantile at all.
std::string ParseQuantile(absl::string_view word, double* quantile, bool* is_quantile) {
  *is_quantile = false;
  if (word.size() < 2 || word[0] != 'p' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(word[1]))) {
    return "not a quantile";
  }
  absl::string_view number = word.substr(1);
  const size_t dot = number.find('.');
  absl::string_view whole = number.substr(0, dot);
  absl::string_view fraction = dot == absl::string_view::npos ? "" : number.substr(dot + 1);
  for (absl::string_view part : {whole, fraction}) {
    for (char c : part) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return "not a quantile";
    }
  }
  if (dot != absl::string_view::npos && fraction.empty()) return "not a quantile";
  *is_quantile = true;
  if (fraction.size() > 3) {
    return absl::StrCat("quantile \"", word, "\" has more than 3 decimals after the point");
  }
  // Thousandths of a percent, so p99.9 becomes exactly the double nearest 0.999.
  uint64_t percent = 0;
  if (whole.size() > 3 || !absl::SimpleAtoi(whole, &percent)) percent = 100;
  uint64_t milli = percent * 1000;
  uint64_t scale = 100;
  for (char c : fraction) {
    milli += static_cast<uint64_t>(c - '0') * scale;
    scale /= 10;
  }
  if (milli == 0 || milli >= 100000) {
    return absl::StrCat("quantile \"", word, "\" must be above p0 and below p100");
  }
  *quantile = static_cast<double>(milli) / 100000.0;
  return "";
}

}  // namespace

bool Threshold::Holds(double actual) const {
  switch (op) {
    case Op::kLess:
      return actual < value;
    case Op::kLessEqual:
      return actual <= value;
    case Op::kGreater:
      return actual > value;
    case Op::kGreaterEqual:
      return actual >= value;
  }
  return false;
}

absl::StatusOr<Threshold> ParseThreshold(std::string_view expression) {
  const absl::string_view text =
      absl::StripAsciiWhitespace(absl::string_view(expression.data(), expression.size()));
  Threshold t;
  t.expression = std::string(text);
  auto error = [&](absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat("threshold \"", text, "\": ", reason));
  };
  if (text.empty()) return absl::InvalidArgumentError("threshold is empty");

  size_t pos = 0;
  while (pos < text.size() && (absl::ascii_isalnum(static_cast<unsigned char>(text[pos])) ||
                               text[pos] == '_' || text[pos] == '.')) {
    ++pos;
  }
  const absl::string_view word = text.substr(0, pos);
  if (word.empty()) return error(absl::StrCat("missing metric (", kMetrics, ")"));
  if (word == "max") {
    t.metric = Threshold::Metric::kMax;
  } else if (word == "mean") {
    t.metric = Threshold::Metric::kMean;
  } else if (word == "min") {
    t.metric = Threshold::Metric::kMin;
  } else if (word == "error_rate") {
    t.metric = Threshold::Metric::kErrorRate;
  } else if (word == "rps") {
    t.metric = Threshold::Metric::kRps;
  } else if (word == "requests") {
    t.metric = Threshold::Metric::kRequests;
  } else if (word == "errors") {
    t.metric = Threshold::Metric::kErrors;
  } else {
    bool is_quantile = false;
    const std::string reason = ParseQuantile(word, &t.quantile, &is_quantile);
    if (!is_quantile) {
      return error(absl::StrCat("unknown metric \"", word, "\" (use ", kMetrics, ")"));
    }
    if (!reason.empty()) return error(reason);
    t.metric = Threshold::Metric::kQuantile;
  }

  absl::string_view rest = absl::StripLeadingAsciiWhitespace(text.substr(pos));
  if (!rest.empty() && rest[0] == '{') {
    const size_t close = rest.find('}');
    if (close == absl::string_view::npos) return error("missing } after the request name");
    t.request = std::string(absl::StripAsciiWhitespace(rest.substr(1, close - 1)));
    if (t.request.empty()) return error("empty request name between { and }");
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(close + 1));
  }

  if (rest.empty()) return error("missing operator (<, <=, > or >=) and value");
  size_t op_len = 1;
  if (rest.substr(0, 2) == "<=") {
    t.op = Threshold::Op::kLessEqual;
    op_len = 2;
  } else if (rest.substr(0, 2) == ">=") {
    t.op = Threshold::Op::kGreaterEqual;
    op_len = 2;
  } else if (rest[0] == '<') {
    t.op = Threshold::Op::kLess;
  } else if (rest[0] == '>') {
    t.op = Threshold::Op::kGreater;
  } else if (rest[0] == '=' || rest[0] == '!') {
    const absl::string_view op = rest.substr(0, rest.size() > 1 && rest[1] == '=' ? 2 : 1);
    return error(absl::StrCat("operator \"", op,
                              "\" is not supported; use <, <=, > or >= (e.g. errors < 1)"));
  } else {
    return error(absl::StrCat("expected an operator (<, <=, > or >=) after \"", word, "\", got \"",
                              rest, "\""));
  }
  const absl::string_view value = absl::StripAsciiWhitespace(rest.substr(op_len));
  if (value.empty()) return error("missing value");

  double number = 0;
  if (IsLatency(t.metric)) {
    if (ParseDecimal(value, &number) || value == "0") {
      return error(absl::StrCat("latency \"", value, "\" needs a unit (e.g. ", value, "ms or ",
                                value, "s)"));
    }
    absl::StatusOr<absl::Duration> d = ParseDuration(std::string_view(value.data(), value.size()));
    if (!d.ok()) return error(d.status().message());
    t.value = absl::ToDoubleNanoseconds(*d);
  } else if (t.metric == Threshold::Metric::kErrorRate) {
    if (absl::EndsWith(value, "%")) {
      const absl::string_view percent =
          absl::StripTrailingAsciiWhitespace(value.substr(0, value.size() - 1));
      if (!ParseDecimal(percent, &number)) {
        return error(
            absl::StrCat("error rate \"", value, "\" is not a percentage like 1% or 0.5%"));
      }
      if (number > 100) return error(absl::StrCat("error rate ", value, " is above 100%"));
      t.value = number / 100;
    } else {
      if (!ParseDecimal(value, &number)) {
        return error(absl::StrCat("error rate \"", value,
                                  "\" is not a percentage (1%) or a fraction (0.01)"));
      }
      if (number > 1) {
        return error(absl::StrCat("error rate ", value, " is a fraction above 1; write ", value,
                                  "% for a percentage"));
      }
      t.value = number;
    }
  } else if (t.metric == Threshold::Metric::kRps) {
    absl::string_view rate = value;
    if (absl::EndsWith(rate, "/s")) {
      rate = absl::StripTrailingAsciiWhitespace(rate.substr(0, rate.size() - 2));
    }
    if (!ParseDecimal(rate, &number)) {
      return error(absl::StrCat("rps \"", value, "\" is not a number of requests per second"));
    }
    t.value = number;
  } else {
    uint64_t count = 0;
    if (!absl::SimpleAtoi(value, &count) ||
        !absl::ascii_isdigit(static_cast<unsigned char>(value[0]))) {
      return error(absl::StrCat(word, " \"", value, "\" is not a whole number"));
    }
    t.value = static_cast<double>(count);
  }
  return t;
}

std::string FormatThresholdValue(const Threshold& t, double actual) {
  if (std::isnan(actual)) return "n/a";
  char buf[64];
  if (IsLatency(t.metric)) {
    return FormatNanos(actual <= 0 ? 0 : static_cast<uint64_t>(std::llround(actual)));
  }
  switch (t.metric) {
    case Threshold::Metric::kErrorRate:
      snprintf(buf, sizeof(buf), "%.3g%%", actual * 100);
      return buf;
    case Threshold::Metric::kRps: {
      snprintf(buf, sizeof(buf), "%.1f", actual);
      std::string s = buf;
      if (absl::EndsWith(s, ".0")) s.resize(s.size() - 2);
      return s + "/s";
    }
    default:
      snprintf(buf, sizeof(buf), "%.0f", actual);
      return buf;
  }
}

std::vector<v1::ThresholdResult> EvaluateThresholds(const std::vector<Threshold>& thresholds,
                                                    const std::vector<std::string>& names,
                                                    const IntervalStats& totals, double elapsed_s) {
  std::vector<v1::ThresholdResult> out;
  const double elapsed = std::max(elapsed_s, 1e-9);
  for (const Threshold& t : thresholds) {
    RequestStats stats;
    bool found = t.request.empty();
    for (size_t i = 0; i < totals.requests.size() && i < names.size(); ++i) {
      if (t.request.empty() || names[i] == t.request) {
        stats.Merge(totals.requests[i]);
        found = true;
      }
    }
    double actual = 0;
    switch (t.metric) {
      case Threshold::Metric::kQuantile:
        actual = stats.latency.ValueAtQuantile(t.quantile);
        break;
      case Threshold::Metric::kMax:
        actual = stats.latency.max();
        break;
      case Threshold::Metric::kMin:
        actual = stats.latency.min();
        break;
      case Threshold::Metric::kMean:
        actual = stats.latency.Mean();
        break;
      case Threshold::Metric::kErrorRate:
        actual = stats.Requests() == 0 ? 0 : static_cast<double>(stats.Errors()) / stats.Requests();
        break;
      case Threshold::Metric::kRps:
        actual = stats.Requests() / elapsed;
        break;
      case Threshold::Metric::kRequests:
        actual = stats.Requests();
        break;
      case Threshold::Metric::kErrors:
        actual = stats.Errors();
        break;
    }
    const bool no_data = IsLatency(t.metric) && stats.latency.count() == 0;
    v1::ThresholdResult r;
    r.set_expression(t.expression);
    r.set_passed(found && !no_data && t.Holds(actual));
    r.set_actual(no_data ? "no data" : FormatThresholdValue(t, actual));
    out.push_back(std::move(r));
  }
  return out;
}

const v1::ThresholdResult* FirstFailed(const std::vector<v1::ThresholdResult>& results) {
  for (const v1::ThresholdResult& r : results) {
    if (!r.passed()) return &r;
  }
  return nullptr;
}

}  // namespace stampede::common
