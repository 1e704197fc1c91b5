// SPDX-License-Identifier: GPL-3.0-or-later
#include "shared_groups.hpp"

#include <backbone/topic.hpp>

#include <algorithm>
#include <random>

#include "frame.hpp"

namespace backbone::modules::redis {

namespace {
// The groups of the message last chosen on this thread that another broker
// serves: the kernel asks right after (shared_here), on the same thread.
thread_local std::vector<std::string> served_elsewhere;
}  // namespace

SharedGroups::SharedGroups(std::string self, Strategy strategy)
    : self_(std::move(self)), strategy_(strategy) {
  snapshot_.store(std::make_shared<const Snapshot>());
}

void SharedGroups::set(std::string_view node, std::string_view group_filter, uint32_t online) {
  std::lock_guard lock(mutex_);
  auto it = by_node_.find(node);
  if (online == 0) {
    if (it == by_node_.end()) return;
    it->second.erase(std::string(group_filter));
    if (it->second.empty()) by_node_.erase(it);
  } else {
    if (it == by_node_.end()) it = by_node_.try_emplace(std::string(node)).first;
    it->second[std::string(group_filter)] = online;
  }
  // A broker that just told of its members is alive, before the next
  // heartbeat says so.
  if (node != self_) {
    auto at = std::lower_bound(alive_.begin(), alive_.end(), node);
    if (at == alive_.end() || *at != node) alive_.insert(at, std::string(node));
  }
  rebuild_locked();
}

void SharedGroups::replace_node(std::string_view node,
                                const std::vector<std::pair<std::string, uint32_t>>& groups) {
  std::lock_guard lock(mutex_);
  std::map<std::string, uint32_t> entries;
  for (const auto& [gf, online] : groups) {
    if (online > 0) entries[gf] = online;
  }
  if (entries.empty()) {
    by_node_.erase(std::string(node));
  } else {
    by_node_[std::string(node)] = std::move(entries);
  }
  rebuild_locked();
}

void SharedGroups::set_alive(std::vector<std::string> nodes) {
  std::sort(nodes.begin(), nodes.end());
  std::lock_guard lock(mutex_);
  if (nodes == alive_) return;
  alive_ = std::move(nodes);
  rebuild_locked();
}

std::vector<std::pair<std::string, uint32_t>> SharedGroups::local() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, uint32_t>> out;
  if (auto it = by_node_.find(self_); it != by_node_.end()) {
    for (const auto& [gf, online] : it->second) out.emplace_back(gf, online);
  }
  return out;
}

void SharedGroups::rebuild_locked() {
  std::map<std::string, Group> groups;
  for (const auto& [node, entries] : by_node_) {
    const bool self = node == self_;
    if (!self && !std::binary_search(alive_.begin(), alive_.end(), node)) continue;
    for (const auto& [gf, online] : entries) {
      Group& g = groups[gf];
      if (g.group_filter.empty()) {
        g.group_filter = gf;
        const size_t slash = gf.find('/');
        g.filter = slash == std::string::npos ? gf : gf.substr(slash + 1);
      }
      g.nodes.push_back(node);  // by_node_ is ordered: sorted
      g.here |= self;
    }
  }
  auto snapshot = std::make_shared<Snapshot>();
  for (auto& [gf, g] : groups) snapshot->push_back(std::move(g));
  empty_.store(snapshot->empty(), std::memory_order_release);
  snapshot_.store(std::move(snapshot));
}

void SharedGroups::choose(std::string_view topic, std::string& assignments) {
  served_elsewhere.clear();
  const std::shared_ptr<const Snapshot> snapshot = snapshot_.load();
  for (const Group& g : *snapshot) {
    if (g.nodes.empty() || !sdk::topic_matches(g.filter, topic)) continue;
    const std::string* chosen = nullptr;
    if (strategy_ == Strategy::kLocal && g.here) {
      chosen = &self_;
    } else if (strategy_ == Strategy::kRandom) {
      thread_local std::minstd_rand random{std::random_device{}()};
      chosen = &g.nodes[random() % g.nodes.size()];
    } else {
      chosen = &g.nodes[g.turn->fetch_add(1, std::memory_order_relaxed) % g.nodes.size()];
    }
    append_assignment(*chosen, g.group_filter, assignments);
    if (*chosen != self_) served_elsewhere.push_back(g.group_filter);
  }
}

void SharedGroups::served_of(std::string_view topic, std::string_view assignments,
                             std::vector<std::string_view>& out,
                             std::vector<std::string>& out_storage) const {
  out.clear();
  out_storage.clear();
  for_each_assignment(assignments, [&](std::string_view node, std::string_view gf) {
    if (node == self_) out.push_back(gf);
  });
  std::lock_guard lock(mutex_);
  auto it = by_node_.find(self_);
  if (it == by_node_.end()) return;
  for (const auto& [gf, online] : it->second) {
    const size_t slash = gf.find('/');
    if (slash == std::string::npos || !sdk::topic_matches(gf.substr(slash + 1), topic)) continue;
    bool mentioned = false;
    for_each_assignment(
        assignments, [&](std::string_view, std::string_view other) { mentioned |= other == gf; });
    if (!mentioned) out_storage.push_back(gf);
  }
  for (const std::string& gf : out_storage) out.push_back(gf);
}

void SharedGroups::no_choice() {
  served_elsewhere.clear();
}

bool SharedGroups::served_here(std::string_view group, std::string_view filter) {
  for (const std::string& gf : served_elsewhere) {
    if (gf.size() == group.size() + 1 + filter.size() && gf.starts_with(group) &&
        gf[group.size()] == '/' && std::string_view(gf).substr(group.size() + 1) == filter)
      return false;
  }
  return true;
}

}  // namespace backbone::modules::redis
