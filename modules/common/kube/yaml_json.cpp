// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/yaml_json.hpp"

#include <yaml.h>
#include <backbone/json.hpp>

#include <memory>
#include <vector>

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

struct ParserDeleter {
  void operator()(yaml_parser_t* p) const noexcept {
    yaml_parser_delete(p);
    delete p;
  }
};

Json scalar_value(const yaml_event_t& e) {
  const std::string text(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
  if (e.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return text;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.empty() || text == "null" || text == "Null" || text == "NULL" || text == "~") {
    return nullptr;
  }
  return text;
}

}  // namespace

std::optional<Json> yaml_to_json(std::string_view text, std::string& error) {
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (yaml_parser_initialize(parser.get()) == 0) {
    delete parser.release();
    error = "YAML parser: out of memory";
    return std::nullopt;
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());

  // Containers being built; a mapping remembers the key waiting for a value.
  struct Frame {
    Json value;
    std::optional<std::string> key;
  };
  std::vector<Frame> stack;
  std::optional<Json> result;

  // Attaches a finished value to the enclosing container (or the result).
  auto attach = [&](Json v) -> bool {
    if (stack.empty()) {
      result = std::move(v);
      return true;
    }
    Frame& top = stack.back();
    if (top.value.is_array()) {
      top.value.push_back(std::move(v));
      return true;
    }
    if (!top.key) {
      if (!v.is_string()) {
        error = "YAML: mapping keys must be scalars";
        return false;
      }
      top.key = v.get<std::string>();
      return true;
    }
    top.value[*top.key] = std::move(v);
    top.key.reset();
    return true;
  };

  for (;;) {
    yaml_event_t event;
    if (yaml_parser_parse(parser.get(), &event) == 0) {
      error = std::string("YAML: ") + (parser->problem ? parser->problem : "syntax error") +
              " at line " + std::to_string(parser->problem_mark.line + 1);
      return std::nullopt;
    }
    std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> guard(&event, &yaml_event_delete);
    const size_t line = event.start_mark.line + 1;
    bool ok = true;
    switch (event.type) {
      case YAML_STREAM_END_EVENT:
      case YAML_DOCUMENT_END_EVENT:
        if (result) return result;
        if (event.type == YAML_STREAM_END_EVENT) return Json(nullptr);  // empty file
        break;
      case YAML_ALIAS_EVENT:
        error = "YAML: aliases are not supported (line " + std::to_string(line) + ")";
        return std::nullopt;
      case YAML_SCALAR_EVENT:
        if (event.data.scalar.anchor != nullptr) {
          error = "YAML: anchors are not supported (line " + std::to_string(line) + ")";
          return std::nullopt;
        }
        ok = attach(scalar_value(event));
        break;
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT:
        // As parse_json(): the result's consumers recurse.
        if (stack.size() >= static_cast<size_t>(sdk::kMaxJsonDepth)) {
          error = "YAML: nested deeper than " + std::to_string(sdk::kMaxJsonDepth) + " levels";
          return std::nullopt;
        }
        stack.push_back(
            Frame{event.type == YAML_SEQUENCE_START_EVENT ? Json::array() : Json::object(),
                  std::nullopt});
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        Json done = std::move(stack.back().value);
        stack.pop_back();
        ok = attach(std::move(done));
        break;
      }
      default:
        break;
    }
    if (!ok) {
      error += " (line " + std::to_string(line) + ")";
      return std::nullopt;
    }
  }
}

}  // namespace backbone::modules::k8s
