// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>
#include <backbone/json.hpp>

#include <string>

namespace backbone::sdk {
namespace {

std::string nested(int depth, const std::string& inside = "") {
  return std::string(depth, '[') + inside + std::string(depth, ']');
}

TEST(ParseJson, RefusesNestingDeeperThanTheLimit) {
  JsonError error;
  EXPECT_FALSE(parse_json(nested(kMaxJsonDepth, "1"), &error).is_discarded());
  std::string objects;
  for (int i = 0; i < kMaxJsonDepth; ++i)
    objects = "{\"a\":" + (objects.empty() ? "1" : objects) + "}";
  EXPECT_FALSE(parse_json(objects).is_discarded());
  for (int depth : {kMaxJsonDepth + 1, 20000, 1000000}) {
    error = {};
    EXPECT_TRUE(parse_json(nested(depth), &error).is_discarded()) << depth;
    EXPECT_EQ(error.message, "nested deeper than 64 levels");
    EXPECT_EQ(error.byte, 0u);
  }
  error = {};
  EXPECT_TRUE(parse_json("{\"a\":" + objects + "}", &error).is_discarded());
  EXPECT_EQ(error.message, "nested deeper than 64 levels");
  // Named even when the text is not JSON after the limit.
  EXPECT_TRUE(parse_json(nested(100) + "]", &error).is_discarded());
  EXPECT_EQ(error.message, "nested deeper than 64 levels");
  EXPECT_TRUE(parse_json(nested(3), nullptr, false, 2).is_discarded());
}

TEST(ParseJson, SyntaxErrorsHaveTheirPosition) {
  JsonError error;
  EXPECT_TRUE(parse_json("{\n\"a\": ,}", &error).is_discarded());
  EXPECT_EQ(error.message, "not valid JSON");
  EXPECT_EQ(error.byte, 8u);
  EXPECT_TRUE(parse_json("", &error).is_discarded());
  EXPECT_TRUE(parse_json("[1e500]", &error).is_discarded());
  EXPECT_EQ(error.message, "not valid JSON (a number out of range)");
  EXPECT_TRUE(parse_json("\"\xff\"", &error).is_discarded());
}

TEST(ParseJson, CommentsOnlyWhenAsked) {
  const std::string text = "// c\n{\"a\": [1, {\"b\": 2}]} /* x */";
  EXPECT_TRUE(parse_json(text).is_discarded());
  EXPECT_EQ(parse_json(text, nullptr, true), nlohmann::json::parse(R"({"a": [1, {"b": 2}]})"));
}

}  // namespace
}  // namespace backbone::sdk
