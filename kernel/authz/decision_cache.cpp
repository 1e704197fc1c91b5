// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/decision_cache.hpp"

#include <utility>

namespace backbone::kernel::authz {

std::string_view action_name(Action a) {
  switch (a) {
    case Action::publish:
      return "mqtt:publish";
    case Action::subscribe:
      return "mqtt:subscribe";
    case Action::read:
      return "mqtt:read";
  }
  return {};
}

DecisionCache::DecisionCache(std::shared_ptr<const Policy> policy, size_t capacity)
    : policy_(policy ? std::move(policy) : Policy::deny_all()),
      capacity_(capacity == 0 ? 1 : capacity) {}

bool DecisionCache::allows(Action a, std::string_view topic) {
  if (const int8_t fixed = policy_->fixed_decision(static_cast<size_t>(a)); fixed >= 0)
    return fixed == 1;
  Last& last = last_[static_cast<size_t>(a)];
  if (last.valid && last.topic == topic) return last.allowed;
  bool allowed;
  if (maps_) {
    const Map& map = (*maps_)[static_cast<size_t>(a)];
    if (auto it = map.find(topic); it != map.end()) {
      allowed = it->second;
      last.topic.assign(topic);
      last.allowed = allowed;
      last.valid = true;
      return allowed;
    }
  }
  allowed = policy_->allows(action_name(a), topic);
  last.topic.assign(topic);
  last.allowed = allowed;
  last.valid = true;
  // Starting over is cheaper and simpler than LRU bookkeeping; a session
  // cycling through more topics than the capacity just pays the policy walk.
  if (size_ >= capacity_) clear();
  if (!maps_) maps_ = std::make_unique<std::array<Map, 3>>();
  (*maps_)[static_cast<size_t>(a)].emplace(std::string(topic), allowed);
  ++size_;
  return allowed;
}

bool DecisionCache::allows_subscribe(std::string_view filter) const {
  return policy_->allows_subscribe(filter);
}

void DecisionCache::set_policy(std::shared_ptr<const Policy> policy) {
  policy_ = policy ? std::move(policy) : Policy::deny_all();
  clear();
}

size_t DecisionCache::size() const {
  return size_;
}

void DecisionCache::clear() {
  maps_.reset();
  for (auto& last : last_) last.valid = false;
  size_ = 0;
}

}  // namespace backbone::kernel::authz
