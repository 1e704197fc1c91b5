// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/topic_tree/topic_tree.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/retain/retained_store.hpp"
#include "kernel/session/session.hpp"

namespace backbone::kernel::topic_tree {
namespace {

using session::Session;

std::vector<Subscriber> match(const TopicTree& tree, std::string_view topic) {
  std::vector<Subscriber> out;
  tree.match(
      topic,
      [](void* ctx, const Subscriber& s) {
        static_cast<std::vector<Subscriber>*>(ctx)->push_back(s);
      },
      &out);
  return out;
}

Subscriber sub(Session& s, uint8_t qos = 0, uint32_t id = 0) {
  return Subscriber{&s, protocol::SubscribeOptions{qos, false, false, 0}, id};
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

// Shared by the tree and retain::topic_matches_filter: both must agree.
const std::vector<MatchCase> kMatchCases = {
    {"a/b", "a/b", true},
    {"a/b", "a/c", false},
    {"a/b", "a", false},
    {"a", "a/b", false},
    {"a/b", "a/b/c", false},
    {"a/+", "a/b", true},
    {"a/+", "a/b/c", false},
    {"a/+", "a", false},
    {"a/+", "a/", true},
    {"+/b", "a/b", true},
    {"+/b", "/b", true},
    {"+/+", "/a", true},
    {"+/+", "a/", true},
    {"+", "a", true},
    {"+", "a/b", false},
    {"+", "/", false},
    {"a/#", "a", true},
    {"a/#", "a/b", true},
    {"a/#", "a/b/c", true},
    {"a/#", "a/", true},
    {"a/#", "ab", false},
    {"a/#", "b/a", false},
    {"a/+/#", "a", false},
    {"a/+/#", "a/b", true},
    {"a/+/#", "a/b/c/d", true},
    {"+/#", "a", true},
    {"#", "a", true},
    {"#", "a/b/c", true},
    {"#", "/", true},
    {"#", "/a", true},
    {"/#", "/", true},
    {"/#", "/a", true},
    {"/#", "a", false},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+/b", "a//b", true},
    {"/", "/", true},
    {"//", "//", true},
    {"//", "/", false},
    // '$' topics: no leading wildcard matches them, explicit filters do.
    {"#", "$SYS/x", false},
    {"#", "$", false},
    {"+", "$x", false},
    {"+/x", "$SYS/x", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/#", "$SYS/a/b", true},
    {"$SYS/+", "$SYS/a", true},
    {"$SYS/x", "$SYS/x", true},
    {"$SYS/#", "SYS/x", false},
    // Only the first level is special.
    {"a/+", "a/$x", true},
    {"a/#", "a/$x", true},
    {"#", "a/$x", true},
};

TEST(TopicTreeMatch, FilterTable) {
  for (const auto& c : kMatchCases) {
    TopicTree tree;
    Session s("s", 1);
    tree.subscribe(c.filter, sub(s));
    EXPECT_EQ(match(tree, c.topic).size(), c.matches ? 1u : 0u)
        << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(TopicTreeMatch, AllFiltersInOneTree) {
  // Every filter in one tree, one session each: the set matched for a topic
  // is exactly the filters of the table marked as matching it.
  TopicTree tree;
  std::vector<std::unique_ptr<Session>> sessions;
  std::map<std::string, Session*> by_filter;
  for (const auto& c : kMatchCases) {
    if (by_filter.count(c.filter)) continue;
    sessions.push_back(std::make_unique<Session>(c.filter, sessions.size() + 1));
    by_filter[c.filter] = sessions.back().get();
    EXPECT_FALSE(tree.subscribe(c.filter, sub(*sessions.back())));
  }
  EXPECT_EQ(tree.subscription_count(), by_filter.size());
  for (const auto& c : kMatchCases) {
    const auto got = match(tree, c.topic);
    size_t hits = 0;
    for (const auto& s : got) hits += s.session == by_filter[c.filter];
    EXPECT_EQ(hits, c.matches ? 1u : 0u) << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(RetainTopicMatches, FilterTable) {
  for (const auto& c : kMatchCases) {
    EXPECT_EQ(retain::topic_matches_filter(c.filter, c.topic), c.matches)
        << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(TopicTreeMatch, EverySubscriberIsVisitedWithItsOptions) {
  TopicTree tree;
  Session a("a", 1), b("b", 2);
  tree.subscribe("x/+", sub(a, 1, 10));
  tree.subscribe("x/#", sub(a, 2, 20));  // overlapping: visited twice
  tree.subscribe("x/y", sub(b, 0, 0));
  auto got = match(tree, "x/y");
  ASSERT_EQ(got.size(), 3u);
  std::map<uint32_t, const Subscriber*> by_id;
  for (const auto& s : got) by_id[s.subscription_id] = &s;
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_EQ(by_id[10]->session, &a);
  EXPECT_EQ(by_id[10]->options.qos, 1);
  EXPECT_EQ(by_id[20]->session, &a);
  EXPECT_EQ(by_id[20]->options.qos, 2);
  EXPECT_EQ(by_id[0]->session, &b);
  EXPECT_TRUE(match(tree, "y").empty());
}

TEST(TopicTreeSubscribe, ReplacingKeepsTheCount) {
  TopicTree tree;
  Session s("s", 1);
  EXPECT_FALSE(tree.subscribe("r/t", sub(s, 0, 1)));
  EXPECT_EQ(tree.subscription_count(), 1u);
  Subscriber replaced = sub(s, 2, 7);
  replaced.options.no_local = true;
  replaced.options.retain_handling = 2;
  EXPECT_TRUE(tree.subscribe("r/t", replaced));
  EXPECT_EQ(tree.subscription_count(), 1u);
  auto got = match(tree, "r/t");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subscription_id, 7u);
  EXPECT_EQ(got[0].options, replaced.options);
}

TEST(TopicTreeSubscribe, UnsubscribeAndCount) {
  TopicTree tree;
  Session a("a", 1), b("b", 2);
  tree.subscribe("u/+", sub(a));
  tree.subscribe("u/+", sub(b));
  tree.subscribe("u/#", sub(a));
  EXPECT_EQ(tree.subscription_count(), 3u);
  EXPECT_FALSE(tree.unsubscribe("u/x", &a));  // never subscribed
  EXPECT_FALSE(tree.unsubscribe("u", &a));    // a prefix node, no subscription
  EXPECT_FALSE(tree.unsubscribe("v/+", &a));
  EXPECT_TRUE(tree.unsubscribe("u/+", &a));
  EXPECT_FALSE(tree.unsubscribe("u/+", &a));  // twice
  EXPECT_EQ(tree.subscription_count(), 2u);
  auto got = match(tree, "u/1");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(tree.unsubscribe("u/+", &b));
  EXPECT_TRUE(tree.unsubscribe("u/#", &a));
  EXPECT_EQ(tree.subscription_count(), 0u);
  EXPECT_TRUE(match(tree, "u/1").empty());
  EXPECT_TRUE(match(tree, "u").empty());
}

TEST(TopicTreeSubscribe, PruningLeavesAWorkingTree) {
  TopicTree tree;
  Session s("s", 1);
  const std::vector<std::string> filters = {"a/b/c", "a/b", "a/+/c", "a/#", "#",
                                            "+",     "+/+", "/",     "//a", "$SYS/#"};
  for (int round = 0; round < 3; ++round) {
    for (const auto& f : filters) EXPECT_FALSE(tree.subscribe(f, sub(s))) << f;
    EXPECT_EQ(tree.subscription_count(), filters.size());
    EXPECT_EQ(match(tree, "a/b/c").size(), 4u);  // a/b/c, a/+/c, a/# and #
    // Unsubscribe deepest first in one round, shallowest first in another.
    if (round % 2 == 0) {
      for (const auto& f : filters) EXPECT_TRUE(tree.unsubscribe(f, &s)) << f;
    } else {
      for (auto it = filters.rbegin(); it != filters.rend(); ++it)
        EXPECT_TRUE(tree.unsubscribe(*it, &s)) << *it;
    }
    EXPECT_EQ(tree.subscription_count(), 0u);
    for (const char* topic : {"a/b/c", "a", "x", "/", "$SYS/x", "//a"})
      EXPECT_TRUE(match(tree, topic).empty()) << topic;
  }
  // Sibling branches survive the pruning of a neighbour.
  Session t("t", 2);
  tree.subscribe("p/q/r", sub(s));
  tree.subscribe("p/q", sub(t));
  EXPECT_TRUE(tree.unsubscribe("p/q/r", &s));
  auto got = match(tree, "p/q");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].session, &t);
}

TEST(TopicTreeShared, SplitShared) {
  std::string_view group, filter;
  ASSERT_TRUE(TopicTree::split_shared("$share/g/a/b", group, filter));
  EXPECT_EQ(group, "g");
  EXPECT_EQ(filter, "a/b");
  ASSERT_TRUE(TopicTree::split_shared("$share/grp/#", group, filter));
  EXPECT_EQ(group, "grp");
  EXPECT_EQ(filter, "#");
  ASSERT_TRUE(TopicTree::split_shared("$share//a", group, filter));
  EXPECT_EQ(group, "");
  EXPECT_EQ(filter, "a");
  ASSERT_TRUE(TopicTree::split_shared("$share/g/", group, filter));
  EXPECT_EQ(group, "g");
  EXPECT_EQ(filter, "");
  EXPECT_FALSE(TopicTree::split_shared("$share/g", group, filter));
  EXPECT_FALSE(TopicTree::split_shared("$share/", group, filter));
  EXPECT_FALSE(TopicTree::split_shared("$share", group, filter));
  EXPECT_FALSE(TopicTree::split_shared("$shared/g/a", group, filter));
  EXPECT_FALSE(TopicTree::split_shared("share/g/a", group, filter));
  EXPECT_FALSE(TopicTree::split_shared("a/$share/g/a", group, filter));
}

TEST(TopicTreeShared, ExactlyOneMemberPerGroupRoundRobin) {
  TopicTree tree;
  Session a("a", 1), b("b", 2), c("c", 3), plain("plain", 4);
  for (Session* s : {&a, &b, &c}) s->set_conn(100 + s->id());
  tree.subscribe("$share/g/jobs/+", sub(a));
  tree.subscribe("$share/g/jobs/+", sub(b));
  tree.subscribe("$share/g/jobs/+", sub(c));
  tree.subscribe("$share/h/jobs/#", sub(a));
  tree.subscribe("jobs/+", sub(plain));
  EXPECT_EQ(tree.subscription_count(), 5u);
  std::map<const Session*, int> counts;
  for (int i = 0; i < 30; ++i) {
    auto got = match(tree, "jobs/1");
    ASSERT_EQ(got.size(), 3u);  // one member of g, the member of h, the plain subscriber
    for (const auto& s : got) ++counts[s.session];
  }
  EXPECT_EQ(counts[&plain], 30);
  // a is delivered to for h every time and for g one time in three.
  EXPECT_EQ(counts[&a], 30 + 10);
  EXPECT_EQ(counts[&b], 10);
  EXPECT_EQ(counts[&c], 10);
}

TEST(TopicTreeShared, StrictAlternationBetweenTwoMembers) {
  TopicTree tree;
  Session a("a", 1), b("b", 2);
  a.set_conn(1);
  b.set_conn(2);
  tree.subscribe("$share/g/t", sub(a));
  tree.subscribe("$share/g/t", sub(b));
  const Session* last = nullptr;
  for (int i = 0; i < 10; ++i) {
    auto got = match(tree, "t");
    ASSERT_EQ(got.size(), 1u);
    EXPECT_NE(got[0].session, last) << i;
    last = got[0].session;
  }
}

TEST(TopicTreeShared, PrefersOnlineMembers) {
  TopicTree tree;
  Session off1("off1", 1), on("on", 2), off2("off2", 3);
  on.set_conn(42);
  tree.subscribe("$share/g/t", sub(off1));
  tree.subscribe("$share/g/t", sub(on));
  tree.subscribe("$share/g/t", sub(off2));
  for (int i = 0; i < 9; ++i) {
    auto got = match(tree, "t");
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].session, &on) << i;
  }
  // Nobody online: still exactly one delivery (queued for an offline member).
  on.set_conn(0);
  std::map<const Session*, int> counts;
  for (int i = 0; i < 9; ++i) {
    auto got = match(tree, "t");
    ASSERT_EQ(got.size(), 1u);
    ++counts[got[0].session];
  }
  EXPECT_EQ(counts.size(), 3u);
}

TEST(TopicTreeShared, ReplaceAndUnsubscribe) {
  TopicTree tree;
  Session a("a", 1), b("b", 2);
  EXPECT_FALSE(tree.subscribe("$share/g/t", sub(a, 0)));
  EXPECT_TRUE(tree.subscribe("$share/g/t", sub(a, 1)));
  EXPECT_FALSE(tree.subscribe("$share/g/t", sub(b, 0)));
  EXPECT_FALSE(tree.subscribe("t", sub(a, 2)));  // non-shared is a separate subscription
  EXPECT_EQ(tree.subscription_count(), 3u);
  EXPECT_FALSE(tree.unsubscribe("$share/other/t", &a));
  EXPECT_FALSE(tree.unsubscribe("$share/g/u", &a));
  EXPECT_TRUE(tree.unsubscribe("$share/g/t", &a));
  EXPECT_EQ(tree.subscription_count(), 2u);
  for (int i = 0; i < 4; ++i) {
    auto got = match(tree, "t");
    ASSERT_EQ(got.size(), 2u);  // b for the group, a for the plain one
    std::map<const Session*, uint8_t> qos;
    for (const auto& s : got) qos[s.session] = s.options.qos;
    EXPECT_EQ(qos.count(&b), 1u);
    EXPECT_EQ(qos[&a], 2);
  }
  EXPECT_TRUE(tree.unsubscribe("$share/g/t", &b));
  EXPECT_TRUE(tree.unsubscribe("t", &a));
  EXPECT_EQ(tree.subscription_count(), 0u);
  EXPECT_TRUE(match(tree, "t").empty());
  // The emptied group can be created again.
  EXPECT_FALSE(tree.subscribe("$share/g/t", sub(b)));
  EXPECT_EQ(match(tree, "t").size(), 1u);
}

TEST(TopicTreeShared, SharedWildcardsFollowDollarRule) {
  TopicTree tree;
  Session a("a", 1);
  tree.subscribe("$share/g/#", sub(a));
  EXPECT_EQ(match(tree, "x/y").size(), 1u);
  EXPECT_TRUE(match(tree, "$SYS/x").empty());
}

TEST(TopicTreeShared, MembersCarryTheGroupAndItsRealFilter) {
  TopicTree tree;
  Session a("a", 1), b("b", 2), plain("plain", 3);
  tree.subscribe("$share/g/jobs/+", sub(a));
  tree.subscribe("$share/g/jobs/+", sub(b));
  tree.subscribe("jobs/+", sub(plain));
  const auto got = match(tree, "jobs/1");
  ASSERT_EQ(got.size(), 2u);
  for (const auto& s : got) {
    if (s.session == &plain) {
      EXPECT_FALSE(s.shared);
    } else {
      ASSERT_TRUE(s.shared);
      EXPECT_EQ(*s.shared, "g/jobs/+");
    }
  }
  EXPECT_EQ(tree.shared_members("g", "jobs/+").size(), 2u);
  EXPECT_TRUE(tree.shared_members("g", "jobs/#").empty());
  EXPECT_TRUE(tree.shared_members("h", "jobs/+").empty());
}

struct Kept {
  std::vector<std::string> asked;
  std::string refuse;  // "<group>/<filter>" refused
};

std::vector<Subscriber> match_kept(const TopicTree& tree, std::string_view topic, Kept& kept) {
  std::vector<Subscriber> out;
  tree.match(
      topic,
      [](void* ctx, const Subscriber& s) {
        static_cast<std::vector<Subscriber>*>(ctx)->push_back(s);
      },
      &out,
      [](void* ctx, std::string_view group, std::string_view filter) {
        auto* k = static_cast<Kept*>(ctx);
        const std::string key = std::string(group) + "/" + std::string(filter);
        k->asked.push_back(key);
        return key != k->refuse;
      },
      &kept);
  return out;
}

TEST(TopicTreeShared, GroupFilterDecidesPerGroupAndKeepsTheRoundRobin) {
  TopicTree tree;
  Session a("a", 1), b("b", 2), c("c", 3), plain("plain", 4);
  for (Session* s : {&a, &b, &c}) s->set_conn(100 + s->id());
  tree.subscribe("$share/g/t/+", sub(a));
  tree.subscribe("$share/g/t/+", sub(b));
  tree.subscribe("$share/h/t/#", sub(c));
  tree.subscribe("t/+", sub(plain));
  Kept kept;
  kept.refuse = "g/t/+";
  for (int i = 0; i < 3; ++i) {
    const auto got = match_kept(tree, "t/x", kept);
    ASSERT_EQ(got.size(), 2u);  // h's member and the plain subscriber
    for (const auto& s : got) EXPECT_NE(s.session, &a);
    for (const auto& s : got) EXPECT_NE(s.session, &b);
  }
  EXPECT_EQ(kept.asked.size(), 6u);  // once per group per message, never for plain ones
  // g's round robin did not move while it was refused: a then b, as from the start.
  const auto first = match(tree, "t/x");
  const auto second = match(tree, "t/x");
  auto member_of_g = [&](const std::vector<Subscriber>& got) -> const Session* {
    for (const auto& s : got) {
      if (s.session == &a || s.session == &b) return s.session;
    }
    return nullptr;
  };
  EXPECT_EQ(member_of_g(first), &a);
  EXPECT_EQ(member_of_g(second), &b);
  // Nothing refused: every group gets its member.
  kept = Kept{};
  EXPECT_EQ(match_kept(tree, "t/x", kept).size(), 3u);
  EXPECT_EQ(kept.asked.size(), 2u);
}

TEST(TopicTreeShared, PickMemberSkipsTheLeavingOnePrefersOnline) {
  TopicTree tree;
  Session leaving("leaving", 1), off("off", 2), on("on", 3);
  leaving.set_conn(1);
  on.set_conn(3);
  tree.subscribe("$share/g/t", sub(leaving));
  tree.subscribe("$share/g/t", sub(off));
  tree.subscribe("$share/g/t", sub(on, 1));
  Subscriber out;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(tree.pick_member("g", "t", &leaving, out));
    EXPECT_EQ(out.session, &on);
    EXPECT_EQ(out.options.qos, 1);
  }
  on.set_conn(0);
  ASSERT_TRUE(tree.pick_member("g", "t", &leaving, out));
  EXPECT_NE(out.session, &leaving);
  EXPECT_FALSE(tree.pick_member("h", "t", nullptr, out));
  tree.unsubscribe("$share/g/t", &off);
  tree.unsubscribe("$share/g/t", &on);
  EXPECT_FALSE(tree.pick_member("g", "t", &leaving, out));
}

}  // namespace
}  // namespace backbone::kernel::topic_tree
