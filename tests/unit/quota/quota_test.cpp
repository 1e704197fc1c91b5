// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/quota/quota.hpp"
#include "kernel/quota/login_throttle.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace backbone::kernel::quota {
namespace {

using std::chrono::milliseconds;
using Clock = RateLimiter::Clock;

TEST(Quotas, ResolveTakesGivenFieldsOverDefaults) {
  Quotas defaults;
  defaults.max_subscriptions = 10;
  defaults.publish_rate = 100;
  bb_quotas given{};
  given.struct_size = sizeof(given);
  given.max_connections = 3;                // set
  given.publish_rate = BB_QUOTA_UNLIMITED;  // lifted
  const Quotas q = Quotas::resolve(&given, defaults);
  EXPECT_EQ(q.max_connections, 3u);
  EXPECT_EQ(q.max_subscriptions, 10u);  // 0 = the default
  EXPECT_EQ(q.publish_rate, 0u);
  EXPECT_EQ(Quotas::resolve(nullptr, defaults), defaults);
  // A sender's shorter (older) struct: fields past its size are not read.
  given.struct_size = offsetof(bb_quotas, max_subscriptions);
  given.max_subscriptions = 99;
  EXPECT_EQ(Quotas::resolve(&given, defaults).max_subscriptions, 10u);
}

TEST(RateLimiter, BurstThenTheRate) {
  RateLimiter r;
  const auto t0 = Clock::time_point(std::chrono::seconds(1000));
  // 10 per second with a burst of 5: five go at once, the sixth must wait.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.spend(1, 10, 5, t0), Clock::duration::zero()) << i;
  EXPECT_EQ(r.spend(1, 10, 5, t0), milliseconds(100));
  EXPECT_EQ(r.spend(1, 10, 5, t0), milliseconds(200));
  // After the waits it is back within the burst.
  EXPECT_EQ(r.spend(1, 10, 5, t0 + milliseconds(1000)), Clock::duration::zero());
  // No rate: never waits.
  EXPECT_EQ(r.spend(1000000, 0, 0, t0), Clock::duration::zero());
}

TEST(RateLimiter, BytesCostTheirSize) {
  RateLimiter r;
  const auto t0 = Clock::time_point(std::chrono::seconds(1000));
  EXPECT_EQ(r.spend(1000, 1000, 0, t0), Clock::duration::zero());  // burst = one second
  EXPECT_EQ(r.spend(500, 1000, 0, t0), milliseconds(500));
}

TEST(LoginThrottle, BacksOffAfterFreeFailuresAndForgetsOnSuccess) {
  LoginThrottle t(3, std::chrono::seconds(4));
  const auto t0 = Clock::time_point(std::chrono::seconds(1000));
  for (int i = 0; i < 3; ++i) t.failed("10.0.0.1", t0);
  EXPECT_EQ(t.wait("10.0.0.1", t0), Clock::duration::zero());
  t.failed("10.0.0.1", t0);
  EXPECT_EQ(t.wait("10.0.0.1", t0), milliseconds(500));
  t.failed("10.0.0.1", t0);
  EXPECT_EQ(t.wait("10.0.0.1", t0), milliseconds(1000));
  for (int i = 0; i < 10; ++i) t.failed("10.0.0.1", t0);
  EXPECT_EQ(t.wait("10.0.0.1", t0), std::chrono::seconds(4));  // capped
  EXPECT_EQ(t.wait("10.0.0.2", t0), Clock::duration::zero());  // per address
  EXPECT_EQ(t.wait("10.0.0.1", t0 + std::chrono::seconds(5)), Clock::duration::zero());
  t.succeeded("10.0.0.1");
  t.failed("10.0.0.1", t0);
  EXPECT_EQ(t.wait("10.0.0.1", t0), Clock::duration::zero());
}

TEST(LoginThrottle, AddressOfPeer) {
  EXPECT_EQ(LoginThrottle::address_of("10.1.2.3:5000"), "10.1.2.3");
  EXPECT_EQ(LoginThrottle::address_of("[::1]:5000"), "::1");
  EXPECT_EQ(LoginThrottle::address_of("::1"), "::1");
  EXPECT_EQ(LoginThrottle::address_of("unix"), "unix");
}

}  // namespace
}  // namespace backbone::kernel::quota
