// SPDX-License-Identifier: GPL-3.0-or-later
// MQTT topic filters for modules: whether a topic name matches a filter
// (MQTT 5 §4.7), for modules that keep subscriptions of their own (a
// cluster module's shared groups, a bridge). Header-only.
#pragma once

#include <string_view>

namespace backbone::sdk {

// True when `topic` (a topic name: no wildcards) matches `filter` ('+' one
// level, '#' the rest, the parent level included). Topics starting with '$'
// are not matched by a filter starting with a wildcard (MQTT 5 §4.7.2).
inline bool topic_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#'))
    return false;
  size_t f = 0, t = 0;
  for (;;) {
    const size_t f_end = filter.find('/', f);
    const std::string_view level =
        filter.substr(f, f_end == std::string_view::npos ? std::string_view::npos : f_end - f);
    if (level == "#") return true;
    const size_t t_end = topic.find('/', t);
    const std::string_view name =
        topic.substr(t, t_end == std::string_view::npos ? std::string_view::npos : t_end - t);
    if (level != "+" && level != name) return false;
    if (f_end == std::string_view::npos) return t_end == std::string_view::npos;
    f = f_end + 1;
    if (t_end == std::string_view::npos) {
      // "a/#" matches "a": only a remaining "#" may follow.
      return filter.substr(f) == "#";
    }
    t = t_end + 1;
  }
}

}  // namespace backbone::sdk
