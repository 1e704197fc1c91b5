// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::kernel::authz {

// A resource pattern of an authorization statement or a topic rule (SPEC §6):
// levels split by '/'; '+' or a lone '*' level = exactly one level; '#' (last)
// or a '**' level = zero or more levels; '*' inside a level globs within that
// level; anything else is literal. The patterns "*" and "**" match every
// resource, '$' topics included; any other pattern whose first level is a
// wildcard ("#" too) never matches a topic whose first level starts with '$'.
// An optional "mqtt:" prefix is ignored.
//
// Immutable after parse(); safe to share between threads. matches(),
// covers_filter() and overlaps_filter() never allocate and never throw.
class ResourcePattern {
 public:
  // Returns nullopt and, when `error` is not null, a message saying why the
  // pattern is invalid (empty, '#' not last, '+'/'#' inside a level, NUL).
  static std::optional<ResourcePattern> parse(std::string_view text, std::string* error);

  // `topic` is a concrete topic or resource name. O(levels) for patterns
  // without '**'/'#', O(levels * pattern levels) worst case.
  bool matches(std::string_view topic) const;

  // True when every topic the MQTT filter (valid, '$share/' already stripped)
  // can match is matched by this pattern. Used to allow a SUBSCRIBE.
  bool covers_filter(std::string_view mqtt_filter) const;

  // True when at least one topic the MQTT filter can match is matched by this
  // pattern. Used to refuse a SUBSCRIBE touching a denied resource.
  bool overlaps_filter(std::string_view mqtt_filter) const;

  // True when every resource `other` matches is matched by this pattern:
  // whether a caller holding this pattern may hand out `other` (delegation).
  // Sound: an open level of `other` ('+', '*', a glob, '**') is covered only
  // by a level of this pattern that takes at least as much.
  bool covers_pattern(const ResourcePattern& other) const;

  // False only when no resource matches both patterns; true when they might
  // share one.
  bool may_overlap_pattern(const ResourcePattern& other) const;

  // The pattern as given to parse(), prefix included.
  const std::string& text() const { return text_; }

 private:
  enum class Kind : uint8_t { literal, one, multi, glob };
  struct Level {
    Kind kind;
    uint32_t begin;  // offset into body()
    uint32_t size;
  };

  ResourcePattern() = default;
  std::string_view body() const { return std::string_view(text_).substr(body_offset_); }

  template <class Cursor, class Accepts>
  bool match_subject(Cursor cursor, Accepts accepts) const;

  std::string text_;
  uint32_t body_offset_ = 0;
  std::vector<Level> levels_;
  bool match_all_ = false;
  bool dollar_guard_ = false;
};

}  // namespace backbone::kernel::authz
