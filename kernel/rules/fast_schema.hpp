// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace backbone::kernel::rules {

// The verdict on one payload; kNotJson wins over a schema violation: the
// whole text is always parsed, as a document would be.
enum class Verdict : uint8_t { kValid, kInvalid, kNotJson };

// Whether `text` is one JSON value (RFC 8259, UTF-8), parsed as
// FastSchema::check parses it. Does not allocate for typical payloads.
bool well_formed_json(std::string_view text);

// A JSON Schema compiled for the per-message hot path. valijson stays the
// reference: it validates every schema this cannot express, and it produces
// the error message whenever a payload fails. FastSchema covers the keywords
// payload contracts use most (type, required, properties,
// additionalProperties: false, items, numeric and length bounds) and checks
// them while the payload is parsed: events of a streaming (SAX) parser drive
// the compiled schema, no document is built and nothing is allocated for
// typical payloads.
class FastSchema {
 public:
  // nullopt when the schema uses anything outside the supported subset.
  static std::optional<FastSchema> compile(const nlohmann::json& schema);

  // kInvalid only when valijson would refuse the payload too (the caller asks
  // valijson for the error message).
  Verdict check(std::string_view text) const;

  // The schema nodes open at once while parsing are bounded by the depth of
  // the schema (deeper payload values are only parsed), so the validator's
  // stack has a fixed size; deeper schemas are left to valijson.
  static constexpr size_t kMaxDepth = 32;
  static constexpr uint32_t kAny = UINT32_MAX;  // no constraint: the value is only parsed

  enum TypeBit : uint8_t {
    kNull = 1,
    kBoolean = 2,
    kObject = 4,
    kArray = 8,
    kNumber = 16,
    kString = 32,
    kInteger = 64,
  };
  struct Key {
    std::string name;
    uint32_t child = kAny;  // the node of "properties"/name
    uint64_t required = 0;  // the bit of name in "required", if there
    bool property = false;  // named in "properties"
  };
  struct Node {
    uint8_t types = 0;  // 0 = any
    bool additional_properties = true;
    std::vector<Key> keys;  // the names in "properties" or "required"
    uint64_t required = 0;  // every bit of "required"
    uint32_t items = kAny;
    std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
    std::optional<uint64_t> min_length, max_length, min_items, max_items;
  };

 private:
  static bool compile_node(const nlohmann::json& schema, std::vector<Node>& nodes, size_t depth,
                           uint32_t& index);

  std::vector<Node> nodes_;
  uint32_t root_ = kAny;
};

}  // namespace backbone::kernel::rules
