// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/retain/retained_store.hpp"

namespace backbone::kernel::retain {

namespace {

std::string_view first_level(std::string_view topic) {
  return topic.substr(0, topic.find('/'));
}

}  // namespace

size_t RetainedStore::shard_index(std::string_view topic) {
  return std::hash<std::string_view>{}(first_level(topic)) % kShards;
}

void RetainedStore::release_locked(const Entry& e) {
  const uint64_t size = bytes_of(*e.msg);
  count_.fetch_sub(1, std::memory_order_relaxed);
  bytes_.fetch_sub(size, std::memory_order_relaxed);
  if (e.owner) {
    e.owner->retained.fetch_sub(1, std::memory_order_relaxed);
    e.owner->retained_bytes.fetch_sub(size, std::memory_order_relaxed);
  }
}

std::string_view RetainedStore::set(const message::MessagePtr& msg, const quota::PrincipalPtr& owner,
                                    const Caps& caps) {
  Shard& shard = shards_[shard_index(msg->topic)];
  std::lock_guard lock(shard.mutex);
  auto it = shard.messages.find(msg->topic);
  if (msg->payload.empty()) {
    if (it != shard.messages.end()) {
      release_locked(it->second);
      shard.messages.erase(it);
    }
    return {};
  }
  const uint64_t size = bytes_of(*msg);
  const bool replaces = it != shard.messages.end();
  const uint64_t old_size = replaces ? bytes_of(*it->second.msg) : 0;
  if (owner) {
    const quota::Quotas q = owner->quotas();
    const bool own = replaces && it->second.owner == owner;
    if (q.max_retained && owner->retained.load(std::memory_order_relaxed) + !own > q.max_retained)
      return quota::kMaxRetained;
    if (q.max_retained_bytes &&
        owner->retained_bytes.load(std::memory_order_relaxed) - (own ? old_size : 0) + size >
            q.max_retained_bytes)
      return quota::kMaxRetainedBytes;
  }
  // The broker-wide caps, claimed first and given back when over.
  const uint64_t count = count_.fetch_add(!replaces, std::memory_order_relaxed) + !replaces;
  const uint64_t bytes = bytes_.fetch_add(size, std::memory_order_relaxed) + size - old_size;
  const bool over_count = caps.max_messages && count > caps.max_messages;
  const bool over_bytes = caps.max_bytes && bytes > caps.max_bytes;
  if (over_count || over_bytes) {
    count_.fetch_sub(!replaces, std::memory_order_relaxed);
    bytes_.fetch_sub(size, std::memory_order_relaxed);
    return over_count ? quota::kBrokerRetained : quota::kBrokerRetainedBytes;
  }
  if (replaces) {
    // Its place is taken: only the old message's own bytes and owner go.
    bytes_.fetch_sub(old_size, std::memory_order_relaxed);
    if (const auto& old = it->second.owner) {
      old->retained.fetch_sub(1, std::memory_order_relaxed);
      old->retained_bytes.fetch_sub(old_size, std::memory_order_relaxed);
    }
  }
  if (owner) {
    owner->retained.fetch_add(1, std::memory_order_relaxed);
    owner->retained_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  shard.messages[msg->topic] = Entry{msg, owner};
  return {};
}

void RetainedStore::restore(const message::MessagePtr& msg) {
  Shard& shard = shards_[shard_index(msg->topic)];
  std::lock_guard lock(shard.mutex);
  auto& e = shard.messages[msg->topic];
  if (e.msg) {
    bytes_.fetch_sub(bytes_of(*e.msg), std::memory_order_relaxed);
  } else {
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  e = Entry{msg, nullptr};
  bytes_.fetch_add(bytes_of(*msg), std::memory_order_relaxed);
}

void RetainedStore::collect(const Shard& shard, std::string_view filter,
                            message::Clock::time_point now, std::vector<message::MessagePtr>& out) {
  // Only topics under the filter's literal head can match: "a/b/+/c" reads
  // from "a/b" on, in order, until the topics leave that prefix.
  const size_t wild = filter.find_first_of("+#");
  std::lock_guard lock(shard.mutex);
  if (wild == std::string_view::npos) {  // a topic name: one lookup
    auto it = shard.messages.find(filter);
    if (it != shard.messages.end() && !it->second.msg->expired(now)) out.push_back(it->second.msg);
    return;
  }
  // Without its last '/': "a/#" matches "a" itself.
  const size_t slash = filter.rfind('/', wild);
  const std::string_view head =
      slash == std::string_view::npos ? std::string_view() : filter.substr(0, slash);
  for (auto it = shard.messages.lower_bound(head);
       it != shard.messages.end() && std::string_view(it->first).starts_with(head); ++it) {
    const Entry& e = it->second;
    if (!e.msg->expired(now) && topic_matches_filter(filter, it->first)) out.push_back(e.msg);
  }
}

std::vector<message::MessagePtr> RetainedStore::matching(std::string_view filter) const {
  std::vector<message::MessagePtr> out;
  const auto now = message::Clock::now();
  const std::string_view first = first_level(filter);
  if (first != "+" && first != "#") {
    collect(shards_[shard_index(filter)], filter, now, out);
    return out;
  }
  for (const Shard& shard : shards_) collect(shard, filter, now, out);
  return out;
}

size_t RetainedStore::size() const {
  return count_.load(std::memory_order_relaxed);
}

bool topic_matches_filter(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#'))
    return false;
  size_t f = 0, t = 0;
  while (true) {
    const size_t fe = filter.find('/', f);
    const std::string_view flevel = filter.substr(f, fe == std::string_view::npos ? fe : fe - f);
    if (flevel == "#") return true;
    if (t == std::string_view::npos) return false;  // topic ended, filter did not
    const size_t te = topic.find('/', t);
    const std::string_view tlevel = topic.substr(t, te == std::string_view::npos ? te : te - t);
    if (flevel != "+" && flevel != tlevel) return false;
    if (fe == std::string_view::npos) return te == std::string_view::npos;
    f = fe + 1;
    t = te == std::string_view::npos ? std::string_view::npos : te + 1;
    if (t == std::string_view::npos) {
      // Topic is exhausted; only a trailing "#" can still match ("a/#" vs "a").
      return filter.substr(f) == "#";
    }
  }
}

}  // namespace backbone::kernel::retain
