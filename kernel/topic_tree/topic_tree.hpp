// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernel/protocol/packets.hpp"

#include "kernel/session/session.hpp"

namespace backbone::kernel::topic_tree {

struct Subscriber {
  session::Session* session = nullptr;
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;  // 0 = none
  // Policy::id() of the session's policy when it subscribed, if that policy
  // lets it read every topic the filter matches (0 otherwise): deliveries
  // through this subscription skip the per-topic read decision while the
  // session keeps that policy.
  uint64_t read_policy = 0;
  // Set by the tree for a member of a shared group: "<group>/<filter>" (as
  // after "$share/"), shared by every member and every delivery through it.
  session::SharedKey shared = nullptr;
};

// One delivery target found by match(): for shared subscriptions exactly one
// member of the group is chosen.
using MatchVisitor = void (*)(void* ctx, const Subscriber& s);
// Asked once per matching shared group (its name and real filter) before a
// member is chosen: false = the group gets nothing from this message (no
// member visited, its round robin not advanced).
using GroupFilter = bool (*)(void* ctx, std::string_view group, std::string_view filter);

// The subscription tree. Not synchronized: the broker guards it with a
// reader/writer lock, so matching runs concurrently on all workers.
class TopicTree {
 public:
  TopicTree();
  ~TopicTree();

  // Adds or replaces the subscription of `s.session` to `filter` (which may
  // be "$share/group/filter"). Returns true when it replaced one.
  bool subscribe(std::string_view filter, const Subscriber& s);
  bool unsubscribe(std::string_view filter, const session::Session* session);

  // Calls visit for every subscription matching `topic`. The visitor runs
  // under the caller's read lock and must not touch the tree.
  // With `keep`, only the shared groups it keeps get a member visited.
  void match(std::string_view topic, MatchVisitor visit, void* ctx, GroupFilter keep = nullptr,
             void* keep_ctx = nullptr) const;

  // The members of "$share/<group>/<filter>" here (none when there is no
  // such group), for counting online ones.
  std::vector<const session::Session*> shared_members(std::string_view group,
                                                      std::string_view filter) const;
  // A member of the group other than `except`, online preferred (the round
  // robin's next); false when there is none.
  bool pick_member(std::string_view group, std::string_view filter, const session::Session* except,
                   Subscriber& out) const;

  size_t subscription_count() const { return count_; }

  // Splits "$share/group/filter" into group and filter; false otherwise.
  static bool split_shared(std::string_view filter, std::string_view& group,
                           std::string_view& real_filter);

 private:
  struct Node;
  struct SharedGroup;
  Node* find_or_create(std::string_view filter);
  const SharedGroup* find_group(std::string_view group, std::string_view filter) const;
  std::unique_ptr<Node> root_;
  size_t count_ = 0;
};

}  // namespace backbone::kernel::topic_tree
