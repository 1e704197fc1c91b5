// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kernel/authz/policy.hpp"

namespace backbone::kernel::authz {

// The per-message authorization actions a session asks about.
enum class Action : uint8_t { publish, subscribe, read };

// "mqtt:publish", "mqtt:subscribe" or "mqtt:read".
std::string_view action_name(Action a);

// Per-session memo of Policy::allows() so that a decision for a topic already
// seen costs one hash lookup (SPEC §6). Owned by one session and used only on
// its strand: not thread-safe. A hit never allocates; a miss allocates the key
// once. Bounded: when `capacity` entries are cached the cache starts over.
class DecisionCache {
 public:
  static constexpr size_t kDefaultCapacity = 1024;

  // A null policy means deny_all().
  explicit DecisionCache(std::shared_ptr<const Policy> policy, size_t capacity = kDefaultCapacity);

  bool allows(Action a, std::string_view topic);
  // Uncached: subscriptions are rare next to messages.
  bool allows_subscribe(std::string_view filter) const;

  // Replaces the policy (statements changed) and forgets every decision.
  void set_policy(std::shared_ptr<const Policy> policy);
  const Policy& policy() const { return *policy_; }
  const std::shared_ptr<const Policy>& policy_ptr() const { return policy_; }

  size_t size() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, bool, Hash, std::equal_to<>>;

  void clear();

  std::shared_ptr<const Policy> policy_;
  size_t capacity_;
  size_t size_ = 0;
  // Allocated on the first decision that needs it: idle sessions and broad
  // grants (fixed decisions) never pay for the maps.
  std::unique_ptr<std::array<Map, 3>> maps_;  // indexed by Action
  // The last decision per action: publishers and subscribers mostly repeat
  // one topic, and comparing it is cheaper than hashing it.
  struct Last {
    std::string topic;
    bool allowed = false;
    bool valid = false;
  };
  std::array<Last, 3> last_;
};

}  // namespace backbone::kernel::authz
