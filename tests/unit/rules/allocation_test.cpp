// SPDX-License-Identifier: GPL-3.0-or-later
// RuleSet::check runs for every published message: once a thread has seen a
// topic, checking a typical payload must not allocate. Global operator new is
// replaced for this test binary to count the allocations of the calling thread.
#include <cstdlib>
#include <map>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "kernel/rules/topic_rules.hpp"
#include "tests/bench/bench_topic_rules.hpp"

namespace {
thread_local size_t allocations = 0;
}  // namespace

// Not under ASan: its runtime has operator new of its own, and code that binds
// to it would pair ASan's new with the free() below.
#if defined(__SANITIZE_ADDRESS__)
#define BACKBONE_COUNTS_ALLOCATIONS 0
#else
#define BACKBONE_COUNTS_ALLOCATIONS 1

// Only the plain forms: libstdc++'s others (arrays, nothrow) call these.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 at -O2 sees library allocations inlined next to this free() and
// calls the pair mismatched; here new is malloc, so free is its match.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  ++allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

namespace backbone::kernel::rules {
namespace {

// The topic rules of `scripts/bench --authz` (tests/bench/authz_config.py).
std::shared_ptr<const RuleSet> bench_rules() {
  const auto topics = bench::bench_topic_rules();
  std::string error;
  auto set = RuleSet::compile(topics, &error);
  EXPECT_NE(set, nullptr) << error;
  return set;
}

TEST(TopicRulesAllocation, CheckingTypicalPayloadsDoesNotAllocate) {
  if (!BACKBONE_COUNTS_ALLOCATIONS) GTEST_SKIP() << "allocations are not counted under ASan";
  auto set = bench_rules();
  ASSERT_NE(set, nullptr);
  const std::string flat = R"({"v":"0123456789abcdef0123456789abcdef0123456789abcdef"        })";
  // Not flat: read by RapidJSON, in the per-thread buffers.
  const std::string nested = R"({"v":"x\u00e9","meta":{"seq":[1,2.5,{"a":null}]}})";
  const std::string topics[] = {"bench/in/1", "bench/out", "bench/pair/2"};
  for (const auto& topic : topics) {  // warms the per-thread caches up
    ASSERT_FALSE(set->check(topic, flat, 0, false).has_value());
    ASSERT_FALSE(set->check(topic, nested, 1, false).has_value());
  }
  ASSERT_FALSE(set->check("unrelated/topic", flat, 2, true).has_value());
  const size_t before = allocations;
  for (int i = 0; i < 1000; ++i) {
    const auto& topic = topics[i % 3];
    if (set->check(topic, flat, 0, false)) ADD_FAILURE() << "refused " << topic;
    if (set->check(topic, nested, 1, false)) ADD_FAILURE() << "refused " << topic;
    if (set->check("unrelated/topic", flat, 2, true)) ADD_FAILURE() << "refused";
  }
  EXPECT_EQ(allocations - before, 0u);
}

TEST(TopicRulesAllocation, CounterSeesAllocations) {
  if (!BACKBONE_COUNTS_ALLOCATIONS) GTEST_SKIP() << "allocations are not counted under ASan";
  const size_t before = allocations;
  auto* p = new std::string(100, 'x');
  delete p;
  EXPECT_GE(allocations - before, 2u);
}

}  // namespace
}  // namespace backbone::kernel::rules
