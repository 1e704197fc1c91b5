// SPDX-License-Identifier: GPL-3.0-or-later
// FastSchema must agree with valijson on every schema it accepts to handle:
// each case is decided by both and compared, so the fast path can never let
// through a payload the reference validator refuses.
#include "kernel/rules/fast_schema.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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
  rapidjson::Document doc;
  doc.Parse(doc_text.data(), doc_text.size());
  return fs.valid(doc);
}

const std::vector<std::string> kDocuments = {"null",
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
                                             "{\"a\":[\"s\"],\"b\":\"xyz\"}"};

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

TEST(FastSchema, RefusesWhatItCannotExpress) {
  for (const char* text :
       {R"({"enum": [1, 2]})", R"({"pattern": "^a"})", R"({"oneOf": [{}, {}]})",
        R"({"$ref": "#/definitions/x"})", R"({"patternProperties": {"^a": {}}})",
        R"({"additionalProperties": {"type": "string"}})", R"({"properties": {"a": true}})",
        R"({"type": "whatever"})", R"({"items": [{"type": "string"}]})", R"(true)"}) {
    EXPECT_FALSE(FastSchema::compile(json::parse(text)).has_value()) << text;
  }
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
