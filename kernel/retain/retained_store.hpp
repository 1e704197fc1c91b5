// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/message/message.hpp"
#include "kernel/quota/quota.hpp"

namespace backbone::kernel::retain {

// Retained messages by topic. Written on retained publishes, read when a
// subscription is made; both rare compared to plain routing. Sharded by the
// topic's first level: a filter with a literal first level reads one shard,
// and there only the topics under its literal prefix; a filter starting with
// a wildcard visits the shards one at a time, so no lookup holds one lock
// over every retained message while publishers wait.
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
  std::string_view set(const message::MessagePtr& msg, const quota::PrincipalPtr& owner,
                       const Caps& caps);
  // A message restored from the store: not counted against any limit.
  void restore(const message::MessagePtr& msg);
  // Matching, unexpired messages for a subscription filter.
  std::vector<message::MessagePtr> matching(std::string_view filter) const;
  size_t size() const;

 private:
  struct Entry {
    message::MessagePtr msg;
    quota::PrincipalPtr owner;  // whose retained quota it counts against
  };
  static uint64_t bytes_of(const message::Message& m) { return m.topic.size() + m.payload.size(); }
  void release_locked(const Entry& e);

  struct Shard {
    mutable std::mutex mutex;
    std::map<std::string, Entry, std::less<>> messages;
  };
  static constexpr size_t kShards = 64;
  static size_t shard_index(std::string_view topic);
  // Appends the matching, unexpired messages of one shard.
  static void collect(const Shard& shard, std::string_view filter, message::Clock::time_point now,
                      std::vector<message::MessagePtr>& out);

  std::array<Shard, kShards> shards_;
  // Over all shards: checked against the caps after adding, rolled back when
  // over, so concurrent writers never end above a cap.
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> bytes_{0};
};

// Does the MQTT topic filter match the topic name (including the rule that
// wildcards at the first level do not match topics starting with '$')?
bool topic_matches_filter(std::string_view filter, std::string_view topic);

}  // namespace backbone::kernel::retain
