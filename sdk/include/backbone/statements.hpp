// SPDX-License-Identifier: GPL-3.0-or-later
// IAM statements (SPEC §6) as operators and tokens write them: a JSON array
// of {"effect", "actions", "resources"} objects. One strict reader for every
// place that takes them (the kernel's config, tokens, Client resources, API
// bodies), so that a statement means the same thing and fails with the same
// text wherever it is written. Needs nlohmann/json like json.hpp.
#pragma once

#include <backbone/module_abi.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backbone::sdk {
inline namespace v1 {

// The most (effect, action, resource) triples one list may flatten to: a
// token or a resource cannot make the broker hold an unbounded policy
// through the cross product of two modest arrays.
inline constexpr size_t kMaxStatements = 4096;
// The longest action or resource pattern.
inline constexpr size_t kMaxPatternSize = 1024;

// One statement as written, its lists kept (for callers that show it again).
struct StatementGroup {
  int32_t effect = BB_EFFECT_DENY;  // BB_EFFECT_*
  std::vector<std::string> actions;
  std::vector<std::string> resources;
  friend bool operator==(const StatementGroup& a, const StatementGroup& b) {
    return a.effect == b.effect && a.actions == b.actions && a.resources == b.resources;
  }
  friend bool operator!=(const StatementGroup& a, const StatementGroup& b) { return !(a == b); }
};

// One (effect, action, resource) triple: the form the ABI passes.
struct Statement {
  int32_t effect = BB_EFFECT_DENY;  // BB_EFFECT_*
  std::string action;
  std::string resource;
  friend bool operator==(const Statement& a, const Statement& b) {
    return a.effect == b.effect && a.action == b.action && a.resource == b.resource;
  }
  friend bool operator!=(const Statement& a, const Statement& b) { return !(a == b); }
};

// "allow" -> BB_EFFECT_ALLOW; "deny" and its synonym "disallow" ->
// BB_EFFECT_DENY; anything else (case matters) -> 0.
inline int32_t parse_effect(std::string_view text) {
  if (text == "allow") return BB_EFFECT_ALLOW;
  if (text == "deny" || text == "disallow") return BB_EFFECT_DENY;
  return 0;
}

inline constexpr std::string_view kEffectExpected = "expected allow, deny or disallow";

// Why `pattern` cannot be an action or resource (empty when it can).
inline std::string pattern_problem(std::string_view pattern) {
  if (pattern.empty()) return "expected a non-empty string";
  if (pattern.size() > kMaxPatternSize)
    return "longer than " + std::to_string(kMaxPatternSize) + " bytes";
  return {};
}

namespace detail {

// "actions" or "resources": a non-empty string or a non-empty array of
// non-empty strings.
inline bool parse_patterns(const nlohmann::json& v, const std::string& where,
                           std::vector<std::string>& out, std::string& error) {
  auto one = [&](const nlohmann::json& s, const std::string& at) {
    std::string why = s.is_string() ? pattern_problem(s.get_ref<const std::string&>())
                                    : "expected a non-empty string";
    if (!why.empty()) {
      error = at + ": " + why;
      return false;
    }
    out.push_back(s.get<std::string>());
    return true;
  };
  if (v.is_string()) return one(v, where);
  if (!v.is_array()) {
    error = where + ": expected a string or an array of strings, got " + v.type_name();
    return false;
  }
  if (v.empty()) {
    error = where + ": must not be empty";
    return false;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!one(v[i], where + "[" + std::to_string(i) + "]")) return false;
  }
  return true;
}

}  // namespace detail

// Strict: `value` must be an array of objects holding exactly "effect"
// (allow, deny, disallow), "actions" and "resources" (each a non-empty string
// or a non-empty array of non-empty strings, none over kMaxPatternSize), and
// all of them together must flatten to at most kMaxStatements triples. On
// failure returns false, leaves `out` untouched and sets `error` to one line
// starting with `where` and the path inside it, e.g.
// "spec.statements[2].actions[0]: expected a non-empty string". Resource
// patterns are not interpreted here: the broker checks them when it compiles
// the policy. Never throws on bad input.
inline bool parse_statement_groups(const nlohmann::json& value, std::string_view where,
                                   std::vector<StatementGroup>& out, std::string& error) {
  const std::string base(where);
  if (!value.is_array()) {
    error = base + ": expected an array, got " + value.type_name();
    return false;
  }
  std::vector<StatementGroup> parsed;
  size_t triples = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const nlohmann::json& st = value[i];
    const std::string at = base + "[" + std::to_string(i) + "]";
    if (!st.is_object()) {
      error = at + ": expected an object, got " + st.type_name();
      return false;
    }
    for (const auto& item : st.items()) {
      const std::string& k = item.key();
      if (k != "effect" && k != "actions" && k != "resources") {
        error = at + "." + printable_key(k) + ": unknown field";
        return false;
      }
    }
    for (const char* required : {"effect", "actions", "resources"}) {
      if (!st.contains(required)) {
        error = at + "." + required + ": missing";
        return false;
      }
    }
    StatementGroup group;
    const nlohmann::json& effect = st["effect"];
    group.effect = effect.is_string() ? parse_effect(effect.get_ref<const std::string&>()) : 0;
    if (group.effect == 0) {
      error = at + ".effect: " + std::string(kEffectExpected);
      return false;
    }
    if (!detail::parse_patterns(st["actions"], at + ".actions", group.actions, error) ||
        !detail::parse_patterns(st["resources"], at + ".resources", group.resources, error)) {
      return false;
    }
    // Both sizes are at most the array sizes of a parsed text: no overflow.
    if (group.actions.size() * group.resources.size() > kMaxStatements - triples) {
      error = base + ": more than " + std::to_string(kMaxStatements) + " action/resource pairs";
      return false;
    }
    triples += group.actions.size() * group.resources.size();
    parsed.push_back(std::move(group));
  }
  out = std::move(parsed);
  return true;
}

// The same rules, flattened: each statement becomes the cross product of its
// actions and resources, actions outermost, in the order written.
inline bool parse_statements(const nlohmann::json& value, std::string_view where,
                             std::vector<Statement>& out, std::string& error) {
  std::vector<StatementGroup> groups;
  if (!parse_statement_groups(value, where, groups, error)) return false;
  std::vector<Statement> flat;
  for (const StatementGroup& g : groups) {
    for (const std::string& a : g.actions) {
      for (const std::string& r : g.resources) flat.push_back(Statement{g.effect, a, r});
    }
  }
  out = std::move(flat);
  return true;
}

// The inverse of parse_statement_groups(); effects are written allow/deny.
inline nlohmann::json to_json(const std::vector<StatementGroup>& groups) {
  nlohmann::json j = nlohmann::json::array();
  for (const StatementGroup& g : groups) {
    j.push_back({{"effect", g.effect == BB_EFFECT_ALLOW ? "allow" : "deny"},
                 {"actions", g.actions},
                 {"resources", g.resources}});
  }
  return j;
}

// The statements as the ABI passes them; they point into `statements`, which
// must outlive them unchanged.
inline std::vector<bb_statement> abi_statements(const std::vector<Statement>& statements) {
  std::vector<bb_statement> list;
  list.reserve(statements.size());
  for (const Statement& s : statements)
    list.push_back(bb_statement{s.effect, 0, str(s.action), str(s.resource)});
  return list;
}

// The statements as an authenticator answers them (sdk::AuthReply).
inline StatementList statement_list(std::vector<Statement> statements) {
  StatementList list;
  for (Statement& s : statements) list.add(s.effect, std::move(s.action), std::move(s.resource));
  return list;
}

}  // namespace v1
}  // namespace backbone::sdk
