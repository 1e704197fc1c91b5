// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/rules/fast_schema.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace backbone::kernel::rules {

void rapidjson_assertion_failed(const char* file, int line) {
  throw std::runtime_error(std::string("JSON parser assertion failed at ") + file + ":" +
                           std::to_string(line));
}
namespace {

// Annotations that never affect validation.
bool is_annotation(std::string_view key) {
  return key == "$schema" || key == "$id" || key == "$comment" || key == "title" ||
         key == "description" || key == "default" || key == "examples";
}

bool read_bound(const nlohmann::json& v, std::optional<double>& out) {
  if (!v.is_number()) return false;
  out = v.get<double>();
  return true;
}

bool read_count(const nlohmann::json& v, std::optional<uint64_t>& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return true;
}

// JSON Schema counts string length in code points.
uint64_t code_points(const rapidjson::Value& s) {
  uint64_t n = 0;
  const char* p = s.GetString();
  for (rapidjson::SizeType i = 0; i < s.GetStringLength(); ++i) {
    n += (static_cast<unsigned char>(p[i]) & 0xC0) != 0x80;
  }
  return n;
}

}  // namespace

std::optional<FastSchema> FastSchema::compile(const nlohmann::json& schema) {
  FastSchema fs;
  size_t root;
  if (!compile_node(schema, fs.nodes_, root)) return std::nullopt;
  return fs;
}

bool FastSchema::compile_node(const nlohmann::json& schema, std::vector<Node>& nodes,
                              size_t& index) {
  if (!schema.is_object()) return false;  // boolean schemas and the rest: valijson
  index = nodes.size();
  nodes.emplace_back();
  for (const auto& [key, value] : schema.items()) {
    if (is_annotation(key)) continue;
    Node& n = nodes[index];
    if (key == "type") {
      auto add = [&](const nlohmann::json& t) {
        if (!t.is_string()) return false;
        const std::string name = t.get<std::string>();
        uint8_t bit = name == "null"      ? kNull
                      : name == "boolean" ? kBoolean
                      : name == "object"  ? kObject
                      : name == "array"   ? kArray
                      : name == "number"  ? kNumber
                      : name == "string"  ? kString
                      : name == "integer" ? kInteger
                                          : 0;
        if (bit == 0) return false;
        n.types |= bit;
        return true;
      };
      if (value.is_array()) {
        if (value.empty()) return false;
        for (const auto& t : value) {
          if (!add(t)) return false;
        }
      } else if (!add(value)) {
        return false;
      }
    } else if (key == "required") {
      if (!value.is_array()) return false;
      for (const auto& r : value) {
        if (!r.is_string()) return false;
        n.required.push_back(r.get<std::string>());
      }
    } else if (key == "properties") {
      if (!value.is_object()) return false;
      for (const auto& [name, sub] : value.items()) {
        size_t child;
        if (!compile_node(sub, nodes, child)) return false;
        nodes[index].properties.emplace_back(name, child);
      }
    } else if (key == "additionalProperties") {
      if (!value.is_boolean()) return false;
      n.additional_properties = value.get<bool>();
    } else if (key == "items") {
      size_t child;
      if (!compile_node(value, nodes, child)) return false;
      nodes[index].items = child;
    } else if (key == "minimum") {
      if (!read_bound(value, n.minimum)) return false;
    } else if (key == "maximum") {
      if (!read_bound(value, n.maximum)) return false;
    } else if (key == "exclusiveMinimum") {
      if (!read_bound(value, n.exclusive_minimum)) return false;
    } else if (key == "exclusiveMaximum") {
      if (!read_bound(value, n.exclusive_maximum)) return false;
    } else if (key == "minLength") {
      if (!read_count(value, n.min_length)) return false;
    } else if (key == "maxLength") {
      if (!read_count(value, n.max_length)) return false;
    } else if (key == "minItems") {
      if (!read_count(value, n.min_items)) return false;
    } else if (key == "maxItems") {
      if (!read_count(value, n.max_items)) return false;
    } else {
      return false;  // unsupported keyword: the whole schema goes to valijson
    }
  }
  return true;
}

bool FastSchema::valid(const rapidjson::Value& value) const {
  return valid(value, 0);
}

bool FastSchema::valid(const rapidjson::Value& v, size_t index) const {
  const Node& n = nodes_[index];
  if (n.types != 0) {
    uint8_t have;
    if (v.IsNull()) {
      have = kNull;
    } else if (v.IsBool()) {
      have = kBoolean;
    } else if (v.IsObject()) {
      have = kObject;
    } else if (v.IsArray()) {
      have = kArray;
    } else if (v.IsString()) {
      have = kString;
    } else {
      // As valijson decides it: written without a fraction or exponent.
      const bool integral = v.IsInt64() || v.IsUint64();
      have = kNumber | (integral ? kInteger : 0);
    }
    if ((n.types & have) == 0) return false;
  }
  if (v.IsNumber()) {
    const double d = v.GetDouble();
    if (n.minimum && d < *n.minimum) return false;
    if (n.maximum && d > *n.maximum) return false;
    if (n.exclusive_minimum && d <= *n.exclusive_minimum) return false;
    if (n.exclusive_maximum && d >= *n.exclusive_maximum) return false;
  } else if (v.IsString()) {
    if (n.min_length || n.max_length) {
      const uint64_t len = code_points(v);
      if (n.min_length && len < *n.min_length) return false;
      if (n.max_length && len > *n.max_length) return false;
    }
  } else if (v.IsArray()) {
    const uint64_t size = v.Size();
    if (n.min_items && size < *n.min_items) return false;
    if (n.max_items && size > *n.max_items) return false;
    if (n.items) {
      for (const auto& item : v.GetArray()) {
        if (!valid(item, *n.items)) return false;
      }
    }
  } else if (v.IsObject()) {
    for (const auto& name : n.required) {
      if (!v.HasMember(rapidjson::StringRef(name.data(), name.size()))) return false;
    }
    for (const auto& member : v.GetObject()) {
      const std::string_view key(member.name.GetString(), member.name.GetStringLength());
      bool known = false;
      for (const auto& [name, child] : n.properties) {
        if (name == key) {
          known = true;
          if (!valid(member.value, child)) return false;
          break;
        }
      }
      if (!known && !n.additional_properties) return false;
    }
  }
  return true;
}

}  // namespace backbone::kernel::rules
