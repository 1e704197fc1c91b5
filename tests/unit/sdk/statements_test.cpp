// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>
#include <backbone/json.hpp>
#include <backbone/statements.hpp>

#include <string>
#include <vector>

namespace backbone::sdk {
namespace {

using nlohmann::json;

std::string error_of(const std::string& text, std::string_view where = "statements") {
  std::vector<Statement> out{Statement{BB_EFFECT_ALLOW, "keep", "keep"}};
  std::string error;
  EXPECT_FALSE(parse_statements(json::parse(text), where, out, error)) << text;
  // Fail closed: the caller's previous statements stay as they were.
  EXPECT_EQ(out, (std::vector<Statement>{{BB_EFFECT_ALLOW, "keep", "keep"}})) << text;
  return error;
}

TEST(SdkStatements, FlattensToTheCrossProductInOrder) {
  std::vector<Statement> out;
  std::string error;
  ASSERT_TRUE(parse_statements(json::parse(R"([
      {"effect": "allow", "actions": ["mqtt:publish", "mqtt:read"], "resources": ["a/#", "b"]},
      {"effect": "deny", "actions": "mqtt:*", "resources": "a/secret"},
      {"resources": ["x"], "actions": ["*"], "effect": "disallow"}])"),
                               "statements", out, error))
      << error;
  const std::vector<Statement> want{
      {BB_EFFECT_ALLOW, "mqtt:publish", "a/#"}, {BB_EFFECT_ALLOW, "mqtt:publish", "b"},
      {BB_EFFECT_ALLOW, "mqtt:read", "a/#"},    {BB_EFFECT_ALLOW, "mqtt:read", "b"},
      {BB_EFFECT_DENY, "mqtt:*", "a/secret"},   {BB_EFFECT_DENY, "*", "x"}};
  EXPECT_EQ(out, want);
  const std::vector<bb_statement> abi = abi_statements(out);
  ASSERT_EQ(abi.size(), want.size());
  EXPECT_EQ(abi[5].effect, BB_EFFECT_DENY);
  EXPECT_EQ(view(abi[1].resource), "b");
  EXPECT_EQ(statement_list(out).size(), want.size());
}

TEST(SdkStatements, GroupsKeepTheListsAndRoundTrip) {
  std::vector<StatementGroup> groups;
  std::string error;
  ASSERT_TRUE(parse_statement_groups(json::parse(R"([
      {"effect": "allow", "actions": "mqtt:publish", "resources": ["a/#"]},
      {"effect": "disallow", "actions": ["*"], "resources": ["a/b", "c"]}])"),
                                     "statements", groups, error));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[1].effect, BB_EFFECT_DENY);
  EXPECT_EQ(groups[1].resources, (std::vector<std::string>{"a/b", "c"}));
  const json j = to_json(groups);
  EXPECT_EQ(j, json::parse(R"([
      {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["a/#"]},
      {"effect": "deny", "actions": ["*"], "resources": ["a/b", "c"]}])"));
  std::vector<StatementGroup> back;
  ASSERT_TRUE(parse_statement_groups(j, "statements", back, error)) << error;
  EXPECT_EQ(back, groups);
}

TEST(SdkStatements, EmptyArrayIsNoStatements) {
  std::vector<Statement> out(1);
  std::string error;
  ASSERT_TRUE(parse_statements(json::array(), "statements", out, error));
  EXPECT_TRUE(out.empty());
}

TEST(SdkStatements, RefusesEachMalformedShapeNamingThePath) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"effect": "allow"})", "x.statements: expected an array, got object"},
      {R"("allow")", "x.statements: expected an array, got string"},
      {R"(null)", "x.statements: expected an array, got null"},
      {R"([5])", "x.statements[0]: expected an object, got number"},
      {R"([[]])", "x.statements[0]: expected an object, got array"},
      {R"([{"effect": "allow", "actions": "*", "resources": "*", "extra": 1}])",
       "x.statements[0].extra: unknown field"},
      {R"([{"effect": "allow", "actions": "*", "resources": "*", "Sid\n\u0001": 1}])",
       "x.statements[0].Sid??: unknown field"},
      {R"([{"actions": "*", "resources": "*"}])", "x.statements[0].effect: missing"},
      {R"([{"effect": "allow", "resources": "*"}])", "x.statements[0].actions: missing"},
      {R"([{"effect": "allow", "actions": "*"}])", "x.statements[0].resources: missing"},
      {R"([{"effect": "permit", "actions": "*", "resources": "*"}])",
       "x.statements[0].effect: expected allow, deny or disallow"},
      {R"([{"effect": "Allow", "actions": "*", "resources": "*"}])",
       "x.statements[0].effect: expected allow, deny or disallow"},
      {R"([{"effect": true, "actions": "*", "resources": "*"}])",
       "x.statements[0].effect: expected allow, deny or disallow"},
      {R"([{"effect": ["allow"], "actions": "*", "resources": "*"}])",
       "x.statements[0].effect: expected allow, deny or disallow"},
      {R"([{"effect": "allow", "actions": "*", "resources": "*"},
           {"effect": "allow", "actions": 5, "resources": "*"}])",
       "x.statements[1].actions: expected a string or an array of strings, got number"},
      {R"([{"effect": "allow", "actions": ["a", 1], "resources": "*"}])",
       "x.statements[0].actions[1]: expected a non-empty string"},
      {R"([{"effect": "allow", "actions": [null], "resources": "*"}])",
       "x.statements[0].actions[0]: expected a non-empty string"},
      {R"([{"effect": "allow", "actions": [["a"]], "resources": "*"}])",
       "x.statements[0].actions[0]: expected a non-empty string"},
      {R"([{"effect": "allow", "actions": {"a": 1}, "resources": "*"}])",
       "x.statements[0].actions: expected a string or an array of strings, got object"},
      {R"([{"effect": "allow", "actions": [], "resources": "*"}])",
       "x.statements[0].actions: must not be empty"},
      {R"([{"effect": "allow", "actions": "", "resources": "*"}])",
       "x.statements[0].actions: expected a non-empty string"},
      {R"([{"effect": "allow", "actions": ["x", ""], "resources": "*"}])",
       "x.statements[0].actions[1]: expected a non-empty string"},
      {R"([{"effect": "allow", "actions": "*", "resources": null}])",
       "x.statements[0].resources: expected a string or an array of strings, got null"},
      {R"([{"effect": "allow", "actions": "*", "resources": []}])",
       "x.statements[0].resources: must not be empty"},
      {R"([{"effect": "allow", "actions": "*", "resources": ""}])",
       "x.statements[0].resources: expected a non-empty string"},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(error_of(text, "x.statements"), want) << text;
}

TEST(SdkStatements, RefusesPatternsOverTheLimit) {
  const std::string at_limit(kMaxPatternSize, 'a');
  std::vector<Statement> out;
  std::string error;
  ASSERT_TRUE(parse_statements(
      json::array({{{"effect", "allow"}, {"actions", at_limit}, {"resources", at_limit}}}), "s",
      out, error));
  const json over =
      json::array({{{"effect", "allow"}, {"actions", "*"}, {"resources", {"a", at_limit + "b"}}}});
  EXPECT_EQ(error_of(over.dump(), "s"), "s[0].resources[1]: longer than 1024 bytes");
}

TEST(SdkStatements, RefusesCrossProductsOverTheLimit) {
  // 64 x 64 = 4096 pairs: exactly the limit.
  json actions = json::array();
  json resources = json::array();
  for (int i = 0; i < 64; ++i) {
    actions.push_back("a" + std::to_string(i));
    resources.push_back("r" + std::to_string(i));
  }
  json ok = json::array({{{"effect", "allow"}, {"actions", actions}, {"resources", resources}}});
  std::vector<Statement> out;
  std::string error;
  ASSERT_TRUE(parse_statements(ok, "statements", out, error)) << error;
  EXPECT_EQ(out.size(), kMaxStatements);
  // One more pair in a second statement.
  ok.push_back({{"effect", "deny"}, {"actions", "x"}, {"resources", "y"}});
  EXPECT_EQ(error_of(ok.dump()), "statements: more than 4096 action/resource pairs");
  // Huge arrays whose product would be enormous fail before any is built.
  json big = json::array();
  for (int i = 0; i < 100000; ++i) big.push_back("p" + std::to_string(i));
  EXPECT_EQ(
      error_of(json::array({{{"effect", "allow"}, {"actions", big}, {"resources", big}}}).dump()),
      "statements: more than 4096 action/resource pairs");
  // Many small statements add up the same way.
  json many = json::array();
  for (size_t i = 0; i <= kMaxStatements; ++i)
    many.push_back({{"effect", "allow"}, {"actions", "a"}, {"resources", "r"}});
  EXPECT_EQ(error_of(many.dump()), "statements: more than 4096 action/resource pairs");
}

TEST(SdkStatements, DeepNestingIsRefusedBeforeTheParser) {
  // The statements come through parse_json, whose depth limit stops a
  // hostile document before a value that deep exists.
  const std::string deep = "[{\"effect\":\"allow\",\"actions\":" + std::string(100000, '[') +
                           std::string(100000, ']') + ",\"resources\":\"#\"}]";
  JsonError json_error;
  EXPECT_TRUE(parse_json(deep, &json_error).is_discarded());
  EXPECT_EQ(json_error.message, "nested deeper than 64 levels");
  // Nesting within the limit reaches the parser and is refused by type.
  const std::string nested = "[{\"effect\":\"allow\",\"actions\":" + std::string(60, '[') +
                             std::string(60, ']') + ",\"resources\":\"#\"}]";
  EXPECT_EQ(error_of(parse_json(nested).dump()),
            "statements[0].actions[0]: expected a non-empty string");
}

TEST(SdkStatements, EffectsAndPatternsForLineFormats) {
  EXPECT_EQ(parse_effect("allow"), BB_EFFECT_ALLOW);
  EXPECT_EQ(parse_effect("deny"), BB_EFFECT_DENY);
  EXPECT_EQ(parse_effect("disallow"), BB_EFFECT_DENY);
  EXPECT_EQ(parse_effect("ALLOW"), 0);
  EXPECT_EQ(parse_effect(""), 0);
  EXPECT_EQ(pattern_problem("mqtt:*"), "");
  EXPECT_EQ(pattern_problem(""), "expected a non-empty string");
  EXPECT_EQ(pattern_problem(std::string(kMaxPatternSize + 1, 'x')), "longer than 1024 bytes");
}

}  // namespace
}  // namespace backbone::sdk
