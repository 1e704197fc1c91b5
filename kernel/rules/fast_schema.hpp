// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/rules/rapidjson.hpp"

#include <nlohmann/json.hpp>

namespace backbone::kernel::rules {

// A JSON Schema compiled for the per-message hot path. valijson stays the
// reference: it validates every schema this cannot express, and it produces
// the error message whenever a payload fails. FastSchema covers the keywords
// payload contracts use most (type, required, properties,
// additionalProperties: false, items, numeric and length bounds) and checks
// them on the parsed document without allocating.
class FastSchema {
 public:
  // nullopt when the schema uses anything outside the supported subset.
  static std::optional<FastSchema> compile(const nlohmann::json& schema);

  bool valid(const rapidjson::Value& value) const;

 private:
  enum TypeBit : uint8_t {
    kNull = 1,
    kBoolean = 2,
    kObject = 4,
    kArray = 8,
    kNumber = 16,
    kString = 32,
    kInteger = 64,
  };
  struct Node {
    uint8_t types = 0;  // 0 = any
    std::vector<std::string> required;
    std::vector<std::pair<std::string, size_t>> properties;  // name -> node index
    bool additional_properties = true;
    std::optional<size_t> items;  // node index
    std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
    std::optional<uint64_t> min_length, max_length, min_items, max_items;
  };

  static bool compile_node(const nlohmann::json& schema, std::vector<Node>& nodes, size_t& index);
  bool valid(const rapidjson::Value& value, size_t node) const;

  std::vector<Node> nodes_;
};

}  // namespace backbone::kernel::rules
