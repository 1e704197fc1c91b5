// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/resource_pattern.hpp"

#include "kernel/authz/glob.hpp"

#include <cstddef>
#include <limits>

namespace backbone::kernel::authz {
namespace {

constexpr std::string_view kMqttPrefix = "mqtt:";
constexpr size_t kMaxPatternSize = 65535;  // the MQTT limit for a topic

// One level of the thing being matched. `any` stands for a level the MQTT
// filter leaves open ('+', or one of the levels '#' expands to): any string
// without '/', '+' or '#', and not starting with '$' when it is the first
// level (MQTT 4.7.2).
struct SubjectLevel {
  std::string_view text;
  bool any;
  bool first;
};

// Walks a concrete topic level by level without copying it. `pos_ > size`
// means every level has been consumed; "a/" has the two levels "a" and "".
class TopicCursor {
 public:
  explicit TopicCursor(std::string_view topic) : s_(topic) { find_end(); }
  bool at_end() const { return pos_ > s_.size(); }
  SubjectLevel level() const { return {s_.substr(pos_, end_ - pos_), false, pos_ == 0}; }
  void advance() {
    pos_ = end_ + 1;
    find_end();
  }

 private:
  void find_end() {
    if (pos_ > s_.size()) return;
    end_ = s_.find('/', pos_);
    if (end_ == std::string_view::npos) end_ = s_.size();
  }
  std::string_view s_;
  size_t pos_ = 0;
  size_t end_ = 0;
};

// Walks the levels of an MQTT filter before its trailing '#', then `extra`
// open levels standing for what '#' expands to.
class FilterCursor {
 public:
  FilterCursor(std::string_view body, bool has_levels, size_t extra)
      : s_(body), pos_(has_levels ? 0 : body.size() + 1), extra_(extra), first_(true) {
    find_end();
  }
  bool at_end() const { return pos_ > s_.size() && extra_ == 0; }
  SubjectLevel level() const {
    if (pos_ > s_.size()) return {{}, true, first_};
    std::string_view text = s_.substr(pos_, end_ - pos_);
    return {text, text == "+", first_};
  }
  void advance() {
    first_ = false;
    if (pos_ > s_.size()) {
      --extra_;
      return;
    }
    pos_ = end_ + 1;
    find_end();
  }

 private:
  void find_end() {
    if (pos_ > s_.size()) return;
    end_ = s_.find('/', pos_);
    if (end_ == std::string_view::npos) end_ = s_.size();
  }
  std::string_view s_;
  size_t pos_;
  size_t end_ = 0;
  size_t extra_;
  bool first_;
};

// A valid MQTT filter split into the part before a trailing '#' and whether
// that '#' exists. "a/#" -> ("a", levels, hash); "#" -> ("", no levels, hash).
struct SplitFilter {
  std::string_view body;
  bool has_levels;
  bool has_hash;
};

SplitFilter split_filter(std::string_view filter) {
  if (filter == "#") return {{}, false, true};
  if (filter.size() >= 2 && filter.substr(filter.size() - 2) == "/#") {
    return {filter.substr(0, filter.size() - 2), true, true};
  }
  return {filter, true, false};
}

bool first_level_is_dollar_literal(std::string_view filter) {
  return !filter.empty() && filter.front() == '$';
}

}  // namespace

std::optional<ResourcePattern> ResourcePattern::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<ResourcePattern> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  ResourcePattern p;
  p.text_ = std::string(text);
  std::string_view body = text;
  if (body.starts_with(kMqttPrefix)) {
    body.remove_prefix(kMqttPrefix.size());
    p.body_offset_ = static_cast<uint32_t>(kMqttPrefix.size());
  }
  if (body.empty()) return fail("empty pattern");
  if (body.size() > kMaxPatternSize) return fail("pattern longer than 65535 bytes");
  if (body.find('\0') != std::string_view::npos) return fail("pattern contains a NUL character");

  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('/', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view level = body.substr(pos, end - pos);
    Level l{Kind::literal, static_cast<uint32_t>(pos), static_cast<uint32_t>(level.size())};
    if (level == "+" || level == "*") {
      l.kind = Kind::one;
    } else if (level == "#") {
      if (end != body.size()) return fail("'#' must be the last level");
      l.kind = Kind::multi;
    } else if (level == "**") {
      l.kind = Kind::multi;
    } else if (level.find('+') != std::string_view::npos) {
      return fail("'+' must occupy a whole level");
    } else if (level.find('#') != std::string_view::npos) {
      return fail("'#' must occupy a whole level");
    } else if (level.find('*') != std::string_view::npos) {
      // "***" still globs within one level: only the exact "**" spans levels.
      l.kind = level.find_first_not_of('*') == std::string_view::npos ? Kind::one : Kind::glob;
    }
    p.levels_.push_back(l);
    pos = end + 1;
  }
  p.match_all_ = body == "*" || body == "**" || body == "#";
  const Level& first = p.levels_.front();
  p.dollar_guard_ = first.kind == Kind::one || first.kind == Kind::multi ||
                    (first.kind == Kind::glob && body.front() == '*');
  return p;
}

// Wildcard matching of the pattern levels against the subject levels, where
// Kind::multi is the star and every other level tests exactly one subject
// level through `accepts`. Greedy with one backtrack point, as in glob_match:
// no allocation, O(pattern levels * subject levels) at worst.
template <class Cursor, class Accepts>
bool ResourcePattern::match_subject(Cursor cursor, Accepts accepts) const {
  const size_t n = levels_.size();
  size_t pi = 0;
  size_t star = std::numeric_limits<size_t>::max();
  Cursor star_cursor = cursor;
  while (!cursor.at_end()) {
    if (pi < n && levels_[pi].kind == Kind::multi) {
      star = pi++;
      star_cursor = cursor;
    } else if (pi < n && accepts(levels_[pi], cursor.level())) {
      ++pi;
      cursor.advance();
    } else if (star != std::numeric_limits<size_t>::max()) {
      pi = star + 1;
      star_cursor.advance();
      cursor = star_cursor;
    } else {
      return false;
    }
  }
  while (pi < n && levels_[pi].kind == Kind::multi) ++pi;
  return pi == n;
}

bool ResourcePattern::matches(std::string_view topic) const {
  if (match_all_) return true;
  if (dollar_guard_ && !topic.empty() && topic.front() == '$') return false;
  const std::string_view b = body();
  return match_subject(TopicCursor(topic), [b](const Level& l, const SubjectLevel& s) {
    switch (l.kind) {
      case Kind::literal:
        return b.substr(l.begin, l.size) == s.text;
      case Kind::glob:
        return glob_match(b.substr(l.begin, l.size), s.text);
      default:
        return true;
    }
  });
}

bool ResourcePattern::covers_filter(std::string_view mqtt_filter) const {
  if (match_all_) return true;
  if (dollar_guard_ && first_level_is_dollar_literal(mqtt_filter)) return false;
  const std::string_view b = body();
  // An open level is covered only by a level that accepts anything: a literal
  // or a glob always misses some string, so covering is decided by matching
  // one instance where every open level is a fresh string.
  auto accepts = [b](const Level& l, const SubjectLevel& s) {
    switch (l.kind) {
      case Kind::literal:
        return !s.any && b.substr(l.begin, l.size) == s.text;
      case Kind::glob:
        return !s.any && glob_match(b.substr(l.begin, l.size), s.text);
      default:
        return true;
    }
  };
  const SplitFilter f = split_filter(mqtt_filter);
  if (!f.has_hash) return match_subject(FilterCursor(f.body, f.has_levels, 0), accepts);
  // '#' stands for k >= 0 open levels (k >= 1 for the bare "#"). Beyond
  // k = levels_.size() a '**' must already absorb an open level and can take
  // one more, so checking up to levels_.size() + 1 decides every k.
  for (size_t k = f.has_levels ? 0 : 1; k <= levels_.size() + 1; ++k) {
    if (!match_subject(FilterCursor(f.body, f.has_levels, k), accepts)) return false;
  }
  return true;
}

bool ResourcePattern::overlaps_filter(std::string_view mqtt_filter) const {
  if (match_all_) return true;
  if (dollar_guard_ && first_level_is_dollar_literal(mqtt_filter)) return false;
  const std::string_view b = body();
  // An open level can be chosen per position to suit the pattern level, so it
  // meets every level except a '$'-level at the start of the topic.
  auto accepts = [b](const Level& l, const SubjectLevel& s) {
    switch (l.kind) {
      case Kind::literal:
      case Kind::glob: {
        std::string_view lit = b.substr(l.begin, l.size);
        if (s.any) return !(s.first && !lit.empty() && lit.front() == '$');
        return l.kind == Kind::literal ? lit == s.text : glob_match(lit, s.text);
      }
      default:
        return true;
    }
  };
  const SplitFilter f = split_filter(mqtt_filter);
  if (!f.has_hash) return match_subject(FilterCursor(f.body, f.has_levels, 0), accepts);
  // If some k matches, dropping open levels that a '**' absorbed keeps the
  // match, down to k <= levels_.size(); so these k are enough.
  for (size_t k = f.has_levels ? 0 : 1; k <= levels_.size() + 1; ++k) {
    if (match_subject(FilterCursor(f.body, f.has_levels, k), accepts)) return true;
  }
  return false;
}

}  // namespace backbone::kernel::authz
