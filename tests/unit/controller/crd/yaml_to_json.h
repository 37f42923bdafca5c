// YAML to JSON the way kubectl converts a manifest (sigs.k8s.io/yaml, YAML 1.1), for the CRD tests.
#ifndef STAMPEDE_TESTS_UNIT_CONTROLLER_CRD_YAML_TO_JSON_H_
#define STAMPEDE_TESTS_UNIT_CONTROLLER_CRD_YAML_TO_JSON_H_

#include <yaml-cpp/yaml.h>

#include <regex>
#include <string>

#include "nlohmann/json.hpp"

namespace stampede::controller {

// A plain scalar can be null, a boolean (yes/no/on/off/y/n too) or a number; a quoted one is always
// a string.
inline nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& entry : node) out[entry.first.Scalar()] = YamlToJson(entry.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      break;
    default:
      return nullptr;
  }
  const std::string& s = node.Scalar();
  if (node.Tag() != "?") return s;
  static const std::regex kNull("~|null|Null|NULL");
  static const std::regex kTrue("y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON");
  static const std::regex kFalse("n|N|no|No|NO|false|False|FALSE|off|Off|OFF");
  static const std::regex kInteger("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  if (std::regex_match(s, kNull)) return nullptr;
  if (std::regex_match(s, kTrue)) return true;
  if (std::regex_match(s, kFalse)) return false;
  if (std::regex_match(s, kInteger)) return std::stoll(s);
  if (std::regex_match(s, kFloat)) return std::stod(s);
  return s;
}

}  // namespace stampede::controller

#endif  // STAMPEDE_TESTS_UNIT_CONTROLLER_CRD_YAML_TO_JSON_H_
