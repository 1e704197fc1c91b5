// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/broker/message.hpp"
#include "kernel/quota/quota.hpp"

namespace backbone::kernel::retain {

// Retained messages by topic. Written on retained publishes, read when a
// subscription is made; both rare compared to plain routing.
class RetainedStore {
 public:
  struct Caps {
    uint64_t max_messages = 0;  // 0 = no limit
    uint64_t max_bytes = 0;     // topic + payload bytes
  };
  // Stores msg as the retained message of its topic, counted against the
  // broker's `caps` and, when `owner` is set, against the owner's retained
  // quotas; an empty payload removes the topic's message (never refused).
  // Returns the name of the limit it would break (nothing changes then), or
  // an empty view when stored.
  std::string_view set(const broker::MessagePtr& msg, const quota::PrincipalPtr& owner,
                       const Caps& caps);
  // A message restored from the store: not counted against any limit.
  void restore(const broker::MessagePtr& msg);
  // Matching, unexpired messages for a subscription filter.
  std::vector<broker::MessagePtr> matching(std::string_view filter) const;
  size_t size() const;

 private:
  struct Entry {
    broker::MessagePtr msg;
    quota::PrincipalPtr owner;  // whose retained quota it counts against
  };
  static uint64_t bytes_of(const broker::Message& m) { return m.topic.size() + m.payload.size(); }
  void release_locked(const Entry& e);

  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> messages_;
  uint64_t bytes_ = 0;
};

// Does the MQTT topic filter match the topic name (including the rule that
// wildcards at the first level do not match topics starting with '$')?
bool topic_matches_filter(std::string_view filter, std::string_view topic);

}  // namespace backbone::kernel::retain
