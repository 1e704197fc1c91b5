// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/watch_event.hpp"

#include <backbone/json.hpp>

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

std::string string_at(const Json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string_view to_string(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "?";
}

ObjectMeta meta_of(const Json& object) {
  ObjectMeta m;
  if (!object.is_object()) return m;
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return m;
  m.ns = string_at(*md, "namespace");
  m.name = string_at(*md, "name");
  m.uid = string_at(*md, "uid");
  m.resource_version = string_at(*md, "resourceVersion");
  auto gen = md->find("generation");
  if (gen != md->end() && gen->is_number_integer()) m.generation = gen->get<int64_t>();
  return m;
}

std::optional<WatchEvent> parse_watch_event(std::string_view line, std::string& error) {
  Json doc = sdk::parse_json(line);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "watch event is not a JSON object";
    return std::nullopt;
  }
  const std::string type = string_at(doc, "type");
  WatchEvent event;
  if (type == "ADDED") {
    event.type = EventType::kAdded;
  } else if (type == "MODIFIED") {
    event.type = EventType::kModified;
  } else if (type == "DELETED") {
    event.type = EventType::kDeleted;
  } else if (type == "BOOKMARK") {
    event.type = EventType::kBookmark;
  } else if (type == "ERROR") {
    event.type = EventType::kError;
  } else {
    error = "watch event of unknown type '" + type.substr(0, 32) + "'";
    return std::nullopt;
  }
  auto obj = doc.find("object");
  if (obj == doc.end() || !obj->is_object()) {
    error = "watch event " + type + " without an object";
    return std::nullopt;
  }
  event.object = std::move(*obj);
  if (event.type != EventType::kError) {
    const ObjectMeta m = meta_of(event.object);
    if (m.resource_version.empty()) {
      error = "watch event " + type + " without metadata.resourceVersion";
      return std::nullopt;
    }
    if (event.type != EventType::kBookmark && m.name.empty()) {
      error = "watch event " + type + " without metadata.name";
      return std::nullopt;
    }
  }
  return event;
}

ApiStatus parse_status(const Json& object) {
  ApiStatus s;
  if (!object.is_object()) return s;
  auto code = object.find("code");
  if (code != object.end() && code->is_number_integer()) s.code = code->get<int>();
  s.reason = string_at(object, "reason");
  s.message = string_at(object, "message");
  return s;
}

ApiStatus parse_status_body(std::string_view body, int http_status) {
  Json doc = sdk::parse_json(body);
  ApiStatus s;
  if (!doc.is_discarded() && doc.is_object() && string_at(doc, "kind") == "Status") {
    s = parse_status(doc);
  }
  if (s.code == 0) s.code = http_status;
  if (s.message.empty()) {
    // Not a Status (a proxy's error page): a bounded, printable excerpt.
    for (char c : body.substr(0, 200)) s.message += (c >= 0x20 && c < 0x7f) ? c : ' ';
  }
  return s;
}

std::optional<ListPage> parse_list(std::string_view body, std::string& error) {
  Json doc = sdk::parse_json(body);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "list response is not a JSON object";
    return std::nullopt;
  }
  ListPage page;
  auto md = doc.find("metadata");
  if (md != doc.end() && md->is_object()) {
    page.resource_version = string_at(*md, "resourceVersion");
    page.continue_token = string_at(*md, "continue");
  }
  if (page.resource_version.empty()) {
    error = "list response without metadata.resourceVersion";
    return std::nullopt;
  }
  auto items = doc.find("items");
  if (items != doc.end() && !items->is_null()) {
    if (!items->is_array()) {
      error = "list response: 'items' is not an array";
      return std::nullopt;
    }
    for (auto& item : *items) {
      if (!item.is_object() || meta_of(item).name.empty()) {
        error = "list response: an item without metadata.name";
        return std::nullopt;
      }
      page.items.push_back(std::move(item));
    }
  }
  return page;
}

LineReader::Result LineReader::next(std::string& line) {
  line.clear();
  for (;;) {
    const int c = in_.sbumpc();
    if (c == std::char_traits<char>::eof()) {
      if (!line.empty() && line != "\r") {
        if (line.back() == '\r') line.pop_back();
        return Result::kLine;
      }
      return Result::kEnd;
    }
    if (c == '\n') {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      return Result::kLine;
    }
    if (line.size() >= max_line_) return Result::kTooLong;
    line += static_cast<char>(c);
  }
}

}  // namespace backbone::modules::k8s
