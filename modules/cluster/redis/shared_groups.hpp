// SPDX-License-Identifier: GPL-3.0-or-later
// The cluster's shared subscription groups (SPEC §10): how many members of
// each "$share/<group>/<filter>" are online on which broker, and, for each
// message a broker accepts, which one broker serves each group it matches.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::redis {

enum class Strategy : uint8_t {
  kLocal,       // a member on the publishing broker if there is one, else round robin
  kRoundRobin,  // the brokers with members in turn
  kRandom,
};

class SharedGroups {
 public:
  SharedGroups(std::string self, Strategy strategy);

  // Online members of "<group>/<filter>" on this broker (from the kernel) or
  // on another one (from its frames: it is alive); 0 removes the entry. Any
  // thread.
  void set(std::string_view node, std::string_view group_filter, uint32_t online);
  // Everything another broker said (its hash in Redis, loaded on joining).
  void replace_node(std::string_view node,
                    const std::vector<std::pair<std::string, uint32_t>>& groups);
  // The brokers seen alive lately: only they are chosen (this one always is).
  void set_alive(std::vector<std::string> nodes);
  // This broker's entries, to write again after Redis lost them.
  std::vector<std::pair<std::string, uint32_t>> local() const;

  // No group anywhere: nothing to choose (checked first, per message).
  bool empty() const { return empty_.load(std::memory_order_acquire); }

  // For a message on `topic` accepted here: appends to `assignments` (see
  // append_assignment) each group it matches with the broker that serves
  // it (this one included), and remembers on this thread those another
  // broker serves, for served_here().
  void choose(std::string_view topic, std::string& assignments);
  // For a message from another broker with its `assignments`: the groups
  // this broker serves ("<group>/<filter>", views into `assignments` or into
  // `out_storage`): those assigned to it, and its own groups the publishing
  // broker did not know of yet (a member that just subscribed).
  void served_of(std::string_view topic, std::string_view assignments,
                 std::vector<std::string_view>& out, std::vector<std::string>& out_storage) const;
  // Whether this broker serves "<group>/<filter>" for the message last
  // chosen on this thread.
  static bool served_here(std::string_view group, std::string_view filter);
  // A message without a choice (no group anywhere): every group here serves it.
  static void no_choice();

 private:
  struct Group {
    std::string group_filter;  // "<group>/<filter>"
    std::string filter;
    std::vector<std::string> nodes;  // alive, with online members; sorted
    bool here = false;               // this broker has online members
    std::unique_ptr<std::atomic<uint64_t>> turn = std::make_unique<std::atomic<uint64_t>>(0);
  };
  using Snapshot = std::vector<Group>;
  void rebuild_locked();

  const std::string self_;
  const Strategy strategy_;
  mutable std::mutex mutex_;  // writers; readers take the snapshot
  std::map<std::string, std::map<std::string, uint32_t>, std::less<>> by_node_;
  std::vector<std::string> alive_;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  std::atomic<bool> empty_{true};
};

}  // namespace backbone::modules::redis
