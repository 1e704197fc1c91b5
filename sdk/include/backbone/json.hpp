// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Parsing JSON that comes from outside (request bodies, files, tokens,
// documents fetched over the network, other processes). Needs nlohmann/json
// 3.9 or later (Debian nlohmann-json3-dev); sdk.hpp does not include it.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace backbone::sdk {
inline namespace v1 {

// Deeper than any document the broker reads has a reason to be, and shallow
// enough that the recursive walks over a parsed value (copies, dump(),
// comparisons, schema validators, the broker's own readers) stay far from the
// end of a thread's stack.
inline constexpr int kMaxJsonDepth = 64;

// A key from outside quoted in an error: printable ASCII only, bounded, so a
// hostile document cannot fill a log line or put control bytes in it.
inline std::string printable_key(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > 64 ? out + "..." : out;
}

// Why parse_json() refused a text.
struct JsonError {
  std::string message;  // "not valid JSON", or the limit that was exceeded
  size_t byte = 0;      // of a syntax error, 1-based; 0 when there is no position
};

// `text` parsed, or a discarded value (is_discarded()) with `error` set.
// Arrays and objects nested deeper than `max_depth` are refused while parsing,
// before a value that deep exists: nlohmann's parser is iterative, but the
// value it would build is not safe to walk. `comments`: allow // and /* */.
inline nlohmann::json parse_json(std::string_view text, JsonError* error = nullptr,
                                 bool comments = false, int max_depth = kMaxJsonDepth) {
  using nlohmann::json;
  bool too_deep = false;
  // `depth` counts the arrays and objects around the one starting. Refusing
  // it makes the parser skip its contents without building anything.
  const json::parser_callback_t limit = [&too_deep, max_depth](int depth, json::parse_event_t event,
                                                               json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= max_depth) {
      too_deep = true;
      return false;
    }
    return true;
  };
  JsonError why;
  json value;
  try {
    value = json::parse(text.begin(), text.end(), limit, true, comments);
  } catch (const json::parse_error& e) {
    why = {"not valid JSON", e.byte};
  } catch (const json::exception&) {
    why = {"not valid JSON (a number out of range)", 0};
  }
  // The limit is named even when a syntax error follows it.
  if (too_deep) why = {"nested deeper than " + std::to_string(max_depth) + " levels", 0};
  if (why.message.empty()) return value;
  if (error) *error = std::move(why);
  return json(json::value_t::discarded);
}

}  // namespace v1
}  // namespace backbone::sdk
