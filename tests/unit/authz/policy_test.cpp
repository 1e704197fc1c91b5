// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/policy.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

namespace backbone::kernel::authz {
namespace {

using nlohmann::json;

std::shared_ptr<const Policy> policy_from(const char* text) {
  std::vector<sdk::StatementGroup> groups;
  std::string error;
  EXPECT_TRUE(sdk::parse_statement_groups(json::parse(text), "statements", groups, error)) << error;
  std::vector<Statement> statements;
  for (const auto& g : groups)
    statements.push_back(Statement{g.effect == BB_EFFECT_ALLOW, g.actions, g.resources});
  auto p = Policy::compile(statements, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
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
