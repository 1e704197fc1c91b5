// SPDX-License-Identifier: GPL-3.0-or-later
// Shared groups across brokers (ABI 1.5): which groups a message reaches
// here (a routed message's list, a tap's shared_here), the online member
// counts the taps hear of (shared_members), and what an ending member still
// owed its group.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernel/broker/broker.hpp"

namespace backbone::kernel::broker {

using session::Session;

bool SharedGroups::contains(std::string_view group, std::string_view filter) const {
  const size_t size = group.size() + 1 + filter.size();
  for (uint32_t i = 0; i < count; ++i) {
    const bb_str& g = groups[i];
    if (g.len != size || !g.ptr) continue;
    const std::string_view listed(g.ptr, g.len);
    // The group is what precedes the first '/', as in "$share/<group>/<filter>".
    if (listed.find('/') == group.size() && listed.starts_with(group) && listed.ends_with(filter))
      return true;
  }
  return false;
}

bool Broker::listed_group(void* ctx, std::string_view group, std::string_view filter) {
  return static_cast<const SharedGroups*>(ctx)->contains(group, filter);
}

bool Broker::ask_taps(void* ctx, std::string_view group, std::string_view filter) {
  auto& ask = *static_cast<SharedAsk*>(ctx);
  if (!ask.described) {
    const Message& msg = *ask.msg;
    ask.m = bb_message{};
    ask.m.struct_size = sizeof(ask.m);
    ask.m.qos = msg.qos;
    ask.m.retain = msg.retain;
    if (auto left = msg.remaining_expiry(Clock::now()))
      ask.m.expiry_s = std::max<uint32_t>(*left, 1);
    ask.m.topic = {msg.topic.data(), msg.topic.size()};
    ask.m.payload = {reinterpret_cast<const uint8_t*>(msg.payload.data()), msg.payload.size()};
    ask.m.properties = {reinterpret_cast<const uint8_t*>(msg.forward_props.data()),
                        msg.forward_props.size()};
    ask.described = true;
  }
  const bb_str g{group.data(), group.size()}, f{filter.data(), filter.size()};
  for (const Tap& tap : ask.broker->taps_) {
    if (BB_HAS(tap.table, bb_message_tap, shared_here) && tap.table->shared_here &&
        tap.table->shared_here(tap.user, &ask.m, g, f) == 0)
      return false;
  }
  return true;
}

std::vector<std::string> Broker::shared_filters(Session& s) {
  std::vector<std::string> out;
  if (!shared_members_taps_) return out;
  std::lock_guard lock(s.mutex());
  for (const auto& [filter, entry] : s.subscriptions) {
    if (filter.starts_with("$share/")) out.push_back(filter);
  }
  return out;
}

void Broker::count_shared(const std::vector<std::string>& filters) {
  if (!shared_members_taps_ || filters.empty()) return;
  std::lock_guard lock(members_mutex_);
  for (const std::string& full : filters) {
    std::string_view group, filter;
    if (!topic_tree::TopicTree::split_shared(full, group, filter)) continue;
    uint32_t online = 0;
    {
      std::shared_lock tree_lock(tree_mutex_);
      for (const Session* s : tree_.shared_members(group, filter)) online += s->online() ? 1 : 0;
    }
    const std::string_view key = std::string_view(full).substr(7);  // after "$share/"
    auto it = shared_online_.find(key);
    const uint32_t before = it == shared_online_.end() ? 0 : it->second;
    if (online == before) continue;
    if (online == 0) {
      shared_online_.erase(it);
    } else if (it == shared_online_.end()) {
      shared_online_.emplace(std::string(key), online);
    } else {
      it->second = online;
    }
    const bb_str g{group.data(), group.size()}, f{filter.data(), filter.size()};
    for (const Tap& tap : taps_) {
      if (BB_HAS(tap.table, bb_message_tap, shared_members) && tap.table->shared_members)
        tap.table->shared_members(tap.user, g, f, online);
    }
  }
}

void Broker::hand_over(const Session& leaving, std::vector<session::Delivery>& orphans) {
  std::shared_lock lock(tree_mutex_);
  size_t moved = 0;
  for (session::Delivery& d : orphans) {
    const std::string_view key = *d.shared;
    const size_t slash = key.find('/');
    topic_tree::Subscriber member;
    if (slash == std::string_view::npos ||
        !tree_.pick_member(key.substr(0, slash), key.substr(slash + 1), &leaving, member))
      continue;  // no member left here: dropped with the session, as its other messages
    session::SubIds ids;
    ids.add(member.subscription_id);
    Stored stored;
    deliver(*member.session, d.msg, std::min(member.options.qos, d.msg->qos),
            d.msg->retain && member.options.retain_as_published, ids, 0, member.read_policy, stored,
            member.shared);
    ++moved;
  }
  if (moved)
    spdlog::debug("session '{}' ended: {} of its shared groups' messages went to other members",
                  leaving.client_id(), moved);
}

}  // namespace backbone::kernel::broker
