// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/rules/topic_rules.hpp"

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace backbone::kernel::rules {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::shared_ptr<const RuleSet> compile_ok(const std::map<std::string, json>& topics) {
  std::string error;
  auto set = RuleSet::compile(topics, &error);
  EXPECT_NE(set, nullptr) << error;
  EXPECT_EQ(error, "");
  return set;
}

std::string compile_error(const std::map<std::string, json>& topics) {
  std::string error;
  EXPECT_EQ(RuleSet::compile(topics, &error), nullptr);
  return error;
}

const std::map<std::string, json> kSensorRules = {
    {"sensor-topics", json::parse(R"({"patterns": [{"pattern": "sensors/**/data",
                                                   "maxMessageSize": 16,
                                                   "allowedQoS": [0, 1]}]})")}};

TEST(TopicRules, EmptySetAllowsEverything) {
  auto set = compile_ok({});
  EXPECT_TRUE(set->empty());
  EXPECT_FALSE(set->check("any/topic", std::string(100000, 'x'), 2, true).has_value());
}

TEST(TopicRules, APublishersMemoFollowsItsTopicAndTheRuleSet) {
  auto set = compile_ok(kSensorRules);
  RuleMemo memo;
  EXPECT_FALSE(set->check("sensors/1/data", "small", 0, false, &memo).has_value());
  // Same topic through the memo: still checked.
  EXPECT_TRUE(set->check("sensors/1/data", std::string(17, 'x'), 0, false, &memo).has_value());
  // Another topic: the memo follows it.
  EXPECT_FALSE(set->check("other/topic", std::string(17, 'x'), 0, false, &memo).has_value());
  EXPECT_TRUE(set->check("sensors/2/data", std::string(17, 'x'), 0, false, &memo).has_value());
  // A new rule set: the memo of the old one never applies.
  auto stricter = compile_ok({{"tiny", json::parse(
                                           R"({"patterns": [{"pattern": "sensors/**/data",
                                                              "maxMessageSize": 2}]})")}});
  auto v = stricter->check("sensors/2/data", "abc", 0, false, &memo);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->rule, "tiny");
  auto loose = compile_ok({});
  EXPECT_FALSE(loose->check("sensors/2/data", std::string(17, 'x'), 0, false, &memo).has_value());
}

TEST(TopicRules, SizeViolation) {
  auto set = compile_ok(kSensorRules);
  EXPECT_FALSE(set->empty());
  EXPECT_FALSE(set->check("sensors/1/data", std::string(16, 'x'), 0, false).has_value());
  auto v = set->check("sensors/1/data", std::string(17, 'x'), 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x95);
  EXPECT_EQ(v->reason,
            "topic rule 'sensor-topics' pattern 'sensors/**/data': payload exceeds 16 bytes");
}

TEST(TopicRules, QosViolation) {
  auto set = compile_ok(kSensorRules);
  EXPECT_FALSE(set->check("sensors/data", "1", 1, false).has_value());
  auto v = set->check("sensors/data", "1", 2, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x9B);
  EXPECT_EQ(
      v->reason,
      "topic rule 'sensor-topics' pattern 'sensors/**/data': QoS 2 not allowed (allowed: 0, 1)");
  auto bogus = set->check("sensors/data", "1", 7, false);
  ASSERT_TRUE(bogus.has_value());
  EXPECT_EQ(bogus->reason_code, 0x9B);
}

TEST(TopicRules, QosAliasShape) {
  auto set = compile_ok({{"r", json::parse(R"({"patterns": [{"pattern": "q", "qos": [2]}]})")}});
  EXPECT_FALSE(set->check("q", "", 2, false).has_value());
  auto v = set->check("q", "", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x9B);
  EXPECT_EQ(v->reason, "topic rule 'r' pattern 'q': QoS 0 not allowed (allowed: 2)");
}

TEST(TopicRules, RetainMustEqualTheFlag) {
  auto set = compile_ok({{"no-retain", json::parse(R"({"patterns": [{"pattern": "live/#",
                                                                     "retain": false}]})")},
                         {"only-retain", json::parse(R"({"patterns": [{"pattern": "state/+",
                                                                       "retain": true}]})")}});
  EXPECT_FALSE(set->check("live/x", "", 0, false).has_value());
  auto v = set->check("live/x", "", 0, true);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x9A);
  EXPECT_EQ(v->reason, "topic rule 'no-retain' pattern 'live/#': retain flag must be false");

  EXPECT_FALSE(set->check("state/x", "", 0, true).has_value());
  auto w = set->check("state/x", "", 0, false);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->reason_code, 0x9A);
  EXPECT_EQ(w->reason, "topic rule 'only-retain' pattern 'state/+': retain flag must be true");
}

const std::map<std::string, json> kSchemaRules = {
    {"readings", json::parse(R"({"patterns": [{"matches": ["r/+", "readings/#"],
        "schema": {"type": "object", "required": ["value"],
                   "properties": {"value": {"type": "number"},
                                  "unit": {"type": "string", "pattern": "^[a-z]+$"}}}}]})")}};

TEST(TopicRules, SchemaViolation) {
  auto set = compile_ok(kSchemaRules);
  EXPECT_FALSE(set->check("r/1", R"({"value": 1.5, "unit": "c"})", 0, false).has_value());
  EXPECT_FALSE(set->check("readings/a/b", R"({"value": 2})", 0, false).has_value());

  auto v = set->check("r/1", R"({"unit": "c"})", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x99);
  EXPECT_EQ(v->reason,
            "topic rule 'readings' pattern 'r/+': payload does not match schema: Missing "
            "required property 'value'.");

  auto w = set->check("readings/x", R"({"value": "high"})", 0, false);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->reason_code, 0x99);
  EXPECT_EQ(w->reason,
            "topic rule 'readings' pattern 'readings/#': payload does not match schema: [value]: "
            "Value type not permitted by 'type' constraint.");

  auto u = set->check("r/1", R"({"value": 1, "unit": "C"})", 0, false);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->reason_code, 0x99);
  EXPECT_EQ(u->reason,
            "topic rule 'readings' pattern 'r/+': payload does not match schema: [unit]: Failed "
            "to match regex specified by 'pattern' constraint.");

  EXPECT_FALSE(set->check("other", "not json", 0, false).has_value());
}

TEST(TopicRules, PayloadNotJson) {
  auto set = compile_ok(kSchemaRules);
  for (const char* payload : {"", "{", "not json", "{\"value\": 1,}", "\xff\xfe"}) {
    auto v = set->check("r/1", payload, 0, false);
    ASSERT_TRUE(v.has_value()) << payload;
    EXPECT_EQ(v->reason_code, 0x99);
    EXPECT_EQ(v->reason, "topic rule 'readings' pattern 'r/+': payload is not valid JSON");
  }
}

TEST(TopicRules, ChecksRunSizeThenQosThenRetainThenSchema) {
  auto set = compile_ok({{"all", json::parse(R"({"patterns": [{"pattern": "t", "maxMessageSize": 3,
      "qos": [0], "retain": false, "schema": {"type": "number"}}]})")}});
  EXPECT_EQ(set->check("t", "toolong", 1, true)->reason_code, 0x95);
  EXPECT_EQ(set->check("t", "abc", 1, true)->reason_code, 0x9B);
  EXPECT_EQ(set->check("t", "abc", 0, true)->reason_code, 0x9A);
  EXPECT_EQ(set->check("t", "abc", 0, false)->reason_code, 0x99);
  EXPECT_FALSE(set->check("t", "12", 0, false).has_value());
}

TEST(TopicRules, SchemaOnFlatAndNestedPayloads) {
  auto set = compile_ok(kSchemaRules);
  EXPECT_FALSE(set->check("r/1", R"({"value":-3,"unit":"k","ok":true,"x":null})", 0, false));
  auto v = set->check("r/1", R"({"value":{"a":1}})", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason,
            "topic rule 'readings' pattern 'r/+': payload does not match schema: [value]: "
            "Value type not permitted by 'type' constraint.");
  EXPECT_FALSE(set->check("r/1", R"({"value":1e3,"meta":[1,{"b":"é"}]})", 0, false));
  EXPECT_EQ(set->check("r/1", R"({"value":01})", 0, false)->reason,
            "topic rule 'readings' pattern 'r/+': payload is not valid JSON");
}

TEST(TopicRules, DeeplyNestedPayloadsAreParsedWithoutRecursion) {
  auto set = compile_ok(kSchemaRules);
  const std::string open(200000, '[');
  EXPECT_EQ(set->check("r/1", open, 0, false)->reason,
            "topic rule 'readings' pattern 'r/+': payload is not valid JSON");
  // The schema ("pattern") needs valijson, which walks payloads recursively.
  const std::string deep = R"({"value": 1, "x": )" + open + std::string(200000, ']') + "}";
  EXPECT_EQ(set->check("r/1", deep, 0, false)->reason,
            "topic rule 'readings' pattern 'r/+': payload is nested deeper than 64 levels");
  // The fast check does not recurse: any depth.
  auto fast = compile_ok({{"fast", json::parse(R"({"patterns": [{"pattern": "f",
      "schema": {"type": "object", "required": ["value"]}}]})")}});
  EXPECT_FALSE(fast->check("f", deep, 0, false).has_value());
}

TEST(TopicRules, ValijsonSeesOnlyPayloadsOfBoundedDepth) {
  // uniqueItems compares items recursively: two equal deep items would
  // recurse along their whole depth.
  auto set = compile_ok(
      {{"unique", json::parse(R"({"patterns": [{"pattern": "u", "schema": {"uniqueItems": true,
          "items": {"not": {"type": "string"}}}}]})")}});
  const std::string item = std::string(100000, '[') + std::string(100000, ']');
  auto v = set->check("u", "[" + item + "," + item + "]", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x99);
  EXPECT_EQ(v->reason, "topic rule 'unique' pattern 'u': payload is nested deeper than 64 levels");
  EXPECT_FALSE(set->check("u", "[[[1]],[[2]]]", 0, false).has_value());
  EXPECT_TRUE(set->check("u", "[[[1]],[[1]]]", 0, false).has_value());
}

TEST(TopicRules, SchemasOnlyValijsonCanCheck) {
  auto set = compile_ok(
      {{"a-enum", json::parse(R"({"patterns": [{"pattern": "e", "schema": {"enum": [1, 2]}}]})")},
       {"b-fast",
        json::parse(R"({"patterns": [{"pattern": "e", "schema": {"type": "integer"}}]})")}});
  EXPECT_FALSE(set->check("e", "2", 0, false).has_value());
  EXPECT_EQ(set->check("e", "3", 0, false)->reason,
            "topic rule 'a-enum' pattern 'e': payload does not match schema: Failed to match "
            "against any enum values.");
  EXPECT_EQ(set->check("e", "{", 0, false)->reason,
            "topic rule 'a-enum' pattern 'e': payload is not valid JSON");
  EXPECT_EQ(set->check("e", R"({"a":1})", 0, false)->reason_code, 0x99);
}

TEST(TopicRules, RegexSchemasBoundTheStringsTheyMatch) {
  // std::regex recurses per character: a 100,000-character string against
  // this pattern overflowed a worker's stack before the bound.
  auto rules = compile_ok({{"re", json::parse(R"({"patterns": [{"pattern": "re/#", "schema":
      {"properties": {"s": {"type": "string", "pattern": "^(a|b)*$"}}}}]})")}});
  const std::string ok = R"({"s": ")" + std::string(1000, 'a') + R"("})";
  EXPECT_FALSE(rules->check("re/x", ok, 0, false));
  const std::string hostile = R"({"s": ")" + std::string(100000, 'a') + R"("})";
  auto v = rules->check("re/x", hostile, 0, false);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reason_code, 0x99);
  EXPECT_THAT(v->reason, HasSubstr("too long for the schema's regular expressions"));
  // Other strings of the payload count too (the check does not follow the schema).
  const std::string other = R"({"s": "ab", "note": ")" + std::string(10000, 'x') + R"("})";
  EXPECT_TRUE(rules->check("re/x", other, 0, false));
  // Schemas without regexes take strings of any length.
  auto plain = compile_ok({{"p", json::parse(R"({"patterns": [{"pattern": "p/#", "schema":
      {"properties": {"s": {"type": "string", "minLength": 1, "enum": ["x"]}}}}]})")}});
  EXPECT_TRUE(plain->check("p/x", hostile, 0, false));  // refused by enum, not by length
  EXPECT_THAT(plain->check("p/x", hostile, 0, false)->reason, Not(HasSubstr("too long")));
  // A regex long enough to recurse deeply when compiled is refused outright.
  std::string error;
  EXPECT_FALSE(RuleSet::validate_spec(
      json{{"patterns",
            {{{"pattern", "x/#"},
              {"schema",
               {{"properties",
                 {{"s", {{"pattern", std::string(20000, '(') + std::string(20000, ')')}}}}}}}}}}},
      &error));
  EXPECT_THAT(error, HasSubstr("longer than 1024"));
}

TEST(TopicRules, CheapChecksOfEveryRuleComeBeforeAnySchema) {
  auto set = compile_ok(
      {{"a-schema",
        json::parse(R"({"patterns": [{"pattern": "t/#", "schema": {"type": "object"}}]})")},
       {"b-size", json::parse(R"({"patterns": [{"pattern": "t/+", "maxMessageSize": 2}]})")}});
  auto v = set->check("t/x", "not json at all", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason_code, 0x95);
  EXPECT_EQ(v->reason, "topic rule 'b-size' pattern 't/+': payload exceeds 2 bytes");
}

TEST(TopicRules, EveryMatchingRuleMustHold) {
  auto set = compile_ok(
      {{"wide", json::parse(R"({"patterns": [{"pattern": "plant/#", "maxMessageSize": 100}]})")},
       {"narrow", json::parse(R"({"patterns": [{"pattern": "plant/+/temp", "qos": [1],
                                               "schema": {"type": "number"}},
                                              {"pattern": "plant/**", "retain": false}]})")}});
  EXPECT_FALSE(set->check("plant/1/temp", "21.5", 1, false).has_value());
  EXPECT_EQ(set->check("plant/1/temp", std::string(101, '1'), 1, false)->reason,
            "topic rule 'wide' pattern 'plant/#': payload exceeds 100 bytes");
  EXPECT_EQ(set->check("plant/1/temp", "21.5", 0, false)->reason,
            "topic rule 'narrow' pattern 'plant/+/temp': QoS 0 not allowed (allowed: 1)");
  EXPECT_EQ(set->check("plant/1/temp", "21.5", 1, true)->reason,
            "topic rule 'narrow' pattern 'plant/**': retain flag must be false");
  EXPECT_EQ(set->check("plant/1/temp", "\"warm\"", 1, false)->reason_code, 0x99);
  // Only the wide rule and the retain entry apply here.
  EXPECT_FALSE(set->check("plant/1/humidity", "anything", 0, false).has_value());
  EXPECT_EQ(set->check("plant/1/humidity", "x", 0, true)->reason_code, 0x9A);
}

TEST(TopicRules, UnmatchedTopicsAreUnrestricted) {
  auto set = compile_ok(kSensorRules);
  EXPECT_FALSE(set->check("sensors/1/cmd", std::string(1000, 'x'), 2, true).has_value());
  EXPECT_FALSE(set->check("other", std::string(1000, 'x'), 2, true).has_value());
}

TEST(TopicRules, SysTopicsAreExempt) {
  auto set = compile_ok({{"all", json::parse(R"({"patterns": [{"pattern": "*", "maxMessageSize": 0,
                                                               "qos": [0]}]})")}});
  EXPECT_FALSE(set->check("$SYS/broker/load", "12", 1, false).has_value());
  // '*' alone matches '$' topics, so other '$' topics are still checked.
  EXPECT_EQ(set->check("$other/x", "12", 0, false)->reason_code, 0x95);
  EXPECT_EQ(set->check("a", "12", 0, false)->reason_code, 0x95);
  EXPECT_FALSE(set->check("a", "", 0, false).has_value());
}

TEST(TopicRules, MatchesShapeWithSingleStringAndMqttPrefix) {
  auto set = compile_ok(
      {{"r", json::parse(R"({"patterns": [{"matches": "mqtt:x/+", "maxMessageSize": 1}]})")}});
  auto v = set->check("x/y", "12", 0, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason, "topic rule 'r' pattern 'mqtt:x/+': payload exceeds 1 bytes");
}

TEST(TopicRules, ZeroMaxMessageSizeAllowsOnlyEmptyPayloads) {
  auto set =
      compile_ok({{"r", json::parse(R"({"patterns": [{"pattern": "e", "maxMessageSize": 0}]})")}});
  EXPECT_FALSE(set->check("e", "", 0, false).has_value());
  EXPECT_EQ(set->check("e", "x", 0, false)->reason_code, 0x95);
}

struct SpecErrorCase {
  const char* spec;
  const char* error;
};

TEST(TopicRules, StrictSpecsNameRuleAndField) {
  const SpecErrorCase cases[] = {
      {R"([])", "expected object"},
      {R"({})", "patterns: missing"},
      {R"({"patterns": {}})", "patterns: expected array"},
      {R"({"patterns": [], "name": "x"})", "name: unknown field"},
      {R"({"patterns": [5]})", "patterns[0]: expected object"},
      {R"({"patterns": [{"maxMessageSize": 1}]})",
       "patterns[0]: expected exactly one of 'pattern' or 'matches'"},
      {R"({"patterns": [{"pattern": "a", "matches": ["b"]}]})",
       "patterns[0]: expected exactly one of 'pattern' or 'matches'"},
      {R"({"patterns": [{"pattern": "a", "maxSize": 1}]})", "patterns[0].maxSize: unknown field"},
      {R"({"patterns": [{"pattern": 5}]})", "patterns[0].pattern: expected string"},
      {R"({"patterns": [{"pattern": "a/#/b"}]})",
       "patterns[0].pattern: '#' must be the last level"},
      {R"({"patterns": [{"pattern": ""}]})", "patterns[0].pattern: empty pattern"},
      {R"({"patterns": [{"matches": []}]})",
       "patterns[0].matches: expected non-empty array of strings"},
      {R"({"patterns": [{"matches": ["a", 1]}]})",
       "patterns[0].matches: expected non-empty array of strings"},
      {R"({"patterns": [{"matches": ["a", "b+"]}]})",
       "patterns[0].matches[1]: '+' must occupy a whole level"},
      {R"({"patterns": [{"pattern": "a"}, {"pattern": "b", "maxMessageSize": -1}]})",
       "patterns[1].maxMessageSize: expected non-negative integer"},
      {R"({"patterns": [{"pattern": "a", "maxMessageSize": 1.5}]})",
       "patterns[0].maxMessageSize: expected non-negative integer"},
      {R"({"patterns": [{"pattern": "a", "maxMessageSize": "10"}]})",
       "patterns[0].maxMessageSize: expected non-negative integer"},
      {R"({"patterns": [{"pattern": "a", "allowedQoS": [0, 3]}]})",
       "patterns[0].allowedQoS: expected non-empty array of integers 0..2"},
      {R"({"patterns": [{"pattern": "a", "allowedQoS": []}]})",
       "patterns[0].allowedQoS: expected non-empty array of integers 0..2"},
      {R"({"patterns": [{"pattern": "a", "qos": 1}]})",
       "patterns[0].qos: expected non-empty array of integers 0..2"},
      {R"({"patterns": [{"pattern": "a", "qos": [-1]}]})",
       "patterns[0].qos: expected non-empty array of integers 0..2"},
      {R"({"patterns": [{"pattern": "a", "qos": [0], "allowedQoS": [0]}]})",
       "patterns[0]: expected at most one of 'allowedQoS' or 'qos'"},
      {R"({"patterns": [{"pattern": "a", "retain": "false"}]})",
       "patterns[0].retain: expected boolean"},
      {R"({"patterns": [{"pattern": "a", "schema": "object"}]})",
       "patterns[0].schema: expected object"},
  };
  for (const auto& c : cases) {
    const json spec = json::parse(c.spec);
    std::string error;
    EXPECT_FALSE(RuleSet::validate_spec(spec, &error)) << c.spec;
    EXPECT_EQ(error, c.error) << c.spec;
    EXPECT_EQ(compile_error(
                  {{"ok", json::parse(R"({"patterns": [{"pattern": "x"}]})")}, {"bad-rule", spec}}),
              std::string("topic rule 'bad-rule': ") + c.error)
        << c.spec;
  }
}

TEST(TopicRules, InvalidJsonSchemaIsRefused) {
  const char* schemas[] = {
      R"({"type": 5})",
      R"({"minimum": "ten"})",
      R"({"required": "value"})",
      R"({"$ref": "http://example.com/schema.json"})",
      R"({"properties": {"a": {"type": "string", "pattern": "("}}})",
      R"({"patternProperties": {"[": {"type": "string"}}})",
  };
  for (const char* schema : schemas) {
    json spec = json::parse(R"({"patterns": [{"pattern": "s"}]})");
    spec["patterns"][0]["schema"] = json::parse(schema);
    std::string error;
    EXPECT_FALSE(RuleSet::validate_spec(spec, &error)) << schema;
    EXPECT_TRUE(error.starts_with("patterns[0].schema: ")) << schema << " -> " << error;
    std::string compile;
    EXPECT_EQ(RuleSet::compile({{"sch", spec}}, &compile), nullptr) << schema;
    EXPECT_TRUE(compile.starts_with("topic rule 'sch': patterns[0].schema: ")) << compile;
  }
}

TEST(TopicRules, ValidSpecsPass) {
  std::string error = "unchanged";
  EXPECT_TRUE(RuleSet::validate_spec(json::parse(R"({"patterns": []})"), &error));
  EXPECT_TRUE(RuleSet::validate_spec(
      json::parse(R"({"patterns": [{"pattern": "sensors/**/data", "maxMessageSize": 1024,
                                    "allowedQoS": [0, 1], "retain": false,
                                    "schema": {"type": "object", "required": ["value"]}}]})"),
      &error))
      << error;
  EXPECT_TRUE(
      RuleSet::validate_spec(json::parse(R"({"patterns": [{"matches": ["a", "b/#"]}]})"), nullptr));
  EXPECT_EQ(error, "unchanged");
}

TEST(TopicRules, ConcurrentChecksOnOneSetAndAcrossSets) {
  auto first = compile_ok(kSchemaRules);
  auto second = compile_ok({{"other", json::parse(R"({"patterns": [{"pattern": "r/+",
      "schema": {"properties": {"unit": {"pattern": "^[A-Z]+$"}}}}]})")}});
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        // Alternating sets on one thread exercises the per-thread regex cache
        // being dropped when the rule set changes.
        if (first->check("r/1", R"({"value": 1, "unit": "k"})", 0, false)) ++wrong;
        if (!first->check("r/1", R"({"value": 1, "unit": "K"})", 0, false)) ++wrong;
        if (!second->check("r/1", R"({"unit": "k"})", 0, false)) ++wrong;
        if (second->check("r/1", R"({"unit": "K"})", 0, false)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace backbone::kernel::rules
