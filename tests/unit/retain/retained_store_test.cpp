// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/retain/retained_store.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace backbone::kernel::retain {
namespace {

broker::MessagePtr msg(std::string topic, std::string payload,
                       std::optional<broker::Clock::time_point> expires = std::nullopt) {
  auto m = std::make_shared<broker::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->retain = true;
  m->expires_at = expires;
  return m;
}

std::vector<std::string> topics(const std::vector<broker::MessagePtr>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m->topic + "=" + m->payload);
  std::sort(out.begin(), out.end());
  return out;
}

using V = std::vector<std::string>;

TEST(RetainedStore, SetReplaceClear) {
  RetainedStore store;
  EXPECT_EQ(store.size(), 0u);
  store.set(msg("a/b", "1"));
  store.set(msg("a/c", "2"));
  EXPECT_EQ(store.size(), 2u);
  store.set(msg("a/b", "3"));  // replaces
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(topics(store.matching("a/b")), (V{"a/b=3"}));
  store.set(msg("a/b", ""));  // an empty payload clears
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(store.matching("a/b").empty());
  EXPECT_EQ(topics(store.matching("a/#")), (V{"a/c=2"}));
  store.set(msg("never/set", ""));  // clearing nothing is harmless
  EXPECT_EQ(store.size(), 1u);
}

TEST(RetainedStore, KeepsTheSameMessageInstance) {
  RetainedStore store;
  auto m = msg("same", "x");
  store.set(m);
  auto got = store.matching("same");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].get(), m.get());
}

TEST(RetainedStore, MatchingFilters) {
  RetainedStore store;
  for (const char* t : {"a", "a/b", "a/b/c", "a/x/c", "b", "/", "$SYS/up", "$SYS/a/b"})
    store.set(msg(t, "p"));
  EXPECT_EQ(store.size(), 8u);
  EXPECT_EQ(topics(store.matching("a")), (V{"a=p"}));
  EXPECT_EQ(topics(store.matching("nope")), V{});
  EXPECT_EQ(topics(store.matching("a/#")), (V{"a/b/c=p", "a/b=p", "a/x/c=p", "a=p"}));
  EXPECT_EQ(topics(store.matching("a/+/c")), (V{"a/b/c=p", "a/x/c=p"}));
  EXPECT_EQ(topics(store.matching("a/+")), (V{"a/b=p"}));
  EXPECT_EQ(topics(store.matching("+")), (V{"a=p", "b=p"}));
  EXPECT_EQ(topics(store.matching("#")), (V{"/=p", "a/b/c=p", "a/b=p", "a/x/c=p", "a=p", "b=p"}));
  EXPECT_EQ(topics(store.matching("$SYS/#")), (V{"$SYS/a/b=p", "$SYS/up=p"}));
  EXPECT_EQ(topics(store.matching("$SYS/+")), (V{"$SYS/up=p"}));
  EXPECT_EQ(topics(store.matching("+/+")), (V{"/=p", "a/b=p"}));
  EXPECT_EQ(topics(store.matching("/")), (V{"/=p"}));
}

TEST(RetainedStore, ExpiredMessagesAreNotReturned) {
  RetainedStore store;
  const auto now = broker::Clock::now();
  store.set(msg("e/old", "x", now - std::chrono::seconds(1)));
  store.set(msg("e/new", "y", now + std::chrono::hours(1)));
  store.set(msg("e/forever", "z"));
  EXPECT_EQ(topics(store.matching("e/#")), (V{"e/forever=z", "e/new=y"}));
  EXPECT_TRUE(store.matching("e/old").empty());
  EXPECT_EQ(topics(store.matching("e/new")), (V{"e/new=y"}));
}

TEST(RetainedStore, MessageRemainingExpiry) {
  const auto now = broker::Clock::now();
  broker::Message m;
  EXPECT_FALSE(m.remaining_expiry(now));
  EXPECT_FALSE(m.expired(now));
  m.expires_at = now + std::chrono::milliseconds(1500);
  EXPECT_EQ(m.remaining_expiry(now), 2u);  // rounded up
  EXPECT_FALSE(m.expired(now));
  EXPECT_EQ(m.remaining_expiry(now + std::chrono::seconds(5)), 0u);
  EXPECT_TRUE(m.expired(now + std::chrono::milliseconds(1500)));
}

}  // namespace
}  // namespace backbone::kernel::retain
