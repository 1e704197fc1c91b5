// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/policy.hpp"

#include <algorithm>
#include <atomic>

#include <utility>

#include "kernel/authz/glob.hpp"

namespace backbone::kernel::authz {
namespace {

constexpr std::string_view kSubscribe = "mqtt:subscribe";
constexpr std::string_view kRead = "mqtt:read";

}  // namespace

bool Policy::Compiled::action_matches(std::string_view action) const {
  for (const auto& glob : actions) {
    if (glob_match(glob, action)) return true;
  }
  return false;
}

std::shared_ptr<const Policy> Policy::compile(const std::vector<Statement>& statements,
                                              std::string* error) {
  std::shared_ptr<Policy> p(new Policy());
  p->statements_ = statements;
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& s = statements[i];
    Compiled c;
    c.actions = s.actions;
    c.resources.reserve(s.resources.size());
    for (size_t r = 0; r < s.resources.size(); ++r) {
      std::string why;
      auto pattern = ResourcePattern::parse(s.resources[r], &why);
      if (!pattern) {
        if (error) {
          *error =
              "statements[" + std::to_string(i) + "].resources[" + std::to_string(r) + "]: " + why;
        }
        return nullptr;
      }
      c.resources.push_back(std::move(*pattern));
    }
    (s.allow ? p->allow_ : p->deny_).push_back(std::move(c));
  }
  static constexpr std::string_view kMqttActions[] = {"mqtt:publish", "mqtt:subscribe",
                                                      "mqtt:read"};
  for (size_t a = 0; a < 3; ++a) {
    const std::string_view action = kMqttActions[a];
    bool any_allow = false, allow_all = false, any_deny = false;
    for (const auto& c : p->allow_) {
      if (!c.action_matches(action)) continue;
      any_allow = true;
      for (const auto& r : c.resources) {
        std::string_view text = r.text();
        if (text.substr(0, 5) == "mqtt:") text.remove_prefix(5);
        allow_all |= text == "*" || text == "**";  // "#" leaves out '$' topics
      }
    }
    for (const auto& c : p->deny_) any_deny |= c.action_matches(action);
    p->fixed_[a] = !any_allow ? 0 : (allow_all && !any_deny) ? 1 : -1;
  }
  return p;
}

std::shared_ptr<const Policy> Policy::deny_all() {
  static const std::shared_ptr<const Policy> kDenyAll(new Policy());
  return kDenyAll;
}

bool Policy::allows(std::string_view action, std::string_view resource) const {
  auto any_match = [&](const std::vector<Compiled>& list) {
    for (const auto& c : list) {
      if (!c.action_matches(action)) continue;
      for (const auto& r : c.resources) {
        if (r.matches(resource)) return true;
      }
    }
    return false;
  };
  // Deny is checked even after an allow is found, so test allow first only to
  // skip the deny scan in the common "not allowed at all" case.
  return any_match(allow_) && !any_match(deny_);
}

Policy::Policy() {
  static std::atomic<uint64_t> next{1};
  id_ = next.fetch_add(1, std::memory_order_relaxed);
}

bool Policy::allows_subscribe(std::string_view filter) const {
  return covers(kSubscribe, filter);
}

bool Policy::allows_read_all(std::string_view filter) const {
  return covers(kRead, filter);
}

bool Policy::covers(std::string_view action, std::string_view filter) const {
  bool covered = false;
  for (const auto& c : allow_) {
    if (!c.action_matches(action)) continue;
    for (const auto& r : c.resources) {
      if (r.covers_filter(filter)) {
        covered = true;
        break;
      }
    }
    if (covered) break;
  }
  if (!covered) return false;
  for (const auto& c : deny_) {
    if (!c.action_matches(action)) continue;
    for (const auto& r : c.resources) {
      if (r.overlaps_filter(filter)) return false;
    }
  }
  return true;
}

bool Policy::covers_grant(std::string_view action_pattern,
                          std::string_view resource_pattern) const {
  auto granted = ResourcePattern::parse(resource_pattern, nullptr);
  if (!granted) return false;
  bool covered = false;
  for (const auto& c : allow_) {
    const bool action_held = std::any_of(c.actions.begin(), c.actions.end(), [&](const auto& g) {
      return glob_covers(g, action_pattern);
    });
    if (!action_held) continue;
    for (const auto& r : c.resources) {
      if (r.covers_pattern(*granted)) {
        covered = true;
        break;
      }
    }
    if (covered) break;
  }
  if (!covered) return false;
  for (const auto& c : deny_) {
    const bool action_meets = std::any_of(c.actions.begin(), c.actions.end(), [&](const auto& g) {
      return glob_may_overlap(g, action_pattern);
    });
    if (!action_meets) continue;
    for (const auto& r : c.resources) {
      if (r.may_overlap_pattern(*granted)) return false;
    }
  }
  return true;
}

}  // namespace backbone::kernel::authz
