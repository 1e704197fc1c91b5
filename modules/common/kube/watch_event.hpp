// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Decoding what the API server streams: newline-delimited watch events, list
// responses and Status objects. Everything here is untrusted input: malformed
// data yields an error, never an exception or a crash.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::k8s {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };

std::string_view to_string(EventType t);

struct WatchEvent {
  EventType type = EventType::kError;
  nlohmann::json object;  // the resource; a Status for kError
};

// One line of a watch stream: {"type": "...", "object": {...}}. Objects of
// ADDED/MODIFIED/DELETED must carry metadata.name and metadata.resourceVersion
// (BOOKMARK: resourceVersion). nullopt (with `error`) otherwise.
std::optional<WatchEvent> parse_watch_event(std::string_view line, std::string& error);

// A meta/v1 Status (the body of an error response or an ERROR event).
struct ApiStatus {
  int code = 0;         // HTTP status code it stands for (410 = Gone: relist)
  std::string reason;   // "Expired", "NotFound", ...
  std::string message;  // for the log
};
ApiStatus parse_status(const nlohmann::json& object);
// From a response body; `http_status` when the body is not a Status.
ApiStatus parse_status_body(std::string_view body, int http_status);

// The parts of metadata the module uses.
struct ObjectMeta {
  std::string ns;
  std::string name;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
};
ObjectMeta meta_of(const nlohmann::json& object);

// One page of a list response.
struct ListPage {
  std::vector<nlohmann::json> items;
  std::string resource_version;  // of the whole list: where the watch starts
  std::string continue_token;    // empty on the last page
};
std::optional<ListPage> parse_list(std::string_view body, std::string& error);

// Splits a byte stream into lines without holding more than `max_line` bytes.
// Reads through the streambuf so that a blocking socket delivers each event
// as soon as its line is complete.
class LineReader {
 public:
  enum class Result { kLine, kEnd, kTooLong };

  LineReader(std::streambuf& in, size_t max_line) : in_(in), max_line_(max_line) {}

  // kLine: `line` holds the next line without its '\n' (and '\r'); blank
  // lines are skipped. kEnd: the stream ended (a last line without '\n' is
  // returned first). kTooLong: a line exceeded max_line (the stream is then
  // useless). Exceptions of the streambuf (socket errors) propagate.
  Result next(std::string& line);

 private:
  std::streambuf& in_;
  size_t max_line_;
};

}  // namespace backbone::modules::k8s
