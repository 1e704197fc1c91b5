// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/resource_pattern.hpp"

#include "kernel/authz/glob.hpp"

#include <algorithm>
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
  p.match_all_ = body == "*" || body == "**";
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

// Walks the levels of another resource pattern: each level is a symbol that
// the pattern levels of the coverage test accept or not as a whole.
class PatternCursor {
 public:
  struct Symbol {
    uint8_t kind;  // ResourcePattern's Kind
    std::string_view text;
  };
  template <class Level>
  PatternCursor(std::string_view body, const std::vector<Level>& levels) {
    for (const auto& l : levels) symbols_.push_back({static_cast<uint8_t>(l.kind), {}});
    for (size_t i = 0; i < levels.size(); ++i)
      symbols_[i].text = body.substr(levels[i].begin, levels[i].size);
  }
  bool at_end() const { return pos_ == symbols_.size(); }
  const Symbol& level() const { return symbols_[pos_]; }
  void advance() { ++pos_; }

 private:
  // Patterns have few levels; copying the cursor (a backtrack point) copies
  // this small vector, and only on the management path.
  std::vector<Symbol> symbols_;
  size_t pos_ = 0;
};

bool ResourcePattern::covers_pattern(const ResourcePattern& other) const {
  if (match_all_) return true;
  if (other.match_all_) return false;  // it matches '$' topics, this one does not
  const std::string_view ob = other.body();
  if (dollar_guard_ && ob.front() == '$') return false;
  const std::string_view b = body();
  auto accepts = [b](const Level& l, const PatternCursor::Symbol& s) {
    const auto kind = static_cast<Kind>(s.kind);
    if (kind == Kind::multi) return false;  // only a multi level takes a multi level
    switch (l.kind) {
      case Kind::literal:
        return kind == Kind::literal && b.substr(l.begin, l.size) == s.text;
      case Kind::glob:
        return (kind == Kind::literal || kind == Kind::glob) &&
               glob_covers(b.substr(l.begin, l.size), s.text);
      default:
        return true;
    }
  };
  return match_subject(PatternCursor(ob, other.levels_), accepts);
}

bool ResourcePattern::may_overlap_pattern(const ResourcePattern& other) const {
  if (match_all_ || other.match_all_) return true;
  const std::string_view b = body(), ob = other.body();
  if ((dollar_guard_ && ob.front() == '$') || (other.dollar_guard_ && b.front() == '$'))
    return false;
  auto level_may_meet = [&](const Level& x, const Level& y) {
    if (x.kind == Kind::one || y.kind == Kind::one) return true;
    const std::string_view xs = b.substr(x.begin, x.size), ys = ob.substr(y.begin, y.size);
    if (x.kind == Kind::literal && y.kind == Kind::literal) return xs == ys;
    return glob_may_overlap(xs, ys);
  };
  auto is_multi = [](const Level& l) { return l.kind == Kind::multi; };
  const auto& x = levels_;
  const auto& y = other.levels_;
  // Fixed levels from the front, then from the back, up to the first '**'.
  size_t front = 0;
  while (front < x.size() && front < y.size() && !is_multi(x[front]) && !is_multi(y[front])) {
    if (!level_may_meet(x[front], y[front])) return false;
    ++front;
  }
  const bool x_open = std::any_of(x.begin(), x.end(), is_multi);
  const bool y_open = std::any_of(y.begin(), y.end(), is_multi);
  if (!x_open && !y_open) return x.size() == y.size();
  for (size_t i = 1; i <= x.size() && i <= y.size(); ++i) {
    const Level& xl = x[x.size() - i];
    const Level& yl = y[y.size() - i];
    if (is_multi(xl) || is_multi(yl)) break;
    if (!level_may_meet(xl, yl)) return false;
  }
  // A pattern without '**' has exactly its levels; the other needs at least
  // its fixed ones.
  const auto fixed = [&](const std::vector<Level>& v) {
    return static_cast<size_t>(
        std::count_if(v.begin(), v.end(), [&](const Level& l) { return !is_multi(l); }));
  };
  if (!x_open && fixed(y) > x.size()) return false;
  if (!y_open && fixed(x) > y.size()) return false;
  return true;
}

}  // namespace backbone::kernel::authz
