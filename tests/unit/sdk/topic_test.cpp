// SPDX-License-Identifier: GPL-3.0-or-later
// sdk::topic_matches: MQTT 5 §4.7 filter matching for modules.
#include <backbone/topic.hpp>

#include <gtest/gtest.h>

namespace backbone::sdk {
namespace {

TEST(TopicMatches, LevelsAndWildcards) {
  EXPECT_TRUE(topic_matches("a/b", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "a/c"));
  EXPECT_FALSE(topic_matches("a/b", "a/b/c"));
  EXPECT_FALSE(topic_matches("a/b/c", "a/b"));
  EXPECT_TRUE(topic_matches("a/+", "a/b"));
  EXPECT_TRUE(topic_matches("a/+", "a/"));
  EXPECT_FALSE(topic_matches("a/+", "a/b/c"));
  EXPECT_FALSE(topic_matches("a/+", "a"));
  EXPECT_TRUE(topic_matches("+/+", "/x"));
  EXPECT_TRUE(topic_matches("a/#", "a"));
  EXPECT_TRUE(topic_matches("a/#", "a/b/c"));
  EXPECT_FALSE(topic_matches("a/#", "ab"));
  EXPECT_TRUE(topic_matches("#", "a/b"));
  EXPECT_TRUE(topic_matches("+/b/#", "x/b"));
  EXPECT_FALSE(topic_matches("+/b/#", "x/c/b"));
  EXPECT_TRUE(topic_matches("", ""));
  EXPECT_FALSE(topic_matches("a", ""));
}

TEST(TopicMatches, DollarTopicsNeedAnExplicitFirstLevel) {
  EXPECT_FALSE(topic_matches("#", "$SYS/x"));
  EXPECT_FALSE(topic_matches("+/x", "$SYS/x"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS/x"));
}

}  // namespace
}  // namespace backbone::sdk
