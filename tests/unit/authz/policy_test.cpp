// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/policy.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace backbone::kernel::authz {
namespace {

using nlohmann::json;

std::shared_ptr<const Policy> policy_from(const char* text) {
  std::vector<Statement> statements;
  std::string error;
  EXPECT_TRUE(parse_statements(json::parse(text), statements, error)) << error;
  auto p = Policy::compile(statements, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

// --- parse_statements -------------------------------------------------------

TEST(ParseStatements, AcceptsArraysAndSingleStrings) {
  std::vector<Statement> out;
  std::string error;
  ASSERT_TRUE(parse_statements(json::parse(R"([
      {"effect": "allow", "actions": ["mqtt:publish", "mqtt:read"], "resources": ["a/#", "b"]},
      {"effect": "deny", "actions": "mqtt:*", "resources": "a/secret"},
      {"effect": "disallow", "resources": ["x"], "actions": ["*"]}])"),
                               out, error))
      << error;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].allow);
  EXPECT_EQ(out[0].actions, (std::vector<std::string>{"mqtt:publish", "mqtt:read"}));
  EXPECT_EQ(out[0].resources, (std::vector<std::string>{"a/#", "b"}));
  EXPECT_FALSE(out[1].allow);
  EXPECT_EQ(out[1].actions, (std::vector<std::string>{"mqtt:*"}));
  EXPECT_EQ(out[1].resources, (std::vector<std::string>{"a/secret"}));
  EXPECT_FALSE(out[2].allow);
  EXPECT_EQ(out[2].actions, (std::vector<std::string>{"*"}));
}

TEST(ParseStatements, EmptyArrayIsNoStatements) {
  std::vector<Statement> out(1);
  std::string error;
  ASSERT_TRUE(parse_statements(json::array(), out, error));
  EXPECT_TRUE(out.empty());
}

struct ParseErrorCase {
  const char* json_text;
  const char* error;
};

TEST(ParseStatements, RejectsEachMalformedShapeWithFieldPath) {
  const ParseErrorCase cases[] = {
      {R"({"effect": "allow"})", "statements: expected array"},
      {R"("allow")", "statements: expected array"},
      {R"([5])", "statements[0]: expected object"},
      {R"([{"effect": "allow", "actions": "*", "resources": "*", "extra": 1}])",
       "statements[0].extra: unknown field"},
      {R"([{"actions": "*", "resources": "*"}])", "statements[0].effect: missing"},
      {R"([{"effect": "permit", "actions": "*", "resources": "*"}])",
       R"(statements[0].effect: expected "allow", "deny" or "disallow")"},
      {R"([{"effect": "Allow", "actions": "*", "resources": "*"}])",
       R"(statements[0].effect: expected "allow", "deny" or "disallow")"},
      {R"([{"effect": true, "actions": "*", "resources": "*"}])",
       R"(statements[0].effect: expected "allow", "deny" or "disallow")"},
      {R"([{"effect": "allow", "resources": "*"}])", "statements[0].actions: missing"},
      {R"([{"effect": "allow", "actions": "*"}])", "statements[0].resources: missing"},
      {R"([{"effect": "allow", "actions": "*", "resources": "*"},
           {"effect": "allow", "actions": "*", "resources": "*"},
           {"effect": "allow", "actions": 5, "resources": "*"}])",
       "statements[2].actions: expected array of strings"},
      {R"([{"effect": "allow", "actions": ["a", 1], "resources": "*"}])",
       "statements[0].actions: expected array of strings"},
      {R"([{"effect": "allow", "actions": {"a": 1}, "resources": "*"}])",
       "statements[0].actions: expected array of strings"},
      {R"([{"effect": "allow", "actions": [], "resources": "*"}])",
       "statements[0].actions: expected non-empty array of strings"},
      {R"([{"effect": "allow", "actions": "", "resources": "*"}])",
       "statements[0].actions: expected non-empty string"},
      {R"([{"effect": "allow", "actions": ["x", ""], "resources": "*"}])",
       "statements[0].actions[1]: expected non-empty string"},
      {R"([{"effect": "allow", "actions": "*", "resources": null}])",
       "statements[0].resources: expected array of strings"},
      {R"([{"effect": "allow", "actions": "*", "resources": []}])",
       "statements[0].resources: expected non-empty array of strings"},
      {R"([{"effect": "allow", "actions": "*", "resources": ["a", "#/b"]}])",
       "statements[0].resources[1]: '#' must be the last level"},
      {R"([{"effect": "deny", "actions": "*", "resources": "mqtt:"}])",
       "statements[0].resources[0]: empty pattern"},
  };
  for (const auto& c : cases) {
    std::vector<Statement> out{Statement{true, {"keep"}, {"keep"}}};
    std::string error;
    EXPECT_FALSE(parse_statements(json::parse(c.json_text), out, error)) << c.json_text;
    EXPECT_EQ(error, c.error) << c.json_text;
    // Fail closed: the caller's previous statements stay as they were.
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].actions[0], "keep");
  }
}

TEST(ToJson, RoundTripsAndNormalisesDisallow) {
  std::vector<Statement> in;
  std::string error;
  ASSERT_TRUE(parse_statements(json::parse(R"([
      {"effect": "allow", "actions": "mqtt:publish", "resources": ["a/#"]},
      {"effect": "disallow", "actions": ["*"], "resources": ["a/b", "c"]}])"),
                               in, error));
  const json j = to_json(in);
  EXPECT_EQ(j, json::parse(R"([
      {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["a/#"]},
      {"effect": "deny", "actions": ["*"], "resources": ["a/b", "c"]}])"));
  std::vector<Statement> back;
  ASSERT_TRUE(parse_statements(j, back, error)) << error;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].allow, false);
  EXPECT_EQ(back[1].resources, in[1].resources);
}

// --- Policy ----------------------------------------------------------------

TEST(Policy, DefaultDeny) {
  auto p = policy_from("[]");
  EXPECT_FALSE(p->allows("mqtt:publish", "a"));
  EXPECT_FALSE(p->allows_subscribe("a"));
  EXPECT_FALSE(Policy::deny_all()->allows("mqtt:publish", "a"));
  EXPECT_FALSE(Policy::deny_all()->allows_subscribe("#"));
  EXPECT_TRUE(Policy::deny_all()->statements().empty());
  EXPECT_EQ(Policy::deny_all(), Policy::deny_all());
}

TEST(Policy, AllowNeedsActionAndResource) {
  auto p = policy_from(
      R"([{"effect": "allow", "actions": ["mqtt:publish"], "resources": ["sensors/**/data"]}])");
  EXPECT_TRUE(p->allows("mqtt:publish", "sensors/1/data"));
  EXPECT_FALSE(p->allows("mqtt:publish", "sensors/1/cmd"));
  EXPECT_FALSE(p->allows("mqtt:read", "sensors/1/data"));
  EXPECT_FALSE(p->allows("mqtt:publishx", "sensors/1/data"));
}

TEST(Policy, DenyWinsOverAllowWhateverTheOrder) {
  for (const char* text :
       {R"([{"effect": "allow", "actions": "*", "resources": "*"},
            {"effect": "deny", "actions": "mqtt:publish", "resources": "secret/#"}])",
        R"([{"effect": "deny", "actions": "mqtt:publish", "resources": "secret/#"},
            {"effect": "allow", "actions": "*", "resources": "*"}])"}) {
    auto p = policy_from(text);
    EXPECT_FALSE(p->allows("mqtt:publish", "secret"));
    EXPECT_FALSE(p->allows("mqtt:publish", "secret/x/y"));
    EXPECT_TRUE(p->allows("mqtt:read", "secret/x"));
    EXPECT_TRUE(p->allows("mqtt:publish", "public/x"));
    EXPECT_TRUE(p->allows("mgmt:generate-jwt", "anything"));
  }
}

TEST(Policy, DisallowIsASynonymOfDeny) {
  auto p = policy_from(R"([{"effect": "allow", "actions": "*", "resources": "*"},
                           {"effect": "disallow", "actions": "*", "resources": "a/+"}])");
  EXPECT_FALSE(p->allows("mqtt:publish", "a/b"));
  EXPECT_TRUE(p->allows("mqtt:publish", "a/b/c"));
  ASSERT_EQ(p->statements().size(), 2u);
  EXPECT_FALSE(p->statements()[1].allow);
}

TEST(Policy, ActionGlobs) {
  struct Case {
    const char* glob;
    const char* action;
    bool expected;
  };
  const Case cases[] = {
      {"*", "mqtt:publish", true},
      {"*", "mgmt:generate-jwt", true},
      {"**", "mqtt:read", true},
      {"mqtt:*", "mqtt:subscribe", true},
      {"mqtt:*", "mgmt:clients", false},
      {"mgmt:*", "mgmt:generate-jwt", true},
      {"mgmt:*", "mqtt:publish", false},
      {"*:read", "mqtt:read", true},
      {"*:read", "mqtt:readx", false},
      {"mqtt:publish", "mqtt:publish", true},
      {"mqtt:publish", "mqtt:Publish", false},
      {"mqtt:pub*", "mqtt:publish", true},
      {"mqtt:", "mqtt:publish", false},
  };
  for (const auto& c : cases) {
    auto p = Policy::compile({Statement{true, {c.glob}, {"t"}}}, nullptr);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->allows(c.action, "t"), c.expected) << c.glob << " vs " << c.action;
  }
}

TEST(Policy, SeveralResourcesAndActionsInOneStatement) {
  auto p = policy_from(R"([{"effect": "allow", "actions": ["mqtt:publish", "mqtt:read"],
                            "resources": ["a", "b/+"]}])");
  EXPECT_TRUE(p->allows("mqtt:publish", "a"));
  EXPECT_TRUE(p->allows("mqtt:read", "b/x"));
  EXPECT_FALSE(p->allows("mqtt:subscribe", "a"));
  EXPECT_FALSE(p->allows("mqtt:read", "b"));
}

TEST(Policy, WildcardPatternsReachDollarTopicsOnlyAsWholeResource) {
  auto wild = policy_from(R"([{"effect": "allow", "actions": "mqtt:read", "resources": "+/#"}])");
  EXPECT_TRUE(wild->allows("mqtt:read", "a/b"));
  EXPECT_FALSE(wild->allows("mqtt:read", "$SYS/broker/load"));
  auto all = policy_from(R"([{"effect": "allow", "actions": "mqtt:read", "resources": "*"}])");
  EXPECT_TRUE(all->allows("mqtt:read", "$SYS/broker/load"));
  auto sys = policy_from(R"([{"effect": "allow", "actions": "mqtt:read", "resources": "$SYS/#"}])");
  EXPECT_TRUE(sys->allows("mqtt:read", "$SYS/broker/load"));
  EXPECT_FALSE(sys->allows("mqtt:read", "SYS/broker/load"));
}

TEST(Policy, CompileRejectsInvalidPatternNamingIt) {
  std::string error;
  auto p = Policy::compile({Statement{true, {"*"}, {"ok"}}, Statement{false, {"*"}, {"a", "x#"}}},
                           &error);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(error, "statements[1].resources[1]: '#' must occupy a whole level");
}

TEST(Policy, ReadAllNeedsCoverAndNoOverlappingReadDeny) {
  auto p = policy_from(R"([
      {"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read"], "resources": "bench/**"},
      {"effect": "deny", "actions": "mqtt:read", "resources": "bench/secret/#"},
      {"effect": "deny", "actions": "mqtt:publish", "resources": "bench/in/x"}])");
  EXPECT_TRUE(p->allows_read_all("bench/in/+"));  // a publish deny does not matter
  EXPECT_TRUE(p->allows_read_all("bench/out"));
  EXPECT_FALSE(p->allows_read_all("bench/+/x"));  // '+' can be "secret"
  EXPECT_FALSE(p->allows_read_all("bench/#"));
  EXPECT_FALSE(p->allows_read_all("other/#"));
  EXPECT_TRUE(p->allows_subscribe("bench/#"));  // subscribing is still allowed
  EXPECT_FALSE(Policy::deny_all()->allows_read_all("bench/out"));
}

TEST(Policy, IdsAreNeverShared) {
  auto a = policy_from(R"([{"effect": "allow", "actions": "*", "resources": "**"}])");
  auto b = policy_from(R"([{"effect": "allow", "actions": "*", "resources": "**"}])");
  EXPECT_NE(a->id(), 0u);
  EXPECT_NE(a->id(), b->id());
  EXPECT_NE(a->id(), Policy::deny_all()->id());
}

TEST(Policy, SubscribeNeedsCoverAndNoOverlappingDeny) {
  auto p = policy_from(R"([
      {"effect": "allow", "actions": "mqtt:subscribe", "resources": ["sensors/#", "cmd/+"]},
      {"effect": "deny", "actions": "mqtt:*", "resources": "sensors/secret/**"},
      {"effect": "deny", "actions": "mqtt:publish", "resources": "sensors/pubonly"}])");
  EXPECT_TRUE(p->allows_subscribe("sensors/a/b"));
  EXPECT_FALSE(p->allows_subscribe("sensors/+/temp"));  // "+" can be "secret"
  EXPECT_TRUE(p->allows_subscribe("cmd/x"));
  EXPECT_TRUE(p->allows_subscribe("cmd/+"));
  EXPECT_FALSE(p->allows_subscribe("cmd/#"));           // "cmd" and "cmd/a/b" not covered
  EXPECT_FALSE(p->allows_subscribe("sensors/#"));       // reaches sensors/secret
  EXPECT_FALSE(p->allows_subscribe("sensors/+"));       // sensors/secret
  EXPECT_FALSE(p->allows_subscribe("sensors/secret"));  // '**' matches zero levels
  EXPECT_FALSE(p->allows_subscribe("sensors/+/x"));     // '+' can be "secret"
  EXPECT_TRUE(p->allows_subscribe("sensors/public/+"));
  EXPECT_TRUE(p->allows_subscribe("sensors/pubonly"));  // that deny is for publish only
  EXPECT_FALSE(p->allows_subscribe("#"));
  EXPECT_FALSE(p->allows_subscribe("other"));
}

TEST(Policy, SubscribeWithActionGlobAndMatchAll) {
  auto p = policy_from(R"([{"effect": "allow", "actions": "*", "resources": "*"}])");
  EXPECT_TRUE(p->allows_subscribe("#"));
  EXPECT_TRUE(p->allows_subscribe("$SYS/#"));
  auto reader = policy_from(R"([{"effect": "allow", "actions": ["mqtt:read"], "resources": "#"}])");
  EXPECT_FALSE(reader->allows_subscribe("a"));
  auto wild =
      policy_from(R"([{"effect": "allow", "actions": "mqtt:subscribe", "resources": "+/#"}])");
  EXPECT_TRUE(wild->allows_subscribe("#"));
  EXPECT_FALSE(wild->allows_subscribe("$SYS/#"));
}

// --- delegation: covers_grant ---------------------------------------------

TEST(PolicyGrant, ScopedCallerGrantsOnlyWhatItHolds) {
  auto team = policy_from(R"([
      {"effect": "allow", "actions": ["mgmt:put-client"], "resources": ["clients/team-*"]},
      {"effect": "allow", "actions": ["mqtt:publish", "mqtt:subscribe", "mqtt:read"],
       "resources": ["team/#"]},
      {"effect": "deny", "actions": ["mqtt:publish"], "resources": ["team/locked/#"]}])");
  // The escalation of the issue: "allow * on **" by a scoped caller.
  EXPECT_FALSE(team->covers_grant("*", "**"));
  EXPECT_FALSE(team->covers_grant("mgmt:*", "clients/team-x"));
  EXPECT_FALSE(team->covers_grant("mgmt:list-clients", "clients"));
  EXPECT_TRUE(team->covers_grant("mgmt:put-client", "clients/team-y"));
  EXPECT_TRUE(team->covers_grant("mqtt:subscribe", "team/a/+"));
  EXPECT_TRUE(team->covers_grant("mqtt:read", "team/**"));
  EXPECT_FALSE(team->covers_grant("mqtt:read", "**"));
  EXPECT_FALSE(team->covers_grant("mqtt:read", "#"));
  // The caller's own deny cuts into the grant.
  EXPECT_FALSE(team->covers_grant("mqtt:publish", "team/#"));
  EXPECT_FALSE(team->covers_grant("mqtt:*", "team/a"));
  EXPECT_TRUE(team->covers_grant("mqtt:publish", "team/open/#"));
  EXPECT_FALSE(team->covers_grant("mqtt:publish", "team/+/x"));  // team/locked/x
  EXPECT_FALSE(team->covers_grant("mqtt:publish", "not a/#/pattern"));

  auto admin = policy_from(R"([{"effect": "allow", "actions": ["*"], "resources": ["**"]}])");
  EXPECT_TRUE(admin->covers_grant("*", "**"));
  EXPECT_TRUE(admin->covers_grant("mgmt:*", "$SYS/#"));

  // "#" is not "**": it leaves out '$' topics, so it cannot hand them out.
  auto hash = policy_from(R"([{"effect": "allow", "actions": ["mqtt:*"], "resources": ["#"]}])");
  EXPECT_TRUE(hash->covers_grant("mqtt:publish", "a/b"));
  EXPECT_FALSE(hash->covers_grant("mqtt:publish", "**"));
  EXPECT_FALSE(hash->covers_grant("mqtt:publish", "$SYS/#"));
  EXPECT_FALSE(hash->allows("mqtt:publish", "$SYS/broker/fake"));
  EXPECT_EQ(hash->fixed_decision(0), -1);  // no longer "every topic"
}

}  // namespace
}  // namespace backbone::kernel::authz
