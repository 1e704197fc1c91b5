// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/retain/retained_store.hpp"

namespace backbone::kernel::retain {

void RetainedStore::release_locked(const Entry& e) {
  const uint64_t size = bytes_of(*e.msg);
  bytes_ -= size;
  if (e.owner) {
    e.owner->retained.fetch_sub(1, std::memory_order_relaxed);
    e.owner->retained_bytes.fetch_sub(size, std::memory_order_relaxed);
  }
}

std::string_view RetainedStore::set(const broker::MessagePtr& msg, const quota::PrincipalPtr& owner,
                                    const Caps& caps) {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(msg->topic);
  if (msg->payload.empty()) {
    if (it != messages_.end()) {
      release_locked(it->second);
      messages_.erase(it);
    }
    return {};
  }
  const uint64_t size = bytes_of(*msg);
  const bool replaces = it != messages_.end();
  const uint64_t old_size = replaces ? bytes_of(*it->second.msg) : 0;
  if (caps.max_messages && messages_.size() + !replaces > caps.max_messages)
    return quota::kBrokerRetained;
  if (caps.max_bytes && bytes_ - old_size + size > caps.max_bytes)
    return quota::kBrokerRetainedBytes;
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
  if (replaces) release_locked(it->second);
  bytes_ += size;
  if (owner) {
    owner->retained.fetch_add(1, std::memory_order_relaxed);
    owner->retained_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  messages_[msg->topic] = Entry{msg, owner};
  return {};
}

void RetainedStore::restore(const broker::MessagePtr& msg) {
  std::lock_guard lock(mutex_);
  auto& e = messages_[msg->topic];
  if (e.msg) bytes_ -= bytes_of(*e.msg);
  e = Entry{msg, nullptr};
  bytes_ += bytes_of(*msg);
}

std::vector<broker::MessagePtr> RetainedStore::matching(std::string_view filter) const {
  std::vector<broker::MessagePtr> out;
  const auto now = broker::Clock::now();
  std::lock_guard lock(mutex_);
  // A filter without wildcards is a single lookup.
  if (filter.find_first_of("+#") == std::string_view::npos) {
    auto it = messages_.find(filter);
    if (it != messages_.end() && !it->second.msg->expired(now)) out.push_back(it->second.msg);
    return out;
  }
  for (const auto& [topic, e] : messages_) {
    if (!e.msg->expired(now) && topic_matches_filter(filter, topic)) out.push_back(e.msg);
  }
  return out;
}

size_t RetainedStore::size() const {
  std::lock_guard lock(mutex_);
  return messages_.size();
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
