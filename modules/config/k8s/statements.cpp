// SPDX-License-Identifier: GPL-3.0-or-later
#include "statements.hpp"

#include <backbone/module_abi.h>

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

// A field name quoted in an error: printable ASCII only, bounded.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > 64 ? out + "..." : out;
}

bool parse_patterns(const Json& v, const std::string& where, std::vector<std::string>& out,
                    std::string& error) {
  auto check = [&](const Json& s, const std::string& at) {
    if (!s.is_string() || s.get_ref<const std::string&>().empty()) {
      error = at + ": expected a non-empty string";
      return false;
    }
    if (s.get_ref<const std::string&>().size() > kMaxPatternSize) {
      error = at + ": longer than " + std::to_string(kMaxPatternSize) + " bytes";
      return false;
    }
    out.push_back(s.get<std::string>());
    return true;
  };
  if (v.is_string()) return check(v, where);
  if (!v.is_array()) {
    error = where + ": expected a string or an array of strings, got " + v.type_name();
    return false;
  }
  if (v.empty()) {
    error = where + ": must not be empty";
    return false;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!check(v[i], where + "[" + std::to_string(i) + "]")) return false;
  }
  return true;
}

}  // namespace

bool parse_statements(const Json& value, const std::string& where, std::vector<Statement>& out,
                      std::string& error) {
  out.clear();
  if (!value.is_array()) {
    error = where + ": expected an array, got " + value.type_name();
    return false;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& st = value[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!st.is_object()) {
      error = at + ": expected an object, got " + st.type_name();
      return false;
    }
    for (const auto& item : st.items()) {
      const std::string& k = item.key();
      if (k != "effect" && k != "actions" && k != "resources") {
        error = at + "." + printable(k) + ": unknown field";
        return false;
      }
    }
    for (const char* required : {"effect", "actions", "resources"}) {
      if (!st.contains(required)) {
        error = at + "." + required + ": missing";
        return false;
      }
    }
    const Json& effect = st["effect"];
    int32_t e;
    if (effect == "allow") {
      e = BB_EFFECT_ALLOW;
    } else if (effect == "deny" || effect == "disallow") {
      e = BB_EFFECT_DENY;
    } else {
      error = at + ".effect: expected allow, deny or disallow";
      return false;
    }
    std::vector<std::string> actions;
    std::vector<std::string> resources;
    if (!parse_patterns(st["actions"], at + ".actions", actions, error) ||
        !parse_patterns(st["resources"], at + ".resources", resources, error)) {
      return false;
    }
    if (actions.size() * resources.size() > kMaxStatements - out.size()) {
      error = where + ": more than " + std::to_string(kMaxStatements) + " action/resource pairs";
      return false;
    }
    for (const auto& a : actions) {
      for (const auto& r : resources) out.push_back(Statement{e, a, r});
    }
  }
  return true;
}

}  // namespace backbone::modules::k8s
