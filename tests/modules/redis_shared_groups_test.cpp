// SPDX-License-Identifier: GPL-3.0-or-later
// The redis module's choice of the broker that serves a shared group.
#include "cluster/redis/shared_groups.hpp"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/redis/frame.hpp"

namespace backbone::modules::redis {
namespace {

// The broker chosen for each group a message matches, by "<group>/<filter>".
std::map<std::string, std::string> choose(SharedGroups& groups, std::string_view topic) {
  std::string assignments;
  groups.choose(topic, assignments);
  std::map<std::string, std::string> out;
  for_each_assignment(assignments, [&](std::string_view node, std::string_view gf) {
    out[std::string(gf)] = std::string(node);
  });
  return out;
}

TEST(SharedGroups, LocalMembersServeFirstElseTheOthersInTurn) {
  SharedGroups groups("a", Strategy::kLocal);
  EXPECT_TRUE(groups.empty());
  groups.set_alive({"a", "b", "c"});
  groups.set("b", "g/jobs/#", 1);
  groups.set("c", "g/jobs/#", 2);
  EXPECT_FALSE(groups.empty());
  // No member here: b and c in turn; the group is not served here.
  std::map<std::string, int> served;
  for (int i = 0; i < 10; ++i) {
    auto chosen = choose(groups, "jobs/1");
    ASSERT_EQ(chosen.size(), 1u);
    ++served[chosen["g/jobs/#"]];
    EXPECT_FALSE(SharedGroups::served_here("g", "jobs/#"));
  }
  EXPECT_EQ(served, (std::map<std::string, int>{{"b", 5}, {"c", 5}}));
  // Another topic matches nothing: served here as usual.
  EXPECT_TRUE(choose(groups, "other").empty());
  EXPECT_TRUE(SharedGroups::served_here("g", "jobs/#"));
  // A member here: always here.
  groups.set("a", "g/jobs/#", 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(choose(groups, "jobs/2"), (std::map<std::string, std::string>{{"g/jobs/#", "a"}}));
    EXPECT_TRUE(SharedGroups::served_here("g", "jobs/#"));
  }
}

TEST(SharedGroups, RoundRobinSpreadsOverEveryBrokerWithMembers) {
  SharedGroups groups("a", Strategy::kRoundRobin);
  groups.set_alive({"b"});
  groups.set("a", "g/t", 1);
  groups.set("b", "g/t", 1);
  int here = 0, there = 0;
  for (int i = 0; i < 10; ++i) {
    auto chosen = choose(groups, "t");
    if (chosen["g/t"] == "a") {
      ++here;
      EXPECT_TRUE(SharedGroups::served_here("g", "t"));
    } else {
      EXPECT_EQ(chosen["g/t"], "b");
      ++there;
      EXPECT_FALSE(SharedGroups::served_here("g", "t"));
    }
  }
  EXPECT_EQ(here, 5);
  EXPECT_EQ(there, 5);
}

TEST(SharedGroups, DeadOrEmptyBrokersAreNotChosen) {
  SharedGroups groups("a", Strategy::kRoundRobin);
  groups.set_alive({"b"});
  groups.set("b", "g/t", 1);
  EXPECT_EQ(choose(groups, "t"), (std::map<std::string, std::string>{{"g/t", "b"}}));
  groups.set("b", "g/t", 0);  // b's last member went offline
  EXPECT_TRUE(groups.empty());
  groups.replace_node("c", {{"g/t", 2}, {"h/t", 0}});  // loaded: not known alive yet
  EXPECT_TRUE(groups.empty());
  groups.set_alive({"c"});
  EXPECT_EQ(choose(groups, "t"), (std::map<std::string, std::string>{{"g/t", "c"}}));
  EXPECT_EQ(groups.local().size(), 0u);
  groups.set("a", "g/t", 2);
  EXPECT_EQ(groups.local(), (std::vector<std::pair<std::string, uint32_t>>{{"g/t", 2}}));
}

TEST(SharedGroups, EachMatchingGroupGetsOneBroker) {
  SharedGroups groups("a", Strategy::kRandom);
  groups.set_alive({"b", "c"});
  groups.set("b", "g1/s/+", 1);
  groups.set("c", "g2/s/#", 1);
  groups.set("c", "g3/other", 1);
  auto chosen = choose(groups, "s/x");
  EXPECT_EQ(chosen, (std::map<std::string, std::string>{{"g1/s/+", "b"}, {"g2/s/#", "c"}}));
}

TEST(SharedGroups, AReceivingBrokerServesWhatItWasGivenAndWhatThePublisherDidNotKnow) {
  SharedGroups groups("b", Strategy::kLocal);
  groups.set("b", "g/t/#", 1);
  groups.set("b", "new/t/+", 1);  // subscribed since the publisher chose
  groups.set("b", "other/x", 1);
  std::string assignments;
  append_assignment("a", "h/t/#", assignments);
  append_assignment("b", "g/t/#", assignments);
  std::vector<std::string_view> served;
  std::vector<std::string> storage;
  groups.served_of("t/1", assignments, served, storage);
  EXPECT_EQ(std::vector<std::string>(served.begin(), served.end()),
            (std::vector<std::string>{"g/t/#", "new/t/+"}));
  // A group the publisher gave another broker is not served here.
  assignments.clear();
  append_assignment("c", "g/t/#", assignments);
  groups.served_of("t/1", assignments, served, storage);
  EXPECT_EQ(std::vector<std::string>(served.begin(), served.end()),
            (std::vector<std::string>{"new/t/+"}));
}

}  // namespace
}  // namespace backbone::modules::redis
