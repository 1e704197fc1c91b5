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

message::MessagePtr msg(std::string topic, std::string payload,
                       std::optional<message::Clock::time_point> expires = std::nullopt) {
  auto m = std::make_shared<message::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->retain = true;
  m->expires_at = expires;
  return m;
}

std::vector<std::string> topics(const std::vector<message::MessagePtr>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m->topic + "=" + m->payload);
  std::sort(out.begin(), out.end());
  return out;
}

using V = std::vector<std::string>;

TEST(RetainedStore, SetReplaceClear) {
  RetainedStore store;
  EXPECT_EQ(store.size(), 0u);
  store.set(msg("a/b", "1"), nullptr, {});
  store.set(msg("a/c", "2"), nullptr, {});
  EXPECT_EQ(store.size(), 2u);
  store.set(msg("a/b", "3"), nullptr, {});  // replaces
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(topics(store.matching("a/b")), (V{"a/b=3"}));
  store.set(msg("a/b", ""), nullptr, {});  // an empty payload clears
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(store.matching("a/b").empty());
  EXPECT_EQ(topics(store.matching("a/#")), (V{"a/c=2"}));
  store.set(msg("never/set", ""), nullptr, {});  // clearing nothing is harmless
  EXPECT_EQ(store.size(), 1u);
}

TEST(RetainedStore, KeepsTheSameMessageInstance) {
  RetainedStore store;
  auto m = msg("same", "x");
  store.set(m, nullptr, {});
  auto got = store.matching("same");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].get(), m.get());
}

TEST(RetainedStore, MatchingFilters) {
  RetainedStore store;
  for (const char* t : {"a", "a/b", "a/b/c", "a/x/c", "b", "/", "$SYS/up", "$SYS/a/b"})
    store.set(msg(t, "p"), nullptr, {});
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
  const auto now = message::Clock::now();
  store.set(msg("e/old", "x", now - std::chrono::seconds(1)), nullptr, {});
  store.set(msg("e/new", "y", now + std::chrono::hours(1)), nullptr, {});
  store.set(msg("e/forever", "z"), nullptr, {});
  EXPECT_EQ(topics(store.matching("e/#")), (V{"e/forever=z", "e/new=y"}));
  EXPECT_TRUE(store.matching("e/old").empty());
  EXPECT_EQ(topics(store.matching("e/new")), (V{"e/new=y"}));
}

TEST(RetainedStore, MessageRemainingExpiry) {
  const auto now = message::Clock::now();
  message::Message m;
  EXPECT_FALSE(m.remaining_expiry(now));
  EXPECT_FALSE(m.expired(now));
  m.expires_at = now + std::chrono::milliseconds(1500);
  EXPECT_EQ(m.remaining_expiry(now), 2u);  // rounded up
  EXPECT_FALSE(m.expired(now));
  EXPECT_EQ(m.remaining_expiry(now + std::chrono::seconds(5)), 0u);
  EXPECT_TRUE(m.expired(now + std::chrono::milliseconds(1500)));
}

TEST(RetainedStore, BrokerCapsAndOwnerQuotas) {
  RetainedStore store;
  const RetainedStore::Caps caps{3, 1000};
  auto tenant = std::make_shared<quota::Principal>("jwt", "tenant");
  quota::Quotas q;
  q.max_retained = 2;
  q.max_retained_bytes = 20;
  tenant->set_quotas(q);
  EXPECT_EQ(store.set(msg("t/1", "aaaa"), tenant, caps), "");
  EXPECT_EQ(store.set(msg("t/2", "bbbb"), tenant, caps), "");
  EXPECT_EQ(store.set(msg("t/3", "c"), tenant, caps), quota::kMaxRetained);
  EXPECT_EQ(store.set(msg("t/1", "replaced"), tenant, caps), "");  // its own: no new entry
  EXPECT_EQ(store.set(msg("t/2", "bbbbbbbbbbbbbbbb"), tenant, caps), quota::kMaxRetainedBytes);
  EXPECT_EQ(tenant->retained.load(), 2u);
  EXPECT_EQ(tenant->retained_bytes.load(), 3u + 8u + 3u + 4u);
  // Someone else may clear or replace it: the tenant's count goes down.
  EXPECT_EQ(store.set(msg("t/2", "theirs"), nullptr, caps), "");
  EXPECT_EQ(tenant->retained.load(), 1u);
  EXPECT_EQ(store.set(msg("x/1", "x"), nullptr, caps), "");
  EXPECT_EQ(store.set(msg("x/2", "x"), nullptr, caps), quota::kBrokerRetained);
  EXPECT_EQ(store.set(msg("t/1", ""), nullptr, caps), "");  // clearing is never refused
  EXPECT_EQ(tenant->retained.load(), 0u);
  EXPECT_EQ(tenant->retained_bytes.load(), 0u);
  EXPECT_EQ(store.set(msg("big", std::string(2000, 'x')), nullptr, caps),
            quota::kBrokerRetainedBytes);
  EXPECT_EQ(store.size(), 2u);
}

TEST(RetainedStore, ShardedLookupAgreesWithAFullScan) {
  RetainedStore store;
  std::vector<std::string> all;
  const char* levels[] = {"a", "b", "ab", "", "$SYS", "x"};
  for (const char* l1 : levels)
    for (const char* l2 : levels)
      for (const char* l3 : {"", "/c", "/c/d", "/ab"}) {
        std::string t = std::string(l1) + "/" + l2 + l3;
        all.push_back(t);
        store.set(msg(t, "p"), nullptr, {});
      }
  for (const char* l1 : levels) {
    all.push_back(l1);
    store.set(msg(l1, "p"), nullptr, {});
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  EXPECT_EQ(store.size(), all.size());
  for (const char* filter : {"#", "+", "+/+", "a/#", "a/+", "a", "ab/#", "a/b/#", "+/b/#", "$SYS/#",
                             "+/+/c", "/#", "a/b/c/d", "x/+/c/#", "ab", "a/ab"}) {
    V want;
    for (const auto& t : all) {
      if (topic_matches_filter(filter, t)) want.push_back(t + "=p");
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(topics(store.matching(filter)), want) << filter;
  }
}

}  // namespace
}  // namespace backbone::kernel::retain
