// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/broker/message.hpp"

namespace backbone::kernel::retain {

// Retained messages by topic. Written on retained publishes, read when a
// subscription is made; both rare compared to plain routing.
class RetainedStore {
 public:
  // Stores msg as the retained message of its topic; an empty payload
  // removes it.
  void set(const broker::MessagePtr& msg);
  // Matching, unexpired messages for a subscription filter.
  std::vector<broker::MessagePtr> matching(std::string_view filter) const;
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, broker::MessagePtr, std::less<>> messages_;
};

// Does the MQTT topic filter match the topic name (including the rule that
// wildcards at the first level do not match topics starting with '$')?
bool topic_matches_filter(std::string_view filter, std::string_view topic);

}  // namespace backbone::kernel::retain
