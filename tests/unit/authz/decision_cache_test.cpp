// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/decision_cache.hpp"

#include <string>

#include <gtest/gtest.h>

namespace backbone::kernel::authz {
namespace {

std::shared_ptr<const Policy> make(std::vector<Statement> statements) {
  std::string error;
  auto p = Policy::compile(statements, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

TEST(DecisionCache, ActionNames) {
  EXPECT_EQ(action_name(Action::publish), "mqtt:publish");
  EXPECT_EQ(action_name(Action::subscribe), "mqtt:subscribe");
  EXPECT_EQ(action_name(Action::read), "mqtt:read");
}

TEST(DecisionCache, MapsEachActionToItsName) {
  DecisionCache cache(make({Statement{true, {"mqtt:read"}, {"a"}}}));
  EXPECT_TRUE(cache.allows(Action::read, "a"));
  EXPECT_FALSE(cache.allows(Action::publish, "a"));
  EXPECT_FALSE(cache.allows(Action::subscribe, "a"));
  EXPECT_FALSE(cache.allows(Action::read, "b"));
  // Repeated questions are answered from the cache, still correctly.
  EXPECT_TRUE(cache.allows(Action::read, "a"));
  EXPECT_FALSE(cache.allows(Action::publish, "a"));
  // Only "mqtt:read" depends on the topic; publish and subscribe are
  // decided by the policy as a whole and never cached.
  EXPECT_EQ(cache.size(), 2u);
}

TEST(DecisionCache, FixedDecisionsSkipTheCache) {
  DecisionCache cache(make(
      {Statement{true, {"mqtt:*"}, {"**"}}, Statement{false, {"mqtt:subscribe"}, {"secret/#"}}}));
  EXPECT_TRUE(cache.allows(Action::publish, "any/topic"));
  EXPECT_TRUE(cache.allows(Action::read, "secret/x"));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.policy().fixed_decision(0), 1);   // publish: always
  EXPECT_EQ(cache.policy().fixed_decision(1), -1);  // subscribe: depends (a deny)
  EXPECT_EQ(cache.policy().fixed_decision(2), 1);   // read: always
  DecisionCache none(make({Statement{true, {"mqtt:read"}, {"a/#"}}}));
  EXPECT_EQ(none.policy().fixed_decision(0), 0);
  EXPECT_FALSE(none.allows(Action::publish, "a/b"));
}

TEST(DecisionCache, SetPolicyInvalidatesCachedDecisions) {
  DecisionCache cache(make({Statement{true, {"*"}, {"a/#"}}}));
  EXPECT_TRUE(cache.allows(Action::publish, "a/b"));
  EXPECT_FALSE(cache.allows(Action::publish, "c"));
  EXPECT_EQ(cache.size(), 2u);

  cache.set_policy(make({Statement{true, {"*"}, {"c"}}}));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.allows(Action::publish, "a/b"));
  EXPECT_TRUE(cache.allows(Action::publish, "c"));
  EXPECT_EQ(cache.policy().statements()[0].resources[0], "c");

  cache.set_policy(nullptr);  // revoked credentials: deny everything
  EXPECT_FALSE(cache.allows(Action::publish, "c"));
  EXPECT_EQ(cache.policy_ptr(), Policy::deny_all());
}

TEST(DecisionCache, NullPolicyDeniesEverything) {
  DecisionCache cache(nullptr);
  EXPECT_FALSE(cache.allows(Action::read, "a"));
  EXPECT_FALSE(cache.allows_subscribe("a"));
  EXPECT_TRUE(cache.policy().statements().empty());
}

TEST(DecisionCache, IsBoundedAndStartsOverWhenFull) {
  DecisionCache cache(make({Statement{true, {"*"}, {"even/#"}}}), 4);
  for (int i = 0; i < 4; ++i) cache.allows(Action::publish, "t/" + std::to_string(i));
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_TRUE(cache.allows(Action::publish, "even/x"));  // full: cleared, then cached
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.allows(Action::publish, "even/x"));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_FALSE(cache.allows(Action::read, "t/0"));
  EXPECT_EQ(cache.size(), 2u);
}

TEST(DecisionCache, DefaultCapacityHoldsManyTopics) {
  DecisionCache cache(make({Statement{true, {"*"}, {"t/#"}}}));
  for (size_t i = 0; i < DecisionCache::kDefaultCapacity; ++i) {
    EXPECT_TRUE(cache.allows(Action::read, "t/" + std::to_string(i)));
  }
  EXPECT_EQ(cache.size(), DecisionCache::kDefaultCapacity);
}

TEST(DecisionCache, SubscribeGoesToThePolicy) {
  DecisionCache cache(
      make({Statement{true, {"mqtt:subscribe"}, {"a/#"}}, Statement{false, {"*"}, {"a/secret"}}}));
  EXPECT_TRUE(cache.allows_subscribe("a/b/+"));
  EXPECT_FALSE(cache.allows_subscribe("a/+"));
  cache.set_policy(make({Statement{true, {"mqtt:subscribe"}, {"a/#"}}}));
  EXPECT_TRUE(cache.allows_subscribe("a/+"));
}

}  // namespace
}  // namespace backbone::kernel::authz
