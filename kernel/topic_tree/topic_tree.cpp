// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/topic_tree/topic_tree.hpp"

#include <atomic>

#include "kernel/session/session.hpp"

namespace backbone::kernel::topic_tree {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Next level of `s` starting at `pos`; pos becomes npos after the last level.
std::string_view next_level(std::string_view s, size_t& pos) {
  const size_t end = s.find('/', pos);
  std::string_view level;
  if (end == std::string_view::npos) {
    level = s.substr(pos);
    pos = std::string_view::npos;
  } else {
    level = s.substr(pos, end - pos);
    pos = end + 1;
  }
  return level;
}

}  // namespace

struct TopicTree::SharedGroup {
  // "<name>/<filter>": the filter is the node's, as subscribed.
  session::SharedKey key;
  size_t name_size = 0;
  std::vector<Subscriber> members;
  mutable std::atomic<size_t> next{0};

  std::string_view name() const { return std::string_view(*key).substr(0, name_size); }
  std::string_view filter() const { return std::string_view(*key).substr(name_size + 1); }
};

struct TopicTree::Node {
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  std::vector<Subscriber> subscribers;
  std::vector<std::unique_ptr<SharedGroup>> groups;

  bool empty() const {
    return children.empty() && !plus && !hash && subscribers.empty() && groups.empty();
  }
};

TopicTree::TopicTree() : root_(std::make_unique<Node>()) {}
TopicTree::~TopicTree() = default;

bool TopicTree::split_shared(std::string_view filter, std::string_view& group,
                             std::string_view& real_filter) {
  constexpr std::string_view kPrefix = "$share/";
  if (filter.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view rest = filter.substr(kPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  group = rest.substr(0, slash);
  real_filter = rest.substr(slash + 1);
  return true;
}

TopicTree::Node* TopicTree::find_or_create(std::string_view filter) {
  Node* node = root_.get();
  size_t pos = 0;
  while (pos != std::string_view::npos) {
    const std::string_view level = next_level(filter, pos);
    std::unique_ptr<Node>* slot;
    if (level == "+") {
      slot = &node->plus;
    } else if (level == "#") {
      slot = &node->hash;
    } else {
      auto it = node->children.find(level);
      if (it == node->children.end()) it = node->children.emplace(level, nullptr).first;
      slot = &it->second;
    }
    if (!*slot) *slot = std::make_unique<Node>();
    node = slot->get();
  }
  return node;
}

bool TopicTree::subscribe(std::string_view filter, const Subscriber& s) {
  std::string_view group_name, real_filter = filter;
  const bool shared = split_shared(filter, group_name, real_filter);
  Node* node = find_or_create(real_filter);
  std::vector<Subscriber>* list = &node->subscribers;
  session::SharedKey shared_key;
  if (shared) {
    SharedGroup* group = nullptr;
    for (auto& g : node->groups) {
      if (g->name() == group_name) group = g.get();
    }
    if (!group) {
      node->groups.push_back(std::make_unique<SharedGroup>());
      group = node->groups.back().get();
      group->key = std::make_shared<const std::string>(
          std::string(group_name).append("/").append(real_filter));
      group->name_size = group_name.size();
    }
    list = &group->members;
    shared_key = group->key;
  }
  for (auto& existing : *list) {
    if (existing.session == s.session) {
      existing = s;
      if (shared) existing.shared = shared_key;
      return true;
    }
  }
  list->push_back(s);
  if (shared) list->back().shared = shared_key;
  ++count_;
  return false;
}

bool TopicTree::unsubscribe(std::string_view filter, const session::Session* session) {
  std::string_view group_name, real_filter = filter;
  const bool shared = split_shared(filter, group_name, real_filter);
  // Walk down remembering the path so emptied nodes can be pruned.
  std::vector<std::pair<Node*, std::string_view>> path;
  Node* node = root_.get();
  size_t pos = 0;
  while (pos != std::string_view::npos) {
    const std::string_view level = next_level(real_filter, pos);
    Node* child = nullptr;
    if (level == "+") {
      child = node->plus.get();
    } else if (level == "#") {
      child = node->hash.get();
    } else {
      auto it = node->children.find(level);
      if (it != node->children.end()) child = it->second.get();
    }
    if (!child) return false;
    path.emplace_back(node, level);
    node = child;
  }
  bool removed = false;
  auto erase_from = [&](std::vector<Subscriber>& list) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->session == session) {
        list.erase(it);
        removed = true;
        return;
      }
    }
  };
  if (shared) {
    for (auto it = node->groups.begin(); it != node->groups.end(); ++it) {
      if ((*it)->name() == group_name) {
        erase_from((*it)->members);
        if ((*it)->members.empty()) node->groups.erase(it);
        break;
      }
    }
  } else {
    erase_from(node->subscribers);
  }
  if (!removed) return false;
  --count_;
  for (auto it = path.rbegin(); it != path.rend() && node->empty(); ++it) {
    Node* parent = it->first;
    const std::string_view level = it->second;
    if (level == "+") {
      parent->plus.reset();
    } else if (level == "#") {
      parent->hash.reset();
    } else {
      parent->children.erase(parent->children.find(level));
    }
    node = parent;
  }
  return true;
}

namespace {

struct MatchState {
  MatchVisitor visit;
  void* ctx;
  GroupFilter keep;
  void* keep_ctx;
};

template <class NodeT, class GroupT>
void visit_node(const NodeT& node, const MatchState& st) {
  for (const auto& s : node.subscribers) st.visit(st.ctx, s);
  for (const auto& g : node.groups) {
    const GroupT& group = *g;
    const size_t n = group.members.size();
    if (n == 0) continue;
    if (st.keep && !st.keep(st.keep_ctx, group.name(), group.filter())) continue;
    // Round robin, skipping members whose session is offline when an online
    // one exists.
    const size_t start = group.next.fetch_add(1, std::memory_order_relaxed);
    const Subscriber* chosen = &group.members[start % n];
    for (size_t i = 0; i < n; ++i) {
      const Subscriber& candidate = group.members[(start + i) % n];
      if (candidate.session->online()) {
        chosen = &candidate;
        break;
      }
    }
    st.visit(st.ctx, *chosen);
  }
}

// Below the first level: the '$' rule no longer applies.
template <class NodeT, class GroupT>
void match_levels(const NodeT& node, std::string_view topic, size_t pos, const MatchState& st) {
  // '#' matches this level and everything below, including the parent level
  // itself ("a/#" matches "a").
  if (node.hash) visit_node<NodeT, GroupT>(*node.hash, st);
  if (pos == std::string_view::npos) {
    visit_node<NodeT, GroupT>(node, st);
    return;
  }
  const std::string_view level = next_level(topic, pos);
  auto it = node.children.find(level);
  if (it != node.children.end()) match_levels<NodeT, GroupT>(*it->second, topic, pos, st);
  if (node.plus) match_levels<NodeT, GroupT>(*node.plus, topic, pos, st);
}

}  // namespace

void TopicTree::match(std::string_view topic, MatchVisitor visit, void* ctx, GroupFilter keep,
                      void* keep_ctx) const {
  const MatchState st{visit, ctx, keep, keep_ctx};
  // The root has no subscribers itself; start with the first level.
  const Node& root = *root_;
  const bool dollar = !topic.empty() && topic[0] == '$';
  if (root.hash && !dollar) visit_node<Node, SharedGroup>(*root.hash, st);
  size_t pos = 0;
  const std::string_view level = next_level(topic, pos);
  auto it = root.children.find(level);
  if (it != root.children.end()) match_levels<Node, SharedGroup>(*it->second, topic, pos, st);
  if (root.plus && !dollar) match_levels<Node, SharedGroup>(*root.plus, topic, pos, st);
}

const TopicTree::SharedGroup* TopicTree::find_group(std::string_view group,
                                                    std::string_view filter) const {
  const Node* node = root_.get();
  size_t pos = 0;
  while (pos != std::string_view::npos) {
    const std::string_view level = next_level(filter, pos);
    if (level == "+") {
      node = node->plus.get();
    } else if (level == "#") {
      node = node->hash.get();
    } else {
      auto it = node->children.find(level);
      node = it == node->children.end() ? nullptr : it->second.get();
    }
    if (!node) return nullptr;
  }
  for (const auto& g : node->groups) {
    if (g->name() == group) return g.get();
  }
  return nullptr;
}

std::vector<const session::Session*> TopicTree::shared_members(std::string_view group,
                                                               std::string_view filter) const {
  std::vector<const session::Session*> out;
  if (const SharedGroup* g = find_group(group, filter)) {
    for (const auto& m : g->members) out.push_back(m.session);
  }
  return out;
}

bool TopicTree::pick_member(std::string_view group, std::string_view filter,
                            const session::Session* except, Subscriber& out) const {
  const SharedGroup* g = find_group(group, filter);
  if (!g) return false;
  const size_t n = g->members.size();
  const size_t start = g->next.fetch_add(1, std::memory_order_relaxed);
  const Subscriber* chosen = nullptr;
  for (size_t i = 0; i < n; ++i) {
    const Subscriber& candidate = g->members[(start + i) % n];
    if (candidate.session == except) continue;
    if (candidate.session->online()) {
      chosen = &candidate;
      break;
    }
    if (!chosen) chosen = &candidate;
  }
  if (!chosen) return false;
  out = *chosen;
  return true;
}

}  // namespace backbone::kernel::topic_tree
