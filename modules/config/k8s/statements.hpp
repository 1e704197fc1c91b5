// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Client.spec.statements (SPEC §6), parsed as strictly as the jwt module
// parses its `statements` claim: a Client whose statements do not parse
// grants nothing (fail closed).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace backbone::modules::k8s {

// One (effect, action, resource) triple; an IAM statement with several
// actions and resources becomes their cross product.
struct Statement {
  int32_t effect;  // BB_EFFECT_*
  std::string action;
  std::string resource;
  bool operator==(const Statement&) const = default;
};

// The most triples one Client may carry (cross products included).
inline constexpr size_t kMaxStatements = 4096;
inline constexpr size_t kMaxPatternSize = 1024;

// Validates `value` (an array of {effect, actions, resources}) and flattens
// it. `where` prefixes error messages ("spec.statements"). Effects: allow,
// deny, disallow; actions/resources: a non-empty string or a non-empty array
// of non-empty strings; any other field is an error.
bool parse_statements(const nlohmann::json& value, const std::string& where,
                      std::vector<Statement>& out, std::string& error);

}  // namespace backbone::modules::k8s
