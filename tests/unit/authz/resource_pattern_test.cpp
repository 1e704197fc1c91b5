// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/resource_pattern.hpp"

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace backbone::kernel::authz {
namespace {

struct MatchCase {
  const char* pattern;
  const char* topic;
  bool expected;
};

std::ostream& operator<<(std::ostream& os, const MatchCase& c) {
  return os << "pattern '" << c.pattern << "' topic '" << c.topic << "' -> " << c.expected;
}

// clang-format off
const MatchCase kMatchCases[] = {
    // "*" and "**" match everything, '$' topics included; "#" (a wildcard
    // first level) does not match '$' topics (SPEC §6).
    {"*", "a", true},
    {"*", "a/b/c", true},
    {"*", "$SYS/broker/load", true},
    {"*", "", true},
    {"**", "a/b", true},
    {"**", "$SYS/x", true},
    {"**", "/", true},
    {"#", "a/b", true},
    {"#", "$SYS/x", false},
    {"#", "/", true},
    {"mqtt:*", "$x/y", true},
    {"mqtt:**", "a", true},
    {"mqtt:#", "$share/g/t", false},

    // Literals.
    {"a", "a", true},
    {"a", "b", false},
    {"a", "a/b", false},
    {"a", "", false},
    {"a/b", "a/b", true},
    {"a/b", "a/b/", false},
    {"a/b", "a", false},
    {"a/b", "a/c", false},
    {"a/b", "ab", false},
    {"A", "a", false},
    {"a b", "a b", true},
    {"\xc3\xbc/x", "\xc3\xbc/x", true},
    {"$SYS/x", "$SYS/x", true},
    {"$SYS/x", "$SYS/y", false},
    {"sensors/1/data", "sensors/1/data", true},
    {"sensors/1/data", "sensors/2/data", false},

    // Empty levels.
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a//b", "a/x/b", false},
    {"/a", "/a", true},
    {"/a", "a", false},
    {"a/", "a/", true},
    {"a/", "a", false},
    {"/", "/", true},
    {"/", "", false},
    {"+/+", "/", true},
    {"a/+/b", "a//b", true},
    {"a/**/b", "a//b", true},
    {"a/#", "a//", true},
    {"/#", "/", true},
    {"/#", "/x/y", true},
    {"/#", "x", false},
    {"+", "/", false},
    {"**", "//", true},
    {"a/*", "a/", true},
    {"a/+", "a/", true},

    // '+' and a lone '*' level: exactly one level.
    {"+", "a", true},
    {"+", "a/b", false},
    {"+", "$SYS", false},
    {"+", "", true},
    {"a/+", "a/b", true},
    {"a/+", "a", false},
    {"a/+", "a/b/c", false},
    {"a/*", "a/b", true},
    {"a/*", "a/b/c", false},
    {"a/*", "a", false},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a/b/d", false},
    {"a/+/c", "a/b/x/c", false},
    {"a/*/c", "a/b/c", true},
    {"a/*/c", "a/c", false},
    {"+/+", "a/b", true},
    {"+/+", "a", false},
    {"+/+", "a/b/c", false},
    {"+/b", "$SYS/b", false},
    {"*/b", "$SYS/b", false},
    {"*/b", "x/b", true},
    {"sensors/*", "sensors/temp", true},
    {"sensors/*", "sensors/temp/x", false},
    {"sensors/*", "sensors", false},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b", false},
    {"a/+", "a/$x", true},

    // '#' (last) and '**' (anywhere): zero or more levels.
    {"a/#", "a", true},
    {"a/#", "a/b", true},
    {"a/#", "a/b/c", true},
    {"a/#", "ab", false},
    {"a/#", "b/a", false},
    {"a/#", "a/", true},
    {"a/#", "a/$x", true},
    {"a/b/#", "a", false},
    {"a/b/#", "a/b", true},
    {"a/b/#", "a/bc", false},
    {"a/**", "a", true},
    {"a/**", "a/b/c", true},
    {"a/**", "ab/c", false},
    {"**/c", "c", true},
    {"**/c", "a/b/c", true},
    {"**/c", "a/b/c/d", false},
    {"**/c", "$SYS/c", false},
    {"**/c", "cc", false},
    {"a/**/c", "a/c", true},
    {"a/**/c", "a/b/c", true},
    {"a/**/c", "a/b/b/c", true},
    {"a/**/c", "a/b/c/d", false},
    {"a/**/c", "a/c/c", true},
    {"a/**/c", "b/a/c", false},
    {"a/**/c/**/e", "a/x/c/y/e", true},
    {"a/**/c/**/e", "a/c/e", true},
    {"a/**/c/**/e", "a/e", false},
    {"a/**/c/**/e", "a/c/c/e/e", true},
    {"a/**/c/**/e", "a/e/c", false},
    {"a/**/b/c", "a/b/b/c", true},
    {"a/**/b/c", "a/b/x/b/c", true},
    {"a/**/b/c", "a/b/c/b", false},
    {"a/**/b/c", "a/b/c/b/c", true},
    {"**/**", "a", true},
    {"**/**", "a/b/c", true},
    {"**/**", "$a", false},
    {"**/a/**", "x/a/y", true},
    {"**/a/**", "a", true},
    {"**/a/**", "b", false},
    {"**/a/**", "b/c/d", false},
    {"**/+", "a", true},
    {"**/+", "a/b/c", true},
    {"+/**", "a", true},
    {"+/**", "a/b/c", true},
    {"+/**", "$a/b", false},
    {"a/+/**", "a", false},
    {"a/+/**", "a/b", true},
    {"a/+/#", "a/b/c/d", true},
    {"a/+/#", "a", false},
    {"sensors/**/data", "sensors/data", true},
    {"sensors/**/data", "sensors/x/y/data", true},
    {"sensors/**/data", "sensors/x/y/data2", false},
    {"sensors/**/data", "sensors/x/data/more", false},
    {"sensors/**/data", "other/x/data", false},
    {"**/x/**/y/**", "x/y", true},
    {"**/x/**/y/**", "1/x/2/3/y/4", true},
    {"**/x/**/y/**", "1/y/2/x", false},

    // '*' inside a level globs within that level.
    {"temp-*", "temp-1", true},
    {"temp-*", "temp-", true},
    {"temp-*", "temp", false},
    {"temp-*", "temp-1/x", false},
    {"temp-*", "xtemp-1", false},
    {"a/temp-*", "a/temp-x", true},
    {"a/temp-*", "a/temp-x/y", false},
    {"temp-*/x", "temp-9/x", true},
    {"temp-*/x", "temp-9/y", false},
    {"*-x", "a-x", true},
    {"*-x", "-x", true},
    {"*-x", "a-y", false},
    {"*-x", "$a-x", false},
    {"$*", "$SYS", true},
    {"$*", "SYS", false},
    {"$SYS/*", "$SYS/x", true},
    {"a*b*c", "abc", true},
    {"a*b*c", "aXbYc", true},
    {"a*b*c", "aXbY", false},
    {"a*b*c", "acb", false},
    {"a*b*c", "abcbc", true},
    {"a*b*c", "a/b/c", false},
    {"*a*", "bab", true},
    {"*a*", "a", true},
    {"*a*", "bbb", false},
    {"x/*y", "x/y", true},
    {"x/*y", "x/ay", true},
    {"x/*y", "x/ya", false},
    {"***", "abc", true},
    {"***", "a/b", false},
    {"a***b", "ab", true},
    {"a***b", "aXXb", true},
    {"a/b*", "a/b/c", false},
    {"a/b*", "a/bcd", true},
    {"a*", "a*", true},
    {"a/**x", "a/yx", true},
    {"a/**x", "a/y/x", false},

    // The optional "mqtt:" prefix is ignored.
    {"mqtt:a/b", "a/b", true},
    {"mqtt:a/+", "a/b", true},
    {"mqtt:a/#", "a", true},
    {"mqtt:sensors/**/data", "sensors/1/data", true},
    {"mqtt:a", "mqtt:a", false},
    {"mqtt:+", "$x", false},
    {"mqtt:$SYS/#", "$SYS/load", true},

    // '$' topics: only literal '$' patterns and the whole-resource wildcards.
    {"$SYS/#", "$SYS/a", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/#", "SYS/a", false},
    {"+/x", "$x/x", false},
    {"**/x", "$x/x", false},
    {"+/#", "$x/y", false},
    {"$share/+", "$share/g", true},
    {"**", "$", true},
    {"+", "$", false},
    {"+", "x$", true},
};
// clang-format on

class MatchTable : public ::testing::TestWithParam<MatchCase> {};

TEST_P(MatchTable, Matches) {
  const MatchCase& c = GetParam();
  std::string error;
  auto p = ResourcePattern::parse(c.pattern, &error);
  ASSERT_TRUE(p.has_value()) << error;
  EXPECT_EQ(p->matches(c.topic), c.expected);
}

INSTANTIATE_TEST_SUITE_P(ResourcePattern, MatchTable, ::testing::ValuesIn(kMatchCases));

TEST(ResourcePatternTable, HasAtLeast150Cases) {
  EXPECT_GE(std::size(kMatchCases), 150u);
}

struct FilterCase {
  const char* pattern;
  const char* filter;
  bool expected;
};

std::ostream& operator<<(std::ostream& os, const FilterCase& c) {
  return os << "pattern '" << c.pattern << "' filter '" << c.filter << "' -> " << c.expected;
}

// clang-format off
const FilterCase kCoversCases[] = {
    {"a/*", "a/+", true},
    {"a/+", "a/+", true},
    {"a/*", "a/#", false},  // "a/#" also matches "a" and "a/b/c"
    {"a/**", "a/#", true},
    {"a/#", "a/#", true},
    {"a/#", "a/+", true},
    {"a/#", "a", true},
    {"a/#", "a/b/+/#", true},
    {"**", "#", true},
    {"#", "#", true},
    {"*", "#", true},
    {"+", "#", false},
    {"**/**", "#", true},
    {"+/#", "#", true},
    {"**/+", "+/#", true},
    {"a/b", "a/b", true},
    {"a/b", "a/+", false},
    {"a/b/#", "a/b", true},
    {"a/+", "a/#", false},
    {"a/+/#", "a/#", false},  // misses "a"
    {"a/+/#", "a/+/#", true},
    {"a/**", "a/b/#", true},
    {"**/c", "+/c", true},
    {"**/c", "a/+/c", true},
    {"**/c", "a/#", false},
    {"**/c", "c", true},
    {"temp-*", "+", false},
    {"temp-*", "temp-1", true},
    {"temp-*", "temp-*", true},
    {"sensors/**/data", "sensors/+/data", true},
    {"sensors/**/data", "sensors/+/+/data", true},
    {"sensors/**/data", "sensors/#", false},
    {"**/data", "#", false},
    {"#", "$SYS/#", false},
    {"**", "$SYS/x", true},
    {"+/#", "$SYS/#", false},
    {"**/x", "$SYS/x", false},
    {"$SYS/#", "$SYS/#", true},
    {"$SYS/#", "#", false},
    {"$SYS/+", "$SYS/+", true},
    {"$SYS/+", "$SYS/#", false},
    {"a/**/b/**", "a/+/b/#", true},
    {"a/**/b", "a/#", false},
    {"a/**/b", "a/+/+/b", true},
    {"mqtt:a/#", "a/+", true},
    {"+/+", "+/+", true},
    {"+/+", "+/#", false},
    {"a/*/c", "a/+/c", true},
    {"a/*/c", "a/+/+", false},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/**", "a", true},
    {"a/*", "a", false},
    {"+", "a", true},
    {"+", "$a", false},
    {"$a", "$a", true},
    {"**/b/**", "+/b/#", true},
    {"**/b/**", "+/+/#", false},
    {"+/+/#", "+/#", false},
    {"**/**/x", "#", false},
};

const FilterCase kOverlapsCases[] = {
    {"a/b", "a/+", true},
    {"a/b", "a/#", true},
    {"a/b", "#", true},
    {"a/b", "+/+", true},
    {"a/b", "+", false},
    {"a/b", "a/c", false},
    {"a/b/c", "a/b", false},
    {"a", "a/#", true},
    {"a/+/c", "a/b/#", true},
    {"a/+/c", "a/b/d", false},
    {"temp-*", "+", true},
    {"temp-*", "temp2", false},
    {"temp-*", "temp-2", true},
    {"$SYS/#", "#", false},
    {"$SYS/#", "+/x", false},
    {"$SYS/#", "$SYS/+", true},
    {"$SYS/#", "$SYS", true},
    {"**", "$SYS/x", true},
    {"**/x", "$SYS/x", false},
    {"+/x", "$SYS/#", false},
    {"$*", "#", false},
    {"$*", "+/#", false},
    {"$*", "$x", true},
    {"a/$x", "a/+", true},
    {"a/**/z", "a/+", true},
    {"a/**/z", "b/#", false},
    {"a/**/z", "a/#", true},
    {"a/**/z", "+/+/+/z", true},
    {"a/**/z", "+/+/+/y", false},
    {"x/y/z", "#", true},
    {"x/y/z", "+/#", true},
    {"x/y/z", "+/+", false},
    {"a/b/c/d", "a/#", true},
    {"**/d", "a/b/c/#", true},
    {"a//b", "a/+/b", true},
    {"a//b", "a/x/b", false},
    {"a/+", "a", false},
    {"a/#", "a", true},
    {"a/#", "b", false},
    {"*x", "+", true},
    {"*x", "y", false},
    {"mqtt:secret/#", "#", true},
    {"secret/#", "public/#", false},
    {"secret", "secret/#", true},
    {"+/secret", "+/+", true},
    {"+/secret", "x", false},
    {"a/+/+/d", "a/#", true},
    {"a/+/+/d", "a/b/#", true},
    {"a/+/+/d", "a/b/c/d/#", true},
    {"a/+/+/d", "a/b/c/e/#", false},
};
// clang-format on

class CoversTable : public ::testing::TestWithParam<FilterCase> {};
class OverlapsTable : public ::testing::TestWithParam<FilterCase> {};

TEST_P(CoversTable, CoversFilter) {
  const FilterCase& c = GetParam();
  auto p = ResourcePattern::parse(c.pattern, nullptr);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->covers_filter(c.filter), c.expected);
}

TEST_P(OverlapsTable, OverlapsFilter) {
  const FilterCase& c = GetParam();
  auto p = ResourcePattern::parse(c.pattern, nullptr);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->overlaps_filter(c.filter), c.expected);
}

INSTANTIATE_TEST_SUITE_P(ResourcePattern, CoversTable, ::testing::ValuesIn(kCoversCases));
INSTANTIATE_TEST_SUITE_P(ResourcePattern, OverlapsTable, ::testing::ValuesIn(kOverlapsCases));

TEST(ResourcePatternTable, FilterTablesHaveAtLeast40CasesEach) {
  EXPECT_GE(std::size(kCoversCases), 40u);
  EXPECT_GE(std::size(kOverlapsCases), 40u);
}

// --- Cross-check covers/overlaps against brute-force enumeration. ---------

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t end = s.find('/', pos);
    if (end == std::string::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
}

// Reference MQTT filter matching, straight from the MQTT 5 spec 4.7.
bool mqtt_filter_matches(const std::string& filter, const std::string& topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  auto f = split(filter);
  auto t = split(topic);
  size_t i = 0;
  for (; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return i == t.size();
}

// Every topic of 1 to `depth` levels over a small alphabet. "z" is a level no
// pattern or filter names: it stands for every other string.
std::vector<std::string> every_topic(int depth) {
  const std::vector<std::string> alphabet = {"a", "b", "z", "", "$s", "ab"};
  std::vector<std::string> topics = alphabet;
  for (int d = 2; d <= depth; ++d) {
    std::vector<std::string> next;
    for (const auto& t : topics) {
      if (std::count(t.begin(), t.end(), '/') != d - 2) continue;
      for (const auto& l : alphabet) next.push_back(t + "/" + l);
    }
    topics.insert(topics.end(), next.begin(), next.end());
  }
  return topics;
}

TEST(ResourcePatternCrossCheck, CoversAndOverlapsAgreeWithEnumeration) {
  // "z" is a level no pattern or filter names: it stands for every other
  // string, so depth-bounded enumeration decides covers/overlaps exactly for
  // these small patterns.
  const std::vector<std::string> topics = every_topic(5);
  ASSERT_EQ(topics.size(), 6u + 36u + 216u + 1296u + 7776u);

  const char* patterns[] = {
      "a",      "a/b",  "+",   "*",      "**",   "#",  "a/+",       "a/#",    "a/**",   "**/b",
      "a/**/b", "+/b",  "+/+", "**/**",  "a*",   "*b", "a/*b",      "$s/#",   "$s",     "**/a/**",
      "+/#",    "a//b", "/#",  "a/+/**", "**/+", "$*", "a/**/b/**", "+/**/b", "**/b/+", "b/**/a/+"};
  const char* filters[] = {"a",   "a/b",   "+",     "#",     "a/+",     "a/#",  "+/b",
                           "+/+", "+/#",   "a/+/b", "$s/#",  "$s",      "$s/+", "a//b",
                           "/#",  "+/+/#", "a/b/#", "+/a/#", "b/+/+/b", "ab/#"};
  std::vector<std::vector<const std::string*>> filter_topics;
  for (const char* filter : filters) {
    auto& matched = filter_topics.emplace_back();
    for (const auto& t : topics) {
      if (mqtt_filter_matches(filter, t)) matched.push_back(&t);
    }
    ASSERT_FALSE(matched.empty()) << filter;
  }
  size_t checked = 0;
  for (const char* pattern_text : patterns) {
    auto p = ResourcePattern::parse(pattern_text, nullptr);
    ASSERT_TRUE(p.has_value()) << pattern_text;
    for (size_t f = 0; f < std::size(filters); ++f) {
      const char* filter = filters[f];
      bool all = true;
      bool some = false;
      for (const std::string* t : filter_topics[f]) {
        const bool m = p->matches(*t);
        all = all && m;
        some = some || m;
      }
      EXPECT_EQ(p->covers_filter(filter), all) << pattern_text << " covers " << filter;
      EXPECT_EQ(p->overlaps_filter(filter), some) << pattern_text << " overlaps " << filter;
      ++checked;
    }
  }
  EXPECT_EQ(checked, std::size(patterns) * std::size(filters));
}

// Pattern-against-pattern coverage (delegation) is sound against the same
// enumeration: a pattern said to cover another matches every topic the other
// matches, and patterns said to be disjoint share no topic.
TEST(ResourcePatternCrossCheck, PatternCoverageIsSound) {
  const std::vector<std::string> topics = every_topic(4);
  const char* patterns[] = {"a",   "a/b",    "+",    "*",      "**",        "#",      "a/+",
                            "a/#", "a/**",   "**/b", "a/**/b", "+/b",       "+/+",    "**/**",
                            "a*",  "*b",     "a/*b", "$s/#",   "$s",        "+/#",    "a//b",
                            "/#",  "a/+/**", "**/+", "$*",     "a/**/b/**", "+/**/b", "b/**/a/+"};
  size_t covered = 0, disjoint = 0;
  for (const char* pt : patterns) {
    auto p = ResourcePattern::parse(pt, nullptr);
    ASSERT_TRUE(p);
    for (const char* qt : patterns) {
      auto q = ResourcePattern::parse(qt, nullptr);
      ASSERT_TRUE(q);
      const bool covers = p->covers_pattern(*q);
      const bool may_overlap = p->may_overlap_pattern(*q);
      EXPECT_EQ(may_overlap, q->may_overlap_pattern(*p)) << pt << " / " << qt;
      for (const auto& t : topics) {
        if (covers && q->matches(t)) {
          EXPECT_TRUE(p->matches(t)) << pt << " covers " << qt << " but not " << t;
        }
        if (!may_overlap) {
          EXPECT_FALSE(p->matches(t) && q->matches(t)) << pt << " / " << qt << " " << t;
        }
      }
      covered += covers;
      disjoint += !may_overlap;
    }
    EXPECT_TRUE(p->covers_pattern(*p)) << pt;  // a caller may hand out what it holds
  }
  // Not vacuous: many pairs are decided either way.
  EXPECT_GT(covered, 100u);
  EXPECT_GT(disjoint, 100u);
}

TEST(ResourcePatternCover, DelegationCases) {
  struct Case {
    const char* holder;
    const char* granted;
    bool covers;
  };
  const Case cases[] = {
      {"**", "**", true},
      {"*", "#", true},
      {"#", "**", false},  // "**" reaches '$' topics, "#" does not
      {"#", "$SYS/x", false},
      {"clients/team-*", "clients/team-x", true},
      {"clients/team-*", "clients/team-*", true},
      {"clients/team-*", "clients/*", false},
      {"clients/team-*", "clients/team-x*", true},
      {"team/#", "team/a/+/b", true},
      {"team/#", "team/**", true},
      {"team/+", "team/**", false},
      {"team/+", "team/*", true},
      {"team/**/data", "team/x/**/data", true},
      {"team/**/data", "team/**", false},
      {"sensors/+/temp", "sensors/**/temp", false},
      {"a/b", "a/+", false},
  };
  for (const auto& c : cases) {
    auto p = ResourcePattern::parse(c.holder, nullptr);
    auto q = ResourcePattern::parse(c.granted, nullptr);
    ASSERT_TRUE(p && q);
    EXPECT_EQ(p->covers_pattern(*q), c.covers) << c.holder << " covers " << c.granted;
  }
}

// --- Parse errors. ----------------------------------------------------------

struct ParseErrorCase {
  std::string pattern;
  const char* error;
};

TEST(ResourcePatternParse, RejectsInvalidPatternsWithMessage) {
  const ParseErrorCase cases[] = {
      {"", "empty pattern"},
      {"mqtt:", "empty pattern"},
      {"#/a", "'#' must be the last level"},
      {"a/#/b", "'#' must be the last level"},
      {"a+", "'+' must occupy a whole level"},
      {"a/+b/c", "'+' must occupy a whole level"},
      {"a/b#", "'#' must occupy a whole level"},
      {"##", "'#' must occupy a whole level"},
      {std::string("a\0b", 3), "pattern contains a NUL character"},
      {std::string(65536, 'a'), "pattern longer than 65535 bytes"},
  };
  for (const auto& c : cases) {
    std::string error = "unchanged";
    EXPECT_FALSE(ResourcePattern::parse(c.pattern, &error).has_value()) << c.pattern.substr(0, 20);
    EXPECT_EQ(error, c.error) << c.pattern.substr(0, 20);
  }
}

TEST(ResourcePatternParse, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(ResourcePattern::parse("a/#/b", nullptr).has_value());
}

TEST(ResourcePatternParse, TextKeepsThePrefix) {
  auto p = ResourcePattern::parse("mqtt:a/+", nullptr);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->text(), "mqtt:a/+");
  auto q = ResourcePattern::parse(std::string(65535, 'a'), nullptr);
  ASSERT_TRUE(q.has_value());
  EXPECT_TRUE(q->matches(std::string(65535, 'a')));
}

TEST(ResourcePatternMatch, LongTopicsWithManyMultiLevelsStayCorrect) {
  auto p = ResourcePattern::parse("**/a/**/b/**/c", nullptr);
  ASSERT_TRUE(p.has_value());
  std::string topic;
  for (int i = 0; i < 2000; ++i) topic += "a/b/";
  EXPECT_FALSE(p->matches(topic + "x"));
  EXPECT_TRUE(p->matches(topic + "c"));
}

}  // namespace
}  // namespace backbone::kernel::authz
