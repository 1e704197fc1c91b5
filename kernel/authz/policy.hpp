// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/authz/resource_pattern.hpp"

namespace backbone::kernel::authz {

// One authorization statement as written by the operator (SPEC §6).
struct Statement {
  bool allow = false;  // false = "deny" (or its synonym "disallow")
  std::vector<std::string> actions;
  std::vector<std::string> resources;
};

// Compiled statements. Immutable once compiled and shared between threads as
// std::shared_ptr<const Policy>; every member function is thread-safe,
// allocation-free and noexcept in practice.
class Policy {
 public:
  // Returns nullptr and sets `error` (if not null) when a resource pattern is
  // invalid; the message names the statement and resource index.
  static std::shared_ptr<const Policy> compile(const std::vector<Statement>& statements,
                                               std::string* error);
  // A shared policy without statements: everything is denied.
  static std::shared_ptr<const Policy> deny_all();

  // Default deny: true iff some allow statement matches both `action` and
  // `resource` and no deny statement does.
  bool allows(std::string_view action, std::string_view resource) const;

  // "mqtt:subscribe" to an MQTT filter ('$share/group/' already stripped):
  // true iff one allow statement has a pattern covering every topic the filter
  // can match and no deny statement has a pattern matching any of them.
  bool allows_subscribe(std::string_view filter) const;
  // The same coverage test for "mqtt:read": true when every message a
  // subscription to `filter` can receive may be read, so deliveries through it
  // need no per-topic decision.
  bool allows_read_all(std::string_view filter) const;

  // Delegation (SPEC §6: a caller may grant only what it holds): true when
  // for every action `action_pattern` matches and every resource
  // `resource_pattern` matches, some allow statement matches and no deny
  // statement can. Conservative: a grant it cannot prove covered is refused.
  // False for an invalid resource pattern.
  bool covers_grant(std::string_view action_pattern, std::string_view resource_pattern) const;

  // Unique for the process's lifetime (never reused, unlike an address): lets
  // callers remember a decision made under this exact policy.
  uint64_t id() const { return id_; }

  const std::vector<Statement>& statements() const { return statements_; }

  // For "mqtt:publish" (0), "mqtt:subscribe" (1), "mqtt:read" (2): 1 when
  // every resource is allowed, 0 when none is, -1 when it depends on the
  // resource. Lets callers skip per-topic work for the common broad grants.
  int8_t fixed_decision(size_t mqtt_action) const { return fixed_[mqtt_action]; }

 private:
  struct Compiled {
    std::vector<std::string> actions;  // globs
    std::vector<ResourcePattern> resources;
    bool action_matches(std::string_view action) const;
  };

  Policy();
  bool covers(std::string_view action, std::string_view filter) const;

  uint64_t id_;

  std::vector<Statement> statements_;
  std::vector<Compiled> allow_;
  std::vector<Compiled> deny_;
  std::array<int8_t, 3> fixed_{-1, -1, -1};
};

}  // namespace backbone::kernel::authz
