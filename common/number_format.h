// Decimal text for doubles in JSON and YAML that we write (results, the CRD).
#ifndef STAMPEDE_COMMON_NUMBER_FORMAT_H_
#define STAMPEDE_COMMON_NUMBER_FORMAT_H_

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace stampede::common {

// The shortest text that reads back as the same double; whole numbers without an exponent.
inline std::string ShortestDouble(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_NUMBER_FORMAT_H_
