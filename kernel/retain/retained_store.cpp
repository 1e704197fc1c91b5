// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/retain/retained_store.hpp"

namespace backbone::kernel::retain {

void RetainedStore::set(const broker::MessagePtr& msg) {
  std::lock_guard lock(mutex_);
  if (msg->payload.empty()) {
    auto it = messages_.find(msg->topic);
    if (it != messages_.end()) messages_.erase(it);
    return;
  }
  messages_[msg->topic] = msg;
}

std::vector<broker::MessagePtr> RetainedStore::matching(std::string_view filter) const {
  std::vector<broker::MessagePtr> out;
  const auto now = broker::Clock::now();
  std::lock_guard lock(mutex_);
  // A filter without wildcards is a single lookup.
  if (filter.find_first_of("+#") == std::string_view::npos) {
    auto it = messages_.find(filter);
    if (it != messages_.end() && !it->second->expired(now)) out.push_back(it->second);
    return out;
  }
  for (const auto& [topic, msg] : messages_) {
    if (!msg->expired(now) && topic_matches_filter(filter, topic)) out.push_back(msg);
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
