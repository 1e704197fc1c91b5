// SPDX-License-Identifier: GPL-3.0-or-later
// FastSchema must agree with valijson on every schema it accepts to handle:
// each case is decided by both and compared, so the fast path can never let
// through a payload the reference validator refuses.
#include "kernel/rules/fast_schema.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernel/protocol/codec.hpp"
#include "kernel/rules/rapidjson.hpp"

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

namespace backbone::kernel::rules {
namespace {

using nlohmann::json;

bool reference(const json& schema_json, const std::string& doc_text) {
  valijson::Schema schema;
  valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
  valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_json);
  parser.populateSchema(schema_adapter, schema);
  const json doc = json::parse(doc_text);
  valijson::Validator validator;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  return validator.validate(schema, adapter, nullptr);
}

bool fast(const FastSchema& fs, const std::string& doc_text) {
  const Verdict verdict = fs.check(doc_text);
  EXPECT_NE(verdict, Verdict::kNotJson) << doc_text;
  return verdict == Verdict::kValid;
}

const std::vector<std::string> kDocuments = {
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "1.0",
    "1.5",
    "-0.5",
    "1e3",
    "1e300",
    "18446744073709551615",
    "\"\"",
    "\"a\"",
    "\"abc\"",
    "\"h\\u00e9llo\"",
    "\"\xe2\x82\xac\"",
    "[]",
    "[1]",
    "[1,2,3]",
    "[\"a\",1]",
    "[[1],[2]]",
    "{}",
    "{\"value\":1}",
    "{\"value\":\"x\"}",
    "{\"value\":1,\"extra\":true}",
    "{\"value\":null}",
    "{\"v\":{\"w\":2}}",
    "{\"v\":{\"w\":\"2\"}}",
    "{\"value\":1.5}",
    "{\"value\":3.0}",
    "{\"value\":2e2}",
    "{\"value\":100}",
    "{\"value\":-100}",
    "{\"a\":[1,2],\"b\":\"xy\"}",
    "{\"a\":[],\"b\":\"\"}",
    "{\"a\":[\"s\"],\"b\":\"xyz\"}",
    // Flat objects (read without RapidJSON) and their neighbours that are not.
    " { \"value\" :\t1 ,\n\"unit\":\"c\" }\r\n",
    "{\"value\":0}",
    "{\"value\":-0}",
    "{\"value\":-5}",
    "{\"value\":10}",
    "{\"value\":123456789012345678}",
    "{\"value\":-123456789012345678}",
    "{\"value\":1234567890123456789}",
    "{\"value\":18446744073709551616}",
    "{\"value\":1E2}",
    "{\"value\":true}",
    "{\"value\":false,\"unit\":null}",
    "{\"value\":\"\\u0041\"}",
    "{\"v\\u0061lue\":\"x\"}",
    "{\"value\":[1,2]}",
    "{\"value\":{}}",
    "{\"extra\":1}",
    "{\"\":1}",
    "{\"a\":\"\",\"b\":\"ab\"}",
    "{\"b\":\"\\u00e9\\u00e9\"}",
    "{\"b\":\"\xc3\xa9\xc3\xa9\"}",
    "{\"b\":\"\xf0\x9f\x98\x80\"}",
    "{\"b\":\"0123456789abcdef\xc3\xa9\",\"a\":[]}",
    "{\"b\":\"\xc3\xa9\xc3\xa9"
    "0123456789abcdef\"}",
    "{\"v\":\"0123456789abcdef0123456789abcdef0123456789abcdef\"   }",
    "{\"v\":1,\"w\":\"0123456789abcdef0123\"}",
    "[{\"value\":1},{\"value\":\"x\"}]",
    "[{\"value\":1},{}]",
    "{\"v\":{\"w\":2},\"x\":[{\"w\":\"s\"}]}",
    "{\"x\":[{\"w\":1},{\"w\":2}]}",
};

const std::vector<std::string> kSchemas = {
    R"({})",
    R"({"type": "object"})",
    R"({"type": "object", "required": ["value"]})",
    R"({"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}}})",
    R"({"type": "object", "properties": {"value": {"type": "integer"}}})",
    R"({"type": "object", "properties": {"value": {"type": ["string", "null"]}}})",
    R"({"type": "object", "properties": {"value": {"type": "number"}}, "additionalProperties": false})",
    R"({"properties": {"value": {"minimum": 0, "maximum": 10}}})",
    R"({"properties": {"value": {"exclusiveMinimum": 1, "exclusiveMaximum": 100}}})",
    R"({"type": "string", "minLength": 1, "maxLength": 2})",
    R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2})",
    R"({"type": "array", "items": {"type": "array"}})",
    R"({"type": ["integer", "boolean"]})",
    R"({"type": "number"})",
    R"({"type": "null"})",
    R"({"type": "object", "properties": {"v": {"type": "object", "required": ["w"], "properties": {"w": {"type": "integer"}}}}})",
    R"({"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "array", "items": {"type": "string"}}, "b": {"type": "string", "minLength": 2}}})",
    R"({"$schema": "http://json-schema.org/draft-07/schema#", "title": "t", "type": "object", "required": ["value"]})",
    // The authz benchmark's schema (tests/bench/authz_config.py).
    R"({"type": "object", "required": ["v"], "properties": {"v": {"type": "string"}}})",
    R"({"required": ["a"], "additionalProperties": false})",
    R"({"required": ["value", "value"]})",
    R"({"required": ["a", "b"], "additionalProperties": false, "properties": {"a": {}, "b": {}}})",
    R"({"properties": {"value": {}}, "additionalProperties": false})",
    R"({"properties": {"b": {"minLength": 2, "maxLength": 2}}})",
    R"({"type": "object", "properties": {"value": {"type": "integer", "minimum": 0, "maximum": 10}}})",
    R"({"properties": {"value": {"exclusiveMinimum": -1, "maximum": 123456789012345678}}})",
    R"({"type": "array", "items": {"type": "object", "required": ["value"]}})",
    R"({"properties": {"value": {"type": "boolean"}, "unit": {"type": ["null", "string"]}}})",
    R"({"properties": {"x": {"items": {"properties": {"w": {"type": "integer"}}}}}})",
    R"({"properties": {"value": {"required": ["a"], "minItems": 3, "type": ["array", "object"]}}})",
    R"({"type": "object", "minimum": 3, "minLength": 3, "items": {"type": "null"}})",
};

TEST(FastSchema, AgreesWithValijsonOnEverySupportedCase) {
  size_t compared = 0;
  for (const auto& schema_text : kSchemas) {
    const json schema = json::parse(schema_text);
    auto fs = FastSchema::compile(schema);
    ASSERT_TRUE(fs.has_value()) << schema_text;
    for (const auto& doc : kDocuments) {
      EXPECT_EQ(fast(*fs, doc), reference(schema, doc))
          << "schema " << schema_text << "\ndoc " << doc;
      ++compared;
    }
  }
  EXPECT_EQ(compared, kSchemas.size() * kDocuments.size());
}

// Duplicate names: valijson sees the last value only (nlohmann::json), the
// fast check every value, so it may refuse what valijson allows (valijson then
// decides), but must never allow what valijson refuses.
TEST(FastSchema, DuplicateNamesNeverLetThroughWhatValijsonRefuses) {
  const json schema = json::parse(
      R"({"type": "object", "required": ["v"], "properties": {"v": {"type": "string"}}})");
  auto fs = FastSchema::compile(schema);
  ASSERT_TRUE(fs);
  for (const char* doc : {R"({"v":"a","v":1})", R"({"v":1,"v":"a"})", R"({"v":"a","v":"b"})",
                          R"({"v":[1],"v":{"v":"x"},"v":"a"})"}) {
    if (fast(*fs, doc)) {
      EXPECT_TRUE(reference(schema, doc)) << doc;
    }
  }
  EXPECT_FALSE(fast(*fs, R"({"v":1,"v":"a"})"));
  EXPECT_TRUE(fast(*fs, R"({"v":"a","v":"b"})"));
}

// The verdict on the syntax must be RapidJSON's (with the codec's UTF-8
// check, which also refuses NUL), whichever way the payload is read. Parsed
// from a NUL-terminated string, which (unlike a text with a length) does not
// skip a byte order mark, padded for RapidJSON's 16-byte loads.
bool rapidjson_accepts(const std::string& text) {
  if (!protocol::valid_utf8(text)) return false;
  const std::string padded = text + std::string(16, '\0');
  rapidjson::Document doc;
  try {
    doc.Parse<rapidjson::kParseIterativeFlag>(padded.c_str());
  } catch (const std::exception&) {
    return false;
  }
  return !doc.HasParseError();
}

TEST(FastSchema, NotJsonAsRapidJsonDecides) {
  auto fs = FastSchema::compile(json::parse(R"({"type": "object"})"));
  auto any = FastSchema::compile(json::parse(R"({})"));
  ASSERT_TRUE(fs && any);
  const std::vector<std::string> not_json = {
      "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
      "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e400}",
      "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}", "{\"a\":\"x}", "{\"a\":\"\x01\"}",
      "{\"a\":\"\\x\"}", "{\"a\":'x'}", "{a:1}", "{\"a\":1}}", "{\"a\":1} x", "{\"a\":1}\x0b",
      std::string("{\"a\":1}\0", 8), std::string("{\"a\":\"\0\"}", 8), "{\"a\":\"\xff\"}",
      "{\"a\":\"\xc3\"}", "{\"\xed\xa0\x80\":1}", "{\"a\":1}\xc3\xa9", "[1,]", "[1 2]", "nul",
      "\xef\xbb\xbf{}",
      // Strings are read 16 bytes at a time.
      "{\"a\":\"0123456789abcdef0123\xff\"}", "{\"a\":\"01234\xc3xxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
      "{\"0123456789abcdef\xe2\x82\":1}", "{\"a\":\"0123456789abcdef\x7f\x01\"}",
      "{\"a\":\"0123456789abcdef\\q\"}", "{\"a\":\"0123456789abcdef"};
  for (const auto& text : not_json) {
    EXPECT_FALSE(rapidjson_accepts(text)) << text;
    EXPECT_EQ(fs->check(text), Verdict::kNotJson) << text;
    EXPECT_EQ(any->check(text), Verdict::kNotJson) << text;
    EXPECT_FALSE(well_formed_json(text)) << text;
  }
  for (const auto& text : kDocuments) {
    EXPECT_TRUE(well_formed_json(text)) << text;
    EXPECT_EQ(any->check(text), Verdict::kValid) << text;
  }
}

// Random texts made of JSON tokens, most of them broken: the verdicts must be
// RapidJSON's, and valijson's on the schema when the text is JSON.
TEST(FastSchema, AgreesWithRapidJsonAndValijsonOnRandomTexts) {
  const json schema = json::parse(
      R"({"type": "object", "required": ["v"], "properties": {"v": {"type": "string", "maxLength": 3}, "n": {"type": "integer", "maximum": 5}}})");
  auto fs = FastSchema::compile(schema);
  ASSERT_TRUE(fs);
  const std::vector<std::string> tokens = {
      "{",     "}",     "[",      "]",        ":",           ",",      " ",        "\n",   "\"v\"",
      "\"n\"", "\"x\"", "\"ab\"", "\"abcd\"", "\"\\u0041\"", "\"Ã©\"", "\"\xc3\"", "1",    "-",
      "0",     "7",     "12",     ".5",       "e3",          "true",   "false",    "null", "\"",
      "\\",    "\t",    "x"};
  std::mt19937 random(7);
  size_t json_texts = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text = i % 2 ? "{\"v\":" : "{";
    const size_t count = random() % 8;
    for (size_t t = 0; t < count; ++t) text += tokens[random() % tokens.size()];
    if (i % 3) text += "}";
    const bool accepted = rapidjson_accepts(text);
    const Verdict verdict = fs->check(text);
    ASSERT_EQ(verdict != Verdict::kNotJson, accepted) << text;
    ASSERT_EQ(well_formed_json(text), accepted) << text;
    if (!accepted) continue;
    ++json_texts;
    const json doc = json::parse(text);
    const bool duplicates = doc.is_object() && text.find("\"v\"") != text.rfind("\"v\"");
    if (duplicates) continue;  // see DuplicateNamesNeverLetThroughWhatValijsonRefuses
    ASSERT_EQ(verdict == Verdict::kValid, reference(schema, text)) << text;
  }
  EXPECT_GT(json_texts, 1000u);
}

TEST(FastSchema, DeepPayloadsDoNotExhaustTheStack) {
  auto array = FastSchema::compile(json::parse(R"({"type": "array"})"));
  auto object = FastSchema::compile(json::parse(R"({"type": "object"})"));
  ASSERT_TRUE(array && object);
  for (size_t depth : {255, 256, 257, 1000, 300000}) {
    const std::string open(depth, '[');
    const std::string text = open + std::string(depth, ']');
    EXPECT_EQ(array->check(text), Verdict::kValid) << depth;
    EXPECT_EQ(object->check(text), Verdict::kInvalid) << depth;
    EXPECT_TRUE(well_formed_json(text)) << depth;
    EXPECT_EQ(array->check(open), Verdict::kNotJson) << depth;
    EXPECT_FALSE(well_formed_json(open)) << depth;
  }
  // Nested values in a schema node at depth.
  auto nested = FastSchema::compile(json::parse(R"({"items": {"items": {"type": "integer"}}})"));
  ASSERT_TRUE(nested);
  const std::string deep = std::string(400, '[') + std::string(400, ']');
  EXPECT_EQ(nested->check("[" + deep + "]"), Verdict::kInvalid);
  EXPECT_EQ(nested->check("[[1,2],[3]]"), Verdict::kValid);
}

TEST(FastSchema, RefusesWhatItCannotExpress) {
  for (const char* text :
       {R"({"enum": [1, 2]})", R"({"pattern": "^a"})", R"({"oneOf": [{}, {}]})",
        R"({"$ref": "#/definitions/x"})", R"({"patternProperties": {"^a": {}}})",
        R"({"additionalProperties": {"type": "string"}})", R"({"properties": {"a": true}})",
        R"({"type": "whatever"})", R"({"items": [{"type": "string"}]})", R"(true)"}) {
    EXPECT_FALSE(FastSchema::compile(json::parse(text)).has_value()) << text;
  }
  // Deeper than FastSchema::kMaxDepth.
  json deep = {{"type", "string"}};
  for (size_t depth = 1; depth < FastSchema::kMaxDepth; ++depth) {
    deep = {{"properties", {{"a", deep}}}};
  }
  EXPECT_TRUE(FastSchema::compile(deep).has_value());
  deep = {{"properties", {{"a", deep}}}};
  EXPECT_FALSE(FastSchema::compile(deep).has_value());
  // One bit per required name.
  json required = json::array();
  for (int i = 0; i < 64; ++i) required.push_back("p" + std::to_string(i));
  EXPECT_TRUE(FastSchema::compile({{"required", required}}).has_value());
  required.push_back("p64");
  EXPECT_FALSE(FastSchema::compile({{"required", required}}).has_value());
}

TEST(FastSchema, SpotChecks) {
  auto fs = FastSchema::compile(json::parse(
      R"({"type": "object", "required": ["value"], "properties": {"value": {"type": "integer", "minimum": 0}}})"));
  ASSERT_TRUE(fs);
  EXPECT_TRUE(fast(*fs, R"({"value": 3})"));
  EXPECT_FALSE(fast(*fs, R"({"value": 3.0})"));  // as valijson: 3.0 is not an integer
  EXPECT_FALSE(fast(*fs, R"({"value": 3.5})"));
  EXPECT_FALSE(fast(*fs, R"({"value": -1})"));
  EXPECT_FALSE(fast(*fs, R"({"other": 1})"));
  EXPECT_FALSE(fast(*fs, R"([1])"));
}

}  // namespace
}  // namespace backbone::kernel::rules
